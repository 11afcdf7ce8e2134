//! Regression tests for the inventory hardening: image references, control characters, image
//! bundles by content, secret variable names, duration bounds, the inventory file itself and
//! numeric-form addresses. Each names the hostile value it refuses.

use std::io::Write;

use super::super::*;
use super::{err, ok, BASE, FILE};

/// `BASE` with `line` added to the `cluster:` section.
fn cl(line: &str) -> String {
    BASE.replace("  name: lab\n", &format!("  name: lab\n{line}\n"))
}

/// `BASE` with `line` added to the first host.
fn host(line: &str) -> String {
    BASE.replace(
        "    role: control-plane\n",
        &format!("    role: control-plane\n{line}\n"),
    )
}

fn with_home(src: &str, dir: &Path, home: &Path) -> Result<Inventory, String> {
    let raw: raw::RawInventory = serde_saphyr::from_str(src).map_err(|e| e.to_string())?;
    validate::validate(raw, &dir.join(FILE), dir, Some(home)).map_err(|p| {
        InventoryError::Invalid {
            file: dir.join(FILE),
            problems: p,
        }
        .to_string()
    })
}

#[test]
fn image_repository_follows_the_reference_grammar() {
    for good in [
        "registry.k8s.io",
        "registry.aliyuncs.com/google_containers",
        "localhost:5000/k8s",
        "10.0.0.1:5000/a/b",
        "[fd00::1]:5000/mirror",
        "my-registry.local/k8s__x/a.b-c",
        "harbor",
    ] {
        let inv = ok(&cl(&format!("  imageRepository: \"{good}\"")));
        assert_eq!(inv.cluster.image_repository, good);
    }
    for bad in [
        r"r.io|;s|.*|echo\x20x>>/tmp/p|e;#",
        "r.io/$(id)",
        "r.io/`id`",
        "r.io/a;b",
        "R.io/k8s",
        "r.io/K8s",
        "r.io//k8s",
        "r.io/-k8s",
        "r.io/k8s-",
        "r.io/a..b",
        "r.io:0/k8s",
        "r.io:99999/k8s",
        "r.io:/k8s",
        ":5000/k8s",
        "r.io/k8s:v1",
        "r.io/k8s@sha256",
        "-r.io/k8s",
        "[fd00::zz]:5000/x",
    ] {
        let e = err(&cl(&format!("  imageRepository: '{bad}'")));
        assert!(
            e.contains("inventory.yaml:3:20: cluster.imageRepository: ")
                && e.contains("is not an image repository"),
            "{bad}: {e}"
        );
    }
    let long = format!("r.io/{}", "a".repeat(251));
    let e = err(&cl(&format!("  imageRepository: {long}")));
    assert!(
        e.contains("256 characters") && e.contains("at most 255"),
        "{e}"
    );
    ok(&cl(&format!("  imageRepository: {}", &long[..255])));
}

#[test]
fn package_repository_has_no_shell_characters() {
    ok(&cl(
        "  packageRepository: http://10.0.0.1:8080/k8s/core:/stable:/v1.31/deb/",
    ));
    for bad in [
        "https://x/$(id)/",
        "https://x/`id`/",
        "https://x/a;b/",
        "https://x/a'b/",
        "https://x/a\"b/",
        "https://x|e/",
        "https://x/a&b/",
        "https://x/a b/",
        "https://$(id)/",
        "https:///",
    ] {
        let e = err(&cl(&format!(
            "  packageRepository: '{}'",
            bad.replace('\'', "''")
        )));
        assert!(
            e.contains("inventory.yaml:3:22: cluster.packageRepository: "),
            "{bad}: {e}"
        );
    }
}

