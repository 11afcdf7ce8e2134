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
    for c in ["up", "check", "kubeconfig", "exec", "reset"] {
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
    assert!(!out.contains("hunter2") && !err.contains("hunter2"), "{out}{err}");
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("symlink"), "{err}");
}

/// `kubestrap check ... | true`: a closed stdout (or stderr) is no reason to panic (exit 101).
#[test]
fn a_closed_pipe_is_not_a_panic() {
    use std::os::fd::FromRawFd;
    let d = tempfile::tempdir().unwrap();
    let inv = lab_inventory(d.path());
    let vagrant = "Host default\n  HostName 127.0.0.1\n  User vagrant\n  Port 2222\n  IdentityFile /k\n";
    for (args, stdin) in [
        (vec!["check", "-i", inv.to_str().unwrap()], ""),
        (vec!["vagrant-inventory", "--private-network", "192.168.56.10"], vagrant),
    ] {
        for closed_stderr in [false, true] {
            let mut fds = [0; 2];
            assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
            unsafe { libc::close(fds[0]) };
            let pipe = unsafe { std::fs::File::from_raw_fd(fds[1]) };
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubestrap"));
            cmd.args(&args).stdin(std::process::Stdio::piped());
            let (out, err) = if closed_stderr {
                (std::process::Stdio::from(pipe.try_clone().unwrap()), std::process::Stdio::from(pipe))
            } else {
                (std::process::Stdio::from(pipe), std::process::Stdio::piped())
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
