//! Templates live in `templates/` and are embedded in the binary. Rendering is strict: an
//! undefined variable is an error naming the template and line.
//!
//! Every `{{ value }}` is quoted for the language of its template, so no template can forget:
//! in `scripts/` a string becomes one shell word (`'...'`), in `.yaml.j2` a double-quoted scalar
//! (JSON string syntax, which YAML reads as-is). Integers and booleans print bare; anything else
//! (a list, a map, none) is a rendering error. Two filters mark output as already safe: `q`
//! (shell-quote, for readability where a value is built with `~`) and `word`, which lets a value
//! through bare only when it is one plain word (`[A-Za-z0-9._:/@+=,-]`, no quote, space or
//! control character), for heredoc bodies and messages; anything else fails the render.

use minijinja::{
    AutoEscape, Environment, Error, ErrorKind, Output, State, UndefinedBehavior, Value,
};

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
        "scripts/upgrade-check.sh.j2",
        include_str!("../templates/scripts/upgrade-check.sh.j2"),
    ),
    (
        "scripts/upgrade-kubeadm.sh.j2",
        include_str!("../templates/scripts/upgrade-kubeadm.sh.j2"),
    ),
    (
        "scripts/upgrade-kubelet.sh.j2",
        include_str!("../templates/scripts/upgrade-kubelet.sh.j2"),
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
    env.set_auto_escape_callback(|name| {
        if name.starts_with("scripts/") {
            AutoEscape::Custom("sh".into())
        } else if name.ends_with(".yaml.j2") {
            AutoEscape::Custom("yaml".into())
        } else {
            AutoEscape::None
        }
    });
    env.set_formatter(quote_formatter);
    env.add_filter("q", |s: String| Value::from_safe_string(shell_quote(&s)));
    env.add_filter("word", |s: String| -> Result<Value, Error> {
        if is_word(&s) {
            Ok(Value::from_safe_string(s))
        } else {
            Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("{s:?} is not one plain word and cannot go into the script bare"),
            ))
        }
    });
    for (name, src) in TEMPLATES {
        env.add_template(name, src)
            .unwrap_or_else(|e| panic!("embedded template {name} is invalid: {e}"));
    }
    env
}

/// A value printed bare: one word of `[A-Za-z0-9._:/@+=,-]`, not empty, not starting with `-`.
pub fn is_word(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:/@+=,-".contains(&b))
}

/// `{{ value }}` in a template: quoted for the template's language (see the module docs).
fn quote_formatter(out: &mut Output, state: &mut State, value: &Value) -> Result<(), Error> {
    let lang = match state.auto_escape() {
        AutoEscape::Custom(l) => l.to_string(),
        _ => return minijinja::escape_formatter(out, state, value),
    };
    let text = if value.is_safe()
        || value.is_integer()
        || value.kind() == minijinja::value::ValueKind::Bool
    {
        value.to_string()
    } else if let Some(s) = value.as_str() {
        if lang == "sh" {
            shell_quote(s)
        } else {
            serde_json::to_string(s).expect("a string serialises")
        }
    } else {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "{} value {value} cannot be printed into a {lang} template (only strings, integers and booleans)",
                value.kind()
            ),
        ));
    };
    out.write_str(&text).map_err(Error::from)
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
