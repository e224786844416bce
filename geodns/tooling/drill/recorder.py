"""Steady-rate sampling: every client asks every ``period`` seconds while the drill runs.

One thread per client keeps the rate steady even when a server hangs (a slow
attempt delays only that client's next sample).  Queries rotate the first
server asked, as resolvers spread load over NS records, so a dead server is
really asked; the answer a client ends up with is what it would have used.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from ..dnsclient import Reply, resolve


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the recording started
    client: str
    answer: tuple[str, ...]  # addresses of the final reply
    rcode: str  # of the final reply
    attempts: tuple[Reply, ...]

    @property
    def failed(self) -> bool:
        """What a client would see as an outage: no server gave a usable reply, or the reply
        had no address (NODATA for a GSLB name leaves the client with nowhere to go)."""
        return self.rcode != "NOERROR" or not self.answer


class Recorder:
    def __init__(
        self, servers: list[str], name: str, clients: dict[str, str], period: float = 0.1, timeout: float = 0.5
    ):
        self.servers, self.name, self.clients = servers, name, clients
        self.period, self.timeout = period, timeout
        self.samples: list[Sample] = []
        self.events: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._t0 = 0.0

    def now(self) -> float:
        return time.monotonic() - self._t0

    def mark(self, label: str) -> float:
        t = self.now()
        with self._lock:
            self.events.append((t, label))
        return t

    def start(self) -> Recorder:
        self._t0 = time.monotonic()
        for i, (client, subnet) in enumerate(self.clients.items()):
            thread = threading.Thread(target=self._loop, args=(client, subnet, i), daemon=True, name=f"drill-{client}")
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout * len(self.servers) + 2)

    def _loop(self, client: str, subnet: str, offset: int) -> None:
        n = offset
        next_at = time.monotonic()
        while not self._stop.is_set():
            t = self.now()
            reply, attempts = resolve(self.servers, self.name, "A", subnet, self.timeout, start=n)
            sample = Sample(t, client, reply.addresses, reply.rcode, tuple(attempts))
            with self._lock:
                self.samples.append(sample)
            n += 1
            next_at += self.period
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                next_at = time.monotonic()

    def sleep(self, seconds: float) -> None:
        """Wait while recording (returns early only if stopped)."""
        self._stop.wait(seconds)

    def wait_for(self, predicate, timeout: float, step: float = 0.05) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(step)
        return predicate()
