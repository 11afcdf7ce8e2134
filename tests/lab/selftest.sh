#!/bin/bash
# Self-test of the namespaced test lab: brings up 3 hosts, drives every stand-in behaviour and fault knob
# by hand over ssh (as a user would), asserts the outcomes, always tears down.
# Prints PASS/FAIL per check and a closing line `selftest: N passed, M failed`; exits non-zero on failure.
# Needs root. Usage: tests/lab/selftest.sh   (KUBESTRAP_LAB_KEEP=1 leaves the lab up for inspection)
set -u
SRC=$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)
LABCMD=$SRC/scripts/lab
LAB=${KUBESTRAP_LAB_DIR:-/var/tmp/kubestrap-lab}
V=1.31.2
REPO="http://10.77.0.1:8080/k8s/core:/stable:/v1.31/deb/"
TOKEN=abcdef.0123456789abcdef
CP=10.77.0.11
WORK=$(mktemp -d /tmp/kubestrap-lab-selftest.XXXXXX)
LOG=$WORK/log
PASSED=0
FAILED=0
T0=$(date +%s)

lab() { "$LABCMD" "$@"; }
on() { local k=$1; shift; "$LABCMD" ssh "$k" "$@" </dev/null; }        # no stdin
onin() { local k=$1; shift; "$LABCMD" ssh "$k" "$@"; }                # with stdin
note() { echo "--- $*" >>"$LOG"; }

# check NAME CMD... : run CMD (output -> $WORK/out), PASS if it exits 0
check() {
    local name=$1
    shift
    note "$name"
    local t0=$EPOCHREALTIME rc=0 dt
    "$@" >"$WORK/out" 2>&1 || rc=1
    dt=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}')
    if [[ $rc == 0 ]]; then
        PASSED=$((PASSED + 1))
        echo "PASS: $name ($dt s)"
    else
        FAILED=$((FAILED + 1))
        echo "FAIL: $name ($dt s)"
        sed 's/^/    | /' "$WORK/out" | tail -n 15
    fi
    cat "$WORK/out" >>"$LOG"
}

