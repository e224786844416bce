"""Signed answers judged by real validators: unbound (a validating resolver anchored at the zone's
DS, geodns as its stub) and dnspython's dns.dnssec checking every RRSIG against the DNSKEYs.

Each positive and negative case must come back AD from unbound; the teeth tests show that a key
the anchor does not know, or a clock past the signatures' expiry, makes the same questions SERVFAIL.
"""

from __future__ import annotations

import time

import dns.dnssec
import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from tests.dnssec_setup import ORIGIN, ds_anchor, make_key, start
from tests.unbound import Unbound, authenticated

ZONE_NAME = dns.name.from_text(ORIGIN)


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    directory = tmp_path_factory.mktemp("signed")
    key = make_key(directory)
    server = start(directory, key)
    resolver = Unbound(directory / "unbound", ORIGIN, (server.host, server.port), [ds_anchor(key)])
    yield server, resolver, key
    resolver.stop()
    server.stop()


def direct(server, name: str, rdtype: str, do: bool = True, tcp: bool = False, payload: int = 1232, options=None):
    query = dns.message.make_query(
        dns.name.from_text(name, ZONE_NAME), rdtype, want_dnssec=do, payload=payload, options=options
    )
    send = dns.query.tcp if tcp else dns.query.udp
    return send(query, server.host, port=server.port, timeout=5)


def dnskeys(server):
    response = direct(server, "@", "DNSKEY")
    return {ZONE_NAME: response.find_rrset(response.answer, ZONE_NAME, dns.rdataclass.IN, dns.rdatatype.DNSKEY)}


def validate_all(response, keys) -> int:
    """Every RRset in every section that has an RRSIG validates (dnspython's validator); returns how many."""
    checked = 0
    for section in (response.answer, response.authority, response.additional):
        signatures = {(s.name, s.covers): s for s in section if s.rdtype == dns.rdatatype.RRSIG}
        for rrset in section:
            if rrset.rdtype == dns.rdatatype.RRSIG:
                continue
            signature = signatures.get((rrset.name, rrset.rdtype))
            if signature is not None:
                dns.dnssec.validate(rrset, signature, keys)
                checked += 1
    return checked


POSITIVE = [
    ("www", "A"),
    ("www", "AAAA"),
    ("docs", "A"),  # a CNAME and its target, both signed
    ("txt", "TXT"),
    ("@", "MX"),
    ("@", "SOA"),
    ("@", "DNSKEY"),
    ("shop.apps", "A"),  # the wildcard, signed as the name asked
    ("app", "A"),
    ("app", "AAAA"),
    ("weighted", "A"),
    ("failover", "A"),
    ("pair", "A"),
    ("pair", "AAAA"),
    ("v4only", "A"),
    ("edge", "A"),  # a record answering a host name: its CNAME, then the target's data
    ("edge", "TXT"),  # ... for every type
]

NEGATIVE = [
    ("nothing", "A"),  # NXDOMAIN, compact: NODATA with NXNAME
    ("no.such.deep", "AAAA"),
    ("www", "TXT"),  # NODATA
    ("app", "TXT"),  # NODATA at a GSLB name
    ("v4only", "AAAA"),  # a GSLB record without IPv6 endpoints
    ("shop.apps", "AAAA"),  # NODATA under the wildcard
    ("b.ent", "A"),  # an empty non-terminal
    ("y", "A"),  # above a GSLB record: exists, empty
    ("sub", "DS"),  # an insecure delegation: the parent proves there is no DS
    ("edge", "AAAA"),  # the CNAME, then NODATA at its target
]


@pytest.mark.parametrize("name,rdtype", POSITIVE)
def test_unbound_authenticates_every_answer(signed, name, rdtype):
    server, resolver, _ = signed
    response = resolver.ask(dns.name.from_text(name, ZONE_NAME).to_text(), rdtype)
    assert authenticated(response), (response.to_text(), resolver.output()[-2000:])
    assert any(rrset.rdtype == dns.rdatatype.from_text(rdtype) for rrset in response.answer), response.to_text()


@pytest.mark.parametrize("name,rdtype", NEGATIVE)
def test_unbound_authenticates_every_denial(signed, name, rdtype):
    server, resolver, _ = signed
    response = resolver.ask(dns.name.from_text(name, ZONE_NAME).to_text(), rdtype)
    assert authenticated(response), (response.to_text(), resolver.output()[-2000:])
    assert not [r for r in response.answer if r.rdtype == dns.rdatatype.from_text(rdtype)], response.to_text()


