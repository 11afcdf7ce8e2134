//! `kubestrap upgrade`: a rolling Kubernetes upgrade in kubeadm's order (facts:
//! kubeadm-upgrade.md). Checks first, on every host, all problems together; the preloaded image
//! bundles are imported; then the first control plane (`kubeadm upgrade apply`), the other
//! control planes one at a time and the workers in batches (`kubeadm upgrade node`), each node
//! drained before its kubelet is replaced and uncordoned once it reports the new version and
//! Ready. A node that fails stays cordoned and is named; its batch finishes, no new batch starts,
//! and the next run resumes: nodes already at the target are skipped.
//!
//! Here: the settings (`--batch`), the state the phases share (with the record of the nodes
//! kubestrap cordoned), the script rendering and the check phases (`Survey`, `Images`). The
//! rolling itself (`Roll`, one node's steps) is in `roll`, the checks' decision in `checks`, the
//! version policy in `version`.

pub mod checks;
mod roll;
pub mod version;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use minijinja::context;

use super::init::{parse_nodes, NodeStatus, KUBECTL};
use super::phase::{Flow, Phase, PhaseFuture, Step};
use super::preflight::{self, Facts};
use super::{run_script, Run, StepError};
use crate::plan::{Node, Plan, Role};
use version::{release, Path, Version};

pub use roll::Roll;

/// `--batch`: how many workers at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    Hosts(usize),
    Percent(u32),
}

impl Batch {
    /// `3` or `25%` (1..=100).
    pub fn parse(s: &str) -> Result<Batch, String> {
        let bad = || {
            format!("--batch {s:?}: give a number of workers (e.g. 2) or a percentage of them (e.g. 25%)")
        };
        if let Some(p) = s.strip_suffix('%') {
            let p: u32 = p.parse().map_err(|_| bad())?;
            return if (1..=100).contains(&p) {
                Ok(Batch::Percent(p))
            } else {
                Err(bad())
            };
        }
        match s.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(Batch::Hosts(n)),
            _ => Err(bad()),
        }
    }

    /// Workers per batch out of `workers`: at least 1 (a percentage rounds down, like k0sctl's
    /// workerDisruptionPercent).
    pub fn size(self, workers: usize) -> usize {
        match self {
            Batch::Hosts(n) => n,
            Batch::Percent(p) => workers * p as usize / 100,
        }
        .max(1)
    }
}

