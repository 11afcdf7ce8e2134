//! The cluster phases, run in order by `up`: connect, preflight, prepare, init, join, network,
//! kubeconfig. One file per phase; this file holds what they share: per-host state, the bounded
//! parallel runner and the step runner that turns a remote script's output into changes or a
//! clear error.

pub mod connect;
pub mod dry;
pub mod init;
pub mod join;
pub mod kubeconfig;
pub mod network;
pub mod phase;
pub mod phases;
pub mod preflight;
pub mod prepare;
pub mod reset;
pub mod schedulable;
pub mod upgrade;

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, StreamExt};

use crate::plan::{Node, Plan};
use crate::progress::Progress;
use crate::redact::Redactor;
use crate::ssh::{Session, SshError};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Ctrl-C was pressed: start no new step.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// First Ctrl-C: stop starting steps, give running ones a grace period. Second: exit at once.
pub fn watch_ctrl_c(progress: Arc<Progress>) {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            INTERRUPTED.store(true, Ordering::SeqCst);
            progress.say("interrupted: starting no new steps; waiting up to 10s for running ones (Ctrl-C again to quit now)");
            if tokio::signal::ctrl_c().await.is_ok() {
                crate::errln!("interrupted twice: quitting; hosts may be half-way through a step");
                std::process::exit(130);
            }
        }
    });
}

/// Resolves 10s after an interrupt: running steps are abandoned then.
async fn grace_over() {
    while !interrupted() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
}

/// What kind of failure a step had: decisions (retry, skip) read this, never the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorKind {
    /// Anything not classified below.
    #[default]
    Other,
    /// The connection or the SSH session failed.
    Connection,
    /// The step ran past its deadline (on the host or over SSH).
    Timeout,
    /// kubeadm's preflight refused (the same host state refuses again).
    KubeadmPreflight,
    /// kubeadm ran past its preflight and failed.
    KubeadmFailed,
}

/// Why a host stopped.
#[derive(Debug, Clone)]
pub struct StepError {
    pub step: phase::Step,
    pub message: String,
    pub hint: Option<String>,
    pub kind: ErrorKind,
}

impl StepError {
    pub fn new(step: phase::Step, message: impl Into<String>) -> Self {
        StepError {
            step,
            message: message.into(),
            hint: None,
            kind: ErrorKind::Other,
        }
    }
    pub fn kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    pub fn from_ssh(step: phase::Step, e: SshError) -> Self {
        let hint = match &e {
            SshError::Timeout { .. } => Some(
                "the step did not finish in time; look at the host's log, fix the cause and run again"
                    .to_string(),
            ),
            SshError::Lost(_) => Some("the host or its sshd went away; check it and run again".into()),
            _ => None,
        };
        let kind = match &e {
            SshError::Timeout { .. } => ErrorKind::Timeout,
            SshError::Remote(_) | SshError::Sudo(_) => ErrorKind::Other,
            _ => ErrorKind::Connection,
        };
        StepError {
            step,
            message: e.to_string(),
            hint,
            kind,
        }
    }
}

#[derive(Debug, Clone)]
pub enum Outcome {
    Pending,
    Ok,
    Failed(StepError),
    Skipped(String),
}

pub struct HostRun {
    pub node: Node,
    pub session: Option<Arc<Session>>,
    pub outcome: Outcome,
    pub changes: Vec<String>,
    pub facts: preflight::Facts,
    /// The step the host last started (None before the first).
    pub last_step: Option<phase::Step>,
}

impl HostRun {
    pub fn alive(&self) -> bool {
        matches!(self.outcome, Outcome::Pending | Outcome::Ok) && self.session.is_some()
    }
}

/// One run of a command against the whole inventory.
pub struct Run {
    pub plan: Plan,
    pub progress: Arc<Progress>,
    pub redactor: Redactor,
    pub log_dir: PathBuf,
    pub concurrency: usize,
    pub hosts: Vec<HostRun>,
    /// The cluster as the control plane's prepare script saw it (None before prepare ran).
    pub cp_state: Option<prepare::CpState>,
    /// What workers need to join and the nodes registered, once the control plane is up.
    pub bootstrap: Option<(init::Bootstrap, Vec<init::NodeStatus>)>,
    /// The admin kubeconfig written on the console.
    pub kubeconfig: Option<PathBuf>,
}

impl Run {
    /// Keys and ssh-agent for new sessions; a passphrase prompt pauses the live progress display.
    pub fn key_cache(&self) -> crate::ssh::KeyCache {
        let progress = self.progress.clone();
        crate::ssh::KeyCache::default().with_pause(move |f| progress.suspend(f))
    }

