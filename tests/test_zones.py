"""Zone files: parsing, rdata encoding, validation, look-up semantics, zone sets.

Rdata encodings are checked against dnspython as an independent encoder;
problems are checked as the exact 'file:line: reason' lines a user sees.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import dns.name
import dns.rdata
import pytest

from geodns.dns.names import Name, from_text, to_text
from geodns.dns.rrset import RRset
from geodns.errors import Problem, ZoneError
from geodns.zones import Match, MatchKind, Zone, ZoneSet, load_zone, load_zones, parse_zone

A, NS, CNAME, SOA, PTR, HINFO, MX, TXT, AAAA, SRV, CAA = 1, 2, 5, 6, 12, 13, 15, 16, 28, 33, 257
ORIGIN = from_text("example.com.")
EXAMPLE_ZONE = Path(__file__).resolve().parent.parent / "zones" / "gslb.example.com.zone"

# Lines 1-4 of most test zones; what a test appends starts at line 5.
HEAD = """$ORIGIN example.com.
$TTL 300
@ SOA ns1 host 1 2 3 4 60
  NS ns1
"""


def n(text: str) -> Name:
    return from_text(text, ORIGIN)


def parse(body: str, head: str = HEAD, **kwargs) -> Zone:
    return parse_zone(head + body, "t.zone", **kwargs)


def problems(text: str, **kwargs) -> list[str]:
    with pytest.raises(ZoneError) as info:
        parse_zone(text, "t.zone", **kwargs)
    return [str(p) for p in info.value.problems]


def rrset(zone: Zone, name: str, rtype: int) -> RRset:
    return zone.find(n(name)).rrsets[rtype]


# --- rdata wire encodings, compared with dnspython ------------------------------

ENCODINGS = [
    ("A", "192.0.2.1"),
    ("A", "0.0.0.0"),
    ("AAAA", "2001:db8::1"),
    ("AAAA", "::ffff:192.0.2.1"),
    ("AAAA", "2001:DB8:0:0:0:0:0:1"),
    ("NS", "ns1"),
    ("NS", "ns.other.org."),
    ("CNAME", "www"),
    ("PTR", "host.example.net."),
    ("MX", "10 mail"),
    ("MX", "0 ."),
    ("SRV", "10 60 5060 sip"),
    ("SRV", "0 0 0 ."),
    ("TXT", '"v=spf1 -all"'),
    ("TXT", '"one" "two" three'),
    ("TXT", '""'),
    ("TXT", '"a;b (c) \\"q\\" \\\\ \\065\\255"'),
    ("TXT", "unquoted\\ word"),
    ("TXT", '"' + "x" * 255 + '" "' + "y" * 255 + '"'),
    ("CAA", '0 issue "letsencrypt.org"'),
    ("CAA", '128 iodef "mailto:security@example.com"'),
    ("CAA", '0 issuewild ";"'),
    ("HINFO", '"INTEL-386" "Unix"'),
    ("HINFO", "cpu os"),
    ("SOA", "ns1 host 2026112601 1h 15m 2w 60"),
    ("SOA", "ns1.example.com. hostmaster.example.net. 4294967295 3600 900 1209600 1w1d"),
    ("TYPE666", "\\# 4 0a000001"),
    ("TYPE666", "\\# 0"),
    ("TYPE666", "\\# 3 0a 00 01"),
    ("TYPE1", "\\# 4 c0000201"),
    ("A", "\\# 4 c0000201"),
    ("TYPE15", "\\# 5 000a 016d00"),
    ("TYPE16", "\\# 4 03616263"),
]


@pytest.mark.parametrize("rtype,text", ENCODINGS)
def test_rdata_matches_dnspython(rtype: str, text: str) -> None:
    expected = dns.rdata.from_text(
        "IN", rtype, text, origin=dns.name.from_text("example.com."), relativize=False
    ).to_wire()
    number = dns.rdata.from_text("IN", rtype, text, origin=dns.name.from_text("example.com."), relativize=False).rdtype
    if number == SOA:
        zone = parse_zone(f"$ORIGIN example.com.\n@ 300 SOA {text}\n  NS ns1\n", "t.zone")
        assert zone.soa.rdatas == (expected,)
    else:
        zone = parse(f"x {rtype} {text}\n")
        got = [r.rdatas for r in zone.rrsets() if r.name == n("x") and r.rtype == number]
        assert got == [(expected,)]


TARGETS = [
    ("NS ns.other.org.", NS, ("ns.other.org.",)),
    ("CNAME www", CNAME, ("www.example.com.",)),
    ("MX 10 mail", MX, ("mail.example.com.",)),
    ("MX 0 .", MX, ()),  # null MX (RFC 7505)
    ("SRV 1 2 3 sip", SRV, ("sip.example.com.",)),
    ("SRV 0 0 0 .", SRV, ()),  # "no service"
    ("PTR www", PTR, ()),
    ("TXT hello", TXT, ()),
    ("TYPE5 \\# 17 03575757076578616d706c6503636f6d00", CNAME, ("www.example.com.",)),
]


@pytest.mark.parametrize("record,rtype,targets", TARGETS)
def test_targets_for_additional_processing(record: str, rtype: int, targets: tuple[str, ...]) -> None:
    zone = parse(f"x {record}\n")
    got = zone.find(n("x")).rrsets[rtype] if rtype != NS else zone.find(n("x")).cut
    assert got is not None
    assert tuple(to_text(t) for t in got.targets) == targets


def test_names_in_rdata_are_lowercased_and_uncompressed() -> None:
    zone = parse("x MX 10 MAIL.Example.COM.\ny TYPE5 \\# 17 03575757076578616d706c6503636f6d00\n")
    assert rrset(zone, "x", MX).rdatas == (b"\x00\x0a\x04mail\x07example\x03com\x00",)
    assert rrset(zone, "y", CNAME).rdatas == (b"\x03www\x07example\x03com\x00",)


# --- master-file syntax ------------------------------------------------------------


def test_ttl_and_class_in_either_order() -> None:
    zone = parse("a 60 IN A 192.0.2.1\nb IN 61 A 192.0.2.1\nc IN A 192.0.2.1\nd 1h A 192.0.2.1\ne CLASS1 A 192.0.2.1\n")
    assert [rrset(zone, x, A).ttl for x in "abcde"] == [60, 61, 300, 3600, 300]


@pytest.mark.parametrize(
    "ttl,seconds",
    [("0", 0), ("1h", 3600), ("2d", 172800), ("1w30m", 606600), ("1H2m3S", 3723), ("2147483647", 2147483647)],
)
def test_ttl_units(ttl: str, seconds: int) -> None:
    zone = parse("www A 192.0.2.1\n", head=HEAD.replace("$TTL 300", f"$TTL {ttl}"))
    assert rrset(zone, "www", A).ttl == seconds


def test_blank_owner_relative_absolute_at_and_origin_changes() -> None:
    zone = parse(
        "www A 192.0.2.1\n"
        "    AAAA 2001:db8::1\n"
        "\tTXT tab\n"
        "abs.example.com. A 192.0.2.2\n"
        "$ORIGIN sub2\n"  # relative to the current origin
        "x A 192.0.2.3\n"
        "@ TXT at-sub2\n"
        "$ORIGIN example.com.\n"
        "@ TXT apex\n"
    )
    assert set(zone.find(n("www")).rrsets) == {A, AAAA, TXT}
    assert zone.find(n("abs")).kind is MatchKind.EXACT
    assert zone.find(n("x.sub2")).kind is MatchKind.EXACT
    assert rrset(zone, "sub2", TXT).rdatas == (b"\x07at-sub2",)
    assert rrset(zone, "@", TXT).rdatas == (b"\x04apex",)


def test_case_crlf_comments_and_blank_lines() -> None:
    text = (
        "; leading comment\r\n$origin Example.COM.\r\n$ttl 300\r\n\r\n"
        "@ in soa NS1 HOST ( 1 2 ; comment inside\r\n  3 4 60 )\r\n"
        "  ns ns1 ; trailing\r\n   \r\nWWW In a 192.0.2.1\r\n"
    )
    zone = parse_zone(text, "t.zone")
    assert zone.origin == ORIGIN
    assert rrset(zone, "www", A).name == n("www")
    assert zone.find(n("www")).kind is MatchKind.EXACT


def test_parentheses_and_quotes() -> None:
    zone = parse('t TXT ( "a" ; first\n   "b;c" "(d)"\n   e )\nu TXT "semi;colon" ; real comment\nv TXT("x")y\n')
    assert rrset(zone, "t", TXT).rdatas == (b"\x01a\x03b;c\x03(d)\x01e",)
    assert rrset(zone, "v", TXT).rdatas == (b"\x01x\x01y",)
    assert rrset(zone, "u", TXT).rdatas == (b"\x0asemi;colon",)


def test_escapes_in_names() -> None:
    zone = parse("a\\.b A 192.0.2.1\n\\065x A 192.0.2.2\n")
    assert zone.find((b"a.b",) + ORIGIN).kind is MatchKind.EXACT
    assert zone.find((b"ax",) + ORIGIN).kind is MatchKind.EXACT


def test_origin_from_absolute_soa_owner() -> None:
    zone = parse_zone("example.com. 300 IN SOA ns1 host 1 2 3 4 60\n  NS ns1\nwww A 192.0.2.1\n", "t.zone")
    assert zone.origin == ORIGIN
    assert rrset(zone, "@", NS).rdatas == (b"\x03ns1\x07example\x03com\x00",)
    assert rrset(zone, "www", A).ttl == 300  # the last TTL stated (RFC 1035)


def test_origin_parameter_and_default_ttl() -> None:
    zone = parse_zone("@ SOA ns1 host 1 2 3 4 60\n  NS ns1\nwww A 192.0.2.1\n", "t.zone", origin=ORIGIN, default_ttl=42)
    assert zone.origin == ORIGIN
    assert rrset(zone, "www", A).ttl == 42
    assert zone.soa.ttl == 42


def test_soa_minimum_is_the_default_ttl_without_ttl_directive() -> None:
    zone = parse_zone(
        "$ORIGIN example.com.\n@ SOA ns1 host 1 2 3 4 77\n  NS ns1\nwww A 192.0.2.1\n"
        "x 120 A 192.0.2.2\ny A 192.0.2.3\n",
        "t.zone",
    )
    assert zone.soa.ttl == 77
    assert rrset(zone, "www", A).ttl == 77
    assert rrset(zone, "y", A).ttl == 120  # the last TTL stated wins once there is one


def test_rrsets_merge_with_lowest_ttl_and_no_duplicates() -> None:
    zone = parse(
        "www 600 A 192.0.2.1\nwww 60 A 192.0.2.2\nwww A 192.0.2.1\nwww A 192.0.2.3\nc CNAME www\nc CNAME WWW\n"
    )
    got = rrset(zone, "www", A)
    assert got.ttl == 60
    assert got.rdatas == (bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2]), bytes([192, 0, 2, 3]))
    assert len(rrset(zone, "c", CNAME).rdatas) == 1


@pytest.mark.parametrize(
    "rtype,text",
    [
        ("HTTPS", '1 . alpn="h2,h3" ipv4hint=192.0.2.1'),
        ("SVCB", "1 svc.example.net. port=8443"),
        ("TLSA", "3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
        ("SSHFP", "4 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
        ("NAPTR", '100 10 "S" "SIP+D2U" "" _sip._udp.example.com.'),
        ("LOC", "51 30 12.748 N 0 7 39.611 W 0.00m"),
    ],
)
def test_every_type_dnspython_knows_is_read(rtype: str, text: str) -> None:
    """The zone reader is dnspython's: modern types need no generic form."""
    expected = dns.rdata.from_text("IN", rtype, text, origin=dns.name.from_text("example.com."), relativize=False)
    zone = parse(f"x {rtype} {text}\n")
    assert rrset(zone, "x", expected.rdtype).rdatas == (expected.to_wire(),)


