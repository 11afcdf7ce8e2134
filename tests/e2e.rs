//! End-to-end: `kubestrap up` against the namespaced lab (scripts/lab), asserting what it left on
//! the hosts. These need root and the lab's packages, so they are `#[ignore]`d in a plain
//! `cargo test` and run by scripts/test with `--ignored --test-threads=1`.

use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::lab::{run_lab, Lab};
use common::{changes, event, lab_script, net, root, text};
use std::collections::BTreeSet;

fn kubestrap(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubestrap"))
        .args(args)
        .output()
        .expect("run kubestrap")
}

fn up(inv: &Path, extra: &[&str]) -> Output {
    let mut a = vec!["up", "-i", inv.to_str().unwrap()];
    a.extend_from_slice(extra);
    let t = std::time::Instant::now();
    let o = kubestrap(&a);
    eprintln!(
        "kubestrap up {:?}: {:.1}s",
        extra,
        t.elapsed().as_secs_f64()
    );
    o
}

/// A second `up` on a healthy cluster succeeds and changes nothing on any host.
fn assert_noop_rerun(inv: &Path) {
    let second = up(inv, &[]);
    assert_eq!(
        second.status.code(),
        Some(0),
        "second up:\n{}",
        text(&second)
    );
    assert!(
        String::from_utf8_lossy(&second.stdout).contains("nothing changed on any host"),
        "second up:\n{}",
        text(&second)
    );
}

/// A node's InternalIP and whether it is Ready, from `kubectl get nodes -o json`.
fn node_status(nodes: &serde_json::Value, name: &str) -> (String, bool, serde_json::Value) {
    let n = common::kubectl::node(nodes, name);
    (n.internal_ip, n.ready, n.json)
}

/// Everything a built cluster must show on its hosts.
fn assert_cluster(lab: &Lab, inv: &Path, names: &[&str], version: &str, runtime: &str) {
    for (k, name) in names.iter().enumerate().map(|(i, n)| (i + 1, n)) {
        assert_eq!(lab.sh(k, "hostname").trim(), *name, "hostname of host {k}");
        let hosts = lab.sh(k, "cat /etc/hosts");
        for (j, other) in names.iter().enumerate() {
            let line = format!("{}.{} {}", net(), 11 + j, other);
            assert!(
                hosts.contains(&line),
                "host {k} /etc/hosts lacks `{line}`:\n{hosts}"
            );
        }
        assert_eq!(lab.sh(k, "sysctl -n net.ipv4.ip_forward").trim(), "1");
        assert_eq!(
            lab.sh(k, "sysctl -n net.bridge.bridge-nf-call-iptables")
                .trim(),
            "1"
        );
        let modules = lab.sh(k, "cat /etc/modules-load.d/k8s.conf");
        assert!(modules.contains("br_netfilter") && modules.contains("overlay"));
        let held = lab.sh(k, "apt-mark showhold");
        for p in ["kubeadm", "kubelet", "kubectl"] {
            assert!(
                held.lines().any(|l| l == p),
                "{p} not held on host {k}: {held}"
            );
            let v = lab.sh(k, &format!("dpkg-query -W -f='${{Version}}' {p}"));
            assert!(
                v.starts_with(&format!("{version}-")),
                "{p} on host {k} is {v}, want {version}"
            );
        }
        match runtime {
            "containerd" => {
                let cfg = lab.sh(k, "cat /etc/containerd/config.toml");
                assert!(
                    cfg.contains("SystemdCgroup = true"),
                    "containerd config on host {k}"
                );
                assert!(
                    cfg.contains("registry.k8s.io/pause:3.10\""),
                    "sandbox image on host {k}"
                );
                let images = lab.sh(k, "ctr -n k8s.io images ls -q");
                assert!(
                    images.contains(&format!("registry.k8s.io/kube-proxy:v{version}")),
                    "images on host {k}: {images}"
                );
            }
            _ => {
                let cfg = lab.sh(k, "cat /etc/docker/daemon.json");
                assert!(
                    cfg.contains("native.cgroupdriver=systemd"),
                    "daemon.json on host {k}"
                );
                let images = lab.sh(k, "docker images --format '{{.Repository}}:{{.Tag}}'");
                assert!(
                    images.contains(&format!("registry.k8s.io/kube-proxy:v{version}")),
                    "images on host {k}: {images}"
                );
            }
        }
    }
    let mode = lab.sh(1, "stat -c %a /etc/kubestrap/kubeadm-init.yaml");
    assert_eq!(mode.trim(), "600", "the init config holds the token");

    // The node registry on the control plane.
    let json = lab.sh(
        1,
        "kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes -o json",
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), names.len(), "nodes: {json}");
    for (j, name) in names.iter().enumerate() {
        let (ip, ready, node) = node_status(&v, name);
        assert!(ready, "node {name} not Ready");
        assert_eq!(ip, format!("{}.{}", net(), 11 + j), "node IP of {name}");
        assert_eq!(
            node["status"]["nodeInfo"]["kubeletVersion"],
            format!("v{version}")
        );
    }

    // The kubeconfig on the console.
    let kc = inv.parent().unwrap().join(".kubestrap/lab/kubeconfig");
    let meta = std::fs::metadata(&kc).expect("kubeconfig written");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&kc).unwrap();
    assert!(
        text.contains(&format!("server: https://{}.11:6443", net())),
        "{text}"
    );
    assert!(inv.parent().unwrap().join(".kubestrap/.gitignore").exists());

    // What a user sees through that kubeconfig with the real kubectl, on the console.
    let v = common::kubectl::nodes_json(&kc, version);
    assert_eq!(v["items"].as_array().unwrap().len(), names.len(), "{v}");
    for (j, name) in names.iter().enumerate() {
        let (ip, ready, _) = node_status(&v, name);
        assert!(ready, "node {name} not Ready (console kubectl): {v}");
        assert_eq!(ip, format!("{}.{}", net(), 11 + j), "node IP of {name}");
    }
}

