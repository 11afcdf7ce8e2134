#!/usr/bin/python3
"""Wait until every ADDR:PORT accepts TCP connections (or, with --closed, refuses them).

Only lab addresses are probed: every address must be in the lab subnet (10.77.0.0/24 for instance 0) and route via the lab bridge
(`ip route get`, checked here before any connection).
Usage: waitports.py [--closed] TIMEOUT ADDR:PORT...
"""
import ipaddress
import os
import socket
import subprocess
import sys
import time

# scripts/lab exports these for its instance (KUBESTRAP_LAB_INSTANCE); the defaults are instance 0
_NET = os.environ.get("KUBESTRAP_LAB_NET", "10.77.0")
LAB_NET = ipaddress.ip_network(_NET + ".0/24")
BRIDGE = os.environ.get("KUBESTRAP_LAB_BRIDGE", "ksbr0")
GATEWAY = _NET + ".1"


def routes_via_bridge(addrs):
    """The subset of addrs the machine routes over the lab bridge (one `ip -batch` for all)."""
    if not os.path.exists("/sys/class/net/" + BRIDGE):
        return set()
    batch = "".join("route get %s\n" % a for a in addrs)
    r = subprocess.run(["ip", "-o", "-force", "-batch", "-"], input=batch, capture_output=True, text=True)
    ok = set()
    for line in r.stdout.splitlines():
        f = line.split()
        if not f:
            continue
        if f[0] == "local" and len(f) > 1 and f[1] == GATEWAY:
            ok.add(GATEWAY)  # the bridge's own address
        elif " dev %s " % BRIDGE in line + " ":
            ok.add(f[0])
    return ok


def probe(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(0.5)
    try:
        s.connect((addr, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def main(argv):
    closed = False
    if argv and argv[0] == "--closed":
        closed = True
        argv = argv[1:]
    timeout = float(argv[0])
    todo = []
    for item in argv[1:]:
        addr, port = item.rsplit(":", 1)
        if ipaddress.ip_address(addr) not in LAB_NET:
            print(f"waitports: refusing non-lab address {addr}", file=sys.stderr)
            return 2
        todo.append((addr, int(port)))
    bad = sorted({a for a, _ in todo} - routes_via_bridge({a for a, _ in todo}))
    if bad:
        print("waitports: refusing: %s do(es) not route via %s" % (" ".join(bad), BRIDGE), file=sys.stderr)
        return 2
    deadline = time.monotonic() + timeout
    while todo:
        todo = [t for t in todo if probe(*t) == closed]
        if not todo:
            break
        if time.monotonic() > deadline:
            print("waitports: still waiting for " + " ".join(f"{a}:{p}" for a, p in todo), file=sys.stderr)
            return 1
        time.sleep(0.05)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
