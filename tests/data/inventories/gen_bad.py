"""Regenerate bad/*.yaml: each case is a broken inventory plus the substrings its error must contain.

Run `python3 tests/data/inventories/gen_bad.py`. Expected `:LINE:COL:` prefixes and `(line N)`
references are written against the body; they are shifted past the `# expect:` header lines here.
Files are overwritten: edit the cases below, not the generated YAML.
"""
import os
os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), "bad"))
H = """cluster:
  name: lab
  kubernetesVersion: "1.31.2"
hosts:
  - name: master
    address: 192.168.56.10
    role: control-plane
  - name: worker1
    address: 192.168.56.11
    role: worker
"""
def cl(extra):  # add lines to the cluster section
    return H.replace('  kubernetesVersion: "1.31.2"\n', '  kubernetesVersion: "1.31.2"\n' + extra)
def w1(extra):  # add lines to worker1
    return H + extra
cases = {}
def case(name, expects, body):
    assert name not in cases
    cases[name] = (expects, body)

# --- YAML syntax
case("syntax-bad-indent", [":4:2: YAML syntax error", "indentation"],
"cluster:\n  name: lab\n  kubernetesVersion: \"1.31.2\"\n hosts:\n  - name: master\n")
case("syntax-unclosed-flow", [":2:1: YAML syntax error", "did not find expected ',' or '}'"],
"cluster: {name: lab, kubernetesVersion: \"1.31.2\"\nhosts: []\n")
case("syntax-tab-indent", ["YAML syntax error", "tabs"],
"cluster:\n  name: lab\n\tkubernetesVersion: \"1.31.2\"\n")
case("syntax-unclosed-quote", ["YAML syntax error"],
"cluster:\n  name: \"lab\n  kubernetesVersion: 1.31.2\n")
case("duplicate-key", [":4:3: cluster.name: `name` is given twice"],
"cluster:\n  name: lab\n  kubernetesVersion: \"1.31.2\"\n  name: lab2\n")
case("not-a-mapping", [":1:1:", "wrong type", "must be a mapping with `cluster`"],
"- name: master\n  address: 192.168.56.10\n")
case("two-documents", ["single YAML document"], H + "---\n" + H)

# --- unknown / misspelled fields
case("misspelled-podsubnet", [":4:3: cluster.podSubnett: unknown field `podSubnett`; did you mean `podSubnet`?",
                              "allowed: name, kubernetesVersion, podSubnet"], cl("  podSubnett: 10.244.0.0/16\n"))
case("snake-case-field", [":3:3: cluster.kubernetes_version: unknown field `kubernetes_version`; did you mean `kubernetesVersion`?"],
     H.replace("kubernetesVersion", "kubernetes_version"))
case("misspelled-top-level-hosts", [":4:1: host: unknown field `host`; did you mean `hosts`?"], H.replace("hosts:", "host:"))
case("misspelled-host-field", [":9:5: hosts[1].adress: unknown field `adress`; did you mean `address`?"],
     H.replace("    address: 192.168.56.11", "    adress: 192.168.56.11"))
case("misspelled-ssh-field", [":12:7: hosts[1].ssh.identity: unknown field `identity`; did you mean `identityFile`?"],
     w1("    ssh:\n      identity: ~/.ssh/id_ed25519\n"))
case("misspelled-internal-address", [":11:5: hosts[1].internalAdress: unknown field `internalAdress`; did you mean `internalAddress`?"],
     w1("    internalAdress: 192.168.56.11\n"))
case("unknown-top-level", [":1:1: version: unknown field `version`", "allowed: cluster, ssh, hosts, timeouts"],
     "version: 1\n" + H)

# --- wrong types
case("port-not-a-number", [":12:13: hosts[1].ssh.port: \"ssh\" is not valid here: expected a TCP port number (1-65535)"],
     w1("    ssh:\n      port: ssh\n"))
case("port-too-big", [":12:13: hosts[1].ssh.port:", "expected a TCP port number (1-65535)"], w1("    ssh:\n      port: 70000\n"))
case("port-zero", [":12:13: hosts[1].ssh.port: 0 is not a usable port; allowed: 1-65535"], w1("    ssh:\n      port: 0\n"))
case("hosts-is-a-mapping", [":5:3: hosts: wrong type", "list of hosts"],
     "cluster:\n  name: lab\n  kubernetesVersion: \"1.31.2\"\nhosts:\n  name: master\n  address: 192.168.56.10\n")
