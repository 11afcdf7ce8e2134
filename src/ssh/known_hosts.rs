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
    /// The key is marked `@revoked` (this wins over any line that records it, in any file).
    Revoked(Place),
    /// No key of this type is recorded for the host, but one of another type is (the first such
    /// line, and its type as OpenSSH names it, e.g. `ECDSA`). OpenSSH treats this as a changed
    /// host key ("REMOTE HOST IDENTIFICATION HAS CHANGED") whatever StrictHostKeyChecking says.
    OtherType { place: Place, recorded: String },
    /// Nothing recorded for this host.
    Unknown,
}

/// The name OpenSSH looks up: `host` on port 22, else `[host]:port`.
pub fn host_field(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// A key type as OpenSSH's messages name it ("ED25519", "ECDSA", "RSA", ...).
pub fn key_type_name(key: &PublicKey) -> &'static str {
    algorithm_name(&key.algorithm())
}

fn algorithm_name(alg: &keys::Algorithm) -> &'static str {
    use keys::Algorithm as A;
    match alg {
        A::Ed25519 => "ED25519",
        A::Ecdsa { .. } => "ECDSA",
        A::Rsa { .. } => "RSA",
        A::Dsa => "DSA",
        A::SkEd25519 => "ED25519-SK",
        A::SkEcdsaSha2NistP256 => "ECDSA-SK",
        _ => "unknown-type",
    }
}

/// Check `key` for `host:port` against `files` (missing files are skipped), as OpenSSH does:
/// every file is read; a matching `@revoked` key wins, then a line recording the key, then a line
/// with another key of the same type (changed), then a line with a key of another type. The host
/// name is lower-cased first, as `ssh` does before looking it up (this matters for hashed lines,
/// which `ssh-keygen -H` writes from the lower-cased name). Unreadable files are an error
/// naming the file.
pub fn check(host: &str, port: u16, key: &PublicKey, files: &[PathBuf]) -> Result<Check, String> {
    let name = host_field(&host.to_ascii_lowercase(), port);
    let (mut known, mut changed, mut other_type) = (None, None, None);
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
            let same = entry
                .key
                .as_ref()
                .is_some_and(|k| k.key_data() == key.key_data());
            match entry.marker {
                Marker::CertAuthority => continue,
                // A revoked key is refused for every host, whatever its host field says.
                Marker::Revoked if same => return Ok(Check::Revoked(place())),
                Marker::Revoked => continue,
                Marker::None => {}
            }
            if !hosts_match(entry.hosts, &name) {
                continue;
            }
            let Some(k) = entry.key else { continue };
            if same {
                known.get_or_insert_with(place);
            } else if k.algorithm() == key.algorithm() {
                changed.get_or_insert_with(place);
            } else {
                other_type.get_or_insert_with(|| (place(), algorithm_name(&k.algorithm())));
            }
        }
    }
    Ok(match (known, changed, other_type) {
        (Some(p), _, _) => Check::Known(p),
        (None, Some(p), _) => Check::Changed(p),
        (None, None, Some((place, recorded))) => Check::OtherType {
            place,
            recorded: recorded.to_string(),
        },
        (None, None, None) => Check::Unknown,
    })
}

static APPEND: Mutex<()> = Mutex::new(());

/// Record `key` for `host:port` at the end of `file` (created 0600 with a 0700 directory when
/// missing), the way `ssh` does with `StrictHostKeyChecking accept-new` (the host lower-cased, as
/// ssh writes it). Returns the line number.
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
        host_field(&host.to_ascii_lowercase(), port),
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

