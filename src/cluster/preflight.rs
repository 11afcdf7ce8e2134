//! Phase 2: read every host's facts in one round trip each, then check them all, per host and
//! across hosts, and report every problem together before anything changes.

use std::collections::{BTreeMap, HashMap};

use minijinja::context;

use super::phase::Step;
use super::{run_script, Run, StepError};
use crate::plan::Role;

#[derive(Debug, Clone, Default)]
pub struct Facts(pub BTreeMap<String, String>);

impl Facts {
    pub fn get(&self, k: &str) -> &str {
        self.0.get(k).map(String::as_str).unwrap_or("")
    }
    pub fn yes(&self, k: &str) -> bool {
        self.get(k) == "yes"
    }
    pub fn parse(stdout: &str) -> Facts {
        Facts(
            stdout
                .lines()
                .filter_map(|l| l.strip_prefix("FACT "))
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.trim().to_string()))
                .collect(),
        )
    }
}

/// A preflight finding. Errors stop the run before any change; warnings are shown.
#[derive(Debug, Clone)]
pub struct Finding {
    pub host: String,
    pub error: bool,
    pub check: &'static str,
    pub message: String,
}

/// Read every host's facts. With `fast` (on `up`), each host also answers whether anything the
/// prepare script checks has changed since its last successful run (`prepare_unchanged`, see
/// templates/scripts/fastcheck.sh.j2), and an unchanged control plane adds the cluster state that
/// its prepare script would have read: a converged host then costs this one round trip.
pub async fn gather(run: &mut Run, fast: bool) {
    let p = &run.plan;
    let images: Vec<minijinja::Value> = p
        .preload
        .iter()
        .map(|i| context! { path => i.remote.clone(), sha256 => i.sha256.clone() })
        .collect();
    let probe = p.external_endpoint();
    let first = p.control_plane().name.clone();
    let scripts: Vec<Result<String, String>> = run
        .hosts
        .iter()
        .map(|h| {
            // Only the first control plane reads the cluster state (see Plan::is_first_control_plane).
            let first_cp = h.node.name == first;
            let script = crate::templates::script(
                "scripts/facts.sh.j2",
                context! {
                    images => images.clone(),
                    fast => fast,
                    runtime => p.runtime.as_str(),
                    cp_state => first_cp,
                    admin_sha256 => if fast && first_cp { super::prepare::kubeconfig_source_sha(p) } else { String::new() },
                    cni_manifest => super::network::CNI_MANIFEST,
                    endpoint_host => probe.as_ref().filter(|_| first_cp).map(|e| e.0.clone()),
                    endpoint_port => probe.as_ref().map(|e| e.1),
                },
            )
            .map_err(|e| e.to_string())?;
            if !fast {
                return Ok(script);
            }
            let sum = super::prepare::input_sha(p, &h.node).map_err(|e| e.to_string())?;
            Ok(super::prepare::set_input_sha(&script, &sum))
        })
        .collect();
    let timeout = run.plan.timeouts.command;
    // The first control plane's output is kept: it may carry the cluster state.
    let first_cp_name = &first;
    let facts: std::sync::Mutex<HashMap<usize, (Facts, Option<String>)>> = Default::default();
    run.each(
        Step::Preflight,
        |_| true,
        |i, node, sess| {
            let script = scripts[i].clone();
            let facts = &facts;
            async move {
                let script = script.map_err(|e| StepError::new(Step::Preflight, e))?;
                let (_, stdout) = run_script(&sess, Step::Preflight, &script, timeout).await?;
                facts.lock().unwrap().insert(
                    i,
                    (
                        Facts::parse(&stdout),
                        (*first_cp_name == node.name).then_some(stdout),
                    ),
                );
                Ok(vec![])
            }
        },
    )
    .await;
    for (i, (f, stdout)) in facts.into_inner().unwrap() {
        if let Some(out) = stdout.filter(|_| fast && f.yes("prepare_unchanged")) {
            run.cp_state = Some(super::prepare::CpState::parse(&out));
        }
        run.hosts[i].facts = f;
    }
}

/// The refusal for a host that is part of a cluster (it has kubelet.conf or admin.conf) whose
/// kubeadm package is at another Kubernetes version than `want` ("1.31.2").
pub fn version_change(f: &Facts, want: &str) -> Option<String> {
    let in_cluster = f.yes("kubelet_conf") || f.yes("admin_conf");
    let pkg = f.get("kubeadm_version");
    let running = pkg.split('-').next().unwrap_or("").trim_start_matches('v');
    if !in_cluster || running.is_empty() || running == want {
        return None;
    }
    Some(format!(
        "this host is part of the cluster at Kubernetes v{running} (kubeadm package {pkg}), the inventory says v{want}: \
         `kubestrap up` never changes a running cluster's version (kubelets newer than the API server break the version skew policy). \
         Run `kubestrap upgrade -i FILE` to upgrade the cluster to v{want} (a rolling upgrade in kubeadm's order), or set kubernetesVersion back to \"{running}\""
    ))
}

