//! `kubestrap upgrade` on the namespaced lab (stand-in kubeadm/kubelet written from kubeadm's
//! docs and source, tests/lab/standins): refusals change nothing on any host; a rolling upgrade
//! runs `kubeadm upgrade apply` once on the control plane and `upgrade node` everywhere else,
//! cordons every node before its kubelet restarts and uncordons it after; a failed worker is
//! named, stays cordoned, its batch finishes, and the next run completes it; re-runs of
//! `upgrade` and `up` are no-ops. Root and the lab are needed: `#[ignore]`d, run by scripts/test.

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::hosts::{calls, changed_lines, listing, settled_listing};
use common::kubestrap_timed as kubestrap;
use common::lab::Lab;
use common::text;

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The lab inventory for `version` (with its image bundle), saved beside the first one under
/// another name: same folder, same cluster, same state folder.
fn inventory_for(lab: &Lab, version: &str, name: &str) -> PathBuf {
    let first = lab.dir.path().join("inventory.yaml");
    let keep = std::fs::read(&first).ok();
    let made = lab.inventory(&["--version", version, "--runtime", "containerd", "--preload"]);
    let p = lab.dir.path().join(name);
    std::fs::rename(&made, &p).unwrap();
    if let Some(k) = keep {
        std::fs::write(&first, k).unwrap();
    }
    p
}

