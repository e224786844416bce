"""DNS over TCP under abuse, over real sockets: drips, pipeliners that never read, one address
taking every slot.  The attackers are plain sockets bound to 127.0.0.2 (and .3); the user they
must not lock out is dnspython asking from 127.0.0.1."""

from __future__ import annotations

import asyncio
import re
import socket
import struct
import threading
import time
import urllib.request
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest
import uvloop

from geodns.config.load import config_from_text
from geodns.dns.tcp import TcpLimits, admission, source_of
from geodns.errors import ConfigError
from geodns.process.server import Settings
from tests.conftest import TEST_ZONE
from tests.dnsserver import RunningServer, read_frame, write
from tests.polling import wait_for
from tests.test_cli import Proc

ZONE = "gslb.example.com."
LOOPS = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


def start(zone_dir: Path, tmp_path: Path, server_keys: str, loop: str = "asyncio") -> RunningServer:
    config = write(
        tmp_path / "tcp.yaml",
        f"""
server:
  dns_listen: ["127.0.0.1:0"]
  http_listen: null
{server_keys}
zones: ["{zone_dir / "gslb.example.com.zone"}"]
""",
    )
    return RunningServer(Settings(config_path=config), loop_factory=LOOPS[loop])


def frame(name: str, qid: int, rdtype: str = "A") -> bytes:
    wire = dns.message.make_query(name, rdtype, id=qid).to_wire()
    return struct.pack("!H", len(wire)) + wire


