//! `cluster.controlPlaneSchedulable`: whether pods may run on the control plane ("control plane
//! node isolation" in kubeadm's guide). A fresh `kubeadm init` gets it from the InitConfiguration
//! (`nodeRegistration.taints: []` when schedulable; kubeadm's default control-plane taint
//! otherwise). On a running cluster `up` converges it through the API with `kubectl taint`, after
//! the pod network, so `plan` and `up` decide it with the same function ([`change`]).

use super::init::{NodeStatus, KUBECTL};
use super::{run_script, Run};
use crate::plan::Plan;
use crate::ssh::shell_quote;

/// The taint kubeadm puts on control-plane nodes (kubeadm's `ControlPlaneTaint`).
pub const TAINT_KEY: &str = "node-role.kubernetes.io/control-plane";

/// What the control plane's taint needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Schedulable, and the node has the taint.
    Remove,
    /// Not schedulable, and the node lacks the taint.
    Add,
}

impl Change {
    /// What `up` reports having done.
    pub fn done(self, node: &str) -> String {
        match self {
            Change::Remove => format!(
                "removed the control-plane taint from {node} (controlPlaneSchedulable: true)"
            ),
            Change::Add => {
                format!("added the control-plane taint to {node} (controlPlaneSchedulable: false)")
            }
        }
    }
    /// What `plan` says `up` would do.
    pub fn planned(self, node: &str) -> String {
        match self {
            Change::Remove => format!(
                "remove the control-plane taint from {node} (controlPlaneSchedulable: true)"
            ),
            Change::Add => {
                format!("add the control-plane taint to {node} (controlPlaneSchedulable: false)")
            }
        }
    }
    /// The command, run on the control plane with its admin.conf.
    pub fn script(self, node: &str) -> String {
        let arg = match self {
            Change::Remove => format!("{TAINT_KEY}:NoSchedule-"),
            Change::Add => format!("{TAINT_KEY}:NoSchedule"),
        };
        format!(
            "{KUBECTL} taint nodes {} {} >/dev/null",
            shell_quote(node),
            shell_quote(&arg)
        )
    }
}

/// The change the control plane's node needs, from the nodes the API server listed before this
/// run. None when it is right, or when the node is not registered (a `kubeadm init` in this run
/// sets the taints from the InitConfiguration).
pub fn change(p: &Plan, nodes: &[NodeStatus]) -> Option<Change> {
    let cp = p.control_plane();
    let node = nodes.iter().find(|n| n.name == cp.name)?;
    match (p.control_plane_schedulable, node.control_plane_taint) {
        (true, true) => Some(Change::Remove),
        (false, false) => Some(Change::Add),
        _ => None,
    }
}

/// Converge the control plane's taint on a cluster that was running before this run.
pub async fn converge(run: &mut Run) {
    let cp = run.control_plane_index();
    if !run.hosts[cp].alive() {
        return;
    }
    let Some(nodes) = run.cp_state.as_ref().and_then(|s| s.nodes.clone()) else {
        return;
    };
    let p = run.plan.clone();
    let Some(c) = change(&p, &nodes) else {
        return;
    };
    let name = run.hosts[cp].node.name.clone();
    run.progress.step(&name, super::phase::Step::Taint);
    let sess = run.hosts[cp].session.clone().unwrap();
    match run_script(
        &sess,
        super::phase::Step::Taint,
        &c.script(&name),
        p.timeouts.command,
    )
    .await
    {
        Ok(_) => run.hosts[cp].changes.push(c.done(&name)),
        Err(e) => run.fail(cp, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, taint: bool) -> NodeStatus {
        NodeStatus {
            name: name.into(),
            ready: true,
            internal_ip: String::new(),
            kubelet_version: String::new(),
            unschedulable: false,
            control_plane_taint: taint,
        }
    }

    fn plan(workers: bool, explicit: Option<bool>) -> Plan {
        let extra = explicit
            .map(|b| format!("  controlPlaneSchedulable: {b}\n"))
            .unwrap_or_default();
        let w = if workers {
            "  - {name: w1, address: 10.1.0.2, role: worker}\n"
        } else {
            ""
        };
        let src = format!("cluster:\n  name: lab\n  kubernetesVersion: \"1.31.2\"\n{extra}hosts:\n  - {{name: cp1, address: 10.1.0.1, role: control-plane}}\n{w}");
        let inv = crate::inventory::parse(&src, std::path::Path::new("/tmp/i.yaml")).unwrap();
        Plan::from_inventory(&inv).unwrap()
    }

    #[test]
    fn the_taint_follows_the_setting() {
        let with = [node("cp1", true), node("w1", false)];
        let without = [node("cp1", false), node("w1", false)];
        // Default with workers: tainted, as kubeadm makes it.
        assert_eq!(change(&plan(true, None), &with), None);
        assert_eq!(change(&plan(true, None), &without), Some(Change::Add));
        // Default without workers: schedulable.
        assert_eq!(change(&plan(false, None), &with), Some(Change::Remove));
        assert_eq!(change(&plan(false, None), &without), None);
        // Explicit wins.
        assert_eq!(change(&plan(true, Some(true)), &with), Some(Change::Remove));
        assert_eq!(
            change(&plan(false, Some(false)), &without),
            Some(Change::Add)
        );
        // Not registered yet: init sets it.
        assert_eq!(change(&plan(true, Some(true)), &[node("w1", true)]), None);
    }

    #[test]
    fn the_script_quotes_and_names_the_taint() {
        assert_eq!(
            Change::Remove.script("cp1"),
            "kubectl --kubeconfig /etc/kubernetes/admin.conf taint nodes cp1 node-role.kubernetes.io/control-plane:NoSchedule- >/dev/null"
        );
        assert!(Change::Add
            .script("cp1")
            .ends_with(" node-role.kubernetes.io/control-plane:NoSchedule >/dev/null"));
        assert!(Change::Add.script("a b").contains(" taint nodes 'a b' "));
    }
}
