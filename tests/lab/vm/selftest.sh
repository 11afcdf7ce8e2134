#!/bin/bash
# Self-test of the VM tier: boots 3 VMs with scripts/lab-vms, checks that they behave like real
# Vagrant-style Debian VMs, tears them down (unless --keep).
# Usage: tests/lab/vm/selftest.sh [--keep] [--no-up]
# Prints "vm-selftest: N passed, M failed"; exit 0 only when nothing failed.
# Talks to the VMs only through scripts/lab-vms ssh (127.0.0.1 forwarded ports).
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
LV=$ROOT/scripts/lab-vms
LAB=${KUBESTRAP_LAB_DIR:-/var/tmp/kubestrap-lab}
N=3
KEEP=0
UP=1
for a in "$@"; do
    case $a in
        --keep) KEEP=1 ;;
        --no-up) UP=0 ;;
        *) echo "usage: $0 [--keep] [--no-up]" >&2; exit 2 ;;
    esac
done

pass=0 fail=0
ok() { pass=$((pass + 1)); echo "  ok   $*"; }
bad() { fail=$((fail + 1)); echo "  FAIL $*"; }
check() {   # check DESC CMD... (CMD exit 0 = pass)
    local d=$1; shift
    local out
    if out=$("$@" 2>&1); then ok "$d"; else bad "$d"; [[ -n $out ]] && echo "$out" | sed 's/^/         /' | head -n 15; fi
}
vm() { "$LV" ssh "$@" </dev/null; }
# vm_eq K EXPECTED CMD: output of CMD on K equals EXPECTED
vm_eq() {
    local k=$1 want=$2; shift 2
    local got
    got=$(vm "$k" "$@" 2>&1)
    [[ $got == "$want" ]] || { echo "VM $k: '$*' gave '$got', wanted '$want'"; return 1; }
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }

cleanup() { ((KEEP)) || "$LV" down >/dev/null 2>&1 || true; }
trap cleanup EXIT

echo "vm-selftest: $(date -u +%FT%TZ)"
if ((UP)); then
    t0=$(now)
    if "$LV" up $N; then ok "lab-vms up $N ($(since "$t0") s)"; else bad "lab-vms up $N"; echo "vm-selftest: $pass passed, $((fail)) failed"; exit 1; fi
fi
check "lab-vms status" "$LV" status

for k in $(seq $N); do
    echo "VM $k:"
    check "PID 1 is systemd" vm_eq "$k" systemd ps -p 1 -o comm=
    check "systemctl is-system-running = running" \
        bash -c "out=\$('$LV' ssh $k 'systemctl is-system-running --wait' </dev/null 2>&1); [[ \$out == running ]] || { echo \"\$out\"; '$LV' ssh $k 'systemctl --failed --no-legend' </dev/null; false; }"
    check "hostname labhost-$k" vm_eq "$k" "labhost-$k" hostname
    check "swap active on /swapfile" vm "$k" 'grep -q "^/swapfile " /proc/swaps'
    check "swap line in /etc/fstab" vm "$k" "grep -Eq '^[^#]*[[:space:]]swap[[:space:]]' /etc/fstab"
    check "containerd active" vm_eq "$k" active systemctl is-active containerd
    check "containerd default config: cgroupfs (SystemdCgroup false)" \
        vm "$k" 'sudo containerd config dump 2>/dev/null | grep -q "SystemdCgroup = false"'
    check "modprobe br_netfilter" vm "$k" 'sudo modprobe br_netfilter && lsmod | grep -q ^br_netfilter && test -e /proc/sys/net/bridge/bridge-nf-call-iptables'
    check "modprobe overlay" vm "$k" 'sudo modprobe overlay && grep -qw overlay /proc/filesystems'
    check "sysctl net.ipv4.ip_forward writable" vm "$k" 'sudo sysctl -qw net.ipv4.ip_forward=1 && [ "$(cat /proc/sys/net/ipv4/ip_forward)" = 1 ]'
    check "cgroup v2" vm_eq "$k" cgroup2fs stat -fc %T /sys/fs/cgroup
    check "eth0 = 10.0.2.15/24 (Vagrant NAT)" vm "$k" "ip -4 -o addr show dev eth0 | grep -q ' 10.0.2.15/24 '"
    check "default route via eth0" vm "$k" "ip route show default | grep -q 'dev eth0'"
    check "eth1 = 192.168.77.$((10 + k))/24" vm "$k" "ip -4 -o addr show dev eth1 | grep -q ' 192.168.77.$((10 + k))/24 '"
    check "user ops, passwordless sudo" vm_eq "$k" root sudo -n id -un
    check "root ssh login disabled" vm "$k" 'sudo sshd -T 2>/dev/null | grep -qx "permitrootlogin no"'
