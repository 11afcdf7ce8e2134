//! Bootstrap tokens, certificate keys, CA public-key pins, kubeadm's join command, and a
//! console-owned cluster CA.
//!
//! Secrets (`BootstrapToken`, `CertificateKey`, the CA private key) print redacted through both
//! `Display` and `Debug`; the raw value is only reachable through an explicit `expose()`.

use std::fmt;
use std::sync::LazyLock;

use rand::Rng;
use regex::Regex;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PkiError {
    #[error("the bootstrap token {0:?} is not of the form \"[a-z0-9]{{6}}.[a-z0-9]{{16}}\"")]
    InvalidToken(String),
    #[error("the certificate key is not 64 hexadecimal characters (32 bytes)")]
    InvalidCertificateKey,
    #[error("invalid CA public key hash {0:?}: {1}")]
    InvalidPin(String, String),
    #[error("no PEM certificate found")]
    NoCertificate,
    #[error("invalid certificate: {0}")]
    InvalidCertificate(String),
    #[error("no `kubeadm join` command found in the output")]
    NoJoinCommand,
    #[error("malformed `kubeadm join` command: {0}")]
    MalformedJoinCommand(String),
    #[error("cannot generate the CA: {0}")]
    Generate(String),
}

// ---------------------------------------------------------------------------------------------
// Bootstrap tokens

/// k8s.io/cluster-bootstrap `BootstrapTokenPattern`.
static TOKEN_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\A([a-z0-9]{6})\.([a-z0-9]{16})\z").unwrap());
/// k8s.io/cluster-bootstrap `BootstrapTokenIDPattern`.
static TOKEN_ID_RE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\A([a-z0-9]{6})\z").unwrap());

const TOKEN_CHARS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// A kubeadm bootstrap token `abcdef.0123456789abcdef`. Prints as `abcdef.****************`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BootstrapToken {
    token: String,
}

impl BootstrapToken {
    /// Parse with kubeadm's rules (`NewBootstrapTokenString`): exactly `[a-z0-9]{6}.[a-z0-9]{16}`.
    pub fn parse(s: &str) -> Result<BootstrapToken, PkiError> {
        if TOKEN_RE.is_match(s) {
            Ok(BootstrapToken {
                token: s.to_string(),
            })
        } else {
            Err(PkiError::InvalidToken(redact_token_like(s)))
        }
    }
    /// `NewBootstrapTokenStringFromIDAndSecret`.
    pub fn from_id_and_secret(id: &str, secret: &str) -> Result<BootstrapToken, PkiError> {
        Self::parse(&format!("{id}.{secret}"))
    }
    /// The public half (also the name suffix of the `bootstrap-token-<id>` Secret).
    pub fn id(&self) -> &str {
        &self.token[..6]
    }
    /// The secret half. Treat like a password.
    pub fn secret(&self) -> &str {
        &self.token[7..]
    }
    /// The whole token, for the one place it must be written (kubeadm config files, mode 0600).
    pub fn expose(&self) -> &str {
        &self.token
    }
}

/// Don't echo a malformed token's secret half in errors either.
fn redact_token_like(s: &str) -> String {
    match s.split_once('.') {
        Some((id, rest)) if !rest.is_empty() => {
            format!("{id}.{}", "*".repeat(rest.chars().count()))
        }
        _ => s.to_string(),
    }
}

impl fmt::Display for BootstrapToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.****************", self.id())
    }
}

impl fmt::Debug for BootstrapToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BootstrapToken({self})")
    }
}

impl std::str::FromStr for BootstrapToken {
    type Err = PkiError;
    fn from_str(s: &str) -> Result<Self, PkiError> {
        Self::parse(s)
    }
}

/// `IsValidBootstrapToken`.
pub fn is_valid_bootstrap_token(s: &str) -> bool {
    TOKEN_RE.is_match(s)
}

/// `IsValidBootstrapTokenID`.
pub fn is_valid_bootstrap_token_id(s: &str) -> bool {
    TOKEN_ID_RE.is_match(s)
}

/// `BootstrapTokenSecretName`: the kube-system Secret holding a token, `bootstrap-token-<id>`.
pub fn bootstrap_token_secret_name(id: &str) -> String {
    format!("bootstrap-token-{id}")
}

/// `secrets.ParseName`: the token ID from a Secret name, if it is a bootstrap-token Secret.
pub fn parse_secret_name(name: &str) -> Option<&str> {
    name.strip_prefix("bootstrap-token-")
        .filter(|id| is_valid_bootstrap_token_id(id))
}

