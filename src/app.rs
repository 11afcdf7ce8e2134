//! Commands: inventory -> plan -> executors, and the summary. Exit codes: 0 all hosts fine,
//! 1 one or more hosts failed, 2 invalid input or usage.

use std::path::Path;
use std::sync::Arc;

use serde_json::json;

use crate::cli::{Cli, Command, Common, ExecArgs, ResetArgs};
use crate::cluster::{self, preflight, HostRun, Outcome, Run};
use crate::plan::{Plan, Role};
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
            Command::Up(c) => up(c).await,
            Command::Check(c) => check(c).await,
            Command::Plan(c) => crate::commands::plan::plan(c).await,
            Command::Kubeconfig(c) => kubeconfig(c).await,
            Command::Reset(a) => reset(a).await,
            Command::Exec(a) => exec(a).await,
            Command::VagrantInventory(a) => vagrant_inventory(a),
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
            last_step: String::new(),
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
    })
}

/// The console's lock on this cluster, or the error (who holds it) printed.
fn console_lock(run: &Run, command: &str) -> Result<crate::state::ConsoleLock, i32> {
    crate::state::lock(&run.plan.state_dir, &cluster::connect::holder(command)).map_err(|e| {
        run.progress.finish();
        crate::errln!("error: {e}");
        EXIT_FAILED
    })
}

async fn up(c: Common) -> i32 {
    let mut run = match load(&c, None) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let _lock = match console_lock(&run, "up") {
        Ok(l) => l,
        Err(code) => return code,
    };
    cluster::watch_ctrl_c(run.progress.clone());
    cluster::connect::run(&mut run).await;
    let locks = cluster::connect::start_locks(&run, "up");
    preflight::gather(&mut run, true).await;
    if !cluster::connect::apply_locks(&mut run, locks).await {
        return finish(
            &run,
            None,
            "another kubestrap run is working on this cluster: nothing was changed",
        )
        .await;
    }
    if cluster::interrupted() {
        return stop_interrupted(&mut run).await;
    }
    let findings = preflight::check(&run);
    if findings.iter().any(|f| f.error) {
        preflight::apply(&mut run, &findings);
        for i in 0..run.hosts.len() {
            run.skip(
                i,
                "not started: preflight found problems (nothing was changed on any host)",
            );
        }
        return finish(
            &run,
            None,
            "preflight failed: nothing was changed; fix the problems above and run again",
        )
        .await;
    }
    preflight::apply(&mut run, &findings);

    cluster::prepare::run(&mut run).await;
    if cluster::interrupted() {
        return stop_interrupted(&mut run).await;
    }

    let cp = run.control_plane_index();
    // A fresh token is needed only when some worker in this run will join: it is not a
    // registered node, or its host has no kubelet.conf (reset or rebuilt under the same name).
    let workers: Vec<(String, bool)> = run
        .hosts
        .iter()
        .filter(|h| h.node.role == Role::Worker && h.alive())
        .map(|h| (h.node.name.clone(), h.facts.yes("kubelet_conf")))
        .collect();
    let init = cluster::init::run(&mut run, |registered| {
        workers
            .iter()
            .any(|(n, kubelet_conf)| !kubelet_conf || !registered.iter().any(|r| &r.name == n))
    })
    .await;
    let Some((bootstrap, registered)) = init else {
        for i in 0..run.hosts.len() {
            if i != cp {
                run.skip(i, "the control plane is not up, so this node cannot join");
            }
        }
        return finish(&run, None, "").await;
    };
    cluster::join::run(&mut run, &bootstrap, &registered).await;
    if cluster::interrupted() {
        return stop_interrupted(&mut run).await;
    }
    if cluster::network::apply(&mut run).await {
        cluster::network::wait_ready(&mut run).await;
    }
    let kubeconfig = cluster::kubeconfig::fetch(&mut run).await;
    for i in 0..run.hosts.len() {
        if matches!(run.hosts[i].outcome, Outcome::Pending) {
            run.hosts[i].outcome = Outcome::Ok;
        }
    }
    finish(&run, kubeconfig.as_deref(), "").await
}

async fn stop_interrupted(run: &mut Run) -> i32 {
    for i in 0..run.hosts.len() {
        if matches!(run.hosts[i].outcome, Outcome::Pending | Outcome::Ok) {
            let at = run.hosts[i].last_step.clone();
            run.skip(i, &format!("interrupted after step `{at}`"));
        }
    }
    finish(
        run,
        None,
        "Interrupted: run `kubestrap up` again to continue; finished steps are not repeated",
    )
    .await
}

pub(crate) async fn close_all(run: &Run) {
    for h in &run.hosts {
        if let Some(s) = &h.session {
            s.close().await;
        }
    }
}

/// Print the per-host summary and pick the exit code.
async fn finish(run: &Run, kubeconfig: Option<&Path>, headline: &str) -> i32 {
    finish_as(run, kubeconfig, headline, "up").await
}

