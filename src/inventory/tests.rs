mod hardening;

use super::locate::{closest, PathIndex};
use super::validate::{endpoint_with_port, is_rfc1123_label, parse_duration};
use super::*;

const FILE: &str = "inventory.yaml";

fn ok(src: &str) -> Inventory {
    match parse(src, Path::new(FILE)) {
        Ok(i) => i,
        Err(e) => panic!("expected a valid inventory, got:\n{e}"),
    }
}

fn err(src: &str) -> String {
    match parse(src, Path::new(FILE)) {
        Ok(i) => panic!("expected an error, got {i:#?}"),
        Err(e) => e.to_string(),
    }
}

const BASE: &str = "cluster:\n  name: lab\n  kubernetesVersion: \"1.31.2\"\nhosts:\n  - name: cp\n    address: 192.168.56.10\n    role: control-plane\n";

#[test]
fn minimal_inventory_gets_defaults() {
    let inv = ok(BASE);
    let c = &inv.cluster;
    assert_eq!(c.name, "lab");
    assert_eq!(
        c.kubernetes_version,
        Version {
            major: 1,
            minor: 31,
            patch: 2
        }
    );
    assert_eq!(c.kubernetes_version.to_string(), "1.31.2");
    assert_eq!(c.kubernetes_version.with_v(), "v1.31.2");
    assert_eq!(
        c.kubernetes_version.kubeadm_api_version(),
        "kubeadm.k8s.io/v1beta4"
    );
    assert_eq!(c.pod_subnet.to_string(), "10.244.0.0/16");
    assert_eq!(c.service_subnet.to_string(), "10.96.0.0/12");
    assert_eq!(c.container_runtime, Runtime::Containerd);
    assert_eq!(c.cni, Cni::Flannel);
    assert_eq!(c.pki, PkiMode::Kubeadm);
    assert_eq!(c.image_repository, "registry.k8s.io");
    assert_eq!(
        c.package_repository,
        "https://pkgs.k8s.io/core:/stable:/v1.31/deb/"
    );
    assert!(c.preload_images.is_empty());
    assert_eq!(c.control_plane_endpoint, None);
    let h = &inv.hosts[0];
    assert_eq!(h.name, "cp");
    assert_eq!(h.internal_address.to_string(), "192.168.56.10");
    assert_eq!(h.role, Role::ControlPlane);
    assert_eq!(h.line, 5);
    assert_eq!(h.ssh.user, "root");
    assert_eq!(h.ssh.port, 22);
    assert_eq!(h.ssh.host_key_policy, HostKeyPolicy::Strict);
    assert!(h.ssh.known_hosts_file.ends_with(".ssh/known_hosts"));
    assert_eq!(inv.timeouts, Timeouts::default());
    assert_eq!(inv.api_endpoint(), "192.168.56.10:6443");
    assert!(inv.dir.is_absolute());
    assert_eq!(inv.state_dir(), inv.dir.join(".kubestrap/lab"));
}

#[test]
fn v_prefix_and_old_version_use_v1beta3() {
    let inv = ok(&BASE.replace("\"1.31.2\"", "v1.30.0"));
    assert_eq!(
        inv.cluster.kubernetes_version.kubeadm_api_version(),
        "kubeadm.k8s.io/v1beta3"
    );
    assert_eq!(
        inv.cluster.package_repository,
        "https://pkgs.k8s.io/core:/stable:/v1.30/deb/"
    );
}

#[test]
fn host_ssh_overrides_defaults_field_by_field() {
    let src = "cluster: {name: lab, kubernetesVersion: 1.31.2}\nssh:\n  user: vagrant\n  port: 2200\n  hostKeyPolicy: accept-new\n  passwordEnv: PW\nhosts:\n  - name: cp\n    address: 127.0.0.1\n    internalAddress: 192.168.56.10\n    role: control-plane\n  - name: w\n    address: 127.0.0.1\n    internalAddress: 192.168.56.11\n    role: worker\n    ssh: {port: 2201, hostKeyPolicy: off}\n";
    let inv = ok(src);
    assert_eq!(inv.hosts[0].ssh.port, 2200);
    assert_eq!(inv.hosts[0].ssh.user, "vagrant");
    assert_eq!(inv.hosts[1].ssh.port, 2201);
    assert_eq!(inv.hosts[1].ssh.user, "vagrant");
    assert_eq!(inv.hosts[1].ssh.host_key_policy, HostKeyPolicy::Off);
    assert_eq!(inv.hosts[0].ssh.host_key_policy, HostKeyPolicy::AcceptNew);
    assert_eq!(inv.hosts[1].ssh.password_env.as_deref(), Some("PW"));
    assert_eq!(inv.ssh.port, 2200);
    assert_eq!(inv.hosts[1].line, 12);
}

