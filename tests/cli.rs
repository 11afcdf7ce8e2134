//! The binary's command-line contract without any host: usage errors, bad inventories, exit codes.

use std::process::Command;

fn kubestrap(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kubestrap"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn bad_inventory_exits_2_naming_file_line_and_field() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("inv.yaml");
    std::fs::write(
        &p,
        "cluster:\n  name: lab\n  kubernetesVersion: \"1.31.2\"\nhosts:\n  - name: cp1\n    address: 10.77.0.11\n    role: wroker\n",
    )
    .unwrap();
    let o = kubestrap(&["up", "-i", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("inv.yaml:7:"), "{e}");
    assert!(e.contains("hosts[0].role"), "{e}");
    assert!(e.contains("control-plane"), "{e}");
    // Nothing was created beside a bad inventory.
    assert!(!d.path().join(".kubestrap").exists());
}

#[test]
fn missing_inventory_file_exits_2() {
    let o = kubestrap(&["check", "-i", "/nonexistent/inventory.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/inventory.yaml"));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(kubestrap(&["up"]).status.code(), Some(2));
    assert_eq!(kubestrap(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(kubestrap(&["exec", "-i", "x.yaml"]).status.code(), Some(2));
}

#[test]
fn help_names_every_command() {
    let o = kubestrap(&["--help"]);
    assert!(o.status.success());
    let h = String::from_utf8_lossy(&o.stdout);
    for c in ["up", "check", "plan", "kubeconfig", "exec", "reset"] {
        assert!(h.contains(c), "{h}");
    }
}

fn one_host_inventory(d: &std::path::Path) -> std::path::PathBuf {
    let p = d.join("inv.yaml");
    std::fs::write(
        &p,
        "cluster:\n  name: lab\n  kubernetesVersion: \"1.31.2\"\nhosts:\n  - name: cp1\n    address: 192.0.2.10\n    role: control-plane\n",
    )
    .unwrap();
    p
}

#[test]
fn reset_without_a_terminal_and_without_yes_refuses_with_exit_2() {
    let d = tempfile::tempdir().unwrap();
    let p = one_host_inventory(d.path());
    let o = Command::new(env!("CARGO_BIN_EXE_kubestrap"))
        .args(["reset", "-i", p.to_str().unwrap()])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("standard input is not a terminal") && e.contains("--yes"),
        "{e}"
    );
    assert!(e.contains("cp1"), "names what would be reset: {e}");
    assert!(!d.path().join(".kubestrap").exists(), "nothing was done");
}

#[test]
fn reset_of_an_unknown_host_exits_2_listing_the_hosts() {
    let d = tempfile::tempdir().unwrap();
    let p = one_host_inventory(d.path());
    let o = kubestrap(&["reset", "-i", p.to_str().unwrap(), "--host", "w9", "--yes"]);
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("w9") && e.contains("hosts: cp1"), "{e}");
}

fn lab_inventory(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("inv.yaml");
    // Loopback port 1: nothing listens there, so nothing leaves this machine.
    std::fs::write(
        &p,
        "cluster:\n  name: lab\n  kubernetesVersion: \"1.31.2\"\nssh:\n  port: 1\nhosts:\n  - name: cp1\n    address: 127.0.0.1\n    internalAddress: 10.77.0.11\n    role: control-plane\n",
    )
    .unwrap();
    p
}

/// A committed `.kubestrap` symlink must not make kubestrap write keys and logs where it points.
#[test]
fn a_symlinked_state_folder_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let inv = lab_inventory(d.path());
    let elsewhere = d.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, d.path().join(".kubestrap")).unwrap();
    let o = kubestrap(&["check", "-i", inv.to_str().unwrap()]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("it is a symlink"), "{e}");
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}

