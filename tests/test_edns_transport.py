"""EDNS0, ECS, NSID, truncation and TCP behaviour, over real sockets."""

from __future__ import annotations

import socket
import struct
import time

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from geodns.process.server import Settings
from tests.dnsserver import RunningServer, read_frame, write

ZONE = "gslb.example.com."


def udp_raw(server, wire: bytes, timeout: float = 2.0) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(wire, (server.host, server.port))
        try:
            return s.recvfrom(65535)[0]
        except TimeoutError:
            return None


def query(server, name="www." + ZONE, rdtype="A", tcp=False, **kw):
    q = dns.message.make_query(name, rdtype, **kw)
    send = dns.query.tcp if tcp else dns.query.udp
    return send(q, server.host, port=server.port, timeout=3)


# -- EDNS0 (RFC 6891) -------------------------------------------------------------
def test_opt_echoed_with_our_payload(dns_server):
    resp = query(dns_server, use_edns=0, payload=4096)
    assert resp.edns == 0
    assert resp.payload == 1232


def test_no_opt_without_edns(dns_server):
    resp = query(dns_server, use_edns=False)
    assert resp.edns == -1
    assert resp.opt is None


def test_do_bit_preserved(dns_server):
    assert query(dns_server, want_dnssec=True).ednsflags & dns.flags.DO
    assert not query(dns_server, use_edns=0).ednsflags & dns.flags.DO


def test_unknown_edns_flags_not_echoed(dns_server):
    resp = query(dns_server, use_edns=0, ednsflags=0x4000 | dns.flags.DO)
    assert resp.ednsflags & 0x7FFF == 0
    assert resp.ednsflags & dns.flags.DO


def test_badvers(dns_server):
    q = dns.message.make_query("www." + ZONE, "A", use_edns=1)
    resp = dns.query.udp(q, dns_server.host, port=dns_server.port, timeout=3)
    assert resp.rcode() == dns.rcode.BADVERS
    assert resp.edns == 0
    assert resp.answer == []


def test_unknown_option_ignored(dns_server):
    resp = query(dns_server, use_edns=0, options=[dns.edns.GenericOption(65001, b"xyz")])
    assert resp.rcode() == dns.rcode.NOERROR
    assert resp.answer
    assert resp.options == ()


def test_nsid_when_asked(dns_server):
    resp = query(dns_server, use_edns=0, options=[dns.edns.GenericOption(dns.edns.NSID, b"")])
    nsid = [o for o in resp.options if o.otype == dns.edns.NSID]
    assert nsid and nsid[0].to_wire() == b"geodns-test"
    assert not query(dns_server, use_edns=0).options


# -- Client Subnet (RFC 7871) ---------------------------------------------------------
def test_ecs_echoed_with_scope_zero(dns_server):
    resp = query(dns_server, use_edns=0, options=[dns.edns.ECSOption("198.51.100.0", 24)])
    ecs = [o for o in resp.options if isinstance(o, dns.edns.ECSOption)]
    assert len(ecs) == 1
    assert ecs[0].address == "198.51.100.0" and ecs[0].srclen == 24 and ecs[0].scopelen == 0


@pytest.mark.parametrize(
    "payload",
    [
        struct.pack("!HBB", 3, 24, 0) + b"\xc6\x33\x64",  # unknown family
        struct.pack("!HBB", 1, 33, 0) + b"\xc6\x33\x64\x00\x00",  # prefix too long for IPv4
        struct.pack("!HBB", 1, 24, 0) + b"\xc6\x33",  # address shorter than the prefix
        struct.pack("!HBB", 1, 20, 0) + b"\xc6\x33\x6f",  # bits set past the prefix
        struct.pack("!HBB", 1, 24, 8) + b"\xc6\x33\x64",  # scope set in a query
        b"\x00\x01",  # truncated option
    ],
)
def test_bad_ecs_is_formerr(dns_server, payload):
    resp = query(dns_server, use_edns=0, options=[dns.edns.GenericOption(8, payload)])
    assert resp.rcode() == dns.rcode.FORMERR


# -- malformed packets ---------------------------------------------------------------------
def test_short_packet_dropped(dns_server):
    assert udp_raw(dns_server, b"\x12\x34\x00", timeout=0.5) is None


def test_responses_never_answered(dns_server):
    wire = bytearray(dns.message.make_query("www." + ZONE, "A").to_wire())
    wire[2] |= 0x80
    assert udp_raw(dns_server, bytes(wire), timeout=0.5) is None


@pytest.mark.parametrize("qdcount", [0, 2])
def test_qdcount_not_one_is_formerr(dns_server, qdcount):
    wire = bytearray(dns.message.make_query("www." + ZONE, "A", id=77).to_wire())
    wire[4:6] = struct.pack("!H", qdcount)
    data = udp_raw(dns_server, bytes(wire))
    assert data is not None
    assert struct.unpack("!H", data[:2])[0] == 77
    assert data[3] & 0x0F == dns.rcode.FORMERR


