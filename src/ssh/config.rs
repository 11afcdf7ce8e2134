//! The subset of OpenSSH's client configuration (`~/.ssh/config`) kubestrap honours, so a host's
//! `address` can be an alias users already have: `HostName`, `User`, `Port`, `IdentityFile`,
//! `ProxyJump` and `Include`, under `Host` patterns (`*`, `?`, `!negation`, case-sensitive,
//! whitespace-separated). As in OpenSSH the first value found for a keyword wins (`IdentityFile`
//! accumulates); `Match` blocks other than `Match all` are skipped. What kubestrap cannot follow
//! (`ProxyCommand`, `CanonicalizeHostname yes`) and what ssh itself refuses (a bad `Port`, a
//! keyword without its value) are errors naming the file and line.

use std::path::{Path, PathBuf};

/// What the configuration says about one host alias. `None` = not set.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HostConfig {
    pub host_name: Option<String>,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_files: Vec<PathBuf>,
    /// `ProxyJump` as written (`none` is returned as `Some("none")`).
    pub proxy_jump: Option<String>,
}

/// A configuration line kubestrap will not guess about: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub problem: Problem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// `Keyword` with nothing after it.
    MissingValue { keyword: String },
    /// A one-value keyword with more after it.
    ExtraValues { keyword: String },
    /// `Port` that is no number in 1..=65535 (nor a service name).
    BadPort { value: String },
    /// `ProxyJump` that does not parse.
    BadProxyJump { value: String, reason: String },
    /// An option that applies to `alias` and would make `ssh alias` connect somewhere kubestrap
    /// cannot follow (ProxyCommand, CanonicalizeHostname).
    Unsupported {
        alias: String,
        keyword: String,
        value: String,
    },
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: ", self.file.display(), self.line)?;
        match &self.problem {
            Problem::MissingValue { keyword } => write!(
                f,
                "{keyword} has no value; give one or delete the line (ssh refuses this file too)"
            ),
            Problem::ExtraValues { keyword } => write!(
                f,
                "{keyword} takes one value, this line has more; keep one (ssh refuses this file too)"
            ),
            Problem::BadPort { value } => write!(
                f,
                "Port {value:?} is not a port; write a number from 1 to 65535 (ssh refuses this file too)"
            ),
            Problem::BadProxyJump { value, reason } => write!(
                f,
                "ProxyJump {value:?} is not a list of jump hosts ({reason}); write [user@]host[:port][,...] or none"
            ),
            Problem::Unsupported {
                alias,
                keyword,
                value,
            } if keyword == "ProxyCommand" => write!(
                f,
                "host {alias:?} gets ProxyCommand {value:?} here, which kubestrap cannot run (it opens its own \
                 connections), so it would not connect where `ssh {alias}` does. Use ProxyJump (or ssh.bastion in \
                 the inventory) instead, or put `ProxyCommand none` in a Host {alias} block before this line"
            ),
            Problem::Unsupported {
                alias,
                keyword,
                value,
            } => write!(
                f,
                "host {alias:?} gets {keyword} {value} here, which kubestrap does not do, so it might not connect \
                 where `ssh {alias}` does. Set HostName to the full name, or `{keyword} no`, in a Host {alias} block \
                 before this line"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

/// `~/.ssh/config` of the user running kubestrap (`$HOME`), if there is one.
pub fn user_config_path() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    let p = PathBuf::from(home).join(".ssh/config");
    p.is_file().then_some(p)
}

/// Resolve `alias` through the configuration file at `path` (a missing file gives the empty
/// result). `home` expands `~` and anchors relative `Include` paths (`~/.ssh/`).
///
/// As `ssh` does: `Host` patterns are whitespace-separated (a comma is part of the pattern) and
/// match the alias case-sensitively; every line is checked, in blocks that do not apply and in
/// files they include too, so a bad `Port` or a keyword without its value is an error wherever it
/// is. An option that applies and would make `ssh` connect somewhere kubestrap cannot follow
/// (`ProxyCommand` other than `none`; `CanonicalizeHostname yes|always` with `CanonicalDomains`,
/// unless ssh would skip it for a ProxyJump) is an error naming the alias, never silently ignored.
pub fn resolve(alias: &str, path: &Path, home: Option<&Path>) -> Result<HostConfig, ConfigError> {
    let mut out = HostConfig::default();
    let mut st = State {
        alias,
        home,
        out: &mut out,
        proxy_set: false,
        canonicalize: None,
        canonical_domains: false,
    };
    st.file(path, 0, false)?;
    // ssh canonicalizes only with CanonicalDomains, and through a proxy only when `always`.
    let (canonicalize, domains) = (st.canonicalize, st.canonical_domains);
    if let Some(e) = canonicalize {
        let direct = out.proxy_jump.as_deref().is_none_or(|j| j == "none");
        if let Problem::Unsupported { value, .. } = &e.problem {
            if domains && (value == "always" || (direct && (value == "yes" || value == "true"))) {
                return Err(e);
            }
        }
    }
    let cfg = &mut out;
    // %h in HostName is the alias itself.
    if let Some(h) = &cfg.host_name {
        cfg.host_name = Some(h.replace("%h", alias).replace("%%", "%"));
    }
    Ok(out)
}

struct State<'a> {
    alias: &'a str,
    home: Option<&'a Path>,
    out: &'a mut HostConfig,
    /// ProxyJump or ProxyCommand seen (the first of either wins, as in ssh).
    proxy_set: bool,
    /// The first CanonicalizeHostname that applies, as the error it is when it takes effect.
    canonicalize: Option<ConfigError>,
    /// Some CanonicalDomains applies.
    canonical_domains: bool,
}

