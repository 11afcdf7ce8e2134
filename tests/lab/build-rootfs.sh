#!/bin/bash
# Build the cached base rootfs of the namespaced tier (once):
#   debootstrap --variant=minbase bookworm + the packages the hosts need, with the
#   namespaced-tier fixes from shared/reference/test-hosts.md applied.
# Also downloads (once) the real Debian containerd/runc/docker.io debs and their dependency
# closure against this rootfs into $CACHE/debian-debs (served later as the lab's /debian/ repo).
# Usage: tests/lab/build-rootfs.sh [--force | --debs]   (--debs: download the Debian debs again)
set -euo pipefail
CACHE=${KUBESTRAP_LAB_CACHE:-/var/cache/kubestrap-lab}
ROOTFS=$CACHE/rootfs
FORCE=0
[[ ${1:-} == --force ]] && FORCE=1

log() { echo "lab: $*" >&2; }

# The URIs apt uses on this machine (active lines only, never comments), deb822 and one-line formats.
apt_uris() {
    cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
        awk '/^[[:space:]]*#/ {next} /^URIs:/ {for (i = 2; i <= NF; i++) print $i}'
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
        awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; break}}'
}
# The Debian mirror apt already uses on this machine (never hardcode another host).
mirror_url() {
    local u
    u=$(apt_uris | grep -E '/debian/?$' | head -n1 || true)
    [[ -n $u ]] || { log "cannot find the Debian mirror in /etc/apt/sources.list*"; exit 1; }
    echo "${u%/}"
}

wait_apt() {
    local n=0
    while fuser /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock >/dev/null 2>&1; do
        ((n++ % 30 == 0)) && log "waiting for the apt lock..."
        sleep 2
    done
}

# bump when the rootfs recipe changes: caches of another format are rebuilt
FORMAT=1
PKGS=openssh-server,sudo,python3,python3-yaml,openssl,curl,gpg,iproute2,procps,kmod,libnss-myhostname,ca-certificates,iptables,ethtool,socat,conntrack,tini,psmisc,less

