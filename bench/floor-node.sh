# bench/floor-node.sh: the remote half of bench/floor, fed to `sudo bash -s` on stdin after a few
# variable assignments (NAME, ROLE, HOSTS_BLOCK, REPO, VERSION, PAUSE, BUNDLE_SIZE, BUNDLE_SHA, ...).
# The whole script is one function so bash has read all of it before `head -c` reads the image
# bundle that follows it on the same stdin (one SSH session per host, nothing else).
# Same work as kubestrap's templates/scripts/{system,packages,runtime-containerd,images}.sh.j2 and
# init/join, written as a minimal idempotent script: each step checks before it changes.
floor_main() {
set -u
export DEBIAN_FRONTEND=noninteractive LC_ALL=C
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
die() { echo "FAIL $NAME: $*" >&2; exit 1; }
ch() { echo "CHANGED $*"; }
# put PATH < content: replace PATH only when the content differs
put() { local t; t=$(mktemp); cat >"$t"; if cmp -s "$t" "$1"; then rm -f "$t"; return 1; fi
        mkdir -p "$(dirname "$1")"; install -m 644 "$t" "$1"; rm -f "$t"; ch "$1"; }

# Always consume the bundle first (it follows this script on stdin).
B=/var/tmp/floor-images.tar
if [ "${BUNDLE_SIZE:-0}" -gt 0 ]; then
  head -c "$BUNDLE_SIZE" >/var/tmp/.floor-upload || die "reading the image bundle failed"
  if cmp -s /var/tmp/.floor-upload "$B"; then rm -f /var/tmp/.floor-upload; else mv /var/tmp/.floor-upload "$B"; ch "$B"; fi
fi

case "$MODE" in
prep)
  # hostname + /etc/hosts
  if [ "$(hostname)" != "$NAME" ] || [ "$(cat /etc/hostname)" != "$NAME" ]; then
    hostnamectl set-hostname "$NAME" || die "hostnamectl"; ch hostname; fi
  { sed '/^# BEGIN floor/,/^# END floor/d' /etc/hosts; echo "# BEGIN floor"; printf '%s\n' "$HOSTS_BLOCK"; echo "# END floor"; } | put /etc/hosts || true
  # modules + sysctls
  printf 'overlay\nbr_netfilter\n' | put /etc/modules-load.d/k8s.conf || true
  modprobe overlay; modprobe br_netfilter
  printf 'net.bridge.bridge-nf-call-iptables = 1\nnet.bridge.bridge-nf-call-ip6tables = 1\nnet.ipv4.ip_forward = 1\n' | put /etc/sysctl.d/k8s.conf || true
  for kv in net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1 net.ipv4.ip_forward=1; do
    [ "$(sysctl -n "${kv%=*}" 2>/dev/null)" = "${kv#*=}" ] || { sysctl -q -w "$kv" >/dev/null || die "sysctl $kv"; ch "$kv"; }
  done
  # swap
  if [ -n "$(awk 'NR>1' /proc/swaps)" ]; then swapoff -a; ch swapoff; fi
  if grep -Eq '^[^#].*[[:space:]]swap[[:space:]]' /etc/fstab; then sed -i -E 's|^([^#].*[[:space:]]swap[[:space:]].*)$|# \1|' /etc/fstab; ch fstab; fi
  # k8s apt repo + pinned packages, held
  K=/etc/apt/keyrings/kubernetes-apt-keyring.gpg
  upd=0
  if [ ! -s $K ]; then mkdir -p -m 755 /etc/apt/keyrings
    curl -fsSL --max-time 60 "${REPO}Release.key" | gpg --batch --yes --dearmor -o $K || die "Release.key"; ch $K; upd=1; fi
  echo "deb [signed-by=$K] $REPO /" | put /etc/apt/sources.list.d/kubernetes.list && upd=1
  want="containerd kubeadm=$VERSION-1.1 kubelet=$VERSION-1.1 kubectl=$VERSION-1.1"
  have=$(dpkg-query -W -f='${Package}=${Version} ${Status}\n' containerd kubeadm kubelet kubectl 2>/dev/null | awk '$4=="installed"{print $1}' | tr '\n' ' ')
  need=0
  for p in containerd kubeadm=$VERSION-1.1 kubelet=$VERSION-1.1 kubectl=$VERSION-1.1; do
    case " $have" in *" $p"*) ;; *) need=1 ;; esac
  done
  if [ $need = 1 ]; then
    [ $upd = 1 ] || true
    apt-get -qq update >/tmp/.floor-apt.log 2>&1 || { tail -5 /tmp/.floor-apt.log >&2; die "apt-get update"; }
    apt-get -qq -y --no-install-recommends --allow-change-held-packages install $want >/tmp/.floor-apt.log 2>&1 || { tail -5 /tmp/.floor-apt.log >&2; die "apt-get install"; }
    ch "installed $want"
  fi
  held=" $(apt-mark showhold | tr '\n' ' ')"
  for p in kubeadm kubelet kubectl; do case "$held" in *" $p "*) ;; *) apt-mark hold $p >/dev/null; ch "hold $p" ;; esac; done
  systemctl is-enabled -q kubelet || { systemctl enable kubelet >/dev/null 2>&1; ch "enable kubelet"; }
  # containerd with SystemdCgroup and kubeadm's pause image
  containerd config default | sed -E -e 's/SystemdCgroup = false/SystemdCgroup = true/' \
    -e "s|^([[:space:]]*)sandbox_image = .*|\1sandbox_image = \"$PAUSE\"|" | put /etc/containerd/config.toml && restart=1 || restart=0
  systemctl is-enabled -q containerd || { systemctl enable containerd >/dev/null 2>&1; ch "enable containerd"; }
  if [ $restart = 1 ] || ! systemctl is-active -q containerd; then systemctl restart containerd || die "containerd restart"; ch "restart containerd"; fi
  # image preload, imported once per bundle content
  if [ "${BUNDLE_SIZE:-0}" -gt 0 ] && [ ! -f "$B.$BUNDLE_SHA.imported" ]; then
    ctr -n k8s.io images import "$B" >/dev/null || die "ctr images import"; touch "$B.$BUNDLE_SHA.imported"; ch "images imported"; fi
  [ "$ROLE" = control-plane ] || exit 0
  # kubeadm init on the control plane
  export KUBECONFIG=/etc/kubernetes/admin.conf
  if [ ! -f /etc/kubernetes/admin.conf ]; then
    install -m 600 /dev/null /etc/floor-kubeadm.yaml
    cat >/etc/floor-kubeadm.yaml <<EOF
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint: {advertiseAddress: "$ADDR", bindPort: 6443}
nodeRegistration:
  name: "$NAME"
  criSocket: unix:///run/containerd/containerd.sock
  kubeletExtraArgs: [{name: node-ip, value: "$ADDR"}]
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: "v$VERSION"
networking: {podSubnet: "$POD_SUBNET", serviceSubnet: "$SERVICE_SUBNET"}
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
EOF
    kubeadm init --config /etc/floor-kubeadm.yaml >/tmp/.floor-init.log 2>&1 || { tail -5 /tmp/.floor-init.log >&2; die "kubeadm init"; }
    ch "kubeadm init"
  fi
  # which nodes are missing; a join command (token + CA pin we check ourselves) only if some are
  reg=" $(kubectl get nodes -o jsonpath='{.items[*].metadata.name}') "
  missing=""
  for n in $ALL_NAMES; do case "$reg" in *" $n "*) ;; *) missing="$missing $n" ;; esac; done
  if [ -n "$missing" ]; then
    j=$(kubeadm token create --print-join-command --ttl 1h) || die "kubeadm token create"
    pin=sha256:$(openssl x509 -pubkey -in /etc/kubernetes/pki/ca.crt | openssl pkey -pubin -outform der 2>/dev/null | sha256sum | cut -d' ' -f1)
    case "$j" in *"$pin"*) ;; *) die "CA pin mismatch: kubeadm printed '${j##*--discovery-token-ca-cert-hash }', ca.crt has $pin" ;; esac
    echo "JOIN $j"; echo "MISSING$missing"
  fi
  ready=$(kubectl get nodes --no-headers 2>/dev/null | awk '$2=="Ready"' | wc -l)
  if [ -n "$missing" ] || [ "$ready" -lt "$(echo $ALL_NAMES | wc -w)" ] || ! kubectl -n kube-flannel get ds kube-flannel-ds >/dev/null 2>&1; then
    echo NETWORK; fi
  ;;
