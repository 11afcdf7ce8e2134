//! Phase 6: apply the pod network (flannel's network = podSubnet) and wait until every node that
//! should be in the cluster is Ready.

use std::time::{Duration, Instant};

use minijinja::context;

use super::init::{cluster_nodes, KUBECTL};
use super::phase::Step;
use super::{run_script, Outcome, Run, StepError};
use crate::plan::{self, Cni, Plan};

pub const CNI_MANIFEST: &str = "/etc/kubestrap/cni.yaml";

pub fn render_cni(p: &Plan) -> anyhow::Result<Option<String>> {
    match p.cni {
        Cni::Flannel => Ok(Some(crate::templates::render(
            "cni/flannel.yaml.j2",
            context! {
                cluster_name => p.cluster_name.clone(),
                pod_subnet => p.pod_subnet.clone(),
                flannel_version => plan::FLANNEL_VERSION,
                flannel_image => plan::FLANNEL_IMAGE,
                flannel_cni_plugin_image => plan::FLANNEL_CNI_PLUGIN_IMAGE,
            },
        )?)),
        Cni::None => Ok(None),
    }
}

/// The cluster was whole before this run (every host a Ready node, as the control plane's prepare
/// script saw it) and this run changed nothing on any host: the pod network is working.
fn was_ready(run: &Run) -> bool {
    let Some(nodes) = run.cp_state.as_ref().and_then(|s| s.nodes.as_ref()) else {
        return false;
    };
    run.plan
        .nodes
        .iter()
        .all(|n| nodes.iter().any(|x| x.name == n.name && x.ready))
        && run.hosts.iter().all(|h| h.changes.is_empty())
}

pub async fn apply(run: &mut Run) -> bool {
    let cp = run.control_plane_index();
    if !run.hosts[cp].alive() {
        return false;
    }
    let sess = run.hosts[cp].session.clone().unwrap();
    let p = run.plan.clone();
    let name = run.hosts[cp].node.name.clone();
    run.progress.step(&name, Step::Network);
    let manifest = match render_cni(&p) {
        Ok(Some(m)) => m,
        Ok(None) => return true,
        Err(e) => {
            run.fail(cp, StepError::new(Step::Network, e.to_string()));
            return false;
        }
    };
    // Unchanged manifest on a cluster whose nodes are all Ready: nothing to apply.
    if was_ready(run) {
        use sha2::Digest;
        let sha = hex::encode(sha2::Sha256::digest(manifest.as_bytes()));
        if run.cp_state.as_ref().is_some_and(|s| s.cni_sha256 == sha) {
            return true;
        }
    }
    let r = async {
        sess.put_file(CNI_MANIFEST, manifest.as_bytes(), 0o644, p.timeouts.command)
            .await
            .map_err(|e| StepError::from_ssh(Step::Network, e))?;
        let (_, out) = run_script(
            &sess,
            Step::Network,
            &format!("{KUBECTL} apply -f {CNI_MANIFEST}"),
            p.timeouts.command,
        )
        .await?;
        Ok::<_, StepError>(out)
    }
    .await;
    match r {
        Ok(out) => {
            let changed: Vec<&str> = out
                .lines()
                .filter(|l| l.ends_with(" created") || l.ends_with(" configured"))
                .collect();
            if !changed.is_empty() {
                run.hosts[cp].changes.push(format!(
                    "pod network applied ({} objects changed)",
                    changed.len()
                ));
            }
            true
        }
        Err(e) => {
            run.fail(cp, e);
            false
        }
    }
}

/// Wait until every node of a host still in the run is registered and Ready.
pub async fn wait_ready(run: &mut Run) {
    let cp = run.control_plane_index();
    if !run.hosts[cp].alive() {
        return;
    }
    if was_ready(run) {
        return;
    }
    let sess = run.hosts[cp].session.clone().unwrap();
    let p = run.plan.clone();
    let want: Vec<usize> = (0..run.hosts.len())
        .filter(|&i| run.hosts[i].alive())
        .collect();
    for &i in &want {
        run.progress.step(&run.hosts[i].node.name, Step::Ready);
    }
    let start = Instant::now();
    let mut last = Vec::new();
    loop {
        if let Some(nodes) = cluster_nodes(&p, &sess).await {
            let not_ready: Vec<usize> = want
                .iter()
                .copied()
                .filter(|&i| {
                    !nodes
                        .iter()
                        .any(|n| n.name == run.hosts[i].node.name && n.ready)
                })
                .collect();
            if not_ready.is_empty() {
                return;
            }
            last = not_ready;
        }
        if start.elapsed() > p.timeouts.ready {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    for i in last {
        if matches!(run.hosts[i].outcome, Outcome::Pending | Outcome::Ok) {
            run.fail(
                i,
                StepError::new(
                    Step::Ready,
                    format!("node {} is not Ready after {}s", run.hosts[i].node.name, p.timeouts.ready.as_secs()),
                )
                .hint(format!(
                    "look at `kubestrap exec -i {} --host {} -- sudo journalctl -u kubelet -n 50` and the pod network pods",
                    p.inventory_file.display(),
                    run.hosts[i].node.name
                )),
            );
        }
    }
}