    /// Run `f` on every host for which `select` is true, at most `concurrency` at once. Each result
    /// is applied to its host: changes are recorded, an error marks the host failed at that step.
    pub async fn each<F, Fut, S>(&mut self, step: phase::Step, select: S, f: F)
    where
        S: Fn(&HostRun) -> bool,
        F: Fn(usize, Node, Arc<Session>) -> Fut,
        Fut: Future<Output = Result<Vec<String>, StepError>>,
    {
        let selected: Vec<usize> = (0..self.hosts.len())
            .filter(|&i| self.hosts[i].alive() && select(&self.hosts[i]))
            .collect();
        self.each_of(step, &selected, &f).await;
    }

    /// `each` for rolling work: the selected hosts `batch` at a time, in inventory order; after a
    /// batch in which a host failed, the rest are skipped (nothing started on them).
    pub async fn each_batched<F, Fut, S>(
        &mut self,
        step: phase::Step,
        batch: usize,
        select: S,
        f: F,
    ) where
        S: Fn(&HostRun) -> bool,
        F: Fn(usize, Node, Arc<Session>) -> Fut,
        Fut: Future<Output = Result<Vec<String>, StepError>>,
    {
        let selected: Vec<usize> = (0..self.hosts.len())
            .filter(|&i| self.hosts[i].alive() && select(&self.hosts[i]))
            .collect();
        let all = phase::batches(&selected, batch);
        for (k, b) in all.iter().enumerate() {
            self.each_of(step, b, &f).await;
            if b.iter()
                .any(|&i| matches!(self.hosts[i].outcome, Outcome::Failed(_)))
            {
                for &i in all[k + 1..].iter().flatten() {
                    self.skip(
                        i,
                        &format!("not started: a host failed at {step} in an earlier batch"),
                    );
                }
                return;
            }
        }
    }

    async fn each_of<F, Fut>(&mut self, step: phase::Step, selected: &[usize], f: &F)
    where
        F: Fn(usize, Node, Arc<Session>) -> Fut,
        Fut: Future<Output = Result<Vec<String>, StepError>>,
    {
        let jobs: Vec<(usize, Node, Arc<Session>)> = selected
            .iter()
            .filter(|&&i| self.hosts[i].alive())
            .map(|&i| {
                (
                    i,
                    self.hosts[i].node.clone(),
                    self.hosts[i].session.clone().unwrap(),
                )
            })
            .collect();
        for (i, _, _) in &jobs {
            self.progress.step(&self.hosts[*i].node.name, step);
            self.hosts[*i].last_step = Some(step);
        }
        let progress = self.progress.clone();
        let results: Vec<(usize, Result<Vec<String>, StepError>)> = stream::iter(jobs)
            .map(|(i, node, sess)| {
                let fut = f(i, node.clone(), sess);
                let progress = progress.clone();
                async move {
                    let r = if interrupted() {
                        Err(StepError::new(step, "interrupted (Ctrl-C) before this step started"))
                    } else {
                        tokio::select! {
                            r = fut => r,
                            _ = grace_over() => Err(StepError::new(step, "interrupted (Ctrl-C) while this step was running; the host may be part-way through it")
                                .hint("run `kubestrap up` again to finish it")),
                        }
                    };
                    if let Err(e) = &r {
                        progress.done(&node.name, "failed", &format!("{}: {}", e.step, e.message));
                    }
                    (i, r)
                }
            })
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        for (i, r) in results {
            match r {
                Ok(changes) => self.hosts[i].changes.extend(changes),
                Err(e) => self.hosts[i].outcome = Outcome::Failed(e),
            }
        }
    }

    /// Record a host's failure. The first failure is the one that counts: a host that already
    /// failed keeps its step and message.
    pub fn fail(&mut self, i: usize, e: StepError) {
        if matches!(self.hosts[i].outcome, Outcome::Failed(_)) {
            return;
        }
        self.progress.done(
            &self.hosts[i].node.name,
            "failed",
            &format!("{}: {}", e.step, e.message),
        );
        self.hosts[i].outcome = Outcome::Failed(e);
    }

    pub fn skip(&mut self, i: usize, why: &str) {
        if matches!(self.hosts[i].outcome, Outcome::Pending | Outcome::Ok) {
            self.progress.done(&self.hosts[i].node.name, "skipped", why);
            self.hosts[i].outcome = Outcome::Skipped(why.to_string());
        }
    }

