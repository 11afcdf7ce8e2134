//! Phase 4: `kubeadm init --config` on the control plane with a token made on the console, then
//! capture and verify: the CA pin we compute from ca.crt must equal the hash kubeadm printed, and
//! the token it printed must be ours.

use minijinja::context;

use super::phase::Step;
use super::{run_script, Run, StepError};
use crate::pki::{self, BootstrapToken, CertificateKey};
use crate::plan::{Plan, Role};
use crate::ssh::Session;

pub const INIT_CONFIG: &str = "/etc/kubestrap/kubeadm-init.yaml";
pub const KUBECTL: &str = "kubectl --kubeconfig /etc/kubernetes/admin.conf";

/// What workers need to join.
#[derive(Clone)]
pub struct Bootstrap {
    pub token: BootstrapToken,
    pub ca_pin: String,
    pub endpoint: String,
    /// With several control planes: the key the shared certificates were uploaded with
    /// (`kubeadm-certs`), made on the console; the other control planes join with it.
    pub certificate_key: Option<CertificateKey>,
}

#[derive(Debug, Clone)]
pub struct NodeStatus {
    pub name: String,
    pub ready: bool,
    pub internal_ip: String,
    pub kubelet_version: String,
    /// `spec.unschedulable`: cordoned.
    pub unschedulable: bool,
    /// `spec.taints` holds kubeadm's `node-role.kubernetes.io/control-plane:NoSchedule`.
    pub control_plane_taint: bool,
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
    parse_nodes(&out.stdout)
}

/// The nodes in `kubectl get nodes -o json` output.
pub fn parse_nodes(json: &str) -> Option<Vec<NodeStatus>> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
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
                    unschedulable: n["spec"]["unschedulable"].as_bool().unwrap_or(false),
                    control_plane_taint: n["spec"]["taints"].as_array().is_some_and(|ts| {
                        ts.iter().any(|t| {
                            t["key"] == super::schedulable::TAINT_KEY && t["effect"] == "NoSchedule"
                        })
                    }),
                }
            })
            .collect(),
    )
}

/// `kubeadm token create` for a re-run: the token goes in a private 0600 file made on the host
/// (`--config`), so it never appears in any process's argv; the file is gone when the script ends.
pub fn token_script(p: &Plan, token: &BootstrapToken) -> anyhow::Result<String> {
    let cp = p.control_plane();
    let config = crate::templates::render(
        "kubeadm/token.yaml.j2",
        context! {
            api => p.kubeadm_api,
            token => token.expose(),
            token_ttl => "2h0m0s",
            node => context! { name => cp.name.clone(), internal_address => cp.internal_address.clone() },
            cri_socket => p.cri_socket,
        },
    )?;
    with_private_config(&config, "kubeadm token create")
}

/// A script that writes `config` (which holds a secret) to a private 0600 file in a fresh
/// directory, runs `kubeadm_cmd --config FILE` with its output discarded, and removes the file.
fn with_private_config(config: &str, kubeadm_cmd: &str) -> anyhow::Result<String> {
    const EOF: &str = "KUBESTRAP_CONFIG_EOF";
    anyhow::ensure!(
        !config.lines().any(|l| l == EOF),
        "the kubeadm configuration holds the line {EOF}"
    );
    Ok(format!(
        "set -e\numask 077\nd=$(mktemp -d)\ntrap 'rm -rf \"$d\"' EXIT\n\
         cat > \"$d/config.yaml\" <<'{EOF}'\n{config}{EOF}\n\
         {kubeadm_cmd} --config \"$d/config.yaml\" >/dev/null\n"
    ))
}

/// `kubeadm init phase upload-certs --upload-certs` on a running control plane, with the new key
/// in a private 0600 InitConfiguration (`--certificate-key` would put it in argv); kubeadm prints
/// the key, so its output goes nowhere.
pub fn upload_certs_script(
    p: &Plan,
    token: &BootstrapToken,
    key: &CertificateKey,
) -> anyhow::Result<String> {
    let config = render_init_with(p, token, Some(key))?;
    with_private_config(&config, "kubeadm init phase upload-certs --upload-certs")
}

