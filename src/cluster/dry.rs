//! `kubestrap plan`: what `up` would do, found without changing anything on any host or in the
//! state folder. Host changes come from the prepare script in dry mode (every change in it goes
//! through `put` or `act`, which announce instead of acting, with the CHANGED line a real run
//! prints, and `put` adds a unified diff). Cluster steps come from the facts and the control
//! plane's cluster state, with the same rules `up` applies (see `cluster_steps`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::phase;
use super::prepare::{render_dry, CpState};
use super::{script_error, Run, StepError};
use crate::plan::Role;

/// What `up` would change on one host.
#[derive(Debug, Clone, Default)]
pub struct HostPlan {
    /// The CHANGED lines, in order.
    pub changes: Vec<String>,
    /// path -> unified diff (or "new file, N bytes, mode M").
    pub diffs: BTreeMap<String, String>,
}

impl HostPlan {
    /// Read the dry prepare script's output.
    pub fn parse(stdout: &str) -> HostPlan {
        let mut hp = HostPlan::default();
        let mut cur: Option<(String, String)> = None;
        for l in stdout.lines() {
            if let Some((path, buf)) = cur.as_mut() {
                if l.strip_prefix("END diff ") == Some(path.as_str()) {
                    let (p, b) = cur.take().unwrap();
                    hp.diffs.insert(p, b);
                } else {
                    buf.push_str(l);
                    buf.push('\n');
                }
            } else if let Some(path) = l.strip_prefix("BEGIN diff ") {
                cur = Some((path.to_string(), String::new()));
            } else if let Some(c) = l.strip_prefix("CHANGED ") {
                hp.changes.push(c.to_string());
            }
        }
        hp
    }
}

/// Run the dry prepare script on every host the facts say is not converged; hosts whose stamp
/// matched get an empty plan without another round trip. The control plane's cluster state
/// (from the facts round trip or this one) lands in `run.cp_state`.
pub async fn prepare(run: &mut Run) -> Vec<HostPlan> {
    let p = run.plan.clone();
    let timeout = p.timeouts.packages;
    let scripts: Arc<Vec<Result<String, String>>> = Arc::new(
        run.hosts
            .iter()
            .map(|h| {
                render_dry(&p, &h.node, p.is_first_control_plane(&h.node))
                    .map_err(|e| e.to_string())
            })
            .collect(),
    );
    let plans: Arc<Mutex<BTreeMap<usize, (HostPlan, Option<CpState>)>>> = Default::default();
    let first = p.control_plane().name.clone();
    {
        let plans = plans.clone();
        run.each(
            phase::Step::Plan,
            |h| !h.facts.yes("prepare_unchanged"),
            move |i, node, sess| {
                let (scripts, plans, first) = (scripts.clone(), plans.clone(), first.clone());
                async move {
                    let script = scripts[i]
                        .clone()
                        .map_err(|e| StepError::new(phase::Step::Plan, e))?;
                    let out = sess
                        .script(phase::Step::Plan.as_str(), &script, timeout)
                        .await
                        .map_err(|e| StepError::from_ssh(phase::Step::Plan, e))?;
                    if !out.ok() {
                        let section = out
                            .stdout
                            .lines()
                            .filter_map(|l| l.strip_prefix("STEP "))
                            .next_back();
                        let step = phase::Step::of_section(section, phase::Step::Plan);
                        return Err(script_error(step, &out));
                    }
                    let cp = (node.name == first).then(|| CpState::parse(&out.stdout));
                    plans
                        .lock()
                        .unwrap()
                        .insert(i, (HostPlan::parse(&out.stdout), cp));
                    // Nothing changed: the run's change lists stay empty.
                    Ok(vec![])
                }
            },
        )
        .await;
    }
    let mut found = std::mem::take(&mut *plans.lock().unwrap());
    (0..run.hosts.len())
        .map(|i| match found.remove(&i) {
            Some((mut hp, cp)) => {
                if cp.is_some() {
                    run.cp_state = cp;
                }
                // A bundle this host lacks crosses to it first (from the console or a peer, as
                // `up` decides then), as up's first change on the host says.
                let h = &run.hosts[i];
                let mut recv: Vec<String> = p
                    .preload
                    .iter()
                    .enumerate()
                    .filter(|(k, img)| h.facts.get(&format!("image{k}")) != img.sha256)
                    .map(|(_, img)| format!("receive image bundle {}", bundle_name(&img.remote)))
                    .collect();
                recv.append(&mut hp.changes);
                hp.changes = recv;
                hp
            }
            None => HostPlan::default(),
        })
        .collect()
}

fn bundle_name(remote: &str) -> &str {
    remote.rsplit('/').next().unwrap_or(remote)
}

/// One cluster-level step `up` would take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The host it runs on.
    pub host: String,
    pub what: String,
}

