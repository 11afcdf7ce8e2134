//! `kubestrap plan` on the namespaced lab: on fresh hosts it announces the changes and cluster
//! steps and changes nothing (a digest of each host's mutable state is the same before and
//! after, and no changing call reached the lab's recorded commands); every change the next `up`
//! reports was announced, and nothing more; after `up` it says "no changes"; drift on one host is
//! named on that host only. Root and the lab are needed: `#[ignore]`d, run by scripts/test.

use std::collections::BTreeSet;

mod common;
use common::hosts::{calls, digest, settled_digest};
use common::kubestrap_timed as kubestrap;
use common::lab::Lab;
use common::{changes, event, text};

/// The changes `up` reports that are cluster steps (plan lists those separately).
fn is_cluster_change(c: &str) -> bool {
    c == "kubeadm init"
        || c.starts_with("kubeadm join")
        || c.starts_with("created a bootstrap token")
        || c.starts_with("pod network applied")
        || c.starts_with("deleted the stale node object")
        || c.starts_with("reset a stale earlier join")
        || c.starts_with("wrote ")
}

/// How `up` says a bundle reached a host ("uploaded /path/NAME (N bytes) from the console",
/// "fetched NAME from cp1"), in plan's words ("receive image bundle NAME"): which way it
/// travels is decided during `up`.
fn as_planned(c: String) -> String {
    let name = |p: &str| p.rsplit('/').next().unwrap_or(p).to_string();
    if let Some(rest) = c
        .strip_prefix("uploaded ")
        .filter(|_| c.ends_with(" from the console"))
    {
        return format!(
            "receive image bundle {}",
            name(rest.split(' ').next().unwrap())
        );
    }
    if let Some(rest) = c.strip_prefix("fetched ") {
        return format!(
            "receive image bundle {}",
            name(rest.split(" from ").next().unwrap())
        );
    }
    c
}

