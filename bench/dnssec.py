"""DNSSEC cost: signed against unsigned answers from one geodns, on loopback, in one run.

For each workload geodns is measured three times in a row, pinned to one core with
dnsperf on the other: unsigned (queries without DO), then signed with an ECDSA P-256
key, then with an Ed25519 key (queries with DO, ``dnsperf -D``).  Warm workloads repeat
a few questions, so every signature comes from the cache (the fast path serves the
encoded signed answer); first-sight workloads ask each question once (``dnsperf -n 1``),
so every signed answer costs a signature.  Target: warm signed >= 0.8x unsigned.

    bench/dnssec.py                      # everything, best of 2 rounds (about 4 minutes)
    bench/dnssec.py --seconds 4 --only static,weighted
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench  # bench/bench.py: the zone, the config, the server and dnsperf runners

REPO = bench.REPO
sys.path.insert(0, str(REPO))

from geodns.dnssec import keys  # noqa: E402 - after the repository is on the path

ZONE = bench.ZONE
FIRST_SIGHT = 20_000  # distinct questions in a first-sight run


def query(qid: int, name: str, do: bool, subnet: int | None = None) -> bytes:
    """A binary dnsperf query for name/A, with DO as asked and ECS for a /24 when ``subnet`` is given."""
    qname = b"".join(bytes((len(p),)) + p.encode() for p in name.split(".")) + b"\0"
    option = b""
    if subnet is not None:
        option = struct.pack("!HHHBB", 8, 4 + 3, 1, 24, 0) + subnet.to_bytes(4, "big")[:3]
    opt = b"\0" + struct.pack("!HHIH", 41, 1232, 0x8000 if do else 0, len(option)) + option
    return struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 1) + qname + struct.pack("!HH", 1, 1) + opt


def queries(work: Path, kind: str, do: bool) -> Path:
    rng = random.Random(11)
    messages: list[bytes] = []
    if kind == "static":
        messages = [query(1, f"www.{ZONE}", do)]
    elif kind == "weighted":
        messages = [query(1, f"app.{ZONE}", do)]
    elif kind == "gslb-ecs":
        messages = [query(i & 0xFFFF, f"app.{ZONE}", do, rng.randrange(1 << 24)) for i in range(10_000)]
    elif kind == "first-nxdomain":
        messages = [query(i & 0xFFFF, f"n{i}-{rng.randrange(1 << 30)}.{ZONE}", do) for i in range(FIRST_SIGHT)]
    elif kind == "first-gslb":
        # 1,000 GSLB records x 3 answer sets: mostly answer sets never signed before
        messages = [query(i & 0xFFFF, f"app{i % 1000}.{ZONE}", do) for i in range(FIRST_SIGHT)]
    path = work / f"q-{kind}-{int(do)}.bin"
    path.write_bytes(b"".join(struct.pack("!H", len(m)) + m for m in messages))
    return path


def config(work: Path, port: int, key: keys.SigningKey | None) -> Path:
    cfg = bench.geodns_config(work, port, records=1000)
    text = cfg.read_text()
    if key is not None:
        keys.write(key, work)
        text += f'dnssec:\n  zones:\n    {ZONE}: {{keys: ["{work / key.basename}.private"]}}\n'
    path = work / f"geodns-{key.basename if key else 'unsigned'}.yaml"
    path.write_text(text)
    return path


def run_once(port: int, path: Path, core: str | None) -> float:
    """q/s of one pass over ``path`` (every question asked once)."""
    argv = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(path), "-B", "-n", "1", "-c", "8", "-q", "256"]
    if core is not None:
        argv = ["taskset", "-c", core] + argv
    start = time.monotonic()
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600).stdout
    match = re.search(r"Queries per second:\s+([\d.]+)", out)
    return float(match.group(1)) if match else FIRST_SIGHT / (time.monotonic() - start)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=6.0, help="length of each warm dnsperf run (default 6)")
    ap.add_argument("--only", default="static,weighted,gslb-ecs,first-nxdomain,first-gslb")
    ap.add_argument("--repeat", type=int, default=2, help="rounds, variants alternating; the best of each is kept")
    args = ap.parse_args()
    missing = [t for t in ("dnsperf", "taskset") if shutil.which(t) is None]
    if missing:
        print(f"bench: missing {', '.join(missing)}; install with: apt-get install dnsperf util-linux", file=sys.stderr)
        return 2
    cores = os.cpu_count() or 1
    server_core, client_core = ("0", "1") if cores >= 2 else (None, None)
    geodns = (
        [str(REPO / ".venv" / "bin" / "geodns")]
        if (REPO / ".venv" / "bin" / "geodns").exists()
        else [sys.executable, "-m", "geodns"]
    )
    print(
        f"machine: {cores} cores, Python {sys.version.split()[0]}; server on core {server_core}, "
        f"dnsperf on core {client_core}; warm runs {args.seconds:.0f} s, first-sight runs {FIRST_SIGHT:,} questions"
    )
    with tempfile.TemporaryDirectory(prefix="geodns-bench-dnssec-") as tmp:
        work = Path(tmp)
        variants: list[tuple[str, keys.SigningKey | None]] = [
            ("unsigned", None),
            ("ecdsa-p256", keys.generate(ZONE, "ecdsap256sha256")),
            ("ed25519", keys.generate(ZONE, "ed25519")),
        ]
        for kind in args.only.split(","):
            best: dict[str, tuple[float, str]] = {}
            for _round, (label, key) in [(r, v) for r in range(args.repeat) for v in variants]:
                port = bench.free_port()
                server = bench.Server(
                    "geodns",
                    geodns + ["--log-level", "warning", "serve", "--config", str(config(work, port, key))],
                    port,
                    server_core,
                )
                try:
                    path = queries(work, kind, do=key is not None)
                    if kind.startswith("first"):
                        qps = run_once(port, path, client_core)
                        note = ""
                    else:
                        bench.dnsperf(port, path, True, 1.0, client_core)  # warm: every answer seen once
                        qps, avg, lost, _ = bench.dnsperf(port, path, True, args.seconds, client_core)
                        note = f"  avg {avg:.3f} ms  loss {lost:.2f}%"
                finally:
                    server.stop()
                if qps > best.get(label, (0.0, ""))[0]:
                    best[label] = (qps, note)
            base = best["unsigned"][0]
            for label, (qps, note) in best.items():
                print(f"  {kind:15} {label:11} {qps:>10,.0f} q/s  ({qps / base:.2f}x unsigned){note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
