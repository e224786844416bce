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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .gslb_api import GslbAPI

MAX_TEMPLATES = 4096  # query shapes (name, type, flags, EDNS, family, source); cleared when full
_FIXED = 24  # octets from the root label on, before the address: root, type, class (5), OPT (11), ECS head (8)


class SubnetTemplates:
    """Query without its address -> (address octets, bit mask past the source, record, type,
    counting key, {id(selection): (selection, ttl, response header, response tail)})."""

    __slots__ = ("entries",)

    def __init__(self) -> None:
        self.entries: dict[bytes, tuple] = {}

    def answer(
        self, data: bytes, source: str, responder: GslbAPI, seen_again: Callable[[int], bool]
    ) -> tuple[bytes | None, object] | None:
        """For a query of a known shape: (response, counting key), or (None, the responder's
        ``Dispatched``) when no template holds its selection yet (the caller encodes it, without
        dispatching again).  None when the shape is not known, the address is not valid, or
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
        key = data[2:12] + data[12:end].lower() + data[end:cut]
        entry = self.entries.get(key)
        if entry is None or entry[0] != k:
            return None
        _k, mask, name, qtype, counted, variants = entry
        if data[-1] & mask or seen_again(hash(key + data[cut:])):
            return None  # bits past the source prefix (the full path refuses it), or a repeat
        dispatched = responder.dispatch(name, qtype, data[cut - 4 :], source, listing=True)
        if dispatched is None:
            return None
        selection = dispatched.selection
        variant = variants.get(id(selection))
        if variant is None or variant[0] is not selection or variant[1] != responder.ttl(name):
            return None, dispatched
        return data[:2] + variant[2] + data[12:end] + variant[3] + data[cut:], counted

    def learn(
        self, data: bytes, response: bytes, ecs: bytes, qend: int, name, qtype: int, counted: tuple, selection, ttl: int
    ) -> None:
        """Remember ``response`` (to the UDP query ``data``, whose only option is ``ecs``, source above 0)
        as the template of its shape for ``selection``."""
        end = qend - 5  # the root label
        if data.find(0, 12) != end or not data.endswith(ecs):
            return  # a zero octet inside a label, or ECS not last: the key could not be found again
        k = len(ecs) - 4
        cut = len(data) - k
        key = data[2:12] + data[12:end].lower() + data[end:cut]
        entry = self.entries.get(key)
        if entry is None:
            if len(self.entries) >= MAX_TEMPLATES:
                self.entries.clear()  # bounded; the shapes in use come back at once
            spare = 8 * k - ecs[2]  # address bits past the source prefix, all in the last octet
            entry = self.entries[key] = (k, (1 << spare) - 1, name, qtype, counted, {})
        entry[5][id(selection)] = (selection, ttl, response[2:12], response[end : len(response) - k])

    def clear(self) -> None:
        self.entries.clear()