def test_nxdomain_is_compact_denial_under_do_and_nxdomain_without(signed):
    server, _, _ = signed
    plain = direct(server, "nothing", "A", do=False)
    assert plain.rcode() == dns.rcode.NXDOMAIN and not any(r.rdtype == dns.rdatatype.RRSIG for r in plain.authority)
    secure = direct(server, "nothing", "A")
    assert secure.rcode() == dns.rcode.NOERROR and not secure.answer
    nsec = [r for r in secure.authority if r.rdtype == dns.rdatatype.NSEC]
    assert len(nsec) == 1 and nsec[0].name == dns.name.from_text("nothing", ZONE_NAME)
    record = nsec[0][0]
    assert record.next == dns.name.from_text("\\000.nothing", ZONE_NAME)
    assert sorted(dns.rdatatype.to_text(t) for t in _types(record)) == ["NSEC", "NXNAME", "RRSIG"]
    assert validate_all(secure, dnskeys(server)) == 2  # the SOA and the NSEC


def test_nodata_nsec_lists_what_exists_and_not_what_was_asked(signed):
    server, _, _ = signed
    response = direct(server, "app", "TXT")
    (nsec,) = [r for r in response.authority if r.rdtype == dns.rdatatype.NSEC]
    assert sorted(dns.rdatatype.to_text(t) for t in _types(nsec[0])) == ["A", "AAAA", "NSEC", "RRSIG"]
    response = direct(server, "v4only", "AAAA")
    (nsec,) = [r for r in response.authority if r.rdtype == dns.rdatatype.NSEC]
    assert sorted(dns.rdatatype.to_text(t) for t in _types(nsec[0])) == ["A", "NSEC", "RRSIG"]
    assert validate_all(response, dnskeys(server)) == 2


def test_a_name_answering_a_cname_says_so_in_its_nsec(signed):
    server, _, _ = signed
    keys = dnskeys(server)
    response = direct(server, "edge", "TXT")
    assert [dns.rdatatype.to_text(r.rdtype) for r in response.answer] == ["CNAME", "RRSIG", "TXT", "RRSIG"]
    assert validate_all(response, keys) == 2
    # DS is not answered by the CNAME (RFC 4035): NODATA, whose NSEC lists the CNAME, not A/AAAA.
    response = direct(server, "edge", "DS")
    assert not response.answer
    (nsec,) = [r for r in response.authority if r.rdtype == dns.rdatatype.NSEC]
    assert nsec.name == dns.name.from_text("edge", ZONE_NAME)
    assert sorted(dns.rdatatype.to_text(t) for t in _types(nsec[0])) == ["CNAME", "NSEC", "RRSIG"]
    assert validate_all(response, keys) == 2
    # NODATA at the target: the NSEC is the target's, listing what it has.
    response = direct(server, "edge", "AAAA")
    (nsec,) = [r for r in response.authority if r.rdtype == dns.rdatatype.NSEC]
    assert nsec.name == dns.name.from_text("edge-lb", ZONE_NAME)
    assert sorted(dns.rdatatype.to_text(t) for t in _types(nsec[0])) == ["A", "NSEC", "RRSIG", "TXT"]
    assert validate_all(response, keys) == 3  # the CNAME, the NSEC and the SOA


def test_a_referral_proves_the_delegation_insecure_and_leaves_ns_and_glue_unsigned(signed):
    server, _, _ = signed
    response = direct(server, "host.sub", "A")
    assert not response.flags & dns.flags.AA and not response.answer
    types = [(r.name.to_text(), dns.rdatatype.to_text(r.rdtype)) for r in response.authority]
    sub = "sub." + ORIGIN
    assert types == [(sub, "NS"), (sub, "NSEC"), (sub, "RRSIG")]
    (nsec,) = [r for r in response.authority if r.rdtype == dns.rdatatype.NSEC]
    assert sorted(dns.rdatatype.to_text(t) for t in _types(nsec[0])) == ["NS", "NSEC", "RRSIG"]  # no DS
    assert [dns.rdatatype.to_text(r.rdtype) for r in response.additional] == ["A"]  # glue, unsigned
    assert validate_all(response, dnskeys(server)) == 1


