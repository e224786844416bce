"""What answering asks of the GSLB responder: the one interface between answer/ and the policy chain.

The engine (full path) and the fast path use a responder only through ``GslbAPI``;
``GslbResponder`` (responder.py) is the one implementation.  Anything else the
responder holds (its live view, counters, random generator, caches of clients and
decisions) is its own business, so either side can change without the other.

The questions, in the order a query asks them:

- is ``name`` a GSLB record (``names``, ``wire_names`` for the fast path's bytes),
  or above one (``ancestors``: names that exist without data of their own);
- ``dispatch``: the one GSLB dispatch.  For an A/AAAA question about a record it
  builds the client (ECS option as received, else the resolver), chooses the
  selection and counts it; with ``listing`` it also hands back the record's
  *decision* for that client (every selection it could give, with its share), which
  the fast path pre-encodes;
- ``repeater``: for a decision the fast path has pre-encoded, a function that
  counts one more answer to the same client and says which selection to send;
- ``place``: for a client subnet, a token (the area's location) such that subnets
  with one token get one decision and one count from a record for one query shape,
  so the fast path keeps a repeater per place (answer/subnets.py);
- ``generation``: moves when some answer could change (a memo of decisions is
  valid while it stays).  Records from discovery come and go with the snapshot:
  ``names``, ``ancestors`` and ``wire_names`` are then replaced (new objects, never
  changed in place) together with a new generation;
- ``cnames``: the records that may answer a CNAME (host-name endpoints, ``hostnames: cname``):
  a name that owns a CNAME answers it for every type (RFC 1034 3.6.2), so the engine asks
  ``dispatch`` about them for TXT, MX and the rest too, as for A;
- ``ttl`` and ``rrset``: the answer records for a selection;
- ``client`` and ``debug_rrset``: the ``_geodns.<record>`` TXT trace;
- ``count_into``: the counters to count in (the process's, which outlive an engine).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import NamedTuple, Protocol

from ..dns.names import Name
from ..dns.rrset import RRset
from ..geo.location import Location
from ..gslb.policy import Client, Decision, Selection
from .counters import GslbCounters


class Dispatched(NamedTuple):
    """One GSLB dispatch's result: the selection to answer with (already counted), the record's
    decision for this client when asked for and listable, and the client (opaque to answering:
    it is handed back to ``repeater``)."""

    selection: Selection
    decision: Decision | None
    client: Client


class GslbAPI(Protocol):
    """The responder as answering sees it (see the module docstring)."""

    @property
    def names(self) -> frozenset[Name]: ...
    @property
    def ancestors(self) -> frozenset[Name]: ...
    @property
    def wire_names(self) -> Mapping[bytes, Name]: ...
    @property
    def generation(self) -> int: ...
    @property
    def cnames(self) -> frozenset[Name]: ...

    def dispatch(
        self, name: Name, qtype: int, ecs: bytes | None, source: str, listing: bool = False
    ) -> Dispatched | None: ...

    def repeater(self, name: Name, dispatched: Dispatched) -> Callable[[], int]: ...

    def place(self, name: Name, ecs: bytes) -> Location | None: ...

    def place_tables(self) -> tuple[frozenset[Name], tuple | None]: ...

    def count_into(self, counters: GslbCounters) -> None: ...

    def ttl(self, qname: Name) -> int: ...

    def rrset(self, qname: Name, qtype: int, selection: Selection) -> RRset: ...

    def client(self, ecs: bytes | None, source: str) -> Client: ...

    def debug_rrset(self, name: Name, record: Name, client: Client) -> RRset: ...
