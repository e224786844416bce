"""The batched UDP reader answers the memo's hits itself (geodns/dns/_mmsg.c): its answers and
its counts are the ones the Python path gives for the same queries, byte for byte.

Two engines over one config and one seeded random source: one behind the batched reader with
the engine's memo feed, the other behind asyncio's endpoint (every query through
``engine.handle``).  The same datagrams go to both in the same order: repeats of static names
(one in mixed case), a geo record asked with Client Subnets and without (its answer then
depends on the resolver's address), a weighted record, names that do not exist, a runt and a
response.  Both must send the same bytes and count the same queries, ECS, answer times and
GSLB answers; and the batched one must have answered most repeats without the handler.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import socket
import threading
import time
from pathlib import Path
from types import MappingProxyType

import dns.edns
import dns.message
import pytest

from geodns.answer.feed import EngineFeed
from geodns.dns.listener import Listener, ListenerStats
from geodns.dns.udp import AVAILABLE
from geodns.process.server import Settings, build_engine
from geodns.state.model import Observation
from tests.test_fastpath import gslb_config

pytestmark = pytest.mark.skipif(not AVAILABLE, reason="the batched reader is not built here")


def _engine(tmp_path: Path):
    """The fast path tests' engine (a geo record ``app``) with a weighted record ``spread`` too."""
    config = gslb_config(
        tmp_path, "  spread.gslb.example.com: {clusters: [us-1, eu-1, ap-1], policy: [weighted], answers: 1}\n"
    )
    engine = build_engine(Settings(config_path=config).load())
    assert engine.responder.locator.areas_ready.wait(120)
    engine.responder.rng.seed(7)
    return engine


