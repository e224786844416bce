"""Side-by-side benchmark: geodns against gdnsd, on loopback, in one run.

Both servers serve the same zone and the same three-way weighted record; both
run pinned to one core while dnsperf, pinned to the other, drives one at a time,
taking turns for ``--rounds`` rounds (the median of each is reported).  Results
are ratios of runs seconds apart on the same machine, which is what survives a
shared, noisy host whose speed drifts over minutes.  Nothing is installed here: missing tools are
named and the run stops.

    bench/run                      # everything (about 15 minutes with three rounds per workload)
    bench/run --rounds 1           # a quicker look, more exposed to the machine's drift
    bench/run --seconds 4 --only static,gslb-ecs
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# A loopback port free for TCP and UDP, outside the range client sockets take (both servers need both).
from geodns.tooling.stack.topology import free_port  # noqa: E402 - imported after sys.path points at this tree

GEO_DB = REPO / "config" / "geoip" / "GeoIP2-City-Test.mmdb"
ZONE = "bench.example"
CLUSTERS = {"us": "192.0.2.10", "eu": "198.51.100.10", "ap": "203.0.113.10"}
REGIONS = {
    "us": ("39.0", "-77.5", "NA", "[US, CA]"),
    "eu": ("53.3", "-6.3", "EU", "[GB, IE, SE]"),
    "ap": ("1.35", "103.8", "AS", "[SG, AU, CN]"),
}


WARM_UP = 2.0  # seconds of traffic before a scaling measurement: every name seen once


@dataclass
class Result:
    server: str
    workload: str
    qps: float
    avg_ms: float
    lost_pct: float
    p99_ms: float | None = None
    cpu_pct: float = 0.0


def taking_turns(servers: list, rounds: int, run: Callable[[Any], Result]) -> list[tuple[list[Result], Result]]:
    """``rounds`` runs of each server in turn: per server, its runs and the median one (by rate).
    The machine's speed drifts over minutes; taking turns gives every server the same drift."""
    runs: list[list[Result]] = [[] for _ in servers]
    for _ in range(rounds):
        for i, server in enumerate(servers):
            runs[i].append(run(server))
    return [(r, sorted(r, key=lambda x: x.qps)[len(r) // 2]) for r in runs]


def _per_cpu(r: Result) -> float:
    """Queries per CPU second of the server: what one core could answer if the client kept up."""
    return r.qps / max(r.cpu_pct / 100, 0.01)


def zone_text(static_records: int = 0, gdnsd: bool = False) -> str:
    lines = [
        "$TTL 300",
        "@ 60 IN SOA ns1 hostmaster ( 1 7200 900 1209600 60 )",
        "@ IN NS ns1",
        "@ IN NS ns2",
        "ns1 IN A 192.0.2.53",
        "ns2 IN A 198.51.100.53",
        "www IN A 192.0.2.80",
    ]
    lines += [f"h{i} IN A 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(static_records)]
    if gdnsd:
        lines.append("app 30 DYNA weighted!app")
    return "\n".join(lines) + "\n"


def geodns_config(work: Path, port: int, records: int = 1, policy: str = "[weighted]", static_records: int = 0) -> Path:
    zone = work / f"{ZONE}.zone"
    zone.write_text(f"$ORIGIN {ZONE}.\n" + zone_text(static_records))
    regions = "".join(
        f"  {r}: {{lat: {a}, lon: {b}, continent: {c}, countries: {d}}}\n" for r, (a, b, c, d) in REGIONS.items()
    )
    clusters = "".join(f'  {r}-1: {{region: {r}, endpoints: ["{ip}"], weight: 100}}\n' for r, ip in CLUSTERS.items())
    names = ["app"] + [f"app{i}" for i in range(1, records)]
    recs = "".join(f"  {n}.{ZONE}: {{ttl: 30, clusters: [us-1, eu-1, ap-1], policy: {policy}}}\n" for n in names)
    cfg = work / f"geodns-{records}-{static_records}.yaml"
    cfg.write_text(f"""server: {{dns_listen: ["127.0.0.1:{port}"], http_listen: null, workers: 1}}
store: "memory://"
checker: {{embedded: off}}
zones: ["{zone}"]
geoip: {{database: "{GEO_DB}"}}
regions:
{regions}clusters:
{clusters}records:
{recs}""")
    return cfg


def gdnsd_dir(work: Path, port: int) -> Path:
    d = work / "gdnsd"
    (d / "zones").mkdir(parents=True, exist_ok=True)
    (d / "zones" / ZONE).write_text(zone_text(gdnsd=True))
    members = "".join(f"      {r} = [ {ip}, 100 ]\n" for r, ip in CLUSTERS.items())
    (d / "config").write_text(f"""options => {{
  listen => [ 127.0.0.1:{port} ]
  udp_threads => 1
  tcp_threads => 1
}}
plugins => {{ weighted => {{ app => {{
{members}    }} }} }}
""")
    return d


def ecs_query(qid: int, name: str, subnet: int) -> bytes:
    """A query for name/A carrying ECS for the /24 whose network number is ``subnet``."""
    qname = b"".join(bytes((len(p),)) + p.encode() for p in name.split(".")) + b"\0"
    address = subnet.to_bytes(4, "big")[:3]
    option = struct.pack("!HHHBB", 8, 4 + 3, 1, 24, 0) + address
    opt = b"\0" + struct.pack("!HHIH", 41, 1232, 0, len(option)) + option
    return struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 1) + qname + struct.pack("!HH", 1, 1) + opt


def write_queries(work: Path, kind: str, count: int = 10_000, names: int = 1) -> tuple[Path, bool]:
    """A dnsperf input file; returns (path, binary)."""
    rng = random.Random(7)
    path = work / f"q-{kind}-{names}.txt"
    if kind == "static":
        path.write_text(f"www.{ZONE} A\n")
        return path, False
    if kind == "weighted":
        path.write_text(f"app.{ZONE} A\n")
        return path, False
    if kind == "scaling":
        path.write_text(
            "".join(
                f"{rng.choice(['app'] + [f'app{i}' for i in range(1, names)])}.{ZONE} A\n"
                for _ in range(min(count, 20_000))
            )
        )
        return path, False
    # gslb-ecs: 10,000 different /24s, some in the test database's networks
    known = [0xD60000, 0x5102450, 0xD8A053, 0xAF10C7, 0x59A014]  # 214.0.0, 81.2.69, 216.160.83, ...
    data = bytearray()
    for i in range(count):
        subnet = known[i % len(known)] if i % 10 == 0 else rng.randrange(1 << 24)
        message = ecs_query(i & 0xFFFF, f"app.{ZONE}", subnet)
        data += struct.pack("!H", len(message)) + message
    path.write_bytes(bytes(data))
    return path, True


class Server:
    def __init__(self, name: str, argv: list[str], port: int, core: str | None, env: dict | None = None):
        self.name, self.port = name, port
        prefix = ["taskset", "-c", core] if core is not None else []
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            prefix + argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
        self.ready_after = self._wait()

    def _wait(self, timeout: float = 120) -> float:
        probe = ecs_query(1, f"www.{ZONE}", 0)
        deadline = time.monotonic() + timeout
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited: {self.proc.stderr.read().decode()[-2000:]}")
                try:
                    s.sendto(probe, ("127.0.0.1", self.port))
                    s.recvfrom(4096)
                    return time.monotonic() - self.started
                except OSError:
                    time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer within {timeout}s")

    def pids(self) -> list[int]:
        """The server's process tree: taskset execs, so the root is the server; with ``workers`` its
        worker processes, and a compile child while one runs."""
        out, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            try:
                for task in os.listdir(f"/proc/{pid}/task"):
                    todo += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
            except OSError:
                pass
        return out

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server's process tree so far (workers, not only the supervisor)."""
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # ended in between
            total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def rss_mb(self, field: str = "Rss") -> float:
        """Resident memory of the whole process tree, in MB.  ``Rss`` counts a page shared by
        forked workers once per process; ``Pss`` splits it among them."""
        total = 0
        for pid in self.pids():
            try:
                text = Path(f"/proc/{pid}/smaps_rollup").read_text()
            except OSError:
                continue
            total += next((int(line.split()[1]) for line in text.splitlines() if line.startswith(field + ":")), 0)
        return total / 1024

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def dnsperf(
    port: int,
    queries: Path,
    binary: bool,
    seconds: float,
    core: str | None,
    max_qps: float | None = None,
    once: bool = False,
) -> tuple[float, float, float, float | None]:
    """(q/s, average ms, loss %, p99 ms with ``max_qps``); ``once``: through the file once instead of for ``seconds``."""
    argv = [
        "dnsperf",
        "-s",
        "127.0.0.1",
        "-p",
        str(port),
        "-d",
        str(queries),
        *(["-n", "1"] if once else ["-l", str(seconds)]),
        "-c",
        "8",
        "-q",
        "256",
        "-t",
        "2",
    ]
    if binary:
        argv.append("-B")
    if max_qps:
        argv += ["-Q", str(int(max_qps)), "-v"]
    if core is not None:
        argv = ["taskset", "-c", core] + argv
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 600).stdout
    qps = float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))
    avg = float(re.search(r"Average Latency \(s\):\s+([\d.]+)", out).group(1)) * 1000
    lost = float(re.search(r"Queries lost:\s+\d+ \(([\d.]+)%\)", out).group(1))
    p99 = None
    if max_qps:
        samples = sorted(float(m) for m in re.findall(r"^> \S+ .* ([\d.]+)$", out, re.M))
        if samples:
            p99 = samples[int(len(samples) * 0.99) - 1] * 1000
    return qps, avg, lost, p99


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=8.0, help="length of each dnsperf run (default 8)")
    ap.add_argument(
        "--only", default="static,weighted,gslb-ecs,geo,scaling,memory", help="comma-separated parts to run"
    )
    ap.add_argument(
        "--rounds", type=int, default=3, help="side-by-side runs per server, taking turns; the median is reported"
    )
    args = ap.parse_args()
    missing = [t for t in ("dnsperf", "gdnsd", "taskset") if shutil.which(t) is None]
    if missing:
        print(
            f"bench: missing {', '.join(missing)}; install with: apt-get install dnsperf gdnsd util-linux",
            file=sys.stderr,
        )
        return 2
    cores = os.cpu_count() or 1
    server_core, client_core = ("0", "1") if cores >= 2 else (None, None)
    parts = set(args.only.split(","))
    geodns = (
        [str(REPO / ".venv" / "bin" / "geodns")]
        if (REPO / ".venv" / "bin" / "geodns").exists()
        else [sys.executable, "-m", "geodns"]
    )
    results: list[Result] = []
    print(
        f"machine: {cores} cores, {os.uname().machine}, Python {sys.version.split()[0]}; "
        f"server on core {server_core}, dnsperf on core {client_core}; {args.seconds:.0f} s runs"
    )
    with tempfile.TemporaryDirectory(prefix="geodns-bench-") as tmp:
        work = Path(tmp)

        def measure(servers: list[tuple[Server, str]], queries: Path, binary: bool) -> list[Result]:
            """Full-load rounds of the servers in turn (``taking_turns``), then one run of each at
            half its median rate for loss and p99."""

            def full_load(entry: tuple[Server, str]) -> Result:
                server, workload = entry
                cpu = server.cpu_seconds()
                qps, avg, lost, _ = dnsperf(server.port, queries, binary, args.seconds, client_core)
                return Result(
                    server.name, workload, qps, avg, lost, None, 100 * (server.cpu_seconds() - cpu) / args.seconds
                )

            out = []
            for (server, _), (runs, r) in zip(servers, taking_turns(servers, args.rounds, full_load)):
                _, _, half_lost, p99 = dnsperf(
                    server.port, queries, binary, min(args.seconds, 4), client_core, max_qps=r.qps / 2
                )
                spread = ", ".join(f"{run.qps:,.0f}" for run in runs)
                print(
                    f"  {r.server:7} {r.workload:24} {r.qps:>10,.0f} q/s  server cpu {r.cpu_pct:3.0f}%  "
                    f"avg {r.avg_ms:.3f} ms  at 50%: loss {half_lost:.2f}% p99 {p99 or 0:.3f} ms  "
                    f"(full-load loss {r.lost_pct:.2f}%; rounds {spread})"
                )
                out.append(replace(r, lost_pct=half_lost, p99_ms=p99))
            return out

        for kind in ("static", "weighted", "gslb-ecs"):
            if kind not in parts:
                continue
            queries, binary = write_queries(work, kind)
            gd_port, ge_port = free_port(), free_port()
            policy = "[healthy, geo, weighted]" if kind == "gslb-ecs" else "[weighted]"
            cfg = geodns_config(work, ge_port, policy=policy)
            gd = Server("gdnsd", ["gdnsd", "-c", str(gdnsd_dir(work, gd_port)), "start"], gd_port, server_core)
            try:
                ge = Server(
                    "geodns", geodns + ["--log-level", "warning", "serve", "--config", str(cfg)], ge_port, server_core
                )
                try:
                    dnsperf(ge.port, queries, binary, 1, client_core)  # warm: the memo and templates fill
                    gd_r, ge_r = measure(
                        [
                            (gd, kind if kind != "gslb-ecs" else "weighted (ECS ignored)"),
                            (ge, kind if kind != "gslb-ecs" else "geo+weighted, MaxMind test DB"),
                        ],
                        queries,
                        binary,
                    )
                finally:
                    ge.stop()
            finally:
                gd.stop()
            results += [gd_r, ge_r]
            print(
                f"  ratio geodns/gdnsd ({kind}): {ge_r.qps / gd_r.qps:.2f}; per CPU second: "
                f"{_per_cpu(ge_r) / _per_cpu(gd_r):.2f}"
            )

        if "geo" in parts:
            import geo_city  # bench/geo_city.py: the City database workloads of issue 15

            geo_city.run(work, args.seconds, server_core, client_core, geodns, args.rounds)

        if "scaling" in parts:
            print(
                f"scaling: GSLB records served by one geodns ([weighted]); each measured after a "
                f"{WARM_UP:.0f} s warm-up run, as a long-running server would be"
            )
            base = None
            for n in (10, 100, 1000, 10000):
                port = free_port()
                cfg = geodns_config(work, port, records=n)
                ge = Server(
                    "geodns", geodns + ["--log-level", "warning", "serve", "--config", str(cfg)], port, server_core
                )
                try:
                    queries, _ = write_queries(work, "scaling", names=n)
                    dnsperf(port, queries, False, WARM_UP, client_core)
                    qps, avg, lost, _ = dnsperf(port, queries, False, args.seconds, client_core)
                    base = base or qps
                    print(
                        f"  {n:>6} records  {qps:>10,.0f} q/s  ({qps / base:.2f} of 10)  start {ge.ready_after:.1f} s"
                        f"  rss {ge.rss_mb():.0f} MB  loss {lost:.2f}%"
                    )
                finally:
                    ge.stop()

        if "memory" in parts:
            port = free_port()
            cfg = geodns_config(work, port, records=10_000, static_records=100_000)
            ge = Server("geodns", geodns + ["--log-level", "warning", "serve", "--config", str(cfg)], port, None)
            try:
                print(
                    f"memory: 100,000 static + 10,000 GSLB records: answering after {ge.ready_after:.1f} s, "
                    f"rss {ge.rss_mb():.0f} MB"
                )
            finally:
                ge.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
