//! One SSH session per host, opened once and shared by every step of a run.
//!
//! Connecting works the way users' own `ssh` does: an `address` that is an alias in
//! `~/.ssh/config` takes its HostName, User, Port, IdentityFile and ProxyJump from there
//! (`config`); `ssh.bastion` or ProxyJump hops are tunnelled through (direct-tcpip channels);
//! every host key, the bastion's included, is checked against `knownHostsFile` and
//! `~/.ssh/known_hosts` (`known_hosts`); ssh-agent keys, key files (decrypted once, `auth`) and
//! a password from `passwordEnv` are tried in that order.
//!
//! Commands run through `exec` with their standard input, a time limit, and every byte of output
//! appended (redacted) to the host's log. Privileged commands go through `sudo -n` unless the login
//! user is root, or `sudo -k -S` with the password from `sudoPasswordEnv` as the first line of
//! standard input when sudo wants one; scripts are sent on standard input so nothing secret is on
//! a command line.

pub mod auth;
pub mod config;
pub mod known_hosts;
pub mod lock;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use russh::client::{self, Handle};
use russh::keys::ssh_key::HashAlg;
use russh::keys::{self, PrivateKeyWithHashAlg, PublicKey};
use russh::{ChannelMsg, Disconnect};

pub use auth::KeyCache;

use crate::redact::Redactor;

/// How unknown host keys are treated (`ssh.hostKeyPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKeyPolicy {
    Strict,
    AcceptNew,
    Off,
}

/// A jump host on the way to a target (`ssh.bastion` or `ProxyJump`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jump {
    /// As written (an alias or `user@host:port`), for messages.
    pub spec: String,
    pub address: String,
    pub port: u16,
    pub user: String,
    /// Keys to try, in order (empty: the default ~/.ssh/id_* keys).
    pub identity_files: Vec<PathBuf>,
}

/// Everything needed to reach one host.
#[derive(Debug, Clone)]
pub struct Target {
    pub host_name: String,
    /// Where TCP connects (the alias's HostName when `address` is an ssh_config alias).
    pub address: String,
    pub port: u16,
    pub user: String,
    /// The inventory's `identityFile`, else the first `IdentityFile` of the ssh_config alias.
    pub identity_file: Option<PathBuf>,
    /// Further `IdentityFile`s from ssh_config, tried after `identity_file`.
    pub more_identity_files: Vec<PathBuf>,
    /// Where keys are checked and, with `accept-new`, recorded.
    pub known_hosts_file: PathBuf,
    /// Also checked (the user's ~/.ssh/known_hosts when `known_hosts_file` is another file).
    pub extra_known_hosts: Vec<PathBuf>,
    pub policy: HostKeyPolicy,
    pub connect_timeout: Duration,
    /// Fed to `sudo -S` on standard input when set (never on a command line).
    pub sudo_password: Option<String>,
    /// Password login (`ssh.passwordEnv`: name of the variable, and its value).
    pub password_env: Option<String>,
    pub password: Option<String>,
    /// Name of the variable holding the passphrase of encrypted key files (`ssh.passphraseEnv`).
    pub passphrase_env: Option<String>,
    /// Jump hosts, first to last.
    pub jumps: Vec<Jump>,
}