/// Every name and path field, each with every kind of line-breaking or control character.
#[test]
fn control_characters_are_refused_in_every_field() {
    type Make = fn(&str) -> String;
    let fields: &[(&str, &str, Make)] = &[
        ("cluster.name", "lab", |v| {
            BASE.replace("  name: lab\n", &format!("  name: \"{v}\"\n"))
        }),
        ("cluster.imageRepository", "r.io", |v| {
            cl(&format!("  imageRepository: \"{v}\""))
        }),
        ("cluster.preloadImages[0]", "a.tar", |v| {
            cl(&format!("  preloadImages: [\"{v}\"]"))
        }),
        ("cluster.controlPlaneEndpoint", "lb", |v| {
            cl(&format!("  controlPlaneEndpoint: \"{v}\""))
        }),
        ("ssh.user", "ops", |v| {
            format!("{BASE}ssh:\n  user: \"{v}\"\n")
        }),
        ("ssh.identityFile", "key", |v| {
            format!("{BASE}ssh:\n  identityFile: \"{v}\"\n")
        }),
        ("ssh.knownHostsFile", "kh", |v| {
            format!("{BASE}ssh:\n  knownHostsFile: \"{v}\"\n")
        }),
        ("ssh.bastion", "jump", |v| {
            format!("{BASE}ssh:\n  bastion: \"{v}\"\n")
        }),
        ("ssh.sudoPasswordEnv", "PW", |v| {
            format!("{BASE}ssh:\n  sudoPasswordEnv: \"{v}\"\n")
        }),
        ("hosts[0].name", "cp", |v| {
            BASE.replace("  - name: cp\n", &format!("  - name: \"{v}\"\n"))
        }),
        ("hosts[0].address", "cp.lan", |v| {
            host("    internalAddress: 192.168.56.20")
                .replace("address: 192.168.56.10", &format!("address: \"{v}\""))
        }),
        ("hosts[0].ssh.knownHostsFile", "kh", |v| {
            host(&format!("    ssh: {{knownHostsFile: \"{v}\"}}"))
        }),
        ("timeouts.command", "5m", |v| {
            format!("{BASE}timeouts:\n  command: \"{v}\"\n")
        }),
    ];
    for (path, value, make) in fields {
        for (esc, what) in [
            ("\\n", "U+000A"),
            ("\\r", "U+000D"),
            ("\\0", "U+0000"),
            ("\\e", "U+001B"),
            ("\\t", "U+0009"),
            ("\\x7f", "U+007F"),
            ("\\N", "U+0085"),
            ("\\L", "U+2028"),
            ("\\P", "U+2029"),
        ] {
            let src = make(&format!("{value}{esc}x"));
            let e = err(&src);
            let want = format!(": {path}: contains a control character ({what}");
            assert!(
                e.contains(&want),
                "{path} {esc}: want {want:?} in:\n{e}\n{src}"
            );
            assert_eq!(e.lines().count(), 1, "one problem per field:\n{e}");
        }
    }
}

#[test]
fn user_names_are_login_names() {
    for bad in ["$(id)", "a;b", "`id`", "-oProxyCommand=x", "a'b", "a|e"] {
        let e = err(&format!("{BASE}ssh:\n  user: \"{bad}\"\n"));
        assert!(
            e.contains("inventory.yaml:9:9: ssh.user: ") && e.contains("not a valid login name"),
            "{bad}: {e}"
        );
        let e = err(&format!("{BASE}ssh:\n  bastion: \"{bad}@jump.lan\"\n"));
        assert!(
            e.contains("ssh.bastion: ") && e.contains("login name"),
            "{bad}: {e}"
        );
    }
    ok(&format!(
        "{BASE}ssh:\n  user: vagrant.ops_1\n  bastion: Ops-1@jump.lan:2222\n"
    ));
}

#[test]
fn local_paths_refuse_shell_metacharacters() {
    for bad in [
        "kh$(id)", "kh`id`", "a;b", "a|e", "a&b", "a>b", "a\\\\b", "a'b", "a\\\"b",
    ] {
        let e = err(&format!("{BASE}ssh:\n  knownHostsFile: \"{bad}\"\n"));
        assert!(
            e.contains("ssh.knownHostsFile: ") && e.contains("shell"),
            "{bad}: {e}"
        );
    }
    // Spaces are fine (Vagrant projects live in "my lab").
    let inv = ok(&format!("{BASE}ssh:\n  knownHostsFile: /tmp/my lab/kh\n"));
    assert_eq!(inv.ssh.known_hosts_file, Path::new("/tmp/my lab/kh"));
}

