"""Reading queries off the wire: one reader in two stages.

Queries are parsed by hand, not with a general message parser: a query is a
header, one question and at most an OPT record, and reading just those is both
faster and stricter (every malformation maps to a precise outcome: drop, or
FORMERR with whatever of the header we could read).

``read_shape`` is the first stage and the one the answer path's fast path uses
on its own: the common shape (one question of class IN, no records but at most
an OPT of version 0 carrying only ECS and an empty NSID request) read into a
``Shape``.  ``query_of`` is the second: it builds the ``Query`` from the shape,
and only what ``read_shape`` refused (several records, unknown or repeated
options, other classes, meta types, odd flags, malformations) is read by the
general record walk.  ``parse_query`` is the two in a row; a caller that has
run the first stage already (the engine, after a fast-path miss) calls
``query_of`` and reads nothing twice.  ECS is checked in one place (``ecs_problem``).
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
T_NXNAME = 128  # RFC 9824's meta-type: only ever in an NSEC bitmap, never asked for
C_IN, C_CH, C_NONE, C_ANY = 1, 3, 254, 255

# EDNS option codes.
OPT_NSID = 3
OPT_ECS = 8

DO_BIT = 0x8000

_HEADER = struct.Struct("!HHHHHH")
_ID_FLAGS = struct.Struct("!HH")
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
    # The option's value as received (checked: its scope octet is 0): what ``GslbAPI.client`` reads
    # and ``encode.opt_record`` echoes with our scope, as the fast path hands them its ``Shape.ecs``.
    value: bytes


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


def ecs_problem(value: bytes) -> str | None:
    """What is wrong with an ECS option's value in a query (RFC 7871 section 7.1.1), or None.

    The one check: ``read_shape`` takes an option it passes, ``parse_ecs`` answers
    FORMERR with the reason.  It runs per query the memo has not seen, so it reads
    octets rather than building an address.
    """
    if len(value) < 4:
        return "ECS option shorter than 4 octets"
    family, source = (value[0] << 8) | value[1], value[2]
    width = 32 if family == 1 else 128 if family == 2 else 0
    if not width:
        return f"ECS family {family} is neither IPv4 (1) nor IPv6 (2)"
    if source > width:
        return f"ECS source prefix {source} too long for the family"
    if value[3]:
        return "ECS scope prefix must be 0 in queries"
    if len(value) - 4 != (source + 7) // 8:
        return "ECS address length does not match its source prefix"
    if source % 8 and value[-1] & (0xFF >> (source % 8)):
        return "ECS address has bits set beyond its source prefix"
    return None


def parse_ecs(payload: bytes) -> ClientSubnet:
    """An ECS option's value as a ``ClientSubnet``; FormatError when ``ecs_problem`` finds one."""
    problem = ecs_problem(payload)
    if problem is not None:
        raise FormatError(problem)
    return ClientSubnet(payload[1], payload[2], 0, ecs_address(payload), payload)


def ecs_number(payload: bytes) -> int:
    """The address of a checked ECS option's value (``ecs_problem`` found nothing) as an integer of
    32 or 128 bits (family 1 or 2), the octets past the source prefix's taken as zeros."""
    return int.from_bytes(payload[4:], "big") << 8 * ((4 if payload[1] == 1 else 16) - len(payload) + 4)


