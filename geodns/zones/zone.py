"""One zone's static data, checked once and laid out for the query path.

Everything find() needs is computed when the zone is built: each node's
RRsets, the set of names that exist (including empty non-terminals), the
zone cuts, and a ready-made Match object for every outcome that has data.
A query then costs a few dictionary look-ups on Name tuples and allocates
nothing but the suffix tuples it probes.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

import dns.rdatatype

from ..dns.names import Name, is_subdomain, to_text
from ..dns.rrset import RRset
from ..errors import Problem

A, NS, CNAME, SOA, AAAA = 1, 2, 5, 6, 28


def type_name(rtype: int) -> str:
    """``A``, ``HTTPS``, ``TYPE666``: a type as zone files and logs write it."""
    return dns.rdatatype.to_text(rtype)  # type: ignore[arg-type]  # any int: unknown ones read TYPE666


@dataclass(frozen=True, slots=True)
class Record:
    """One resource record as read from a file, with the line it came from."""

    owner: Name
    rtype: int
    ttl: int
    rdata: bytes
    targets: tuple[Name, ...]
    line: int


class MatchKind(enum.Enum):
    EXACT = "exact"
    WILDCARD = "wildcard"
    DELEGATION = "delegation"
    EMPTY_NONTERMINAL = "empty non-terminal"
    NXDOMAIN = "nxdomain"


@dataclass(frozen=True, slots=True)
class Match:
    """What a zone holds for one query name.

    EXACT: the node's RRsets by type.  WILDCARD: the '*' node's RRsets, still
    owned by the '*' name (the caller renames them to the query name).
    DELEGATION: ``cut`` is the NS RRset at the zone cut.  Otherwise empty.
    """

    kind: MatchKind
    rrsets: Mapping[int, RRset]
    cut: RRset | None = None


_NO_RRSETS: Mapping[int, RRset] = MappingProxyType({})
_ENT = Match(MatchKind.EMPTY_NONTERMINAL, _NO_RRSETS)
_NXDOMAIN = Match(MatchKind.NXDOMAIN, _NO_RRSETS)
_WILD = b"*"


def check_records(
    origin: Name, source: str, records: Iterable[Record], apex_failed: frozenset[int] = frozenset()
) -> list[Problem]:
    """Every reason these records cannot form a zone at ``origin``, with lines.

    ``apex_failed`` names types whose apex records were written but did not
    parse; their absence is then already explained and is not reported again.
    """
    problems: list[Problem] = []
    zone = to_text(origin)
    soa_line: int | None = None
    misplaced_soa = False
    has_apex_ns = False
    lines: dict[Name, dict[int, int]] = {}  # owner -> type -> first line
    cnames: dict[Name, bytes] = {}
    for r in records:
        if not is_subdomain(r.owner, origin):
            problems.append(Problem(source, r.line, f"{to_text(r.owner)} is outside the zone {zone}"))
            continue
        if r.rtype == SOA:
            if r.owner != origin:
                misplaced_soa = True
                problems.append(
                    Problem(source, r.line, f"SOA record at {to_text(r.owner)} is not at the zone apex {zone}")
                )
            elif soa_line is not None:
                problems.append(Problem(source, r.line, f"more than one SOA record (the first is at line {soa_line})"))
            else:
                soa_line = r.line
        elif r.rtype == NS and r.owner == origin:
            has_apex_ns = True
        seen = lines.setdefault(r.owner, {})
        if r.rtype == CNAME:
            if CNAME in seen:
                if cnames[r.owner] != r.rdata:
                    problems.append(
                        Problem(
                            source,
                            r.line,
                            f"more than one CNAME record at {to_text(r.owner)} (the first is at line {seen[CNAME]})",
                        )
                    )
            else:
                cnames[r.owner] = r.rdata
                other = next((t for t in seen if t != CNAME), None)
                if other is not None:
                    problems.append(
                        Problem(
                            source,
                            r.line,
                            f"CNAME at {to_text(r.owner)} beside other data ({type_name(other)} at line {seen[other]})",
                        )
                    )
        elif CNAME in seen:
            problems.append(
                Problem(
                    source,
                    r.line,
                    f"{type_name(r.rtype)} record at {to_text(r.owner)} beside a CNAME (at line {seen[CNAME]})",
                )
            )
        seen.setdefault(r.rtype, r.line)
    head: list[Problem] = []
    if soa_line is None and not misplaced_soa and SOA not in apex_failed:
        head.append(Problem(source, 1, f"no SOA record at the zone apex {zone}"))
    if not has_apex_ns and NS not in apex_failed:
        head.append(Problem(source, 1, f"no NS records at the zone apex {zone}"))
    return head + problems


def _merge(records: list[Record]) -> RRset:
    """One RRset from same-name, same-type records: lowest TTL (RFC 2181 5.2), no duplicates."""
    if len(records) == 1 and len(records[0].targets) < 2:  # most names have one record of a type
        r = records[0]
        return RRset(r.owner, r.rtype, r.ttl, (r.rdata,), r.targets)
    rdatas: dict[bytes, None] = {}
    targets: dict[Name, None] = {}
    for r in records:
        if r.rdata not in rdatas:
            rdatas[r.rdata] = None
            targets.update(dict.fromkeys(r.targets))
    first = records[0]
    return RRset(first.owner, first.rtype, min(r.ttl for r in records), tuple(rdatas), tuple(targets))


@dataclass(frozen=True, slots=True, eq=False)
class Zone:
    """An immutable, validated zone.  The zone reader builds it (``Zone.assemble``)."""

    origin: Name
    source: str
    soa: RRset
    apex_ns: RRset
    negative_ttl: int  # RFC 2308: min(SOA TTL, SOA minimum)
    serial: int
    names: int  # owner names with data, for logs
    _nodes: Mapping[Name, Mapping[int, RRset]]
    _exists: frozenset[Name]  # names with data, plus empty non-terminals
    _exact: Mapping[Name, Match]
    _cuts: Mapping[Name, Match]  # names strictly below the apex that have NS
    _wildcards: Mapping[Name, Match]  # '*' names, keyed by the full '*' name
    _addresses: Mapping[Name, tuple[RRset, ...]]
    _cut_depths: range  # name lengths at which a cut can sit

    @classmethod
    def assemble(cls, origin: Name, source: str, records: Iterable[Record]) -> Zone:
        """The zone of records that ``check_records`` has passed already (the zone reader checks them itself)."""
        groups: dict[Name, dict[int, list[Record]]] = {}
        for r in records:
            types = groups.get(r.owner)
            if types is None:
                groups[r.owner] = {r.rtype: [r]}
            elif r.rtype in types:
                types[r.rtype].append(r)
            else:
                types[r.rtype] = [r]
        nodes = {owner: MappingProxyType({t: _merge(rs) for t, rs in types.items()}) for owner, types in groups.items()}

        exists: set[Name] = set()
        for owner in nodes:
            name = owner
            while len(name) >= len(origin) and name not in exists:
                exists.add(name)
                name = name[1:]

        cuts = {o: Match(MatchKind.DELEGATION, _NO_RRSETS, n[NS]) for o, n in nodes.items() if NS in n and o != origin}
        depths = [len(o) for o in cuts]
        soa = nodes[origin][SOA]
        serial, minimum = struct.unpack("!I12xI", soa.rdatas[0][-20:])
        return cls(
            origin=origin,
            source=source,
            soa=soa,
            apex_ns=nodes[origin][NS],
            negative_ttl=min(soa.ttl, minimum),
            serial=serial,
            names=len(nodes),
            _nodes=MappingProxyType(nodes),
            _exists=frozenset(exists),
            _exact=MappingProxyType({o: Match(MatchKind.EXACT, n) for o, n in nodes.items()}),
            _cuts=MappingProxyType(cuts),
            _wildcards=MappingProxyType(
                {
                    name: Match(MatchKind.WILDCARD, nodes.get(name, _NO_RRSETS))
                    for name in exists
                    if name and name[0] == _WILD and name != origin
                }
            ),
            _addresses=MappingProxyType(
                {o: tuple(n[t] for t in (A, AAAA) if t in n) for o, n in nodes.items() if A in n or AAAA in n}
            ),
            _cut_depths=range(min(depths, default=0), max(depths, default=-1) + 1),
        )

    def find(self, qname: Name) -> Match:
        """Look ``qname`` up as RFC 1034 4.3.2 and RFC 4592 say; qname is at or below the origin."""
        if self._cuts:
            # Top-down, so that the highest cut wins and everything below it,
            # glue included, is occluded.
            cuts = self._cuts
            size = len(qname)
            for depth in self._cut_depths:
                if depth > size:
                    break
                match = cuts.get(qname[size - depth :])
                if match is not None:
                    return match
        match = self._exact.get(qname)
        if match is not None:
            return match
        exists = self._exists
        if qname in exists:
            return _ENT
        if self._wildcards:
            # The closest encloser is the longest existing ancestor; only its
            # own '*' child may answer (RFC 4592 section 3.3.1).
            for i in range(1, len(qname) - len(self.origin) + 1):
                encloser = qname[i:]
                if encloser in exists:
                    return self._wildcards.get((_WILD,) + encloser, _NXDOMAIN)
        return _NXDOMAIN

    def with_apex(self, rrset: RRset) -> Zone:
        """This zone with ``rrset`` added at (or replacing its type at) the apex: the DNSKEY RRset of a
        signed zone (geodns/dnssec/), which comes from the key files, not the zone file."""
        apex = MappingProxyType({**self._nodes[self.origin], rrset.rtype: rrset})
        nodes = MappingProxyType({**self._nodes, self.origin: apex})
        exact = MappingProxyType({**self._exact, self.origin: Match(MatchKind.EXACT, apex)})
        return replace(self, _nodes=nodes, _exact=exact)

    def addresses(self, name: Name) -> tuple[RRset, ...]:
        """A and AAAA RRsets at ``name``, glue below cuts included; () if none."""
        return self._addresses.get(name, ())

    def rrsets(self) -> Iterator[RRset]:
        for node in self._nodes.values():
            yield from node.values()

    def __repr__(self) -> str:
        return f"Zone({to_text(self.origin)!r}, serial={self.serial}, names={self.names}, source={self.source!r})"
