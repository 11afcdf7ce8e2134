//! Reaching a host: TCP or a direct-tcpip channel through the jump hosts, the handshake with
//! the host key checked against the known_hosts files (and the message when it fails), then
//! authentication (`auth`) and, with `sudoPasswordEnv`, the sudo probe.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::ssh_key::HashAlg;
use russh::keys::{self, PublicKey};
use russh::Disconnect;

use super::auth::{authenticate, KeyCache};
use super::{known_hosts, shell_quote, HostKeyPolicy, HostLog, Session, SshError, Target};

/// What the host key check decided, kept so a failed handshake can say why.
#[derive(Debug, Clone)]
enum KeyVerdict {
    Known,
    Learned {
        fingerprint: String,
        place: known_hosts::Place,
    },
    Unchecked(String),
    Unknown {
        fingerprint: String,
    },
    /// Only keys of another type are recorded for the host: refused as a changed key, whatever
    /// the policy (as OpenSSH does).
    OtherType {
        fingerprint: String,
        offered: &'static str,
        recorded: String,
        place: known_hosts::Place,
    },
    Changed {
        fingerprint: String,
        place: known_hosts::Place,
    },
    Revoked {
        fingerprint: String,
        place: known_hosts::Place,
    },
    Error(String),
}

/// One SSH endpoint's host key settings (a target or a jump host).
pub(super) struct ClientHandler {
    address: String,
    port: u16,
    files: Vec<PathBuf>,
    policy: HostKeyPolicy,
    verdict: Arc<Mutex<Option<KeyVerdict>>>,
}

impl ClientHandler {
    fn judge(&self, key: &PublicKey) -> KeyVerdict {
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        if self.policy == HostKeyPolicy::Off {
            return KeyVerdict::Unchecked(fingerprint);
        }
        match known_hosts::check(&self.address, self.port, key, &self.files) {
            Err(e) => KeyVerdict::Error(e),
            Ok(known_hosts::Check::Known(_)) => KeyVerdict::Known,
            Ok(known_hosts::Check::Changed(place)) => KeyVerdict::Changed { fingerprint, place },
            Ok(known_hosts::Check::Revoked(place)) => KeyVerdict::Revoked { fingerprint, place },
            Ok(known_hosts::Check::OtherType { place, recorded }) => KeyVerdict::OtherType {
                fingerprint,
                offered: known_hosts::key_type_name(key),
                recorded,
                place,
            },
            Ok(known_hosts::Check::Unknown) if self.policy == HostKeyPolicy::AcceptNew => {
                let file = &self.files[0];
                match known_hosts::learn(&self.address, self.port, key, file) {
                    Ok(line) => KeyVerdict::Learned {
                        fingerprint,
                        place: known_hosts::Place {
                            file: file.clone(),
                            line,
                        },
                    },
                    Err(e) => KeyVerdict::Error(e),
                }
            }
            Ok(known_hosts::Check::Unknown) => KeyVerdict::Unknown { fingerprint },
        }
    }
}

impl client::Handler for ClientHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let verdict = match key {
            keys::PublicKeyOrCertificate::PublicKey { key, .. } => self.judge(key),
            keys::PublicKeyOrCertificate::Certificate(_) => KeyVerdict::Error(
                "the server offered a host certificate; kubestrap checks plain host keys only"
                    .into(),
            ),
        };
        let ok = matches!(
            verdict,
            KeyVerdict::Known | KeyVerdict::Learned { .. } | KeyVerdict::Unchecked(_)
        );
        *self.verdict.lock().unwrap() = Some(verdict);
        Ok(ok)
    }
}

/// Where one hop connects, and as whom.
pub(super) struct Endpoint<'a> {
    /// "" for the target itself, "jump host ops@b:22: " for a hop (message prefix).
    pub(super) label: String,
    pub(super) address: &'a str,
    pub(super) port: u16,
    pub(super) user: &'a str,
    pub(super) identity_files: Vec<PathBuf>,
    pub(super) password: Option<&'a str>,
}

pub fn client_config() -> Arc<client::Config> {
    Arc::new(client::Config {
        keepalive_interval: Some(Duration::from_secs(15)),
        keepalive_max: 3,
        nodelay: true,
        ..Default::default()
    })
}

pub(super) async fn timed<T>(
    limit: Duration,
    what: impl FnOnce() -> SshError,
    fut: impl std::future::Future<Output = Result<T, SshError>>,
) -> Result<T, SshError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(what()),
    }
}

