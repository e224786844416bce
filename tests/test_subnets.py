"""Answer templates without the client subnet (answer/subnets.py): a subnet seen for the first time
gets the bytes the full path would send, and is counted as the full path counts it."""

from __future__ import annotations

import ipaddress
import random
import struct
from collections import Counter

import dns.edns
import dns.message
import dns.rcode

from tests.test_fastpath import fast_and_full

# Around the test database's networks (GB, US, SE, CN, ...) and anywhere.
_V4 = ["81.2.69.0", "216.160.83.0", "89.160.20.0", "175.16.199.0", "2.125.160.0", "10.0.0.0"]
_V6 = ["2001:218::", "2001:480::", "2a02:cf40::", "2001:220::"]


def _query(rng: random.Random, qid: int) -> bytes:
    v6 = rng.random() < 0.4
    base = int(ipaddress.ip_address(rng.choice(_V6 if v6 else _V4)))
    bits = 128 if v6 else 32
    address = ipaddress.ip_address(
        base + rng.randrange(1 << (bits - 16)) if rng.random() < 0.7 else rng.randrange(1 << bits)
    )
    if v6 and address.version == 4:
        address = ipaddress.IPv6Address(int(address))
    prefix = rng.choice([24, 24, 24, 20, 22, 32, 8]) if not v6 else rng.choice([56, 56, 48, 64, 33, 128])
    name = "".join(c.upper() if rng.random() < 0.3 else c for c in "app.gslb.example.com.")
    q = dns.message.make_query(
        name,
        rng.choice(["A", "AAAA"]),
        use_edns=0,
        want_dnssec=rng.random() < 0.3,
        payload=rng.choice([1232, 4096]),
        options=[dns.edns.ECSOption(str(address), prefix)],
        id=qid,
    )
    return q.to_wire()


def test_first_sight_answers_and_counts_as_the_full_path(tmp_path):
    fast, slow = fast_and_full(tmp_path)
    rng = random.Random(15)
    hits = fast.fast.hits
    for i in range(4000):
        wire = _query(rng, i & 0xFFFF)
        assert fast.handle(wire, "127.0.0.1", False) == slow.handle(wire, "127.0.0.1", False), dns.message.from_wire(
            wire
        )
    assert fast.fast.templates.entries  # the shapes were learnt ...
    assert fast.fast.hits - hits > 2000  # ... and most first sights came from them (seeded: 3,071)
    assert fast.responder.counters.counts() == slow.responder.counters.counts()
    assert (fast.responder.counters.ecs, fast.responder.counters.geo_misses) == (
        slow.responder.counters.ecs,
        slow.responder.counters.geo_misses,
    )
    assert fast.stats.queries == slow.stats.queries and fast.stats.ecs_present == slow.stats.ecs_present


def _raw_ecs_query(qid: int, address: bytes, source: int) -> bytes:
    """app.gslb.example.com/A with a Client Subnet option carrying ``address`` as given (dnspython masks it)."""
    qname = b"".join(bytes((len(p),)) + p for p in b"app.gslb.example.com".split(b".")) + b"\0"
    option = struct.pack("!HHHBB", 8, 4 + len(address), 1, source, 0) + address
    opt = b"\0" + struct.pack("!HHIH", 41, 1232, 0, len(option)) + option
    return struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 1) + qname + struct.pack("!HH", 1, 1) + opt


def test_bits_past_the_source_prefix_are_refused_as_by_the_full_path(tmp_path):
    fast, slow = fast_and_full(tmp_path)
    for i in range(3):  # teach the /22 shape (and take the doorkeeper's first sights)
        fast.handle(_raw_ecs_query(i, bytes((81, 2, 68 + 4 * i)), 22), "127.0.0.1", False)
    assert fast.fast.templates.entries
    bad = _raw_ecs_query(99, bytes((81, 2, 69)), 22)  # 69 = 0b01000101: a bit past /22
    response = fast.handle(bad, "127.0.0.1", False)
    assert response == slow.handle(bad, "127.0.0.1", False)
    assert dns.message.from_wire(response).rcode() == dns.rcode.FORMERR


def test_first_sights_follow_the_weights_and_are_counted(tmp_path):
    """Through the templates a place's repeater draws each answer (weighted) and counts it as dispatch would."""
    from geodns.process.server import Settings, build_engine
    from tests.conftest import TEST_ZONE
    from tests.dnsserver import write
    from tests.test_fastpath import DATA
    from tests.test_gslb_policy import CHI2_999, chi_square

    zone = write(tmp_path / "z.zone", TEST_ZONE)
    config = write(
        tmp_path / "w.yaml",
        f"""
zones: ["{zone}"]
geoip: {{database: "{DATA / "geo" / "GeoIP2-City-Test.mmdb"}", networks: [{{cidr: 10.0.0.0/8, region: us}}]}}
regions:
  us: {{lat: 39.0, lon: -77.5, continent: NA, countries: [US]}}
  eu: {{lat: 53.3, lon: -6.3,  continent: EU, countries: [GB]}}
clusters:
  us-1: {{region: us, endpoints: ["192.0.2.10"], weight: 100}}
  us-2: {{region: us, endpoints: ["192.0.2.20"], weight: 300}}
  eu-1: {{region: eu, endpoints: ["198.51.100.10"], weight: 400}}
records:
  app.gslb.example.com: {{clusters: [us-1, us-2, eu-1], policy: [healthy, geo, weighted]}}
""",
    )
    engine = build_engine(Settings(config_path=config).load())
    assert engine.responder.locator.areas_ready.wait(120) and engine.responder.locator.areas is not None
    rng = random.Random(15)
    subnets = rng.sample(range(1 << 16), 4000)  # distinct /24s inside 10.0.0.0/8: one place
    hits = engine.fast.hits
    seen: Counter = Counter()
    for i, subnet in enumerate(subnets):
        wire = _raw_ecs_query(i, bytes((10, subnet >> 8, subnet & 255)), 24)
        seen[dns.message.from_wire(engine.handle(wire, "127.0.0.1", False)).answer[0][0].address] += 1
    assert engine.fast.hits - hits >= len(subnets) - 2  # all but the first two from the templates
    assert chi_square(seen, {"192.0.2.10": 1000, "192.0.2.20": 3000}) < CHI2_999[1]
    counted = {clusters[0]: n for (_name, clusters, _fb), n in engine.responder.counters.counts().items()}
    assert counted == {"us-1": seen["192.0.2.10"], "us-2": seen["192.0.2.20"]}
    assert engine.responder.counters.ecs == len(subnets)