impl Target {
    /// The target for one inventory host, resolved through the user's `~/.ssh/config`. Fails when
    /// a named environment variable is not set or a ProxyJump/bastion cannot be parsed.
    pub fn from_host(
        host: &crate::inventory::Host,
        connect_timeout: Duration,
    ) -> Result<Target, String> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        Target::from_host_with(
            host,
            connect_timeout,
            config::user_config_path().as_deref(),
            home.as_deref(),
        )
    }

    /// As [`Target::from_host`], with an explicit ssh_config file and home directory.
    pub fn from_host_with(
        host: &crate::inventory::Host,
        connect_timeout: Duration,
        ssh_config: Option<&Path>,
        home: Option<&Path>,
    ) -> Result<Target, String> {
        let s = &host.ssh;
        let resolve = |alias: &str| match ssh_config {
            Some(p) => {
                config::resolve(alias, p, home).map_err(|e| format!("hosts {}: {e}", host.name))
            }
            None => Ok(config::HostConfig::default()),
        };
        let cfg = resolve(&host.address)?;
        let env = |field: &str, var: &Option<String>| -> Result<Option<String>, String> {
            match var {
                None => Ok(None),
                Some(v) => std::env::var(v).map(Some).map_err(|_| {
                    format!(
                        "hosts {}: ssh.{field} names ${v}, which is not set; export it (e.g. `read -s {v}; export {v}`)",
                        host.name
                    )
                }),
            }
        };
        let user = if s.user_explicit {
            s.user.clone()
        } else {
            cfg.user.clone().unwrap_or_else(|| s.user.clone())
        };
        let port = if s.port_explicit {
            s.port
        } else {
            cfg.port.unwrap_or(s.port)
        };
        let (identity_file, more_identity_files) = match &s.identity_file {
            Some(f) => (Some(f.clone()), vec![]),
            None => {
                let mut files = cfg.identity_files.clone().into_iter();
                (files.next(), files.collect())
            }
        };
        let jump_spec = s.bastion.clone().or(cfg.proxy_jump.clone());
        let mut jumps = Vec::new();
        if let Some(spec) = &jump_spec {
            let field = if s.bastion.is_some() {
                "ssh.bastion"
            } else {
                "ProxyJump in ~/.ssh/config"
            };
            for j in config::parse_jumps(spec)
                .map_err(|e| format!("hosts {}: {field}: {e}", host.name))?
            {
                let jc = resolve(&j.host)?;
                let mut files: Vec<PathBuf> = s.identity_file.iter().cloned().collect();
                files.extend(jc.identity_files.iter().cloned());
                jumps.push(Jump {
                    spec: match (&j.user, j.port) {
                        (Some(u), Some(p)) => format!("{u}@{}:{p}", j.host),
                        (Some(u), None) => format!("{u}@{}", j.host),
                        (None, Some(p)) => format!("{}:{p}", j.host),
                        (None, None) => j.host.clone(),
                    },
                    address: jc.host_name.clone().unwrap_or(j.host.clone()),
                    port: j.port.or(jc.port).unwrap_or(22),
                    user: j.user.or(jc.user).unwrap_or_else(|| user.clone()),
                    identity_files: files,
                });
            }
        }
        let mut extra_known_hosts = Vec::new();
        if let Some(h) = home {
            let user_kh = h.join(".ssh/known_hosts");
            if user_kh != s.known_hosts_file {
                extra_known_hosts.push(user_kh);
            }
        }
        Ok(Target {
            host_name: host.name.clone(),
            address: cfg
                .host_name
                .clone()
                .unwrap_or_else(|| host.address.clone()),
            port,
            user,
            identity_file,
            more_identity_files,
            known_hosts_file: s.known_hosts_file.clone(),
            extra_known_hosts,
            policy: match s.host_key_policy {
                crate::inventory::HostKeyPolicy::Strict => HostKeyPolicy::Strict,
                crate::inventory::HostKeyPolicy::AcceptNew => HostKeyPolicy::AcceptNew,
                crate::inventory::HostKeyPolicy::Off => HostKeyPolicy::Off,
            },
            connect_timeout,
            sudo_password: env("sudoPasswordEnv", &s.sudo_password_env)?,
            password: env("passwordEnv", &s.password_env)?,
            password_env: s.password_env.clone(),
            passphrase_env: s.passphrase_env.clone(),
            jumps,
        })
    }

    /// Every secret this target carries, for the log redactor.
    pub fn secrets(&self) -> Vec<String> {
        self.sudo_password
            .iter()
            .chain(self.password.iter())
            .cloned()
            .collect()
    }

    fn known_hosts_files(&self) -> Vec<PathBuf> {
        std::iter::once(self.known_hosts_file.clone())
            .chain(self.extra_known_hosts.iter().cloned())
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("{0}")]
    HostKey(String),
    #[error("authentication as {user} failed: {reason}")]
    Auth { user: String, reason: String },
    #[error("timed out after {secs}s; last output: {last_line}")]
    Timeout { secs: u64, last_line: String },
    #[error("connection lost: {0}")]
    Lost(String),
    #[error("sudo: {0}")]
    Sudo(String),
    /// The remote command ran and failed; the text says what it printed.
    #[error("{0}")]
    Remote(String),
}

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
struct ClientHandler {
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
struct Endpoint<'a> {
    /// "" for the target itself, "jump host ops@b:22: " for a hop (message prefix).
    label: String,
    address: &'a str,
    port: u16,
    user: &'a str,
    identity_files: Vec<PathBuf>,
    password: Option<&'a str>,
}
/// Output of one remote command.
#[derive(Debug, Default, Clone)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    pub code: Option<u32>,
    pub signal: Option<String>,
}

