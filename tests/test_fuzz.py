"""Malformed input never escapes as an exception: the engine answers or drops."""

from __future__ import annotations

import random
import socket

import dns.message
import dns.query
import dns.rcode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geodns.process.server import Settings, build_engine

ZONE = "gslb.example.com."


def _engine(zone_dir):
    return build_engine(Settings(zone_paths=(zone_dir / "gslb.example.com.zone",)).load())


def _check(engine, data: bytes) -> None:
    for tcp in (False, True):
        out = engine.handle(data, "192.0.2.1", tcp)  # must not raise
        if out is None:
            continue
        assert len(out) >= 12
        assert out[:2] == data[:2]  # the ID is always echoed
        assert out[2] & 0x80  # and it is a response
        dns.message.from_wire(out, ignore_trailing=False) if out[2] >> 3 & 0xF == 0 else None


VALID = [
    dns.message.make_query(n, t, use_edns=e, options=o).to_wire()
    for n, t, e, o in [
        ("www." + ZONE, "A", False, None),
        ("big." + ZONE, "A", 0, None),
        ("x.apps." + ZONE, "AAAA", 0, [dns.edns.ECSOption("198.51.100.0", 24)]),
        ("sub." + ZONE, "NS", 0, [dns.edns.GenericOption(3, b"")]),
    ]
]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(min_size=0, max_size=600))
def test_random_bytes(zone_dir, data):
    _check(_cached(zone_dir), data)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from(VALID),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6),
    st.integers(0, 200),
)
def test_mutated_queries(zone_dir, base, flips, cut):
    data = bytearray(base)
    for pos, value in flips:
        data[pos % len(data)] = value
    if cut:
        data = data[: max(0, len(data) - cut)]
    _check(_cached(zone_dir), bytes(data))


_CACHE: dict = {}


def _cached(zone_dir):
    if zone_dir not in _CACHE:
        _CACHE[zone_dir] = _engine(zone_dir)
    return _CACHE[zone_dir]


def test_garbage_over_the_wire_leaves_server_answering(dns_server):
    rng = random.Random(7)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(300):
            s.sendto(bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300))), (dns_server.host, dns_server.port))
    with socket.create_connection((dns_server.host, dns_server.port), timeout=3) as t:
        for _ in range(20):
            blob = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 100)))
            t.sendall(len(blob).to_bytes(2, "big") + blob)
    resp = dns.query.udp(dns.message.make_query("www." + ZONE, "A"), dns_server.host, port=dns_server.port, timeout=3)
    assert resp.rcode() == dns.rcode.NOERROR and resp.answer
    assert sum(listener.stats.handler_errors for listener in dns_server.server.listeners) == 0