/// `ValidateBootstrapGroupName`: `system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]`.
pub fn is_valid_bootstrap_group_name(name: &str) -> bool {
    static GROUP_RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"\Asystem:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]\z").unwrap()
    });
    GROUP_RE.is_match(name)
}

/// `ValidateUsages`: every usage is `signing` or `authentication`.
pub fn is_valid_token_usages<S: AsRef<str>>(usages: &[S]) -> bool {
    usages
        .iter()
        .all(|u| matches!(u.as_ref(), "signing" | "authentication"))
}

fn random_chars(n: usize) -> String {
    let mut rng = rand::rng(); // ThreadRng: ChaCha12 seeded from the OS, a CSPRNG
    (0..n)
        .map(|_| TOKEN_CHARS[rng.random_range(0..TOKEN_CHARS.len())] as char) // unbiased
        .collect()
}

/// A new random token, each character uniform over `[0-9a-z]` (as `GenerateBootstrapToken`).
pub fn generate_token() -> BootstrapToken {
    BootstrapToken {
        token: format!("{}.{}", random_chars(6), random_chars(16)),
    }
}

// ---------------------------------------------------------------------------------------------
// Certificate key (kubeadm --certificate-key / InitConfiguration.certificateKey)

/// The AES-256 key kubeadm encrypts uploaded control-plane certificates with: 64 lowercase hex
/// characters. Prints redacted.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CertificateKey {
    hex: String,
}

impl CertificateKey {
    /// 32 random bytes (what `kubeadm certs certificate-key` prints).
    pub fn generate() -> CertificateKey {
        let mut bytes = [0u8; 32];
        rand::rng().fill(&mut bytes);
        CertificateKey {
            hex: hex::encode(bytes),
        }
    }
    /// 64 hex characters (either case; stored lowercase).
    pub fn parse(s: &str) -> Result<CertificateKey, PkiError> {
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(CertificateKey {
                hex: s.to_ascii_lowercase(),
            })
        } else {
            Err(PkiError::InvalidCertificateKey)
        }
    }
    pub fn expose(&self) -> &str {
        &self.hex
    }
}

impl fmt::Display for CertificateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&"*".repeat(64))
    }
}

impl fmt::Debug for CertificateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertificateKey({self})")
    }
}

/// A secret string (e.g. a private key PEM) that prints as `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

// ---------------------------------------------------------------------------------------------
// CA public-key pins (--discovery-token-ca-cert-hash)

/// `sha256:<hex>` over raw DER SubjectPublicKeyInfo bytes.
pub fn pin_from_spki_der(spki: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(spki).as_slice()))
}

/// The pin of one DER certificate, hashing the SPKI bytes exactly as they appear in it.
pub fn ca_pin_from_der(der: &[u8]) -> Result<String, PkiError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| PkiError::InvalidCertificate(e.to_string()))?;
    Ok(pin_from_spki_der(cert.tbs_certificate.subject_pki.raw))
}

/// The pin of the first certificate in a PEM text (kubeadm's `pubkeypin.Hash`).
pub fn ca_pin_from_pem(pem: &str) -> Result<String, PkiError> {
    ca_pins_from_pem(pem)?
        .into_iter()
        .next()
        .ok_or(PkiError::NoCertificate)
}

/// One pin per certificate in a PEM bundle (kubeadm prints one hash per CA certificate).
pub fn ca_pins_from_pem(pem: &str) -> Result<Vec<String>, PkiError> {
    let mut pins = Vec::new();
    for p in x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes()) {
        let p = p.map_err(|e| PkiError::InvalidCertificate(e.to_string()))?;
        if p.label != "CERTIFICATE" {
            continue;
        }
        pins.push(ca_pin_from_der(&p.contents)?);
    }
    if pins.is_empty() {
        return Err(PkiError::NoCertificate);
    }
    Ok(pins)
}

/// Validate a pin as kubeadm's `pubkeypin.Set.Allow` does: `format:hex`, format `sha256`
/// case-insensitive, exactly 32 bytes of hex. Returns the canonical `sha256:<lowercase hex>`.
pub fn parse_pin(s: &str) -> Result<String, PkiError> {
    let bad = |why: &str| PkiError::InvalidPin(s.to_string(), why.to_string());
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 2 {
        return Err(bad(
            "expected \"format:hex-value\"; known format(s) are: sha256",
        ));
    }
    if !parts[0].eq_ignore_ascii_case("sha256") {
        return Err(bad("unknown hash format; known format(s) are: sha256"));
    }
    let v = parts[1];
    if v.len() != 64 {
        return Err(bad(&format!(
            "expected a 32 byte SHA-256 hash, found {} bytes",
            v.len() / 2
        )));
    }
    if !v.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad("not hexadecimal"));
    }
    Ok(format!("sha256:{}", v.to_ascii_lowercase()))
}

