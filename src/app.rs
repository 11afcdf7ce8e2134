//! Shared by the commands (one per file in `commands/`): loading the inventory into a run, the
//! console lock, and the summary. Exit codes: 0 all hosts fine,
//! 1 one or more hosts failed, 2 invalid input or usage.

use std::path::Path;
use std::sync::Arc;

use serde_json::json;

use crate::cli::{Cli, Command, Common};
use crate::cluster::phase::Step;
use crate::cluster::{self, HostRun, Outcome, Run};
use crate::commands;
use crate::plan::Plan;
use crate::progress::{OutputFormat, Progress};
use crate::redact::Redactor;

pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_INPUT: i32 = 2;

pub fn main(cli: Cli) -> i32 {
    let filter = match cli.verbose {
        0 => "warn",
        1 => "info,russh=warn",
        _ => "debug",
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KUBESTRAP_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            crate::errln!("error: cannot start the async runtime: {e}");
            return EXIT_FAILED;
        }
    };
    rt.block_on(async move {
        match cli.command {
            Command::Up(c) => commands::up::up(c).await,
            Command::Check(c) => commands::check::check(c).await,
            Command::Plan(c) => commands::plan::plan(c).await,
            Command::Upgrade(a) => commands::upgrade::upgrade(a).await,
            Command::Kubeconfig(a) => commands::kubeconfig::kubeconfig(a).await,
            Command::Reset(a) => commands::reset::reset(a).await,
            Command::Exec(a) => commands::exec::exec(a).await,
            Command::VagrantInventory(a) => commands::vagrant_inventory::vagrant_inventory(a),
            Command::Completions(a) => commands::completions::completions(a),
        }
    })
}

/// Load and validate the inventory, derive the plan, prepare the state folder.
pub(crate) fn load(
    common: &Common,
    hosts_filter: Option<&dyn Fn(&crate::plan::Node) -> bool>,
) -> Result<Run, i32> {
    let inv = match crate::inventory::load(&common.inventory)
        .and_then(|inv| inv.check_secret_env().map(|()| inv))
    {
        Ok(inv) => inv,
        Err(e) => {
            crate::errln!("{e}");
            return Err(EXIT_INPUT);
        }
    };
    let mut plan = match Plan::from_inventory(&inv) {
        Ok(p) => p,
        Err(e) => {
            crate::errln!("{}: {e:#}", common.inventory.display());
            return Err(EXIT_INPUT);
        }
    };
    let log_dir = match crate::state::prepare(&plan.state_dir) {
        Ok(d) => d,
        Err(e) => {
            crate::errln!(
                "error: cannot use the state folder {}: {e}",
                plan.state_dir.display()
            );
            return Err(if e.kind() == std::io::ErrorKind::Other {
                EXIT_INPUT
            } else {
                EXIT_FAILED
            });
        }
    };
    let all_nodes = plan.nodes.clone();
    let selected: Vec<_> = match hosts_filter {
        Some(f) => all_nodes.iter().filter(|n| f(n)).cloned().collect(),
        None => all_nodes.clone(),
    };
    let redactor = Redactor::new();
    for n in &plan.nodes {
        for secret in n.target.secrets() {
            redactor.add(&secret);
        }
    }
    let names: Vec<String> = selected.iter().map(|n| n.name.clone()).collect();
    let progress = Arc::new(Progress::new(common.output, redactor.clone(), &names));
    let hosts = selected
        .into_iter()
        .map(|node| HostRun {
            node,
            session: None,
            outcome: Outcome::Pending,
            changes: vec![],
            facts: Default::default(),
            last_step: None,
        })
        .collect();
    plan.nodes = all_nodes;
    Ok(Run {
        plan,
        progress,
        redactor,
        log_dir,
        concurrency: common.concurrency as usize,
        hosts,
        cp_state: None,
        bootstrap: None,
        kubeconfig: None,
    })
}

/// The console's lock on this cluster, or the error (who holds it) printed.
pub(crate) fn console_lock(run: &Run, command: &str) -> Result<crate::state::ConsoleLock, i32> {
    crate::state::lock(&run.plan.state_dir, &cluster::connect::holder(command)).map_err(|e| {
        run.progress.finish();
        crate::errln!("error: {e}");
        EXIT_FAILED
    })
}

pub(crate) async fn close_all(run: &Run) {
    for h in &run.hosts {
        if let Some(s) = &h.session {
            s.close().await;
        }
    }
}

