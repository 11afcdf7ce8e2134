//! Phase 7: fetch admin.conf into the state folder (mode 0600), pointing at an address the
//! console can reach.

use std::path::PathBuf;

use super::init::is_loopback;
use super::phase::Step;
use super::{Run, StepError};
use crate::plan::Plan;

/// The server URL the console should use.
pub fn console_server(p: &Plan) -> String {
    if let Some(e) = &p.control_plane_endpoint {
        // Validation keeps an IPv6 endpoint as `[addr]:port`; a name or IPv4 may lack the port.
        return format!(
            "https://{}",
            if e.contains(':') {
                e.clone()
            } else {
                format!("{e}:6443")
            }
        );
    }
    let cp = p.control_plane();
    let host = if is_loopback(&cp.address) {
        &cp.internal_address
    } else {
        &cp.address
    };
    format!("https://{}", crate::plan::host_port(host, 6443))
}

/// Replace the `server:` of every cluster in a kubeconfig.
pub fn rewrite_server(kubeconfig: &str, server: &str) -> String {
    kubeconfig
        .lines()
        .map(|l| {
            let t = l.trim_start();
            if t.starts_with("server:") {
                let indent = &l[..l.len() - t.len()];
                format!("{indent}server: {server}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

pub fn path(p: &Plan) -> PathBuf {
    p.state_dir.join("kubeconfig")
}

/// The sha256 of the control plane's admin.conf the kubeconfig was made from: lets a re-run
/// skip fetching admin.conf (and its client key) when it did not change.
pub fn source_sha_path(p: &Plan) -> PathBuf {
    p.state_dir.join("kubeconfig.source-sha256")
}

fn write(run: &mut Run, cp: usize, admin_conf: &str, sha: Option<String>) -> Option<PathBuf> {
    let p = &run.plan;
    let text = rewrite_server(admin_conf, &console_server(p));
    let dest = path(p);
    match crate::state::write_secret(&dest, text.as_bytes()) {
        Ok(true) => run.hosts[cp]
            .changes
            .push(format!("wrote {}", dest.display())),
        Ok(false) => {}
        Err(e) => {
            run.progress
                .warn(None, &format!("cannot write {}: {e}", dest.display()));
            return None;
        }
    }
    use sha2::Digest;
    let sha = sha
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| hex::encode(sha2::Sha256::digest(admin_conf.as_bytes())));
    let _ = crate::state::write_file(&source_sha_path(p), format!("{sha}\n").as_bytes(), 0o600);
    Some(dest)
}

pub async fn fetch(run: &mut Run) -> Option<PathBuf> {
    let cp = run.control_plane_index();
    if !run.hosts[cp].alive() {
        return None;
    }
    let sess = run.hosts[cp].session.clone().unwrap();
    let p = run.plan.clone();
    run.progress
        .step(&run.hosts[cp].node.name, Step::Kubeconfig);
    // The prepare script already read admin.conf, or saw it equal to the console's copy.
    let known = crate::cluster::prepare::kubeconfig_source_sha(&p);
    if let Some(state) = run.cp_state.clone() {
        if let Some(text) = state.admin_conf {
            return write(run, cp, &text, Some(state.admin_conf_sha256));
        }
        if !known.is_empty() && state.admin_conf_sha256 == known {
            return Some(path(&p));
        }
    }
    let out = match sess
        .script(
            Step::Kubeconfig.as_str(),
            "cat /etc/kubernetes/admin.conf",
            p.timeouts.command,
        )
        .await
    {
        Ok(o) if o.ok() => o,
        Ok(o) => {
            run.fail(
                cp,
                StepError::new(
                    Step::Kubeconfig,
                    format!("cannot read /etc/kubernetes/admin.conf: {}", o.last_line()),
                ),
            );
            return None;
        }
        Err(e) => {
            run.fail(cp, StepError::from_ssh(Step::Kubeconfig, e));
            return None;
        }
    };
    write(run, cp, &out.stdout, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_every_server_line_keeping_indent() {
        let k = "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: AAA\n    server: https://10.77.0.11:6443\n  name: lab\n";
        let r = rewrite_server(k, "https://192.168.56.10:6443");
        assert!(r.contains("    server: https://192.168.56.10:6443\n"));
        assert!(!r.contains("10.77.0.11"));
        assert!(r.contains("certificate-authority-data: AAA"));
    }
}
