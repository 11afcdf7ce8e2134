//! Running commands on a session: as the login user or as root (through sudo, the password
//! first on standard input with `sudo -S`), with standard input from memory or a file, a time
//! limit, and everything logged to the host's log.

use std::time::{Duration, Instant};

use russh::ChannelMsg;

use super::{shell_quote, Output, Session, SshError};

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
    pub(super) fn as_root(&self, cmd: &str) -> String {
        format!("{}sh -c {}", self.sudo, shell_quote(cmd))
    }

    /// With `sudo -S`, the password is the first line of standard input; sudo reads just that
    /// line and the command gets the rest.
    pub(super) fn with_password(&self, data: &[u8]) -> Vec<u8> {
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

    pub(super) async fn run(
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
}
