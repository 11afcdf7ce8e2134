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
