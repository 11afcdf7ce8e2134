#!/usr/bin/python3
"""Wait until every ADDR:PORT accepts TCP connections (or, with --closed, refuses them).

Only lab addresses are probed: every address must be in 10.77.0.0/24 and route via the lab bridge
(checked by the caller with `ip route get`; checked again here against 10.77.0.0/24).
Usage: waitports.py [--closed] TIMEOUT ADDR:PORT...
"""
import ipaddress
import socket
import sys
import time

LAB_NET = ipaddress.ip_network("10.77.0.0/24")


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
