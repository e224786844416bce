"""UDP and TCP listeners: sockets and framing, nothing about DNS data.

Each listen address gets a UDP socket and a TCP server on the same port.  The
handler is called synchronously per message (the query path never awaits);
whatever goes wrong inside it is contained (geodns/dns/safe.py), so one bad
packet can never take a listener down.  TCP's budget (flow control, deadlines,
per-source shares) is geodns/dns/tcp.py.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass, field

from .safe import Handler, answer_safely
from .tcp import TcpConnection, TcpLimits, TcpTable
from .udp import AVAILABLE, BatchUDP, MemoFeed

log = logging.getLogger("geodns.dns")


def add_reports(reports: list[dict]) -> list[dict]:
    """``Listener.report``s of several processes on the same addresses, summed per address."""
    total: dict[str, dict] = {}
    for report in reports:
        into = total.setdefault(report["address"], dict.fromkeys(report, 0) | {"address": report["address"]})
        for key, value in report.items():
            if key != "address":
                into[key] += value
    return list(total.values())


@dataclass
class ListenerStats:
    udp_queries: int = 0
    tcp_queries: int = 0
    tcp_connections: int = 0
    tcp_refused: int = 0  # over the table or the source's share
    tcp_evicted: int = 0  # closed to make room for a lighter source
    tcp_timed_out: int = 0  # a message not finished in time, or answers not read
    handler_errors: int = 0


class _UDP(asyncio.DatagramProtocol):
    def __init__(self, handler: Handler, stats: ListenerStats):
        self.handler = handler
        self.stats = stats
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.stats.udp_queries += 1
        response = answer_safely(self.handler, data, addr[0], False, self.stats)
        if response is not None and self.transport is not None:
            self.transport.sendto(response, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("udp error: %s", exc)


@dataclass
class Listener:
    """One HOST:PORT, served over UDP and TCP."""

    host: str
    port: int
    handler: Handler
    limits: TcpLimits = field(default_factory=TcpLimits)
    stats: ListenerStats = field(default_factory=ListenerStats)
    udp: BatchUDP | asyncio.DatagramTransport | None = None
    tcp: asyncio.base_events.Server | None = None
    reuse_port: bool = False  # SO_REUSEPORT: several worker processes share this address
    sockets: tuple | None = None  # (TCP, UDP) already bound: a worker's, from its supervisor
    batch_udp: bool = True  # recvmmsg/sendmmsg (udp.py) where the platform has them; else asyncio's endpoint
    feed: MemoFeed | None = None  # the answer path's memo, for the batched reader to answer its hits itself

    def __post_init__(self) -> None:
        self.table = TcpTable(self.limits, self.stats)

    @property
    def connections(self) -> set[TcpConnection]:
        return self.table.open

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.sockets is not None:
            tcp_sock, udp_sock = self.sockets
        else:
            attempts = 20 if self.port == 0 else 1  # port 0: TCP's free port may be taken for UDP
            for attempt in range(attempts):
                try:
                    tcp_sock, udp_sock = bound_pair(self.host, self.port, self.reuse_port)
                    break
                except OSError:
                    if attempt + 1 == attempts:
                        raise
        self.port = tcp_sock.getsockname()[1]
        self.tcp = await loop.create_server(lambda: TcpConnection(self), sock=tcp_sock, backlog=1024)
        if self.batch_udp and AVAILABLE:
            batch = BatchUDP(udp_sock, self.handler, self.stats, self.feed)
            batch.start()
            self.udp = batch
        else:
            self.udp, _ = await loop.create_datagram_endpoint(lambda: _UDP(self.handler, self.stats), sock=udp_sock)

    async def close(self) -> None:
        if self.udp is not None:
            self.udp.close()
        if self.tcp is not None:
            self.tcp.close()
            for conn in list(self.connections):
                conn.drop()
            await self.tcp.wait_closed()

    def report(self) -> dict:
        """Its counters and open TCP connections, as the status API and /metrics show them."""
        return {"address": self.address, "tcp_open": len(self.connections), **vars(self.stats)}

    @property
    def udp_loop(self) -> str:
        """How UDP is served: "compiled" (udp.py's loop in C) or "asyncio" (its datagram endpoint)."""
        return "compiled" if isinstance(self.udp, BatchUDP) else "asyncio"

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def bound_pair(host: str, port: int, reuse_port: bool = False) -> tuple[socket.socket, socket.socket]:
    """A TCP and a UDP socket bound to ``host:port`` (a port of 0: the one TCP was given); on an
    error neither stays bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    tcp = _bound_socket(family, socket.SOCK_STREAM, host, port, reuse_port)
    try:
        return tcp, _bound_socket(family, socket.SOCK_DGRAM, host, tcp.getsockname()[1], reuse_port)
    except OSError:
        tcp.close()
        raise


def _bound_socket(
    family: int, kind: int, host: str, port: int, reuse_port: bool = False, listen: bool = True
) -> socket.socket:
    """A bound, non-blocking socket; ``listen=False`` only holds a port (see geodns/process/workers.py)."""
    sock = socket.socket(family, kind)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        else:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            except OSError:
                pass
        sock.bind((host, port))
        if kind == socket.SOCK_STREAM and listen:
            sock.listen(1024)
        sock.setblocking(False)
        return sock
    except OSError:
        sock.close()
        raise