impl Output {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
    /// The last non-empty line of stderr, else of stdout: what a user needs to see first.
    pub fn last_line(&self) -> String {
        last_line(&self.stderr)
            .or_else(|| last_line(&self.stdout))
            .unwrap_or_default()
    }
}

fn last_line(s: &str) -> Option<String> {
    s.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
}

/// A per-host log file: every command and its full output, redacted.
pub struct HostLog {
    file: Mutex<Option<std::fs::File>>,
    redactor: Redactor,
    /// Remote output not yet written: redaction works on whole lines and whole PEM blocks, and
    /// SSH delivers output in arbitrary chunks.
    pending: Mutex<String>,
}

impl HostLog {
    pub fn open(path: Option<&Path>, redactor: Redactor) -> Self {
        let file = path.and_then(|p| crate::state::open_log(p).ok());
        HostLog {
            file: Mutex::new(file),
            redactor,
            pending: Mutex::new(String::new()),
        }
    }

    /// A chunk of a command's output: written once its lines (and any private-key block in
    /// them) are complete, so the redactor sees them whole.
    pub fn output(&self, chunk: &str) {
        let mut p = self.pending.lock().unwrap();
        p.push_str(chunk);
        let mut cut = p.rfind('\n').map_or(0, |i| i + 1);
        if let Some(begin) = p[..cut].rfind("-----BEGIN ") {
            if p[begin..].contains("PRIVATE KEY") && !p[begin..cut].contains("-----END ") {
                cut = begin;
            }
        }
        if cut > 0 {
            let ready: String = p.drain(..cut).collect();
            drop(p);
            self.write(&ready);
        }
    }

    /// Write whatever output is still held back (the command ended or timed out).
    pub fn flush_output(&self) {
        let rest = std::mem::take(&mut *self.pending.lock().unwrap());
        if !rest.is_empty() {
            self.write(&rest);
            if !rest.ends_with('\n') {
                self.write("\n");
            }
        }
    }

    pub fn write(&self, text: &str) {
        use std::io::Write;
        if let Some(f) = self.file.lock().unwrap().as_mut() {
            let _ = f.write_all(self.redactor.redact(text).as_bytes());
        }
    }
}

/// A live, authenticated session to one host.
pub struct Session {
    pub target: Target,
    handle: Handle<ClientHandler>,
    /// Sessions to the jump hosts, kept open while the target's session runs through them.
    jumps: Vec<Handle<ClientHandler>>,
    pub log: Arc<HostLog>,
    /// `sudo -n ` (or `sudo -k -S -p '' ` with a password), empty for root logins.
    sudo: &'static str,
    /// What the user should know about host keys (recorded, not checked), for a warning.
    pub key_note: Option<String>,
    /// Channels kept open for the session's lifetime: the run lock (see `lock.rs`).
    held: Mutex<Vec<russh::Channel<client::Msg>>>,
}

fn default_identities() -> Vec<PathBuf> {
    let Some(home) = std::env::var_os("HOME").map(PathBuf::from) else {
        return vec![];
    };
    ["id_ed25519", "id_ecdsa", "id_rsa"]
        .iter()
        .map(|n| home.join(".ssh").join(n))
        .filter(|p| p.exists())
        .collect()
}

pub fn client_config() -> Arc<client::Config> {
    Arc::new(client::Config {
        keepalive_interval: Some(Duration::from_secs(15)),
        keepalive_max: 3,
        nodelay: true,
        ..Default::default()
    })
}

