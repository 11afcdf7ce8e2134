//! Every template rendered with hostile values in every string field: the shell scripts must
//! pass `sh -n`, and, run in a sandbox (a mount and network namespace with tmpfs over every
//! writable system directory, commands replaced by stubs that record their argv), nothing but
//! the intended commands may run: an injected `kscanary` would leave a mark, a broken-out word
//! would show as "not found". The hostile values must reach the stubs as whole arguments, and
//! the kubeadm/flannel YAML must parse back to exactly the values given.
//!
//! Validation refuses all of these values long before (tests/inventory_corpus.rs); this is the
//! second wall: a template cannot turn a value into code even if a check is ever missed.

use std::path::{Path, PathBuf};
use std::process::Command;

use kubestrap::cluster::{init, join, network, prepare, reset, upgrade};
use kubestrap::pki::BootstrapToken;
use kubestrap::plan::Plan;

const PAYLOADS: &[&str] = &[
    "a$(kscanary)b",
    "a`kscanary`b",
    "a;kscanary;b",
    "a\nkscanary\nb",
    "a'$(kscanary)'b",
    "a\"$(kscanary)\"b",
    "r.io|;s|.*|kscanary|e;#",
    "x' ; kscanary ; '",
    "x\" ; kscanary ; \"",
    "a&&kscanary",
    "a|kscanary",
    "x\nKUBESTRAP_EOF\nkscanary\n",
    "-x --kscanary",
    "a\\\nkscanary",
    "}}{{ x }}$(kscanary)",
    "a\rkscanary\r",
    "a\u{1b}[2J$(kscanary)",
    "${IFS}kscanary${IFS}",
    "a # $(kscanary)",
    "\"]\nkscanary = 1\n[x",
];

/// Commands the scripts may run for real (inside the sandbox they only touch tmpfs).
const REAL: &[&str] = &[
    "sh",
    "mktemp",
    "cat",
    "mv",
    "rm",
    "chmod",
    "mkdir",
    "cmp",
    "dirname",
    "basename",
    "sha256sum",
    "cut",
    "awk",
    "grep",
    "sed",
    "tr",
    "stat",
    "tail",
    "head",
    "seq",
    "env",
    "ls",
    "wc",
    "sort",
    "tee",
    "date",
    "id",
    "ln",
    "cp",
    "touch",
    "readlink",
    "printf",
    "true",
    "false",
    "test",
    "[",
    "xargs",
    "find",
    "uname",
];

/// Commands replaced by a stub that records its argv and succeeds.
const STUBS: &[&str] = &[
    "hostname",
    "hostnamectl",
    "systemctl",
    "apt-get",
    "apt-cache",
    "apt-mark",
    "dpkg-query",
    "dpkg",
    "curl",
    "gpg",
    "modprobe",
    "sysctl",
    "swapoff",
    "containerd",
    "dockerd",
    "docker",
    "ctr",
    "crictl",
    "cri-dockerd",
    "kubeadm",
    "kubectl",
    "kubelet",
    "python3",
    "setsid",
    "ip",
    "iptables-save",
    "ip6tables-save",
    "iptables-restore",
    "ip6tables-restore",
    "ipvsadm",
    "timeout",
    "sleep",
    "flock",
    "nproc",
    "free",
    "ss",
    "getent",
    "df",
    "lsmod",
    "swapon",
    "ethtool",
    "conntrack",
    "socat",
    "ebtables",
    "iptables",
    "ip6tables",
    "nsenter",
    "journalctl",
    "update-alternatives",
    "sudo",
    "mount",
    "umount",
    "losetup",
    "udevadm",
    "ping",
];

const CONTAINERD_DEFAULT: &str = "version = 2\ndisabled_plugins = [\"cri\"]\n[plugins]\n  [plugins.\"io.containerd.grpc.v1.cri\"]\n    sandbox_image = \"registry.k8s.io/pause:3.8\"\n          SystemdCgroup = false\n";

