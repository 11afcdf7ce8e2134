//! The inventory file: parse, validate and resolve it into a typed model.
//!
//! Parsing happens in two passes. serde (via serde-saphyr) reads the YAML into "raw" structs where
//! every field is optional and carries its source location; unknown fields, wrong YAML types and
//! syntax errors stop there with one located error. Then a validation pass checks every value and
//! the relations between them (unique names, subnets, control planes...) and collects *all*
//! problems, each rendered as `file:line:column: field.path: what is wrong; what is allowed`.

mod locate;
mod raw;
#[cfg(test)]
mod tests;
mod validate;
pub(crate) use validate::parse_duration;

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use ipnet::Ipv4Net;

/// Lowest and highest Kubernetes minor version kubestrap can install (1.MIN..=1.MAX).
pub const MIN_MINOR: u32 = 22;
pub const MAX_MINOR: u32 = 36;

/// The address every Vagrant VM has on its NAT interface; never a usable node IP.
pub const VAGRANT_NAT_ADDRESS: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 0, 2, 15);

#[derive(Debug, Clone, PartialEq)]
pub struct Inventory {
    /// The inventory file as given.
    pub file: PathBuf,
    /// The directory holding it (made absolute); relative paths in the inventory are resolved
    /// against it.
    pub dir: PathBuf,
    pub cluster: Cluster,
    /// The top-level `ssh:` defaults, resolved (before any host override).
    pub ssh: SshSettings,
    pub hosts: Vec<Host>,
    pub timeouts: Timeouts,
    /// Every environment variable a secret is read from, where it is named and by which hosts,
    /// in the order they are written.
    pub secret_envs: Vec<SecretEnv>,
}

/// One `*Env` field that some host uses: `ssh.sudoPasswordEnv: SUDO_PW` names `$SUDO_PW`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SecretEnv {
    /// The variable's name (`^[A-Z_][A-Z0-9_]*$`).
    pub var: String,
    /// The field naming it, e.g. `ssh.sudoPasswordEnv` or `hosts[2].ssh.passphraseEnv`.
    pub field: String,
    pub line: usize,
    pub column: usize,
    /// Hosts that read the secret from it, in inventory order.
    pub hosts: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    pub name: String,
    pub kubernetes_version: Version,
    pub pod_subnet: Ipv4Net,
    pub service_subnet: Ipv4Net,
    pub container_runtime: Runtime,
    pub cni: Cni,
    pub image_repository: String,
    /// Always ends in `/`. Default `https://pkgs.k8s.io/core:/stable:/v1.MINOR/deb/`.
    pub package_repository: String,
    /// Absolute (resolved against the inventory's directory), existing files.
    pub preload_images: Vec<PathBuf>,
    pub pki: PkiMode,
    pub control_plane_endpoint: Option<String>,
    /// Who serves `controlPlaneEndpoint`: None exactly when there is no endpoint.
    pub load_balancer: Option<LoadBalancer>,
    /// `controlPlaneSchedulable` as written: None means "when there are no workers".
    pub control_plane_schedulable: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    /// `v1.31.2`, the form kubeadm's `kubernetesVersion` uses.
    pub fn with_v(&self) -> String {
        format!("v{self}")
    }
    /// `1.31`, e.g. for the package repository path `v1.31`.
    pub fn minor_line(&self) -> String {
        format!("{}.{}", self.major, self.minor)
    }
    /// kubeadm config API version to render: v1beta4 for 1.31+, v1beta3 below.
    pub fn kubeadm_api_version(&self) -> &'static str {
        if self.major > 1 || self.minor >= 31 {
            "kubeadm.k8s.io/v1beta4"
        } else {
            "kubeadm.k8s.io/v1beta3"
        }
    }
    /// Parse `1.31.2` or `v1.31.2` (no range check).
    pub fn parse(s: &str) -> Option<Version> {
        let t = s.strip_prefix('v').unwrap_or(s);
        let mut it = t.split('.');
        let mut num = || -> Option<u32> {
            let p = it.next()?;
            if p.is_empty() || p.len() > 4 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            if p.len() > 1 && p.starts_with('0') {
                return None;
            }
            p.parse().ok()
        };
        let v = Version {
            major: num()?,
            minor: num()?,
            patch: num()?,
        };
        if it.next().is_some() {
            return None;
        }
        Some(v)
    }
}

impl fmt::Display for Version {
    /// `1.31.2` (no `v`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Runtime {
    Containerd,
    Docker,
}