/// The cluster steps `up` would take after preparing: the same decisions as `init::run`,
/// `join::run`, `network::apply` and `kubeconfig::fetch`, made from the facts and the control
/// plane's cluster state. `host_changes` says whether any host has prepare changes pending.
pub fn cluster_steps(run: &Run, host_changes: bool) -> Vec<Step> {
    let p = &run.plan;
    let cp = run.control_plane_index();
    let cp_name = run.hosts[cp].node.name.clone();
    let step = |host: &str, what: String| Step {
        host: host.to_string(),
        what,
    };
    let mut out = vec![];
    let nodes = run.cp_state.as_ref().and_then(|s| s.nodes.clone());
    let initialised = nodes.is_some();
    if !initialised {
        out.push(step(
            &cp_name,
            format!(
                "kubeadm init (Kubernetes v{}, {}, pod network {})",
                p.version, p.kubeadm_api, p.pod_subnet
            ),
        ));
    }
    let registered: Vec<String> = nodes.iter().flatten().map(|n| n.name.clone()).collect();
    let mut joins = vec![];
    for h in run
        .hosts
        .iter()
        .filter(|h| h.node.name != cp_name && h.alive())
    {
        let kubelet_conf = h.facts.yes("kubelet_conf");
        let is_registered = registered.contains(&h.node.name);
        if kubelet_conf && is_registered {
            continue;
        }
        if !kubelet_conf && is_registered {
            out.push(step(
                &cp_name,
                format!(
                    "delete the stale node object {} (its host has no kubelet.conf)",
                    h.node.name
                ),
            ));
        }
        joins.push((h.node.name.clone(), h.node.role == Role::ControlPlane));
    }
    if initialised && !joins.is_empty() {
        out.push(step(&cp_name, "create a bootstrap token (2h)".into()));
    }
    if initialised && joins.iter().any(|(_, cp)| *cp) {
        out.push(step(
            &cp_name,
            "upload the control-plane certificates (kubeadm-certs, 2h)".into(),
        ));
    }
    // Control planes first, one at a time, then the workers: the order `up` joins them in.
    joins.sort_by_key(|(_, cp)| !*cp);
    for (j, cp) in &joins {
        let what = if *cp {
            format!(
                "kubeadm join {} as a control plane (CA pinned, one at a time)",
                p.api_endpoint
            )
        } else {
            format!("kubeadm join {} (CA pinned)", p.api_endpoint)
        };
        out.push(step(j, what));
    }
    let all_ready = nodes.as_ref().is_some_and(|ns| {
        p.nodes
            .iter()
            .all(|n| ns.iter().any(|x| x.name == n.name && x.ready))
    });
    let cni_same = match super::network::render_cni(p) {
        Ok(Some(m)) => {
            use sha2::Digest;
            let sha = hex::encode(sha2::Sha256::digest(m.as_bytes()));
            run.cp_state.as_ref().is_some_and(|s| s.cni_sha256 == sha)
        }
        _ => true,
    };
    if !(all_ready && !host_changes && joins.is_empty() && cni_same) {
        out.push(step(
            &cp_name,
            format!(
                "apply the pod network (flannel {})",
                crate::plan::FLANNEL_VERSION
            ),
        ));
    }
    if let Some(c) = nodes
        .as_deref()
        .and_then(|ns| super::schedulable::change(p, ns))
    {
        out.push(step(&cp_name, c.planned(&cp_name)));
    }
    let kc = super::kubeconfig::path(p);
    let stale = run
        .cp_state
        .as_ref()
        .is_some_and(|s| s.admin_conf.is_some());
    if !initialised || !kc.exists() || stale {
        out.push(step(
            &cp_name,
            format!("write the admin kubeconfig to {}", kc.display()),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dry_output_gives_changes_and_diffs() {
        let out = "STEP system\nOK hostname cp1\nBEGIN diff /etc/hosts\n@@ -1 +1,2 @@\n 127.0.0.1 localhost\n+10.0.0.1 cp1\nEND diff /etc/hosts\nCHANGED /etc/hosts\nBEGIN diff /etc/crictl.yaml\nnew file, 10 bytes, mode 644\nEND diff /etc/crictl.yaml\nCHANGED /etc/crictl.yaml\nCHANGED swap turned off\n";
        let hp = HostPlan::parse(out);
        assert_eq!(
            hp.changes,
            ["/etc/hosts", "/etc/crictl.yaml", "swap turned off"]
        );
        assert_eq!(
            hp.diffs["/etc/hosts"],
            "@@ -1 +1,2 @@\n 127.0.0.1 localhost\n+10.0.0.1 cp1\n"
        );
        assert_eq!(
            hp.diffs["/etc/crictl.yaml"],
            "new file, 10 bytes, mode 644\n"
        );
    }
}
