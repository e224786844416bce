"""The answer engine: from query bytes to response bytes.

It owns the DNS semantics of an authoritative server (RFC 1034 4.3.2, RFC 2308,
RFC 4592, RFC 6891, RFC 7871, RFC 8482) over the served zones, and asks the
GSLB selector for the names that are GSLB records.  It never awaits: a query
is parse, look up, select, encode, all in memory.
"""

from __future__ import annotations

import logging
import random
from bisect import bisect_left
from time import perf_counter
from typing import TYPE_CHECKING

from ..dns import wire
from ..dns.encode import TCP_MAX, Answer, encode, encode_error, encode_header_only, max_udp_size
from ..dns.names import Name, from_text, to_text
from ..dns.rrset import RRset
from ..dns.wire import FormatError, Query
from ..zones import MatchKind, Zone
from ..zones.zoneset import ZoneSet
from .counters import DURATION_BUCKETS, QueryStats
from .fastpath import FastPath

if TYPE_CHECKING:
    from ..config.model import QueryLogConfig
    from ..dnssec.secure import Signing
    from ..gslb.policy import Selection
    from .counters import GslbCounters
    from .gslb_api import GslbAPI
    from .responder import GslbResponder

log = logging.getLogger("geodns.engine")
query_log = logging.getLogger("geodns.querylog")

MAX_CNAME_CHAIN = 12
_ADDRESS_TYPES = (wire.T_A, wire.T_AAAA)
_GSLB_TYPES = frozenset((wire.T_A, wire.T_AAAA, wire.T_ANY))  # what every GSLB record answers
# Types a name owning a CNAME does not answer with it (RFC 4035): DNSSEC's own, asked of the name.
_NOT_CNAME = frozenset((wire.T_DS, 47, 46))  # DS, NSEC, RRSIG
_CNAME_OWNER = frozenset((wire.T_CNAME,))
# Types whose rdata names get A/AAAA in the additional section (RFC 1035 3.3, RFC 2782).
_ADDITIONAL_TYPES = frozenset((wire.T_NS, wire.T_MX, wire.T_SRV))
DEBUG_LABEL = b"_geodns"


