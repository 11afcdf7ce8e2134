//! The validation pass: raw (located) values -> typed model, collecting every problem.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::Ipv4Net;
use serde_saphyr::{Location, Spanned};

use super::locate::closest;
use super::raw::{RawCluster, RawHost, RawInventory, RawSsh, RawTimeouts, S};
use super::*;

const DEFAULT_POD_SUBNET: &str = "10.244.0.0/16";
const DEFAULT_SERVICE_SUBNET: &str = "10.96.0.0/12";
const DEFAULT_IMAGE_REPOSITORY: &str = "registry.k8s.io";

type Pos = (usize, usize);

fn pos(l: &Location) -> Pos {
    (l.line().max(1) as usize, l.column().max(1) as usize)
}

fn at<T>(s: &Spanned<T>) -> Pos {
    pos(&s.referenced)
}

struct Ctx<'a> {
    problems: Vec<Problem>,
    dir: &'a Path,
    home: Option<&'a Path>,
}

impl Ctx<'_> {
    fn err(&mut self, p: Pos, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            line: p.0,
            column: p.1,
            path: path.into(),
            message: message.into(),
        });
    }

    /// `~` expansion, then relative paths against the inventory's directory.
    fn resolve_path(&mut self, s: &Spanned<String>, path: &str) -> Option<PathBuf> {
        let v = s.value.trim();
        if v.is_empty() {
            self.err(
                at(s),
                path,
                "an empty path; give a file path or remove the field",
            );
            return None;
        }
        let p = if v == "~" || v.starts_with("~/") {
            match self.home {
                Some(h) => h.join(v.trim_start_matches('~').trim_start_matches('/')),
                None => {
                    self.err(
                        at(s),
                        path,
                        format!("cannot expand `~` in {v:?}: $HOME is not set"),
                    );
                    return None;
                }
            }
        } else if v.starts_with('~') {
            self.err(
                at(s),
                path,
                format!("{v:?}: only `~/` (your own home) is expanded; write the full path"),
            );
            return None;
        } else {
            PathBuf::from(v)
        };
        Some(if p.is_absolute() { p } else { self.dir.join(p) })
    }
}

/// RFC 1123 label: 1-63 of `[a-z0-9-]`, starting and ending with a letter or digit.
pub(crate) fn is_rfc1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 characters.
pub(crate) fn is_rfc1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_rfc1123_label)
}

/// A label that a user probably meant, for "did you mean".
fn label_suggestion(s: &str) -> Option<String> {
    let mut out: String = s
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    let out = out.trim_matches('-');
    let out: String = out.chars().take(63).collect();
    let out = out.trim_end_matches('-').to_string();
    (is_rfc1123_label(&out) && out != s).then_some(out)
}

const LABEL_RULE: &str = "use 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit (RFC 1123 label)";

fn check_label(ctx: &mut Ctx, s: &Spanned<String>, path: &str, what: &str) -> bool {
    if is_rfc1123_label(&s.value) {
        return true;
    }
    let mut m = format!("{:?} is not a valid {what}: {LABEL_RULE}", s.value);
    if s.value.len() > 63 {
        m.push_str(&format!("; it has {} characters", s.value.len()));
    }
    if let Some(sug) = label_suggestion(&s.value) {
        m.push_str(&format!("; did you mean `{sug}`?"));
    }
    ctx.err(at(s), path, m);
    false
}

fn one_of<T: Copy>(
    ctx: &mut Ctx,
    s: &Spanned<String>,
    path: &str,
    what: &str,
    allowed: &[&str],
    values: &[T],
) -> Option<T> {
    if let Some(i) = allowed.iter().position(|a| *a == s.value) {
        return Some(values[i]);
    }
    let mut m = format!(
        "{:?} is not {what}; allowed: {}",
        s.value,
        allowed.join(", ")
    );
    let sug = match s.value.to_ascii_lowercase().as_str() {
        "master" | "controlplane" | "control_plane" | "cp" | "server" => Some("control-plane"),
        "node" | "agent" | "minion" => Some("worker"),
        "acceptnew" | "accept_new" | "tofu" => Some("accept-new"),
        "yes" | "true" => Some("strict"),
        "no" | "false" => Some("off"),
        _ => closest(&s.value, allowed),
    };
    if let Some(sug) = sug.filter(|x| allowed.contains(x)) {
        m.push_str(&format!(" (did you mean `{sug}`?)"));
    }
    ctx.err(at(s), path, m);
    None
}

