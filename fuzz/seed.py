#!/usr/bin/env python3
"""Writes the seed corpora, fuzz/corpus/TARGET/, from real examples in the
repository (and, when present, ../shared/testdata).

Sources, per target:
- consent_*: the real cookie values of each reader's unit tests (every
  string literal in the test module of src/consent/FORMAT.rs, and the
  vectors in src/consent/vectors.rs); consentry values made the way the
  consent endpoint makes them (src/consent/consentry.rs, signed with the
  fuzz policy's key and unsigned);
- set_cookie: the Set-Cookie values of the unit tests of set_cookie.rs,
  response_headers.rs and its scenarios (real origins' headers), one per
  file, plus one file with all of them (the target splits at newlines);
- cookie: the Cookie headers of cookie.rs, request_filter.rs and the
  consent tests (Complianz keeps several cookies in one header);
- config: config/*.toml and config/examples/*.toml (the five seed sites'
  policies) and the TOML blocks of docs/configuration.md;
- html, html_codec: the bench pages (benches/data/*.html, first 32 KiB),
  the pages of src/demo.rs and the HTML literals of the HTML tests.

Inputs taken from ../shared/testdata (html5lib tokenizer cases, lol-html
bail-outs) are NOT written here (that folder asks that nothing of it be
copied into the project): with --extra DIR they go to DIR/TARGET instead,
which run.sh passes to libFuzzer as an extra, uncommitted corpus.

Re-running it is idempotent: files are named by the SHA-1 of their content.
"""

import argparse
import base64
import hashlib
import hmac
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
FUZZ = ROOT / "fuzz"

LITERAL = re.compile(r'r(#*)"(.*?)"\1|"((?:[^"\\]|\\.)*)"', re.S)


def unescape(s):
    out = []
    i = 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            n = s[i + 1]
            if n == "\n":
                # Line continuation: skip the newline and leading spaces.
                i += 2
                while i < len(s) and s[i] in " \t":
                    i += 1
                continue
            simple = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'"}
            if n in simple:
                out.append(simple[n])
                i += 2
                continue
            if n == "x" and i + 3 < len(s):
                out.append(chr(int(s[i + 2 : i + 4], 16)))
                i += 4
                continue
            if n == "u":
                end = s.index("}", i)
                out.append(chr(int(s[i + 3 : end], 16)))
                i = end + 1
                continue
        out.append(c)
        i += 1
    return "".join(out)


def literals(path, tests_only=True):
    text = path.read_text()
    if tests_only and "#[cfg(test)]" in text:
        text = text[text.index("#[cfg(test)]") :]
    for m in LITERAL.finditer(text):
        if m.group(2) is not None:
            yield m.group(2)
        else:
            try:
                yield unescape(m.group(3))
            except (ValueError, IndexError):
                continue


class Corpus:
    def __init__(self, base):
        self.base = base
        self.count = {}

    def add(self, target, data):
        if isinstance(data, str):
            data = data.encode()
        if not data:
            return
        d = self.base / target
        d.mkdir(parents=True, exist_ok=True)
        (d / hashlib.sha1(data).hexdigest()).write_bytes(data)
        self.count[target] = self.count.get(target, 0) + 1


def consentry_value(cats, revision, secs, key):
    v = f"1.{revision}.{secs}." + "~".join(cats)
    if key:
        sig = hmac.new(key, v.encode(), hashlib.sha256).digest()
        v += "." + base64.urlsafe_b64encode(sig).decode().rstrip("=")
    return v


FORMATS = ["consentry", "cookieconsent", "klaro", "cookiebot", "onetrust", "cookieyes", "complianz", "tcf"]
VECTOR_OF = {
    "COOKIECONSENT": "cookieconsent",
    "KLARO": "klaro",
    "COOKIEBOT": "cookiebot",
    "ONETRUST": "onetrust",
    "COOKIEYES": "cookieyes",
    "COMPLIANZ": "complianz",
    "TCF": "tcf",
}