def test_truncated_question_is_formerr_and_server_lives(dns_server):
    wire = dns.message.make_query("www." + ZONE, "A", id=99).to_wire()
    data = udp_raw(dns_server, wire[:20])
    assert data is not None and data[3] & 0x0F == dns.rcode.FORMERR
    assert query(dns_server).rcode() == dns.rcode.NOERROR


# -- UDP size and truncation ---------------------------------------------------------------
def test_truncated_without_edns_full_over_tcp(dns_server):
    udp = query(dns_server, "big." + ZONE, use_edns=False)
    assert udp.flags & dns.flags.TC
    assert len(udp.question) == 1
    assert udp.answer == []  # whole RRsets only: 100 A do not fit 512
    tcp = query(dns_server, "big." + ZONE, tcp=True, use_edns=False)
    assert not tcp.flags & dns.flags.TC
    assert len(tcp.answer[0]) == 100


def test_edns_payload_caps_udp(dns_server):
    resp = query(dns_server, "big." + ZONE, use_edns=0, payload=65000)
    assert resp.flags & dns.flags.TC  # our 1232 limit applies even if the client offers more
    small = query(dns_server, "www." + ZONE, use_edns=0, payload=4096)
    assert not small.flags & dns.flags.TC


def test_additional_dropped_without_tc(dns_server):
    # The NS answer fits 512 octets even when its glue would not all fit: no TC for optional data.
    resp = query(dns_server, ZONE, "NS", use_edns=False)
    assert not resp.flags & dns.flags.TC
    assert resp.answer


# -- TCP ------------------------------------------------------------------------------------
def _tcp_frame(name: str, qid: int) -> bytes:
    wire = dns.message.make_query(name, "A", id=qid).to_wire()
    return struct.pack("!H", len(wire)) + wire


def test_tcp_pipelined_queries(dns_server):
    with socket.create_connection((dns_server.host, dns_server.port), timeout=3) as s:
        s.sendall(_tcp_frame("www." + ZONE, 1) + _tcp_frame("mail." + ZONE, 2) + _tcp_frame("nope." + ZONE, 3))
        answers = [dns.message.from_wire(read_frame(s)) for _ in range(3)]
    assert [a.id for a in answers] == [1, 2, 3]
    assert answers[2].rcode() == dns.rcode.NXDOMAIN


def test_tcp_split_frames(dns_server):
    frame = _tcp_frame("www." + ZONE, 5)
    with socket.create_connection((dns_server.host, dns_server.port), timeout=3) as s:
        s.sendall(frame[:1])
        time.sleep(0.05)
        s.sendall(frame[1:9])
        time.sleep(0.05)
        s.sendall(frame[9:])
        assert dns.message.from_wire(read_frame(s)).id == 5


@pytest.fixture
def tight_server(zone_dir, tmp_path):
    config = write(
        tmp_path / "tight.yaml",
        f"""
server:
  dns_listen: ["127.0.0.1:0"]
  http_listen: null
  tcp_idle_timeout: 0.5s
  tcp_max_connections: 2
  tcp_source_share: 1          # the global cap, not the per-source share
zones: ["{zone_dir / "gslb.example.com.zone"}"]
""",
    )
    server = RunningServer(Settings(config_path=config))
    yield server
    server.stop()


def _closed(sock) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_tcp_idle_timeout(tight_server):
    with socket.create_connection((tight_server.host, tight_server.port), timeout=3) as s:
        s.sendall(_tcp_frame("www." + ZONE, 1))
        read_frame(s)
        started = time.monotonic()
        assert _closed(s)
        assert time.monotonic() - started < 2.5


def test_tcp_connection_cap(tight_server):
    a = socket.create_connection((tight_server.host, tight_server.port), timeout=3)
    b = socket.create_connection((tight_server.host, tight_server.port), timeout=3)
    time.sleep(0.1)
    c = socket.create_connection((tight_server.host, tight_server.port), timeout=3)
    try:
        assert _closed(c)
        a.sendall(_tcp_frame("www." + ZONE, 11))
        assert dns.message.from_wire(read_frame(a)).id == 11
    finally:
        for s in (a, b, c):
            s.close()


def test_ipv6_listener(zone_dir, tmp_path):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).bind(("::1", 0))
    except OSError as exc:
        pytest.skip(f"::1 not usable here: {exc}")
    server = RunningServer(
        Settings(zone_paths=(zone_dir / "gslb.example.com.zone",), dns_listen=(("::1", 0),), http_listen=None)
    )
    try:
        for send in (dns.query.udp, dns.query.tcp):
            resp = send(dns.message.make_query("www." + ZONE, "AAAA"), "::1", port=server.port, timeout=3)
            assert {r.to_text() for r in resp.answer[0]} == {"2001:db8::80"}
    finally:
        server.stop()
