//! `kubestrap reset`: take hosts out of the cluster and undo kubeadm on them. For each worker,
//! while the API answers: drain and delete its node; then on every chosen host `kubeadm reset -f`
//! and the leftovers it does not remove (templates/scripts/reset.sh.j2). Workers go first, in
//! parallel; the control plane last. Resetting the control plane also removes the admin
//! kubeconfig copy in the state folder.

use std::sync::Arc;

use minijinja::context;

use super::init::KUBECTL;
use super::phase::Step;
use super::{run_script, Run, StepError};
use crate::plan::{Plan, Role};
use crate::ssh::{self, HostLog, Session};

/// The API of the cluster, reached through the control plane's admin.conf.
pub struct Api {
    sess: Arc<Session>,
    /// Opened here (the control plane is not one of the hosts being reset): close it after.
    own: bool,
    /// Node names the API knows.
    pub nodes: Vec<String>,
}

/// Open (or reuse) a session to the control plane and ask the API for its nodes. None when the
/// control plane cannot be reached or runs no API: then nodes are not drained or deleted.
pub async fn api(run: &Run) -> Option<Api> {
    let cp = run.plan.control_plane().clone();
    let (sess, own) = match run.hosts.iter().find(|h| h.node.name == cp.name) {
        Some(h) => (h.session.clone()?, false),
        None => {
            let log = Arc::new(HostLog::open(
                Some(&run.log_dir.join(format!("{}.log", cp.name))),
                run.redactor.clone(),
            ));
            match Session::connect(
                cp.target.clone(),
                &run.key_cache(),
                ssh::client_config(),
                log,
            )
            .await
            {
                Ok(s) => (Arc::new(s), true),
                Err(e) => {
                    run.progress.warn(
                        Some(&cp.name),
                        &format!("cannot reach the control plane ({e}); nodes are not drained or deleted from the API"),
                    );
                    return None;
                }
            }
        }
    };
    let nodes = super::init::cluster_nodes(&run.plan, &sess).await;
    match nodes {
        Some(n) => Some(Api {
            sess,
            own,
            nodes: n.into_iter().map(|n| n.name).collect(),
        }),
        None => {
            run.progress.warn(
                Some(&cp.name),
                "the Kubernetes API does not answer; nodes are not drained or deleted from it",
            );
            None
        }
    }
}

/// `kubectl drain` then `kubectl delete node` on the control plane, in one round trip (exit 3
/// says the drain failed, 4 the delete).
async fn remove_node(p: &Plan, api: &Api, node: &str) -> Result<Vec<String>, StepError> {
    if !api.nodes.iter().any(|n| n == node) {
        return Ok(vec![]);
    }
    let q = ssh::shell_quote(node);
    let script = format!(
        "{KUBECTL} drain {q} --ignore-daemonsets --delete-emptydir-data --force --timeout={}s || exit 3\n\
         {KUBECTL} delete node {q} || exit 4\n",
        p.timeouts.command.as_secs().max(10)
    );
    let out = api
        .sess
        .script(
            Step::Drain.as_str(),
            &script,
            p.timeouts.command * 2 + std::time::Duration::from_secs(15),
        )
        .await
        .map_err(|e| StepError::from_ssh(Step::Drain, e))?;
    match out.code {
        Some(0) => {}
        Some(4) => {
            return Err(StepError::new(
                Step::DeleteNode,
                format!("kubectl delete node {node} failed: {}", out.last_line()),
            ))
        }
        _ => {
            return Err(StepError::new(
                Step::Drain,
                format!("kubectl drain {node} failed: {}", out.last_line()),
            )
            .hint("look at the pods on the node (`kubectl get pods -A -o wide`), or reset the whole cluster"))
        }
    }
    Ok(vec![format!("drained and deleted node {node}")])
}

pub fn render(p: &Plan) -> anyhow::Result<String> {
    crate::templates::script(
        "scripts/reset.sh.j2",
        context! { kubeadm_timeout => p.timeouts.command.as_secs().max(10) },
    )
}

