//! Phase 3: prepare every host in parallel, in ONE round trip per host: a single script
//! (templates/scripts/prepare.sh.j2) runs the system, packages, runtime and image-import sections,
//! each rewriting a file only when its content differs; on the control plane it ends with a read
//! of the cluster state (nodes, ca.crt, admin.conf if the console's copy is stale, the CNI
//! manifest's sha256), so a converged cluster needs no further query.
//!
//! Image bundles cross the console's uplink about once: the preflight facts say which hosts
//! already hold each bundle (by sha256). One host that has it (or gets it from the console, sha256
//! verified) serves it to the others over the cluster network with a short-lived one-shot HTTP
//! server and a one-time URL path per peer; peers fetch and check the sha256 at the start of their
//! prepare script. A peer whose fetch fails gets the bundle from the console afterwards (with a
//! warning); without python3 anywhere, or curl on a peer, the console uploads directly.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use minijinja::context;

use super::init::{parse_nodes, NodeStatus};
use super::phase::Step;
use super::{run_script, script_error, Run, StepError};
use crate::plan::{Node, Plan, Preload, Runtime};
use crate::ssh::{shell_quote, Session};

/// What the control plane's prepare script reported about the cluster.
#[derive(Debug, Clone, Default)]
pub struct CpState {
    /// `kubectl get nodes` worked: the API is up and these nodes are registered.
    pub nodes: Option<Vec<NodeStatus>>,
    pub ca_crt: Option<String>,
    /// admin.conf, only when it differs from the console's copy (`admin_conf_sha256`).
    pub admin_conf: Option<String>,
    pub admin_conf_sha256: String,
    pub cni_sha256: String,
}

impl CpState {
    pub fn parse(stdout: &str) -> CpState {
        let mut blocks: HashMap<&str, String> = HashMap::new();
        let mut cur: Option<(&str, String)> = None;
        let mut facts = BTreeMap::new();
        for l in stdout.lines() {
            if let Some((name, buf)) = cur.as_mut() {
                if l.strip_prefix("END ") == Some(*name) {
                    let (n, b) = cur.take().unwrap();
                    blocks.insert(n, b);
                } else {
                    buf.push_str(l);
                    buf.push('\n');
                }
            } else if let Some(name) = l.strip_prefix("BEGIN ") {
                cur = Some((name, String::new()));
            } else if let Some((k, v)) = l.strip_prefix("FACT ").and_then(|f| f.split_once('=')) {
                facts.insert(k.to_string(), v.trim().to_string());
            }
        }
        CpState {
            nodes: blocks.get("nodes").and_then(|j| parse_nodes(j)),
            ca_crt: blocks.remove("ca.crt"),
            admin_conf: blocks.remove("admin.conf"),
            admin_conf_sha256: facts.remove("admin_conf_sha256").unwrap_or_default(),
            cni_sha256: facts.remove("cni_sha256").unwrap_or_default(),
        }
    }
}

fn hosts_ctx(plan: &Plan) -> Vec<minijinja::Value> {
    plan.nodes
        .iter()
        .map(
            |n| context! { name => n.name.clone(), internal_address => n.internal_address.clone() },
        )
        .collect()
}

