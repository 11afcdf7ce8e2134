#!/usr/bin/python3
"""Byte relay used by qemu's guestfwd (`cmd:`): the guest connection is on stdin/stdout, and this
copies it to and from a TCP server on the real machine's loopback (HOST must be 127.0.0.1 or ::1).

usage: relay.py HOST PORT
"""
import os
import select
import socket
import sys


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    if host not in ("127.0.0.1", "::1", "localhost"):
        sys.exit("relay.py: refusing non-loopback target %s" % host)
    try:
        sock = socket.create_connection((host, port), timeout=10)
    except OSError:
        return 1
    sock.settimeout(None)
    fin, fout = 0, 1
    open_in, open_sock = True, True
    while open_in or open_sock:
        rl = []
        if open_in:
            rl.append(fin)
        if open_sock:
            rl.append(sock)
        try:
            ready, _, _ = select.select(rl, [], [], 300)
        except InterruptedError:
            continue
        if not ready:
            break  # idle for 5 minutes
        if fin in ready:
            data = os.read(fin, 65536)
            if data:
                sock.sendall(data)
            else:
                open_in = False
                try:
                    sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
        if sock in ready:
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if data:
                view = memoryview(data)
                while view:
                    n = os.write(fout, view)
                    view = view[n:]
            else:
                open_sock = False
                # server closed: we are done once the guest side has nothing left for us
                break
    sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