#[test]
fn wrong_role_message_matches_the_contract() {
    let e = err(&BASE.replace(
        "role: control-plane",
        "role: control-plane\n  - name: w\n    address: 192.168.56.11\n    role: wroker",
    ));
    assert!(
        e.contains("inventory.yaml:10:11: hosts[1].role: \"wroker\" is not a role; allowed: control-plane, worker"),
        "{e}"
    );
    assert!(e.contains("did you mean `worker`?"), "{e}");
}

/// No accepted value may end in "not implemented": calico is refused where it is written.
#[test]
fn calico_is_refused_at_validation() {
    let src = "cluster:\n  name: lab\n  kubernetesVersion: \"1.31.2\"\n  cni: calico\nhosts:\n  - name: cp\n    address: 192.168.56.10\n    role: control-plane\n";
    let e = err(src);
    assert!(
        e.starts_with("inventory.yaml:4:8: cluster.cni: \"calico\" is not a supported pod network; allowed: flannel, none"),
        "{e}"
    );
}

#[test]
fn all_semantic_errors_are_collected_one_per_line_sorted() {
    let src = "cluster:\n  name: Lab_1\n  kubernetesVersion: \"1.19.0\"\n  cni: weave\nhosts:\n  - name: cp\n    address: 127.0.0.1\n    role: master\n";
    let e = err(src);
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(lines.len(), 5, "{e}");
    assert!(
        lines[0]
            .starts_with("inventory.yaml:2:9: cluster.name: \"Lab_1\" is not a valid cluster name"),
        "{e}"
    );
    assert!(lines[0].contains("did you mean `lab-1`?"), "{e}");
    assert!(lines[1].starts_with("inventory.yaml:3:22: cluster.kubernetesVersion: Kubernetes 1.19.0 is not supported; supported versions are 1.22.x to 1.36.x"), "{e}");
    assert!(lines[2].starts_with("inventory.yaml:4:8: cluster.cni: \"weave\" is not a supported pod network; allowed: flannel, none"), "{e}");
    assert!(lines[3].starts_with("inventory.yaml:7:14: hosts[0].internalAddress: address 127.0.0.1 is a loopback address"), "{e}");
    assert!(lines[4].starts_with("inventory.yaml:8:11: hosts[0].role: \"master\" is not a role; allowed: control-plane, worker (did you mean `control-plane`?)"), "{e}");
}

#[test]
fn unknown_field_suggests_the_closest_known_one() {
    let e =
        err("cluster:\n  name: lab\n  kubernetesVersion: 1.31.2\n  podSubnett: 10.244.0.0/16\n");
    assert!(e.starts_with("inventory.yaml:4:3: cluster.podSubnett: unknown field `podSubnett`; did you mean `podSubnet`?"), "{e}");
    assert!(
        e.contains("allowed: name, kubernetesVersion, podSubnet"),
        "{e}"
    );
    let e = err("cluster:\n  name: lab\n  pod_subnet: 10.244.0.0/16\n");
    assert!(e.contains("did you mean `podSubnet`?"), "{e}");
    let e = err("clusters:\n  name: lab\n");
    assert!(
        e.contains(
            "inventory.yaml:1:1: clusters: unknown field `clusters`; did you mean `cluster`?"
        ),
        "{e}"
    );
    let e = err(&BASE.replace(
        "    role: control-plane",
        "    role: control-plane\n    ssh: {prot: 22}",
    ));
    assert!(
        e.contains(
            "inventory.yaml:8:11: hosts[0].ssh.prot: unknown field `prot`; did you mean `port`?"
        ),
        "{e}"
    );
}