case("name-is-a-list", [":2:9: cluster.name: wrong type"], H.replace("  name: lab", "  name: [lab]"))
case("ssh-is-a-string", [":11:10: hosts[1].ssh: wrong type", "expected a mapping of fields"], w1("    ssh: root@192.168.56.11\n"))
case("preload-images-not-a-list", [":4:18: cluster.preloadImages: wrong type", "list of file paths"], cl("  preloadImages: images/a.tar\n"))

# --- missing things
case("empty", [":1:1: cluster: missing section `cluster`", ":1:1: hosts: no hosts"], "# nothing here\n")
case("missing-version", [":2:3: cluster.kubernetesVersion: missing field `kubernetesVersion`"], H.replace('  kubernetesVersion: "1.31.2"\n', ""))
case("missing-role-and-address", [":8:5: hosts[1].address: missing field `address`", ":8:5: hosts[1].role: missing field `role`; allowed: control-plane, worker"],
     H.replace("    address: 192.168.56.11\n    role: worker\n", ""))
case("no-hosts", [":4:8: hosts: no hosts"], "cluster:\n  name: lab\n  kubernetesVersion: \"1.31.2\"\nhosts: []\n")

# --- invalid values
case("bad-role", [":10:11: hosts[1].role: \"wroker\" is not a role; allowed: control-plane, worker (did you mean `worker`?)"],
     H.replace("role: worker", "role: wroker"))
case("role-master", [":7:11: hosts[0].role: \"master\" is not a role; allowed: control-plane, worker (did you mean `control-plane`?)"],
     H.replace("role: control-plane", "role: master"))
case("bad-runtime", [":4:21: cluster.containerRuntime: \"cri-o\" is not a container runtime; allowed: containerd, docker"], cl("  containerRuntime: cri-o\n"))
case("bad-cni", [":4:8: cluster.cni: \"weave\" is not a supported pod network; allowed: flannel, none"], cl("  cni: weave\n"))
case("cni-calico-refused", [":4:8: cluster.cni: \"calico\" is not a supported pod network; allowed: flannel, none"], cl("  cni: calico\n"))
case("bad-pki", [":4:8: cluster.pki: \"openssl\" is not a PKI mode; allowed: kubeadm, console"], cl("  pki: openssl\n"))
case("bad-host-key-policy", [":12:18: ssh.hostKeyPolicy: \"ask\" is not a host key policy; allowed: strict, accept-new, off"],
     H + "ssh:\n  hostKeyPolicy: ask\n")
case("host-key-policy-no", [":12:18: ssh.hostKeyPolicy: \"no\" is not a host key policy; allowed: strict, accept-new, off (did you mean `off`?)"],
     H + "ssh:\n  hostKeyPolicy: no\n")
case("invalid-hostname-uppercase", [":8:11: hosts[1].name: \"Worker_1\" is not a valid host name", "RFC 1123", "did you mean `worker-1`?"],
     H.replace("name: worker1", "name: Worker_1"))
case("invalid-hostname-too-long", [":8:11: hosts[1].name:", "is not a valid host name", "it has 64 characters"],
     H.replace("name: worker1", "name: " + "w" * 64))
case("invalid-hostname-fqdn", [":5:11: hosts[0].name: \"master.example.com\" is not a valid host name", "did you mean `master-example-com`?"],
     H.replace("name: master", "name: master.example.com"))
case("invalid-cluster-name", [":2:9: cluster.name: \"-lab\" is not a valid cluster name", "RFC 1123 label"], H.replace("  name: lab", "  name: \"-lab\""))
case("duplicate-host-names", [":8:11: hosts[1].name: duplicate host name \"master\": hosts[0] (line 5) already uses it"],
     H.replace("name: worker1", "name: master"))
case("duplicate-addresses", [":9:14: hosts[1].address: duplicate address 192.168.56.10:22: hosts[0] (line 5) already connects there",
                             ":9:14: hosts[1].internalAddress: duplicate node IP 192.168.56.10"],
     H.replace("192.168.56.11", "192.168.56.10"))
case("duplicate-loopback-port", [":11:14: hosts[1].address: duplicate address 127.0.0.1:2222: hosts[0] (line 5)"],
     """cluster:
  name: lab
  kubernetesVersion: "1.31.2"
hosts:
  - name: master
    address: 127.0.0.1
    internalAddress: 192.168.56.10
    role: control-plane
    ssh: {port: 2222}
  - name: worker1
    address: 127.0.0.1
    internalAddress: 192.168.56.11
    role: worker
    ssh:
      port: 2222
""".replace("      port: 2222\n", "      port: 2222\n").replace("    address: 127.0.0.1\n    internalAddress: 192.168.56.11", "    address: 127.0.0.1\n    internalAddress: 192.168.56.11") )
case("duplicate-internal-address", [":10:22: hosts[1].internalAddress: duplicate node IP 192.168.56.10: hosts[0] (line 5) already has it"],
     H.replace("    address: 192.168.56.11\n", "    address: 127.0.0.1\n    internalAddress: 192.168.56.10\n    ssh: {port: 2200}\n").replace("    ssh: {port: 2200}\n    role: worker\n", "    role: worker\n    ssh: {port: 2200}\n"))
