//! `ssh:` blocks (the top-level defaults and each host's override) and how they merge.

use std::path::{Path, PathBuf};

use super::super::raw::RawSsh;
use super::super::{HostKeyPolicy, SshSettings};
use super::address::{is_numeric_name, numeric_name_message, split_host_port};
use super::text::{is_env_name, login_name_problem, LOGIN_RULE};
use super::{at, one_of, Ctx, Pos};

/// The three fields naming an environment variable that holds a secret.
pub(crate) const SECRET_FIELDS: [&str; 3] = ["passwordEnv", "passphraseEnv", "sudoPasswordEnv"];

/// One validated `ssh:` block (defaults or a host override); `None` = not set here.
#[derive(Default, Clone)]
pub(crate) struct SshLayer {
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_file: Option<PathBuf>,
    pub known_hosts_file: Option<PathBuf>,
    pub host_key_policy: Option<HostKeyPolicy>,
    /// Variable names for [`SECRET_FIELDS`], in that order, with the field path and position.
    pub secrets: [Option<(String, String, Pos)>; 3],
    pub bastion: Option<String>,
}

impl SshLayer {
    fn secret(&self, i: usize) -> Option<String> {
        self.secrets[i].as_ref().map(|s| s.0.clone())
    }
}

pub(crate) fn ssh_layer(ctx: &mut Ctx, raw: &RawSsh, base: &str) -> SshLayer {
    let p = |f: &str| format!("{base}.{f}");
    let mut l = SshLayer::default();
    if let Some(u) = &raw.user {
        let v = u.value.trim();
        match login_name_problem(v) {
            None => l.user = Some(v.to_string()),
            Some(why) => ctx.err(
                at(u),
                p("user"),
                format!(
                    "{:?} is not a valid login name: {why}; {LOGIN_RULE}",
                    u.value
                ),
            ),
        }
    }
    if let Some(port) = &raw.port {
        if port.value == 0 {
            ctx.err(
                at(port),
                p("port"),
                "0 is not a usable port; allowed: 1-65535",
            );
        } else {
            l.port = Some(port.value);
        }
    }
    if let Some(f) = &raw.identity_file {
        let path = p("identityFile");
        if let Some(file) = ctx.resolve_path(f, &path) {
            if file.is_file() {
                l.identity_file = Some(file);
            } else {
                let why = if file.exists() {
                    "is not a file"
                } else {
                    "does not exist"
                };
                ctx.err(
                    at(f),
                    path,
                    format!(
                        "private key {} {why}; give the path of an existing key file",
                        file.display()
                    ),
                );
            }
        }
    }
    if let Some(f) = &raw.known_hosts_file {
        l.known_hosts_file = ctx.resolve_path(f, &p("knownHostsFile"));
    }
    if let Some(k) = &raw.host_key_policy {
        l.host_key_policy = one_of(
            ctx,
            k,
            &p("hostKeyPolicy"),
            "a host key policy",
            HostKeyPolicy::ALLOWED,
            &[
                HostKeyPolicy::Strict,
                HostKeyPolicy::AcceptNew,
                HostKeyPolicy::Off,
            ],
        );
    }
    let sources = [
        &raw.password_env,
        &raw.passphrase_env,
        &raw.sudo_password_env,
    ];
    for (i, (field, src)) in SECRET_FIELDS.iter().zip(sources).enumerate() {
        let Some(s) = src else { continue };
        if is_env_name(&s.value) {
            l.secrets[i] = Some((s.value.clone(), p(field), at(s)));
        } else {
            ctx.err(
                at(s),
                p(field),
                format!(
                    "{:?} is not an environment variable name: use upper-case letters, digits and '_', not starting with a digit (e.g. SUDO_PASSWORD); give the NAME of a variable that holds the secret, never the secret itself",
                    s.value
                ),
            );
        }
    }
    if let Some(b) = &raw.bastion {
        let v = b.value.trim();
        match bastion_problem(v) {
            None => l.bastion = Some(v.to_string()),
            Some(e) => ctx.err(
                at(b),
                p("bastion"),
                format!("{v:?} is not a jump host: {e}; write [user@]host[:port]"),
            ),
        }
    }
    l
}

fn bastion_problem(v: &str) -> Option<String> {
    let hp = match v.split_once('@') {
        Some((user, rest)) => {
            if let Some(why) = login_name_problem(user) {
                return Some(format!(
                    "the user before '@' is not a valid login name ({why}; {LOGIN_RULE})"
                ));
            }
            rest
        }
        None => v,
    };
    if hp.is_empty() {
        return Some("no host".into());
    }
    let host = match hp.rsplit_once(':') {
        Some((h, p)) if !hp.starts_with('[') && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => hp,
    };
    if is_numeric_name(host) && host.parse::<std::net::IpAddr>().is_err() {
        return Some(numeric_name_message(host));
    }
    match split_host_port(hp) {
        Ok(_) => None,
        // A name from ~/.ssh/config may contain '_' or capitals.
        Err(_)
            if !host.starts_with(['-', '.'])
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                && split_host_port(&hp.to_ascii_lowercase().replace('_', "-")).is_ok() =>
        {
            None
        }
        Err(e) => Some(e),
    }
}

pub(crate) fn merge(host: &SshLayer, defaults: &SshLayer, home: Option<&Path>) -> SshSettings {
    let secret = |i: usize| host.secret(i).or(defaults.secret(i));
    SshSettings {
        user: host
            .user
            .clone()
            .or(defaults.user.clone())
            .unwrap_or_else(|| "root".into()),
        port: host.port.or(defaults.port).unwrap_or(22),
        user_explicit: host.user.is_some() || defaults.user.is_some(),
        port_explicit: host.port.is_some() || defaults.port.is_some(),
        identity_file: host
            .identity_file
            .clone()
            .or(defaults.identity_file.clone()),
        known_hosts_file: host
            .known_hosts_file
            .clone()
            .or(defaults.known_hosts_file.clone())
            .unwrap_or_else(|| match home {
                Some(h) => h.join(".ssh/known_hosts"),
                None => PathBuf::from("~/.ssh/known_hosts"),
            }),
        host_key_policy: host
            .host_key_policy
            .or(defaults.host_key_policy)
            .unwrap_or(HostKeyPolicy::Strict),
        password_env: secret(0),
        passphrase_env: secret(1),
        sudo_password_env: secret(2),
        bastion: host.bastion.clone().or(defaults.bastion.clone()),
    }
}
