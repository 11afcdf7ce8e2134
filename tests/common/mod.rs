//! Helpers shared by the lab test binaries (e2e, faults). Each binary uses only some of them.
#![allow(dead_code)]

pub mod hosts;
pub mod kubectl;
pub mod lab;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Output;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The namespaced tier's script; KUBESTRAP_LAB_SCRIPT runs the tests against another lab's copy.
pub fn lab_script() -> PathBuf {
    std::env::var_os("KUBESTRAP_LAB_SCRIPT")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("scripts/lab"))
}

/// The lab subnet's first three octets: 10.(77+I).0 for KUBESTRAP_LAB_INSTANCE=I (scripts/lab's
/// rule), unless KUBESTRAP_LAB_NET says otherwise.
pub fn net() -> String {
    if let Ok(n) = std::env::var("KUBESTRAP_LAB_NET") {
        return n;
    }
    let inst: u32 = std::env::var("KUBESTRAP_LAB_INSTANCE")
        .ok()
        .and_then(|i| i.parse().ok())
        .unwrap_or(0);
    format!("10.{}.0", 77 + inst)
}

/// A finished command's exit code and both outputs, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Run the kubestrap binary under test; its output and wall time (logged to stderr).
pub fn kubestrap_timed(args: &[&str]) -> (Output, f64) {
    let t = std::time::Instant::now();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_kubestrap"))
        .args(args)
        .output()
        .expect("run kubestrap");
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "kubestrap {args:?}: exit {:?} in {secs:.1}s",
        o.status.code()
    );
    (o, secs)
}

/// The first JSON-lines event called NAME in kubestrap's `--output json` output.
pub fn event(o: &Output, name: &str) -> serde_json::Value {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == name)
        .unwrap_or_else(|| panic!("no {name} event:\n{}", text(o)))
}

/// host -> its change list, from a plan or summary event.
pub fn changes(ev: &serde_json::Value) -> Vec<(String, BTreeSet<String>)> {
    ev["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let c = h["changes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_string())
                .collect();
            (h["host"].as_str().unwrap().to_string(), c)
        })
        .collect()
}