case("overlapping-subnets", [":5:18: cluster.serviceSubnet: 10.96.0.0/12 overlaps podSubnet 10.96.0.0/16; pod and service subnets must not overlap"],
     cl("  podSubnet: 10.96.0.0/16\n  serviceSubnet: 10.96.0.0/12\n"))
case("pod-subnet-overlaps-default-service", [":4:14: cluster.podSubnet: 10.96.0.0/11 overlaps serviceSubnet 10.96.0.0/12 (the default)"],
     cl("  podSubnet: 10.96.0.0/11\n"))
case("host-inside-pod-subnet", [":7:14: hosts[0].internalAddress: 192.168.56.10 (internalAddress defaults to address) is inside podSubnet 192.168.0.0/16"],
     cl("  podSubnet: 192.168.0.0/16\n").replace("\n  - name: master", "\n  - name: master"))
case("subnet-not-cidr", [":4:14: cluster.podSubnet: \"10.244.0.0\" has no prefix length"], cl("  podSubnet: 10.244.0.0\n"))
case("subnet-garbage", [":4:18: cluster.serviceSubnet: \"10.96.0.0/33\" is not an IPv4 CIDR range"], cl("  serviceSubnet: 10.96.0.0/33\n"))
case("subnet-ipv6", [":4:14: cluster.podSubnet: \"fd00:10:244::/56\" is an IPv6 range"], cl("  podSubnet: fd00:10:244::/56\n"))
case("subnet-host-bits", [":4:14: cluster.podSubnet: \"10.244.1.0/16\" has host bits set; the network address of that range is 10.244.0.0/16"],
     cl("  podSubnet: 10.244.1.0/16\n"))
case("flannel-subnet-too-small", [":4:14: cluster.podSubnet: 10.244.0.0/24 is too small for flannel", "room for 1 node(s), the inventory has 2"],
     cl("  podSubnet: 10.244.0.0/24\n"))
case("no-control-plane", [":5:3: hosts: no host has `role: control-plane`; exactly one is required"], H.replace("role: control-plane", "role: worker"))
case("two-control-planes-no-endpoint", [":10:11: hosts[1].role: a second control-plane (hosts[0] is one too): kubestrap builds one control plane for now"],
     H.replace("role: worker", "role: control-plane"))
case("two-control-planes-with-endpoint", [":11:11: hosts[1].role: a second control-plane (hosts[0] is one too): kubestrap builds one control plane for now (highly available control planes are not supported yet)"],
     cl("  controlPlaneEndpoint: 192.168.56.5:6443\n").replace("role: worker", "role: control-plane"))
case("bad-endpoint", [":4:25: cluster.controlPlaneEndpoint: \"https://lb:6443\" is not a valid endpoint"], cl("  controlPlaneEndpoint: https://lb:6443\n"))
case("missing-identity-file", [":12:21: hosts[1].ssh.identityFile: private key", "does not exist"], w1("    ssh:\n      identityFile: keys/nope\n"))
case("missing-preload-image", [":4:19: cluster.preloadImages[0]: image tarball \"images/k8s-v1.31.2.tar\" not found", "relative paths start at the inventory's directory"],
     cl("  preloadImages: [images/k8s-v1.31.2.tar]\n"))
case("preload-image-is-a-directory", [":5:7: cluster.preloadImages[0]: image tarball \".\" is not a file"], cl("  preloadImages:\n    - .\n"))
case("version-too-old", [":3:22: cluster.kubernetesVersion: Kubernetes 1.21.14 is not supported; supported versions are 1.22.x to 1.36.x"],
     H.replace("1.31.2", "1.21.14"))
case("version-too-new", [":3:22: cluster.kubernetesVersion: Kubernetes 1.37.0 is not supported"], H.replace("1.31.2", "1.37.0"))
case("version-no-patch", [":3:22: cluster.kubernetesVersion: \"1.31\" is not a Kubernetes version", "a patch release is required, e.g. \"1.31.0\""],
     H.replace("\"1.31.2\"", "1.31"))
