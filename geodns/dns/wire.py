"""Reading queries off the wire.

Queries are parsed by hand, not with a general message parser: a query is a
header, one question and at most an OPT record, and reading just those is both
faster and stricter (every malformation maps to a precise outcome: drop, or
FORMERR with whatever of the header we could read).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from .names import Name

# Header flag bits.
QR = 0x8000
AA = 0x0400
TC = 0x0200
RD = 0x0100
RA = 0x0080
AD = 0x0020
CD = 0x0010

# Response codes (RFC 1035, RFC 6891).
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
BADVERS = 16

OPCODE_QUERY = 0

# Types and classes used by the engine.
T_A, T_NS, T_CNAME, T_SOA, T_PTR, T_HINFO, T_MX, T_TXT = 1, 2, 5, 6, 12, 13, 15, 16
T_AAAA, T_SRV, T_OPT, T_DS, T_IXFR, T_AXFR, T_MAILB, T_MAILA, T_ANY, T_CAA = (
    28,
    33,
    41,
    43,
    251,
    252,
    253,
    254,
    255,
    257,
)
C_IN, C_CH, C_NONE, C_ANY = 1, 3, 254, 255

# EDNS option codes.
OPT_NSID = 3
OPT_ECS = 8

DO_BIT = 0x8000

_HEADER = struct.Struct("!HHHHHH")
RR_FIXED = struct.Struct("!HHIH")  # type, class, TTL, rdlength: shared by reader and writers
_QFIXED = struct.Struct("!HH")


class FormatError(Exception):
    """The packet is malformed; answer FORMERR with what could be read."""

    def __init__(self, reason: str, query: Query | None = None):
        super().__init__(reason)
        self.reason = reason
        self.query = query


@dataclass(frozen=True, slots=True)
class ClientSubnet:
    """An EDNS Client Subnet option (RFC 7871) as the resolver sent it."""

    family: int
    source_prefix: int
    scope_prefix: int
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    raw_address: bytes  # the truncated address bytes, echoed as received

    def echo(self, scope: int) -> bytes:
        """The option payload for the response, with our scope."""
        return struct.pack("!HBB", self.family, self.source_prefix, scope) + self.raw_address


@dataclass(frozen=True, slots=True)
class Edns:
    payload: int  # the requester's UDP payload size
    version: int
    do: bool
    options: tuple[tuple[int, bytes], ...]
    ecs: ClientSubnet | None
    nsid: bool  # the requester asked for our NSID


@dataclass(frozen=True, slots=True)
class Query:
    id: int
    flags: int  # the raw header flags word
    opcode: int
    qname: Name  # lower-cased labels
    qtype: int
    qclass: int
    question: bytes  # name + type + class exactly as received (case kept)
    edns: Edns | None


def _read_name(data: bytes, offset: int) -> tuple[Name, int]:
    """Read an uncompressed name (the question's); return it and the next offset.

    A compression pointer in the question has nothing earlier to point at, so it
    is a format error here.
    """
    labels: list[bytes] = []
    total = 1
    end = len(data)
    while True:
        if offset >= end:
            raise FormatError("question name runs past the end of the packet")
        length = data[offset]
        if length == 0:
            return tuple(labels), offset + 1
        if length & 0xC0:
            raise FormatError("compression or extended label in question name")
        offset += 1
        if offset + length > end:
            raise FormatError("question label runs past the end of the packet")
        total += length + 1
        if total > 255:
            raise FormatError("question name longer than 255 octets")
        labels.append(data[offset : offset + length].lower())
        offset += length


def _skip_name(data: bytes, offset: int) -> int:
    """Skip a possibly compressed name in a record we do not interpret."""
    end = len(data)
    while True:
        if offset >= end:
            raise FormatError("record name runs past the end of the packet")
        length = data[offset]
        if length == 0:
            return offset + 1
        if length & 0xC0 == 0xC0:
            if offset + 2 > end:
                raise FormatError("truncated compression pointer")
            return offset + 2
        if length & 0xC0:
            raise FormatError("unknown label type")
        offset += 1 + length


def parse_ecs(payload: bytes) -> ClientSubnet:
    """Validate an ECS option as RFC 7871 section 7.1.1 requires."""
    if len(payload) < 4:
        raise FormatError("ECS option shorter than 4 octets")
    family, source, scope = struct.unpack_from("!HBB", payload)
    raw = payload[4:]
    cls: type[ipaddress.IPv4Address] | type[ipaddress.IPv6Address]
    if family == 1:
        width, cls = 4, ipaddress.IPv4Address
    elif family == 2:
        width, cls = 16, ipaddress.IPv6Address
    else:
        raise FormatError(f"ECS family {family} is neither IPv4 (1) nor IPv6 (2)")
    if source > width * 8:
        raise FormatError(f"ECS source prefix {source} too long for the family")
    if scope != 0:
        raise FormatError("ECS scope prefix must be 0 in queries")
    if len(raw) != (source + 7) // 8:
        raise FormatError("ECS address length does not match its source prefix")
    padded = raw + b"\x00" * (width - len(raw))
    value = int.from_bytes(padded, "big")
    host_bits = width * 8 - source
    if host_bits and value & ((1 << host_bits) - 1):
        raise FormatError("ECS address has bits set beyond its source prefix")
    return ClientSubnet(family, source, scope, cls(value), raw)


def _parse_opt(data: bytes, offset: int, rdlength: int, rclass: int, ttl: int) -> Edns:
    version = (ttl >> 16) & 0xFF
    do = bool(ttl & DO_BIT)
    options: list[tuple[int, bytes]] = []
    ecs = None
    nsid = False
    pos, end = offset, offset + rdlength
    while pos < end:
        if pos + 4 > end:
            raise FormatError("truncated EDNS option header")
        code, length = struct.unpack_from("!HH", data, pos)
        pos += 4
        if pos + length > end:
            raise FormatError("EDNS option runs past its record")
        value = data[pos : pos + length]
        pos += length
        options.append((code, value))
        if code == OPT_ECS and version == 0:
            if ecs is not None:
                raise FormatError("more than one ECS option")
            ecs = parse_ecs(value)
        elif code == OPT_NSID:
            nsid = True
    return Edns(max(rclass, 512), version, do, tuple(options), ecs, nsid)


def parse_header(data: bytes) -> tuple[int, int, int, int, int, int] | None:
    if len(data) < 12:
        return None
    return _HEADER.unpack_from(data)


def parse_query(data: bytes) -> Query | None:
    """Parse a query; None means drop silently (too short, or not a query at all).

    Raises FormatError (carrying the Query when the question was readable) for
    anything malformed that still has a readable header.
    """
    header = parse_header(data)
    if header is None:
        return None
    qid, flags, qdcount, ancount, nscount, arcount = header
    if flags & QR:
        return None  # a response: never answer it (reflection loops)
    opcode = (flags >> 11) & 0xF
    if qdcount != 1:
        raise FormatError(f"QDCOUNT is {qdcount}, expected 1")
    qname, offset = _read_name(data, 12)
    if offset + 4 > len(data):
        raise FormatError("question type/class missing")
    qtype, qclass = _QFIXED.unpack_from(data, offset)
    question = data[12 : offset + 4]
    offset += 4
    edns = None
    try:
        for index in range(ancount + nscount + arcount):
            rr_start = offset
            offset = _skip_name(data, offset)
            if offset + 10 > len(data):
                raise FormatError("truncated resource record")
            rtype, rclass, ttl, rdlength = RR_FIXED.unpack_from(data, offset)
            offset += 10
            if offset + rdlength > len(data):
                raise FormatError("record data runs past the end of the packet")
            if rtype == T_OPT:
                if index < ancount + nscount:
                    raise FormatError("OPT record outside the additional section")
                if edns is not None:
                    raise FormatError("more than one OPT record")
                if data[rr_start] != 0:
                    raise FormatError("OPT record owner is not the root")
                edns = _parse_opt(data, offset, rdlength, rclass, ttl)
            offset += rdlength
    except FormatError as exc:
        raise FormatError(exc.reason, Query(qid, flags, opcode, qname, qtype, qclass, question, None)) from None
    return Query(qid, flags, opcode, qname, qtype, qclass, question, edns)