done

echo "between VMs:"
check "machine-ids all differ" bash -c "for k in \$(seq $N); do '$LV' ssh \$k cat /etc/machine-id </dev/null; done | sort | uniq -d | grep -q . && exit 1; exit 0"
for k in $(seq 2 $N); do
    check "VM1 pings VM$k on eth1 (192.168.77.$((10 + k)))" vm 1 "ping -c 2 -W 3 -I eth1 192.168.77.$((10 + k)) >/dev/null"
done
check "VM2 reaches VM1:22 over eth1 (TCP)" vm 2 "timeout 5 bash -c '</dev/tcp/192.168.77.11/22'"
check "guest cannot reach the host through NAT (restrict=on)" vm 1 "! timeout 5 bash -c '</dev/tcp/10.0.2.2/22' 2>/dev/null"

echo "lab repo through the guestfwd relay:"
check "http://10.0.2.100:8080/ answers" vm 1 'curl -fsS -m 10 -o /dev/null http://10.0.2.100:8080/'
www=$(cat "$LAB/vm/www.path" 2>/dev/null || true)
if [[ -n $www ]] && [[ -e $www/debian/Release || -e $www/debian/InRelease ]]; then
    check "apt-get update against the lab repo" vm 1 'sudo apt-get -q update 2>&1 | tee /tmp/apt.log | grep -Eq "^(Err|W:|E:)" && { cat /tmp/apt.log; exit 1; } || exit 0'
    check "apt-cache sees runc from the lab repo" vm 1 'apt-cache policy runc | grep -q "10.0.2.100"'
    if [[ -e $www/k8s/core:/stable:/v1.31/deb/Release.key ]]; then
        check "k8s repo Release.key fetch + gpg --dearmor" vm 1 \
            'curl -fsSL http://10.0.2.100:8080/k8s/core:/stable:/v1.31/deb/Release.key | gpg --dearmor >/dev/null'
    fi
else
    echo "  skip apt checks: no offline repo under \$LAB/www or \$CACHE/www yet (scripts/lab builds it)"
fi

echo "reboot:"
k=$N
check "hostnamectl set-hostname renamed-$k" vm "$k" "sudo hostnamectl set-hostname renamed-$k"
t0=$(now)
vm "$k" 'sudo systemctl reboot' >/dev/null 2>&1 || true
sleep 5
up=0
for i in $(seq 90); do
    if vm "$k" true >/dev/null 2>&1; then up=1; break; fi
    sleep 2
done
if ((up)); then
    ok "VM $k back after reboot ($(since "$t0") s)"
    check "hostname survives reboot" vm_eq "$k" "renamed-$k" hostname
    check "swap active after reboot" vm "$k" 'grep -q "^/swapfile " /proc/swaps'
    check "eth1 address after reboot" vm "$k" "ip -4 -o addr show dev eth1 | grep -q ' 192.168.77.$((10 + k))/24 '"
    check "containerd active after reboot" vm_eq "$k" active systemctl is-active containerd
else
    bad "VM $k back after reboot"
fi

echo "resources:"
for f in "$LAB"/vm/pids/vm*.pid; do
    [[ -s $f ]] || continue
    read -r p _ <"$f"
    echo "  $(basename "$f" .pid): qemu RSS $(awk '/VmRSS/{printf "%d MiB", $2/1024}' "/proc/$p/status" 2>/dev/null)"
done
for k in $(seq $N); do
    echo "  vm$k guest: $(vm "$k" "free -m | awk '/Mem:/{print \"used \" \$3 \" MiB of \" \$2}'" 2>/dev/null)"
done

echo "vm-selftest: $pass passed, $fail failed"
((fail == 0))