// ---------------------------------------------------------------------------------------------
// The join command kubeadm prints

/// One `kubeadm join` command found in kubeadm's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinCommand {
    /// `host:port` of the API server (`[v6]:port` for IPv6).
    pub endpoint: String,
    /// `None` when kubeadm printed `<value withheld>` (`--skip-token-print`).
    pub token: Option<BootstrapToken>,
    /// Canonical `sha256:<lowercase hex>`, in the order printed; at least one.
    pub ca_cert_hashes: Vec<String>,
    /// `--control-plane` (or v1.14's `--experimental-control-plane`).
    pub control_plane: bool,
    /// `None` when absent or withheld; see `certificate_key_withheld`.
    pub certificate_key: Option<CertificateKey>,
    /// kubeadm printed `--certificate-key <value withheld>`.
    pub certificate_key_withheld: bool,
}

const WITHHELD: &str = "<value withheld>";
const WITHHELD_TOKEN: &str = "\u{1}withheld\u{1}";

fn looks_like_endpoint(s: &str) -> bool {
    let host = if let Some(rest) = s.strip_prefix('[') {
        match rest.split_once("]:") {
            Some((h, p)) => return h.contains(':') && p.parse::<u16>().is_ok(),
            None => return false,
        }
    } else {
        // kubeadm always prints host:port (the kubeconfig server URL without https://).
        match s.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() => h,
            _ => return false,
        }
    };
    !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')
}

/// Parse every `kubeadm join` command in `output`: the TAB-continued form kubeadm init prints
/// (v1.21+), the older 4-space form, single-line `token create --print-join-command` output and the
/// pre-1.14 one-liner, with or without `--control-plane`/`--certificate-key`, with several CA hashes,
/// and with `<value withheld>` values (which become `None`). Commands come back in output order;
/// `kubeadm init` prints one block per bootstrap token, so duplicates are kept.
pub fn parse_join_command(output: &str) -> Result<Vec<JoinCommand>, PkiError> {
    // Join continuation lines, then collapse all whitespace (kubeadm.md §1.3 rule 8).
    let text = output.replace("\r\n", "\n").replace("\\\n", " ");
    let text = text.replace(WITHHELD, WITHHELD_TOKEN);
    let words: Vec<&str> = text.split_whitespace().collect();

    let mut cmds = Vec::new();
    let mut i = 0;
    while i + 1 < words.len() {
        if !(words[i] == "kubeadm" && words[i + 1] == "join") {
            i += 1;
            continue;
        }
        i += 2;
        let mut endpoint: Option<String> = None;
        let mut token: Option<Option<BootstrapToken>> = None;
        let mut hashes = Vec::new();
        let mut control_plane = false;
        let mut key: Option<CertificateKey> = None;
        let mut key_withheld = false;
        let mut saw_flag = false;
        let value = |i: usize, flag: &str| -> Result<&str, PkiError> {
            match words.get(i + 1) {
                Some(v) if !v.starts_with("--") => Ok(v),
                _ => Err(PkiError::MalformedJoinCommand(format!(
                    "{flag} has no value"
                ))),
            }
        };
        while i < words.len() {
            let w = words[i];
            // `--flag=value` form too.
            let (flag, inline) = match w.split_once('=') {
                Some((f, v)) if w.starts_with("--") => (f, Some(v)),
                _ => (w, None),
            };
            let take = |i: &mut usize| -> Result<String, PkiError> {
                match inline {
                    Some(v) => Ok(v.to_string()),
                    None => {
                        let v = value(*i, flag)?.to_string();
                        *i += 1;
                        Ok(v)
                    }
                }
            };
            saw_flag |= flag.starts_with("--");
            match flag {
                "--token" => {
                    let v = take(&mut i)?;
                    token = Some(if v == WITHHELD_TOKEN {
                        None
                    } else {
                        Some(BootstrapToken::parse(&v)?)
                    });
                }
                "--discovery-token-ca-cert-hash" => {
                    let v = take(&mut i)?;
                    hashes.push(parse_pin(&v)?);
                }
                "--control-plane" | "--experimental-control-plane" => control_plane = true,
                "--certificate-key" => {
                    let v = take(&mut i)?;
                    if v == WITHHELD_TOKEN {
                        key_withheld = true;
                    } else {
                        key = Some(CertificateKey::parse(&v)?);
                    }
                }
                f if f.starts_with("--") => {
                    // Another flag (e.g. --cri-socket X, --discovery-token-unsafe-skip-ca-verification):
                    // skip it and a value if one follows.
                    if inline.is_none() {
                        if let Some(next) = words.get(i + 1) {
                            let flag_or_endpoint = next.starts_with("--")
                                || (endpoint.is_none() && looks_like_endpoint(next));
                            if !flag_or_endpoint {
                                i += 1;
                            }
                        }
                    }
                }
                w if endpoint.is_none() && looks_like_endpoint(w) => endpoint = Some(w.to_string()),
                _ => break, // end of the command: the prose that follows it
            }
            i += 1;
        }
        let (Some(endpoint), true) = (endpoint, saw_flag) else {
            // "kubeadm join" in prose (e.g. "kubeadm join phase ..."), not a join command.
            continue;
        };
        let Some(token) = token else {
            return Err(PkiError::MalformedJoinCommand(format!(
                "the join command for {endpoint} has no --token"
            )));
        };
        if hashes.is_empty() {
            return Err(PkiError::MalformedJoinCommand(format!(
                "the join command for {endpoint} has no --discovery-token-ca-cert-hash (unverified discovery is refused)"
            )));
        }
        if (key.is_some() || key_withheld) && !control_plane {
            return Err(PkiError::MalformedJoinCommand(
                "--certificate-key without --control-plane".to_string(),
            ));
        }
        cmds.push(JoinCommand {
            endpoint,
            token,
            ca_cert_hashes: hashes,
            control_plane,
            certificate_key: key,
            certificate_key_withheld: key_withheld,
        });
    }
    if cmds.is_empty() {
        return Err(PkiError::NoJoinCommand);
    }
    Ok(cmds)
}

