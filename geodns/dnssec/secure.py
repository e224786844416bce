"""A signed answer: RRSIGs after every authoritative RRset, and compact denial of existence.

Denial is RFC 9824's "compact denial of existence", as Cloudflare and NS1 serve
it: an online signer need not prove a name's absence with a chain of NSECs
between real names (which would have to be computed and signed per name anyway,
and would let anyone walk the zone).  Instead:

- NODATA: one NSEC owned by the name itself, next name ``\\000.<name>`` (the
  name's immediate successor, so it covers nothing else), whose type bitmap lists
  the types that exist there (RRSIG and NSEC always; A and AAAA at a GSLB name, CNAME at one
  answering a host name: then DS, NSEC and RRSIG are the only types asked there that are not the CNAME)
  and not the one asked.
- NXDOMAIN: answered as NODATA (rcode NOERROR) with the same kind of NSEC, whose
  bitmap holds only RRSIG, NSEC and NXNAME: the NXNAME pseudo-type tells a
  resolver that knows RFC 9824 the name does not exist; one that does not
  validates it as an ordinary NODATA proof.  Queries without DO still get NXDOMAIN.
- Wildcards: an answer synthesised from ``*.<name>`` is signed as the query name's own
  RRset (the RRSIG's label count is the name's), so no proof that the name
  itself is absent is needed; one signature per name asked, cached like any other.
- Delegations (insecure: geodns never serves DS): the referral carries an NSEC at
  the cut whose bitmap has NS but no DS, which proves the child unsigned; the NS
  RRset and the glue stay unsigned (the parent is not authoritative for them).

The one cost: every distinct name asked that does not exist is one signature,
which white lies (RFC 4470) would pay twice (the covering NSEC and the wildcard one).
"""

from __future__ import annotations

import time
from collections.abc import Container, Mapping

import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.NSEC

from ..dns.encode import Answer
from ..dns.names import MAX_WIRE, Name, to_wire, wire_length
from ..dns.rrset import RRset
from ..zones import MatchKind, Zone
from ..zones.zoneset import ZoneSet
from .counters import SigningCounters
from .signer import T_RRSIG, ZoneSigner, rdata_wire

T_A, T_NS, T_CNAME, T_SOA, T_AAAA, T_NSEC, T_NXNAME = 1, 2, 5, 6, 28, 47, 128
NXDOMAIN, NOERROR = 3, 0
_EXISTS_NOT = frozenset((T_RRSIG, T_NSEC, T_NXNAME))
_CUT = frozenset((T_NS, T_RRSIG, T_NSEC))


_BITMAPS: dict[frozenset[int], bytes] = {}  # type set -> NSEC type bitmap (a handful of distinct sets)


def _bitmap(types: frozenset[int]) -> bytes:
    bitmap = _BITMAPS.get(types)
    if bitmap is None:
        windows = dns.rdtypes.ANY.NSEC.Bitmap.from_rdtypes([dns.rdatatype.RdataType.make(t) for t in sorted(types)])
        rdata = dns.rdtypes.ANY.NSEC.NSEC(dns.rdataclass.IN, dns.rdatatype.NSEC, dns.name.root, windows)
        bitmap = _BITMAPS[types] = rdata_wire(rdata)[1:]  # after the root name
    return bitmap


def nsec(name: Name, types: frozenset[int], ttl: int) -> RRset:
    """The compact-denial NSEC at ``name``: next name ``\\000.<name>``, the given type bitmap."""
    following = (b"\x00",) + name
    if wire_length(following) > MAX_WIRE:
        following = name  # no room for a successor label: the NSEC then covers nothing but its owner
    return RRset(name, T_NSEC, ttl, (to_wire(following) + _bitmap(types),))


