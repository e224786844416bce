"""``geodns serve``: answer DNS queries (and serve the HTTP API) until SIGINT/SIGTERM.

Start-up, signals, reload and the workers are ``process.server``'s; this module turns flags into
its ``Settings`` and says plainly why it did not start (exit 2).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import InputError
from .options import http_listen, listen, workers


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    serve = subparsers.add_parser("serve", help="answer DNS queries (and serve the HTTP API)")
    serve.add_argument("--config", type=Path, help="YAML config (default: the shipped config/geodns.yaml)")
    serve.add_argument("--zone", type=Path, action="append", help="zone file to serve (repeatable)")
    serve.add_argument(
        "--dns-listen",
        type=listen,
        action="append",
        metavar="HOST:PORT",
        help="UDP+TCP listen address (repeatable; default 127.0.0.1:5353)",
    )
    serve.add_argument(
        "--http-listen",
        type=http_listen,
        metavar="HOST:PORT",
        default=False,
        help="HTTP listen address for /metrics, /healthz, /readyz (default 127.0.0.1:8053; 'off' disables)",
    )
    serve.add_argument("--store", metavar="URL", help="state store: memory:// or redis://HOST:PORT/DB")
    serve.add_argument(
        "--reset-state",
        action="store_true",
        help="seed the store from the config, discarding runtime drains, weights and endpoints",
    )
    serve.add_argument(
        "--workers",
        type=workers,
        metavar="N|auto",
        help="processes answering DNS on the same addresses with SO_REUSEPORT "
        "(default: server.workers, else one per usable CPU)",
    )
    serve.set_defaults(func=cmd_serve)
    return serve


def cmd_serve(args: argparse.Namespace) -> int:
    from ..process.runloop import run as run_loop
    from ..process.server import Server, Settings

    settings = Settings(
        config_path=args.config,
        zone_paths=tuple(args.zone or ()),
        dns_listen=tuple(args.dns_listen or ()),
        http_listen=args.http_listen,
        store=args.store,
        reset_state=args.reset_state,
        workers=args.workers,
    )
    server = Server(settings)
    try:
        run_loop(server.run())
    except InputError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print("geodns: not started: fix the problems above", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"geodns: cannot listen: {exc}", file=sys.stderr)
        return 2
    return 0