build_rootfs() {
    local mirror tmp t0
    mirror=$(mirror_url)
    tmp=$CACHE/rootfs.tmp
    rm -rf "$tmp"
    mkdir -p "$CACHE"
    t0=$(date +%s.%N)
    log "debootstrap minbase bookworm from $mirror (once; ~1 min)"
    debootstrap --variant=minbase --include=$PKGS bookworm "$tmp" "$mirror" >"$CACHE/debootstrap.log" 2>&1 ||
        { tail -n 30 "$CACHE/debootstrap.log" >&2; exit 1; }

    # --- fixes for namespaced hosts ---
    : >"$tmp/etc/resolv.conf"                      # no resolver: sudo would stall on lookups
    printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$tmp/etc/hosts"
    echo labhost >"$tmp/etc/hostname"
    : >"$tmp/etc/machine-id"
    mkdir -p "$tmp/etc/modules-load.d" "$tmp/etc/sysctl.d" "$tmp/etc/apt/keyrings" "$tmp/etc/kubestrap-lab/faults" \
        "$tmp/var/lib/kubestrap-lab" "$tmp/var/log/kubestrap-lab"
    chmod 0777 "$tmp/var/log/kubestrap-lab"
    # modprobe: this kernel has no modules; list the built-ins so `modprobe overlay|br_netfilter` exits 0
    local kv
    for kv in "$(uname -r)"; do
        mkdir -p "$tmp/lib/modules/$kv"
        printf 'kernel/fs/overlayfs/overlay.ko\nkernel/net/bridge/br_netfilter.ko\nkernel/net/bridge/bridge.ko\nkernel/net/netfilter/nf_conntrack.ko\n' \
            >"$tmp/lib/modules/$kv/modules.builtin"
        : >"$tmp/lib/modules/$kv/modules.dep"
        chroot "$tmp" depmod "$kv" 2>/dev/null || true
    done
    # sysctl --system must work: only net.* keys are writable in a network namespace
    local f
    for f in "$tmp"/usr/lib/sysctl.d/*.conf "$tmp"/etc/sysctl.d/*.conf "$tmp"/lib/sysctl.d/*.conf; do
        [[ -f $f ]] || continue
        if grep -Ev '^[[:space:]]*([#;]|$)' "$f" | grep -Evq '^[[:space:]]*-?net\.'; then rm -f "$f"; fi
    done
    [[ -f $tmp/etc/sysctl.conf ]] && sed -i -E '/^[[:space:]]*[^#; ].*/{/^[[:space:]]*-?net\./!s/^/# /}' "$tmp/etc/sysctl.conf"
    # no service starts from maintainer scripts (there is no init system; stand-ins answer for it)
    printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
    chmod 0755 "$tmp/usr/sbin/policy-rc.d"
    # sshd: ed25519 host key per host (written at up time), no root, no passwords
    rm -f "$tmp"/etc/ssh/ssh_host_*
    cat >"$tmp/etc/ssh/sshd_config.d/kubestrap-lab.conf" <<'EOF'
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
MaxStartups 200:30:400
MaxSessions 50
PidFile /run/sshd.pid
EOF
    sed -i -E 's/^(session\s+)required(\s+pam_loginuid\.so)/\1optional\2/' "$tmp/etc/pam.d/sshd" || true
    # the lab user
    chroot "$tmp" useradd -m -s /bin/bash -U ops
    echo 'ops:labpass' | chroot "$tmp" chpasswd
    mkdir -p "$tmp/home/ops/.ssh"
    chmod 0700 "$tmp/home/ops/.ssh"
    chroot "$tmp" chown -R ops:ops /home/ops
    echo 'ops ALL=(ALL) NOPASSWD: ALL' >"$tmp/etc/sudoers.d/ops"
    chmod 0440 "$tmp/etc/sudoers.d/ops"
    # the host's init: tini reaps, lab-init starts sshd (daemonised, so it can be stopped and restarted)
    cat >"$tmp/usr/local/sbin/lab-init" <<'EOF'
#!/bin/bash
# PID 2 of a namespaced lab host (tini is PID 1 and reaps orphans).
mkdir -p /run/sshd /run/lock /var/log/kubestrap-lab
chmod 0755 /run/sshd
/usr/sbin/sshd -E /var/log/sshd.log
exec sleep infinity
EOF
    chmod 0755 "$tmp/usr/local/sbin/lab-init"
    # apt: only the lab repo (written by the lab layer at up time); drop the mirror's lists
    rm -f "$tmp"/etc/apt/sources.list.d/* "$tmp"/var/lib/apt/lists/*_* "$tmp"/var/cache/apt/*.bin
    rm -f "$tmp"/var/cache/apt/archives/*.deb
    : >"$tmp/etc/apt/sources.list"
    mkdir -p "$tmp/usr/share/kubestrap-lab" "$tmp/usr/lib/kubestrap-lab"
    echo "built $(date -u +%FT%TZ) from $mirror" >"$tmp/usr/share/kubestrap-lab/base-rootfs"
    rm -rf "$ROOTFS"
    mv "$tmp" "$ROOTFS"
    echo "$FORMAT" >"$CACHE/rootfs.format"
    awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f\n", b-a}' >"$CACHE/rootfs.build-seconds"
    log "base rootfs built in $(cat "$CACHE/rootfs.build-seconds") s ($(du -sm "$ROOTFS" | cut -f1) MB)"
}

# Real Debian containerd, runc, docker.io + the dependency closure not already in the rootfs.
download_debian_debs() {
    local mirror out tmp
    mirror=$(mirror_url)
    out=$CACHE/debian-debs
    tmp=$CACHE/chroot-dl
    rm -rf "$tmp" "$out.tmp"
    mkdir -p "$tmp" "$out.tmp"
    log "downloading containerd, runc, docker.io + dependencies from $mirror (once)"
    # a throwaway overlay of the rootfs, pointed at the real mirror (same suites as this machine)
    mkdir -p "$tmp/upper" "$tmp/work" "$tmp/root"
    mount -t overlay overlay -o "lowerdir=$ROOTFS,upperdir=$tmp/upper,workdir=$tmp/work" "$tmp/root"
    trap 'umount -l "$tmp/root" 2>/dev/null || true' RETURN
    cp /etc/hosts "$tmp/root/etc/hosts"
    cp /etc/resolv.conf "$tmp/root/etc/resolv.conf"
    {
        echo "deb $mirror bookworm main"
        echo "deb $mirror bookworm-updates main"
        local sec
        sec=$(apt_uris | grep -E '/debian-security/?$' | head -n1 || true)
        [[ -n $sec ]] && echo "deb ${sec%/} bookworm-security main"
    } >"$tmp/root/etc/apt/sources.list"
    cp -a /usr/share/keyrings/debian-archive-keyring.gpg "$tmp/root/etc/apt/trusted.gpg.d/" 2>/dev/null || true
    # the same date checks as this machine's apt (e.g. a snapshot mirror with Check-Valid-Until "false")
    apt-config dump 2>/dev/null | grep -E '^Acquire::(Check-Valid-Until|Check-Date|Max-ValidTime) ' \
        >"$tmp/root/etc/apt/apt.conf.d/99kubestrap-lab-host" || true
    mkdir -p "$tmp/root/proc"
    chroot "$tmp/root" apt-get -q update >"$CACHE/debian-debs.log" 2>&1 || { tail "$CACHE/debian-debs.log" >&2; exit 1; }
    chroot "$tmp/root" apt-get -q -y --no-install-recommends --download-only install containerd runc docker.io \
        >>"$CACHE/debian-debs.log" 2>&1 || { tail "$CACHE/debian-debs.log" >&2; exit 1; }
    cp "$tmp"/root/var/cache/apt/archives/*.deb "$out.tmp/"
    umount "$tmp/root"
    rm -rf "$tmp" "$out"
    mv "$out.tmp" "$out"
    log "debian debs: $(ls "$out" | wc -l) files, $(du -sm "$out" | cut -f1) MB"
}

if [[ $FORCE == 1 || ! -x $ROOTFS/usr/sbin/sshd || $(cat "$CACHE/rootfs.format" 2>/dev/null) != "$FORMAT" ]]; then
    wait_apt
    build_rootfs
    FORCE=1 # the dependency closure is computed against this rootfs
fi
if [[ $FORCE == 1 || ${1:-} == --debs || ! -d $CACHE/debian-debs ]]; then
    download_debian_debs
fi