struct Sandbox {
    dir: PathBuf,
}

impl Sandbox {
    fn new(name: &str) -> Sandbox {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("hostile-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for c in REAL {
            let found = ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
                .iter()
                .map(|d| Path::new(d).join(c))
                .find(|p| p.exists())
                // Resolved now: /etc/alternatives is under the sandbox's tmpfs.
                .and_then(|p| std::fs::canonicalize(p).ok());
            if let Some(p) = found {
                std::os::unix::fs::symlink(p, bin.join(c)).unwrap();
            }
        }
        let stub = format!(
            "#!/bin/sh\n\
             n=${{0##*/}}\n\
             {{ printf '%s\\036' \"$n\" \"$@\"; printf '\\035'; }} >> {log}\n\
             if [ \"$n\" = containerd ] && [ \"${{1:-}}\" = config ]; then printf '%s' {dflt}; fi\n\
             exit 0\n",
            log = shell(&dir.join("argv.log").to_string_lossy()),
            dflt = shell(CONTAINERD_DEFAULT),
        );
        for c in STUBS {
            write_exec(&bin.join(c), &stub);
        }
        write_exec(
            &bin.join("kscanary"),
            &format!(
                "#!/bin/sh\necho \"kscanary ran: $*\" >> {}\n",
                shell(&dir.join("CANARY").to_string_lossy())
            ),
        );
        Sandbox { dir }
    }

    /// Run `script` (a rendered remote script) as the host would: `sh -s`, with the PATH the
    /// helper library sets pointed at the stubs. Returns (exit status, stderr).
    fn run(&self, label: &str, script: &str) -> (Option<i32>, String) {
        let (code, _, stderr, _) = self.run_full(label, script);
        (code, stderr)
    }