fn parse_ipv4_net(ctx: &mut Ctx, s: &Spanned<String>, path: &str) -> Option<Ipv4Net> {
    let v = s.value.trim();
    match v.parse::<Ipv4Net>() {
        Ok(n) if n.network() != n.addr() => {
            ctx.err(
                at(s),
                path,
                format!(
                    "{v:?} has host bits set; the network address of that range is {}",
                    n.trunc()
                ),
            );
            None
        }
        Ok(n) => Some(n),
        Err(_) => {
            let m = if v.parse::<ipnet::Ipv6Net>().is_ok() {
                format!("{v:?} is an IPv6 range; kubestrap builds IPv4 clusters only: give an IPv4 CIDR such as 10.244.0.0/16")
            } else if v.parse::<std::net::Ipv4Addr>().is_ok() {
                format!("{v:?} has no prefix length; write a CIDR range such as {v}/16")
            } else {
                format!("{v:?} is not an IPv4 CIDR range; write it like 10.244.0.0/16")
            };
            ctx.err(at(s), path, m);
            None
        }
    }
}

fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn is_env_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// `host[:port]` where host is an IP or an RFC 1123 subdomain; IPv6 with a port as `[addr]:port`.
fn check_host_port(v: &str) -> Result<(), String> {
    if v.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let (host, port) = if let Some(rest) = v.strip_prefix('[') {
        let Some((h, p)) = rest.split_once("]:") else {
            return Err("IPv6 with a port is written [address]:port".into());
        };
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("{h:?} is not an IPv6 address"));
        }
        (None, Some(p))
    } else {
        match v.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(v), None),
        }
    };
    if let Some(p) = port {
        match p.parse::<u16>() {
            Ok(n) if n > 0 => {}
            _ => return Err(format!("{p:?} is not a port number (1-65535)")),
        }
    }
    if let Some(h) = host {
        if h.parse::<std::net::Ipv4Addr>().is_err() && !is_rfc1123_subdomain(h) {
            return Err(format!(
                "{h:?} is neither an IP address nor a DNS name (lowercase letters, digits, '-' and '.')"
            ));
        }
    }
    Ok(())
}

/// `controlPlaneEndpoint` with `:6443` added when it has no port.
pub(crate) fn endpoint_with_port(e: &str) -> String {
    if let Ok(ip) = e.parse::<IpAddr>() {
        return match ip {
            IpAddr::V4(a) => format!("{a}:6443"),
            IpAddr::V6(a) => format!("[{a}]:6443"),
        };
    }
    if e.starts_with('[')
        || e.rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        e.to_string()
    } else {
        format!("{e}:6443")
    }
}

/// `30s`, `5m`, `1h30m`, `90` (seconds).
pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok().map(Duration::from_secs);
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
        } else {
            let n: u64 = num.parse().ok()?;
            num.clear();
            let mult = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                _ => return None,
            };
            total = total.checked_add(n.checked_mul(mult)?)?;
        }
    }
    if !num.is_empty() {
        return None;
    }
    Some(Duration::from_secs(total))
}

/// One validated `ssh:` block (defaults or a host override); `None` = not set here.
#[derive(Default, Clone)]
struct SshLayer {
    user: Option<String>,
    port: Option<u16>,
    identity_file: Option<PathBuf>,
    known_hosts_file: Option<PathBuf>,
    host_key_policy: Option<HostKeyPolicy>,
    password_env: Option<String>,
    passphrase_env: Option<String>,
    sudo_password_env: Option<String>,
    bastion: Option<String>,
}

