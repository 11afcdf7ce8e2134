//! `cluster.imageRepository` (an image reference without name and tag, as kubeadm takes it) and
//! `cluster.packageRepository` (an apt source URL): real grammars, so neither can carry shell,
//! sed or YAML syntax into the scripts and configs they are written into.

use super::address::split_host_port;

/// Longest repository kubestrap accepts (the distribution spec's limit for a repository name).
pub(crate) const MAX_REPOSITORY: usize = 255;

/// A path component: `[a-z0-9]+([._-][a-z0-9]+)*` (one separator between alphanumeric runs; the
/// reference grammar's `__` is accepted too).
fn is_path_component(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() {
        return false;
    }
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let mut i = 0;
    let mut run = false;
    while i < b.len() {
        if alnum(b[i]) {
            run = true;
            i += 1;
            continue;
        }
        if !run {
            return false;
        }
        let sep = if b[i..].starts_with(b"__") { 2 } else { 1 };
        if !matches!(b[i], b'.' | b'_' | b'-') {
            return false;
        }
        i += sep;
        run = false;
    }
    run
}

/// `host[:port][/component...]` with a lowercase DNS name, an IPv4 address or a bracketed IPv6
/// address as host. The problem is a phrase to follow the quoted value.
pub(crate) fn image_repository_problem(v: &str) -> Option<String> {
    if v.contains("://") {
        return Some(
            "must not have a scheme (write registry.k8s.io, not https://registry.k8s.io)".into(),
        );
    }
    reference_problem(v).map(|why| format!("is not an image repository: {why}"))
}

fn reference_problem(v: &str) -> Option<String> {
    let n = v.chars().count();
    if n == 0 {
        return Some("it is empty".into());
    }
    if n > MAX_REPOSITORY {
        return Some(format!(
            "it has {n} characters, at most {MAX_REPOSITORY} are allowed"
        ));
    }
    if let Some(c) = v
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._-/:[]".contains(*c)))
    {
        return Some(format!(
            "{c:?} is not allowed (only lowercase letters, digits, '.', '_', '-', '/' and a ':port')"
        ));
    }
    if v.chars().any(|c| c.is_ascii_uppercase()) {
        return Some("it must be lowercase".into());
    }
    let (host, path) = match v.split_once('/') {
        Some((h, p)) => (h, Some(p)),
        None => (v, None),
    };
    if host.contains('_') {
        return Some(format!("the registry host {host:?} has a '_'"));
    }
    if let Err(e) = split_host_port(host) {
        return Some(format!("the registry host: {e}"));
    }
    if let Some(path) = path {
        for comp in path.split('/') {
            if !is_path_component(comp) {
                return Some(if comp.is_empty() {
                    "it has an empty path component ('//' or a trailing '/')".into()
                } else {
                    format!("the path component {comp:?} is not lowercase letters and digits separated by single '.', '_' or '-' (and no tag or digest)")
                });
            }
        }
    }
    None
}

/// `http(s)://host[:port]/path/` with a path of URL-safe characters only (no quotes, `$`, `;`,
/// `|`, `&`, spaces, `?` or `#`). The problem is a phrase to follow the quoted value.
pub(crate) fn package_repository_problem(v: &str) -> Option<String> {
    if v.len() > 2048 {
        return Some(format!(
            "is {} characters long, at most 2048 are allowed",
            v.len()
        ));
    }
    let Some(rest) = v
        .strip_prefix("https://")
        .or_else(|| v.strip_prefix("http://"))
    else {
        return Some("is not an http(s) URL".into());
    };
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if host.is_empty() {
        return Some("is not an http(s) URL: it has no host".into());
    }
    if let Err(e) = split_host_port(&host.to_ascii_lowercase()) {
        return Some(format!("is not an http(s) URL: its host is wrong: {e}"));
    }
    if let Some(c) = path
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-._~/:%+=@,".contains(*c)))
    {
        return Some(format!(
            "has {c:?} in its path, which is not allowed (letters, digits and - . _ ~ / : % + = @ , only)"
        ));
    }
    if !v.ends_with('/') {
        return Some("must end with '/' (it is used as an apt source directory)".into());
    }
    None
}
