"""Authoritative answer semantics, as a resolver sees them over real UDP and TCP."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest

ZONE = "gslb.example.com."


def ask(
    server,
    name,
    rdtype="A",
    *,
    tcp=False,
    want_dnssec=False,
    use_edns=None,
    payload=None,
    flags=None,
    rdclass="IN",
    options=None,
):
    q = dns.message.make_query(
        name, rdtype, rdclass=rdclass, want_dnssec=want_dnssec, use_edns=use_edns, payload=payload, options=options
    )
    if flags is not None:
        q.flags = flags
    query = dns.query.tcp if tcp else dns.query.udp
    return query(q, server.host, port=server.port, timeout=3, ignore_trailing=False)


def rrset(resp, section, name, rdtype):
    for rr in getattr(resp, section):
        if rr.name == dns.name.from_text(name) and rr.rdtype == dns.rdatatype.from_text(rdtype):
            return rr
    return None


def texts(rr) -> set[str]:
    return {r.to_text() for r in rr}


def assert_nodata(resp, soa_ttl=60):
    assert resp.rcode() == dns.rcode.NOERROR
    assert resp.answer == []
    soa = rrset(resp, "authority", ZONE, "SOA")
    assert soa is not None and soa.ttl == soa_ttl


# -- header --------------------------------------------------------------------
@pytest.mark.parametrize("tcp", [False, True])
def test_header_flags_and_id(dns_server, tcp):
    resp = ask(dns_server, "www." + ZONE, tcp=tcp)
    assert resp.flags & dns.flags.AA
    assert resp.flags & dns.flags.QR
    assert not resp.flags & dns.flags.RA
    assert resp.flags & dns.flags.RD  # dnspython sets RD: echoed
    assert texts(resp.answer[0]) == {"192.0.2.80"}
    no_rd = ask(dns_server, "www." + ZONE, flags=0)
    assert not no_rd.flags & dns.flags.RD


def test_id_and_question_echoed_byte_for_byte(dns_server):
    import socket

    q = dns.message.make_query("WwW.GsLb.ExAmPlE.CoM.", "A", id=0xBEEF)
    wire = q.to_wire()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.sendto(wire, (dns_server.host, dns_server.port))
        data, _ = s.recvfrom(4096)
    qlen = len(wire) - 12 - 11  # question = everything between header and the OPT-free end
    assert data[:2] == b"\xbe\xef"
    assert data[12 : 12 + len(wire) - 12] == wire[12:]
    assert b"WwW\x04GsLb\x07ExAmPlE" in data[12 : 12 + qlen + 11]


# -- negative answers ---------------------------------------------------------------
def test_nxdomain_has_soa_with_negative_ttl(dns_server):
    resp = ask(dns_server, "nope." + ZONE)
    assert resp.rcode() == dns.rcode.NXDOMAIN
    assert resp.flags & dns.flags.AA
    soa = rrset(resp, "authority", ZONE, "SOA")
    assert soa is not None and soa.ttl == 60  # min(SOA TTL 3600, minimum 60)


@pytest.mark.parametrize(
    "name,rdtype",
    [
        ("www." + ZONE, "MX"),  # existing name, other type
        ("b.ent." + ZONE, "A"),  # empty non-terminal
        ("ent." + ZONE, "A"),  # empty non-terminal, two levels up
        ("www." + ZONE, "TYPE666"),  # unknown type
        (ZONE, "TXT"),
    ],
)
def test_nodata(dns_server, name, rdtype):
    assert_nodata(ask(dns_server, name, rdtype))


# -- additional section ----------------------------------------------------------------
def test_apex_ns_with_in_zone_glue(dns_server):
    resp = ask(dns_server, ZONE, "NS")
    assert texts(resp.answer[0]) == {"ns1.gslb.example.com.", "ns2.example.net."}
    assert texts(rrset(resp, "additional", "ns1." + ZONE, "A")) == {"192.0.2.53"}
    assert texts(rrset(resp, "additional", "ns1." + ZONE, "AAAA")) == {"2001:db8::53"}
    assert rrset(resp, "additional", "ns2.example.net.", "A") is None


def test_mx_and_srv_targets_in_additional(dns_server):
    mx = ask(dns_server, ZONE, "MX")
    assert texts(mx.answer[0]) == {"10 mail.gslb.example.com."}
    assert texts(rrset(mx, "additional", "mail." + ZONE, "A")) == {"192.0.2.25"}
    srv = ask(dns_server, "_sip._tcp." + ZONE, "SRV")
    assert texts(srv.answer[0]) == {"10 60 5060 sip.gslb.example.com."}
    assert texts(rrset(srv, "additional", "sip." + ZONE, "A")) == {"192.0.2.60"}


@pytest.mark.parametrize(
    "name,rdtype,expected",
    [
        ("txt." + ZONE, "TXT", {'"hello" "world"'}),
        ("caa." + ZONE, "CAA", {'0 issue "letsencrypt.org"'}),
        ("ptr." + ZONE, "PTR", {"www.gslb.example.com."}),
        ("www." + ZONE, "AAAA", {"2001:db8::80"}),
    ],
)
def test_record_types(dns_server, name, rdtype, expected):
    assert texts(ask(dns_server, name, rdtype).answer[0]) == expected


# -- CNAME ---------------------------------------------------------------------------------
def test_cname_followed_in_zone(dns_server):
    resp = ask(dns_server, "docs." + ZONE)
    assert texts(rrset(resp, "answer", "docs." + ZONE, "CNAME")) == {"www.gslb.example.com."}
    assert texts(rrset(resp, "answer", "www." + ZONE, "A")) == {"192.0.2.80"}


def test_cname_chain_and_across_zones(dns_server):
    resp = ask(dns_server, "chain1." + ZONE)
    assert [rr.rdtype for rr in resp.answer] == [dns.rdatatype.CNAME, dns.rdatatype.CNAME, dns.rdatatype.A]
    across = ask(dns_server, "other." + ZONE)
    assert texts(rrset(across, "answer", "www.other.test.", "A")) == {"198.51.100.80"}


def test_cname_out_of_zone_returned_as_is(dns_server):
    resp = ask(dns_server, "ext." + ZONE)
    assert resp.rcode() == dns.rcode.NOERROR
    assert len(resp.answer) == 1 and resp.answer[0].rdtype == dns.rdatatype.CNAME


def test_cname_loop_terminates(dns_server):
    resp = ask(dns_server, "loop1." + ZONE)
    assert resp.rcode() == dns.rcode.NOERROR
    assert {rr.name.to_text() for rr in resp.answer} == {"loop1." + ZONE, "loop2." + ZONE}


def test_cname_to_missing_name_is_nxdomain(dns_server):
    resp = ask(dns_server, "dangling." + ZONE)
    assert resp.rcode() == dns.rcode.NXDOMAIN
    assert resp.answer[0].rdtype == dns.rdatatype.CNAME
    assert rrset(resp, "authority", ZONE, "SOA") is not None


def test_cname_query_for_cname_type(dns_server):
    resp = ask(dns_server, "docs." + ZONE, "CNAME")
    assert len(resp.answer) == 1 and resp.answer[0].rdtype == dns.rdatatype.CNAME


# -- wildcards (RFC 4592) --------------------------------------------------------------------
def test_wildcard_synthesis(dns_server):
    resp = ask(dns_server, "anything.apps." + ZONE)
    assert texts(rrset(resp, "answer", "anything.apps." + ZONE, "A")) == {"203.0.113.10"}
    deeper = ask(dns_server, "x.y.apps." + ZONE)
    assert texts(rrset(deeper, "answer", "x.y.apps." + ZONE, "A")) == {"203.0.113.10"}


def test_wildcard_nodata_and_existing_names(dns_server):
    assert_nodata(ask(dns_server, "anything.apps." + ZONE, "AAAA"))
    assert texts(ask(dns_server, "exists.apps." + ZONE).answer[0]) == {"203.0.113.11"}
    # below an existing name the wildcard of its parent does not apply
    assert ask(dns_server, "x.exists.apps." + ZONE).rcode() == dns.rcode.NXDOMAIN


@pytest.mark.parametrize("rdtype", ["A", "ANY"])
def test_wildcard_that_is_an_empty_non_terminal_gives_nodata(dns_server, rdtype):
    assert_nodata(ask(dns_server, "x.entwild." + ZONE, rdtype))


# -- delegation ------------------------------------------------------------------------------
@pytest.mark.parametrize("name,rdtype", [("www.sub." + ZONE, "A"), ("sub." + ZONE, "NS"), ("ns.sub." + ZONE, "A")])
def test_referral(dns_server, name, rdtype):
    resp = ask(dns_server, name, rdtype)
    assert resp.rcode() == dns.rcode.NOERROR
    assert not resp.flags & dns.flags.AA
    assert resp.answer == []
    assert texts(rrset(resp, "authority", "sub." + ZONE, "NS")) == {
        "ns.sub.gslb.example.com.",
        "ns.elsewhere.example.net.",
    }
    assert texts(rrset(resp, "additional", "ns.sub." + ZONE, "A")) == {"192.0.2.99"}


def test_ds_at_cut_answered_by_parent(dns_server):
    resp = ask(dns_server, "sub." + ZONE, "DS")
    assert resp.flags & dns.flags.AA
    assert_nodata(resp)


# -- refusals and errors --------------------------------------------------------------------------
def test_outside_our_zones_refused(dns_server):
    resp = ask(dns_server, "www.example.net.")
    assert resp.rcode() == dns.rcode.REFUSED
    assert not resp.flags & dns.flags.AA


def test_qclass(dns_server):
    assert ask(dns_server, "www." + ZONE, rdclass="CH").rcode() == dns.rcode.REFUSED
    assert ask(dns_server, "www." + ZONE, rdclass="HS").rcode() == dns.rcode.REFUSED
    anyclass = ask(dns_server, "www." + ZONE, rdclass="ANY")
    assert anyclass.rcode() == dns.rcode.NOERROR and anyclass.answer


@pytest.mark.parametrize("opcode", [dns.opcode.NOTIFY, dns.opcode.STATUS, dns.opcode.UPDATE, 3])
def test_other_opcodes_notimp(dns_server, opcode):
    import socket
    import struct

    q = dns.message.make_query("www." + ZONE, "A", id=4242)
    q.set_opcode(opcode)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.sendto(q.to_wire(), (dns_server.host, dns_server.port))
        data = s.recvfrom(4096)[0]
    qid, flags = struct.unpack("!HH", data[:4])
    assert qid == 4242
    assert (flags >> 11) & 0xF == opcode  # header echoed
    assert flags & 0x8000 and flags & 0xF == dns.rcode.NOTIMP


def test_any_is_minimal(dns_server):
    resp = ask(dns_server, "www." + ZONE, "ANY")
    assert resp.rcode() == dns.rcode.NOERROR
    assert len(resp.answer) == 1  # one RRset, never everything
    assert len(ask(dns_server, "big." + ZONE, "ANY", tcp=True).answer) == 1


def test_axfr_refused(dns_server):
    q = dns.message.make_query(ZONE, "AXFR")
    resp = dns.query.tcp(q, dns_server.host, port=dns_server.port, timeout=3)
    assert resp.rcode() == dns.rcode.REFUSED