/// The sha256 of admin.conf from which the console's kubeconfig was written (empty if none).
pub fn kubeconfig_source_sha(p: &Plan) -> String {
    let kc = super::kubeconfig::path(p);
    if !kc.exists() {
        return String::new();
    }
    crate::state::read_string(&super::kubeconfig::source_sha_path(p))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// How host `i` gets bundle `k`: `url` set = fetch from `seed` in the prepare script.
#[derive(Clone, Default)]
struct Fetch {
    url: Option<String>,
    seed: String,
}

/// A running one-shot image server.
struct Server {
    host: usize,
    pid: u32,
}

fn random_token() -> String {
    use rand::Rng;
    let bytes: [u8; 16] = rand::rng().random();
    hex::encode(bytes)
}

fn url_host(addr: &str) -> String {
    if addr.contains(':') {
        format!("[{addr}]")
    } else {
        addr.to_string()
    }
}

/// Upload bundle `img` to one host, checking its sha256 there before it replaces the old file
/// and recording the stamp the facts read.
async fn upload(p: &Plan, sess: &Session, img: &Preload) -> Result<(), StepError> {
    let q = shell_quote(&img.remote);
    let sum = &img.sha256;
    let cmd = format!(
        "set -e; umask 022; f={q}; d=$(dirname \"$f\"); mkdir -p \"$d\"; t=$(mktemp \"$d/.kubestrap.XXXXXX\"); \
         cat > \"$t\"; s=$(sha256sum \"$t\" | cut -d' ' -f1); \
         if [ \"$s\" != {sum} ]; then rm -f \"$t\"; echo \"FAIL the uploaded copy has sha256 $s, not {sum} (transfer damaged?)\" >&2; exit 1; fi; \
         chmod 644 \"$t\"; mv -f \"$t\" \"$f\"; echo \"$(stat -c '%s %Y %Z %i' \"$f\") $s\" > \"$f.sha256\"; echo uploaded"
    );
    sess.log.write(&format!(
        "# upload {} ({} bytes, sha256 {sum})\n",
        img.remote, img.size
    ));
    let file = tokio::fs::File::open(&img.local).await.map_err(|e| {
        StepError::new(
            Step::Images,
            format!("cannot read {}: {e}", img.local.display()),
        )
    })?;
    let out = sess
        .root_with_file(&cmd, file, p.timeouts.images)
        .await
        .map_err(|e| StepError::from_ssh(Step::Images, e))?;
    crate::stats::image_bytes(&sess.target.host_name, img.size);
    if !out.ok() {
        return Err(script_error(Step::Images, &out)
            .hint("check free space in /var/cache/kubestrap on the host and run again"));
    }
    Ok(())
}

/// Upload bundle `k` from the console to the hosts `targets` (bounded by --concurrency).
async fn upload_to(run: &mut Run, k: usize, targets: &[usize]) {
    if targets.is_empty() {
        return;
    }
    let img = run.plan.preload[k].clone();
    let p = Arc::new(run.plan.clone());
    let names: Vec<String> = targets
        .iter()
        .map(|&i| run.hosts[i].node.name.clone())
        .collect();
    // The uplink is the bottleneck: a few at a time (each streams the file, none holds it).
    let concurrency = run.concurrency;
    run.concurrency = concurrency.min(UPLOADS_AT_ONCE);
    run.each(
        Step::Images,
        move |h| names.contains(&h.node.name),
        move |_, _node, sess| {
            let (p, img) = (p.clone(), img.clone());
            async move {
                upload(&p, &sess, &img).await?;
                Ok(vec![format!(
                    "uploaded {} ({} bytes) from the console",
                    img.remote, img.size
                )])
            }
        },
    )
    .await;
    run.concurrency = concurrency;
}

const UPLOADS_AT_ONCE: usize = 4;

/// Start the one-shot server on `seed` for `peers`; returns it and each peer's URL.
async fn serve(
    run: &mut Run,
    k: usize,
    seed: usize,
    peers: &[usize],
    lifetime: Duration,
) -> Result<(Server, Vec<(usize, String)>), StepError> {
    let img = &run.plan.preload[k];
    let tokens: Vec<String> = peers.iter().map(|_| random_token()).collect();
    for t in &tokens {
        run.redactor.add(t);
    }
    let bind = run.hosts[seed].node.internal_address.clone();
    let script = crate::templates::script(
        "scripts/image-serve.sh.j2",
        context! {
            path => img.remote.clone(), sha256 => img.sha256.clone(), bind => bind.clone(),
            tokens => tokens.clone(), timeout => lifetime.as_secs(),
        },
    )
    .map_err(|e| StepError::new(Step::Images, e.to_string()))?;
    let sess = run.hosts[seed].session.clone().expect("seed is alive");
    run.progress.step(&run.hosts[seed].node.name, Step::Images);
    let (_, out) = run_script(&sess, Step::Images, &script, run.plan.timeouts.command).await?;
    let (pid, port) = out
        .lines()
        .find_map(|l| l.strip_prefix("SERVE "))
        .and_then(|l| l.split_once(' '))
        .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.trim().parse::<u16>().ok()?)))
        .ok_or_else(|| StepError::new(Step::Images, "the image server did not report its port"))?;
    let urls = peers
        .iter()
        .zip(tokens)
        .map(|(&i, t)| (i, format!("http://{}:{port}/{t}", url_host(&bind))))
        .collect();
    Ok((Server { host: seed, pid }, urls))
}

