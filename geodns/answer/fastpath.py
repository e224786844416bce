"""The fast path: answer the common query shapes from pre-encoded bytes.

Almost every query a GSLB server sees has the same shape: one question, class
IN, maybe an OPT with the DO bit, a Client Subnet option and an NSID request.
For those, this module reads only the header, the question and the OPT by
hand, and answers from a cache of encoded responses: the bytes the full path
produced the first time, with the ID patched, the question copied as received
(case kept, for 0x20 clients) and a fresh OPT appended (it echoes the client's
own subnet).

The key is everything the answer depends on: the question (lower-cased), the
RD/CD bits, EDNS/DO/NSID, the size limit, and for GSLB names the addresses the
policy chain chose and the ECS scope.  Anything else (ANY, unknown options,
truncation, errors, malformed packets) returns None and takes the full path,
which produced every cached response in the first place, so both give the same
bytes; a test compares them on generated queries.
"""

from __future__ import annotations

import struct
from bisect import bisect_right
from typing import TYPE_CHECKING

from ..dns.encode import TCP_MAX, Answer, encode
from ..dns.wire import OPT_ECS, OPT_NSID, RR_FIXED, T_A, T_AAAA, T_OPT, FormatError, parse_query

if TYPE_CHECKING:
    from ..dns.names import Name
    from .engine import AnswerEngine
    from .responder import GslbResponder

MAX_ENTRIES = 100_000
MEMO_ENTRIES = 50_000
MEMO_BYTES = 64 << 20  # and at most this much response data: spoofed ECS subnets cannot grow it past
MEMO_VARIANTS = 32  # answers one memo entry may hold; a record with more selects per query
_TOO_BIG = ("too big",)  # in ``cache``: this selection's answer does not fit this client's size limit
_OPTION = struct.Struct("!HH")
_FLAG_BITS = 0x0100 | 0x0010  # RD and CD: echoed, so part of the key


class Shape:
    """What the fast reader learned about one query."""

    __slots__ = ("qend", "base", "qname", "qtype", "edns", "payload", "do", "ecs", "nsid")

    def __init__(self, qend: int, base: tuple, qname: bytes, qtype: int):
        self.qend, self.base, self.qname, self.qtype = qend, base, qname, qtype
        self.edns = self.do = self.nsid = False
        self.payload = 512
        self.ecs: bytes | None = None


def read(data: bytes) -> Shape | None:
    """The common query shape, or None for anything the full path must see."""
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
        return None  # ANY, AXFR, IXFR, MAILx, OPT: the full path's business
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
        if code == OPT_ECS and shape.ecs is None and _valid_ecs(data[pos + 4 : end]):
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


def _valid_ecs(value: bytes) -> bool:
    """RFC 7871 section 7.1.1, checked as the full path does (which answers FORMERR)."""
    if len(value) < 4:
        return False
    family, source, scope = (value[0] << 8) | value[1], value[2], value[3]
    width = 32 if family == 1 else 128 if family == 2 else 0
    if not width or source > width or scope or len(value) - 4 != (source + 7) // 8:
        return False
    return not (source % 8 and value[-1] & (0xFF >> (source % 8)))


def _opt(shape: Shape, our_payload: int, scope: int, nsid: bytes | None) -> bytes:
    """Our OPT for this client, byte for byte what ``encode._opt`` writes (inlined: this runs per query)."""
    options = b""
    ecs = shape.ecs
    if ecs is not None:
        options = _OPTION.pack(OPT_ECS, len(ecs)) + ecs[:3] + bytes((min(scope, ecs[2]) if ecs[2] else 0,)) + ecs[4:]
    if shape.nsid and nsid:
        options += _OPTION.pack(OPT_NSID, len(nsid)) + nsid
    return b"\x00" + RR_FIXED.pack(T_OPT, our_payload, 0x8000 if shape.do else 0, len(options)) + options


def _lowered(message: bytes, shape: Shape) -> bytes:
    """``message`` (a query or its response) after the ID, with the question's name in lower case."""
    return message[2:12] + shape.qname + message[shape.qend - 4 :]


