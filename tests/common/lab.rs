//! A running lab (scripts/lab or scripts/lab-vms) for the end-to-end test binaries.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use super::{lab_script, text};

static LAB_LOCK: Mutex<()> = Mutex::new(());

pub fn run_lab(script: &Path, args: &[&str]) -> Output {
    Command::new(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", script.display()))
}

/// A running lab of either tier (scripts/lab or scripts/lab-vms), torn down on drop.
pub struct Lab {
    _guard: std::sync::MutexGuard<'static, ()>,
    pub script: PathBuf,
    pub n: usize,
    pub dir: tempfile::TempDir,
}

impl Lab {
    pub fn up(n: usize) -> Lab {
        Self::up_with(lab_script(), n)
    }

    pub fn up_with(script: PathBuf, n: usize) -> Lab {
        let guard = LAB_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let t = std::time::Instant::now();
        let o = run_lab(&script, &["up", &n.to_string()]);
        assert!(
            o.status.success(),
            "{} up {n} failed:\n{}",
            script.display(),
            text(&o)
        );
        eprintln!(
            "{} up {n}: {:.1}s",
            script.display(),
            t.elapsed().as_secs_f64()
        );
        Lab {
            _guard: guard,
            script,
            n,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn lab(&self, args: &[&str]) -> Output {
        run_lab(&self.script, args)
    }

    /// Write an inventory for the lab into the temp dir and return its path.
    pub fn inventory(&self, args: &[&str]) -> PathBuf {
        let mut a = vec!["inventory", "--hosts"];
        let n = self.n.to_string();
        a.push(&n);
        a.extend_from_slice(args);
        let o = self.lab(&a);
        assert!(o.status.success(), "lab inventory failed:\n{}", text(&o));
        let p = self.dir.path().join("inventory.yaml");
        std::fs::write(&p, &o.stdout).unwrap();
        p
    }

    /// Run a command on host K as root and return stdout (asserting success).
    pub fn sh(&self, k: usize, cmd: &str) -> String {
        let o = self.lab(&["ssh", &k.to_string(), "sudo", "sh", "-c", &shell_quote(cmd)]);
        assert!(
            o.status.success(),
            "on host {k}: `{cmd}` failed:\n{}",
            text(&o)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.lab(&["down"]);
    }
}

pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}