def test_every_gslb_answer_set_is_signed_once_and_a_repeat_costs_no_signature(signed):
    server, _, _ = signed
    keys = dnskeys(server)
    seen = set()
    for _ in range(60):
        response = direct(server, "weighted", "A")
        seen.add(tuple(sorted(r.to_text() for rrset in response.answer if rrset.rdtype == 1 for r in rrset)))
        assert validate_all(response, keys) == 1
    assert seen == {("192.0.2.10",), ("198.51.100.10",)}
    made = server.run(lambda: server.server.stats.dnssec.made)
    hits = server.run(lambda: server.server.stats.dnssec.hits)
    for _ in range(40):
        direct(server, "weighted", "A")
        direct(server, "weighted", "A", tcp=True)
        direct(server, "www", "AAAA")
    assert server.run(lambda: server.server.stats.dnssec.made) == made
    assert server.run(lambda: server.server.stats.dnssec.hits) >= hits


def test_ecs_scope_nsid_and_signatures_together(signed):
    server, _, _ = signed
    london = dns.edns.ECSOption("81.2.69.142", 32)
    response = direct(server, "app", "A", options=[london, dns.edns.GenericOption(dns.edns.NSID, b"")])
    assert [r.to_text() for r in response.answer[0]] == ["198.51.100.10"]
    assert validate_all(response, dnskeys(server)) == 1
    options = {type(o).__name__: o for o in response.options}
    assert options["ECSOption"].scopelen > 0
    assert any(getattr(o, "otype", None) == dns.edns.NSID for o in response.options)


def test_a_signed_answer_too_big_for_udp_is_truncated_and_whole_over_tcp(signed):
    server, _, _ = signed
    assert not direct(server, "big", "TXT", do=False, payload=512).flags & dns.flags.TC  # fits unsigned
    udp = direct(server, "big", "TXT", payload=512)
    assert udp.flags & dns.flags.TC
    tcp = direct(server, "big", "TXT", tcp=True)
    assert not tcp.flags & dns.flags.TC and validate_all(tcp, dnskeys(server)) == 1


def test_any_is_one_rrset_signed(signed):
    server, _, _ = signed
    response = direct(server, "www", "ANY")
    assert [dns.rdatatype.to_text(r.rdtype) for r in response.answer] == ["A", "RRSIG"]
    assert validate_all(response, dnskeys(server)) == 1


def test_without_do_nothing_is_signed(signed):
    server, _, _ = signed
    response = direct(server, "www", "A", do=False)
    assert [dns.rdatatype.to_text(r.rdtype) for r in response.answer] == ["A"]


def _types(nsec) -> list[int]:
    return [t for window, bitmap in nsec.windows for t in _bits(window, bitmap)]


def _bits(window: int, bitmap: bytes):
    for i, octet in enumerate(bitmap):
        for bit in range(8):
            if octet & (0x80 >> bit):
                yield window * 256 + i * 8 + bit


# -- teeth: the same questions fail when the signatures should not validate ---------------------------
@pytest.mark.parametrize("name", ["www", "app", "docs", "nothing", "b.ent", "shop.apps"])
def test_a_query_for_nsec_gets_the_names_own_nsec_as_the_answer(signed, name):
    """A NODATA for type NSEC whose proof is an NSEC listing NSEC contradicts itself (unbound: "nodata
    proof failed", SERVFAIL); RFC 9824 answers an NSEC query with the name's compact NSEC."""
    server, resolver, key = signed
    response = resolver.ask(dns.name.from_text(name, ZONE_NAME).to_text(), "NSEC")
    assert authenticated(response), (response.to_text(), resolver.output()[-2000:])
    direct_answer = direct(server, name, "NSEC")
    owner = dns.name.from_text(name, ZONE_NAME)
    nsec = direct_answer.find_rrset(direct_answer.answer, owner, dns.rdataclass.IN, dns.rdatatype.NSEC)
    assert nsec[0].next == dns.name.Name((b"\x00",) + owner.labels)
    assert validate_all(direct_answer, {ZONE_NAME: dnskeys(server)[ZONE_NAME]}) == 1
    assert (dns.rdatatype.NXNAME in _types(nsec[0])) == (name == "nothing")


