//! The phases `up` is made of (and `plan` shares the first two), for `phase::Manager`.

use super::phase::{Flow, Phase, PhaseFuture, Step};
use super::{
    connect, init, join, kubeconfig, network, preflight, prepare, schedulable, Outcome, Run,
};

/// Open one SSH session per host, in parallel.
pub struct Connect;

impl Phase for Connect {
    fn step(&self) -> Step {
        Step::Connect
    }
    fn in_plan(&self) -> bool {
        true
    }
    fn run<'a>(&'a self, run: &'a mut Run) -> PhaseFuture<'a> {
        Box::pin(async move {
            connect::run(run).await;
            Flow::Next
        })
    }
}

/// The facts round trip (with the prepare stamp check), taking the hosts' run locks beside it
/// when `lock_for` names the command; then the checks. Problems stop the command before
/// anything changed when `stop_on_problems`.
pub struct Preflight {
    pub lock_for: Option<&'static str>,
    pub stop_on_problems: bool,
    /// The prepare stamp check and the cluster state in the same round trip (`up`, `plan`).
    pub fast: bool,
    /// A running cluster at another version than the inventory's is a problem (`up`); `upgrade`
    /// and `plan` deal with it themselves.
    pub version_check: bool,
}

impl Phase for Preflight {
    fn step(&self) -> Step {
        Step::Preflight
    }
    fn in_plan(&self) -> bool {
        true
    }
    fn run<'a>(&'a self, run: &'a mut Run) -> PhaseFuture<'a> {
        Box::pin(async move {
            let locks = self.lock_for.map(|cmd| connect::start_locks(run, cmd));
            preflight::gather(run, self.fast).await;
            if let Some(locks) = locks {
                if !connect::apply_locks(run, locks).await {
                    return Flow::Stop(
                        "another kubestrap run is working on this cluster: nothing was changed"
                            .into(),
                    );
                }
            }
            if super::interrupted() {
                return Flow::Next;
            }
            let findings = preflight::check(run, !self.version_check);
            let problems = findings.iter().any(|f| f.error);
            preflight::apply(run, &findings);
            if problems && self.stop_on_problems {
                for i in 0..run.hosts.len() {
                    run.skip(
                        i,
                        "not started: preflight found problems (nothing was changed on any host)",
                    );
                }
                return Flow::Stop(
                    "preflight failed: nothing was changed; fix the problems above and run again"
                        .into(),
                );
            }
            Flow::Next
        })
    }
}

/// Prepare every host in one round trip each (templates/scripts/prepare.sh.j2).
pub struct Prepare;

impl Phase for Prepare {
    fn step(&self) -> Step {
        Step::Prepare
    }
    fn run<'a>(&'a self, run: &'a mut Run) -> PhaseFuture<'a> {
        Box::pin(async move {
            prepare::run(run).await;
            Flow::Next
        })
    }
}

/// `kubeadm init` unless the control plane already runs; a fresh token only when some worker
/// will join. Without a control plane nothing can join: the command stops.
pub struct Init;

impl Phase for Init {
    fn step(&self) -> Step {
        Step::Init
    }
    fn run<'a>(&'a self, run: &'a mut Run) -> PhaseFuture<'a> {
        Box::pin(async move {
            let cp = run.control_plane_index();
            // A fresh token is needed only when some node in this run will join (a worker or
            // another control plane): it is not a registered node, or its host has no kubelet.conf
            // (reset or rebuilt under the same name).
            let first = run.hosts[cp].node.name.clone();
            let workers: Vec<(String, bool)> = run
                .hosts
                .iter()
                .filter(|h| h.node.name != first && h.alive())
                .map(|h| (h.node.name.clone(), h.facts.yes("kubelet_conf")))
                .collect();
            run.bootstrap = init::run(run, |registered| {
                workers.iter().any(|(n, kubelet_conf)| {
                    !kubelet_conf || !registered.iter().any(|r| &r.name == n)
                })
            })
            .await;
            if run.bootstrap.is_none() {
                for i in 0..run.hosts.len() {
                    if i != cp {
                        run.skip(i, "the control plane is not up, so this node cannot join");
                    }
                }
                return Flow::Stop(String::new());
            }
            Flow::Next
        })
    }
}

/// Join the workers that are not in the cluster yet, in parallel.
pub struct Join;

impl Phase for Join {
    fn step(&self) -> Step {
        Step::Join
    }
    fn run<'a>(&'a self, run: &'a mut Run) -> PhaseFuture<'a> {
        Box::pin(async move {
            let (b, registered) = run.bootstrap.clone().expect("Init ran first");
            join::run(run, &b, &registered).await;
            Flow::Next
        })
    }
}

/// Apply the pod network and wait for every node to be Ready.
pub struct Network;

impl Phase for Network {
    fn step(&self) -> Step {
        Step::Network
    }
    fn run<'a>(&'a self, run: &'a mut Run) -> PhaseFuture<'a> {
        Box::pin(async move {
            if network::apply(run).await {
                network::wait_ready(run).await;
            }
            Flow::Next
        })
    }
}

/// `controlPlaneSchedulable` on a cluster that ran before this run: the control plane's taint
/// added or removed through the API (after the pod network, so it never re-applies it).
pub struct Taint;

impl Phase for Taint {
    fn step(&self) -> Step {
        Step::Taint
    }
    fn run<'a>(&'a self, run: &'a mut Run) -> PhaseFuture<'a> {
        Box::pin(async move {
            schedulable::converge(run).await;
            Flow::Next
        })
    }
}

/// Write the admin kubeconfig on the console; hosts still pending are done.
pub struct Kubeconfig;

impl Phase for Kubeconfig {
    fn step(&self) -> Step {
        Step::Kubeconfig
    }
    fn run<'a>(&'a self, run: &'a mut Run) -> PhaseFuture<'a> {
        Box::pin(async move {
            run.kubeconfig = kubeconfig::fetch(run).await;
            for h in run.hosts.iter_mut() {
                if matches!(h.outcome, Outcome::Pending) {
                    h.outcome = Outcome::Ok;
                }
            }
            Flow::Next
        })
    }
}
