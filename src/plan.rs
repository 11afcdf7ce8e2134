//! The validated plan: everything a run needs, derived once from the inventory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::inventory::{self, Inventory};
use crate::ssh::Target;

/// The plan speaks the inventory's vocabulary: no second copy of these enums.
pub use crate::inventory::{Cni, Role, Runtime};

#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub address: String,
    pub internal_address: String,
    pub role: Role,
    pub target: Target,
}

#[derive(Debug, Clone)]
pub struct Preload {
    pub local: PathBuf,
    pub remote: String,
    pub sha256: String,
    pub size: u64,
}

#[derive(Debug, Clone)]
pub struct Timeouts {
    pub connect: Duration,
    pub command: Duration,
    pub packages: Duration,
    pub images: Duration,
    pub init: Duration,
    pub join: Duration,
    pub ready: Duration,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub inventory_file: PathBuf,
    pub cluster_name: String,
    /// "1.31.2"
    pub version: String,
    pub minor: u32,
    /// kubeadm config `apiVersion`: kubeadm.k8s.io/v1beta4 for 1.31+, else v1beta3.
    pub kubeadm_api: &'static str,
    pub runtime: Runtime,
    pub cri_socket: &'static str,
    pub image_repository: String,
    pub pause_image: String,
    pub package_repository: String,
    pub pod_subnet: String,
    pub service_subnet: String,
    pub cni: Cni,
    pub control_plane_endpoint: Option<String>,
    /// Who serves `control_plane_endpoint` (None without one).
    pub load_balancer: Option<inventory::LoadBalancer>,
    /// Pods may run on the control plane (no `node-role.kubernetes.io/control-plane:NoSchedule`
    /// taint): `cluster.controlPlaneSchedulable`, by default when the inventory has no workers.
    pub control_plane_schedulable: bool,
    /// Where workers reach the API server (`host:port`).
    pub api_endpoint: String,
    /// `cluster.pki: console`: the CA is made and kept on the console and uploaded before init.
    pub console_ca: bool,
    pub preload: Vec<Preload>,
    pub nodes: Vec<Node>,
    /// Environment variables secrets are read from (names only), for `kubestrap check`.
    pub secret_envs: Vec<inventory::SecretEnv>,
    /// `SUDO_PW (hosts w1, w2)`, or `none`.
    pub secrets_summary: String,
    pub state_dir: PathBuf,
    pub timeouts: Timeouts,
}

pub const FLANNEL_VERSION: &str = "v0.26.1";
pub const FLANNEL_IMAGE: &str = "ghcr.io/flannel-io/flannel:v0.26.1";
pub const FLANNEL_CNI_PLUGIN_IMAGE: &str = "ghcr.io/flannel-io/flannel-cni-plugin:v1.5.1-flannel2";

/// kubeadm's pause image tag per minor version (kubeadm's constants.PauseVersion).
pub fn pause_version(minor: u32) -> &'static str {
    match minor {
        0..=24 => "3.7",
        25 => "3.8",
        26..=30 => "3.9",
        31..=33 => "3.10",
        _ => "3.10.1",
    }
}

impl Plan {
    /// The endpoint a load balancer of the user's serves, as (host without brackets, port): the
    /// address the control plane probes before `kubeadm init`.
    pub fn external_endpoint(&self) -> Option<(String, u16)> {
        if self.load_balancer != Some(inventory::LoadBalancer::External) {
            return None;
        }
        let (h, port) = self.api_endpoint.rsplit_once(':')?;
        let h = h.trim_start_matches('[').trim_end_matches(']');
        Some((h.to_string(), port.parse().ok()?))
    }
    pub fn from_inventory(inv: &Inventory) -> anyhow::Result<Plan> {
        let c = &inv.cluster;
        let v = &c.kubernetes_version;
        let version = format!("{}.{}.{}", v.major, v.minor, v.patch);
        let state_dir = inv.state_dir();
        let t = &inv.timeouts;
        let timeouts = Timeouts {
            connect: t.connect,
            command: t.command,
            packages: t.package_install,
            images: t.image_pull,
            init: t.kubeadm_init,
            join: t.kubeadm_join,
            ready: t.node_ready,
        };
        let mut preload = Vec::new();
        for p in &c.preload_images {
            let (sha256, size) = sha256_file(p)?;
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "images.tar".into());
            preload.push(Preload {
                local: p.clone(),
                remote: format!("/var/cache/kubestrap/images/{name}"),
                sha256,
                size,
            });
        }
        let nodes = inv
            .hosts
            .iter()
            .map(|h| {
                Ok(Node {
                    name: h.name.clone(),
                    address: h.address.to_string(),
                    internal_address: h.internal_address.to_string(),
                    role: h.role,
                    target: Target::from_host(h, timeouts.connect).map_err(anyhow::Error::msg)?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Plan {
            inventory_file: inv.file.clone(),
            cluster_name: c.name.clone(),
            minor: v.minor,
            kubeadm_api: v.kubeadm_api_version(),
            cri_socket: c.container_runtime.cri_socket(),
            pause_image: format!("{}/pause:{}", c.image_repository, pause_version(v.minor)),
            image_repository: c.image_repository.clone(),
            package_repository: c.package_repository.clone(),
            pod_subnet: c.pod_subnet.to_string(),
            service_subnet: c.service_subnet.to_string(),
            control_plane_endpoint: c.control_plane_endpoint.clone(),
            load_balancer: c.load_balancer,
            control_plane_schedulable: c
                .control_plane_schedulable
                .unwrap_or(!inv.hosts.iter().any(|h| h.role == Role::Worker)),
            api_endpoint: inv.api_endpoint(),
            console_ca: c.pki == inventory::PkiMode::Console,
            version,
            runtime: c.container_runtime,
            cni: c.cni,
            preload,
            nodes,
            secret_envs: inv.secret_envs.clone(),
            secrets_summary: inv.secrets_summary(),
            state_dir,
            timeouts,
        })
    }

    /// The first control plane: the one `kubeadm init` runs on.
    pub fn control_plane(&self) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.role == Role::ControlPlane)
            .expect("validated inventory has a control plane")
    }
    /// Whether `node` is the first control plane: the one that runs `kubeadm init`, holds the
    /// CNI manifest and the admin.conf the console's kubeconfig comes from, and whose view of the
    /// cluster (nodes, CA, admin.conf) up and plan read. Other control planes have their own
    /// admin.conf, so reading theirs would look like a stale kubeconfig.
    pub fn is_first_control_plane(&self, node: &Node) -> bool {
        node.name == self.control_plane().name
    }
    /// More than one control plane: `kubeadm init --upload-certs`, and the others join with
    /// `controlPlane` in their JoinConfiguration, one at a time.
    pub fn several_control_planes(&self) -> bool {
        self.nodes
            .iter()
            .filter(|n| n.role == Role::ControlPlane)
            .count()
            > 1
    }
}

