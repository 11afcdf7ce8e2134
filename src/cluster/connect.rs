//! Phase 1: one SSH session per host, opened in parallel, kept for the whole run.

use std::sync::Arc;

use futures::stream::{self, StreamExt};

use super::phase::Step;
use super::{Outcome, Run, StepError};
use crate::ssh::{self, HostLog, Session, SshError};

pub async fn run(run: &mut Run) {
    let keys = Arc::new(run.key_cache());
    let config = ssh::client_config();
    let jobs: Vec<_> = run
        .hosts
        .iter()
        .enumerate()
        .filter(|(_, h)| h.session.is_none() && matches!(h.outcome, Outcome::Pending))
        .map(|(i, h)| (i, h.node.target.clone()))
        .collect();
    for (i, _) in &jobs {
        run.progress.step(&run.hosts[*i].node.name, Step::Connect);
    }
    let log_dir = run.log_dir.clone();
    let redactor = run.redactor.clone();
    let results: Vec<_> = stream::iter(jobs)
        .map(|(i, target)| {
            let keys = keys.clone();
            let config = config.clone();
            let log = Arc::new(HostLog::open(
                Some(&log_dir.join(format!("{}.log", target.host_name))),
                redactor.clone(),
            ));
            async move { (i, Session::connect(target, &keys, config, log).await) }
        })
        .buffer_unordered(run.concurrency.max(1))
        .collect()
        .await;
    for (i, r) in results {
        match r {
            Ok(s) => {
                if let Some(note) = &s.key_note {
                    run.progress.warn(Some(&run.hosts[i].node.name), note);
                }
                run.hosts[i].session = Some(Arc::new(s));
            }
            Err(e) => {
                let hint = match &e {
                    SshError::Connect { .. } => Some(
                        "check that the host is up, the address/port are right and sshd runs (an address can also be a Host alias from ~/.ssh/config)"
                            .to_string(),
                    ),
                    SshError::Auth { .. } => Some(
                        "check ssh.user and ssh.identityFile (or the alias's User/IdentityFile in ~/.ssh/config), that the public key is in the user's authorized_keys, or load the key into ssh-agent; for password logins set ssh.passwordEnv"
                            .to_string(),
                    ),
                    SshError::Sudo(_) => Some(
                        "set ssh.sudoPasswordEnv to the NAME of a variable holding the sudo password, or give the user passwordless sudo (`USER ALL=(ALL) NOPASSWD: ALL` in /etc/sudoers.d/USER)"
                            .to_string(),
                    ),
                    _ => None,
                };
                let mut err = StepError::new(Step::Connect, e.to_string());
                err.hint = hint;
                run.fail(i, err);
            }
        }
    }
}

/// Who this run is, as written into lock files: console host, pid, command and start time.
pub fn holder(command: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".into());
    let now = time::OffsetDateTime::now_utc();
    let t = now
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    format!(
        "kubestrap {command} on {host}, pid {}, since {t}",
        std::process::id()
    )
}

/// Start taking the run lock on every connected host (each a channel kept open until its
/// session closes); await the handle with `apply_locks` before anything changes. Runs beside
/// the preflight's round trip, so it costs no extra wait.
pub fn start_locks(
    run: &Run,
    command: &str,
) -> tokio::task::JoinHandle<Vec<(usize, Result<ssh::lock::HostLock, SshError>)>> {
    let who = holder(command);
    let cluster = run.plan.cluster_name.clone();
    let timeout = run.plan.timeouts.command;
    let jobs: Vec<_> = run
        .hosts
        .iter()
        .enumerate()
        .filter(|(_, h)| h.alive())
        .map(|(i, h)| (i, h.session.clone().unwrap()))
        .collect();
    tokio::spawn(async move {
        let futs = jobs.into_iter().map(|(i, s)| {
            let (who, cluster) = (who.clone(), cluster.clone());
            async move { (i, s.hold_lock(&cluster, &who, timeout).await) }
        });
        futures::future::join_all(futs).await
    })
}

/// Record the lock answers: a host another run holds fails, and then no host starts anything.
/// Returns false when the run must stop.
pub async fn apply_locks(
    run: &mut Run,
    pending: tokio::task::JoinHandle<Vec<(usize, Result<ssh::lock::HostLock, SshError>)>>,
) -> bool {
    use ssh::lock::HostLock;
    let results = match pending.await {
        Ok(r) => r,
        Err(e) => {
            run.progress
                .warn(None, &format!("taking the run locks failed: {e}"));
            return false;
        }
    };
    let mut busy = vec![];
    for (i, r) in results {
        if !matches!(run.hosts[i].outcome, Outcome::Pending | Outcome::Ok) {
            // Failed in preflight already (say sudo wants a password): that is its answer.
            continue;
        }
        let name = run.hosts[i].node.name.clone();
        match r {
            Ok(HostLock::Held) => {}
            Ok(HostLock::NoFlock) => run.progress.warn(
                Some(&name),
                "`flock` is not installed (util-linux): this run does not lock the host against a second kubestrap run",
            ),
            Ok(HostLock::Busy(who)) => {
                busy.push(name.clone());
                run.fail(
                    i,
                    StepError::new(
                        Step::Lock,
                        format!("another kubestrap run holds this cluster's lock on the host: {who}"),
                    )
                    .hint("wait for that run to finish and run again; the lock goes when its SSH session ends (/run/kubestrap on the host)"),
                );
            }
            Err(e) => run.fail(i, StepError::from_ssh(Step::Lock, e)),
        }
    }
    if busy.is_empty() {
        return true;
    }
    for i in 0..run.hosts.len() {
        if matches!(run.hosts[i].outcome, Outcome::Pending) {
            run.skip(
                i,
                &format!(
                    "not started: another kubestrap run holds {} (nothing was changed on any host)",
                    busy.join(", ")
                ),
            );
        }
    }
    false
}
