//! `kubestrap reset -i FILE [--host NAME]... [--yes]`: take hosts out and undo kubeadm.

use crate::app::{console_lock, finish_as, load, EXIT_INPUT};
use crate::cli::ResetArgs;
use crate::cluster::{self, Outcome};

pub async fn reset(a: ResetArgs) -> i32 {
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