/// Every host change `up` made was announced by `plan`, and `plan` announced nothing else.
fn assert_agreement(plan: &serde_json::Value, up: &serde_json::Value) {
    let planned = changes(plan);
    for (host, done) in changes(up) {
        let done: BTreeSet<String> = done
            .into_iter()
            .filter(|c| !is_cluster_change(c))
            .map(as_planned)
            .collect();
        let announced = &planned.iter().find(|(h, _)| *h == host).unwrap().1;
        let unannounced: Vec<_> = done.difference(announced).collect();
        let undone: Vec<_> = announced.difference(&done).collect();
        // The cluster steps: init and joins exactly where plan said.
        let steps: Vec<String> = plan["cluster_steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["host"] == host.as_str())
            .map(|s| s["step"].as_str().unwrap().to_string())
            .collect();
        let up_all = &changes(up).into_iter().find(|(h, _)| *h == host).unwrap().1;
        assert_eq!(
            up_all.contains("kubeadm init"),
            steps.iter().any(|s| s.starts_with("kubeadm init")),
            "{host}: init: plan {steps:?}, up {up_all:?}"
        );
        assert_eq!(
            up_all.iter().any(|c| c.starts_with("kubeadm join")),
            steps.iter().any(|s| s.starts_with("kubeadm join")),
            "{host}: join: plan {steps:?}, up {up_all:?}"
        );
        if up_all.iter().any(|c| c.starts_with("pod network applied")) {
            assert!(
                steps.iter().any(|s| s.starts_with("apply the pod network")),
                "{host}: {steps:?}"
            );
        }
        assert!(
            unannounced.is_empty() && undone.is_empty(),
            "{host}: up did {unannounced:?} that plan did not announce; plan announced {undone:?} that up did not do\nplan: {plan}\nup: {up}"
        );
    }
}

fn changing_call(c: &str) -> bool {
    let w: Vec<&str> = c.split_whitespace().collect();
    let has = |x: &str| w.contains(&x);
    // `kubectl[real:1.31] ...`: the lab's kubectl wrapper names the binary that ran
    let cmd = w
        .first()
        .map(|c| c.split('[').next().unwrap_or(c))
        .unwrap_or("");
    match cmd {
        "kubeadm" => !has("version") && !has("config") || has("init") || has("join"),
        "systemctl" => [
            "enable",
            "restart",
            "start",
            "stop",
            "daemon-reload",
            "disable",
        ]
        .iter()
        .any(|x| has(x)),
        "apt-get" => has("install") || has("update") || has("remove"),
        "apt-mark" => has("hold") || has("unhold"),
        "ctr" => has("import"),
        "hostnamectl" => has("set-hostname"),
        "kubectl" => has("apply") || has("delete") || has("drain"),
        _ => false,
    }
}

#[test]
#[ignore = "needs root and the namespaced lab: run by scripts/test"]
fn plan_announces_what_up_does_and_changes_nothing() {
    let lab = Lab::up(3);
    let inv = lab.inventory(&[
        "--version",
        "1.31.2",
        "--runtime",
        "containerd",
        "--preload",
    ]);
    let inv_s = inv.to_str().unwrap();
    let state = inv.parent().unwrap().join(".kubestrap/lab");

    // Fresh hosts.
    let before: Vec<String> = (1..=3).map(|k| digest(&lab, k)).collect();
    let calls_before: Vec<usize> = (1..=3).map(|k| calls(&lab, k).len()).collect();
    let (text_plan, _) = kubestrap(&["plan", "-i", inv_s]);
    assert_eq!(text_plan.status.code(), Some(3), "{}", text(&text_plan));
    let out = String::from_utf8_lossy(&text_plan.stdout);
    for want in [
        "cp1 (control-plane): ",
        "~ hostname cp1",
        "~ /etc/sysctl.d/k8s.conf",
        "new file, ",
        "~ installed kubeadm kubelet kubectl 1.31.2",
        "+ cp1: kubeadm init (Kubernetes v1.31.2",
        "+ w1: kubeadm join ",
        "+ w2: kubeadm join ",
        "+ cp1: apply the pod network",
        "changes pending; nothing was changed",
    ] {
        assert!(out.contains(want), "plan lacks {want:?}:\n{out}");
    }
    let (fresh, _) = kubestrap(&["plan", "-i", inv_s, "--output", "json"]);
    assert_eq!(fresh.status.code(), Some(3), "{}", text(&fresh));
    let fresh = event(&fresh, "plan");
    assert_eq!(fresh["changes_pending"], true);
    for k in 1..=3 {
        assert_eq!(digest(&lab, k), before[k - 1], "plan changed host {k}");
        let new: Vec<String> = calls(&lab, k)
            .into_iter()
            .skip(calls_before[k - 1])
            .collect();
        let bad: Vec<&String> = new.iter().filter(|c| changing_call(c)).collect();
        assert!(
            bad.is_empty(),
            "plan made changing calls on host {k}: {bad:?}"
        );
    }
    assert!(
        !state.join("kubeconfig").exists(),
        "plan wrote a kubeconfig"
    );
    assert!(!state.join("pki").exists(), "plan made a pki folder");

    // up does what plan said.
    let (up1, _) = kubestrap(&["up", "-i", inv_s, "--output", "json"]);
    assert_eq!(up1.status.code(), Some(0), "{}", text(&up1));
    assert_agreement(&fresh, &event(&up1, "summary"));

    // Converged: no changes, one round trip per host.
    let (noop, secs) = kubestrap(&["plan", "-i", inv_s]);
    let out = String::from_utf8_lossy(&noop.stdout);
    assert_eq!(noop.status.code(), Some(0), "{}", text(&noop));
    assert!(out.contains("No changes"), "{out}");
    for h in ["cp1", "w1", "w2"] {
        assert!(
            out.contains(&format!("{h} (")) && !out.contains("changes pending"),
            "{out}"
        );
    }
    eprintln!("plan on a converged 3-host cluster: {secs:.2}s");

    // Drift on two hosts: named there, nowhere else; up then does exactly that.
    lab.sh(2, "apt-mark unhold kubelet >/dev/null");
    lab.sh(3, "echo '# drift' >> /etc/containerd/config.toml");
    let (drift, _) = kubestrap(&["plan", "-i", inv_s, "--output", "json"]);
    assert_eq!(drift.status.code(), Some(3), "{}", text(&drift));
    let drift = event(&drift, "plan");
    let per = changes(&drift);
    let of = |h: &str| per.iter().find(|(n, _)| n == h).unwrap().1.clone();
    assert!(of("cp1").is_empty(), "{drift}");
    assert_eq!(
        of("w1"),
        BTreeSet::from(["held kubelet".to_string()]),
        "{drift}"
    );
    assert!(of("w2").contains("/etc/containerd/config.toml"), "{drift}");
    let diffs = &drift["hosts"][2]["diffs"]["/etc/containerd/config.toml"];
    assert!(diffs.as_str().unwrap_or("").contains("-# drift"), "{drift}");
    let (up2, _) = kubestrap(&["up", "-i", inv_s, "--output", "json"]);
    assert_eq!(up2.status.code(), Some(0), "{}", text(&up2));
    assert_agreement(&drift, &event(&up2, "summary"));
    let (again, _) = kubestrap(&["plan", "-i", inv_s]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));

    // A version bump in the inventory: up refuses before touching any host (issue 14), and so
    // does plan.
    let before: Vec<String> = (1..=3).map(|k| settled_digest(&lab, k)).collect();
    let bumped = std::fs::read_to_string(&inv).unwrap().replace(
        "kubernetesVersion: \"1.31.2\"",
        "kubernetesVersion: \"1.32.1\"",
    );
    assert!(bumped.contains("1.32.1"), "{bumped}");
    std::fs::write(&inv, bumped).unwrap();
    let (up3, _) = kubestrap(&["up", "-i", inv_s]);
    let t = text(&up3);
    assert_eq!(up3.status.code(), Some(1), "{t}");
    assert!(
        t.contains("never changes a running cluster's version") && t.contains("v1.31.2"),
        "{t}"
    );
    assert!(t.contains("nothing was changed"), "{t}");
    for k in 1..=3 {
        assert_eq!(
            digest(&lab, k),
            before[k - 1],
            "the refused up changed host {k}"
        );
    }
    // plan shows what `kubestrap upgrade` would do instead; with the old minor's repository it
    // names the line to use (exit 1).
    let (p3, _) = kubestrap(&["plan", "-i", inv_s]);
    let t = text(&p3);
    assert_eq!(p3.status.code(), Some(1), "{t}");
    assert!(t.contains("/v1.32/deb/` for v1.32.1"), "{t}");
    let next = std::fs::read_to_string(&inv)
        .unwrap()
        .replace("/v1.31/", "/v1.32/");
    std::fs::write(&inv, next).unwrap();
    let (p4, _) = kubestrap(&["plan", "-i", inv_s]);
    let t = text(&p4);
    assert_eq!(p4.status.code(), Some(3), "{t}");
    for want in [
        "+ cp1: upgrade cluster lab from v1.31.2 to v1.32.1",
        "+ cp1: kubeadm 1.32.1, kubeadm upgrade apply v1.32.1, drain",
        "+ w1: kubeadm 1.32.1, kubeadm upgrade node, drain",
        "+ w2: kubeadm 1.32.1, kubeadm upgrade node, drain",
        "run `kubestrap upgrade -i",
    ] {
        assert!(t.contains(want), "plan lacks {want:?}:\n{t}");
    }
    for k in 1..=3 {
        assert_eq!(
            digest(&lab, k),
            before[k - 1],
            "the upgrade plan changed host {k}"
        );
    }
}