#[test]
fn type_errors_name_the_field() {
    let e = err(&BASE.replace(
        "    role: control-plane",
        "    role: control-plane\n    ssh:\n      port: 70000",
    ));
    assert!(e.contains("inventory.yaml:9:13: hosts[0].ssh.port: \"70000\" is not valid here: expected a TCP port number (1-65535)"), "{e}");
    let e = err("cluster:\n  name: [lab]\n");
    assert!(
        e.starts_with("inventory.yaml:2:9: cluster.name: wrong type"),
        "{e}"
    );
    let e = err("cluster: lab\n");
    assert!(
        e.starts_with("inventory.yaml:1:10: cluster: wrong type"),
        "{e}"
    );
    let e = err("cluster: {name: lab, kubernetesVersion: 1.31.2}\nhosts:\n  name: cp\n");
    assert!(
        e.starts_with("inventory.yaml:3:3: hosts: wrong type"),
        "{e}"
    );
    assert!(e.contains("list of hosts"), "{e}");
}

#[test]
fn syntax_errors_have_a_location() {
    let e = err("cluster:\n  name: lab\n hosts: x\n");
    assert!(
        e.starts_with("inventory.yaml:3:2: YAML syntax error"),
        "{e}"
    );
    let e = err("cluster: {name: lab\n");
    assert!(
        e.starts_with("inventory.yaml:1:10: YAML syntax error"),
        "{e}"
    );
    let e = err("cluster:\n  name: lab\n  name: lab2\n");
    assert!(
        e.starts_with("inventory.yaml:3:3: cluster.name: `name` is given twice"),
        "{e}"
    );
}

#[test]
fn empty_inventory_reports_what_is_missing() {
    let e = err("");
    assert!(
        e.contains("inventory.yaml:1:1: cluster: missing section `cluster`"),
        "{e}"
    );
    assert!(e.contains("inventory.yaml:1:1: hosts: no hosts"), "{e}");
}

#[test]
fn duplicates() {
    let src = "cluster: {name: lab, kubernetesVersion: 1.31.2}\nhosts:\n  - {name: a, address: 10.1.0.1, role: control-plane}\n  - {name: a, address: 10.1.0.1, role: worker}\n  - {name: c, address: 127.0.0.1, internalAddress: 10.1.0.1, role: worker}\n";
    let e = err(src);
    assert!(
        e.contains(
            "4:12: hosts[1].name: duplicate host name \"a\": hosts[0] (line 3) already uses it"
        ),
        "{e}"
    );
    assert!(
        e.contains("4:24: hosts[1].address: duplicate address 10.1.0.1:22: hosts[0] (line 3)"),
        "{e}"
    );
    assert!(e.contains("hosts[1].internalAddress: duplicate node IP 10.1.0.1 (internalAddress defaults to address): hosts[0]"), "{e}");
    assert!(
        e.contains("5:52: hosts[2].internalAddress: duplicate node IP 10.1.0.1: hosts[0]"),
        "{e}"
    );
}

