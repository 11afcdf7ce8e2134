//! The bad-input corpus: every file in tests/data/inventories/bad must fail to load with a message
//! that contains each of its `# expect: <substring>` lines, and every line of that message must
//! start with `<file>:<line>:<column>: `. Every file in tests/data/inventories/good must load.

use std::path::{Path, PathBuf};

use kubestrap::inventory;

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/inventories")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

fn expectations(src: &str) -> Vec<String> {
    src.lines()
        .map_while(|l| l.strip_prefix("# expect: "))
        .map(str::to_string)
        .collect()
}

/// `<file>:<line>:<col>: ` with line and column >= 1.
fn has_location(line: &str, file: &Path) -> bool {
    let prefix = format!("{}:", file.display());
    let Some(rest) = line.strip_prefix(&prefix) else {
        return false;
    };
    let mut parts = rest.splitn(3, ':');
    let num = |s: Option<&str>| {
        s.and_then(|s| s.parse::<usize>().ok())
            .is_some_and(|n| n >= 1)
    };
    num(parts.next()) && num(parts.next()) && parts.next().is_some_and(|m| m.starts_with(' '))
}

#[test]
fn bad_inventories_fail_with_the_expected_located_messages() {
    let files = yaml_files("bad");
    assert!(files.len() >= 30, "only {} bad inventories", files.len());
    let mut failures = Vec::new();
    for file in &files {
        let src = std::fs::read_to_string(file).unwrap();
        let expects = expectations(&src);
        assert!(
            !expects.is_empty(),
            "{}: no `# expect:` line",
            file.display()
        );
        let err = match inventory::load(file) {
            Ok(_) => {
                failures.push(format!("{}: loaded without error", file.display()));
                continue;
            }
            Err(e) => e,
        };
        let msg = err.to_string();
        println!("{msg}"); // shown with --nocapture: the whole corpus's messages
        assert!(
            !err.problems().is_empty(),
            "{}: not a validation error: {msg}",
            file.display()
        );
        for line in msg.lines() {
            if !has_location(line, file) {
                failures.push(format!(
                    "{}: line without file:line:col: {line}",
                    file.display()
                ));
            }
        }
        for e in &expects {
            if !msg.contains(e.as_str()) {
                failures.push(format!(
                    "{}:\n  expected: {e}\n  got:\n    {}",
                    file.display(),
                    msg.replace('\n', "\n    ")
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn good_inventories_load() {
    let files = yaml_files("good");
    assert!(files.len() >= 3);
    for file in &files {
        if let Err(e) = inventory::load(file) {
            panic!("{}:\n{e}", file.display());
        }
    }
}

#[test]
fn issue_example_resolves_paths_and_overrides() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/inventories/good/issue3-example.yaml");
    let inv = inventory::load(&file).unwrap();
    assert_eq!(inv.cluster.name, "lab");
    assert_eq!(inv.cluster.kubernetes_version.to_string(), "1.31.2");
    assert_eq!(
        inv.cluster.preload_images,
        vec![file.parent().unwrap().join("images/k8s-v1.31.2.tar")]
    );
    assert!(inv.cluster.preload_images[0].is_file());
    let key = inv.ssh.identity_file.clone().unwrap();
    assert!(
        key.is_file() && key.ends_with("keys/id_test"),
        "{}",
        key.display()
    );
    assert_eq!(inv.hosts.len(), 2);
    let w = inv.host("worker1").unwrap();
    assert_eq!(w.address, "127.0.0.1");
    assert_eq!(w.internal_address.to_string(), "192.168.56.11");
    assert_eq!(w.ssh.port, 2222);
    assert_eq!(w.ssh.user, "vagrant");
    assert_eq!(w.ssh.identity_file, Some(key));
    assert_eq!(w.role, inventory::Role::Worker);
    assert_eq!(inv.first_control_plane().name, "master");
    assert_eq!(inv.api_endpoint(), "192.168.56.10:6443");
}

/// Cheap robustness: every one-line deletion, duplication or truncation of the good inventories
/// either loads or fails with located problems — never a panic, never an unlocated message.
#[test]
fn mutations_of_good_inventories_never_panic() {
    let mut checked = 0;
    for file in yaml_files("good") {
        let src = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = src.lines().collect();
        let mut variants = Vec::new();
        for i in 0..lines.len() {
            let mut del = lines.clone();
            del.remove(i);
            variants.push(del.join("\n"));
            let mut dup = lines.clone();
            dup.insert(i, lines[i]);
            variants.push(dup.join("\n"));
            variants.push(lines[..i].join("\n"));
            let mut nulled = lines.clone();
            let l = lines[i];
            if let Some(p) = l.find(": ") {
                let s = format!("{}:", &l[..p]);
                nulled[i] = &s;
                variants.push(nulled.join("\n"));
            }
        }
        for v in variants {
            checked += 1;
            if let Err(e) = inventory::parse(&v, &file) {
                for line in e.to_string().lines() {
                    assert!(has_location(line, &file), "unlocated: {line}\nfor:\n{v}");
                }
            }
        }
    }
    assert!(checked > 100);
}

/// The hostile corpus (tests/data/inventories/hostile, made by gen_hostile.py from
/// good/hostile-base.yaml): every string field of the schema — cluster name, version, subnets,
/// runtime, cni, imageRepository, packageRepository, preloadImages, pki, controlPlaneEndpoint,
/// ssh user/port/identityFile/knownHostsFile/hostKeyPolicy/*Env/bastion (top level and per host),
/// every timeout, host name/address/internalAddress/role — with shell (`$(...)`, backticks, `;`),
/// sed (`|e`), YAML (quote breakouts, anchors, merge keys, extra documents, injected keys) and
/// control-character (newline, CR, NUL, ESC, DEL, U+0085, U+2028) payloads. Each must be refused
/// by validation with every message line at `file:line:col`, naming the field in its
/// `# expect:` line; and `kubestrap check` must exit 2 on it before touching any host.
///
/// No field is exempt: the inventory has no free-text field (no description, labels or extra
/// arguments), so every value has a grammar that leaves shell, sed and YAML syntax out.
#[test]
fn hostile_inventories_are_refused_at_validation() {
    let files = yaml_files("hostile");
    assert!(
        files.len() >= 40,
        "only {} hostile inventories",
        files.len()
    );
    let mut failures = Vec::new();
    for file in &files {
        let src = String::from_utf8_lossy(&std::fs::read(file).unwrap()).into_owned();
        let expects = expectations(&src);
        assert!(
            !expects.is_empty() || src.starts_with("# expect-location\n"),
            "{}: no `# expect:` line",
            file.display()
        );
        let msg = match inventory::load(file) {
            Ok(_) => {
                failures.push(format!("{}: loaded without error", file.display()));
                continue;
            }
            Err(e) if e.problems().is_empty() => {
                failures.push(format!("{}: not a located error: {e}", file.display()));
                continue;
            }
            Err(e) => e.to_string(),
        };
        for line in msg.lines() {
            if !has_location(line, file) {
                failures.push(format!("{}: unlocated: {line:?}", file.display()));
            }
        }
        for e in &expects {
            if !msg.lines().any(|l| l.contains(&format!(": {e}: "))) {
                failures.push(format!(
                    "{}: no error about {e}:\n    {}",
                    file.display(),
                    msg.replace('\n', "\n    ")
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The same corpus through the binary: exit 2, every stderr line located, nothing created.
#[test]
fn hostile_inventories_exit_2_from_kubestrap_check() {
    let mut failures = Vec::new();
    // Every variable the base inventory names is set, so only the payload can fail.
    let envs = [
        ("SSH_PW", "x"),
        ("KEY_PW", "x"),
        ("SUDO_PW", "x"),
        ("W1_SUDO_PW", "x"),
    ];
    for file in yaml_files("hostile") {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kubestrap"))
            .args(["check", "-i", file.to_str().unwrap()])
            .envs(envs)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        if o.status.code() != Some(2) {
            failures.push(format!(
                "{}: exit {:?}: {err}",
                file.display(),
                o.status.code()
            ));
            continue;
        }
        for line in err.lines() {
            if !has_location(line, &file) {
                failures.push(format!("{}: unlocated: {line:?}", file.display()));
            }
        }
    }
    assert!(
        !Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/inventories/hostile/.kubestrap")
            .exists(),
        "a state folder was made beside a hostile inventory"
    );
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