fn edited(p: &Path, name: &str, f: impl Fn(String) -> String) -> PathBuf {
    let q = p.with_file_name(name);
    std::fs::write(&q, f(std::fs::read_to_string(p).unwrap())).unwrap();
    q
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Per node: (kubelet version, Ready, unschedulable), read as a user would: the real kubectl of
/// the cluster's minor on the console, through kubestrap's kubeconfig (refreshed by the upgrade).
fn nodes(lab: &Lab, version: &str) -> Vec<(String, String, bool, bool)> {
    let kubeconfig = lab.dir.path().join(".kubestrap/lab/kubeconfig");
    common::kubectl::nodes(&common::kubectl::nodes_json(&kubeconfig, version))
        .into_iter()
        .map(|n| (n.name, n.kubelet_version, n.ready, n.cordoned))
        .collect()
}

fn packages(lab: &Lab, k: usize) -> String {
    lab.sh(k, "dpkg-query -W -f='${Package}=${Version} ' kubeadm kubelet kubectl; echo; apt-mark showhold | tr '\\n' ' '")
}

#[test]
#[ignore = "needs root and the namespaced lab: run by scripts/test"]
fn refused_upgrades_change_nothing() {
    let lab = Lab::up(2);
    let inv = lab.inventory(&[
        "--version",
        "1.31.2",
        "--runtime",
        "containerd",
        "--preload",
    ]);
    let (up, _) = kubestrap(&["up", "-i", s(&inv)]);
    assert_eq!(up.status.code(), Some(0), "{}", text(&up));

    let next = inventory_for(&lab, "1.32.1", "inv-1.32.1.yaml");
    lab.sh(1, "mkdir -p /etc/kubestrap-lab/faults");
    let before: Vec<String> = (1..=2).map(|k| settled_listing(&lab, k).0).collect();
    let calls_before: Vec<usize> = (1..=2).map(|k| calls(&lab, k).len()).collect();
    let unchanged = |why: &str| {
        for k in 1..=2 {
            let now = listing(&lab, k);
            let diff = changed_lines(&before[k - 1], &now);
            assert!(
                diff.is_empty(),
                "{why}: host {k} changed:\n{}",
                diff.join("\n")
            );
            let new: Vec<String> = calls(&lab, k)
                .into_iter()
                .skip(calls_before[k - 1])
                .collect();
            let bad: Vec<&String> = new
                .iter()
                .filter(|c| {
                    c.starts_with("kubeadm upgrade")
                        || c.contains("drain")
                        || c.contains("cordon")
                        || (c.starts_with("apt-get") && c.contains("install"))
                        || c.starts_with("apt-mark unhold")
                        || c.contains("restart kubelet")
                })
                .collect();
            assert!(bad.is_empty(), "{why}: changing calls on host {k}: {bad:?}");
        }
    };

    // `up` with a newer version refuses and names `kubestrap upgrade`.
    let (o, _) = kubestrap(&["up", "-i", s(&next)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(out(&o).contains("kubestrap upgrade -i"), "{}", text(&o));
    unchanged("up with 1.32.1");

    // Without --yes and without a terminal: refused before connecting.
    let (o, _) = kubestrap(&["upgrade", "-i", s(&next)]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(out(&o).contains("pass --yes"), "{}", text(&o));

    // Skipping a minor.
    let skip = edited(&next, "inv-1.33.0.yaml", |t| {
        t.replace(
            "kubernetesVersion: \"1.32.1\"",
            "kubernetesVersion: \"1.33.0\"",
        )
        .replace("/v1.32/", "/v1.33/")
    });
    let (o, _) = kubestrap(&["upgrade", "-i", s(&skip), "--yes"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = out(&o);
    assert!(t.contains("one minor version at a time"), "{t}");
    assert!(t.contains("upgrade through v1.32.x first"), "{t}");
    unchanged("skip a minor");

    // A downgrade.
    let down = edited(&inv, "inv-1.31.1.yaml", |t| {
        t.replace(
            "kubernetesVersion: \"1.31.2\"",
            "kubernetesVersion: \"1.31.1\"",
        )
    });
    let (o, _) = kubestrap(&["upgrade", "-i", s(&down), "--yes"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(out(&o).contains("cannot downgrade"), "{}", text(&o));
    unchanged("downgrade");

    // The next minor with the old minor's repository: the packages are not there; the message
    // gives the repository line to use.
    let old_repo = edited(&next, "inv-1.32.1-old-repo.yaml", |t| {
        t.replace("/v1.32/", "/v1.31/")
    });
    let (o, _) = kubestrap(&["upgrade", "-i", s(&old_repo), "--yes"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = out(&o);
    assert!(t.contains("kubeadm, kubelet, kubectl 1.32.1 not in"), "{t}");
    assert!(t.contains("/v1.32/deb/` for v1.32.1"), "{t}");
    unchanged("wrong repository");

    // etcd unhealthy (lab knob: the API server's /readyz/etcd fails): refused before any change.
    lab.sh(
        1,
        "mkdir -p /etc/kubestrap-lab/faults && touch /etc/kubestrap-lab/faults/etcd-unhealthy",
    );
    let (o, _) = kubestrap(&["upgrade", "-i", s(&next), "--yes"]);
    lab.sh(1, "rm -f /etc/kubestrap-lab/faults/etcd-unhealthy");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(out(&o).contains("etcd is not healthy"), "{}", text(&o));
    unchanged("etcd unhealthy");

    // Already at the version: nothing to do, exit 0.
    let (o, _) = kubestrap(&["upgrade", "-i", s(&inv), "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        out(&o).contains("already runs v1.31.2 on every node: nothing to do"),
        "{}",
        text(&o)
    );
    unchanged("same version");
}

/// calls.log lines on host K that match `pred`, counted.
fn count(lab: &Lab, k: usize, pred: impl Fn(&str) -> bool) -> usize {
    calls(lab, k).iter().filter(|c| pred(c)).count()
}

#[test]
#[ignore = "needs root and the namespaced lab: run by scripts/test"]
fn a_rolling_upgrade_then_a_resumed_one() {
    let lab = Lab::up(4);
    let inv = lab.inventory(&[
        "--version",
        "1.31.2",
        "--runtime",
        "containerd",
        "--preload",
    ]);
    let (up, _) = kubestrap(&["up", "-i", s(&inv)]);
    assert_eq!(up.status.code(), Some(0), "{}", text(&up));
    let next = inventory_for(&lab, "1.32.1", "inv-1.32.1.yaml");

    // A worker whose kubeadm upgrade fails (lab fault knob): named, the rest of its batch
    // finishes, the next batch does not start.
    lab.sh(
        3,
        "mkdir -p /etc/kubestrap-lab/faults && touch /etc/kubestrap-lab/faults/upgrade-fails",
    );
    let (o, secs) = kubestrap(&["upgrade", "-i", s(&next), "--yes", "--batch", "2"]);
    eprintln!("upgrade with a failing worker: {secs:.1}s");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = out(&o);
    assert!(t.contains("w2") && t.contains("failed"), "{t}");
    assert!(t.contains("kubeadm upgrade node"), "{t}");
    let n = nodes(&lab, "1.32.1");
    let by = |name: &str| n.iter().find(|x| x.0 == name).unwrap().clone();
    assert_eq!(by("cp1").1, "v1.32.1", "{n:?}");
    assert_eq!(
        by("w1").1,
        "v1.32.1",
        "w1 shares w2's batch and finishes: {n:?}"
    );
    assert!(!by("w1").3, "w1 is uncordoned: {n:?}");
    assert_eq!(by("w2").1, "v1.31.2", "{n:?}");
    // Its batch was cordoned before any member was touched: the failed node stays cordoned, and
    // the state folder records that cordon as kubestrap's (the next run lifts it).
    assert!(by("w2").3, "w2 stays cordoned: {n:?}");
    let ours =
        std::fs::read_to_string(lab.dir.path().join(".kubestrap/lab/upgrade-cordoned")).unwrap();
    assert_eq!(ours.trim(), "w2", "{ours}");
    assert_eq!(by("w3").1, "v1.31.2", "w3's batch did not start: {n:?}");
    assert_eq!(
        count(&lab, 4, |c| c.starts_with("kubeadm upgrade")),
        0,
        "w3 was touched"
    );

    // The knob off: the next run completes w2 and w3 and leaves cp1 and w1 alone.
    lab.sh(3, "rm -f /etc/kubestrap-lab/faults/upgrade-fails");
    let applies_before = count(&lab, 1, |c| c.starts_with("kubeadm upgrade apply"));
    let w1_before = count(&lab, 2, |c| c.starts_with("kubeadm upgrade"));
    let (o, secs) = kubestrap(&["upgrade", "-i", s(&next), "--yes", "--batch", "2"]);
    eprintln!("resumed upgrade: {secs:.1}s");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        count(&lab, 1, |c| c.starts_with("kubeadm upgrade apply")),
        applies_before,
        "apply ran again"
    );
    assert_eq!(
        count(&lab, 2, |c| c.starts_with("kubeadm upgrade")),
        w1_before,
        "w1 was upgraded again"
    );
    for (name, ver, ready, cordoned) in nodes(&lab, "1.32.1") {
        assert_eq!(ver, "v1.32.1", "{name}");
        assert!(
            ready && !cordoned,
            "{name}: ready {ready}, cordoned {cordoned}"
        );
    }
    // apply once, on the control plane; upgrade node on every worker.
    assert_eq!(
        count(&lab, 1, |c| c.starts_with("kubeadm upgrade apply v1.32.1")),
        1
    );
    for k in 2..=4 {
        assert!(
            count(&lab, k, |c| c.starts_with("kubeadm upgrade node")) >= 1,
            "host {k}"
        );
        assert_eq!(
            count(&lab, k, |c| c.starts_with("kubeadm upgrade apply")),
            0,
            "host {k}"
        );
    }
    for k in 1..=4 {
        let p = packages(&lab, k);
        assert!(
            p.contains("kubeadm=1.32.1-")
                && p.contains("kubelet=1.32.1-")
                && p.contains("kubectl=1.32.1-"),
            "host {k}: {p}"
        );
        assert!(
            p.contains("kubeadm kubectl kubelet")
                || ["kubeadm", "kubelet", "kubectl"]
                    .iter()
                    .all(|x| p.split_whitespace().any(|w| w == *x)),
            "host {k} holds: {p}"
        );
    }
    // Every kubelet restart of the upgrade happened while its node was cordoned.
    let restarts_ok = events_in_order(&lab, &["cp1", "w1", "w2", "w3"]);
    assert!(
        restarts_ok.is_empty(),
        "{restarts_ok:?}\n{}",
        lab.sh(1, "cat /var/log/kubestrap-lab/cluster-events.log")
    );

    // Re-runs are no-ops.
    let (o, _) = kubestrap(&["upgrade", "-i", s(&next), "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(out(&o).contains("nothing to do"), "{}", text(&o));
    let (o, _) = kubestrap(&["up", "-i", s(&next)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        out(&o).contains("nothing changed on any host"),
        "{}",
        text(&o)
    );
}

/// The lab API server's event log (`SEQ TIME EVENT NODE [VERSION]`, tests/lab/standins/README.md):
/// every kubelet restart at a new version must fall between a cordon and an uncordon of its
/// node. Returns the violations.
fn events_in_order(lab: &Lab, names: &[&str]) -> Vec<String> {
    let log = lab.sh(
        1,
        "cat /var/log/kubestrap-lab/cluster-events.log 2>/dev/null || true",
    );
    if log.trim().is_empty() {
        return vec!["no /var/log/kubestrap-lab/cluster-events.log on the control plane".into()];
    }
    let mut cordoned = std::collections::BTreeMap::<String, bool>::new();
    let mut bad = vec![];
    let mut restarted = std::collections::BTreeSet::<String>::new();
    for l in log.lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        match w.as_slice() {
            [_, _, "cordon", n, ..] => {
                cordoned.insert(n.to_string(), true);
            }
            [_, _, "uncordon", n, ..] => {
                cordoned.insert(n.to_string(), false);
            }
            // The kubelet came up again at the new version (the lab logs a kubelet's first
            // heartbeat as `kubelet-start`, every later new start as `kubelet-restart`).
            [_, _, "kubelet-restart", n, ver, ..] if *ver == "v1.32.1" => {
                restarted.insert(n.to_string());
                if !cordoned.get(*n).copied().unwrap_or(false) {
                    bad.push(format!(
                        "{n} restarted its kubelet at {ver} while schedulable: {l}"
                    ));
                }
            }
            _ => {}
        }
    }
    for n in names {
        if !restarted.contains(*n) {
            bad.push(format!(
                "no kubelet restart of {n} at v1.32.1 in the event log"
            ));
        }
        if cordoned.get(*n).copied().unwrap_or(false) {
            bad.push(format!("{n} is still cordoned at the end of the event log"));
        }
    }
    bad
}

#[test]
#[ignore = "needs root and the namespaced lab: run by scripts/test"]
fn a_patch_upgrade() {
    let lab = Lab::up(2);
    let inv = lab.inventory(&[
        "--version",
        "1.31.1",
        "--runtime",
        "containerd",
        "--preload",
    ]);
    let (up, _) = kubestrap(&["up", "-i", s(&inv)]);
    assert_eq!(up.status.code(), Some(0), "{}", text(&up));
    let next = inventory_for(&lab, "1.31.2", "inv-1.31.2.yaml");
    let (o, secs) = kubestrap(&["upgrade", "-i", s(&next), "--yes"]);
    eprintln!("patch upgrade 1.31.1 -> 1.31.2, 2 hosts: {secs:.1}s");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        out(&o).contains("Upgraded cluster lab from v1.31.1 to v1.31.2."),
        "{}",
        text(&o)
    );
    for (name, ver, ready, cordoned) in nodes(&lab, "1.31.2") {
        assert_eq!(ver, "v1.31.2", "{name}");
        assert!(
            ready && !cordoned,
            "{name}: ready {ready}, cordoned {cordoned}"
        );
    }
    assert_eq!(
        count(&lab, 1, |c| c.starts_with("kubeadm upgrade apply v1.31.2")),
        1
    );
    assert_eq!(count(&lab, 2, |c| c.starts_with("kubeadm upgrade node")), 1);
    let (o, _) = kubestrap(&["up", "-i", s(&next)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        out(&o).contains("nothing changed on any host"),
        "{}",
        text(&o)
    );
}
