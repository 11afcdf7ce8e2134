//! The subset of OpenSSH's client configuration (`~/.ssh/config`) kubestrap honours, so a host's
//! `address` can be an alias users already have: `HostName`, `User`, `Port`, `IdentityFile`,
//! `ProxyJump` and `Include`, under `Host` patterns (`*`, `?`, `!negation`). As in OpenSSH the
//! first value found for a keyword wins (`IdentityFile` accumulates); `Match` blocks are skipped.

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

/// `~/.ssh/config` of the user running kubestrap (`$HOME`), if there is one.
pub fn user_config_path() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    let p = PathBuf::from(home).join(".ssh/config");
    p.is_file().then_some(p)
}

/// Resolve `alias` through the configuration file at `path` (a missing file gives the empty
/// result). `home` expands `~` and anchors relative `Include` paths (`~/.ssh/`).
pub fn resolve(alias: &str, path: &Path, home: Option<&Path>) -> HostConfig {
    let mut out = HostConfig::default();
    let mut st = State {
        alias,
        home,
        out: &mut out,
    };
    st.file(path, 0);
    let cfg = &mut out;
    // %h in HostName is the alias itself.
    if let Some(h) = &cfg.host_name {
        cfg.host_name = Some(h.replace("%h", alias).replace("%%", "%"));
    }
    out
}

struct State<'a> {
    alias: &'a str,
    home: Option<&'a Path>,
    out: &'a mut HostConfig,
}

impl State<'_> {
    fn file(&mut self, path: &Path, depth: usize) {
        let Ok(text) = std::fs::read_to_string(path) else {
            return;
        };
        // Lines before the first Host/Match apply to every host.
        let mut active = true;
        for line in text.lines() {
            let Some((key, args)) = split_line(line) else {
                continue;
            };
            match key.as_str() {
                "host" => active = host_matches(self.alias, &args),
                "match" => active = args.len() == 1 && args[0].eq_ignore_ascii_case("all"),
                "include" if active && depth < 16 => {
                    for a in &args {
                        for f in self.include_files(a) {
                            self.file(&f, depth + 1);
                        }
                    }
                }
                _ if !active => {}
                "hostname" => set(&mut self.out.host_name, args.first()),
                "user" => set(&mut self.out.user, args.first()),
                "port" if self.out.port.is_none() => {
                    self.out.port = args.first().and_then(|p| p.parse().ok());
                }
                "proxyjump" => set(&mut self.out.proxy_jump, args.first()),
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

/// `Keyword args...` or `Keyword=args`, keyword lower-cased; comments and blank lines give None.
fn split_line(line: &str) -> Option<(String, Vec<String>)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let key = line[..end].to_ascii_lowercase();
    let rest = line[end..].trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest);
    Some((key, split_args(rest)))
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

/// A `Host` line's patterns: some positive pattern matches and no negated one does.
fn host_matches(host: &str, patterns: &[String]) -> bool {
    let mut hit = false;
    for p in patterns {
        for p in p.split(',') {
            if let Some(neg) = p.strip_prefix('!') {
                if wildcard(&neg.to_ascii_lowercase(), &host.to_ascii_lowercase()) {
                    return false;
                }
            } else if wildcard(&p.to_ascii_lowercase(), &host.to_ascii_lowercase()) {
                hit = true;
            }
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
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard("*", "anything"));
        assert!(wildcard("lab-*", "lab-cp1"));
        assert!(!wildcard("lab-*", "xlab-cp1"));
        assert!(wildcard("node?", "node1"));
        assert!(!wildcard("node?", "node12"));
        assert!(wildcard("*.example.*", "a.example.org"));
        assert!(wildcard("a*b*c", "aXXbYYc"));
        assert!(!wildcard("a*b*c", "aXXbYY"));
    }

    #[test]
    fn alias_resolution_first_value_wins_and_patterns_apply() {
        let d = tempfile::tempdir().unwrap();
        let home = d.path();
        std::fs::create_dir_all(home.join(".ssh/conf.d")).unwrap();
        std::fs::write(
            home.join(".ssh/conf.d/10-lab.conf"),
            "Host lab-*\n  ProxyJump jump@bastion.example:2200\n  IdentityFile ~/.ssh/lab_key\n",
        )
        .unwrap();
        let cfg = home.join(".ssh/config");
        std::fs::write(
            &cfg,
            "# comment\n\
             Include conf.d/*.conf\n\
             Host lab-cp1 !lab-cp9\n\
             \tHostName 10.1.2.3\n\
             \tUser=ops\n\
             \tPort 2222\n\
             Host lab-w?\n\
             \tHostName %h.lab.internal\n\
             Host *\n\
             \tUser fallback\n\
             \tPort 22\n\
             \tIdentityFile \"%d/.ssh/id_ed25519\"\n\
             Match exec \"false\"\n\
             \tUser never\n",
        )
        .unwrap();
        let r = resolve("lab-cp1", &cfg, Some(home));
        assert_eq!(r.host_name.as_deref(), Some("10.1.2.3"));
        assert_eq!(r.user.as_deref(), Some("ops"));
        assert_eq!(r.port, Some(2222));
        assert_eq!(r.proxy_jump.as_deref(), Some("jump@bastion.example:2200"));
        assert_eq!(
            r.identity_files,
            vec![home.join(".ssh/lab_key"), home.join(".ssh/id_ed25519")]
        );

        let r = resolve("lab-w1", &cfg, Some(home));
        assert_eq!(r.host_name.as_deref(), Some("lab-w1.lab.internal"));
        assert_eq!(r.user.as_deref(), Some("fallback"));
        assert_eq!(r.port, Some(22));

        // Negated pattern: lab-cp9 is excluded from the first block but still gets Host *.
        let r = resolve("lab-cp9", &cfg, Some(home));
        assert_eq!(r.host_name, None);
        assert_eq!(r.user.as_deref(), Some("fallback"));

        let r = resolve("other", &cfg, Some(home));
        assert_eq!(r.proxy_jump, None);
        assert_eq!(r.user.as_deref(), Some("fallback"));

        // No file: nothing.
        assert_eq!(
            resolve("x", &home.join("nope"), Some(home)),
            HostConfig::default()
        );
    }

    #[test]
    fn jump_specs() {
        assert_eq!(
            parse_jumps("ops@10.0.0.1:2222").unwrap(),
            vec![JumpSpec {
                user: Some("ops".into()),
                host: "10.0.0.1".into(),
                port: Some(2222)
            }]
        );
        let two = parse_jumps("a, b@[fe80::1]:22").unwrap();
        assert_eq!(two.len(), 2);
        assert_eq!(two[0].host, "a");
        assert_eq!(two[1].host, "fe80::1");
        assert_eq!(two[1].port, Some(22));
        assert!(parse_jumps("none").unwrap().is_empty());
        assert!(parse_jumps("h:0").is_err());
        assert!(parse_jumps("u@").is_err());
    }
}
