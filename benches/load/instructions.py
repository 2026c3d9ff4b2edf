#!/usr/bin/env python3
"""Instructions the proxy spends per 2 KB HTTP/1.1 passthrough request.

A wall-clock or CPU-time figure is noise on a shared two-core machine; an
instruction count under callgrind is stable to a fraction of a percent, so
this is the figure to compare two builds with (issue 8).

What it does:

1. starts an origin outside valgrind: Debian's ``nginx`` serving a 2 KB
   file on 127.0.0.1:28080 (keep-alive, no access log), with a config in a
   temporary directory;
2. starts the consentry binary under ``valgrind --tool=callgrind
   --instr-atstart=no`` (nothing counted until switched on) with ``CONSENTRY_WORKERS=1`` (tokio's
   current-thread scheduler, as in benches/load/run.py) and a config
   forwarding 127.0.0.1:28081 to that origin (the same site and policy as
   run.py's);
3. warms up (connections to the origin pooled, allocator and caches warm)
   with ``--warmup`` requests over the same keep-alive connections;
4. zeroes the counters and switches instrumentation on (``callgrind_control
   -z``, ``-i on``; ``--collect-atstart=no`` would not do: callgrind_control
   cannot switch collection, only instrumentation), sends exactly
   ``--requests`` keep-alive GETs over ``--connections`` connections (a
   Python client outside valgrind: each connection sends its next request
   once the previous response has been read completely), turns it off,
   dumps, and divides the instruction count (Ir) by the request count.

Needs (Debian): valgrind, nginx (nginx-light is enough).

Usage:
    benches/load/instructions.py [--binary target/release/consentry]
        [--requests 2000] [--connections 4] [--warmup 500] [--keep DIR]
        [--annotate N]

``--keep DIR`` writes the callgrind output there (``callgrind.out``) for
``callgrind_annotate --inclusive=yes DIR/callgrind.out``; ``--annotate N``
prints the top N inclusive entries as well. Ports 28080-28081 and 28901 must
be free.
"""

import argparse
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402 - the same consentry config and port wait as the load bench

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ORIGIN_PORT = 28080
PROXY_PORT = 28081
ADMIN_PORT = 28901
BODY = ("consentry load test " * 200)[:2048].encode()


class Connection:
    """One keep-alive HTTP/1.1 client connection, one request at a time."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def get(self, path):
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: instructions.py\r\n\r\n".encode())
        while b"\r\n\r\n" not in self.buf:
            self.recv()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status = int(head.split(b" ", 2)[1])
        match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        if not match:
            raise RuntimeError(f"no Content-Length in {head!r}")
        length = int(match.group(1))
        while len(self.buf) < length:
            self.recv()
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, body

    def recv(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed by the proxy")
        self.buf += chunk


def load(conns, total):
    """Sends exactly `total` requests spread over `conns`; checks each answer."""
    errors = []

    def run(conn, count):
        try:
            for _ in range(count):
                status, body = conn.get("/2k.txt")
                if status != 200 or body != BODY:
                    raise RuntimeError(f"status {status}, body {'ok' if body == BODY else 'differs'}")
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    share = [total // len(conns) + (1 if i < total % len(conns) else 0) for i in range(len(conns))]
    threads = [threading.Thread(target=run, args=(c, n)) for c, n in zip(conns, share)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} connection(s) failed: {errors[0]}")


def write_configs(work):
    os.makedirs(f"{work}/www", exist_ok=True)
    with open(f"{work}/www/2k.txt", "wb") as f:
        f.write(BODY)
    with open(f"{work}/origin.conf", "w") as f:
        f.write(f"""
worker_processes 1;
daemon off;
pid {work}/origin.pid;
error_log {work}/origin-error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  types {{ text/plain txt; }}
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  client_body_temp_path {work}/tmp;
  sendfile on;
  server {{ listen 127.0.0.1:{ORIGIN_PORT}; root {work}/www; }}
}}
""")
    with open(f"{work}/consentry.toml", "w") as f:
        f.write(run.consentry_toml(PROXY_PORT, ADMIN_PORT, ORIGIN_PORT))


def callgrind(args, *extra):
    return subprocess.run(["callgrind_control", *extra, str(args)], check=True, capture_output=True, text=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "consentry"))
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--keep", help="directory to keep callgrind.out in")
    parser.add_argument("--annotate", type=int, default=0, help="print the top N inclusive entries")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="consentry-instr-")
    os.chmod(work, 0o755)  # nginx's worker runs unprivileged and reads www/
    write_configs(work)
    procs = []
    try:
        origin = subprocess.Popen(["nginx", "-c", f"{work}/origin.conf", "-p", work],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=os.setsid)
        procs.append(origin)
        run.wait_port(ORIGIN_PORT, 10)
        env = dict(os.environ, CONSENTRY_WORKERS="1", RUST_LOG="warn")
        out = f"{work}/callgrind.out"
        proxy = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
             args.binary, "run", "--config", f"{work}/consentry.toml"],
            stdout=open(f"{work}/consentry.log", "w"), stderr=subprocess.STDOUT, env=env,
            preexec_fn=os.setsid)
        procs.append(proxy)
        run.wait_port(PROXY_PORT, 120)

        conns = [Connection(PROXY_PORT) for _ in range(args.connections)]
        load(conns, args.warmup)
        callgrind(proxy.pid, "-z")
        callgrind(proxy.pid, "-i", "on")
        start = time.time()
        load(conns, args.requests)
        callgrind(proxy.pid, "-i", "off")
        elapsed = time.time() - start
        callgrind(proxy.pid, "-d")
        for c in conns:
            c.sock.close()
        dumps = sorted(glob.glob(out + "*"), key=os.path.getmtime)
        totals = None
        with open(dumps[-1]) as f:
            for line in f:
                if line.startswith(("summary:", "totals:")):
                    totals = int(line.split()[1])
        if totals is None:
            raise RuntimeError(f"no totals in {dumps[-1]}")
        print(f"binary: {args.binary}")
        print(f"requests: {args.requests} over {args.connections} keep-alive connections "
              f"(after {args.warmup} warm-up), {elapsed:.1f} s under valgrind")
        print(f"instructions: {totals}  per request: {totals / args.requests:,.0f}")
        if args.keep:
            os.makedirs(args.keep, exist_ok=True)
            shutil.copy(dumps[-1], os.path.join(args.keep, "callgrind.out"))
        if args.annotate:
            report = subprocess.run(["callgrind_annotate", "--inclusive=yes", dumps[-1]],
                                    capture_output=True, text=True, check=True).stdout
            print("\n".join(report.splitlines()[: args.annotate + 25]))
    finally:
        for proc in reversed(procs):
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for proc in reversed(procs):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
