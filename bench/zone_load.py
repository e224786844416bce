"""What reading a big zone costs: parse CPU time and time to first answer.

Measures this tree and, with ``--old``, another geodns tree side by side (for
instance the hand-written parser of commit 3664dc0, checked out elsewhere:
``git archive 3664dc0 | tar -x -C /tmp/geodns-old``).  Each run is a fresh
process; runs alternate between the trees and the best of ``--runs`` is shown,
which is what survives a shared host.

    .venv/bin/python bench/zone_load.py                       # this tree only
    .venv/bin/python bench/zone_load.py --old /tmp/geodns-old --runs 3

- parse: CPU seconds of ``parse_zone`` on a zone of N static A records (the
  bench zone), in a process that has imported geodns already;
- start: ``geodns serve`` with N static + M GSLB records (bench/bench.py's
  memory part), seconds from start until it answers a query, and its RSS then.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import ZONE, Server, free_port, geodns_config, zone_text

REPO = Path(__file__).resolve().parent.parent

_PARSE = """
import sys, time
sys.path.insert(0, sys.argv[1])
try:
    from geodns.zones.reader import parse_zone
except ImportError:  # the hand-written parser, before dnspython read zones
    from geodns.zones.parser import parse_zone
text = open(sys.argv[2]).read()
start = time.process_time()
zone = parse_zone(text, sys.argv[2])
print(time.process_time() - start)
"""

_SERVE = "import sys; sys.path.insert(0, sys.argv.pop(1)); from geodns.cli import main; sys.exit(main())"


def parse_seconds(tree: Path, zone: Path) -> float:
    run = subprocess.run(
        [sys.executable, "-c", _PARSE, str(tree), str(zone)], check=True, capture_output=True, text=True
    )
    return float(run.stdout)


def start_seconds(tree: Path, work: Path, static: int, gslb: int) -> tuple[float, float]:
    """Seconds until the first answer, and the server's RSS in MB then."""
    port = free_port()
    cfg = geodns_config(work, port, records=gslb, static_records=static)
    argv = [sys.executable, "-c", _SERVE, str(tree), "--log-level", "warning", "serve", "--config", str(cfg)]
    server = Server("geodns", argv, port, None)
    rss = server.rss_mb()
    server.stop()
    return server.ready_after, rss


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", type=Path, help="another geodns tree to measure side by side")
    ap.add_argument("--records", type=int, default=100_000, help="static records (default 100,000)")
    ap.add_argument("--gslb", type=int, default=10_000, help="GSLB records for the start-up run (default 10,000)")
    ap.add_argument("--runs", type=int, default=3, help="runs of each measurement; the best counts (default 3)")
    ap.add_argument("--only", default="parse,start", help="comma-separated parts to run")
    args = ap.parse_args()
    trees = [("this tree", REPO)] + ([("old", args.old.resolve())] if args.old else [])
    parts = set(args.only.split(","))
    with tempfile.TemporaryDirectory(prefix="geodns-zone-load-") as tmp:
        work = Path(tmp)
        zone = work / "static.zone"
        zone.write_text(f"$ORIGIN {ZONE}.\n" + zone_text(args.records))
        # Runs alternate between the trees, so that a busy moment on a shared host hits both.
        results: dict[str, dict[str, float]] = {label: {} for label, _ in trees}
        for _ in range(args.runs):
            for label, tree in trees:
                if "parse" in parts:
                    seconds = parse_seconds(tree, zone)
                    results[label]["parse"] = min(seconds, results[label].get("parse", seconds))
                if "start" in parts:
                    seconds, rss = start_seconds(tree, work, args.records, args.gslb)
                    results[label]["start"] = min(seconds, results[label].get("start", seconds))
                    results[label]["rss"] = rss
        for label, tree in trees:
            shown = ", ".join(
                {"parse": f"parse {v:.2f} s CPU", "start": f"answering after {v:.2f} s", "rss": f"rss {v:.0f} MB"}[k]
                for k, v in results[label].items()
            )
            print(f"{label:9} ({tree}): {args.records:,} static records: {shown}")
        if args.old:
            ratios = ", ".join(
                f"{k} {results['this tree'][k] / v:.2f}x" for k, v in results["old"].items() if k != "rss"
            )
            print(f"this tree / old: {ratios}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
