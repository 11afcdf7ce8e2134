//! `kubestrap up -i FILE`: build the cluster, or converge it.

use crate::app::{console_lock, finish, load};
use crate::cli::Common;
use crate::cluster::phase::{Ended, Manager};
use crate::cluster::{self, phases, Outcome, Run};

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
    match manager().run(&mut run).await {
        Ended::Done => {
            let kubeconfig = run.kubeconfig.clone();
            finish(&run, kubeconfig.as_deref(), "").await
        }
        Ended::Stopped(why) => finish(&run, None, &why).await,
        Ended::Interrupted { .. } => stop_interrupted(&mut run).await,
    }
}

/// `up`'s phases, in order.
pub fn manager() -> Manager {
    Manager::new(false)
        .add(phases::Connect)
        .add(phases::Preflight {
            lock_for: Some("up"),
            stop_on_problems: true,
            fast: true,
            version_check: true,
        })
        .add(phases::Prepare)
        .add(phases::Init)
        .add(phases::Join)
        .add(phases::Network)
        .add(phases::Taint)
        .add(phases::Kubeconfig)
}

#[cfg(test)]
mod tests {
    use crate::cluster::phase::Step;

    #[test]
    fn up_is_these_phases_and_a_plan_runs_only_the_checks() {
        use Step::*;
        assert_eq!(
            super::manager().steps(),
            [Connect, Preflight, Prepare, Init, Join, Network, Taint, Kubeconfig]
        );
    }
}

pub async fn stop_interrupted(run: &mut Run) -> i32 {
    for i in 0..run.hosts.len() {
        if matches!(run.hosts[i].outcome, Outcome::Pending | Outcome::Ok) {
            let at = run.hosts[i].last_step.map_or("", |s| s.as_str());
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