/// `finish` for command `cmd` (named in the "run it again" advice).
async fn finish_as(run: &Run, kubeconfig: Option<&Path>, headline: &str, cmd: &str) -> i32 {
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
                json!({"host": h.node.name, "role": h.node.role.as_str(), "status": status, "step": step,
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

fn outcome_parts(h: &HostRun) -> (&'static str, Option<String>, String, Option<String>) {
    match &h.outcome {
        Outcome::Pending | Outcome::Ok => ("ok", None, String::new(), None),
        Outcome::Failed(e) => (
            "failed",
            Some(e.step.clone()),
            e.message.clone(),
            e.hint.clone(),
        ),
        Outcome::Skipped(why) => ("skipped", None, why.clone(), None),
    }
}

async fn check(c: Common) -> i32 {
    let mut run = match load(&c, None) {
        Ok(r) => r,
        Err(code) => return code,
    };
    // What a reviewer of the inventory should know before running it: where secrets come from.
    match run.progress.format() {
        OutputFormat::Json => run.progress.json(json!({
            "event": "inventory",
            "secrets_from_env": run.plan.secret_envs,
        })),
        OutputFormat::Text => {
            crate::outln!("secrets from environment: {}", run.plan.secrets_summary)
        }
    }
    cluster::connect::run(&mut run).await;
    preflight::gather(&mut run, false).await;
    let findings = preflight::check(&run);
    preflight::apply(&mut run, &findings);
    for h in run.hosts.iter_mut() {
        if matches!(h.outcome, Outcome::Pending) {
            h.outcome = Outcome::Ok;
        }
    }
    finish(&run, None, "").await
}

async fn kubeconfig(c: Common) -> i32 {
    let mut run = match load(
        &c,
        Some(&|n: &crate::plan::Node| n.role == Role::ControlPlane),
    ) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let path = cluster::kubeconfig::path(&run.plan);
    match crate::state::read_string(&path) {
        Ok(text) => {
            run.progress.finish();
            crate::out!("{text}");
            return EXIT_OK;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            run.progress.finish();
            crate::errln!(
                "error: cannot read {}: {e} (kubestrap never reads state files through a symlink); remove it and run `kubestrap kubeconfig` again to fetch a fresh one",
                path.display()
            );
            return EXIT_INPUT;
        }
    }
    cluster::connect::run(&mut run).await;
    let got = cluster::kubeconfig::fetch(&mut run).await;
    close_all(&run).await;
    run.progress.finish();
    match got.and_then(|p| crate::state::read_string(&p).ok()) {
        Some(text) => {
            crate::out!("{text}");
            EXIT_OK
        }
        None => {
            for h in &run.hosts {
                if let Outcome::Failed(e) = &h.outcome {
                    crate::errln!("error: {}: {}: {}", h.node.name, e.step, e.message);
                }
            }
            crate::errln!("error: no kubeconfig; has `kubestrap up` finished on this cluster?");
            EXIT_FAILED
        }
    }
}

async fn reset(a: ResetArgs) -> i32 {
    // Validate the inventory and the host names before asking anything.
    let inv = match crate::inventory::load(&a.common.inventory) {
        Ok(inv) => inv,
        Err(e) => {
            crate::errln!("{e}");
            return EXIT_INPUT;
        }
    };
    let unknown: Vec<&String> = a
        .hosts
        .iter()
        .filter(|n| !inv.hosts.iter().any(|h| &h.name == *n))
        .collect();
    if !unknown.is_empty() {
        let known: Vec<&str> = inv.hosts.iter().map(|h| h.name.as_str()).collect();
        crate::errln!(
            "error: --host {}: not in {} (hosts: {})",
            unknown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            a.common.inventory.display(),
            known.join(", ")
        );
        return EXIT_INPUT;
    }
    let whole = a.hosts.is_empty();
    let mut chosen: Vec<&str> = inv
        .hosts
        .iter()
        .filter(|h| whole || a.hosts.contains(&h.name))
        .map(|h| h.name.as_str())
        .collect();
    chosen.dedup();
    let what = if whole {
        format!(
            "the whole cluster {:?} ({}): every node is drained and removed, kubeadm is reset on every host",
            inv.cluster.name,
            chosen.join(", ")
        )
    } else {
        format!(
            "{} of cluster {:?}: drained, removed from the cluster and kubeadm reset",
            chosen.join(", "),
            inv.cluster.name
        )
    };
    if !a.yes {
        use std::io::{BufRead, IsTerminal, Write};
        if !std::io::stdin().is_terminal() {
            crate::errln!("error: `kubestrap reset` would reset {what}.\nRefusing without confirmation: standard input is not a terminal; pass --yes to confirm.");
            return EXIT_INPUT;
        }
        eprint!("This resets {what}.\nWorkloads on these nodes are lost. Type `yes` to continue: ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if answer.trim() != "yes" {
            crate::errln!("Not confirmed; nothing was changed.");
            return EXIT_INPUT;
        }
    }
    let hosts = a.hosts.clone();
    let filter = move |n: &crate::plan::Node| hosts.is_empty() || hosts.contains(&n.name);
    let mut run = match load(&a.common, Some(&filter)) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let _lock = match console_lock(&run, "reset") {
        Ok(l) => l,
        Err(code) => return code,
    };
    cluster::watch_ctrl_c(run.progress.clone());
    cluster::connect::run(&mut run).await;
    let locks = cluster::connect::start_locks(&run, "reset");
    if !cluster::connect::apply_locks(&mut run, locks).await {
        return finish_as(
            &run,
            None,
            "another kubestrap run is working on this cluster: nothing was reset",
            "reset",
        )
        .await;
    }
    cluster::reset::run(&mut run, whole).await;
    for h in run.hosts.iter_mut() {
        if matches!(h.outcome, Outcome::Pending) {
            h.outcome = Outcome::Ok;
        }
    }
    let inv = run.plan.inventory_file.display().to_string();
    let headline = if run.any_failed() {
        "Reset did not finish on every host (it is safe to repeat).".to_string()
    } else {
        format!("Reset finished. `kubestrap up -i {inv}` builds the cluster again.")
    };
    finish_as(&run, None, &headline, "reset").await
}

async fn exec(a: ExecArgs) -> i32 {
    let hosts = a.hosts.clone();
    let role = a.role.clone();
    let filter = move |n: &crate::plan::Node| {
        (hosts.is_empty() || hosts.contains(&n.name))
            && role.as_deref().is_none_or(|r| r == n.role.as_str())
    };
    let mut run = match load(&a.common, Some(&filter)) {
        Ok(r) => r,
        Err(code) => return code,
    };
    if run.hosts.is_empty() {
        crate::errln!(
            "error: no host matches --host {:?} --role {:?}",
            a.hosts, a.role
        );
        return EXIT_INPUT;
    }
    cluster::connect::run(&mut run).await;
    let cmd = a
        .command
        .iter()
        .map(|s| crate::ssh::shell_quote(s))
        .collect::<Vec<_>>()
        .join(" ");
    let timeout = run.plan.timeouts.command;
    let outputs: std::sync::Mutex<Vec<(String, crate::ssh::Output)>> = Default::default();
    run.each(
        "exec",
        |_| true,
        |_, node, sess| {
            let cmd = cmd.clone();
            let outputs = &outputs;
            async move {
                let out = sess
                    .exec_user(&cmd, None, timeout)
                    .await
                    .map_err(|e| cluster::StepError::from_ssh("exec", e))?;
                let code = out.code;
                outputs.lock().unwrap().push((node.name.clone(), out));
                if code == Some(0) {
                    Ok(vec![])
                } else {
                    Err(cluster::StepError::new(
                        "exec",
                        format!(
                            "exit code {}",
                            code.map(|c| c.to_string()).unwrap_or("?".into())
                        ),
                    ))
                }
            }
        },
    )
    .await;
    close_all(&run).await;
    run.progress.finish();
    let mut outputs = outputs.into_inner().unwrap();
    outputs.sort_by(|a, b| a.0.cmp(&b.0));
    for (host, out) in &outputs {
        for l in out.stdout.lines() {
            crate::outln!("{host}: {l}");
        }
        for l in out.stderr.lines() {
            crate::errln!("{host}: {l}");
        }
    }
    let mut code = EXIT_OK;
    for h in &run.hosts {
        if let Outcome::Failed(e) = &h.outcome {
            crate::errln!("{}: failed: {}", h.node.name, e.message);
            code = EXIT_FAILED;
        }
    }
    code
}

fn vagrant_inventory(a: crate::cli::VagrantArgs) -> i32 {
    use std::io::Read;
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        crate::errln!("error: cannot read stdin: {e}");
        return EXIT_INPUT;
    }
    let mut ips = Vec::new();
    for ip in &a.ips {
        match ip.split_once('=') {
            Some((n, v)) => ips.push((n.to_string(), v.to_string())),
            None => {
                crate::errln!("error: --ip {ip}: expected NAME=ADDR");
                return EXIT_INPUT;
            }
        }
    }
    let hosts = crate::vagrant::parse_ssh_config(&input);
    let o = crate::vagrant::Options {
        cluster_name: a.name,
        version: a.version,
        control_plane: a.control_plane,
        ips,
        private_network: a.private_network,
    };
    match crate::vagrant::render(&hosts, &o) {
        Ok(y) => {
            crate::out!("{y}");
            EXIT_OK
        }
        Err(e) => {
            crate::errln!("error: {e}");
            EXIT_INPUT
        }
    }
}