async fn timed<T>(
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

/// Try, in order: each key file (through ssh-agent when the agent holds it, so an encrypted key
/// needs no passphrase), the agent's other keys, then the password. Returns what worked.
async fn authenticate(
    handle: &mut Handle<ClientHandler>,
    target: &Target,
    ep: &Endpoint<'_>,
    keys: &KeyCache,
) -> Result<String, SshError> {
    let limit = target.connect_timeout;
    let user = ep.user.to_string();
    let lost = |e: String| SshError::Lost(format!("{}during authentication: {e}", ep.label));
    let timeout = || {
        SshError::Lost(format!(
            "{}the server did not answer authentication within {}s",
            ep.label,
            limit.as_secs()
        ))
    };
    let rsa_hash = timed(limit, timeout, async {
        Ok(handle
            .best_supported_rsa_hash()
            .await
            .ok()
            .flatten()
            .flatten())
    })
    .await?;
    let hash_for = |k: &PublicKey| {
        if k.algorithm().is_rsa() {
            rsa_hash
        } else {
            None
        }
    };
    let mut agent = keys.agent().await;
    let agent_keys: Vec<PublicKey> = match agent.as_mut() {
        Some(a) => a
            .request_identities()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter_map(|id| match id {
                keys::agent::AgentIdentity::PublicKey { key, .. } => Some(key),
                _ => None,
            })
            .collect(),
        None => vec![],
    };
    let files = if ep.identity_files.is_empty() {
        default_identities()
    } else {
        ep.identity_files.clone()
    };
    let mut problems: Vec<String> = Vec::new();
    let mut tried: Vec<PublicKey> = Vec::new();
    for path in &files {
        let public = KeyCache::public_of(path);
        let in_agent = public
            .as_ref()
            .filter(|p| agent_keys.iter().any(|a| a.key_data() == p.key_data()));
        let ok = if let (Some(pubkey), Some(a)) = (in_agent, agent.as_mut()) {
            tried.push(pubkey.clone());
            let r = timed(limit, timeout, async {
                Ok(handle
                    .authenticate_publickey_with(user.clone(), pubkey.clone(), hash_for(pubkey), a)
                    .await)
            })
            .await?;
            match r {
                Ok(r) => r.success(),
                Err(e) => {
                    problems.push(format!(
                        "ssh-agent could not sign with {}: {e}",
                        path.display()
                    ));
                    false
                }
            }
        } else {
            match keys.load(path, target.passphrase_env.as_deref()) {
                Ok(key) => {
                    tried.push(key.public_key().clone());
                    let hash = hash_for(key.public_key());
                    timed(limit, timeout, async {
                        handle
                            .authenticate_publickey(
                                user.clone(),
                                PrivateKeyWithHashAlg::new(key, hash),
                            )
                            .await
                            .map_err(|e| lost(e.to_string()))
                    })
                    .await?
                    .success()
                }
                Err(e) => {
                    problems.push(e);
                    continue;
                }
            }
        };
        if ok {
            return Ok(format!("key {}", path.display()));
        }
        problems.push(format!("the server refused the key {}", path.display()));
    }
    if let Some(a) = agent.as_mut() {
        for k in agent_keys
            .iter()
            .filter(|k| !tried.iter().any(|t| t.key_data() == k.key_data()))
        {
            let r = timed(limit, timeout, async {
                Ok(handle
                    .authenticate_publickey_with(user.clone(), k.clone(), hash_for(k), a)
                    .await)
            })
            .await?;
            if matches!(r, Ok(ref r) if r.success()) {
                return Ok(format!(
                    "an ssh-agent key ({})",
                    k.fingerprint(HashAlg::Sha256)
                ));
            }
        }
        if !agent_keys.is_empty() {
            problems.push(format!(
                "the server refused all {} ssh-agent key(s)",
                agent_keys.len()
            ));
        }
    }
    if let Some(pw) = ep.password {
        let r = timed(limit, timeout, async {
            handle
                .authenticate_password(user.clone(), pw)
                .await
                .map_err(|e| lost(e.to_string()))
        })
        .await?;
        if r.success() {
            return Ok(format!(
                "the password from ${}",
                target.password_env.as_deref().unwrap_or("?")
            ));
        }
        problems.push(format!(
            "the server refused the password from ${} (ssh.passwordEnv)",
            target.password_env.as_deref().unwrap_or("?")
        ));
    }
    if files.is_empty() && agent_keys.is_empty() && ep.password.is_none() {
        problems.push(
            "nothing to log in with: no ssh.identityFile, no ~/.ssh/id_* key, no ssh-agent key (SSH_AUTH_SOCK) and no ssh.passwordEnv"
                .into(),
        );
    }
    Err(SshError::Auth {
        user: format!("{}{}", ep.label, ep.user),
        reason: problems.join("; "),
    })
}

/// What a remote command reads on its standard input.
enum Input<'a> {
    None,
    Bytes(&'a [u8]),
    /// `prefix` (the sudo password line, or nothing), then the file's bytes.
    File {
        prefix: Vec<u8>,
        file: tokio::fs::File,
        len: u64,
    },
}

impl Input<'_> {
    fn len(&self) -> usize {
        match self {
            Input::None => 0,
            Input::Bytes(b) => b.len(),
            Input::File { prefix, len, .. } => prefix.len() + *len as usize,
        }
    }
}

