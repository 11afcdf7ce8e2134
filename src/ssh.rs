//! One SSH session per host, opened once and shared by every step of a run.
//!
//! Commands run through `exec` with their standard input, a time limit, and every byte of output
//! appended (redacted) to the host's log. Privileged commands go through `sudo -n` unless the login
//! user is root; scripts are sent on standard input so nothing secret is on a command line.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use russh::client::{self, Handle};
use russh::keys::ssh_key::HashAlg;
use russh::keys::{self, PrivateKey, PrivateKeyWithHashAlg, PublicKey};
use russh::{ChannelMsg, Disconnect};

use crate::redact::Redactor;

/// How unknown host keys are treated (`ssh.hostKeyPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKeyPolicy {
    Strict,
    AcceptNew,
    Off,
}

/// Everything needed to reach one host.
#[derive(Debug, Clone)]
pub struct Target {
    pub host_name: String,
    pub address: String,
    pub port: u16,
    pub user: String,
    pub identity_file: Option<PathBuf>,
    pub known_hosts_file: PathBuf,
    pub policy: HostKeyPolicy,
    pub connect_timeout: Duration,
    /// Fed to `sudo -S` on standard input when set (never on a command line).
    pub sudo_password: Option<String>,
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
}

/// What the host key check decided, kept so a failed handshake can say why.
#[derive(Debug, Clone)]
enum KeyVerdict {
    Known,
    Learned(String),
    Unchecked(String),
    Unknown(String),
    Changed { fingerprint: String, line: usize },
    Error(String),
}

struct ClientHandler {
    address: String,
    port: u16,
    known_hosts: PathBuf,
    policy: HostKeyPolicy,
    verdict: Arc<Mutex<Option<KeyVerdict>>>,
}

impl client::Handler for ClientHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key: &PublicKey = match key {
            keys::PublicKeyOrCertificate::PublicKey { key, .. } => key,
            keys::PublicKeyOrCertificate::Certificate(_) => {
                *self.verdict.lock().unwrap() = Some(KeyVerdict::Error(
                    "the server offered a host certificate; kubestrap checks plain host keys only"
                        .into(),
                ));
                return Ok(false);
            }
        };
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        let verdict = if self.policy == HostKeyPolicy::Off {
            KeyVerdict::Unchecked(fingerprint)
        } else {
            match check_known_host(&self.address, self.port, key, &self.known_hosts) {
                Ok(true) => KeyVerdict::Known,
                Ok(false) if self.policy == HostKeyPolicy::AcceptNew => {
                    match keys::known_hosts::learn_known_hosts_path(
                        &self.address,
                        self.port,
                        key,
                        &self.known_hosts,
                    ) {
                        Ok(()) => KeyVerdict::Learned(fingerprint),
                        Err(e) => KeyVerdict::Error(format!(
                            "cannot record the host key in {}: {e}",
                            self.known_hosts.display()
                        )),
                    }
                }
                Ok(false) => KeyVerdict::Unknown(fingerprint),
                Err(keys::Error::KeyChanged { line }) => KeyVerdict::Changed { fingerprint, line },
                Err(e) => {
                    KeyVerdict::Error(format!("cannot read {}: {e}", self.known_hosts.display()))
                }
            }
        };
        let ok = matches!(
            verdict,
            KeyVerdict::Known | KeyVerdict::Learned(_) | KeyVerdict::Unchecked(_)
        );
        *self.verdict.lock().unwrap() = Some(verdict);
        Ok(ok)
    }
}

fn check_known_host(
    address: &str,
    port: u16,
    key: &PublicKey,
    path: &Path,
) -> Result<bool, keys::Error> {
    if !path.exists() {
        return Ok(false);
    }
    // Compare key material only (comments in known_hosts must not make a key look changed). A
    // recorded key of the same algorithm with other material is a changed key; a key of another
    // algorithm says nothing about this one.
    let recorded = keys::known_hosts::known_host_keys_path(address, port, path)?;
    let mut changed_line = None;
    for (line, k) in recorded {
        if k.key_data() == key.key_data() {
            return Ok(true);
        }
        if k.algorithm() == key.algorithm() && changed_line.is_none() {
            changed_line = Some(line);
        }
    }
    match changed_line {
        Some(line) => Err(keys::Error::KeyChanged { line }),
        None => Ok(false),
    }
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
}