class Signing:
    """Every signed zone's signer, and what the answer engine calls for a query with DO set.

    ``generation`` moves whenever signatures were replaced, so that caches of encoded
    answers (the fast path's) know to drop what they hold.
    """

    def __init__(self, signers: Mapping[Name, ZoneSigner], zones: ZoneSet, gslb_names: Container[Name]):
        self.signers = signers
        self.zones = zones
        self.gslb_names = gslb_names
        self.generation = 0
        self.loaded = SigningCounters()  # what signing the zones at load made (the server adds it to its counters)

    def secure(self, zone: Zone, qname: Name, qtype: int, result: Answer, counters: SigningCounters) -> None:
        """Add the denial NSEC (if any) and the RRSIGs to ``result``, in place."""
        if zone.origin not in self.signers:
            return
        now = time.time()
        referral = not result.aa and bool(result.authority) and result.authority[0].rtype == T_NS
        if referral:
            cut = result.authority[0]
            result.authority.append(nsec(cut.name, _CUT, zone.negative_ttl))
        elif qtype == T_NSEC:
            self._own_nsec(zone, qname, result)
        elif qtype == T_RRSIG:
            if self._own_rrsigs(zone, qname, result, now, counters):
                return
        elif result.authority and result.authority[-1].rtype == T_SOA:
            self._deny(qname, qtype, result)
        result.answer = self._signed(result.answer, now, counters, False)
        result.authority = self._signed(result.authority, now, counters, referral)
        result.additional = self._signed(result.additional, now, counters, referral)

    def _deny(self, qname: Name, qtype: int, result: Answer) -> None:
        soa = result.authority[-1]
        home = self.zones.get(soa.name)
        if home is None or home.origin not in self.signers:
            return
        last = result.answer[-1] if result.answer else None
        denied = last.targets[0] if last is not None and last.targets else qname
        if result.rcode == NXDOMAIN:
            result.rcode = NOERROR  # RFC 9824: the NXNAME bit says it; the rcode stays NOERROR under DO
            types = _EXISTS_NOT
        elif result.owner_types is not None and denied == qname:
            types = (result.owner_types - {qtype}) | {T_RRSIG, T_NSEC}
        else:
            types = self._types_at(home, denied, qtype)
        result.authority.append(nsec(denied, types, home.negative_ttl))

    def _own_nsec(self, zone: Zone, qname: Name, result: Answer) -> None:
        """A query for NSEC is answered with the name's own compact NSEC (RFC 9824 3.3): a NODATA for
        NSEC proved by an NSEC, whose bitmap lists NSEC, would contradict itself (validators: bogus).
        A CNAME's owner has its own NSEC too (RFC 4035 2.3), so the alias is not followed."""
        first = result.answer[0] if result.answer else None
        if first is not None and first.name == qname and first.rtype == T_CNAME:
            types = self._types_at(zone, qname, T_NSEC)
        elif first is None and result.authority and result.authority[-1].rtype == T_SOA:
            types = _EXISTS_NOT if result.rcode == NXDOMAIN else self._types_at(zone, qname, T_NSEC)
        else:
            return
        result.rcode = NOERROR
        result.answer = [nsec(qname, types, zone.negative_ttl)]
        result.authority, result.additional = [], []

    def _own_rrsigs(self, zone: Zone, qname: Name, result: Answer, now: float, counters: SigningCounters) -> bool:
        """A query for RRSIG is answered with the signatures at the name: those over its static
        RRsets (a wildcard's as the name's own) and the one over its compact NSEC, which every
        name has here.  A NODATA for RRSIG would be proved by an NSEC whose bitmap lists RRSIG:
        a contradiction, which validators call bogus.  A GSLB name's A and AAAA signatures depend
        on the client asking and are not listed.  RRSIGs are not signed themselves.  False: a
        referral or an answer not at ``qname`` (``secure`` goes on as usual)."""
        first = result.answer[0] if result.answer else None
        denial = first is None and result.authority and result.authority[-1].rtype == T_SOA
        if not denial and not (first is not None and first.name == qname and first.rtype == T_CNAME):
            return False
        signer = self.signers[zone.origin]
        match = zone.find(qname)
        static: list[RRset] = []
        if match.kind in (MatchKind.EXACT, MatchKind.WILDCARD):
            for rtype in sorted(match.rrsets):
                rrset = match.rrsets[rtype]
                static.append(rrset if rrset.name == qname else RRset(qname, rtype, rrset.ttl, rrset.rdatas))
        # The very NSEC a query for NSEC gets (``_own_nsec``), so the two signatures are one.
        types = _EXISTS_NOT if result.rcode == NXDOMAIN else self._types_at(zone, qname, T_NSEC)
        static.append(nsec(qname, types, zone.negative_ttl))
        result.rcode = NOERROR
        result.answer = [signer.rrsig(rrset, now, counters) for rrset in static]
        result.authority, result.additional = [], []
        return True

    def _types_at(self, zone: Zone, name: Name, qtype: int) -> frozenset[int]:
        match = zone.find(name)
        if match.kind is MatchKind.DELEGATION:
            present = {T_NS}  # DS at a cut: the parent side has the NS, never a DS
        else:
            present = set(match.rrsets)
        if name in self.gslb_names:
            present |= {T_A, T_AAAA}
        present.discard(qtype)
        return frozenset(present | {T_RRSIG, T_NSEC})

    def _signed(self, section: list[RRset], now: float, counters: SigningCounters, referral: bool) -> list[RRset]:
        if not section:
            return section
        out: list[RRset] = []
        zones, signers = self.zones, self.signers
        for rrset in section:
            out.append(rrset)
            if referral and rrset.rtype != T_NSEC:
                continue  # the cut's NS and its glue belong to the child
            zone = zones.zone_for(rrset.name)
            signer = signers.get(zone.origin) if zone is not None else None
            if signer is None:
                continue
            if rrset.rtype != T_NSEC and zone is not None and zone.find(rrset.name).kind is MatchKind.DELEGATION:
                continue  # glue below a cut (an NS or MX target there): not ours to sign
            out.append(signer.rrsig(rrset, now, counters))
        return out

    def take_loaded(self) -> SigningCounters:
        """The signatures made at load, handed over once: the process that counts them first (the
        supervisor, before it forks workers from this very object) keeps them."""
        loaded, self.loaded = self.loaded, SigningCounters()
        return loaded

    def earliest_expiry(self) -> float:
        """When the first signature held runs out (unix time; 0: none held), for /metrics."""
        expiries = [e for e in (s.earliest_expiry() for s in self.signers.values()) if e]
        return min(expiries, default=0.0)

    def refresh_interval(self) -> float:
        """How often the refresh task looks: often enough that nothing reaches its refresh point
        unseen, at most hourly."""
        refresh = min((s.timing.refresh for s in self.signers.values()), default=3600.0)
        return min(max(refresh / 4, 0.5), 3600.0)

    async def refresh(self, counters: SigningCounters) -> int:
        """Replace every signature due before the next look; move ``generation`` if any changed."""
        horizon = 2 * self.refresh_interval()
        changed = 0
        for signer in self.signers.values():
            changed += await signer.refresh(time.time(), horizon, counters)
        if changed:
            self.generation += 1
        counters.expiry = self.earliest_expiry()
        return changed
