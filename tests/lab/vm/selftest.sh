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

# per-VM checks: one ssh round trip per VM (tests/lab/vm/guest-checks.sh), the VMs in parallel
CACHE=${KUBESTRAP_LAB_CACHE:-/var/cache/kubestrap-lab}
have_key=0
[[ -s ${KUBESTRAP_LAB_APT_KEY:-$CACHE/keys/kubestrap-lab.gpg} ]] && have_key=1
tmp=$(mktemp -d)
for k in $(seq $N); do
    "$LV" ssh "$k" bash -s "$k" "$N" "$have_key" <"$ROOT/tests/lab/vm/guest-checks.sh" >"$tmp/$k" 2>&1 &
done
wait
for k in $(seq $N); do
    echo "VM $k:"
    if ! grep -q '^machine-id ' "$tmp/$k"; then bad "VM $k: guest checks did not complete"; sed 's/^/         /' "$tmp/$k" | tail -n 20; fi
    while IFS= read -r line; do
        case $line in
            "ok "*) ok "${line#ok }" ;;
            "FAIL "*) bad "${line#FAIL }" ;;
            "machine-id "*) echo "${line#machine-id }" >>"$tmp/ids" ;;
            *) echo "$line" ;;
        esac
    done <"$tmp/$k"
done
echo "between VMs:"
check "machine-ids all differ ($(sort -u "$tmp/ids" 2>/dev/null | wc -l) distinct of $N)" \
    bash -c "[ \$(sort -u '$tmp/ids' | wc -l) = $N ]"
rm -rf "$tmp"

echo "real machine side:"
check "no route from the real machine to 192.168.77.0/24 (unreachable guard)" bash -c '! ip route get 192.168.77.11 >/dev/null 2>&1'
check "no route from the real machine to 10.0.2.0/24 (unreachable guard)" bash -c '! ip route get 10.0.2.15 >/dev/null 2>&1'
inv=$("$LV" inventory --version 1.31.2 2>&1)
check "inventory: 3 hosts on 127.0.0.1:2231-2233 with internalAddress 192.168.77.11-13" bash -c '
    for k in 1 2 3; do grep -q "address: 127.0.0.1, ssh: { port: 223$k }, internalAddress: 192.168.77.1$k" <<<"$1" || { echo "$1"; exit 1; }; done' _ "$inv"
check "inventory: packageRepository as the VMs see it" grep -q 'packageRepository: http://10.0.2.100:8080/k8s/core:/stable:/v1.31/deb/' <<<"$inv"
if [[ -x /usr/bin/python3 ]] && /usr/bin/python3 -c 'import yaml' 2>/dev/null; then
    check "inventory is valid YAML" /usr/bin/python3 -c 'import sys, yaml; d = yaml.safe_load(sys.stdin); assert len(d["hosts"]) == 3 and d["hosts"][0]["ssh"]["port"] == 2231' <<<"$inv"
fi
kh=$(sed -n 's/^  knownHostsFile: //p' <<<"$inv")
check "ssh with the inventory's key + knownHostsFile (StrictHostKeyChecking=yes)" \
    ssh -i "$LAB/ssh/id_ed25519" -o UserKnownHostsFile="$kh" -o StrictHostKeyChecking=yes -o BatchMode=yes \
        -o IdentitiesOnly=yes -p 2232 ops@127.0.0.1 true
check "VM host keys mirrored into \$LAB/ssh/known_hosts" bash -c "grep -q '^\[127.0.0.1\]:2231 ssh-ed25519 ' '$LAB/ssh/known_hosts'"

echo "lab repo through the guestfwd relay:"
check "http://10.0.2.100:8080/ answers" vm 1 'curl -fsS -m 10 -o /dev/null http://10.0.2.100:8080/'
www=$(cat "$LAB/vm/www.path" 2>/dev/null || true)
if [[ -n $www ]] && [[ -e $www/debian/Release || -e $www/debian/InRelease ]]; then
    check "apt-get update against the lab repo" vm 1 'sudo apt-get -q update 2>&1 | tee /tmp/apt.log | grep -Eq "^(Err|W:|E:)" && { cat /tmp/apt.log; exit 1; } || exit 0'
    check "apt-cache sees runc from the lab repo" vm 1 'apt-cache policy runc | grep -q "10.0.2.100"'
else
    echo "  skip debian repo checks: no lab repo under \$KUBESTRAP_LAB_CACHE/repos/debian yet (scripts/lab builds it)"
fi
if [[ -n $www ]] && [[ -e $www/k8s/core:/stable:/v1.31/deb/Release.key ]]; then
    u=http://10.0.2.100:8080/k8s/core:/stable:/v1.31/deb/
    check "k8s v1.31 repo: key + source as upstream documents, apt-get update" vm 2 "set -e
        sudo mkdir -p -m 755 /etc/apt/keyrings
        curl -fsSL ${u}Release.key | sudo gpg --dearmor --batch --yes -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg
        echo 'deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] $u /' | sudo tee /etc/apt/sources.list.d/kubernetes.list >/dev/null
        sudo apt-get -q update >/tmp/apt.log 2>&1 || { cat /tmp/apt.log; exit 1; }
        ! grep -E '^(Err|W:|E:)' /tmp/apt.log"
    check "apt-get install kubeadm/kubelet/kubectl 1.31.2-1.1 in the VM" vm 2 \
        "sudo DEBIAN_FRONTEND=noninteractive apt-get -q -y install kubeadm=1.31.2-1.1 kubelet=1.31.2-1.1 kubectl=1.31.2-1.1 >/tmp/apt-i.log 2>&1 || { tail -n 20 /tmp/apt-i.log; exit 1; }"
    check "kubeadm version -o short = v1.31.2" vm_eq 2 v1.31.2 kubeadm version -o short
else
    echo "  skip k8s repo checks: no lab repo under \$KUBESTRAP_LAB_CACHE/repos/k8s yet (scripts/lab builds it)"
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
    check "default route via eth0 after reboot" vm "$k" "ip route show default | grep -q 'dev eth0'"
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