#[test]
fn control_plane_count() {
    let e = err(&BASE.replace("control-plane", "worker"));
    assert!(
        e.contains("5:3: hosts: no host has `role: control-plane`"),
        "{e}"
    );
    let two =
        BASE.to_string() + "  - name: cp2\n    address: 192.168.56.11\n    role: control-plane\n";
    let e = err(&two);
    assert!(e.contains("10:11: hosts[1].role: a second control-plane (hosts[0] is one too): kubestrap builds one control plane for now"), "{e}");
    // An endpoint does not make several control planes buildable yet: still refused, not a stub.
    let ha = two.replace(
        "  name: lab\n",
        "  name: lab\n  controlPlaneEndpoint: 192.168.56.100\n",
    );
    let e = err(&ha);
    assert!(
        e.contains("11:11: hosts[1].role: a second control-plane"),
        "{e}"
    );
    // One control plane behind a virtual IP: kube-vip by default, which is refused until it is
    // built; a load balancer of the user's is accepted.
    let one = BASE.replace(
        "  name: lab\n",
        "  name: lab\n  controlPlaneEndpoint: 192.168.56.100\n",
    );
    let e = err(&one);
    assert!(
        e.contains("3:25: cluster.controlPlaneEndpoint: kube-vip is not supported yet (192.168.56.100 is no host's address, so the load balancer defaults to kube-vip)"),
        "{e}"
    );
    assert!(e.contains("set `loadBalancer: external`"), "{e}");
    let external = one.replace("  name: lab\n", "  name: lab\n  loadBalancer: external\n");
    let inv = ok(&external);
    assert_eq!(inv.api_endpoint(), "192.168.56.100:6443");
    assert_eq!(inv.cluster.load_balancer, Some(LoadBalancer::External));
    let e = err(&one.replace("  name: lab\n", "  name: lab\n  loadBalancer: kube-vip\n"));
    assert!(e.contains("3:17: cluster.loadBalancer: kube-vip is not supported yet: nothing would answer at 192.168.56.100"), "{e}");
    let e = err(&one.replace("  name: lab\n", "  name: lab\n  loadBalancer: haproxy\n"));
    assert!(
        e.contains(
            "cluster.loadBalancer: \"haproxy\" is not a load balancer; allowed: kube-vip, external"
        ),
        "{e}"
    );
    // The endpoint is a host's own address, or a DNS name: external by default.
    for ep in ["192.168.56.10:6443", "k8s-api.example.com"] {
        let inv = ok(&BASE.replace(
            "  name: lab\n",
            &format!("  name: lab\n  controlPlaneEndpoint: {ep}\n"),
        ));
        assert_eq!(
            inv.cluster.load_balancer,
            Some(LoadBalancer::External),
            "{ep}"
        );
    }
    assert_eq!(ok(BASE).cluster.load_balancer, None);
    let e = err(&BASE.replace("  name: lab\n", "  name: lab\n  loadBalancer: external\n"));
    assert!(
        e.contains("cluster.loadBalancer: a load balancer needs `controlPlaneEndpoint`"),
        "{e}"
    );
}

#[test]
fn vagrant_nat_and_loopback_internal_addresses() {
    let e = err(&BASE.replace("192.168.56.10", "10.0.2.15"));
    assert!(e.contains("hosts[0].internalAddress: 10.0.2.15 is the Vagrant NAT address (internalAddress defaults to address): every Vagrant VM has 10.0.2.15 on its NAT interface"), "{e}");
    assert!(
        e.contains("set internalAddress to the host-only address"),
        "{e}"
    );
    let e = err(&BASE.replace("    role:", "    internalAddress: 127.0.1.1\n    role:"));
    assert!(
        e.contains("7:22: hosts[0].internalAddress: 127.0.1.1 is a loopback address"),
        "{e}"
    );
    let e = err(&BASE.replace("192.168.56.10", "cp.example.com"));
    assert!(
        e.contains("hosts[0].internalAddress: missing: address \"cp.example.com\" is a name"),
        "{e}"
    );
}

#[test]
fn subnets() {
    let e = err(&BASE.replace("  name: lab\n", "  name: lab\n  podSubnet: 10.96.0.0/16\n"));
    assert!(
        e.contains(
            "cluster.podSubnet: 10.96.0.0/16 overlaps serviceSubnet 10.96.0.0/12 (the default)"
        ),
        "{e}"
    );
    let e = err(&BASE.replace(
        "  name: lab\n",
        "  name: lab\n  podSubnet: 192.168.0.0/16\n",
    ));
    assert!(e.contains("hosts[0].internalAddress: 192.168.56.10 (internalAddress defaults to address) is inside podSubnet 192.168.0.0/16"), "{e}");
    let e = err(&BASE.replace("  name: lab\n", "  name: lab\n  podSubnet: 10.244.0.1/16\n"));
    assert!(
        e.contains("has host bits set; the network address of that range is 10.244.0.0/16"),
        "{e}"
    );
    let e = err(&BASE.replace("  name: lab\n", "  name: lab\n  podSubnet: fd00::/64\n"));
    assert!(e.contains("is an IPv6 range"), "{e}");
    let e = err(&BASE.replace("  name: lab\n", "  name: lab\n  podSubnet: 10.244.0.0/25\n"));
    assert!(e.contains("too small for flannel"), "{e}");
    let e = err(&BASE.replace(
        "  name: lab\n",
        "  name: lab\n  serviceSubnet: 10.0.0.0/8\n",
    ));
    assert!(
        e.contains("cluster.serviceSubnet: 10.0.0.0/8 is too large"),
        "{e}"
    );
}