/// The keywords kubestrap reads, as the manual spells them (for messages).
const KEYWORDS: &[&str] = &[
    "HostName",
    "User",
    "Port",
    "ProxyJump",
    "ProxyCommand",
    "IdentityFile",
    "Include",
    "CanonicalizeHostname",
];
/// Those that take exactly one value.
const ONE_VALUE: &[&str] = &[
    "hostname",
    "user",
    "port",
    "proxyjump",
    "canonicalizehostname",
];

impl State<'_> {
    /// Read one file. `never_match`: it is included from a block that does not apply, so it is
    /// only checked for errors (ssh's SSHCONF_NEVERMATCH).
    fn file(&mut self, path: &Path, depth: usize, never_match: bool) -> Result<(), ConfigError> {
        let Ok(text) = std::fs::read_to_string(path) else {
            return Ok(());
        };
        // Lines before the first Host/Match apply to every host.
        let mut active = !never_match;
        for (i, line) in text.lines().enumerate() {
            let Some((key, rest, args)) = split_line(line) else {
                continue;
            };
            let fail = |problem| ConfigError {
                file: path.to_path_buf(),
                line: i + 1,
                problem,
            };
            let spelled = || {
                KEYWORDS
                    .iter()
                    .find(|k| k.eq_ignore_ascii_case(&key))
                    .map_or(key.clone(), |k| k.to_string())
            };
            if KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(&key)) {
                if args.is_empty() {
                    return Err(fail(Problem::MissingValue { keyword: spelled() }));
                }
                if args.len() > 1 && ONE_VALUE.contains(&key.as_str()) {
                    return Err(fail(Problem::ExtraValues { keyword: spelled() }));
                }
            }
            let value = args.first().cloned().unwrap_or_default();
            match key.as_str() {
                "host" => active = !never_match && host_matches(self.alias, &args),
                "match" => {
                    active = !never_match && args.len() == 1 && args[0].eq_ignore_ascii_case("all")
                }
                "include" if depth < 16 => {
                    for a in &args {
                        for f in self.include_files(a) {
                            self.file(&f, depth + 1, !active)?;
                        }
                    }
                }
                "port" => {
                    let port = parse_port(&value).ok_or_else(|| {
                        fail(Problem::BadPort {
                            value: value.clone(),
                        })
                    })?;
                    if active && self.out.port.is_none() {
                        self.out.port = Some(port);
                    }
                }
                "proxyjump" => {
                    parse_jumps(&value).map_err(|reason| {
                        fail(Problem::BadProxyJump {
                            value: value.clone(),
                            reason,
                        })
                    })?;
                    if active && !self.proxy_set {
                        self.proxy_set = true;
                        self.out.proxy_jump = Some(value);
                    }
                }
                "proxycommand" if active && !self.proxy_set => {
                    self.proxy_set = true;
                    // The command is the rest of the line, as written.
                    if !rest.eq_ignore_ascii_case("none") {
                        return Err(fail(Problem::Unsupported {
                            alias: self.alias.to_string(),
                            keyword: "ProxyCommand".into(),
                            value: rest,
                        }));
                    }
                }
                "canonicalizehostname" if active && self.canonicalize.is_none() => {
                    self.canonicalize = Some(fail(Problem::Unsupported {
                        alias: self.alias.to_string(),
                        keyword: "CanonicalizeHostname".into(),
                        value: value.to_ascii_lowercase(),
                    }));
                }
                "canonicaldomains" if active => self.canonical_domains = true,
                _ if !active => {}
                "hostname" => set(&mut self.out.host_name, args.first()),
                "user" => set(&mut self.out.user, args.first()),
                "identityfile" => {
                    for a in &args {
                        let p = self.expand(a);
                        if !self.out.identity_files.contains(&p) {
                            self.out.identity_files.push(p);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn expand(&self, s: &str) -> PathBuf {
        let home = self.home.map(|h| h.to_string_lossy().into_owned());
        let mut s = s.replace("%h", self.alias);
        if let Some(h) = &home {
            s = s.replace("%d", h);
            if let Some(rest) = s.strip_prefix("~/") {
                s = format!("{h}/{rest}");
            } else if s == "~" {
                s = h.clone();
            }
        }
        PathBuf::from(s.replace("%%", "%"))
    }

    /// Files named by one `Include` argument: relative paths are under ~/.ssh; `*`/`?` in the
    /// last component are expanded (sorted, as glob(3) does).
    fn include_files(&self, arg: &str) -> Vec<PathBuf> {
        let mut p = self.expand(arg);
        if p.is_relative() {
            if let Some(h) = self.home {
                p = h.join(".ssh").join(p);
            }
        }
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !name.contains(['*', '?']) {
            return vec![p];
        }
        let dir = p.parent().unwrap_or(Path::new("."));
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| wildcard(&name, &e.file_name().to_string_lossy()))
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        files
    }
}

fn set(slot: &mut Option<String>, v: Option<&String>) {
    if slot.is_none() {
        *slot = v.cloned();
    }
}

/// `Keyword args...` or `Keyword=args`: the keyword lower-cased, the rest of the line as written
/// (trailing blanks dropped) and its arguments; comments and blank lines give None.
fn split_line(line: &str) -> Option<(String, String, Vec<String>)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let key = line[..end].to_ascii_lowercase();
    let rest = line[end..].trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest).trim_start();
    Some((key, rest.to_string(), split_args(rest)))
}

/// OpenSSH's a2port: a number from 1 to 65535, or a TCP service name from the services database
/// (`Port ssh` is 22).
fn parse_port(s: &str) -> Option<u16> {
    if s.bytes()
        .all(|b| b.is_ascii_digit() || b == b'+' || b == b'-')
    {
        return s.parse::<u16>().ok().filter(|p| *p != 0);
    }
    let name = std::ffi::CString::new(s).ok()?;
    // getservbyname returns a pointer into static storage: one caller at a time.
    static SERV: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = SERV.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: both arguments are NUL-terminated; the result is read before the lock is released.
    let port = unsafe {
        let se = libc::getservbyname(name.as_ptr(), c"tcp".as_ptr());
        if se.is_null() {
            return None;
        }
        u16::from_be((*se).s_port as u16)
    };
    (port != 0).then_some(port)
}

/// Whitespace-separated arguments, double quotes group.
fn split_args(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in s.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// A `Host` line's patterns (whitespace-separated; a comma is part of a pattern, as in ssh):
/// some positive pattern matches and no negated one does. Case-sensitive, as ssh matches them.
fn host_matches(host: &str, patterns: &[String]) -> bool {
    let mut hit = false;
    for p in patterns {
        if let Some(neg) = p.strip_prefix('!') {
            if wildcard(neg, host) {
                return false;
            }
        } else if wildcard(p, host) {
            hit = true;
        }
    }
    hit
}

/// OpenSSH's match_pattern: `*` any run, `?` any one character.
pub fn wildcard(pattern: &str, s: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = s.chars().collect();
    let (mut pi, mut si) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// One hop of a `ProxyJump`/`ssh.bastion`: `[user@]host[:port]` (IPv6 as `[addr]:port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JumpSpec {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

/// Parse `[user@]host[:port][,...]`; `ssh://` URLs are accepted too. `none` gives no hops.
pub fn parse_jumps(s: &str) -> Result<Vec<JumpSpec>, String> {
    if s.trim().eq_ignore_ascii_case("none") {
        return Ok(vec![]);
    }
    s.split(',').map(|h| parse_jump(h.trim())).collect()
}

fn parse_jump(s: &str) -> Result<JumpSpec, String> {
    let s = s.strip_prefix("ssh://").unwrap_or(s);
    let (user, hp) = match s.rsplit_once('@') {
        Some((u, rest)) => (Some(u.to_string()), rest),
        None => (None, s),
    };
    let (host, port) = if let Some(rest) = hp.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{s:?}: missing ']'"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(format!("{s:?}: junk after ']'")),
        };
        (h.to_string(), port)
    } else if hp.matches(':').count() == 1 {
        let (h, p) = hp.split_once(':').unwrap();
        (h.to_string(), Some(p))
    } else {
        (hp.to_string(), None)
    };
    if host.is_empty() {
        return Err(format!("{s:?}: no host"));
    }
    let port = match port {
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("{s:?}: {p:?} is not a port"))?,
        ),
        None => None,
    };
    Ok(JumpSpec { user, host, port })
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
