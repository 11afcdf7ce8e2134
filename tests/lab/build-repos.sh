#!/bin/bash
# Build the lab's offline apt repositories in $CACHE/repos (cached, keyed by a hash of the stand-ins):
#   debian/                      flat repo signed with the lab debian key (pre-trusted on the hosts):
#                                real containerd, runc, docker.io (+ deps) and the stand-in cri-dockerd
#   k8s/core:/stable:/v1.3{0,1,2,3}/deb/  flat repos laid out like pkgs.k8s.io (one per minor), signed with
#                                a second key (Release.key armored, NOT pre-trusted): stand-in kubeadm,
#                                kubelet, kubectl, kubernetes-cni, cri-tools at two patch versions each
# Usage: tests/lab/build-repos.sh [--force]
set -euo pipefail
HERE=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
STANDINS=$HERE/standins
CACHE=${KUBESTRAP_LAB_CACHE:-/var/cache/kubestrap-lab}
OUT=$CACHE/repos
KEYS=$CACHE/keys
FORCE=0
[[ ${1:-} == --force ]] && FORCE=1
log() { echo "lab: $*" >&2; }

VERSIONS_130="1.30.5 1.30.6"
VERSIONS_131="1.31.1 1.31.2"
VERSIONS_132="1.32.0 1.32.1"
VERSIONS_133="1.33.0 1.33.1"
MINORS="30 31 32 33"
CRI_DOCKERD_VERSION=0.3.15.3-0.debian-bookworm
export SOURCE_DATE_EPOCH=1730000000

standin_files() { # the stand-in files that go into packages (sorted, stable)
    [[ -d $STANDINS ]] || return 0
    (cd "$STANDINS" && find . -mindepth 1 -maxdepth 1 -type f ! -name '*.md' ! -name '*.pyc' ! -name 'test_*' ! -name '*_test.py' | sort)
}

content_hash() {
    {
        sha256sum "$HERE/build-repos.sh"
        [[ -d $STANDINS ]] && (cd "$STANDINS" && { standin_files; find ./units -type f 2>/dev/null; } | sort | xargs -r sha256sum)
        ls -l "$CACHE/debian-debs" 2>/dev/null
        stat -c %s "$CACHE/keys/kubestrap-lab.gpg" "$CACHE/keys/k8s-Release.key" 2>/dev/null
        ls -lL "${KUBESTRAP_LAB_KUBECTL_DIR:-/usr/lib/google-cloud-sdk/bin}"/kubectl.1.* 2>/dev/null || true
    } | sha256sum | cut -c1-16
}

gpgk() { # KEYNAME args...
    GNUPGHOME=$KEYS/$1.gnupg gpg --batch --quiet --no-tty --pinentry-mode loopback --passphrase '' "${@:2}"
}
stop_agents() {
    local k
    for k in debian k8s; do
        [[ -d $KEYS/$k.gnupg ]] && GNUPGHOME=$KEYS/$k.gnupg gpgconf --kill gpg-agent 2>/dev/null || true
    done
}

make_keys() {
    [[ -f $KEYS/kubestrap-lab.gpg && -f $KEYS/k8s-Release.key ]] && return 0
    log "generating the lab's two repository signing keys (once)"
    rm -rf "$KEYS"
    mkdir -p "$KEYS/debian.gnupg" "$KEYS/k8s.gnupg"
    chmod 0700 "$KEYS/debian.gnupg" "$KEYS/k8s.gnupg"
    gpgk debian --quick-gen-key "kubestrap lab Debian repository <debian@lab.kubestrap.invalid>" rsa3072 sign never
    gpgk k8s --quick-gen-key "isv:kubernetes OBS Project (kubestrap lab stand-in) <isv:kubernetes@build.opensuse.org>" rsa3072 sign never
    gpgk debian --export >"$KEYS/kubestrap-lab.gpg"
    gpgk k8s --armor --export >"$KEYS/k8s-Release.key"
    stop_agents
}

