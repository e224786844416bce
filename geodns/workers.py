"""``server.workers: N``: N processes answer DNS on the same addresses (SO_REUSEPORT).

One Python process answers on one core.  With N > 1 the main process (the
supervisor) keeps everything that talks to the outside world except the query
load: the store, the snapshot keeper, the embedded checker and the HTTP API.
It starts N worker processes (multiprocessing "spawn": a fresh interpreter,
no inherited event loop, sockets or threads), each of which binds every
``dns_listen`` address with SO_REUSEPORT, builds its own engine from the
config and answers.  The kernel spreads UDP datagrams and TCP connections
over the workers.

Workers never talk to the store.  The supervisor sends them every new
``Snapshot`` over a pipe (and the current one first of all), which is what
makes ``memory://`` work with workers and keeps one store connection per
server however many cores it uses.  On reload the supervisor reloads first
and only then tells the workers to rebuild their engines from the config.

The supervisor does not answer DNS itself.  For a listen port of 0 it holds
a concrete free port (bound with SO_REUSEPORT, TCP not listening) until the
workers have bound it, then lets go.  A worker that dies is started again; a
worker whose pipe to the supervisor reaches EOF (the supervisor is gone)
stops by itself.  Each worker sends its query and GSLB decision counters about
once a second, so that ``/metrics`` on the supervisor counts every worker's
queries, and confirms each snapshot version it applies, so that an admin
write can wait until every worker answers from it.  This module is the
supervisor's side; a worker process is ``geodns/worker.py``.
"""
from __future__ import annotations

import asyncio
import logging
import multiprocessing
import pickle
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, Callable

from .dns.listener import _bound_socket, add_reports
from .dynamic import Counters
from .metrics import QueryStats
from .state.model import Snapshot
from .worker import START_TIMEOUT, LogOptions, receive, worker_main

if TYPE_CHECKING:
    from .config.model import Config
    from .server import Settings
    from .zones.zoneset import ZoneSet

log = logging.getLogger("geodns.workers")

MONITOR_INTERVAL = 0.1      # how often the supervisor reads worker messages and checks who is alive
RESTART_MIN_INTERVAL = 1.0  # a worker slot is not started again sooner than this after its last start
STOP_WAIT = 2.0             # seconds a worker gets after SIGTERM before SIGKILL (within server.STOP_PART_TIMEOUT)


def merge_stats(into: QueryStats, other: QueryStats) -> QueryStats:
    """Add ``other``'s counters to ``into`` (both the same shape: the engine's QueryStats)."""
    for key, n in other.queries.items():
        into.queries[key] = into.queries.get(key, 0) + n
    for i, n in enumerate(other.duration_buckets):
        into.duration_buckets[i] += n
    into.duration_sum += other.duration_sum
    for name in ("truncated", "ecs_present", "dropped", "malformed"):
        setattr(into, name, getattr(into, name) + getattr(other, name))
    return into


def current_log_options() -> LogOptions:
    """The supervisor's logging set-up, so that workers log the same way to the same stderr."""
    from .logs import JsonFormatter
    root = logging.getLogger()
    fmt = "json" if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers) else "kv"
    per_component = tuple(
        (name, logging.getLevelName(logger.level)) for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger) and name.startswith("geodns") and logger.level != logging.NOTSET)
    return logging.getLevelName(root.level).lower(), per_component, fmt


# -- the supervisor's side -------------------------------------------------------------------------
@dataclass
class _Slot:
    """One worker position: the process in it now, and what is waiting to be sent to it."""

    index: int
    process: Any = None                       # multiprocessing's SpawnProcess
    conn: Connection | None = None
    started: bool = False
    failure: str | None = None
    spawned_at: float = 0.0
    outbox: list[tuple[str, bytes]] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    sender: asyncio.Task | None = None
    stats: QueryStats | None = None           # the latest counters this process sent
    gslb: tuple | None = None                 # ... and its GSLB decision counters (Counters.export)
    listeners: list = field(default_factory=list)   # ... and its listeners' (Listener.report)
    applied: int = 0                          # the snapshot version it answers from
    reloaded: int = 0                         # the latest reload request it has carried out