/// Every byte kubestrap wrote (stdout, stderr, state folder) must be free of the token.
fn assert_no_secret(lab: &Lab, inv: &Path, outputs: &[&Output]) {
    let cfg = lab.sh(1, "cat /etc/kubestrap/kubeadm-init.yaml");
    let token = cfg
        .lines()
        .find_map(|l| l.trim().strip_prefix("- token: "))
        .expect("token in init config")
        .trim_matches('"')
        .to_string();
    assert_eq!(token.len(), 23);
    let secret = &token[7..];
    for o in outputs {
        let t = text(o);
        assert!(!t.contains(secret), "token secret printed by kubestrap");
    }
    let mut stack = vec![inv.parent().unwrap().join(".kubestrap")];
    let mut files = 0;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files += 1;
                let bytes = std::fs::read(&p).unwrap();
                assert!(
                    !String::from_utf8_lossy(&bytes).contains(secret),
                    "token secret found in {}",
                    p.display()
                );
            }
        }
    }
    assert!(files >= 2, "expected logs in the state folder");
}

#[test]
#[ignore = "needs root and the namespaced lab: run by scripts/test"]
fn containerd_one_plus_three_then_noop() {
    let lab = Lab::up(4);
    let inv = lab.inventory(&[
        "--version",
        "1.31.2",
        "--runtime",
        "containerd",
        "--preload",
    ]);
    let first = up(&inv, &[]);
    assert_eq!(first.status.code(), Some(0), "first up:\n{}", text(&first));
    assert_cluster(
        &lab,
        &inv,
        &["cp1", "w1", "w2", "w3"],
        "1.31.2",
        "containerd",
    );

    let calls_before = lab.sh(2, "wc -l < /var/log/kubestrap-lab/calls.log");
    let second = up(&inv, &["--output", "json"]);
    assert_eq!(
        second.status.code(),
        Some(0),
        "second up:\n{}",
        text(&second)
    );
    let out = String::from_utf8_lossy(&second.stdout);
    let summary: serde_json::Value = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "summary")
        .expect("summary event");
    assert_eq!(
        summary["changed"], false,
        "second up changed something: {summary}"
    );
    assert_eq!(summary["ok"], true);
    // What the no-op cost the console: one handshake and one round trip per host (the facts,
    // the prepare stamp check and, on the control plane, the cluster query), no image bytes.
    let stats = &summary["stats"];
    assert_eq!(stats["hosts"], 4, "{stats}");
    assert_eq!(stats["handshakes"], 4, "{stats}");
    assert_eq!(stats["round_trips"], 4, "{stats}");
    assert_eq!(stats["image_bytes_sent"], 0, "{stats}");
    assert!(stats["cpu_ms"].as_u64().unwrap() > 0 && stats["peak_rss_kb"].as_u64().unwrap() > 0);
    for h in summary["hosts"].as_array().unwrap() {
        assert_eq!(h["handshakes"], 1, "{h}");
        assert_eq!(h["round_trips"], 1, "{h}");
    }
    // The first run sent the image bundle over the console's uplink once (the workers fetched
    // it from a host that had it).
    let inv_text = std::fs::read_to_string(&inv).unwrap();
    let tar = inv_text
        .lines()
        .find_map(|l| l.trim().strip_prefix("preloadImages: ["))
        .and_then(|l| l.strip_suffix(']'))
        .expect("preloadImages in the inventory");
    let bundle = std::fs::metadata(tar).unwrap().len();
    let first_out = String::from_utf8_lossy(&first.stdout);
    let line = first_out
        .lines()
        .find(|l| l.starts_with("console: "))
        .expect("console stats line");
    assert!(
        line.ends_with(&format!(" {bundle} image bytes sent")),
        "{line} (bundle {bundle} bytes)"
    );
    // No kubeadm/systemctl calls with side effects on a worker during the no-op run.
    let calls = lab.sh(2, "cat /var/log/kubestrap-lab/calls.log");
    let new: Vec<&str> = calls
        .lines()
        .skip(calls_before.trim().parse().unwrap())
        .collect();
    for c in &new {
        assert!(
            !c.contains("join")
                && !c.contains("restart")
                && !c.contains("import")
                && !c.contains("set-hostname"),
            "no-op run made a changing call on w1: {c}"
        );
    }
    assert_no_secret(&lab, &inv, &[&first, &second]);

    // Drift behind kubestrap's back is seen by the fast path and repaired on that host only.
    lab.sh(2, "apt-mark unhold kubelet >/dev/null");
    lab.sh(3, "sysctl -q -w net.ipv4.ip_forward=0");
    lab.sh(4, "echo 'debug: true' | tee -a /etc/crictl.yaml >/dev/null");
    let third = up(&inv, &["--output", "json"]);
    assert_eq!(third.status.code(), Some(0), "third up:\n{}", text(&third));
    let summary: serde_json::Value = String::from_utf8_lossy(&third.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "summary")
        .expect("summary event");
    let changes = |name: &str| -> (String, u64) {
        let h = summary["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["host"] == name)
            .unwrap_or_else(|| panic!("{name} in {summary}"));
        (h["changes"].to_string(), h["round_trips"].as_u64().unwrap())
    };
    // cp1 was not touched: no changes, no prepare (the network check runs since others changed).
    assert_eq!(changes("cp1").0, "[]", "{summary}");
    assert_eq!(
        summary["stats"]["round_trips_by_step"]["prepare"], 3,
        "{summary}"
    );
    let (c, rt) = changes("w1");
    assert!(c.contains("held kubelet") && rt == 2, "w1: {c} {rt}");
    let (c, rt) = changes("w2");
    assert!(
        c.contains("sysctl net.ipv4.ip_forward=1") && rt == 2,
        "w2: {c} {rt}"
    );
    let (c, rt) = changes("w3");
    assert!(c.contains("/etc/crictl.yaml") && rt == 2, "w3: {c} {rt}");
    assert_eq!(lab.sh(3, "cat /proc/sys/net/ipv4/ip_forward").trim(), "1");
    assert!(!lab.sh(4, "cat /etc/crictl.yaml").contains("debug"));
    assert!(lab.sh(2, "apt-mark showhold").contains("kubelet"));
    assert_noop_rerun(&inv);

    // The other commands against the same cluster.
    let check = kubestrap(&["check", "-i", inv.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(0), "check:\n{}", text(&check));
    let ex = kubestrap(&[
        "exec",
        "-i",
        inv.to_str().unwrap(),
        "--role",
        "worker",
        "--",
        "hostname",
    ]);
    assert_eq!(ex.status.code(), Some(0), "exec:\n{}", text(&ex));
    let so = String::from_utf8_lossy(&ex.stdout);
    for w in ["w1: w1", "w2: w2", "w3: w3"] {
        assert!(so.contains(w), "exec output lacks {w}: {so}");
    }
    assert!(!so.contains("cp1"));
    let kc = kubestrap(&["kubeconfig", "-i", inv.to_str().unwrap()]);
    assert_eq!(kc.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&kc.stdout).contains(&format!("server: https://{}.11:6443", net()))
    );
}

