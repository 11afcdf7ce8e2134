//! Unit tests of `config`; `ssh -G` is the oracle where it is installed.

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
    let r = resolve("lab-cp1", &cfg, Some(home)).unwrap();
    assert_eq!(r.host_name.as_deref(), Some("10.1.2.3"));
    assert_eq!(r.user.as_deref(), Some("ops"));
    assert_eq!(r.port, Some(2222));
    assert_eq!(r.proxy_jump.as_deref(), Some("jump@bastion.example:2200"));
    assert_eq!(
        r.identity_files,
        vec![home.join(".ssh/lab_key"), home.join(".ssh/id_ed25519")]
    );

    let r = resolve("lab-w1", &cfg, Some(home)).unwrap();
    assert_eq!(r.host_name.as_deref(), Some("lab-w1.lab.internal"));
    assert_eq!(r.user.as_deref(), Some("fallback"));
    assert_eq!(r.port, Some(22));

    // Negated pattern: lab-cp9 is excluded from the first block but still gets Host *.
    let r = resolve("lab-cp9", &cfg, Some(home)).unwrap();
    assert_eq!(r.host_name, None);
    assert_eq!(r.user.as_deref(), Some("fallback"));

    let r = resolve("other", &cfg, Some(home)).unwrap();
    assert_eq!(r.proxy_jump, None);
    assert_eq!(r.user.as_deref(), Some("fallback"));

    // No file: nothing.
    assert_eq!(
        resolve("x", &home.join("nope"), Some(home)).unwrap(),
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

fn write_cfg(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("config");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn host_patterns_are_case_sensitive_and_commas_do_not_separate_them() {
    let d = tempfile::tempdir().unwrap();
    let cfg = write_cfg(
        d.path(),
        "Host foo\n  HostName 10.0.0.1\nHost a,b\n  HostName 10.0.0.2\nHost Lab-* !Lab-9\n  Port 2200\n",
    );
    let r = |alias| resolve(alias, &cfg, Some(d.path())).unwrap();
    assert_eq!(r("foo").host_name.as_deref(), Some("10.0.0.1"));
    assert_eq!(
        r("Foo").host_name,
        None,
        "ssh -G Foo does not match Host foo"
    );
    // `Host a,b` is the one pattern "a,b" (only whitespace separates patterns).
    assert_eq!(r("a").host_name, None);
    assert_eq!(r("b").host_name, None);
    assert_eq!(r("Lab-1").port, Some(2200));
    assert_eq!(r("lab-1").port, None);
    assert_eq!(r("Lab-9").port, None);
    assert_eq!(r("lab-9").port, None);
}

#[test]
fn options_kubestrap_cannot_follow_are_errors_naming_the_alias_and_line() {
    let d = tempfile::tempdir().unwrap();
    let cfg = write_cfg(
        d.path(),
        "Host other\n  ProxyCommand nc other 22\n\
         Host j1\n  ProxyJump bastion:2200\n  ProxyCommand nc %h %p\n\
         Host n1\n  ProxyCommand none\n  ProxyJump bastion\n\
         Host lab-*\n  ProxyCommand ssh -W %h:%p bastion\n",
    );
    let r = |alias| resolve(alias, &cfg, Some(d.path()));
    let e = r("lab-cp1").unwrap_err();
    assert_eq!((e.file.clone(), e.line), (cfg.clone(), 10));
    assert_eq!(
        e.problem,
        Problem::Unsupported {
            alias: "lab-cp1".into(),
            keyword: "ProxyCommand".into(),
            value: "ssh -W %h:%p bastion".into()
        }
    );
    let text = e.to_string();
    assert!(
        text.starts_with(&format!("{}:10: ", cfg.display()))
            && text.contains("\"lab-cp1\"")
            && text.contains("ProxyJump"),
        "{text}"
    );
    // The first of ProxyJump/ProxyCommand wins, as in ssh: a later ProxyCommand is ignored.
    assert_eq!(r("j1").unwrap().proxy_jump.as_deref(), Some("bastion:2200"));
    // `ProxyCommand none` means a direct connection, and a later ProxyJump is ignored.
    assert_eq!(r("n1").unwrap().proxy_jump, None);
    assert_eq!(r("x").unwrap(), HostConfig::default());

    // CanonicalizeHostname: an error where ssh would canonicalize (CanonicalDomains set; through
    // a ProxyJump only with `always`); the first value that applies wins.
    let cfg = write_cfg(
        d.path(),
        "Host c1\n  CanonicalizeHostname no\n\
         Host j1\n  ProxyJump bastion\n\
         Host j2\n  ProxyJump bastion\n  CanonicalizeHostname always\n\
         Host *\n  CanonicalizeHostname yes\n  CanonicalDomains lab.example\n",
    );
    let r = |alias| resolve(alias, &cfg, Some(d.path()));
    assert!(r("c1").is_ok());
    assert!(
        r("j1").is_ok(),
        "ssh does not canonicalize through a ProxyJump with yes"
    );
    let e = r("j2").unwrap_err();
    assert_eq!(e.line, 7, "{e}");
    let e = r("x").unwrap_err();
    assert_eq!(e.line, 9, "{e}");
    assert!(
        matches!(&e.problem, Problem::Unsupported { alias, keyword, .. }
        if alias == "x" && keyword == "CanonicalizeHostname")
    );
    assert!(e.to_string().contains("HostName"), "{e}");
    let cfg = write_cfg(d.path(), "Host *\n  CanonicalizeHostname yes\n");
    assert!(
        resolve("x", &cfg, None).is_ok(),
        "no CanonicalDomains: nothing to canonicalize"
    );
}

#[test]
fn invalid_values_are_errors_with_file_and_line_even_in_blocks_that_do_not_apply() {
    let d = tempfile::tempdir().unwrap();
    let inc = d.path().join("inc.conf");
    std::fs::write(&inc, "# included\nPort 70000\n").unwrap();
    for (text, line, problem) in [
        (
            "Host x\n  Port notaport\n",
            2,
            Problem::BadPort {
                value: "notaport".into(),
            },
        ),
        (
            "Host x\n  Port 0\n",
            2,
            Problem::BadPort { value: "0".into() },
        ),
        (
            "Host x\n  Port 65536\n",
            2,
            Problem::BadPort {
                value: "65536".into(),
            },
        ),
        (
            "Host other\n  Port -1\n",
            2,
            Problem::BadPort { value: "-1".into() },
        ),
        (
            "Host x\n  Port 2222\n  Port nope\n",
            3,
            Problem::BadPort {
                value: "nope".into(),
            },
        ),
        (
            "Host x\n  Port\n",
            2,
            Problem::MissingValue {
                keyword: "Port".into(),
            },
        ),
        (
            "Host x\n  User\n",
            2,
            Problem::MissingValue {
                keyword: "User".into(),
            },
        ),
        (
            "Host x\n  Port 22 23\n",
            2,
            Problem::ExtraValues {
                keyword: "Port".into(),
            },
        ),
        (
            "\n\nHost x\n  HostName\n",
            4,
            Problem::MissingValue {
                keyword: "HostName".into(),
            },
        ),
    ] {
        let cfg = write_cfg(d.path(), text);
        let e = resolve("x", &cfg, Some(d.path())).unwrap_err();
        assert_eq!(
            (e.file.clone(), e.line, e.problem.clone()),
            (cfg.clone(), line, problem),
            "{text:?}"
        );
        assert!(
            e.to_string()
                .starts_with(&format!("{}:{line}: ", cfg.display())),
            "{e}"
        );
    }
    // An Include inside a block that does not apply is still read for errors, as ssh does.
    let cfg = write_cfg(
        d.path(),
        &format!("Host other\n  Include {}\n", inc.display()),
    );
    let e = resolve("x", &cfg, Some(d.path())).unwrap_err();
    assert_eq!((e.file, e.line), (inc.clone(), 2));
    assert!(
        e.problem
            == Problem::BadPort {
                value: "70000".into()
            }
    );
    // Valid spellings.
    let cfg = write_cfg(d.path(), "Host x\n  Port=65535\nHost y\n  Port ssh\n");
    assert_eq!(resolve("x", &cfg, None).unwrap().port, Some(65535));
    assert_eq!(resolve("y", &cfg, None).unwrap().port, Some(22));
    let cfg = write_cfg(d.path(), "Host x\n  ProxyJump u@\n");
    assert!(matches!(
        resolve("x", &cfg, None).unwrap_err().problem,
        Problem::BadProxyJump { .. }
    ));
}

/// What `ssh -F cfg -G alias` says: Ok(option -> value) or Err(its error line number).
fn ssh_g(cfg: &Path, alias: &str) -> Result<std::collections::HashMap<String, String>, usize> {
    let o = std::process::Command::new("ssh")
        .arg("-F")
        .arg(cfg)
        .arg("-G")
        .arg(alias)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    if !o.status.success() {
        let err = String::from_utf8_lossy(&o.stderr);
        let n = err
            .split(" line ")
            .nth(1)
            .and_then(|r| r.split(':').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("ssh -G failed without a line number: {err}"));
        return Err(n);
    }
    Ok(String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

#[test]
fn resolution_matches_ssh_dash_g() {
    if std::process::Command::new("ssh")
        .arg("-V")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED resolution_matches_ssh_dash_g: no `ssh` (OpenSSH client) on PATH");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    std::fs::write(
        dir.join("inc_ok"),
        "Host x\n  HostName a.example\nHost *\n  User incuser\n",
    )
    .unwrap();
    std::fs::write(dir.join("inc_bad"), "Port notaport\n").unwrap();
    let inc = |name: &str| dir.join(name).display().to_string();
    let default_user = ssh_g(Path::new("/dev/null"), "x").unwrap()["user"].clone();
    let table: Vec<(String, &[&str])> = vec![
        ("Host foo\n  HostName 10.0.0.1\n  Port 2200\n  User u\n".into(), &["foo", "Foo", "FOO"]),
        ("Host Foo\n  HostName 10.0.0.1\n".into(), &["foo", "Foo"]),
        ("Host a,b\n  HostName 10.0.0.1\n".into(), &["a", "b"]),
        ("Host a b\n  HostName 10.0.0.1\n".into(), &["a", "b", "c"]),
        (
            "Host lab-* !lab-9\n  HostName %h.Lab.Example\n  User ops\nHost *\n  User fallback\n  Port 2022\n".into(),
            &["lab-1", "lab-9", "Lab-1", "other"],
        ),
        ("Host x\n  Port notaport\n".into(), &["x"]),
        ("Host x\n  Port 0\n".into(), &["x"]),
        ("Host x\n  Port 65536\n".into(), &["x"]),
        ("Host x\n  Port 65535\n".into(), &["x"]),
        ("Host x\n  Port ssh\n".into(), &["x"]),
        ("Host x\n  Port\n".into(), &["x"]),
        ("Host x\n  Port 22 23\n".into(), &["x"]),
        ("Host other\n  Port bad\n".into(), &["x"]),
        ("Host x\n  Port 2222\n  Port bad\n".into(), &["x"]),
        ("Host x\n  User\n".into(), &["x"]),
        ("Host x\n  ProxyCommand nc %h %p\n".into(), &["x", "y"]),
        ("Host x\n  ProxyJump j@bastion:2200\n  ProxyCommand nc %h %p\n".into(), &["x"]),
        ("Host x\n  ProxyCommand none\n  ProxyJump j\n".into(), &["x"]),
        ("Host x\n  ProxyJump none\n".into(), &["x"]),
        ("Host x\n  ProxyJump u@\n".into(), &["x"]),
        ("Host x\n  User=me\n  Port=2200\n  HostName=\"10.0.0.3\"\n".into(), &["x"]),
        ("User top\nHost x\n  User late\n".into(), &["x", "y"]),
        ("Match all\n  User m\n".into(), &["x"]),
        (format!("Host other\n  Include {}\n", inc("inc_bad")), &["x"]),
        (format!("Host x\n  Include {}\n  Port 2300\n", inc("inc_ok")), &["x", "y"]),
        (format!("Host other\n  Include {}\nHost *\n  Port 2400\n", inc("inc_ok")), &["x"]),
    ];
    let cfg = dir.join("config");
    for (text, aliases) in &table {
        std::fs::write(&cfg, text).unwrap();
        for alias in *aliases {
            let ours = resolve(alias, &cfg, Some(dir));
            let case = format!("config {text:?}, alias {alias}: ours {ours:?}");
            match ssh_g(&cfg, alias) {
                Err(line) => {
                    let e = ours.expect_err(&format!("ssh -G refuses it at line {line}; {case}"));
                    assert_eq!(e.line, line, "{case}");
                }
                Ok(g) if g.get("proxycommand").is_some_and(|p| p != "none") => {
                    let e = ours.expect_err(&format!("ssh would use a ProxyCommand; {case}"));
                    assert!(matches!(e.problem, Problem::Unsupported { .. }), "{case}");
                }
                Ok(g) => {
                    let r =
                        ours.unwrap_or_else(|e| panic!("ssh -G accepts it, we say {e}; {case}"));
                    // ssh lower-cases the name it connects to (DNS and known_hosts do not care).
                    let host = r.host_name.clone().unwrap_or_else(|| alias.to_string());
                    assert_eq!(host.to_ascii_lowercase(), g["hostname"], "hostname; {case}");
                    assert_eq!(r.port.unwrap_or(22).to_string(), g["port"], "port; {case}");
                    let user = r.user.clone().unwrap_or_else(|| default_user.clone());
                    assert_eq!(user, g["user"], "user; {case}");
                    let jump = r.proxy_jump.clone().filter(|j| j != "none");
                    assert_eq!(jump.as_ref(), g.get("proxyjump"), "proxyjump; {case}");
                }
            }
        }
    }
}