def connect(port: int, source: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.settimeout(3)
    sock.connect(("127.0.0.1", port))
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed (or reset) it, without waiting."""
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.settimeout(3)


def ask_tcp(port: int, name: str = "www." + ZONE, source: str = "127.0.0.1"):
    return dns.query.tcp(dns.message.make_query(name, "A"), "127.0.0.1", port=port, timeout=3, source=source)


# -- 300 drips from one address ----------------------------------------------------------------------
class Dripper(threading.Thread):
    """``count`` connections from ``source``, each sending one octet of a (256-octet) query every
    ``interval``; what the server closes is opened again, as an attacker would."""

    QUERY = b"\x01\x00" + bytes(256)

    def __init__(self, port: int, source: str, count: int, interval: float):
        super().__init__(daemon=True)
        self.port, self.source, self.count, self.interval = port, source, count, interval
        self.stop = threading.Event()
        self.connects = 0
        self.rounds = 0

    def run(self) -> None:
        socks: list[socket.socket | None] = [None] * self.count
        sent = [0] * self.count
        try:
            while not self.stop.is_set():
                for i in range(self.count):
                    sock = socks[i]
                    if sock is not None and closed_by_server(sock):
                        sock.close()
                        sock = socks[i] = None
                    if sock is None:
                        try:
                            sock = socks[i] = connect(self.port, self.source)
                        except OSError:
                            continue
                        sent[i] = 0
                        self.connects += 1
                    try:
                        sock.send(self.QUERY[sent[i] : sent[i] + 1])
                        sent[i] += 1
                    except OSError:
                        sock.close()
                        socks[i] = None
                self.rounds += 1
                self.stop.wait(self.interval)
        finally:
            for sock in socks:
                if sock is not None:
                    sock.close()


def test_300_drips_from_one_address_leave_tcp_to_everyone_else(tmp_path):
    """`geodns serve` with two workers (uvloop, the settings passed to each worker): 300 dripping
    connections from 127.0.0.2 get at most their share, so 127.0.0.1 is answered all along; the
    drips themselves are cut at the message deadline however often they send."""
    zone = write(tmp_path / "gslb.example.com.zone", TEST_ZONE)
    config = write(
        tmp_path / "geodns.yaml",
        f"""
server:
  tcp_max_connections: 100         # per worker: 200 slots, fewer than the 300 drips
  tcp_idle_timeout: 3s
  tcp_message_timeout: 1s
zones: ["{zone}"]
""",
    )
    proc = Proc("--config", str(config), "--http-listen", "127.0.0.1:0", "--workers", "2")
    dripper = Dripper(proc.port, "127.0.0.2", 300, 0.25)
    try:
        dripper.start()
        assert wait_for(lambda: dripper.rounds >= 4 and dripper.connects >= 300, 30)
        rounds = dripper.rounds
        answers = []
        # Queries from 127.0.0.1 while the drips go on, over more than one message deadline.
        while dripper.rounds < rounds + 12:
            answers.append(ask_tcp(proc.port).rcode())
            time.sleep(0.1)
        assert answers and answers == [dns.rcode.NOERROR] * len(answers)
        assert dripper.is_alive()

        def closed_by_rules() -> dict[str, float]:
            with urllib.request.urlopen(f"http://127.0.0.1:{proc.http_port}/metrics", timeout=3) as r:
                text = r.read().decode()
            return {
                m.group(1): float(m.group(2))
                for m in re.finditer(
                    r'^geodns_tcp_connections_(refused|timed_out)_total\{listen="[^"]+"\} (\S+)$', text, re.M
                )
            }

        # The drips were refused over their share and cut at the message deadline (workers report
        # their counters about once a second).
        assert wait_for(lambda: all(closed_by_rules().get(k, 0) > 0 for k in ("refused", "timed_out")), 10, 0.2), (
            closed_by_rules()
        )
    finally:
        dripper.stop.set()
        dripper.join(10)
        assert proc.stop() == 0


# -- a pipeliner that never reads ------------------------------------------------------------------
@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_a_pipeliner_that_never_reads_holds_little_server_memory(zone_dir, tmp_path, loop):
    server = start(zone_dir, tmp_path, "", loop)
    query = frame("big." + ZONE, 7)  # about 40 octets in, 1.7 kB out
    total = 40_000
    stop = threading.Event()
    sock = connect(server.port, "127.0.0.2")

    sent = 0

    def pipeline():
        """Send ``total`` queries back to back, never reading, as far as the server lets us."""
        nonlocal sent
        sock.setblocking(False)
        data = memoryview(query * total)
        while sent < len(data) and not stop.is_set():
            try:
                sent += sock.send(data[sent:])
            except BlockingIOError:
                stop.wait(0.01)

    sender = threading.Thread(target=pipeline, daemon=True)
    sender.start()

    def held() -> int:
        """Octets the server holds for its TCP clients: unsent answers and unanswered queries."""
        return sum(
            c.transport.get_write_buffer_size() + len(c.buffer)
            for c in server.server.listeners[0].connections
            if c.transport is not None
        )

    def settled():
        """All queries answered (old code) or the server has stopped reading (flow control)."""
        stats = server.server.listeners[0].stats
        return stats.tcp_queries >= total or any(
            getattr(c, "writing_paused", False) and not c.reading for c in server.server.listeners[0].connections
        )

    try:
        assert wait_for(lambda: server.run(settled), 60)
        answered = server.run(lambda: server.server.listeners[0].stats.tcp_queries)
        most = max(server.run(held) for _ in range(20))
        assert most < 2 << 20, f"{most} octets held for one client"  # old code: about 60 MB
        # Another client is answered meanwhile, and the pipeliner's own answers flow once it reads.
        assert ask_tcp(server.port).rcode() == dns.rcode.NOERROR
        stop.set()
        sender.join(10)
        sock.setblocking(True)
        sock.settimeout(5)
        assert sent // len(query) > answered + 500
        replies = [read_frame(sock) for _ in range(answered + 500)]  # past what was answered when it stopped
        assert {reply[:2] for reply in replies} == {b"\x00\x07"}
        assert len(dns.message.from_wire(replies[-1]).answer[0]) == 100
    finally:
        stop.set()
        sock.close()
        server.stop()


# -- deadlines -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_answered_queries_keep_a_connection_a_drip_does_not(zone_dir, tmp_path, loop):
    server = start(zone_dir, tmp_path, "  tcp_idle_timeout: 1.5s\n  tcp_message_timeout: 0.3s", loop)
    try:
        with connect(server.port, "127.0.0.1") as sock:
            # Queries that complete keep it open, for longer than either limit in all.
            for qid in range(10):
                sock.sendall(frame("www." + ZONE, qid))
                assert dns.message.from_wire(read_frame(sock)).id == qid
                time.sleep(0.2)
            # Then a 4 kB message, one octet at a time, each well within the idle time.
            drip = iter(b"\x10\x00" + bytes(4096))

            def cut() -> bool:
                if closed_by_server(sock):
                    return True
                sock.send(bytes([next(drip)]))
                return False

            assert wait_for(cut, 15, 0.05)
        assert server.run(lambda: server.server.listeners[0].stats.tcp_timed_out) == 1
    finally:
        server.stop()


# -- shares and eviction -------------------------------------------------------------------------------
def test_a_full_table_makes_room_from_the_heaviest_source(zone_dir, tmp_path):
    server = start(zone_dir, tmp_path, "  tcp_max_connections: 4\n  tcp_source_share: 1")
    socks = []
    try:
        socks = [connect(server.port, "127.0.0.2") for _ in range(4)]
        assert wait_for(lambda: server.run(lambda: len(server.server.listeners[0].connections)) == 4)
        # Each answers a query, the last opened first: the first opened has the freshest answer,
        # so the last opened is the one that has gone longest without one.
        for qid, sock in reversed(list(enumerate(socks))):
            sock.sendall(frame("www." + ZONE, qid))
            assert dns.message.from_wire(read_frame(sock)).id == qid
        fifth = connect(server.port, "127.0.0.2")  # over its share of a full table
        socks.append(fifth)
        assert wait_for(lambda: closed_by_server(fifth))
        # Another address is let in, in place of 127.0.0.2's stalest connection.
        assert ask_tcp(server.port).rcode() == dns.rcode.NOERROR
        assert wait_for(lambda: closed_by_server(socks[3]))
        for qid, sock in enumerate(socks[:3]):
            sock.sendall(frame("www." + ZONE, 10 + qid))
            assert dns.message.from_wire(read_frame(sock)).id == 10 + qid
        stats = server.run(lambda: server.server.listeners[0].stats)
        assert (stats.tcp_refused, stats.tcp_evicted) == (1, 1)
    finally:
        for sock in socks:
            sock.close()
        server.stop()


def test_admission_rules():
    limits = TcpLimits(max_connections=100, source_share=0.25)
    assert limits.per_source == 25
    assert admission(10, limits, own=24, heaviest=24) == "accept"
    assert admission(10, limits, own=25, heaviest=25) == "refuse"  # its share, table or not
    assert admission(100, limits, own=0, heaviest=25) == "evict"  # full: a lighter source gets in
    assert admission(100, limits, own=24, heaviest=25) == "refuse"  # ... unless it is nearly as heavy
    assert TcpLimits(max_connections=2, source_share=0.25).per_source == 1
    assert source_of("127.0.0.2") == "127.0.0.2"
    assert source_of("2001:db8:1:2:3:4:5:6") == source_of("2001:db8:1:2::99") == "2001:db8:1:2::/64"


def test_tcp_limits_are_read_and_checked(tmp_path):
    server = config_from_text(
        "server: {tcp_message_timeout: 1500ms, tcp_source_share: 0.5}\n", "geodns.yaml", tmp_path
    ).server
    assert (server.tcp_message_timeout, server.tcp_source_share) == (1.5, 0.5)
    assert TcpLimits.from_config(server) == TcpLimits(10.0, 1.5, 256, 0.5)
    with pytest.raises(ConfigError) as info:
        config_from_text("server:\n  tcp_source_share: 0\n  tcp_message_timeout: soon\n", "geodns.yaml", tmp_path)
    text = str(info.value)
    assert "geodns.yaml:2: server.tcp_source_share: must be between 0.01 and 1.0" in text
    assert "geodns.yaml:3: server.tcp_message_timeout: 'soon' is not a duration" in text
