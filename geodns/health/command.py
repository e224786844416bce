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

``add_parser(subparsers)`` registers the command with the ``geodns`` CLI;
``python -m geodns.health.command`` runs it on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..config.load import load_config
from ..config.values import parse_listen
from ..errors import InputError
from ..process.runloop import run as run_loop
from ..state.model import Snapshot
from ..state.store import open_store

if TYPE_CHECKING:  # the checker's modules (aiohttp, redis) load only when the command runs
    from ..config.model import Config
    from ..state.keeper import SnapshotKeeper

log = logging.getLogger(__name__)


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


def _http_listen(text: str) -> tuple[str, int] | None:
    if text in ("off", "none", ""):
        return None
    try:
        return parse_listen(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
    try:
        run_loop(_serve(args, config, url, http_listen))
    except _CannotListen as exc:
        print(f"geodns check: --http-listen: {exc}", file=sys.stderr)
        return 2
    return 0


class _CannotListen(Exception):
    """The HTTP port could not be bound (in use, or an address this host does not have)."""


class _Table:
    """The checker's table source: the store's table once it has one, else the config's clusters."""

    def __init__(self, keeper: SnapshotKeeper, config: Config) -> None:
        self.keeper = keeper
        self.fallback = Snapshot.from_specs(config.clusters.values())

    @property
    def snapshot(self) -> Snapshot:
        current = self.keeper.snapshot
        return current if current.version > 0 else self.fallback


async def _serve(args: argparse.Namespace, config: Config, url: str, http_listen: tuple[str, int] | None) -> None:
    from ..state.keeper import SnapshotKeeper
    from .checker import Checker
    from .http import start_http

    store = open_store(url)
    keeper = SnapshotKeeper(store, Snapshot.from_specs(()))  # _Table supplies the config's until the store has one
    table = _Table(keeper, config)
    checker = Checker(store, args.checker_id, args.region, table_source=table, max_concurrency=args.max_concurrency)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    for sig in signals[:2]:
        loop.add_signal_handler(sig, stopping.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: _reload(args.config, table))
    http = None
    try:
        if http_listen is not None:
            try:
                http = await start_http(checker, keeper, *http_listen)
            except OSError as exc:
                raise _CannotListen(
                    f"cannot listen on {http_listen[0]}:{http_listen[1]}: {exc.strerror or exc}"
                ) from None
            log.info("event=http-listening address=%s:%d", *http.addresses[0][:2])
        await keeper.start()
        await checker.start()
        version = table.snapshot.version
        log.info(
            "event=started checker=%s vantage=%s store=%r table=%s",
            args.checker_id,
            args.region,
            store,
            f"store-version-{version}" if version else "config (the store holds no table yet)",
        )
        await stopping.wait()
        log.info("event=stopping checker=%s", args.checker_id)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        if http is not None:
            await http.cleanup()
        await checker.stop()
        await keeper.stop()
        await store.close()


def _reload(path: Path, table: _Table) -> None:
    try:
        config = load_config(path)
    except InputError as exc:
        for problem in exc.problems:
            log.error("event=reload-rejected problem=%r", str(problem))
        log.error("event=reload-failed keeping=running-config")
        return
    from .probe import tls_context

    table.fallback = Snapshot.from_specs(config.clusters.values())
    tls_context.cache_clear()
    version = table.keeper.snapshot.version
    log.info(
        "event=reloaded clusters=%d table=%s",
        len(config.clusters),
        f"store-version-{version}" if version else "config (the store holds no table)",
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m geodns.health.command``: the same command without the rest of the CLI."""
    parser = argparse.ArgumentParser(prog="geodns")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        stream=sys.stderr,
        format="ts=%(asctime)s level=%(levelname)s component=%(name)s %(message)s",
    )
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
