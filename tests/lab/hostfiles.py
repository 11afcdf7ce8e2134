#!/usr/bin/python3
"""Write every namespaced host's own files in one process (fast `scripts/lab up`):
HOSTDIR/upper/etc/{hostname,hosts,machine-id,ssh/ssh_host_ed25519_key{,.pub}}, HOSTDIR/fstab, and
the lab's known_hosts (plain `ADDR ssh-ed25519 KEY` lines).

Host keys come from python3-cryptography when it is installed, else from ssh-keygen (in parallel).
Usage: hostfiles.py N LABDIR LOWERDIRS
"""
import os
import subprocess
import sys
import uuid


NET = os.environ.get("KUBESTRAP_LAB_NET", "10.77.0")  # set by scripts/lab for its instance


def addr(k):
    return "%s.%d" % (NET, 10 + k)


def write(path, data, mode=0o644):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(data)
    os.chmod(path, mode)


def keys_with_cryptography(paths):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    for k, key in paths:
        priv = Ed25519PrivateKey.generate()
        pem = priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                 serialization.NoEncryption()).decode()
        pub = priv.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                             serialization.PublicFormat.OpenSSH).decode()
        write(key, pem, 0o600)
        write(key + ".pub", "%s root@labhost-%d\n" % (pub, k))


def keys_with_ssh_keygen(paths):
    procs = [subprocess.Popen(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "root@labhost-%d" % k, "-f", key],
                              stdin=subprocess.DEVNULL) for k, key in paths]
    for p in procs:
        if p.wait() != 0:
            raise SystemExit("hostfiles: ssh-keygen failed")


def main():
    n, lab, lower = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    keys = []
    for k in range(1, n + 1):
        h = os.path.join(lab, "hosts", str(k))
        etc = os.path.join(h, "upper", "etc")
        os.makedirs(os.path.join(etc, "ssh"), exist_ok=True)
        os.makedirs(os.path.join(h, "work"), exist_ok=True)
        os.makedirs(os.path.join(h, "root"), exist_ok=True)
        write(os.path.join(etc, "hostname"), "labhost-%d\n" % k)
        write(os.path.join(etc, "hosts"), "127.0.0.1\tlocalhost\n%s\tlabhost-%d\n::1\t\tlocalhost ip6-localhost "
              "ip6-loopback\n" % (addr(k), k))
        write(os.path.join(etc, "machine-id"), uuid.uuid4().hex + "\n", 0o444)
        r = os.path.join(h, "root")
        write(os.path.join(h, "fstab"), "\n".join([
            "overlay %s overlay lowerdir=%s,upperdir=%s/upper,workdir=%s/work 0 0" % (r, lower, h, h),
            "proc %s/proc proc defaults 0 0" % r,
            "sysfs %s/sys sysfs ro 0 0" % r,
            "tmpfs %s/run tmpfs mode=0755,size=64m 0 0" % r,
            "devpts %s/dev/pts devpts newinstance,ptmxmode=0666,mode=0620,gid=5 0 0" % r,
            "tmpfs %s/dev/shm tmpfs mode=1777,size=64m 0 0" % r,
        ]) + "\n")
        key = os.path.join(etc, "ssh", "ssh_host_ed25519_key")
        for p in (key, key + ".pub"):
            if os.path.exists(p):
                os.unlink(p)
        keys.append((k, key))
    try:
        keys_with_cryptography(keys)
    except ImportError:
        keys_with_ssh_keygen(keys)
    lines = []
    for k, key in keys:
        with open(key + ".pub") as f:
            typ, b64 = f.read().split()[:2]
        lines.append("%s %s %s\n" % (addr(k), typ, b64))
    kh = os.path.join(lab, "ssh", "known_hosts")
    write(kh + ".tmp", "".join(lines))
    os.replace(kh + ".tmp", kh)


if __name__ == "__main__":
    main()
