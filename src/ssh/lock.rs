//! The per-host run lock: one exec channel, kept open for the whole session, runs `flock` on
//! `/run/kubestrap/<cluster>.lock` and then waits on its standard input. The lock is held while
//! that channel lives and released when the session closes (or the connection drops), so two
//! `kubestrap` runs from two consoles can never both change a host, say both run `kubeadm init`.

use std::time::Duration;

use russh::ChannelMsg;

use super::{shell_quote, Session, SshError};

/// What the lock channel answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostLock {
    /// Ours until the session closes.
    Held,
    /// Another run holds it: who (console host, pid, command, start time), as it wrote.
    Busy(String),
    /// `flock` is not installed on the host; the run goes on unlocked.
    NoFlock,
}

const LOCKED: &str = "KUBESTRAP-LOCK-HELD";
const BUSY: &str = "KUBESTRAP-LOCK-BUSY";
const NOFLOCK: &str = "KUBESTRAP-LOCK-NOFLOCK";

/// The script the lock channel runs as root. `cluster` is a validated RFC 1123 label; `holder`
/// is free text, passed quoted.
pub fn lock_script(cluster: &str, holder: &str) -> String {
    let lock = shell_quote(&format!("/run/kubestrap/{cluster}.lock"));
    let who = shell_quote(&format!("/run/kubestrap/{cluster}.holder"));
    let holder = shell_quote(holder);
    format!(
        "command -v flock >/dev/null 2>&1 || {{ echo {NOFLOCK}; exit 0; }}\n\
         umask 077\n\
         mkdir -p /run/kubestrap && chmod 700 /run/kubestrap || exit 3\n\
         exec 9>>{lock} || exit 3\n\
         if flock -n 9; then printf '%s\\n' {holder} > {who}; echo {LOCKED}; exec cat >/dev/null; fi\n\
         echo {BUSY}; cat {who} 2>/dev/null; exit 75\n"
    )
}

impl Session {
    /// Take this cluster's lock on the host and keep it until the session closes.
    pub async fn hold_lock(
        &self,
        cluster: &str,
        holder: &str,
        timeout: Duration,
    ) -> Result<HostLock, SshError> {
        let cmd = self.as_root(&lock_script(cluster, holder));
        self.log.write(&format!(
            "# lock /run/kubestrap/{cluster}.lock (held until the session closes)\n"
        ));
        let mut channel = self
            .handle
            .channel_open_session()
            .await
            .map_err(|e| SshError::Lost(e.to_string()))?;
        channel
            .exec(true, cmd)
            .await
            .map_err(|e| SshError::Lost(e.to_string()))?;
        let pw = self.with_password(b"");
        if !pw.is_empty() {
            channel
                .data(&pw[..])
                .await
                .map_err(|e| SshError::Lost(e.to_string()))?;
        }
        let mut text = String::new();
        let mut errors = String::new();
        let answer = async {
            loop {
                match channel.wait().await {
                    Some(ChannelMsg::Data { data }) => {
                        text.push_str(&String::from_utf8_lossy(&data));
                        if text.lines().any(|l| l == LOCKED) {
                            return Ok(HostLock::Held);
                        }
                        if text.lines().any(|l| l == NOFLOCK) {
                            return Ok(HostLock::NoFlock);
                        }
                    }
                    Some(ChannelMsg::ExtendedData { data, .. }) => {
                        let t = String::from_utf8_lossy(&data);
                        self.log.output(&t);
                        errors.push_str(&t);
                    }
                    Some(ChannelMsg::ExitStatus { exit_status }) => {
                        if text.lines().any(|l| l == BUSY) {
                            // The holder's line may still be on its way.
                            while let Ok(Some(ChannelMsg::Data { data })) =
                                tokio::time::timeout(Duration::from_millis(200), channel.wait())
                                    .await
                            {
                                text.push_str(&String::from_utf8_lossy(&data));
                            }
                            let who = text
                                .lines()
                                .skip_while(|l| *l != BUSY)
                                .nth(1)
                                .unwrap_or("another kubestrap run (it did not say who)")
                                .to_string();
                            return Ok(HostLock::Busy(who));
                        }
                        let said = format!("{} {}", text.trim(), errors.trim());
                        let said = self.log.redactor.redact(said.trim());
                        return Err(SshError::Remote(format!(
                            "taking the run lock failed (exit {exit_status}){}{said}",
                            if said.is_empty() { "" } else { ": " }
                        )));
                    }
                    Some(_) => {}
                    None => {
                        return Err(SshError::Lost(
                            "the connection closed while taking the run lock".into(),
                        ))
                    }
                }
            }
        };
        let r = tokio::time::timeout(timeout, answer)
            .await
            .map_err(|_| SshError::Timeout {
                secs: timeout.as_secs(),
                last_line: "(taking the run lock)".into(),
            })??;
        self.log.flush_output();
        self.log.write(&format!("# lock: {r:?}\n"));
        if r == HostLock::Held {
            self.held.lock().unwrap().push(channel);
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two holders on one machine: the second is told who holds it; once the first's stdin
    /// closes (its session ended), the lock is free again.
    #[test]
    fn the_lock_script_holds_until_stdin_closes() {
        use std::io::{BufRead, BufReader, Write};
        use std::process::{Command, Stdio};
        if Command::new("flock").arg("-V").output().is_err() {
            eprintln!("skipped: no flock here");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        // The script, pointed at a private folder instead of /run (same code otherwise).
        let dir = d.path().to_str().unwrap();
        let s = lock_script("lab", "console pid 1 `up` since 'now'; $(touch pwned)")
            .replace("/run/kubestrap", dir);
        let spawn = || {
            Command::new("sh")
                .arg("-c")
                .arg(&s)
                .current_dir(d.path())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let mut first = spawn();
        let mut line = String::new();
        BufReader::new(first.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), LOCKED);
        let second = spawn().wait_with_output().unwrap();
        assert_eq!(second.status.code(), Some(75));
        let out = String::from_utf8_lossy(&second.stdout);
        assert_eq!(
            out,
            format!("{BUSY}\nconsole pid 1 `up` since 'now'; $(touch pwned)\n")
        );
        assert!(!d.path().join("pwned").exists());
        // The first run's session ends: its stdin closes, the lock goes with it.
        first.stdin.take().unwrap().flush().unwrap();
        assert!(first.wait().unwrap().success());
        let mut third = spawn();
        let mut line = String::new();
        BufReader::new(third.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), LOCKED);
        drop(third.stdin.take());
        third.wait().unwrap();
    }
}