/// A host field matches `name` (already lower-cased): hashed (`|1|salt|hash`, HMAC-SHA1 of the
/// name) or a pattern list where a positive pattern matches and no negated one does.
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
            Check::Unknown,
            "another port is another host"
        );
        assert_eq!(check("OTHER", 22, &b, &files).unwrap(), Check::Known(at(4)));
        assert_eq!(check("x.lab", 22, &a, &files).unwrap(), Check::Known(at(5)));
        assert_eq!(check("bad.lab", 22, &a, &files).unwrap(), Check::Unknown);
        // A key of another type is not a changed key of the same type.
        assert_eq!(
            check("10.0.0.5", 22, &a, &files).unwrap(),
            Check::OtherType {
                place: at(6),
                recorded: "ECDSA".into()
            }
        );
        assert_eq!(
            check("10.0.0.5", 22, &e, &files).unwrap(),
            Check::Known(at(6))
        );
        // @cert-authority lines never match plain keys.
        assert_eq!(check("a.corp", 22, &b, &files).unwrap(), Check::Unknown);
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
        assert_eq!(check("10.0.0.1", 22, &a, &files).unwrap(), Check::Unknown);

        let rev = d.path().join("revoked");
        std::fs::write(&rev, format!("@revoked * {btext}\n")).unwrap();
        let files = vec![rev.clone(), kh.clone()];
        assert_eq!(
            check("10.0.0.2", 22, &b, &files).unwrap(),
            Check::Revoked(Place { file: rev, line: 1 })
        );
    }

    #[test]
    fn revoked_wins_over_a_plain_line_for_the_same_key() {
        let d = tempfile::tempdir().unwrap();
        let (a, atext) = keygen(d.path(), "a", "ed25519");
        let kh = d.path().join("known_hosts");
        // The plain line comes first; OpenSSH still refuses the key (ssh says "was revoked").
        std::fs::write(&kh, format!("10.0.0.2 {atext}\n@revoked * {atext}\n")).unwrap();
        assert_eq!(
            check("10.0.0.2", 22, &a, std::slice::from_ref(&kh)).unwrap(),
            Check::Revoked(Place {
                file: kh.clone(),
                line: 2
            })
        );
        // Across files too: known in the inventory's file, revoked in the user's.
        let known = d.path().join("inventory_known_hosts");
        std::fs::write(&known, format!("10.0.0.2 {atext}\n")).unwrap();
        let rev = d.path().join("user_known_hosts");
        std::fs::write(&rev, format!("# revoked\n@revoked 10.0.0.* {atext}\n")).unwrap();
        assert_eq!(
            check("10.0.0.2", 22, &a, &[known, rev.clone()]).unwrap(),
            Check::Revoked(Place { file: rev, line: 2 })
        );
    }

    #[test]
    fn hashed_lookups_lowercase_the_host_like_ssh() {
        let d = tempfile::tempdir().unwrap();
        let (a, atext) = keygen(d.path(), "a", "ed25519");
        let (b, btext) = keygen(d.path(), "b", "ed25519");
        let kh = d.path().join("known_hosts");
        std::fs::write(
            &kh,
            format!("MyHost.Example {atext}\n[Lab-CP1.Example]:2222 {btext}\n"),
        )
        .unwrap();
        let o = std::process::Command::new("ssh-keygen")
            .arg("-H")
            .arg("-f")
            .arg(&kh)
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
        let text = std::fs::read_to_string(&kh).unwrap();
        assert!(!text.to_lowercase().contains("example"), "{text}");
        // ssh-keygen hashed the lower-cased names (ssh lower-cases the host before looking it up).
        for name in ["myhost.example", "[lab-cp1.example]:2222"] {
            let o = std::process::Command::new("ssh-keygen")
                .args(["-F", name, "-f"])
                .arg(&kh)
                .output()
                .unwrap();
            assert!(o.status.success(), "ssh-keygen -F {name}: {o:?}");
        }
        let files = vec![kh.clone()];
        let at = |line| Place {
            file: kh.clone(),
            line,
        };
        for host in ["MyHost.Example", "myhost.example", "MYHOST.EXAMPLE"] {
            assert_eq!(
                check(host, 22, &a, &files).unwrap(),
                Check::Known(at(1)),
                "{host}"
            );
        }
        assert_eq!(
            check("Lab-CP1.example", 2222, &b, &files).unwrap(),
            Check::Known(at(2))
        );
        assert_eq!(
            check("LAB-CP1.EXAMPLE", 2222, &a, &files).unwrap(),
            Check::Changed(at(2))
        );
        // What kubestrap records is what ssh would record: the lower-cased name.
        let learned = d.path().join("learned");
        learn("MyHost.Example", 2200, &a, &learned).unwrap();
        let text = std::fs::read_to_string(&learned).unwrap();
        assert!(
            text.starts_with("[myhost.example]:2200 ssh-ed25519 "),
            "{text}"
        );
    }

    #[test]
    fn a_host_known_only_by_a_key_of_another_type_is_not_unknown() {
        let d = tempfile::tempdir().unwrap();
        let (a, _) = keygen(d.path(), "a", "ed25519");
        let (_, etext) = keygen(d.path(), "e", "ecdsa");
        let kh = d.path().join("known_hosts");
        std::fs::write(&kh, format!("other {etext}\n[10.0.0.5]:2222 {etext}\n")).unwrap();
        assert_eq!(
            check("10.0.0.5", 2222, &a, std::slice::from_ref(&kh)).unwrap(),
            Check::OtherType {
                place: Place {
                    file: kh.clone(),
                    line: 2
                },
                recorded: "ECDSA".into(),
            }
        );
        assert_eq!(key_type_name(&a), "ED25519");
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