/// Reset every host in `run` (already connected): workers first, the control plane last.
/// `whole`: the whole cluster goes, so the control plane's own node is not drained.
pub async fn run(run: &mut Run, whole: bool) {
    let p = Arc::new(run.plan.clone());
    let script = match render(&p) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            for i in 0..run.hosts.len() {
                run.fail(i, StepError::new(Step::Reset, e.to_string()));
            }
            return;
        }
    };
    let any_worker = run
        .hosts
        .iter()
        .any(|h| h.node.role == Role::Worker && h.alive());
    let api = if any_worker || !whole {
        api(run).await.map(Arc::new)
    } else {
        None
    };
    for role in [Role::Worker, Role::ControlPlane] {
        let (p, script, api) = (p.clone(), script.clone(), api.clone());
        run.each(
            Step::Reset,
            |h| h.node.role == role,
            move |_, node, sess| {
                let (p, script, api) = (p.clone(), script.clone(), api.clone());
                async move {
                    let mut changes = Vec::new();
                    if let Some(api) = &api {
                        if node.role == Role::Worker || !whole {
                            changes.extend(remove_node(&p, api, &node.name).await?);
                        }
                    }
                    let timeout = p.timeouts.command * 2 + std::time::Duration::from_secs(30);
                    changes.extend(run_script(&sess, Step::Reset, &script, timeout).await?.0);
                    Ok(changes)
                }
            },
        )
        .await;
    }
    if let Some(api) = api.filter(|a| a.own) {
        api.sess.close().await;
    }
    // The console's copy of the admin kubeconfig is useless once the control plane is reset.
    let cp_reset = run.hosts.iter().any(|h| {
        h.node.role == Role::ControlPlane
            && matches!(h.outcome, super::Outcome::Pending | super::Outcome::Ok)
            && h.session.is_some()
    });
    if cp_reset {
        let kc = super::kubeconfig::path(&p);
        if kc.exists() {
            let cp = run.control_plane_index();
            match std::fs::remove_file(&kc) {
                Ok(()) => run.hosts[cp]
                    .changes
                    .push(format!("removed {}", kc.display())),
                Err(e) => run
                    .progress
                    .warn(None, &format!("cannot remove {}: {e}", kc.display())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        let src = "cluster:\n  name: lab\n  kubernetesVersion: \"1.31.2\"\nhosts:\n  - name: cp1\n    address: 192.168.56.10\n    role: control-plane\ntimeouts:\n  command: 45s\n";
        let inv =
            crate::inventory::parse(src, std::path::Path::new("/tmp/kubestrap-test/inv.yaml"))
                .unwrap_or_else(|e| panic!("{e}"));
        Plan::from_inventory(&inv).unwrap()
    }

    #[test]
    fn reset_script_renders_passes_sh_n_and_bounds_kubeadm() {
        let s = render(&plan()).unwrap();
        let o = std::process::Command::new("sh")
            .args(["-n", "-c", &s])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(
            s.contains("KUBEADM_TIMEOUT=45\n"),
            "the inventory's command timeout bounds kubeadm reset"
        );
        assert!(s.contains("timeout -k 5 \"$KUBEADM_TIMEOUT\" kubeadm reset -f"));
        // What kubeadm reset leaves behind is handled; the runtime and packages are not touched.
        for want in [
            "/etc/cni/net.d",
            "flannel.1",
            "cni0",
            "for t in iptables ip6tables",
            "$t-save",
            "ipvsadm --clear",
            "/etc/kubestrap/kubeadm-join.yaml",
        ] {
            assert!(s.contains(want), "reset script lacks {want}");
        }
        for never in ["apt-get remove", "purge", "containerd/config.toml", "veth*"] {
            assert!(!s.contains(never), "reset script must not touch {never}");
        }
    }

    /// The iptables filter keeps the user's rules and drops Kubernetes' ones.
    #[test]
    fn iptables_filter_keeps_foreign_rules() {
        let save = "*filter\n:INPUT ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n:CNI-FORWARD - [0:0]\n:FLANNEL-FWD - [0:0]\n-A INPUT -j KUBE-SERVICES\n-A INPUT -s 192.0.2.1/32 -j ACCEPT\n-A FORWARD -j CNI-FORWARD\nCOMMIT\n";
        let o = std::process::Command::new("sh")
            .args(["-c", "grep -Ev 'KUBE-|CNI-|FLANNEL'"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(save.as_bytes())?;
                c.wait_with_output()
            })
            .unwrap();
        let kept = String::from_utf8(o.stdout).unwrap();
        assert_eq!(
            kept,
            "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -s 192.0.2.1/32 -j ACCEPT\nCOMMIT\n"
        );
        assert!(render(&plan())
            .unwrap()
            .contains("grep -Ev 'KUBE-|CNI-|FLANNEL'"));
    }
}