/// Decide, per bundle, who serves it and who fetches it; do the console uploads that must come
/// first. Returns each host's fetch instructions per bundle and the servers to stop afterwards.
async fn distribute(run: &mut Run, lifetime: Duration) -> (Vec<Vec<Fetch>>, Vec<Server>) {
    let n = run.hosts.len();
    let bundles = run.plan.preload.len();
    let mut fetch = vec![vec![Fetch::default(); bundles]; n];
    let mut servers = Vec::new();
    for k in 0..bundles {
        let sha = run.plan.preload[k].sha256.clone();
        let fact = format!("image{k}");
        let alive: Vec<usize> = (0..n).filter(|&i| run.hosts[i].alive()).collect();
        let (have, need): (Vec<usize>, Vec<usize>) = alive
            .iter()
            .partition(|&&i| run.hosts[i].facts.get(&fact) == sha);
        if need.is_empty() {
            continue;
        }
        let py = |i: &usize| run.hosts[*i].facts.yes("has_python3");
        let seed = have
            .iter()
            .find(|i| py(i))
            .or_else(|| need.iter().find(|i| py(i)))
            .copied();
        let name = run.plan.preload[k]
            .local
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some(seed) = seed else {
            run.progress.warn(
                None,
                &format!(
                    "no host has python3 to share {name} over the cluster network: uploading it from the console to {} hosts",
                    need.len()
                ),
            );
            upload_to(run, k, &need).await;
            continue;
        };
        if need.contains(&seed) {
            upload_to(run, k, &[seed]).await;
            if !run.hosts[seed].alive() {
                continue;
            }
        }
        let peers: Vec<usize> = need.iter().copied().filter(|&i| i != seed).collect();
        let (curl, no_curl): (Vec<usize>, Vec<usize>) = peers
            .iter()
            .partition(|&&i| run.hosts[i].facts.yes("has_curl"));
        for &i in &no_curl {
            run.progress.warn(
                Some(&run.hosts[i].node.name),
                &format!("curl is not installed, so {name} is uploaded from the console"),
            );
        }
        upload_to(run, k, &no_curl).await;
        if curl.is_empty() {
            continue;
        }
        match serve(run, k, seed, &curl, lifetime).await {
            Ok((server, urls)) => {
                let seed_name = run.hosts[seed].node.name.clone();
                for (i, url) in urls {
                    fetch[i][k] = Fetch {
                        url: Some(url),
                        seed: seed_name.clone(),
                    };
                }
                servers.push(server);
            }
            Err(e) => {
                run.progress.warn(
                    Some(&run.hosts[seed].node.name),
                    &format!(
                        "cannot serve {name} to the other hosts ({}); uploading it from the console to {} hosts",
                        e.message,
                        curl.len()
                    ),
                );
                upload_to(run, k, &curl).await;
            }
        }
    }
    (fetch, servers)
}

/// The whole prepare script for one host.
///
/// Its stamp input is the sha256 of the script without the parts that differ from run to run
/// without changing what the sections do (the one-time image URLs, the control plane's read of
/// the cluster state), so the first re-run after a fresh build can already take the fast path.
pub fn render(
    p: &Plan,
    node: &Node,
    fetch: &[(Option<String>, String)],
    cp_state: bool,
) -> anyhow::Result<String> {
    let sum = input_sha(p, node)?;
    Ok(set_input_sha(
        &render_with(p, node, fetch, cp_state, false)?,
        &sum,
    ))
}

