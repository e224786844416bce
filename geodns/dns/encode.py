"""Writing responses: header, the question as received, RRsets, OPT; truncation.

Rdata arrives pre-encoded (see ``RRset``); only owner names are compressed,
against the question and earlier owners.  Truncation keeps whole RRsets and
the question, and sets TC only when something the client needs was left out.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from .names import Name
from .rrset import RRset
from .wire import AA, BADVERS, C_IN, CD, OPT_ECS, OPT_NSID, QR, RD, RR_FIXED, T_OPT, TC, Query

_HEADER = struct.Struct("!HHHHHH")
_OPTION = struct.Struct("!HH")
MAX_POINTER = 0x3FFF
TCP_MAX = 65535


@dataclass(slots=True)
class Answer:
    """What the engine decided; the encoder turns it into bytes."""

    rcode: int = 0
    aa: bool = True
    answer: list[RRset] = field(default_factory=list)
    authority: list[RRset] = field(default_factory=list)
    additional: list[RRset] = field(default_factory=list)
    glue_required: bool = False  # referral glue: set TC rather than drop it
    ecs_scope: int = 0  # the ECS scope prefix the answer depended on
    cacheable: bool = True  # False when the answer depends on the client (GSLB, debug TXT)
    # The types at the name a NODATA is about, when the engine knows them better than the zone
    # does (a GSLB name answering a CNAME): DNSSEC's denial NSEC lists these.
    owner_types: frozenset[int] | None = None


class _Writer:
    def __init__(self, query: Query):
        self.buf = bytearray(12)
        self.buf += query.question
        self.names: dict[Name, int] = {}
        offset = 12
        qname = query.qname
        for i in range(len(qname)):
            self.names[qname[i:]] = offset
            offset += len(qname[i]) + 1

    def name(self, name: Name) -> None:
        buf = self.buf
        names = self.names
        for i in range(len(name)):
            suffix = name[i:]
            pointer = names.get(suffix)
            if pointer is not None:
                buf += struct.pack("!H", 0xC000 | pointer)
                return
            if len(buf) <= MAX_POINTER:
                names[suffix] = len(buf)
            label = name[i]
            buf.append(len(label))
            buf += label
        buf.append(0)

    def rrset(self, rrset: RRset) -> int:
        for rdata in rrset.rdatas:
            self.name(rrset.name)
            self.buf += RR_FIXED.pack(rrset.rtype, C_IN, rrset.ttl, len(rdata))
            self.buf += rdata
        return len(rrset.rdatas)

    def rollback(self, length: int) -> None:
        del self.buf[length:]
        stale = [n for n, off in self.names.items() if off >= length]
        for n in stale:
            del self.names[n]


def opt_record(payload: int, rcode: int, do: bool, ecs: bytes | None, scope: int, nsid: bytes | None) -> bytes:
    """Our OPT record: our payload size, the extended rcode, DO echoed, known options only.

    ``ecs`` is the client's Client Subnet option value as it came (the scope
    octet 0), echoed with ``scope`` capped at its source prefix (0 when that is 0,
    RFC 7871 7.2.1); ``nsid`` is ours when the client asked for it, else None.
    The one OPT writer: ``encode`` appends it, and the fast path appends it to
    a cached response's records.  It runs per query, hence octets and one struct.
    """
    options = b""
    if ecs is not None:
        source = ecs[2]
        options = _OPTION.pack(OPT_ECS, len(ecs)) + ecs[:3] + bytes((min(scope, source) if source else 0,)) + ecs[4:]
    if nsid:
        options += _OPTION.pack(OPT_NSID, len(nsid)) + nsid
    return b"\x00" + RR_FIXED.pack(T_OPT, payload, ((rcode >> 4) << 24) | (0x8000 if do else 0), len(options)) + options


def _opt(query: Query, payload: int, rcode: int, ecs_scope: int, nsid: bytes | None) -> bytes:
    """``opt_record`` for a parsed query."""
    edns = query.edns
    assert edns is not None
    ecs = edns.ecs.value if edns.ecs is not None else None
    return opt_record(payload, rcode, edns.do, ecs, ecs_scope, nsid if edns.nsid else None)


def _flags(query_flags: int, rcode: int, aa: bool, tc: bool) -> int:
    flags = QR | (query_flags & (0x7800 | RD | CD)) | (rcode & 0xF)
    if aa:
        flags |= AA
    if tc:
        flags |= TC
    return flags


def max_udp_size(query: Query, our_payload: int) -> int:
    """The largest UDP response we may send to ``query``."""
    return udp_limit(query.edns is not None, query.edns.payload if query.edns is not None else 0, our_payload)


def udp_limit(edns: bool, their_payload: int, our_payload: int) -> int:
    """The largest UDP response: 512 without EDNS (RFC 1035), else the smaller of the two
    payload sizes, never below 512 (RFC 6891 6.2.5)."""
    return max(512, min(their_payload, our_payload)) if edns else 512


def encode(query: Query, result: Answer, max_size: int, payload: int, nsid: bytes | None = None) -> bytes:
    """Encode ``result`` for ``query`` within ``max_size`` octets."""
    rcode = result.rcode
    opt = _opt(query, payload, rcode, result.ecs_scope, nsid) if query.edns is not None else b""
    limit = max_size - len(opt)
    w = _Writer(query)
    counts = [0, 0, 0]
    tc = False
    for index, section in enumerate((result.answer, result.authority, result.additional)):
        for rrset in section:
            mark = len(w.buf)
            n = w.rrset(rrset)
            if len(w.buf) > limit:
                # Whole RRsets only: drop this one and everything after it.
                # TC tells the client to retry over TCP when what was dropped
                # is needed (answer, authority, referral glue).
                w.rollback(mark)
                tc = index < 2 or result.glue_required
                break
            counts[index] += n
        else:
            continue
        break
    w.buf[0:12] = _HEADER.pack(
        query.id, _flags(query.flags, rcode, result.aa, tc), 1, counts[0], counts[1], counts[2] + (1 if opt else 0)
    )
    w.buf += opt
    return bytes(w.buf)


def encode_error(query: Query, rcode: int, payload: int, nsid: bytes | None = None) -> bytes:
    """A response with no records: FORMERR, REFUSED, NOTIMP, BADVERS."""
    opt = _opt(query, payload, rcode, 0, nsid) if query.edns is not None else b""
    if rcode >= 16 and not opt:
        rcode = 2  # an extended rcode cannot be said without OPT: SERVFAIL
    header = _HEADER.pack(query.id, _flags(query.flags, rcode, False, False), 1, 0, 0, 1 if opt else 0)
    return header + query.question + opt


def encode_header_only(qid: int, query_flags: int, rcode: int) -> bytes:
    """FORMERR (or NOTIMP) when nothing past the header could be read."""
    return _HEADER.pack(qid, _flags(query_flags, rcode, False, False), 0, 0, 0, 0)


__all__ = ["Answer", "encode", "encode_error", "encode_header_only", "max_udp_size", "opt_record", "TCP_MAX", "BADVERS"]