class WorkerPool:
    """N worker processes answering on ``listen``, fed snapshots by the supervisor."""

    def __init__(self, count: int, settings: "Settings", listen: tuple[tuple[str, int], ...],
                 snapshot: Callable[[], Snapshot], running: Callable[[], tuple["Config", "ZoneSet"]],
                 log_options: LogOptions | None = None):
        self.count = count
        self.settings = settings
        self.listen = listen
        self.snapshot = snapshot
        self.running = running                  # the supervisor's config and zones, what workers serve
        self._running: tuple = (None, None, b"")
        self.log_options = log_options or current_log_options()
        self.slots = [_Slot(i) for i in range(count)]
        self.retired = QueryStats()             # counters of workers that have exited
        self.retired_gslb = Counters()
        self.retired_listeners: list[dict] = []
        self.restarts = 0
        self._reloads = 0
        self._context = multiprocessing.get_context("spawn")
        self._feeder = ThreadPoolExecutor(max_workers=count, thread_name_prefix="geodns-worker-feed")
        self._monitor: asyncio.Task | None = None
        self._stopping = False

    async def start(self) -> None:
        """Hold concrete ports, start every worker and wait until all have bound; raises OSError."""
        held: list[socket.socket] = []
        try:
            self.listen = tuple(_hold_port(host, port, held) if port == 0 else (host, port) for host, port in self.listen)
            for slot in self.slots:
                self._spawn(slot)
            deadline = time.monotonic() + START_TIMEOUT
            while not all(slot.started for slot in self.slots):
                for slot in self.slots:
                    self._read(slot)
                    if not slot.started and (slot.failure or not slot.process.is_alive()):
                        self._read(slot)
                        raise OSError(f"worker {slot.index} did not start: {slot.failure or 'it exited'}")
                if time.monotonic() > deadline:
                    raise OSError(f"workers did not start within {START_TIMEOUT:.0f}s")
                await asyncio.sleep(MONITOR_INTERVAL)
        except BaseException:
            await self.stop()
            raise
        finally:
            for sock in held:
                sock.close()
        self._monitor = asyncio.create_task(self._watch(), name="geodns-worker-monitor")

    @property
    def addresses(self) -> list[str]:
        return [f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.listen]

    def ready(self) -> tuple[bool, str]:
        alive = sum(1 for slot in self.slots if slot.started and slot.process.is_alive())
        return (True, "ok") if alive else (False, "no DNS worker running")

    def publish(self, snapshot: Snapshot) -> None:
        """Queue a snapshot for every worker; a newer one replaces one not yet sent."""
        blob = pickle.dumps(("snapshot", snapshot), protocol=pickle.HIGHEST_PROTOCOL)
        for slot in self.slots:
            slot.outbox = [m for m in slot.outbox if m[0] != "snapshot"] + [("snapshot", blob)]
            slot.wake.set()

    def _running_blob(self) -> bytes:
        """The supervisor's config and zones, pickled once per reload (100k records take a second or so)."""
        config, zones = self.running()
        if self._running[0] is not config or self._running[1] is not zones:
            self._running = (config, zones, pickle.dumps((config, zones), protocol=pickle.HIGHEST_PROTOCOL))
        return self._running[2]

    async def reload(self, timeout: float = START_TIMEOUT) -> bool:
        """Have every worker rebuild its engine from the supervisor's config and zones (after its reload worked).

        Returns once each running worker has said it answers from the new config (or kept
        its old one: it logs why), so "reloaded" means what a query sees; False on time-out.
        """
        self._reloads += 1
        seq = self._reloads
        blob = pickle.dumps(("reload", seq, self._running_blob()), protocol=pickle.HIGHEST_PROTOCOL)
        for slot in self.slots:
            slot.outbox.append(("reload", blob))
            slot.wake.set()
        return await self._confirmed(lambda slot: slot.reloaded >= seq, timeout, f"reload {seq}")

    def stats(self) -> QueryStats:
        """Every worker's counters, including those of workers that have exited since."""
        total = merge_stats(QueryStats(), self.retired)
        for slot in self.slots:
            if slot.stats is not None:
                merge_stats(total, slot.stats)
        return total

    def gslb_counters(self) -> Counters:
        """Every worker's GSLB decision counters, summed (including exited workers')."""
        total = Counters().add(self.retired_gslb.export())
        for slot in self.slots:
            if slot.gslb is not None:
                total.add(slot.gslb)
        return total

    def listener_report(self) -> list[dict]:
        """Every worker's listeners, summed per address (exited workers' counters included)."""
        return add_reports(self.retired_listeners + [report for slot in self.slots for report in slot.listeners])

    async def wait_applied(self, version: int, timeout: float = 2.0) -> bool:
        """Wait until every running worker answers from ``version`` or later (an admin write's promise)."""
        return await self._confirmed(lambda slot: slot.applied >= version, timeout, f"snapshot version {version}")

    async def _confirmed(self, done: Callable[[_Slot], bool], timeout: float, what: str) -> bool:
        """Read worker messages until ``done`` holds for every running worker; False after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            for slot in self.slots:
                self._read(slot)
            if all(done(slot) for slot in self.slots if slot.started and slot.conn is not None):
                return True
            if time.monotonic() > deadline:
                log.warning("event=workers-behind waiting-for=%r (not every worker confirmed it within %.0fs)",
                            what, timeout)
                return False
            await asyncio.sleep(0.002)

    def describe(self) -> list[dict]:
        """Per worker, for the status API: which process, whether it is up, what it answered."""
        return [{"worker": slot.index, "pid": slot.process.pid if slot.process is not None else None,
                 "alive": bool(slot.process is not None and slot.process.is_alive()), "started": slot.started,
                 "queries": slot.stats.total if slot.stats is not None else 0} for slot in self.slots]

    def pids(self) -> list[int]:
        return [slot.process.pid for slot in self.slots if slot.process is not None]

    async def stop(self) -> None:
        """SIGTERM every worker by PID, wait, SIGKILL what is left; never restart while stopping."""
        self._stopping = True
        if self._monitor is not None:
            self._monitor.cancel()
        for slot in self.slots:
            if slot.process is not None and slot.process.is_alive():
                slot.process.terminate()
        deadline = time.monotonic() + STOP_WAIT
        for slot in self.slots:
            while slot.process is not None and slot.process.is_alive() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if slot.process is not None and slot.process.is_alive():
                log.warning("event=worker-kill worker=%d pid=%s reason=did-not-stop", slot.index, slot.process.pid)
                slot.process.kill()
                await asyncio.get_running_loop().run_in_executor(None, slot.process.join, 2.0)
            self._close(slot)
        self._feeder.shutdown(wait=False, cancel_futures=True)

    # -- internals ---------------------------------------------------------------------------
    def _spawn(self, slot: _Slot) -> None:
        parent, child = self._context.Pipe(duplex=True)
        settings = replace(self.settings, dns_listen=self.listen)
        process = self._context.Process(target=worker_main, args=(slot.index, settings, child, self.log_options),
                                        name=f"geodns-worker-{slot.index}", daemon=True)
        process.start()
        child.close()
        slot.process, slot.conn, slot.started, slot.failure = process, parent, False, None
        slot.spawned_at, slot.stats, slot.gslb, slot.applied = time.monotonic(), None, None, 0
        slot.reloaded = self._reloads            # a new process starts from the running config anyway
        blob = pickle.dumps(("start", self.snapshot(), self._running_blob()),
                            protocol=pickle.HIGHEST_PROTOCOL)
        slot.outbox = [("start", blob)]          # the first message: a worker builds its engine on it
        slot.wake = asyncio.Event()
        slot.wake.set()
        slot.sender = asyncio.create_task(self._feed(slot, parent), name=f"geodns-worker-feed-{slot.index}")

    async def _feed(self, slot: _Slot, conn: Connection) -> None:
        """Send queued messages from a thread: a busy worker must never block the supervisor's loop."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                await slot.wake.wait()
                slot.wake.clear()
                while slot.outbox and slot.conn is conn:
                    _, blob = slot.outbox.pop(0)
                    await loop.run_in_executor(self._feeder, conn.send_bytes, blob)
        except (OSError, EOFError, RuntimeError):
            pass                                  # the worker is gone; the monitor starts another

    def _read(self, slot: _Slot) -> None:
        """Handle everything the worker has sent so far."""
        try:
            while slot.conn is not None and slot.conn.poll():
                message = receive(slot.conn)
                if message[0] == "started":
                    slot.started = True
                elif message[0] == "failed":
                    slot.failure = message[1]
                elif message[0] == "stats":
                    slot.stats, slot.gslb, slot.listeners = message[1], message[2], message[3]
                elif message[0] == "applied":
                    slot.applied = message[1]
                elif message[0] == "reloaded":
                    slot.reloaded = message[1]
        except (OSError, EOFError):
            pass

    def _close(self, slot: _Slot) -> None:
        self._read(slot)                          # the last counters a stopping worker sent
        if slot.sender is not None:
            slot.sender.cancel()
        if slot.conn is not None:
            slot.conn.close()
        if slot.stats is not None:
            merge_stats(self.retired, slot.stats)
        if slot.gslb is not None:
            self.retired_gslb.add(slot.gslb)
        self.retired_listeners = add_reports(self.retired_listeners +
                                             [dict(report, tcp_open=0) for report in slot.listeners])
        slot.listeners = []
        slot.conn, slot.sender, slot.stats, slot.gslb = None, None, None, None

    async def _watch(self) -> None:
        """Read worker messages; start a worker again when one has died."""
        while not self._stopping:
            for slot in self.slots:
                self._read(slot)
                process = slot.process
                if process is None or process.is_alive():
                    continue
                if slot.conn is not None:
                    log.warning("event=worker-died worker=%d pid=%s exitcode=%s", slot.index, process.pid,
                                process.exitcode)
                    process.join(0)
                    self._close(slot)
                if time.monotonic() - slot.spawned_at < RESTART_MIN_INTERVAL:
                    continue                      # crashing at once: do not spin
                try:
                    self._spawn(slot)
                except OSError as exc:
                    log.error("event=worker-restart-failed worker=%d error=%r", slot.index, exc)
                    continue
                self.restarts += 1
                log.info("event=worker-restarted worker=%d pid=%s", slot.index, slot.process.pid)
            await asyncio.sleep(MONITOR_INTERVAL)


def _hold_port(host: str, port: int, held: list[socket.socket]) -> tuple[str, int]:
    """Pick a free port for both TCP and UDP and hold it with SO_REUSEPORT until the workers bind it.

    Port 0 cannot be shared: each worker would get its own.  The held TCP socket
    does not listen, so no connection is ever queued on it.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(20):
        tcp = _bound_socket(family, socket.SOCK_STREAM, host, port, reuse_port=True, listen=False)
        chosen = tcp.getsockname()[1]
        try:
            udp = _bound_socket(family, socket.SOCK_DGRAM, host, chosen, reuse_port=True)
        except OSError:
            tcp.close()
            continue
        held.extend((tcp, udp))
        return host, chosen
    raise OSError(f"no free port for both TCP and UDP on {host}")
