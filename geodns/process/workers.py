"""``server.workers: N``: N processes answer DNS on the same addresses, sharing one loaded copy of the data.

One Python process answers on one core.  With N > 1 the main process (the
supervisor) keeps everything that talks to the outside world except the query
load: the store, the snapshot keeper, the embedded checker and the HTTP API.
It loads the config, zones and engine once, then forks N worker processes
(``geodns/process/worker.py``) that start with all of it in memory: the pages are
shared copy-on-write, and the supervisor freezes its garbage collector's view
of them before forking (``gc.freeze``) so that no collection writes to them.
A worker costs a fork, not a load, and N workers do not hold N copies.

One server per address: the supervisor binds every ``dns_listen`` address
itself, once per worker slot with SO_REUSEPORT after proving with an
exclusive bind that nothing else serves it (``geodns/process/claim.py``), and holds
those sockets for its whole life; each worker inherits its slot's.

Workers never talk to the store.  The supervisor sends them every new
``Snapshot`` over a framed pipe (``geodns/process/pipe.py``), which is what makes
``memory://`` work with workers and keeps one store connection per server
however many cores it uses.  A reload forks new workers from the reloaded
supervisor; once each has started, the one it replaces is drained: it stops
reading the shared sockets (still held by the supervisor and its successor,
so no queued query is lost) and exits.  A worker that dies is forked again
into its slot; a worker whose pipe reaches EOF (the supervisor is gone)
stops by itself.  Each worker sends its query and GSLB decision counters
about once a second, so that ``/metrics`` on the supervisor counts every
worker's queries, and confirms each snapshot version it applies, so that an
admin write can wait until every worker answers from it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..answer.counters import GslbCounters, QueryStats
from ..dns.listener import add_reports
from ..state.model import Snapshot
from .claim import Bound, claim_addresses
from .claim import address_text as _address
from .pipe import Channel, frame, pair
from .worker import DRAIN_GRACE, START_TIMEOUT, fork_worker

if TYPE_CHECKING:
    from ..answer.engine import AnswerEngine
    from ..config.model import Config
    from .server import Settings

log = logging.getLogger("geodns.workers")

MONITOR_INTERVAL = 0.1  # how often the supervisor reads worker messages and checks who is alive
RESTART_MIN_INTERVAL = 1.0  # a worker slot is not started again sooner than this after its last start
STOP_WAIT = 2.0  # seconds a worker gets after SIGTERM before SIGKILL (within server.STOP_PART_TIMEOUT)


# -- the supervisor's side -------------------------------------------------------------------------
class _Child:
    """A forked worker process, by PID: alive, signals, exit code (what multiprocessing's Process offers)."""

    def __init__(self, pid: int):
        self.pid = pid
        self.exitcode: int | None = None

    def is_alive(self) -> bool:
        if self.exitcode is not None:
            return False
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            self.exitcode = -1
            return False
        if pid == 0:
            return True
        self.exitcode = os.waitstatus_to_exitcode(status)
        return False

    def signal(self, signum: int) -> None:
        if self.is_alive():
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass


@dataclass
class _Slot:
    """One worker process in a slot, and what is waiting to be sent to it."""

    index: int
    process: _Child | None = None
    conn: Channel | None = None
    started: bool = False
    failure: str | None = None
    spawned_at: float = 0.0
    outbox: list[tuple[str, bytes]] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    sender: asyncio.Task | None = None
    stats: QueryStats | None = None  # the latest counters this process sent
    gslb: tuple | None = None  # ... and its GSLB decision counters (GslbCounters.export)
    listeners: list = field(default_factory=list)  # ... and its listeners' (Listener.report)
    applied: int = 0  # the snapshot version it answers from
    drain_until: float = 0.0  # replaced or stopping: killed if still running then
    draining: bool = False  # it said it no longer reads the shared sockets

    @property
    def child(self) -> _Child:
        """The process, for the code that runs only once ``_spawn`` has given the slot one."""
        if self.process is None:
            raise RuntimeError(f"worker slot {self.index} has no process yet")
        return self.process


class WorkerPool:
    """N forked worker processes answering on ``listen``, fed snapshots by the supervisor."""

    def __init__(
        self,
        count: int,
        settings: Settings,
        listen: tuple[tuple[str, int], ...],
        snapshot: Callable[[], Snapshot],
        running: Callable[[], tuple[Config, AnswerEngine]],
        claimed: list[list[Bound]] | None = None,
    ):
        self.count = count
        self.settings = settings
        self.listen = listen
        self.snapshot = snapshot
        self.running = running  # the supervisor's config and engine: what workers serve
        self.sockets: list[list[Bound]] = claimed or []  # per slot, held for the pool's whole life
        self.slots: list[_Slot] = []
        self.pending: list[_Slot] = []  # forked by a reload, not yet answering
        self.draining: list[_Slot] = []  # replaced, finishing
        self.retired = QueryStats()  # counters of workers that have exited
        self.retired_gslb = GslbCounters()
        self.retired_listeners: list[dict] = []
        self.restarts = 0
        self._reload_lock = asyncio.Lock()
        self._monitor: asyncio.Task | None = None
        self._stopping = False

    async def start(self) -> None:
        """Claim the addresses (unless the server already has), fork every worker and wait until all
        answer; raises OSError."""
        if not self.sockets:
            self.listen, self.sockets = claim_addresses(self.listen, self.count)
        try:
            self._collect_garbage()
            self.slots = [self._spawn(_Slot(i)) for i in range(self.count)]
            if not await self._started(self.slots, START_TIMEOUT):
                failed = next((s for s in self.slots if not s.started), self.slots[0])
                raise OSError(f"worker {failed.index} did not start: {failed.failure or 'it exited or hung'}")
        except BaseException:
            await self.stop()
            raise
        self._monitor = asyncio.create_task(self._watch(), name="geodns-worker-monitor")

    @property
    def addresses(self) -> list[str]:
        return [_address(h, p) for h, p in self.listen]

    def ready(self) -> tuple[bool, str]:
        alive = sum(1 for slot in self.slots if slot.started and slot.child.is_alive())
        return (True, "ok") if alive else (False, "no DNS worker running")

    def publish(self, snapshot: Snapshot) -> None:
        """Queue a snapshot for every worker; a newer one replaces one not yet sent."""
        blob = frame("snapshot", snapshot)
        for slot in self.slots + self.pending:
            slot.outbox = [m for m in slot.outbox if m[0] != "snapshot"] + [("snapshot", blob)]
            slot.wake.set()

    async def reload(self, timeout: float = START_TIMEOUT) -> bool:
        """Replace every worker by one forked from the reloaded supervisor, then drain the old ones.

        Returns once each new worker answers (the old one goes on answering until
        then) and the old ones have stopped reading, so "reloaded" means what a query
        sees; False if they did not start in time: then the old workers stay.  Forked,
        not sent: a pipe message would have every worker unpickle its own copy of the
        new data (N copies, seconds each); a fork shares the supervisor's.
        """
        async with self._reload_lock:
            self._collect_garbage()
            fresh = self.pending = [self._spawn(_Slot(slot.index)) for slot in self.slots]
            ok = await self._started(fresh, timeout)
            self.pending = []
            if not ok:
                log.warning(
                    "event=workers-behind waiting-for='reload' (new workers did not start within %.0fs; "
                    "the old ones go on answering)",
                    timeout,
                )
                for slot in fresh:
                    self._drain(slot)
                return False
            old, self.slots = self.slots, fresh
            for before, after in zip(old, fresh):
                log.info(
                    "event=worker-replaced worker=%d pid=%d old-pid=%d (old one draining)",
                    after.index,
                    after.child.pid,
                    before.child.pid,
                )
                self._drain(before)
            # "Reloaded" means every query from now on gets the new data: wait until the old
            # workers have stopped reading the sockets (open TCP connections may finish there).
            deadline = time.monotonic() + STOP_WAIT
            while not all(slot.draining or not slot.child.is_alive() for slot in old):
                if time.monotonic() > deadline:
                    for slot in old:
                        if not slot.draining:
                            slot.child.signal(signal.SIGKILL)
                    break
                for slot in old:
                    self._read(slot)
                await asyncio.sleep(0.005)
            return True

    def stats(self) -> QueryStats:
        """Every worker's counters, including those of workers that have exited since."""
        total = QueryStats().add(self.retired)
        for slot in self.slots + self.draining:
            if slot.stats is not None:
                total.add(slot.stats)
        return total

    def gslb_counters(self) -> GslbCounters:
        """Every worker's GSLB decision counters, summed (including exited workers')."""
        total = GslbCounters().add(self.retired_gslb.export())
        for slot in self.slots + self.draining:
            if slot.gslb is not None:
                total.add(slot.gslb)
        return total

    def listener_report(self) -> list[dict]:
        """Every worker's listeners, summed per address (exited workers' counters included)."""
        return add_reports(
            self.retired_listeners + [report for slot in self.slots + self.draining for report in slot.listeners]
        )

    async def wait_applied(self, version: int, timeout: float = 2.0) -> bool:
        """Wait until every running worker answers from ``version`` or later (an admin write's promise)."""
        deadline = time.monotonic() + timeout
        while True:
            for slot in self.slots:
                self._read(slot)
            if all(slot.applied >= version for slot in self.slots if slot.started and slot.conn is not None):
                return True
            if time.monotonic() > deadline:
                log.warning(
                    "event=workers-behind waiting-for='snapshot version %d' (not every worker confirmed "
                    "it within %.0fs)",
                    version,
                    timeout,
                )
                return False
            await asyncio.sleep(0.002)

    def describe(self) -> list[dict]:
        """Per worker, for the status API: which process, whether it is up, what it answered."""
        return [
            {
                "worker": slot.index,
                "pid": slot.process.pid if slot.process is not None else None,
                "alive": bool(slot.process is not None and slot.process.is_alive()),
                "started": slot.started,
                "queries": slot.stats.total if slot.stats is not None else 0,
            }
            for slot in self.slots
        ]

    def pids(self) -> list[int]:
        return [slot.process.pid for slot in self.slots if slot.process is not None]

    async def stop(self) -> None:
        """SIGTERM every worker by PID, wait, SIGKILL what is left; never restart while stopping."""
        self._stopping = True
        if self._monitor is not None:
            self._monitor.cancel()
        everyone = self.slots + self.pending + self.draining
        for slot in everyone:
            if slot.process is not None:
                slot.process.signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT
        for slot in everyone:
            while slot.process is not None and slot.process.is_alive() and time.monotonic() < deadline:
                self._read(slot)
                await asyncio.sleep(0.05)
            if slot.process is not None and slot.process.is_alive():
                log.warning("event=worker-kill worker=%d pid=%s reason=did-not-stop", slot.index, slot.process.pid)
                slot.process.signal(signal.SIGKILL)
                while slot.child.is_alive() and time.monotonic() < deadline + 2.0:
                    await asyncio.sleep(0.01)
            self._close(slot)
        for bound in self.sockets:
            for _, tcp, udp in bound:
                tcp.close()
                udp.close()
        self.sockets = []

    # -- internals ---------------------------------------------------------------------------
    @staticmethod
    def _collect_garbage() -> None:
        """Collect once (a reload's old engine may hold cycles), then freeze what is left before forking:
        frozen objects are never touched by a collection, so their pages stay shared with the workers."""
        gc.unfreeze()
        gc.collect()
        gc.freeze()

    def _spawn(self, slot: _Slot) -> _Slot:
        """Fork a worker into ``slot`` from the supervisor as it is now (its engine, its snapshot)."""
        config, engine = self.running()
        ours, theirs = pair()
        gc.freeze()  # whatever is new since the last fork: shared from now on
        pid = fork_worker(slot.index, engine, self.snapshot(), config.server, self.sockets[slot.index], theirs)
        theirs.close()
        slot.process, slot.conn, slot.started, slot.failure = _Child(pid), ours, False, None
        slot.spawned_at, slot.stats, slot.gslb, slot.applied = time.monotonic(), None, None, 0
        slot.outbox, slot.wake = [], asyncio.Event()
        slot.sender = asyncio.create_task(self._feed(slot, ours), name=f"geodns-worker-feed-{slot.index}")
        return slot

    async def _started(self, slots: list[_Slot], timeout: float) -> bool:
        """Wait until every one of ``slots`` answers; False when one failed, exited or the time is up."""
        deadline = time.monotonic() + timeout
        while not all(slot.started for slot in slots):
            for slot in slots:
                self._read(slot)
                if not slot.started and (slot.failure or not slot.child.is_alive()):
                    self._read(slot)
                    log.error(
                        "event=worker-start-failed worker=%d error=%r",
                        slot.index,
                        slot.failure or f"exited with {slot.child.exitcode}",
                    )
                    return False
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def _feed(self, slot: _Slot, conn: Channel) -> None:
        """Send queued messages through the loop: a busy worker never blocks the supervisor."""
        try:
            while True:
                await slot.wake.wait()
                slot.wake.clear()
                while slot.outbox and slot.conn is conn:
                    _, blob = slot.outbox.pop(0)
                    await conn.send(blob)
        except OSError:
            pass  # the worker is gone; the monitor starts another

    def _read(self, slot: _Slot) -> None:
        """Handle everything the worker has sent so far (whole messages; a partial one waits)."""
        if slot.conn is None:
            return
        for message in slot.conn.receive():
            if message[0] == "started":
                slot.started = True
            elif message[0] == "failed":
                slot.failure = message[1]
            elif message[0] == "stats":
                slot.stats, slot.gslb, slot.listeners = message[1], message[2], message[3]
            elif message[0] == "applied":
                slot.applied = message[1]
            elif message[0] == "draining":
                slot.draining = True

    def _drain(self, slot: _Slot) -> None:
        """Ask a replaced worker to stop (it finishes what it holds); the monitor reaps it."""
        slot.drain_until = time.monotonic() + DRAIN_GRACE + STOP_WAIT
        slot.child.signal(signal.SIGTERM)
        self.draining.append(slot)

    def _close(self, slot: _Slot) -> None:
        self._read(slot)  # the last counters a stopping worker sent
        if slot.sender is not None:
            slot.sender.cancel()
        if slot.conn is not None:
            slot.conn.close()
        if slot.stats is not None:
            self.retired.add(slot.stats)
            self.retired.dnssec.expiry = 0.0  # an exited worker holds no signatures: its counts stay, not its expiry
        if slot.gslb is not None:
            self.retired_gslb.add(slot.gslb)
        self.retired_listeners = add_reports(
            self.retired_listeners + [dict(report, tcp_open=0) for report in slot.listeners]
        )
        slot.listeners = []
        slot.conn, slot.sender, slot.stats, slot.gslb = None, None, None, None

    async def _watch(self) -> None:
        """Read worker messages; fork a worker again when one has died; reap drained ones."""
        while not self._stopping:
            for slot in list(self.draining):
                self._read(slot)
                if slot.child.is_alive():
                    if time.monotonic() > slot.drain_until:
                        log.warning(
                            "event=worker-kill worker=%d pid=%s reason=did-not-drain", slot.index, slot.child.pid
                        )
                        slot.child.signal(signal.SIGKILL)
                    continue
                self._close(slot)
                self.draining.remove(slot)
            for slot in self.slots:
                self._read(slot)
                process = slot.process
                if process is None or process.is_alive():
                    continue
                if slot.conn is not None:
                    log.warning(
                        "event=worker-died worker=%d pid=%s exitcode=%s", slot.index, process.pid, process.exitcode
                    )
                    self._close(slot)
                if time.monotonic() - slot.spawned_at < RESTART_MIN_INTERVAL or self._reload_lock.locked():
                    continue  # crashing at once: do not spin; reloading: the new one comes
                try:
                    self._spawn(slot)
                except OSError as exc:
                    log.error("event=worker-restart-failed worker=%d error=%r", slot.index, exc)
                    continue
                self.restarts += 1
                log.info("event=worker-restarted worker=%d pid=%s", slot.index, slot.child.pid)
            await asyncio.sleep(MONITOR_INTERVAL)