pub fn render_init(p: &Plan, token: &BootstrapToken) -> anyhow::Result<String> {
    render_init_with(p, token, None)
}

/// The InitConfiguration; with `certificate_key` (several control planes) it carries
/// `certificateKey`, which `kubeadm init --upload-certs` encrypts the shared certificates with
/// (kubeadm refuses `--certificate-key` beside `--config`, and argv is no place for a secret).
pub fn render_init_with(
    p: &Plan,
    token: &BootstrapToken,
    certificate_key: Option<&CertificateKey>,
) -> anyhow::Result<String> {
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
            certificate_key => certificate_key.map(|k| k.expose().to_string()),
            node => context! { name => cp.name.clone(), internal_address => cp.internal_address.clone() },
            cri_socket => p.cri_socket,
            version => p.version.clone(),
            image_repository => p.image_repository.clone(),
            control_plane_endpoint => p.control_plane_endpoint.clone(),
            schedulable => p.control_plane_schedulable,
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
            Step::Capture.as_str(),
            "cat /etc/kubernetes/pki/ca.crt",
            p.timeouts.command,
        )
        .await
        .map_err(|e| StepError::from_ssh(Step::Capture, e))?;
    if !out.ok() {
        return Err(StepError::new(
            Step::Capture,
            format!(
                "cannot read /etc/kubernetes/pki/ca.crt: {}",
                out.last_line()
            ),
        ));
    }
    pki::ca_pin_from_pem(&out.stdout).map_err(|e| {
        StepError::new(
            Step::Capture,
            format!("/etc/kubernetes/pki/ca.crt is not a valid certificate: {e}"),
        )
    })
}