/// A 512-byte tar header for one file; `ustar` false writes a pre-POSIX (v7) header.
fn tar_header(ustar: bool) -> Vec<u8> {
    let mut h = vec![0u8; 512];
    h[..13].copy_from_slice(b"manifest.json");
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(b"00000000002\0");
    h[136..148].copy_from_slice(b"14700000000\0");
    h[156] = b'0';
    if ustar {
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
    }
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    h.extend_from_slice(b"{}");
    h.resize(512 * 4, 0);
    h
}

/// The bytes of a tiny valid tar archive, for tests that need an image bundle.
pub(crate) fn tiny_tar() -> Vec<u8> {
    tar_header(true)
}

#[test]
fn preload_images_must_be_image_bundles_by_content() {
    let d = tempfile::tempdir().unwrap();
    let home = d.path().join("home");
    std::fs::create_dir_all(home.join(".aws")).unwrap();
    std::fs::write(
        home.join(".aws/credentials"),
        "[default]\naws_secret_access_key = hunter2\n",
    )
    .unwrap();
    let w = |name: &str, bytes: &[u8]| std::fs::write(d.path().join(name), bytes).unwrap();
    w("ustar.tar", &tar_header(true));
    w("v7.tar", &tar_header(false));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar_header(true)).unwrap();
    w("images.tar.gz", &gz.finish().unwrap());
    w("images.tar.zst", b"\x28\xb5\x2f\xfd\x04\x58\x00\x00");
    let mut bad_sum = tar_header(false);
    bad_sum[0] = b'X';
    w("bad-checksum.tar", &bad_sum);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"[default]\naws_secret_access_key = hunter2\n")
        .unwrap();
    w("secret.gz", &gz.finish().unwrap());
    w("short.tar", b"not really a tarball");
    w("empty.tar", b"");
    std::fs::create_dir_all(d.path().join("oci/blobs")).unwrap();
    w("oci/oci-layout", b"{\"imageLayoutVersion\": \"1.0.0\"}");
    w(
        "oci/index.json",
        b"{\"schemaVersion\": 2, \"manifests\": []}",
    );

    let src = |list: &str| cl(&format!("  preloadImages: [{list}]"));
    let inv = with_home(
        &src("ustar.tar, v7.tar, images.tar.gz, images.tar.zst"),
        d.path(),
        &home,
    )
    .unwrap();
    assert_eq!(inv.cluster.preload_images.len(), 4);

    let e = with_home(&src("~/.aws/credentials"), d.path(), &home).unwrap_err();
    assert!(
        e.contains(":3:19: cluster.preloadImages[0]: ")
            && e.contains(".aws/credentials is not an image bundle"),
        "{e}"
    );
    assert!(!e.contains("hunter2"), "{e}");
    for f in ["bad-checksum.tar", "secret.gz", "short.tar", "empty.tar"] {
        let e = with_home(&src(f), d.path(), &home).unwrap_err();
        assert!(e.contains("is not an image bundle"), "{f}: {e}");
    }
    let e = with_home(&src("oci"), d.path(), &home).unwrap_err();
    assert!(
        e.contains("an OCI image layout directory") && e.contains("tar -cf"),
        "{e}"
    );
    std::fs::remove_file(d.path().join("oci/index.json")).unwrap();
    let e = with_home(&src("oci"), d.path(), &home).unwrap_err();
    assert!(e.contains("is a directory"), "{e}");
}

#[test]
fn preload_file_names_are_safe_on_the_hosts() {
    let d = tempfile::tempdir().unwrap();
    let name = "k8s images (1).tar";
    std::fs::write(d.path().join(name), tiny_tar()).unwrap();
    let e = with_home(
        &cl(&format!("  preloadImages: ['{name}']")),
        d.path(),
        d.path(),
    )
    .unwrap_err();
    assert!(
        e.contains("cluster.preloadImages[0]: ") && e.contains("file name"),
        "{e}"
    );
}