#[test]
#[ignore = "needs root and the namespaced lab: run by scripts/test"]
fn docker_one_plus_two() {
    let lab = Lab::up(3);
    let inv = lab.inventory(&["--version", "1.31.2", "--runtime", "docker", "--preload"]);
    let first = up(&inv, &[]);
    assert_eq!(first.status.code(), Some(0), "up:\n{}", text(&first));
    assert_cluster(&lab, &inv, &["cp1", "w1", "w2"], "1.31.2", "docker");
    assert_noop_rerun(&inv);
}

#[test]
#[ignore = "needs root and the namespaced lab: run by scripts/test"]
fn version_1_32_one_plus_one() {
    let lab = Lab::up(2);
    let inv = lab.inventory(&["--version", "1.32.1", "--preload"]);
    let first = up(&inv, &[]);
    assert_eq!(first.status.code(), Some(0), "up:\n{}", text(&first));
    assert_cluster(&lab, &inv, &["cp1", "w1"], "1.32.1", "containerd");
}

/// The stats line's image byte count in text output.
fn image_bytes_sent(o: &Output) -> u64 {
    let out = String::from_utf8_lossy(&o.stdout);
    let line = out
        .lines()
        .find(|l| l.starts_with("console: "))
        .unwrap_or_else(|| panic!("no console stats line:\n{}", text(o)));
    line.trim_end_matches(" image bytes sent")
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("bad stats line {line}"))
}

