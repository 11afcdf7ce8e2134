//! Authentication: the material (private keys decrypted once per run and shared by every host,
//! the passphrase read from `ssh.passphraseEnv` or asked once on the terminal; ssh-agent) and the
//! login itself on a fresh connection (`authenticate`: key files, agent keys, then the password).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use russh::client::Handle;
use russh::keys::agent::client::AgentClient;
use russh::keys::ssh_key::HashAlg;
use russh::keys::{self, PrivateKey, PrivateKeyWithHashAlg, PublicKey};

use super::connect::{timed, ClientHandler, Endpoint};
use super::{SshError, Target};

/// Private keys loaded once per run and shared across hosts, plus where ssh-agent listens.
pub struct KeyCache {
    keys: Mutex<HashMap<PathBuf, Result<Arc<PrivateKey>, String>>>,
    /// Ask for passphrases on the terminal (stdin and stderr are terminals).
    interactive: bool,
    /// ssh-agent's socket (`SSH_AUTH_SOCK`).
    agent_socket: Option<PathBuf>,
    /// Runs the terminal prompt with the live progress display paused (see `with_pause`).
    pause: Option<Pause>,
}

/// Calls the function it is given with the terminal to itself.
type Pause = Arc<dyn Fn(&mut dyn FnMut()) + Send + Sync>;

impl Default for KeyCache {
    /// Agent from `SSH_AUTH_SOCK`; passphrases asked on the terminal when there is one.
    fn default() -> Self {
        KeyCache::new(
            std::env::var_os("SSH_AUTH_SOCK")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            std::io::stdin().is_terminal() && std::io::stderr().is_terminal(),
        )
    }
}

impl KeyCache {
    pub fn new(agent_socket: Option<PathBuf>, interactive: bool) -> Self {
        KeyCache {
            keys: Mutex::new(HashMap::new()),
            interactive,
            agent_socket,
            pause: None,
        }
    }

    /// Ask passphrases through `pause`, which runs the prompt with the spinners stopped and
    /// cleared, so they neither redraw over the prompt nor move it.
    pub fn with_pause(mut self, pause: impl Fn(&mut dyn FnMut()) + Send + Sync + 'static) -> Self {
        self.pause = Some(Arc::new(pause));
        self
    }

    /// A connection to ssh-agent, when one is configured and answers.
    pub async fn agent(&self) -> Option<AgentClient<tokio::net::UnixStream>> {
        let sock = self.agent_socket.as_ref()?;
        AgentClient::connect_uds(sock).await.ok()
    }

    /// The public half of a key file without decrypting it: `<file>.pub`, else the public part
    /// OpenSSH keeps unencrypted inside the private key file.
    pub fn public_of(path: &Path) -> Option<PublicKey> {
        let mut pubfile = path.as_os_str().to_owned();
        pubfile.push(".pub");
        if let Ok(text) = std::fs::read_to_string(PathBuf::from(pubfile)) {
            if let Some(k) = text
                .split_whitespace()
                .nth(1)
                .and_then(|b| keys::parse_public_key_base64(b).ok())
            {
                return Some(k);
            }
        }
        let text = std::fs::read_to_string(path).ok()?;
        PrivateKey::from_openssh(text.trim())
            .ok()
            .map(|k| k.public_key().clone())
    }

    /// The decrypted key at `path`. An encrypted key is decrypted with the passphrase in the
    /// environment variable `passphrase_env` or, failing that, one asked on the terminal; the
    /// result (or the failure) is kept, so the passphrase is needed once per run.
    pub fn load(
        &self,
        path: &Path,
        passphrase_env: Option<&str>,
    ) -> Result<Arc<PrivateKey>, String> {
        // Held while prompting, so parallel connections wait for one answer instead of asking again.
        let mut keys = self.keys.lock().unwrap();
        if let Some(r) = keys.get(path) {
            return r.clone();
        }
        let r = self.load_uncached(path, passphrase_env).map(Arc::new);
        keys.insert(path.to_path_buf(), r.clone());
        r
    }

