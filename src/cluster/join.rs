//! Phase 5: join every worker in parallel (bounded by --concurrency) with a JoinConfiguration that
//! pins the CA hash computed on the console. A node that is already registered is left alone; a
//! stale or failed join is reset and tried once more.

use std::sync::Arc;

use minijinja::context;

use super::init::{kubeadm_error, Bootstrap, NodeStatus};
use super::{run_script, Run, StepError};
use crate::plan::{Node, Plan, Role};
use crate::ssh::Session;

pub const JOIN_CONFIG: &str = "/etc/kubestrap/kubeadm-join.yaml";

pub fn render_join(p: &Plan, node: &Node, b: &Bootstrap) -> anyhow::Result<String> {
    crate::templates::render(
        "kubeadm/join.yaml.j2",
        context! {
            api => p.kubeadm_api,
            cluster_name => p.cluster_name.clone(),
            api_endpoint => b.endpoint.clone(),
            token => b.token.expose(),
            ca_pin => b.ca_pin.clone(),
            node => context! { name => node.name.clone(), internal_address => node.internal_address.clone() },
            cri_socket => p.cri_socket,
        },
    )
}

const RESET: &str = "kubeadm reset -f >/dev/null 2>&1; rm -rf /etc/cni/net.d/* /etc/kubernetes/kubelet.conf /etc/kubernetes/pki/ca.crt; true";

async fn join_once(p: &Plan, sess: &Session, node: &Node, b: &Bootstrap) -> Result<(), StepError> {
    let config = render_join(p, node, b).map_err(|e| StepError::new("join", e.to_string()))?;
    sess.put_file(JOIN_CONFIG, config.as_bytes(), 0o600, p.timeouts.command)
        .await
        .map_err(|e| StepError::from_ssh("join", e))?;
    let out = sess
        .script(
            "join",
            &format!("kubeadm join --config {JOIN_CONFIG}"),
            p.timeouts.join,
        )
        .await
        .map_err(|e| StepError::from_ssh("join", e))?;
    if out.ok() {
        Ok(())
    } else {
        Err(kubeadm_error("join", &out))
    }
}

pub async fn run(run: &mut Run, b: &Bootstrap, registered: &[NodeStatus]) {
    let p = Arc::new(run.plan.clone());
    let b = Arc::new(b.clone());
    let registered: Arc<Vec<String>> =
        Arc::new(registered.iter().map(|n| n.name.clone()).collect());
    // Registered with the API and holding a kubelet.conf: this node is in the cluster; leave it.
    // Leftovers of an earlier attempt (from the preflight facts) make kubeadm's preflight refuse.
    let ja: Arc<Vec<(bool, bool)>> = Arc::new(
        run.hosts
            .iter()
            .map(|h| {
                let kubelet_conf = h.facts.yes("kubelet_conf");
                let joined = kubelet_conf && registered.contains(&h.node.name);
                (joined, !joined && (kubelet_conf || h.facts.yes("pki_ca")))
            })
            .collect(),
    );
    run.each(
        "join",
        |h| h.node.role == Role::Worker,
        move |i, node, sess| {
            let (p, b, ja) = (p.clone(), b.clone(), ja.clone());
            async move {
                let (joined, stale) = ja[i];
                if joined {
                    return Ok(vec![]);
                }
                let mut changes = Vec::new();
                if stale {
                    run_script(&sess, "join", RESET, p.timeouts.command).await?;
                    changes.push("reset a stale earlier join".to_string());
                }
                match join_once(&p, &sess, &node, &b).await {
                    Ok(()) => {
                        changes.push("kubeadm join".into());
                        Ok(changes)
                    }
                    Err(first) if !first.message.contains("preflight") => {
                        // One automatic retry after cleaning up, as a user would do by hand.
                        run_script(&sess, "join", RESET, p.timeouts.command).await?;
                        join_once(&p, &sess, &node, &b).await.map_err(|second| {
                            StepError::new(
                                "join",
                                format!(
                                    "{} (retried once after `kubeadm reset -f`: {})",
                                    first.message, second.message
                                ),
                            )
                        })?;
                        changes.push("kubeadm join (second attempt after reset)".into());
                        Ok(changes)
                    }
                    Err(e) => Err(e),
                }
            }
        },
    )
    .await;
}
