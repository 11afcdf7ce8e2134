//! SSH as users have it, against real OpenSSH servers started by the test on 127.0.0.1 (each its
//! own `sshd -D` with a temporary config and host key, killed by its PID when the test ends):
//! host key policies and messages, hashed known_hosts, ssh_config aliases with ProxyJump, a
//! bastion, ssh-agent, encrypted keys. Needs `/usr/sbin/sshd`, `ssh-keygen`, `ssh-agent` and
//! root (sshd's privilege separation), as CI has.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use kubestrap::redact::Redactor;
use kubestrap::ssh::{self, HostKeyPolicy, HostLog, KeyCache, Session, SshError, Target};

fn keygen(path: &Path, passphrase: &str) {
    let o = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-C", "test", "-N", passphrase, "-f"])
        .arg(path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
}

fn pubkey(path: &Path) -> String {
    let mut p = path.as_os_str().to_owned();
    p.push(".pub");
    std::fs::read_to_string(PathBuf::from(p))
        .unwrap()
        .trim()
        .to_string()
}

/// A free port below the kernel's ephemeral range (so no outgoing connection takes it between
/// this check and sshd's bind), never the same twice in this process (tests run in parallel).
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 20000 + (std::process::id() % 400) as u16 * 25;
    loop {
        let p = base + NEXT.fetch_add(1, Ordering::Relaxed) % 2500;
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

/// One real sshd on 127.0.0.1, stopped (by its PID only) on drop.
struct Sshd {
    child: Child,
    port: u16,
    host_key: PathBuf,
    _dir: tempfile::TempDir,
}

impl Sshd {
    /// Accepts root with the keys in `authorized`; `extra` adds sshd_config lines.
    fn start(authorized: &[&Path], extra: &str) -> Sshd {
        assert!(
            Path::new("/usr/sbin/sshd").exists(),
            "these tests need openssh-server (/usr/sbin/sshd)"
        );
        // sshd insists on its privilege separation directory.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let host_key = dir.path().join("host_ed25519");
        keygen(&host_key, "");
        let auth = dir.path().join("authorized_keys");
        let lines: Vec<String> = authorized.iter().map(|k| pubkey(k)).collect();
        std::fs::write(&auth, lines.join("\n") + "\n").unwrap();
        let port = free_port();
        let cfg = dir.path().join("sshd_config");
        std::fs::write(
            &cfg,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}/sshd.pid\n\
                 AuthorizedKeysFile {}\nStrictModes no\nPermitRootLogin prohibit-password\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
                 LogLevel ERROR\n{extra}\n",
                host_key.display(),
                dir.path().display(),
                auth.display()
            ),
        )
        .unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut s = Sshd {
            child,
            port,
            host_key,
            _dir: dir,
        };
        for _ in 0..100 {
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!("sshd on port {port} exited at start ({status})");
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return s;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("sshd on port {port} did not start");
    }

    /// `[127.0.0.1]:PORT ssh-ed25519 AAAA...` as OpenSSH records it.
    fn known_line(&self) -> String {
        let k = pubkey(&self.host_key);
        let mut f = k.split_whitespace();
        format!(
            "[127.0.0.1]:{} {} {}",
            self.port,
            f.next().unwrap(),
            f.next().unwrap()
        )
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One ssh-agent holding `keys`, stopped by its PID on drop.
struct Agent {
    child: Child,
    sock: PathBuf,
    _dir: tempfile::TempDir,
}

impl Agent {
    fn start(keys: &[(&Path, &str)]) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..100 {
            if sock.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for (k, pass) in keys {
            // ssh-add reads a passphrase through SSH_ASKPASS when there is no terminal.
            let askpass = dir.path().join("askpass");
            std::fs::write(&askpass, format!("#!/bin/sh\necho '{pass}'\n")).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o700)).unwrap();
            let o = Command::new("ssh-add")
                .arg(k)
                .env("SSH_AUTH_SOCK", &sock)
                .env("SSH_ASKPASS", &askpass)
                .env("SSH_ASKPASS_REQUIRE", "force")
                .env("DISPLAY", "none")
                .stdin(Stdio::null())
                .output()
                .unwrap();
            assert!(o.status.success(), "ssh-add: {o:?}");
        }
        Agent {
            child,
            sock,
            _dir: dir,
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn target(port: u16, known_hosts: &Path, policy: HostKeyPolicy, key: Option<&Path>) -> Target {
    Target {
        host_name: "t".into(),
        address: "127.0.0.1".into(),
        port,
        user: "root".into(),
        identity_file: key.map(Path::to_path_buf),
        more_identity_files: vec![],
        known_hosts_file: known_hosts.to_path_buf(),
        extra_known_hosts: vec![],
        policy,
        connect_timeout: Duration::from_secs(10),
        sudo_password: None,
        password_env: None,
        password: None,
        passphrase_env: None,
        jumps: vec![],
    }
}

/// Connect, run `echo ok` and close; the session's key note and log text come back.
fn connect(t: Target, keys: &KeyCache) -> Result<(Option<String>, String), SshError> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let logdir = tempfile::tempdir().unwrap();
    let logfile = logdir.path().join("t.log");
    let log = Arc::new(HostLog::open(Some(&logfile), Redactor::new()));
    let r = rt.block_on(async {
        let s = Session::connect(t, keys, ssh::client_config(), log).await?;
        let out = s
            .exec_user("echo ok", None, Duration::from_secs(10))
            .await?;
        assert_eq!(out.stdout.trim(), "ok", "{out:?}");
        s.close().await;
        Ok(s.key_note.clone())
    });
    r.map(|note| (note, std::fs::read_to_string(&logfile).unwrap_or_default()))
}

fn no_agent() -> KeyCache {
    KeyCache::new(None, false)
}

struct Fixture {
    dir: tempfile::TempDir,
    key: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id_ed25519");
    keygen(&key, "");
    Fixture { dir, key }
}

#[test]
fn strict_refuses_an_unknown_key_with_its_fingerprint_and_how_to_accept_it() {
    let f = fixture();
    let sshd = Sshd::start(&[&f.key], "");
    let kh = f.dir.path().join("known_hosts");
    let e = connect(
        target(sshd.port, &kh, HostKeyPolicy::Strict, Some(&f.key)),
        &no_agent(),
    )
    .unwrap_err()
    .to_string();
    let fp = String::from_utf8(
        Command::new("ssh-keygen")
            .arg("-lf")
            .arg(sshd.host_key.with_extension("pub"))
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let fp = fp.split_whitespace().nth(1).unwrap().to_string();
    assert!(fp.starts_with("SHA256:"));
    assert!(e.contains(&fp), "fingerprint {fp} missing: {e}");
    assert!(e.contains(&format!("[127.0.0.1]:{}", sshd.port)), "{e}");
    assert!(e.contains("accept-new") && e.contains("ssh-keyscan"), "{e}");
    assert!(!kh.exists(), "strict must not record anything");
}

#[test]
fn accept_new_records_the_key_says_so_and_then_strict_accepts_it() {
    let f = fixture();
    let sshd = Sshd::start(&[&f.key], "");
    let kh = f.dir.path().join("nested/known_hosts");
    let (note, _) = connect(
        target(sshd.port, &kh, HostKeyPolicy::AcceptNew, Some(&f.key)),
        &no_agent(),
    )
    .unwrap();
    let note = note.expect("accept-new must say it recorded the key");
    assert!(
        note.contains("recorded new host key SHA256:")
            && note.contains(&format!("{}:1", kh.display())),
        "{note}"
    );
    let text = std::fs::read_to_string(&kh).unwrap();
    assert_eq!(text.trim(), sshd.known_line());
    // OpenSSH agrees with what was written.
    let o = Command::new("ssh-keygen")
        .args(["-F", &format!("[127.0.0.1]:{}", sshd.port), "-f"])
        .arg(&kh)
        .output()
        .unwrap();
    assert!(o.status.success());
    let (note, _) = connect(
        target(sshd.port, &kh, HostKeyPolicy::Strict, Some(&f.key)),
        &no_agent(),
    )
    .unwrap();
    assert_eq!(note, None, "a known key needs no note");
}

#[test]
fn a_changed_key_is_refused_naming_the_file_and_line_even_with_accept_new() {
    let f = fixture();
    let sshd = Sshd::start(&[&f.key], "");
    let other = f.dir.path().join("other");
    keygen(&other, "");
    let kh = f.dir.path().join("known_hosts");
    let old = pubkey(&other);
    let old = old.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    std::fs::write(
        &kh,
        format!("10.1.1.1 {old}\n[127.0.0.1]:{} {old}\n", sshd.port),
    )
    .unwrap();
    for policy in [HostKeyPolicy::Strict, HostKeyPolicy::AcceptNew] {
        let e = connect(target(sshd.port, &kh, policy, Some(&f.key)), &no_agent())
            .unwrap_err()
            .to_string();
        assert!(e.contains("HAS CHANGED") && e.contains("SHA256:"), "{e}");
        assert!(
            e.contains(&format!("{}:2", kh.display())) && e.contains("remove line 2"),
            "{e}"
        );
        assert!(e.contains("ssh-keygen -R"), "{e}");
    }
    assert_eq!(std::fs::read_to_string(&kh).unwrap().lines().count(), 2);
}

/// The real `ssh` client with only the given known_hosts file; stderr comes back.
fn real_ssh(port: u16, known_hosts: &Path, key: &Path, policy: &str) -> (bool, String) {
    let o = Command::new("ssh")
        .args(["-F", "/dev/null", "-o", "BatchMode=yes", "-o"])
        .arg(format!("StrictHostKeyChecking={policy}"))
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args(["-o", "GlobalKnownHostsFile=/dev/null", "-i"])
        .arg(key)
        .args(["-p", &port.to_string(), "root@127.0.0.1", "true"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn accept_new_refuses_a_host_known_by_a_key_of_another_type_as_ssh_does() {
    let f = fixture();
    let sshd = Sshd::start(&[&f.key], "");
    let other = f.dir.path().join("other_ecdsa");
    let o = Command::new("ssh-keygen")
        .args(["-q", "-t", "ecdsa", "-N", "", "-f"])
        .arg(&other)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let old = pubkey(&other);
    let old = old.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    let kh = f.dir.path().join("known_hosts");
    let text = format!("10.1.1.1 {old}\n[127.0.0.1]:{} {old}\n", sshd.port);
    std::fs::write(&kh, &text).unwrap();
    // The oracle: OpenSSH refuses this with accept-new (and with yes) as a changed key.
    let (ok, err) = real_ssh(sshd.port, &kh, &f.key, "accept-new");
    assert!(!ok, "ssh connected: {err}");
    assert!(
        err.contains("REMOTE HOST IDENTIFICATION HAS CHANGED"),
        "{err}"
    );
    assert!(
        err.contains(&format!("Offending ECDSA key in {}:2", kh.display())),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&kh).unwrap(),
        text,
        "ssh recorded nothing"
    );
    for policy in [HostKeyPolicy::AcceptNew, HostKeyPolicy::Strict] {
        let e = connect(target(sshd.port, &kh, policy, Some(&f.key)), &no_agent())
            .unwrap_err()
            .to_string();
        assert!(e.contains("REMOTE HOST IDENTIFICATION HAS CHANGED"), "{e}");
        assert!(
            e.contains("ED25519") && e.contains("ECDSA") && e.contains("SHA256:"),
            "{e}"
        );
        assert!(
            e.contains(&format!("{}:2", kh.display())) && e.contains("ssh-keygen -R"),
            "{e}"
        );
        assert_eq!(
            std::fs::read_to_string(&kh).unwrap(),
            text,
            "{policy:?} must record nothing"
        );
    }
}

/// The command between backticks that starts with `start` in a message.
fn hint<'a>(message: &'a str, start: &str) -> &'a str {
    let at = message
        .find(&format!("`{start}"))
        .unwrap_or_else(|| panic!("no `{start}` hint in: {message}"));
    let rest = &message[at + 1..];
    &rest[..rest.find('`').unwrap()]
}

fn sh(cmd: &str) -> std::process::Output {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn printed_hints_are_shell_quoted_and_work_when_pasted() {
    let f = fixture();
    let sshd = Sshd::start(&[&f.key], "");
    let dir = f.dir.path().join("it's a dir");
    std::fs::create_dir_all(&dir).unwrap();
    let kh = dir.join("known hosts");
    // Unknown key: the ssh-keyscan hint (run against this loopback sshd) records it.
    let e = connect(
        target(sshd.port, &kh, HostKeyPolicy::Strict, Some(&f.key)),
        &no_agent(),
    )
    .unwrap_err()
    .to_string();
    let scan = hint(&e, "ssh-keyscan ");
    let o = sh(scan);
    assert!(o.status.success(), "{scan}: {o:?}");
    let (note, _) = connect(
        target(sshd.port, &kh, HostKeyPolicy::Strict, Some(&f.key)),
        &no_agent(),
    )
    .unwrap_or_else(|e| panic!("after `{scan}`: {e}"));
    assert_eq!(note, None);
    // Changed key: the ssh-keygen -R hint removes the old line.
    let other = f.dir.path().join("other");
    keygen(&other, "");
    let old = pubkey(&other);
    let old = old.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    std::fs::write(&kh, format!("# kept\n[127.0.0.1]:{} {old}\n", sshd.port)).unwrap();
    let e = connect(
        target(sshd.port, &kh, HostKeyPolicy::Strict, Some(&f.key)),
        &no_agent(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("HAS CHANGED"), "{e}");
    let remove = hint(&e, "ssh-keygen -R ");
    let o = sh(remove);
    assert!(o.status.success(), "{remove}: {o:?}");
    assert_eq!(
        std::fs::read_to_string(&kh).unwrap(),
        "# kept\n",
        "{remove}"
    );
}

#[test]
fn hashed_entries_in_the_users_known_hosts_are_honoured() {
    let f = fixture();
    let sshd = Sshd::start(&[&f.key], "");
    let user_kh = f.dir.path().join("user_known_hosts");
    std::fs::write(&user_kh, format!("{}\n", sshd.known_line())).unwrap();
    let o = Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&user_kh)
        .output()
        .unwrap();
    assert!(o.status.success());
    let text = std::fs::read_to_string(&user_kh).unwrap();
    assert!(
        text.starts_with("|1|") && !text.contains("127.0.0.1"),
        "{text}"
    );
    // The inventory's file does not exist; the user's hashed one knows the host.
    let mut t = target(
        sshd.port,
        &f.dir.path().join("inventory_known_hosts"),
        HostKeyPolicy::Strict,
        Some(&f.key),
    );
    t.extra_known_hosts = vec![user_kh];
    let (note, _) = connect(t, &no_agent()).unwrap();
    assert_eq!(note, None);
}

#[test]
fn policy_off_connects_and_warns() {
    let f = fixture();
    let sshd = Sshd::start(&[&f.key], "");
    let kh = f.dir.path().join("known_hosts");
    let (note, _) = connect(
        target(sshd.port, &kh, HostKeyPolicy::Off, Some(&f.key)),
        &no_agent(),
    )
    .unwrap();
    let note = note.unwrap();
    assert!(
        note.contains("NOT checked") && note.contains("SHA256:"),
        "{note}"
    );
    assert!(!kh.exists());
}

/// Image bundles are streamed from the file (never read whole into memory) and the step's time
/// limit covers the transfer: a remote command that stops reading cannot hang the upload.
#[test]
fn a_file_is_streamed_intact_and_a_stalled_transfer_times_out() {
    use sha2::{Digest, Sha256};
    let f = fixture();
    let sshd = Sshd::start(&[&f.key], "");
    let kh = f.dir.path().join("known_hosts");
    // 48 MiB that no compression or dedup could fake: a counter run through sha256.
    let big = f.dir.path().join("bundle.tar");
    let mut data = Vec::with_capacity(48 << 20);
    let mut i = 0u64;
    while data.len() < 48 << 20 {
        data.extend_from_slice(&Sha256::digest(i.to_le_bytes()));
        i += 1;
    }
    std::fs::write(&big, &data).unwrap();
    let want = hex::encode(Sha256::digest(&data));
    drop(data);
    let t = target(sshd.port, &kh, HostKeyPolicy::Off, Some(&f.key));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let log = Arc::new(HostLog::open(None, Redactor::new()));
    rt.block_on(async {
        let s = Session::connect(t, &no_agent(), ssh::client_config(), log)
            .await
            .unwrap();
        let dest = f.dir.path().join("copy.tar");
        let file = tokio::fs::File::open(&big).await.unwrap();
        let out = s
            .root_with_file(
                &format!("cat > {}; sha256sum < {}", dest.display(), dest.display()),
                file,
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        assert!(out.ok(), "{out:?}");
        assert_eq!(out.stdout.split_whitespace().next(), Some(want.as_str()));

        // The remote side never reads: sshd's window, the pipe and the socket buffers fill up
        // (a few MB) and the rest of the 48 MiB cannot be sent.
        let file = tokio::fs::File::open(&big).await.unwrap();
        let started = std::time::Instant::now();
        // (the outer limit turns a regression into a failure instead of a hung test run)
        let r = tokio::time::timeout(
            Duration::from_secs(30),
            s.root_with_file("sleep 15", file, Duration::from_secs(3)),
        )
        .await
        .expect("the upload hung past its own 3 s limit");
        let took = started.elapsed();
        assert!(
            matches!(r, Err(SshError::Timeout { secs: 3, .. })),
            "expected a timeout, got {r:?}"
        );
        assert!(took < Duration::from_secs(10), "took {took:?}");
        s.close().await;
    });
}

fn inventory_host(dir: &Path, address: &str, ssh: &str) -> kubestrap::inventory::Host {
    let file = dir.join("inventory.yaml");
    let text = format!(
        "cluster: {{ name: t, kubernetesVersion: \"1.31.2\" }}\n{ssh}hosts:\n  - {{ name: cp1, address: {address}, internalAddress: 10.9.9.9, role: control-plane }}\n"
    );
    std::fs::write(&file, &text).unwrap();
    let inv = kubestrap::inventory::load(&file).unwrap_or_else(|e| panic!("{e}\n{text}"));
    inv.hosts[0].clone()
}

#[test]
fn an_ssh_config_alias_with_proxyjump_goes_through_the_bastion() {
    let f = fixture();
    let bastion = Sshd::start(&[&f.key], "AllowTcpForwarding yes");
    let target_sshd = Sshd::start(&[&f.key], "");
    let home = f.dir.path().join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(
        home.join(".ssh/known_hosts"),
        format!("{}\n{}\n", bastion.known_line(), target_sshd.known_line()),
    )
    .unwrap();
    let cfg = home.join(".ssh/config");
    std::fs::write(
        &cfg,
        format!(
            "Host kb-*\n  User nobody\n  IdentityFile {}\n\
             Host kb-target\n  HostName 127.0.0.1\n  Port {}\n  ProxyJump root@kb-bastion\n\
             Host kb-bastion\n  HostName 127.0.0.1\n  Port {}\n",
            f.key.display(),
            target_sshd.port,
            bastion.port
        ),
    )
    .unwrap();
    // ssh.user written in the inventory wins over the alias's `User nobody`.
    let kh = home.join(".ssh/known_hosts");
    let host = inventory_host(
        f.dir.path(),
        "kb-target",
        &format!("ssh: {{ user: root, knownHostsFile: {} }}\n", kh.display()),
    );
    let t =
        Target::from_host_with(&host, Duration::from_secs(10), Some(&cfg), Some(&home)).unwrap();
    assert_eq!(
        (t.address.as_str(), t.port, t.user.as_str()),
        ("127.0.0.1", target_sshd.port, "root")
    );
    assert_eq!(t.identity_file.as_deref(), Some(f.key.as_path()));
    assert_eq!(t.jumps.len(), 1);
    assert_eq!(t.jumps[0].port, bastion.port);
    assert_eq!(t.jumps[0].user, "root");
    let (note, log) = connect(t.clone(), &no_agent()).unwrap();
    assert_eq!(note, None);
    assert!(log.contains("(jump host)"), "{log}");

    // Proof the traffic goes through the bastion: kill it and the target is unreachable that way.
    drop(bastion);
    let e = connect(t, &no_agent()).unwrap_err().to_string();
    assert!(e.contains("jump host root@kb-bastion"), "{e}");
}

#[test]
fn an_ssh_config_proxycommand_is_refused_before_connecting_naming_alias_and_line() {
    let f = fixture();
    let home = f.dir.path().join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    let cfg = home.join(".ssh/config");
    let pc = "Host kb-pc\n  HostName 127.0.0.1\n  ProxyCommand nc %h %p\n\
              Host kb-t\n  HostName 127.0.0.1\n  ProxyJump kb-j\n\
              Host kb-j\n  ProxyCommand ssh -W %h:%p elsewhere\n";
    for (text, alias, line, what) in [
        (pc, "kb-pc", 3, "\"kb-pc\" gets ProxyCommand"),
        (pc, "kb-t", 8, "\"kb-j\" gets ProxyCommand"),
        ("Host kb-port\n  Port 99999\n", "kb-ok", 2, "Port \"99999\""),
    ] {
        std::fs::write(&cfg, text).unwrap();
        let host = inventory_host(f.dir.path(), alias, "");
        let e = Target::from_host_with(&host, Duration::from_secs(10), Some(&cfg), Some(&home))
            .unwrap_err();
        assert!(
            e.starts_with(&format!("hosts cp1: {}:{line}: ", cfg.display())) && e.contains(what),
            "{alias}: {e}"
        );
    }
    std::fs::write(&cfg, pc).unwrap();
    let host = inventory_host(f.dir.path(), "kb-other", "");
    Target::from_host_with(&host, Duration::from_secs(10), Some(&cfg), Some(&home)).unwrap();
}

#[test]
fn an_explicit_bastion_is_used_and_its_host_key_checked_too() {
    let f = fixture();
    let bastion = Sshd::start(&[&f.key], "AllowTcpForwarding yes");
    let target_sshd = Sshd::start(&[&f.key], "");
    let kh = f.dir.path().join("known_hosts");
    std::fs::write(&kh, format!("{}\n", target_sshd.known_line())).unwrap();
    let host = inventory_host(
        f.dir.path(),
        "127.0.0.1",
        &format!(
            "ssh: {{ user: root, port: {}, identityFile: {}, knownHostsFile: {}, bastion: \"root@127.0.0.1:{}\" }}\n",
            target_sshd.port,
            f.key.display(),
            kh.display(),
            bastion.port
        ),
    );
    let t = Target::from_host_with(&host, Duration::from_secs(10), None, None).unwrap();
    // The bastion's key is not known: refused, and the message says it is the jump host's.
    let e = connect(t.clone(), &no_agent()).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("jump host root@127.0.0.1:{}", bastion.port))
            && e.contains("is not known: SHA256:"),
        "{e}"
    );
    std::fs::write(
        &kh,
        format!("{}\n{}\n", target_sshd.known_line(), bastion.known_line()),
    )
    .unwrap();
    connect(t.clone(), &no_agent()).unwrap();

    // A bastion that does not forward: the message says what to check.
    let closed = Sshd::start(&[&f.key], "AllowTcpForwarding no");
    std::fs::write(
        &kh,
        format!("{}\n{}\n", target_sshd.known_line(), closed.known_line()),
    )
    .unwrap();
    let mut t2 = t.clone();
    t2.jumps[0].port = closed.port;
    let e = connect(t2, &no_agent()).unwrap_err().to_string();
    assert!(e.contains("AllowTcpForwarding"), "{e}");
}

#[test]
fn ssh_agent_keys_are_used_when_no_key_file_is_given() {
    let f = fixture();
    let sshd = Sshd::start(&[&f.key], "");
    let kh = f.dir.path().join("known_hosts");
    std::fs::write(&kh, format!("{}\n", sshd.known_line())).unwrap();
    let agent = Agent::start(&[(&f.key, "")]);
    // No identity file: only the agent (and any ~/.ssh/id_* of the user running the test, which
    // the server does not accept) can log in.
    let (_, log) = connect(
        target(sshd.port, &kh, HostKeyPolicy::Strict, None),
        &KeyCache::new(Some(agent.sock.clone()), false),
    )
    .unwrap();
    assert!(
        log.contains("authenticated as root with an ssh-agent key (SHA256:"),
        "{log}"
    );

    // Without the agent the same login fails, naming what was tried.
    let e = connect(
        target(
            sshd.port,
            &kh,
            HostKeyPolicy::Strict,
            Some(&f.dir.path().join("nope")),
        ),
        &no_agent(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("authentication as root failed"), "{e}");
}

#[test]
fn an_encrypted_key_is_decrypted_with_passphrase_env_or_used_through_the_agent() {
    let f = fixture();
    let enc = f.dir.path().join("id_enc");
    keygen(&enc, "correct horse");
    let sshd = Sshd::start(&[&enc], "");
    let kh = f.dir.path().join("known_hosts");
    std::fs::write(&kh, format!("{}\n", sshd.known_line())).unwrap();
    let t = |env: Option<&str>| {
        let mut t = target(sshd.port, &kh, HostKeyPolicy::Strict, Some(&enc));
        t.passphrase_env = env.map(str::to_string);
        t
    };

    // No terminal, no passphraseEnv: the message names the key file and the field to set.
    let e = connect(t(None), &no_agent()).unwrap_err().to_string();
    assert!(
        e.contains(&enc.display().to_string()) && e.contains("ssh.passphraseEnv"),
        "{e}"
    );

    // Wrong passphrase: said so, without the passphrase.
    std::env::set_var("KUBESTRAP_TEST_SSH_WRONG_PASS", "battery staple");
    let e = connect(t(Some("KUBESTRAP_TEST_SSH_WRONG_PASS")), &no_agent())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("$KUBESTRAP_TEST_SSH_WRONG_PASS (ssh.passphraseEnv) does not decrypt")
            && !e.contains("battery"),
        "{e}"
    );

    // Right passphrase: decrypted once, then shared by every connection of the run.
    std::env::set_var("KUBESTRAP_TEST_SSH_PASS", "correct horse");
    let keys = no_agent();
    let (_, log) = connect(t(Some("KUBESTRAP_TEST_SSH_PASS")), &keys).unwrap();
    assert!(
        log.contains(&format!("with key {}", enc.display())),
        "{log}"
    );
    std::env::remove_var("KUBESTRAP_TEST_SSH_PASS");
    connect(t(Some("KUBESTRAP_TEST_SSH_PASS")), &keys).expect("the cached key needs no passphrase");

    // In ssh-agent: no passphrase needed at all.
    let agent = Agent::start(&[(&enc, "correct horse")]);
    let (_, log) = connect(t(None), &KeyCache::new(Some(agent.sock.clone()), false)).unwrap();
    assert!(
        log.contains(&format!("with key {}", enc.display())),
        "{log}"
    );
}

#[test]
fn missing_secret_variables_are_named_before_connecting() {
    let d = tempfile::tempdir().unwrap();
    let host = inventory_host(
        d.path(),
        "127.0.0.1",
        "ssh: { user: ops, port: 2222, passwordEnv: KUBESTRAP_TEST_SSH_UNSET_PW }\n",
    );
    let e = Target::from_host_with(&host, Duration::from_secs(5), None, None).unwrap_err();
    assert!(
        e.contains("ssh.passwordEnv names $KUBESTRAP_TEST_SSH_UNSET_PW, which is not set"),
        "{e}"
    );
    // Without ssh_config the inventory's values are used as written.
    std::env::set_var("KUBESTRAP_TEST_SSH_SET_PW", "pw-value-123");
    let host = inventory_host(
        d.path(),
        "127.0.0.1",
        "ssh: { user: ops, port: 2222, passwordEnv: KUBESTRAP_TEST_SSH_SET_PW }\n",
    );
    let t = Target::from_host_with(&host, Duration::from_secs(5), None, None).unwrap();
    assert_eq!((t.user.as_str(), t.port), ("ops", 2222));
    assert_eq!(t.secrets(), vec!["pw-value-123".to_string()]);
}

// ---------------------------------------------------------------------------------------------
// On the namespaced lab (scripts/lab; root, network namespaces): password login and sudo that
// wants a password, as real hosts have them. `#[ignore]`d in a plain `cargo test`; scripts/test
// runs them with `--ignored`. KUBESTRAP_LAB_INSTANCE picks the lab instance.

struct Lab {
    script: PathBuf,
    dir: tempfile::TempDir,
}

impl Lab {
    fn up(n: usize) -> Lab {
        let script = std::env::var_os("KUBESTRAP_LAB_SCRIPT")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/lab"));
        let lab = Lab {
            script,
            dir: tempfile::tempdir().unwrap(),
        };
        lab.run(&["up", &n.to_string()]);
        lab
    }

    fn run(&self, args: &[&str]) -> String {
        let o = Command::new(&self.script).args(args).output().unwrap();
        assert!(o.status.success(), "lab {args:?}: {o:?}");
        String::from_utf8(o.stdout).unwrap()
    }

    /// The lab's inventory with `extra` lines added to its top-level `ssh:` block.
    fn inventory(&self, workers: usize, extra: &str) -> PathBuf {
        let text = self.run(&["inventory", "--workers", &workers.to_string()]);
        let text = text.replacen("ssh:\n", &format!("ssh:\n{extra}"), 1);
        let p = self.dir.path().join("inventory.yaml");
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new(&self.script).arg("down").output();
    }
}

fn kubestrap(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_kubestrap"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        o.status.success(),
        format!(
            "{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[test]
#[ignore = "needs the namespaced lab (root); scripts/test runs it"]
fn lab_sudo_password_and_password_login() {
    let lab = Lab::up(2);
    for k in ["1", "2"] {
        lab.run(&["fault", k, "sudo-password", "on"]);
    }
    // 1. Both hosts want a sudo password and none is configured: `check` reports both, with the fix.
    let inv = lab.inventory(1, "");
    let (ok, out) = kubestrap(&["check", "-i", inv.to_str().unwrap()], &[]);
    assert!(!ok, "{out}");
    for host in ["cp1", "w1"] {
        assert!(
            out.lines().any(|l| l.contains(host) && l.contains("sudo")),
            "{host} not reported: {out}"
        );
    }
    assert!(out.contains("sudoPasswordEnv"), "{out}");

    // 2. With the password in the named variable, every check passes and it is nowhere in output or logs.
    let inv = lab.inventory(1, "  sudoPasswordEnv: KS_LAB_SUDO_PW\n");
    let (ok, out) = kubestrap(
        &["check", "-i", inv.to_str().unwrap()],
        &[("KS_LAB_SUDO_PW", "labpass")],
    );
    assert!(ok, "{out}");
    assert!(!out.contains("labpass"), "{out}");
    let logs = Command::new("grep")
        .args(["-rl", "labpass"])
        .arg(lab.dir.path().join(".kubestrap"))
        .output()
        .unwrap();
    assert!(logs.stdout.is_empty(), "password in logs: {logs:?}");

    // 3. A wrong sudo password is refused at connect time, saying which field to fix.
    let (ok, out) = kubestrap(
        &["check", "-i", inv.to_str().unwrap()],
        &[("KS_LAB_SUDO_PW", "not-the-password")],
    );
    assert!(!ok && out.contains("sudo refused the password"), "{out}");
    assert!(!out.contains("not-the-password"), "{out}");

    // 4. Library level on host 1: password login (the key offered is not authorized), then sudo
    //    with the password fed on stdin, twice (no cached credential may swallow it).
    lab.run(&[
        "exec",
        "1",
        "sh",
        "-c",
        "sed -i 's/^PasswordAuthentication no/PasswordAuthentication yes/' /etc/ssh/sshd_config.d/kubestrap-lab.conf && kill -HUP $(cat /run/sshd.pid)",
    ]);
    std::thread::sleep(Duration::from_millis(500));
    let host = kubestrap::inventory::load(&inv).unwrap().hosts[0].clone();
    std::env::set_var("KS_LAB_SUDO_PW", "labpass");
    let mut t = Target::from_host_with(&host, Duration::from_secs(15), None, None).unwrap();
    let stranger = lab.dir.path().join("stranger");
    keygen(&stranger, "");
    t.identity_file = Some(stranger);
    t.password = Some("labpass".into());
    t.password_env = Some("KS_LAB_LOGIN_PW".into());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let logfile = lab.dir.path().join("lib.log");
    let redactor = Redactor::new();
    redactor.add("labpass");
    let log = Arc::new(HostLog::open(Some(&logfile), redactor));
    rt.block_on(async {
        let s = Session::connect(t.clone(), &no_agent(), ssh::client_config(), log.clone())
            .await
            .unwrap();
        assert_eq!(s.privilege(), "sudo with password");
        let limit = Duration::from_secs(20);
        for _ in 0..2 {
            let o = s
                .script(
                    "whoami",
                    "id -u\ncat /etc/hostname >/dev/null\necho done\n",
                    limit,
                )
                .await
                .unwrap();
            assert_eq!(o.stdout, "0\ndone\n", "{o:?}");
        }
        let o = s
            .root_with_stdin("id -u; cat", b"line one\nline two\n", limit)
            .await
            .unwrap();
        assert_eq!(o.stdout, "0\nline one\nline two\n", "{o:?}");
        assert!(s
            .put_file("/root/kubestrap-test", b"content\n", 0o600, limit)
            .await
            .unwrap());
        assert!(!s
            .put_file("/root/kubestrap-test", b"content\n", 0o600, limit)
            .await
            .unwrap());
        s.close().await;

        // A wrong sudo password: refused at connect, without echoing it.
        let mut bad = t.clone();
        bad.sudo_password = Some("wrong-sudo-pw".into());
        match Session::connect(bad, &no_agent(), ssh::client_config(), log.clone()).await {
            Err(SshError::Sudo(m)) => assert!(
                m.contains("sudoPasswordEnv") && !m.contains("wrong-sudo-pw"),
                "{m}"
            ),
            Err(e) => panic!("expected a sudo error, got {e}"),
            Ok(_) => panic!("expected a sudo error"),
        }
        // A wrong login password: the message names the variable.
        let mut bad = t.clone();
        bad.password = Some("wrong-login-pw".into());
        let e = Session::connect(bad, &no_agent(), ssh::client_config(), log.clone()).await;
        let e = e.err().expect("wrong password must fail").to_string();
        assert!(
            e.contains("refused the password from $KS_LAB_LOGIN_PW"),
            "{e}"
        );
    });
    let text = std::fs::read_to_string(&logfile).unwrap();
    assert!(
        text.contains("with the password from $KS_LAB_LOGIN_PW"),
        "{text}"
    );
    assert!(!text.contains("labpass"), "{text}");
}

#[test]
#[ignore = "needs the namespaced lab (root); scripts/test runs it"]
fn lab_encrypted_key_passphrase_is_asked_once_on_a_terminal_for_all_hosts() {
    let lab = Lab::up(2);
    let key = lab.dir.path().join("enc");
    keygen(&key, "tty phrase");
    for k in ["1", "2"] {
        let o = Command::new(&lab.script)
            .args([
                "exec",
                k,
                "sh",
                "-c",
                "cat >> /home/ops/.ssh/authorized_keys",
            ])
            .stdin(std::fs::File::open(key.with_extension("pub")).unwrap())
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
    }
    let inv = lab.inventory(1, "");
    let text = std::fs::read_to_string(&inv).unwrap();
    let text: String = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("identityFile:") {
                format!("  identityFile: {}\n", key.display())
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&inv, text).unwrap();
    // script(1) gives kubestrap a terminal; the passphrase is typed once, after the prompt.
    let cmd = format!(
        "{} exec -i {} -- id -un",
        env!("CARGO_BIN_EXE_kubestrap"),
        inv.display()
    );
    let mut child = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    use std::io::Write;
    stdin.write_all(b"tty phrase\n").unwrap();
    let o = child.wait_with_output().unwrap();
    drop(stdin);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{out}");
    assert_eq!(out.matches("Enter passphrase for key").count(), 1, "{out}");
    // The spinners are paused while the prompt waits (3 s here; they tick every 120 ms): nothing
    // is drawn after the prompt until the typed line's newline.
    let after = out.split("Enter passphrase for key").nth(1).unwrap();
    let waiting = after[after.find("': ").unwrap() + 3..]
        .split('\n')
        .next()
        .unwrap();
    assert!(
        !waiting.contains('\u{1b}')
            && !waiting.contains(['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏']),
        "the progress display drew over the passphrase prompt: {waiting:?}"
    );
    assert!(out.contains("cp1: ops") && out.contains("w1: ops"), "{out}");
    assert!(
        !out.contains("tty phrase"),
        "the passphrase was echoed: {out}"
    );
}
