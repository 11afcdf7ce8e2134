//! `kubestrap plan -i FILE`: connect, run the preflight, and print for every host what `up`
//! would change, then the cluster steps it would take. Nothing changes on any host, and the
//! state folder's kubeconfig and pki are not touched (the run writes only its logs).
//!
//! Exit codes: 0 no changes, 3 changes pending, 1 a host failed, 2 bad input.

use serde_json::json;

use crate::app::{close_all, load, EXIT_FAILED, EXIT_OK};
use crate::cli::Common;
use crate::cluster::dry::{self, HostPlan, Step};
use crate::cluster::phase::Manager;
use crate::cluster::{self, phases, Outcome, Run};
use crate::progress::OutputFormat;

pub const EXIT_CHANGES: i32 = 3;

pub async fn plan(c: Common) -> i32 {
    let mut run = match load(&c, None) {
        Ok(r) => r,
        Err(code) => return code,
    };
    cluster::watch_ctrl_c(run.progress.clone());
    // The checks `up` starts with (no run lock: a plan changes nothing), then the dry prepare.
    let checks = Manager::new(true)
        .add(phases::Connect)
        .add(phases::Preflight {
            lock_for: None,
            stop_on_problems: false,
            fast: true,
            version_check: false,
        });
    let _ = checks.run(&mut run).await;
    // A running cluster at another version: `up` would refuse; show what `upgrade` would do.
    let upgrading = !cluster::interrupted()
        && run.hosts.iter().filter(|h| h.alive()).any(|h| {
            crate::cluster::preflight::version_change(&h.facts, &run.plan.version).is_some()
        });
    if upgrading {
        let steps = upgrade_steps(&mut run).await;
        let hosts = vec![HostPlan::default(); run.hosts.len()];
        return report(&mut run, &hosts, &steps, true).await;
    }
    let hosts = if cluster::interrupted() {
        vec![HostPlan::default(); run.hosts.len()]
    } else {
        dry::prepare(&mut run).await
    };
    let cp_ok = run.hosts[run.control_plane_index()].alive();
    let steps = if cp_ok && !run.any_failed() {
        let pending = hosts.iter().any(|h| !h.changes.is_empty());
        dry::cluster_steps(&run, pending)
    } else {
        vec![]
    };
    report(&mut run, &hosts, &steps, false).await
}

/// `upgrade`'s checks (read-only) and the steps it would take per node, in its order.
async fn upgrade_steps(run: &mut Run) -> Vec<Step> {
    use crate::cluster::phase::{Flow, Phase};
    use crate::cluster::upgrade::{Settings, Shared, Survey};
    let st: Shared = Default::default();
    let settings = Settings {
        batch: Default::default(),
        drain_timeout: std::time::Duration::from_secs(300),
        yes: true,
    };
    let survey = Survey {
        st: st.clone(),
        settings: settings.clone(),
    };
    if survey.run(run).await != Flow::Next {
        return vec![];
    }
    let st = st.lock().unwrap();
    let (Some(from), Some(to)) = (st.running, st.target) else {
        return vec![];
    };
    let cp = run.control_plane_index();
    let workers = st
        .todo
        .iter()
        .filter(|&&i| run.hosts[i].node.role == crate::plan::Role::Worker)
        .count();
    let mut out = vec![Step {
        host: run.hosts[cp].node.name.clone(),
        what: format!(
            "upgrade cluster {} from v{from} to v{to}: control planes one at a time, then workers {} at a time",
            run.plan.cluster_name,
            settings.batch.size(workers)
        ),
    }];
    let v = &run.plan.version;
    let mut todo = st.todo.clone();
    todo.sort_by_key(|&i| {
        (
            i != cp,
            run.hosts[i].node.role == crate::plan::Role::Worker,
            i,
        )
    });
    for i in todo {
        let kubeadm = if i == cp {
            format!("kubeadm upgrade apply v{to}")
        } else {
            "kubeadm upgrade node".to_string()
        };
        out.push(Step {
            host: run.hosts[i].node.name.clone(),
            what: format!("kubeadm {v}, {kubeadm}, drain, kubelet and kubectl {v}, restart the kubelet, wait Ready, uncordon"),
        });
    }
    out
}