impl Session {
    /// Run `cmd` as the login user with optional stdin and a time limit.
    pub async fn exec_user(
        &self,
        cmd: &str,
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Output, SshError> {
        self.run(cmd, stdin, timeout, cmd).await
    }

    /// Run a shell script as root (through `sudo -n` unless logged in as root). The script travels
    /// on standard input, so nothing in it shows on a command line.
    pub async fn script(
        &self,
        label: &str,
        script: &str,
        timeout: Duration,
    ) -> Result<Output, SshError> {
        let cmd = format!("{}sh -s", self.sudo);
        self.log
            .write(&format!("# step {label}: script\n{script}\n"));
        let stdin = self.with_password(script.as_bytes());
        self.run(&cmd, Some(&stdin), timeout, label).await
    }

    /// Run a command as root with data on its standard input.
    pub async fn root_with_stdin(
        &self,
        cmd: &str,
        stdin: &[u8],
        timeout: Duration,
    ) -> Result<Output, SshError> {
        let stdin = self.with_password(stdin);
        self.run(&self.as_root(cmd), Some(&stdin), timeout, cmd)
            .await
    }

    /// Run a command as root with `file` streamed to its standard input (image bundles: hundreds
    /// of MB, never held in memory). The time limit covers the transfer.
    pub async fn root_with_file(
        &self,
        cmd: &str,
        file: tokio::fs::File,
        timeout: Duration,
    ) -> Result<Output, SshError> {
        let len = file.metadata().await.map_or(0, |m| m.len());
        let input = Input::File {
            prefix: self.with_password(b""),
            file,
            len,
        };
        self.run_input(&self.as_root(cmd), input, timeout, cmd)
            .await
    }

    /// `cmd` run by `sh -c` as root (through sudo unless logged in as root).
    fn as_root(&self, cmd: &str) -> String {
        format!("{}sh -c {}", self.sudo, shell_quote(cmd))
    }

    /// With `sudo -S`, the password is the first line of standard input; sudo reads just that
    /// line and the command gets the rest.
    fn with_password(&self, data: &[u8]) -> Vec<u8> {
        match (&self.target.sudo_password, self.sudo.contains(" -S ")) {
            (Some(pw), true) => {
                let mut v = Vec::with_capacity(pw.len() + 1 + data.len());
                v.extend_from_slice(pw.as_bytes());
                v.push(b'\n');
                v.extend_from_slice(data);
                v
            }
            _ => data.to_vec(),
        }
    }

    /// Write `data` to `path` as root with `mode`, only when the content differs.
    /// Returns true when the file changed.
    pub async fn put_file(
        &self,
        path: &str,
        data: &[u8],
        mode: u32,
        timeout: Duration,
    ) -> Result<bool, SshError> {
        let q = shell_quote(path);
        let cmd = format!(
            "set -e; umask 077; d=$(dirname {q}); mkdir -p \"$d\"; t=$(mktemp \"$d/.kubestrap.XXXXXX\"); cat > \"$t\"; \
             if cmp -s \"$t\" {q}; then rm -f \"$t\"; echo unchanged; else chmod {mode:o} \"$t\"; mv -f \"$t\" {q}; echo changed; fi"
        );
        self.log.write(&format!(
            "# put {path} ({} bytes, mode {mode:o})\n",
            data.len()
        ));
        let out = self.root_with_stdin(&cmd, data, timeout).await?;
        if !out.ok() {
            return Err(SshError::Lost(format!(
                "writing {path} failed: {}",
                out.last_line()
            )));
        }
        Ok(out.stdout.contains("changed") && !out.stdout.contains("unchanged"))
    }

    async fn run(
        &self,
        cmd: &str,
        stdin: Option<&[u8]>,
        timeout: Duration,
        label: &str,
    ) -> Result<Output, SshError> {
        let input = stdin.map_or(Input::None, Input::Bytes);
        self.run_input(cmd, input, timeout, label).await
    }

    /// One exec channel: send `input`, then collect the output and exit status, all within
    /// `timeout` (a stalled upload times out like a stalled command).
    async fn run_input(
        &self,
        cmd: &str,
        input: Input<'_>,
        timeout: Duration,
        label: &str,
    ) -> Result<Output, SshError> {
        let started = Instant::now();
        crate::stats::round_trip(&self.target.host_name, input.len());
        self.log.write(&format!("$ {cmd}\n"));
        let mut channel = self
            .handle
            .channel_open_session()
            .await
            .map_err(|e| SshError::Lost(e.to_string()))?;
        channel
            .exec(true, cmd)
            .await
            .map_err(|e| SshError::Lost(e.to_string()))?;

        let mut out = Output::default();
        let collect = async {
            let sent = match input {
                Input::None => Ok(()),
                Input::Bytes(data) => channel.data(data).await,
                Input::File { prefix, file, .. } => {
                    use tokio::io::AsyncReadExt;
                    let reader = std::io::Cursor::new(prefix).chain(file);
                    channel
                        .data(tokio::io::BufReader::with_capacity(256 * 1024, reader))
                        .await
                }
            };
            sent.map_err(|e| SshError::Lost(format!("sending input: {e}")))?;
            channel
                .eof()
                .await
                .map_err(|e| SshError::Lost(e.to_string()))?;
            while let Some(msg) = channel.wait().await {
                match msg {
                    ChannelMsg::Data { data } => {
                        let s = String::from_utf8_lossy(&data);
                        self.log.output(&s);
                        out.stdout.push_str(&s);
                    }
                    ChannelMsg::ExtendedData { data, .. } => {
                        let s = String::from_utf8_lossy(&data);
                        self.log.output(&s);
                        out.stderr.push_str(&s);
                    }
                    ChannelMsg::ExitStatus { exit_status } => out.code = Some(exit_status),
                    ChannelMsg::ExitSignal { signal_name, .. } => {
                        out.signal = Some(format!("{signal_name:?}"))
                    }
                    _ => {}
                }
            }
            Ok::<(), SshError>(())
        };
        let timed = tokio::time::timeout(timeout, collect).await;
        self.log.flush_output();
        if let Ok(Err(e)) = timed {
            return Err(e);
        }
        if timed.is_err() {
            let _ = channel.close().await;
            let last = out.last_line();
            self.log.write(&format!(
                "# {label}: TIMEOUT after {}s\n",
                timeout.as_secs()
            ));
            return Err(SshError::Timeout {
                secs: timeout.as_secs(),
                last_line: if last.is_empty() {
                    "(no output)".into()
                } else {
                    self.log.redactor.redact(&last)
                },
            });
        }
        if out.code.is_none() && out.signal.is_none() {
            return Err(SshError::Lost(format!(
                "the connection closed before `{label}` finished"
            )));
        }
        self.log.write(&format!(
            "# exit {} in {:.1}s\n",
            out.code
                .map(|c| c.to_string())
                .unwrap_or_else(|| out.signal.clone().unwrap_or_default()),
            started.elapsed().as_secs_f64()
        ));
        Ok(out)
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

/// Quote a string for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_log_redacts_key_material_split_across_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.log");
        let log = HostLog::open(Some(&path), Redactor::new());
        let text = "BEGIN admin.conf\n    client-certificate-data: Q0VSVA==\n    client-key-data: S0VZU0VDUkVUS0VZU0VDUkVU\nEND admin.conf\n\
                    -----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIsecretsecretsecret\nMoreSecretLine\n-----END EC PRIVATE KEY-----\ndone";
        // every chunk size splits the secrets somewhere
        for size in [1, 3, 7, 16, 50] {
            let bytes = text.as_bytes();
            for c in bytes.chunks(size) {
                log.output(std::str::from_utf8(c).unwrap());
            }
            log.flush_output();
        }
        let written = std::fs::read_to_string(&path).unwrap();
        for secret in ["S0VZU0VDUkVU", "secretsecret", "MoreSecretLine"] {
            assert!(!written.contains(secret), "{secret} leaked:\n{written}");
        }
        assert_eq!(
            written.matches("client-certificate-data: Q0VSVA==").count(),
            5
        );
        assert_eq!(written.matches("done\n").count(), 5);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn quoting_round_trips_through_sh() {
        for s in ["plain", "", "a b", "it's", "$(rm -rf /)", "a\nb", "'\"\\`"] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", shell_quote(s)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), s, "input {s:?}");
        }
    }

    #[test]
    fn last_line_prefers_stderr() {
        let o = Output {
            stdout: "a\nb\n".into(),
            stderr: "err one\n\n".into(),
            code: Some(1),
            signal: None,
        };
        assert_eq!(o.last_line(), "err one");
        let o = Output {
            stdout: "a\nb\n\n".into(),
            ..Default::default()
        };
        assert_eq!(o.last_line(), "b");
    }
}
