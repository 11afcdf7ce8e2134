//! known_hosts as OpenSSH writes and reads it: plain and hashed (`|1|salt|hash`) host fields,
//! `[host]:port` for ports other than 22, comma-separated patterns with `*`, `?` and `!negation`,
//! `@revoked` keys (refused) and `@cert-authority` lines (not used for plain keys, skipped).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine;
use hmac::{KeyInit, Mac};
use russh::keys::{self, PublicKey};

use super::config::wildcard;

/// Where a key was found: file and 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub file: PathBuf,
    pub line: usize,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// The key is recorded for this host.
    Known(Place),
    /// A key of the same type is recorded for this host, with other material.
    Changed(Place),
    /// The key is marked `@revoked`.
    Revoked(Place),
    /// Nothing recorded for this host and key type. `other_types` lists lines holding keys of
    /// other types for the host (informational).
    Unknown { other_types: Vec<Place> },
}

/// The name OpenSSH looks up: `host` on port 22, else `[host]:port`.
pub fn host_field(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// Check `key` for `host:port` against `files` in order (missing files are skipped).
/// Unreadable files are an error naming the file.
pub fn check(host: &str, port: u16, key: &PublicKey, files: &[PathBuf]) -> Result<Check, String> {
    let name = host_field(host, port);
    let mut changed = None;
    let mut other_types = Vec::new();
    for file in files {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
        };
        for (i, line) in text.lines().enumerate() {
            let place = || Place {
                file: file.clone(),
                line: i + 1,
            };
            let Some(entry) = parse_line(line) else {
                continue;
            };
            match entry.marker {
                Marker::CertAuthority => continue,
                Marker::Revoked => {
                    if entry
                        .key
                        .as_ref()
                        .is_some_and(|k| k.key_data() == key.key_data())
                    {
                        return Ok(Check::Revoked(place()));
                    }
                    continue;
                }
                Marker::None => {}
            }
            if !hosts_match(entry.hosts, &name) {
                continue;
            }
            let Some(k) = entry.key else { continue };
            if k.key_data() == key.key_data() {
                return Ok(Check::Known(place()));
            }
            if k.algorithm() == key.algorithm() {
                changed.get_or_insert_with(place);
            } else {
                other_types.push(place());
            }
        }
    }
    Ok(match changed {
        Some(p) => Check::Changed(p),
        None => Check::Unknown { other_types },
    })
}

static APPEND: Mutex<()> = Mutex::new(());

/// Record `key` for `host:port` at the end of `file` (created 0600 with a 0700 directory when
/// missing), the way `ssh` does with `StrictHostKeyChecking accept-new`. Returns the line number.
pub fn learn(host: &str, port: u16, key: &PublicKey, file: &Path) -> Result<usize, String> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let _guard = APPEND.lock().unwrap();
    let what = |e: std::io::Error| format!("cannot record the host key in {}: {e}", file.display());
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(what)?;
        }
    }
    let existing = std::fs::read(file).unwrap_or_default();
    let mut line = format!(
        "{} {}\n",
        host_field(host, port),
        key.to_openssh()
            .map_err(|e| format!("cannot encode the host key: {e}"))?
    );
    if !existing.is_empty() && !existing.ends_with(b"\n") {
        line.insert(0, '\n');
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(file)
        .map_err(what)?;
    f.write_all(line.as_bytes()).map_err(what)?;
    let before = existing.iter().filter(|b| **b == b'\n').count();
    Ok(before + line.matches('\n').count())
}

enum Marker {
    None,
    Revoked,
    CertAuthority,
}

struct Entry<'a> {
    marker: Marker,
    hosts: &'a str,
    /// None when the key does not parse (an unknown type): the line is skipped, not fatal.
    key: Option<PublicKey>,
}

fn parse_line(line: &str) -> Option<Entry<'_>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut f = line.split_whitespace();
    let mut first = f.next()?;
    let marker = match first {
        "@revoked" => Marker::Revoked,
        "@cert-authority" => Marker::CertAuthority,
        m if m.starts_with('@') => return None,
        _ => Marker::None,
    };
    if !matches!(marker, Marker::None) {
        first = f.next()?;
    }
    let _keytype = f.next()?;
    let b64 = f.next()?;
    let key = keys::parse_public_key_base64(b64).ok();
    Some(Entry {
        marker,
        hosts: first,
        key,
    })
}

/// A host field matches `name`: hashed (`|1|salt|hash`, HMAC-SHA1 of the name) or a pattern list
/// where a positive pattern matches and no negated one does.
fn hosts_match(field: &str, name: &str) -> bool {
    if let Some(h) = field.strip_prefix("|1|") {
        return hashed_match(h, name);
    }
    let name = name.to_ascii_lowercase();
    let mut hit = false;
    for p in field.split(',') {
        let p = p.to_ascii_lowercase();
        if let Some(neg) = p.strip_prefix('!') {
            if wildcard(neg, &name) {
                return false;
            }
        } else if wildcard(&p, &name) {
            hit = true;
        }
    }
    hit
}

