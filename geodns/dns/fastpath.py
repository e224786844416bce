"""The fast path: answer the common query shapes from pre-encoded bytes.

Almost every query a GSLB server sees has the same shape: one question, class
IN, maybe an OPT with a DO bit and a Client Subnet option.  For those, this
module reads only the header, the question and the OPT by hand, and answers
from a cache of encoded responses: the bytes a full look-up produced the first
time, with the ID patched, the question copied as received (case kept, for
0x20 clients) and a fresh OPT appended (it carries the client's own subnet).

What the answer depends on is the key: the question (lower-cased), the RD/CD
bits, EDNS or not, DO, the UDP size limit, NSID asked or not, and for GSLB
names the addresses the policy chain chose and the ECS scope.  Everything else
(TC, ANY, unknown options, errors, malformed packets) returns None and takes
the full path, which produced every cached response in the first place: both
paths give identical bytes, and a test compares them on generated queries.
"""
from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from .wire import OPT_ECS, OPT_NSID

if TYPE_CHECKING:
    from ..engine import AnswerEngine

MAX_ENTRIES = 200_000
_RR_FIXED = struct.Struct("!HHIH")
_HEADER_TAIL = struct.Struct("!HHHH")
_T_A, _T_AAAA, _T_ANY, _T_OPT = 1, 28, 255, 41
_FLAG_BITS = 0x0100 | 0x0010          # RD and CD: echoed, so part of the key


class Shape:
    """What the fast parser learned about a query; None of it is trusted beyond its checks."""

    __slots__ = ("qend", "key", "qname_lower", "qtype", "edns", "payload", "do", "ecs", "nsid")

    def __init__(self) -> None:
        self.ecs: bytes | None = None
        self.nsid = False


def read(data: bytes) -> Shape | None:
    """Parse a query of the common shape, or None for anything the full path must see."""
    n = len(data)
    if n < 17:
        return None
    flags = (data[2] << 8) | data[3]
    # QR=0, opcode QUERY, QDCOUNT 1, no answer/authority, at most the OPT.
    if flags & 0xF800 or data[4:10] != b"\x00\x01\x00\x00\x00\x00" or data[10] or data[11] > 1:
        return None
    pos = 12
    while True:
        length = data[pos] if pos < n else 0xFF
        if length == 0:
            break
        if length > 63 or pos + length + 1 >= n:
            return None
        pos += length + 1
    qend = pos + 5
    if qend > n or pos - 12 > 254:
        return None
    qtype = (data[pos + 1] << 8) | data[pos + 2]
    if data[pos + 3] != 0 or data[pos + 4] != 1 or qtype in (_T_ANY, _T_OPT) or qtype >= 251:
        return None
    shape = Shape()
    shape.qend = qend
    shape.qname_lower = data[12:pos + 1].lower()
    shape.qtype = qtype
    if data[11] == 0:
        if qend != n:
            return None
        shape.edns = False
        shape.payload = 512
        shape.do = False
        shape.key = (data[12:qend].lower(), flags & _FLAG_BITS, 0)
        return shape
    # The OPT: root owner, type 41, version 0, only the DO flag, then options.
    if n < qend + 11 or data[qend] != 0:
        return None
    rtype, payload, ttl, rdlen = _RR_FIXED.unpack_from(data, qend + 1)
    if rtype != _T_OPT or ttl & 0xFFFF7FFF or qend + 11 + rdlen != n:
        return None
    pos = qend + 11
    while pos < n:
        if pos + 4 > n:
            return None
        code = (data[pos] << 8) | data[pos + 1]
        length = (data[pos + 2] << 8) | data[pos + 3]
        value = data[pos + 4:pos + 4 + length]
        if len(value) != length:
            return None
        if code == OPT_ECS and shape.ecs is None and _valid_ecs(value):
            shape.ecs = value
        elif code == OPT_NSID and not shape.nsid and not length:
            shape.nsid = True
        else:
            return None                 # unknown or repeated options: the full path decides
        pos += 4 + length
    shape.edns = True
    shape.payload = max(payload, 512)
    shape.do = bool(ttl & 0x8000)
    shape.key = (data[12:qend].lower(), flags & _FLAG_BITS, 1 + shape.do * 2 + shape.nsid * 4, min(payload, 4096))
    return shape


def _valid_ecs(value: bytes) -> bool:
    """RFC 7871 section 7.1.1, as the full path checks it; invalid ones get FORMERR there."""
    if len(value) < 4:
        return False
    family, source, scope = (value[0] << 8) | value[1], value[2], value[3]
    width = 32 if family == 1 else 128 if family == 2 else 0
    if not width or source > width or scope or len(value) - 4 != (source + 7) // 8:
        return False
    if source % 8 and value[-1] & (0xFF >> (source % 8)):
        return False
    return True


def _opt(shape: Shape, our_payload: int, scope: int, nsid: bytes | None) -> bytes:
    options = b""
    ecs = shape.ecs
    if ecs is not None:
        echoed = ecs[:3] + bytes((min(scope, ecs[2]) if ecs[2] else 0,)) + ecs[4:]
        options = struct.pack("!HH", OPT_ECS, len(echoed)) + echoed
    if shape.nsid and nsid:
        options += struct.pack("!HH", OPT_NSID, len(nsid)) + nsid
    return b"\x00" + _RR_FIXED.pack(_T_OPT, our_payload, 0x8000 if shape.do else 0, len(options)) + options


class FastPath:
    """A cache of encoded responses, owned by one engine (a reload starts a new one)."""

    def __init__(self, engine: "AnswerEngine"):
        self.engine = engine
        self.cache: dict[tuple, tuple[bytes, int]] = {}
        self.hits = 0
        self.misses = 0

    def answer(self, data: bytes, client: str, tcp: bool) -> bytes | None:
        shape = read(data)
        if shape is None:
            return None
        engine = self.engine
        key = shape.key
        scope = 0
        dynamic = engine.dynamic
        if dynamic is not None and _name_of(shape) in dynamic.wire_names:
            if shape.qtype not in (_T_A, _T_AAAA):
                return None
            selection = dynamic.select_fast(shape, client)
            if selection is None:
                return None
            scope = selection.scope
            key = key + (selection.addresses, scope)
        if tcp:
            key = key + ("tcp",)
        entry = self.cache.get(key)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        body, counts = entry
        qend = shape.qend
        head = data[:2] + body[2:10]
        if shape.edns:
            return head + (counts + 1).to_bytes(2, "big") + data[12:qend] + body[qend:] + \
                _opt(shape, engine.payload, scope, engine.nsid)
        return head + counts.to_bytes(2, "big") + data[12:qend] + body[qend:]

    def store(self, shape: Shape, key_extra: tuple, response: bytes, opt_len: int) -> None:
        """Remember a full-path response (without its OPT) for queries of the same key."""
        if len(self.cache) >= MAX_ENTRIES:
            self.cache.clear()
        body = response[:len(response) - opt_len] if opt_len else response
        arcount = (response[10] << 8 | response[11]) - (1 if opt_len else 0)
        self.cache[shape.key + key_extra] = (body, arcount)


def _name_of(shape: Shape) -> bytes:
    return shape.qname_lower