impl Runtime {
    pub const ALLOWED: &'static [&'static str] = &["containerd", "docker"];
    pub fn as_str(&self) -> &'static str {
        match self {
            Runtime::Containerd => "containerd",
            Runtime::Docker => "docker",
        }
    }
    /// The CRI socket kubeadm and the kubelet talk to (Docker goes through cri-dockerd).
    pub fn cri_socket(&self) -> &'static str {
        match self {
            Runtime::Containerd => "unix:///var/run/containerd/containerd.sock",
            Runtime::Docker => "unix:///var/run/cri-dockerd.sock",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cni {
    Flannel,
    /// No pod network: the user installs one (nodes stay NotReady until then).
    None,
}

impl Cni {
    pub const ALLOWED: &'static [&'static str] = &["flannel", "none"];
    pub fn as_str(&self) -> &'static str {
        match self {
            Cni::Flannel => "flannel",
            Cni::None => "none",
        }
    }
}

/// Who serves `controlPlaneEndpoint` (`cluster.loadBalancer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoadBalancer {
    /// kube-vip on the control planes holds the endpoint's address (a virtual IP).
    KubeVip,
    /// The user's load balancer (or a DNS name, or a host's own address) serves it.
    External,
}

impl LoadBalancer {
    pub const ALLOWED: &'static [&'static str] = &["kube-vip", "external"];
    pub fn as_str(&self) -> &'static str {
        match self {
            LoadBalancer::KubeVip => "kube-vip",
            LoadBalancer::External => "external",
        }
    }
}

/// Who makes the cluster CA: kubeadm on the control plane (default), or kubestrap on the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PkiMode {
    Kubeadm,
    Console,
}

impl PkiMode {
    pub const ALLOWED: &'static [&'static str] = &["kubeadm", "console"];
    pub fn as_str(&self) -> &'static str {
        match self {
            PkiMode::Kubeadm => "kubeadm",
            PkiMode::Console => "console",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    ControlPlane,
    Worker,
}

impl Role {
    pub const ALLOWED: &'static [&'static str] = &["control-plane", "worker"];
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::ControlPlane => "control-plane",
            Role::Worker => "worker",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HostKeyPolicy {
    /// Refuse unknown keys (default).
    Strict,
    /// Record unknown keys in known_hosts (trust on first use).
    AcceptNew,
    /// No checking at all (warns on every run).
    Off,
}

impl HostKeyPolicy {
    pub const ALLOWED: &'static [&'static str] = &["strict", "accept-new", "off"];
    pub fn as_str(&self) -> &'static str {
        match self {
            HostKeyPolicy::Strict => "strict",
            HostKeyPolicy::AcceptNew => "accept-new",
            HostKeyPolicy::Off => "off",
        }
    }
}

/// `FromStr` (the inventory spelling, e.g. for `--role worker`) and `Display` for the value enums.
macro_rules! spelled {
    ($($t:ident: $($v:ident),+;)+) => {$(
        impl std::str::FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                [$($t::$v),+]
                    .into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| format!("{s:?} is not one of: {}", $t::ALLOWED.join(", ")))
            }
        }
    )+};
}

spelled! {
    Runtime: Containerd, Docker;
    Cni: Flannel, None;
    PkiMode: Kubeadm, Console;
    Role: ControlPlane, Worker;
    HostKeyPolicy: Strict, AcceptNew, Off;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Node name and hostname (RFC 1123 label, unique).
    pub name: String,
    /// Where SSH connects: an IP, a DNS name or an alias from ~/.ssh/config.
    pub address: String,
    /// Node IP and API advertise address. Defaults to `address` when that is an IP.
    pub internal_address: IpAddr,
    pub role: Role,
    /// Top-level `ssh:` defaults merged with this host's own `ssh:`.
    pub ssh: SshSettings,
    /// 1-based line where this host's entry starts in the inventory.
    pub line: usize,
}

