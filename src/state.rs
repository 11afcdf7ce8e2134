//! The state folder beside the inventory: `.kubestrap/<cluster>/` with the kubeconfig (0600),
//! `pki/` and `logs/<run>/<host>.log`. A `.gitignore` keeps it out of the user's repository.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Create the state folder and this run's log folder; returns the log folder.
pub fn prepare(state_dir: &Path) -> std::io::Result<PathBuf> {
    fs::create_dir_all(state_dir)?;
    fs::set_permissions(state_dir, fs::Permissions::from_mode(0o700))?;
    if let Some(top) = state_dir.parent() {
        let gi = top.join(".gitignore");
        if !gi.exists() {
            fs::write(
                &gi,
                "# kubestrap state: kubeconfigs, keys and logs; never commit it\n*\n",
            )?;
        }
    }
    let logs = state_dir.join("logs").join(run_id());
    fs::create_dir_all(&logs)?;
    Ok(logs)
}

/// A sortable UTC id for this run, e.g. 20261122T181500Z.
pub fn run_id() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

/// Write a file that holds secrets: mode 0600 from creation on. Returns true when it changed.
pub fn write_secret(path: &Path, data: &[u8]) -> std::io::Result<bool> {
    if let Ok(old) = fs::read(path) {
        if old == data {
            fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
            return Ok(false);
        }
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    {
        let mut f = fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(data)?;
    }
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))?;
    fs::rename(&tmp, path)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_0600_and_rewritten_only_on_change() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a/kubeconfig");
        assert!(write_secret(&p, b"x").unwrap());
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!write_secret(&p, b"x").unwrap());
        assert!(write_secret(&p, b"y").unwrap());
    }

    #[test]
    fn prepare_writes_gitignore_and_logs() {
        let d = tempfile::tempdir().unwrap();
        let sd = d.path().join(".kubestrap/lab");
        let logs = prepare(&sd).unwrap();
        assert!(logs.starts_with(sd.join("logs")));
        assert!(fs::read_to_string(d.path().join(".kubestrap/.gitignore"))
            .unwrap()
            .contains('*'));
    }
}
