//! Phase 5: join the other control planes one at a time, then every worker in parallel (bounded by
//! --concurrency), with a JoinConfiguration that pins the CA hash computed on the console (and, for
//! a control plane, holds its API endpoint and the certificate key). A node that is already
//! registered is left alone; a stale or failed join is reset and tried once more.

use std::sync::Arc;

use minijinja::context;

use super::init::{kubeadm_error_within, ssh_limit, with_deadline, Bootstrap, NodeStatus};
use super::phase::Step;
use super::{run_script, Run, StepError};
use crate::plan::{Node, Plan, Role};
use crate::ssh::Session;

pub const JOIN_CONFIG: &str = "/etc/kubestrap/kubeadm-join.yaml";

/// A worker's JoinConfiguration, or a control plane's (with `controlPlane`: its own API endpoint
/// and the certificate key the shared certificates were uploaded with).
pub fn render_join(p: &Plan, node: &Node, b: &Bootstrap) -> anyhow::Result<String> {
    let certificate_key = match (node.role, &b.certificate_key) {
        (Role::ControlPlane, Some(k)) => Some(k.expose().to_string()),
        (Role::ControlPlane, None) => anyhow::bail!(
            "{} joins as a control plane, but no certificate key was uploaded for it",
            node.name
        ),
        (Role::Worker, _) => None,
    };
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
            certificate_key => certificate_key,
            schedulable => p.control_plane_schedulable,
        },
    )
}

/// Clean up an earlier or failed join, as a user would by hand: `kubeadm reset -f` (under a
/// deadline) and what it leaves that makes the next join's preflight refuse.
fn reset_script(p: &Plan) -> String {
    format!(
        "{} >/dev/null 2>&1; rm -rf /etc/cni/net.d/* /etc/kubernetes/kubelet.conf /etc/kubernetes/bootstrap-kubelet.conf /etc/kubernetes/pki/ca.crt; true",
        with_deadline("kubeadm reset -f", p.timeouts.command)
    )
}

async fn join_once(p: &Plan, sess: &Session, node: &Node, b: &Bootstrap) -> Result<(), StepError> {
    let config = render_join(p, node, b).map_err(|e| StepError::new(Step::Join, e.to_string()))?;
    sess.put_file(JOIN_CONFIG, config.as_bytes(), 0o600, p.timeouts.command)
        .await
        .map_err(|e| StepError::from_ssh(Step::Join, e))?;
    let out = sess
        .script(
            Step::Join.as_str(),
            &with_deadline(
                &format!("kubeadm join --config {JOIN_CONFIG}"),
                p.timeouts.join,
            ),
            ssh_limit(p.timeouts.join),
        )
        .await
        .map_err(|e| StepError::from_ssh(Step::Join, e))?;
    if out.ok() {
        Ok(())
    } else {
        Err(kubeadm_error_within(
            Step::Join,
            &out,
            Some(p.timeouts.join),
        ))
    }
}

