//! Rendered templates: whole-file snapshots (tests/snapshots/), plus checks that each rendered
//! kubeadm config is valid YAML carrying the values kubeadm needs.

use std::path::Path;

use kubestrap::cluster::{init, join, network};
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
        ("scripts/facts.sh.j2", context! {}),
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
            context! { path => "/var/cache/kubestrap/images/a.tar", sha256 => "00", runtime => "containerd" },
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
