"""Framed messages between the supervisor and its workers, over a non-blocking socket pair.

A message is a pickled tuple behind an 8-octet length.  Both ends read
whatever has arrived into a buffer and hand out only whole messages, so a
message of any size may arrive in as many pieces as the kernel likes: a
partial one is simply awaited.  Only end-of-file (the other process closed
its end or died) means the peer is gone.  Writes go through the event loop
(``loop.sock_sendall``), so a large message never blocks it.
"""

from __future__ import annotations

import asyncio
import copyreg
import pickle
import socket
import struct
from collections import deque
from types import MappingProxyType
from typing import Any

HEADER = struct.Struct("!Q")
READ_CHUNK = 1 << 20


def read_only(mapping: dict) -> MappingProxyType:
    return MappingProxyType(mapping)


def _reduce_proxy(proxy: MappingProxyType) -> tuple:
    return read_only, (dict(proxy),)


copyreg.pickle(MappingProxyType, _reduce_proxy)  # snapshots hold read-only mappings


def frame(*message: Any) -> bytes:
    """One message as it goes on the wire."""
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(body)) + body


def pair() -> tuple[Channel, socket.socket]:
    """A channel for this process and the socket the other process makes its channel from."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return Channel(ours), theirs


class Channel:
    """One end: ``receive()`` the whole messages that have arrived, ``post()`` messages to send in order."""

    def __init__(self, sock: socket.socket):
        sock.setblocking(False)
        self.sock = sock
        self.buffer = bytearray()
        self.closed = False  # the peer's end reached EOF (or failed)
        self._queue: deque[bytes] = deque()
        self._sender: asyncio.Task | None = None

    def fileno(self) -> int:
        return self.sock.fileno()

    def receive(self) -> list[tuple]:
        """Every whole message that has arrived; sets ``closed`` at EOF (whole messages before it still count)."""
        while not self.closed:
            try:
                chunk = self.sock.recv(READ_CHUNK)
            except (BlockingIOError, InterruptedError):
                break  # nothing more for now: a partial message waits in the buffer
            except OSError:
                self.closed = True
                break
            if not chunk:
                self.closed = True
                break
            self.buffer += chunk
        messages, buf, at = [], self.buffer, 0
        while len(buf) - at >= HEADER.size:
            (length,) = HEADER.unpack_from(buf, at)
            if len(buf) - at - HEADER.size < length:
                break
            start = at + HEADER.size
            messages.append(pickle.loads(memoryview(buf)[start : start + length]))
            at = start + length
        if at:
            del buf[:at]
        return messages

    async def send(self, data: bytes) -> None:
        """Send one framed message (``frame``), however long, without blocking the loop; raises OSError."""
        await asyncio.get_running_loop().sock_sendall(self.sock, data)

    def post(self, *message: Any) -> None:
        """Queue a message; a sender task writes the queue in order.  Lost if the peer is gone (no error)."""
        if self.closed:
            return
        self._queue.append(frame(*message))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self._queue:
                await self.send(self._queue.popleft())
        except OSError:
            self._queue.clear()

    async def flush(self, timeout: float) -> None:
        """Wait (a little) until queued messages are written, e.g. the last counters before exiting."""
        if self._sender is not None and not self._sender.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._sender), timeout)
            except (asyncio.TimeoutError, OSError):
                pass

    def close(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
        self.sock.close()