ctl() { # write DEBIAN/control: DIR PKG VERSION DEPENDS DESCRIPTION
    local d=$1 size
    mkdir -p "$d/DEBIAN"
    size=$(du -sk --exclude=DEBIAN "$d" | cut -f1)
    {
        echo "Package: $2"
        echo "Version: $3"
        echo "Architecture: amd64"
        echo "Maintainer: Kubernetes Authors <dev@kubernetes.io>"
        echo "Installed-Size: $size"
        [[ -n $4 ]] && echo "Depends: $4"
        echo "Section: admin"
        echo "Priority: optional"
        echo "Homepage: https://kubernetes.io"
        echo "Description: $5"
        echo " Stand-in built by the kubestrap test lab (Python); behaves like the real program."
    } >"$d/DEBIAN/control"
}

# install stand-in program NAME as /usr/bin/NAME (symlink into a private copy of all stand-in files, so the
# stand-ins' shared modules sit beside the script) + /usr/share/kubestrap-lab/PKG.version
put_standin() { # DIR PKG NAME VERSION
    local d=$1 pkg=$2 name=$3 v=$4 f
    mkdir -p "$d/usr/bin" "$d/usr/lib/kubestrap-lab/$pkg" "$d/usr/share/kubestrap-lab"
    while read -r f; do cp -p "$STANDINS/$f" "$d/usr/lib/kubestrap-lab/$pkg/"; done < <(standin_files)
    if [[ ! -f $d/usr/lib/kubestrap-lab/$pkg/$name ]]; then
        printf '#!/bin/sh\necho "%s: kubestrap lab stand-in not available yet" >&2\nexit 1\n' "$name" >"$d/usr/lib/kubestrap-lab/$pkg/$name"
    fi
    chmod 0755 "$d/usr/lib/kubestrap-lab/$pkg/$name"
    ln -s "../lib/kubestrap-lab/$pkg/$name" "$d/usr/bin/$name"
    echo "v$v" >"$d/usr/share/kubestrap-lab/$pkg.version"
    [[ $pkg != "$name" ]] && echo "v$v" >"$d/usr/share/kubestrap-lab/$name.version"
    return 0
}

# ---------------------------------------------------------------------------------------------- real kubectl
# The kubectl package carries the REAL kubectl of its minor, copied from this machine's google-cloud-sdk
# (kubectl.1.MINOR; the nearest minor within kubectl's +-1 skew if that one is missing) as
# /usr/lib/kubestrap-lab/kubectl/kubectl.real, behind /usr/bin/kubectl = standins/kubectl-wrapper (logs argv to
# calls.log as `kubectl[real:1.31] ARGS...`, then execs it). Without a binary within skew the wrapper logs
# `kubectl[standin:...] ARGS...` and runs the Python stand-in, which is shipped beside it either way.
REAL_KUBECTL_DIR=${KUBESTRAP_LAB_KUBECTL_DIR:-/usr/lib/google-cloud-sdk/bin}