def test_a_query_for_the_nxname_meta_type_is_formerr(signed):
    """RFC 9824 3.5: NXNAME only ever appears in an NSEC bitmap; a query for it is a format error."""
    server, _, _ = signed
    for do in (True, False):
        assert direct(server, "www", "NXNAME", do=do).rcode() == dns.rcode.FORMERR
        assert direct(server, "nothing", "NXNAME", do=do).rcode() == dns.rcode.FORMERR


def test_a_key_the_anchor_does_not_know_fails_validation(tmp_path):
    anchored = make_key(tmp_path)
    served = make_key(tmp_path)
    server = start(tmp_path, served)
    resolver = Unbound(tmp_path / "unbound", ORIGIN, (server.host, server.port), [ds_anchor(anchored)])
    try:
        for name, rdtype in (("www", "A"), ("app", "A"), ("nothing", "A")):
            response = resolver.ask(f"{name}.{ORIGIN}", rdtype)
            assert response.rcode() == dns.rcode.SERVFAIL, response.to_text()
    finally:
        resolver.stop()
        server.stop()


def test_a_validator_whose_clock_is_past_the_expiry_fails_and_one_within_the_backdate_passes(tmp_path):
    key = make_key(tmp_path)
    server = start(tmp_path, key, dnssec_extra="  validity: 2d\n  refresh: 1d\n  inception_backdate: 1h\n")
    now = int(time.time())
    strict = "  val-sig-skew-min: 0\n  val-sig-skew-max: 0\n"
    late = Unbound(
        tmp_path / "late", ORIGIN, (server.host, server.port), [ds_anchor(key)], strict + _date(now + 3 * 86400)
    )
    early = Unbound(
        tmp_path / "early", ORIGIN, (server.host, server.port), [ds_anchor(key)], strict + _date(now - 1800)
    )
    too_early = Unbound(
        tmp_path / "too-early", ORIGIN, (server.host, server.port), [ds_anchor(key)], strict + _date(now - 7200)
    )
    try:
        for name, rdtype in (("www", "A"), ("app", "A"), ("nothing", "A")):
            assert late.ask(f"{name}.{ORIGIN}", rdtype).rcode() == dns.rcode.SERVFAIL
            assert authenticated(early.ask(f"{name}.{ORIGIN}", rdtype)), early.output()[-2000:]
            assert too_early.ask(f"{name}.{ORIGIN}", rdtype).rcode() == dns.rcode.SERVFAIL
    finally:
        for resolver in (late, early, too_early):
            resolver.stop()
        server.stop()


def _date(unix: int) -> str:
    return f'  val-override-date: "{time.strftime("%Y%m%d%H%M%S", time.gmtime(unix))}"\n'


_RRSIGS_AT = {
    "www": ["A", "AAAA", "NSEC"],
    "app": ["NSEC"],  # a GSLB name: its A and AAAA signatures depend on the client
    "docs": ["CNAME", "NSEC"],
    "nothing": ["NSEC"],
    "b.ent": ["NSEC"],
    "shop.apps": ["A", "NSEC"],  # the wildcard's A, signed as the name's own
}


@pytest.mark.parametrize("name", sorted(_RRSIGS_AT))
def test_a_query_for_rrsig_gets_the_signatures_at_the_name(signed, name):
    """A NODATA for type RRSIG would be proved by an NSEC listing RRSIG: a contradiction (unbound:
    SERVFAIL).  The answer is the signatures at the name, each over what a query for its type gets."""
    server, resolver, key = signed
    through = resolver.ask(dns.name.from_text(name, ZONE_NAME).to_text(), "RRSIG")
    assert through.rcode() == dns.rcode.NOERROR, (through.to_text(), resolver.output()[-2000:])
    response = direct(server, name, "RRSIG")
    owner = dns.name.from_text(name, ZONE_NAME)
    covered = sorted(dns.rdatatype.to_text(rdata.covers()) for rrset in response.answer for rdata in rrset)
    assert covered == sorted(_RRSIGS_AT[name]) and response.rcode() == dns.rcode.NOERROR, response.to_text()
    keys = {ZONE_NAME: dnskeys(server)[ZONE_NAME]}
    for rrset in response.answer:
        for rdata in rrset:
            data = direct(server, name, dns.rdatatype.to_text(rdata.covers()))
            target = data.find_rrset(data.answer, owner, dns.rdataclass.IN, rdata.covers())
            dns.dnssec.validate_rrsig(target, rdata, keys)  # raises when it does not verify