#[test]
fn secret_variable_names_are_upper_case_identifiers() {
    for bad in ["sudo_pw", "1PW", "PW-X", "PW;id", "$PW", "hunter2!", ""] {
        let e = err(&format!("{BASE}ssh:\n  sudoPasswordEnv: '{bad}'\n"));
        assert!(
            e.contains("inventory.yaml:9:20: ssh.sudoPasswordEnv: ")
                && e.contains("not an environment variable name"),
            "{bad:?}: {e}"
        );
    }
    ok(&format!("{BASE}ssh:\n  sudoPasswordEnv: _SUDO_PW2\n"));
}

#[test]
fn secret_variables_are_listed_with_their_hosts_and_located_when_unset() {
    let src = "cluster: {name: lab, kubernetesVersion: 1.31.2}\nssh:\n  sudoPasswordEnv: KS_T_SUDO\n  passphraseEnv: KS_T_UNUSED\nhosts:\n  - {name: cp, address: 10.1.0.1, role: control-plane, ssh: {passphraseEnv: KS_T_KEY}}\n  - {name: w1, address: 10.1.0.2, role: worker, ssh: {passphraseEnv: KS_T_KEY}}\n  - name: w2\n    address: 10.1.0.3\n    role: worker\n    ssh:\n      sudoPasswordEnv: KS_T_W2\n      passphraseEnv: KS_T_KEY\n";
    let inv = ok(src);
    let list: Vec<(String, String, Vec<String>)> = inv
        .secret_envs
        .iter()
        .map(|s| (s.var.clone(), s.field.clone(), s.hosts.clone()))
        .collect();
    let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        list,
        vec![
            (
                "KS_T_SUDO".into(),
                "ssh.sudoPasswordEnv".into(),
                v(&["cp", "w1"])
            ),
            (
                "KS_T_KEY".into(),
                "hosts[0].ssh.passphraseEnv".into(),
                v(&["cp"])
            ),
            (
                "KS_T_KEY".into(),
                "hosts[1].ssh.passphraseEnv".into(),
                v(&["w1"])
            ),
            (
                "KS_T_W2".into(),
                "hosts[2].ssh.sudoPasswordEnv".into(),
                v(&["w2"])
            ),
            (
                "KS_T_KEY".into(),
                "hosts[2].ssh.passphraseEnv".into(),
                v(&["w2"])
            ),
        ]
    );
    assert_eq!(
        inv.secrets_summary(),
        "KS_T_SUDO (hosts cp, w1), KS_T_KEY (hosts cp, w1, w2), KS_T_W2 (hosts w2)"
    );
    // None of these is set in the test environment: each is reported where it is named.
    let e = inv.check_secret_env().unwrap_err().to_string();
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(lines.len(), 5, "{e}");
    assert!(
        lines[0].starts_with("inventory.yaml:3:20: ssh.sudoPasswordEnv: $KS_T_SUDO is not set"),
        "{e}"
    );
    assert!(lines[0].contains("hosts cp, w1"), "{e}");
    assert!(
        lines[4].starts_with("inventory.yaml:13:22: hosts[2].ssh.passphraseEnv: $KS_T_KEY"),
        "{e}"
    );
    assert!(!e.contains("KS_T_UNUSED"), "no host reads it: {e}");
}

#[test]
fn timeouts_are_at_most_a_day() {
    for bad in [
        "18446744073709551615",
        "25h",
        "1441m",
        "86401",
        "99999999999999999999h",
    ] {
        let e = err(&format!("{BASE}timeouts:\n  command: \"{bad}\"\n"));
        assert!(
            e.contains("inventory.yaml:9:12: timeouts.command: ")
                && (e.contains("longer than the 24h limit") || e.contains("is not a duration")),
            "{bad}: {e}"
        );
    }
    let e = err(&format!("{BASE}timeouts:\n  command: \"25h\"\n"));
    assert!(e.contains("longer than the 24h limit"), "{e}");
    let inv = ok(&format!(
        "{BASE}timeouts:\n  command: 24h\n  connect: \"86400\"\n"
    ));
    assert_eq!(inv.timeouts.command, std::time::Duration::from_secs(86400));
}

