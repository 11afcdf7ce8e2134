#!/bin/bash
# Runs as PID 1 of a fresh PID namespace (under `ip netns exec kslab-K unshare --mount --uts --ipc
# --pid --fork --kill-child`): configures the network namespace, mounts the host's root (overlay, /proc,
# /sys, /run, /dev/pts, /dev/shm as listed in HOSTDIR/fstab) and becomes the host's init
# (tini -> lab-init -> sshd). Few processes on purpose: 50 hosts start at once.
# Usage: host-start.sh K HOSTDIR
set -e
K=$1 H=$2
NET=${KUBESTRAP_LAB_NET:-10.77.0} # scripts/lab's instance subnet
ip -batch - <<EOB
link set lo up
addr add $NET.$((10 + K))/24 dev eth0
link set eth0 up
route add default via $NET.1
EOB
mount -a -T "$H/fstab"
mkdir -p -m 0755 "$H/root/run/sshd" "$H/root/run/lock"
hostname "labhost-$K"
cd /
exec -c chroot "$H/root" /usr/bin/tini -- /usr/local/sbin/lab-init
