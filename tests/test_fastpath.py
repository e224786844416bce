"""The fast path answers exactly as the full path does, byte for byte."""

from __future__ import annotations

import dataclasses
import random
import time
from collections import Counter
from pathlib import Path
from types import MappingProxyType

import dns.edns
import dns.flags
import dns.message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geodns.process.server import Settings, build_engine
from tests.dnsserver import write

DATA = Path(__file__).resolve().parent / "data"
ZONE = "gslb.example.com."
NAMES = [
    "www",
    "docs",
    "nope",
    "x.apps",
    "exists.apps",
    "b.ent",
    "sub",
    "www.sub",
    "big",
    "txt",
    "mail",
    "app",
    "www2",
    "",
    "_sip._tcp",
    "other",
]
TYPES = ["A", "AAAA", "MX", "TXT", "NS", "SOA", "SRV", "CAA", "CNAME", "TYPE666", "DS", "ANY"]


def gslb_config(tmp_path: Path, extra: str = "") -> Path:
    """The test zone and a geo record (``app``) over three clusters, ``extra`` appended."""
    from tests.conftest import TEST_ZONE, big_zone_lines

    zone = write(tmp_path / "z.zone", TEST_ZONE + big_zone_lines(60) + "www2 IN CNAME app\n")
    return write(
        tmp_path / "c.yaml",
        f"""
server: {{nsid: "fast-test"}}
zones: ["{zone}"]
geoip: {{database: "{DATA / "geo" / "GeoIP2-City-Test.mmdb"}"}}
regions:
  us: {{lat: 39.0, lon: -77.5, continent: NA, countries: [US]}}
  eu: {{lat: 53.3, lon: -6.3,  continent: EU, countries: [GB]}}
  ap: {{lat: 1.35, lon: 103.8, continent: AS, countries: [SG]}}
clusters:
  us-1: {{region: us, endpoints: ["192.0.2.10", "2001:db8::10"]}}
  eu-1: {{region: eu, endpoints: ["198.51.100.10"]}}
  ap-1: {{region: ap, endpoints: ["203.0.113.10", "2001:db8:2::10"]}}
records:
  app.gslb.example.com: {{clusters: [us-1, eu-1, ap-1], policy: [healthy, geo], answers: 2}}
{extra}""",
    )


def fast_and_full(tmp_path: Path, extra: str = ""):
    """A fast-path engine and a full-path one over the same config (``extra`` appended to it)."""
    cfg = Settings(config_path=gslb_config(tmp_path, extra)).load()
    fast, slow = build_engine(cfg), build_engine(cfg)
    for engine in (fast, slow):  # both answer from compiled areas, not one from areas and one without
        assert engine.responder.locator.areas_ready.wait(120) and engine.responder.locator.areas is not None
    slow.fast = None
    assert fast.fast is not None
    return fast, slow


_CACHE: dict = {}


def engines(tmp_path_factory):
    if "e" not in _CACHE:
        _CACHE["e"] = fast_and_full(tmp_path_factory.mktemp("fast"))
    return _CACHE["e"]


def _case(name: str, rng: random.Random) -> str:
    """Lower case half the time (what the memo keeps), else mixed case as a 0x20 resolver sends."""
    if rng.random() < 0.5:
        return name
    return "".join(c.upper() if rng.random() < 0.5 else c for c in name)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(NAMES),
    rdtype=st.sampled_from(TYPES),
    edns=st.sampled_from([None, 0]),
    do=st.booleans(),
    payload=st.sampled_from([512, 1232, 4096, 600]),
    ecs=st.one_of(
        st.none(),
        st.tuples(
            st.sampled_from(["214.0.0.0", "81.2.69.142", "216.160.83.56", "8.8.8.0", "2001:218::", "10.0.0.0"]),
            st.integers(0, 32),
        ),
    ),
    nsid=st.booleans(),
    rd=st.booleans(),
    cd=st.booleans(),
    tcp=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_fast_path_matches_full_path(tmp_path_factory, name, rdtype, edns, do, payload, ecs, nsid, rd, cd, tcp, seed):
    fast, slow = engines(tmp_path_factory)
    qname = _case((name + "." if name else "") + ZONE, random.Random(seed))
    options = []
    if ecs is not None and edns is not None:
        address, prefix = ecs
        if ":" in address:
            prefix = min(prefix * 4, 128)
        options.append(dns.edns.ECSOption(address, prefix))
    if nsid and edns is not None:
        options.append(dns.edns.GenericOption(dns.edns.NSID, b""))
    q = dns.message.make_query(
        qname,
        rdtype,
        use_edns=edns,
        want_dnssec=do and edns is not None,
        payload=payload,
        options=options or None,
        id=seed,
    )
    q.flags = (dns.flags.RD if rd else 0) | (dns.flags.CD if cd else 0)
    wire = q.to_wire()
    source = "81.2.69.142" if seed % 2 else "216.160.83.56"  # GB and US in the test database
    expected = slow.handle(wire, source, tcp)
    first = fast.handle(wire, source, tcp)  # may fill the caches
    second = fast.handle(wire, source, tcp)  # may be served from them
    assert first == expected
    assert second == expected


