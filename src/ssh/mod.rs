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
//!
//! Here: the types the rest of kubestrap uses (`Target`, resolved from an inventory host, `Jump`,
//! `HostKeyPolicy`, `SshError`, `Output`, `Session`) and `shell_quote`. Opening a session and
//! checking host keys is in `connect`, logging in in `auth`, running commands in `exec`, the
//! per-host log in `log`, the run lock in `lock`; `config` reads `~/.ssh/config` and `known_hosts`
//! the known_hosts files.

pub mod auth;
pub mod config;
mod connect;
mod exec;
pub mod known_hosts;
pub mod lock;
mod log;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, Handle};

pub use auth::KeyCache;
pub use connect::client_config;
use connect::ClientHandler;
pub use log::HostLog;

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