impl Session {
    pub async fn connect(
        target: Target,
        keys: &KeyCache,
        config: Arc<client::Config>,
        log: Arc<HostLog>,
    ) -> Result<Session, SshError> {
        let mut notes = Vec::new();
        let mut jumps: Vec<Handle<ClientHandler>> = Vec::new();
        for j in &target.jumps {
            let ep = Endpoint {
                label: format!(
                    "jump host {} ({}@{}:{}): ",
                    j.spec, j.user, j.address, j.port
                ),
                address: &j.address,
                port: j.port,
                user: &j.user,
                identity_files: j.identity_files.clone(),
                password: None,
            };
            log.write(&format!(
                "# connect {}@{}:{} (jump host)\n",
                j.user, j.address, j.port
            ));
            let (h, note) = open(&target, &ep, jumps.last(), keys, config.clone(), &log).await?;
            notes.extend(note);
            jumps.push(h);
        }
        let ep = Endpoint {
            label: String::new(),
            address: &target.address,
            port: target.port,
            user: &target.user,
            identity_files: target
                .identity_file
                .iter()
                .chain(target.more_identity_files.iter())
                .cloned()
                .collect(),
            password: target.password.as_deref(),
        };
        log.write(&format!(
            "# connect {}@{}:{}{}\n",
            target.user,
            target.address,
            target.port,
            if jumps.is_empty() {
                ""
            } else {
                " through the jump host(s)"
            }
        ));
        let (handle, note) = open(&target, &ep, jumps.last(), keys, config, &log).await?;
        notes.extend(note);

        let mut session = Session {
            sudo: if target.user == "root" {
                ""
            } else {
                "sudo -n "
            },
            target,
            handle,
            jumps,
            log,
            key_note: (!notes.is_empty()).then(|| notes.join("; ")),
            held: Mutex::new(vec![]),
        };
        if session.target.user != "root" && session.target.sudo_password.is_some() {
            session.sudo = session.probe_sudo().await?;
        }
        Ok(session)
    }

    /// With `sudoPasswordEnv`: does sudo need the password, and does it take it? One round trip.
    /// `-k` makes sudo ask every time (a cached credential would leave the password line to the
    /// command), so every privileged command gets the password first on its standard input.
    async fn probe_sudo(&self) -> Result<&'static str, SshError> {
        let pw = self.target.sudo_password.clone().unwrap_or_default();
        let cmd = "if sudo -n true 2>/dev/null; then echo SUDO=nopasswd; \
                   elif sudo -k -S -p '' true 2>/dev/null; then echo SUDO=password; \
                   else echo SUDO=refused; fi";
        let out = self
            .run(
                cmd,
                Some(format!("{pw}\n").as_bytes()),
                self.target.connect_timeout,
                "sudo check",
            )
            .await?;
        if out.stdout.contains("SUDO=nopasswd") {
            Ok("sudo -n ")
        } else if out.stdout.contains("SUDO=password") {
            Ok("sudo -k -S -p '' ")
        } else {
            Err(SshError::Sudo(format!(
                "{} cannot run commands as root: sudo refused the password from ssh.sudoPasswordEnv \
                 (wrong password, or the user is not allowed to use sudo); check the variable, or give {} sudo rights",
                self.target.user, self.target.user
            )))
        }
    }

    /// How privileged commands run here: "root login", "sudo without password", "sudo with password".
    pub fn privilege(&self) -> &'static str {
        match self.sudo {
            "" => "root login",
            "sudo -n " => "sudo without password",
            _ => "sudo with password",
        }
    }

    pub async fn close(&self) {
        let _ = self
            .handle
            .disconnect(Disconnect::ByApplication, "", "en")
            .await;
        for j in self.jumps.iter().rev() {
            let _ = j.disconnect(Disconnect::ByApplication, "", "en").await;
        }
    }
}