#[test]
fn the_inventory_file_must_be_a_small_regular_utf8_file() {
    let d = tempfile::tempdir().unwrap();
    let e = load(d.path()).unwrap_err().to_string();
    assert!(e.contains("is a directory, not an inventory file"), "{e}");
    let e = load(Path::new("/dev/zero")).unwrap_err().to_string();
    assert!(
        e.contains("is a character device, not an inventory file"),
        "{e}"
    );
    let big = d.path().join("big.yaml");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(4 * 1024 * 1024 + 1).unwrap();
    let e = load(&big).unwrap_err().to_string();
    assert!(e.contains("larger than the 4 MiB limit"), "{e}");
    let bad = d.path().join("bad.yaml");
    std::fs::write(&bad, b"cluster:\n  name: l\xe9b\n").unwrap();
    let e = load(&bad).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!("{}:2:10: ", bad.display())) && msg.contains("not valid UTF-8"),
        "{msg}"
    );
    assert_eq!(e.problems().len(), 1);
}

#[test]
fn numeric_forms_of_ipv4_are_not_host_names() {
    for bad in [
        "2130706433",
        "127.1",
        "0x7f.1",
        "017700000001",
        "0x7f000001",
        "127.0.0.01",
        "1.2.3.4.5",
    ] {
        let src = host("    internalAddress: 192.168.56.20")
            .replace("address: 192.168.56.10", &format!("address: \"{bad}\""));
        let e = err(&src);
        assert!(
            e.contains("inventory.yaml:6:14: hosts[0].address: ") && e.contains("dotted quad"),
            "{bad}: {e}"
        );
        let e = err(&cl(&format!("  controlPlaneEndpoint: \"{bad}:6443\"")));
        assert!(
            e.contains("cluster.controlPlaneEndpoint: ") && e.contains("dotted quad"),
            "{bad}: {e}"
        );
        let e = err(&format!("{BASE}ssh:\n  bastion: \"ops@{bad}\"\n"));
        assert!(
            e.contains("ssh.bastion: ") && e.contains("dotted quad"),
            "{bad}: {e}"
        );
    }
    // Names that merely contain digits are fine.
    ok(&host("    internalAddress: 192.168.56.20")
        .replace("address: 192.168.56.10", "address: node-1.10.lan"));
}

#[test]
fn ipv6_spellings_of_one_address_are_one_address() {
    let src = "cluster: {name: lab, kubernetesVersion: 1.31.2}\nhosts:\n  - {name: a, address: '::ffff:127.0.0.1', internalAddress: 10.1.0.1, role: control-plane}\n  - {name: b, address: 127.0.0.1, internalAddress: 10.1.0.2, role: worker}\n  - {name: c, address: 'fd00::1', internalAddress: 10.1.0.3, role: worker}\n  - {name: d, address: 'fd00:0::0:1', internalAddress: 10.1.0.4, role: worker}\n";
    let e = err(src);
    assert!(e.contains("hosts[1].address: duplicate address"), "{e}");
    assert!(e.contains("hosts[3].address: duplicate address"), "{e}");
    let e = err("cluster: {name: lab, kubernetesVersion: 1.31.2}\nhosts:\n  - {name: a, address: '::ffff:127.0.0.1', role: control-plane}\n");
    assert!(e.contains("loopback"), "{e}");
}

#[test]
fn ipv6_endpoints_are_bracketed() {
    let two = BASE.to_string() + "  - name: w2\n    address: 192.168.56.11\n    role: worker\n";
    for (written, want) in [
        ("fd00::10", "[fd00::10]:6443"),
        ("[fd00::10]", "[fd00::10]:6443"),
        ("[fd00::10]:7443", "[fd00::10]:7443"),
        ("FD00:0::10", "[fd00::10]:6443"),
        ("lb.lan", "lb.lan:6443"),
        ("lb.lan:7443", "lb.lan:7443"),
    ] {
        let inv = ok(&two.replace(
            "  name: lab\n",
            &format!(
                "  name: lab\n  controlPlaneEndpoint: \"{written}\"\n  loadBalancer: external\n"
            ),
        ));
        assert_eq!(inv.api_endpoint(), want, "{written}");
        if written.contains(':') && !written.starts_with("lb") {
            assert_eq!(
                inv.cluster.control_plane_endpoint.as_deref(),
                Some(want),
                "{written}"
            );
        }
    }
}