#[test]
#[ignore = "needs root and the namespaced lab: run by scripts/test"]
fn image_fetch_failure_falls_back_to_a_console_upload() {
    let lab = Lab::up(3);
    let inv = lab.inventory(&["--version", "1.31.2", "--preload"]);
    // On w2, curl fails for everything but the package repository key.
    lab.sh(
        3,
        "printf '%s\\n' '#!/bin/sh' 'case \"$*\" in *Release.key*) exec /usr/bin/curl \"$@\";; esac' 'echo \"curl: (7) Failed to connect\" >&2; exit 7' > /usr/local/bin/curl && chmod 755 /usr/local/bin/curl",
    );
    let first = up(&inv, &[]);
    assert_eq!(first.status.code(), Some(0), "up:\n{}", text(&first));
    let t = text(&first);
    assert!(
        t.contains("w2: fetching from cp1 failed: curl: (7) Failed to connect; uploading /var/cache/kubestrap/images/k8s-v1.31.2.tar from the console instead"),
        "{t}"
    );
    let inv_text = std::fs::read_to_string(&inv).unwrap();
    let tar = inv_text
        .lines()
        .find_map(|l| l.trim().strip_prefix("preloadImages: ["))
        .and_then(|l| l.strip_suffix(']'))
        .unwrap();
    let bundle = std::fs::metadata(tar).unwrap().len();
    // Once to the seed, once more to w2; w1 fetched it from cp1.
    assert_eq!(image_bytes_sent(&first), 2 * bundle, "{t}");
    assert_cluster(&lab, &inv, &["cp1", "w1", "w2"], "1.31.2", "containerd");
    // The seed's server is gone, and no one-time URL reached the logs.
    assert_eq!(
        lab.sh(1, "ps -eo args | grep -c '[k]ubestrap-serve' || true")
            .trim(),
        "0"
    );
    let logs = inv.parent().unwrap().join(".kubestrap/lab/logs");
    for run in std::fs::read_dir(&logs).unwrap() {
        for f in std::fs::read_dir(run.unwrap().path()).unwrap() {
            let body = std::fs::read_to_string(f.unwrap().path()).unwrap();
            for l in body.lines().filter(|l| l.contains("curl -fsS --max-time")) {
                assert!(
                    l.contains(":") && l.contains("/<redacted>"),
                    "token in a log: {l}"
                );
            }
        }
    }
    let second = up(&inv, &[]);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    assert_eq!(image_bytes_sent(&second), 0, "{}", text(&second));
}