/// What the control plane's probe of an external endpoint found wrong (templates/scripts/
/// facts.sh.j2: `open`, `refused`, `timeout` or `error <reason>`; absent when not probed).
fn endpoint_problem(probe: &str) -> Option<String> {
    match probe {
        "" | "open" | "refused" => None,
        "timeout" => Some("no answer in 5 s".into()),
        other => Some(other.strip_prefix("error ").unwrap_or(other).to_string()),
    }
}

fn kernel_ok(release: &str) -> bool {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    let major: u32 = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let minor: u32 = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    major >= 6 || (major == 5 && [4, 10, 15].contains(&minor)) || (major == 5 && minor > 15)
}

/// Check the gathered facts. Hosts that already belong to this cluster skip the checks that only
/// make sense before kubeadm ran (ports, swap was handled then).
pub fn check(run: &Run, upgrading: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut add = |host: &str, error: bool, check: &'static str, message: String| {
        out.push(Finding {
            host: host.to_string(),
            error,
            check,
            message,
        })
    };
    let mut machine_ids: HashMap<String, Vec<String>> = HashMap::new();
    let mut uuids: HashMap<String, Vec<String>> = HashMap::new();
    for h in run.hosts.iter().filter(|h| h.alive()) {
        let f = &h.facts;
        let name = h.node.name.as_str();
        if f.0.is_empty() {
            continue;
        }
        if let Some(why) = endpoint_problem(f.get("endpoint_tcp")) {
            add(
                name,
                true,
                "endpoint",
                format!(
                    "nothing answers at controlPlaneEndpoint {ep} from {name} ({why}): with `loadBalancer: external` a load balancer of yours must listen there and pass TCP to port 6443 of the control plane; start or fix it (before `kubeadm init` a refused connection is fine: the load balancer is there, its API server not yet), or set controlPlaneEndpoint to the control plane's own address",
                    ep = run.plan.api_endpoint
                ),
            );
        }
        if f.get("uid") != "0" {
            add(
                name,
                true,
                "sudo",
                format!(
                    "commands do not run as root (uid {}); the SSH user needs passwordless sudo",
                    f.get("uid")
                ),
            );
        }
        if !f.get("arch").is_empty() && !["x86_64", "aarch64"].contains(&f.get("arch")) {
            add(
                name,
                true,
                "arch",
                format!(
                    "architecture {} is not supported (x86_64 or aarch64)",
                    f.get("arch")
                ),
            );
        }
        if !kernel_ok(f.get("kernel")) {
            add(
                name,
                true,
                "kernel",
                format!(
                    "kernel {} is not supported by kubeadm (5.4, 5.10, 5.15 or 6.x and later)",
                    f.get("kernel")
                ),
            );
        }
        match f.get("cgroupfs") {
            "cgroup2fs" => {}
            "tmpfs" => add(name, false, "cgroups", "cgroup v1 host; kubelet 1.35+ refuses cgroup v1 by default: use a cgroup v2 OS".into()),
            other => add(name, false, "cgroups", format!("no cgroup filesystem at /sys/fs/cgroup (found {other:?}); the kubelet needs cgroup v2")),
        }
        if f.get("cgroupfs") == "cgroup2fs" {
            let ctrls = f.get("cgroup_controllers");
            let missing: Vec<&str> = ["cpu", "cpuset", "memory", "pids"]
                .into_iter()
                .filter(|c| !ctrls.split_whitespace().any(|x| x == *c))
                .collect();
            if !missing.is_empty() && !ctrls.is_empty() {
                add(
                    name,
                    true,
                    "cgroups",
                    format!(
                        "required cgroup v2 controllers missing: {}",
                        missing.join(", ")
                    ),
                );
            }
        }
        if !f.yes("has_apt") {
            add(
                name,
                true,
                "os",
                format!(
                    "{} has no apt-get; kubestrap supports Debian and Ubuntu hosts",
                    f.get("os")
                ),
            );
        }
        // A host already in the cluster runs the version its packages have: `up` never changes
        // it (new kubelets before a `kubeadm upgrade` break the version skew policy).
        if let Some(msg) = version_change(f, &run.plan.version).filter(|_| !upgrading) {
            add(name, true, "version", msg);
        }
        let repo_configured = !f.get("kubeadm_version").is_empty();
        if !repo_configured && (!f.yes("has_curl") || !f.yes("has_gpg")) {
            add(name, true, "tools", "curl and gpg are needed to add the Kubernetes package repository; install them (apt-get install curl gpg)".into());
        }
        let addrs: Vec<&str> = f.get("addrs").split_whitespace().collect();
        if !addrs.is_empty() && !addrs.contains(&h.node.internal_address.as_str()) {
            add(name, true, "internalAddress", format!(
                "internalAddress {} is not an address of this host (it has {}); set internalAddress to one of them",
                h.node.internal_address, addrs.join(", ")));
        }
        if addrs.contains(&"10.0.2.15") {
            add(name, false, "vagrant-nat", format!(
                "this host has the Vagrant NAT address 10.0.2.15; kubestrap pins the node IP to internalAddress {} so the cluster does not use it",
                h.node.internal_address));
        }
        let joined = f.yes("kubelet_conf") || f.yes("admin_conf");
        if !joined {
            let listening: Vec<&str> = f.get("listening").split_whitespace().collect();
            let mut ports = vec!["10250"];
            if h.node.role == Role::ControlPlane {
                ports.extend(["6443", "10257", "10259", "2379", "2380"]);
            }
            for p in ports {
                if listening.contains(&p) {
                    add(name, true, "ports", format!("port {p} is already in use; kubeadm needs it free (another Kubernetes install? `kubestrap reset` or stop that service)"));
                }
            }
        }
        if h.node.role == Role::ControlPlane {
            let cpus: u32 = f.get("cpus").parse().unwrap_or(0);
            let mem: u64 = f.get("mem_mb").parse().unwrap_or(0);
            if cpus < 2 {
                add(
                    name,
                    true,
                    "cpu",
                    format!("the control plane needs at least 2 CPUs (has {cpus})"),
                );
            }
            if mem < 1700 {
                add(
                    name,
                    true,
                    "memory",
                    format!("the control plane needs at least 1700 MB of memory (has {mem} MB)"),
                );
            }
        }
        if !f.get("machine_id").is_empty() {
            machine_ids
                .entry(f.get("machine_id").to_string())
                .or_default()
                .push(name.to_string());
        }
        if !f.get("product_uuid").is_empty() {
            uuids
                .entry(f.get("product_uuid").to_string())
                .or_default()
                .push(name.to_string());
        }
    }
    for (what, map) in [("machine-id", &machine_ids), ("product_uuid", &uuids)] {
        for names in map.values().filter(|v| v.len() > 1) {
            for n in names {
                out.push(Finding {
                    host: n.clone(),
                    error: true,
                    check: "duplicates",
                    message: format!(
                        "{what} is the same on {}; cloned machines must get unique ids (e.g. `rm /etc/machine-id && systemd-machine-id-setup`)",
                        names.join(", ")
                    ),
                });
            }
        }
    }
    out
}

