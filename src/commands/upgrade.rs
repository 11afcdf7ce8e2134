//! `kubestrap upgrade -i FILE [--batch N|N%] [--drain-timeout D] [--yes]`: a rolling upgrade to
//! the inventory's kubernetesVersion (see `cluster::upgrade`).

use std::sync::Arc;

use crate::app::{console_lock, finish_as, load, EXIT_INPUT};
use crate::cli::UpgradeArgs;
use crate::cluster::phase::{Ended, Manager};
use crate::cluster::upgrade::{self, Batch, Settings, Shared};
use crate::cluster::{self, phases};
use crate::plan::Role;

pub async fn upgrade(a: UpgradeArgs) -> i32 {
    let settings = match settings(&a) {
        Ok(s) => s,
        Err(e) => {
            crate::errln!("error: {e}");
            return EXIT_INPUT;
        }
    };
    if !a.yes {
        use std::io::IsTerminal;
        if !std::io::stdin().is_terminal() {
            crate::errln!("error: `kubestrap upgrade` drains and upgrades every node of the cluster.\nRefusing without confirmation: standard input is not a terminal; pass --yes to confirm.");
            return EXIT_INPUT;
        }
    }
    let mut run = match load(&a.common, None) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let _lock = match console_lock(&run, "upgrade") {
        Ok(l) => l,
        Err(code) => return code,
    };
    cluster::watch_ctrl_c(run.progress.clone());
    let st: Shared = Default::default();
    let ended = manager(st.clone(), settings).run(&mut run).await;
    let (t, from) = {
        let s = st.lock().unwrap();
        (s.target, s.running)
    };
    let headline = match ended {
        Ended::Stopped(why) if !why.is_empty() => why,
        Ended::Interrupted { after } => format!(
            "Interrupted after `{after}`: run `kubestrap upgrade` again to continue; nodes already upgraded are skipped"
        ),
        _ if run.any_failed() => "The upgrade did not finish: the failed nodes are named below (a node that failed after its drain stays cordoned).".to_string(),
        _ => match (from, t) {
            (Some(f), Some(t)) if f != t => format!("Upgraded cluster {} from v{f} to v{t}.", run.plan.cluster_name),
            (_, Some(t)) => format!("Cluster {} runs v{t} on every node.", run.plan.cluster_name),
            _ => String::new(),
        },
    };
    let kubeconfig = run.kubeconfig.clone();
    finish_as(&run, kubeconfig.as_deref(), &headline, "upgrade").await
}

fn settings(a: &UpgradeArgs) -> Result<Settings, String> {
    let batch = Batch::parse(&a.batch)?;
    let drain_timeout = crate::inventory::parse_duration(&a.drain_timeout)
        .filter(|d| d.as_secs() >= 1)
        .ok_or_else(|| {
            format!(
                "--drain-timeout {:?}: give a duration such as 90s, 5m or 1h",
                a.drain_timeout
            )
        })?;
    Ok(Settings {
        batch,
        drain_timeout,
        yes: a.yes,
    })
}

/// `upgrade`'s phases, in order.
pub fn manager(st: Shared, s: Settings) -> Manager {
    Manager::new(false)
        .add(phases::Connect)
        .add(phases::Preflight {
            lock_for: Some("upgrade"),
            stop_on_problems: true,
            fast: false,
            version_check: false,
        })
        .add(upgrade::Survey {
            st: st.clone(),
            settings: s.clone(),
        })
        .add(upgrade::Images { st: st.clone() })
        .add(upgrade::Roll {
            st: st.clone(),
            role: Role::ControlPlane,
            settings: s.clone(),
        })
        .add(upgrade::Roll {
            st: Arc::clone(&st),
            role: Role::Worker,
            settings: s,
        })
        // The same prepare as `up`, now at the new version: stamps and files agree with the
        // inventory, so the next `up` is a no-op.
        .add(phases::Prepare)
        .add(phases::Kubeconfig)
}

#[cfg(test)]
mod tests {
    use crate::cluster::phase::Step::*;

    #[test]
    fn upgrade_checks_then_rolls_control_planes_before_workers() {
        let s = super::Settings {
            batch: Default::default(),
            drain_timeout: std::time::Duration::from_secs(300),
            yes: true,
        };
        assert_eq!(
            super::manager(Default::default(), s).steps(),
            [Connect, Preflight, Versions, Images, Upgrade, Upgrade, Prepare, Kubeconfig]
        );
    }
}