/// A committed `.kubestrap/lab/kubeconfig` symlink must not make `kubestrap kubeconfig` print
/// the file it points to (a user's cloud credentials, say).
#[test]
fn kubeconfig_is_never_read_through_a_symlink() {
    let d = tempfile::tempdir().unwrap();
    let inv = lab_inventory(d.path());
    let secret = d.path().join("credentials");
    std::fs::write(&secret, "aws_secret_access_key = hunter2\n").unwrap();
    let sd = d.path().join(".kubestrap/lab");
    std::fs::create_dir_all(&sd).unwrap();
    std::os::unix::fs::symlink(&secret, sd.join("kubeconfig")).unwrap();
    let o = kubestrap(&["kubeconfig", "-i", inv.to_str().unwrap()]);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(
        !out.contains("hunter2") && !err.contains("hunter2"),
        "{out}{err}"
    );
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("symlink"), "{err}");
}

/// `kubestrap check ... | true`: a closed stdout (or stderr) is no reason to panic (exit 101).
#[test]
fn a_closed_pipe_is_not_a_panic() {
    use std::os::fd::FromRawFd;
    let d = tempfile::tempdir().unwrap();
    let inv = lab_inventory(d.path());
    let vagrant =
        "Host default\n  HostName 127.0.0.1\n  User vagrant\n  Port 2222\n  IdentityFile /k\n";
    for (args, stdin) in [
        (vec!["check", "-i", inv.to_str().unwrap()], ""),
        (
            vec!["vagrant-inventory", "--private-network", "192.168.56.10"],
            vagrant,
        ),
    ] {
        for closed_stderr in [false, true] {
            let mut fds = [0; 2];
            assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
            unsafe { libc::close(fds[0]) };
            let pipe = unsafe { std::fs::File::from_raw_fd(fds[1]) };
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubestrap"));
            cmd.args(&args).stdin(std::process::Stdio::piped());
            let (out, err) = if closed_stderr {
                (
                    std::process::Stdio::from(pipe.try_clone().unwrap()),
                    std::process::Stdio::from(pipe),
                )
            } else {
                (
                    std::process::Stdio::from(pipe),
                    std::process::Stdio::piped(),
                )
            };
            let mut child = cmd.stdout(out).stderr(err).spawn().unwrap();
            {
                use std::io::Write;
                let mut i = child.stdin.take().unwrap();
                let _ = i.write_all(stdin.as_bytes());
            }
            let o = child.wait_with_output().unwrap();
            let e = String::from_utf8_lossy(&o.stderr);
            assert!(!e.contains("panicked"), "{args:?}: {e}");
            assert_ne!(o.status.code(), Some(101), "{args:?}: {e}");
            assert!(o.status.code().is_some(), "{args:?} died of a signal");
        }
    }
}