    pub fn control_plane_index(&self) -> usize {
        self.hosts
            .iter()
            .position(|h| h.node.role == crate::plan::Role::ControlPlane)
            .expect("plan has a control plane")
    }

    pub fn any_failed(&self) -> bool {
        self.hosts
            .iter()
            .any(|h| matches!(h.outcome, Outcome::Failed(_)))
    }
}

/// Run a rendered script on a host and read the `CHANGED`/`FAIL` protocol of templates/scripts/lib.sh.
pub async fn run_script(
    sess: &Session,
    step: phase::Step,
    script: &str,
    timeout: Duration,
) -> Result<(Vec<String>, String), StepError> {
    let out = sess
        .script(step.as_str(), script, timeout)
        .await
        .map_err(|e| StepError::from_ssh(step, e))?;
    let changes = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("CHANGED "))
        .map(str::to_string)
        .collect();
    if out.ok() {
        return Ok((changes, out.stdout));
    }
    Err(script_error(step, &out))
}

/// Turn a failed remote command into a message: the FAIL line if the script gave one, else the
/// last lines of stderr; known causes get a hint.
pub fn script_error(step: phase::Step, out: &crate::ssh::Output) -> StepError {
    let fails: Vec<&str> = out
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("FAIL "))
        .collect();
    let context: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.starts_with("FAIL ") && !l.trim().is_empty())
        .collect();
    let tail = context[context.len().saturating_sub(4)..].join(" | ");
    let mut msg = if !fails.is_empty() {
        fails.join("; ")
    } else if !tail.is_empty() {
        tail.clone()
    } else {
        format!(
            "exited with {}",
            out.code
                .map(|c| c.to_string())
                .unwrap_or_else(|| out.signal.clone().unwrap_or_default())
        )
    };
    if !fails.is_empty() && !tail.is_empty() {
        msg = format!("{msg} (remote said: {tail})");
    }
    let mut e = StepError::new(step, msg);
    if out.stderr.contains("a password is required")
        || out.stderr.contains("a terminal is required")
    {
        e = e.hint("sudo on this host wants a password: set `ssh: { sudoPasswordEnv: VAR }` for the host and export VAR with the password, or give the SSH user passwordless sudo (`USER ALL=(ALL) NOPASSWD: ALL` in /etc/sudoers.d/USER)");
    } else if out.stderr.contains("incorrect password") || out.stderr.contains("Sorry, try again") {
        e = e
            .hint("sudo refused the password from ssh.sudoPasswordEnv: check the variable's value");
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> Run {
        let src = "cluster:\n  name: lab\n  kubernetesVersion: \"1.31.2\"\nhosts:\n  - name: cp1\n    address: 192.168.56.10\n    role: control-plane\n";
        let inv =
            crate::inventory::parse(src, std::path::Path::new("/tmp/kubestrap-test/inv.yaml"))
                .unwrap_or_else(|e| panic!("{e}"));
        let plan = Plan::from_inventory(&inv).unwrap();
        let redactor = Redactor::new();
        let names = vec!["cp1".to_string()];
        let progress = Arc::new(Progress::new(
            crate::progress::OutputFormat::Json,
            redactor.clone(),
            &names,
        ));
        let hosts = plan
            .nodes
            .iter()
            .cloned()
            .map(|node| HostRun {
                node,
                session: None,
                outcome: Outcome::Pending,
                changes: vec![],
                facts: Default::default(),
                last_step: None,
            })
            .collect();
        Run {
            plan,
            progress,
            redactor,
            log_dir: PathBuf::from("/nonexistent"),
            concurrency: 1,
            hosts,
            cp_state: None,
            bootstrap: None,
            kubeconfig: None,
        }
    }

    #[test]
    fn the_first_failure_is_the_one_a_host_keeps() {
        // A host whose sudo wants a password fails in preflight; the lock answer that follows
        // (it failed too, for the same reason) must not replace the step the user is shown.
        let mut r = run();
        r.fail(
            0,
            StepError::new(phase::Step::Preflight, "sudo: a password is required"),
        );
        r.fail(
            0,
            StepError::new(phase::Step::Lock, "taking the run lock failed (exit 1)"),
        );
        match &r.hosts[0].outcome {
            Outcome::Failed(e) => assert_eq!(e.step, phase::Step::Preflight),
            o => panic!("{o:?}"),
        }
        r.skip(0, "not started");
        assert!(matches!(r.hosts[0].outcome, Outcome::Failed(_)));
    }
}
