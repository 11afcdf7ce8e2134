//! Secrets (bootstrap tokens, certificate keys, passwords) are registered here once and scrubbed
//! from everything kubestrap writes: terminal, logs and JSON events.

use std::sync::{Arc, RwLock};

#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Arc<RwLock<Vec<String>>>,
}

impl Redactor {
    pub fn new() -> Self {
        Self::default()
    }

    /// Register a secret. A bootstrap token also registers its secret half on its own, since
    /// tools print `id.secret` and sometimes the secret alone.
    /// Every non-empty secret counts, however short: a three-letter password is still a password.
    pub fn add(&self, secret: &str) {
        if secret.is_empty() {
            return;
        }
        let mut s = self.secrets.write().unwrap();
        if !s.iter().any(|x| x == secret) {
            s.push(secret.to_string());
            // Longest first, so a token is replaced whole before its secret half.
            s.sort_by_key(|x| std::cmp::Reverse(x.len()));
        }
        if let Some((_, secret_half)) = secret.split_once('.') {
            if secret_half.len() >= 16 && !s.iter().any(|x| x == secret_half) {
                s.push(secret_half.to_string());
                s.sort_by_key(|x| std::cmp::Reverse(x.len()));
            }
        }
    }

    pub fn redact(&self, text: &str) -> String {
        let s = self.secrets.read().unwrap();
        let mut out = redact_key_material(text);
        for secret in s.iter() {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "<redacted>");
            }
        }
        out
    }
}

impl Redactor {
    /// Scrub every string (keys too) of a JSON value before it is serialised: once serialised, a
    /// secret holding `"`, `\\` or a control character is escaped and no longer matches.
    pub fn redact_json(&self, v: serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match v {
            Value::String(s) => Value::String(self.redact(&s)),
            Value::Array(a) => Value::Array(a.into_iter().map(|x| self.redact_json(x)).collect()),
            Value::Object(o) => Value::Object(
                o.into_iter()
                    .map(|(k, x)| (self.redact(&k), self.redact_json(x)))
                    .collect(),
            ),
            other => other,
        }
    }
}

/// Secrets kubestrap never registered but may read back from a host (admin.conf's client key,
/// a key file printed by a command): PEM private-key blocks and kubeconfig `client-key-data`.
fn redact_key_material(text: &str) -> String {
    use regex::Regex;
    use std::sync::OnceLock;
    static PEM: OnceLock<Regex> = OnceLock::new();
    static KUBECONFIG: OnceLock<Regex> = OnceLock::new();
    if !text.contains("PRIVATE KEY") && !text.contains("client-key-data") {
        return text.to_string();
    }
    let pem = PEM.get_or_init(|| {
        Regex::new(r"(?s)(-----BEGIN [A-Z ]*PRIVATE KEY-----).*?(-----END [A-Z ]*PRIVATE KEY-----)")
            .unwrap()
    });
    let kc =
        KUBECONFIG.get_or_init(|| Regex::new(r"(client-key-data:\s*)[A-Za-z0-9+/=]+").unwrap());
    let out = pem.replace_all(text, "$1 <redacted> $2");
    kc.replace_all(&out, "${1}<redacted>").into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_token_and_its_secret_half() {
        let r = Redactor::new();
        r.add("abcdef.0123456789abcdef");
        assert_eq!(
            r.redact("kubeadm join x --token abcdef.0123456789abcdef \\"),
            "kubeadm join x --token <redacted> \\"
        );
        assert_eq!(r.redact("secret=0123456789abcdef"), "secret=<redacted>");
        assert_eq!(r.redact("nothing here"), "nothing here");
    }

    #[test]
    fn redacts_private_keys_and_kubeconfig_client_keys() {
        let r = Redactor::new();
        let text = "users:\n- name: kubernetes-admin\n  user:\n    client-certificate-data: Q0VSVA==\n    client-key-data: S0VZU0VDUkVU\nx\n-----BEGIN RSA PRIVATE KEY-----\nMIIEsecret\n-----END RSA PRIVATE KEY-----\ntail";
        let out = r.redact(text);
        assert!(
            !out.contains("S0VZU0VDUkVU") && !out.contains("MIIEsecret"),
            "{out}"
        );
        assert!(out.contains("client-certificate-data: Q0VSVA=="), "{out}");
        assert!(
            out.contains("client-key-data: <redacted>") && out.ends_with("tail"),
            "{out}"
        );
        assert!(out
            .contains("-----BEGIN RSA PRIVATE KEY----- <redacted> -----END RSA PRIVATE KEY-----"));
    }

    #[test]
    fn short_secrets_are_redacted_too() {
        let r = Redactor::new();
        r.add("pw9");
        assert_eq!(
            r.redact("sudo password pw9 refused"),
            "sudo password <redacted> refused"
        );
        r.add("");
        assert_eq!(r.redact("nothing"), "nothing");
    }

    #[test]
    fn json_values_are_redacted_before_serialising() {
        // A password with JSON's escape characters leaks when the serialised text is scrubbed.
        let r = Redactor::new();
        r.add("a\"b\\c\nd");
        let v = serde_json::json!({"detail": "sudo said a\"b\\c\nd", "list": ["x a\"b\\c\nd"],
                                   "a\"b\\c\nd": 1});
        let line = r.redact_json(v).to_string();
        assert!(!line.contains("b\\\"") && !line.contains("c\\nd"), "{line}");
        assert!(!line.contains("\\\\c"), "{line}");
        assert_eq!(line.matches("<redacted>").count(), 3, "{line}");
    }

    #[test]
    fn clones_share_secrets() {
        let r = Redactor::new();
        let c = r.clone();
        r.add("supersecretpassword");
        assert!(!c.redact("x supersecretpassword").contains("supersecret"));
    }
}
