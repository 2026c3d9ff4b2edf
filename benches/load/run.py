#!/usr/bin/env python3
"""Side-by-side load benchmark: consentry vs nginx and HAProxy.

Runs on one machine with two cores: the load generator is pinned to core 0,
the origin and the proxy under test to core 1 (``taskset``), one worker each
(consentry with a single tokio worker). Scenarios are interleaved and each
runs ``--runs`` times for ``--seconds`` seconds; the report gives medians and
min-max, ratios against the references measured in the same run, and the
proxy's own CPU time per request (utime+stime of the proxy process from
/proc, divided by completed requests).

Before loading, every proxy is checked: status 200, the exact body for
pass-through, and, for the rewriting scenarios, that trackers really were
neutralised.

Needs (Debian): nginx-light haproxy wrk nghttp2-client curl openssl.
Usage: benches/load/run.py [--runs 3] [--seconds 10] [--only NAME...] [--out FILE]
"""

import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOADGEN_CPU = "0"
SERVER_CPU = "1"

PORTS = {
    "origin": 18080,
    "consentry": 18081,
    "nginx": 18082,
    "nginx_nobuf": 18083,
    "haproxy": 18084,
    "nginx_sub": 18085,
    "consentry_tls": 18443,
    "nginx_tls": 18444,
    "haproxy_tls": 18445,
    "consentry_admin": 18901,
}

TRACKERS = [
    '<script async src="https://www.googletagmanager.com/gtag/js?id=G-ABC123"></script>',
    "<script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments);}"
    "gtag('js',new Date());gtag('config','G-ABC123');</script>",
    "<script>!function(f,b,e,v,n,t,s){if(f.fbq)return;n=f.fbq=function(){};}"
    "(window,document,'script','https://connect.facebook.net/en_US/fbevents.js');"
    "fbq('init','123');fbq('track','PageView');</script>",
    '<noscript><img height="1" width="1" style="display:none" '
    'src="https://www.facebook.com/tr?id=123&ev=PageView&noscript=1"/></noscript>',
    '<script type="text/javascript" id="hs-script-loader" async defer src="//js.hs-scripts.com/123.js"></script>',
    '<iframe width="560" height="315" src="https://www.youtube.com/embed/dQw4w9WgXcQ" allowfullscreen></iframe>',
    '<script src="https://js.stripe.com/v3/"></script>',
    '<script src="/static/app.js"></script>',
    '<link rel="preconnect" href="https://www.google-analytics.com">',
    '<img src="https://px.ads.linkedin.com/collect/?pid=1&fmt=gif" width="1" height="1">',
]


def html_page(size):
    """A realistic-looking page of about `size` bytes with 30 scripts."""
    head = (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<title>Legacy site</title><link rel=\"stylesheet\" href=\"/static/site.css\">"
        + "".join(TRACKERS[:3])
        + "</head><body><header><nav><a href=\"/\">Home</a> <a href=\"/pricing\">Pricing</a></nav></header><main>"
    )
    tail = "".join(TRACKERS[3:]) + "</main><footer>&copy; 2026</footer></body></html>\n"
    parts = [head]
    i = 0
    body_budget = size - len(head) - len(tail)
    scripts = 0
    while sum(map(len, parts)) < body_budget + len(head):
        i += 1
        parts.append(
            f"<section id=\"s{i}\"><h2>Section {i}</h2><p>Calls, numbers and SIP trunks for teams of every size. "
            f"Our VoIP platform routes calls through <a href=\"/features/{i}\">smart IVR</a> and keeps "
            f"<em>audio</em> crisp on any network.</p><ul><li>Item one</li><li>Item two</li></ul></section>"
        )
        if scripts < 20 and i % 3 == 0:
            scripts += 1
            parts.append(TRACKERS[(scripts % len(TRACKERS))])
    parts.append(tail)
    return "".join(parts)


def consentry_toml(port, admin_port, origin_port, listen_extra=""):
    """consentry's config in the load benches (also benches/load/instructions.py):
    one site on 127.0.0.1/localhost forwarding to the origin, with the
    presets of the trackers on the HTML pages, no access log."""
    return f"""
[listen]
http = "127.0.0.1:{port}"
{listen_extra}
[admin]
listen = "127.0.0.1:{admin_port}"

[log]
access = false

[[site]]
hosts = ["127.0.0.1", "localhost"]
origin = "http://127.0.0.1:{origin_port}"
policy = "bench"

[policy.bench]
presets = ["google-analytics", "google-tag-manager", "meta-pixel", "hubspot", "youtube", "stripe", "linkedin-insight"]
"""


