//! `kubestrap up -i FILE`: build the cluster, or converge it.

use crate::app::{console_lock, finish, load};
use crate::cli::Common;
use crate::cluster::{self, preflight, Outcome, Run};
use crate::plan::Role;

pub async fn up(c: Common) -> i32 {
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

pub async fn stop_interrupted(run: &mut Run) -> i32 {
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
