//! Rendered templates: whole-file snapshots (tests/snapshots/), plus checks that each rendered
//! kubeadm config is valid YAML carrying the values kubeadm needs.

use std::path::Path;

use kubestrap::cluster::{init, join, network, prepare};
use kubestrap::pki::BootstrapToken;
use kubestrap::plan::Plan;

const TOKEN: &str = "abcdef.0123456789abcdef";
const PIN: &str = "sha256:345959acb2c3b2feb87d281961c893f62a314207ef02599f1cc4a5fb255480b3";

fn plan(version: &str, runtime: &str, extra_cluster: &str) -> Plan {
    let src = format!(
        "cluster:\n  name: lab\n  kubernetesVersion: \"{version}\"\n  containerRuntime: {runtime}\n{extra_cluster}\
hosts:\n  - name: cp1\n    address: 192.168.56.10\n    role: control-plane\n  - name: w1\n    address: 127.0.0.1\n    internalAddress: 192.168.56.11\n    role: worker\n    ssh: {{ port: 2222 }}\n"
    );
    let inv = kubestrap::inventory::parse(&src, Path::new("/tmp/kubestrap-test/inventory.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    Plan::from_inventory(&inv).unwrap()
}

fn token() -> BootstrapToken {
    BootstrapToken::parse(TOKEN).unwrap()
}

fn bootstrap(p: &Plan) -> init::Bootstrap {
    init::Bootstrap {
        token: token(),
        ca_pin: PIN.into(),
        endpoint: p.api_endpoint.clone(),
        certificate_key: None,
    }
}

fn docs(yaml: &str) -> Vec<serde_json::Value> {
    yaml.split("\n---\n")
        .map(|d| {
            serde_saphyr::from_str::<serde_json::Value>(d).unwrap_or_else(|e| panic!("{e}\n{d}"))
        })
        .collect()
}

#[test]
fn init_v1beta4_for_1_31() {
    let p = plan("1.31.2", "containerd", "");
    let y = init::render_init(&p, &token()).unwrap();
    insta::assert_snapshot!("init_v1beta4", y);
    let d = docs(&y);
    assert_eq!(d[0]["apiVersion"], "kubeadm.k8s.io/v1beta4");
    assert_eq!(d[0]["kind"], "InitConfiguration");
    assert_eq!(d[0]["bootstrapTokens"][0]["token"], TOKEN);
    assert_eq!(
        d[0]["localAPIEndpoint"]["advertiseAddress"],
        "192.168.56.10"
    );
    assert_eq!(
        d[0]["nodeRegistration"]["kubeletExtraArgs"][0]["name"],
        "node-ip"
    );
    assert_eq!(
        d[0]["nodeRegistration"]["criSocket"],
        "unix:///var/run/containerd/containerd.sock"
    );
    assert_eq!(d[1]["kind"], "ClusterConfiguration");
    assert_eq!(d[1]["kubernetesVersion"], "v1.31.2");
    assert_eq!(d[1]["networking"]["podSubnet"], "10.244.0.0/16");
    assert_eq!(d[1]["networking"]["serviceSubnet"], "10.96.0.0/12");
    assert_eq!(d[2]["cgroupDriver"], "systemd");
}

/// `controlPlaneSchedulable`: kubeadm's default taint unless pods may run on the control plane,
/// then an empty list (kubeadm reads a missing `taints` as "add the control-plane taint").
#[test]
fn init_taints_follow_control_plane_schedulable() {
    let d = docs(&init::render_init(&plan("1.31.2", "containerd", ""), &token()).unwrap());
    assert!(d[0]["nodeRegistration"].get("taints").is_none(), "{}", d[0]);
    let p = plan("1.31.2", "containerd", "  controlPlaneSchedulable: true\n");
    let d = docs(&init::render_init(&p, &token()).unwrap());
    assert_eq!(d[0]["nodeRegistration"]["taints"], serde_json::json!([]));
    let p = plan("1.30.4", "containerd", "  controlPlaneSchedulable: true\n");
    let d = docs(&init::render_init(&p, &token()).unwrap());
    assert_eq!(d[0]["nodeRegistration"]["taints"], serde_json::json!([]));
}

/// Several control planes: validation refuses them until highly available control planes are
/// built, so the plan is edited here (w1 becomes a control plane).
fn ha_plan() -> Plan {
    let mut p = plan(
        "1.31.2",
        "containerd",
        "  controlPlaneEndpoint: k8s-api.example.com:6443\n",
    );
    p.nodes[1].role = kubestrap::plan::Role::ControlPlane;
    p
}

#[test]
fn several_control_planes_share_a_certificate_key() {
    use kubestrap::pki::CertificateKey;
    let key = CertificateKey::parse(&"ab".repeat(32)).unwrap();
    assert!(!plan("1.31.2", "containerd", "").several_control_planes());
    let p = ha_plan();
    assert!(p.several_control_planes());
    // init: the key in the InitConfiguration, never on a command line.
    let d = docs(&init::render_init_with(&p, &token(), Some(&key)).unwrap());
    assert_eq!(d[0]["certificateKey"], key.expose());
    assert_eq!(d[1]["controlPlaneEndpoint"], "k8s-api.example.com:6443");
    let d = docs(&init::render_init(&p, &token()).unwrap());
    assert!(d[0].get("certificateKey").is_none(), "{}", d[0]);
    // The second control plane joins as one, with its own API endpoint and the key.
    let mut b = bootstrap(&p);
    assert!(
        join::render_join(&p, &p.nodes[1], &b).is_err(),
        "a control plane needs the key"
    );
    b.certificate_key = Some(key.clone());
    let j = docs(&join::render_join(&p, &p.nodes[1], &b).unwrap());
    let cp = &j[0]["controlPlane"];
    assert_eq!(cp["localAPIEndpoint"]["advertiseAddress"], "192.168.56.11");
    assert_eq!(cp["localAPIEndpoint"]["bindPort"], 6443);
    assert_eq!(cp["certificateKey"], key.expose());
    assert_eq!(j[0]["discovery"]["bootstrapToken"]["caCertHashes"][0], PIN);
    assert!(
        j[0]["nodeRegistration"].get("taints").is_none(),
        "tainted like kubeadm's default"
    );
    // A worker's JoinConfiguration has no controlPlane, key or not.
    let w = plan("1.31.2", "containerd", "");
    let j = docs(&join::render_join(&w, &w.nodes[1], &b).unwrap());
    assert!(j[0].get("controlPlane").is_none(), "{}", j[0]);
    assert!(!serde_json::to_string(&j).unwrap().contains(key.expose()));
}

#[test]
fn init_v1beta3_below_1_31_uses_map_args() {
    let p = plan(
        "1.30.4",
        "docker",
        "  podSubnet: 10.32.0.0/16\n  imageRepository: registry.aliyuncs.com/google_containers\n",
    );
    let y = init::render_init(&p, &token()).unwrap();
    insta::assert_snapshot!("init_v1beta3_docker", y);
    let d = docs(&y);
    assert_eq!(d[0]["apiVersion"], "kubeadm.k8s.io/v1beta3");
    assert_eq!(
        d[0]["nodeRegistration"]["kubeletExtraArgs"]["node-ip"],
        "192.168.56.10"
    );
    assert_eq!(
        d[0]["nodeRegistration"]["criSocket"],
        "unix:///var/run/cri-dockerd.sock"
    );
    assert_eq!(
        d[1]["imageRepository"],
        "registry.aliyuncs.com/google_containers"
    );
    assert_eq!(d[1]["networking"]["podSubnet"], "10.32.0.0/16");
    assert_eq!(
        p.pause_image,
        "registry.aliyuncs.com/google_containers/pause:3.9"
    );
}

#[test]
fn join_pins_the_ca_and_uses_the_internal_address() {
    let p = plan("1.31.2", "containerd", "");
    let w = p.nodes.iter().find(|n| n.name == "w1").unwrap();
    let y = join::render_join(&p, w, &bootstrap(&p)).unwrap();
    insta::assert_snapshot!("join_v1beta4", y);
    let d = docs(&y);
    let bt = &d[0]["discovery"]["bootstrapToken"];
    assert_eq!(bt["apiServerEndpoint"], "192.168.56.10:6443");
    assert_eq!(bt["caCertHashes"][0], PIN);
    assert!(bt.get("unsafeSkipCAVerification").is_none());
    assert_eq!(d[0]["nodeRegistration"]["name"], "w1");
    assert_eq!(
        d[0]["nodeRegistration"]["kubeletExtraArgs"][0]["value"],
        "192.168.56.11"
    );
}

#[test]
fn flannel_network_is_the_pod_subnet() {
    let p = plan("1.31.2", "containerd", "  podSubnet: 10.200.0.0/16\n");
    let y = network::render_cni(&p).unwrap().unwrap();
    insta::assert_snapshot!("flannel", y);
    let d = docs(&y);
    let cm = d.iter().find(|d| d["kind"] == "ConfigMap").unwrap();
    let net: serde_json::Value =
        serde_json::from_str(cm["data"]["net-conf.json"].as_str().unwrap()).unwrap();
    assert_eq!(net["Network"], "10.200.0.0/16");
    assert!(d.iter().any(|d| d["kind"] == "DaemonSet"));
}

#[test]
fn prep_scripts_render_and_pass_sh_syntax_check() {
    let p = plan("1.31.2", "containerd", "");
    use minijinja::context;
    let scripts = [
        (
            "scripts/facts.sh.j2",
            context! { images => vec![context!{ path => "/var/cache/kubestrap/images/a.tar" }] },
        ),
        (
            "scripts/facts.sh.j2",
            context! { images => vec![context!{ path => "/var/cache/kubestrap/images/a.tar", sha256 => "00" }],
            fast => true, runtime => "containerd", cp_state => true, admin_sha256 => "", cni_manifest => "/etc/kubestrap/cni.yaml" },
        ),
        (
            "scripts/facts.sh.j2",
            context! { images => Vec::<String>::new(), fast => true, runtime => "docker", cp_state => false },
        ),
        (
            "scripts/system.sh.j2",
            context! { host => context!{ name => "cp1" }, hosts => vec![context!{ name => "cp1", internal_address => "192.168.56.10" }] },
        ),
        (
            "scripts/packages.sh.j2",
            context! { package_repository => p.package_repository.clone(), version => "1.31.2", runtime => "containerd" },
        ),
        (
            "scripts/packages.sh.j2",
            context! { package_repository => p.package_repository.clone(), version => "1.31.2", runtime => "docker" },
        ),
        (
            "scripts/runtime-containerd.sh.j2",
            context! { pause_image => p.pause_image.clone() },
        ),
        (
            "scripts/runtime-docker.sh.j2",
            context! { pause_image => p.pause_image.clone() },
        ),
        (
            "scripts/images.sh.j2",
            context! { img => context!{ path => "/var/cache/kubestrap/images/a.tar", sha256 => "00" }, runtime => "containerd" },
        ),
        (
            "scripts/image-serve.sh.j2",
            context! { path => "/var/cache/kubestrap/images/a.tar", sha256 => "00", bind => "10.0.0.1", tokens => vec!["t1", "t2"], timeout => 60 },
        ),
    ];
    for (name, ctx) in scripts {
        let s = kubestrap::templates::script(name, ctx).unwrap();
        let o = std::process::Command::new("sh")
            .args(["-n", "-c", &s])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{name}: {}\n{s}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    assert!(
        p.package_repository.ends_with("/core:/stable:/v1.31/deb/"),
        "{}",
        p.package_repository
    );
}

#[test]
fn a_missing_variable_is_an_error_naming_the_template() {
    let e = kubestrap::templates::render(
        "kubeadm/join.yaml.j2",
        minijinja::context! { api => "v1beta4" },
    )
    .unwrap_err();
    assert!(e.to_string().contains("kubeadm/join.yaml.j2"), "{e}");
}

/// A plan with one image bundle (a temporary file, so its sha256 is real).
fn preload_plan(runtime: &str) -> (Plan, tempfile::TempDir) {
    let d = tempfile::tempdir().unwrap();
    let tar = d.path().join("k8s.tar");
    // Validation checks bundles by content: a ustar header (checksum over the header with the
    // checksum field as spaces) for an empty file, then the two zero blocks that end an archive.
    let mut h = vec![0u8; 512];
    h[..5].copy_from_slice(b"empty");
    h[100..108].copy_from_slice(b"0000644\0");
    h[124..136].copy_from_slice(b"00000000000\0");
    h[156] = b'0';
    h[257..265].copy_from_slice(b"ustar\x0000");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    h.resize(512 * 3, 0);
    std::fs::write(&tar, h).unwrap();
    let p = plan(
        "1.31.2",
        runtime,
        &format!("  preloadImages: [{}]\n", tar.display()),
    );
    (p, d)
}

fn sh_syntax_ok(s: &str) {
    let o = std::process::Command::new("sh")
        .args(["-n", "-c", s])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}\n{s}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn prepare_script_for_a_worker_fetching_from_a_peer() {
    let (p, _d) = preload_plan("containerd");
    let w = p.nodes.iter().find(|n| n.name == "w1").unwrap();
    let url = "http://192.168.56.10:40000/0123456789abcdef0123456789abcdef".to_string();
    let s = prepare::render(&p, w, &[(Some(url), "cp1".into())], false).unwrap();
    sh_syntax_ok(&s);
    // Fetch first (while the seed serves), import after the runtime is configured.
    let order: Vec<usize> = [
        "STEP images",
        "STEP system",
        "STEP packages",
        "STEP runtime",
        "ctr -n k8s.io images import",
    ]
    .iter()
    .map(|m| s.find(m).unwrap_or_else(|| panic!("{m} missing")))
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    assert!(s.contains("curl -fsS --max-time"));
    assert!(
        s.contains("if [ \"$needimage0\" = 1 ]; then ks_record=0; else ("),
        "a failed fetch skips the import and records no stamp"
    );
    assert!(
        !s.contains("STEP state"),
        "workers do not query the cluster"
    );
    // The tmp path of the bundle differs per test run: snapshot with a fixed one.
    let lib_len = kubestrap::templates::script(
        "scripts/facts.sh.j2",
        minijinja::context! { images => Vec::<String>::new() },
    )
    .unwrap()
    .find("# Gather")
    .unwrap();
    let body = s[lib_len..].replace(&p.preload[0].sha256, "SHA256");
    insta::assert_snapshot!("prepare_worker_fetch", body);
}

#[test]
fn prepare_script_for_the_control_plane_reads_the_cluster_state() {
    let (p, _d) = preload_plan("docker");
    let cp = p.control_plane();
    let s = prepare::render(&p, cp, &[(None, String::new())], true).unwrap();
    sh_syntax_ok(&s);
    assert!(
        !s.contains("curl -fsS --max-time"),
        "the seed does not fetch"
    );
    assert!(s.contains("docker load -i"));
    assert!(s.contains("STEP state") && s.contains("BEGIN nodes") && s.contains("BEGIN ca.crt"));
    assert!(s.trim_end().ends_with("exit 0"));
}

#[test]
fn cp_state_parses_blocks_and_facts() {
    let out = "CHANGED x\nSTEP state\nBEGIN nodes\n{\"items\":[{\"metadata\":{\"name\":\"cp1\"},\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]}}]}\nEND nodes\nBEGIN ca.crt\n-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\nEND ca.crt\nFACT admin_conf_sha256=abc\nFACT cni_sha256=def\n";
    let st = prepare::CpState::parse(out);
    let nodes = st.nodes.unwrap();
    assert_eq!(nodes.len(), 1);
    assert!(nodes[0].ready && nodes[0].name == "cp1");
    assert_eq!(
        st.ca_crt.unwrap(),
        "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n"
    );
    assert!(st.admin_conf.is_none());
    assert_eq!(
        (st.admin_conf_sha256.as_str(), st.cni_sha256.as_str()),
        ("abc", "def")
    );
    let none = prepare::CpState::parse("STEP state\nFACT cni_sha256=\n");
    assert!(none.nodes.is_none() && none.ca_crt.is_none());
}

/// The prepare stamp's input: the same for a host whatever this run's one-time parts (image URLs,
/// the control plane's cluster read), different per host and whenever an input changes; the
/// facts script (`up`) checks the stamp against the very same value.
#[test]
fn prepare_stamp_input_follows_the_inputs_only() {
    let (p, _d) = preload_plan("containerd");
    let w1 = p.nodes.iter().find(|n| n.name == "w1").unwrap();
    let cp = p.control_plane();
    let sum = prepare::input_sha(&p, w1).unwrap();
    assert_eq!(sum.len(), 64);
    let url = "http://192.168.56.10:40000/0123456789abcdef0123456789abcdef".to_string();
    for s in [
        prepare::render(&p, w1, &[(Some(url), "cp1".into())], false).unwrap(),
        prepare::render(&p, w1, &[(None, String::new())], false).unwrap(),
    ] {
        assert!(s.contains(&format!("KS_INPUT={sum}\n")), "{s}");
        assert!(!s.contains("__KUBESTRAP_SCRIPT_SHA256__"));
    }
    assert_ne!(sum, prepare::input_sha(&p, cp).unwrap(), "per host");
    let (p2, _d2) = preload_plan("docker");
    let w1b = p2.nodes.iter().find(|n| n.name == "w1").unwrap();
    assert_ne!(
        sum,
        prepare::input_sha(&p2, w1b).unwrap(),
        "runtime is an input"
    );
    let mut p3 = p.clone();
    p3.version = "1.31.3".into();
    assert_ne!(
        sum,
        prepare::input_sha(&p3, w1).unwrap(),
        "version is an input"
    );
    // The prepare script writes the stamp only after every section succeeded.
    let s = prepare::render(&p, w1, &[(None, String::new())], false).unwrap();
    let record = s.find("> \"$KS_STAMP\"").expect("stamp written");
    assert!(s.rfind("STEP images").unwrap() < record);
    // The check itself rides on the facts round trip; prepare does not repeat it.
    assert!(!s.contains("if ks_unchanged"), "{s}");
    let facts = kubestrap::templates::script(
        "scripts/facts.sh.j2",
        minijinja::context! { images => Vec::<String>::new(), fast => true, runtime => "containerd", cp_state => false },
    )
    .unwrap();
    assert!(facts.contains("if ks_unchanged; then\n  fact prepare_unchanged yes"));
}