#[test]
fn files_must_exist_relative_to_the_inventory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("images")).unwrap();
    std::fs::write(dir.path().join("images/a.tar"), hardening::tiny_tar()).unwrap();
    std::fs::write(dir.path().join("key"), b"x").unwrap();
    let file = dir.path().join("inv.yaml");
    let src = BASE.replace(
        "  name: lab\n",
        "  name: lab\n  preloadImages: [images/a.tar, images/missing.tar]\n",
    ) + "ssh:\n  identityFile: key\n";
    std::fs::write(&file, &src).unwrap();
    let e = load(&file).unwrap_err().to_string();
    assert!(
        e.contains(
            ":3:33: cluster.preloadImages[1]: image tarball \"images/missing.tar\" not found"
        ),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "{e}");
    std::fs::write(&file, src.replace(", images/missing.tar", "")).unwrap();
    let inv = load(&file).unwrap();
    assert_eq!(
        inv.cluster.preload_images,
        vec![dir.path().join("images/a.tar")]
    );
    assert_eq!(inv.hosts[0].ssh.identity_file, Some(dir.path().join("key")));
    std::fs::write(
        &file,
        src.replace("identityFile: key", "identityFile: nokey")
            .replace(", images/missing.tar", ""),
    )
    .unwrap();
    let e = load(&file).unwrap_err().to_string();
    assert!(
        e.contains("ssh.identityFile: private key") && e.contains("does not exist"),
        "{e}"
    );
}

#[test]
fn read_error() {
    let e = load(Path::new("/nonexistent/inv.yaml")).unwrap_err();
    assert!(matches!(e, InventoryError::Read { .. }));
    assert!(e
        .to_string()
        .starts_with("/nonexistent/inv.yaml: cannot read the inventory"));
}

#[test]
fn helpers() {
    assert!(is_rfc1123_label("worker-1"));
    assert!(!is_rfc1123_label("Worker"));
    assert!(!is_rfc1123_label("-a"));
    assert!(!is_rfc1123_label(&"a".repeat(64)));
    assert_eq!(
        parse_duration("90"),
        Some(std::time::Duration::from_secs(90))
    );
    assert_eq!(
        parse_duration("1h30m"),
        Some(std::time::Duration::from_secs(5400))
    );
    assert_eq!(parse_duration("5x"), None);
    assert_eq!(parse_duration("5m3"), None);
    assert_eq!(endpoint_with_port("lb.example.com"), "lb.example.com:6443");
    assert_eq!(endpoint_with_port("lb:7443"), "lb:7443");
    assert_eq!(endpoint_with_port("fd00::1"), "[fd00::1]:6443");
    assert_eq!(
        closest("podsubnet", &["name", "podSubnet"]),
        Some("podSubnet")
    );
    assert_eq!(closest("zzzzzz", &["name", "podSubnet"]), None);
    assert_eq!(Version::parse("1.31"), None);
    assert_eq!(Version::parse("1.031.2"), None);
    assert_eq!(Version::parse("v1.31.2-rc.0"), None);
}

#[test]
fn path_index_names_nested_nodes() {
    let src = "a:\n  b: [1, {c: 2}]\nhosts:\n  - name: x\n    ssh:\n      port: 1\n";
    let idx = PathIndex::build(src);
    assert_eq!(idx.path_at(2, 3, true), Some("a.b"));
    assert_eq!(idx.path_at(2, 3, false), Some("a"));
    assert_eq!(idx.path_at(2, 6, false), Some("a.b"));
    assert_eq!(idx.path_at(2, 7, false), Some("a.b[0]"));
    assert_eq!(idx.path_at(2, 10, false), Some("a.b[1]"));
    assert_eq!(idx.path_at(2, 11, true), Some("a.b[1].c"));
    assert_eq!(idx.path_at(2, 14, false), Some("a.b[1].c"));
    assert_eq!(idx.path_at(6, 13, false), Some("hosts[0].ssh.port"));
    // Between nodes: the closest one before.
    assert_eq!(idx.path_at(6, 20, false), Some("hosts[0].ssh.port"));
}

