//! The phase runner, in the spirit of k0sctl's `phase/manager.go`: a command is a list of
//! phases run in order over one `Run`. Each phase names its step (an enum, not a string), says
//! whether it runs in a plan (dry run), and tells the runner to go on or stop; the runner checks
//! for Ctrl-C between phases. Per-host work inside a phase goes through `Run::each` (all selected
//! hosts, `concurrency` at once) or `Run::each_batched` (rolling work: a batch at a time, stopping
//! after a batch with a failure), which keep each host's outcome, changes and last step.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use super::Run;

/// Where a host is in a run; shown in progress lines and failure summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    Connect,
    Lock,
    Preflight,
    Prepare,
    Images,
    Init,
    Token,
    Join,
    Network,
    Ready,
    Kubeconfig,
    Reset,
    Plan,
    Exec,
    Versions,
    Upgrade,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Connect => "connect",
            Step::Lock => "lock",
            Step::Preflight => "preflight",
            Step::Prepare => "prepare",
            Step::Images => "images",
            Step::Init => "init",
            Step::Token => "token",
            Step::Join => "join",
            Step::Network => "network",
            Step::Ready => "wait Ready",
            Step::Kubeconfig => "kubeconfig",
            Step::Reset => "reset",
            Step::Plan => "plan",
            Step::Exec => "exec",
            Step::Versions => "versions",
            Step::Upgrade => "upgrade",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a phase tells the runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow {
    Next,
    /// Stop the command here; the text heads the summary (may be empty).
    Stop(String),
}

/// How the runner ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// Every phase ran.
    Done,
    /// A phase stopped the command, with its headline.
    Stopped(String),
    /// Ctrl-C between phases (a phase in progress finished or was abandoned by `Run::each`).
    Interrupted { after: Step },
}

pub type PhaseFuture<'a> = Pin<Box<dyn Future<Output = Flow> + 'a>>;

/// One phase of a command.
pub trait Phase {
    fn step(&self) -> Step;
    /// Whether the phase runs in a plan. Phases that would change a host either announce instead
    /// (and return true) or do not run there (false, the default).
    fn in_plan(&self) -> bool {
        false
    }
    fn run<'a>(&'a self, run: &'a mut Run) -> PhaseFuture<'a>;
}

/// Phases in order, run wet (`up`, `reset`) or dry (`plan`).
pub struct Manager {
    phases: Vec<Box<dyn Phase>>,
    dry: bool,
}

impl Manager {
    pub fn new(dry: bool) -> Self {
        Manager {
            phases: vec![],
            dry,
        }
    }

    pub fn add(mut self, p: impl Phase + 'static) -> Self {
        self.phases.push(Box::new(p));
        self
    }

    /// The steps that would run, in order (for tests and `--help`-style listings).
    pub fn steps(&self) -> Vec<Step> {
        self.phases
            .iter()
            .filter(|p| !self.dry || p.in_plan())
            .map(|p| p.step())
            .collect()
    }

    pub async fn run(&self, run: &mut Run) -> Ended {
        let mut last = None;
        for p in self.phases.iter().filter(|p| !self.dry || p.in_plan()) {
            if let Some(after) = last {
                if super::interrupted() {
                    return Ended::Interrupted { after };
                }
            }
            match p.run(run).await {
                Flow::Next => {}
                Flow::Stop(why) => return Ended::Stopped(why),
            }
            last = Some(p.step());
        }
        // A Ctrl-C during the last phase: that phase saw it (`Run::each`) and its hosts say so.
        Ended::Done
    }
}

/// Split `selected` host indices into rolling batches of at most `batch` hosts (`batch` 0 is 1).
pub fn batches(selected: &[usize], batch: usize) -> Vec<Vec<usize>> {
    selected
        .chunks(batch.max(1))
        .map(<[usize]>::to_vec)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_keep_order_and_size() {
        assert_eq!(
            batches(&[0, 1, 2, 3, 4], 2),
            vec![vec![0, 1], vec![2, 3], vec![4]]
        );
        assert_eq!(batches(&[3, 1], 0), vec![vec![3], vec![1]]);
        assert!(batches(&[], 3).is_empty());
        assert_eq!(batches(&[0, 1, 2], 10), vec![vec![0, 1, 2]]);
    }

    #[test]
    fn step_names_are_what_users_see() {
        assert_eq!(Step::Ready.to_string(), "wait Ready");
        assert_eq!(Step::Preflight.as_str(), "preflight");
    }
}
