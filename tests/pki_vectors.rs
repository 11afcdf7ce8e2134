//! pki against the upstream vectors copied into tests/data/vectors (from kubeadm and
//! k8s.io/cluster-bootstrap tests, and derived kubeadm output), plus openssl for generated CAs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kubestrap::pki::{self, BootstrapToken, JoinCommand};
use serde_json::Value;

const PIN1: &str = "sha256:345959acb2c3b2feb87d281961c893f62a314207ef02599f1cc4a5fb255480b3";
const PIN2: &str = "sha256:d1ef16989563fe7775f81a7dc55ce16a467ca9baedae2d081cb0a068b6a81971";
const TOKEN: &str = "abcdef.0123456789abcdef";
const CERT_KEY: &str = "e6a2eb8581237ab72a4f494f30285ec12a9694d750b9785706a83bfcbbbd2204";

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/vectors")
        .join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(data(name)).unwrap()
}

// ------------------------------------------------------------------------------------------------
// Tokens

#[test]
fn token_vectors() {
    let src = read("token_vectors.jsonl");
    let mut ran = 0;
    let mut failures = Vec::new();
    for (n, line) in src
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: Value = serde_json::from_str(line).unwrap();
        let func = v["func"].as_str().unwrap();
        let input = &v["input"];
        let expected = &v["expected"];
        let s = |x: &Value| x.as_str().unwrap().to_string();
        // (actual, expected) rendered as JSON for comparison.
        let (got, want): (Value, Value) = match func {
            "IsValidBootstrapToken" => (
                pki::is_valid_bootstrap_token(&s(input)).into(),
                expected.clone(),
            ),
            "IsValidBootstrapTokenID" => (
                pki::is_valid_bootstrap_token_id(&s(input)).into(),
                expected.clone(),
            ),
            "NewBootstrapTokenString" => (
                token_result(BootstrapToken::parse(&s(input))),
                expected.clone(),
            ),
            "NewBootstrapTokenStringFromIDAndSecret" => (
                token_result(BootstrapToken::from_id_and_secret(
                    &s(&input["id"]),
                    &s(&input["secret"]),
                )),
                expected.clone(),
            ),
            "BootstrapTokenString.UnmarshalJSON" => {
                // The input is raw JSON text: a JSON string holding the token.
                let parsed = serde_json::from_str::<String>(&s(input))
                    .ok()
                    .map(|t| BootstrapToken::parse(&t));
                let got = match parsed {
                    Some(r) => token_result(r),
                    None => serde_json::json!({"error": true, "value": null}),
                };
                (got, expected.clone())
            }
            "BootstrapTokenSecretName" => (
                pki::bootstrap_token_secret_name(&s(input)).into(),
                expected.clone(),
            ),
            "secrets.ParseName" => (
                pki::parse_secret_name(&s(input)).map(str::to_string).into(),
                expected.clone(),
            ),
            "ValidateBootstrapGroupName" => (
                pki::is_valid_bootstrap_group_name(&s(input)).into(),
                expected.clone(),
            ),
            "ValidateUsages" => {
                let usages: Vec<String> = input.as_array().unwrap().iter().map(s).collect();
                (pki::is_valid_token_usages(&usages).into(), expected.clone())
            }
            // Plain string formatting without validation in Go; not a validity check.
            "TokenFromIDAndSecret" | "BootstrapTokenString.MarshalJSON" => continue,
            other => panic!("line {}: unknown func {other}", n + 1),
        };
        ran += 1;
        if got != want {
            failures.push(format!(
                "line {}: {func}({input}) = {got}, expected {want} ({})",
                n + 1,
                v["comment"]
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(ran >= 90, "only {ran} vectors ran");
}

fn token_result(r: Result<BootstrapToken, pki::PkiError>) -> Value {
    match r {
        Ok(t) => serde_json::json!({"error": false, "value": {"id": t.id(), "secret": t.secret()}}),
        Err(_) => serde_json::json!({"error": true, "value": null}),
    }
}

#[test]
fn generated_tokens_always_parse_and_look_uniform() {
    let mut counts = [0usize; 36];
    let alphabet = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut seen = std::collections::HashSet::new();
    for _ in 0..1000 {
        let t = pki::generate_token();
        let parsed = BootstrapToken::parse(t.expose()).expect("generated token parses");
        assert_eq!(parsed, t);
        assert!(pki::is_valid_bootstrap_token(t.expose()));
        assert_eq!(t.to_string(), format!("{}.****************", t.id()));
        assert!(!format!("{t:?}").contains(t.secret()));
        for b in t.expose().bytes().filter(|&b| b != b'.') {
            counts[alphabet.iter().position(|&a| a == b).unwrap()] += 1;
        }
        seen.insert(t.expose().to_string());
    }
    assert_eq!(seen.len(), 1000, "duplicate tokens");
    // 22000 characters over 36 symbols: ~611 each, sd ~24.4; allow ~7 sd.
    for (i, c) in counts.iter().enumerate() {
        assert!(
            (440..=780).contains(c),
            "{} appeared {c} times",
            alphabet[i] as char
        );
    }
}

// ------------------------------------------------------------------------------------------------
// CA pins

#[test]
fn pin_vectors() {
    let v: Value = serde_json::from_str(&read("pubkeypin_vectors.json")).unwrap();
    let vectors = v["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 2);
    for vec in vectors {
        let pem = vec["pem"].as_str().unwrap();
        let file = Path::new(vec["pem_file"].as_str().unwrap())
            .file_name()
            .unwrap();
        let from_file = read(file.to_str().unwrap());
        assert_eq!(
            pem,
            from_file,
            "{} differs from the json",
            file.to_str().unwrap()
        );
        let expected = vec["expected_pin"].as_str().unwrap();
        assert_eq!(
            pki::ca_pin_from_pem(pem).unwrap(),
            expected,
            "{}",
            vec["name"]
        );
    }
    // pin-1 is the upstream-asserted value; pin-2 was computed locally (openssl + python).
    assert_eq!(pki::ca_pin_from_pem(&read("test-cert.pem")).unwrap(), PIN1);
    assert_eq!(pki::ca_pin_from_pem(&read("test-cert2.pem")).unwrap(), PIN2);
    // A bundle gives one pin per certificate, in order.
    let bundle = read("test-cert.pem") + &read("test-cert2.pem");
    assert_eq!(pki::ca_pins_from_pem(&bundle).unwrap(), vec![PIN1, PIN2]);
    assert_eq!(pki::ca_pin_from_pem(&bundle).unwrap(), PIN1);
    assert!(pki::ca_pin_from_pem("no pem here").is_err());
    // Text around the PEM (e.g. a shell's noise) and CRLF line ends don't matter.
    let noisy = format!(
        "sudo: unable to resolve host x\n{}\ntrailer\n",
        read("test-cert.pem")
    );
    assert_eq!(pki::ca_pin_from_pem(&noisy).unwrap(), PIN1);
    let crlf = read("test-cert.pem").replace('\n', "\r\n");
    assert_eq!(pki::ca_pin_from_pem(&crlf).unwrap(), PIN1);

    // TestSet: Allow(...) parsing.
    for case in v["allow_parsing"].as_array().unwrap() {
        let input = case["input"].as_str().unwrap();
        let r = pki::parse_pin(input);
        assert_eq!(
            r.is_ok(),
            case["valid"].as_bool().unwrap(),
            "{input}: {r:?}"
        );
        if let Some(c) = case["canonical"].as_str() {
            assert_eq!(r.unwrap(), format!("sha256:{c}"));
        }
    }
    // TestSet: Allow(ToUpper(expected)) then CheckAny([cert]) succeeds; cert2 is not allowed.
    let allowed = pki::parse_pin(&PIN1.to_uppercase()).unwrap();
    assert_eq!(
        allowed,
        pki::ca_pin_from_pem(&read("test-cert.pem")).unwrap()
    );
    assert_ne!(
        allowed,
        pki::ca_pin_from_pem(&read("test-cert2.pem")).unwrap()
    );
}

// ------------------------------------------------------------------------------------------------
// Join command parsing

/// (title letter, raw text, repr-decoded text) for each case in join_output_examples.txt.
fn join_examples() -> Vec<(char, String, String)> {
    let src = read("join_output_examples.txt");
    let mut out = Vec::new();
    for section in src.split("\n====================================================================================================\n").skip(1) {
        let title = section.chars().next().unwrap();
        let raw_start = section.find(" raw ").unwrap();
        let raw_start = raw_start + section[raw_start..].find('\n').unwrap() + 1;
        let repr_marker = section.find("\n---------------------------------------- repr").unwrap();
        let raw = section[raw_start..repr_marker].to_string();
        let repr_line_start = repr_marker + 1 + section[repr_marker + 1..].find('\n').unwrap() + 1;
        let repr = section[repr_line_start..].lines().next().unwrap();
        out.push((title, raw, python_unrepr(repr)));
    }
    out
}

/// Decode a Python `repr()` of a str ('...' with \n, \t, \\, \' escapes).
fn python_unrepr(r: &str) -> String {
    let r = r.trim();
    let q = r.chars().next().unwrap();
    assert!(q == '\'' || q == '"', "{r}");
    let body = &r[1..r.len() - 1];
    let mut out = String::new();
    let mut it = body.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next().unwrap() {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            '\\' => out.push('\\'),
            '\'' => out.push('\''),
            '"' => out.push('"'),
            other => panic!("unhandled escape \\{other}"),
        }
    }
    out
}

fn worker(endpoint: &str) -> JoinCommand {
    JoinCommand {
        endpoint: endpoint.to_string(),
        token: Some(BootstrapToken::parse(TOKEN).unwrap()),
        ca_cert_hashes: vec![PIN1.to_string()],
        control_plane: false,
        certificate_key: None,
        certificate_key_withheld: false,
    }
}

fn control_plane(endpoint: &str, key: bool) -> JoinCommand {
    JoinCommand {
        control_plane: true,
        certificate_key: key.then(|| pki::CertificateKey::parse(CERT_KEY).unwrap()),
        ..worker(endpoint)
    }
}

#[test]
fn join_output_examples() {
    let examples = join_examples();
    let letters: String = examples.iter().map(|e| e.0).collect();
    assert_eq!(letters, "ABCDEF");
    let lb = "k8s-api.example.com:6443";
    let ip = "10.0.0.10:6443";
    for (letter, raw, repr) in &examples {
        // The raw block (as shown) and the exact bytes (repr) must parse the same.
        let expected = match letter {
            'A' => vec![worker(ip)],
            'B' => vec![control_plane(lb, true), worker(lb)],
            'C' => vec![control_plane(lb, false), worker(lb)],
            'D' => vec![worker(ip)],
            'E' => vec![control_plane(ip, true)],
            'F' => vec![JoinCommand {
                token: None,
                certificate_key_withheld: true,
                ..control_plane(ip, false)
            }],
            _ => unreachable!(),
        };
        for (what, text) in [("raw", raw), ("repr", repr)] {
            let got = pki::parse_join_command(text)
                .unwrap_or_else(|e| panic!("case {letter} ({what}): {e}\n{text}"));
            assert_eq!(got, expected, "case {letter} ({what})");
        }
    }
}

#[test]
fn join_old_four_space_form() {
    // The 2019 html/template form (before kubernetes#97413): 4-space continuation lines.
    let text = format!(
        "Then you can join any number of worker nodes by running the following on each as root:\n\nkubeadm join 10.0.0.10:6443 --token {TOKEN} \\\n    --discovery-token-ca-cert-hash {PIN1} \n"
    );
    assert_eq!(
        pki::parse_join_command(&text).unwrap(),
        vec![worker("10.0.0.10:6443")]
    );
    let cp = format!(
        "  kubeadm join lb:6443 --token {TOKEN} \\\n    --discovery-token-ca-cert-hash {PIN1} \\\n    --control-plane --certificate-key {CERT_KEY}\n\nPlease note that the certificate-key gives access to cluster sensitive data, keep it secret!\n"
    );
    assert_eq!(
        pki::parse_join_command(&cp).unwrap(),
        vec![control_plane("lb:6443", true)]
    );
}

#[test]
fn join_pre_1_14_one_line_and_experimental_control_plane() {
    let text = format!(
        "You can now join any number of machines by running the following on each node\nas root:\n\n  kubeadm join 10.0.0.10:6443 --token {TOKEN} --discovery-token-ca-cert-hash {PIN1}\n\n"
    );
    assert_eq!(
        pki::parse_join_command(&text).unwrap(),
        vec![worker("10.0.0.10:6443")]
    );
    // v1.14 printed --experimental-control-plane.
    let v114 = format!(
        "  kubeadm join lb:6443 --token {TOKEN} \\\n    --discovery-token-ca-cert-hash {PIN1} \\\n    --experimental-control-plane --certificate-key {CERT_KEY}\n"
    );
    assert_eq!(
        pki::parse_join_command(&v114).unwrap(),
        vec![control_plane("lb:6443", true)]
    );
}

#[test]
fn join_several_hashes_and_one_block_per_token() {
    // One `--discovery-token-ca-cert-hash X ` per CA certificate, on the same line (join.go).
    let two = format!(
        "kubeadm join 10.0.0.10:6443 --token {TOKEN} \\\n\t--discovery-token-ca-cert-hash {PIN1} --discovery-token-ca-cert-hash {PIN2} \n"
    );
    let got = pki::parse_join_command(&two).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].ca_cert_hashes, vec![PIN1, PIN2]);
    // kubeadm init prints the whole block once per bootstrap token.
    let examples = join_examples();
    let b = &examples[1].2;
    let other = "zyxwvu.9876543210zyxwvu";
    let twice = format!(
        "[bootstrap-token] Using tokens: [..]\n{b}{}",
        b.replace(TOKEN, other)
    );
    let got = pki::parse_join_command(&twice).unwrap();
    assert_eq!(got.len(), 4);
    assert_eq!(got[2].token.as_ref().unwrap().expose(), other);
    assert!(got[2].control_plane && !got[3].control_plane);
}

#[test]
fn join_rejects_bad_values() {
    let bad_hash = "kubeadm join 10.0.0.10:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:abc\n";
    assert!(pki::parse_join_command(bad_hash).is_err());
    let no_hash = "kubeadm join 10.0.0.10:6443 --token abcdef.0123456789abcdef\n";
    let e = pki::parse_join_command(no_hash).unwrap_err().to_string();
    assert!(e.contains("--discovery-token-ca-cert-hash"), "{e}");
    let bad_key = format!("kubeadm join lb:6443 --token {TOKEN} --discovery-token-ca-cert-hash {PIN1} --control-plane --certificate-key 1234\n");
    assert!(pki::parse_join_command(&bad_key).is_err());
    assert!(pki::parse_join_command(
        "Your Kubernetes control-plane has initialized successfully!\n"
    )
    .is_err());
}

// ------------------------------------------------------------------------------------------------
// A console-made CA

fn openssl(args: &[&str], stdin: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is installed");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn sha256sum(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn generated_ca_pin_matches_openssl() {
    let ca = pki::generate_ca("lab").unwrap();
    // kubeadm's documented pipeline: openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | sha256sum
    let pubkey = openssl(&["x509", "-pubkey", "-noout"], ca.cert_pem.as_bytes());
    let der = openssl(&["pkey", "-pubin", "-outform", "der"], &pubkey);
    assert_eq!(ca.pin, format!("sha256:{}", sha256sum(&der)));
    assert_eq!(pki::ca_pin_from_pem(&ca.cert_pem).unwrap(), ca.pin);
    // The same pipeline on the upstream vector, for good measure.
    let pubkey = openssl(
        &["x509", "-pubkey", "-noout"],
        read("test-cert.pem").as_bytes(),
    );
    let der = openssl(&["pkey", "-pubin", "-outform", "der"], &pubkey);
    assert_eq!(format!("sha256:{}", sha256sum(&der)), PIN1);

    // The private key matches the certificate.
    let key_pub = openssl(&["pkey", "-pubout"], ca.key_pem.expose().as_bytes());
    let cert_pub = openssl(&["x509", "-pubkey", "-noout"], ca.cert_pem.as_bytes());
    assert_eq!(key_pub, cert_pub);
    assert!(
        !format!("{:?}", ca).contains("PRIVATE KEY"),
        "key leaks through Debug"
    );

    // Shaped like kubeadm's CA.
    let text = String::from_utf8(openssl(
        &["x509", "-noout", "-text"],
        ca.cert_pem.as_bytes(),
    ))
    .unwrap();
    for want in [
        "Public-Key: (2048 bit)",
        "sha256WithRSAEncryption",
        "Subject: CN = kubernetes",
        "CA:TRUE",
        "Digital Signature, Key Encipherment, Certificate Sign",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    println!("{text}");
    // Valid now, and for about ten years.
    openssl(
        &["x509", "-noout", "-checkend", "0"],
        ca.cert_pem.as_bytes(),
    );
    openssl(
        &[
            "x509",
            "-noout",
            "-checkend",
            &(9 * 365 * 86400).to_string(),
        ],
        ca.cert_pem.as_bytes(),
    );
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-checkend", &(3651 * 86400).to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(ca.cert_pem.as_bytes())?;
            c.wait()
        })
        .unwrap();
    assert!(!out.success(), "the CA should expire after 10 years");
    // Two CAs differ (fresh keys).
    let other = pki::generate_ca("lab").unwrap();
    assert_ne!(other.pin, ca.pin);
}

