"""``geodns check``: a checker process, one vantage point, writing to a shared store.

    geodns check --config F --store redis://... --checker-id ID --region R [--http-listen HOST:PORT]

It does not seed the store.  The table (clusters, endpoints, checks) has one
writer of config facts, ``geodns serve`` (and the admin API); a fleet of
checkers each seeding from its own copy of the config would fight over it.  So
the checker follows the store's table, and uses its config's clusters only
while the store holds no table (version 0: not seeded yet, or Redis restarted
empty).  Its observations land in the store either way; readers see them once
the table exists.  SIGHUP re-reads the config (a bad one is logged and the
running one kept) and drops cached TLS contexts so a rotated ``ca_file`` is
read again; SIGINT/SIGTERM stop it cleanly (exit 0).  A bad config, an
unknown region or a ``memory://`` store exits 2 before starting.  With
``--http-listen`` (or the config's ``checker.http_listen``) it serves
``/healthz``, ``/readyz`` and ``/metrics`` (``health/http.py``); a port that
cannot be bound exits 2 as well.

This module reads the flags and says why the checker cannot start; the checker's process
(store, snapshot keeper, signals, HTTP) is ``health/service.py``.
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

from ..config.load import load_config
from ..errors import InputError
from ..process.runloop import run as run_loop
from ..state.store import open_store
from .options import http_listen as _http_listen


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``geodns check`` (its handler is ``run``, set as ``func``)."""
    parser = subparsers.add_parser(
        "check",
        help="run a health checker (one vantage point) that writes observations to the store",
        description="Probe every endpoint of the store's table and write observations under this "
        "checker's id and region. Does not seed the store.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        required=True,
        help="YAML config: regions, and the clusters to probe while the store holds no table",
    )
    parser.add_argument(
        "--store", metavar="URL", help="shared state store, redis://HOST:PORT/DB (default: the config's)"
    )
    parser.add_argument(
        "--checker-id",
        metavar="ID",
        default=socket.gethostname(),
        help="this checker's name in the store (default: the host name)",
    )
    parser.add_argument(
        "--region", metavar="R", required=True, help="the vantage point: the region this checker probes from"
    )
    parser.add_argument(
        "--max-concurrency", type=int, default=256, metavar="N", help="probes in flight at once (default 256)"
    )
    parser.add_argument(
        "--http-listen",
        type=_http_listen,
        default=False,
        metavar="HOST:PORT",
        help="serve /healthz, /readyz and /metrics here (default: the config's "
        "checker.http_listen, else none; 'off' disables)",
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the checker until SIGINT/SIGTERM; 0 on a clean stop, 2 when it cannot start."""
    try:
        config = load_config(args.config)
    except InputError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print("geodns check: not started: fix the problems above", file=sys.stderr)
        return 2
    url = args.store or config.store
    problems = []
    if url.startswith("memory:"):
        problems.append(
            "--store: a checker process needs a shared store (redis://...); "
            "memory:// is for the checker embedded in geodns serve"
        )
    if config.regions and args.region not in config.regions:
        problems.append(f"--region: unknown region {args.region!r} (the config has: {', '.join(config.regions)})")
    if args.max_concurrency < 1:
        problems.append("--max-concurrency: must be at least 1")
    if not args.checker_id:
        problems.append("--checker-id: must not be empty")
    try:
        open_store(url)  # only validates the URL's scheme; nothing connects yet
    except InputError as exc:
        problems.extend(str(p) for p in exc.problems)
    if problems:
        for text in problems:
            print(f"geodns check: {text}", file=sys.stderr)
        return 2
    http_listen = config.checker.http_listen if args.http_listen is False else args.http_listen
    from ..health.service import CannotListen, serve

    try:
        run_loop(serve(args.config, config, url, args.checker_id, args.region, args.max_concurrency, http_listen))
    except CannotListen as exc:
        print(f"geodns check: --http-listen: {exc}", file=sys.stderr)
        return 2
    return 0