/// Worth one automatic retry after `kubeadm reset -f`: kubeadm ran and failed after its
/// preflight. Not a preflight refusal (the same host state refuses again), not a hang (it would
/// hang again and double the wait), not a lost connection.
fn retryable(e: &StepError) -> bool {
    e.kind == super::ErrorKind::KubeadmFailed
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
    // A node object whose host no longer has a kubelet.conf (the host was reset or rebuilt under
    // the same name) blocks the new join ("a Node with name ... already exists"): delete it first.
    let orphans: Vec<String> = run
        .hosts
        .iter()
        .filter(|h| h.node.name != p.control_plane().name && h.alive())
        .filter(|h| !h.facts.yes("kubelet_conf") && registered.contains(&h.node.name))
        .map(|h| h.node.name.clone())
        .collect();
    if !orphans.is_empty() {
        let cp = run.control_plane_index();
        if let Some(cp_sess) = run.hosts[cp].session.clone() {
            for name in orphans {
                let cmd = format!(
                    "{} delete node {}",
                    super::init::KUBECTL,
                    crate::ssh::shell_quote(&name)
                );
                match run_script(&cp_sess, Step::Join, &cmd, p.timeouts.command).await {
                    Ok(_) => run.hosts[cp].changes.push(format!(
                        "deleted the stale node object {name} (its host has no kubelet.conf)"
                    )),
                    Err(e) => run.progress.warn(
                        Some(&name),
                        &format!("cannot delete its stale node object: {}", e.message),
                    ),
                }
            }
        }
    }
    let first = p.control_plane().name.clone();
    let join_host = move |i: usize, node: Node, sess: Arc<Session>| {
        let (p, b, ja) = (p.clone(), b.clone(), ja.clone());
        {
            async move {
                let (joined, stale) = ja[i];
                if joined {
                    return Ok(vec![]);
                }
                let mut changes = Vec::new();
                let reset = reset_script(&p);
                let reset_limit = ssh_limit(p.timeouts.command);
                if stale {
                    run_script(&sess, Step::Join, &reset, reset_limit).await?;
                    changes.push("reset a stale earlier join".to_string());
                }
                match join_once(&p, &sess, &node, &b).await {
                    Ok(()) => {
                        changes.push("kubeadm join".into());
                        Ok(changes)
                    }
                    Err(first) if retryable(&first) => {
                        // One automatic retry after cleaning up, as a user would do by hand.
                        run_script(&sess, Step::Join, &reset, reset_limit).await?;
                        join_once(&p, &sess, &node, &b).await.map_err(|second| {
                            StepError {
                                step: Step::Join,
                                message: format!(
                                    "{} (retried once after `kubeadm reset -f`, failed again: {})",
                                    first.message, second.message
                                ),
                                hint: second.hint.or(first.hint).or(Some(
                                    "look at the host's log for kubeadm's full output, fix the cause, then run `kubestrap up` again (it cleans up the failed join first)".into(),
                                )),
                                kind: second.kind,
                            }
                        })?;
                        changes.push("kubeadm join (second attempt after reset)".into());
                        Ok(changes)
                    }
                    Err(e) => Err(e),
                }
            }
        }
    };
    // The other control planes strictly one at a time (stacked etcd adds one member at a time:
    // kubeadm join returns once its member is promoted), before any worker; after a failed one
    // the rest wait for the next run.
    run.each_batched(
        Step::Join,
        1,
        |h| h.node.role == Role::ControlPlane && h.node.name != first,
        join_host.clone(),
    )
    .await;
    run.each(Step::Join, |h| h.node.role == Role::Worker, join_host)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::init::kubeadm_error_within;
    use std::time::Duration;

    fn out(code: u32, stdout: &str, stderr: &str) -> crate::ssh::Output {
        crate::ssh::Output {
            stdout: stdout.into(),
            stderr: stderr.into(),
            code: Some(code),
            signal: None,
        }
    }

    #[test]
    fn a_join_killed_by_its_deadline_names_the_last_line_and_is_not_retried() {
        let e = kubeadm_error_within(
            Step::Join,
            &out(124, "[preflight] Running pre-flight checks\n", ""),
            Some(Duration::from_secs(8)),
        );
        assert!(
            e.message.contains("did not finish within 8s"),
            "{}",
            e.message
        );
        assert!(
            e.message
                .ends_with("last output: [preflight] Running pre-flight checks"),
            "{}",
            e.message
        );
        assert!(e.hint.as_deref().unwrap().contains("timeouts.kubeadmJoin"));
        assert!(!retryable(&e));
        let silent =
            kubeadm_error_within(Step::Join, &out(124, "", ""), Some(Duration::from_secs(8)));
        assert!(silent.message.ends_with("last output: (no output)"));
    }

    #[test]
    fn only_a_kubeadm_failure_after_preflight_is_retried() {
        let failed = kubeadm_error_within(
            Step::Join,
            &out(
                1,
                "[kubelet-start] Starting the kubelet\n",
                "error execution phase kubelet-start: error uploading crisocket\n",
            ),
            Some(Duration::from_secs(8)),
        );
        assert!(retryable(&failed), "{}", failed.message);
        let preflight = kubeadm_error_within(
            Step::Join,
            &out(1, "", "\t[ERROR FileAvailable--etc-kubernetes-kubelet.conf]: /etc/kubernetes/kubelet.conf already exists\n"),
            None,
        );
        assert!(!retryable(&preflight), "{}", preflight.message);
        let lost = StepError::from_ssh(Step::Join, crate::ssh::SshError::Lost("eof".into()));
        assert!(!retryable(&lost));
        // The decision reads the kind, not the words: a message that merely looks like one is not retried.
        assert!(!retryable(&StepError::new(
            Step::Join,
            "kubeadm join failed: said the remote"
        )));
    }

    #[test]
    fn join_runs_under_the_deadline() {
        assert_eq!(
            with_deadline("kubeadm join --config /x", Duration::from_secs(600)),
            "timeout -k 5 600 kubeadm join --config /x"
        );
        assert!(ssh_limit(Duration::from_secs(8)) > Duration::from_secs(8));
    }
}