real_kubectl_for() { # VERSION -> "1.MINOR PATH" of the binary to ship (nothing if none within skew)
    local m=${1#*.} c
    m=${m%%.*}
    for c in "$m" $((m - 1)) $((m + 1)); do
        if [[ -x $REAL_KUBECTL_DIR/kubectl.1.$c ]]; then echo "1.$c $REAL_KUBECTL_DIR/kubectl.1.$c"; return 0; fi
    done
    return 0
}

put_kubectl() { # DIR VERSION
    local d=$1 v=$2 real minor path
    put_standin "$d" kubectl kubectl "$v"
    rm -f "$d/usr/bin/kubectl"
    install -m 0755 "$STANDINS/kubectl-wrapper" "$d/usr/bin/kubectl"
    real=$(real_kubectl_for "$v")
    if [[ -n $real ]]; then
        read -r minor path <<<"$real"
        install -m 0755 "$path" "$d/usr/lib/kubestrap-lab/kubectl/kubectl.real"
        echo "$minor" >"$d/usr/lib/kubestrap-lab/kubectl/kubectl.real.minor"
        [[ $minor == "${v%.*}" ]] || log "kubectl $v: no kubectl.${v%.*}, using the real kubectl $minor (within skew)"
    else
        log "kubectl $v: no real kubectl within skew in $REAL_KUBECTL_DIR, the package runs the Python stand-in"
    fi
}

unit_or_default() { # NAME DEST < default-text : the stand-ins' units/NAME (or NAME) if present, else stdin
    local f
    for f in "$STANDINS/units/$1" "$STANDINS/$1"; do
        if [[ -f $f ]]; then cp "$f" "$2"; cat >/dev/null; return 0; fi
    done
    cat >"$2"
}

build_k8s_debs() { # VERSION DESTDIR
    local v=$1 dest=$2 d t
    t=$(mktemp -d)
    # kubeadm
    d=$t/kubeadm
    put_standin "$d" kubeadm kubeadm "$v"
    mkdir -p "$d/usr/lib/systemd/system/kubelet.service.d"
    unit_or_default 10-kubeadm.conf "$d/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf" <<'EOF'
# Note: This dropin only works with kubeadm and kubelet v1.11+
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
# This is a file that "kubeadm init" and "kubeadm join" generates at runtime, populating the KUBELET_KUBEADM_ARGS variable dynamically
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
# This is a file that the user can use for overrides of the kubelet args as a last resort. Preferably, the user should use
# the .NodeRegistration.KubeletExtraArgs object in the configuration files instead. KUBELET_EXTRA_ARGS should be sourced from this file.
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
EOF
    ctl "$d" kubeadm "$v-1.1" "cri-tools (>= 1.30.0), python3, python3-yaml, openssl" \
        "Command-line utility for administering a Kubernetes cluster"
    # kubelet
    d=$t/kubelet
    put_standin "$d" kubelet kubelet "$v"
    mkdir -p "$d/usr/lib/systemd/system" "$d/etc/kubernetes/manifests"
    unit_or_default kubelet.service "$d/usr/lib/systemd/system/kubelet.service" <<'EOF'
[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
EOF
    ctl "$d" kubelet "$v-1.1" "iptables (>= 1.4.21), kubernetes-cni (>= 1.1.1), iproute2, socat, util-linux, mount, ethtool, conntrack, python3, python3-yaml, openssl" \
        "Node agent for Kubernetes clusters"
    # kubectl: the real binary of this minor behind a logging wrapper (the stand-in only as a fallback)
    d=$t/kubectl
    put_kubectl "$d" "$v"
    ctl "$d" kubectl "$v-1.1" "python3, python3-yaml, openssl" "Command-line utility for interacting with a Kubernetes cluster"
    # cri-tools
    d=$t/cri-tools
    put_standin "$d" cri-tools crictl "$v"
    ctl "$d" cri-tools "$v-1.1" "python3, python3-yaml" "Command-line utility for interacting with a container runtime"
    # kubernetes-cni: stub plugins
    d=$t/kubernetes-cni
    mkdir -p "$d/opt/cni/bin" "$d/usr/share/kubestrap-lab"
    for f in bridge host-local loopback portmap bandwidth firewall tuning; do
        printf '#!/bin/sh\n# kubestrap lab stand-in CNI plugin\necho "{\\"cniVersion\\":\\"1.0.0\\",\\"code\\":100,\\"msg\\":\\"kubestrap lab stand-in plugin %s\\"}"\nexit 1\n' "$f" >"$d/opt/cni/bin/$f"
        chmod 0755 "$d/opt/cni/bin/$f"
    done
    echo "v$v" >"$d/usr/share/kubestrap-lab/kubernetes-cni.version"
    ctl "$d" kubernetes-cni "$v-1.1" "" "Binaries required to provision kubernetes container networking"
    for d in "$t"/*; do
        fakeroot_build "$d" "$dest/$(basename "$d")_$v-1.1_amd64.deb"
    done
    rm -rf "$t"
}

fakeroot_build() { # DIR OUT.deb : files owned by root
    chown -R 0:0 "$1"
    find "$1" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
    local z=()
    [[ -e $1/usr/lib/kubestrap-lab/kubectl/kubectl.real ]] && z=(-z1)  # 57 MB of Go binary: fast gzip (~1 s)
    dpkg-deb --root-owner-group -Zgzip "${z[@]}" --build "$1" "$2" >/dev/null
}

build_cri_dockerd() { # DESTDIR
    local t d
    t=$(mktemp -d)
    d=$t/cri-dockerd
    put_standin "$d" cri-dockerd cri-dockerd "${CRI_DOCKERD_VERSION%%-*}"
    mkdir -p "$d/lib/systemd/system"
    unit_or_default cri-docker.service "$d/lib/systemd/system/cri-docker.service" <<'EOF'
[Unit]
Description=CRI Interface for Docker Application Container Engine
Documentation=https://docs.mirantis.com
After=network-online.target firewalld.service docker.service
Wants=network-online.target
Requires=cri-docker.socket

[Service]
Type=notify
ExecStart=/usr/bin/cri-dockerd --container-runtime-endpoint fd://
ExecReload=/bin/kill -s HUP $MAINPID
TimeoutSec=0
RestartSec=2
Restart=always
StartLimitBurst=3
StartLimitInterval=60s
LimitNOFILE=infinity
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
Delegate=yes
KillMode=process

[Install]
WantedBy=multi-user.target
EOF
    unit_or_default cri-docker.socket "$d/lib/systemd/system/cri-docker.socket" <<'EOF'
[Unit]
Description=CRI Docker Socket for the API
PartOf=cri-docker.service

[Socket]
ListenStream=%t/cri-dockerd.sock
SocketMode=0660
SocketUser=root
SocketGroup=docker

[Install]
WantedBy=sockets.target
EOF
    ctl "$d" cri-dockerd "$CRI_DOCKERD_VERSION" "python3, python3-yaml" "CRI Interface for Docker Application Container Engine"
    sed -i 's/^Maintainer: .*/Maintainer: Mirantis <cri-dockerd@mirantis.com>/; s|^Homepage: .*|Homepage: https://github.com/Mirantis/cri-dockerd|' "$d/DEBIAN/control"
    fakeroot_build "$d" "$1/cri-dockerd_${CRI_DOCKERD_VERSION}_amd64.deb"
    rm -rf "$t"
}

index_repo() { # DIR KEYNAME ORIGIN LABEL
    (
        cd "$1"
        apt-ftparchive packages . >Packages
        gzip -9nk Packages
        apt-ftparchive -o "APT::FTPArchive::Release::Origin=$3" -o "APT::FTPArchive::Release::Label=$4" \
            -o APT::FTPArchive::Release::Architectures=amd64 release . >Release.tmp
        mv Release.tmp Release
    )
    gpgk "$2" --yes --digest-algo SHA256 --clearsign -o "$1/InRelease" "$1/Release"
    gpgk "$2" --yes --digest-algo SHA256 -abs -o "$1/Release.gpg" "$1/Release"
}

main() {
    [[ -d $CACHE/debian-debs ]] || { log "run tests/lab/build-rootfs.sh first"; exit 1; }
    make_keys
    local h
    h=$(content_hash)
    if [[ $FORCE == 0 && -f $OUT/.hash && $(cat "$OUT/.hash") == "$h" ]]; then return 0; fi
    log "building the lab's apt repositories (stand-ins hash $h)"
    rm -rf "$OUT.tmp"
    mkdir -p "$OUT.tmp/debian"
    cp -l "$CACHE"/debian-debs/*.deb "$OUT.tmp/debian/" 2>/dev/null || cp "$CACHE"/debian-debs/*.deb "$OUT.tmp/debian/"
    build_cri_dockerd "$OUT.tmp/debian"
    index_repo "$OUT.tmp/debian" debian "Debian" "kubestrap lab"
    local v m
    for m in $MINORS; do
        mkdir -p "$OUT.tmp/k8s/core:/stable:/v1.$m/deb"
        local vs=VERSIONS_1$m
        for v in ${!vs}; do build_k8s_debs "$v" "$OUT.tmp/k8s/core:/stable:/v1.$m/deb"; done
        index_repo "$OUT.tmp/k8s/core:/stable:/v1.$m/deb" k8s "obs://build.opensuse.org/isv:kubernetes:core:stable:v1.$m/deb" \
            "isv:kubernetes:core:stable:v1.$m"
        cp "$KEYS/k8s-Release.key" "$OUT.tmp/k8s/core:/stable:/v1.$m/deb/Release.key"
    done
    stop_agents
    echo "$h" >"$OUT.tmp/.hash"
    rm -rf "$OUT"
    mv "$OUT.tmp" "$OUT"
}
if [[ -z ${LAB_UNDER_TINI:-} ]] && command -v tini >/dev/null; then LAB_UNDER_TINI=1 exec tini -s -- "$0" "$@"; fi
trap stop_agents EXIT
main
