//! Names the git commit in `kubestrap --version` (e.g. `0.1.0 (a1b2c3d4e5)`); "unknown commit"
//! outside a git checkout. (No "dirty" marker: build scripts do not rerun on every source edit.)

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let o = Command::new("git").args(args).output().ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn main() {
    let commit = git(&["rev-parse", "--short=10", "HEAD"]);
    let v = match commit {
        Some(c) => format!("{} ({c})", env!("CARGO_PKG_VERSION")),
        None => format!("{} (unknown commit)", env!("CARGO_PKG_VERSION")),
    };
    println!("cargo:rustc-env=KUBESTRAP_VERSION={v}");
    // Rerun when HEAD moves.
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={dir}/{r}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