class AnswerEngine:
    """Stateless between queries; replaced whole on reload."""

    def __init__(
        self,
        zones: ZoneSet,
        *,
        payload: int = 1232,
        nsid: bytes | None = None,
        responder: GslbResponder | None = None,
        debug_txt: bool = False,
        query_log: QueryLogConfig | None = None,
        fast_path: bool = True,
        signing: Signing | None = None,
    ):
        self.zones = zones
        self.payload = payload
        self.nsid = nsid
        # The whole responder, for the process that updates it and the views that read it; this
        # module and the fast path use it only through ``GslbAPI`` (tests/test_layers.py checks).
        self.responder = responder
        self.signing = signing  # DNSSEC: signs answers from signed zones for queries with DO (geodns/dnssec/)
        # Its own until ``count_into`` hands it the process's (so reloads keep counting).
        self.stats = QueryStats()
        # `_geodns.<record>` answered with a TXT trace of the decision (opt-in), for the records
        # answered now: looked up per query in the responder's names, which follow discovery.
        self.debug_txt = debug_txt and responder is not None
        self.query_log_rate = query_log.sample if query_log is not None and query_log.enabled else 0.0
        self._selected: tuple[str, ...] = ()  # clusters of the latest GSLB answer, for the query log
        # Pre-encoded answers for the common query shapes; off while sampling queries into the log.
        self.fast = FastPath(self) if fast_path and not self.query_log_rate else None

    def count_into(self, stats: QueryStats, gslb: GslbCounters) -> AnswerEngine:
        """Count into ``stats`` and ``gslb`` from now on: the process's counters, which outlive this
        engine (a reload builds a new one) and, in a worker, are that worker's own.  Returns self."""
        self.stats = stats
        if self.responder is not None:
            self.responder.count_into(gslb)
        if self.signing is not None:
            stats.dnssec.add(self.signing.take_loaded())  # what signing the zones at load made, counted once
            stats.dnssec.expiry = self.signing.earliest_expiry()
        return self

    # -- bytes in, bytes out ----------------------------------------------------
    def handle(self, data: bytes, client: str, tcp: bool) -> bytes | None:
        """Answer one message; None means send nothing (drop).

        Counting (``self.stats``) is a handful of integer and dict updates on
        values already at hand; the exporter does the rest at scrape time.
        """
        start = perf_counter()
        fast = self.fast
        if fast is not None:
            hit = fast.answer(data, client, tcp)
            if hit is not None:
                response, (origin, qtype, rcode), ecs = hit
                _count_query(self.stats, (origin, qtype, rcode, tcp), ecs, start)
                return response
        # The reader's first stage once, for parsing and for ``remember`` (the fast path's own
        # read stays inside it: a memo hit reads nothing).
        shape = wire.read_shape(data)
        try:
            query = wire.query_of(data, shape)
        except FormatError as exc:
            # query_of raises only once the header is readable and not a response.
            self.stats.malformed += 1
            header = wire.parse_header(data)
            assert header is not None  # query_of raises only once the header is readable
            qid, flags = header[:2]
            rcode = wire.NOTIMP if (flags >> 11) & 0xF != wire.OPCODE_QUERY else wire.FORMERR
            if exc.query is not None:
                return encode_error(exc.query, rcode, self.payload)
            return encode_header_only(qid, flags, rcode)
        if query is None:  # too short for a header, or a response
            self.stats.dropped += 1
            return None
        if query.opcode != wire.OPCODE_QUERY:
            return self._rcode_only(query, wire.NOTIMP, tcp, start)
        if query.edns is not None and query.edns.version > 0:
            return self._rcode_only(query, wire.BADVERS, tcp, start)
        rcode = self._refusal(query)
        if rcode is not None:
            return self._rcode_only(query, rcode, tcp, start)
        logging_this = self.query_log_rate and random.random() < self.query_log_rate
        if logging_this:
            self._selected = ()
        zone = self.zones.zone_for(query.qname)
        result = self._resolve(zone, query, client)
        if zone is not None:
            self.secure(zone, query, result)
        max_size = TCP_MAX if tcp else max_udp_size(query, self.payload)
        response = encode(query, result, max_size, self.payload, self.nsid)
        if response[2] & 0x02:
            self.stats.truncated += 1
        elif fast is not None and result.cacheable and result.rcode <= wire.NXDOMAIN and zone is not None:
            fast.remember(shape, tcp, response, zone.origin, result.rcode)
        elapsed = _count_query(
            self.stats,
            (zone.origin if zone is not None else None, query.qtype, result.rcode, tcp),
            query.edns is not None and query.edns.ecs is not None,
            start,
        )
        if logging_this:
            self._log_query(query, client, tcp, result.rcode, elapsed)
        return response

    def secure(self, zone: Zone, query: Query, result: Answer) -> None:
        """RRSIGs and denial NSECs for a query with DO in a signed zone (the fast path's GSLB encodings too)."""
        signing = self.signing
        if signing is not None and query.edns is not None and query.edns.do:
            signing.secure(zone, query.qname, query.qtype, result, self.stats.dnssec)

    def _rcode_only(self, query: Query, rcode: int, tcp: bool, start: float) -> bytes:
        """Encode and count an answer given before any look-up (NOTIMP, BADVERS, REFUSED for a class or type)."""
        response = encode_error(query, rcode, self.payload, self.nsid)
        _count_query(
            self.stats, (None, query.qtype, rcode, tcp), query.edns is not None and query.edns.ecs is not None, start
        )
        return response

    def _log_query(self, query: Query, client: str, tcp: bool, rcode: int, elapsed: float) -> None:
        """One sampled query at info, as key=value (``server.query_log``)."""
        ecs = query.edns.ecs if query.edns is not None else None
        query_log.info(
            "event=query client=%s ecs=%s qname=%s qtype=%s rcode=%s transport=%s clusters=%s us=%d",
            client,
            f"{ecs.address}/{ecs.source_prefix}" if ecs is not None else "-",
            to_text(query.qname),
            _type_text(query.qtype),
            _RCODES.get(rcode, rcode),
            "tcp" if tcp else "udp",
            ",".join(self._selected) or "-",
            elapsed * 1e6,
        )

    @staticmethod
    def _refusal(query: Query) -> int | None:
        """Questions we answer with an rcode alone, before any look-up."""
        if query.qclass not in (wire.C_IN, wire.C_ANY):
            return wire.REFUSED
        qtype = query.qtype
        if qtype in (wire.T_OPT, wire.T_NXNAME):
            return wire.FORMERR  # OPT is not a question; NXNAME neither (RFC 9824 3.5)
        if qtype in (wire.T_AXFR, wire.T_IXFR):
            return wire.REFUSED  # no zone transfers from a GSLB server
        if qtype in (wire.T_MAILA, wire.T_MAILB):
            return wire.NOTIMP
        return None

    # -- the look-up ------------------------------------------------------------
    def _resolve(self, zone: Zone | None, query: Query, client: str) -> Answer:
        if zone is None:
            return Answer(rcode=wire.REFUSED, aa=False)
        result = Answer()
        qname = query.qname
        if self.debug_txt and qname[:1] == (DEBUG_LABEL,) and self._is_record(qname[1:]):
            self._debug_txt(zone, query, client, result)
        else:
            self._lookup(zone, query.qname, query.qtype, result, set(), query, client)
        return result

    def _is_record(self, name: Name) -> bool:
        responder: GslbAPI | None = self.responder
        return responder is not None and name in responder.names

    def _debug_txt(self, zone: Zone, query: Query, client: str, result: Answer) -> None:
        """TXT at ``_geodns.<record>``: why this client gets what it gets (``server.debug_txt``).

        TTL 0 and an ECS scope of the whole source prefix: the text is about
        this very client, so no resolver should hand it to anyone else.
        """
        if query.qtype not in (wire.T_TXT, wire.T_ANY):
            self._nodata(zone, result)
            return
        result.cacheable = False
        responder: GslbAPI | None = self.responder
        assert responder is not None  # debug names exist only with GSLB records
        who = responder.client(_ecs_value(query), client)
        result.answer.append(responder.debug_rrset(query.qname, query.qname[1:], who))
        result.ecs_scope = who.ecs_source or 0

    def _lookup(
        self, zone: Zone, name: Name, qtype: int, result: Answer, seen: set[Name], query: Query, client: str
    ) -> None:
        """Fill ``result`` for (name, qtype) in zone, following CNAMEs within our zones."""
        responder: GslbAPI | None = self.responder
        while True:
            if (
                responder is not None
                and name in responder.names
                and self._gslb(name, qtype, result, seen, query, client)
            ):
                return
            match = zone.find(name)
            kind = match.kind
            if kind is MatchKind.DELEGATION:
                cut = match.cut
                assert cut is not None
                if cut.name == name and qtype == wire.T_DS:
                    self._nodata(zone, result)  # the parent side of the cut owns DS
                elif not result.answer:
                    self._referral(zone, cut, result)
                return
            if kind is MatchKind.NXDOMAIN:
                if responder is None or (name not in responder.names and name not in responder.ancestors):
                    result.rcode = wire.NXDOMAIN  # RFC 6604: the last name in a chain decides
                self._nodata(zone, result)
                return
            if kind is MatchKind.EMPTY_NONTERMINAL:
                self._nodata(zone, result)
                return
            rrsets = match.rrsets
            wildcard = kind is MatchKind.WILDCARD
            if not rrsets:  # a wildcard that is only an empty non-terminal
                self._nodata(zone, result)
                return
            if qtype == wire.T_ANY:
                chosen = _minimal_any(rrsets)
                result.answer.append(chosen.with_name(name) if wildcard else chosen)
                return
            rrset = rrsets.get(qtype)
            if rrset is not None:
                result.answer.append(rrset.with_name(name) if wildcard else rrset)
                self._additional(rrset, result)
                return
            cname = rrsets.get(wire.T_CNAME)
            if cname is None:
                self._nodata(zone, result)
                return
            result.answer.append(cname.with_name(name) if wildcard else cname)
            seen.add(name)
            target = cname.targets[0]
            if target in seen or len(seen) >= MAX_CNAME_CHAIN:
                return  # a loop: answer the chain so far
            next_zone = self.zones.zone_for(target)
            if next_zone is None:
                return  # out of our zones: the resolver follows it
            zone, name = next_zone, target

    def _gslb(self, name: Name, qtype: int, result: Answer, seen: set[Name], query: Query, client: str) -> bool:
        """Answer a GSLB name: A/AAAA (and ANY, as A) always; any other type only while the record
        answers a CNAME, which a name owning one answers for every type (RFC 1034 3.6.2) but DS,
        NSEC and RRSIG (RFC 4035 2.5, 3.1.4). False leaves the question to the zone."""
        responder: GslbAPI | None = self.responder
        assert responder is not None  # GSLB names exist only with a responder
        if qtype in _GSLB_TYPES:
            asked = wire.T_A if qtype == wire.T_ANY else qtype
        elif name in responder.cnames:
            asked = wire.T_A
        else:
            return False
        dispatched = responder.dispatch(name, asked, _ecs_value(query), client)
        if dispatched is None:
            return False
        selection = dispatched.selection
        if asked != qtype and qtype != wire.T_ANY:
            first = selection.addresses[0] if selection.addresses else None
            if first is None or first.version:
                return False  # addresses for this client: the zone answers the other types (NODATA)
            if qtype in _NOT_CNAME:
                result.owner_types = _CNAME_OWNER  # the NODATA's NSEC lists the CNAME, not A/AAAA
                return False
        result.ecs_scope = max(result.ecs_scope, selection.scope)
        self._selected = selection.clusters
        self.gslb_result(name, asked, selection, result, query, client, seen)
        return True

    def gslb_result(
        self,
        name: Name,
        qtype: int,
        selection: Selection,
        result: Answer,
        query: Query,
        client: str,
        seen: set[Name] | None = None,
    ) -> None:
        """Put a GSLB selection into ``result`` (the full path and the fast path share this; neither
        counts here).  A CNAME to a name in our zones is followed as a static one is, for the type
        asked (not for ANY, which RFC 8482 answers with the one RRset)."""
        result.cacheable = False
        responder: GslbAPI | None = self.responder
        assert responder is not None  # only GSLB names get here
        if not selection.addresses:
            zone = self.zones.zone_for(name)
            assert zone is not None  # the config checks put each GSLB name inside a served zone
            self._nodata(zone, result)
            return
        rrset = responder.rrset(name, qtype, selection)
        result.answer.append(rrset)
        if rrset.rtype != wire.T_CNAME or query.qtype == wire.T_ANY:
            return
        seen = set() if seen is None else seen
        seen.add(name)
        target = rrset.targets[0]
        zone = self.zones.zone_for(target)
        if zone is None or target in seen or len(seen) >= MAX_CNAME_CHAIN:
            return  # out of our zones (the resolver follows it), or a loop: the chain so far
        self._lookup(zone, target, query.qtype, result, seen, query, client)

    def chases(self, selection: Selection) -> bool:
        """Whether a GSLB answer of ``selection`` is a CNAME that ``gslb_result`` follows into our
        zones (its answer then holds the target's data, which may be another record's decision)."""
        first = selection.addresses[0] if selection.addresses else None
        return first is not None and not first.version and self.zones.zone_for(from_text(f"{first}.")) is not None

    def _nodata(self, zone: Zone, result: Answer) -> None:
        result.authority.append(zone.soa.with_ttl(zone.negative_ttl))

    def _referral(self, zone: Zone, cut: RRset, result: Answer) -> None:
        result.aa = False
        result.authority.append(cut)
        result.glue_required = True
        for target in cut.targets:
            result.additional.extend(zone.addresses(target))

    def _additional(self, rrset: RRset, result: Answer) -> None:
        if rrset.rtype not in _ADDITIONAL_TYPES:
            return
        present = {(r.name, r.rtype) for r in result.answer}
        for target in rrset.targets:
            zone = self.zones.zone_for(target)
            if zone is None:
                continue
            for glue in zone.addresses(target):
                if (glue.name, glue.rtype) not in present:
                    present.add((glue.name, glue.rtype))
                    result.additional.append(glue)


_RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED", 16: "BADVERS"}


def _ecs_value(query: Query) -> bytes | None:
    """The query's Client Subnet option value as received, for ``GslbAPI.client``."""
    edns = query.edns
    return edns.ecs.value if edns is not None and edns.ecs is not None else None


def _type_text(qtype: int) -> str:
    from ..zones.zone import type_name

    return {251: "IXFR", 252: "AXFR", 255: "ANY", 41: "OPT"}.get(qtype) or type_name(qtype)


def _count_query(stats: QueryStats, key: tuple, ecs: bool, start: float) -> float:
    """Count one answer under ``key`` (origin, qtype, rcode, tcp); return its time.

    Every answer, fast path or full, is counted here.  A rare query type is
    folded into 0 ("other") before its first count, so random types from the
    Internet cannot grow the counters without bound.
    """
    queries = stats.queries
    count = queries.get(key)
    if count is not None:
        queries[key] = count + 1
    else:
        stats.count(key, 1)
    if ecs:
        stats.ecs_present += 1
    elapsed = perf_counter() - start
    stats.duration_buckets[bisect_left(DURATION_BUCKETS, elapsed)] += 1
    stats.duration_sum += elapsed
    return elapsed


def _minimal_any(rrsets) -> RRset:
    """RFC 8482: answer ANY with one RRset, never all of them (no amplification)."""
    for preferred in (wire.T_CNAME, wire.T_A, wire.T_AAAA):
        if preferred in rrsets:
            return rrsets[preferred]
    return rrsets[min(rrsets)]
