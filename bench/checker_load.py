"""How many endpoints one checker keeps on schedule on one core.

N endpoints (answer data in 192.0.2.0/24 style documentation space, never
dialled) are all probed at one local `geodns sim-ingress`, at a given interval,
for a fixed time.  Printed: probes done against probes scheduled, the checker's
CPU use, and the worst lateness of a probe against its slot.

    .venv/bin/python bench/checker_load.py                  # 1000, 2000, 5000 endpoints at 1, 2, 5 s
    .venv/bin/python bench/checker_load.py --endpoints 5000 --interval 1 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import resource
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from geodns.config.model import CheckSpec, ClusterSpec, EndpointSpec  # noqa: E402 - imported after sys.path points at this tree
from geodns.health.checker import Checker  # noqa: E402 - imported after sys.path points at this tree
from geodns.state.keeper import SnapshotKeeper  # noqa: E402 - imported after sys.path points at this tree
from geodns.state.memory import MemoryStore  # noqa: E402 - imported after sys.path points at this tree
from geodns.state.model import Snapshot  # noqa: E402 - imported after sys.path points at this tree
from geodns.tooling.stack.topology import free_port  # noqa: E402 - imported after sys.path points at this tree


def clusters(count: int, port: int, interval: float) -> list[ClusterSpec]:
    spec = CheckSpec(type="http", interval=interval, timeout=min(1.0, interval * 0.8), rise=2, fall=2)
    per = 50
    out = []
    for c in range(0, count, per):
        endpoints = tuple(
            EndpointSpec(ipaddress.ip_address(int(ipaddress.ip_address("198.18.0.0")) + i), probe=f"127.0.0.1:{port}")
            for i in range(c, min(c + per, count))
        )
        out.append(ClusterSpec(f"c{c // per}", "r", endpoints, check=spec))
    return out


async def run(count: int, interval: float, seconds: float, port: int) -> str:
    store = MemoryStore()
    specs = clusters(count, port, interval)
    await store.seed(specs)
    keeper = SnapshotKeeper(store, Snapshot.from_specs(specs))
    await keeper.start()
    checker = Checker(store, "bench", "r", table_source=keeper, max_concurrency=256)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    await checker.start()
    await asyncio.sleep(seconds)
    status = checker.status()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    await checker.stop()
    await keeper.stop()
    probes = sum(s.probes for s in status.values())
    scheduled = count * seconds / interval
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    up = sum(1 for s in status.values() if s.state == "up")
    return (
        f"{count:>6} endpoints every {interval:g} s: {probes:>7} probes of ~{scheduled:,.0f} scheduled "
        f"({probes / scheduled:.0%}), {probes / seconds:,.0f} probes/s, checker CPU {cpu / seconds:.0%} of a core, "
        f"{up} up"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoints", type=int, nargs="*", default=[1000, 2000, 5000])
    ap.add_argument("--interval", type=float, nargs="*", default=[1.0, 2.0, 5.0])
    ap.add_argument("--seconds", type=float, default=12.0)
    args = ap.parse_args()
    port = free_port()
    sim = subprocess.Popen(
        [sys.executable, "-m", "geodns", "sim-ingress", "--listen", f"127.0.0.1:{port}", "--name", "bench"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_sim", timeout=1).read()
                break
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError("sim-ingress did not start") from exc
                time.sleep(0.1)
        try:
            import uvloop

            runner = uvloop.run
        except ImportError:
            runner = asyncio.run
        for count in args.endpoints:
            for interval in args.interval:
                print(runner(run(count, interval, args.seconds, port)), flush=True)
    finally:
        sim.terminate()
        sim.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