/// TCP (or a direct-tcpip channel through `via`), handshake with the host key check, then
/// authentication. Returns the handle and a note for the user (key recorded / not checked).
async fn open(
    target: &Target,
    ep: &Endpoint<'_>,
    via: Option<&Handle<ClientHandler>>,
    keys: &KeyCache,
    config: Arc<client::Config>,
    log: &HostLog,
) -> Result<(Handle<ClientHandler>, Option<String>), SshError> {
    let addr = format!("{}:{}", ep.address, ep.port);
    let limit = target.connect_timeout;
    let secs = limit.as_secs();
    let verdict = Arc::new(Mutex::new(None));
    let handler = ClientHandler {
        address: ep.address.to_string(),
        port: ep.port,
        files: target.known_hosts_files(),
        policy: target.policy,
        verdict: verdict.clone(),
    };
    let label = &ep.label;
    let no_answer = || SshError::Connect {
        addr: format!("{label}{addr}"),
        reason: format!("no answer within {secs}s (is the host up and sshd listening?)"),
    };
    let connected = match via {
        None => {
            let c = client::connect(config, (ep.address, ep.port), handler);
            tokio::time::timeout(limit, c)
                .await
                .map_err(|_| no_answer())?
        }
        Some(jump) => {
            let channel = timed(limit, no_answer, async {
                jump.channel_open_direct_tcpip(ep.address, ep.port as u32, "127.0.0.1", 0)
                    .await
                    .map_err(|e| SshError::Connect {
                        addr: format!("{label}{addr}"),
                        reason: format!(
                            "the jump host would not open a connection to it ({e}); check that the address is right from the jump host and that its sshd allows TCP forwarding (AllowTcpForwarding)"
                        ),
                    })
            })
            .await?;
            let c = client::connect_stream(config, channel.into_stream(), handler);
            tokio::time::timeout(limit, c)
                .await
                .map_err(|_| no_answer())?
        }
    };
    let verdict = verdict.lock().unwrap().clone();
    let mut handle = match connected {
        Ok(h) => {
            crate::stats::handshake(&target.host_name);
            h
        }
        Err(e) => {
            return Err(match &verdict {
                Some(
                    v @ (KeyVerdict::Unknown { .. }
                    | KeyVerdict::OtherType { .. }
                    | KeyVerdict::Changed { .. }
                    | KeyVerdict::Revoked { .. }
                    | KeyVerdict::Error(_)),
                ) => SshError::HostKey(format!("{label}{}", host_key_message(target, ep, v))),
                _ => SshError::Connect {
                    addr: format!("{label}{addr}"),
                    reason: e.to_string(),
                },
            })
        }
    };
    let host = known_hosts::host_field(ep.address, ep.port);
    let note = match &verdict {
        Some(KeyVerdict::Learned { fingerprint, place }) => {
            Some(format!("{label}recorded new host key {fingerprint} of {host} in {place}"))
        }
        Some(KeyVerdict::Unchecked(fp)) => Some(format!(
            "{label}host key {fp} of {host} NOT checked (hostKeyPolicy: off); anyone on the path could impersonate this host"
        )),
        _ => None,
    };
    if let Some(n) = &note {
        log.write(&format!("# {n}\n"));
    }
    let method = authenticate(&mut handle, target, ep, keys).await?;
    log.write(&format!(
        "# {label}authenticated as {} with {method}\n",
        ep.user
    ));
    Ok((handle, note))
}

fn host_key_message(target: &Target, ep: &Endpoint<'_>, v: &KeyVerdict) -> String {
    let kh = target.known_hosts_file.display();
    let host = known_hosts::host_field(ep.address, ep.port);
    // Hints are commands to paste: everything interpolated is shell-quoted.
    let q_path = |p: &Path| shell_quote(&p.to_string_lossy());
    let remove = |place: &known_hosts::Place| {
        format!(
            "`ssh-keygen -R {} -f {}`",
            shell_quote(&known_hosts::host_field(
                &ep.address.to_ascii_lowercase(),
                ep.port
            )),
            q_path(&place.file)
        )
    };
    match v {
        KeyVerdict::Unknown { fingerprint } => {
            let port = if ep.port == 22 {
                String::new()
            } else {
                format!("-p {} ", ep.port)
            };
            format!(
                "host key of {host} is not known: {fingerprint}. Verify that fingerprint \
                 (on the host: `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`), then add the key to {kh} \
                 (`ssh-keyscan {port}{} >> {}`), or set `ssh.hostKeyPolicy: accept-new` to record it on first use",
                shell_quote(ep.address),
                q_path(&target.known_hosts_file)
            )
        }
        KeyVerdict::OtherType {
            fingerprint,
            offered,
            recorded,
            place,
        } => format!(
            "REMOTE HOST IDENTIFICATION HAS CHANGED for {host}: it sent a host key of type {offered} ({fingerprint}), \
             but none of that type is recorded for it, only one of type {recorded} (offending {recorded} key in {place}). \
             This can be a rebuilt host or an attack (man-in-the-middle); as ssh does, kubestrap refuses it whatever \
             ssh.hostKeyPolicy says, and recorded nothing. If the host was rebuilt, verify the new fingerprint \
             (on the host: `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`), remove line {} of {} ({}) and run again",
            place.line,
            place.file.display(),
            remove(place)
        ),
        KeyVerdict::Changed { fingerprint, place } => format!(
            "HOST KEY OF {host} HAS CHANGED (now {fingerprint}; the old key is at {place}). This can be a rebuilt VM \
             or an attack. If the host was rebuilt, remove line {} of {} ({}) and run again",
            place.line,
            place.file.display(),
            remove(place)
        ),
        KeyVerdict::Revoked { fingerprint, place } => format!(
            "host key {fingerprint} of {host} is REVOKED ({place} marks it @revoked); refusing to connect"
        ),
        KeyVerdict::Error(e) => e.clone(),
        _ => "host key check failed".into(),
    }
}
