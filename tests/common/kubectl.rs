//! The real kubectl on the console, as a user runs it against the cluster kubestrap built.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The real kubectl for a cluster at `version` ("1.31.2"): this machine's
/// /usr/lib/google-cloud-sdk/bin/kubectl.1.<minor> when present (KUBESTRAP_TEST_KUBECTL overrides),
/// else `kubectl` from PATH.
pub fn real_kubectl(version: &str) -> PathBuf {
    if let Some(p) = std::env::var_os("KUBESTRAP_TEST_KUBECTL") {
        return PathBuf::from(p);
    }
    let minor = version.split('.').take(2).collect::<Vec<_>>().join(".");
    let p = PathBuf::from(format!("/usr/lib/google-cloud-sdk/bin/kubectl.{minor}"));
    if p.exists() {
        p
    } else {
        PathBuf::from("kubectl")
    }
}

/// `kubectl get nodes -o json` on the console through `kubeconfig` (no other kubeconfig in play).
pub fn nodes_json(kubeconfig: &Path, version: &str) -> serde_json::Value {
    let bin = real_kubectl(version);
    let out = Command::new(&bin)
        .args(["get", "nodes", "-o", "json", "--request-timeout=30s"])
        .env("KUBECONFIG", kubeconfig)
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()));
    assert!(
        out.status.success(),
        "{} get nodes -o json (KUBECONFIG={}) failed:\n{}",
        bin.display(),
        kubeconfig.display(),
        super::text(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{} get nodes -o json: {e}\n{}",
            bin.display(),
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// One node of a `kubectl get nodes -o json` list, as the tests look at it.
#[derive(Debug, Clone)]
#[allow(dead_code)] // each test binary reads the fields it needs
pub struct Node {
    pub name: String,
    pub ready: bool,
    pub internal_ip: String,
    pub kubelet_version: String,
    /// `spec.unschedulable`: cordoned.
    pub cordoned: bool,
    /// kubeadm's `node-role.kubernetes.io/control-plane:NoSchedule` taint.
    pub control_plane_taint: bool,
    /// The node object itself.
    pub json: serde_json::Value,
}

/// The nodes of a `get nodes -o json` list.
#[allow(dead_code)]
pub fn nodes(list: &serde_json::Value) -> Vec<Node> {
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a node list: {list}"))
        .iter()
        .map(|n| Node {
            name: s(&n["metadata"]["name"]),
            ready: n["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            }),
            internal_ip: n["status"]["addresses"]
                .as_array()
                .and_then(|a| a.iter().find(|a| a["type"] == "InternalIP"))
                .map(|a| s(&a["address"]))
                .unwrap_or_default(),
            kubelet_version: s(&n["status"]["nodeInfo"]["kubeletVersion"]),
            cordoned: n["spec"]["unschedulable"].as_bool().unwrap_or(false),
            control_plane_taint: n["spec"]["taints"].as_array().is_some_and(|ts| {
                ts.iter().any(|t| {
                    t["key"] == "node-role.kubernetes.io/control-plane"
                        && t["effect"] == "NoSchedule"
                })
            }),
            json: n.clone(),
        })
        .collect()
}

/// Node NAME of the list (panics naming the list when it is not there).
#[allow(dead_code)]
pub fn node(list: &serde_json::Value, name: &str) -> Node {
    nodes(list)
        .into_iter()
        .find(|n| n.name == name)
        .unwrap_or_else(|| panic!("node {name} not registered: {list}"))
}