class FastPath:
    """A cache of encoded responses, owned by one engine (a reload starts a new one).

    Two levels.  ``memo`` is keyed by the UDP query's own bytes after the ID,
    with the name in lower case (plus the source address when the answer
    depends on it), and holds the response after the ID with the question in
    lower case too.  A lower-case query (most of them) costs one dict look-up,
    one random number for a weighted record, and a splice of the ID.  A 0x20
    resolver's query (random case per query) misses that look-up, and hits on
    its lower-cased key, with its own question spliced back in.  What the memo
    has not seen takes ``cache``, keyed by the shape ``read`` parses, which
    holds one encoding per GSLB selection.  A GSLB memo entry holds every
    answer the record can give that client (``GslbResponder.outcomes``), so it
    stays valid while the live state's generation does.
    """

    def __init__(self, engine: AnswerEngine):
        self.engine = engine
        self.cache: dict[tuple, tuple] = {}
        self.memo: dict[object, tuple] = {}
        self.memo_bytes = 0
        self.hits = 0
        self._state = engine.dynamic.state if engine.dynamic is not None else None
        self._signed = engine.signing.generation if engine.signing is not None else 0

    def _size(self, shape: Shape, tcp: bool) -> int:
        if tcp:
            return TCP_MAX
        return max(512, min(shape.payload, self.engine.payload)) if shape.edns else 512

    def answer(self, data: bytes, client: str, tcp: bool) -> tuple[bytes, tuple, bool] | None:
        """(response, counting key, ECS present) from the caches or a GSLB selection; None: full path."""
        dynamic = self.engine.dynamic
        if dynamic is not None and dynamic.state is not self._state:
            self._follow(dynamic.state)
        signing = self.engine.signing
        if signing is not None and signing.generation != self._signed:
            # Signatures were replaced (geodns/dnssec/refresh.py): what is encoded here carries the old ones.
            self.cache.clear()
            self.memo.clear()
            self.memo_bytes = 0
            self._signed = signing.generation
        if not tcp:
            rest = data[2:]
            memo = self.memo
            entry = memo.get(rest)
            if entry is None and dynamic is not None:
                entry = memo.get((rest, client))
            if entry is not None:
                self.hits += 1
                tail = entry[0]
                if tail is None:  # a GSLB entry: only made while dynamic is set
                    tail = self._draw(entry, dynamic)  # type: ignore[arg-type]
                return data[:2] + tail, entry[1], entry[2]
            hit = self._memo_mixed_case(data, client)
            if hit is not None:
                return hit
        shape = read(data)
        if shape is None:
            return None
        size = self._size(shape, tcp)
        if dynamic is None or shape.qname not in dynamic.wire_names:
            entry = self.cache.get(shape.base + (size,))
            if entry is None:
                return None
            self.hits += 1
            response = self._splice(data, shape, entry, 0)
            if not tcp:
                tail = _lowered(response, shape)
                self._memorize(_lowered(data, shape), (tail, entry[2], shape.ecs is not None), len(tail))
            return response, entry[2], shape.ecs is not None
        if shape.qtype != T_A and shape.qtype != T_AAAA:
            return None
        return self._gslb(data, shape, size, client, tcp, dynamic)

    def _follow(self, state) -> None:
        """A new live state: the memo's GSLB answer lists are stale if its generation moved.

        Static entries (a tail of their own) and ``cache`` stay: neither depends on the state.
        """
        if self._state is None or state.generation != self._state.generation:
            self.memo = {key: entry for key, entry in self.memo.items() if entry[0] is not None}
            self.memo_bytes = sum(len(entry[0]) for entry in self.memo.values())
        self._state = state

    def _gslb(self, data: bytes, shape: Shape, size: int, client: str, tcp: bool, dynamic: GslbResponder):
        engine = self.engine
        name = dynamic.wire_names[shape.qname]
        who = dynamic.client_from(shape.ecs, client)
        listed = dynamic.outcomes(name, shape.qtype, who)
        if listed is None:
            selection = dynamic.select(name, shape.qtype, who)
            if selection is None:  # not a GSLB name in this state: the full path answers
                return None
        else:
            selection = dynamic.pick(listed)
        engine.count_gslb(name, selection)
        ttl = dynamic.ttl(name)
        entry = self._gslb_entry(data, shape, size, name, selection, ttl)
        ecs = shape.ecs is not None
        if entry is None:  # too big for this client: the truncated answer, uncached
            response = self._encode(data, size, name, selection)
            if response is None:
                return None
            engine.stats.truncated += 1
            return response, (_origin(engine, name), shape.qtype, 0), ecs
        response = self._splice(data, shape, entry, selection.scope)
        if listed is not None and not tcp and len(listed.selections) <= MEMO_VARIANTS:
            tails = []
            for option in listed.selections:
                got = entry if option is selection else self._gslb_entry(data, shape, size, name, option, ttl)
                if got is None:
                    break
                tails.append(_lowered(self._splice(data, shape, got, option.scope), shape))
            else:
                lowered = _lowered(data, shape)
                key = (lowered, client) if shape.ecs is None or not shape.ecs[2] else lowered
                tallies = tuple(dynamic.counters.tally(name, option) for option in listed.selections)
                self._memorize(
                    key,
                    (None, entry[2], ecs, who.location.source == "none", listed.cumulative, tuple(tails), tallies),
                    sum(map(len, tails)),
                )
        return response, entry[2], ecs

    def _gslb_entry(self, data: bytes, shape: Shape, size: int, name, selection, ttl: int) -> tuple | None:
        """The cached encoding of one selection for this query shape (``ttl``: the record's now, shorter
        while shedding moves); None when it does not fit."""
        key = shape.base + (size, selection.addresses, selection.scope, ttl)
        entry = self.cache.get(key)
        if entry is None:
            response = self._encode(data, size, name, selection)
            if response is None:
                return None
            if response[2] & 0x02:
                self.cache[key] = _TOO_BIG  # so the next query does not encode it twice
                return None
            entry = self._store(key, shape, response, _origin(self.engine, name), 0)
        elif entry is _TOO_BIG:
            return None
        return entry

    def _encode(self, data: bytes, size: int, name, selection) -> bytes | None:
        engine = self.engine
        try:
            query = parse_query(data)
        except FormatError:
            return None
        if query is None:
            return None
        result = Answer(ecs_scope=selection.scope)
        engine.gslb_result(name, query.qtype, selection, result)
        zone = engine.zones.zone_for(name)
        if zone is not None:
            engine.secure(zone, query, result)
        return encode(query, result, size, engine.payload, engine.nsid)

    def _draw(self, entry: tuple, dynamic: GslbResponder) -> bytes:
        """A memo hit for a GSLB name: one draw among the pre-encoded answers, counted in place.

        The entry is flat (no objects to chase beyond the two tuples it indexes)
        because with thousands of records each hit touches memory no other has.
        """
        _tail, _key, ecs, geo_miss, cumulative, tails, tallies = entry
        if ecs:
            dynamic.counters.ecs += 1
        if geo_miss:
            dynamic.counters.geo_misses += 1
        i = 0 if len(tails) == 1 else bisect_right(cumulative, dynamic.rng.random())
        tallies[i].n += 1
        return tails[i]

    def _memo_mixed_case(self, data: bytes, client: str) -> tuple[bytes, tuple, bool] | None:
        """The memo for a query whose name has upper case in it: look it up lower-cased.

        ``end`` is the first zero octet after the header: the root label of an
        ordinary name.  Should a label hold a zero octet, ``end`` falls inside
        the name, which is still right: two queries with one key differ only
        in the case of octets before ``end``, so the stored response's octets
        from ``end`` on are this query's own.
        """
        end = data.find(0, 12)
        if end <= 12:
            return None
        name = data[12:end]
        lowered = name.lower()
        if lowered == name:
            return None  # already looked up as it is
        key = data[2:12] + lowered + data[end:]
        entry = self.memo.get(key)
        if entry is None and self.engine.dynamic is not None:
            entry = self.memo.get((key, client))
        if entry is None:
            return None
        self.hits += 1
        tail = entry[0]
        if tail is None:  # a GSLB entry: only made while dynamic is set
            tail = self._draw(entry, self.engine.dynamic)  # type: ignore[arg-type]
        return data[:2] + tail[:10] + name + tail[end - 2 :], entry[1], entry[2]

    def _splice(self, data: bytes, shape: Shape, entry: tuple, scope: int) -> bytes:
        body, arcount, _count = entry
        qend = shape.qend
        if shape.edns:
            engine = self.engine
            return (
                data[:2]
                + body[2:10]
                + (arcount + 1).to_bytes(2, "big")
                + data[12:qend]
                + body[qend:]
                + _opt(shape, engine.payload, scope, engine.nsid)
            )
        return data[:2] + body[2:10] + arcount.to_bytes(2, "big") + data[12:qend] + body[qend:]

    def _memorize(self, key, entry: tuple, size: int) -> None:
        memo = self.memo
        if len(memo) >= MEMO_ENTRIES or self.memo_bytes + size > MEMO_BYTES:
            memo.clear()  # simple and bounded, as for ``cache``
            self.memo_bytes = 0
        memo[key] = entry
        self.memo_bytes += size

    def remember(self, data: bytes, tcp: bool, response: bytes, origin, rcode: int) -> None:
        """Keep a full-path response for a static name, for the next query of the same key."""
        shape = read(data)
        if shape is None or (self.engine.dynamic is not None and shape.qname in self.engine.dynamic.wire_names):
            return
        self._store(shape.base + (self._size(shape, tcp),), shape, response, origin, rcode)

    def _store(self, key: tuple, shape: Shape, response: bytes, origin, rcode: int) -> tuple:
        if len(self.cache) >= MAX_ENTRIES:
            self.cache.clear()  # simple and bounded; the working set refills in milliseconds
        opt_len = 0
        if shape.edns:
            opt_len = (
                11
                + (4 + len(shape.ecs) if shape.ecs is not None else 0)
                + (4 + len(self.engine.nsid) if shape.nsid and self.engine.nsid else 0)
            )
        body = response[: len(response) - opt_len]
        arcount = ((response[10] << 8) | response[11]) - (1 if shape.edns else 0)
        entry = (body, arcount, (origin, shape.qtype, rcode))
        self.cache[key] = entry
        return entry


def _origin(engine: AnswerEngine, name: Name) -> Name:
    """The origin of the served zone holding GSLB record ``name`` (the config checks put each inside one)."""
    zone = engine.zones.zone_for(name)
    if zone is None:
        raise LookupError(f"GSLB name {name!r} is outside every served zone")
    return zone.origin