/// Run the binary with a deadline: a regression (a read that blocks) fails instead of hanging.
fn kubestrap_within(args: &[&str], envs: &[(&str, &str)], secs: u64) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubestrap"))
        .args(args)
        .envs(envs.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!(
                "{args:?} still running after {secs}s: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// `timeouts.command: "18446744073709551615"` was a panic (exit 101) when the deadline was added.
#[test]
fn a_huge_timeout_exits_2_naming_the_field() {
    let d = tempfile::tempdir().unwrap();
    let p = one_host_inventory(d.path());
    let text =
        std::fs::read_to_string(&p).unwrap() + "timeouts:\n  command: \"18446744073709551615\"\n";
    std::fs::write(&p, text).unwrap();
    let o = kubestrap_within(&["check", "-i", p.to_str().unwrap()], &[], 30);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("inv.yaml:9:12: timeouts.command: ") && e.contains("24h"),
        "{e}"
    );
}

/// A FIFO blocked `open`/`read` forever, /dev/zero ate memory: both are refused at once.
#[test]
fn a_fifo_or_a_device_as_inventory_exits_2_at_once() {
    let d = tempfile::tempdir().unwrap();
    let fifo = d.path().join("inv.yaml");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    for (path, what) in [
        (fifo.to_str().unwrap(), "is a FIFO"),
        ("/dev/zero", "is a character device"),
        (d.path().to_str().unwrap(), "is a directory"),
    ] {
        let o = kubestrap_within(&["check", "-i", path], &[], 20);
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{path}: {e}");
        assert!(
            e.contains(path) && e.contains(what) && e.contains("not an inventory file"),
            "{path}: {e}"
        );
    }
}

fn secret_inventory(d: &std::path::Path) -> std::path::PathBuf {
    let p = d.join("inv.yaml");
    std::fs::write(
        &p,
        "cluster:\n  name: lab\n  kubernetesVersion: \"1.31.2\"\nssh:\n  port: 1\n  sudoPasswordEnv: KS_CLI_SUDO\nhosts:\n  - {name: cp1, address: 127.0.0.1, internalAddress: 10.77.0.11, role: control-plane}\n  - {name: w1, address: 127.0.0.2, internalAddress: 10.77.0.12, role: worker}\n",
    )
    .unwrap();
    p
}

/// A reviewer sees which environment variables an inventory takes secrets from.
#[test]
fn check_lists_the_secret_environment_variables() {
    let d = tempfile::tempdir().unwrap();
    let p = secret_inventory(d.path());
    let env = [("KS_CLI_SUDO", "s3cr3t-value")];
    let o = kubestrap_within(&["check", "-i", p.to_str().unwrap()], &env, 60);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("secrets from environment: KS_CLI_SUDO (hosts cp1, w1)"),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!out.contains("s3cr3t-value"), "{out}");
    let o = kubestrap_within(
        &["check", "-i", p.to_str().unwrap(), "--output", "json"],
        &env,
        60,
    );
    let out = String::from_utf8_lossy(&o.stdout);
    let ev: serde_json::Value = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v.get("secrets_from_env").is_some())
        .unwrap_or_else(|| panic!("no secrets_from_env in:\n{out}"));
    let s = &ev["secrets_from_env"];
    assert_eq!(s[0]["var"], "KS_CLI_SUDO", "{ev}");
    assert_eq!(s[0]["field"], "ssh.sudoPasswordEnv", "{ev}");
    assert_eq!(s[0]["hosts"], serde_json::json!(["cp1", "w1"]), "{ev}");
    assert!(!out.contains("s3cr3t-value"), "{out}");
}

/// An unset variable is an inventory error with file:line:col like every other.
#[test]
fn an_unset_secret_variable_exits_2_with_its_location() {
    let d = tempfile::tempdir().unwrap();
    let p = secret_inventory(d.path());
    let o = kubestrap_within(&["check", "-i", p.to_str().unwrap()], &[], 30);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("inv.yaml:6:20: ssh.sudoPasswordEnv: $KS_CLI_SUDO is not set"),
        "{e}"
    );
    assert!(
        !d.path().join(".kubestrap").exists(),
        "stopped before the state folder"
    );
}

