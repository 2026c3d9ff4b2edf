#!/usr/bin/env python3
"""Consentry binaries side by side on large bodies: speed, CPU, memory.

For comparing a change against the binary before it on a machine that may
be busy: the binaries take turns (`--rounds` rounds, each binary once per
round, freshly started), so a slow spell hurts both alike. Per turn:

- `--downloads` 64 MB downloads at full speed, one after the other: the
  median MB/s and the proxy's median CPU per download (utime+stime from
  /proc, 10 ms ticks, so read the medians), and its write system calls per
  download (/proc/PID/io `syscw`: the `writev`s to the client; `recvfrom`
  from the origin is not counted there): unlike MB/s on a shared machine
  this barely moves from run to run, and it says what size the chunks were
  (64 MB in 64 KiB chunks is 1,024 writes, in 16 KiB chunks 4,096);
- memory per slow stream: the proxy's peak RSS while 16 clients download
  64 MB at 8 MB/s each, then while 48 do, and the slope between the two,
  (peak48 - peak16) / 32. The slope is the cost of one more in-flight
  stream; "peak minus the RSS before" instead depends on how much freed
  memory the allocator kept from whatever ran before.

Same origin, config, core pinning and one worker as run.py (whose setup it
reuses). Usage: benches/load/ab.py OLD_BINARY NEW_BINARY [MORE...] [--rounds 3]
[--downloads 3]
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (the harness next to this file)


def writes(pid):
    """Write system calls of a process so far (/proc/PID/io)."""
    with open(f"/proc/{pid}/io") as f:
        fields = dict(line.split(": ") for line in f.read().splitlines())
    return int(fields["syscw"])


def turn(bench, binary, downloads):
    port = run.PORTS["consentry"]
    env = dict(os.environ, CONSENTRY_WORKERS="1", RUST_LOG="warn")
    log = open(f"{bench.work}/ab-consentry.out", "a")
    proc = subprocess.Popen(["taskset", "-c", run.SERVER_CPU, binary, "run", "--config",
                             f"{bench.work}/consentry.toml"], stdout=log, stderr=subprocess.STDOUT, env=env,
                            preexec_fn=os.setsid)
    try:
        run.wait_port(port)
        url = f"http://127.0.0.1:{port}/64m.bin"
        speeds, cpus, calls = [], [], []
        for _ in range(downloads):
            cpu = run.cpu_seconds(proc.pid)
            written = writes(proc.pid)
            out = subprocess.run(["taskset", "-c", run.LOADGEN_CPU, "curl", "-s", "-o", "/dev/null", "-H",
                                  "Host: localhost", "-w", "%{speed_download} %{size_download}", url],
                                 capture_output=True, text=True, check=True)
            speed, size = out.stdout.split()
            if int(size) != 64 * 1024 * 1024:
                raise RuntimeError(f"{binary}: 64 MB download gave {size} bytes")
            cpus.append((run.cpu_seconds(proc.pid) - cpu) * 1000)
            calls.append(writes(proc.pid) - written)
            speeds.append(float(speed) / 1e6)
        slow = ["curl", "-s", "-o", "/dev/null", "--limit-rate", "8M", "-H", "Host: localhost", url]
        peaks = []
        for readers in (16, 48):
            time.sleep(0.5)
            peaks.append(bench.peak_rss_during(proc.pid, [slow] * readers))
        return statistics.median(speeds), statistics.median(cpus), (peaks[1] - peaks[0]) / 32, statistics.median(calls)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binaries", nargs="+", metavar="BINARY")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--downloads", type=int, default=3)
    args = ap.parse_args()
    if len(args.binaries) < 2:
        ap.error("two binaries at least")
    bench = run.Bench(argparse.Namespace(binary=None))
    results = {binary: [] for binary in args.binaries}
    try:
        bench.setup()
        bench.start("origin", ["nginx", "-c", f"{bench.work}/origin.conf", "-p", bench.work], run.PORTS["origin"])
        for r in range(args.rounds):
            for binary in args.binaries:
                results[binary].append(turn(bench, binary, args.downloads))
                print(f"round {r + 1} {binary}: {results[binary][-1]}", flush=True)
    finally:
        bench.stop_all()
    print("| binary | 64 MB MB/s median (min-max) | CPU ms per 64 MB median | writes per 64 MB median "
          "| KB per slow stream median (min-max) |")
    print("|---|---|---|---|---|")
    for binary, rows in results.items():
        speeds, cpus, per, calls = zip(*rows)
        print(f"| {binary} | {statistics.median(speeds):.0f} ({min(speeds):.0f}-{max(speeds):.0f}) | "
              f"{statistics.median(cpus):.0f} | {statistics.median(calls):.0f} | "
              f"{statistics.median(per):.0f} ({min(per):.0f}-{max(per):.0f}) |")


if __name__ == "__main__":
    main()
