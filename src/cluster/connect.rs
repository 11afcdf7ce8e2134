//! Phase 1: one SSH session per host, opened in parallel, kept for the whole run.

use std::sync::Arc;

use futures::stream::{self, StreamExt};

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
        run.progress.step(&run.hosts[*i].node.name, "connect");
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
                let mut err = StepError::new("connect", e.to_string());
                err.hint = hint;
                run.fail(i, err);
            }
        }
    }
}