def seed_repo(c):
    src = ROOT / "src"
    # Consent readers.
    for f in FORMATS:
        for lit in literals(src / "consent" / f"{f}.rs"):
            if len(lit) >= 2:
                c.add(f"consent_{f}", lit)
    for m in re.finditer(r'pub const (\w+): &str = "(.*?)";', (src / "consent" / "vectors.rs").read_text()):
        c.add(f"consent_{VECTOR_OF[m.group(1)]}", m.group(2))
    key = b"fuzz-key-0123456789abcdef0123456789"
    for cats in ([], ["analytics"], ["functional", "analytics", "advertising"]):
        for rev in (0, 3, 18446744073709551615):
            c.add("consent_consentry", consentry_value(cats, rev, 1718000000, key))
            c.add("consent_consentry", consentry_value(cats, rev, 1718000000, None))
    # Cookie headers used by the consent tests of mod.rs, for every reader.
    for lit in literals(src / "consent" / "mod.rs"):
        if "=" in lit and len(lit) > 3:
            for f in FORMATS:
                c.add(f"consent_{f}", lit)

    # Set-Cookie.
    all_set = []
    for p in [src / "set_cookie.rs", src / "response_headers.rs", src / "response_headers" / "scenarios.rs", src / "sweep.rs"]:
        for lit in literals(p):
            if "=" in lit or ";" in lit:
                for line in lit.split("\n"):
                    if line.strip():
                        c.add("set_cookie", line)
                        all_set.append(line)
    c.add("set_cookie", "\n".join(all_set[:64]))

    # Cookie.
    for p in [src / "cookie.rs", src / "request_filter.rs", src / "consent" / "mod.rs", src / "consent" / "complianz.rs"]:
        for lit in literals(p):
            if "=" in lit:
                c.add("cookie", lit)

    # Config.
    for p in sorted((ROOT / "config").glob("*.toml")) + sorted((ROOT / "config" / "examples").glob("*.toml")):
        c.add("config", p.read_bytes())
    doc = (ROOT / "docs" / "configuration.md")
    if doc.exists():
        for m in re.finditer(r"```toml\n(.*?)```", doc.read_text(), re.S):
            c.add("config", m.group(1))

    # HTML.
    for p in sorted((ROOT / "benches" / "data").glob("*.html")):
        data = p.read_bytes()[: 32 * 1024]
        c.add("html", data)
        c.add("html_codec", data[: 8 * 1024])
    html_sources = [src / "demo.rs", src / "html.rs", src / "banner.rs", ROOT / "tests" / "html_rewrite.rs", ROOT / "tests" / "html_body.rs", ROOT / "tests" / "html_integrity.rs"]
    for p in html_sources:
        for lit in literals(p, tests_only=False):
            if "<" in lit and ">" in lit and len(lit) > 8:
                c.add("html", lit)
                c.add("html_codec", lit)


def seed_testdata(c, testdata):
    tok = testdata / "html5lib-tokenizer"
    for p in sorted(tok.glob("*.test")) if tok.is_dir() else []:
        try:
            tests = json.loads(p.read_text()).get("tests", [])
        except ValueError:
            continue
        for t in tests:
            inp = t.get("input", "")
            if t.get("doubleEscaped"):
                continue
            try:
                data = inp.encode("utf-8")
            except UnicodeEncodeError:
                continue
            c.add("html", data)
            c.add("html_codec", data)
    bail = testdata / "lol-html" / "expected_bailouts.json"
    if bail.exists():
        try:
            items = json.loads(bail.read_text())
        except ValueError:
            items = []
        # A map from each input to why lol_html's strict mode gives up on it.
        for inp in items if isinstance(items, dict) else []:
            c.add("html", inp)
            c.add("html_codec", inp)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--extra", type=pathlib.Path, help="write ../shared/testdata inputs here (not committed)")
    args = ap.parse_args()
    c = Corpus(FUZZ / "corpus")
    seed_repo(c)
    for t, n in sorted(c.count.items()):
        print(f"corpus/{t}: {n} seeds written")
    if args.extra:
        testdata = ROOT.parent / "shared" / "testdata"
        if not testdata.is_dir():
            print(f"NOTICE: {testdata} is absent; no extra corpus", file=sys.stderr)
            return
        e = Corpus(args.extra)
        seed_testdata(e, testdata)
        for t, n in sorted(e.count.items()):
            print(f"{args.extra}/{t}: {n} extra inputs from ../shared/testdata")


if __name__ == "__main__":
    main()