def test_fast_path_is_used_and_keeps_the_question_case(tmp_path_factory):
    fast, _ = engines(tmp_path_factory)
    before = fast.fast.hits
    for qname in ("www.gslb.example.com.", "WWW.gslb.EXAMPLE.com.", "wWw.GsLb.ExAmPlE.cOm."):
        wire = dns.message.make_query(qname, "A").to_wire()
        out = fast.handle(wire, "192.0.2.1", False)
        assert out[12 : 12 + len(wire) - 12 - 11] == wire[12 : len(wire) - 11]  # the question as sent
    assert fast.fast.hits >= before + 2


def _weighted_engine(tmp_path: Path, policy: str = "[healthy, weighted]"):
    from tests.conftest import TEST_ZONE

    zone = write(tmp_path / "z.zone", TEST_ZONE)
    config = write(
        tmp_path / "w.yaml",
        f"""
zones: ["{zone}"]
geoip: {{database: "{DATA / "geo" / "GeoIP2-City-Test.mmdb"}"}}
regions:
  us: {{lat: 39.0, lon: -77.5, continent: NA, countries: [US]}}
  eu: {{lat: 53.3, lon: -6.3,  continent: EU, countries: [GB]}}
clusters:
  us-1: {{region: us, endpoints: ["192.0.2.10"], weight: 100}}
  us-2: {{region: us, endpoints: ["192.0.2.20"], weight: 300}}
  eu-1: {{region: eu, endpoints: ["198.51.100.10"], weight: 400}}
records:
  app.gslb.example.com: {{clusters: [us-1, us-2, eu-1], policy: {policy}}}
""",
    )
    return build_engine(Settings(config_path=config).load())


def _answer(response: bytes) -> str:
    return dns.message.from_wire(response).answer[0][0].address


def test_memo_answers_follow_the_weights_and_are_counted(tmp_path):
    from tests.test_gslb_policy import CHI2_999, chi_square

    engine = _weighted_engine(tmp_path)
    wire = dns.message.make_query(
        "app.gslb.example.com.", "A", use_edns=0, options=[dns.edns.ECSOption("8.8.8.0", 24)]
    ).to_wire()
    draws = 4000
    before = engine.fast.hits
    seen = Counter(_answer(engine.handle(wire, "127.0.0.1", False)) for _ in range(draws))
    # One entry serves them all, from the second sighting on (the first of a subnet is not memorised).
    assert engine.fast.hits - before >= draws - 2 and len(engine.fast.memo) == 1
    expected = {"192.0.2.10": draws / 8, "192.0.2.20": draws * 3 / 8, "198.51.100.10": draws / 2}
    assert chi_square(seen, expected) < CHI2_999[2]
    counted = {clusters[0]: n for (_name, clusters, _fb), n in engine.responder.counters.counts().items()}
    assert counted == {"us-1": seen["192.0.2.10"], "us-2": seen["192.0.2.20"], "eu-1": seen["198.51.100.10"]}


def test_memo_keys_answers_without_ecs_by_the_source(tmp_path):
    engine = _weighted_engine(tmp_path, policy="[healthy, geo]")
    wire = dns.message.make_query("app.gslb.example.com.", "A").to_wire()
    for _ in range(3):  # the later rounds come from the memo
        assert _answer(engine.handle(wire, "81.2.69.142", False)) == "198.51.100.10"  # GB
        assert _answer(engine.handle(wire, "216.160.83.56", False)) in ("192.0.2.10", "192.0.2.20")  # US