def test_generate_directive() -> None:
    zone = parse("$GENERATE 1-3 host$ A 192.0.2.$\n")
    assert [rrset(zone, f"host{i}", A).rdatas for i in (1, 2, 3)] == [(bytes([192, 0, 2, i]),) for i in (1, 2, 3)]


def test_generic_unknown_type_is_served_as_is() -> None:
    zone = parse("x TYPE666 \\# 4 0a000001\ny TYPE666 \\# 0\nz TYPE1 \\# 4 c0000201\n")
    assert rrset(zone, "x", 666).rdatas == (b"\x0a\x00\x00\x01",)
    assert rrset(zone, "y", 666).rdatas == (b"",)
    assert rrset(zone, "z", A).rdatas == (b"\xc0\x00\x02\x01",)


# --- problems, with file and line -------------------------------------------------------

# dnspython reads the records; the messages name the record type and quote the entry.
ERRORS = [
    ("www A 1.2.3\n", ["t.zone:5: bad A record: malformed data (in 'www A 1.2.3')"]),
    ("www A 01.2.3.4\n", ["t.zone:5: bad A record: malformed data (in 'www A 01.2.3.4')"]),
    (
        "www A 192.0.2.1 192.0.2.2\n",
        ["t.zone:5: bad A record: unexpected '192.0.2.2' after the record data (in 'www A 192.0.2.1 192.0.2.2')"],
    ),
    ("www A\n", ["t.zone:5: bad A record: a field is missing or malformed (in 'www A')"]),
    ("www AAAA 2001:db8::g\n", ["t.zone:5: bad AAAA record: malformed data (in 'www AAAA 2001:db8::g')"]),
    ("www AAAA fe80::1%eth0\n", ["t.zone:5: bad AAAA record: malformed data (in 'www AAAA fe80::1%eth0')"]),
    ("www AAAA 192.0.2.1\n", ["t.zone:5: bad AAAA record: malformed data (in 'www AAAA 192.0.2.1')"]),
    ("www AAA 1.2.3.4\n", ["t.zone:5: unknown record type 'AAA'"]),
    ("www\n", ["t.zone:5: missing record type (in 'www')"]),
    ("www 300 IN\n", ["t.zone:5: missing record type (in 'www 300 IN')"]),
    ("www MX 10\n", ["t.zone:5: bad MX record: a field is missing or malformed (in 'www MX 10')"]),
    ("www MX 70000 mail\n", ["t.zone:5: bad MX record: 70000 is not an unsigned 16-bit integer (in 'www MX 70000')"]),
    ("www MX +1 mail\n", ["t.zone:5: bad MX record: expecting an integer (in 'www MX +1')"]),
    ("www SRV 1 2 3\n", ["t.zone:5: bad SRV record: a field is missing or malformed (in 'www SRV 1 2 3')"]),
    (
        "www SRV 1 2 65536 sip\n",
        ["t.zone:5: bad SRV record: 65536 is not an unsigned 16-bit integer (in 'www SRV 1 2 65536')"],
    ),
    ("www NS\n", ["t.zone:5: bad NS record: a field is missing or malformed (in 'www NS')"]),
    ('www NS "ns1"\n', ["t.zone:5: bad NS record: a field is missing or malformed (in 'www NS ns1')"]),
    ("www CNAME a..b\n", ["t.zone:5: bad CNAME record: empty label in a name (in 'www CNAME a..b')"]),
    (
        "www PTR xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n",
        [
            "t.zone:5: bad PTR record: label longer than 63 octets (in 'www PTR xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...')"
        ],
    ),
    ("www TXT\n", ["t.zone:5: bad TXT record: a field is missing (in 'www TXT')"]),
    (
        'www TXT "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"\n',
        [
            "t.zone:5: bad TXT record: string too long (in 'www TXT aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...')"
        ],
    ),
    ('www TXT "\\300"\n', ["t.zone:5: bad TXT record: malformed data (in 'www TXT \\300')"]),
    ('www TXT "\\12"\n', ["t.zone:5: bad TXT record: a field is missing (in 'www TXT \\12')"]),
    ('www TXT "abc\n', ["t.zone:5: unterminated quoted string"]),
    ('www HINFO "x"\n', ["t.zone:5: bad HINFO record: expecting a string (in 'www HINFO x')"]),
    ("www CAA 0 issue\n", ["t.zone:5: bad CAA record: expecting a string (in 'www CAA 0 issue')"]),
    ('www CAA 256 issue "x"\n', ["t.zone:5: bad CAA record: 256 is not an unsigned 8-bit integer (in 'www CAA 256')"]),
    ('www CAA 0 is-sue "x"\n', ["t.zone:5: bad CAA record: tag is not alphanumeric (in 'www CAA 0 is-sue x')"]),
    (
        "@ SOA ns1 host 1 2 3 4\n",
        ["t.zone:5: bad SOA record: a field is missing or malformed (in '@ SOA ns1 host 1 2 3 4')"],
    ),
    ("www TYPE666 1 2\n", ["t.zone:5: bad TYPE666 record: generic rdata does not start with \\# (in 'www TYPE666 1')"]),
    (
        "www TYPE666 \\# 4 0a0000\n",
        ["t.zone:5: bad TYPE666 record: generic rdata hex data has wrong length (in 'www TYPE666 \\# 4 0a0000')"],
    ),
    ("www TYPE666 \\# 2 zz11\n", ["t.zone:5: bad TYPE666 record: bad hex digit (in 'www TYPE666 \\# 2 zz11')"]),
    ("www TYPE666 \\#\n", ["t.zone:5: bad TYPE666 record: a field is missing or malformed (in 'www TYPE666 \\#')"]),
    ("www TYPE1 \\# 3 0a0000\n", ["t.zone:5: bad TYPE1 record: malformed data (in 'www TYPE1 \\# 3 0a0000')"]),
    (
        "www TYPE5 \\# 2 0300\n",
        ["t.zone:5: bad TYPE5 record: generic data does not fit the type (in 'www TYPE5 \\# 2 0300')"],
    ),
    (
        "www TYPE5 \\# 2 c00c\n",
        [
            "t.zone:5: bad TYPE5 record: A DNS compression pointer points forward instead of backward (in 'www TYPE5 \\# 2 c00c')"
        ],
    ),
    (
        "www TYPE16 \\# 2 0300\n",
        ["t.zone:5: bad TYPE16 record: generic data does not fit the type (in 'www TYPE16 \\# 2 0300')"],
    ),
    ("www TYPE70000 \\# 0\n", ["t.zone:5: unknown record type 'TYPE70000'"]),
    ("www DNAME other.org.\n", ["t.zone:5: DNAME records are not supported"]),
    ("www TYPE39 \\# 1 00\n", ["t.zone:5: DNAME records are not supported"]),
    ("www TYPE255 \\# 0\n", ["t.zone:5: record type ANY cannot appear in a zone"]),
    ("www TYPE41 \\# 0\n", ["t.zone:5: record type OPT cannot appear in a zone"]),
    ("www CH A 192.0.2.1\n", ["t.zone:5: class CH is not supported (only IN)"]),
    ("www CLASS3 A 192.0.2.1\n", ["t.zone:5: class CLASS3 is not supported (only IN)"]),
    ("www IN IN A 192.0.2.1\n", ["t.zone:5: unknown record type 'IN'"]),
    ("www 300 300 A 192.0.2.1\n", ["t.zone:5: bad TTL or unknown record type '300'"]),
    ("www 1x A 192.0.2.1\n", ["t.zone:5: bad TTL or unknown record type '1x'"]),
    ("www 2147483648 A 192.0.2.1\n", ["t.zone:5: TTL 2147483648 is above 2147483647"]),
    ("$TTL 1h30\n", ["t.zone:5: bad $TTL: trailing integer (in '$TTL 1h30')"]),
    ("$TTL\n", ["t.zone:5: bad $TTL"]),
    ("$ORIGIN\n", ["t.zone:5: bad $ORIGIN: a field is missing or malformed (in '$ORIGIN')"]),
    ("$ORIGIN a..b.\n", ["t.zone:5: bad $ORIGIN: empty label in a name (in '$ORIGIN a..b.')"]),
    ("$INCLUDE other.zone\n", ["t.zone:5: $INCLUDE is not supported: put the records in this file"]),
    (
        "www A ( 192.0.2.1\nx A 192.0.2.2\n",
        ["t.zone:6: bad A record: unexpected 'x' after the record data (in 'www A 192.0.2.1 x')"],
    ),
    ("www A 192.0.2.1 )\n", ["t.zone:5: unbalanced parentheses: ')' without '('"]),
    ('"www" A 192.0.2.1\n', ["t.zone:5: missing record type (in 'www')"]),
    ("a..b A 192.0.2.1\n", ["t.zone:5: bad owner name 'a..b': empty label in a name"]),
    ("x SRV ( 1\n 2\n 3x\n sip )\n", ["t.zone:7: bad SRV record: expecting an integer (in 'x SRV 1 2 3x')"]),
    ("www.other.org. A 192.0.2.1\n", ["t.zone:5: www.other.org. is outside the zone example.com."]),
    ("www A 192.0.2.1\nwww CNAME x\n", ["t.zone:6: CNAME at www.example.com. beside other data (A at line 5)"]),
    ("www CNAME x\nwww A 192.0.2.1\n", ["t.zone:6: A record at www.example.com. beside a CNAME (at line 5)"]),
    (
        "www CNAME x\nwww CNAME y\n",
        ["t.zone:6: more than one CNAME record at www.example.com. (the first is at line 5)"],
    ),
    ("@ CNAME x\n", ["t.zone:5: CNAME at example.com. beside other data (SOA at line 3)"]),
    (
        "sub SOA ns1 host 1 2 3 4 60\n",
        ["t.zone:5: SOA record at sub.example.com. is not at the zone apex example.com."],
    ),
    ("@ SOA ns1 host 2 2 3 4 60\n", ["t.zone:5: more than one SOA record (the first is at line 3)"]),
]


