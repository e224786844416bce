"""``geodns sim-ingress``: a stand-in cluster ingress whose health is switched at runtime
(``PUT /_sim?mode=...``); the ingress itself, and the modes, are ``tooling/sim/ingress.py``."""

from __future__ import annotations

import argparse
import asyncio

from ..tooling.sim.ingress import MODES, SimState, run


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "sim-ingress", help="run a simulated cluster ingress (for the local stack and drills)"
    )
    parser.add_argument("--listen", default="127.0.0.1:18081", metavar="HOST:PORT")
    parser.add_argument("--name", default="sim", help="shown in responses and logs, e.g. the cluster name")
    parser.add_argument("--mode", default="up", choices=MODES + ("down",))
    parser.add_argument(
        "--ms",
        type=int,
        default=0,
        help="delay for --mode slow; failing period for --mode flap (fails ms, healthy 2 x ms)",
    )
    parser.set_defaults(func=command)
    return parser


def command(args: argparse.Namespace) -> int:
    from ..config.values import parse_listen

    try:
        host, port = parse_listen(args.listen)
    except ValueError as exc:
        print(f"geodns sim-ingress: --listen {exc}")
        return 2
    mode = "reset" if args.mode == "down" else args.mode
    try:
        asyncio.run(run(host, port, SimState(args.name, mode, args.ms)))
    except OSError as exc:
        print(f"geodns sim-ingress: cannot listen on {args.listen}: {exc}")
        return 2
    return 0