/// `host:port` with an IPv6 address bracketed (`[fd00::1]:6443`), for URLs and dial strings.
pub fn host_port(host: &str, port: u16) -> String {
    match host.parse::<std::net::Ipv6Addr>() {
        Ok(a) => format!("[{a}]:{port}"),
        Err(_) => format!("{host}:{port}"),
    }
}

pub fn sha256_file(path: &Path) -> anyhow::Result<(String, u64)> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((hex::encode(h.finalize()), size))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// cp1 at `cp_address` and a worker.
    fn plan(cluster_extra: &str, cp_address: &str) -> Plan {
        let role2 = "worker";
        let src = format!(
            "cluster:\n  name: lab\n  kubernetesVersion: \"1.31.2\"\n{cluster_extra}hosts:\n  - {{name: cp1, address: '{cp_address}', internalAddress: 10.1.0.1, role: control-plane}}\n  - {{name: n2, address: 10.1.0.2, role: {role2}}}\n"
        );
        let inv = inventory::parse(&src, Path::new("/tmp/inventory.yaml"))
            .unwrap_or_else(|e| panic!("{e}\n{src}"));
        Plan::from_inventory(&inv).unwrap()
    }

    /// Only the first control plane (init's) counts as the cluster's view; a second one does not.
    #[test]
    fn the_first_control_plane_is_inits() {
        let mut p = plan("", "10.1.0.1");
        p.nodes[1].role = Role::ControlPlane;
        assert!(p.several_control_planes());
        assert!(p.is_first_control_plane(&p.nodes[0].clone()));
        assert!(!p.is_first_control_plane(&p.nodes[1].clone()));
    }

    /// `controlPlaneSchedulable`: as written, else true exactly when no host is a worker.
    #[test]
    fn control_plane_schedulable_defaults_to_no_workers() {
        let src = |extra: &str, workers: bool| {
            let w = if workers {
                "  - {name: n2, address: 10.1.0.2, role: worker}\n"
            } else {
                ""
            };
            format!("cluster:\n  name: lab\n  kubernetesVersion: \"1.31.2\"\n{extra}hosts:\n  - {{name: cp1, address: 10.1.0.1, role: control-plane}}\n{w}")
        };
        for (extra, workers, want) in [
            ("", true, false),
            ("", false, true),
            ("  controlPlaneSchedulable: true\n", true, true),
            ("  controlPlaneSchedulable: false\n", false, false),
        ] {
            let s = src(extra, workers);
            let inv = inventory::parse(&s, Path::new("/tmp/inventory.yaml"))
                .unwrap_or_else(|e| panic!("{e}\n{s}"));
            let p = Plan::from_inventory(&inv).unwrap();
            assert_eq!(p.control_plane_schedulable, want, "{s}");
        }
        let s = src("  controlPlaneSchedulable: maybe\n", true);
        let e = inventory::parse(&s, Path::new("/tmp/inventory.yaml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/tmp/inventory.yaml:4"), "{e}");
    }

    /// An IPv6 API endpoint is written `[addr]:port` in every host:port and URL.
    #[test]
    fn ipv6_api_endpoints_are_bracketed() {
        for e in ["fd00::10", "[fd00::10]", "[fd00::10]:6443"] {
            let p = plan(
                &format!("  controlPlaneEndpoint: \"{e}\"\n  loadBalancer: external\n"),
                "10.1.0.1",
            );
            assert_eq!(p.api_endpoint, "[fd00::10]:6443", "{e}");
            assert_eq!(
                p.control_plane_endpoint.as_deref(),
                Some("[fd00::10]:6443"),
                "{e}"
            );
            assert_eq!(
                crate::cluster::kubeconfig::console_server(&p),
                "https://[fd00::10]:6443",
                "{e}"
            );
        }
        // SSH over IPv6, no endpoint: the console reaches the API where it reaches SSH.
        let p = plan("", "fd00::1");
        assert_eq!(
            crate::cluster::kubeconfig::console_server(&p),
            "https://[fd00::1]:6443"
        );
        assert_eq!(host_port("10.1.0.1", 6443), "10.1.0.1:6443");
        assert_eq!(host_port("fd00::1", 6443), "[fd00::1]:6443");
        assert_eq!(host_port("lb.lan", 6443), "lb.lan:6443");
    }
}
