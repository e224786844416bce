"""The answer engine: from query bytes to response bytes.

It owns the DNS semantics of an authoritative server (RFC 1034 4.3.2, RFC 2308,
RFC 4592, RFC 6891, RFC 7871, RFC 8482) over the served zones, and asks the
GSLB selector for the names that are GSLB records.  It never awaits: a query
is parse, look up, select, encode, all in memory.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .dns import wire
from .dns.encode import TCP_MAX, Answer, encode, encode_error, encode_header_only, max_udp_size
from .dns.wire import FormatError, Query
from .names import Name
from .rrset import RRset
from .zones import MatchKind, Zone
from .zones.zoneset import ZoneSet

if TYPE_CHECKING:
    from .dynamic import GslbResponder

log = logging.getLogger("geodns.engine")

MAX_CNAME_CHAIN = 12
_ADDRESS_TYPES = (wire.T_A, wire.T_AAAA)
# Types whose rdata names get A/AAAA in the additional section (RFC 1035 3.3, RFC 2782).
_ADDITIONAL_TYPES = frozenset((wire.T_NS, wire.T_MX, wire.T_SRV))


class AnswerEngine:
    """Stateless between queries; replaced whole on reload."""

    def __init__(self, zones: ZoneSet, *, payload: int = 1232, nsid: bytes | None = None,
                 dynamic: "GslbResponder | None" = None):
        self.zones = zones
        self.payload = payload
        self.nsid = nsid
        self.dynamic = dynamic

    # -- bytes in, bytes out ----------------------------------------------------
    def handle(self, data: bytes, client: str, tcp: bool) -> bytes | None:
        """Answer one message; None means send nothing (drop)."""
        header = wire.parse_header(data)
        if header is None or header[1] & wire.QR:
            return None
        qid, flags = header[0], header[1]
        opcode = (flags >> 11) & 0xF
        try:
            query = wire.parse_query(data)
        except FormatError as exc:
            rcode = wire.NOTIMP if opcode != wire.OPCODE_QUERY else wire.FORMERR
            if exc.query is not None:
                return encode_error(exc.query, rcode, self.payload)
            return encode_header_only(qid, flags, rcode)
        if query is None:
            return None
        if opcode != wire.OPCODE_QUERY:
            return encode_error(query, wire.NOTIMP, self.payload, self.nsid)
        if query.edns is not None and query.edns.version > 0:
            return encode_error(query, wire.BADVERS, self.payload, self.nsid)
        rcode = self._refusal(query)
        if rcode is not None:
            return encode_error(query, rcode, self.payload, self.nsid)
        result = self.resolve(query, client)
        max_size = TCP_MAX if tcp else max_udp_size(query, self.payload)
        return encode(query, result, max_size, self.payload, self.nsid)

    @staticmethod
    def _refusal(query: Query) -> int | None:
        """Questions we answer with an rcode alone, before any look-up."""
        if query.qclass not in (wire.C_IN, wire.C_ANY):
            return wire.REFUSED
        qtype = query.qtype
        if qtype == wire.T_OPT:
            return wire.FORMERR
        if qtype in (wire.T_AXFR, wire.T_IXFR):
            return wire.REFUSED        # no zone transfers from a GSLB server
        if qtype in (wire.T_MAILA, wire.T_MAILB):
            return wire.NOTIMP
        return None

    # -- the look-up ------------------------------------------------------------
    def resolve(self, query: Query, client: str) -> Answer:
        zone = self.zones.zone_for(query.qname)
        if zone is None:
            return Answer(rcode=wire.REFUSED, aa=False)
        result = Answer()
        self._lookup(zone, query.qname, query.qtype, result, set(), query, client)
        return result

    def _lookup(self, zone: Zone, name: Name, qtype: int, result: Answer, seen: set[Name],
                query: Query, client: str) -> None:
        """Fill ``result`` for (name, qtype) in zone, following CNAMEs within our zones."""
        dynamic = self.dynamic
        while True:
            if dynamic is not None and name in dynamic.names and self._gslb(name, qtype, result, query, client):
                return
            match = zone.find(name)
            kind = match.kind
            if kind is MatchKind.DELEGATION:
                cut = match.cut
                assert cut is not None
                if cut.name == name and qtype == wire.T_DS:
                    self._nodata(zone, result)      # the parent side of the cut owns DS
                elif not result.answer:
                    self._referral(zone, cut, result)
                return
            if kind is MatchKind.NXDOMAIN:
                if dynamic is None or (name not in dynamic.names and name not in dynamic.ancestors):
                    result.rcode = wire.NXDOMAIN  # RFC 6604: the last name in a chain decides
                self._nodata(zone, result)
                return
            if kind is MatchKind.EMPTY_NONTERMINAL:
                self._nodata(zone, result)
                return
            rrsets = match.rrsets
            wildcard = kind is MatchKind.WILDCARD
            if not rrsets:                          # a wildcard that is only an empty non-terminal
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
                return                              # a loop: answer the chain so far
            next_zone = self.zones.zone_for(target)
            if next_zone is None:
                return                              # out of our zones: the resolver follows it
            zone, name = next_zone, target

    def _gslb(self, name: Name, qtype: int, result: Answer, query: Query, client: str) -> bool:
        """Answer A/AAAA (and ANY, as A) for a GSLB name; False leaves other types to the zone."""
        if qtype not in (wire.T_A, wire.T_AAAA, wire.T_ANY):
            return False
        dynamic = self.dynamic
        asked = wire.T_A if qtype == wire.T_ANY else qtype
        selection = dynamic.select(name, asked, dynamic.client(query, client))
        if selection is None:
            return False
        result.ecs_scope = max(result.ecs_scope, selection.scope)
        if selection.addresses:
            result.answer.append(dynamic.rrset(name, asked, selection))
            dynamic.counters.answers += 1
        else:
            dynamic.counters.nodata += 1
            zone = self.zones.zone_for(name)
            self._nodata(zone, result)
        return True

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


def _minimal_any(rrsets) -> RRset:
    """RFC 8482: answer ANY with one RRset, never all of them (no amplification)."""
    for preferred in (wire.T_CNAME, wire.T_A, wire.T_AAAA):
        if preferred in rrsets:
            return rrsets[preferred]
    return rrsets[min(rrsets)]
