"""Run a real geodns Server on free loopback ports, in a thread of its own.

Tests then talk to it with dnspython's blocking client over real UDP and TCP
sockets, exactly as a resolver would.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import threading
from pathlib import Path

from geodns.process.server import Server, Settings

DATA = Path(__file__).resolve().parent / "data"
GEOIP_TEST_DB = DATA / "geo" / "GeoIP2-City-Test.mmdb"

# The GSLB end-to-end tests' zone: only the apex; the GSLB records come from the config.
GSLB_ZONE = """\
$ORIGIN gslb.example.com.
$TTL 300
@    IN SOA ns1 hostmaster.example.com. 1 7200 900 1209600 60
@    IN NS  ns1
ns1  IN A   192.0.2.53
"""


class RunningServer:
    """One Server answering from this process: ``workers`` is 1 unless the test says otherwise, since
    these tests look at the engine in process (tests/test_workers.py runs the worker tree for real)."""

    def __init__(self, settings: Settings, loop_factory=asyncio.new_event_loop):
        if settings.workers is None:
            settings = dataclasses.replace(settings, workers=1)
        self.server = Server(settings)
        self.loop = loop_factory()  # uvloop.new_event_loop: as `geodns serve` runs
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        try:
            self.call(self.server.start())
        except BaseException:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            raise

    def call(self, coro, timeout: float = 10.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def run(self, fn, *args):
        async def wrapper():
            return fn(*args)

        return self.call(wrapper())

    @property
    def host(self) -> str:
        return self.server.listeners[0].host

    @property
    def port(self) -> int:
        return self.server.listeners[0].port

    def reload(self) -> bool:
        return self.call(self.server.reload())

    def stop(self) -> None:
        try:
            self.call(self.server.stop(), timeout=30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def read_frame(sock: socket.socket) -> bytes:
    """One DNS message off a TCP stream (RFC 1035 4.2.2: a two-octet length, then the message)."""

    def exactly(n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("closed")
            out += chunk
        return out

    return exactly(int.from_bytes(exactly(2), "big"))