#[test]
fn version_names_the_git_commit() {
    let o = kubestrap(&["--version"]);
    assert!(o.status.success());
    let v = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        v.starts_with(&format!("kubestrap {} (", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=10", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    match head {
        Ok(h) if h.status.success() => {
            let h = String::from_utf8_lossy(&h.stdout).trim().to_string();
            assert!(v.contains(&format!("({h}")), "{v} does not name HEAD {h}");
        }
        _ => assert!(v.contains("(unknown commit)"), "{v}"),
    }
}

/// `kubeconfig --merge` as kubectl sees it (the real kubectl is the oracle): the other context is
/// kept, ours is added under the cluster's name and made current, a second merge replaces it,
/// the old file is backed up, and both files are 0600.
#[test]
fn kubeconfig_merge_keeps_other_contexts_for_the_real_kubectl() {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let d = tempfile::tempdir().unwrap();
    let inv = lab_inventory(d.path());
    let sd = d.path().join(".kubestrap/lab");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&sd)
        .unwrap();
    std::fs::set_permissions(
        d.path().join(".kubestrap"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    let admin = "apiVersion: v1\nkind: Config\nclusters:\n- name: kubernetes\n  cluster:\n    server: https://10.77.0.11:6443\n    insecure-skip-tls-verify: true\ncontexts:\n- name: kubernetes-admin@kubernetes\n  context:\n    cluster: kubernetes\n    user: kubernetes-admin\ncurrent-context: kubernetes-admin@kubernetes\nusers:\n- name: kubernetes-admin\n  user:\n    token: t0ken\n";
    std::fs::write(sd.join("kubeconfig"), admin).unwrap();
    std::fs::set_permissions(
        sd.join("kubeconfig"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let home = d.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let cfg = home.join("config");
    std::fs::write(&cfg, "apiVersion: v1\nkind: Config\nclusters:\n- name: prod\n  cluster:\n    server: https://prod.example:6443\ncontexts:\n- name: prod\n  context:\n    cluster: prod\n    user: prod\ncurrent-context: prod\nusers:\n- name: prod\n  user:\n    token: p\n").unwrap();
    let cfg_s = cfg.to_str().unwrap();
    let run = |args: &[&str]| kubestrap_within(args, &[("KUBECONFIG", cfg_s)], 30);
    let o = run(&["kubeconfig", "-i", inv.to_str().unwrap(), "--merge"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("Merged context lab into"));
    let kubectl = |args: &[&str]| -> String {
        let o = std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&cfg)
            .args(args)
            .output()
            .expect("the real kubectl (the machine's kubectl package)");
        assert!(
            o.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    assert_eq!(
        kubectl(&["config", "get-contexts", "-o", "name"]),
        "lab\nprod"
    );
    assert_eq!(kubectl(&["config", "current-context"]), "lab");
    assert_eq!(
        kubectl(&[
            "config",
            "view",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.server}"
        ]),
        "https://10.77.0.11:6443"
    );
    assert_eq!(
        kubectl(&[
            "config",
            "view",
            "--raw",
            "-o",
            "jsonpath={.users[?(@.name==\"prod\")].user.token}"
        ]),
        "p"
    );
    // Again, under another name: both kept, nothing duplicated.
    let o = run(&[
        "kubeconfig",
        "-i",
        inv.to_str().unwrap(),
        "--merge",
        "--context",
        "lab-2",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = run(&[
        "kubeconfig",
        "-i",
        inv.to_str().unwrap(),
        "--merge",
        "--context",
        "lab-2",
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        kubectl(&["config", "get-contexts", "-o", "name"]),
        "lab\nlab-2\nprod"
    );
    for f in [cfg.clone(), home.join("config.kubestrap-backup")] {
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", f.display());
    }
    // A hostile context name is refused before anything is written.
    let o = run(&[
        "kubeconfig",
        "-i",
        inv.to_str().unwrap(),
        "--merge",
        "--context",
        "a\nb",
    ]);
    assert_eq!(o.status.code(), Some(2));
}

/// The subcommands `kubestrap --help` lists (what the completion scripts must offer).
fn help_subcommands() -> Vec<String> {
    let o = kubestrap(&["--help"]);
    let h = String::from_utf8_lossy(&o.stdout).to_string();
    h.split("Commands:\n")
        .nth(1)
        .expect("a Commands: section")
        .lines()
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect()
}

/// Source `kubestrap completions bash` in a real bash, set COMP_WORDS/COMP_CWORD to `words`
/// (the last one is the word being completed) and return what the function offers.
fn bash_complete(script: &std::path::Path, cwd: &std::path::Path, words: &[&str]) -> Vec<String> {
    let o = Command::new("bash")
        .args(["--norc", "--noprofile", "-c"])
        .arg(
            "source \"$0\" || exit 9; complete -p kubestrap >/dev/null || exit 8; \
             COMP_WORDS=(\"$@\"); COMP_CWORD=$(($# - 1)); _kubestrap; \
             printf '%s\\n' \"${COMPREPLY[@]}\"",
        )
        .arg(script)
        .args(words)
        .current_dir(cwd)
        .output()
        .expect("bash");
    assert!(
        o.status.success(),
        "bash: {:?}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_completion_offers_subcommands_options_values_and_files() {
    let d = tempfile::tempdir().unwrap();
    let o = kubestrap(&["completions", "bash"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let script = d.path().join("kubestrap.bash");
    std::fs::write(&script, &o.stdout).unwrap();
    std::fs::write(d.path().join("inv.yaml"), "").unwrap();
    let c = |w: &[&str]| bash_complete(&script, d.path(), w);

    // kubestrap <TAB>: every subcommand --help lists (a new one is picked up by itself).
    let subs = help_subcommands();
    for must in [
        "up",
        "check",
        "plan",
        "kubeconfig",
        "reset",
        "exec",
        "completions",
    ] {
        assert!(subs.iter().any(|s| s == must), "{subs:?}");
    }
    let top = c(&["kubestrap", ""]);
    for s in &subs {
        assert!(top.contains(s), "kubestrap <TAB> lacks {s}: {top:?}");
    }
    // kubestrap up -<TAB>, and an option's value does not count as the subcommand.
    let up = c(&["kubestrap", "up", "-"]);
    for o in ["--inventory", "-i", "--output", "--concurrency", "--help"] {
        assert!(
            up.contains(&o.to_string()),
            "kubestrap up -<TAB> lacks {o}: {up:?}"
        );
    }
    assert!(!up.iter().any(|w| w == "plan"), "{up:?}");
    assert_eq!(c(&["kubestrap", "-v", "pl"]), ["plan"]);
    assert_eq!(c(&["kubestrap", "up", "--inv"]), ["--inventory"]);
    assert!(c(&["kubestrap", "reset", "-"]).contains(&"--yes".to_string()));
    assert!(c(&["kubestrap", "kubeconfig", "--"]).contains(&"--merge".to_string()));
    // Values: files for -i, the value enums, the shells.
    assert_eq!(c(&["kubestrap", "up", "-i", "in"]), ["inv.yaml"]);
    assert_eq!(
        c(&["kubestrap", "plan", "--inventory", "inv"]),
        ["inv.yaml"]
    );
    assert_eq!(
        c(&["kubestrap", "check", "-i", "inv.yaml", "--output", ""]),
        ["text", "json"]
    );
    assert_eq!(c(&["kubestrap", "exec", "--role", "w"]), ["worker"]);
    let shells = c(&["kubestrap", "completions", ""]);
    for s in ["bash", "zsh", "fish"] {
        assert!(shells.contains(&s.to_string()), "{shells:?}");
    }
    assert_eq!(c(&["kubestrap", "completions", "f"]), ["fish"]);
    // After `exec ... --`: the hosts' command, not ours.
    assert!(c(&["kubestrap", "exec", "-i", "inv.yaml", "--", "--"]).is_empty());
}

#[test]
fn zsh_and_fish_completions_name_every_subcommand_and_parse() {
    let subs = help_subcommands();
    let d = tempfile::tempdir().unwrap();
    for (shell, check) in [("zsh", ["-n"]), ("fish", ["--no-execute"])] {
        let o = kubestrap(&["completions", shell]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let t = String::from_utf8_lossy(&o.stdout).to_string();
        for s in &subs {
            let named = match shell {
                "zsh" => {
                    t.contains(&format!("        '{s}:"))
                        && t.contains(&format!("({s}) _kubestrap__"))
                }
                _ => t.contains(&format!("-a '{s}' -d ")),
            };
            assert!(named, "{shell} script lacks subcommand {s}:\n{t}");
        }
        match shell {
            "zsh" => {
                assert!(t.starts_with("#compdef kubestrap\n"), "{t}");
                assert!(
                    t.contains(
                        "'(-i --inventory)--inventory=[The inventory file (YAML)]:value:_files'"
                    ),
                    "{t}"
                );
                assert!(t.contains(":value:(text json)'"), "{t}");
                assert!(t.contains("compdef _kubestrap kubestrap"), "{t}");
            }
            _ => {
                assert!(
                    t.contains(" -s i -l inventory -r -F -d 'The inventory file (YAML)'"),
                    "{t}"
                );
                assert!(t.contains(" -l output -x -a 'text json' "), "{t}");
                assert!(t.contains("^kubestrap up( |$)"), "{t}");
            }
        }
        // Parse it with the real shell when it is installed.
        let f = d.path().join(format!("kubestrap.{shell}"));
        std::fs::write(&f, t.as_bytes()).unwrap();
        match Command::new(shell).args(check).arg(&f).output() {
            Ok(o) => assert!(
                o.status.success(),
                "{shell} {check:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!("{shell} not installed: text checks only")
            }
            Err(e) => panic!("{shell}: {e}"),
        }
    }
}

#[test]
fn completions_for_an_unknown_shell_exit_2() {
    let o = kubestrap(&["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("bash"));
}
