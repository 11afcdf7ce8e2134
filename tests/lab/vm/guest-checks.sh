#!/bin/bash
# Runs INSIDE lab VM K (as ops, fed on stdin by selftest.sh: `lab-vms ssh K bash -s K N`): checks the
# VM's own state in one ssh round trip. Prints "ok DESC" or "FAIL DESC" (+ indented detail) lines.
K=$1
N=${2:-3}
HAVE_KEY=${3:-1}
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
c() {   # c DESC CMD...
    local d=$1 out
    shift
    if out=$("$@" 2>&1); then echo "ok $d"; else echo "FAIL $d"; [[ -n $out ]] && echo "$out" | head -n 15 | sed 's/^/         /'; fi
}
eq() {   # eq WANT CMD...: output equals WANT
    local want=$1 got
    shift
    got=$("$@" 2>&1)
    [[ $got == "$want" ]] || { echo "'$*' gave '$got', wanted '$want'"; return 1; }
}
running() {
    local s
    s=$(systemctl is-system-running --wait 2>&1)
    [[ $s == running ]] || { echo "$s"; systemctl --failed --no-legend; return 1; }
}
c "PID 1 is systemd" eq systemd ps -p 1 -o comm=
c "systemctl is-system-running = running" running
c "hostname labhost-$K" eq "labhost-$K" hostname
c "swap active on /swapfile" grep -q '^/swapfile ' /proc/swaps
c "swap file has no holes (allocated = size)" bash -c '[ $(( $(stat -c %b /swapfile) * 512 )) -ge $(stat -c %s /swapfile) ]'
c "swap line in /etc/fstab" grep -Eq '^[^#]*[[:space:]]swap[[:space:]]' /etc/fstab
c "containerd active" eq active systemctl is-active containerd
c "containerd default config: cgroupfs (SystemdCgroup false)" bash -c 'sudo containerd config dump 2>/dev/null | grep -q "SystemdCgroup = false"'
c "runc installed" runc --version
c "modprobe br_netfilter" bash -c 'sudo modprobe br_netfilter && lsmod | grep -q ^br_netfilter && test -e /proc/sys/net/bridge/bridge-nf-call-iptables'
c "modprobe overlay" bash -c 'sudo modprobe overlay && grep -qw overlay /proc/filesystems'
c "sysctl net.ipv4.ip_forward writable" bash -c 'sudo sysctl -qw net.ipv4.ip_forward=1 && [ "$(cat /proc/sys/net/ipv4/ip_forward)" = 1 ]'
c "sysctl vm.swappiness writable (real kernel)" sudo sysctl -qw vm.swappiness=60
c "cgroup v2" eq cgroup2fs stat -fc %T /sys/fs/cgroup
c "eth0 = 10.0.2.15/24 (Vagrant NAT)" bash -c "ip -4 -o addr show dev eth0 | grep -q ' 10.0.2.15/24 '"
c "default route via 10.0.2.2 dev eth0" bash -c "ip route show default | grep -q 'via 10.0.2.2 dev eth0'"
c "eth1 = 192.168.77.$((10 + K))/24" bash -c "ip -4 -o addr show dev eth1 | grep -q ' 192.168.77.$((10 + K))/24 '"
c "user ops, passwordless sudo" eq root sudo -n id -un
c "root ssh login disabled" bash -c 'sudo sshd -T 2>/dev/null | grep -qx "permitrootlogin no"'
c "apt sources: only the lab repo" bash -c "! grep -rhE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null | grep -v '10.0.2.100:8080'"
[[ $HAVE_KEY == 1 ]] && c "lab apt key trusted" test -s /etc/apt/trusted.gpg.d/kubestrap-lab.gpg
c "machine-id set" bash -c '[ "$(wc -c </etc/machine-id)" = 33 ]'
c "guest cannot reach the host through NAT (restrict=on)" bash -c "! timeout 5 bash -c '</dev/tcp/10.0.2.2/22' 2>/dev/null"
for j in $(seq "$N"); do
    ((j == K)) && continue
    c "pings VM$j on eth1 (192.168.77.$((10 + j)))" ping -c 2 -W 3 -I eth1 "192.168.77.$((10 + j))"
    c "reaches VM$j:22 over eth1 (TCP)" timeout 5 bash -c "</dev/tcp/192.168.77.$((10 + j))/22"
done
echo "machine-id $(cat /etc/machine-id)"
