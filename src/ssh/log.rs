//! The per-host log: every command and its full output, redacted before it is written.

use std::path::Path;
use std::sync::Mutex;

use crate::redact::Redactor;

/// A per-host log file: every command and its full output, redacted.
pub struct HostLog {
    file: Mutex<Option<std::fs::File>>,
    pub(super) redactor: Redactor,
    /// Remote output not yet written: redaction works on whole lines and whole PEM blocks, and
    /// SSH delivers output in arbitrary chunks.
    pending: Mutex<String>,
}

impl HostLog {
    pub fn open(path: Option<&Path>, redactor: Redactor) -> Self {
        let file = path.and_then(|p| crate::state::open_log(p).ok());
        HostLog {
            file: Mutex::new(file),
            redactor,
            pending: Mutex::new(String::new()),
        }
    }

    /// A chunk of a command's output: written once its lines (and any private-key block in
    /// them) are complete, so the redactor sees them whole.
    pub fn output(&self, chunk: &str) {
        let mut p = self.pending.lock().unwrap();
        p.push_str(chunk);
        let mut cut = p.rfind('\n').map_or(0, |i| i + 1);
        if let Some(begin) = p[..cut].rfind("-----BEGIN ") {
            if p[begin..].contains("PRIVATE KEY") && !p[begin..cut].contains("-----END ") {
                cut = begin;
            }
        }
        if cut > 0 {
            let ready: String = p.drain(..cut).collect();
            drop(p);
            self.write(&ready);
        }
    }

    /// Write whatever output is still held back (the command ended or timed out).
    pub fn flush_output(&self) {
        let rest = std::mem::take(&mut *self.pending.lock().unwrap());
        if !rest.is_empty() {
            self.write(&rest);
            if !rest.ends_with('\n') {
                self.write("\n");
            }
        }
    }

    pub fn write(&self, text: &str) {
        use std::io::Write;
        if let Some(f) = self.file.lock().unwrap().as_mut() {
            let _ = f.write_all(self.redactor.redact(text).as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_log_redacts_key_material_split_across_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.log");
        let log = HostLog::open(Some(&path), Redactor::new());
        let text = "BEGIN admin.conf\n    client-certificate-data: Q0VSVA==\n    client-key-data: S0VZU0VDUkVUS0VZU0VDUkVU\nEND admin.conf\n\
                    -----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIsecretsecretsecret\nMoreSecretLine\n-----END EC PRIVATE KEY-----\ndone";
        // every chunk size splits the secrets somewhere
        for size in [1, 3, 7, 16, 50] {
            let bytes = text.as_bytes();
            for c in bytes.chunks(size) {
                log.output(std::str::from_utf8(c).unwrap());
            }
            log.flush_output();
        }
        let written = std::fs::read_to_string(&path).unwrap();
        for secret in ["S0VZU0VDUkVU", "secretsecret", "MoreSecretLine"] {
            assert!(!written.contains(secret), "{secret} leaked:\n{written}");
        }
        assert_eq!(
            written.matches("client-certificate-data: Q0VSVA==").count(),
            5
        );
        assert_eq!(written.matches("done\n").count(), 5);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