fn hashed_match(salt_hash: &str, name: &str) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD;
    let Some((salt, hash)) = salt_hash.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (b64.decode(salt), b64.decode(hash)) else {
        return false;
    };
    let Ok(mut mac) = <hmac::Hmac<sha1::Sha1> as KeyInit>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(name.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keygen(dir: &Path, name: &str, kind: &str) -> (PublicKey, String) {
        let p = dir.join(name);
        let o = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", kind, "-N", "", "-C", "a comment", "-f"])
            .arg(&p)
            .output()
            .unwrap();
        assert!(o.status.success());
        let text = std::fs::read_to_string(p.with_extension("pub")).unwrap();
        let mut k = keys::parse_public_key_base64(text.split_whitespace().nth(1).unwrap()).unwrap();
        k.set_comment("");
        (k, text.trim().to_string())
    }

    #[test]
    fn plain_ports_patterns_and_changed_lines() {
        let d = tempfile::tempdir().unwrap();
        let (a, atext) = keygen(d.path(), "a", "ed25519");
        let (b, btext) = keygen(d.path(), "b", "ed25519");
        let (e, etext) = keygen(d.path(), "e", "ecdsa");
        let kh = d.path().join("known_hosts");
        std::fs::write(
            &kh,
            format!(
                "# header\n\n[10.0.0.1]:2222 {atext}\n10.0.0.9,other {btext}\n*.lab,!bad.lab {atext}\n10.0.0.5 {etext}\n@cert-authority *.corp {btext}\n"
            ),
        )
        .unwrap();
        let files = vec![d.path().join("missing"), kh.clone()];
        let at = |line| Place {
            file: kh.clone(),
            line,
        };
        assert_eq!(
            check("10.0.0.1", 2222, &a, &files).unwrap(),
            Check::Known(at(3))
        );
        assert_eq!(
            check("10.0.0.1", 2222, &b, &files).unwrap(),
            Check::Changed(at(3))
        );
        assert_eq!(
            check("10.0.0.1", 22, &a, &files).unwrap(),
            Check::Unknown {
                other_types: vec![]
            },
            "another port is another host"
        );
        assert_eq!(check("OTHER", 22, &b, &files).unwrap(), Check::Known(at(4)));
        assert_eq!(check("x.lab", 22, &a, &files).unwrap(), Check::Known(at(5)));
        assert_eq!(
            check("bad.lab", 22, &a, &files).unwrap(),
            Check::Unknown {
                other_types: vec![]
            }
        );
        // A key of another type is not a changed key.
        assert_eq!(
            check("10.0.0.5", 22, &a, &files).unwrap(),
            Check::Unknown {
                other_types: vec![at(6)]
            }
        );
        assert_eq!(
            check("10.0.0.5", 22, &e, &files).unwrap(),
            Check::Known(at(6))
        );
        // @cert-authority lines never match plain keys.
        assert_eq!(
            check("a.corp", 22, &b, &files).unwrap(),
            Check::Unknown {
                other_types: vec![]
            }
        );
    }

    #[test]
    fn hashed_entries_from_ssh_keygen_and_revoked_keys() {
        let d = tempfile::tempdir().unwrap();
        let (a, atext) = keygen(d.path(), "a", "ed25519");
        let (b, btext) = keygen(d.path(), "b", "ed25519");
        let kh = d.path().join("known_hosts");
        std::fs::write(&kh, format!("[10.0.0.1]:2222 {atext}\n10.0.0.2 {btext}\n")).unwrap();
        let o = std::process::Command::new("ssh-keygen")
            .arg("-H")
            .arg("-f")
            .arg(&kh)
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
        let text = std::fs::read_to_string(&kh).unwrap();
        assert!(
            text.starts_with("|1|") && !text.contains("10.0.0"),
            "{text}"
        );
        let files = vec![kh.clone()];
        assert!(
            matches!(check("10.0.0.1", 2222, &a, &files).unwrap(), Check::Known(p) if p.line == 1)
        );
        assert!(
            matches!(check("10.0.0.2", 22, &b, &files).unwrap(), Check::Known(p) if p.line == 2)
        );
        assert!(
            matches!(check("10.0.0.2", 22, &a, &files).unwrap(), Check::Changed(p) if p.line == 2)
        );
        assert!(matches!(
            check("10.0.0.1", 22, &a, &files).unwrap(),
            Check::Unknown { .. }
        ));

        let rev = d.path().join("revoked");
        std::fs::write(&rev, format!("@revoked * {btext}\n")).unwrap();
        let files = vec![rev.clone(), kh.clone()];
        assert_eq!(
            check("10.0.0.2", 22, &b, &files).unwrap(),
            Check::Revoked(Place { file: rev, line: 1 })
        );
    }

    #[test]
    fn learn_appends_in_openssh_format() {
        let d = tempfile::tempdir().unwrap();
        let (a, _) = keygen(d.path(), "a", "ed25519");
        let (b, _) = keygen(d.path(), "b", "ed25519");
        let kh = d.path().join("sub/dir/known_hosts");
        assert_eq!(learn("10.0.0.1", 2222, &a, &kh).unwrap(), 1);
        std::fs::write(&kh, std::fs::read_to_string(&kh).unwrap() + "# no newline").unwrap();
        assert_eq!(learn("10.0.0.2", 22, &b, &kh).unwrap(), 3);
        let files = vec![kh.clone()];
        assert!(
            matches!(check("10.0.0.1", 2222, &a, &files).unwrap(), Check::Known(p) if p.line == 1)
        );
        assert!(
            matches!(check("10.0.0.2", 22, &b, &files).unwrap(), Check::Known(p) if p.line == 3)
        );
        // OpenSSH reads what we wrote.
        let o = std::process::Command::new("ssh-keygen")
            .args(["-F", "[10.0.0.1]:2222", "-f"])
            .arg(&kh)
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&kh).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
