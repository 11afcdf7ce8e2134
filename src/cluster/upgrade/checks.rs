//! The upgrade's checks, as pure functions of what the hosts and the API server said: every
//! problem on every host is reported together, before anything changes.

use std::collections::BTreeSet;

use super::version::{self, Path, Version};
use crate::cluster::init::NodeStatus;
use crate::cluster::preflight::{Facts, Finding};
use crate::plan::Role;

/// One inventory host as the checks see it.
pub struct HostView<'a> {
    pub name: &'a str,
    pub role: Role,
    pub facts: &'a Facts,
}

/// What the checks decided.
#[derive(Debug)]
pub struct Decision {
    pub findings: Vec<Finding>,
    /// The cluster's version before (the API server's).
    pub running: Option<Version>,
    pub path: Option<Path>,
    /// Indices (into the hosts given) of the hosts that still need work, in inventory order.
    pub todo: Vec<usize>,
}

impl Decision {
    pub fn refused(&self) -> bool {
        self.findings.iter().any(|f| f.error)
    }
}

fn finding(host: &str, error: bool, check: &'static str, message: String) -> Finding {
    Finding {
        host: host.to_string(),
        error,
        check,
        message,
    }
}

/// `server`: the API server's gitVersion (None when it could not be read, with `server_error`);
/// `nodes`: the registered nodes; `cp`: index of the first control plane in `hosts`;
/// `ours`: nodes an earlier `kubestrap upgrade` cordoned and has not uncordoned yet.
pub fn decide(
    target: Version,
    repo: &str,
    server: Result<Version, String>,
    nodes: &[NodeStatus],
    hosts: &[HostView],
    cp: usize,
    ours: &BTreeSet<String>,
) -> Decision {
    let mut out = Vec::new();
    let cp_name = hosts[cp].name;
    let running = match server {
        Ok(v) => v,
        Err(e) => {
            out.push(finding(cp_name, true, "version", format!(
                "cannot read the cluster's version from the API server ({e}): `kubestrap upgrade` works on a running cluster; build it with `kubestrap up` first"
            )));
            return Decision {
                findings: out,
                running: None,
                path: None,
                todo: vec![],
            };
        }
    };
    let path = version::path(running, target);
    if let Path::Refused(why) = &path {
        out.push(finding(cp_name, true, "version", why.clone()));
        return Decision {
            findings: out,
            running: Some(running),
            path: Some(path),
            todo: vec![],
        };
    }

    // Stacked etcd: kubeadm upgrade apply restarts it; it must be healthy first.
    let etcd = hosts[cp].facts.get("etcd").trim();
    if !etcd.is_empty() && etcd != "ok" {
        out.push(finding(cp_name, true, "etcd", format!(
            "etcd is not healthy (`kubectl get --raw /readyz/etcd` on {cp_name} said: {etcd}): the upgrade restarts etcd; fix it first (`crictl ps -a --name etcd`, the etcd pod's log)"
        )));
    }
    let mut todo = Vec::new();
    for (i, h) in hosts.iter().enumerate() {
        let Some(n) = nodes.iter().find(|n| n.name == h.name) else {
            out.push(finding(h.name, true, "node", format!(
                "{} is not a node of the cluster: join it first with `kubestrap up` at the cluster's version (kubernetesVersion \"{}\"), or take it out of the inventory",
                h.name, running
            )));
            continue;
        };
        let kubelet = version::release(&n.kubelet_version);
        let pkg = |p: &str| version::release(h.facts.get(&format!("pkg_{p}")));
        if let Some(k) = kubelet.filter(|k| *k > target) {
            out.push(finding(h.name, true, "version", format!(
                "the kubelet on {} is v{k}, newer than the target v{target}: kubestrap does not downgrade nodes",
                h.name
            )));
            continue;
        }
        if let Some(k) = kubelet.filter(|k| k.major == target.major && k.minor + 1 < target.minor) {
            out.push(finding(h.name, true, "version", format!(
                "the kubelet on {} is v{k}, more than one minor older than v{target} (kubeadm: \"There are kubelets in this cluster that are too old\"): upgrade the cluster one minor at a time",
                h.name
            )));
        }
        let at_target = kubelet == Some(target)
            && ["kubeadm", "kubelet", "kubectl"]
                .iter()
                .all(|p| pkg(p) == Some(target));
        let ours_cordoned = n.unschedulable && ours.contains(h.name);
        let needs = !at_target || ours_cordoned || (i == cp && running != target);
        if !n.ready {
            if ours.contains(h.name) {
                out.push(finding(h.name, false, "node", format!(
                    "node {} is NotReady; an earlier upgrade left it cordoned: it is upgraded again now",
                    h.name
                )));
            } else {
                out.push(finding(h.name, true, "node", format!(
                    "node {} is NotReady: upgrade a healthy cluster only; look at it first (`kubectl describe node {}`, `journalctl -u kubelet` on the host)",
                    h.name, h.name
                )));
            }
        }
        if n.unschedulable && !ours.contains(h.name) {
            out.push(finding(
                h.name,
                false,
                "node",
                format!(
                    "node {} was cordoned before this upgrade: it is upgraded and left cordoned",
                    h.name
                ),
            ));
        }
        if needs && !at_target {
            package_findings(&mut out, h, target, repo);
        }
        if needs {
            todo.push(i);
        }
    }
    for n in nodes
        .iter()
        .filter(|n| !hosts.iter().any(|h| h.name == n.name))
    {
        out.push(finding(cp_name, false, "node", format!(
            "node {} (kubelet {}) is not in the inventory: it is not upgraded (its kubelet may stay up to three minors behind the API server)",
            n.name, n.kubelet_version
        )));
    }
    Decision {
        findings: out,
        running: Some(running),
        path: Some(path),
        todo,
    }
}

