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
        "scripts/reset.sh.j2",
        include_str!("../templates/scripts/reset.sh.j2"),
    ),
    (
        "kubeadm/init.yaml.j2",
        include_str!("../templates/kubeadm/init.yaml.j2"),
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
