//! The validation pass: raw (located) values -> typed model, collecting every problem.
//!
//! Submodules hold the grammars: [`text`] (control characters, shell characters, login and
//! variable names), [`address`] (host names, IPs, endpoints), [`image`] (image and package
//! repositories), [`bundle`] (preloadImages by content), [`ssh`], [`cluster`] and [`timeouts`].

mod address;
mod bundle;
mod cluster;
mod endpoint;
mod image;
mod ssh;
pub(crate) mod text;
mod timeouts;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde_saphyr::{Location, Spanned};

use super::locate::closest;
use super::raw::{RawHost, RawInventory};
use super::*;
use address::{address_problem, canonical_ip};
pub(crate) use address::{endpoint_with_port, is_rfc1123_label};
use cluster::cluster;
use ssh::{merge, ssh_layer, SshLayer, SECRET_FIELDS};
use text::{scan_controls, shell_char, SHELL_CHARS};
pub(crate) use timeouts::parse_duration;
use timeouts::timeouts;

pub(crate) type Pos = (usize, usize);

fn pos(l: &Location) -> Pos {
    (l.line().max(1) as usize, l.column().max(1) as usize)
}

pub(crate) fn at<T>(s: &Spanned<T>) -> Pos {
    pos(&s.referenced)
}

pub(crate) struct Ctx<'a> {
    problems: Vec<Problem>,
    /// Positions of values already reported as unusable (a control character): further problems
    /// there would only repeat it.
    silenced: HashSet<Pos>,
    dir: &'a Path,
    home: Option<&'a Path>,
}

impl Ctx<'_> {
    pub(crate) fn err(&mut self, p: Pos, path: impl Into<String>, message: impl Into<String>) {
        if self.silenced.contains(&p) {
            return;
        }
        self.problems.push(Problem {
            line: p.0,
            column: p.1,
            path: path.into(),
            message: message.into(),
        });
    }

    pub(crate) fn silence(&mut self, p: Pos) {
        self.silenced.insert(p);
    }

    /// `~` expansion, then relative paths against the inventory's directory.
    pub(crate) fn resolve_path(&mut self, s: &Spanned<String>, path: &str) -> Option<PathBuf> {
        let v = s.value.trim();
        if v.is_empty() {
            self.err(
                at(s),
                path,
                "an empty path; give a file path or remove the field",
            );
            return None;
        }
        if let Some(c) = shell_char(v) {
            self.err(
                at(s),
                path,
                format!("{v:?} has the shell character {c:?}: kubestrap refuses paths with any of {} (a path that needs them is more likely an attack than a file); rename the file or directory", SHELL_CHARS.iter().collect::<String>()),
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

pub(crate) fn check_label(ctx: &mut Ctx, s: &Spanned<String>, path: &str, what: &str) -> bool {
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

pub(crate) fn one_of<T: Copy>(
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

pub(crate) fn parse_ipv4_net(ctx: &mut Ctx, s: &Spanned<String>, path: &str) -> Option<Ipv4Net> {
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

pub(crate) fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
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

pub(crate) fn validate(
    raw: RawInventory,
    file: &Path,
    dir: &Path,
    home: Option<&Path>,
) -> Result<Inventory, Vec<Problem>> {
    let mut ctx = Ctx {
        problems: Vec::new(),
        silenced: HashSet::new(),
        dir,
        home,
    };
    scan_controls(&mut ctx, &raw);
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
    let mut secret_envs: Vec<SecretEnv> = Vec::new();

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
        let host_name = r.name.as_ref().map(|n| n.value.clone()).unwrap_or_default();
        for i in 0..SECRET_FIELDS.len() {
            let Some((var, field, at)) = layer.secrets[i].as_ref().or(defaults.secrets[i].as_ref())
            else {
                continue;
            };
            match secret_envs.iter_mut().find(|s| &s.field == field) {
                Some(s) => s.hosts.push(host_name.clone()),
                None => secret_envs.push(SecretEnv {
                    var: var.clone(),
                    field: field.clone(),
                    line: at.0,
                    column: at.1,
                    hosts: vec![host_name.clone()],
                }),
            }
        }

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
                let bad = address_problem(v);
                match bad {
                    Some(m) => {
                        ctx.err(at(a), format!("{base}.address"), m);
                        None
                    }
                    None => {
                        // One key per address however it is spelled (fd00::1 = fd00:0::1,
                        // ::ffff:10.0.0.1 = 10.0.0.1).
                        let canon = canonical_ip(v).map(|ip| ip.to_string());
                        let key = (canon.unwrap_or_else(|| v.to_ascii_lowercase()), ssh.port);
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
            (Some(ia), _) => match ia
                .value
                .trim()
                .parse::<IpAddr>()
                .map(|ip| ip.to_canonical())
            {
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
            (None, Some((a, p))) => match canonical_ip(a).ok_or(()) {
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
                "no host has `role: control-plane`; exactly one is required",
            );
        } else if control_planes.len() > 1 {
            // Refused where it is written, until HA control planes are built: `up` would prepare the
            // second one and fail it at "wait Ready".
            let (first, _) = control_planes[0];
            for &(i, p) in &control_planes[1..] {
                ctx.err(
                    p,
                    format!("hosts[{i}].role"),
                    format!(
                        "a second control-plane (hosts[{first}] is one too): kubestrap builds one control plane for now (highly available control planes are not supported yet); make this host a worker"
                    ),
                );
            }
        }
    }

    let load_balancer = endpoint::load_balancer(&mut ctx, &c, &hosts);

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
    secret_envs.sort_by_key(|s| (s.line, s.column));
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
        load_balancer,
        control_plane_schedulable: c.control_plane_schedulable,
    };
    Ok(Inventory {
        file: file.to_path_buf(),
        dir: dir.to_path_buf(),
        cluster,
        ssh,
        hosts,
        timeouts,
        secret_envs,
    })
}