impl Default for Batch {
    fn default() -> Self {
        Batch::Percent(10)
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub batch: Batch,
    pub drain_timeout: Duration,
    pub yes: bool,
}

/// What the upgrade's phases share.
#[derive(Default)]
pub struct State {
    pub target: Option<Version>,
    pub running: Option<Version>,
    pub nodes: Vec<NodeStatus>,
    /// Host indices that still need work, inventory order.
    pub todo: Vec<usize>,
    /// Nodes kubestrap cordoned and has not uncordoned yet (kept in the state folder, so a re-run
    /// after a failure knows which cordons are its own).
    pub ours: Arc<Mutex<Cordoned>>,
}

pub type Shared = Arc<Mutex<State>>;

/// The state folder's record of the nodes kubestrap cordoned.
#[derive(Default)]
pub struct Cordoned {
    file: PathBuf,
    pub names: BTreeSet<String>,
}

impl Cordoned {
    pub fn load(state_dir: &std::path::Path) -> Cordoned {
        let file = state_dir.join("upgrade-cordoned");
        let names = crate::state::read_string(&file)
            .map(|s| {
                s.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        Cordoned { file, names }
    }
    fn save(&self) -> Result<(), String> {
        let text: String = self.names.iter().map(|n| format!("{n}\n")).collect();
        crate::state::write_file(&self.file, text.as_bytes(), 0o600)
            .map_err(|e| format!("cannot write {}: {e}", self.file.display()))
    }
    fn set(&mut self, name: &str, cordoned: bool) -> Result<(), String> {
        let changed = if cordoned {
            self.names.insert(name.to_string())
        } else {
            self.names.remove(name)
        };
        if changed {
            self.save()?;
        }
        Ok(())
    }
}

fn target(p: &Plan) -> Version {
    Version::parse(&p.version).expect("the inventory's kubernetesVersion is validated")
}

/// The per-host check script: installed packages, the target in the repository (read into a
/// private apt state), on the first control plane the cluster's version and nodes, and with
/// `images` which of the target's images the runtime lacks.
pub fn render_check(
    p: &Plan,
    node: &Node,
    first_cp: bool,
    images: Option<&[String]>,
) -> anyhow::Result<String> {
    crate::templates::script(
        "scripts/upgrade-check.sh.j2",
        context! {
            repo => p.package_repository.clone(),
            version => p.version.clone(),
            packages => images.is_none(),
            cluster => first_cp && images.is_none(),
            kubectl => KUBECTL,
            images => images.map(<[String]>::to_vec).unwrap_or_default(),
            runtime => p.runtime.as_str(),
            role => node.role.as_str(),
        },
    )
}

pub fn render_kubeadm(p: &Plan, apply: bool) -> anyhow::Result<String> {
    crate::templates::script(
        "scripts/upgrade-kubeadm.sh.j2",
        context! { repo => p.package_repository.clone(), version => p.version.clone(), apply => apply },
    )
}

pub fn render_kubelet(p: &Plan) -> anyhow::Result<String> {
    crate::templates::script(
        "scripts/upgrade-kubelet.sh.j2",
        context! { version => p.version.clone() },
    )
}

/// The blocks `BEGIN name` ... `END name` in a script's output.
fn block<'a>(stdout: &'a str, name: &str) -> Option<String> {
    let mut lines = stdout.lines();
    lines.find(|l| l.strip_prefix("BEGIN ") == Some(name))?;
    let body: Vec<&'a str> = lines
        .take_while(|l| l.strip_prefix("END ") != Some(name))
        .collect();
    Some(body.join("\n"))
}

/// `kubectl version -o json`'s serverVersion, or why it could not be read.
fn server_version(stdout: &str) -> Result<Version, String> {
    let text = block(stdout, "version").ok_or("the control plane printed no version")?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|_| {
        format!(
            "kubectl version said: {}",
            text.lines().last().unwrap_or("").trim()
        )
    })?;
    let git = v["serverVersion"]["gitVersion"].as_str().ok_or_else(|| {
        "kubectl version shows no server: the API server does not answer".to_string()
    })?;
    release(git).ok_or_else(|| format!("unreadable server version {git:?}"))
}

/// Checks: packages and cluster state on every host, then the decision (stops on problems).
pub struct Survey {
    pub st: Shared,
    pub settings: Settings,
}

impl Phase for Survey {
    fn step(&self) -> Step {
        Step::Versions
    }
    fn run<'a>(&'a self, run: &'a mut Run) -> PhaseFuture<'a> {
        Box::pin(async move {
            let p = Arc::new(run.plan.clone());
            let cp = run.control_plane_index();
            let outs: Arc<Mutex<Vec<(usize, String)>>> = Default::default();
            {
                let outs = outs.clone();
                let p = p.clone();
                run.each(
                    Step::Versions,
                    |_| true,
                    move |i, node, sess| {
                        let (p, outs) = (p.clone(), outs.clone());
                        async move {
                            let s = render_check(&p, &node, i == cp, None)
                                .map_err(|e| StepError::new(Step::Versions, e.to_string()))?;
                            let (_, out) =
                                run_script(&sess, Step::Versions, &s, p.timeouts.packages).await?;
                            outs.lock().unwrap().push((i, out));
                            Ok(vec![])
                        }
                    },
                )
                .await;
            }
            let mut cp_out = None;
            for (i, out) in std::mem::take(&mut *outs.lock().unwrap()) {
                run.hosts[i].facts.0.extend(Facts::parse(&out).0);
                if i == cp {
                    cp_out = Some(out);
                }
            }
            if !run.hosts[cp].alive() {
                return stop_all(
                    run,
                    "the control plane could not be checked: nothing was changed",
                );
            }
            let cp_out = cp_out.unwrap_or_default();
            let nodes = block(&cp_out, "nodes")
                .and_then(|j| parse_nodes(&j))
                .unwrap_or_default();
            let t = target(&p);
            let ours = Arc::new(Mutex::new(Cordoned::load(&p.state_dir)));
            let views: Vec<checks::HostView> = run
                .hosts
                .iter()
                .map(|h| checks::HostView {
                    name: &h.node.name,
                    role: h.node.role,
                    facts: &h.facts,
                })
                .collect();
            let d = checks::decide(
                t,
                &p.package_repository,
                server_version(&cp_out),
                &nodes,
                &views,
                cp,
                &ours.lock().unwrap().names,
            );
            drop(views);
            preflight::apply(run, &d.findings);
            if d.refused() {
                return stop_all(run, "upgrade checks failed: nothing was changed; fix the problems above and run again");
            }
            let running = d.running.expect("decided");
            if d.todo.is_empty() {
                for h in run.hosts.iter_mut() {
                    if matches!(h.outcome, super::Outcome::Pending) {
                        h.outcome = super::Outcome::Ok;
                    }
                }
                return Flow::Stop(format!(
                    "Cluster {} already runs v{t} on every node: nothing to do.",
                    p.cluster_name
                ));
            }
            let names: Vec<String> = d
                .todo
                .iter()
                .map(|&i| run.hosts[i].node.name.clone())
                .collect();
            let workers = d
                .todo
                .iter()
                .filter(|&&i| run.hosts[i].node.role == Role::Worker)
                .count();
            let what = match d.path {
                Some(Path::Same) => format!(
                    "finish upgrading cluster {} to v{t} on {}",
                    p.cluster_name,
                    names.join(", ")
                ),
                _ => format!(
                    "upgrade cluster {} from v{running} to v{t}: {}",
                    p.cluster_name,
                    names.join(", ")
                ),
            };
            run.progress.say(&format!(
                "{what} (control planes one at a time, workers {} at a time; each node is drained, its kubelet replaced, then uncordoned)",
                self.settings.batch.size(workers)
            ));
            if !self.settings.yes && !confirm(run, &what) {
                return stop_all(run, "Not confirmed; nothing was changed.");
            }
            let mut st = self.st.lock().unwrap();
            st.target = Some(t);
            st.running = Some(running);
            st.nodes = nodes;
            st.todo = d.todo;
            st.ours = ours;
            Flow::Next
        })
    }
}

fn confirm(run: &Run, what: &str) -> bool {
    use std::io::{BufRead, Write};
    let mut answer = String::new();
    run.progress.suspend(&mut || {
        eprint!("This will {what}.\nType `yes` to continue: ");
        let _ = std::io::stderr().flush();
        let _ = std::io::stdin().lock().read_line(&mut answer);
    });
    answer.trim() == "yes"
}

fn stop_all(run: &mut Run, why: &str) -> Flow {
    for i in 0..run.hosts.len() {
        run.skip(
            i,
            "not started: the upgrade checks stopped it (nothing was changed on any host)",
        );
    }
    Flow::Stop(why.to_string())
}

/// Import the preloaded bundles where they are missing, then check the target's images.
pub struct Images {
    pub st: Shared,
}

impl Phase for Images {
    fn step(&self) -> Step {
        Step::Images
    }
    fn run<'a>(&'a self, run: &'a mut Run) -> PhaseFuture<'a> {
        Box::pin(async move {
            let todo = self.st.lock().unwrap().todo.clone();
            let p = Arc::new(run.plan.clone());
            for k in 0..p.preload.len() {
                let key = format!("image{k}");
                let sum = &p.preload[k].sha256;
                let targets: Vec<usize> = todo
                    .iter()
                    .copied()
                    .filter(|&i| run.hosts[i].alive() && run.hosts[i].facts.get(&key) != sum)
                    .collect();
                super::prepare::upload_and_import(run, k, &targets).await;
                for &i in &targets {
                    if run.hosts[i].alive() {
                        run.hosts[i].facts.0.insert(key.clone(), sum.clone());
                    }
                }
            }
            let t = target(&p);
            let missing: Arc<Mutex<Vec<(usize, String)>>> = Default::default();
            {
                let (missing, p) = (missing.clone(), p.clone());
                let names: Vec<String> = todo
                    .iter()
                    .map(|&i| run.hosts[i].node.name.clone())
                    .collect();
                run.each(
                    Step::Images,
                    move |h| names.contains(&h.node.name),
                    move |i, node, sess| {
                        let (p, missing) = (p.clone(), missing.clone());
                        async move {
                            let want = checks::target_images(&p.image_repository, t, node.role);
                            let s = render_check(&p, &node, false, Some(&want))
                                .map_err(|e| StepError::new(Step::Images, e.to_string()))?;
                            let (_, out) =
                                run_script(&sess, Step::Images, &s, p.timeouts.command).await?;
                            let f = Facts::parse(&out);
                            if !f.get("images_missing").is_empty() {
                                missing
                                    .lock()
                                    .unwrap()
                                    .push((i, f.get("images_missing").to_string()));
                            }
                            Ok(vec![])
                        }
                    },
                )
                .await;
            }
            let missing = std::mem::take(&mut *missing.lock().unwrap());
            let mut findings = vec![];
            for (i, list) in missing.into_iter().filter(|(i, _)| todo.contains(i)) {
                let host = run.hosts[i].node.name.clone();
                let (error, msg) = if p.preload.is_empty() {
                    (false, format!("{list} not on this host yet: kubeadm and the kubelet pull them from {} during the upgrade", p.image_repository))
                } else {
                    (true, format!(
                        "{list} not in the container runtime after importing preloadImages: add a bundle with the v{t} images to cluster.preloadImages (air-gapped), or remove preloadImages to let the nodes pull them"
                    ))
                };
                findings.push(preflight::Finding {
                    host,
                    error,
                    check: "images",
                    message: msg,
                });
            }
            preflight::apply(run, &findings);
            if findings.iter().any(|f| f.error) {
                for i in 0..run.hosts.len() {
                    run.skip(i, "not started: the target's images are missing on some hosts (no version was changed)");
                }
                return Flow::Stop("upgrade checks failed: no version was changed; fix the problems above and run again".into());
            }
            Flow::Next
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_counts_or_percentages_of_the_workers() {
        assert_eq!(Batch::parse("3"), Ok(Batch::Hosts(3)));
        assert_eq!(Batch::parse("50%"), Ok(Batch::Percent(50)));
        for bad in ["0", "0%", "101%", "-1", "x", "", "5.5"] {
            assert!(Batch::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Batch::Percent(50).size(9), 4);
        assert_eq!(Batch::Percent(10).size(9), 1);
        assert_eq!(Batch::default().size(30), 3);
        assert_eq!(Batch::Hosts(2).size(1), 2);
    }

    #[test]
    fn the_server_version_comes_from_kubectl_version() {
        let out = "FACT pkg_kubeadm=1.31.2-1.1\nBEGIN version\n{\"clientVersion\":{\"gitVersion\":\"v1.31.2\"},\"serverVersion\":{\"gitVersion\":\"v1.31.2\"}}\nEND version\n";
        assert_eq!(server_version(out), Ok(release("1.31.2").unwrap()));
        let down = "BEGIN version\n{\"clientVersion\":{\"gitVersion\":\"v1.31.2\"}}\nEND version\n";
        assert!(server_version(down)
            .unwrap_err()
            .contains("does not answer"));
        let junk =
            "BEGIN version\nThe connection to the server 10.0.0.1:6443 was refused\nEND version\n";
        assert!(server_version(junk).unwrap_err().contains("was refused"));
    }

    #[test]
    fn cordons_are_remembered_in_the_state_folder() {
        let d = tempfile::tempdir().unwrap();
        let mut c = Cordoned::load(d.path());
        c.set("w1", true).unwrap();
        c.set("w2", true).unwrap();
        c.set("w1", false).unwrap();
        let again = Cordoned::load(d.path());
        assert_eq!(again.names.iter().collect::<Vec<_>>(), ["w2"]);
    }
}
