"""Regenerate hostile/*.yaml: one valid inventory (good/hostile-base.yaml) with one field replaced
by a shell, sed, YAML or control-character payload per file.

Run `python3 tests/data/inventories/gen_hostile.py`. Every generated file must fail validation
(exit 2) with an error located at file:line:col; `# expect: <path>` names the field the error
must be about (files that break the YAML itself only need a location). Files are overwritten:
edit the cases below, not the generated YAML.
"""
import glob
import os

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "hostile")

# Every field the schema has (src/inventory/raw.rs), with a valid value. `{}` marks the value.
FIELDS = [
    ("cluster.name", "lab"),
    ("cluster.kubernetesVersion", "1.31.2"),
    ("cluster.podSubnet", "10.244.0.0/16"),
    ("cluster.serviceSubnet", "10.96.0.0/12"),
    ("cluster.containerRuntime", "containerd"),
    ("cluster.cni", "flannel"),
    ("cluster.imageRepository", "registry.k8s.io"),
    ("cluster.packageRepository", "https://pkgs.k8s.io/core:/stable:/v1.31/deb/"),
    ("cluster.preloadImages[0]", "../files/images.tar"),
    ("cluster.pki", "kubeadm"),
    ("cluster.controlPlaneEndpoint", "lb.example.com:6443"),
    ("ssh.user", "ops"),
    ("ssh.port", "22"),
    ("ssh.identityFile", "../keys/id_test"),
    ("ssh.knownHostsFile", "../files/known_hosts"),
    ("ssh.hostKeyPolicy", "accept-new"),
    ("ssh.passwordEnv", "SSH_PW"),
    ("ssh.passphraseEnv", "KEY_PW"),
    ("ssh.sudoPasswordEnv", "SUDO_PW"),
    ("ssh.bastion", "ops@jump.example.com:22"),
    ("timeouts.connect", "30s"),
    ("timeouts.command", "5m"),
    ("timeouts.packageInstall", "15m"),
    ("timeouts.imagePull", "15m"),
    ("timeouts.kubeadmInit", "10m"),
    ("timeouts.kubeadmJoin", "10m"),
    ("timeouts.nodeReady", "10m"),
    ("hosts[0].name", "cp1"),
    ("hosts[0].address", "192.168.56.10"),
    ("hosts[0].role", "control-plane"),
    ("hosts[1].name", "w1"),
    ("hosts[1].address", "w1.example.com"),
    ("hosts[1].internalAddress", "192.168.56.11"),
    ("hosts[1].role", "worker"),
    ("hosts[1].ssh.user", "vagrant"),
    ("hosts[1].ssh.port", "2222"),
    ("hosts[1].ssh.knownHostsFile", "../files/known_hosts"),
    ("hosts[1].ssh.sudoPasswordEnv", "W1_SUDO_PW"),
    ("hosts[1].ssh.bastion", "jump.example.com"),
]

BASE = """cluster:
  name: "{cluster.name}"
  kubernetesVersion: "{cluster.kubernetesVersion}"
  podSubnet: "{cluster.podSubnet}"
  serviceSubnet: "{cluster.serviceSubnet}"
  containerRuntime: "{cluster.containerRuntime}"
  cni: "{cluster.cni}"
  imageRepository: "{cluster.imageRepository}"
  packageRepository: "{cluster.packageRepository}"
  preloadImages: ["{cluster.preloadImages[0]}"]
  pki: "{cluster.pki}"
  controlPlaneEndpoint: "{cluster.controlPlaneEndpoint}"
ssh:
  user: "{ssh.user}"
  port: "{ssh.port}"
  identityFile: "{ssh.identityFile}"
  knownHostsFile: "{ssh.knownHostsFile}"
  hostKeyPolicy: "{ssh.hostKeyPolicy}"
  passwordEnv: "{ssh.passwordEnv}"
  passphraseEnv: "{ssh.passphraseEnv}"
  sudoPasswordEnv: "{ssh.sudoPasswordEnv}"
  bastion: "{ssh.bastion}"
timeouts:
  connect: "{timeouts.connect}"
  command: "{timeouts.command}"
  packageInstall: "{timeouts.packageInstall}"
  imagePull: "{timeouts.imagePull}"
  kubeadmInit: "{timeouts.kubeadmInit}"
  kubeadmJoin: "{timeouts.kubeadmJoin}"
  nodeReady: "{timeouts.nodeReady}"
hosts:
  - name: "{hosts[0].name}"
    address: "{hosts[0].address}"
    role: "{hosts[0].role}"
  - name: "{hosts[1].name}"
    address: "{hosts[1].address}"
    internalAddress: "{hosts[1].internalAddress}"
    role: "{hosts[1].role}"
    ssh:
      user: "{hosts[1].ssh.user}"
      port: "{hosts[1].ssh.port}"
      knownHostsFile: "{hosts[1].ssh.knownHostsFile}"
      sudoPasswordEnv: "{hosts[1].ssh.sudoPasswordEnv}"
      bastion: "{hosts[1].ssh.bastion}"
"""

VALUES = dict(FIELDS)


def render(overrides):
    text = BASE
    for field, value in VALUES.items():
        text = text.replace("{" + field + "}", overrides.get(field, value))
    assert "{" not in text.replace("{flow", ""), text
    return text