def ecs_address(payload: bytes) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """``ecs_number`` as an address."""
    value = ecs_number(payload)
    return ipaddress.IPv4Address(value) if payload[1] == 1 else ipaddress.IPv6Address(value)


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
    anything malformed that still has a readable header.  Both stages:
    ``read_shape``, then ``query_of``.
    """
    return query_of(data, read_shape(data))


def query_of(data: bytes, shape: Shape | None) -> Query | None:
    """The second stage: the ``Query`` of ``data``, whose ``read_shape`` gave ``shape`` (None: it
    refused the message, and the record walk reads it).  As ``parse_query`` otherwise."""
    if shape is not None:
        return _query_of(data, shape)
    return _parse_records(data)


def _query_of(data: bytes, shape: Shape) -> Query:
    """The ``Query`` of a message ``read_shape`` read: nothing left to check, only to build."""
    qid, flags = _ID_FLAGS.unpack_from(data)
    wire_name = shape.qname
    labels = []
    pos = 0
    while wire_name[pos]:
        end = pos + 1 + wire_name[pos]
        labels.append(wire_name[pos + 1 : end])
        pos = end
    edns = None
    if shape.edns:
        value = shape.ecs
        ecs = parse_ecs(value) if value is not None else None
        options: tuple[tuple[int, bytes], ...] = ((OPT_ECS, value),) if value is not None else ()
        if shape.nsid:
            options += ((OPT_NSID, b""),)
        edns = Edns(shape.payload, 0, shape.do, options, ecs, shape.nsid)
    return Query(qid, flags, 0, tuple(labels), shape.qtype, C_IN, data[12 : shape.qend], edns)


def _parse_records(data: bytes) -> Query | None:
    """The general reader: any number of records, any options, whatever class and type."""
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


# -- the first stage ----------------------------------------------------------------------------------
_FLAG_BITS = RD | CD  # echoed in the response, so part of a shape's key


class Shape:
    """What ``read_shape`` learned about one query in the common shape.

    ``qname`` is the question's name in wire form, lower-cased; ``qend`` the
    offset just past the question; ``ecs`` the Client Subnet option's value as
    received (checked); ``base`` the key of everything the answer depends on
    that the message says (name, type, RD/CD, EDNS, DO, NSID asked), which the
    fast path extends with the size limit and the selection.
    """

    __slots__ = ("qend", "base", "qname", "qtype", "edns", "payload", "do", "ecs", "nsid")

    def __init__(self, qend: int, base: tuple, qname: bytes, qtype: int):
        self.qend, self.base, self.qname, self.qtype = qend, base, qname, qtype
        self.edns = self.do = self.nsid = False
        self.payload = 512
        self.ecs: bytes | None = None


def read_shape(data: bytes) -> Shape | None:
    """The common query shape, or None for anything ``parse_query``'s record walk must read."""
    n = len(data)
    if n < 17 or data[2] & 0xF8 or data[4:10] != b"\x00\x01\x00\x00\x00\x00" or data[10] or data[11] > 1:
        return None  # QR, opcode, QDCOUNT 1, no answer/authority, at most an OPT
    pos = 12
    while True:
        length = data[pos]
        if length == 0:
            break
        if length > 63:
            return None
        pos += length + 1
        if pos >= n:
            return None
    qend = pos + 5
    if qend > n or pos - 12 > 254 or data[pos + 3] or data[pos + 4] != 1:
        return None  # class IN only
    qtype = (data[pos + 1] << 8) | data[pos + 2]
    if qtype == T_OPT or qtype >= 251:
        return None  # ANY, AXFR, IXFR, MAILx, OPT: answered after the record walk
    flag_bits = ((data[2] << 8) | data[3]) & _FLAG_BITS
    qname = data[12 : pos + 1].lower()
    if data[11] == 0:
        if qend != n:
            return None
        return Shape(qend, (qname, qtype, flag_bits, 0), qname, qtype)
    if n < qend + 11 or data[qend]:
        return None
    rtype, payload, ttl, rdlen = RR_FIXED.unpack_from(data, qend + 1)
    if rtype != T_OPT or ttl & 0xFFFF7FFF or qend + 11 + rdlen != n:
        return None  # version 0, no extended rcode, DO the only flag
    shape = Shape(qend, (), qname, qtype)
    pos = qend + 11
    while pos < n:
        if pos + 4 > n:
            return None
        code = (data[pos] << 8) | data[pos + 1]
        end = pos + 4 + ((data[pos + 2] << 8) | data[pos + 3])
        if end > n:
            return None
        if code == OPT_ECS and shape.ecs is None and ecs_problem(data[pos + 4 : end]) is None:
            shape.ecs = data[pos + 4 : end]
        elif code == OPT_NSID and not shape.nsid and end == pos + 4:
            shape.nsid = True
        else:
            return None  # unknown, repeated or invalid options
        pos = end
    shape.edns = True
    shape.payload = max(payload, 512)
    shape.do = bool(ttl & 0x8000)
    shape.base = (qname, qtype, flag_bits, 1 | shape.do << 1 | shape.nsid << 2)
    return shape
