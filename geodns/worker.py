"""One DNS worker process of ``server.workers``, and the pipe protocol it speaks.

The supervisor's side, and why there are workers at all, is ``geodns/workers.py``.
A worker is spawned with nothing but its index, the settings, one end of a
pipe and the log options.  It waits for its start message (the supervisor's
running config and zones, and the current snapshot), builds its own engine
from them, binds every ``dns_listen`` address with SO_REUSEPORT and answers.
It never reads the config or zone files itself: a worker restarted after a
file was broken or edited on disk serves what the supervisor serves.  Over
the pipe it receives snapshots and reloads (the supervisor's new config and
zones), and sends back: started/failed, the snapshot version it applied, the
reloads it carried out, and its counters about once a second.
"""
from __future__ import annotations

import asyncio
import copyreg
import logging
import os
import pickle
import signal
from multiprocessing.connection import Connection
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .dns.listener import Listener
from .dns.tcp import TcpLimits
from .dynamic import Counters, keep_health_fresh
from .errors import InputError
from .metrics import QueryStats
from .state.model import Snapshot

if TYPE_CHECKING:
    from .server import Settings

log = logging.getLogger("geodns.workers")

START_TIMEOUT = 60.0        # seconds for every worker to load its engine and bind
STATS_INTERVAL = 1.0        # how often a worker sends its counters

LogOptions = tuple[str, tuple[tuple[str, str], ...], str]   # level, per-component levels, format


# -- the wire: pickled tuples ---------------------------------------------------------------------
def read_only(mapping: dict) -> MappingProxyType:
    return MappingProxyType(mapping)


def _reduce_proxy(proxy: MappingProxyType) -> tuple:
    return read_only, (dict(proxy),)


copyreg.pickle(MappingProxyType, _reduce_proxy)     # snapshots, zones and configs hold read-only mappings


def send(conn: Connection, *message: Any) -> None:
    conn.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


def receive(conn: Connection) -> tuple:
    return pickle.loads(conn.recv_bytes())


def safe_send(conn: Connection, *message: Any) -> None:
    """``send``, for a worker whose supervisor may be gone: a lost message is no error."""
    try:
        send(conn, *message)
    except (OSError, EOFError, ValueError):
        pass


# -- the worker ---------------------------------------------------------------------------------
def worker_main(index: int, settings: "Settings", conn: Connection, log_options: LogOptions) -> None:
    """Entry point of a worker process (spawned: nothing inherited but these arguments and stderr)."""
    from .logs import setup
    from .runloop import run
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C reaches the whole group; the supervisor decides
    level, per_component, fmt = log_options
    setup(level, per_component, fmt)
    code = run(_Worker(index, settings, conn).run())
    raise SystemExit(code)


class _Worker:
    """One worker's event loop: listeners with SO_REUSEPORT, an engine, and the pipe to the supervisor."""

    def __init__(self, index: int, settings: "Settings", conn: Connection):
        self.index = index
        self.settings = settings
        self.conn = conn
        self.engine = None
        self.snapshot: Snapshot | None = None
        self.stats = QueryStats()                 # kept across reloads, like the Server's
        self.gslb = Counters()
        self.listeners: list[Listener] = []
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task] = []

    def handle(self, data: bytes, client: str, tcp: bool) -> bytes | None:
        return self.engine.handle(data, client, tcp)

    async def run(self) -> int:
        from .server import build_engine
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stop.set)
        try:
            if not self.conn.poll(START_TIMEOUT):
                return 1
            _start, snapshot, running = receive(self.conn)        # before any query is answered
            config, zones = pickle.loads(running)
            self.snapshot = snapshot
            self.engine = self._adopt(build_engine(config, self.snapshot, zones))
            server = config.server
            for host, port in self.settings.dns_listen:          # the supervisor's concrete ports
                listener = Listener(host, port, self.handle, TcpLimits.from_config(server), reuse_port=True)
                await listener.start()
                self.listeners.append(listener)
        except (InputError, OSError, EOFError) as exc:
            safe_send(self.conn, "failed", str(exc))
            await self._close()
            return 2
        loop.add_reader(self.conn.fileno(), self._on_message)
        log.info("event=worker-started worker=%d pid=%d", self.index, os.getpid())
        safe_send(self.conn, "started")
        safe_send(self.conn, "applied", self.snapshot.version)
        self.tasks = [asyncio.create_task(self._send_stats()), asyncio.create_task(keep_health_fresh(self._current_gslb))]
        await self.stop.wait()
        loop.remove_reader(self.conn.fileno())
        await self._close()
        return 0

    def _adopt(self, engine):
        engine.stats = self.stats
        if engine.dynamic is not None:
            engine.dynamic.counters = self.gslb
        return engine

    def _apply(self, message: tuple) -> None:
        if message[0] == "snapshot":
            self.snapshot = message[1]
            dynamic = self.engine.dynamic if self.engine is not None else None
            if dynamic is not None:
                dynamic.update(self.snapshot)
            if self.engine is not None:
                safe_send(self.conn, "applied", self.snapshot.version)
        elif message[0] == "reload":
            self.tasks.append(asyncio.create_task(self._reload(message[1], message[2])))

    def _on_message(self) -> None:
        try:
            message = receive(self.conn)
        except (EOFError, OSError):
            log.warning("event=worker-orphaned worker=%d pid=%d (supervisor gone; stopping)", self.index, os.getpid())
            asyncio.get_running_loop().remove_reader(self.conn.fileno())
            self.stop.set()
            return
        self._apply(message)

    async def _reload(self, seq: int, running: bytes) -> None:
        """Rebuild the engine from the supervisor's new config and zones; on any problem keep the running
        one.  Either way, say so."""
        from .server import build_engine
        try:
            config, zones = pickle.loads(running)
            engine = await asyncio.get_running_loop().run_in_executor(None, build_engine, config, self.snapshot,
                                                                      zones)
        except Exception as exc:  # noqa: BLE001 - the supervisor built the same; keep answering whatever this was
            log.error("event=worker-reload-failed worker=%d error=%r keeping=running-config", self.index, exc)
            safe_send(self.conn, "reloaded", seq)
            return
        self.engine = self._adopt(engine)
        if engine.dynamic is not None and self.snapshot is not None:
            engine.dynamic.update(self.snapshot)   # a snapshot may have arrived while it was built
        log.info("event=worker-reloaded worker=%d", self.index)
        safe_send(self.conn, "reloaded", seq)

    async def _send_stats(self) -> None:
        while True:
            await asyncio.sleep(STATS_INTERVAL)
            safe_send(self.conn, "stats", self.stats, self.gslb.export(), self._listener_report())

    def _listener_report(self) -> list[dict]:
        return [listener.report() for listener in self.listeners]

    def _current_gslb(self):
        return self.engine.dynamic if self.engine is not None else None

    async def _close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for listener in self.listeners:
            await listener.close()
        safe_send(self.conn, "stats", self.stats, self.gslb.export(), self._listener_report())
        self.conn.close()