join)
  if [ -f /etc/kubernetes/kubelet.conf ]; then exit 0; fi
  read -r JOINCMD
  $JOINCMD --node-name "$NAME" >/tmp/.floor-join.log 2>&1 || { tail -5 /tmp/.floor-join.log >&2; die "kubeadm join"; }
  ch "kubeadm join"
  ;;
network)
  export KUBECONFIG=/etc/kubernetes/admin.conf
  head -c "$MANIFEST_SIZE" >/tmp/.floor-flannel.yaml
  out=$(kubectl apply -f /tmp/.floor-flannel.yaml) || die "kubectl apply"
  case "$out" in *created*|*configured*) ch "flannel applied" ;; esac
  n=$(echo $ALL_NAMES | wc -w)
  for i in $(seq 1 300); do
    [ "$(kubectl get nodes --no-headers 2>/dev/null | awk '$2=="Ready"' | wc -l)" -ge "$n" ] && break; sleep 1
  done
  [ "$(kubectl get nodes --no-headers 2>/dev/null | awk '$2=="Ready"' | wc -l)" -ge "$n" ] || die "nodes not Ready after 300 s"
  echo "KUBECONFIG_BEGIN"; cat /etc/kubernetes/admin.conf; echo "KUBECONFIG_END"
  ;;
esac
}
floor_main; exit
