"""The checker's process (``geodns check``): one vantage point probing the store's table.

``serve`` runs it until SIGINT/SIGTERM: a snapshot keeper following the store's table, the checker
writing observations under its id and vantage, and optionally the checker's HTTP (``/healthz``,
``/readyz``, ``/metrics``).  SIGHUP re-reads the config (``reload``; a bad one is logged and the
running one kept) and drops cached TLS contexts.  Why it does not seed the store: see
``cli/check.py``.  Flags and start-up errors are the command's (``cli/check.py``).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..config.load import load_config
from ..discovery.records import derive, with_discovered
from ..errors import InputError
from ..state.model import Snapshot
from ..state.store import open_store

if TYPE_CHECKING:  # the checker's modules (aiohttp, redis) load only when the command runs
    from ..config.model import Config
    from ..state.keeper import SnapshotKeeper
    from .checker import Checker

log = logging.getLogger("geodns.health.command")  # the component name operators already filter on


class CannotListen(Exception):
    """The HTTP port could not be bound (in use, or an address this host does not have)."""


class TableSource:
    """The checker's table source: the store's table once it has one, else the config's clusters."""

    def __init__(self, keeper: SnapshotKeeper, config: Config) -> None:
        self.keeper = keeper
        self.config = config
        self.fallback = Snapshot.from_specs(config.clusters.values())
        self._derived: tuple[Snapshot | None, float, Snapshot] = (None, 0.0, self.fallback)

    @property
    def snapshot(self) -> Snapshot:
        """With the discovered clusters (discovery/records.py), worked out again only when the table
        changes or a lapsed lease's grace ends."""
        current = self.keeper.snapshot
        current = current if current.version > 0 else self.fallback
        seen, until, derived = self._derived
        now = time.time()
        if seen is not current or now >= until:
            found = derive(current, self.config, now)
            derived = with_discovered(current, found)
            self._derived = (current, found.valid_until, derived)
        return derived


async def serve(
    config_path: Path,
    config: Config,
    url: str,
    checker_id: str,
    region: str,
    max_concurrency: int,
    http_listen: tuple[str, int] | None,
) -> None:
    """Run the checker until SIGINT/SIGTERM; ``CannotListen`` when the HTTP port cannot be bound."""
    from ..state.keeper import SnapshotKeeper
    from .checker import Checker
    from .http import start_http

    store = open_store(url)
    keeper = SnapshotKeeper(store, Snapshot.from_specs(()))  # TableSource supplies the config's until the store has one
    table = TableSource(keeper, config)
    checker = Checker(
        store, checker_id, region, table_source=table, max_concurrency=max_concurrency, resolver=config.resolver
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    for sig in signals[:2]:
        loop.add_signal_handler(sig, stopping.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: reload(config_path, table, checker))
    http = None
    try:
        if http_listen is not None:
            try:
                http = await start_http(checker, keeper, *http_listen)
            except OSError as exc:
                raise CannotListen(
                    f"cannot listen on {http_listen[0]}:{http_listen[1]}: {exc.strerror or exc}"
                ) from None
            log.info("event=http-listening address=%s:%d", *http.addresses[0][:2])
        await keeper.start()
        await checker.start()
        version = table.snapshot.version
        log.info(
            "event=started checker=%s vantage=%s store=%r table=%s",
            checker_id,
            region,
            store,
            f"store-version-{version}" if version else "config (the store holds no table yet)",
        )
        await stopping.wait()
        log.info("event=stopping checker=%s", checker_id)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        if http is not None:
            await http.cleanup()
        await checker.stop()
        await keeper.stop()
        await store.close()


def reload(path: Path, table: TableSource, checker: Checker) -> None:
    try:
        config = load_config(path)
    except InputError as exc:
        for problem in exc.problems:
            log.error("event=reload-rejected problem=%r", str(problem))
        log.error("event=reload-failed keeping=running-config")
        return
    from .probe import tls_context

    table.fallback = Snapshot.from_specs(config.clusters.values())
    table.config = config
    table._derived = (None, 0.0, table.fallback)
    tls_context.cache_clear()
    checker.use_resolver(config.resolver)  # host names are dialled at what the new resolver says
    version = table.keeper.snapshot.version
    log.info(
        "event=reloaded clusters=%d table=%s",
        len(config.clusters),
        f"store-version-{version}" if version else "config (the store holds no table)",
    )