impl HostLog {
    pub fn open(path: Option<&Path>, redactor: Redactor) -> Self {
        let file = path.and_then(|p| {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(p)
                .ok()
        });
        HostLog {
            file: Mutex::new(file),
            redactor,
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
    pub log: Arc<HostLog>,
    /// `sudo -n ` (or `sudo -S -p '' ` with a password), empty for root logins.
    sudo: &'static str,
    pub key_note: Option<String>,
}

/// Private keys loaded once per run and shared across hosts.
#[derive(Default)]
pub struct KeyCache {
    keys: Mutex<Vec<(PathBuf, Arc<PrivateKey>)>>,
}

impl KeyCache {
    fn load(&self, path: &Path) -> Result<Arc<PrivateKey>, String> {
        let mut keys = self.keys.lock().unwrap();
        if let Some((_, k)) = keys.iter().find(|(p, _)| p == path) {
            return Ok(k.clone());
        }
        let key = match keys::load_secret_key(path, None) {
            Ok(k) => Arc::new(k),
            Err(keys::Error::KeyIsEncrypted) => {
                return Err(format!(
                    "{} is encrypted with a passphrase; load it into ssh-agent or use a key without one",
                    path.display()
                ))
            }
            Err(e) => return Err(format!("cannot read private key {}: {e}", path.display())),
        };
        keys.push((path.to_path_buf(), key.clone()));
        Ok(key)
    }
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

impl Session {
    pub async fn connect(
        target: Target,
        keys: &KeyCache,
        config: Arc<client::Config>,
        log: Arc<HostLog>,
    ) -> Result<Session, SshError> {
        let addr = format!("{}:{}", target.address, target.port);
        let verdict = Arc::new(Mutex::new(None));
        let handler = ClientHandler {
            address: target.address.clone(),
            port: target.port,
            known_hosts: target.known_hosts_file.clone(),
            policy: target.policy,
            verdict: verdict.clone(),
        };
        log.write(&format!("# connect {}@{addr}\n", target.user));
        let connecting = client::connect(config, (target.address.as_str(), target.port), handler);
        let result = tokio::time::timeout(target.connect_timeout, connecting).await;
        let verdict = verdict.lock().unwrap().clone();
        let mut handle = match result {
            Err(_) => {
                return Err(SshError::Connect {
                    addr,
                    reason: format!(
                        "no answer within {}s (is the host up and sshd listening?)",
                        target.connect_timeout.as_secs()
                    ),
                })
            }
            Ok(Ok(h)) => h,
            Ok(Err(e)) => {
                return Err(match verdict {
                    Some(
                        v @ (KeyVerdict::Unknown(_)
                        | KeyVerdict::Changed { .. }
                        | KeyVerdict::Error(_)),
                    ) => SshError::HostKey(host_key_message(&target, &v)),
                    _ => SshError::Connect {
                        addr,
                        reason: e.to_string(),
                    },
                })
            }
        };
        let key_note = match &verdict {
            Some(KeyVerdict::Learned(fp)) => Some(format!(
                "recorded new host key {fp} in {}",
                target.known_hosts_file.display()
            )),
            Some(KeyVerdict::Unchecked(fp)) => {
                Some(format!("host key {fp} NOT checked (hostKeyPolicy: off)"))
            }
            _ => None,
        };

        // Authenticate: the inventory's key, else the usual default keys.
        let candidates = match &target.identity_file {
            Some(p) => vec![p.clone()],
            None => default_identities(),
        };
        if candidates.is_empty() {
            return Err(SshError::Auth {
                user: target.user.clone(),
                reason: "no identityFile set and no ~/.ssh/id_* key found".into(),
            });
        }
        let rsa_hash = handle
            .best_supported_rsa_hash()
            .await
            .ok()
            .flatten()
            .flatten();
        let mut last_err = String::from("the server refused every key");
        let mut authed = false;
        for path in &candidates {
            let key = keys.load(path).map_err(|reason| SshError::Auth {
                user: target.user.clone(),
                reason,
            })?;
            let res = handle
                .authenticate_publickey(
                    target.user.clone(),
                    PrivateKeyWithHashAlg::new(key, rsa_hash),
                )
                .await
                .map_err(|e| SshError::Lost(e.to_string()))?;
            if res.success() {
                authed = true;
                break;
            }
            last_err = format!("the server refused the key {}", path.display());
        }
        if !authed {
            return Err(SshError::Auth {
                user: target.user.clone(),
                reason: last_err,
            });
        }
        let sudo = if target.user == "root" {
            ""
        } else if target.sudo_password.is_some() {
            "sudo -S -p '' "
        } else {
            "sudo -n "
        };
        Ok(Session {
            target,
            handle,
            log,
            sudo,
            key_note,
        })
    }

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
        let full = format!("{}sh -c {}", self.sudo, shell_quote(cmd));
        let stdin = self.with_password(stdin);
        self.run(&full, Some(&stdin), timeout, cmd).await
    }

    /// With `sudo -S`, the password is the first line of standard input; sudo reads just that
    /// line and the command gets the rest.
    fn with_password(&self, data: &[u8]) -> Vec<u8> {
        match (&self.target.sudo_password, self.sudo.starts_with("sudo -S")) {
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
        let started = Instant::now();
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
        if let Some(data) = stdin {
            channel
                .data_bytes(data.to_vec())
                .await
                .map_err(|e| SshError::Lost(e.to_string()))?;
        }
        channel
            .eof()
            .await
            .map_err(|e| SshError::Lost(e.to_string()))?;

        let mut out = Output::default();
        let collect = async {
            while let Some(msg) = channel.wait().await {
                match msg {
                    ChannelMsg::Data { data } => {
                        let s = String::from_utf8_lossy(&data);
                        self.log.write(&s);
                        out.stdout.push_str(&s);
                    }
                    ChannelMsg::ExtendedData { data, .. } => {
                        let s = String::from_utf8_lossy(&data);
                        self.log.write(&s);
                        out.stderr.push_str(&s);
                    }
                    ChannelMsg::ExitStatus { exit_status } => out.code = Some(exit_status),
                    ChannelMsg::ExitSignal { signal_name, .. } => {
                        out.signal = Some(format!("{signal_name:?}"))
                    }
                    _ => {}
                }
            }
        };
        let timed = tokio::time::timeout(timeout, collect).await;
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
    }
}

fn host_key_message(target: &Target, v: &KeyVerdict) -> String {
    let kh = target.known_hosts_file.display();
    let host = if target.port == 22 {
        target.address.clone()
    } else {
        format!("[{}]:{}", target.address, target.port)
    };
    match v {
        KeyVerdict::Unknown(fp) => format!(
            "host key of {host} is not known ({fp}); verify it, then add it to {kh} \
             (e.g. `ssh-keyscan -p {} {} >> {kh}`), or set `hostKeyPolicy: accept-new` to record it on first use",
            target.port, target.address
        ),
        KeyVerdict::Changed { fingerprint, line } => format!(
            "HOST KEY OF {host} HAS CHANGED (now {fingerprint}); this can be a rebuilt VM or an attack. \
             If the host was rebuilt, remove line {line} of {kh} (`ssh-keygen -R '{host}' -f {kh}`) and run again"
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
    fn known_hosts_match_ignores_comments_and_reports_changed_lines() {
        let d = tempfile::tempdir().unwrap();
        let gen = |name: &str| {
            let p = d.path().join(name);
            let o = std::process::Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "some comment", "-f"])
                .arg(&p)
                .output()
                .unwrap();
            assert!(o.status.success());
            std::fs::read_to_string(p.with_extension("pub")).unwrap()
        };
        let (a, b) = (gen("a"), gen("b"));
        let kh = d.path().join("known_hosts");
        // Recorded with its comment, for a non-default port, plus an unrelated host.
        std::fs::write(&kh, format!("[10.0.0.1]:2222 {a}10.0.0.9 {b}")).unwrap();
        let wire = |pubtext: &str| {
            let mut k =
                keys::parse_public_key_base64(pubtext.split_whitespace().nth(1).unwrap()).unwrap();
            k.set_comment("");
            k
        };
        assert!(check_known_host("10.0.0.1", 2222, &wire(&a), &kh).unwrap());
        assert!(
            !check_known_host("10.0.0.2", 2222, &wire(&a), &kh).unwrap(),
            "unknown host"
        );
        assert!(
            !check_known_host("10.0.0.1", 22, &wire(&a), &kh).unwrap(),
            "other port"
        );
        match check_known_host("10.0.0.1", 2222, &wire(&b), &kh) {
            Err(keys::Error::KeyChanged { line }) => assert_eq!(line, 1),
            other => panic!("expected KeyChanged, got {other:?}"),
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