    /// `run`, also returning stdout and what the script left in the sandbox's writable
    /// directories (`find` after it ended).
    fn run_full(&self, label: &str, script: &str) -> (Option<i32>, String, String, String) {
        const LIB_PATH: &str =
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n";
        let bin = self.dir.join("bin");
        let script = if script.contains(LIB_PATH) {
            script.replacen(
                LIB_PATH,
                &format!("PATH={}\n", shell(&bin.to_string_lossy())),
                1,
            )
        } else {
            script.to_string()
        };
        let file = self.dir.join(format!("{label}.sh"));
        std::fs::write(&file, &script).unwrap();
        let syntax = Command::new("sh").arg("-n").arg(&file).output().unwrap();
        assert!(
            syntax.status.success(),
            "{label}: sh -n failed: {}\n{script}",
            String::from_utf8_lossy(&syntax.stderr)
        );
        // tmpfs over everything a root script could write; no network at all.
        let wrapper = format!(
            "set -e\nfor d in /etc /var /run /tmp /root /opt /home /srv /usr/local /mnt /media /boot; do\n\
               [ -d \"$d\" ] && mount -t tmpfs kubestrap-sandbox \"$d\"\n\
             done\n\
             cd /\n\
             rc=0; env -i PATH={bin} HOME=/root sh -s < {file} || rc=$?\n\
             find /etc /var /run /tmp /root /opt /home /srv /usr/local -mindepth 1 ! -path '/run/mount*' > {left} 2>&1 || true\n\
             exit $rc\n",
            bin = shell(&bin.to_string_lossy()),
            file = shell(&file.to_string_lossy()),
            left = shell(&self.dir.join("left.txt").to_string_lossy()),
        );
        let out = Command::new("unshare")
            .args([
                "--mount",
                "--net",
                "--propagation",
                "private",
                "--fork",
                "sh",
                "-c",
            ])
            .arg(&wrapper)
            .output()
            .expect("unshare (util-linux) runs the sandbox; this test needs root");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !stderr.contains("unshare:") && !stderr.contains("mount:"),
            "the sandbox could not be set up (this test needs root): {stderr}"
        );
        let left = std::fs::read_to_string(self.dir.join("left.txt")).unwrap_or_default();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr,
            left,
        )
    }

    /// Make the stub for `cmd` exit with `code`.
    fn stub_exit(&self, cmd: &str, code: i32) {
        write_exec(
            &self.dir.join("bin").join(cmd),
            &format!("#!/bin/sh\nexit {code}\n"),
        );
    }

    fn canary(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.join("CANARY")).ok()
    }

    fn argv(&self) -> Vec<Vec<String>> {
        let log = std::fs::read(self.dir.join("argv.log")).unwrap_or_default();
        log.split(|&b| b == 0x1d)
            .filter(|r| !r.is_empty())
            .map(|r| {
                r.split(|&b| b == 0x1e)
                    .filter(|a| !a.is_empty() || true)
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect::<Vec<_>>()
            })
            .map(|mut v| {
                v.pop(); // after the last separator
                v
            })
            .collect()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn shell(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn write_exec(p: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(p, body).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn base_plan(runtime: &str) -> Plan {
    let src = format!(
        "cluster:\n  name: lab\n  kubernetesVersion: \"1.31.2\"\n  containerRuntime: {runtime}\n\
hosts:\n  - name: cp1\n    address: 192.168.56.10\n    role: control-plane\n  - name: w1\n    address: 192.168.56.11\n    role: worker\n"
    );
    let inv = kubestrap::inventory::parse(&src, Path::new("/tmp/kubestrap-test/inventory.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    Plan::from_inventory(&inv).unwrap()
}

/// The plan with `v` in every string field a value from the inventory can reach.
fn hostile_plan(runtime: &str, v: &str) -> Plan {
    let mut p = base_plan(runtime);
    p.cluster_name = v.into();
    p.version = v.into();
    p.image_repository = v.into();
    p.pause_image = v.into();
    p.package_repository = v.into();
    p.pod_subnet = v.into();
    p.service_subnet = v.into();
    p.control_plane_endpoint = Some(v.into());
    p.api_endpoint = v.into();
    for n in &mut p.nodes {
        n.name = v.into();
        n.address = v.into();
        n.internal_address = v.into();
    }
    p.preload = vec![kubestrap::plan::Preload {
        local: PathBuf::from("/nonexistent"),
        remote: v.into(),
        sha256: v.into(),
        size: 1,
    }];
    p
}

/// Every shell script a run sends, rendered from `p` (and `v` where a value comes from a host
/// or the network rather than the plan).
fn scripts(p: &Plan, v: &str) -> Vec<(String, String)> {
    use minijinja::context;
    let cp = p.nodes[0].clone();
    let w = p.nodes[1].clone();
    let token = BootstrapToken::parse("abcdef.0123456789abcdef").unwrap();
    let mut out = vec![
        (
            "prepare-cp".to_string(),
            prepare::render(p, &cp, &[], true).unwrap(),
        ),
        (
            "prepare-worker-fetch".into(),
            prepare::render(p, &w, &[(Some(v.to_string()), v.to_string())], false).unwrap(),
        ),
        ("reset".into(), reset::render(p).unwrap()),
        ("token".into(), init::token_script(p, &token).unwrap()),
        (
            "upload-certs".into(),
            init::upload_certs_script(
                p,
                &token,
                &kubestrap::pki::CertificateKey::parse(&"ab".repeat(32)).unwrap(),
            )
            .unwrap(),
        ),
        (
            "upgrade-check-cp".into(),
            upgrade::render_check(p, &cp, true, None).unwrap(),
        ),
        (
            "upgrade-check-images".into(),
            upgrade::render_check(
                p,
                &w,
                false,
                Some(&[v.to_string(), format!("{v}/kube-proxy:v1.32.1")]),
            )
            .unwrap(),
        ),
        (
            "upgrade-kubeadm-apply".into(),
            upgrade::render_kubeadm(p, true).unwrap(),
        ),
        (
            "upgrade-kubeadm-node".into(),
            upgrade::render_kubeadm(p, false).unwrap(),
        ),
        (
            "upgrade-kubelet".into(),
            upgrade::render_kubelet(p).unwrap(),
        ),
    ];
    for (name, ctx) in [
        (
            "scripts/facts.sh.j2",
            context! {
                images => vec![context! { path => v, sha256 => v }], fast => true,
                runtime => p.runtime.as_str(), cp_state => true, admin_sha256 => v, cni_manifest => v,
                endpoint_host => v, endpoint_port => 6443u16,
                // prepare's fast path shares the template
                hosts => Vec::<String>::new(),
            },
        ),
        (
            "scripts/image-serve.sh.j2",
            context! {
                path => v, sha256 => v, bind => v,
                tokens => vec!["0123456789abcdef0123456789abcdef"], timeout => 30u64,
            },
        ),
        (
            "scripts/images.sh.j2",
            context! { img => context! { path => v, sha256 => v }, runtime => p.runtime.as_str() },
        ),
    ] {
        out.push((
            name.trim_start_matches("scripts/").into(),
            kubestrap::templates::script(name, ctx).unwrap_or_else(|e| panic!("{name}: {e:#}")),
        ));
    }
    out
}

fn yaml_docs(y: &str) -> Vec<serde_json::Value> {
    y.split("\n---\n")
        .map(|d| {
            serde_saphyr::from_str::<serde_json::Value>(d).unwrap_or_else(|e| panic!("{e}\n{d}"))
        })
        .collect()
}

#[test]
fn the_sandbox_sees_an_injection() {
    // The detector itself: a script that does run the canary is caught.
    let sb = Sandbox::new("control");
    let (code, stderr) = sb.run("control", "x=$(kscanary)\nnosuchcommand-kubestrap\n");
    assert_eq!(code, Some(127), "{stderr}");
    assert!(
        sb.canary().is_some(),
        "the canary stub did not leave its mark"
    );
    assert!(stderr.contains("not found"), "{stderr}");
    // Writes land in the sandbox's tmpfs, not on this machine.
    let (_, _) = sb.run("write", "echo x > /etc/kubestrap-sandbox-probe\n");
    assert!(!Path::new("/etc/kubestrap-sandbox-probe").exists());
}

#[test]
fn benign_scripts_run_clean_in_the_sandbox() {
    // With an ordinary plan the stubs cover every command the scripts call: any "not found"
    // under a hostile plan is then a value that became a command.
    for runtime in ["containerd", "docker"] {
        let p = base_plan(runtime);
        let sb = Sandbox::new(&format!("benign-{runtime}"));
        for (label, s) in scripts(&p, "10.0.0.1") {
            let (_, stderr) = sb.run(&label, &s);
            assert!(!stderr.contains("not found"), "{runtime} {label}: {stderr}");
        }
        assert!(sb.canary().is_none());
        // Nothing is written as root under a fixed name in /tmp: each script has its own
        // `mktemp -d` work directory ($W), removed by a trap.
        for (label, s) in scripts(&p, "10.0.0.1") {
            for (i, _) in s.match_indices("/tmp/") {
                let rest = &s[i..];
                assert!(
                    rest.starts_with("/tmp/kubestrap.XXXXXXXX)")
                        || rest.starts_with("/tmp/kubestrap-serve.XXXXXXXX)"),
                    "{label}: a fixed /tmp name: {}",
                    rest.lines().next().unwrap()
                );
            }
            assert!(
                s.contains("trap 'rm -rf \"$W\"' EXIT")
                    || s.contains("d=$(mktemp -d)\ntrap 'rm -rf \"$d\"' EXIT"),
                "{label}: no private work directory"
            );
        }
        let argv = sb.argv();
        assert!(
            argv.iter()
                .any(|a| a[0] == "hostnamectl" && a.get(2).map(String::as_str) == Some("cp1")),
            "the stubs record argv: {argv:?}"
        );
    }
}

#[test]
fn hostile_values_stay_data_in_every_script() {
    for runtime in ["containerd", "docker"] {
        for (k, v) in PAYLOADS.iter().enumerate() {
            let p = hostile_plan(runtime, v);
            let sb = Sandbox::new(&format!("{runtime}-{k}"));
            for (label, s) in scripts(&p, v) {
                let (_, stderr) = sb.run(&label, &s);
                assert!(
                    sb.canary().is_none(),
                    "{runtime} {label}: payload {v:?} ran code: {:?}\n{stderr}",
                    sb.canary()
                );
                assert!(
                    !stderr.contains("not found"),
                    "{runtime} {label}: payload {v:?} turned into a command: {stderr}"
                );
            }
            // The value reached the commands whole, as one argument.
            let argv = sb.argv();
            assert!(
                argv.iter()
                    .any(|a| a[0] == "hostnamectl" && a.get(2).map(String::as_str) == Some(*v)),
                "{runtime}: hostnamectl did not get {v:?} as one argument: {argv:?}"
            );
            assert!(
                argv.iter()
                    .any(|a| a[0] == "curl" && a.iter().any(|x| x == v)),
                "{runtime}: curl did not get the URL {v:?} as one argument: {argv:?}"
            );
        }
    }
}

#[test]
fn hostile_values_parse_back_unchanged_from_the_yaml() {
    let token = BootstrapToken::parse("abcdef.0123456789abcdef").unwrap();
    for v in PAYLOADS {
        let p = hostile_plan("containerd", v);
        let init = init::render_init(&p, &token).unwrap();
        let d = yaml_docs(&init);
        assert_eq!(d.len(), 3, "{v:?} added a document:\n{init}");
        assert_eq!(d[0]["nodeRegistration"]["name"], *v);
        assert_eq!(d[0]["localAPIEndpoint"]["advertiseAddress"], *v);
        assert_eq!(d[1]["clusterName"], *v);
        assert_eq!(d[1]["imageRepository"], *v);
        assert_eq!(d[1]["kubernetesVersion"], format!("v{v}"));
        assert_eq!(d[1]["controlPlaneEndpoint"], *v);
        assert_eq!(d[1]["networking"]["podSubnet"], *v);
        assert_eq!(d[1]["networking"]["serviceSubnet"], *v);
        assert!(d[1].get("kscanary").is_none() && d[0].get("kscanary").is_none());

        let b = init::Bootstrap {
            token: token.clone(),
            ca_pin: v.to_string(),
            endpoint: v.to_string(),
            certificate_key: None,
        };
        let j = yaml_docs(&join::render_join(&p, &p.nodes[1], &b).unwrap());
        assert_eq!(j.len(), 1);
        assert_eq!(j[0]["discovery"]["bootstrapToken"]["apiServerEndpoint"], *v);
        assert_eq!(j[0]["discovery"]["bootstrapToken"]["caCertHashes"][0], *v);
        assert_eq!(j[0]["nodeRegistration"]["name"], *v);

        let cni = network::render_cni(&p).unwrap().unwrap();
        let docs = yaml_docs(&cni);
        let cm = docs
            .iter()
            .find(|d| d["kind"] == "ConfigMap")
            .expect("flannel's ConfigMap");
        let net: serde_json::Value =
            serde_json::from_str(cm["data"]["net-conf.json"].as_str().unwrap()).unwrap();
        assert_eq!(net["Network"], *v);
    }
}

/// shellcheck (Debian's package) over every rendered script, benign and hostile: warnings and
/// errors fail; the few style codes a POSIX script cannot avoid are named here with the reason.
#[test]
fn shellcheck_passes_on_every_rendered_script() {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("shellcheck-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut files = vec![];
    for runtime in ["containerd", "docker"] {
        for (tag, p, v) in [
            ("benign", base_plan(runtime), "10.0.0.1"),
            ("hostile", hostile_plan(runtime, PAYLOADS[0]), PAYLOADS[0]),
        ] {
            for (label, s) in scripts(&p, v) {
                let f = dir.join(format!("{runtime}-{tag}-{label}.sh"));
                std::fs::write(&f, s).unwrap();
                files.push(f);
            }
        }
    }
    let out = Command::new("shellcheck")
        .args(["--shell=sh", "--severity=warning", "--format=gcc"])
        .args(&files)
        .output()
        .expect("shellcheck is installed (.ci/run installs the Debian package)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "shellcheck found problems:\n{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// reset.sh once read `$?` after `if ! ...; then`, which is always 0: a kubeadm reset killed by
/// its deadline (timeout's exit 124) was reported as "failed (exit 0)".
#[test]
fn reset_reports_a_hung_kubeadm_reset_as_a_timeout() {
    let p = base_plan("containerd");
    let s = reset::render(&p).unwrap();
    let with_state = format!("mkdir -p /etc/kubernetes && : > /etc/kubernetes/admin.conf\n{s}");
    let sb = Sandbox::new("reset-timeout");
    sb.stub_exit("timeout", 124);
    let (code, stderr) = sb.run("reset-124", &with_state);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("did not finish within"), "{stderr}");
    sb.stub_exit("timeout", 3);
    let (code, stderr) = sb.run("reset-3", &with_state);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("kubeadm reset -f failed (exit 3)"),
        "{stderr}"
    );
}

/// `kubestrap plan`'s prepare script (dry mode) on a fresh host: it announces the changes a
/// real run would make, with the same CHANGED lines, and changes nothing: no file is left in
/// any writable directory and no command that changes a host is called.
#[test]
fn a_dry_prepare_announces_and_changes_nothing() {
    for runtime in ["containerd", "docker"] {
        let p = base_plan(runtime);
        let sb = Sandbox::new(&format!("dry-{runtime}"));
        for node in &p.nodes {
            let s = prepare::render_dry(&p, node, node.name == "cp1").unwrap();
            let (code, stdout, stderr, left) = sb.run_full(&format!("dry-{}", node.name), &s);
            assert_eq!(code, Some(0), "{runtime} {}: {stderr}\n{stdout}", node.name);
            assert!(
                left.trim().is_empty(),
                "{runtime} {}: a plan left files behind:\n{left}",
                node.name
            );
            let changes: Vec<&str> = stdout
                .lines()
                .filter_map(|l| l.strip_prefix("CHANGED "))
                .collect();
            for want in [
                format!("hostname {}", node.name),
                "/etc/hosts".to_string(),
                "/etc/sysctl.d/k8s.conf".to_string(),
                "/etc/apt/keyrings/kubernetes-apt-keyring.gpg".to_string(),
                "/etc/apt/sources.list.d/kubernetes.list".to_string(),
                "installed kubeadm kubelet kubectl 1.31.2".to_string(),
                "held kubeadm".to_string(),
                "/etc/crictl.yaml".to_string(),
            ] {
                assert!(
                    changes.contains(&want.as_str()),
                    "{runtime} {}: {want:?} not announced: {changes:?}",
                    node.name
                );
            }
            assert!(
                stdout.contains("BEGIN diff /etc/hosts\nnew file, "),
                "{stdout}"
            );
        }
        let mutating: Vec<_> =
            sb.argv()
                .into_iter()
                .filter(|a| {
                    let arg = |k: usize| a.get(k).map(String::as_str).unwrap_or("");
                    match a[0].as_str() {
                        "systemctl" => {
                            !matches!(arg(1), "show" | "is-enabled" | "is-active" | "status")
                        }
                        "apt-get" | "modprobe" | "swapoff" | "hostnamectl" | "ctr" | "gpg"
                        | "curl" => true,
                        "apt-mark" => arg(1) != "showhold",
                        "sysctl" => arg(1) != "-n",
                        "hostname" => a.len() > 1,
                        "docker" => arg(1) == "load",
                        _ => false,
                    }
                })
                .collect();
        assert!(
            mutating.is_empty(),
            "{runtime}: a plan ran commands that change a host: {mutating:?}"
        );
    }
}
