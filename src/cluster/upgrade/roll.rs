//! The rolling part of `kubestrap upgrade`: the control planes one at a time, the workers in
//! batches (each batch cordoned before any member is drained); per node `kubeadm upgrade
//! apply|node`, drain, the new kubelet, wait for the new version and Ready, uncordon.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::version::{release, Version};
use super::{render_kubeadm, render_kubelet, Cordoned, Settings, Shared};
use crate::cluster::init::{cluster_nodes, KUBECTL};
use crate::cluster::phase::{Flow, Phase, PhaseFuture, Step};
use crate::cluster::{run_script, Run, StepError};
use crate::plan::{Node, Plan, Role};
use crate::ssh::{shell_quote, Session};

/// Everything one node's upgrade needs, shared by the nodes of a batch.
struct Ctx {
    plan: Plan,
    target: Version,
    first_cp: String,
    cp_sess: Arc<Session>,
    progress: Arc<crate::progress::Progress>,
    drain_timeout: Duration,
    ours: Arc<Mutex<Cordoned>>,
    schedulable: BTreeSet<String>,
}

/// Roll the upgrade over the control planes (one at a time) or the workers (in batches).
pub struct Roll {
    pub st: Shared,
    pub role: Role,
    pub settings: Settings,
}

impl Phase for Roll {
    fn step(&self) -> Step {
        Step::Upgrade
    }
    fn run<'a>(&'a self, run: &'a mut Run) -> PhaseFuture<'a> {
        Box::pin(async move {
            let cp = run.control_plane_index();
            let (todo, ctx) = {
                let st = self.st.lock().unwrap();
                let Some(cp_sess) = run.hosts[cp].session.clone() else {
                    return Flow::Stop(String::new());
                };
                let todo: Vec<usize> = st
                    .todo
                    .iter()
                    .copied()
                    .filter(|&i| run.hosts[i].node.role == self.role)
                    .collect();
                let ctx = Arc::new(Ctx {
                    plan: run.plan.clone(),
                    target: st.target.expect("Survey ran"),
                    first_cp: run.hosts[cp].node.name.clone(),
                    cp_sess,
                    progress: run.progress.clone(),
                    drain_timeout: self.settings.drain_timeout,
                    ours: st.ours.clone(),
                    schedulable: st
                        .nodes
                        .iter()
                        .filter(|n| !n.unschedulable)
                        .map(|n| n.name.clone())
                        .collect(),
                });
                (todo, ctx)
            };
            if todo.is_empty() {
                return Flow::Next;
            }
            if self.role == Role::Worker && !run.hosts[cp].alive() {
                return Flow::Stop(String::new());
            }
            let batch = match self.role {
                Role::ControlPlane => 1,
                Role::Worker => self.settings.batch.size(todo.len()),
            };
            // Batch by batch; the whole batch is cordoned before any member is drained, so pods
            // evicted from one member do not land on the next (k0sctl#541).
            let all = crate::cluster::phase::batches(&todo, batch);
            for (k, b) in all.iter().enumerate() {
                let names: Vec<String> = b
                    .iter()
                    .filter(|&&i| run.hosts[i].alive())
                    .map(|&i| run.hosts[i].node.name.clone())
                    .collect();
                if names.is_empty() {
                    continue;
                }
                if names.len() > 1 {
                    if let Err(e) = cordon_batch(&ctx, &names).await {
                        run.progress.warn(None, &format!("cordoning the batch {} first failed ({}); each node is cordoned by its drain", names.join(", "), e.message));
                    }
                }
                let f = {
                    let ctx = ctx.clone();
                    move |_, node, sess| upgrade_node(ctx.clone(), node, sess)
                };
                run.each(Step::Upgrade, move |h| names.contains(&h.node.name), f)
                    .await;
                if b.iter()
                    .any(|&i| matches!(run.hosts[i].outcome, crate::cluster::Outcome::Failed(_)))
                {
                    for &i in all[k + 1..].iter().flatten() {
                        run.skip(
                            i,
                            "not started: a node of an earlier batch failed (no new batch starts)",
                        );
                    }
                    break;
                }
            }
            let failed_cp = self.role == Role::ControlPlane && run.any_failed();
            if failed_cp {
                for i in 0..run.hosts.len() {
                    if run.hosts[i].node.role == Role::Worker {
                        run.skip(i, "not started: a control plane's upgrade failed, so no worker was touched");
                    }
                }
                return Flow::Stop(String::new());
            }
            Flow::Next
        })
    }
}

/// `kubectl cordon` for a whole batch; the nodes that were schedulable become ours first.
async fn cordon_batch(ctx: &Ctx, names: &[String]) -> Result<(), StepError> {
    let mut ours = vec![];
    for n in names.iter().filter(|n| ctx.schedulable.contains(*n)) {
        ctx.ours
            .lock()
            .unwrap()
            .set(n, true)
            .map_err(|e| StepError::new(Step::Cordon, e))?;
        ours.push(shell_quote(n));
    }
    if ours.is_empty() {
        return Ok(());
    }
    on_cp(
        ctx,
        Step::Cordon,
        &format!(
            "for n in {}; do {KUBECTL} cordon \"$n\" >/dev/null || exit 1; done",
            ours.join(" ")
        ),
        ctx.plan.timeouts.command,
    )
    .await
    .map(|_| ())
}

