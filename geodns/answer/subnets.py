"""Templates of GSLB answers with the client subnet left out: first sight of a subnet without parsing.

A large resolver sends the same query (name, type, flags, EDNS, a Client
Subnet option of the same family and source prefix) for network after
network, each seen about once.  Such queries are byte for byte alike except
for the ID, the case of the name (0x20) and the subnet's address octets at
the very end.  The memo (fastpath.py) is keyed by the whole query, so every
new subnet misses it and pays the reader, the encoding cache's key and the
splice of a fresh OPT record.

Here the key is the query without its address octets (name lower-cased),
and the entry is the response without them: per selection, the response's
header, and everything from the end of the question name through the echoed
ECS option's scope octet.  A query whose key is known is one the reader has
already accepted in every octet but the address (the key holds the lengths
that place it), so all that is left to check is that the address has no bits
past the source prefix (RFC 7871 7.1.1).  Its answer is then the responder's
dispatch for that address (``GslbAPI.dispatch``: one binary search over the
compiled areas, the record's decision for that area, counted) and four
concatenations.

Only the common shape takes this path: UDP, the ECS option the only one
(an NSID request takes the usual path), a source prefix above 0, and an
answer that fits.  The templates hold one variant per selection a decision
gave; they are dropped when the responder's generation moves, and a
selection is matched by identity (the decision cache hands out the same
objects while its entry lives), so a stale one is never used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from ..dns.names import Name

if TYPE_CHECKING:
    from .gslb_api import Dispatched, GslbAPI

MAX_TEMPLATES = 4096  # query shapes (name, type, flags, EDNS, family, source); cleared when full
MAX_PLACES = 1024  # places (and selections) per shape with their templates; cleared when full
_FIXED = 24  # octets from the root label on, before the address: root, type, class (5), OPT (11), ECS head (8)


class SubnetTemplates:
    """Query without its address -> ``_Shape``."""

    __slots__ = ("entries",)

    def __init__(self) -> None:
        self.entries: dict[bytes, _Shape] = {}

    def answer(
        self, data: bytes, rest: bytes, source: str, responder: GslbAPI, seen_again: Callable[[int], bool]
    ) -> tuple[bytes | None, tuple, Dispatched | None] | None:
        """For a query of a known shape: (response, counting key, None), or (None, counting key,
        the responder's ``Dispatched``) when no template holds its selection yet (the caller
        encodes it, without dispatching again).  None when the shape is not known, the address is not valid, or
        ``seen_again`` says this very query came before (the memo takes it then): the usual
        path answers, and nothing was counted.
        """
        end = data.find(0, 12)
        if end < 0:
            return None
        k = len(data) - end - _FIXED
        if k <= 0:
            return None
        cut = len(data) - k
        # ``rest`` is the query after its ID, as the memo looked it up (its hash already made):
        # with the name in lower case, as nearly every query has it, it is also the key here.
        shape = self.entries.get(rest[: cut - 2])
        whole = rest
        if shape is None:
            name = data[12:end]
            lowered = name.lower()
            if lowered == name:
                return None
            shape = self.entries.get(data[2:12] + lowered + data[end:cut])
            if shape is None:
                return None
            whole = shape.key + data[cut:]
        if shape.k != k:
            return None
        if data[-1] & shape.mask or seen_again(hash(whole)):
            return None  # bits past the source prefix (the full path refuses it), or a repeat
        record = shape.name
        ecs = data[cut - 4 :]
        place = responder.place(record, ecs)
        if place is not None:
            kept = shape.places.get(id(place))
            if kept is not None and kept[0] is place and kept[1] == responder.ttl(record):
                header, tail = kept[3][kept[2]()]  # counted as dispatch would
                return b"".join((data[:2], header, data[12:end], tail, data[cut:])), shape.counted, None
        dispatched = responder.dispatch(record, shape.qtype, ecs, source, listing=True)
        if dispatched is None:
            return None
        selection = dispatched.selection
        variant = shape.variants.get(id(selection))
        if variant is None or variant[0] is not selection or variant[1] != responder.ttl(record):
            return None, shape.counted, dispatched
        return b"".join((data[:2], variant[2], data[12:end], variant[3], data[cut:])), shape.counted, None

    def shape(self, data: bytes, ecs: bytes, qend: int, name, qtype: int, counted: tuple) -> _Shape | None:
        """The shape of the UDP query ``data`` (its only option ``ecs``, source above 0), known from now on;
        None when its key could not be found again (a zero octet inside a label)."""
        end = qend - 5  # the root label
        if data.find(0, 12) != end or not data.endswith(ecs):
            return None
        k = len(ecs) - 4
        key = data[2:12] + data[12:end].lower() + data[end : len(data) - k]
        shape = self.entries.get(key)
        if shape is None:
            if len(self.entries) >= MAX_TEMPLATES:
                self.entries.clear()  # bounded; the shapes in use come back at once
            spare = 8 * k - ecs[2]  # address bits past the source prefix, all in the last octet
            shape = self.entries[key] = _Shape(key, k, (1 << spare) - 1, end, name, qtype, counted, {}, {})
        return shape

    def clear(self) -> None:
        self.entries.clear()


class _Shape(NamedTuple):
    """One query shape: where the address starts (``k`` octets from the end, ``mask`` the bits past
    the source prefix in the last), the record and type, the counting key, and the templates: per
    selection (for a dispatched client) and per place (``GslbAPI.place``: a repeater and every
    selection's template), each (response header, response from the root label through the
    echoed ECS scope octet).  A tuple, so the C loop (_subnets.c) reads its fields by position."""

    key: bytes
    k: int
    mask: int
    end: int
    name: Name
    qtype: int
    counted: tuple
    variants: dict[int, tuple]  # id(selection) -> (selection, ttl, header, tail)
    places: dict[int, tuple]  # id(place) -> (place, ttl, repeater, ((header, tail), ...))

    def template(self, response: bytes) -> tuple[bytes, bytes]:
        return response[2:12], response[self.end : len(response) - self.k]

    def learn(self, selection, ttl: int, response: bytes) -> None:
        if len(self.variants) >= MAX_PLACES:
            self.variants.clear()  # bounded: the decisions in use refill it
        self.variants[id(selection)] = (selection, ttl, *self.template(response))

    def learn_place(self, place, ttl: int, again: Callable[[], int], responses: list[bytes]) -> None:
        if len(self.places) >= MAX_PLACES:
            self.places.clear()  # bounded (areas times scopes are a few hundred)
        self.places[id(place)] = (place, ttl, again, tuple(self.template(r) for r in responses))
