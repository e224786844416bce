"""GSLB answers: where the answer engine meets the policy chain.

``GslbResponder`` is the one implementation of ``gslb_api.GslbAPI``, all the
engine and the fast path ask of it on the query path: is a name a GSLB record,
and what are its A/AAAA records for this client (``dispatch``).  Everything that
depends on the live table (the snapshot, its health view, each record's
policy context) is rebuilt off the query path by ``update`` and swapped in
with one assignment (``live``, a ``LiveView``), so a query always sees one
consistent view.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import time
from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address

from ..config.model import Config, HostName, IPAddress, RecordSpec
from ..discovery.records import NOTHING as NO_DISCOVERY
from ..discovery.records import Discovered, derive, with_discovered
from ..dns import wire
from ..dns.names import Name, from_text, to_text, to_wire
from ..dns.rrset import RRset
from ..errors import Problem
from ..geo import Location, Locator
from ..gslb import policy, why
from ..gslb.filters import LOCATION_FILTERS
from ..gslb.health import HealthView
from ..gslb.load import EMPTY as NO_LOAD
from ..gslb.load import LoadView, ShedController
from ..gslb.policy import Client, Context, Decision, Selection, contexts, select
from ..segmented import Segmented
from ..state.model import Snapshot
from ..zones import MatchKind
from ..zones.zone import type_name
from ..zones.zoneset import ZoneSet
from .counters import GslbCounters, Tally
from .gslb_api import Dispatched

log = logging.getLogger("geodns.gslb")

_FAMILY = {wire.T_A: 4, wire.T_AAAA: 6}
CLIENT_CACHE = 65536  # distinct client subnets remembered by the fast path
DECISION_CACHE = 65536  # (record, family, location, ECS source) decisions remembered ...
DECISION_SELECTIONS = 262_144  # ... holding this many selections in all (a few hundred bytes each)


@dataclass(frozen=True)
class LiveView:
    """One snapshot with everything derived from it; replaced whole."""

    snapshot: Snapshot
    health: HealthView
    contexts: Mapping[Name, Context]
    built_at: float
    # Changes only when some answer could: states with the same generation decide alike,
    # so caches of decisions (``decision``, the fast path's) outlive a routine health report.
    generation: int
    # Each cluster's load and shed share (gslb/load.py), and the TTL of records whose
    # shedding is moving (capped by their clusters' ``load.ttl``; the others use their own).
    load: LoadView = NO_LOAD
    ttls: Mapping[Name, int] = field(default_factory=dict)
    # The records and clusters from discovery in this snapshot (already merged into the above).
    discovered: Discovered = NO_DISCOVERY


class GslbResponder:
    """Answers the GSLB records (the config's and those discovered) from the current live view."""

    def __init__(self, config: Config, locator: Locator, snapshot: Snapshot, rng: random.Random | None = None):
        self.config = config
        self.regions = config.regions
        self.health_config = config.health
        self.locator = locator
        self.rng = rng or random.Random()
        self.counters = GslbCounters()
        # Subnet or source -> Client.  Segmented: a flood of one-time subnets cannot push out
        # the ones steady traffic comes from (nor can it in the decision cache).
        self._clients = Segmented(CLIENT_CACHE)
        self._decisions = Segmented(DECISION_CACHE, weigh=_held, max_weight=DECISION_SELECTIONS)
        self._decisions_generation = -1
        self._use_records(config.records)
        self.shed = ShedController(config.clusters)
        self._source = snapshot  # as the store gave it, without the discovered clusters
        self.live: LiveView = self._build(snapshot, None)
        self.generation = self.live.generation  # GslbAPI: a plain attribute, read per query by the fast path
        self.cnames = _cname_records(self.records, self.live.snapshot)

    def _use_records(self, records: Mapping[Name, RecordSpec]) -> None:
        """The records answered: the config's, and those discovered (discovery/records.py) in the
        current snapshot; the name sets the query path looks up follow them (new sets, never
        changed in place, so the fast path can tell by identity that they moved)."""
        self.records: Mapping[Name, RecordSpec] = records
        self.names = frozenset(records)
        # Names above a GSLB record exist too (empty non-terminals), even if
        # the zone file does not mention them.
        self.ancestors = frozenset(name[i:] for name in self.names for i in range(1, len(name)))
        # The same names in lower-cased wire form, for the fast path's byte-level look-up.
        self.wire_names: dict[bytes, Name] = {to_wire(name): name for name in self.names}
        self._reads_rtt = any("latency" in record.policy for record in records.values())
        # Records whose answers depend on where the client is; the others have one decision for everyone.
        self._placed = frozenset(
            name for name, record in records.items() if LOCATION_FILTERS.intersection(record.policy)
        )
        # Of those, the ones that read more of the location than its area (geo/areas.py): a
        # client's area Location is swapped for the exact one before their chain runs.
        self._exact = frozenset(
            name for name, record in records.items() if (LOCATION_FILTERS - {"geo"}).intersection(record.policy)
        )

    # -- off the query path -----------------------------------------------------
    def _build(self, snapshot: Snapshot, previous: LiveView | None) -> LiveView:
        now = time.time()
        discovered = derive(snapshot, self.config, now)
        snapshot = with_discovered(snapshot, discovered)
        records = {**discovered.records, **self.config.records} if discovered.records else self.config.records
        same_records = records == self.records
        if not same_records:
            self._use_records(records)
        quorum = self.health_config.quorum
        health = HealthView.build(snapshot, now, quorum, unknown_is_up=self.health_config.unknown == "up")
        load = self.shed.view(snapshot, now)
        if previous is None:
            generation = 0
        elif (
            same_records
            and snapshot.clusters == previous.snapshot.clusters
            and snapshot.resolved == previous.snapshot.resolved
            and health.same_decisions(previous.health, self._reads_rtt)
            and load.same_decisions(previous.load)
        ):
            generation = previous.generation
        else:
            generation = previous.generation + 1
        ttls = (
            {}
            if not load.states
            else {
                name: ttl
                for name, record in self.records.items()
                if (ttl := load.ttl(record.clusters, record.ttl)) != record.ttl
            }
        )
        if snapshot.resolved:
            ttls = _flattened_ttls(self.records, snapshot, ttls)
        return LiveView(
            snapshot,
            health,
            contexts(self.records.values(), snapshot, health, self.regions, self.rng, load),
            now,
            generation,
            load,
            ttls,
            discovered,
        )

    def update(self, snapshot: Snapshot | None = None) -> None:
        """Rebuild for a new snapshot, or for the passage of time (observations expire, leases lapse)."""
        self._source = snapshot if snapshot is not None else self._source
        self.live = self._build(self._source, self.live)
        self.generation = self.live.generation
        self.cnames = _cname_records(self.records, self.live.snapshot)

    # -- on the query path -----------------------------------------------------------
    def client(self, ecs: bytes | None, source: str) -> Client:
        """Who the answer is for: the ECS subnet when the resolver sent one (``ecs``: the option's
        value as received, already checked), else the resolver at ``source``.

        The one client constructor, for both paths.  A subnet inside the compiled areas is
        placed by one binary search (``Locator.area_of``), as cheap as remembering it, so a
        flood of one-time subnets has no cache to churn; the rest are remembered per subnet
        or source.  Counts the ECS option and a client nobody could place.
        """
        counters = self.counters
        if ecs is not None:
            counters.ecs += 1
            if ecs[2]:
                v4 = ecs[1] == 1
                value = wire.ecs_number(ecs)
                location = self.locator.area_of(4 if v4 else 6, value)
                if location is not None:
                    if location.source == "none":
                        counters.geo_misses += 1
                    address = IPv4Address(value) if v4 else IPv6Address(value)
                    return Client(address, location, ecs[2])
        key = source if ecs is None else ecs if ecs[2] else (ecs, source)
        client = self._clients.get(key)
        if client is None:
            client = self._new_client(ecs, source)
            self._clients.put(key, client)
        if client.location.source == "none":
            counters.geo_misses += 1
        return client

    def place(self, name: Name, ecs: bytes) -> Location | None:
        """The area standing for the client subnet ``ecs`` (the option's value, checked, source
        above 0) when record ``name`` decides by no more than the area: then two subnets with
        one place get one decision from ``name`` for one query shape (type and source prefix),
        counted alike (``repeater``).  None when it reads more, or the subnet is outside the
        compiled areas: ``dispatch`` then.  Counts nothing.
        """
        if name in self._exact:
            return None
        return self.locator.area_of(4 if ecs[1] == 1 else 6, wire.ecs_number(ecs))

    def place_tables(self) -> tuple[frozenset[Name], tuple | None]:
        """What ``place`` reads, for the C loop that does the same (answer/_subnets.c): the
        records that read more than the area, and the compiled areas' arrays (None until built)."""
        areas = self.locator.areas
        return self._exact, areas.arrays if areas is not None else None

    def _new_client(self, ecs: bytes | None, source: str) -> Client:
        address: IPAddress
        if ecs is not None and ecs[2]:
            address = wire.ecs_address(ecs)
            return Client(address, self.locator.area(address), ecs[2])
        address = ipaddress.ip_address(source)
        return Client(address, self.locator.area(address), None if ecs is None else 0)

    def _exactly(self, qname: Name, client: Client) -> Client:
        """``client`` with its exact location when ``qname``'s chain reads more than the area."""
        if client.location.source == "area" and qname in self._exact:
            return Client(client.address, self.locator.locate(client.address), client.ecs_source)
        return client

    def count_into(self, counters: GslbCounters) -> None:
        """Count into ``counters`` from now on (the process's, which outlive a reload)."""
        self.counters = counters

    def dispatch(
        self, name: Name, qtype: int, ecs: bytes | None, source: str, listing: bool = False
    ) -> Dispatched | None:
        """The one GSLB dispatch: the counted selection for an A/AAAA question about record ``name``.

        None for other types (the zone answers them) or a name without a context.
        With ``listing`` (the fast path) the selection is drawn from the record's
        decision for this client, which comes back too when it can be listed;
        without (the full path) the chain runs once for this query.
        """
        family = _FAMILY.get(qtype)
        if family is None:
            return None
        context = self.live.contexts.get(name)
        if context is None:
            return None
        client = self.client(ecs, source)
        decision = self.decision(name, qtype, client) if listing else None
        if decision is None:
            selection = select(context, self._exactly(name, client), family)
        else:
            selections = decision.selections
            if len(selections) == 1:
                selection = selections[0]
            else:
                selection = selections[bisect_right(decision.cumulative, self.rng.random())]
        self.counters.tally(name, selection).n += 1
        return Dispatched(selection, decision, client)

    def repeater(self, name: Name, dispatched: Dispatched) -> Callable[[], int]:
        """For the fast path's memo of ``dispatched.decision`` (pre-encoded, one answer per selection):
        a function that counts one more answer to the same client, as ``dispatch`` would have, and
        returns the index of the selection to send.

        What it needs is bound here once, so a repeat chases no objects: with thousands of
        records each hit touches memory no other has.  Bound as defaults, not as a closure's
        cells: the memo holds one of these per client, and each cell (and a bound ``random``)
        was one more object for every garbage collection to walk; at 50,000 ECS clients that
        tripled the collector's time per query (bench/engine_ab.py --mix ecs --queries 50000).
        """
        decision = dispatched.decision
        assert decision is not None  # only a listed decision is pre-encoded
        client = dispatched.client

        def again(
            responder: GslbResponder = self,
            ecs: bool = client.ecs_source is not None,
            geo_miss: bool = client.location.source == "none",
            tallies: tuple[Tally, ...] = tuple(self.counters.tally(name, s) for s in decision.selections),
            cumulative: tuple[float, ...] = decision.cumulative,
        ) -> int:
            counters = responder.counters
            if ecs:
                counters.ecs += 1
            if geo_miss:
                counters.geo_misses += 1
            i = 0 if len(tallies) == 1 else bisect_right(cumulative, responder.rng.random())
            tallies[i].n += 1
            return i

        return again

    def decision(self, qname: Name, qtype: int, client: Client) -> Decision | None:
        """Every selection for an A/AAAA question about a GSLB name, with its probability.

        Remembered per (record, family, location, ECS source): those are all the
        chain reads of a client, and only for records with a location-reading
        filter; the others have one list for everyone (scope /0).  None: too
        many random paths to list (select per query).
        """
        live = self.live
        if live.generation != self._decisions_generation:
            self._decisions.clear()
            self._decisions_generation = live.generation
        client = self._exactly(qname, client)
        if qname in self._placed:
            # A source prefix at or past the location's own gives the same scope as none (ecs_scope).
            location, source = client.location, client.ecs_source
            key: tuple = (qname, qtype, location, source if source is not None and source < location.prefix else None)
        else:
            key = (qname, qtype)
        found = self._decisions.get(key, _UNLISTED)
        if found is not _UNLISTED:
            return found
        context = live.contexts[qname]
        found = policy.decision(context, client, _FAMILY[qtype])
        self._decisions.put(key, found)
        return found

    def ttl(self, qname: Name) -> int:
        """The record's TTL, shorter while its clusters' shedding moves (``load.ttl``)."""
        ttls = self.live.ttls
        return ttls.get(qname, self.records[qname].ttl) if ttls else self.records[qname].ttl

    def rrset(self, qname: Name, qtype: int, selection: Selection) -> RRset:
        """The answer for a selection: its addresses, or the CNAME to its one host name."""
        first = selection.addresses[0]
        if isinstance(first, HostName):
            target = from_text(first.text + ".")
            return RRset(qname, wire.T_CNAME, self.ttl(qname), (to_wire(target),), (target,))
        packed = tuple(a.packed for a in selection.addresses if not isinstance(a, HostName))
        return RRset(qname, qtype, self.ttl(qname), packed)

    # -- explain (for operators) --------------------------------------------------------
    def explain(self, qname: Name, qtype: int, address: str, prefix: int | None = None) -> dict:
        """The decision for a made-up client, with each filter's candidates in and out and its reason."""
        ip = ipaddress.ip_address(address)
        location = self.locator.locate(ip)
        client = Client(ip, location, prefix)
        family, context = _FAMILY.get(qtype), self.live.contexts.get(qname)
        # why.explain runs policy.select, not self.select: an operator's question is not a query to count.
        decision = (
            why.explain(context, client, family)
            if family and context
            else {"steps": [], "answer": [], "clusters": [], "fallback": False, "scope": 0}
        )
        return {
            "name": to_text(qname),
            "client": {"address": str(ip), "ecs_source": prefix, "location": _location_dict(location)},
            **decision,
            "shares": _shares(context, client, family) if family and context else {},
            "snapshot_version": self.live.snapshot.version,
        }

    def debug_rrset(self, name: Name, record: Name, client: Client) -> RRset:
        """The ``_geodns.<record>`` TXT answer: one self-describing string per line of the trace."""
        context = self.live.contexts[record]
        # The exact location (not the area's stand-in), so the lines name the client's own place.
        client = Client(client.address, self.locator.locate(client.address), client.ecs_source)
        decision = why.explain(context, client, 4)
        loc = client.location
        where = "/".join(x for x in (loc.region, loc.country, loc.continent) if x) or "unknown"
        source = f"ecs {client.address}/{client.ecs_source}" if client.ecs_source else f"resolver {client.address}"
        lines = [f"client {source} located {where} via {loc.source} prefix /{loc.prefix}"]
        for step in decision["steps"]:
            lines.append(
                f"{step['filter']}: in {','.join(step['in']) or '-'} out {','.join(step['out']) or '-'}"
                + (f" dropped {','.join(step['dropped'])}" if step["dropped"] else "")
                + (f" ({step['why']})" if step["why"] else "")
            )
        v6 = select(context, client, 6)
        lines.append(
            f"answer A {','.join(decision['answer']) or '-'} AAAA {','.join(map(str, v6.addresses)) or '-'}"
            f" clusters {','.join(decision['clusters']) or '-'}{' (fallback)' if decision['fallback'] else ''}"
        )
        lines.append(
            f"snapshot version {self.live.snapshot.version} record {to_text(record)} scope /{decision['scope']}"
        )
        rdatas = tuple(_txt_rdata(f"{i:02d} {line}") for i, line in enumerate(lines, 1))
        return RRset(name, wire.T_TXT, 0, rdatas)


_UNLISTED = object()


def _held(found: Decision | None) -> int:
    """What one decision weighs in the decision cache: its selections (a few hundred bytes each)."""
    return len(found.selections) if found is not None else 1


def _cname_records(records: Mapping[Name, RecordSpec], snapshot: Snapshot) -> frozenset[Name]:
    """The records that may answer a CNAME (``GslbAPI.cnames``): those answering host names as
    CNAMEs with a host-name endpoint among their clusters in ``snapshot``."""
    clusters = snapshot.clusters
    return frozenset(
        name
        for name, record in records.items()
        if record.hostnames == "cname"
        and any(
            isinstance(e.address, HostName)
            for c in record.clusters
            if (cluster := clusters.get(c)) is not None
            for e in cluster.endpoints
        )
    )


def _flattened_ttls(records: Mapping[Name, RecordSpec], snapshot: Snapshot, ttls: dict[Name, int]) -> dict[Name, int]:
    """``ttls`` with each flattening record capped at the TTL of its host names' addresses (as an
    alias record answers with its target's TTL): a resolver keeps them no longer than they hold."""
    out = dict(ttls)
    resolved, clusters = snapshot.resolved, snapshot.clusters
    for name, record in records.items():
        if record.hostnames != "flatten":
            continue
        held = [
            found.ttl
            for c in record.clusters
            if (cluster := clusters.get(c)) is not None
            for e in cluster.endpoints
            if isinstance(e.address, HostName) and (found := resolved.get(e.address.text)) is not None
        ]
        if held:
            ttl = min(out.get(name, record.ttl), *held)
            if ttl != record.ttl:
                out[name] = ttl
    return out


def _shares(context: Context, client: Client, family: int) -> dict[str, float]:
    """How often each first cluster answers this client (exact, from ``policy.decision``); {} when
    the chain has too many random paths to list."""
    exact = policy.decision(context, client, family)
    shares: dict[str, float] = {}
    for selection, share in zip(exact.selections, exact.shares) if exact is not None else ():
        first = selection.clusters[0] if selection.clusters else "-"
        shares[first] = shares.get(first, 0.0) + share
    return {name: round(share, 6) for name, share in sorted(shares.items(), key=lambda kv: -kv[1])}


def _txt_rdata(text: str) -> bytes:
    """One TXT rdata: the text in character-strings of at most 255 octets."""
    data = text.encode("utf-8")
    return b"".join(bytes((len(data[i : i + 255]),)) + data[i : i + 255] for i in range(0, len(data), 255))


def _location_dict(location) -> dict:
    return {
        "region": location.region,
        "country": location.country,
        "continent": location.continent,
        "lat": location.lat,
        "lon": location.lon,
        "prefix": location.prefix,
        "source": location.source,
    }


def check_records(config: Config, zones: ZoneSet) -> list[Problem]:
    """Every GSLB record must sit inside a served zone, above any cut, without clashing data."""
    problems = []
    source = str(config.source) if config.source else "config"
    cnames = _cname_records(config.records, Snapshot.from_specs(config.clusters.values()))
    for name, record in config.records.items():
        where = f"records.{record.text}"
        zone = zones.zone_for(name)
        if zone is None:
            problems.append(Problem(source, record.line, f"{where}: not inside any served zone"))
            continue
        match = zone.find(name)
        if match.kind is MatchKind.DELEGATION and match.cut is not None:  # a delegation always has its cut
            problems.append(
                Problem(
                    source,
                    record.line,
                    f"{where}: below the zone cut {to_text(match.cut.name)}; it would never be answered",
                )
            )
        elif match.kind is MatchKind.EXACT:
            # A record answering a host name as a CNAME owns the name: nothing else may be there.
            owns = name in cnames
            clash = [t for t in match.rrsets if owns or t in (wire.T_A, wire.T_AAAA, wire.T_CNAME)]
            if clash:
                types = ", ".join(type_name(t) for t in sorted(clash))
                why = " (the record answers a host name as a CNAME, which owns its name alone)" if owns else ""
                problems.append(
                    Problem(
                        source,
                        record.line,
                        f"{where}: {zone.source} also has {types} records at this name{why}; remove one",
                    )
                )
    return problems


async def keep_health_fresh(current: Callable[[], GslbResponder | None], every: float = 0.5) -> None:
    """Observations expire with time, not only with changes: rebuild the live view when one has,
    when a lease lapses or its grace ends (discovery/records.py), and when a cluster's shedding is due its next tick (gslb/load.py).

    ``current`` returns the responder in use now (it changes on reload).
    """
    while True:
        await asyncio.sleep(every)
        responder = current()
        if responder is None:
            continue
        live = responder.live
        if time.time() >= min(live.health.valid_until, live.load.valid_until, live.discovered.valid_until):
            responder.update()