/// Run a rendered script that holds a secret on the first control plane (step `token`) and
/// record `change`; false (the host failed) when it could not be rendered or failed.
async fn token_step(
    run: &mut Run,
    sess: &Session,
    script: anyhow::Result<String>,
    change: &str,
) -> bool {
    let cp = run.control_plane_index();
    let result = match script {
        Ok(s) => run_script(sess, Step::Token, &s, run.plan.timeouts.command).await,
        Err(e) => Err(StepError::new(Step::Token, e.to_string())),
    };
    match result {
        Ok(_) => {
            run.hosts[cp].changes.push(change.into());
            true
        }
        Err(e) => {
            run.fail(cp, e);
            false
        }
    }
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
    run.progress.step(&name, Step::Init);
    run.hosts[cp].last_step = Some(Step::Init);

    // The prepare script already queried the cluster; ask again only without its answer.
    let known = run.cp_state.clone();
    let nodes = match &known {
        Some(s) => s.nodes.clone(),
        None => cluster_nodes(&p, &sess).await,
    };
    if let Some(nodes) = nodes {
        // Already initialised: keep it; make a fresh short-lived token only if someone must join.
        let known_pin = known
            .and_then(|s| s.ca_crt)
            .and_then(|pem| pki::ca_pin_from_pem(&pem).ok());
        let pin = match known_pin {
            Some(pin) => pin,
            None => match fetch_pin(&p, &sess).await {
                Ok(pin) => pin,
                Err(e) => {
                    run.fail(cp, e);
                    return None;
                }
            },
        };
        let token = pki::generate_token();
        run.redactor.add(token.expose());
        if need_token(&nodes)
            && !token_step(
                run,
                &sess,
                token_script(&p, &token),
                "created a bootstrap token (2h)",
            )
            .await
        {
            return None;
        }
        // Another control plane will join: the shared certificates go up again under a fresh
        // key (the Secret from init, or from an earlier run, expires after 2 h).
        let first = p.control_plane().name.clone();
        let cp_joins = run.hosts.iter().any(|h| {
            h.node.role == Role::ControlPlane
                && h.node.name != first
                && h.alive()
                && (!h.facts.yes("kubelet_conf") || !nodes.iter().any(|n| n.name == h.node.name))
        });
        let mut certificate_key = None;
        if cp_joins {
            let key = CertificateKey::generate();
            run.redactor.add(key.expose());
            if !token_step(
                run,
                &sess,
                upload_certs_script(&p, &token, &key),
                "uploaded the control-plane certificates (kubeadm-certs, 2h)",
            )
            .await
            {
                return None;
            }
            certificate_key = Some(key);
        }
        return Some((
            Bootstrap {
                token,
                ca_pin: pin,
                endpoint: p.api_endpoint.clone(),
                certificate_key,
            },
            nodes,
        ));
    }

    let token = pki::generate_token();
    run.redactor.add(token.expose());
    let certificate_key = p.several_control_planes().then(CertificateKey::generate);
    if let Some(k) = &certificate_key {
        run.redactor.add(k.expose());
    }
    let redactor = run.redactor.clone();
    let result = async {
        let expected_pin = if p.console_ca {
            Some(upload_console_ca(&p, &sess, &redactor).await?)
        } else {
            None
        };
        let config = render_init_with(&p, &token, certificate_key.as_ref())
            .map_err(|e| StepError::new(Step::Init, e.to_string()))?;
        let upload = if certificate_key.is_some() { " --upload-certs" } else { "" };
        sess.put_file(INIT_CONFIG, config.as_bytes(), 0o600, p.timeouts.command)
            .await
            .map_err(|e| StepError::from_ssh(Step::Init, e))?;
        let out = sess
            .script(
                Step::Init.as_str(),
                &with_deadline(&format!("kubeadm init --config {INIT_CONFIG}{upload}"), p.timeouts.init),
                ssh_limit(p.timeouts.init),
            )
            .await
            .map_err(|e| StepError::from_ssh(Step::Init, e))?;
        if !out.ok() {
            return Err(kubeadm_error_within(Step::Init, &out, Some(p.timeouts.init)));
        }
        let pin = fetch_pin(&p, &sess).await?;
        if let Some(want) = expected_pin {
            if want != pin {
                return Err(StepError::new(
                    Step::Capture,
                    format!("the cluster CA on the control plane has pin {pin}, not the console's CA {want}"),
                ));
            }
        }
        verify_init_output(&out.stdout, &token, &pin)?;
        if let Some(k) = &certificate_key {
            verify_control_plane_join(&out.stdout, k)?;
        }
        Ok(pin)
    }
    .await;
    match result {
        Ok(pin) => {
            run.hosts[cp].changes.push("kubeadm init".into());
            run.cp_state = None; // read before init: stale now
            let nodes = cluster_nodes(&p, &sess).await.unwrap_or_default();
            Some((
                Bootstrap {
                    token,
                    ca_pin: pin,
                    endpoint: p.api_endpoint.clone(),
                    certificate_key,
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
            Step::Capture,
            format!("kubeadm init succeeded but its join command could not be read: {e}"),
        )
    })?;
    let worker = cmds.iter().find(|c| !c.control_plane).ok_or_else(|| {
        StepError::new(Step::Capture, "kubeadm init printed no worker join command")
    })?;
    match &worker.token {
        Some(t) if t.expose() == token.expose() => {}
        _ => {
            return Err(StepError::new(
                Step::Capture,
                "the token in kubeadm's join command is not the one kubestrap generated",
            ))
        }
    }
    if !worker.ca_cert_hashes.iter().any(|h| h == pin) {
        return Err(StepError::new(
            Step::Capture,
            format!(
                "kubeadm printed CA hash {} but /etc/kubernetes/pki/ca.crt has pin {pin}; refusing to join workers to an unverified CA",
                worker.ca_cert_hashes.join(",")
            ),
        ));
    }
    Ok(())
}

/// With `--upload-certs`, kubeadm prints a control-plane join command; it must carry the
/// certificate key kubestrap made (kubeadm encrypted the shared certificates with it).
pub fn verify_control_plane_join(stdout: &str, key: &CertificateKey) -> Result<(), StepError> {
    let cmds = pki::parse_join_command(stdout).map_err(|e| {
        StepError::new(
            Step::Capture,
            format!("kubeadm init succeeded but its join commands could not be read: {e}"),
        )
    })?;
    let cp = cmds.iter().find(|c| c.control_plane).ok_or_else(|| {
        StepError::new(
            Step::Capture,
            "kubeadm init --upload-certs printed no control-plane join command: the certificates were not uploaded",
        )
    })?;
    if cp.certificate_key.as_ref() != Some(key) {
        return Err(StepError::new(
            Step::Capture,
            "the certificate key in kubeadm's control-plane join command is not the one kubestrap generated",
        ));
    }
    Ok(())
}

/// Run `cmd` on the host under its own deadline (GNU `timeout`, which kills the whole process
/// group), so a hanging kubeadm is stopped on the host instead of being left behind when the
/// console gives up. Exit 124 means the deadline hit.
pub fn with_deadline(cmd: &str, limit: std::time::Duration) -> String {
    format!("timeout -k 5 {} {cmd}", limit.as_secs().max(1))
}

/// The SSH-side limit for a command run `with_deadline(limit)`: a little longer, so the host's
/// own deadline (with its output so far) normally wins.
pub fn ssh_limit(limit: std::time::Duration) -> std::time::Duration {
    limit + std::time::Duration::from_secs(15)
}

/// kubeadm's `[ERROR X]: ...` preflight lines, else the last lines of its output.
pub fn kubeadm_error(step: Step, out: &crate::ssh::Output) -> StepError {
    kubeadm_error_within(step, out, None)
}

/// `kubeadm_error` for a command run `with_deadline(limit)`: exit 124/137 is a timeout that names
/// the last line kubeadm printed.
pub fn kubeadm_error_within(
    step: Step,
    out: &crate::ssh::Output,
    limit: Option<std::time::Duration>,
) -> StepError {
    if let (Some(limit), Some(124 | 137)) = (limit, out.code) {
        let last = out.last_line();
        return StepError::new(
            step,
            format!(
                "kubeadm {step} did not finish within {}s (stopped on the host); last output: {}",
                limit.as_secs(),
                if last.is_empty() { "(no output)".to_string() } else { last }
            ),
        )
        .hint(format!(
            "kubeadm {step} hung: look at the host's log and `journalctl -u kubelet` on it, fix the cause \
             (or raise `timeouts.kubeadm{}`), then run `kubestrap up` again",
            if step == Step::Init { "Init" } else { "Join" }
        ))
        .kind(super::ErrorKind::Timeout);
    }
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
        .hint("fix the listed problems on the host and run `kubestrap up` again")
        .kind(super::ErrorKind::KubeadmPreflight);
    }
    let lines: Vec<&str> = all
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
    StepError::new(step, format!("kubeadm {step} failed: {tail}"))
        .kind(super::ErrorKind::KubeadmFailed)
}

/// `cluster.pki: console`: load the cluster CA from the state folder (made on first use: RSA 2048,
/// 10 years, key 0600), upload it to the control plane before init, and return its pin.
pub async fn upload_console_ca(
    p: &Plan,
    sess: &Session,
    redactor: &crate::redact::Redactor,
) -> Result<String, StepError> {
    let (cert, key) = console_ca(&p.state_dir, &p.cluster_name)?;
    redactor.add(&key);
    sess.put_file(
        "/etc/kubernetes/pki/ca.crt",
        cert.as_bytes(),
        0o644,
        p.timeouts.command,
    )
    .await
    .map_err(|e| StepError::from_ssh(Step::Init, e))?;
    sess.put_file(
        "/etc/kubernetes/pki/ca.key",
        key.as_bytes(),
        0o600,
        p.timeouts.command,
    )
    .await
    .map_err(|e| StepError::from_ssh(Step::Init, e))?;
    pki::ca_pin_from_pem(&cert)
        .map_err(|e| StepError::new(Step::Init, format!("the console CA is invalid: {e}")))
}

/// The console's CA for this cluster: `pki/ca.crt` and `pki/ca.key` in the state folder.
pub fn console_ca(
    state_dir: &std::path::Path,
    cluster: &str,
) -> Result<(String, String), StepError> {
    let dir = state_dir.join("pki");
    let (crt, key) = (dir.join("ca.crt"), dir.join("ca.key"));
    if let (Ok(c), Ok(k)) = (
        crate::state::read_string(&crt),
        crate::state::read_string(&key),
    ) {
        return Ok((c, k));
    }
    let ca = pki::generate_ca(cluster)
        .map_err(|e| StepError::new(Step::Init, format!("cannot make the cluster CA: {e}")))?;
    let io = |e: std::io::Error| {
        StepError::new(Step::Init, format!("cannot write {}: {e}", dir.display()))
    };
    crate::state::write_secret(&key, ca.key_pem.expose().as_bytes()).map_err(io)?;
    crate::state::write_secret(&crt, ca.cert_pem.as_bytes()).map_err(io)?;
    Ok((ca.cert_pem, ca.key_pem.expose().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_ca_is_made_once_kept_0600_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let (c1, k1) = console_ca(d.path(), "lab").unwrap();
        let (c2, k2) = console_ca(d.path(), "lab").unwrap();
        assert_eq!(
            (c1.as_str(), k1.as_str()),
            (c2.as_str(), k2.as_str()),
            "a rebuilt cluster keeps its CA"
        );
        let mode = std::fs::metadata(d.path().join("pki/ca.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(k1.contains("PRIVATE KEY"));
        assert!(pki::ca_pin_from_pem(&c1).unwrap().starts_with("sha256:"));
    }

    const PIN1: &str = "sha256:345959acb2c3b2feb87d281961c893f62a314207ef02599f1cc4a5fb255480b3";

    fn init_output(token: &str, hash: &str) -> String {
        format!("[bootstrap-token] Using token: {token}\n\nYour Kubernetes control-plane has initialized successfully!\n\nThen you can join any number of worker nodes by running the following on each as root:\n\nkubeadm join 10.0.0.10:6443 --token {token} \\\n\t--discovery-token-ca-cert-hash {hash} \n")
    }

    #[test]
    fn init_output_must_carry_our_token_and_pin() {
        let t = BootstrapToken::parse("abcdef.0123456789abcdef").unwrap();
        assert!(
            verify_init_output(&init_output("abcdef.0123456789abcdef", PIN1), &t, PIN1).is_ok()
        );
        let e = verify_init_output(&init_output("zzzzzz.0123456789abcdef", PIN1), &t, PIN1)
            .unwrap_err();
        assert!(
            e.message.contains("not the one kubestrap generated"),
            "{}",
            e.message
        );
        let other = "sha256:d1ef16989563fe7775f81a7dc55ce16a467ca9baedae2d081cb0a068b6a81971";
        let e = verify_init_output(&init_output("abcdef.0123456789abcdef", other), &t, PIN1)
            .unwrap_err();
        assert!(e.message.contains("refusing to join"), "{}", e.message);
        assert!(verify_init_output("no join command here", &t, PIN1).is_err());
    }

    #[test]
    fn kubeadm_preflight_errors_are_quoted() {
        let out = crate::ssh::Output {
            stdout: "[init] Using Kubernetes version: v1.31.2\n[preflight] Running pre-flight checks\n".into(),
            stderr: "error execution phase preflight: [preflight] Some fatal errors occurred:\n\t[ERROR Port-6443]: Port 6443 is in use\n\t[ERROR FileContent--proc-sys-net-ipv4-ip_forward]: /proc/sys/net/ipv4/ip_forward contents are not set to 1\n".into(),
            code: Some(1),
            signal: None,
        };
        let e = kubeadm_error(Step::Init, &out);
        assert!(
            e.message.contains("[ERROR Port-6443]: Port 6443 is in use"),
            "{}",
            e.message
        );
        assert!(e.message.contains("ip_forward"), "{}", e.message);
    }

    /// The re-run's `kubeadm token create` gets the token from a private file, never from argv:
    /// run the script with a `kubeadm` that records its argv and the file it was given.
    fn one_cp_plan() -> Plan {
        let src = "cluster:\n  name: lab\n  kubernetesVersion: \"1.31.2\"\nhosts:\n  - name: cp1\n    address: 192.168.56.10\n    role: control-plane\n";
        let inv =
            crate::inventory::parse(src, std::path::Path::new("/tmp/kubestrap-test/inv.yaml"))
                .unwrap_or_else(|e| panic!("{e}"));
        Plan::from_inventory(&inv).unwrap()
    }

    /// Run `script` with a fake kubeadm that records its argv, a copy of its `--config` file and
    /// that file's mode and path, then prints `says`. -> (stdout, argv, config, mode, path).
    fn with_fake_kubeadm(script: &str, says: &str) -> [String; 5] {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let bin = d.path().join("kubeadm");
        std::fs::write(
            &bin,
            format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$REC/argv\"\nfor a; do cfg=$a; done\ncp \"$cfg\" \"$REC/config\"\nstat -c %a \"$cfg\" > \"$REC/mode\"\necho \"$cfg\" > \"$REC/path\"\n{says}\n"),
        )
        .unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .env("PATH", format!("{}:/usr/bin:/bin", d.path().display()))
            .env("REC", d.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let read = |f: &str| std::fs::read_to_string(d.path().join(f)).unwrap();
        [
            String::from_utf8_lossy(&out.stdout).into_owned(),
            read("argv"),
            read("config"),
            read("mode").trim().to_string(),
            read("path").trim().to_string(),
        ]
    }

    #[test]
    fn token_create_keeps_the_token_off_the_command_line() {
        let p = one_cp_plan();
        let t = BootstrapToken::parse("abcdef.0123456789abcdef").unwrap();
        let [_, argv, config, mode, path] = with_fake_kubeadm(&token_script(&p, &t).unwrap(), "");
        assert!(argv.starts_with("token\ncreate\n--config\n"), "{argv}");
        assert!(!argv.contains("0123456789abcdef"), "{argv}");
        assert!(
            config.contains("token: \"abcdef.0123456789abcdef\""),
            "{config}"
        );
        assert!(config.contains("kind: InitConfiguration"), "{config}");
        assert_eq!(mode, "600");
        assert!(
            !std::path::Path::new(&path).exists(),
            "the token file was left behind"
        );
    }

    #[test]
    fn upload_certs_keeps_the_certificate_key_off_the_command_line_and_the_output() {
        let p = one_cp_plan();
        let t = BootstrapToken::parse("abcdef.0123456789abcdef").unwrap();
        let key = CertificateKey::parse(&"c0".repeat(32)).unwrap();
        // kubeadm prints the key as its last line: that output must go nowhere.
        let [stdout, argv, config, mode, path] = with_fake_kubeadm(
            &upload_certs_script(&p, &t, &key).unwrap(),
            "echo '[upload-certs] Using certificate key:'; grep certificateKey \"$cfg\"",
        );
        assert!(!stdout.contains(key.expose()), "{stdout}");
        assert!(
            argv.starts_with("init\nphase\nupload-certs\n--upload-certs\n--config\n"),
            "{argv}"
        );
        assert!(!argv.contains(key.expose()), "{argv}");
        assert!(
            config.contains(&format!("certificateKey: \"{}\"", key.expose())),
            "{config}"
        );
        assert_eq!(mode, "600");
        assert!(
            !std::path::Path::new(&path).exists(),
            "the config file was left behind"
        );
    }
}
