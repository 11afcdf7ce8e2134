//! The shell scripts a fresh machine starts with: `scripts/setup` (what it finds missing, what it
//! would install, when it refuses) and shellcheck over the scripts it is called from. No real
//! install: apt-get and apt-cache are stubs on PATH, and a stub dpkg-query makes packages "missing".

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn setup(args: &[&str], path: Option<&str>) -> Output {
    let mut c = Command::new(root().join("scripts/setup"));
    c.args(args);
    if let Some(p) = path {
        c.env("PATH", p);
    }
    c.output().expect("run scripts/setup")
}

/// A directory of stubs put first on PATH: dpkg-query answers "not installed" for the packages in
/// `missing` (and asks the real one for the others); apt-get and apt-cache only log their
/// arguments to `apt.log`; `id -u` answers `uid`.
struct Stubs {
    dir: tempfile::TempDir,
}

impl Stubs {
    fn new(missing: &[&str], uid: u32) -> Stubs {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("apt.log");
        let real = ["/usr/bin/dpkg-query", "/bin/dpkg-query"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("dpkg-query (an apt-based machine)");
        let stubs = [
            (
                "dpkg-query",
                format!(
                    "#!/bin/sh\nfor a in \"$@\"; do case \" {} \" in *\" $a \"*) echo \"dpkg-query: no packages found matching $a\" >&2; exit 1;; esac; done\nexec {real} \"$@\"\n",
                    missing.join(" ")
                ),
            ),
            ("apt-get", format!("#!/bin/sh\necho \"apt-get $*\" >>'{}'\n", log.display())),
            (
                "apt-cache",
                format!(
                    "#!/bin/sh\necho \"apt-cache $*\" >>'{}'\necho '  Candidate: 1:10.0.2+ds-2~bpo12+1'\n",
                    log.display()
                ),
            ),
            ("id", format!("#!/bin/sh\necho {uid}\n")),
        ];
        for (name, body) in stubs {
            let p = dir.path().join(name);
            std::fs::write(&p, body).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Stubs { dir }
    }
    fn path(&self) -> String {
        format!(
            "{}:{}",
            self.dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }
    fn apt_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("apt.log")).unwrap_or_default()
    }
}

fn is_bookworm() -> bool {
    std::fs::read_to_string("/etc/os-release")
        .map(|s| s.lines().any(|l| l == "VERSION_CODENAME=bookworm"))
        .unwrap_or(false)
}

/// This machine has everything: --check says so and exits 0, with and without the VM tier, and
/// the install mode is the no-op path (it does not call apt at all).
#[test]
fn setup_check_finds_nothing_missing_on_this_machine() {
    for args in [
        &["--check"][..],
        &["--check", "--vm"],
        &["--check", "--no-vm"],
    ] {
        let o = setup(args, None);
        assert_eq!(o.status.code(), Some(0), "setup {args:?}:\n{}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("nothing missing"),
            "{}",
            text(&o)
        );
    }
    let s = Stubs::new(&[], 0);
    let o = setup(&[], Some(&s.path()));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("nothing to install"),
        "{}",
        text(&o)
    );
    assert_eq!(s.apt_log(), "", "the no-op path ran apt");
}

/// A "missing" package is named with why it is needed; --check installs nothing and exits 1;
/// --no-vm leaves the VM tier's packages out.
#[test]
fn setup_check_names_what_is_missing_and_installs_nothing() {
    let s = Stubs::new(&["apt-utils", "vde2"], 0);
    let o = setup(&["--check"], Some(&s.path()));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("missing (2)"), "{out}");
    assert!(out.contains("  apt-utils: apt-ftparchive"), "{out}");
    assert!(out.contains("  vde2: vde_switch"), "{out}");
    assert!(!out.contains("  tini"), "{out}");
    let o = setup(&["--check", "--no-vm"], Some(&s.path()));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("missing (1)") && out.contains("apt-utils"),
        "{out}"
    );
    assert!(!out.contains("  vde2"), "{out}");
    assert_eq!(s.apt_log(), "", "--check ran apt");
}

/// Not root with something missing: a clear refusal naming it, exit 2, no apt.
#[test]
fn setup_refuses_to_install_when_not_root() {
    let s = Stubs::new(&["tini"], 1000);
    let o = setup(&[], Some(&s.path()));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("must run as root") && e.contains("tini"), "{e}");
    assert_eq!(s.apt_log(), "");
    // Nothing missing: nothing to refuse.
    let s = Stubs::new(&[], 1000);
    assert_eq!(setup(&[], Some(&s.path())).status.code(), Some(0));
}

/// As root: apt-get update, then one install of exactly the missing packages, qemu from
/// bookworm-backports on Debian 12; what and why is said first.
#[test]
fn setup_installs_exactly_what_is_missing() {
    let s = Stubs::new(&["tini", "vde2", "qemu-utils"], 0);
    let o = setup(&[], Some(&s.path()));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("installing what is missing:"), "{out}");
    assert!(
        out.contains("  tini: init of every namespaced lab host"),
        "{out}"
    );
    let log = s.apt_log();
    let lines: Vec<&str> = log.lines().filter(|l| l.starts_with("apt-get")).collect();
    let bpo = if is_bookworm() {
        vec![
            "apt-get install -y -qq --no-install-recommends tini vde2",
            "apt-get install -y -qq --no-install-recommends -t bookworm-backports qemu-utils",
        ]
    } else {
        vec!["apt-get install -y -qq --no-install-recommends tini qemu-utils vde2"]
    };
    let mut want = vec!["apt-get update -qq"];
    want.extend(bpo);
    assert_eq!(lines, want, "{log}");
    // --no-vm: the VM tier's packages are left alone.
    let s = Stubs::new(&["vde2"], 0);
    let o = setup(&["--no-vm"], Some(&s.path()));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("VM tier: not included"));
    assert_eq!(s.apt_log(), "");
}

#[test]
fn setup_rejects_unknown_arguments() {
    let o = setup(&["--frobnicate"], None);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--frobnicate"));
}

/// shellcheck (Debian's package) over the setup script and the scripts that call it.
#[test]
fn shellcheck_passes_on_setup_and_its_callers() {
    let files = ["scripts/setup", "scripts/demo", "scripts/test", ".ci/run"];
    let o = Command::new("shellcheck")
        .args(files)
        .current_dir(root())
        .output()
        .expect("shellcheck is installed (scripts/setup installs the Debian package)");
    assert!(
        o.status.success(),
        "shellcheck found problems:\n{}",
        text(&o)
    );
}