@pytest.mark.parametrize("body,expected", ERRORS)
def test_problem_lines_and_reasons(body: str, expected: list[str]) -> None:
    assert problems(HEAD + body) == expected


WHOLE_FILE_ERRORS = [
    (
        "@ 300 SOA ns1.example.com. host.example.com. 1 2 3 4 60\n  NS ns1.example.com.\n",
        ["t.zone:1: no zone origin: give $ORIGIN, or an SOA record whose owner is an absolute name"],
    ),
    (
        "www 300 A 192.0.2.1\nexample.com. 300 SOA ns1 host 1 2 3 4 60\n  NS ns1\n",
        ["t.zone:1: no zone origin: give $ORIGIN, or an SOA record whose owner is an absolute name"],
    ),
    (
        "www.example.com. 300 A 192.0.2.1\n",
        ["t.zone:1: no zone origin: give $ORIGIN, or an SOA record whose owner is an absolute name"],
    ),
    ("", ["t.zone:1: no zone origin: give $ORIGIN, or an SOA record whose owner is an absolute name"]),
    (
        "  A 192.0.2.1\n$ORIGIN example.com.\n@ 300 SOA ns1 host 1 2 3 4 60\n  NS ns1\n",
        ["t.zone:1: no zone origin: give $ORIGIN, or an SOA record whose owner is an absolute name"],
    ),
    (
        "$ORIGIN example.com.\nwww A 192.0.2.1\n@ SOA ns1 host 1 2 3 4 60\n  NS ns1\n",
        ["t.zone:2: no TTL: give this record a TTL, or put $TTL at the top of the file"],
    ),
    (
        "$ORIGIN example.com.\n$TTL 300\nwww A 192.0.2.1\n",
        [
            "t.zone:1: no SOA record at the zone apex example.com.",
            "t.zone:1: no NS records at the zone apex example.com.",
        ],
    ),
    (
        "$ORIGIN example.com.\n$TTL 300\n@ SOA ns1 host 1 2 3 4 60\n",
        ["t.zone:1: no NS records at the zone apex example.com."],
    ),
    (
        "$ORIGIN example.com.\n$TTL 300\n@ SOA ns1 host (\n 1 2 3\n 4 six0 )\n  NS ns1\n",
        ["t.zone:5: bad SOA record: bad TTL (in '@ SOA ns1 host 1 2 3 4 six0')"],
    ),
    (
        "$ORIGIN example.com.\n$TTL 300\n@ SOA ns1 host 1 2 3 4 60\n  NS\n",
        ["t.zone:4: bad NS record: a field is missing or malformed (in 'NS')"],
    ),
    (
        '$ORIGIN example.com.\n$TTL 300\n@ SOA ns1 host 1 2 3 4 60\n  NS ns1\na A 1.2.3\nb AAA x\nc MX 1\n$FOO\nd TXT "x\n',
        [
            "t.zone:5: bad A record: malformed data (in 'a A 1.2.3')",
            "t.zone:6: unknown record type 'AAA'",
            "t.zone:7: bad MX record: a field is missing or malformed (in 'c MX 1')",
            "t.zone:8: unknown directive '$FOO'",
            "t.zone:9: unterminated quoted string",
        ],
    ),
    (
        '$ORIGIN example.com.\n$TTL 300\n@ SOA ns1 host 1 2 3 4 60\n  NS ns1\nc CNAME www\nother TXT "abc\n  A 192.0.2.1\n',
        ["t.zone:6: unterminated quoted string"],
    ),
]