async fn report(run: &mut Run, hosts: &[HostPlan], steps: &[Step], upgrading: bool) -> i32 {
    for h in run.hosts.iter_mut() {
        if matches!(h.outcome, Outcome::Pending) {
            h.outcome = Outcome::Ok;
        }
    }
    close_all(run).await;
    run.progress.finish();
    let failed = run.any_failed() || cluster::interrupted();
    let pending = hosts.iter().any(|h| !h.changes.is_empty()) || !steps.is_empty();
    if run.progress.format() == OutputFormat::Json {
        print_json(run, hosts, steps, failed, pending, upgrading);
    } else {
        print_text(run, hosts, steps, failed, pending, upgrading);
    }
    if failed {
        EXIT_FAILED
    } else if pending {
        EXIT_CHANGES
    } else {
        EXIT_OK
    }
}

fn print_json(
    run: &Run,
    hosts: &[HostPlan],
    steps: &[Step],
    failed: bool,
    pending: bool,
    upgrading: bool,
) {
    let r = &run.redactor;
    let per_host: Vec<_> = run
        .hosts
        .iter()
        .zip(hosts)
        .map(|(h, hp)| {
            let (status, detail) = match &h.outcome {
                Outcome::Failed(e) => ("failed", format!("{}: {}", e.step, e.message)),
                Outcome::Skipped(w) => ("skipped", w.clone()),
                _ => ("ok", String::new()),
            };
            let steps: Vec<&str> = steps
                .iter()
                .filter(|s| s.host == h.node.name)
                .map(|s| s.what.as_str())
                .collect();
            json!({
                "host": h.node.name, "role": h.node.role.as_str(), "status": status,
                "detail": r.redact(&detail), "changes": hp.changes, "diffs": hp.diffs,
                "cluster_steps": steps,
            })
        })
        .collect();
    let steps: Vec<_> = steps
        .iter()
        .map(|s| json!({"host": s.host, "step": s.what}))
        .collect();
    run.progress.json(json!({
        "event": "plan", "ok": !failed, "changes_pending": pending, "upgrade": upgrading,
        "hosts": per_host, "cluster_steps": steps,
        "logs": run.log_dir.display().to_string(),
    }));
}

fn print_text(
    run: &Run,
    hosts: &[HostPlan],
    steps: &[Step],
    failed: bool,
    pending: bool,
    upgrading: bool,
) {
    let r = &run.redactor;
    crate::outln!();
    for (h, hp) in run.hosts.iter().zip(hosts) {
        let head = format!("{} ({})", h.node.name, h.node.role.as_str());
        match &h.outcome {
            Outcome::Failed(e) => {
                crate::outln!("{head}: failed at {}: {}", e.step, r.redact(&e.message));
                if let Some(hint) = &e.hint {
                    crate::outln!("  hint: {}", r.redact(hint));
                }
                continue;
            }
            Outcome::Skipped(w) => {
                crate::outln!("{head}: skipped: {}", r.redact(w));
                continue;
            }
            _ => {}
        }
        if hp.changes.is_empty() {
            if !upgrading {
                crate::outln!("{head}: no changes");
            }
            continue;
        }
        crate::outln!("{head}: {} changes", hp.changes.len());
        for c in &hp.changes {
            crate::outln!("  ~ {}", r.redact(c));
            if let Some(d) = hp.diffs.get(c) {
                for l in d.lines() {
                    crate::outln!("      {}", r.redact(l));
                }
            }
        }
    }
    if !steps.is_empty() {
        crate::outln!();
        crate::outln!("cluster:");
        for s in steps {
            crate::outln!("  + {}: {}", s.host, r.redact(&s.what));
        }
    }
    crate::outln!();
    let inv = run.plan.inventory_file.display();
    if failed {
        crate::outln!(
            "Plan incomplete: a host failed (above). Fix it and run `kubestrap plan -i {inv}` again. Logs: {}",
            run.log_dir.display()
        );
    } else if upgrading && pending {
        crate::outln!(
            "An upgrade is pending ({} nodes); nothing was changed. `kubestrap up` refuses a version change: run `kubestrap upgrade -i {inv}`.",
            steps.len() - 1
        );
    } else if pending {
        let n: usize = hosts.iter().map(|h| h.changes.len()).sum::<usize>() + steps.len();
        crate::outln!(
            "{n} changes pending; nothing was changed. Apply them with `kubestrap up -i {inv}`."
        );
    } else {
        crate::outln!("No changes: the cluster is as the inventory says.");
    }
}
