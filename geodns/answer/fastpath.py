"""The fast path: answer the common query shapes from pre-encoded bytes.

Almost every query a GSLB server sees has the same shape: one question, class
IN, maybe an OPT with the DO bit, a Client Subnet option and an NSID request.
For those, ``dns.wire.read_shape`` (the first stage of the one query reader)
reads only the header, the question and the OPT, and this module answers from
a cache of encoded responses: the bytes the full path
produced the first time, with the ID patched, the question copied as received
(case kept, for 0x20 clients) and a fresh OPT appended (it echoes the client's
own subnet; ``dns.encode.opt_record``, the one OPT writer).

The key is everything the answer depends on: the question (lower-cased), the
RD/CD bits, EDNS/DO/NSID, the size limit, and for GSLB names the addresses the
policy chain chose and the ECS scope.  Anything else (ANY, unknown options,
truncation, errors, malformed packets) returns None and takes the full path,
which produced every cached response in the first place, so both give the same
bytes; a test compares them on generated queries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..dns.encode import TCP_MAX, Answer, encode, opt_record, udp_limit
from ..dns.wire import T_A, T_AAAA, Shape, query_of, read_shape
from ..segmented import Segmented
from .subnets import SubnetTemplates

try:
    from . import _subnets
except ImportError:  # built where a compiler was at hand (pyproject.toml: optional)
    _subnets = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from ..dns.names import Name
    from .engine import AnswerEngine
    from .gslb_api import Dispatched, GslbAPI

MAX_ENTRIES = 100_000
MEMO_ENTRIES = 50_000
MEMO_BYTES = 64 << 20  # and at most this much response data: spoofed ECS subnets cannot grow it past
MEMO_VARIANTS = 32  # answers one memo entry may hold; a record with more selects per query
SEEN = 65_536  # ECS queries remembered (by hash) as seen once; two generations of this many
_TOO_BIG = ("too big",)  # in ``cache``: this selection's answer does not fit this client's size limit


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
    has not seen takes ``cache``, keyed by the shape ``read_shape`` reads, which
    holds one encoding per GSLB selection.  A GSLB memo entry holds every
    answer the record can give that client (its decision, from ``GslbAPI.dispatch``), so it
    stays valid while the responder's ``generation`` does.  The responder is
    used only through ``gslb_api.GslbAPI``.
    """

    def __init__(self, engine: AnswerEngine):
        self.engine = engine
        self.cache: dict[tuple, tuple] = {}
        # Segmented (geodns/segmented.py): a flood of queries for one-time ECS subnets passes
        # through its probation segment and leaves the entries steady traffic hits alone.
        self.memo = Segmented(MEMO_ENTRIES, weigh=_memo_size, max_weight=MEMO_BYTES)
        # The doorkeeper of the memo for queries carrying a client subnet: hashes of those seen
        # once (this generation and the one before).  At resolver scale most subnets come back
        # about once per TTL if at all, so the memo takes one on its second sighting; the first
        # costs the encoding cache's splice alone, not every variant's plus the entry.
        self._seen: set[int] = set()
        self._seen_before: set[int] = set()
        # A query shape's answers without the subnet (subnets.py): first sight without the reader.
        self.templates = SubnetTemplates()
        self.hits = 0
        self._generation = engine.responder.generation if engine.responder is not None else None
        self._names = engine.responder.names if engine.responder is not None else frozenset()
        self._signed = engine.signing.generation if engine.signing is not None else 0

    def _size(self, shape: Shape, tcp: bool) -> int:
        return TCP_MAX if tcp else udp_limit(shape.edns, shape.payload, self.engine.payload)

    def answer(self, data: bytes, client: str, tcp: bool) -> tuple[bytes, tuple, bool] | None:
        """(response, counting key, ECS present) from the caches or a GSLB selection; None: full path."""
        self.ready()
        responder: GslbAPI | None = self.engine.responder
        if not tcp:
            rest = data[2:]
            memo = self.memo
            entry = memo.hit(rest)
            if entry is None and responder is not None:
                # Before the memo's other look-ups: a client subnet seen for the first time (at
                # resolver scale, most of them) is answered here and would miss them all.  A repeat
                # is not (the doorkeeper knows it) and goes on to the memo.
                found = self.templates.answer(data, rest, client, responder, self._seen_again)
                if found is not None:
                    response, counted, dispatched = found
                    if response is not None:
                        self.hits += 1
                        return response, counted, True
                    return self._gslb_shaped(data, client, responder, dispatched)
            if entry is None:
                entry = memo.get(rest)
                if entry is None and responder is not None:
                    entry = memo.get((rest, client))
            if entry is not None:
                self.hits += 1
                tail = entry[0]
                if tail is None:  # a GSLB entry: (None, key, ecs, tails, again)
                    tail = entry[3][entry[4]()]
                return data[:2] + tail, entry[1], entry[2]
            hit = self._memo_mixed_case(data, client)
            if hit is not None:
                return hit
        shape = read_shape(data)
        if shape is None:
            return None
        size = self._size(shape, tcp)
        if responder is None or shape.qname not in responder.wire_names:
            entry = self.cache.get(shape.base + (size,))
            if entry is None:
                return None
            self.hits += 1
            response = self._splice(data, shape, entry, 0)
            if not tcp:
                tail = _lowered(response, shape)
                self.memo.put(_lowered(data, shape), (tail, entry[2], shape.ecs is not None))
            return response, entry[2], shape.ecs is not None
        if shape.qtype != T_A and shape.qtype != T_AAAA:
            return None
        return self._gslb(data, shape, size, client, tcp, responder)

    def ready(self) -> dict:
        """The memo's protected entries (its ``hit``), after dropping what the live view or new
        signatures made stale.  ``answer`` calls it per query; the batched UDP reader
        (dns/udp.py, through feed.py) once per batch, and looks its queries up itself."""
        responder = self.engine.responder
        if responder is not None and responder.generation != self._generation:
            self._follow(responder.generation, responder.names)
        signing = self.engine.signing
        if signing is not None and signing.generation != self._signed:
            # Signatures were replaced (geodns/dnssec/refresh.py): what is encoded here carries the old ones.
            self.cache.clear()
            self.memo.clear()
            self.templates.clear()
            self._signed = signing.generation
        return self.memo.protected

    def _follow(self, generation: int, names: frozenset[Name]) -> None:
        """The responder's generation moved: the memo's GSLB answer lists are stale.

        Static entries (a tail of their own) and ``cache`` stay: neither depends on the live view,
        unless the GSLB names changed (records from discovery came or went; a new set, never one
        changed in place, and always with a new generation), when a static NXDOMAIN may now be a
        record's name, or a record's name fall back to the zone.
        """
        if names is not self._names:
            self._names = names
            self.cache.clear()
            self.memo.clear()
        else:
            self.memo.keep(lambda entry: entry[0] is not None)
        self.templates.clear()
        self._generation = generation

    def _gslb_shaped(self, data: bytes, client: str, responder: GslbAPI, dispatched: Dispatched | None):
        """``_gslb`` for a query the templates dispatched but held no answer for (a new selection)."""
        shape = read_shape(data)
        assert shape is not None  # its shape is a template's, which this reader accepted
        return self._gslb(data, shape, self._size(shape, False), client, False, responder, dispatched)

    def _gslb(
        self,
        data: bytes,
        shape: Shape,
        size: int,
        client: str,
        tcp: bool,
        responder: GslbAPI,
        dispatched: Dispatched | None = None,
    ):
        engine = self.engine
        name = responder.wire_names[shape.qname]
        if dispatched is None:
            dispatched = responder.dispatch(name, shape.qtype, shape.ecs, client, listing=True)
        if dispatched is None:  # not a GSLB name in this live view: the full path answers
            return None
        selection, decision = dispatched.selection, dispatched.decision
        ecs = shape.ecs is not None
        if engine.chases(selection):
            # A CNAME into our zones: the answer holds the target's data (perhaps another record's
            # decision for this client), so it is encoded per query and never kept.
            response = self._encode(data, shape, size, name, selection, client)
            if response is None:
                return None
            if response[2] & 0x02:
                engine.stats.truncated += 1
            return response, (_origin(engine, name), shape.qtype, response[3] & 0x0F), ecs
        ttl = responder.ttl(name)
        entry = self._gslb_entry(data, shape, size, name, selection, ttl)
        if entry is None:  # too big for this client: the truncated answer, uncached
            response = self._encode(data, shape, size, name, selection)
            if response is None:
                return None
            engine.stats.truncated += 1
            return response, (_origin(engine, name), shape.qtype, 0), ecs
        response = self._splice(data, shape, entry, selection.scope)
        subnet = shape.ecs is not None and shape.ecs[2]
        template = None
        if subnet and not tcp and not shape.nsid:
            assert shape.ecs is not None
            template = self.templates.shape(data, shape.ecs, shape.qend, name, shape.qtype, entry[2])
            if template is not None:
                template.learn(selection, ttl, response)
        if decision is not None and not tcp and len(decision.selections) <= MEMO_VARIANTS:
            lowered = _lowered(data, shape)
            memorize = not subnet or self._seen_again(hash(lowered))
            place = None  # a place the template does not know yet: learn its answers below
            if template is not None and shape.ecs is not None:
                place = responder.place(name, shape.ecs)
                if place is not None and id(place) in template.places:
                    place = None
            if not memorize and place is None:
                return response, entry[2], ecs
            responses = []
            for option in decision.selections:
                got = entry if option is selection else self._gslb_entry(data, shape, size, name, option, ttl)
                if got is None or engine.chases(option):
                    break
                responses.append(response if option is selection else self._splice(data, shape, got, option.scope))
            else:
                again = responder.repeater(name, dispatched)
                if memorize:
                    key = lowered if subnet else (lowered, client)
                    tails = tuple(_lowered(r, shape) for r in responses)
                    self.memo.put(key, (None, entry[2], ecs, tails, again))
                if place is not None:
                    assert template is not None
                    template.learn_place(place, ttl, again, responses)
        return response, entry[2], ecs

    def _seen_again(self, key: int) -> bool:
        """Whether ``key`` was seen before (recently); remember it if not."""
        seen = self._seen
        if key in seen or key in self._seen_before:
            return True
        if len(seen) >= SEEN:
            # The generations turn over in place: the C loop holds these very sets (``hook``).
            self._seen_before.clear()
            self._seen_before |= seen
            seen.clear()
        seen.add(key)
        return False

    def hook(self) -> tuple | None:
        """The subnet templates' answer in C for the batched UDP loop (answer/_subnets.c, which
        reads what ``SubnetTemplates.answer`` reads, through this batch's ``Context``): (capsule,
        context), or None where the module is not built or no record is served."""
        responder = self.engine.responder
        if _subnets is None or responder is None:
            return None
        exact, areas = responder.place_tables()
        context = _subnets.Context(
            self.templates.entries, self._seen, self._seen_before, self._seen_again, SEEN, responder.ttl, exact, areas
        )
        return _subnets.HOOK, context

    def _gslb_entry(self, data: bytes, shape: Shape, size: int, name, selection, ttl: int) -> tuple | None:
        """The cached encoding of one selection for this query shape (``ttl``: the record's now, shorter
        while shedding moves); None when it does not fit."""
        key = shape.base + (size, selection.addresses, selection.scope, ttl)
        entry = self.cache.get(key)
        if entry is None:
            response = self._encode(data, shape, size, name, selection)
            if response is None:
                return None
            if response[2] & 0x02:
                self.cache[key] = _TOO_BIG  # so the next query does not encode it twice
                return None
            entry = self._store(key, shape, response, _origin(self.engine, name), 0)
        elif entry is _TOO_BIG:
            return None
        return entry

    def _encode(self, data: bytes, shape: Shape, size: int, name, selection, client: str = "") -> bytes | None:
        engine = self.engine
        query = query_of(data, shape)  # the reader's second stage: the Query of this very shape
        if query is None:
            return None
        result = Answer(ecs_scope=selection.scope)
        engine.gslb_result(name, query.qtype, selection, result, query, client)
        zone = engine.zones.zone_for(name)
        if zone is not None:
            engine.secure(zone, query, result)
        return encode(query, result, size, engine.payload, engine.nsid)

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
        if entry is None and self.engine.responder is not None:
            entry = self.memo.get((key, client))
        if entry is None:
            return None
        self.hits += 1
        tail = entry[0]
        if tail is None:  # a GSLB entry: (None, key, ecs, tails, again)
            tail = entry[3][entry[4]()]
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
                + opt_record(engine.payload, 0, shape.do, shape.ecs, scope, engine.nsid if shape.nsid else None)
            )
        return data[:2] + body[2:10] + arcount.to_bytes(2, "big") + data[12:qend] + body[qend:]

    def remember(self, shape: Shape | None, tcp: bool, response: bytes, origin, rcode: int) -> None:
        """Keep a full-path response for a static name (``shape``: its query's) for the next query of that key."""
        if shape is None or (self.engine.responder is not None and shape.qname in self.engine.responder.wire_names):
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


def _memo_size(entry: tuple) -> int:
    """The response bytes a memo entry holds: its tail, or a GSLB entry's tails."""
    tail = entry[0]
    return len(tail) if tail is not None else sum(map(len, entry[3]))


def _origin(engine: AnswerEngine, name: Name) -> Name:
    """The origin of the served zone holding GSLB record ``name`` (the config checks put each inside one)."""
    zone = engine.zones.zone_for(name)
    if zone is None:
        raise LookupError(f"GSLB name {name!r} is outside every served zone")
    return zone.origin