@pytest.mark.parametrize("text,expected", WHOLE_FILE_ERRORS)
def test_whole_file_problems(text: str, expected: list[str]) -> None:
    assert problems(text) == expected


def test_origin_parameter_rejects_out_of_zone_soa() -> None:
    assert problems("$TTL 60\nexample.org. SOA ns1 host 1 2 3 4 60\n  NS ns1\n", origin=ORIGIN) == [
        "t.zone:1: no SOA record at the zone apex example.com.",
        "t.zone:1: no NS records at the zone apex example.com.",
        "t.zone:2: example.org. is outside the zone example.com.",
        "t.zone:3: example.org. is outside the zone example.com.",
    ]


# --- look-ups ------------------------------------------------------------------------------

FIND_ZONE = (
    HEAD
    + """ns1    A     192.0.2.1
www    A     192.0.2.2
       AAAA  2001:db8::2
a.b.c  TXT   "deep"           ; b.c and c are empty non-terminals
*.w    A     192.0.2.3
x.w    A     192.0.2.4        ; exists, so *.w must not answer for it
a.v.w  A     192.0.2.5        ; makes v.w an empty non-terminal
y.*.z  TXT   "odd"            ; makes *.z an empty non-terminal wildcard
cname  CNAME www
sub    NS    ns.sub
ns.sub A     192.0.2.6        ; glue: occluded by the cut
       AAAA  2001:db8::6
a.sub  NS    ns.a.sub         ; a cut below a cut: also occluded
ns.a.sub A   192.0.2.7
"""
)


