"""Signed answers from the fast path are byte for byte the full path's, for generated queries with and
without DO (the fast path keeps signed encodings under the DO bit of its key, beside unsigned ones)."""

from __future__ import annotations

from pathlib import Path

import dns.edns
import dns.flags
import dns.message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.dnssec_setup import make_key
from tests.test_fastpath import NAMES, TYPES, ZONE, fast_and_full


def _engines(tmp_path: Path):
    """test_fastpath's engines over the zone signed: the full path shares the fast one's signatures."""
    key = make_key(tmp_path, zone=ZONE)
    fast, slow = fast_and_full(
        tmp_path, f'dnssec: {{zones: {{{ZONE}: {{keys: ["{tmp_path / key.basename}.private"]}}}}}}\n'
    )
    slow.signing = fast.signing  # one signature cache: the same signature for the same RRset in both
    assert fast.signing is not None
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
