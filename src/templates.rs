//! Templates live in `templates/` and are embedded in the binary. Rendering is strict: an
//! undefined variable is an error naming the template and line.

use minijinja::{Environment, UndefinedBehavior, Value};

use crate::ssh::shell_quote;

const TEMPLATES: &[(&str, &str)] = &[
    (
        "scripts/lib.sh",
        include_str!("../templates/scripts/lib.sh"),
    ),
    (
        "scripts/facts.sh.j2",
        include_str!("../templates/scripts/facts.sh.j2"),
    ),
    (
        "scripts/system.sh.j2",
        include_str!("../templates/scripts/system.sh.j2"),
    ),
    (
        "scripts/packages.sh.j2",
        include_str!("../templates/scripts/packages.sh.j2"),
    ),
    (
        "scripts/runtime-containerd.sh.j2",
        include_str!("../templates/scripts/runtime-containerd.sh.j2"),
    ),
    (
        "scripts/runtime-docker.sh.j2",
        include_str!("../templates/scripts/runtime-docker.sh.j2"),
    ),
    (
        "scripts/images.sh.j2",
        include_str!("../templates/scripts/images.sh.j2"),
    ),
    (
        "scripts/prepare.sh.j2",
        include_str!("../templates/scripts/prepare.sh.j2"),
    ),
    (
        "scripts/image-fetch.sh.j2",
        include_str!("../templates/scripts/image-fetch.sh.j2"),
    ),
    (
        "scripts/image-serve.sh.j2",
        include_str!("../templates/scripts/image-serve.sh.j2"),
    ),
    (
        "scripts/cp-state.sh.j2",
        include_str!("../templates/scripts/cp-state.sh.j2"),
    ),
    (
        "scripts/fastcheck.sh.j2",
        include_str!("../templates/scripts/fastcheck.sh.j2"),
    ),
    (
        "scripts/reset.sh.j2",
        include_str!("../templates/scripts/reset.sh.j2"),
    ),
    (
        "kubeadm/init.yaml.j2",
        include_str!("../templates/kubeadm/init.yaml.j2"),
    ),
    (
        "kubeadm/token.yaml.j2",
        include_str!("../templates/kubeadm/token.yaml.j2"),
    ),
    (
        "kubeadm/join.yaml.j2",
        include_str!("../templates/kubeadm/join.yaml.j2"),
    ),
    (
        "cni/flannel.yaml.j2",
        include_str!("../templates/cni/flannel.yaml.j2"),
    ),
];

fn env() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .build()
            .expect("valid syntax config"),
    );
    env.add_filter("q", |s: String| shell_quote(&s));
    for (name, src) in TEMPLATES {
        env.add_template(name, src)
            .unwrap_or_else(|e| panic!("embedded template {name} is invalid: {e}"));
    }
    env
}

/// Render one embedded template.
pub fn render(name: &str, ctx: Value) -> anyhow::Result<String> {
    let env = env();
    let tmpl = env.get_template(name)?;
    tmpl.render(ctx)
        .map_err(|e| anyhow::anyhow!("rendering template {name} failed: {e:#}"))
}

/// A remote script: the helper library followed by the rendered step.
pub fn script(name: &str, ctx: Value) -> anyhow::Result<String> {
    let lib = TEMPLATES[0].1;
    Ok(format!("{lib}\n{}", render(name, ctx)?))
}

#[cfg(test)]
mod tests {
    /// A template file that is not in TEMPLATES fails only when a host's script includes it.
    #[test]
    fn every_template_file_is_embedded() {
        fn walk(dir: &std::path::Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.push(p.to_string_lossy().into_owned());
                }
            }
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let mut files = Vec::new();
        walk(&root, &mut files);
        assert!(files.len() > 10, "{files:?}");
        for f in files {
            let rel = f[root.to_string_lossy().len() + 1..].replace('\\', "/");
            assert!(
                super::TEMPLATES.iter().any(|(name, _)| *name == rel),
                "templates/{rel} is not embedded in src/templates.rs"
            );
        }
    }
}
