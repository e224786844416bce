"""DNS over TCP under a budget: framing, flow control, deadlines, and each source's share of the slots.

TCP is where truncated answers go, so it must stay usable while someone abuses it
(RFC 7766 §6.2 asks servers to protect it).  Four rules do that:

* **Flow control** (as uvicorn's FlowControl): while more than ``HIGH_WATER`` octets of
  answers wait for a client to read them, we stop reading its queries, and we answer
  what is already buffered only as the writes drain.  A client that pipelines and
  never reads costs at most one read of queries plus ``HIGH_WATER`` and one answer.
* **Deadlines a drip cannot extend**: a message must be complete within
  ``message_timeout`` of its first octet, and an open connection with nothing in
  flight is closed ``idle_timeout`` after its last answered query (or its opening),
  whatever single octets arrive in between.  A client that does not read its answers
  gets ``idle_timeout`` to drain them.
* **A share per source**: one source (an IPv4 address, an IPv6 /64) holds at most
  ``source_share`` of ``max_connections``; its next connection is refused.  When the
  table is full, a newcomer from a lighter source takes the slot of the heaviest
  source's connection that has gone longest without an answered query.
* **Fair turns**: at most ``BATCH`` queries are answered per event-loop turn; the rest
  wait in the buffer (reading paused) so other clients are not starved.

The clock is the event loop's (monotonic); no timer is touched per octet.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .safe import answer_safely

if TYPE_CHECKING:
    from .listener import Listener

HIGH_WATER = 64 * 1024  # octets of unsent answers above which we stop reading a client
LOW_WATER = 16 * 1024  # ... and below which we read (and answer) again
BATCH = 64  # queries answered per loop turn for one connection
_SLACK = 0.005  # timers may fire a little early (uvloop counts in ms)


@dataclass(frozen=True)
class TcpLimits:
    """The ``server.tcp_*`` settings one listener applies."""

    idle_timeout: float = 10.0  # nothing in flight, since the last answered query
    message_timeout: float = 5.0  # from a message's first octet to its last
    max_connections: int = 256  # per listener (per worker process)
    source_share: float = 0.25  # of max_connections, per source

    @property
    def per_source(self) -> int:
        return max(1, int(self.max_connections * self.source_share))

    @classmethod
    def from_config(cls, server) -> TcpLimits:
        """From a ``ServerConfig``."""
        return cls(
            server.tcp_idle_timeout, server.tcp_message_timeout, server.tcp_max_connections, server.tcp_source_share
        )


def source_of(ip: str) -> str:
    """What a connection share is counted per: an IPv4 address, or the IPv6 /64 around the
    address (one subscriber usually holds a whole /64, so per-address would mean no limit)."""
    if ":" not in ip:
        return ip
    try:
        return str(ipaddress.IPv6Network((ip.partition("%")[0], 64), strict=False))
    except ValueError:
        return ip


def admission(open_now: int, limits: TcpLimits, own: int, heaviest: int) -> str:
    """What to do with a new connection from a source that holds ``own`` of the ``open_now``
    connections, when the heaviest source holds ``heaviest``: "accept", "refuse", or
    "evict" (accept it in place of one of the heaviest source's connections).

    Evicting only when the heaviest holds at least two more than the newcomer's source
    keeps the shares from swapping back and forth."""
    if own >= limits.per_source:
        return "refuse"
    if open_now < limits.max_connections:
        return "accept"
    return "evict" if heaviest > own + 1 else "refuse"


class TcpTable:
    """A listener's open connections, by source."""

    def __init__(self, limits: TcpLimits, stats):
        self.limits = limits
        self.stats = stats
        self.open: set[TcpConnection] = set()
        self.by_source: dict[str, set[TcpConnection]] = {}

    def admit(self, conn: TcpConnection) -> bool:
        """Take ``conn`` in (evicting another if the rules say so), or say it must go."""
        own = self.by_source.get(conn.source, ())
        heaviest: set[TcpConnection] = set()
        if len(self.open) >= self.limits.max_connections and self.by_source:
            heaviest = max(self.by_source.values(), key=len)
        verdict = admission(len(self.open), self.limits, len(own), len(heaviest))
        if verdict == "refuse":
            self.stats.tcp_refused += 1
            return False
        if verdict == "evict":
            victim = min(heaviest, key=lambda c: c.last_answer)
            self.discard(victim)
            victim.drop()
            self.stats.tcp_evicted += 1
        self.open.add(conn)
        self.by_source.setdefault(conn.source, set()).add(conn)
        self.stats.tcp_connections += 1
        return True

    def discard(self, conn: TcpConnection) -> None:
        if conn in self.open:
            self.open.discard(conn)
            mine = self.by_source[conn.source]
            mine.discard(conn)
            if not mine:
                del self.by_source[conn.source]


class TcpConnection(asyncio.Protocol):
    """One TCP client: 2-octet length framing, pipelined queries, the rules above."""

    def __init__(self, listener: Listener):
        self.listener = listener
        self.limits = listener.limits
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.loop: asyncio.AbstractEventLoop  # set by connection_made, before any use
        self.client = "?"
        self.source = "?"
        self.last_answer = 0.0  # when a query was last answered (or the connection opened)
        self.message_start: float | None = None  # first octet of the unfinished message
        self.deadline = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0
        self.writing_paused = False  # the transport holds more than HIGH_WATER unsent
        self.reading = True
        self.next_turn: asyncio.Handle | None = None  # set while complete queries wait in the buffer

    # -- the transport's calls ---------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.client = peer[0] if peer else "?"
        self.source = source_of(self.client)
        if not self.listener.table.admit(self):
            transport.abort()
            return
        self.loop = asyncio.get_running_loop()
        transport.set_write_buffer_limits(high=HIGH_WATER, low=LOW_WATER)
        self.last_answer = self.loop.time()
        self._set_deadline(self.last_answer + self.limits.idle_timeout)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.next_turn is None:
            self._answer()

    def pause_writing(self) -> None:
        self.writing_paused = True
        self._sync_reading()
        # The client has the idle time to read its answers; reading them resumes us.
        self._set_deadline(self.loop.time() + self.limits.idle_timeout)

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self.next_turn is None and self.transport is not None:
            self.next_turn = self.loop.call_soon(self._answer)

    def connection_lost(self, exc) -> None:
        for handle in (self.timer, self.next_turn):
            if handle is not None:
                handle.cancel()
        self.timer = self.next_turn = None
        self.listener.table.discard(self)
        self.transport = None

    # -- answering -----------------------------------------------------------------------------
    def _answer(self) -> None:
        """Answer the complete queries in the buffer, as many as flow control and the turn allow."""
        self.next_turn = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        buf = self.buffer
        listener = self.listener
        stats = listener.stats
        answered = 0
        while len(buf) >= 2 and not self.writing_paused:
            length = (buf[0] << 8) | buf[1]
            if length == 0:
                transport.close()
                return
            if len(buf) < 2 + length:
                break
            if answered == BATCH:  # the rest on the next turn, after other clients
                self.next_turn = self.loop.call_soon(self._answer)
                break
            message = bytes(buf[2 : 2 + length])
            del buf[: 2 + length]
            answered += 1
            stats.tcp_queries += 1
            response = answer_safely(listener.handler, message, self.client, True, stats)
            if response is not None and not transport.is_closing():
                transport.write(len(response).to_bytes(2, "big") + response)
        now = self.loop.time()
        if answered:
            self.last_answer = now
            self.message_start = None
        self._sync_reading()
        if self.writing_paused or self.next_turn is not None:
            return  # pause_writing set the deadline; or we go on at once
        if not buf:
            self._set_deadline(self.last_answer + self.limits.idle_timeout)
        else:
            if self.message_start is None:
                self.message_start = now
            self._set_deadline(self.message_start + self.limits.message_timeout)

    def _sync_reading(self) -> None:
        """Read only while answers drain and no complete query waits for its turn."""
        want = not self.writing_paused and self.next_turn is None
        transport = self.transport
        if want != self.reading and transport is not None and not transport.is_closing():
            if want:
                transport.resume_reading()
            else:
                transport.pause_reading()
            self.reading = want

    # -- deadlines -------------------------------------------------------------------------------
    def _set_deadline(self, when: float) -> None:
        """Move the deadline; the timer is re-armed only when it must fire sooner."""
        self.deadline = when
        if self.timer is None or when < self.timer_at:
            if self.timer is not None:
                self.timer.cancel()
            self.timer_at = when
            self.timer = self.loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self.timer = None
        if self.transport is None:
            return
        if self.loop.time() + _SLACK < self.deadline:  # moved later since: wait for it
            self.timer_at = self.deadline
            self.timer = self.loop.call_at(self.deadline, self._on_timer)
            return
        if self.message_start is not None or self.writing_paused:
            self.listener.stats.tcp_timed_out += 1  # a drip or a client that does not read
        self.drop()

    def drop(self) -> None:
        """Close now: gracefully when nothing is left to send, else at once (a client that does
        not read would hold a graceful close open for ever)."""
        transport = self.transport
        if transport is None:
            return
        if transport.get_write_buffer_size():
            transport.abort()
        else:
            transport.close()