// ---------------------------------------------------------------------------------------------
// A cluster CA made on the console (`cluster.pki: console`)

/// A freshly generated cluster CA.
#[derive(Debug, Clone)]
pub struct GeneratedCa {
    /// `ca.crt`
    pub cert_pem: String,
    /// `ca.key` (PKCS#8 PEM), redacted in Debug/Display.
    pub key_pem: Secret,
    /// Its `--discovery-token-ca-cert-hash`, computed from `cert_pem` like any other CA's.
    pub pin: String,
}

/// An RSA-2048 self-signed CA shaped like kubeadm's own: CN=kubernetes, CA:TRUE, key usages
/// keyCertSign/digitalSignature/keyEncipherment, valid from an hour ago for 10 years. The cluster
/// name goes in the OU so a stored CA says which cluster it belongs to.
pub fn generate_ca(cluster_name: &str) -> Result<GeneratedCa, PkiError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair,
        KeyUsagePurpose, SerialNumber, PKCS_RSA_SHA256,
    };
    let g = |e: rcgen::Error| PkiError::Generate(e.to_string());
    let key = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).map_err(g)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "kubernetes");
    dn.push(
        DnType::OrganizationalUnitName,
        format!("kubestrap cluster {cluster_name}"),
    );
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(3650);
    let mut serial = [0u8; 16];
    rand::rng().fill(&mut serial);
    serial[0] &= 0x7f; // positive
    serial[0] |= 0x01; // and 16 bytes long
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let cert = params.self_signed(&key).map_err(g)?;
    let cert_pem = cert.pem();
    let pin = ca_pin_from_pem(&cert_pem)?;
    Ok(GeneratedCa {
        cert_pem,
        key_pem: Secret::new(key.serialize_pem()),
        pin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIN1: &str = "sha256:345959acb2c3b2feb87d281961c893f62a314207ef02599f1cc4a5fb255480b3";
    const KEY: &str = "e6a2eb8581237ab72a4f494f30285ec12a9694d750b9785706a83bfcbbbd2204";

    #[test]
    fn token_redaction() {
        let t = BootstrapToken::parse("abcdef.0123456789abcdef").unwrap();
        assert_eq!(t.id(), "abcdef");
        assert_eq!(t.secret(), "0123456789abcdef");
        assert_eq!(t.expose(), "abcdef.0123456789abcdef");
        assert_eq!(t.to_string(), "abcdef.****************");
        assert_eq!(format!("{t:?}"), "BootstrapToken(abcdef.****************)");
        let e = BootstrapToken::parse("abcdef.0123456789ABCDEF")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("0123456789ABCDEF"), "{e}");
        let k = CertificateKey::parse(KEY).unwrap();
        assert!(!format!("{k} {k:?}").contains(KEY));
        assert_eq!(k.expose(), KEY);
        assert_eq!(CertificateKey::generate().expose().len(), 64);
        assert!(CertificateKey::parse(&KEY[1..]).is_err());
    }

    #[test]
    fn generated_tokens_are_valid_and_differ() {
        let a = generate_token();
        let b = generate_token();
        assert!(is_valid_bootstrap_token(a.expose()));
        assert_ne!(a, b);
    }

    #[test]
    fn pins() {
        assert_eq!(parse_pin(&PIN1.to_uppercase()).unwrap(), PIN1);
        assert!(parse_pin("xyz").is_err());
        assert!(parse_pin("sha1:00").is_err());
        assert!(parse_pin(&format!("{PIN1}{PIN1}")).is_err());
        assert!(parse_pin(&format!("sha256:{}", "g".repeat(64))).is_err());
    }

    #[test]
    fn join_worker_and_control_plane() {
        let out = format!(
            "\n  kubeadm join lb:6443 --token abcdef.0123456789abcdef \\\n\t--discovery-token-ca-cert-hash {PIN1} \\\n\t--control-plane --certificate-key {KEY}\n\nPlease note...\n\nkubeadm join lb:6443 --token abcdef.0123456789abcdef \\\n\t--discovery-token-ca-cert-hash {PIN1} \n"
        );
        let c = parse_join_command(&out).unwrap();
        assert_eq!(c.len(), 2);
        assert!(c[0].control_plane);
        assert_eq!(c[0].certificate_key.as_ref().unwrap().expose(), KEY);
        assert!(!c[1].control_plane);
        assert_eq!(c[1].endpoint, "lb:6443");
        assert_eq!(c[1].ca_cert_hashes, vec![PIN1.to_string()]);
    }

    #[test]
    fn join_errors() {
        assert_eq!(
            parse_join_command("nothing here"),
            Err(PkiError::NoJoinCommand)
        );
        assert!(
            parse_join_command("kubeadm join 1.2.3.4:6443 --token abcdef.0123456789abcdef\n")
                .is_err()
        );
        assert!(parse_join_command(&format!(
            "kubeadm join 1.2.3.4:6443 --discovery-token-ca-cert-hash {PIN1}"
        ))
        .is_err());
        assert!(parse_join_command(&format!("kubeadm join 1.2.3.4:6443 --token ABCDEF.0123456789abcdef --discovery-token-ca-cert-hash {PIN1}")).is_err());
        assert!(parse_join_command("kubeadm join 1.2.3.4:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:1234").is_err());
    }

    #[test]
    fn join_ignores_prose_and_reads_crlf() {
        let out = format!(
            "[WARNING] run 'kubeadm join' again, or kubeadm join phase kubelet-start to retry\r\nkubeadm join 10.0.0.10:6443 --token abcdef.0123456789abcdef \\\r\n\t--discovery-token-ca-cert-hash {PIN1} \r\n"
        );
        let c = parse_join_command(&out).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].endpoint, "10.0.0.10:6443");
    }

    #[test]
    fn pem_with_surrounding_text() {
        let pem = "-----BEGIN CERTIFICATE-----\nMIIDRDCCAiygAwIBAgIJAJgVaCXvC6HkMA0GCSqGSIb3DQEBBQUAMB8xHTAbBgNV\n";
        assert!(ca_pin_from_pem(pem).is_err());
        assert!(ca_pin_from_pem("").is_err());
    }

    #[test]
    fn join_flag_forms() {
        // Pre-1.9: token before the endpoint; `=` values; an unknown flag with a value.
        let out = format!("kubeadm join --token=abcdef.0123456789abcdef 10.0.0.1:6443 --cri-socket unix:///x.sock --discovery-token-ca-cert-hash={PIN1} --experimental-control-plane\n");
        let c = parse_join_command(&out).unwrap();
        assert_eq!(c[0].endpoint, "10.0.0.1:6443");
        assert!(c[0].control_plane);
        let v6 = format!("kubeadm join [fd00::1]:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash {PIN1}");
        assert_eq!(
            parse_join_command(&v6).unwrap()[0].endpoint,
            "[fd00::1]:6443"
        );
    }
}