case("version-garbage", [":3:22: cluster.kubernetesVersion: \"latest\" is not a Kubernetes version", "MAJOR.MINOR.PATCH"], H.replace("\"1.31.2\"", "latest"))
case("vagrant-nat-address", [":11:22: hosts[1].internalAddress: 10.0.2.15 is the Vagrant NAT address",
                             "every Vagrant VM has 10.0.2.15 on its NAT interface", "set internalAddress to the host-only address"],
     w1("    internalAddress: 10.0.2.15\n"))
case("vagrant-nat-default", [":9:14: hosts[1].internalAddress: 10.0.2.15 is the Vagrant NAT address (internalAddress defaults to address)"],
     H.replace("192.168.56.11", "10.0.2.15"))
case("loopback-address-no-internal", [":9:14: hosts[1].internalAddress: address 127.0.0.1 is a loopback address", "the node IP can't be loopback"],
     H.replace("192.168.56.11", "127.0.0.1").replace("    role: worker\n", "    role: worker\n    ssh: {port: 2222}\n"))
case("loopback-internal-address", [":11:22: hosts[1].internalAddress: 127.0.0.1 is a loopback address"], w1("    internalAddress: 127.0.0.1\n"))
case("internal-address-ipv6", [":11:22: hosts[1].internalAddress: fd00::11 is an IPv6 address; kubestrap builds IPv4 clusters only"],
     w1("    internalAddress: fd00::11\n"))
case("internal-address-not-ip", [":11:22: hosts[1].internalAddress: \"worker1.lan\" is not an IP address"], w1("    internalAddress: worker1.lan\n"))
case("name-address-without-internal", [":9:14: hosts[1].internalAddress: missing: address \"worker1.lan\" is a name, not an IP"],
     H.replace("192.168.56.11", "worker1.lan"))
case("address-with-user", [":9:14: hosts[1].address: \"vagrant@192.168.56.11\" includes a user; put `vagrant` in ssh.user"],
     H.replace("address: 192.168.56.11", "address: vagrant@192.168.56.11"))
case("address-with-port", [":9:14: hosts[1].address: \"192.168.56.11:2222\" includes a port; put the port in ssh.port"],
     H.replace("address: 192.168.56.11", "address: 192.168.56.11:2222"))
case("package-repo-no-slash", [":4:22: cluster.packageRepository: \"https://pkgs.k8s.io/core:/stable:/v1.31/deb\" must end with '/'"],
     cl("  packageRepository: https://pkgs.k8s.io/core:/stable:/v1.31/deb\n"))
case("package-repo-not-url", [":4:22: cluster.packageRepository: \"pkgs.k8s.io/core:/stable:/v1.31/deb/\" is not an http(s) URL"],
     cl("  packageRepository: pkgs.k8s.io/core:/stable:/v1.31/deb/\n"))
case("image-repo-with-scheme", [":4:20: cluster.imageRepository: \"https://registry.k8s.io\" must not have a scheme"],
     cl("  imageRepository: https://registry.k8s.io\n"))
case("password-in-env-field", [":12:16: ssh.passwordEnv: \"hunter2!\" is not an environment variable name", "never the secret itself"],
     H + "ssh:\n  passwordEnv: hunter2!\n")
case("bad-bastion", [":12:12: ssh.bastion: \"jump host:22\" is not a jump host", "[user@]host[:port]"], H + "ssh:\n  bastion: jump host:22\n")
case("bad-timeout", [":12:12: timeouts.connect: \"soon\" is not a duration"], H + "timeouts:\n  connect: soon\n")
case("many-problems-at-once", [":2:9: cluster.name:", ":3:22: cluster.kubernetesVersion:", ":7:11: hosts[0].role:", ":9:14: hosts[1].internalAddress: 10.0.2.15",
                               ":10:11: hosts[1].role:"],
     H.replace("  name: lab", "  name: Lab").replace("\"1.31.2\"", "\"2.0.0\"").replace("role: control-plane", "role: boss")
      .replace("192.168.56.11", "10.0.2.15").replace("role: worker", "role: minion"))

import re
for name, (expects, body) in cases.items():
    n = len(expects)
    if name != "empty":
        # The `# expect:` lines come first: shift the expected line numbers past them.
        expects = [re.sub(r"^:(\d+):(\d+):", lambda m: f":{int(m.group(1)) + n}:{m.group(2)}:", e) for e in expects]
        expects = [re.sub(r"\(line (\d+)\)", lambda m: f"(line {int(m.group(1)) + n})", e) for e in expects]
    with open(f"{name}.yaml", "w") as f:
        for e in expects:
            assert "\n" not in e
            f.write(f"# expect: {e}\n")
        f.write(body)
print(len(cases))