@pytest.fixture(scope="module")
def find_zone() -> Zone:
    return parse_zone(FIND_ZONE, "t.zone")


FINDS = [
    ("@", MatchKind.EXACT, {SOA, NS}),
    ("www", MatchKind.EXACT, {A, AAAA}),
    ("WWW", MatchKind.EXACT, {A, AAAA}),  # names are case-folded at parse
    ("a.b.c", MatchKind.EXACT, {TXT}),
    ("b.c", MatchKind.EMPTY_NONTERMINAL, set()),
    ("c", MatchKind.EMPTY_NONTERMINAL, set()),
    ("q.c", MatchKind.NXDOMAIN, set()),
    ("nope", MatchKind.NXDOMAIN, set()),
    ("x.nope", MatchKind.NXDOMAIN, set()),
    ("q.w", MatchKind.WILDCARD, {A}),
    ("p.q.w", MatchKind.WILDCARD, {A}),  # closest encloser is w
    ("x.w", MatchKind.EXACT, {A}),  # an existing name beats the wildcard
    ("q.x.w", MatchKind.NXDOMAIN, set()),  # closest encloser x.w has no '*' child
    ("v.w", MatchKind.EMPTY_NONTERMINAL, set()),  # so does an empty non-terminal
    ("q.v.w", MatchKind.NXDOMAIN, set()),
    ("*.w", MatchKind.EXACT, {A}),  # asking for the '*' name itself
    ("q.z", MatchKind.WILDCARD, set()),  # the wildcard exists but has no data
    ("cname", MatchKind.EXACT, {CNAME}),
    ("q.cname", MatchKind.NXDOMAIN, set()),
    ("w", MatchKind.EMPTY_NONTERMINAL, set()),
    ("ns1", MatchKind.EXACT, {A}),
]


