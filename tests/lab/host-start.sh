#!/bin/bash
# Runs as PID 1 of a fresh PID namespace (under `ip netns exec kslab-K unshare --mount --uts --ipc
# --pid --fork --kill-child`): configures the network namespace, mounts the host's overlay root and
# becomes the host's init (tini -> lab-init -> sshd).
# Usage: host-start.sh K HOSTDIR LOWERDIRS
set -e
K=$1 H=$2 LOWER=$3
ip -batch - <<EOF
link set lo up
addr add 10.77.0.$((10 + K))/24 dev eth0
link set eth0 up
route add default via 10.77.0.1
EOF
R=$H/root
mount -t overlay overlay -o "lowerdir=$LOWER,upperdir=$H/upper,workdir=$H/work" "$R"
mount -t proc proc "$R/proc"
mount -t sysfs -o ro sysfs "$R/sys"
mount -t tmpfs -o mode=0755,size=64m tmpfs "$R/run"
mount -t tmpfs -o mode=0755,size=1m tmpfs "$R/dev"
cp -a /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty "$R/dev/"
mkdir -p "$R/dev/pts" "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts "$R/dev/pts"
mount -t tmpfs -o mode=1777,size=64m tmpfs "$R/dev/shm"
ln -s pts/ptmx "$R/dev/ptmx"
ln -s /proc/self/fd "$R/dev/fd"
ln -s /proc/self/fd/0 "$R/dev/stdin"
ln -s /proc/self/fd/1 "$R/dev/stdout"
ln -s /proc/self/fd/2 "$R/dev/stderr"
hostname "labhost-$K"
cd /
exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin container=kubestrap-lab \
    chroot "$R" /usr/bin/tini -- /usr/local/sbin/lab-init