/// Print the per-host summary and pick the exit code.
pub(crate) async fn finish(run: &Run, kubeconfig: Option<&Path>, headline: &str) -> i32 {
    finish_as(run, kubeconfig, headline, "up").await
}

/// `finish` for command `cmd` (named in the "run it again" advice).
pub(crate) async fn finish_as(
    run: &Run,
    kubeconfig: Option<&Path>,
    headline: &str,
    cmd: &str,
) -> i32 {
    close_all(run).await;
    run.progress.finish();
    let failed = run.any_failed()
        || run
            .hosts
            .iter()
            .any(|h| matches!(h.outcome, Outcome::Skipped(_)));
    let changed: usize = run.hosts.iter().map(|h| h.changes.len()).sum();
    let elapsed = run.progress.elapsed().as_secs_f64();
    let inv = run.plan.inventory_file.display().to_string();
    let names: Vec<&str> = run.hosts.iter().map(|h| h.node.name.as_str()).collect();
    let stats = crate::stats::summary(&names);
    if run.progress.format() == OutputFormat::Json {
        let hosts: Vec<_> = run
            .hosts
            .iter()
            .map(|h| {
                let (status, step, detail, hint) = outcome_parts(h);
                let st = crate::stats::host(&h.node.name);
                json!({"host": h.node.name, "role": h.node.role.as_str(), "status": status, "step": step.map(Step::as_str),
                       "detail": detail, "hint": hint, "changes": h.changes,
                       "handshakes": st.handshakes, "round_trips": st.round_trips, "bytes_sent": st.bytes_sent})
            })
            .collect();
        run.progress.json(json!({
            "event": "summary", "ok": !failed, "changed": changed > 0, "elapsed_s": (elapsed * 10.0).round() / 10.0,
            "kubeconfig": kubeconfig.map(|p| p.display().to_string()),
            "logs": run.log_dir.display().to_string(), "hosts": hosts, "stats": stats,
        }));
        return if failed { EXIT_FAILED } else { EXIT_OK };
    }
    let r = &run.redactor;
    let w = run
        .hosts
        .iter()
        .map(|h| h.node.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    if !headline.is_empty() {
        crate::outln!("{headline}");
    }
    crate::outln!();
    crate::outln!("{:w$}  {:13}  {:8}  DETAIL", "HOST", "ROLE", "STATUS");
    for h in &run.hosts {
        let (status, step, detail, hint) = outcome_parts(h);
        let detail = match (status, step) {
            ("failed", Some(s)) => format!("at {s}: {detail}"),
            ("ok", _) if h.changes.is_empty() => "no changes".to_string(),
            ("ok", _) => format!("{} changes", h.changes.len()),
            _ => detail,
        };
        crate::outln!(
            "{:w$}  {:13}  {:8}  {}",
            h.node.name,
            h.node.role.as_str(),
            status,
            r.redact(&detail)
        );
        if let Some(hint) = hint {
            crate::outln!("{:w$}  {:13}  {:8}  hint: {}", "", "", "", r.redact(&hint));
        }
    }
    crate::outln!();
    crate::outln!(
        "{} in {:.1}s. Logs: {}",
        if failed {
            "Failed"
        } else if changed == 0 {
            "Done, nothing changed on any host,"
        } else {
            "Done"
        },
        elapsed,
        run.log_dir.display()
    );
    crate::outln!("{}", crate::stats::line(&stats));
    if let Some(k) = kubeconfig {
        crate::outln!("Kubeconfig: {}", k.display());
        if !failed {
            crate::outln!("Next: KUBECONFIG={} kubectl get nodes", k.display());
        }
    } else if failed {
        crate::outln!("Next: fix the problems above, then run `kubestrap {cmd} -i {inv}` again; it picks up where it stopped.");
    }
    if failed {
        EXIT_FAILED
    } else {
        EXIT_OK
    }
}

pub(crate) fn outcome_parts(h: &HostRun) -> (&'static str, Option<Step>, String, Option<String>) {
    match &h.outcome {
        Outcome::Pending | Outcome::Ok => ("ok", None, String::new(), None),
        Outcome::Failed(e) => ("failed", Some(e.step), e.message.clone(), e.hint.clone()),
        Outcome::Skipped(why) => ("skipped", None, why.clone(), None),
    }
}
