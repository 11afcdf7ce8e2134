//! `cluster.controlPlaneSchedulable` on the namespaced lab (issue 15 item 6): a cluster with no
//! workers registers its control plane without kubeadm's control-plane taint, so it can run pods;
//! flipping the setting on a running cluster is one cluster step `plan` announces (exit 3) and
//! `up` makes through the API (`kubectl taint`, no kubeadm), after which `plan` says no changes.
//! The taint is read with the real kubectl on the console through kubestrap's kubeconfig. The
//! cluster's controlPlaneEndpoint is cp1's own address (`loadBalancer: external` by default; the
//! preflight probe finds it refused before init, which is fine); one with nothing behind it is a
//! preflight error.
//! Needs root (`sudo cargo test --test schedulable -- --ignored`); scripts/test runs it.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::hosts::calls;
use common::kubestrap_timed as kubestrap;
use common::lab::Lab;
use common::{changes, event, text};

/// Whether node NAME carries the control-plane NoSchedule taint, as the console's real kubectl sees it.
fn tainted(kubeconfig: &Path, name: &str) -> bool {
    let v = common::kubectl::nodes_json(kubeconfig, "1.31.2");
    common::kubectl::node(&v, name).control_plane_taint
}

/// The inventory text with `lines` added at the top of its `cluster:` section.
fn with_cluster_lines(inventory: &str, lines: &str) -> String {
    inventory.replacen("cluster:\n", &format!("cluster:\n{lines}"), 1)
}

/// The inventory with `controlPlaneSchedulable` set (Some) or left out (None).
fn set(inv: &Path, base: &str, v: Option<bool>) {
    let text = match v {
        Some(b) => with_cluster_lines(base, &format!("  controlPlaneSchedulable: {b}\n")),
        None => base.to_string(),
    };
    std::fs::write(inv, text).unwrap();
}

/// `plan --output json` announces exactly `step` on cp1 and no host change; `up --output json`
/// then reports exactly `done` on cp1 and runs no kubeadm; `plan` after it exits 0.
fn flip(lab: &Lab, inv: &str, step: &str, done: &str) {
    let (plan, _) = kubestrap(&["plan", "-i", inv, "--output", "json"]);
    assert_eq!(plan.status.code(), Some(3), "{}", text(&plan));
    let ev = event(&plan, "plan");
    let steps: Vec<(String, String)> = ev["cluster_steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["host"].as_str().unwrap().to_string(),
                s["step"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(steps, [("cp1".to_string(), step.to_string())], "{ev}");
    assert!(changes(&ev).iter().all(|(_, c)| c.is_empty()), "{ev}");

    let kubeadm_before = kubeadm_calls(lab);
    let (up, _) = kubestrap(&["up", "-i", inv, "--output", "json"]);
    assert_eq!(up.status.code(), Some(0), "{}", text(&up));
    let done_by_up = changes(&event(&up, "summary"));
    assert_eq!(
        done_by_up,
        [("cp1".to_string(), BTreeSet::from([done.to_string()]))],
        "{}",
        text(&up)
    );
    assert_eq!(kubeadm_calls(lab), kubeadm_before, "up ran kubeadm");
    let (again, _) = kubestrap(&["plan", "-i", inv]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
}

fn kubeadm_calls(lab: &Lab) -> usize {
    calls(lab, 1)
        .iter()
        .filter(|c| {
            c.starts_with("kubeadm ") && !c.contains(" version") && !c.starts_with("kubeadm config")
        })
        .count()
}

#[test]
#[ignore = "needs root and the namespaced lab (scripts/lab)"]
fn a_cluster_without_workers_runs_pods_on_its_control_plane_and_the_setting_flips_the_taint() {
    let lab = Lab::up(1);
    let inv = lab.inventory(&["--version", "1.31.2", "--preload"]);
    let inv_s = inv.to_str().unwrap();
    let base = with_cluster_lines(
        &std::fs::read_to_string(&inv).unwrap(),
        &format!("  controlPlaneEndpoint: {}.11:6443\n", common::net()),
    );
    std::fs::write(&inv, &base).unwrap();
    assert!(!base.contains("role: worker"), "{base}");
    let kc = inv.parent().unwrap().join(".kubestrap/lab/kubeconfig");

    // No workers: schedulable by default; kubeadm init registers cp1 without the taint.
    let (up, _) = kubestrap(&["up", "-i", inv_s]);
    assert_eq!(up.status.code(), Some(0), "{}", text(&up));
    let cfg = lab.sh(1, "cat /etc/kubestrap/kubeadm-init.yaml");
    assert!(cfg.contains("\n  taints: []\n"), "{cfg}");
    assert!(
        cfg.contains(&format!(
            "controlPlaneEndpoint: \"{}.11:6443\"",
            common::net()
        )),
        "{cfg}"
    );
    assert!(!tainted(&kc, "cp1"), "a one-host cluster must run pods");
    let (noop, _) = kubestrap(&["plan", "-i", inv_s]);
    assert_eq!(noop.status.code(), Some(0), "{}", text(&noop));

    // `controlPlaneSchedulable: false`: the taint is added through the API.
    set(&inv, &base, Some(false));
    flip(
        &lab,
        inv_s,
        "add the control-plane taint to cp1 (controlPlaneSchedulable: false)",
        "added the control-plane taint to cp1 (controlPlaneSchedulable: false)",
    );
    assert!(tainted(&kc, "cp1"));
    assert!(
        calls(&lab, 1)
            .iter()
            .any(|c| c.contains(" taint nodes cp1 ") && c.ends_with(":NoSchedule")),
        "no kubectl taint call in the lab's call log"
    );

    // Back to the default (no workers: schedulable): removed again.
    set(&inv, &base, None);
    flip(
        &lab,
        inv_s,
        "remove the control-plane taint from cp1 (controlPlaneSchedulable: true)",
        "removed the control-plane taint from cp1 (controlPlaneSchedulable: true)",
    );
    assert!(!tainted(&kc, "cp1"));
}

/// `loadBalancer: external` with nothing at the endpoint: preflight names the endpoint and what to
/// fix, before anything changes on the host (issue 15: "a clear error naming the endpoint, before
/// any join"). The endpoint is an address of the lab's subnet that no host has.
#[test]
#[ignore = "needs root and the namespaced lab (scripts/lab)"]
fn an_external_endpoint_nothing_answers_is_a_preflight_error() {
    let lab = Lab::up(1);
    let inv = lab.inventory(&["--version", "1.31.2", "--preload"]);
    let inv_s = inv.to_str().unwrap();
    let ep = format!("{}.5:6443", common::net());
    let base = std::fs::read_to_string(&inv).unwrap();
    std::fs::write(
        &inv,
        with_cluster_lines(
            &base,
            &format!("  controlPlaneEndpoint: {ep}\n  loadBalancer: external\n"),
        ),
    )
    .unwrap();
    let before = common::hosts::digest(&lab, 1);
    for cmd in ["up", "plan"] {
        let (o, secs) = kubestrap(&[cmd, "-i", inv_s]);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(1), "{cmd}: {t}");
        assert!(
            t.contains(&format!(
                "nothing answers at controlPlaneEndpoint {ep} from cp1 ("
            )),
            "{cmd}: {t}"
        );
        assert!(
            t.contains("a load balancer of yours must listen there"),
            "{t}"
        );
        assert!(secs < 30.0, "{cmd} took {secs:.1}s");
    }
    assert_eq!(
        common::hosts::digest(&lab, 1),
        before,
        "a refused up changed cp1"
    );
}
