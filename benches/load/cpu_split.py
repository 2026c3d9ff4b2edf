#!/usr/bin/env python3
"""User and system CPU per 2 KB request, per proxy, and the system calls behind them.

run.py reports each proxy's CPU per request as one figure; this splits it
into user and system time (utime and stime from /proc, 10 ms ticks, over
a ``--seconds`` wrk run of 32 connections, the same as run.py's), then
counts the proxy's system calls per request with ``strace -c -f`` during a
second run. strace slows the proxy by an order of magnitude, so its counts
say which calls a request makes, not how often a busy loop batches them.

Same origin, configs, core pinning and one worker as run.py (whose setup
it reuses). Needs what run.py needs, plus strace.
Usage: benches/load/cpu_split.py [--binary target/release/consentry] [--seconds 5]
"""

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (the harness next to this file)


def ticks(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary")
    ap.add_argument("--seconds", type=int, default=5)
    args = ap.parse_args()
    bench = run.Bench(argparse.Namespace(binary=args.binary, seconds=args.seconds))
    hz = os.sysconf("SC_CLK_TCK")
    rows = []
    try:
        bench.setup()
        bench.start_all()
        for name in ("consentry", "nginx", "haproxy"):
            pid, port = bench.worker_pid(name), run.PORTS[name]
            bench.wrk(port, "/2k.txt")  # warm-up
            u0, s0 = ticks(pid)
            r = bench.wrk(port, "/2k.txt")
            u1, s1 = ticks(pid)
            n = r["requests"]
            out = f"{bench.work}/{name}.strace"
            st = subprocess.Popen(["strace", "-c", "-f", "-p", str(pid), "-o", out],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
            traced = bench.wrk(port, "/2k.txt")["requests"]
            st.terminate()
            st.wait()
            calls = {}
            for line in open(out):
                parts = line.split()
                if len(parts) >= 5 and parts[-1].isidentifier() and parts[-1] != "total" and parts[3].isdigit():
                    calls[parts[-1]] = int(parts[3])
            per = ", ".join(f"{c} {k / traced:.2f}" for c, k in sorted(calls.items(), key=lambda kv: -kv[1])
                            if k / traced >= 0.01)
            rows.append((name, r["rps"], (u1 - u0) / hz / n * 1e6, (s1 - s0) / hz / n * 1e6, per))
            print(rows[-1], flush=True)
    finally:
        bench.stop_all()
    print("| proxy | req/s | user µs/req | system µs/req | system calls per request (under strace) |")
    print("|---|---|---|---|---|")
    for name, rps, user, system, per in rows:
        print(f"| {name} | {rps:.0f} | {user:.2f} | {system:.2f} | {per} |")


if __name__ == "__main__":
    main()
