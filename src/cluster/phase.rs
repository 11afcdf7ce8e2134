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

/// Where a host is in a run; shown in progress lines, failure summaries and the JSON output
/// (`"step"`), so each name is part of the output format: keep `as_str` stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    Connect,
    Lock,
    Preflight,
    Prepare,
    /// A section of the prepare (and plan) script, from its `STEP <section>` lines.
    System,
    Packages,
    Runtime,
    State,
    Images,
    Init,
    /// Reading what `kubeadm init` left: the cluster CA and the worker join command.
    Capture,
    Token,
    Join,
    Network,
    Ready,
    /// `controlPlaneSchedulable` converged on a running cluster (`kubectl taint`).
    Taint,
    Kubeconfig,
    Reset,
    /// `reset` of part of a cluster: the node is drained, then deleted.
    Drain,
    DeleteNode,
    Plan,
    Exec,
    Versions,
    Upgrade,
    /// The rolling upgrade of one node, in order.
    Cordon,
    KubeadmUpgradeApply,
    KubeadmUpgradeNode,
    Kubelet,
    Uncordon,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Connect => "connect",
            Step::Lock => "lock",
            Step::Preflight => "preflight",
            Step::Prepare => "prepare",
            Step::System => "system",
            Step::Packages => "packages",
            Step::Runtime => "runtime",
            Step::State => "state",
            Step::Images => "images",
            Step::Init => "init",
            Step::Capture => "capture",
            Step::Token => "token",
            Step::Join => "join",
            Step::Network => "network",
            Step::Ready => "wait Ready",
            Step::Taint => "taint",
            Step::Kubeconfig => "kubeconfig",
            Step::Reset => "reset",
            Step::Drain => "drain",
            Step::DeleteNode => "delete node",
            Step::Plan => "plan",
            Step::Exec => "exec",
            Step::Versions => "versions",
            Step::Upgrade => "upgrade",
            Step::Cordon => "cordon",
            Step::KubeadmUpgradeApply => "kubeadm upgrade apply",
            Step::KubeadmUpgradeNode => "kubeadm upgrade node",
            Step::Kubelet => "kubelet",
            Step::Uncordon => "uncordon",
        }
    }

    /// The step a prepare or plan script was in, from the section of its last `STEP <section>`
    /// line (templates/scripts/prepare.sh.j2); no such line, or one this console does not know,
    /// is `otherwise` (the script's own step).
    pub fn of_section(section: Option<&str>, otherwise: Step) -> Step {
        match section {
            Some("system") => Step::System,
            Some("packages") => Step::Packages,
            Some("runtime") => Step::Runtime,
            Some("images") => Step::Images,
            Some("state") => Step::State,
            _ => otherwise,
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

    /// Every variant. `index` is a `match` with no wildcard, so a new variant does not compile
    /// until it is given the next index there; `ALL` is then checked to hold each index in place.
    fn all_steps() -> Vec<Step> {
        const ALL: [Step; 29] = [
            Step::Connect,
            Step::Lock,
            Step::Preflight,
            Step::Prepare,
            Step::System,
            Step::Packages,
            Step::Runtime,
            Step::State,
            Step::Images,
            Step::Init,
            Step::Capture,
            Step::Token,
            Step::Join,
            Step::Network,
            Step::Ready,
            Step::Kubeconfig,
            Step::Reset,
            Step::Drain,
            Step::DeleteNode,
            Step::Plan,
            Step::Exec,
            Step::Versions,
            Step::Upgrade,
            Step::Cordon,
            Step::KubeadmUpgradeApply,
            Step::KubeadmUpgradeNode,
            Step::Kubelet,
            Step::Uncordon,
            Step::Taint,
        ];
        // Position of each variant in ALL; exhaustive, so a new variant must be listed.
        fn index(s: Step) -> usize {
            match s {
                Step::Connect => 0,
                Step::Lock => 1,
                Step::Preflight => 2,
                Step::Prepare => 3,
                Step::System => 4,
                Step::Packages => 5,
                Step::Runtime => 6,
                Step::State => 7,
                Step::Images => 8,
                Step::Init => 9,
                Step::Capture => 10,
                Step::Token => 11,
                Step::Join => 12,
                Step::Network => 13,
                Step::Ready => 14,
                Step::Kubeconfig => 15,
                Step::Reset => 16,
                Step::Drain => 17,
                Step::DeleteNode => 18,
                Step::Plan => 19,
                Step::Exec => 20,
                Step::Versions => 21,
                Step::Upgrade => 22,
                Step::Cordon => 23,
                Step::KubeadmUpgradeApply => 24,
                Step::KubeadmUpgradeNode => 25,
                Step::Kubelet => 26,
                Step::Uncordon => 27,
                Step::Taint => 28,
            }
        }
        for (k, s) in ALL.iter().enumerate() {
            assert_eq!(index(*s), k, "{s:?} is listed out of place in ALL");
        }
        ALL.to_vec()
    }

    #[test]
    fn every_step_has_a_distinct_non_empty_name() {
        let all = all_steps();
        let mut seen = std::collections::HashMap::new();
        for s in &all {
            let name = s.as_str();
            assert!(!name.is_empty(), "{s:?} has an empty name");
            assert_eq!(name.trim(), name, "{s:?}'s name has surrounding space");
            assert_eq!(s.to_string(), name, "{s:?}: Display is not as_str");
            if let Some(other) = seen.insert(name, *s) {
                panic!("{s:?} and {other:?} are both shown as {name:?}");
            }
        }
        assert_eq!(seen.len(), all.len());
    }

    #[test]
    fn the_prepare_scripts_sections_are_steps_of_the_same_name() {
        let src = include_str!("../../templates/scripts/prepare.sh.j2");
        let sections: Vec<&str> = src
            .lines()
            .filter_map(|l| l.trim().strip_prefix("echo \"STEP "))
            .filter_map(|l| l.strip_suffix('"'))
            .collect();
        assert!(sections.len() >= 5, "{sections:?}");
        for sec in sections {
            assert_eq!(Step::of_section(Some(sec), Step::Prepare).as_str(), sec);
            assert_eq!(Step::of_section(Some(sec), Step::Plan).as_str(), sec);
        }
        assert_eq!(Step::of_section(None, Step::Plan), Step::Plan);
        assert_eq!(
            Step::of_section(Some("later"), Step::Prepare),
            Step::Prepare
        );
    }

    #[test]
    fn step_names_are_what_users_see() {
        assert_eq!(Step::Ready.to_string(), "wait Ready");
        assert_eq!(Step::Preflight.as_str(), "preflight");
    }
}