fn ssh_layer(ctx: &mut Ctx, raw: &RawSsh, base: &str) -> SshLayer {
    let p = |f: &str| format!("{base}.{f}");
    let mut l = SshLayer::default();
    if let Some(u) = &raw.user {
        let v = u.value.trim();
        if v.is_empty() || v.chars().any(|c| c.is_whitespace() || c == '@' || c == ':') {
            ctx.err(
                at(u),
                p("user"),
                format!(
                    "{:?} is not a valid login name (no spaces, '@' or ':')",
                    u.value
                ),
            );
        } else {
            l.user = Some(v.to_string());
        }
    }
    if let Some(port) = &raw.port {
        if port.value == 0 {
            ctx.err(
                at(port),
                p("port"),
                "0 is not a usable port; allowed: 1-65535",
            );
        } else {
            l.port = Some(port.value);
        }
    }
    if let Some(f) = &raw.identity_file {
        let path = p("identityFile");
        if let Some(file) = ctx.resolve_path(f, &path) {
            if file.is_file() {
                l.identity_file = Some(file);
            } else {
                let why = if file.exists() {
                    "is not a file"
                } else {
                    "does not exist"
                };
                ctx.err(
                    at(f),
                    path,
                    format!(
                        "private key {} {why}; give the path of an existing key file",
                        file.display()
                    ),
                );
            }
        }
    }
    if let Some(f) = &raw.known_hosts_file {
        l.known_hosts_file = ctx.resolve_path(f, &p("knownHostsFile"));
    }
    if let Some(k) = &raw.host_key_policy {
        l.host_key_policy = one_of(
            ctx,
            k,
            &p("hostKeyPolicy"),
            "a host key policy",
            HostKeyPolicy::ALLOWED,
            &[
                HostKeyPolicy::Strict,
                HostKeyPolicy::AcceptNew,
                HostKeyPolicy::Off,
            ],
        );
    }
    for (field, src, dst) in [
        ("passwordEnv", &raw.password_env, &mut l.password_env),
        ("passphraseEnv", &raw.passphrase_env, &mut l.passphrase_env),
        (
            "sudoPasswordEnv",
            &raw.sudo_password_env,
            &mut l.sudo_password_env,
        ),
    ] {
        if let Some(s) = src {
            if is_env_name(&s.value) {
                *dst = Some(s.value.clone());
            } else {
                ctx.err(
                    at(s),
                    p(field),
                    format!(
                        "{:?} is not an environment variable name; give the NAME of a variable that holds the secret (letters, digits, '_'), never the secret itself",
                        s.value
                    ),
                );
            }
        }
    }
    if let Some(b) = &raw.bastion {
        let v = b.value.trim();
        let hostport = match v.split_once('@') {
            Some((user, rest)) if !user.is_empty() && !user.contains(char::is_whitespace) => {
                Ok(rest)
            }
            Some(_) => Err("the user before '@' is empty or has spaces".to_string()),
            None => Ok(v),
        };
        match hostport.and_then(|hp| {
            if hp.is_empty() {
                Err("no host".to_string())
            } else {
                check_host_port(hp).or_else(|e| {
                    // A name from ~/.ssh/config may contain '_' or capitals.
                    if hp
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
                    {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })
            }
        }) {
            Ok(()) => l.bastion = Some(v.to_string()),
            Err(e) => ctx.err(
                at(b),
                p("bastion"),
                format!("{v:?} is not a jump host: {e}; write [user@]host[:port]"),
            ),
        }
    }
    l
}

/// The IP an `~/.ssh/config` alias's HostName names, if it names one; a configuration line
/// kubestrap cannot follow is an error (file:line, what to do).
fn alias_host_ip(
    alias: &str,
    home: Option<&Path>,
) -> Result<Option<IpAddr>, crate::ssh::config::ConfigError> {
    let Some(home) = home else { return Ok(None) };
    let cfg = home.join(".ssh/config");
    Ok(crate::ssh::config::resolve(alias, &cfg, Some(home))?
        .host_name
        .and_then(|h| h.parse().ok()))
}

fn merge(host: &SshLayer, defaults: &SshLayer, home: Option<&Path>) -> SshSettings {
    SshSettings {
        user: host
            .user
            .clone()
            .or(defaults.user.clone())
            .unwrap_or_else(|| "root".into()),
        port: host.port.or(defaults.port).unwrap_or(22),
        user_explicit: host.user.is_some() || defaults.user.is_some(),
        port_explicit: host.port.is_some() || defaults.port.is_some(),
        identity_file: host
            .identity_file
            .clone()
            .or(defaults.identity_file.clone()),
        known_hosts_file: host
            .known_hosts_file
            .clone()
            .or(defaults.known_hosts_file.clone())
            .unwrap_or_else(|| match home {
                Some(h) => h.join(".ssh/known_hosts"),
                None => PathBuf::from("~/.ssh/known_hosts"),
            }),
        host_key_policy: host
            .host_key_policy
            .or(defaults.host_key_policy)
            .unwrap_or(HostKeyPolicy::Strict),
        password_env: host.password_env.clone().or(defaults.password_env.clone()),
        passphrase_env: host
            .passphrase_env
            .clone()
            .or(defaults.passphrase_env.clone()),
        sudo_password_env: host
            .sudo_password_env
            .clone()
            .or(defaults.sudo_password_env.clone()),
        bastion: host.bastion.clone().or(defaults.bastion.clone()),
    }
}

struct ClusterParts {
    name: Option<String>,
    version: Option<Version>,
    pod: Option<Ipv4Net>,
    pod_pos: Pos,
    service: Option<Ipv4Net>,
    service_pos: Pos,
    runtime: Option<Runtime>,
    cni: Option<Cni>,
    image_repository: Option<String>,
    package_repository: Option<String>,
    preload_images: Vec<PathBuf>,
    pki: Option<PkiMode>,
    endpoint: Option<String>,
}

fn cluster(ctx: &mut Ctx, raw: &S<RawCluster>) -> ClusterParts {
    let mut out = ClusterParts {
        name: None,
        version: None,
        pod: None,
        pod_pos: (1, 1),
        service: None,
        service_pos: (1, 1),
        runtime: Some(Runtime::Containerd),
        cni: Some(Cni::Flannel),
        image_repository: Some(DEFAULT_IMAGE_REPOSITORY.into()),
        package_repository: None,
        preload_images: Vec::new(),
        pki: Some(PkiMode::Kubeadm),
        endpoint: None,
    };
    let Some(c) = raw else {
        ctx.err(
            (1, 1),
            "cluster",
            "missing section `cluster` (with at least `name` and `kubernetesVersion`)",
        );
        return out;
    };
    let here = at(c);
    let c = &c.value;

    match &c.name {
        Some(n) => {
            if check_label(ctx, n, "cluster.name", "cluster name") {
                out.name = Some(n.value.clone());
            }
        }
        None => ctx.err(
            here,
            "cluster.name",
            "missing field `name` (an RFC 1123 label such as `lab`)",
        ),
    }

    match &c.kubernetes_version {
        Some(v) => match Version::parse(v.value.trim()) {
            Some(ver) if ver.major == 1 && (MIN_MINOR..=MAX_MINOR).contains(&ver.minor) => {
                out.version = Some(ver)
            }
            Some(ver) => ctx.err(
                at(v),
                "cluster.kubernetesVersion",
                format!(
                    "Kubernetes {ver} is not supported; supported versions are 1.{MIN_MINOR}.x to 1.{MAX_MINOR}.x"
                ),
            ),
            None => {
                let mut m = format!(
                    "{:?} is not a Kubernetes version; write MAJOR.MINOR.PATCH like \"1.31.2\" or \"v1.31.2\" (supported: 1.{MIN_MINOR} to 1.{MAX_MINOR})",
                    v.value
                );
                let t = v.value.trim().trim_start_matches('v');
                if t.split('.').count() == 2 && t.split('.').all(|p| p.parse::<u32>().is_ok()) {
                    m.push_str(&format!("; a patch release is required, e.g. \"{t}.0\""));
                }
                ctx.err(at(v), "cluster.kubernetesVersion", m);
            }
        },
        None => ctx.err(
            here,
            "cluster.kubernetesVersion",
            "missing field `kubernetesVersion` (e.g. \"1.31.2\")",
        ),
    }

    match &c.pod_subnet {
        Some(s) => {
            out.pod_pos = at(s);
            out.pod = parse_ipv4_net(ctx, s, "cluster.podSubnet");
        }
        None => out.pod = DEFAULT_POD_SUBNET.parse().ok(),
    }
    match &c.service_subnet {
        Some(s) => {
            out.service_pos = at(s);
            out.service = parse_ipv4_net(ctx, s, "cluster.serviceSubnet");
            if let Some(n) = out.service {
                if n.prefix_len() < 12 {
                    ctx.err(
                        at(s),
                        "cluster.serviceSubnet",
                        format!("{n} is too large: the API server accepts a service range of /12 or smaller (prefix length 12-28)"),
                    );
                    out.service = None;
                } else if n.prefix_len() > 28 {
                    ctx.err(
                        at(s),
                        "cluster.serviceSubnet",
                        format!("{n} is too small for the cluster's services; use a prefix length of 12-28 (e.g. 10.96.0.0/12)"),
                    );
                    out.service = None;
                }
            }
        }
        None => out.service = DEFAULT_SERVICE_SUBNET.parse().ok(),
    }
    if let (Some(p), Some(s)) = (out.pod, out.service) {
        if overlaps(&p, &s) {
            let (pos, path, other) = if c.service_subnet.is_some() {
                (
                    out.service_pos,
                    "cluster.serviceSubnet",
                    format!("podSubnet {p}"),
                )
            } else {
                (
                    out.pod_pos,
                    "cluster.podSubnet",
                    format!("serviceSubnet {s} (the default)"),
                )
            };
            let this = if path.ends_with("serviceSubnet") {
                s
            } else {
                p
            };
            ctx.err(
                pos,
                path,
                format!("{this} overlaps {other}; pod and service subnets must not overlap"),
            );
        }
    }

    if let Some(r) = &c.container_runtime {
        out.runtime = one_of(
            ctx,
            r,
            "cluster.containerRuntime",
            "a container runtime",
            Runtime::ALLOWED,
            &[Runtime::Containerd, Runtime::Docker],
        );
    }
    if let Some(n) = &c.cni {
        out.cni = one_of(
            ctx,
            n,
            "cluster.cni",
            "a supported pod network",
            Cni::ALLOWED,
            &[Cni::Flannel, Cni::Calico, Cni::None],
        );
    }
    if let Some(p) = &c.pki {
        out.pki = one_of(
            ctx,
            p,
            "cluster.pki",
            "a PKI mode",
            PkiMode::ALLOWED,
            &[PkiMode::Kubeadm, PkiMode::Console],
        );
    }

    if let Some(r) = &c.image_repository {
        let v = r.value.trim();
        let bad = if v.is_empty() {
            Some("is empty")
        } else if v.contains("://") {
            Some("must not have a scheme (write registry.k8s.io, not https://registry.k8s.io)")
        } else if v.ends_with('/') {
            Some("must not end with '/'")
        } else if v
            .chars()
            .any(|c| c.is_whitespace() || c.is_ascii_uppercase())
        {
            Some("must be lowercase with no spaces")
        } else {
            None
        };
        match bad {
            Some(why) => ctx.err(
                at(r),
                "cluster.imageRepository",
                format!(
                    "{v:?} {why}; e.g. registry.k8s.io or registry.aliyuncs.com/google_containers"
                ),
            ),
            None => out.image_repository = Some(v.to_string()),
        }
    }

    if let Some(r) = &c.package_repository {
        let v = r.value.trim();
        let rest = v
            .strip_prefix("https://")
            .or_else(|| v.strip_prefix("http://"));
        match rest {
            Some(host) if !host.is_empty() && !host.starts_with('/') && v.ends_with('/') && !v.contains(char::is_whitespace) => {
                out.package_repository = Some(v.to_string())
            }
            Some(_) if !v.ends_with('/') => ctx.err(
                at(r),
                "cluster.packageRepository",
                format!("{v:?} must end with '/' (it is used as an apt source directory), e.g. https://pkgs.k8s.io/core:/stable:/v1.31/deb/"),
            ),
            _ => ctx.err(
                at(r),
                "cluster.packageRepository",
                format!("{v:?} is not an http(s) URL; e.g. https://pkgs.k8s.io/core:/stable:/v1.31/deb/"),
            ),
        }
    } else if let Some(v) = out.version {
        out.package_repository = Some(format!(
            "https://pkgs.k8s.io/core:/stable:/v{}/deb/",
            v.minor_line()
        ));
    }

    if let Some(list) = &c.preload_images {
        for (i, img) in list.value.iter().enumerate() {
            let path = format!("cluster.preloadImages[{i}]");
            if let Some(file) = ctx.resolve_path(img, &path) {
                if file.is_file() {
                    out.preload_images.push(file);
                } else {
                    let why = if file.exists() {
                        "is not a file"
                    } else {
                        "not found"
                    };
                    ctx.err(
                        at(img),
                        path,
                        format!(
                            "image tarball {:?} {why} (looked for {}; relative paths start at the inventory's directory)",
                            img.value,
                            file.display()
                        ),
                    );
                }
            }
        }
    }

    if let Some(e) = &c.control_plane_endpoint {
        let v = e.value.trim();
        let checked = if v.contains("://") {
            Err("no scheme (https://) or path, just host[:port]".to_string())
        } else {
            check_host_port(v)
        };
        match checked {
            Ok(()) => out.endpoint = Some(v.to_string()),
            Err(why) => ctx.err(
                at(e),
                "cluster.controlPlaneEndpoint",
                format!("{v:?} is not a valid endpoint: {why}; write an IP address or DNS name with an optional port, e.g. k8s-api.example.com:6443"),
            ),
        }
    }
    out
}

fn timeouts(ctx: &mut Ctx, raw: &S<RawTimeouts>) -> Timeouts {
    let mut t = Timeouts::default();
    let Some(r) = raw else { return t };
    let r = &r.value;
    for (name, src, dst) in [
        ("connect", &r.connect, &mut t.connect),
        ("command", &r.command, &mut t.command),
        ("packageInstall", &r.package_install, &mut t.package_install),
        ("imagePull", &r.image_pull, &mut t.image_pull),
        ("kubeadmInit", &r.kubeadm_init, &mut t.kubeadm_init),
        ("kubeadmJoin", &r.kubeadm_join, &mut t.kubeadm_join),
        ("nodeReady", &r.node_ready, &mut t.node_ready),
    ] {
        if let Some(s) = src {
            match parse_duration(&s.value) {
                Some(d) if !d.is_zero() => *dst = d,
                Some(_) => ctx.err(
                    at(s),
                    format!("timeouts.{name}"),
                    "a timeout must be longer than 0s",
                ),
                None => ctx.err(
                    at(s),
                    format!("timeouts.{name}"),
                    format!(
                        "{:?} is not a duration; write e.g. 30s, 5m, 1h30m or a number of seconds",
                        s.value
                    ),
                ),
            }
        }
    }
    t
}

pub(crate) fn validate(
    raw: RawInventory,
    file: &Path,
    dir: &Path,
    home: Option<&Path>,
) -> Result<Inventory, Vec<Problem>> {
    let mut ctx = Ctx {
        problems: Vec::new(),
        dir,
        home,
    };
    let c = cluster(&mut ctx, &raw.cluster);
    let defaults = match &raw.ssh {
        Some(s) => ssh_layer(&mut ctx, &s.value, "ssh"),
        None => SshLayer::default(),
    };
    let timeouts = timeouts(&mut ctx, &raw.timeouts);

    let mut hosts: Vec<Host> = Vec::new();
    let empty: Vec<Spanned<RawHost>> = Vec::new();
    let (raw_hosts, hosts_pos) = match &raw.hosts {
        Some(h) => (&h.value, at(h)),
        None => (&empty, (1, 1)),
    };
    if raw_hosts.is_empty() {
        ctx.err(
            hosts_pos,
            "hosts",
            "no hosts: list at least one host with `name`, `address` and `role: control-plane`",
        );
    }

    let mut names: HashMap<String, usize> = HashMap::new();
    let mut addresses: HashMap<(String, u16), usize> = HashMap::new();
    let mut internals: HashMap<IpAddr, usize> = HashMap::new();
    let mut control_planes: Vec<(usize, Pos)> = Vec::new();
    let mut host_lines: Vec<usize> = Vec::new();
    let mut bad_roles = 0;

    for (i, h) in raw_hosts.iter().enumerate() {
        let base = format!("hosts[{i}]");
        let here = at(h);
        host_lines.push(here.0);
        let r = &h.value;
        let layer = match &r.ssh {
            Some(s) => ssh_layer(&mut ctx, &s.value, &format!("{base}.ssh")),
            None => SshLayer::default(),
        };
        let ssh = merge(&layer, &defaults, home);

        let name = match &r.name {
            Some(n) => {
                if check_label(&mut ctx, n, &format!("{base}.name"), "host name") {
                    if let Some(&j) = names.get(&n.value) {
                        ctx.err(
                            at(n),
                            format!("{base}.name"),
                            format!(
                                "duplicate host name {:?}: hosts[{j}] (line {}) already uses it; host names must be unique",
                                n.value, host_lines[j]
                            ),
                        );
                    } else {
                        names.insert(n.value.clone(), i);
                    }
                    Some(n.value.clone())
                } else {
                    None
                }
            }
            None => {
                ctx.err(
                    here,
                    format!("{base}.name"),
                    "missing field `name` (the node's hostname, an RFC 1123 label)",
                );
                None
            }
        };

        let address = match &r.address {
            Some(a) => {
                let v = a.value.trim();
                let bad = if v.is_empty() {
                    Some("an empty address".to_string())
                } else if v.contains(char::is_whitespace) {
                    Some(format!("{v:?} contains spaces"))
                } else if let Some((u, _)) = v.split_once('@') {
                    Some(format!(
                        "{v:?} includes a user; put `{u}` in ssh.user and only the host in address"
                    ))
                } else if v.parse::<IpAddr>().is_err() && v.contains(':') {
                    Some(format!("{v:?} includes a port; put the port in ssh.port and only the host in address"))
                } else {
                    None
                };
                match bad {
                    Some(m) => {
                        ctx.err(at(a), format!("{base}.address"), m);
                        None
                    }
                    None => {
                        let key = (v.to_ascii_lowercase(), ssh.port);
                        if let Some(&j) = addresses.get(&key) {
                            ctx.err(
                                at(a),
                                format!("{base}.address"),
                                format!(
                                    "duplicate address {v}:{}: hosts[{j}] (line {}) already connects there; each host needs its own address or ssh port",
                                    ssh.port, host_lines[j]
                                ),
                            );
                        } else {
                            addresses.insert(key, i);
                        }
                        Some((v.to_string(), at(a)))
                    }
                }
            }
            None => {
                ctx.err(
                    here,
                    format!("{base}.address"),
                    "missing field `address` (where SSH connects: an IP or host name)",
                );
                None
            }
        };

        let ipath = format!("{base}.internalAddress");
        let internal: Option<(IpAddr, Pos, bool)> = match (&r.internal_address, &address) {
            (Some(ia), _) => match ia.value.trim().parse::<IpAddr>() {
                Ok(ip) => Some((ip, at(ia), true)),
                Err(_) => {
                    ctx.err(
                        at(ia),
                        &ipath,
                        format!("{:?} is not an IP address; internalAddress is the node IP (e.g. 192.168.56.11)", ia.value),
                    );
                    None
                }
            },
            (None, Some((a, p))) => match a.parse::<IpAddr>() {
                Ok(ip) if ip.is_loopback() => {
                    ctx.err(
                        *p,
                        &ipath,
                        format!(
                            "address {a} is a loopback address, and internalAddress defaults to it, but the node IP can't be loopback; set internalAddress to the address other nodes reach this host on"
                        ),
                    );
                    None
                }
                Ok(ip) => Some((ip, *p, false)),
                // An ~/.ssh/config alias whose HostName is an IP: that IP is the node's address.
                Err(_) => match alias_host_ip(a, home) {
                    Ok(Some(ip)) => Some((ip, *p, false)),
                    Err(e) => {
                        ctx.err(
                            *p,
                            &ipath,
                            format!("address {a:?} is looked up in ~/.ssh/config, which kubestrap cannot follow: {e}"),
                        );
                        None
                    }
                    Ok(None) => {
                        ctx.err(
                            *p,
                            &ipath,
                            format!("missing: address {a:?} is a name, not an IP (nor an ~/.ssh/config Host alias with an IP HostName), so internalAddress (the node IP) must be set"),
                        );
                        None
                    }
                },
            },
            (None, None) => None,
        };
        let internal = internal.and_then(|(ip, p, explicit)| {
            let from = if explicit { "" } else { " (internalAddress defaults to address)" };
            let problem = if ip == IpAddr::V4(VAGRANT_NAT_ADDRESS) {
                Some(format!(
                    "{ip} is the Vagrant NAT address{from}: every Vagrant VM has 10.0.2.15 on its NAT interface, so nodes would all share one IP; set internalAddress to the host-only address (e.g. 192.168.56.11)"
                ))
            } else if ip.is_ipv6() && !ip.is_loopback() {
                Some(format!("{ip}{from} is an IPv6 address; kubestrap builds IPv4 clusters only, so the node IP must be IPv4 (SSH itself may use IPv6 in address)"))
            } else if ip.is_loopback() {
                Some(format!("{ip} is a loopback address; the node IP can't be loopback: use the address other nodes reach this host on"))
            } else if ip.is_unspecified() || ip.is_multicast() {
                Some(format!("{ip} is not a unicast host address; give the node's own IP"))
            } else if matches!(ip, IpAddr::V4(v4) if v4.is_broadcast() || v4.is_link_local()) {
                Some(format!("{ip} is a broadcast or link-local address; give the node's own IP"))
            } else {
                None
            };
            if let Some(m) = problem {
                ctx.err(p, &ipath, m);
                return None;
            }
            if let Some(&j) = internals.get(&ip) {
                ctx.err(
                    p,
                    &ipath,
                    format!(
                        "duplicate node IP {ip}{from}: hosts[{j}] (line {}) already has it; every node needs its own internalAddress",
                        host_lines[j]
                    ),
                );
            } else {
                internals.insert(ip, i);
            }
            if let IpAddr::V4(v4) = ip {
                for (net, what) in [(c.pod, "podSubnet"), (c.service, "serviceSubnet")] {
                    if let Some(net) = net {
                        if net.contains(&v4) {
                            ctx.err(
                                p,
                                &ipath,
                                format!("{ip}{from} is inside {what} {net}; node IPs must be outside the pod and service subnets (change the subnet or the address)"),
                            );
                        }
                    }
                }
            }
            Some(ip)
        });

        let role = match &r.role {
            Some(s) => one_of(
                &mut ctx,
                s,
                &format!("{base}.role"),
                "a role",
                Role::ALLOWED,
                &[Role::ControlPlane, Role::Worker],
            ),
            None => {
                ctx.err(
                    here,
                    format!("{base}.role"),
                    "missing field `role`; allowed: control-plane, worker",
                );
                None
            }
        };
        if role.is_none() {
            bad_roles += 1;
        }
        if role == Some(Role::ControlPlane) {
            control_planes.push((i, r.role.as_ref().map(at).unwrap_or(here)));
        }

        if let (Some(name), Some((address, _)), Some(internal_address), Some(role)) =
            (name, address, internal, role)
        {
            hosts.push(Host {
                name,
                address,
                internal_address,
                role,
                ssh,
                line: here.0,
            });
        }
    }

    if !raw_hosts.is_empty() {
        // With an invalid role somewhere, "no control plane" would only repeat that error.
        if control_planes.is_empty() && bad_roles == 0 {
            ctx.err(
                hosts_pos,
                "hosts",
                "no host has `role: control-plane`; exactly one is required (several need cluster.controlPlaneEndpoint)",
            );
        } else if control_planes.len() > 1 && c.endpoint.is_none() {
            let (first, _) = control_planes[0];
            for &(i, p) in &control_planes[1..] {
                ctx.err(
                    p,
                    format!("hosts[{i}].role"),
                    format!(
                        "a second control-plane (hosts[{first}] is one too): several control planes need cluster.controlPlaneEndpoint (a load-balanced address for the API server); otherwise make this host a worker"
                    ),
                );
            }
        }
    }

    // Flannel hands each node a /24 out of podSubnet.
    if c.cni == Some(Cni::Flannel) {
        if let Some(p) = c.pod {
            let capacity: u64 = if p.prefix_len() <= 24 {
                1 << (24 - p.prefix_len())
            } else {
                0
            };
            if capacity < raw_hosts.len().max(1) as u64 {
                ctx.err(
                    c.pod_pos,
                    "cluster.podSubnet",
                    format!(
                        "{p} is too small for flannel, which gives every node a /24 from it: room for {capacity} node(s), the inventory has {}; use a /16 such as 10.244.0.0/16",
                        raw_hosts.len()
                    ),
                );
            }
        }
    }

    if !ctx.problems.is_empty() {
        let mut p = ctx.problems;
        p.sort_by_key(|p| (p.line, p.column));
        return Err(p);
    }

    let ssh = merge(&SshLayer::default(), &defaults, home);
    let cluster = Cluster {
        name: c.name.expect("validated"),
        kubernetes_version: c.version.expect("validated"),
        pod_subnet: c.pod.expect("validated"),
        service_subnet: c.service.expect("validated"),
        container_runtime: c.runtime.expect("validated"),
        cni: c.cni.expect("validated"),
        image_repository: c.image_repository.expect("validated"),
        package_repository: c.package_repository.expect("validated"),
        preload_images: c.preload_images,
        pki: c.pki.expect("validated"),
        control_plane_endpoint: c.endpoint,
    };
    Ok(Inventory {
        file: file.to_path_buf(),
        dir: dir.to_path_buf(),
        cluster,
        ssh,
        hosts,
        timeouts,
    })
}
