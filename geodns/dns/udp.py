"""UDP in batches: up to 64 datagrams per system call, and the memo's hits answered in C.

Why: answering a cached query takes about a microsecond of real work, and the
three system calls around each datagram (readiness, recvfrom, sendto) cost more
than that; so do the interpreter's frames around it (slicing, calls, counting).
So the loop is C (``_mmsg.c``): recvmmsg(2) fills 64 slots, each datagram is
answered, sendmmsg(2) sends the answers.  A datagram whose query (after its ID)
is a key of the fast path's memo (or, with the sender's address text, one of
its keys for answers that depend on the resolver's address) is answered there
and then, with the ID spliced onto the stored tail; every other one goes to
the handler, as asyncio's
endpoint would give it (the memo is a cache of what the handler answered, so
both give the same bytes; tests/test_udp_batch.py compares them).

``MemoFeed`` is all this needs of the answer path (dns/ knows nothing of it;
geodns/answer/feed.py is the engine's): the memo before each call, fresh, and
the counts of the hits after it, for the counters ``engine.handle`` keeps.
A readiness event reads at most four batches before the event loop runs the
rest (TCP, timers).  Without the compiled module (no compiler at install, not
Linux) ``Listener`` keeps asyncio's datagram endpoint and every query takes
the handler.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from typing import Protocol

from .safe import Handler, answer_safely

try:
    from . import _mmsg
except ImportError:  # built where a compiler was at hand (pyproject.toml: optional)
    _mmsg = None  # type: ignore[assignment]

log = logging.getLogger("geodns.dns")

AVAILABLE = _mmsg is not None and sys.platform.startswith("linux")
MAX_CLIENTS = 65536  # sender addresses kept as text; cleared when full


class MemoFeed(Protocol):
    """What the reader asks of the answer path to answer memo hits itself."""

    bounds: tuple[float, ...]  # upper bounds (seconds) of the answer-time histogram ``account`` gets

    def memo(self) -> tuple[dict, tuple | None] | None:
        """The memo (query after its ID -> entry), fresh for the batches about to be read, and a hook
        asked after it ((capsule, context), _mmsg.h) or None; None: no memo."""

    def account(self, counted: tuple) -> None:
        """Count the memo's hits of one call: (hits, with ECS, nanoseconds, histogram, ((key, n), ...))."""


class BatchUDP:
    """Serves one bound, non-blocking UDP socket through the running loop's reader callback."""

    def __init__(self, sock: socket.socket, handler: Handler, stats, feed: MemoFeed | None = None):
        assert _mmsg is not None
        self.sock, self.handler, self.stats, self.feed = sock, handler, stats, feed
        self._batch = _mmsg.Batch(sock.fileno(), sock.family == socket.AF_INET6, feed.bounds if feed else ())
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clients: dict[int | bytes, str] = {}  # sender key -> address text, as recvfrom gives it

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.sock.fileno(), self._ready)

    def close(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self.sock.fileno())
            self._loop = None
        self.sock.close()

    def _ready(self) -> None:
        feed, stats = self.feed, self.stats
        memo = hook = None
        if feed is not None:
            try:
                memo, hook = feed.memo() or (None, None)
            except Exception:  # the answer path's bug must not stop UDP: the handler answers all
                stats.handler_errors += 1
                log.debug("the memo's freshness check failed; this batch takes the handler", exc_info=True)
        received, counted, errors, error = self._batch.serve(memo, self._slow, self._clients, hook)
        stats.udp_queries += received
        if errors:
            # The memo's or the hook's Python raised for these datagrams; the handler answered them
            # (and counts once more each that fails there too: a bug shows as at least one error).
            stats.handler_errors += errors
            log.debug("the memo or its hook failed for %d datagrams", errors, exc_info=error)
        if counted is not None:
            assert feed is not None
            feed.account(counted)

    def _slow(self, data: bytes, key: int | bytes) -> bytes | None:
        """A datagram the memo does not answer: the handler's answer, contained as the endpoint's is."""
        client = self._clients.get(key)
        if client is None:
            client = self._client(key)
        return answer_safely(self.handler, data, client, False, self.stats)

    def _client(self, key: int | bytes) -> str:
        """The sender's address as text, remembered under ``key``: an IPv4 sockaddr's address as the
        host stored it (an int), an IPv6 one's 16 octets and scope id."""
        if isinstance(key, int):
            text = socket.inet_ntop(socket.AF_INET, key.to_bytes(4, sys.byteorder))
        else:
            text = socket.inet_ntop(socket.AF_INET6, key[:16])
            scope = int.from_bytes(key[16:], sys.byteorder)
            if scope:
                try:
                    text += "%" + socket.if_indextoname(scope)
                except OSError:
                    text += f"%{scope}"
        if len(self._clients) >= MAX_CLIENTS:
            self._clients.clear()  # bounded: the resolvers in use come back at once
        self._clients[key] = text
        return text