/// `kubeadm init --upload-certs` output (case B) carries kubestrap's certificate key in its
/// control-plane join command; any other key, or output without that command (case A), is refused
/// before a control plane joins with a key kubeadm never used.
#[test]
fn the_control_plane_join_must_carry_our_certificate_key() {
    use kubestrap::cluster::init::verify_control_plane_join;
    use kubestrap::pki::CertificateKey;
    let ex = join_examples();
    let out = |c: char| ex.iter().find(|e| e.0 == c).unwrap().2.clone();
    let ours = CertificateKey::parse(CERT_KEY).unwrap();
    assert!(verify_control_plane_join(&out('B'), &ours).is_ok());
    let other = CertificateKey::generate();
    let e = verify_control_plane_join(&out('B'), &other).unwrap_err();
    assert!(
        e.message.contains("not the one kubestrap generated"),
        "{}",
        e.message
    );
    assert!(!e.message.contains(CERT_KEY), "the key must not be printed");
    let e = verify_control_plane_join(&out('A'), &ours).unwrap_err();
    assert!(
        e.message.contains("printed no control-plane join command"),
        "{}",
        e.message
    );
    // Without --upload-certs (case C) the control-plane command has no key: refused too.
    assert!(verify_control_plane_join(&out('C'), &ours).is_err());
}
