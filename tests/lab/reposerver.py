#!/usr/bin/env python3
"""The lab's package repository server: static files over HTTP/1.1.

`python3 -m http.server` listens with a backlog of 5 (socketserver's default),
so when 100 lab hosts run apt at once, SYNs are dropped, clients back off for
seconds and apt gives up ("Unable to connect"). This is the same file server
with a real backlog, one thread per connection and keep-alive, which is what a
real mirror (nginx, Apache) gives its clients.

usage: reposerver.py --bind ADDR --directory DIR PORT
"""
import argparse
import functools
import http.server
import socketserver
import sys


class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: apt fetches many files per connection

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", required=True)
    ap.add_argument("--directory", required=True)
    ap.add_argument("port", type=int)
    a = ap.parse_args()
    handler = functools.partial(Handler, directory=a.directory)
    with Server((a.bind, a.port), handler) as srv:
        srv.serve_forever()


if __name__ == "__main__":
    main()
