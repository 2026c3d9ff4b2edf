#!/usr/bin/env python3
"""Opens N keep-alive connections to a proxy, one request each, and holds
them idle: the workload behind "RSS per idle keep-alive connection", for a
heap profiler attached to the proxy.

    benches/load/idle.py PORT [--conns 2000] [--path /2k.txt] [--hold 30]
        [--expect "consentry load test"] [--pid PID] [--then CMD]

With --pid, prints the proxy's RSS before and after (and the difference per
connection); with --then, runs CMD (a shell command, e.g. `vgdb --pid=...
detailed_snapshot /tmp/snap` or `kill -9 ...`) while the connections are
still open, then closes them.
"""

import argparse
import resource
import socket
import subprocess
import time


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def read_response(s, expect):
    got = b""
    while expect.encode() not in got:
        chunk = s.recv(65536)
        if not chunk:
            raise SystemExit("connection closed before the response")
        got += chunk


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--conns", type=int, default=2000)
    ap.add_argument("--path", default="/2k.txt")
    ap.add_argument("--expect", default="consentry load test")
    ap.add_argument("--hold", type=float, default=1.0)
    ap.add_argument("--pid", type=int)
    ap.add_argument("--then")
    ap.add_argument("--sequential", action="store_true",
                    help="one request at a time (no burst of concurrent requests)")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, args.conns + 100)), hard))
    before = rss_kb(args.pid) if args.pid else None
    socks = []
    request = f"GET {args.path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()
    for _ in range(args.conns):
        s = socket.create_connection(("127.0.0.1", args.port))
        s.sendall(request)
        socks.append(s)
        if args.sequential:
            read_response(s, args.expect)
    for s in socks:
        if not args.sequential:
            read_response(s, args.expect)
    time.sleep(args.hold)
    if args.pid:
        after = rss_kb(args.pid)
        print(f"rss before {before} KB, with {args.conns} idle {after} KB, "
              f"per connection {(after - before) / args.conns:.1f} KB", flush=True)
    if args.then:
        subprocess.run(args.then, shell=True, check=False)
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