@pytest.mark.parametrize("qname,kind,types", FINDS)
def test_find(find_zone: Zone, qname: str, kind: MatchKind, types: set[int]) -> None:
    match = find_zone.find(n(qname))
    assert (match.kind, set(match.rrsets), match.cut) == (kind, types, None)


@pytest.mark.parametrize("qname", ["sub", "ns.sub", "x.ns.sub", "a.sub", "ns.a.sub", "q.a.sub"])
def test_find_delegation_occludes_everything_below_the_highest_cut(find_zone: Zone, qname: str) -> None:
    match = find_zone.find(n(qname))
    assert match.kind is MatchKind.DELEGATION
    assert dict(match.rrsets) == {}
    assert match.cut is not None and match.cut.name == n("sub") and match.cut.rtype == NS
    assert match.cut.targets == (n("ns.sub"),)


def test_wildcard_rrsets_keep_the_star_owner(find_zone: Zone) -> None:
    match = find_zone.find(n("anything.w"))
    assert match.rrsets[A].name == n("*.w")
    assert match.rrsets[A].with_name(n("anything.w")).name == n("anything.w")


def test_apex_wildcard_and_closest_encloser() -> None:
    zone = parse("* TXT any\nwww A 192.0.2.1\n")
    assert zone.find(n("nope")).kind is MatchKind.WILDCARD
    assert zone.find(n("a.b.nope")).kind is MatchKind.WILDCARD
    assert zone.find(n("q.www")).kind is MatchKind.NXDOMAIN
    assert zone.find(n("www")).kind is MatchKind.EXACT