impl Host {
    pub fn is_control_plane(&self) -> bool {
        self.role == Role::ControlPlane
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshSettings {
    /// Default `root`.
    pub user: String,
    /// Default 22.
    pub port: u16,
    /// `user`/`port` were written in the inventory (they then win over ~/.ssh/config).
    pub user_explicit: bool,
    pub port_explicit: bool,
    /// `~` expanded, relative paths resolved against the inventory's directory; the file exists.
    pub identity_file: Option<PathBuf>,
    /// Default `~/.ssh/known_hosts`, `~` expanded. Need not exist yet.
    pub known_hosts_file: PathBuf,
    pub host_key_policy: HostKeyPolicy,
    /// Names of environment variables holding secrets (never the secrets themselves).
    pub password_env: Option<String>,
    pub passphrase_env: Option<String>,
    pub sudo_password_env: Option<String>,
    /// `[user@]host[:port]` of a jump host.
    pub bastion: Option<String>,
}

/// Time limits for remote steps; `timeouts:` in the inventory overrides each (`30s`, `5m`, `1h30m`,
/// or a bare number of seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect + SSH handshake + authentication. Default 30s.
    pub connect: Duration,
    /// Any remote command without a more specific limit. Default 5m.
    pub command: Duration,
    /// apt update/install of the runtime and kube packages. Default 15m.
    pub package_install: Duration,
    /// Pulling or importing the control-plane images. Default 15m.
    pub image_pull: Duration,
    /// `kubeadm init` (kubeadm's own health checks take up to 4m each). Default 10m.
    pub kubeadm_init: Duration,
    /// `kubeadm join` (discovery 5m + TLS bootstrap 5m). Default 10m.
    pub kubeadm_join: Duration,
    /// Waiting for every node to be Ready after the pod network is applied. Default 10m.
    pub node_ready: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        let m = |n: u64| Duration::from_secs(n * 60);
        Timeouts {
            connect: Duration::from_secs(30),
            command: m(5),
            package_install: m(15),
            image_pull: m(15),
            kubeadm_init: m(10),
            kubeadm_join: m(10),
            node_ready: m(10),
        }
    }
}