cleanup() {
    local rc=$?
    [[ -n ${KUBESTRAP_LAB_KEEP:-} ]] || lab down >/dev/null 2>&1 || true
    if [[ $FAILED -gt 0 ]] && cp "$LOG" "${TMPDIR:-/tmp}/kubestrap-lab-selftest.log" 2>/dev/null; then
        echo "selftest: full log of every check in ${TMPDIR:-/tmp}/kubestrap-lab-selftest.log" >&2
    fi
    rm -rf "$WORK"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[[ $(id -u) == 0 ]] || { echo "selftest: must run as root"; echo "selftest: 0 passed, 1 failed"; exit 1; }

# ------------------------------------------------------------------ bring-up
t_up() {
    local t
    t=$(date +%s.%N)
    lab up 3 || return 1
    echo "up 3 took $(awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}') s (including cache checks)"
}
check "lab up 3 (builds the base rootfs and repos if missing)" t_up
echo "    ($(tail -n 1 "$WORK/out"))"

t_routes() {
    local k
    for k in 1 2 3; do ip route get "10.77.0.$((10 + k))" | grep -q ' dev ksbr0 ' || return 1; done
    ip route get 10.77.0.1 | grep -q ' dev lo \| dev ksbr0 '
}
check "10.77.0.11-13 route via ksbr0" t_routes

t_ssh_sudo() {
    local k out
    for k in 1 2 3; do
        out=$(on "$k" 'sudo -n id -un; hostname') || return 1
        [[ $out == $'root\n'"labhost-$k" ]] || { echo "host $k: $out"; return 1; }
    done
}
check "ssh as ops + passwordless sudo on all hosts, hostnames labhost-K" t_ssh_sudo
check "lab status exits 0" lab status

t_unique() {
    local ids keys
    ids=$(for k in 1 2 3; do on "$k" cat /etc/machine-id; done | sort -u | wc -l)
    keys=$(awk '{print $3}' "$LAB/ssh/known_hosts" | sort -u | wc -l)
    echo "distinct machine-ids: $ids, distinct host keys: $keys"
    [[ $ids == 3 && $keys == 3 ]] && on 1 '! sudo -n grep -q "^PermitRootLogin yes" /etc/ssh/sshd_config.d/*.conf'
}
check "per-host machine-id and host keys differ; root login off" t_unique

t_host_basics() {
    on 1 'set -e; sudo -n sysctl --system >/dev/null; sudo -n modprobe overlay; sudo -n modprobe br_netfilter;
        test -d /etc/modules-load.d; test ! -s /etc/resolv.conf; sudo -n swapoff -a;
        sudo -n sysctl -w net.ipv4.ip_forward=1 >/dev/null; sudo -n sysctl -w net.bridge.bridge-nf-call-iptables=1 >/dev/null || true;
        [ "$(cat /proc/sys/net/ipv4/ip_forward)" = 1 ]; ip route get 10.77.0.12 | grep -q "dev eth0"'
}
check "host prerequisites: sysctl --system, modprobe, swapoff, ip_forward" t_host_basics

t_inventory() {
    local want
    want=$(cat <<EOF
cluster:
  name: lab
  kubernetesVersion: "1.31.2"
  containerRuntime: containerd
  cni: flannel
  packageRepository: http://10.77.0.1:8080/k8s/core:/stable:/v1.31/deb/
  preloadImages: [$LAB/images/k8s-v1.31.2.tar]
ssh:
  user: ops
  identityFile: $LAB/ssh/id_ed25519
  knownHostsFile: $LAB/ssh/known_hosts
hosts:
  - { name: cp1, address: 10.77.0.11, role: control-plane }
  - { name: w1,  address: 10.77.0.12, role: worker }
EOF
)
    diff <(lab inventory --version 1.31.2 --preload --workers 1) <(echo "$want") || return 1
    lab inventory --version 1.32.1 --runtime docker --cni none | grep -q 'core:/stable:/v1.32/deb/' || return 1
    [[ $(lab inventory | grep -c 'role: worker') == 2 ]]
}
check "inventory matches CONTRACT.md (and --version/--runtime/--cni/--workers)" t_inventory

t_images() {
    local a b
    lab images "$V" -o "$WORK/a.tar" && lab images "$V" -o "$WORK/b.tar" || return 1
    a=$(sha256sum <"$WORK/a.tar") b=$(sha256sum <"$WORK/b.tar")
    [[ $a == "$b" ]] || return 1
    cmp -s "$WORK/a.tar" "$LAB/images/k8s-v$V.tar" || return 1
    tar -xOf "$WORK/a.tar" manifest.json | python3 -c '
import json,sys
tags=sorted(t for m in json.load(sys.stdin) for t in m["RepoTags"])
want=sorted(["registry.k8s.io/kube-apiserver:v1.31.2","registry.k8s.io/kube-controller-manager:v1.31.2",
 "registry.k8s.io/kube-scheduler:v1.31.2","registry.k8s.io/kube-proxy:v1.31.2","registry.k8s.io/coredns/coredns:v1.11.3",
 "registry.k8s.io/pause:3.10","registry.k8s.io/etcd:3.5.15-0","ghcr.io/flannel-io/flannel:v0.26.1",
 "ghcr.io/flannel-io/flannel-cni-plugin:v1.5.1-flannel2"])
sys.exit(0 if tags==want else print(tags) or 1)'
}
check "images $V: deterministic docker-archive with the contract's RepoTags" t_images

t_images_repo() {
    lab images 1.32.1 --repo registry.lab.invalid:5000/k8s -o "$WORK/r.tar" || return 1
    tar -xOf "$WORK/r.tar" manifest.json | python3 -c '
import json,sys
tags={t for m in json.load(sys.stdin) for t in m["RepoTags"]}
need={"registry.lab.invalid:5000/k8s/coredns:v1.11.3","registry.lab.invalid:5000/k8s/etcd:3.5.16-0",
      "registry.lab.invalid:5000/k8s/kube-proxy:v1.32.1","ghcr.io/flannel-io/flannel:v0.26.1"}
sys.exit(0 if need <= tags and len(tags) == 9 else print(sorted(tags)) or 1)'
}
check "images 1.32.1 --repo R: kubeadm's names under a custom repository" t_images_repo

# ------------------------------------------------------------------ packages, as a user installs them
INSTALL_K8S='set -e
sudo -n apt-get update -qq
sudo -n mkdir -p -m 755 /etc/apt/keyrings
curl -fsSL "'$REPO'Release.key" | sudo -n gpg --batch --yes --dearmor -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg
echo "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] '$REPO' /" | sudo -n tee /etc/apt/sources.list.d/kubernetes.list >/dev/null
sudo -n apt-get update -qq
sudo -n DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubelet='$V'-1.1 kubeadm='$V'-1.1 kubectl='$V'-1.1 containerd >/dev/null
sudo -n apt-mark hold kubelet kubeadm kubectl >/dev/null
[ "$(kubeadm version -o short)" = v'$V' ]
kubelet --version | grep -q "v'$V'"
kubectl version --client 2>/dev/null | grep -q "v'${V%.*}'\."
grep -q "^kubectl\[real:'${V%.*}'\] version --client" /var/log/kubestrap-lab/calls.log
dpkg-query -W -f="\${Version}" kubeadm | grep -qx "'$V'-1.1"
apt-mark showhold | grep -qx kubeadm
command -v containerd runc crictl >/dev/null'
t_install() {
    local k pids=() rc=0
    for k in 1 2 3; do on "$k" "$INSTALL_K8S" >"$WORK/install-$k" 2>&1 & pids+=($!); done
    for k in 0 1 2; do wait "${pids[$k]}" || { rc=1; echo "host $((k + 1)):"; tail -n 8 "$WORK/install-$((k + 1))"; }; done
    return $rc
}
check "apt: Release.key|gpg --dearmor, signed-by repo, install kubeadm/kubelet/kubectl=$V-1.1 + containerd, hold (3 hosts)" t_install

t_unsigned_refused() { # the k8s repo key is not pre-trusted: without signed-by, apt refuses the repo
    on 2 'echo "deb http://10.77.0.1:8080/k8s/core:/stable:/v1.32/deb/ /" | sudo -n tee /etc/apt/sources.list.d/k132.list >/dev/null;
        out=$(sudo -n apt-get update 2>&1); rc=$?; sudo -n rm -f /etc/apt/sources.list.d/k132.list; sudo -n apt-get update -qq;
        echo "$out" | grep -q "NO_PUBKEY\|not signed\|is not signed"'
}
check "k8s repo key is not pre-trusted (apt refuses the repo without signed-by)" t_unsigned_refused

t_latest_vs_pinned() { # two versions per repo: an unpinned install would get the newer one; hold keeps the pin
    on 2 'set -e
        curl -fsSL "http://10.77.0.1:8080/k8s/core:/stable:/v1.32/deb/Release.key" | sudo -n gpg --batch --yes --dearmor -o /etc/apt/keyrings/k132.gpg
        echo "deb [signed-by=/etc/apt/keyrings/k132.gpg] http://10.77.0.1:8080/k8s/core:/stable:/v1.32/deb/ /" | sudo -n tee /etc/apt/sources.list.d/k132.list >/dev/null
        sudo -n apt-get update -qq
        apt-cache madison kubeadm | grep -q "1.32.0-1.1" && apt-cache madison kubeadm | grep -q "1.32.1-1.1" && apt-cache madison kubeadm | grep -q "1.31.1-1.1"
        [ "$(apt-cache policy kubeadm | sed -n "s/ *Candidate: //p")" = 1.32.1-1.1 ]
        sudo -n apt-get -s upgrade | grep -q "kept back\|held back\|The following packages have been kept back" || sudo -n apt-get -s upgrade | grep -vq "^Inst kubeadm"
        ! sudo -n apt-get -s upgrade | grep -q "^Inst kubeadm"
        sudo -n rm -f /etc/apt/sources.list.d/k132.list /etc/apt/keyrings/k132.gpg; sudo -n apt-get update -qq'
}
check "both versions visible (candidate = newest), apt-mark hold keeps the pinned kubeadm" t_latest_vs_pinned

t_docker() {
    on 3 'set -e
        sudo -n DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io cri-dockerd >/dev/null
        dpkg-query -W docker.io cri-dockerd >/dev/null
        test -x /usr/bin/cri-dockerd
        sudo -n mkdir -p /etc/docker
        echo "{\"exec-opts\": [\"native.cgroupdriver=systemd\"]}" | sudo -n tee /etc/docker/daemon.json >/dev/null
        sudo -n systemctl enable --now docker cri-docker.socket
        sudo -n systemctl is-active docker
        sudo -n docker info 2>/dev/null | grep -i "cgroup driver: systemd"'
    onin 3 'cat > /tmp/k8s.tar' <"$LAB/images/k8s-v$V.tar" || return 1
    on 3 'set -e; sudo -n docker load -i /tmp/k8s.tar; sudo -n docker images | grep -q "registry.k8s.io/kube-apiserver *v'$V'"'
}
check "docker runtime: docker.io + cri-dockerd from the lab repo, daemon.json cgroup driver, docker load" t_docker

# ------------------------------------------------------------------ runtime + images
t_containerd() {
    local k
    for k in 1 2 3; do
        on "$k" 'set -e
            sudo -n mkdir -p /etc/containerd
            containerd config default | sed -e "s/SystemdCgroup = false/SystemdCgroup = true/" -e "s|sandbox_image = .*|sandbox_image = \"registry.k8s.io/pause:3.10\"|" | sudo -n tee /etc/containerd/config.toml >/dev/null
            grep -q "SystemdCgroup = true" /etc/containerd/config.toml
            grep -q "sandbox_image = \"registry.k8s.io/pause:3.10\"" /etc/containerd/config.toml
            sudo -n systemctl daemon-reload
            sudo -n systemctl restart containerd
            sudo -n systemctl enable containerd
            [ "$(sudo -n systemctl is-active containerd)" = active ]
            [ "$(sudo -n systemctl is-enabled containerd)" = enabled ]
            sudo -n systemctl enable --now kubelet
            echo 40 | sudo -n tee /etc/kubestrap-lab/max-wait-seconds >/dev/null
            sudo -n modprobe br_netfilter; sudo -n sysctl -w net.ipv4.ip_forward=1 >/dev/null' || return 1
    done
}
check "containerd config with SystemdCgroup=true + pause:3.10 sandbox, systemctl daemon-reload/restart/enable/is-active/is-enabled" t_containerd

t_import() {
    local k
    for k in 1 2 3; do
        onin "$k" 'cat > /tmp/k8s.tar' <"$LAB/images/k8s-v$V.tar" || return 1
        on "$k" 'set -e; sudo -n ctr -n k8s.io images import /tmp/k8s.tar >/dev/null
            sudo -n ctr -n k8s.io images ls -q | grep -qx "registry.k8s.io/pause:3.10"
            sudo -n crictl images | grep -q "registry.k8s.io/kube-proxy"' || return 1
    done
}
check "ctr -n k8s.io images import of the tarball; ctr images ls / crictl images list it" t_import

t_hostnamectl() {
    on 1 'sudo -n hostnamectl set-hostname cp1 && [ "$(hostname)" = cp1 ] && [ "$(cat /etc/hostname)" = cp1 ] && [ -z "$(sudo -n true 2>&1)" ]' &&
        on 2 'sudo -n hostnamectl set-hostname w1' && on 3 'sudo -n hostnamectl set-hostname w2'
}
check "hostnamectl set-hostname (real UTS name + /etc/hostname; sudo still quiet)" t_hostnamectl

# ------------------------------------------------------------------ kubeadm init / join
KCFG='apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
  - token: "'$TOKEN'"
    ttl: 24h0m0s
localAPIEndpoint:
  advertiseAddress: '$CP'
  bindPort: 6443
nodeRegistration:
  name: cp1
  criSocket: unix:///run/containerd/containerd.sock
  kubeletExtraArgs:
    - name: node-ip
      value: '$CP'
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v'$V'
clusterName: lab
controlPlaneEndpoint: "'$CP':6443"
networking:
  podSubnet: 10.244.0.0/16
  serviceSubnet: 10.96.0.0/12
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd'

t_bad_config() {
    ! on 1 'printf "apiVersion: kubeadm.k8s.io/v1beta9\nkind: InitConfiguration\n" > /tmp/bad.yaml; sudo -n kubeadm init --config /tmp/bad.yaml'
}
check "kubeadm init rejects an unknown apiVersion" t_bad_config

t_init() {
    onin 1 "cat > /tmp/kubeadm.yaml" <<<"$KCFG" || return 1
    on 1 'sudo -n kubeadm init --config /tmp/kubeadm.yaml' >"$WORK/init.out" 2>&1 || { tail -n 20 "$WORK/init.out"; return 1; }
    grep -q "Your Kubernetes control-plane has initialized successfully!" "$WORK/init.out" || return 1
    grep -q "kubeadm join $CP:6443 --token $TOKEN" "$WORK/init.out" || return 1
    on 1 'set -e; mkdir -p $HOME/.kube; sudo -n cp -i /etc/kubernetes/admin.conf $HOME/.kube/config; sudo -n chown $(id -u):$(id -g) $HOME/.kube/config'
}
check "kubeadm init --config (hand-written v1beta4) succeeds with the real success block" t_init

PIN=""
t_pin() {
    on 1 'cat /etc/kubernetes/pki/ca.crt' >"$WORK/ca.crt" || return 1
    PIN=$(openssl x509 -pubkey -noout -in "$WORK/ca.crt" | openssl pkey -pubin -outform der 2>/dev/null | openssl dgst -sha256 -hex | sed 's/^.* //')
    [[ ${#PIN} == 64 ]] || return 1
    grep -q "sha256:$PIN" "$WORK/init.out"
}
check "CA pin computed with openssl on the console matches the printed join command" t_pin

t_join_badpin() {
    local out
    out=$(on 2 "sudo -n kubeadm join $CP:6443 --token $TOKEN --discovery-token-ca-cert-hash sha256:$(printf '0%.0s' {1..64})" 2>&1) && return 1
    echo "$out"
    echo "$out" | grep -q "none of the public keys" && on 2 'test ! -e /etc/kubernetes/kubelet.conf'
}
check "kubeadm join with a wrong pin is refused (kubeadm's wording), nothing written" t_join_badpin

t_join_notoken() {
    ! on 2 "sudo -n kubeadm join $CP:6443 --discovery-token-ca-cert-hash sha256:$PIN" &&
        ! on 2 "sudo -n kubeadm join $CP:6443 --token abcdef.ffffffffffffffff --discovery-token-ca-cert-hash sha256:$PIN"
}
check "kubeadm join without a token / with an unknown token is refused" t_join_notoken

t_preflight() {
    local out
    out=$(on 3 "sudo -n sysctl -w net.ipv4.ip_forward=0 >/dev/null; sudo -n kubeadm join $CP:6443 --token $TOKEN --discovery-token-ca-cert-hash sha256:$PIN --cri-socket unix:///var/run/cri-dockerd.sock" 2>&1)
    local rc=$?
    on 3 'sudo -n sysctl -w net.ipv4.ip_forward=1 >/dev/null'
    echo "$out"
    [[ $rc != 0 ]] && echo "$out" | grep -q "ERROR FileContent--proc-sys-net-ipv4-ip_forward" && echo "$out" | grep -q "Some fatal errors occurred"
}
check "join preflight on real host state: ip_forward=0 -> [ERROR FileContent--proc-sys-net-ipv4-ip_forward]" t_preflight

check "fault never-ready on host 3" lab fault 3 never-ready on

t_join() {
    local k
    local cri
    for k in 2 3; do
        cri=""
        [[ $k == 3 ]] && cri=" --cri-socket unix:///var/run/cri-dockerd.sock" # host 3 has docker too: it joins with docker
        on "$k" "sudo -n kubeadm join $CP:6443 --token $TOKEN --discovery-token-ca-cert-hash sha256:$PIN$cri" >"$WORK/join-$k" 2>&1 ||
            { tail -n 15 "$WORK/join-$k"; return 1; }
        grep -q "This node has joined the cluster" "$WORK/join-$k" || return 1
        on "$k" 'sudo -n test -f /etc/kubernetes/kubelet.conf && sudo -n test -f /etc/kubernetes/pki/ca.crt' || return 1
    done
}
check "kubeadm join with the real pin on both workers (w2 through cri-dockerd)" t_join

nodes() { on 1 'kubectl get nodes --no-headers' | awk '{print $1"="$2}' | sort | tr '\n' ' '; }
t_notready() {
    local n
    n=$(nodes)
    echo "$n"
    [[ $n == "cp1=NotReady w1=NotReady w2=NotReady " ]]
}
check "kubectl get nodes: 3 nodes, NotReady before a pod network" t_notready

FLANNEL='apiVersion: v1
kind: Namespace
metadata:
  name: kube-flannel
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: kube-flannel-cfg
  namespace: kube-flannel
data:
  net-conf.json: |
    {
      "Network": "NETWORK",
      "EnableNFTables": false,
      "Backend": {
        "Type": "vxlan"
      }
    }
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: kube-flannel-ds
  namespace: kube-flannel
spec:
  selector:
    matchLabels:
      app: flannel
  template:
    metadata:
      labels:
        app: flannel
    spec:
      containers:
        - name: kube-flannel
          image: ghcr.io/flannel-io/flannel:v0.26.1
          command: ["/opt/bin/flanneld"]
          args: ["--ip-masq", "--kube-subnet-mgr"]'

t_flannel() {
    local n i
    onin 1 'kubectl apply -f -' <<<"${FLANNEL/NETWORK/10.244.0.0/16}" || return 1
    for i in $(seq 30); do
        n=$(nodes)
        [[ $n == "cp1=Ready w1=Ready w2=NotReady " ]] && break
        sleep 1
    done
    echo "$n"
    [[ $n == "cp1=Ready w1=Ready w2=NotReady " ]] || return 1
    on 1 'kubectl get nodes -o json' | python3 -c 'import json,sys; d=json.load(sys.stdin); assert len(d["items"])==3'
}
check "kubectl apply flannel (Network = podSubnet) -> nodes Ready; never-ready host stays NotReady" t_flannel

t_never_ready_off() {
    local i
    lab fault 3 never-ready off || return 1
    for i in $(seq 30); do on 1 'kubectl get nodes --no-headers' | grep -q "^w2 *Ready" && return 0; sleep 1; done
    on 1 'kubectl get nodes'
    return 1
}
check "fault never-ready off: w2 becomes Ready" t_never_ready_off

t_token() {
    local out
    out=$(on 1 'sudo -n kubeadm token create --print-join-command') || return 1
    echo "$out"
    [[ $out =~ ^kubeadm\ join\ $CP:6443\ --token\ [a-z0-9]{6}\.[a-z0-9]{16}\ --discovery-token-ca-cert-hash\ sha256:$PIN ]] || return 1
    on 1 'sudo -n kubeadm token list' | grep -q "${out#*--token }" 2>/dev/null || on 1 'sudo -n kubeadm token list' | grep -q "$(echo "$out" | awk '{print $5}' | cut -d. -f1)"
}
check "kubeadm token create --print-join-command (real pin) + token list" t_token

t_images_list() {
    on 1 "kubeadm config images list --kubernetes-version v$V" | grep -qx "registry.k8s.io/etcd:3.5.15-0"
}
check "kubeadm config images list" t_images_list

t_drain_delete() {
    on 1 'kubectl drain w1 --ignore-daemonsets --delete-emptydir-data' || return 1
    on 1 'kubectl get nodes --no-headers' | grep -q "^w1 .*SchedulingDisabled" || return 1
    on 1 'kubectl delete node w1' || return 1
    ! on 1 'kubectl get nodes --no-headers' | grep -q "^w1 "
}
check "kubectl drain w1 (SchedulingDisabled) and delete node w1" t_drain_delete

t_join_config() { # w1 rejoins with a JoinConfiguration file after reset -f
    on 2 'sudo -n kubeadm reset -f' >/dev/null 2>&1 || return 1
    onin 2 'cat > /tmp/join.yaml' <<EOF
apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: $CP:6443
    token: $TOKEN
    caCertHashes:
      - sha256:$PIN
nodeRegistration:
  name: w1
  criSocket: unix:///run/containerd/containerd.sock
EOF
    on 2 'sudo -n kubeadm join --config /tmp/join.yaml' | grep -q "This node has joined the cluster" || return 1
    local i
    for i in $(seq 20); do on 1 'kubectl get nodes --no-headers' | grep -q "^w1 *Ready" && return 0; sleep 1; done
    return 1
}
check "reset -f + kubeadm join --config (v1beta4 JoinConfiguration): w1 back and Ready" t_join_config

# ------------------------------------------------------------------ fault knobs
t_join_fails() {
    local out
    on 3 'sudo -n kubeadm reset -f' >/dev/null 2>&1 || return 1
    on 3 'sudo -n test ! -e /etc/kubernetes/kubelet.conf' || return 1
    on 1 'kubectl delete node w2' >/dev/null 2>&1 || true
    lab fault 3 join-fails on || return 1
    out=$(on 3 "sudo -n kubeadm join $CP:6443 --token $TOKEN --discovery-token-ca-cert-hash sha256:$PIN --cri-socket unix:///var/run/cri-dockerd.sock" 2>&1)
    local rc=$?
    echo "$out" | tail -n 5
    [[ $rc == 1 ]] || return 1
    lab fault 3 join-fails off
}
check "reset -f on a worker; fault join-fails: kubeadm join exits 1" t_join_fails

t_hang() {
    lab fault 2 hang:kubeadm on || return 1
    on 2 'timeout 3 kubeadm version -o short'
    [[ $? == 124 ]] || return 1
    lab fault 2 hang:kubeadm off && on 2 'timeout 10 kubeadm version -o short'
}
check "fault hang:kubeadm: kubeadm hangs (timeout), off: answers again" t_hang

t_sudo_pw() {
    lab fault 2 sudo-password on || return 1
    on 2 'sudo -n true' 2>&1 | grep -q "password is required" || return 1
    on 2 'echo labpass | sudo -S -p "" true' || return 1
    lab fault 2 sudo-password off && on 2 'sudo -n true'
}
check "fault sudo-password: sudo asks for a password (labpass works), off: NOPASSWD again" t_sudo_pw

t_sshd_stopped() {
    lab fault 2 sshd-stopped on || return 1
    on 2 true 2>&1 | grep -qi "refused" || return 1
    ! lab status >/dev/null 2>&1 || return 1
    lab fault 2 sshd-stopped off && on 2 true
}
check "fault sshd-stopped: connection refused, status fails; off: ssh works" t_sshd_stopped

t_hostkey() {
    lab fault 3 hostkey-changed on || return 1
    on 3 true 2>&1 | grep -qi "host key" || return 1
    ! on 3 true 2>/dev/null
}
check "fault hostkey-changed: ssh refuses the changed host key" t_hostkey

t_reset_cp() {
    on 1 'sudo -n kubeadm reset -f' >/dev/null 2>&1 || return 1
    on 1 'sudo -n test ! -e /etc/kubernetes/admin.conf' || return 1
    python3 "$SRC/tests/lab/waitports.py" --closed 10 "$CP:6443"
}
check "kubeadm reset -f on the control plane: admin.conf gone, :6443 closed" t_reset_cp

t_calls_log() {
    on 1 'grep -q "kubeadm init --config /tmp/kubeadm.yaml" /var/log/kubestrap-lab/calls.log && grep -q "hostnamectl set-hostname cp1" /var/log/kubestrap-lab/calls.log'
}
check "stand-ins append every invocation to /var/log/kubestrap-lab/calls.log" t_calls_log

# ------------------------------------------------------------------ teardown
t_down() {
    lab down || return 1
    ip route show 10.77.0.0/24 | grep -q '^unreachable' || return 1
    ! ip link show ksbr0 >/dev/null 2>&1 || return 1
    ! ip netns list | grep -q '^kslab-' || return 1
    ! lab ssh 1 true 2>/dev/null
}
check "lab down: bridge/netns gone, unreachable route back, ssh guard refuses" t_down

echo "selftest: took $(($(date +%s) - T0)) s"
echo "selftest: $PASSED passed, $FAILED failed"
[[ $FAILED == 0 ]]