def test_match_rrsets_are_read_only(find_zone: Zone) -> None:
    match = find_zone.find(n("www"))
    with pytest.raises(TypeError):
        match.rrsets[TXT] = match.rrsets[A]  # type: ignore[index]
    assert isinstance(match, Match)


ADDRESSES = [
    ("www", [(A, (bytes([192, 0, 2, 2]),)), (AAAA, (bytes.fromhex("20010db8" + "0" * 22 + "02"),))]),
    ("ns.sub", [(A, (bytes([192, 0, 2, 6]),)), (AAAA, (bytes.fromhex("20010db8" + "0" * 22 + "06"),))]),
    ("ns.a.sub", [(A, (bytes([192, 0, 2, 7]),))]),  # glue below a cut below a cut
    ("a.b.c", []),
    ("nope", []),
    ("q.w", []),  # no wildcard synthesis here
]


@pytest.mark.parametrize("name,expected", ADDRESSES)
def test_addresses_include_glue(find_zone: Zone, name: str, expected: list) -> None:
    got = find_zone.addresses(n(name))
    assert [(r.rtype, r.rdatas) for r in got] == expected
    assert all(r.name == n(name) for r in got)
    assert find_zone.addresses(from_text("www.example.org.")) == ()


def test_zone_attributes(find_zone: Zone) -> None:
    assert find_zone.origin == ORIGIN
    assert find_zone.source == "t.zone"
    assert find_zone.serial == 1
    assert find_zone.negative_ttl == 60
    assert find_zone.soa.rtype == SOA and find_zone.apex_ns.rtype == NS
    assert find_zone.apex_ns.targets == (n("ns1"),)
    assert find_zone.names == 13
    assert sum(1 for _ in find_zone.rrsets()) == 16


def test_negative_ttl_is_the_lower_of_soa_ttl_and_minimum() -> None:
    zone = parse_zone("$ORIGIN example.com.\n@ 30 SOA ns1 host 1 2 3 4 60\n  NS ns1\n", "t.zone")
    assert zone.negative_ttl == 30


# --- files and zone sets ----------------------------------------------------------------------


