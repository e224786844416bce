"""``geodns drill SCENARIO``: break a running deployment on purpose and report what clients saw.

    geodns drill cluster-down                          # against the local stack (geodns stack)
    geodns drill redis-down --stack /tmp/geodns-stack --json report.json --plot report.svg
    geodns drill cluster-down --dns 10.0.0.53:53,10.0.1.53:53 \\
        --cluster ap-southeast-1=203.0.113.10 --ingress ap-southeast-1=http://10.2.0.7:18083

Exit status: 0 when every check of the report passed, 1 when one failed,
2 when the drill could not run (with the reason).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..tooling.drill.scenarios import SCENARIOS, Options, run
from ..tooling.drill.target import Deployment, DrillError
from ..tooling.stack.topology import DEFAULT_DIR, CheckTiming


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "drill",
        help="chaos drill: inject a fault, measure how answers move, report",
        description="Play clients in Singapore, London and the US (ECS), inject a fault, and report how "
        "fast answers moved away and back, and whether any query failed.",
    )
    parser.add_argument("scenario", choices=SCENARIOS)
    parser.add_argument(
        "--stack",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"the local stack's directory or state file (default {DEFAULT_DIR} unless --dns is given)",
    )
    parser.add_argument("--dns", metavar="H:P[,H:P]", help="DNS servers of a real deployment")
    parser.add_argument(
        "--cluster",
        action="append",
        default=[],
        metavar="NAME=IP[,IP]",
        help="a real deployment's cluster and its answer addresses (repeatable)",
    )
    parser.add_argument(
        "--ingress",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="the /_sim control URL of a cluster's ingress (repeatable)",
    )
    parser.add_argument("--target", metavar="CLUSTER", help="the cluster to break (default per scenario)")
    parser.add_argument("--record", metavar="NAME", help="the GSLB name to ask (default per scenario)")
    parser.add_argument("--interval", type=float, help="check interval of a real deployment (seconds)")
    parser.add_argument("--fall", type=int, help="check fall of a real deployment")
    parser.add_argument("--rise", type=int, help="check rise of a real deployment")
    parser.add_argument("--baseline", type=float, default=2.0, metavar="S", help="seconds before the fault (2)")
    parser.add_argument("--hold", type=float, metavar="S", help="seconds the fault lasts (window + 1.5)")
    parser.add_argument("--after", type=float, metavar="S", help="seconds recorded after recovery")
    parser.add_argument("--rate", type=float, default=10.0, help="queries per second per client (10)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the report as JSON")
    parser.add_argument(
        "--plot",
        type=Path,
        metavar="FILE.svg",
        help="also draw the answer timeline per client and the fault window as SVG",
    )
    parser.set_defaults(func=command)
    return parser


def deployment(args: argparse.Namespace) -> Deployment:
    if args.dns and args.stack is None:
        clusters: dict[str, dict] = {}
        for item in args.cluster:
            name, _, addresses = item.partition("=")
            clusters.setdefault(name, {})["addresses"] = [a for a in addresses.split(",") if a]
        for item in args.ingress:
            name, _, url = item.partition("=")
            clusters.setdefault(name, {"addresses": []})["ingress"] = url
        timing = CheckTiming()
        dep = Deployment(dns=[s for s in args.dns.split(",") if s], clusters=clusters, timing=timing)
    else:
        dep = Deployment.from_stack(args.stack or DEFAULT_DIR)
        if args.dns:
            dep.dns = [s for s in args.dns.split(",") if s]
    for field in ("interval", "fall", "rise"):
        if getattr(args, field) is not None:
            setattr(dep.timing, field, getattr(args, field))
    return dep


def command(args: argparse.Namespace) -> int:
    try:
        dep = deployment(args)
        opts = Options(
            cluster=args.target,
            record=args.record,
            baseline=args.baseline,
            hold=args.hold,
            after=args.after,
            period=1.0 / max(args.rate, 0.1),
        )
        print(f"geodns drill {args.scenario}: asking {', '.join(dep.dns)} ...", flush=True)
        report = run(args.scenario, dep, opts)
    except DrillError as exc:
        print(f"geodns drill: cannot run {args.scenario}: {exc}", file=sys.stderr)
        return 2
    print(report.to_text())
    if args.json:
        args.json.write_text(report.to_json() + "\n")
    if args.plot:
        from ..tooling.drill.plot import svg

        args.plot.write_text(svg(report))
        print(f"plot: {args.plot}")
    return 0 if report.passed else 1
