//! Character-level rules shared by every field: no control characters anywhere, no shell
//! metacharacters in local paths, login names and environment variable names with a grammar.

use serde_saphyr::Spanned;

use super::super::raw::{RawInventory, RawSsh};
use super::{at, Ctx};

/// C0 controls (tab and line breaks included), DEL, C1 controls (U+0085 NEXT LINE among them) and
/// the Unicode line/paragraph separators: characters that break a line in a log, a script or a
/// YAML file, or drive a terminal.
pub(crate) fn is_control(c: char) -> bool {
    matches!(c, '\0'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}')
}

fn control_name(c: char) -> &'static str {
    match c {
        '\0' => "NUL",
        '\t' => "tab",
        '\n' => "line feed",
        '\r' => "carriage return",
        '\u{1b}' => "escape",
        '\u{7f}' => "delete",
        '\u{85}' => "next line",
        '\u{2028}' => "line separator",
        '\u{2029}' => "paragraph separator",
        _ => "control character",
    }
}

/// `U+000A line feed`, for messages.
pub(crate) fn describe_char(c: char) -> String {
    format!("U+{:04X} {}", c as u32, control_name(c))
}

/// Messages are one line each and never carry a control character to the terminal: the value of
/// a field (or an unknown key) is shown with such characters escaped.
pub(crate) fn escape_controls(s: &str) -> String {
    if !s.chars().any(is_control) {
        return s.to_string();
    }
    s.chars()
        .map(|c| match c {
            '\n' => "\\n".to_string(),
            '\r' => "\\r".to_string(),
            '\t' => "\\t".to_string(),
            c if is_control(c) => format!("\\u{{{:x}}}", c as u32),
            c => c.to_string(),
        })
        .collect()
}

/// Report every string value holding a control character, once, at its position; other checks of
/// that value are then silenced (they would only repeat that it is wrong).
pub(crate) fn scan_controls(ctx: &mut Ctx, raw: &RawInventory) {
    let check = |ctx: &mut Ctx, s: &Option<Spanned<String>>, path: &str| {
        if let Some(s) = s {
            check_controls(ctx, s, path);
        }
    };
    if let Some(c) = &raw.cluster {
        let c = &c.value;
        for (f, v) in [
            ("name", &c.name),
            ("kubernetesVersion", &c.kubernetes_version),
            ("podSubnet", &c.pod_subnet),
            ("serviceSubnet", &c.service_subnet),
            ("containerRuntime", &c.container_runtime),
            ("cni", &c.cni),
            ("imageRepository", &c.image_repository),
            ("packageRepository", &c.package_repository),
            ("pki", &c.pki),
            ("controlPlaneEndpoint", &c.control_plane_endpoint),
        ] {
            check(ctx, v, &format!("cluster.{f}"));
        }
        if let Some(list) = &c.preload_images {
            for (i, img) in list.value.iter().enumerate() {
                check_controls(ctx, img, &format!("cluster.preloadImages[{i}]"));
            }
        }
    }
    let ssh = |ctx: &mut Ctx, s: &RawSsh, base: &str| {
        for (f, v) in [
            ("user", &s.user),
            ("identityFile", &s.identity_file),
            ("knownHostsFile", &s.known_hosts_file),
            ("hostKeyPolicy", &s.host_key_policy),
            ("passwordEnv", &s.password_env),
            ("passphraseEnv", &s.passphrase_env),
            ("sudoPasswordEnv", &s.sudo_password_env),
            ("bastion", &s.bastion),
        ] {
            if let Some(v) = v {
                check_controls(ctx, v, &format!("{base}.{f}"));
            }
        }
    };
    if let Some(s) = &raw.ssh {
        ssh(ctx, &s.value, "ssh");
    }
    if let Some(t) = &raw.timeouts {
        let t = &t.value;
        for (f, v) in [
            ("connect", &t.connect),
            ("command", &t.command),
            ("packageInstall", &t.package_install),
            ("imagePull", &t.image_pull),
            ("kubeadmInit", &t.kubeadm_init),
            ("kubeadmJoin", &t.kubeadm_join),
            ("nodeReady", &t.node_ready),
        ] {
            check(ctx, v, &format!("timeouts.{f}"));
        }
    }
    if let Some(hosts) = &raw.hosts {
        for (i, h) in hosts.value.iter().enumerate() {
            let h = &h.value;
            for (f, v) in [
                ("name", &h.name),
                ("address", &h.address),
                ("internalAddress", &h.internal_address),
                ("role", &h.role),
            ] {
                check(ctx, v, &format!("hosts[{i}].{f}"));
            }
            if let Some(s) = &h.ssh {
                ssh(ctx, &s.value, &format!("hosts[{i}].ssh"));
            }
        }
    }
}

fn check_controls(ctx: &mut Ctx, s: &Spanned<String>, path: &str) {
    let Some((i, c)) = s.value.chars().enumerate().find(|(_, c)| is_control(*c)) else {
        return;
    };
    ctx.err(
        at(s),
        path,
        format!(
            "contains a control character ({}) at character {}: names, addresses and paths must be plain text on one line; remove it",
            describe_char(c),
            i + 1
        ),
    );
    ctx.silence(at(s));
}

/// Characters a shell gives a meaning to (besides spaces, which paths often have).
pub(crate) const SHELL_CHARS: &[char] = &['$', '`', ';', '|', '&', '<', '>', '\\', '"', '\''];

/// A local file path: no shell metacharacters (kubestrap never hands paths to a shell, but a path
/// that needs them is far more likely an attack than a real file).
pub(crate) fn shell_char(v: &str) -> Option<char> {
    v.chars().find(|c| SHELL_CHARS.contains(c))
}

/// A login name as `useradd` and OpenSSH accept it portably: 1-32 of letters, digits, '_', '.'
/// and '-', not starting with '-' or '.' (so it can never be read as an option).
pub(crate) fn login_name_problem(v: &str) -> Option<String> {
    if v.is_empty() {
        return Some("it is empty".into());
    }
    if v.chars().count() > 32 {
        return Some(format!(
            "it has {} characters, at most 32 are allowed",
            v.chars().count()
        ));
    }
    if v.starts_with('-') || v.starts_with('.') {
        return Some("it starts with '-' or '.'".into());
    }
    if let Some(c) = v
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Some(format!("{c:?} is not allowed"));
    }
    None
}

pub(crate) const LOGIN_RULE: &str =
    "use 1-32 letters, digits, '_', '.' and '-', not starting with '-' or '.'";

/// `^[A-Z_][A-Z0-9_]*$`, at most 255 characters: the portable shape of an environment variable.
pub(crate) fn is_env_name(s: &str) -> bool {
    let mut b = s.bytes();
    s.len() <= 255
        && matches!(b.next(), Some(c) if c.is_ascii_uppercase() || c == b'_')
        && b.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
}
