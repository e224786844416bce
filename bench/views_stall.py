"""How long DNS answers wait while the status page and ``/api/v1/traffic`` are computed, before and after, in one run.

    .venv/bin/python bench/views_stall.py                      # 5,000 GSLB records, policy healthy/latency/weighted
    .venv/bin/python bench/views_stall.py --gslb 1000 --cycles 2 --before main

With ``workers: 1`` the process that answers DNS also computes where traffic
goes (``geodns/http/traffic.py``), in a thread.  The thread yields the
interpreter between records, but a garbage collection that runs in it holds
the interpreter for its whole length, and a collection's length grows with
every container the process keeps alive.  This starts a real ``geodns serve
--workers 1`` for each code version (``--before REV``, extracted with ``git
archive``, and this worktree's), and for each: a DNS client in a process of
its own asks one query every ``--interval`` and times each answer, first with
nothing else going on (idle), then while this process drains and undrains a
cluster ``--cycles`` times, each time fetching ``/api/v1/traffic`` and ``/``
(a new state generation each time, so each is a new computation).  It prints
per-query latency p50/p99/max and the answered and lost counts side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import REPO, ZONE, free_port, geodns_config

BEFORE = "f9e9254"  # main before the views' result was kept out of the collector's sight


def query_wire(name: str) -> bytes:
    qname = b"".join(bytes((len(p),)) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    return struct.pack("!HHHHHH", 0, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", 1, 1)


def client(port: int, name: str, interval: float) -> int:
    """The DNS client process: one query per ``interval`` until stdin closes; latencies (ms) as JSON on stdout."""
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    wire = bytearray(query_wire(name))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", port))
    sock.settimeout(2.0)
    latencies, lost, qid = [], 0, 0
    next_at = time.monotonic()
    while not stop.is_set():
        qid = (qid + 1) & 0xFFFF
        wire[0:2] = qid.to_bytes(2, "big")
        t = time.monotonic()
        sock.send(wire)
        try:
            while True:
                reply = sock.recv(4096)
                if reply[:2] == wire[:2]:
                    break
            latencies.append((time.monotonic() - t) * 1000)
        except TimeoutError:
            lost += 1
        next_at = max(next_at + interval, time.monotonic())
        time.sleep(max(0.0, next_at - time.monotonic()))
    json.dump({"latencies": latencies, "lost": lost}, sys.stdout)
    return 0


class Server:
    def __init__(self, src: Path, config: Path, dns_port: int, http_port: int):
        self.dns_port, self.http = dns_port, f"http://127.0.0.1:{http_port}"
        env = {**os.environ, "PYTHONPATH": str(src)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "geodns", "serve", "--config", str(config), "--workers", "1"],
            cwd=src,
            env=env,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 600
        while True:
            try:
                self.get("/healthz")
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"geodns serve from {src} did not start") from None
                time.sleep(0.2)

    def get(self, path: str, method: str = "GET") -> bytes:
        req = urllib.request.Request(self.http + path, method=method, data=b"" if method == "POST" else None)
        with urllib.request.urlopen(req, timeout=600) as resp:
            return resp.read()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def measure(server: Server, interval: float, work) -> dict:
    """Latencies of the DNS client's answers while ``work()`` runs."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--client", str(server.dns_port), f"app.{ZONE}.", str(interval)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    t = time.monotonic()
    extra = work()
    seconds = time.monotonic() - t
    out, _ = proc.communicate("")
    data = json.loads(out)
    lat = sorted(data["latencies"])

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")

    return {
        "seconds": seconds,
        "answered": len(lat),
        "lost": data["lost"],
        "p50": pct(0.5),
        "p99": pct(0.99),
        "max": lat[-1] if lat else float("nan"),
        "over_50": sum(x > 50 for x in lat),
        **(extra or {}),
    }


def run(src: Path, config: Path, dns_port: int, http_port: int, cycles: int, interval: float, idle: float) -> dict:
    server = Server(src, config, dns_port, http_port)
    try:
        out = {"idle": measure(server, interval, lambda: time.sleep(idle))}

        def load() -> dict:
            fetches: list[float] = []
            sizes: dict[str, int] = {}
            for i in range(cycles):
                server.get(f"/api/v1/clusters/us-1/{'drain' if i % 2 == 0 else 'undrain'}", "POST")
                for path in ("/api/v1/traffic", "/"):
                    t = time.monotonic()
                    sizes[path] = len(server.get(path))
                    fetches.append(time.monotonic() - t)
            if cycles % 2:
                server.get("/api/v1/clusters/us-1/undrain", "POST")
            return {"fetch_s": max(fetches), "api_mb": sizes["/api/v1/traffic"] / 1e6, "page_mb": sizes["/"] / 1e6}

        out["views"] = measure(server, interval, load)
        return out
    finally:
        server.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gslb", type=int, default=5_000, help="GSLB records")
    ap.add_argument("--policy", default="[healthy, latency, weighted]")
    ap.add_argument("--cycles", type=int, default=3, help="state changes, each followed by /api/v1/traffic and /")
    ap.add_argument("--interval", type=float, default=0.005, help="seconds between DNS queries")
    ap.add_argument("--idle", type=float, default=5.0, help="seconds measured with no views computed")
    ap.add_argument("--before", default=BEFORE, help="git revision of the code to compare with (default %(default)s)")
    ap.add_argument("--client", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client:
        return client(int(args.client[0]), args.client[1], float(args.client[2]))
    with tempfile.TemporaryDirectory(prefix="geodns-views-stall-") as tmp:
        work = Path(tmp)
        before = work / "before"
        before.mkdir()
        archive = subprocess.run(["git", "-C", str(REPO), "archive", args.before, "geodns"], capture_output=True)
        if archive.returncode:
            raise SystemExit(archive.stderr.decode())
        subprocess.run(["tar", "-x", "-C", str(before)], input=archive.stdout, check=True)
        dns_port, http_port = free_port(), free_port()
        config = geodns_config(work, dns_port, records=args.gslb, policy=args.policy)
        text = config.read_text().replace("http_listen: null", f'http_listen: "127.0.0.1:{http_port}"')
        config.write_text(text)
        results = {}
        for label, src in ((f"before ({args.before})", before), ("after (this tree)", REPO)):
            results[label] = run(src, config, dns_port, http_port, args.cycles, args.interval, args.idle)
    print(f"{args.gslb} GSLB records, policy {args.policy}, workers: 1; one query every {args.interval * 1000:g} ms")
    print(
        f"{'code':<20} {'phase':<6} {'seconds':>7} {'answered':>8} {'lost':>4} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'max ms':>7} {'>50ms':>5}  slowest fetch, sizes"
    )
    for label, phases in results.items():
        for phase, r in phases.items():
            extra = (
                f"  {r['fetch_s']:.1f} s; API {r['api_mb']:.0f} MB, page {r['page_mb']:.0f} MB"
                if "fetch_s" in r
                else ""
            )
            print(
                f"{label:<20} {phase:<6} {r['seconds']:>7.1f} {r['answered']:>8} {r['lost']:>4} {r['p50']:>7.2f} "
                f"{r['p99']:>7.2f} {r['max']:>7.1f} {r['over_50']:>5}{extra}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
