"""Per-query cost of the answer engine, one tree against another, in one run.

Builds an ``AnswerEngine`` from the shipped config (config/geodns.yaml and its zone) in each
tree and answers the same fixed list of query messages with it, counting CPU instructions
with ``valgrind --tool=callgrind`` (deterministic: a shared, noisy host does not move them).
Each tree runs twice over one list of ``2 * --queries`` messages: answering the first half,
and answering both; the difference is the cost of the second half alone, with the caches as
the first half left them (start-up, imports and the engine's build cancel out).  Also
prints interleaved wall-clock times (runs of the two trees alternate), for what they are
worth on a busy machine.

    .venv/bin/python bench/engine_ab.py --old /work/main          # this tree against main's
    .venv/bin/python bench/engine_ab.py --old /work/main --no-callgrind --rounds 7

The queries (a fixed mix, the same bytes for both trees; ``--mix`` picks one kind):
static (A/AAAA/MX of zone names, some with EDNS), gslb (the weighted GSLB record from a few
resolvers), ecs (the GSLB record with Client Subnet from 10,000 /24s), case (0x20 names:
random case per query), full (shapes only the full path answers: ANY, an unknown EDNS
option, a DO query for a name that does not exist, two OPTs).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KINDS = ("static", "gslb", "ecs", "case", "full")


def queries(kind: str, n: int, seed: int = 7) -> list[tuple[bytes, str]]:
    """``n`` (message, resolver address) pairs of one kind, the same for every tree."""
    import dns.edns
    import dns.message
    import dns.rdatatype

    rng = random.Random(seed)
    out: list[tuple[bytes, str]] = []
    resolvers = [f"127.0.{i}.1" for i in range(1, 9)]
    for i in range(n):
        source = resolvers[i % len(resolvers)]
        if kind == "static":
            name, rtype = rng.choice(
                [("www", "A"), ("www", "AAAA"), ("@", "MX"), ("docs", "A"), ("x.apps", "A"), ("ns1", "AAAA")]
            )
            qname = "gslb.example.com." if name == "@" else f"{name}.gslb.example.com."
            msg = dns.message.make_query(qname, rtype, use_edns=0 if i % 2 else None, payload=1232)
        elif kind == "gslb":
            msg = dns.message.make_query("app.gslb.example.com.", "A" if i % 3 else "AAAA", use_edns=0, payload=1232)
        elif kind == "ecs":
            subnet = f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(40)}.0"
            option = dns.edns.ECSOption(subnet, 24)
            msg = dns.message.make_query("app.gslb.example.com.", "A", use_edns=0, payload=1232, options=[option])
        elif kind == "case":
            base = rng.choice(["app.gslb.example.com.", "www.gslb.example.com."])
            qname = "".join(c.upper() if rng.random() < 0.5 else c for c in base)
            msg = dns.message.make_query(qname, "A", use_edns=0, payload=1232)
        elif kind == "full":
            shape = i % 4
            if shape == 0:
                msg = dns.message.make_query("www.gslb.example.com.", "ANY", use_edns=0, payload=1232)
            elif shape == 1:
                option = dns.edns.GenericOption(65001, b"hello")
                msg = dns.message.make_query("www.gslb.example.com.", "A", use_edns=0, options=[option])
            elif shape == 2:
                msg = dns.message.make_query(f"n{i}.gslb.example.com.", "A", use_edns=0, want_dnssec=True)
            else:
                msg = dns.message.make_query("app.gslb.example.com.", "TXT", use_edns=0, payload=4096)
        else:
            raise ValueError(kind)
        msg.id = rng.randrange(65536)
        out.append((msg.to_wire(), source))
    return out


def mix(kinds: list[str], n: int) -> list[tuple[bytes, str]]:
    """``n`` queries, the kinds interleaved in a fixed order."""
    per = max(1, n // len(kinds))
    pools = [queries(kind, per, seed=7 + i) for i, kind in enumerate(kinds)]
    rng = random.Random(11)
    out = [q for pool in pools for q in pool]
    rng.shuffle(out)
    return out


def worker(tree: Path, kinds: list[str], n: int, halves: int) -> None:
    """Run inside one tree: build the engine, answer the first ``n`` of a ``2n`` list (the caches fill
    as they would), then with ``halves`` 2 the second ``n``, timed; print ns/query of that second half."""
    sys.path.insert(0, str(tree))
    from geodns.process.server import Settings, build_engine

    config = Settings(config_path=tree / "config" / "geodns.yaml").load()
    engine = build_engine(config)
    # Trees from before the house's renames (285b7cc, say) call the responder ``dynamic``.
    responder = engine.responder if hasattr(engine, "responder") else engine.dynamic
    if responder is not None:
        responder.rng.seed(3)
    work = mix(kinds, 2 * n)
    handle = engine.handle
    for data, source in work[:n]:
        handle(data, source, False)
    if halves < 2:
        return
    start = time.perf_counter()
    for data, source in work[n:]:
        handle(data, source, False)
    elapsed = time.perf_counter() - start
    print(f"ns/query {elapsed / (len(work) - n) * 1e9:.0f}")


def _run(tree: Path, kinds: list[str], n: int, halves: int, prefix: list[str]) -> subprocess.CompletedProcess:
    cmd = [*prefix, sys.executable, __file__, "--worker", str(tree), "--mix", ",".join(kinds)]
    cmd += ["--queries", str(n), "--halves", str(halves)]
    env = dict(os.environ, PYTHONHASHSEED="0")
    return subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)


def _callgrind(tree: Path, kinds: list[str], n: int, halves: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cg.out"
        _run(tree, kinds, n, halves, ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"])
        for line in out.read_text().splitlines():
            match = re.match(r"(?:summary|totals):\s+(\d+)", line)
            if match:
                return int(match.group(1))
    raise RuntimeError("no instruction total in callgrind's output")


def _wall(tree: Path, kinds: list[str], n: int) -> float:
    return float(_run(tree, kinds, n, 2, []).stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", type=Path, help="the other tree (a checkout with geodns/ and config/)")
    parser.add_argument("--new", type=Path, default=REPO)
    parser.add_argument("--mix", default=",".join(KINDS), help="kinds of query, comma-separated, or 'each'")
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--halves", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=5, help="wall-clock runs per tree, alternating")
    parser.add_argument("--no-callgrind", action="store_true")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.worker, args.mix.split(","), args.queries, args.halves)
        return
    if args.old is None:
        parser.error("--old is required")
    groups = [[k] for k in KINDS] + [list(KINDS)] if args.mix == "each" else [args.mix.split(",")]
    for kinds in groups:
        label = "+".join(kinds)
        if not args.no_callgrind:
            per = {}
            for name, tree in (("old", args.old), ("new", args.new)):
                one = _callgrind(tree, kinds, args.queries, 1)
                two = _callgrind(tree, kinds, args.queries, 2)
                per[name] = (two - one) / (len(mix(kinds, 2 * args.queries)) - args.queries)
            print(
                f"{label:28s} instructions/query old {per['old']:8.0f}  new {per['new']:8.0f}"
                f"  new/old {per['new'] / per['old']:.3f}",
                flush=True,
            )
        if args.rounds:
            times: dict[str, list[float]] = {"old": [], "new": []}
            for _ in range(args.rounds):
                for name, tree in (("old", args.old), ("new", args.new)):
                    times[name].append(_wall(tree, kinds, 10 * args.queries))
            old, new = statistics.median(times["old"]), statistics.median(times["new"])
            print(
                f"{label:28s} wall ns/query median old {old:6.0f}  new {new:6.0f}  new/old {new / old:.3f}", flush=True
            )


if __name__ == "__main__":
    main()
