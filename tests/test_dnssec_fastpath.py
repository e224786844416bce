"""Signed answers from the fast path are byte for byte the full path's, for generated queries with and
without DO (the fast path keeps signed encodings under the DO bit of its key, beside unsigned ones)."""

from __future__ import annotations

from pathlib import Path

import dns.edns
import dns.flags
import dns.message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geodns.process.server import Settings, build_engine
from tests.dnssec_setup import make_key
from tests.dnsserver import DATA, write
from tests.test_fastpath import NAMES, TYPES, ZONE


def _engines(tmp_path: Path):
    from tests.conftest import TEST_ZONE, big_zone_lines

    key = make_key(tmp_path, zone=ZONE)
    zone = write(tmp_path / "z.zone", TEST_ZONE + big_zone_lines(60) + "www2 IN CNAME app\n")
    config = write(
        tmp_path / "c.yaml",
        f"""
server: {{nsid: "fast-test"}}
zones: ["{zone}"]
geoip: {{database: "{DATA / "geo" / "GeoIP2-City-Test.mmdb"}"}}
regions:
  us: {{lat: 39.0, lon: -77.5, continent: NA, countries: [US]}}
  eu: {{lat: 53.3, lon: -6.3,  continent: EU, countries: [GB]}}
clusters:
  us-1: {{region: us, endpoints: ["192.0.2.10", "2001:db8::10"], weight: 100}}
  eu-1: {{region: eu, endpoints: ["198.51.100.10"], weight: 300}}
records:
  app.gslb.example.com: {{clusters: [us-1, eu-1], policy: [healthy, geo]}}
dnssec:
  zones:
    {ZONE}: {{keys: ["{tmp_path / key.basename}.private"]}}
""",
    )
    cfg = Settings(config_path=config).load()
    fast, slow = build_engine(cfg), build_engine(cfg)
    slow.fast = None
    slow.signing = fast.signing  # one signature cache: the same signature for the same RRset in both
    assert fast.fast is not None and fast.signing is not None
    return fast, slow


_CACHE: dict = {}


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(NAMES),
    rdtype=st.sampled_from(TYPES + ["DNSKEY", "NSEC"]),
    do=st.booleans(),
    payload=st.sampled_from([512, 1232, 4096]),
    ecs=st.sampled_from([None, ("81.2.69.142", 24), ("216.160.83.56", 32), ("10.0.0.0", 0)]),
    nsid=st.booleans(),
    tcp=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_signed_fast_path_matches_full_path(tmp_path_factory, name, rdtype, do, payload, ecs, nsid, tcp, seed):
    if "e" not in _CACHE:
        _CACHE["e"] = _engines(tmp_path_factory.mktemp("signed-fast"))
    fast, slow = _CACHE["e"]
    qname = (name + "." if name else "") + ZONE
    options = [dns.edns.ECSOption(*ecs)] if ecs is not None else []
    if nsid:
        options.append(dns.edns.GenericOption(dns.edns.NSID, b""))
    query = dns.message.make_query(
        qname, rdtype, use_edns=0, want_dnssec=do, payload=payload, options=options or None, id=seed
    )
    query.flags = dns.flags.RD if seed % 2 else 0
    wire = query.to_wire()
    source = "81.2.69.142" if seed % 3 else "216.160.83.56"
    expected = slow.handle(wire, source, tcp)
    first = fast.handle(wire, source, tcp)
    second = fast.handle(wire, source, tcp)
    assert first == expected
    assert second == expected
