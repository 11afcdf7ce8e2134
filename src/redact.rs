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
    pub fn add(&self, secret: &str) {
        if secret.len() < 6 {
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
        let mut out = text.to_string();
        for secret in s.iter() {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "<redacted>");
            }
        }
        out
    }
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
    fn clones_share_secrets() {
        let r = Redactor::new();
        let c = r.clone();
        r.add("supersecretpassword");
        assert!(!c.redact("x supersecretpassword").contains("supersecret"));
    }
}
