//! Phase 4: `kubeadm init --config` on the control plane with a token made on the console, then
//! capture and verify: the CA pin we compute from ca.crt must equal the hash kubeadm printed, and
//! the token it printed must be ours.

use minijinja::context;

use super::{run_script, Run, StepError};
use crate::pki::{self, BootstrapToken};
use crate::plan::Plan;
use crate::ssh::Session;

pub const INIT_CONFIG: &str = "/etc/kubestrap/kubeadm-init.yaml";
pub const KUBECTL: &str = "kubectl --kubeconfig /etc/kubernetes/admin.conf";

/// What workers need to join.
pub struct Bootstrap {
    pub token: BootstrapToken,
    pub ca_pin: String,
    pub endpoint: String,
}

#[derive(Debug, Clone)]
pub struct NodeStatus {
    pub name: String,
    pub ready: bool,
    pub internal_ip: String,
    pub kubelet_version: String,
}

/// The nodes the API server knows, or None when there is no working API yet.
pub async fn cluster_nodes(p: &Plan, sess: &Session) -> Option<Vec<NodeStatus>> {
    let out = sess
        .script(
            "nodes",
            &format!("{KUBECTL} get nodes -o json 2>/dev/null"),
            p.timeouts.command,
        )
        .await
        .ok()?;
    if !out.ok() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
    let items = v.get("items")?.as_array()?;
    Some(
        items
            .iter()
            .map(|n| {
                let ready = n["status"]["conditions"]
                    .as_array()
                    .map(|c| {
                        c.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    })
                    .unwrap_or(false);
                let internal_ip = n["status"]["addresses"]
                    .as_array()
                    .and_then(|a| a.iter().find(|a| a["type"] == "InternalIP"))
                    .and_then(|a| a["address"].as_str())
                    .unwrap_or("")
                    .to_string();
                NodeStatus {
                    name: n["metadata"]["name"].as_str().unwrap_or("").to_string(),
                    ready,
                    internal_ip,
                    kubelet_version: n["status"]["nodeInfo"]["kubeletVersion"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                }
            })
            .collect(),
    )
}

pub fn render_init(p: &Plan, token: &BootstrapToken) -> anyhow::Result<String> {
    let cp = p.control_plane();
    let mut sans = vec![cp.internal_address.clone()];
    if cp.address != cp.internal_address && !is_loopback(&cp.address) {
        sans.push(cp.address.clone());
    }
    sans.push(cp.name.clone());
    crate::templates::render(
        "kubeadm/init.yaml.j2",
        context! {
            api => p.kubeadm_api,
            cluster_name => p.cluster_name.clone(),
            token => token.expose(),
            token_ttl => "2h0m0s",
            node => context! { name => cp.name.clone(), internal_address => cp.internal_address.clone() },
            cri_socket => p.cri_socket,
            version => p.version.clone(),
            image_repository => p.image_repository.clone(),
            control_plane_endpoint => p.control_plane_endpoint.clone(),
            pod_subnet => p.pod_subnet.clone(),
            service_subnet => p.service_subnet.clone(),
            cert_sans => sans,
        },
    )
}

pub fn is_loopback(addr: &str) -> bool {
    addr == "localhost"
        || addr
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

async fn fetch_pin(p: &Plan, sess: &Session) -> Result<String, StepError> {
    let out = sess
        .script(
            "capture",
            "cat /etc/kubernetes/pki/ca.crt",
            p.timeouts.command,
        )
        .await
        .map_err(|e| StepError::from_ssh("capture", e))?;
    if !out.ok() {
        return Err(StepError::new(
            "capture",
            format!(
                "cannot read /etc/kubernetes/pki/ca.crt: {}",
                out.last_line()
            ),
        ));
    }
    pki::ca_pin_from_pem(&out.stdout).map_err(|e| {
        StepError::new(
            "capture",
            format!("/etc/kubernetes/pki/ca.crt is not a valid certificate: {e}"),
        )
    })
}

/// Initialise the control plane (unless it already runs) and return what workers need to join.
/// `need_token`: whether any worker still has to join (a re-run on a healthy cluster makes none).
pub async fn run(
    run: &mut Run,
    need_token: impl Fn(&[NodeStatus]) -> bool,
) -> Option<(Bootstrap, Vec<NodeStatus>)> {
    let cp = run.control_plane_index();
    if !run.hosts[cp].alive() {
        return None;
    }
    let sess = run.hosts[cp].session.clone().unwrap();
    let p = run.plan.clone();
    let name = run.hosts[cp].node.name.clone();
    run.progress.step(&name, "init");
    run.hosts[cp].last_step = "init".into();

    if let Some(nodes) = cluster_nodes(&p, &sess).await {
        // Already initialised: keep it; make a fresh short-lived token only if someone must join.
        let pin = match fetch_pin(&p, &sess).await {
            Ok(pin) => pin,
            Err(e) => {
                run.fail(cp, e);
                return None;
            }
        };
        let token = pki::generate_token();
        run.redactor.add(token.expose());
        if need_token(&nodes) {
            let script = format!(
                "kubeadm token create {} --ttl 2h0m0s --description kubestrap",
                token.expose()
            );
            match run_script(&sess, "token", &script, p.timeouts.command).await {
                Ok(_) => run.hosts[cp]
                    .changes
                    .push("created a bootstrap token (2h)".into()),
                Err(e) => {
                    run.fail(cp, e);
                    return None;
                }
            }
        }
        return Some((
            Bootstrap {
                token,
                ca_pin: pin,
                endpoint: p.api_endpoint(),
            },
            nodes,
        ));
    }

    let token = pki::generate_token();
    run.redactor.add(token.expose());
    let result = async {
        let config = render_init(&p, &token).map_err(|e| StepError::new("init", e.to_string()))?;
        sess.put_file(INIT_CONFIG, config.as_bytes(), 0o600, p.timeouts.command)
            .await
            .map_err(|e| StepError::from_ssh("init", e))?;
        let out = sess
            .script(
                "init",
                &format!("kubeadm init --config {INIT_CONFIG}"),
                p.timeouts.init,
            )
            .await
            .map_err(|e| StepError::from_ssh("init", e))?;
        if !out.ok() {
            return Err(kubeadm_error("init", &out));
        }
        let pin = fetch_pin(&p, &sess).await?;
        verify_init_output(&out.stdout, &token, &pin)?;
        Ok(pin)
    }
    .await;
    match result {
        Ok(pin) => {
            run.hosts[cp].changes.push("kubeadm init".into());
            let nodes = cluster_nodes(&p, &sess).await.unwrap_or_default();
            Some((
                Bootstrap {
                    token,
                    ca_pin: pin,
                    endpoint: p.api_endpoint(),
                },
                nodes,
            ))
        }
        Err(e) => {
            run.fail(cp, e);
            None
        }
    }
}

/// The join command kubeadm printed must carry our token and the pin we computed ourselves.
pub fn verify_init_output(
    stdout: &str,
    token: &BootstrapToken,
    pin: &str,
) -> Result<(), StepError> {
    let cmds = pki::parse_join_command(stdout).map_err(|e| {
        StepError::new(
            "capture",
            format!("kubeadm init succeeded but its join command could not be read: {e}"),
        )
    })?;
    let worker = cmds
        .iter()
        .find(|c| !c.control_plane)
        .ok_or_else(|| StepError::new("capture", "kubeadm init printed no worker join command"))?;
    match &worker.token {
        Some(t) if t.expose() == token.expose() => {}
        _ => {
            return Err(StepError::new(
                "capture",
                "the token in kubeadm's join command is not the one kubestrap generated",
            ))
        }
    }
    if !worker.ca_cert_hashes.iter().any(|h| h == pin) {
        return Err(StepError::new(
            "capture",
            format!(
                "kubeadm printed CA hash {} but /etc/kubernetes/pki/ca.crt has pin {pin}; refusing to join workers to an unverified CA",
                worker.ca_cert_hashes.join(",")
            ),
        ));
    }
    Ok(())
}

/// kubeadm's `[ERROR X]: ...` preflight lines, else the last lines of its output.
pub fn kubeadm_error(step: &str, out: &crate::ssh::Output) -> StepError {
    let all = format!("{}\n{}", out.stdout, out.stderr);
    let errors: Vec<&str> = all
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("[ERROR"))
        .collect();
    if !errors.is_empty() {
        return StepError::new(
            step,
            format!("kubeadm preflight failed: {}", errors.join("; ")),
        )
        .hint("fix the listed problems on the host and run `kubestrap up` again");
    }
    let lines: Vec<&str> = all
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
    StepError::new(step, format!("kubeadm {step} failed: {tail}"))
}