/// The prepare script in dry mode (`kubestrap plan`): every section runs its checks and prints
/// the CHANGED lines (and `put`'s diffs) of a real run, but changes nothing on the host.
pub fn render_dry(p: &Plan, node: &Node, cp_state: bool) -> anyhow::Result<String> {
    let sum = input_sha(p, node)?;
    Ok(set_input_sha(
        &render_with(p, node, &[], cp_state, true)?,
        &sum,
    ))
}

/// The stamp input of `node`'s prepare script (see `render`).
pub fn input_sha(p: &Plan, node: &Node) -> anyhow::Result<String> {
    use sha2::{Digest, Sha256};
    let core = render_with(p, node, &[], false, false)?;
    Ok(hex::encode(Sha256::digest(core.as_bytes())))
}

pub fn set_input_sha(script: &str, sum: &str) -> String {
    script.replace(INPUT_SHA_PLACEHOLDER, sum)
}

/// The placeholder in prepare.sh.j2 for the stamp input (see `render`).
const INPUT_SHA_PLACEHOLDER: &str = "__KUBESTRAP_SCRIPT_SHA256__";

fn render_with(
    p: &Plan,
    node: &Node,
    fetch: &[(Option<String>, String)],
    cp_state: bool,
    dry: bool,
) -> anyhow::Result<String> {
    let runtime_template = match p.runtime {
        Runtime::Containerd => "scripts/runtime-containerd.sh.j2",
        Runtime::Docker => "scripts/runtime-docker.sh.j2",
    };
    let images: Vec<minijinja::Value> = p
        .preload
        .iter()
        .enumerate()
        .map(|(k, img)| {
            let (url, seed) = fetch.get(k).cloned().unwrap_or_default();
            context! { index => k, path => img.remote.clone(), sha256 => img.sha256.clone(), url => url, seed => seed }
        })
        .collect();
    crate::templates::script(
        "scripts/prepare.sh.j2",
        context! {
            host => context! { name => node.name.clone() },
            hosts => hosts_ctx(p),
            package_repository => p.package_repository.clone(),
            version => p.version.clone(),
            runtime => p.runtime.as_str(),
            pause_image => p.pause_image.clone(),
            runtime_template => runtime_template,
            images => images,
            fetch_timeout => p.timeouts.images.as_secs(),
            cp_state => cp_state,
            dry => dry,
            admin_sha256 => if cp_state { kubeconfig_source_sha(p) } else { String::new() },
            cni_manifest => super::network::CNI_MANIFEST,
        },
    )
}

/// What one host's prepare script said beyond its changes.
#[derive(Default)]
struct Report {
    need_image: Vec<(usize, String)>,
    cp_state: Option<CpState>,
}