def write(path, text, mode="w"):
    with open(path, mode) as f:
        f.write(text)


def wait_port(port, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open")


def cpu_seconds(pid):
    """utime+stime of a process and all its threads, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = tempfile.mkdtemp(prefix="consentry-load-")
        # nginx workers run as an unprivileged user: they must read the files.
        os.chmod(self.work, 0o755)
        self.procs = {}
        self.results = []

    # ---------- setup ----------
    def setup(self):
        w = self.work
        os.makedirs(f"{w}/www/static", exist_ok=True)
        write(f"{w}/www/2k.txt", ("consentry load test " * 200)[:2048])
        page2k = html_page(2048)
        write(f"{w}/www/2k.html", page2k)
        write(f"{w}/www/100k.html", html_page(100 * 1024))
        write(f"{w}/www/100k.txt", ("x" * 99 + "\n") * 1024)
        with open(f"{w}/www/64m.bin", "wb") as f:
            f.write(os.urandom(1024 * 1024) * 64)
        # A sparse 1 GiB file for the streaming-memory check.
        with open(f"{w}/www/1g.bin", "wb") as f:
            f.truncate(1024 * 1024 * 1024)
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
             "-keyout", f"{w}/key.pem", "-out", f"{w}/cert.pem"],
            check=True, capture_output=True)
        write(f"{w}/combined.pem", open(f"{w}/cert.pem").read() + open(f"{w}/key.pem").read())
        self.write_configs()

    def write_configs(self):
        w, p = self.work, PORTS
        common = f"""
worker_processes 1;
daemon off;
pid {w}/%s.pid;
error_log {w}/%s-error.log warn;
worker_rlimit_nofile %s;
events {{ worker_connections 16384; }}
http {{
  access_log off;
  types {{ text/html html; text/plain txt; application/octet-stream bin; }}
  default_type application/octet-stream;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  client_body_temp_path {w}/tmp-%s;
  proxy_temp_path {w}/ptmp-%s;
"""
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        common = common.replace("worker_rlimit_nofile %s;", f"worker_rlimit_nofile {min(nofile, 65535)};")
        origin = (common % (("origin",) * 4)) + f"""
  sendfile on;
  server {{ listen 127.0.0.1:{p['origin']} backlog=4096; root {w}/www; }}
}}
"""
        upstream = f"""
  upstream origin {{ server 127.0.0.1:{p['origin']}; keepalive 64; }}
"""
        # Every location-level proxy_set_header would cancel the
        # server-level ones, so they are all set at server level.
        proxy = (common % (("nginx",) * 4)) + upstream + f"""
  server {{
    listen 127.0.0.1:{p['nginx']} backlog=4096;
    listen 127.0.0.1:{p['nginx_tls']} ssl http2 backlog=4096;
    ssl_certificate {w}/cert.pem; ssl_certificate_key {w}/key.pem;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $host;
    location / {{ proxy_pass http://origin; }}
  }}
  server {{
    listen 127.0.0.1:{p['nginx_nobuf']} backlog=4096;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $host;
    proxy_buffering off;
    location / {{ proxy_pass http://origin; }}
  }}
  server {{
    listen 127.0.0.1:{p['nginx_sub']} backlog=4096;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $host;
    proxy_set_header Accept-Encoding "";
    sub_filter_once off;
    sub_filter_types text/html;
    sub_filter '<script async src="https://www.googletagmanager.com' '<script type="text/plain" data-category="analytics" async src="https://www.googletagmanager.com';
    sub_filter '<script src="https://js.stripe.com' '<script src="https://js.stripe.com';
    sub_filter 'src="https://www.youtube.com' 'data-src="https://www.youtube.com';
    sub_filter 'src="//js.hs-scripts.com' 'type="text/plain" data-category="analytics" src="//js.hs-scripts.com';
    location / {{ proxy_pass http://origin; }}
  }}
}}
"""
        write(f"{w}/origin.conf", origin)
        write(f"{w}/nginx.conf", proxy)
        write(f"{w}/haproxy.cfg", f"""
global
  nbthread 1
  maxconn 9000
  tune.ssl.default-dh-param 2048
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 120s
  option http-keep-alive
  http-reuse always
frontend fe
  bind 127.0.0.1:{p['haproxy']}
  bind 127.0.0.1:{p['haproxy_tls']} ssl crt {w}/combined.pem alpn h2,http/1.1
  default_backend be
backend be
  server origin 127.0.0.1:{p['origin']} maxconn 1000
""")
        tls_port = p["consentry_tls"]
        tls = f'https = "127.0.0.1:{tls_port}"\ncert = "{w}/cert.pem"\nkey = "{w}/key.pem"\n'
        write(f"{w}/consentry.toml", consentry_toml(p["consentry"], p["consentry_admin"], p["origin"], tls))

    def start(self, name, argv, port):
        log = open(f"{self.work}/{name}.out", "w")
        proc = subprocess.Popen(["taskset", "-c", SERVER_CPU] + argv, stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=os.setsid)
        self.procs[name] = proc
        wait_port(port)
        return proc

    def start_all(self):
        w, p = self.work, PORTS
        binary = self.args.binary or os.path.join(ROOT, "target", "release", "consentry")
        self.start("origin", ["nginx", "-c", f"{w}/origin.conf", "-p", w], p["origin"])
        self.start("nginx", ["nginx", "-c", f"{w}/nginx.conf", "-p", w], p["nginx"])
        self.start("haproxy", ["haproxy", "-f", f"{w}/haproxy.cfg"], p["haproxy"])
        env = dict(os.environ, CONSENTRY_WORKERS="1", RUST_LOG="warn")
        log = open(f"{w}/consentry.out", "w")
        proc = subprocess.Popen(["taskset", "-c", SERVER_CPU, binary, "run", "--config", f"{w}/consentry.toml"],
                                stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=os.setsid)
        self.procs["consentry"] = proc
        wait_port(p["consentry"])

    def worker_pid(self, name):
        """The process doing the proxying (nginx: the worker, not the master)."""
        pid = self.procs[name].pid
        if name in ("nginx", "origin"):
            children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
            return int(children[0])
        return pid

    def stop_all(self):
        for proc in self.procs.values():
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)

    # ---------- checks ----------
    def fetch(self, port, path):
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Host": "localhost"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()

    def check(self):
        www = f"{self.work}/www"
        for name in ("consentry", "nginx", "nginx_nobuf", "haproxy"):
            for path in ("/2k.txt", "/100k.txt"):
                status, body = self.fetch(PORTS[name], path)
                want = open(www + path, "rb").read()
                if status != 200 or body != want:
                    raise RuntimeError(f"{name}{path}: status {status}, body {'ok' if body == want else 'differs'}")
        status, body = self.fetch(PORTS["consentry"], "/100k.html")
        text = body.decode()
        if status != 200 or 'type="text/plain"' not in text or "googletagmanager" not in text:
            raise RuntimeError("consentry did not neutralise the trackers in /100k.html")
        if "<footer>" not in text or not text.rstrip().endswith("</html>"):
            raise RuntimeError("consentry truncated /100k.html")
        status, body = self.fetch(PORTS["nginx_sub"], "/100k.html")
        if status != 200 or 'data-category="analytics"' not in body.decode():
            raise RuntimeError("nginx sub_filter did not rewrite /100k.html")

    # ---------- load ----------
    def wrk(self, port, path, connections=32):
        pid = self.worker_pid(self.port_owner(port))
        before = cpu_seconds(pid)
        out = subprocess.run(
            ["taskset", "-c", LOADGEN_CPU, "wrk", "-t1", f"-c{connections}", f"-d{self.args.seconds}s",
             "-H", "Host: localhost", f"http://127.0.0.1:{port}{path}"],
            capture_output=True, text=True, check=True).stdout
        cpu = cpu_seconds(pid) - before
        reqs = int(re.search(r"(\d+) requests in", out).group(1))
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        errors = re.search(r"Socket errors: (.*)", out)
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        if errors or non2xx:
            raise RuntimeError(f"errors under load on port {port}{path}: {out}")
        return {"rps": rps, "cpu_us_per_req": cpu / max(reqs, 1) * 1e6, "requests": reqs}

    def port_owner(self, port):
        for name, p in PORTS.items():
            if p == port:
                return {"nginx_nobuf": "nginx", "nginx_sub": "nginx", "nginx_tls": "nginx",
                        "consentry_tls": "consentry", "haproxy_tls": "haproxy"}.get(name, name)
        raise KeyError(port)

    def h2load(self, port, path, rps_per_client=None, clients=16):
        log = f"{self.work}/h2load.log"
        argv = ["taskset", "-c", LOADGEN_CPU, "h2load", "-c", str(clients), "-m", "1" if rps_per_client else "10",
                "-D", str(self.args.seconds), "--log-file", log]
        # No `Host` header: h2load sends `:authority` (127.0.0.1:PORT, a host
        # the bench site answers for), and a differing `host` beside it is a
        # malformed HTTP/2 request (RFC 9113 §8.3.1) that consentry resets.
        if rps_per_client:
            argv += ["--rps", str(rps_per_client)]
        argv.append(f"https://127.0.0.1:{port}{path}")
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        m = re.search(r"finished in [\d.]+\w*, ([\d.]+) req/s", out)
        status = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
        if not status or int(status.group(3)) or int(status.group(4)):
            raise RuntimeError(f"h2load errors on {port}: {out}")
        lat = sorted(int(line.split("\t")[2]) for line in open(log) if line.strip())
        p99 = lat[int(len(lat) * 0.99) - 1] / 1000.0 if lat else float("nan")
        return {"rps": float(m.group(1)), "p99_ms": p99}

    def run_scenarios(self):
        p = PORTS
        scenarios = [
            ("passthrough 2 KB (h1)", "/2k.txt", [("consentry", p["consentry"]), ("nginx proxy_pass", p["nginx"]),
                                                 ("haproxy", p["haproxy"])], "nginx proxy_pass"),
            ("passthrough 100 KB (h1)", "/100k.txt", [("consentry", p["consentry"]),
                                                     ("nginx buffering off", p["nginx_nobuf"]),
                                                     ("nginx proxy_pass", p["nginx"]), ("haproxy", p["haproxy"])],
             "nginx buffering off"),
            ("HTML rewrite 100 KB (h1)", "/100k.html", [("consentry", p["consentry"]),
                                                       ("nginx sub_filter", p["nginx_sub"]),
                                                       ("consentry passthrough 100 KB", None)], "nginx sub_filter"),
        ]
        data = {}
        for run in range(self.args.runs):
            for title, path, proxies, _ in scenarios:
                if self.args.only and not any(o in title for o in self.args.only):
                    continue
                for name, port in proxies:
                    if port is None:
                        port, use_path = p["consentry"], "/100k.txt"
                    else:
                        use_path = path
                    r = self.wrk(port, use_path)
                    data.setdefault((title, name), []).append(r)
                    print(f"run {run + 1} {title:28} {name:30} {r['rps']:10.0f} req/s {r['cpu_us_per_req']:7.1f} us/req",
                          flush=True)
        self.report_wrk(scenarios, data)
        if not self.args.only or any("h2" in o for o in self.args.only):
            self.run_h2()
        if not self.args.only or any("mem" in o for o in self.args.only):
            self.run_memory()
        if not self.args.only or any("stream" in o for o in self.args.only):
            self.run_stream()
        if not self.args.only or any("reload" in o for o in self.args.only):
            self.run_reload()

    def report_wrk(self, scenarios, data):
        lines = ["| scenario | proxy | req/s median (min-max) | ratio vs reference | proxy CPU us/req median |",
                 "|---|---|---|---|---|"]
        for title, _, proxies, ref in scenarios:
            if (title, ref) not in data:
                continue
            ref_rps = statistics.median(r["rps"] for r in data[(title, ref)])
            for name, _ in proxies:
                rs = data[(title, name)]
                rps = [r["rps"] for r in rs]
                cpu = statistics.median(r["cpu_us_per_req"] for r in rs)
                lines.append(f"| {title} | {name} | {statistics.median(rps):.0f} ({min(rps):.0f}-{max(rps):.0f}) | "
                             f"{statistics.median(rps) / ref_rps:.2f}x | {cpu:.1f} |")
        self.results.append("\n".join(lines))
        print("\n".join(lines), flush=True)

    def run_h2(self):
        p = PORTS
        targets = [("consentry", p["consentry_tls"]), ("nginx", p["nginx_tls"]), ("haproxy", p["haproxy_tls"])]
        lines = ["| proxy (h2 + TLS, /2k.txt) | max req/s median | p99 at 50% of nginx max (ms) median |",
                 "|---|---|---|"]
        maxes, lats = {}, {}
        for run in range(self.args.runs):
            for name, port in targets:
                maxes.setdefault(name, []).append(self.h2load(port, "/2k.txt")["rps"])
        half = statistics.median(maxes["nginx"]) * 0.5
        per_client = max(1, int(half / 16))
        for run in range(self.args.runs):
            for name, port in targets:
                lats.setdefault(name, []).append(self.h2load(port, "/2k.txt", rps_per_client=per_client)["p99_ms"])
        for name, _ in targets:
            lines.append(f"| {name} | {statistics.median(maxes[name]):.0f} | {statistics.median(lats[name]):.2f} |")
        lines.append(f"\nFixed rate: {per_client * 16} req/s (16 clients x {per_client}).")
        self.results.append("\n".join(lines))
        print("\n".join(lines), flush=True)

    def run_memory(self):
        """RSS with 2,000 idle keep-alive connections, per proxy."""
        lines = ["| proxy | RSS idle (KB) | RSS with 2,000 idle keep-alive conns (KB) | per connection (KB) |",
                 "|---|---|---|---|"]
        for name, port in (("consentry", PORTS["consentry"]), ("nginx", PORTS["nginx"]), ("haproxy", PORTS["haproxy"])):
            pid = self.worker_pid(name)
            time.sleep(1)
            before = rss_kb(pid)
            socks = []
            for _ in range(2000):
                s = socket.create_connection(("127.0.0.1", port))
                s.sendall(b"GET /2k.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
                socks.append(s)
            for s in socks:
                got = b""
                while b"consentry load test" not in got:
                    got += s.recv(65536)
            time.sleep(1)
            after = rss_kb(pid)
            for s in socks:
                s.close()
            lines.append(f"| {name} | {before} | {after} | {(after - before) / 2000:.1f} |")
        self.results.append("\n".join(lines))
        print("\n".join(lines), flush=True)

    def run_stream(self):
        """One 64 MB stream: throughput; one 1 GB stream, then 16 and 48 slow 64 MB readers: RSS."""
        lines = ["| proxy | 64 MB single stream MB/s (median) | peak RSS during 1 GB stream (KB) | "
                 "peak RSS with 16 slow 64 MB readers (KB) | per slow stream (KB, (peak with 48 - peak with 16) / 32) |",
                 "|---|---|---|---|---|"]
        for name, port in (("direct origin", PORTS["origin"]), ("consentry", PORTS["consentry"]),
                           ("nginx buffering off", PORTS["nginx_nobuf"]), ("haproxy", PORTS["haproxy"])):
            speeds = []
            for _ in range(self.args.runs):
                out = subprocess.run(["taskset", "-c", LOADGEN_CPU, "curl", "-s", "-o", "/dev/null", "-H",
                                      "Host: localhost", "-w", "%{speed_download}",
                                      f"http://127.0.0.1:{port}/64m.bin"], capture_output=True, text=True, check=True)
                speeds.append(float(out.stdout) / 1e6)
            peak_big = peak_slow = per_stream = "-"
            if name != "direct origin":
                pid = self.worker_pid({"nginx buffering off": "nginx"}.get(name, name))
                peak_big = self.peak_rss_during(pid, [["curl", "-s", "-o", "/dev/null", "-H", "Host: localhost",
                                                       f"http://127.0.0.1:{port}/1g.bin"]])
                # Per stream is the slope between 16 and 48 readers: "peak
                # minus the RSS before" depends on how much freed memory the
                # allocator kept from the streams before (see ab.py).
                slow = ["curl", "-s", "-o", "/dev/null", "--limit-rate", "8M", "-H", "Host: localhost",
                        f"http://127.0.0.1:{port}/64m.bin"]
                time.sleep(1)
                peak_slow = self.peak_rss_during(pid, [slow] * 16)
                time.sleep(1)
                per_stream = f"{(self.peak_rss_during(pid, [slow] * 48) - peak_slow) / 32:.0f}"
            lines.append(f"| {name} | {statistics.median(speeds):.0f} | {peak_big} | {peak_slow} | {per_stream} |")
        self.results.append("\n".join(lines))
        print("\n".join(lines), flush=True)

    def run_reload(self):
        """p99 at a fixed rate with and without config reloads landing meanwhile.

        The rules file is rewritten (by rename, as editors save) every 500 ms
        (longer than the watcher's debounce, so each write is its own reload)
        with a changed comment, so every write is a real reload: parse,
        compile, swap. Each pair of runs is interleaved: quiet, reloading.
        """
        port, admin = PORTS["consentry_tls"], PORTS["consentry_admin"]
        path = f"{self.work}/consentry.toml"
        original = open(path).read()
        rate_max = self.h2load(port, "/2k.txt")["rps"]
        per_client = max(1, int(rate_max * 0.5 / 16))
        quiet, busy, reloads = [], [], []
        for _ in range(self.args.runs):
            quiet.append(self.h2load(port, "/2k.txt", rps_per_client=per_client)["p99_ms"])
            before = self.reload_count(admin)
            stop = []

            def rewrite():
                n = 0
                while not stop:
                    n += 1
                    tmp = path + ".tmp"
                    write(tmp, original + f"\n# reload {n}\n")
                    os.rename(tmp, path)
                    time.sleep(0.5)

            import threading
            t = threading.Thread(target=rewrite)
            t.start()
            try:
                busy.append(self.h2load(port, "/2k.txt", rps_per_client=per_client)["p99_ms"])
            finally:
                stop.append(True)
                t.join()
            reloads.append(self.reload_count(admin) - before)
        write(path, original)
        lines = ["| consentry (h2 + TLS, /2k.txt, fixed rate) | p99 ms median (min-max) |", "|---|---|",
                 f"| no reload | {statistics.median(quiet):.2f} ({min(quiet):.2f}-{max(quiet):.2f}) |",
                 f"| reload every 500 ms | {statistics.median(busy):.2f} ({min(busy):.2f}-{max(busy):.2f}) |",
                 f"\nFixed rate {per_client * 16} req/s (50% of the {rate_max:.0f} req/s maximum); "
                 f"reloads applied per {self.args.seconds} s run: {reloads}; "
                 f"p99 increase: {statistics.median(busy) - statistics.median(quiet):+.2f} ms."]
        self.results.append("\n".join(lines))
        print("\n".join(lines), flush=True)

    def reload_count(self, admin_port):
        """consentry's successful reloads so far, from its metrics."""
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=10) as r:
            text = r.read().decode()
        m = re.search(r'^consentry_config_reloads_total\{result="ok"\} (\d+)', text, re.M)
        if not m:
            raise RuntimeError("no consentry_config_reloads_total{result=\"ok\"} in /metrics")
        return int(m.group(1))

    def peak_rss_during(self, pid, commands):
        procs = [subprocess.Popen(["taskset", "-c", LOADGEN_CPU] + c) for c in commands]
        peak = rss_kb(pid)
        while any(p.poll() is None for p in procs):
            peak = max(peak, rss_kb(pid))
            time.sleep(0.05)
        return peak


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--only", nargs="*", help="substrings of scenario titles, or h2 / mem / stream")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--out", help="append the markdown tables to this file")
    ap.add_argument("--binary", help="the consentry binary to measure (default target/release/consentry), "
                    "e.g. target/profiling/consentry for perf")
    args = ap.parse_args()
    for tool in ("nginx", "haproxy", "wrk", "h2load", "curl", "openssl", "taskset"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: apt-get install nginx-light haproxy wrk nghttp2-client curl openssl util-linux")
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release"], cwd=ROOT, check=True)
    b = Bench(args)
    try:
        b.setup()
        b.start_all()
        b.check()
        b.run_scenarios()
    finally:
        b.stop_all()
    if args.out:
        with open(args.out, "a") as f:
            f.write("\n\n".join(b.results) + "\n")
    print(json.dumps({"workdir": b.work}))


if __name__ == "__main__":
    main()