#[test]
fn yaml_scalar_quirks() {
    // Quoted numbers, YAML 1.1 booleans and unquoted versions keep their text.
    let inv = ok(&BASE.replace("\"1.31.2\"", "1.31.2").replace(
        "    role: control-plane",
        "    role: control-plane\n    ssh: {port: \"2222\", hostKeyPolicy: off, user: yes}",
    ));
    assert_eq!(inv.hosts[0].ssh.port, 2222);
    assert_eq!(inv.hosts[0].ssh.host_key_policy, HostKeyPolicy::Off);
    assert_eq!(inv.hosts[0].ssh.user, "yes");
    // An explicit null is "missing".
    let e = err(&BASE.replace("  name: lab", "  name:"));
    assert!(e.contains("cluster.name: missing field `name`"), "{e}");
}

#[test]
fn enums_parse_their_inventory_spelling() {
    assert_eq!("control-plane".parse::<Role>(), Ok(Role::ControlPlane));
    assert_eq!(
        "accept-new".parse::<HostKeyPolicy>(),
        Ok(HostKeyPolicy::AcceptNew)
    );
    assert_eq!("none".parse::<Cni>(), Ok(Cni::None));
    assert!("master"
        .parse::<Role>()
        .unwrap_err()
        .contains("control-plane, worker"));
    for r in [Runtime::Containerd, Runtime::Docker] {
        assert_eq!(r.as_str().parse::<Runtime>(), Ok(r));
    }
    assert_eq!(
        Runtime::Docker.cri_socket(),
        "unix:///var/run/cri-dockerd.sock"
    );
}

#[test]
fn odd_inputs_give_located_errors() {
    for (src, want) in [
        ("cluster: ~\nhosts:\n  -\n", "hosts[0]"),
        ("cluster:\n  name: lab\n  kubernetesVersion: 1.31.2\nhosts:\n  - name: ü\n    address: 10.1.1.1\n    role: worker\n", "hosts[0].name: \"ü\" is not a valid host name"),
        ("cluster: {name: lab, kubernetesVersion: 1.31.2}\nhosts: [{name: a, address: 10.1.1.1, role: control-plane}]\nssh: {port: -1}\n", "3:13: ssh.port: \"-1\" is not valid here"),
        ("cluster: {name: lab, kubernetesVersion: 1.31.2}\nhosts: [{name: a, address: 10.1.1.1, role: control-plane}]\ntimeouts: {connect: 0s}\n", "timeouts.connect: a timeout must be longer than 0s"),
        ("&a cluster: *a\n", ":1:"),
        ("cluster: !!binary aGVsbG8=\n", ":1:"),
    ] {
        let e = err(src);
        println!("{e}");
        assert!(e.contains(want), "{src:?}:\n{e}");
        for line in e.lines() {
            assert!(line.starts_with("inventory.yaml:"), "{line}");
        }
    }
}

#[test]
fn ssh_config_alias_with_an_ip_hostname_gives_the_internal_address() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".ssh")).unwrap();
    std::fs::write(
        home.path().join(".ssh/config"),
        "Host lab-*\n  HostName 10.20.30.40\nHost named\n  HostName box.lan\n",
    )
    .unwrap();
    let src = |addr: &str| {
        format!("cluster:\n  name: lab\n  kubernetesVersion: \"1.31.2\"\nssh:\n  user: ops\nhosts:\n  - name: cp\n    address: {addr}\n    role: control-plane\n")
    };
    let run = |addr: &str| {
        let raw: raw::RawInventory = serde_saphyr::from_str(&src(addr)).unwrap();
        validate::validate(raw, Path::new(FILE), Path::new("/tmp"), Some(home.path()))
    };
    let inv = run("lab-cp").unwrap();
    let h = &inv.hosts[0];
    assert_eq!(h.internal_address.to_string(), "10.20.30.40");
    assert_eq!(h.address, "lab-cp", "SSH still connects through the alias");
    assert!(h.ssh.user_explicit && !h.ssh.port_explicit);
    // An alias naming a DNS name (or no alias) still needs internalAddress.
    for addr in ["named", "elsewhere.lan"] {
        let problems = run(addr).unwrap_err();
        assert!(
            problems[0]
                .message
                .contains("internalAddress (the node IP) must be set"),
            "{problems:?}"
        );
    }
}