/// Apply findings: each host with an error is marked failed (all its errors in one message).
pub fn apply(run: &mut Run, findings: &[Finding]) {
    for f in findings.iter().filter(|f| !f.error) {
        run.progress
            .warn(Some(&f.host), &format!("[{}] {}", f.check, f.message));
    }
    let mut per_host: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for f in findings.iter().filter(|f| f.error) {
        per_host
            .entry(&f.host)
            .or_default()
            .push(format!("[{}] {}", f.check, f.message));
    }
    for (host, msgs) in per_host {
        if let Some(i) = run.hosts.iter().position(|h| h.node.name == host) {
            run.fail(i, StepError::new(Step::Preflight, msgs.join("; ")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_that_refuses_is_there_one_that_times_out_is_not() {
        for ok in ["", "open", "refused"] {
            assert_eq!(endpoint_problem(ok), None, "{ok}");
        }
        assert_eq!(
            endpoint_problem("timeout").as_deref(),
            Some("no answer in 5 s")
        );
        assert_eq!(
            endpoint_problem("error No route to host").as_deref(),
            Some("No route to host")
        );
    }

    #[test]
    fn a_running_cluster_keeps_its_version() {
        let f = Facts::parse("FACT kubelet_conf=yes\nFACT kubeadm_version=1.31.2-1.1\n");
        assert_eq!(version_change(&f, "1.31.2"), None);
        let m = version_change(&f, "1.32.0").unwrap();
        assert!(m.starts_with("this host is part of the cluster at Kubernetes v1.31.2 (kubeadm package 1.31.2-1.1), the inventory says v1.32.0"), "{m}");
        // A patch change too; a host not in the cluster yet may get any version.
        assert!(version_change(&f, "1.31.3").is_some());
        let fresh = Facts::parse(
            "FACT kubelet_conf=no\nFACT admin_conf=no\nFACT kubeadm_version=1.30.1-1.1\n",
        );
        assert_eq!(version_change(&fresh, "1.31.2"), None);
        let cp = Facts::parse("FACT admin_conf=yes\nFACT kubeadm_version=1.31.2-1.1\n");
        assert!(version_change(&cp, "1.30.9").is_some(), "a downgrade too");
    }

    #[test]
    fn kernels() {
        assert!(kernel_ok("6.1.0-26-amd64"));
        assert!(kernel_ok("5.15.0-105-generic"));
        assert!(kernel_ok("5.10.0-30-amd64"));
        assert!(!kernel_ok("4.19.0-26-amd64"));
        assert!(!kernel_ok("3.10.0-1160.el7.x86_64"));
    }

    #[test]
    fn facts_parse() {
        let f = Facts::parse("FACT a=1\nnoise\nFACT b=x=y \nFACT empty=\n");
        assert_eq!(f.get("a"), "1");
        assert_eq!(f.get("b"), "x=y");
        assert_eq!(f.get("empty"), "");
        assert_eq!(f.get("missing"), "");
    }
}