async fn on_cp(ctx: &Ctx, step: Step, cmd: &str, timeout: Duration) -> Result<String, StepError> {
    let out = ctx
        .cp_sess
        .script(step.as_str(), cmd, timeout)
        .await
        .map_err(|e| StepError::from_ssh(step, e))?;
    if out.ok() {
        Ok(out.stdout)
    } else {
        let said: Vec<&str> = out
            .stderr
            .lines()
            .chain(out.stdout.lines())
            .filter(|l| !l.trim().is_empty())
            .collect();
        Err(StepError::new(
            step,
            said[said.len().saturating_sub(4)..].join(" | "),
        ))
    }
}

async fn upgrade_node(
    ctx: Arc<Ctx>,
    node: Node,
    sess: Arc<Session>,
) -> Result<Vec<String>, StepError> {
    let p = &ctx.plan;
    let t = ctx.target;
    let n = shell_quote(&node.name);
    let mut changes = vec![];
    let apply = node.name == ctx.first_cp;
    let step = if apply {
        Step::KubeadmUpgradeApply
    } else {
        Step::KubeadmUpgradeNode
    };
    ctx.progress.step(&node.name, step);
    let s = render_kubeadm(p, apply).map_err(|e| StepError::new(step, e.to_string()))?;
    let deadline = p.timeouts.packages + p.timeouts.init;
    changes.extend(run_script(&sess, step, &s, deadline).await.map_err(|e| {
        e.hint(format!(
            "nothing on {} was drained or restarted yet; the full kubeadm output is in /var/log/kubestrap/kubeadm-upgrade.log there. \
             kubeadm upgrade can be repeated: fix the cause and run `kubestrap upgrade` again",
            node.name
        ))
    })?.0);

    // Drain (kubectl cordons first). A node that was schedulable becomes "ours" before that, so
    // a failure from here on leaves a record that the next run uncordons it.
    ctx.progress.step(&node.name, Step::Drain);
    let was_schedulable = ctx.schedulable.contains(&node.name);
    if was_schedulable {
        ctx.ours
            .lock()
            .unwrap()
            .set(&node.name, true)
            .map_err(|e| StepError::new(Step::Drain, e))?;
    }
    let secs = ctx.drain_timeout.as_secs();
    on_cp(
        &ctx,
        Step::Drain,
        &format!("out=$({KUBECTL} drain {n} --ignore-daemonsets --delete-emptydir-data --timeout={secs}s 2>&1) || {{ printf '%s\n' \"$out\" | tail -n 6 >&2; exit 1; }}"),
        ctx.drain_timeout + Duration::from_secs(60),
    )
    .await
    .map_err(|e| e.hint(format!(
        "{} stays cordoned, its kubelet was not touched. Pods that cannot be evicted (a PodDisruptionBudget, pods without a controller) are named above: \
         move or delete them, or raise --drain-timeout, then run `kubestrap upgrade` again",
        node.name
    )))?;
    changes.push(format!("drained {}", node.name));

    ctx.progress.step(&node.name, Step::Kubelet);
    let s = render_kubelet(p).map_err(|e| StepError::new(Step::Kubelet, e.to_string()))?;
    changes.extend(
        run_script(&sess, Step::Kubelet, &s, p.timeouts.packages)
            .await
            .map_err(|e| {
                e.hint(format!(
                    "{} stays cordoned; fix the cause and run `kubestrap upgrade` again",
                    node.name
                ))
            })?
            .0,
    );

    ctx.progress.step(&node.name, Step::Ready);
    wait_upgraded(&ctx, &node.name, t).await?;

    if ctx.ours.lock().unwrap().names.contains(&node.name) {
        ctx.progress.step(&node.name, Step::Uncordon);
        on_cp(
            &ctx,
            Step::Uncordon,
            &format!("{KUBECTL} uncordon {n} >/dev/null"),
            p.timeouts.command,
        )
        .await
        .map_err(|e| {
            e.hint(format!(
                "run `kubectl uncordon {}`, or `kubestrap upgrade` again",
                node.name
            ))
        })?;
        ctx.ours
            .lock()
            .unwrap()
            .set(&node.name, false)
            .map_err(|e| StepError::new(Step::Uncordon, e))?;
        changes.push(format!("uncordoned {}", node.name));
    }
    Ok(changes)
}

/// Wait until the node reports kubelet `t` and Ready.
async fn wait_upgraded(ctx: &Ctx, name: &str, t: Version) -> Result<(), StepError> {
    let start = Instant::now();
    let limit = ctx.plan.timeouts.ready;
    let mut seen = String::from("not seen");
    loop {
        if let Some(nodes) = cluster_nodes(&ctx.plan, &ctx.cp_sess).await {
            if let Some(n) = nodes.iter().find(|n| n.name == name) {
                if release(&n.kubelet_version) == Some(t) && n.ready {
                    return Ok(());
                }
                seen = format!(
                    "{}, {}",
                    n.kubelet_version,
                    if n.ready { "Ready" } else { "NotReady" }
                );
            }
        }
        if start.elapsed() >= limit || crate::cluster::interrupted() {
            return Err(StepError::new(
                Step::Ready,
                format!("the node did not report kubelet v{t} and Ready within {}s (last seen: {seen})", limit.as_secs()),
            )
            .kind(crate::cluster::ErrorKind::Timeout)
            .hint(format!(
                "{name} stays cordoned; look at `journalctl -u kubelet` on it, then run `kubestrap upgrade` again"
            )));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