# Payloads appended to a field's valid value, written inside a YAML double-quoted scalar.
PAYLOADS = [
    ("dollar", "$(id>/tmp/pwned)"),
    ("backtick", "`id`"),
    ("semicolon", ";id #"),
    ("sed", "|;s|.*|echo\\\\x20x>>/tmp/p|e;#"),
    ("newline", "\\nid"),
    ("cr", "\\rid"),
    ("nul", "\\0id"),
    ("esc", "\\e[31mid"),
]

cases = {}


def case(name, expects, body):
    assert name not in cases, name
    cases[name] = (expects, body)


def slug(field):
    return field.replace("[", "").replace("]", "").replace(".", "-")


for field, value in FIELDS:
    for kind, payload in PAYLOADS:
        case(f"{slug(field)}-{kind}", [field], render({field: value + payload}))

# Whole-value payloads where appending is not the interesting attack.
case("image-repository-sed-issue", ["cluster.imageRepository"],
     render({"cluster.imageRepository": "r.io|;s|.*|echo\\\\x20x>>/tmp/p|e;#"}))
case("preload-credentials", ["cluster.preloadImages[0]"],
     render({"cluster.preloadImages[0]": "../files/credentials"}))
case("preload-home-credentials", ["cluster.preloadImages[0]"],
     render({"cluster.preloadImages[0]": "~/.aws/credentials-kubestrap-test"}))
case("address-numeric-loopback", ["hosts[0].address"],
     render({"hosts[0].address": "2130706433"}))
case("address-short-loopback", ["hosts[0].address"], render({"hosts[0].address": "127.1"}))
case("address-hex-loopback", ["hosts[0].address"], render({"hosts[0].address": "0x7f.1"}))
case("address-octal-loopback", ["hosts[0].address"],
     render({"hosts[0].address": "017700000001"}))
case("endpoint-numeric", ["cluster.controlPlaneEndpoint"],
     render({"cluster.controlPlaneEndpoint": "2130706433:6443"}))
case("bastion-option-injection", ["ssh.bastion"],
     render({"ssh.bastion": "-oProxyCommand=id@jump"}))
case("user-option-injection", ["ssh.user"], render({"ssh.user": "-oProxyCommand=id"}))
case("timeout-u64-max", ["timeouts.command"],
     render({"timeouts.command": "18446744073709551615"}))
case("env-lowercase", ["ssh.sudoPasswordEnv"], render({"ssh.sudoPasswordEnv": "sudo_pw"}))
case("env-is-a-secret", ["ssh.passwordEnv"], render({"ssh.passwordEnv": "hunter2!"}))
case("unicode-line-separator", ["hosts[0].name"], render({"hosts[0].name": "cp1\\u2028id"}))
case("unicode-next-line", ["ssh.user"], render({"ssh.user": "ops\\x85id"}))
case("del-character", ["cluster.name"], render({"cluster.name": "lab\\x7f"}))

# YAML-level payloads: quote breakouts, anchors, documents, raw control bytes.
case("yaml-quote-breakout", ["cluster.name"], render({"cluster.name": 'lab\\": x'}))
case("yaml-unquoted-colon", [],
     render({}).replace('  name: "lab"', '  name: lab": x'))
case("yaml-anchor-alias", ["hosts[0].name"],
     render({}).replace('  name: "lab"', '  name: &n "lab;id"')
     .replace('  - name: "cp1"', "  - name: *n"))
case("yaml-merge-key", ["hosts[1].address"],
     render({}).replace('  - name: "w1"\n    address: "w1.example.com"\n',
                        '  - <<: {address: "w1$(id)"}\n    name: "w1"\n'))
case("yaml-second-document", [],
     render({}) + "---\ncluster: {name: \"$(id)\"}\n")
case("yaml-document-end-then-garbage", [],
     render({}) + "...\n$(id)\n")
case("yaml-injected-host-key", ["hosts[0].name"],
     render({"hosts[0].name": "cp1\\n    role: worker"}))
case("yaml-key-with-newline", [],
     render({}).replace('  pki: "kubeadm"', '  "pki\\n": "kubeadm"'))
case("yaml-tagged-value", [],
     render({}).replace('  name: "lab"', '  name: !!binary JChpZCk='))
case("yaml-billion-laughs", [],
     "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
     "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
     "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
     "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
     "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
     + render({}))
case("raw-esc-byte", [], render({}).replace('  name: "lab"', '  name: "lab\x1b[2J"'))
case("raw-nul-byte", [], render({}).replace('  name: "lab"', '  name: lab\x00id'))
case("raw-cr-in-plain-value", [],
     render({}).replace('  user: "ops"', '  user: ops\rid'))

os.makedirs(OUT, exist_ok=True)
for old in glob.glob(os.path.join(OUT, "*.yaml")):
    os.remove(old)
for name, (expects, body) in sorted(cases.items()):
    head = "".join(f"# expect: {e}\n" for e in expects) or "# expect-location\n"
    with open(os.path.join(OUT, name + ".yaml"), "w", newline="") as f:
        f.write(head + body)
with open(os.path.join(HERE, "good", "hostile-base.yaml"), "w") as f:
    f.write("# The valid inventory tests/data/inventories/hostile/ is made from (gen_hostile.py).\n"
            + render({}))
print(f"{len(cases)} hostile inventories")