def test_example_zone_file() -> None:
    zone = load_zone(EXAMPLE_ZONE)
    assert zone.origin == from_text("gslb.example.com.")
    assert (zone.serial, zone.negative_ttl) == (2026112601, 60)

    def g(text: str):
        return from_text(text, zone.origin)

    assert zone.find(g("www")).kind is MatchKind.EXACT
    assert zone.find(g("docs")).rrsets[CNAME].targets == (g("www"),)
    assert zone.find(g("shop.apps")).kind is MatchKind.WILDCARD
    assert zone.find(g("x.sub")).kind is MatchKind.DELEGATION
    assert zone.addresses(g("ns.sub"))
    assert zone.find(g("@")).rrsets[TXT].rdatas[0].count(b"=") == 2
    assert set(zone.find(g("@")).rrsets) == {SOA, NS, MX, TXT, CAA}
    for rr in zone.rrsets():
        for rdata in rr.rdatas if rr.rtype == A else ():
            assert rdata[:3] in (bytes([192, 0, 2]), bytes([198, 51, 100]), bytes([203, 0, 113]))
        for rdata in rr.rdatas if rr.rtype == AAAA else ():
            assert rdata[:4] == bytes.fromhex("20010db8")


def test_no_cycle_collection_while_a_zone_is_read_and_the_collector_is_left_as_it_was() -> None:
    """A big zone is a million objects and no cycles: the collector walking them cost a fifth of the read."""
    text = HEAD + "".join(f"h{i} A 10.0.{i >> 8}.{i & 255}\n" for i in range(20_000))
    collections: list[int] = []  # collections that ran inside parse_zone

    def note(phase: str, info: dict) -> None:
        frame = sys._getframe()
        while frame is not None and phase == "start":
            if frame.f_code is parse_zone.__code__:
                collections.append(info["generation"])
                break
            frame = frame.f_back  # type: ignore[assignment]

    gc.callbacks.append(note)
    try:
        assert parse_zone(text, "t.zone").names == 20_001  # the apex and h0..h19999
        assert gc.isenabled()
        with pytest.raises(ZoneError):
            parse_zone(text + "bad A 1.2.3\n", "t.zone")
        assert gc.isenabled()
        gc.disable()
        parse_zone(text, "t.zone")
        assert not gc.isenabled()  # off before: still off
    finally:
        gc.enable()
        gc.callbacks.remove(note)
    assert collections == []


def test_load_zone_unreadable_and_not_utf8(tmp_path: Path) -> None:
    missing = tmp_path / "missing.zone"
    with pytest.raises(ZoneError) as info:
        load_zone(missing)
    assert [str(p) for p in info.value.problems] == [f"{missing}: cannot read zone file: No such file or directory"]
    bad = tmp_path / "bad.zone"
    bad.write_bytes(b"$ORIGIN example.com.\n; caf\xe9\n")
    with pytest.raises(ZoneError) as info:
        load_zone(bad)
    assert [str(p) for p in info.value.problems] == [f"{bad}:2: not UTF-8 text"]


def _zone(origin: str, source: str) -> Zone:
    return parse_zone(f"$ORIGIN {origin}\n$TTL 60\n@ SOA ns1 host 1 2 3 4 60\n  NS ns1\n", source)


ZONE_FOR = [
    ("example.com.", "example.com."),
    ("www.example.com.", "example.com."),
    ("sub.example.com.", "sub.example.com."),
    ("a.b.sub.example.com.", "sub.example.com."),
    ("xsub.example.com.", "example.com."),
    ("com.", None),
    ("example.org.", None),
    (".", None),
]


@pytest.mark.parametrize("qname,origin", ZONE_FOR)
def test_zone_for_picks_the_longest_origin(qname: str, origin: str | None) -> None:
    zones = ZoneSet([_zone("example.com.", "a.zone"), _zone("sub.example.com.", "b.zone")])
    zone = zones.zone_for(from_text(qname))
    assert (to_text(zone.origin) if zone else None) == origin
    assert len(zones) == 2


def test_zoneset_rejects_the_same_origin_twice() -> None:
    with pytest.raises(ZoneError) as info:
        ZoneSet([_zone("example.com.", "a.zone"), _zone("example.com.", "b.zone")])
    assert info.value.problems == [Problem("b.zone", None, "zone example.com. is already loaded from a.zone")]


def test_load_zones_collects_problems_from_every_file(tmp_path: Path) -> None:
    good = tmp_path / "good.zone"
    good.write_text("$ORIGIN example.com.\n$TTL 60\n@ SOA ns1 host 1 2 3 4 60\n  NS ns1\n")
    again = tmp_path / "again.zone"
    again.write_text(good.read_text())
    broken = tmp_path / "broken.zone"
    broken.write_text("$ORIGIN example.net.\n$TTL 60\n@ SOA ns1 host 1 2 3 4 60\n  NS ns1\nw A x\n")
    assert len(load_zones([good])) == 1
    with pytest.raises(ZoneError) as info:
        load_zones([good, broken, tmp_path / "none.zone", again])
    assert [str(p) for p in info.value.problems] == [
        f"{broken}:5: bad A record: malformed data (in 'w A x')",
        f"{tmp_path / 'none.zone'}: cannot read zone file: No such file or directory",
        f"{again}: zone example.com. is already loaded from {good}",
    ]
