"""One DNS worker process of ``server.workers``: forked from the supervisor, sharing its loaded data.

The supervisor's side, and why there are workers at all, is ``geodns/process/workers.py``.
A worker is forked from the supervisor once the supervisor has loaded its
config, zones and engine, so it starts with all of that already in memory and
shares those pages with the supervisor (copy-on-write; the supervisor freezes
its garbage collector's view of them first, so neither side's collector
writes to them).  Nothing is read from files or unpickled: a worker restarted
after a file was broken or edited on disk serves what the supervisor serves,
and starting one costs a fork, not a load.

The child keeps only what it needs: stdio, its end of the pipe and the
listening sockets of its slot (bound by the supervisor).  Every other
inherited descriptor (the HTTP listener, store connections, the supervisor's
event loop) is closed at once, and the child never returns into the
supervisor's code: it runs its own event loop and leaves with ``os._exit``.

Over the pipe (``geodns/process/pipe.py``: framed, any size) it receives snapshots,
and sends back: started/failed, the snapshot version it applied, and its
counters about once a second.  SIGTERM drains it: it stops reading its
sockets (the supervisor and its successor still hold them, so nothing queued
there is lost), lets open TCP connections finish for a moment, and exits.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import signal
import socket
import sys
import time
import traceback
import warnings
from typing import TYPE_CHECKING

from ..answer.counters import GslbCounters, QueryStats
from ..answer.feed import EngineFeed
from ..answer.responder import keep_health_fresh
from ..dns.listener import Listener
from ..dns.tcp import TcpLimits
from ..dnssec.refresh import keep_signatures_fresh
from ..state.model import Snapshot
from .claim import Bound
from .pipe import Channel

if TYPE_CHECKING:
    from ..answer.engine import AnswerEngine
    from ..config.model import ServerConfig

log = logging.getLogger("geodns.workers")

START_TIMEOUT = 60.0  # seconds for every worker to start answering
STATS_INTERVAL = 1.0  # how often a worker sends its counters
DRAIN_GRACE = 2.0  # seconds open TCP connections get to finish when a worker is replaced or stopped


def fork_worker(
    index: int,
    engine: AnswerEngine,
    snapshot: Snapshot,
    server: ServerConfig,
    sockets: list[Bound],
    conn: socket.socket,
) -> int:
    """Fork a worker answering with ``engine`` on ``sockets``; returns its PID (in the supervisor)."""
    sys.stdout.flush()
    sys.stderr.flush()
    inherited = [fd for fd in map(int, os.listdir("/proc/self/fd")) if _is_open(fd)]  # to close in the child
    with warnings.catch_warnings():  # 3.12+ warns about fork with threads: the child uses none
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid:
        return pid
    code = 1
    try:  # the child: never return into the supervisor
        keep = {0, 1, 2, conn.fileno()} | {s.fileno() for _, tcp, udp in sockets for s in (tcp, udp)}
        _forget_parent(set(inherited) - keep)
        from .runloop import run

        code = run(_Worker(index, engine, snapshot, server, sockets, Channel(conn)).run())
    except BaseException:  # noqa: BLE001 - whatever happened, this process must not go on as the supervisor
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _is_open(fd: int) -> bool:
    try:
        fcntl.fcntl(fd, fcntl.F_GETFD)
    except OSError:
        return False  # e.g. the listing's own descriptor, closed by now
    return True


def _forget_parent(close: set[int]) -> None:
    """Drop the supervisor's event loop, signal set-up and the descriptors ``close`` (the supervisor's).

    Only descriptors the supervisor had are closed: those that fork handlers opened in the child
    (libuv's, for one) stay.  The supervisor's objects still hold the closed numbers, but they are
    never freed here: they are frozen out of the collector, and the frames holding them never return.
    """
    asyncio.events._set_running_loop(None)
    asyncio.set_event_loop_policy(None)
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the supervisor decides
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # reloads are the supervisor's
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for fd in close:
        try:
            os.close(fd)
        except OSError:
            pass


class _Worker:
    """One worker's event loop: listeners on its slot's sockets, the inherited engine, and the pipe."""

    def __init__(
        self,
        index: int,
        engine: AnswerEngine,
        snapshot: Snapshot,
        server: ServerConfig,
        sockets: list[Bound],
        conn: Channel,
    ):
        self.index = index
        self.server = server
        self.sockets = sockets
        self.conn = conn
        self.stats = QueryStats()
        self.gslb = GslbCounters()
        self.snapshot = snapshot
        self.engine = engine
        self.listeners: list[Listener] = []
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task] = []

    def handle(self, data: bytes, client: str, tcp: bool) -> bytes | None:
        return self.engine.handle(data, client, tcp)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stop.set)
        self.engine.count_into(self.stats, self.gslb)  # this process's own (the supervisor's stay its own)
        server = self.server
        try:
            for host, tcp, udp in self.sockets:
                listener = Listener(
                    host,
                    0,
                    self.handle,
                    TcpLimits.from_config(server),
                    reuse_port=True,
                    sockets=(tcp, udp),
                    feed=EngineFeed(lambda: self.engine),
                )
                await listener.start()
                self.listeners.append(listener)
        except OSError as exc:
            self.conn.post("failed", str(exc))
            await self._close()
            return 2
        loop.add_reader(self.conn.fileno(), self._on_message)
        log.info("event=worker-started worker=%d pid=%d", self.index, os.getpid())
        self.conn.post("started")
        self.conn.post("applied", self.snapshot.version)
        self.tasks = [
            asyncio.create_task(self._send_stats()),
            asyncio.create_task(keep_health_fresh(self._current_gslb)),
            asyncio.create_task(keep_signatures_fresh(lambda: (self.engine.signing, self.stats.dnssec))),
        ]
        await self.stop.wait()
        loop.remove_reader(self.conn.fileno())
        await self._close()
        return 0

    def _on_message(self) -> None:
        for message in self.conn.receive():
            if message[0] == "snapshot":
                self.snapshot = message[1]
                if self.engine.responder is not None:
                    self.engine.responder.update(self.snapshot)
                self.conn.post("applied", self.snapshot.version)
        if self.conn.closed:
            log.warning("event=worker-orphaned worker=%d pid=%d (supervisor gone; stopping)", self.index, os.getpid())
            asyncio.get_running_loop().remove_reader(self.conn.fileno())
            self.stop.set()

    async def _send_stats(self) -> None:
        while True:
            await asyncio.sleep(STATS_INTERVAL)
            self.conn.post("stats", self.stats, self.gslb.export(), self._listener_report())

    def _listener_report(self) -> list[dict]:
        return [listener.report() for listener in self.listeners]

    def _current_gslb(self):
        return self.engine.responder

    async def _close(self) -> None:
        """Stop reading the shared sockets, let open TCP connections finish briefly, report, close."""
        for task in self.tasks:
            task.cancel()
        for listener in self.listeners:
            if listener.udp is not None:
                listener.udp.close()
            if listener.tcp is not None:
                listener.tcp.close()  # no new connections; the open ones may finish
        self.conn.post("draining")  # from now on only the others read the sockets
        deadline = time.monotonic() + DRAIN_GRACE
        while any(listener.connections for listener in self.listeners) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for listener in self.listeners:
            await listener.close()
        self.conn.post("stats", self.stats, self.gslb.export(), self._listener_report())
        await self.conn.flush(1.0)
        self.conn.close()