#[test]
#[ignore = "needs root and the namespaced lab: run by scripts/test"]
fn preflight_problems_are_reported_together_and_change_nothing() {
    let lab = Lab::up(3);
    let inv = lab.inventory(&["--version", "1.31.2", "--preload"]);
    // Occupy the API port on the control plane and the kubelet port on a worker.
    lab.sh(1, "setsid nohup python3 -c 'import socket,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((\"0.0.0.0\",6443)); s.listen(); time.sleep(600)' >/dev/null 2>&1 &");
    lab.sh(3, "setsid nohup python3 -c 'import socket,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((\"0.0.0.0\",10250)); s.listen(); time.sleep(600)' >/dev/null 2>&1 &");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let o = up(&inv, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("port 6443 is already in use"), "{t}");
    assert!(t.contains("port 10250 is already in use"), "{t}");
    assert!(t.contains("nothing was changed"), "{t}");
    // Nothing changed: the hosts keep their lab names and have no kubestrap files.
    assert_eq!(lab.sh(1, "hostname").trim(), "labhost-1");
    assert_eq!(
        lab.sh(2, "test -e /etc/sysctl.d/k8s.conf && echo yes || echo no")
            .trim(),
        "no"
    );
}

#[test]
#[ignore = "needs root, qemu and the VM lab: run by scripts/test"]
fn vm_tier_one_plus_two_real_systemd_swap_containerd() {
    // The image tarball comes from the namespaced tier's tool; the VMs get it through kubestrap.
    let o = run_lab(&lab_script(), &["images", "1.31.2"]);
    assert!(o.status.success(), "lab images:\n{}", text(&o));
    let vms = Lab::up_with(root().join("scripts/lab-vms"), 3);
    let inv = vms.inventory(&["--version", "1.31.2", "--preload"]);

    // Before: swap on, containerd with cgroupfs, the NAT address on eth0.
    assert!(vms.sh(1, "awk 'NR>1' /proc/swaps").contains("/swapfile"));
    assert!(vms.sh(1, "ip -o addr").contains("10.0.2.15"));

    let first = up(&inv, &[]);
    assert_eq!(first.status.code(), Some(0), "up on VMs:\n{}", text(&first));
    let names = ["cp1", "w1", "w2"];
    for (k, name) in names.iter().enumerate().map(|(i, n)| (i + 1, n)) {
        assert_eq!(vms.sh(k, "hostname").trim(), *name);
        assert_eq!(
            vms.sh(k, "awk 'NR>1' /proc/swaps").trim(),
            "",
            "swap still on in vm {k}"
        );
        assert!(vms
            .sh(k, "grep swap /etc/fstab")
            .starts_with("# disabled by kubestrap"));
        assert!(vms
            .sh(k, "cat /etc/containerd/config.toml")
            .contains("SystemdCgroup = true"));
        assert_eq!(vms.sh(k, "systemctl is-active containerd").trim(), "active");
        assert_eq!(vms.sh(k, "systemctl is-enabled kubelet").trim(), "enabled");
        assert_eq!(
            vms.sh(k, "sysctl -n net.bridge.bridge-nf-call-iptables")
                .trim(),
            "1"
        );
        assert!(vms.sh(k, "lsmod").contains("br_netfilter"));
        let held = vms.sh(k, "apt-mark showhold");
        assert!(
            ["kubeadm", "kubelet", "kubectl"]
                .iter()
                .all(|p| held.lines().any(|l| l == *p)),
            "{held}"
        );
    }
    let json = vms.sh(
        1,
        "kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes -o json",
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    for (j, name) in names.iter().enumerate() {
        let (ip, ready, _) = node_status(&v, name);
        assert_eq!(
            ip,
            format!("192.168.77.{}", 11 + j),
            "node IP of {name} must not be the NAT address"
        );
        assert!(ready, "node {name} not Ready");
    }
    assert_noop_rerun(&inv);

    // Drift (issue 12): swap turned back on on w1. plan names that host and that change only,
    // up does exactly that, and plan then says no changes.
    vms.sh(2, "swapon /swapfile");
    assert!(vms.sh(2, "awk 'NR>1' /proc/swaps").contains("/swapfile"));
    let inv_s = inv.to_str().unwrap();
    let plan = kubestrap(&["plan", "-i", inv_s, "--output", "json"]);
    assert_eq!(plan.status.code(), Some(3), "plan:\n{}", text(&plan));
    let swap_on_w1 = vec![
        ("cp1".to_string(), BTreeSet::new()),
        (
            "w1".to_string(),
            BTreeSet::from(["swap turned off".to_string()]),
        ),
        ("w2".to_string(), BTreeSet::new()),
    ];
    assert_eq!(
        changes(&event(&plan, "plan")),
        swap_on_w1,
        "{}",
        text(&plan)
    );
    assert!(
        vms.sh(2, "awk 'NR>1' /proc/swaps").contains("/swapfile"),
        "plan turned swap off"
    );
    let fix = up(&inv, &["--output", "json"]);
    assert_eq!(fix.status.code(), Some(0), "up:\n{}", text(&fix));
    assert_eq!(
        changes(&event(&fix, "summary")),
        swap_on_w1,
        "{}",
        text(&fix)
    );
    assert_eq!(vms.sh(2, "awk 'NR>1' /proc/swaps").trim(), "");
    let again = kubestrap(&["plan", "-i", inv_s]);
    assert_eq!(again.status.code(), Some(0), "plan:\n{}", text(&again));
}

/// Two runs at once never both change a cluster: a second `up` from the same console stops at
/// the console's lock, one from another console (another state folder) at the hosts' lock, and
/// a host held by someone else stops the whole run before anything changes. Each names who
/// holds the lock.
#[test]
#[ignore = "needs root and the namespaced lab: run by scripts/test"]
fn two_runs_at_once_never_both_init() {
    let lab = Lab::up(2);
    let inv = lab.inventory(&["--version", "1.31.2", "--preload"]);

    // Another console holds host 2 (the lock as kubestrap takes it, by hand).
    lab.sh(
        2,
        "mkdir -p /run/kubestrap; setsid sh -c 'exec 9>>/run/kubestrap/lab.lock; flock 9; \
         echo \"kubestrap up on other-console, pid 4242, since then\" > /run/kubestrap/lab.holder; \
         exec sleep 300' </dev/null >/dev/null 2>&1 & echo $! > /run/kubestrap/test-holder.pid; sleep 0.5",
    );
    let t = std::time::Instant::now();
    let o = up(&inv, &[]);
    let secs = t.elapsed().as_secs_f64();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("other-console, pid 4242"), "{out}");
    assert!(out.contains("nothing was changed"), "{out}");
    assert!(secs < 30.0, "the held lock took {secs:.1}s to report");
    assert_eq!(lab.sh(1, "hostname").trim(), "labhost-1", "cp1 was changed");
    lab.sh(2, "kill $(cat /run/kubestrap/test-holder.pid)");

    // Now a real run holds the locks; a second one from this console and a third from another
    // state folder start while it works.
    let first = Command::new(env!("CARGO_BIN_EXE_kubestrap"))
        .args(["up", "-i", inv.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let logs = inv.parent().unwrap().join(".kubestrap/lab/logs");
    let held = |name: &str| {
        std::fs::read_dir(&logs)
            .ok()
            .into_iter()
            .flatten()
            .any(|d| {
                std::fs::read_to_string(d.unwrap().path().join(format!("{name}.log")))
                    .is_ok_and(|l| l.contains("# lock: Held"))
            })
    };
    let t = std::time::Instant::now();
    while !(held("cp1") && held("w1")) {
        assert!(t.elapsed().as_secs() < 60, "the first run took no lock");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let second = up(&inv, &[]);
    let s = text(&second);
    assert_eq!(second.status.code(), Some(1), "{s}");
    assert!(
        s.contains("another kubestrap run holds this cluster"),
        "{s}"
    );
    assert!(s.contains("kubestrap up on"), "{s}");
    let other = tempfile::tempdir().unwrap();
    let inv2 = other.path().join("inventory.yaml");
    std::fs::copy(&inv, &inv2).unwrap();
    let third = up(&inv2, &[]);
    let s = text(&third);
    assert_eq!(third.status.code(), Some(1), "{s}");
    assert!(s.contains("holds this cluster's lock on the host"), "{s}");
    assert!(s.contains("nothing was changed"), "{s}");

    let first = first.wait_with_output().unwrap();
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let inits = lab.sh(
        1,
        "grep -c '^kubeadm init' /var/log/kubestrap-lab/calls.log || true",
    );
    assert_eq!(inits.trim(), "1", "kubeadm init ran {} times", inits.trim());
    // The lock went with the first run's sessions: a re-run takes it and changes nothing.
    assert_noop_rerun(&inv);
}