    fn load_uncached(
        &self,
        path: &Path,
        passphrase_env: Option<&str>,
    ) -> Result<PrivateKey, String> {
        let shown = path.display();
        match keys::load_secret_key(path, None) {
            Ok(k) => return Ok(k),
            Err(keys::Error::KeyIsEncrypted) => {}
            Err(e) => return Err(format!("cannot read private key {shown}: {e}")),
        }
        if let Some(var) = passphrase_env {
            return match std::env::var(var) {
                Ok(pass) => keys::load_secret_key(path, Some(&pass)).map_err(|_| {
                    format!("the passphrase in ${var} (ssh.passphraseEnv) does not decrypt {shown}; check the variable's value")
                }),
                Err(_) => Err(format!(
                    "{shown} is encrypted and ssh.passphraseEnv names ${var}, which is not set; export it (e.g. `read -s {var}; export {var}`)"
                )),
            };
        }
        if !self.interactive {
            return Err(format!(
                "{shown} is encrypted with a passphrase and there is no terminal to ask for it; \
                 set ssh.passphraseEnv in the inventory to the NAME of an environment variable holding the passphrase, \
                 or add the key to ssh-agent (`ssh-add {shown}`)"
            ));
        }
        let mut result = None;
        let mut ask = || result = Some(ask_passphrase(path));
        match &self.pause {
            Some(pause) => pause(&mut ask),
            None => ask(),
        }
        result.unwrap_or_else(|| Err(format!("no passphrase was read for {shown}")))
    }
}

/// Up to three tries at the terminal.
fn ask_passphrase(path: &Path) -> Result<PrivateKey, String> {
    let shown = path.display();
    for attempt in 1..=3 {
        let pass = read_secret(&format!("Enter passphrase for key '{shown}': ")).map_err(|e| {
            format!("cannot read the passphrase for {shown} from the terminal: {e}")
        })?;
        match keys::load_secret_key(path, Some(&pass)) {
            Ok(k) => return Ok(k),
            Err(_) if attempt < 3 => {
                let _ = write_tty("Wrong passphrase, try again.\n");
            }
            Err(_) => {}
        }
    }
    Err(format!("wrong passphrase for {shown} (3 attempts)"))
}

fn write_tty(s: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut tty = std::fs::OpenOptions::new().write(true).open("/dev/tty")?;
    tty.write_all(s.as_bytes())
}

/// Prompt on /dev/tty and read one line with echo off.
fn read_secret(prompt: &str) -> std::io::Result<String> {
    use std::io::{BufRead, Write};
    use std::os::fd::AsRawFd;
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")?;
    let fd = tty.as_raw_fd();
    let mut old: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd is an open terminal for the lifetime of `tty`; termios is plain data.
    let have_termios = unsafe { libc::tcgetattr(fd, &mut old) } == 0;
    if have_termios {
        let mut quiet = old;
        quiet.c_lflag &= !libc::ECHO;
        quiet.c_lflag |= libc::ECHONL;
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    }
    let result = (|| {
        (&tty).write_all(prompt.as_bytes())?;
        (&tty).flush()?;
        let mut line = String::new();
        std::io::BufReader::new(&tty).read_line(&mut line)?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    })();
    if have_termios {
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &old) };
    }
    result
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

/// Try, in order: each key file (through ssh-agent when the agent holds it, so an encrypted key
/// needs no passphrase), the agent's other keys, then the password. Returns what worked.
pub(super) async fn authenticate(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypted_key_uses_passphrase_env_once_and_names_the_field() {
        let d = tempfile::tempdir().unwrap();
        let key = d.path().join("enc");
        let o = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "s3cret phrase", "-f"])
            .arg(&key)
            .output()
            .unwrap();
        assert!(o.status.success());
        let cache = KeyCache::new(None, false);
        // Unique names: tests in this binary share the environment.
        let var = "KUBESTRAP_TEST_AUTH_PASSPHRASE_OK";
        std::env::set_var(var, "s3cret phrase");
        let k = cache.load(&key, Some(var)).unwrap();
        std::env::remove_var(var);
        // Cached: the variable is not needed again.
        let again = cache.load(&key, Some(var)).unwrap();
        assert!(Arc::ptr_eq(&k, &again));
        assert_eq!(
            KeyCache::public_of(&key).unwrap().key_data(),
            k.public_key().key_data()
        );

        let fresh = KeyCache::new(None, false);
        let e = fresh.load(&key, None).unwrap_err();
        assert!(
            e.contains("ssh.passphraseEnv") && e.contains(&key.display().to_string()),
            "{e}"
        );
        let unset = KeyCache::new(None, false)
            .load(&key, Some("KUBESTRAP_TEST_AUTH_UNSET"))
            .unwrap_err();
        assert!(
            unset.contains("$KUBESTRAP_TEST_AUTH_UNSET, which is not set"),
            "{unset}"
        );
        let var = "KUBESTRAP_TEST_AUTH_PASSPHRASE_BAD";
        std::env::set_var(var, "wrong");
        let e = KeyCache::new(None, false)
            .load(&key, Some(var))
            .unwrap_err();
        assert!(
            e.contains("does not decrypt") && !e.contains("wrong"),
            "{e}"
        );
    }
}
