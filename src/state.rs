//! The state folder beside the inventory: `.kubestrap/<cluster>/` with the kubeconfig (0600),
//! `pki/` and `logs/<run>/<host>.log`. A `.gitignore` keeps it out of the user's repository.
//!
//! The folder sits in a directory other people commit to, so nothing in it is trusted: every
//! directory of the tree must be a real directory (not a symlink) owned by the user, every file
//! is read without following a symlink, and every file is written as a fresh temp file
//! (`O_CREAT|O_EXCL|O_NOFOLLOW`, 0600) renamed over the old one, so a planted symlink can
//! neither redirect a write nor feed kubestrap a file from elsewhere.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

const GITIGNORE: &str = "# kubestrap state: kubeconfigs, keys and logs; never commit it\n*\n";

fn refuse(path: &Path, why: String) -> std::io::Error {
    std::io::Error::other(format!("refusing to use {}: {why}", path.display()))
}

/// Make sure `dir` is a real directory owned by this user (creating it 0700 when missing; its
/// parent must exist). A symlink, a non-directory or another user's directory is refused.
pub fn ensure_dir(dir: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            match fs::DirBuilder::new().mode(0o700).create(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    let m = fs::symlink_metadata(dir)?;
    if m.file_type().is_symlink() {
        return Err(refuse(
            dir,
            "it is a symlink, and kubestrap keeps keys and kubeconfigs there; remove it (a committed symlink would make kubestrap write them wherever it points)".into(),
        ));
    }
    if !m.is_dir() {
        return Err(refuse(dir, "it is not a directory; remove it".into()));
    }
    let me = unsafe { libc::geteuid() };
    if m.uid() != me {
        return Err(refuse(
            dir,
            format!(
                "it is owned by uid {}, not by you (uid {me}); remove it or run kubestrap as its owner",
                m.uid()
            ),
        ));
    }
    if m.permissions().mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Create (or check) the state folder and this run's log folder; returns the log folder.
pub fn prepare(state_dir: &Path) -> std::io::Result<PathBuf> {
    let top = state_dir
        .parent()
        .ok_or_else(|| refuse(state_dir, "it has no parent folder".into()))?;
    ensure_dir(top)?;
    ensure_dir(state_dir)?;
    let gi = top.join(".gitignore");
    let ignores_all = read(&gi)
        .map(|b| String::from_utf8_lossy(&b).lines().any(|l| l.trim() == "*"))
        .unwrap_or(false);
    if !ignores_all {
        write_file(&gi, GITIGNORE.as_bytes(), 0o644)?;
    }
    let logs = state_dir.join("logs");
    ensure_dir(&logs)?;
    let run = logs.join(run_id());
    ensure_dir(&run)?;
    Ok(run)
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

/// Read a state file without following a symlink (a symlink reads as an error). Capped at
/// 16 MiB: state files are small, and a FIFO or device is refused.
pub fn read(path: &Path) -> std::io::Result<Vec<u8>> {
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(refuse(path, "it is not a regular file".into()));
    }
    let mut v = Vec::new();
    f.take(16 << 20).read_to_end(&mut v)?;
    Ok(v)
}

pub fn read_string(path: &Path) -> std::io::Result<String> {
    String::from_utf8(read(path)?).map_err(|e| refuse(path, format!("it is not UTF-8 ({e})")))
}

/// Open a log file for appending, never through a symlink, 0600.
pub fn open_log(path: &Path) -> std::io::Result<fs::File> {
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Write `data` to `path` (whose folder is checked, or created 0700) as a fresh temp file
/// renamed over it: the old file, or a symlink in its place, is replaced, never written through.
pub fn write_file(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| refuse(path, "it has no parent folder".into()))?;
    ensure_dir(dir)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = loop {
        let t = dir.join(format!(
            ".{name}.{}.{:08x}.tmp",
            std::process::id(),
            rand::random::<u32>()
        ));
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&t)
        {
            Ok(mut f) => {
                let written = f
                    .write_all(data)
                    .and_then(|_| f.sync_all())
                    .and_then(|_| fs::set_permissions(&t, fs::Permissions::from_mode(mode)));
                if let Err(e) = written {
                    let _ = fs::remove_file(&t);
                    return Err(e);
                }
                break t;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    };
    fs::rename(&tmp, path).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// The console's run lock on one cluster: `flock` on `<state>/lock`, held while this value lives
/// (the process's life). The file says who holds it.
pub struct ConsoleLock {
    _file: fs::File,
}

/// Take the console lock or say who holds it (the holder's own words from the lock file).
pub fn lock(state_dir: &Path, holder: &str) -> Result<ConsoleLock, String> {
    use std::os::fd::AsRawFd;
    let path = state_dir.join("lock");
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| format!("cannot open the run lock {}: {e}", path.display()))?;
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(format!("cannot lock {}: {e}", path.display()));
        }
        let mut who = String::new();
        let _ = f.read_to_string(&mut who);
        let who = who.trim();
        return Err(format!(
            "another kubestrap run holds this cluster ({}): {}; wait for it to finish, then run again",
            path.display(),
            if who.is_empty() { "it did not say who" } else { who }
        ));
    }
    let _ = f.set_len(0);
    let _ = writeln!(f, "{holder}");
    Ok(ConsoleLock { _file: f })
}

/// Write a file that holds secrets: mode 0600 from creation on. Returns true when it changed.
pub fn write_secret(path: &Path, data: &[u8]) -> std::io::Result<bool> {
    if let Some(dir) = path.parent() {
        ensure_dir(dir)?;
    }
    if let Ok(old) = read(path) {
        if old == data {
            fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
            return Ok(false);
        }
    }
    write_file(path, data, 0o600)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn secrets_are_0600_and_rewritten_only_on_change() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("a")).unwrap();
        let p = d.path().join("a/kubeconfig");
        assert!(write_secret(&p, b"x").unwrap());
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!write_secret(&p, b"x").unwrap());
        assert!(write_secret(&p, b"y").unwrap());
        // No temp file is left behind.
        assert_eq!(fs::read_dir(d.path().join("a")).unwrap().count(), 1);
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
        for dir in [d.path().join(".kubestrap"), sd.clone(), logs] {
            assert_eq!(
                fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
                0o700
            );
        }
    }

    #[test]
    fn an_empty_committed_gitignore_is_rewritten() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join(".kubestrap")).unwrap();
        fs::write(d.path().join(".kubestrap/.gitignore"), "").unwrap();
        prepare(&d.path().join(".kubestrap/lab")).unwrap();
        let gi = fs::read_to_string(d.path().join(".kubestrap/.gitignore")).unwrap();
        assert!(gi.lines().any(|l| l == "*"), "{gi:?}");
    }

    /// A committed `kubeconfig.tmp` (or `kubeconfig`) symlink must not redirect the write.
    #[test]
    fn planted_symlinks_are_replaced_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let sd = d.path().join(".kubestrap/lab");
        prepare(&sd).unwrap();
        let victim = d.path().join("victim");
        fs::write(&victim, "precious\n").unwrap();
        symlink(&victim, sd.join("kubeconfig.tmp")).unwrap();
        symlink(&victim, sd.join("kubeconfig")).unwrap();
        assert!(write_secret(&sd.join("kubeconfig"), b"admin").unwrap());
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
        let m = fs::symlink_metadata(sd.join("kubeconfig")).unwrap();
        assert!(m.is_file() && m.permissions().mode() & 0o777 == 0o600);
        assert_eq!(fs::read(sd.join("kubeconfig")).unwrap(), b"admin");
        // And a symlinked state file is never read through.
        symlink(&victim, sd.join("source")).unwrap();
        assert!(read(&sd.join("source")).is_err());
        // A .gitignore symlink is replaced too.
        let gi = d.path().join(".kubestrap/.gitignore");
        fs::remove_file(&gi).unwrap();
        symlink(&victim, &gi).unwrap();
        prepare(&sd).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
    }

    #[test]
    fn a_symlinked_state_tree_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let elsewhere = d.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        symlink(&elsewhere, d.path().join(".kubestrap")).unwrap();
        let e = prepare(&d.path().join(".kubestrap/lab")).unwrap_err();
        assert!(e.to_string().contains("it is a symlink"), "{e}");
        assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);
        // One level down as well.
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join(".kubestrap")).unwrap();
        symlink(&elsewhere, d.path().join(".kubestrap/lab")).unwrap();
        assert!(prepare(&d.path().join(".kubestrap/lab")).is_err());
        fs::remove_file(d.path().join(".kubestrap/lab")).unwrap();
        fs::create_dir_all(d.path().join(".kubestrap/lab")).unwrap();
        symlink(&elsewhere, d.path().join(".kubestrap/lab/pki")).unwrap();
        assert!(write_secret(&d.path().join(".kubestrap/lab/pki/ca.key"), b"k").is_err());
        assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);
    }

    #[test]
    fn another_users_state_tree_is_refused() {
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root to make a folder owned by someone else");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let top = d.path().join(".kubestrap");
        fs::create_dir(&top).unwrap();
        let c = std::ffi::CString::new(top.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::chown(c.as_ptr(), 65534, 65534) }, 0);
        let e = prepare(&top.join("lab")).unwrap_err();
        assert!(e.to_string().contains("owned by uid 65534"), "{e}");
    }

    #[test]
    fn the_console_lock_names_its_holder() {
        let d = tempfile::tempdir().unwrap();
        let first = lock(d.path(), "kubestrap up on laptop, pid 42").unwrap();
        let e = lock(d.path(), "kubestrap up on ci, pid 7").err().unwrap();
        assert!(
            e.contains("another kubestrap run holds this cluster"),
            "{e}"
        );
        assert!(e.contains("kubestrap up on laptop, pid 42"), "{e}");
        drop(first);
        let again = lock(d.path(), "kubestrap up on ci, pid 7").unwrap();
        drop(again);
        assert_eq!(
            fs::read_to_string(d.path().join("lock")).unwrap(),
            "kubestrap up on ci, pid 7\n"
        );
    }

    #[test]
    fn fifos_are_not_read() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("fifo");
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(read(&p).is_err());
    }
}