/// The target's packages must be in the repository the host will use.
fn package_findings(out: &mut Vec<Finding>, h: &HostView, target: Version, repo: &str) {
    let f = h.facts;
    let want = target.to_string();
    if f.get("repo_ok") != "yes" {
        out.push(finding(h.name, true, "packages", format!(
            "cannot read the package repository {repo} from this host ({}): check packageRepository and the host's network or proxy",
            f.get("repo_error").trim()
        )));
        return;
    }
    let missing: Vec<&str> = ["kubeadm", "kubelet", "kubectl"]
        .into_iter()
        .filter(|p| f.get(&format!("target_{p}")).is_empty())
        .collect();
    if missing.is_empty() {
        return;
    }
    let avail = f.get("avail_kubeadm").trim();
    let mut msg = format!(
        "{} {want} not in {repo} (kubeadm versions there: {})",
        missing.join(", "),
        if avail.is_empty() { "none" } else { avail }
    );
    if let Some(r) = version::repository_for(repo, target) {
        msg.push_str(&format!(
            "; the repository is one per minor: set `packageRepository: {r}` for v{target}"
        ));
    } else {
        msg.push_str("; check kubernetesVersion and packageRepository");
    }
    out.push(finding(h.name, true, "packages", msg));
}

/// The images the target needs on a host, under `repo`: the control-plane components on control
/// planes, kube-proxy everywhere (kubeadm upgrades its DaemonSet; the node then starts the new one).
pub fn target_images(repo: &str, target: Version, role: Role) -> Vec<String> {
    let r = repo.trim_end_matches('/');
    let mut v = vec![];
    if role == Role::ControlPlane {
        for c in [
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
        ] {
            v.push(format!("{r}/{c}:v{target}"));
        }
    }
    v.push(format!("{r}/kube-proxy:v{target}"));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        version::release(s).unwrap()
    }
    fn node(name: &str, kubelet: &str, ready: bool, unschedulable: bool) -> NodeStatus {
        NodeStatus {
            name: name.into(),
            ready,
            internal_ip: String::new(),
            kubelet_version: kubelet.into(),
            unschedulable,
            control_plane_taint: false,
        }
    }
    fn facts(pkg: &str, target_in_repo: bool) -> Facts {
        let t = if target_in_repo { "1.32.1-1.1" } else { "" };
        Facts::parse(&format!(
            "FACT pkg_kubeadm={pkg}\nFACT pkg_kubelet={pkg}\nFACT pkg_kubectl={pkg}\nFACT repo_ok=yes\n\
             FACT avail_kubeadm=1.31.1-1.1 1.31.2-1.1 \nFACT target_kubeadm={t}\nFACT target_kubelet={t}\nFACT target_kubectl={t}\n"
        ))
    }
    const REPO: &str = "http://10.77.0.1:8080/k8s/core:/stable:/v1.32/deb/";

    fn three(f: &[Facts; 3]) -> Vec<HostView<'_>> {
        vec![
            HostView {
                name: "cp",
                role: Role::ControlPlane,
                facts: &f[0],
            },
            HostView {
                name: "w1",
                role: Role::Worker,
                facts: &f[1],
            },
            HostView {
                name: "w2",
                role: Role::Worker,
                facts: &f[2],
            },
        ]
    }

    #[test]
    fn a_healthy_cluster_one_minor_behind_upgrades_every_host() {
        let f = [
            facts("1.31.2-1.1", true),
            facts("1.31.2-1.1", true),
            facts("1.31.2-1.1", true),
        ];
        let nodes = [
            node("cp", "v1.31.2", true, false),
            node("w1", "v1.31.2", true, false),
            node("w2", "v1.31.2", true, false),
        ];
        let d = decide(
            v("1.32.1"),
            REPO,
            Ok(v("1.31.2")),
            &nodes,
            &three(&f),
            0,
            &BTreeSet::new(),
        );
        assert!(!d.refused(), "{:?}", d.findings);
        assert_eq!(d.todo, vec![0, 1, 2]);
        assert_eq!(d.path, Some(Path::Minor));
    }

    #[test]
    fn a_rerun_skips_the_nodes_already_at_the_target() {
        let f = [
            facts("1.32.1-1.1", true),
            facts("1.32.1-1.1", true),
            facts("1.31.2-1.1", true),
        ];
        let nodes = [
            node("cp", "v1.32.1", true, false),
            node("w1", "v1.32.1", true, false),
            node("w2", "v1.31.2", true, true),
        ];
        let ours: BTreeSet<String> = ["w2".to_string()].into();
        let d = decide(
            v("1.32.1"),
            REPO,
            Ok(v("1.32.1")),
            &nodes,
            &three(&f),
            0,
            &ours,
        );
        assert!(!d.refused(), "{:?}", d.findings);
        assert_eq!(d.todo, vec![2]);
        assert_eq!(d.path, Some(Path::Same));
        // Everything at the target: nothing to do.
        let f = [
            facts("1.32.1-1.1", true),
            facts("1.32.1-1.1", true),
            facts("1.32.1-1.1", true),
        ];
        let nodes = [
            node("cp", "v1.32.1", true, false),
            node("w1", "v1.32.1", true, false),
            node("w2", "v1.32.1", true, false),
        ];
        let d = decide(
            v("1.32.1"),
            REPO,
            Ok(v("1.32.1")),
            &nodes,
            &three(&f),
            0,
            &BTreeSet::new(),
        );
        assert!(d.todo.is_empty() && d.findings.is_empty(), "{d:?}");
    }

    #[test]
    fn every_problem_is_reported_together() {
        let f = [
            facts("1.31.2-1.1", false),
            facts("1.31.2-1.1", true),
            facts("", true),
        ];
        let nodes = [
            node("cp", "v1.31.2", true, false),
            node("w1", "v1.31.2", false, false),
            node("stray", "v1.31.2", true, false),
        ];
        let d = decide(
            v("1.32.1"),
            "http://r/k8s/core:/stable:/v1.31/deb/",
            Ok(v("1.31.2")),
            &nodes,
            &three(&f),
            0,
            &BTreeSet::new(),
        );
        assert!(d.refused());
        let msgs: Vec<String> = d
            .findings
            .iter()
            .map(|f| format!("{} {} {}", f.host, f.error, f.message))
            .collect();
        let all = msgs.join("\n");
        assert!(all.contains("cp true kubeadm, kubelet, kubectl 1.32.1 not in http://r/k8s/core:/stable:/v1.31/deb/"), "{all}");
        assert!(
            all.contains(
                "set `packageRepository: http://r/k8s/core:/stable:/v1.32/deb/` for v1.32.1"
            ),
            "{all}"
        );
        assert!(all.contains("w1 true node w1 is NotReady"), "{all}");
        assert!(
            all.contains("w2 true w2 is not a node of the cluster"),
            "{all}"
        );
        assert!(
            all.contains("cp false node stray (kubelet v1.31.2) is not in the inventory"),
            "{all}"
        );
    }

    #[test]
    fn skip_a_minor_and_downgrade_are_refused_before_anything_else() {
        let f = [
            facts("1.30.4-1.1", true),
            facts("1.30.4-1.1", true),
            facts("1.30.4-1.1", true),
        ];
        let nodes = [
            node("cp", "v1.30.4", true, false),
            node("w1", "v1.30.4", true, false),
            node("w2", "v1.30.4", true, false),
        ];
        let d = decide(
            v("1.32.1"),
            REPO,
            Ok(v("1.30.4")),
            &nodes,
            &three(&f),
            0,
            &BTreeSet::new(),
        );
        assert!(d.refused() && d.todo.is_empty());
        assert!(
            d.findings[0]
                .message
                .contains("one minor version at a time"),
            "{:?}",
            d.findings
        );
        let d = decide(
            v("1.31.2"),
            REPO,
            Ok(v("1.32.1")),
            &nodes,
            &three(&f),
            0,
            &BTreeSet::new(),
        );
        assert!(
            d.findings[0].message.contains("cannot downgrade"),
            "{:?}",
            d.findings
        );
        let d = decide(
            v("1.32.1"),
            REPO,
            Err("connection refused".into()),
            &nodes,
            &three(&f),
            0,
            &BTreeSet::new(),
        );
        assert!(
            d.findings[0]
                .message
                .contains("cannot read the cluster's version"),
            "{:?}",
            d.findings
        );
    }

    #[test]
    fn a_node_cordoned_by_someone_else_is_a_warning_and_ours_may_be_not_ready() {
        let f = [
            facts("1.31.2-1.1", true),
            facts("1.31.2-1.1", true),
            facts("1.31.2-1.1", true),
        ];
        let nodes = [
            node("cp", "v1.31.2", true, false),
            node("w1", "v1.31.2", true, true),
            node("w2", "v1.31.2", false, true),
        ];
        let ours: BTreeSet<String> = ["w2".to_string()].into();
        let d = decide(
            v("1.32.1"),
            REPO,
            Ok(v("1.31.2")),
            &nodes,
            &three(&f),
            0,
            &ours,
        );
        assert!(!d.refused(), "{:?}", d.findings);
        assert!(d
            .findings
            .iter()
            .any(|f| f.host == "w1" && f.message.contains("left cordoned")));
        assert!(d
            .findings
            .iter()
            .any(|f| f.host == "w2" && f.message.contains("upgraded again")));
    }

    #[test]
    fn an_unhealthy_etcd_stops_the_upgrade() {
        let mut f = [
            facts("1.31.2-1.1", true),
            facts("1.31.2-1.1", true),
            facts("1.31.2-1.1", true),
        ];
        let nodes = [
            node("cp", "v1.31.2", true, false),
            node("w1", "v1.31.2", true, false),
            node("w2", "v1.31.2", true, false),
        ];
        f[0].0.insert("etcd".into(), "ok".into());
        let d = decide(
            v("1.32.1"),
            REPO,
            Ok(v("1.31.2")),
            &nodes,
            &three(&f),
            0,
            &BTreeSet::new(),
        );
        assert!(!d.refused(), "{:?}", d.findings);
        f[0].0.insert("etcd".into(), "Error from server (InternalError): an error on the server (\"internal server error: etcd failed: reason withheld\") has prevented the request from succeeding".into());
        let d = decide(
            v("1.32.1"),
            REPO,
            Ok(v("1.31.2")),
            &nodes,
            &three(&f),
            0,
            &BTreeSet::new(),
        );
        assert!(d.refused());
        assert!(
            d.findings
                .iter()
                .any(|x| x.host == "cp" && x.message.starts_with("etcd is not healthy")),
            "{:?}",
            d.findings
        );
    }

    #[test]
    fn images_per_role() {
        let t = v("1.32.1");
        assert_eq!(
            target_images("registry.k8s.io", t, Role::Worker),
            vec!["registry.k8s.io/kube-proxy:v1.32.1"]
        );
        assert_eq!(target_images("r.io/x/", t, Role::ControlPlane).len(), 4);
    }
}
