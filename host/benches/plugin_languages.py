#!/usr/bin/env python3
"""Plugins per language: component size, first compile, cached load,
per-call time and memory floor, measured side by side in one run.

For every plugin of the spec (host/benches/plugin_languages.json: the
examples' components as the test suite builds them under target/tmp):

- size: the component file;
- first compile: `tend plugins install` into an empty compile cache, COMPILES
  times; the compile time tend reports, the wall time of the whole command
  and its peak RSS (from wait4);
- cached load: `tend plugins inspect` with `TEND_LOG=tend::runtime=info`;
  the load time tend logs ("loaded ... from the compile cache in 3.1ms");
- cached call: the wall time of a whole `tend plugins call` process;
- per call: `duration_ms` of `tend plugins call --record` (instantiation
  and the guest's run, not process start or the load);
- memory floor: `peak_memory_bytes` of that call, a small input.

A plugin with "receiver": PORT in the spec posts somewhere: the script
answers its requests on 127.0.0.1:PORT with 200 while it runs.

The cached measurements run in RUNS rounds, each round going through every
plugin once, so a noisy moment of a shared machine hits all languages
alike; medians are printed as a Markdown table.

Usage: host/benches/plugin_languages.py [TEND] [RUNS] [COMPILES]
  e.g. host/benches/plugin_languages.py target/release/tend 10 3
Build the examples first: cargo nextest run --test rust_plugin
--test python_plugin --test python_anomaly --test js_plugin --test js_chat
--test c_plugin. Touches only temporary directories (and listens on the
receivers' loopback ports).
"""

import glob
import http.server
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPEC = os.path.join(ROOT, "host", "benches", "plugin_languages.json")


def run(cmd, env):
    """Runs cmd; returns (exit code, stdout, stderr, wall seconds, peak RSS bytes)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return proc.returncode, out.read().decode(), err.read().decode(), wall, usage.ru_maxrss * 1024


def seconds(text):
    """A Rust Duration's Debug text ("7.1s", "180.0ms", "12.3µs") in seconds."""
    m = re.fullmatch(r"([0-9.]+)(s|ms|µs|us|ns)", text)
    if not m:
        raise ValueError(f"not a duration: {text!r}")
    scale = {"s": 1, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "ns": 1e-9}[m.group(2)]
    return float(m.group(1)) * scale


class Receiver(http.server.BaseHTTPRequestHandler):
    """Answers every POST 200, as a chat webhook does."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def mib(n):
    return f"{n / (1 << 20):.1f} MiB"


def ms(s):
    return f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"


def main():
    tend = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/release/tend"))
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    compiles = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    with open(SPEC) as f:
        spec = json.load(f)
    plugins = []
    for p in spec:
        found = sorted(glob.glob(os.path.join(ROOT, p["wasm_glob"])), key=os.path.getmtime)
        if not found:
            sys.exit(f"{p['language']}: no component matches {p['wasm_glob']}; run `{p['build']}` first")
        plugins.append(dict(p, wasm=found[-1]))

    for p in plugins:
        if "receiver" in p:
            server = http.server.ThreadingHTTPServer(("127.0.0.1", p["receiver"]), Receiver)
            threading.Thread(target=server.serve_forever, daemon=True).start()
    work = tempfile.mkdtemp(prefix="tend-bench-languages-")
    env = dict(os.environ)
    env.pop("TEND_LOG", None)
    results = {p["name"]: {"size": os.path.getsize(p["wasm"])} for p in plugins}

    # First compile: an empty cache each time.
    for i in range(compiles):
        for p in plugins:
            e = dict(env, TEND_CACHE_DIR=os.path.join(work, f"cold-{i}-{p['name']}"),
                     TEND_PLUGINS=os.path.join(work, f"plugins-{i}-{p['name']}"))
            code, out, err, wall, rss = run([tend, "plugins", "install", p["wasm"]], e)
            if code != 0:
                sys.exit(f"{p['name']}: install failed: {err}")
            m = re.search(r"; compiled in (\S+)$", out.strip())
            if not m:
                sys.exit(f"{p['name']}: install did not compile: {out}")
            r = results[p["name"]]
            r.setdefault("compile", []).append(seconds(m.group(1)))
            r.setdefault("install_wall", []).append(wall)
            r.setdefault("install_rss", []).append(rss)

    # One warm cache and plugins directory for the rest.
    warm = dict(env, TEND_CACHE_DIR=os.path.join(work, "warm"), TEND_PLUGINS=os.path.join(work, "plugins"))
    for p in plugins:
        code, out, err, _, _ = run([tend, "plugins", "install", p["wasm"]], warm)
        if code != 0:
            sys.exit(f"{p['name']}: install failed: {err}")
    logged = dict(warm, TEND_LOG="warn,tend::runtime=info")
    for _ in range(runs):
        for p in plugins:
            r = results[p["name"]]
            code, _, err, _, _ = run([tend, "plugins", "inspect", p["name"]], logged)
            m = re.search(r"from the compile cache in (\S+)", err)
            if code != 0 or not m:
                sys.exit(f"{p['name']}: inspect did not load from the cache: {err}")
            r.setdefault("load", []).append(seconds(m.group(1)))
            call = [tend, "plugins", "call", p["name"], "--config", json.dumps(p["config"]),
                    "--input", json.dumps(p["input"])] + p.get("flags", [])
            code, _, err, wall, _ = run(call, warm)
            if code != 0:
                sys.exit(f"{p['name']}: call failed: {err}")
            r.setdefault("call_wall", []).append(wall)
            code, out, err, _, _ = run(call + ["--record"], warm)
            record = json.loads(out)
            if record["outcome"] != {"status": "ok"}:
                sys.exit(f"{p['name']}: call failed: {record['outcome']}")
            r.setdefault("call", []).append(record["duration_ms"] / 1000)
            r.setdefault("peak", []).append(record["peak_memory_bytes"])

    med = statistics.median
    print(f"tend: {tend}; {runs} rounds of cached measurements, {compiles} cold compiles per plugin; medians\n")
    print("| language | plugin | component | first compile | install wall / peak RSS | cached load "
          "| cached `plugins call` process | per call | memory floor |")
    print("|---|---|---|---|---|---|---|---|---|")
    for p in plugins:
        r = results[p["name"]]
        print(f"| {p['language']} | {p['name']} | {mib(r['size'])} | {ms(med(r['compile']))} "
              f"| {ms(med(r['install_wall']))} / {mib(med(r['install_rss']))} | {ms(med(r['load']))} "
              f"| {ms(med(r['call_wall']))} | {ms(med(r['call']))} | {mib(med(r['peak']))} |")
    print("\nall samples:")
    print(json.dumps({k: {m: v for m, v in r.items()} for k, r in results.items()}, indent=1))
    subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
