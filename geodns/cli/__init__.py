"""The ``geodns`` command: global flags, then one subcommand, each in its own module here.

``COMMANDS`` is the one place a subcommand is registered: each module's ``add_parser(subparsers)``
adds its flags and sets ``func``, the function ``main`` calls.  The modules hold argument parsing
and what the operator sees; the work itself lives in its part (``process.server`` serves,
``health`` checks, ``tooling`` runs the local stack and drills).  Heavy parts are imported
inside the handlers, so ``geodns status`` does not load the server.
"""

from __future__ import annotations

import argparse
import sys

from . import admin, agent, check, drill, ds, explain, keygen, reload, serve, sim_ingress, stack, status, validate
from .options import component_level

# Registration order is the order ``geodns --help`` lists them.
COMMANDS = (serve, validate, check, agent, status, admin, explain, reload, keygen, ds, sim_ingress, stack, drill)


def _setup_logging(level: str, per_component=(), fmt: str = "kv") -> None:
    from ..logs import setup

    setup(level, per_component or (), fmt)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="geodns", description="Authoritative geo- and latency-aware DNS server.")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument(
        "--log-level-for",
        type=component_level,
        action="append",
        metavar="COMPONENT=LEVEL",
        help="level for one component, e.g. geodns.dns=debug or geodns.querylog=info (repeatable)",
    )
    parser.add_argument("--log-format", default="kv", choices=["kv", "json"], help="key=value lines or JSON lines")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.log_level, args.log_level_for, args.log_format)
    try:
        status = args.func(args)
        sys.stdout.flush()  # inside the try: a closed pipe usually shows only at this flush
        return status
    except BrokenPipeError:
        # `geodns status | head`: the reader left, which is not an error of ours.  Point stdout
        # at /dev/null so the interpreter's own flush at exit does not raise again.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