impl Inventory {
    pub fn control_planes(&self) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(|h| h.role == Role::ControlPlane)
    }
    pub fn workers(&self) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(|h| h.role == Role::Worker)
    }
    /// The control plane that runs `kubeadm init` (the first one listed).
    pub fn first_control_plane(&self) -> &Host {
        self.control_planes()
            .next()
            .expect("validated: at least one control plane")
    }
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }
    /// `SUDO_PW (hosts w1, w2), KEY_PW (hosts cp1)`: each variable once, with every host reading
    /// a secret from it; `none` when the inventory reads no secret from the environment.
    pub fn secrets_summary(&self) -> String {
        let mut vars: Vec<(&str, Vec<&str>)> = Vec::new();
        for s in &self.secret_envs {
            let i = match vars.iter().position(|(v, _)| *v == s.var) {
                Some(i) => i,
                None => {
                    vars.push((&s.var, Vec::new()));
                    vars.len() - 1
                }
            };
            vars[i].1.extend(s.hosts.iter().map(String::as_str));
        }
        if vars.is_empty() {
            return "none".into();
        }
        let order: Vec<&str> = self.hosts.iter().map(|h| h.name.as_str()).collect();
        vars.into_iter()
            .map(|(v, mut hosts)| {
                hosts.sort_by_key(|h| order.iter().position(|o| o == h));
                hosts.dedup();
                format!("{v} (hosts {})", hosts.join(", "))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Every secret variable is set (and valid UTF-8): otherwise one located problem per field
    /// naming an unset one.
    pub fn check_secret_env(&self) -> Result<(), InventoryError> {
        let problems: Vec<Problem> = self
            .secret_envs
            .iter()
            .filter(|s| std::env::var(&s.var).is_err())
            .map(|s| Problem {
                line: s.line,
                column: s.column,
                path: s.field.clone(),
                message: format!(
                    "${} is not set (hosts {} read a secret from it); export it first, e.g. `read -rs {}; export {}`",
                    s.var,
                    s.hosts.join(", "),
                    s.var,
                    s.var
                ),
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(InventoryError::Invalid {
                file: self.file.clone(),
                problems,
            })
        }
    }

    /// `<inventory dir>/.kubestrap/<cluster name>`.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join(".kubestrap").join(&self.cluster.name)
    }
    /// The API server endpoint `host:port`: `controlPlaneEndpoint` (port 6443 added when missing)
    /// or the first control plane's internal address on 6443.
    pub fn api_endpoint(&self) -> String {
        match &self.cluster.control_plane_endpoint {
            Some(e) => validate::endpoint_with_port(e),
            None => match self.first_control_plane().internal_address {
                IpAddr::V4(a) => format!("{a}:6443"),
                IpAddr::V6(a) => format!("[{a}]:6443"),
            },
        }
    }
}

/// One thing wrong with the inventory, at a 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub column: usize,
    /// Field path such as `hosts[1].role`; empty for YAML syntax errors.
    pub path: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("{}: cannot read the inventory: {source}", file.display())]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    /// A FIFO, a device, a directory...: never opened for reading (a FIFO would block).
    #[error("{}: is {kind}, not an inventory file; give the path of a regular YAML file", file.display())]
    NotAFile { file: PathBuf, kind: &'static str },
    #[error("{}: is {size} bytes, larger than the 4 MiB limit for an inventory; is this the right file?", file.display())]
    TooLarge { file: PathBuf, size: u64 },
    #[error("{}", render(file, problems))]
    Invalid {
        file: PathBuf,
        problems: Vec<Problem>,
    },
}

impl InventoryError {
    /// The individual problems (empty for a read error).
    pub fn problems(&self) -> &[Problem] {
        match self {
            InventoryError::Read { .. }
            | InventoryError::NotAFile { .. }
            | InventoryError::TooLarge { .. } => &[],
            InventoryError::Invalid { problems, .. } => problems,
        }
    }
}

fn render(file: &Path, problems: &[Problem]) -> String {
    let f = file.display();
    problems
        .iter()
        .map(|p| {
            // One line per problem, whatever a key or value held.
            let message = validate::text::escape_controls(&p.message);
            if p.path.is_empty() {
                format!("{f}:{}:{}: {message}", p.line, p.column)
            } else {
                let path = validate::text::escape_controls(&p.path);
                format!("{f}:{}:{}: {path}: {message}", p.line, p.column)
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Largest inventory file accepted (a thousand hosts take about 100 KiB).
pub const MAX_INVENTORY_BYTES: u64 = 4 * 1024 * 1024;

/// Read and validate the inventory at `path`: a regular file of at most 4 MiB of UTF-8.
pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
    parse_bytes(&read_inventory(path)?, path)
}

fn read_inventory(path: &Path) -> Result<Vec<u8>, InventoryError> {
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let read_err = |source| InventoryError::Read {
        file: path.to_path_buf(),
        source,
    };
    // O_NONBLOCK: opening a FIFO must not wait for a writer; the type is checked right after.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(read_err)?;
    let meta = f.metadata().map_err(read_err)?;
    let t = meta.file_type();
    let kind = if t.is_dir() {
        Some("a directory")
    } else if t.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else if t.is_socket() {
        Some("a socket")
    } else if !t.is_file() {
        Some("not a regular file")
    } else {
        None
    };
    if let Some(kind) = kind {
        return Err(InventoryError::NotAFile {
            file: path.to_path_buf(),
            kind,
        });
    }
    if meta.len() > MAX_INVENTORY_BYTES {
        return Err(InventoryError::TooLarge {
            file: path.to_path_buf(),
            size: meta.len(),
        });
    }
    let mut bytes = Vec::new();
    // The file may grow after the check: never read more than the limit.
    f.take(MAX_INVENTORY_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_INVENTORY_BYTES {
        return Err(InventoryError::TooLarge {
            file: path.to_path_buf(),
            size: bytes.len() as u64,
        });
    }
    Ok(bytes)
}

/// Validate inventory bytes: invalid UTF-8 is a problem at its line and column.
pub fn parse_bytes(bytes: &[u8], file: &Path) -> Result<Inventory, InventoryError> {
    match std::str::from_utf8(bytes) {
        Ok(src) => parse(src, file),
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
            let line_start = good.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            let column = String::from_utf8_lossy(&good[line_start..]).chars().count() + 1;
            let bad = bytes[e.valid_up_to()];
            Err(InventoryError::Invalid {
                file: file.to_path_buf(),
                problems: vec![Problem {
                    line,
                    column,
                    path: String::new(),
                    message: format!(
                        "the file is not valid UTF-8 (byte 0x{bad:02x} at offset {}); save it as UTF-8",
                        e.valid_up_to()
                    ),
                }],
            })
        }
    }
}

/// Validate inventory text; `file` names it in errors and anchors relative paths (its directory).
pub fn parse(src: &str, file: &Path) -> Result<Inventory, InventoryError> {
    let invalid = |problems| InventoryError::Invalid {
        file: file.to_path_buf(),
        problems,
    };
    let raw: raw::RawInventory = match serde_saphyr::from_str(src) {
        Ok(r) => r,
        Err(e) => return Err(invalid(vec![locate::problem_from_yaml(&e, src)])),
    };
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // Absolute, so resolved paths survive a change of working directory.
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    let home = std::env::var_os("HOME").map(PathBuf::from);
    validate::validate(raw, file, &dir, home.as_deref()).map_err(invalid)
}