def _queries() -> list[bytes]:
    rng = random.Random(3)
    subnets = ["81.2.69.0", "175.16.199.0", "216.160.83.0", "89.160.20.0", "2.125.160.0"]
    made = []
    for n in range(600):
        pick = rng.randrange(8)
        if pick == 0:
            q = dns.message.make_query("www.gslb.example.com.", "A")
        elif pick == 1:
            q = dns.message.make_query("WwW.GSLB.example.com.", "AAAA", use_edns=0)
        elif pick == 2:
            ecs = dns.edns.ECSOption(rng.choice(subnets), 24)
            q = dns.message.make_query("app.gslb.example.com.", "A", use_edns=0, options=[ecs])
        elif pick == 3:  # a subnet seen once: the templates' (in C, after the first of its place)
            if rng.random() < 0.5:
                ecs = dns.edns.ECSOption(f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.0", 24)
            else:
                ecs = dns.edns.ECSOption(f"2001:db8:{rng.randrange(65536):x}:{rng.randrange(256):x}00::", 56)
            qname = rng.choice(["app.gslb.example.com.", "APP.gslb.example.com."])
            q = dns.message.make_query(qname, rng.choice(["A", "AAAA"]), use_edns=0, options=[ecs])
        elif pick == 4:
            q = dns.message.make_query("app.gslb.example.com.", "A", use_edns=0)
        elif pick == 5:
            q = dns.message.make_query("spread.gslb.example.com.", rng.choice(["A", "AAAA"]))
        elif pick == 6:
            q = dns.message.make_query(f"nope{rng.randrange(3)}.gslb.example.com.", "A", want_dnssec=True)
        elif rng.random() < 0.5:
            q = dns.message.make_query("mail.gslb.example.com.", "MX")
        else:  # a type counted as "other" (0): folded alike on both paths
            q = dns.message.make_query("mail.gslb.example.com.", "LOC")
        q.id = n
        made.append(q.to_wire())
    made[100] = b"\x00\x01\x02"  # a runt: dropped
    made[200] = made[201][:2] + b"\x84" + made[201][3:]  # a response: dropped
    return made


def _serve_all(engine, batch: bool, queries: list[bytes]) -> tuple[list[bytes | None], int, ListenerStats]:
    """Send ``queries`` (each with its own ID) in bursts of 50 from one socket; the answers in
    order (None: none came), how many queries reached the handler, and the listener's counts."""
    calls = 0

    def handler(data: bytes, client: str, tcp: bool) -> bytes | None:
        nonlocal calls
        calls += 1
        return engine.handle(data, client, tcp)

    loop = asyncio.new_event_loop()
    feed = EngineFeed(lambda: engine) if batch else None
    listener = Listener("127.0.0.1", 0, handler, batch_udp=batch, feed=feed)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.settimeout(5)
    answers: list[bytes | None] = []
    try:
        asyncio.run_coroutine_threadsafe(listener.start(), loop).result(10)
        for start in range(0, len(queries), 50):
            burst = queries[start : start + 50]
            for query in burst:
                client.sendto(query, ("127.0.0.1", listener.port))
            got: dict[int, bytes] = {}
            expected = sum(1 for q in burst if len(q) >= 12 and not q[2] & 0x80)
            while len(got) < expected:
                answer = client.recv(65535)
                got[int.from_bytes(answer[:2], "big")] = answer
            answers += [got.get(int.from_bytes(q[:2], "big")) if len(q) >= 12 else None for q in burst]
    finally:
        asyncio.run_coroutine_threadsafe(listener.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        client.close()
    return answers, calls, listener.stats


def test_memo_hits_in_c_answer_and_count_as_the_handler_does(tmp_path):
    queries = _queries()
    batched, endpoint = _engine(tmp_path / "a"), _engine(tmp_path / "b")
    got, calls, _ = _serve_all(batched, True, queries)
    want, want_calls, _ = _serve_all(endpoint, False, queries)

    assert want_calls == len(queries)
    for n, (a, b) in enumerate(zip(got, want)):
        assert a == b, (
            f"query {n}: {dns.message.from_wire(queries[n]).question if len(queries[n]) > 12 else queries[n]}"
        )
    # Most datagrams were repeats the memo held: the batched reader answered them itself.
    assert calls < len(queries) // 2, calls

    a, b = batched.stats, endpoint.stats
    assert a.queries == b.queries
    assert a.ecs_present == b.ecs_present > 0
    assert sum(a.duration_buckets) == sum(b.duration_buckets) == sum(b.queries.values())
    assert a.duration_sum > 0
    assert a.dropped == b.dropped == 2  # the runt and the response
    assert batched.fast.hits == endpoint.fast.hits
    assert batched.responder.counters.counts() == endpoint.responder.counters.counts()
    assert batched.responder.counters.ecs == endpoint.responder.counters.ecs
    # The weighted record's answers were drawn per query, in C as in Python: more than one cluster.
    spread = {k[1] for k in batched.responder.counters.counts() if k[0][0] == b"spread"}
    assert len(spread) == 3, spread


def _0x20(name: str, rng: random.Random) -> str:
    """``name`` with each letter's case drawn at random, as a 0x20 resolver asks (RFC draft, "0x20")."""
    return "".join(c.upper() if rng.random() < 0.5 else c for c in name)


@pytest.mark.parametrize("case", ["lower", "0x20"])
def test_first_sights_are_answered_in_c_as_in_python(tmp_path, case):
    """Client subnets each seen once, as a large resolver sends them: after the first of each
    place, the templates answer them without the handler, with the handler's bytes and counts;
    from a resolver that randomises the case of every name (0x20) as well, in its own case."""
    rng = random.Random(11)
    queries = []
    for n in range(400):
        if n % 2:
            ecs = dns.edns.ECSOption(f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.0", 24)
        else:
            ecs = dns.edns.ECSOption(f"{rng.choice(['81.2.69', '175.16.199', '216.160.83'])}.{rng.randrange(256)}", 32)
        qname = "app.gslb.example.com." if case == "lower" else _0x20("app.gslb.example.com.", rng)
        q = dns.message.make_query(qname, "A", use_edns=0, options=[ecs])
        q.id = n
        queries.append(q.to_wire())
        if n % 5 == 0:  # and repeats, for the memo
            queries.append(n.to_bytes(2, "big") + queries[-1][2:])
    queries = [n.to_bytes(2, "big") + q[2:] for n, q in enumerate(queries)]
    batched, endpoint = _engine(tmp_path / "a"), _engine(tmp_path / "b")
    got, calls, _ = _serve_all(batched, True, queries)
    want, _, _ = _serve_all(endpoint, False, queries)
    assert got == want
    # The handler answers the first sight of each place (area and scope: 38 here), the C loop the rest.
    assert calls < len(queries) // 4, calls
    assert batched.stats.queries == endpoint.stats.queries
    assert batched.responder.counters.counts() == endpoint.responder.counters.counts()
    assert batched.responder.counters.ecs == endpoint.responder.counters.ecs
    assert batched.responder.counters.geo_misses == endpoint.responder.counters.geo_misses > 0


def test_a_memo_entry_goes_stale_with_the_live_view(tmp_path):
    """A health verdict moves the responder's generation: the next batch's memo no longer holds
    the failed cluster's answer, though the same query was a memo hit a moment before."""
    engine = _engine(tmp_path)
    ecs = dns.edns.ECSOption("216.160.83.56", 32)  # US (the test database locates a few addresses there)
    query = dns.message.make_query("app.gslb.example.com.", "A", use_edns=0, options=[ecs]).to_wire()
    queries = [n.to_bytes(2, "big") + query[2:] for n in range(40)]
    before, calls, _ = _serve_all(engine, True, queries)
    assert {dns.message.from_wire(a).answer[0][0].address for a in before if a} == {"192.0.2.10"}
    assert calls < 10  # the rest were memo hits in the batched reader

    snapshot = engine.responder.live.snapshot
    now = time.time()
    observations = dict(snapshot.observations)
    observations[("us-1", "192.0.2.10")] = (Observation("chk", "us", "us-1", "192.0.2.10", False, 5.0, now, now + 60),)
    engine.responder.update(
        dataclasses.replace(snapshot, version=snapshot.version + 1, observations=MappingProxyType(observations))
    )
    after, _, _ = _serve_all(engine, True, queries)
    answered = {dns.message.from_wire(a).answer[0][0].address for a in after if a}
    assert answered and "192.0.2.10" not in answered


def test_a_failing_callback_costs_no_other_datagram(tmp_path):
    """A bug behind one of the C loop's Python callbacks (here the record's TTL raises) is contained
    as the handler's are: every datagram of the batch still gets its answer (SERVFAIL, from the
    handler, which meets the same bug), and the listener counts the errors."""
    engine = _engine(tmp_path)
    rng = random.Random(5)

    def first_sights(start: int) -> list[bytes]:
        made = []
        for n in range(start, start + 40):
            ecs = dns.edns.ECSOption(f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.0", 24)
            q = dns.message.make_query("app.gslb.example.com.", "A", use_edns=0, options=[ecs])
            q.id = n
            made.append(q.to_wire())
        return made

    answers, calls, _ = _serve_all(engine, True, first_sights(0))
    assert calls < 20 and all(dns.message.from_wire(a).rcode() == 0 for a in answers if a)

    def broken(name):
        raise KeyError("a bug")

    engine.responder.ttl = broken  # the hook (C) and the handler (Python) both call it
    answers, _, stats = _serve_all(engine, True, first_sights(100))
    assert all(a is not None and dns.message.from_wire(a).rcode() == dns.rcode.SERVFAIL for a in answers)
    # The handler's 40 errors, and the hook's own for the datagrams it got as far as the TTL with.
    assert stats.udp_queries == 40 and stats.handler_errors > 40