def test_memo_follows_a_change_of_state_but_not_a_routine_report(tmp_path):
    from geodns.state.model import Observation

    engine = _weighted_engine(tmp_path, policy="[healthy, geo]")
    responder = engine.responder
    wire = dns.message.make_query(
        "app.gslb.example.com.", "A", use_edns=0, options=[dns.edns.ECSOption("81.2.69.142", 32)]
    ).to_wire()
    for _ in range(2):  # the memo takes a subnet on its second sighting
        assert _answer(engine.handle(wire, "127.0.0.1", False)) == "198.51.100.10"
    snapshot = responder.live.snapshot
    generation = responder.live.generation

    def report(up: bool, at: float):
        obs = Observation("chk", "eu", "eu-1", "198.51.100.10", up, 5.0, at, at + 60)
        observations = dict(snapshot.observations)
        observations[("eu-1", "198.51.100.10")] = (obs,)
        responder.update(
            dataclasses.replace(snapshot, version=snapshot.version + 1, observations=MappingProxyType(observations))
        )

    report(True, time.time())  # up, as it was: nothing to forget
    assert responder.live.generation == generation and len(engine.fast.memo) == 1
    assert _answer(engine.handle(wire, "127.0.0.1", False)) == "198.51.100.10"
    static = dns.message.make_query("gslb.example.com.", "SOA").to_wire()
    engine.handle(static, "127.0.0.1", False)
    engine.handle(static, "127.0.0.1", False)  # now in the memo too
    assert len(engine.fast.memo) == 2
    report(False, time.time())  # down: the GB client moves at once
    assert responder.live.generation == generation + 1
    before = engine.fast.hits
    engine.handle(static, "127.0.0.1", False)
    assert engine.fast.hits == before + 1 and len(engine.fast.memo) == 1  # static kept, GSLB list dropped
    assert _answer(engine.handle(wire, "127.0.0.1", False)) in ("192.0.2.10", "192.0.2.20")


def test_memo_serves_0x20_case_from_the_lower_case_entry(tmp_path):
    """Resolvers that randomise the case of each query (0x20) share one memo entry and get their case back."""
    engine = _weighted_engine(tmp_path)
    names = ["app.gslb.example.com.", "APP.gslb.example.COM.", "aPp.GsLb.ExAmPlE.cOm."]
    for i, qname in enumerate(names * 2):
        wire = dns.message.make_query(qname, "A", use_edns=0, options=[dns.edns.ECSOption("8.8.8.0", 24)]).to_wire()
        before = engine.fast.hits
        response = dns.message.from_wire(engine.handle(wire, "127.0.0.1", False))
        assert response.question[0].name.to_text() == qname  # as asked, case and all
        assert response.answer[0].name == response.question[0].name  # compressed to the question
        assert len(response.answer[0]) == 1
        # The memo takes the subnet on its second sighting (any case), and serves it from then on.
        assert engine.fast.hits == before + (i > 1) and len(engine.fast.memo) == (i > 0)


def test_a_truncated_gslb_answer_is_counted_and_encoded_once(tmp_path):
    from tests.conftest import TEST_ZONE

    zone = write(tmp_path / "z.zone", TEST_ZONE)
    endpoints = ", ".join(f'"2001:db8::{i:x}"' for i in range(1, 41))
    config = write(
        tmp_path / "big.yaml",
        f"""
zones: ["{zone}"]
geoip: {{database: "{DATA / "geo" / "GeoIP2-City-Test.mmdb"}"}}
regions: {{us: {{lat: 39.0, lon: -77.5, continent: NA, countries: [US]}}}}
clusters: {{big-1: {{region: us, endpoints: [{endpoints}]}}}}
records: {{app.gslb.example.com: {{clusters: [big-1], policy: [healthy], answers: 40}}}}
""",
    )
    cfg = Settings(config_path=config).load()
    fast, slow = build_engine(cfg), build_engine(cfg)
    for engine in (fast, slow):  # both answer from compiled areas, not one from areas and one without
        assert engine.responder.locator.areas_ready.wait(120) and engine.responder.locator.areas is not None
    slow.fast = None
    wire = dns.message.make_query("app.gslb.example.com.", "AAAA").to_wire()  # no EDNS: 512 octets
    for _ in range(3):
        response = fast.handle(wire, "127.0.0.1", False)
        assert response == slow.handle(wire, "127.0.0.1", False)
        assert dns.message.from_wire(response).flags & dns.flags.TC
    assert fast.stats.truncated == slow.stats.truncated == 3
