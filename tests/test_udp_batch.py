"""UDP listeners: every answer goes back to the socket its query came from, however many
datagrams one system call reads (geodns/dns/udp.py) and with asyncio's endpoint alike.

The datagrams are queued on the listener's socket before it starts reading, so the
batch reader meets them 64 at a time: answers dropped by the handler, a handler that
raises and a datagram of 60,000 octets sit among the others.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading

import pytest

from geodns.dns.listener import Listener
from geodns.dns.udp import AVAILABLE

CLIENTS = 24
EACH = 12  # 312 datagrams: more than four batches of 64


def handler(data: bytes, client: str, tcp: bool) -> bytes | None:
    if data.startswith(b"drop"):
        return None
    if data[2:4] == b"\x01\x00" and len(data) == 12:  # a DNS header: the handler fails on it
        raise RuntimeError("a handler bug")
    return client.encode() + b"|" + data


def _family_host() -> list:
    found = [pytest.param(socket.AF_INET, "127.0.0.1", id="IPv4")]
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        found.append(pytest.param(socket.AF_INET6, "::1", id="IPv6"))
    except OSError:
        pass
    return found


@pytest.mark.parametrize("batch", [True, False] if AVAILABLE else [False], ids=lambda b: f"batch={b}")
@pytest.mark.parametrize("family,host", _family_host())
def test_each_answer_goes_back_to_its_own_sender(batch, family, host):
    udp = socket.socket(family, socket.SOCK_DGRAM)
    udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    udp.bind((host, 0))
    udp.setblocking(False)
    port = udp.getsockname()[1]
    tcp = socket.socket(family, socket.SOCK_STREAM)
    tcp.bind((host, 0))
    tcp.listen(16)
    tcp.setblocking(False)

    clients = [socket.socket(family, socket.SOCK_DGRAM) for _ in range(CLIENTS)]
    expected: dict[int, list[bytes]] = {}
    for n, client in enumerate(clients):
        client.bind((host, 0))
        client.settimeout(5)
        wanted = expected[n] = []
        for k in range(EACH):
            if k % 5 == 4:
                client.sendto(b"drop me", (host, port))  # no answer at all
                continue
            if n == 3 and k == 7:
                query = struct.pack("!HHHHHH", 0xBEEF, 0x0100, 0, 0, 0, 0)  # the handler raises: SERVFAIL
                client.sendto(query, (host, port))
                wanted.append(struct.pack("!HHHHHH", 0xBEEF, 0x8102, 0, 0, 0, 0))
                continue
            payload = f"client {n} datagram {k}".encode()
            if n == 5 and k == 2:
                payload += b"x" * 60_000  # any datagram arrives whole
            client.sendto(payload, (host, port))
            wanted.append(host.encode() + b"|" + payload)
        # Last, from each: its answer comes last, so nothing unanswered was answered after all.
        client.sendto(b"last", (host, port))
        wanted.append(host.encode() + b"|last")

    loop = asyncio.new_event_loop()
    listener = Listener(host, port, handler, sockets=(tcp, udp), batch_udp=batch)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(listener.start(), loop).result(10)
        for n, client in enumerate(clients):
            got = [client.recv(65_535) for _ in expected[n]]
            assert got == expected[n], f"client {n}"
        assert listener.stats.udp_queries == CLIENTS * (EACH + 1)
        assert listener.stats.handler_errors == 1
    finally:
        asyncio.run_coroutine_threadsafe(listener.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        for client in clients:
            client.close()
    assert udp.fileno() == -1  # the listener closed its socket