pub async fn run(run: &mut Run) {
    let p = Arc::new(run.plan.clone());
    let t = &p.timeouts;
    let timeout = t.command * 2 + t.packages + t.images;
    let (fetch, servers) = if p.preload.is_empty() {
        (vec![vec![]; run.hosts.len()], vec![])
    } else {
        distribute(run, timeout).await
    };

    // Rendered on the console before any host starts, so a template error names the template.
    let scripts: Arc<Vec<Result<String, String>>> = Arc::new(
        run.hosts
            .iter()
            .zip(&fetch)
            .map(|(h, f)| {
                let f: Vec<(Option<String>, String)> =
                    f.iter().map(|f| (f.url.clone(), f.seed.clone())).collect();
                render(&p, &h.node, &f, p.is_first_control_plane(&h.node))
                    .map_err(|e| e.to_string())
            })
            .collect(),
    );
    let reports: Arc<Mutex<HashMap<usize, Report>>> = Default::default();
    {
        let reports = reports.clone();
        let p = p.clone();
        run.each(
            Step::Prepare,
            |h| !h.facts.yes("prepare_unchanged"),
            move |i, node, sess| {
                let (scripts, reports, p) = (scripts.clone(), reports.clone(), p.clone());
                async move {
                    let script = scripts[i]
                        .clone()
                        .map_err(|e| StepError::new(Step::Prepare, e))?;
                    let out = sess
                        .script(Step::Prepare.as_str(), &script, timeout)
                        .await
                        .map_err(|e| StepError::from_ssh(Step::Prepare, e))?;
                    if !out.ok() {
                        let section = out
                            .stdout
                            .lines()
                            .filter_map(|l| l.strip_prefix("STEP "))
                            .next_back();
                        return Err(script_error(Step::of_section(section, Step::Prepare), &out));
                    }
                    let mut r = Report::default();
                    for l in out.stdout.lines() {
                        if let Some(rest) = l.strip_prefix("NEEDIMAGE ") {
                            let (k, why) = rest.split_once(' ').unwrap_or((rest, ""));
                            if let Ok(k) = k.parse() {
                                r.need_image.push((k, why.to_string()));
                            }
                        }
                    }
                    if p.is_first_control_plane(&node) {
                        r.cp_state = Some(CpState::parse(&out.stdout));
                    }
                    reports.lock().unwrap().insert(i, r);
                    Ok(out
                        .stdout
                        .lines()
                        .filter_map(|l| l.strip_prefix("CHANGED "))
                        .map(str::to_string)
                        .collect())
                }
            },
        )
        .await;
    }

    // Stop the image servers (by PID, checking it is still ours).
    for s in servers {
        if let Some(sess) = run.hosts[s.host].session.clone() {
            let cmd = format!(
                "if grep -qa kubestrap-serve /proc/{pid}/cmdline 2>/dev/null; then kill {pid}; echo stopped; fi; true",
                pid = s.pid
            );
            if let Err(e) = run_script(&sess, Step::Images, &cmd, p.timeouts.command).await {
                run.progress.warn(
                    Some(&run.hosts[s.host].node.name),
                    &format!(
                        "cannot stop the image server (PID {}): {}",
                        s.pid, e.message
                    ),
                );
            }
        }
    }

    let mut reports = std::mem::take(&mut *reports.lock().unwrap());
    let cp = run.control_plane_index();
    // An unchanged control plane did not run prepare: its state came with the facts.
    if !run.hosts[cp].facts.yes("prepare_unchanged") {
        run.cp_state = reports.get_mut(&cp).and_then(|r| r.cp_state.take());
    }

    // Peers whose fetch failed: upload from the console, then import.
    for k in 0..p.preload.len() {
        let mut targets = Vec::new();
        for (&i, r) in &reports {
            if let Some((_, why)) = r.need_image.iter().find(|(kk, _)| *kk == k) {
                if run.hosts[i].alive() {
                    run.progress.warn(
                        Some(&run.hosts[i].node.name),
                        &format!(
                            "{why}; uploading {} from the console instead",
                            p.preload[k].remote
                        ),
                    );
                    targets.push(i);
                }
            }
        }
        targets.sort();
        upload_and_import(run, k, &targets).await;
    }
}

/// Upload bundle `k` from the console to `targets`, then import it there.
pub async fn upload_and_import(run: &mut Run, k: usize, targets: &[usize]) {
    let p = Arc::new(run.plan.clone());
    upload_to(run, k, targets).await;
    let names: Vec<String> = targets
        .iter()
        .filter(|&&i| run.hosts[i].alive())
        .map(|&i| run.hosts[i].node.name.clone())
        .collect();
    if names.is_empty() {
        return;
    }
    let img = p.preload[k].clone();
    let script = crate::templates::script(
        "scripts/images.sh.j2",
        context! {
            img => context! { path => img.remote.clone(), sha256 => img.sha256.clone() },
            runtime => p.runtime.as_str(),
        },
    )
    .map_err(|e| e.to_string());
    let tmo = p.timeouts.images;
    run.each(
        Step::Images,
        move |h| names.contains(&h.node.name),
        move |_, _, sess| {
            let script = script.clone();
            async move {
                let script = script.map_err(|e| StepError::new(Step::Images, e))?;
                Ok(run_script(&sess, Step::Images, &script, tmo).await?.0)
            }
        },
    )
    .await;
}
