"""Turning loaded zones into signed ones: DNSKEY at each signed apex, every authoritative RRset signed.

Run at load (start-up and reload, off the query path); the result is what the
answer engine serves.  A reload with changed keys builds everything anew, so a
key change re-signs the whole zone.
"""

from __future__ import annotations

import time
from collections.abc import Container, Iterator, Mapping

from ..dns.names import Name
from ..dns.rrset import RRset
from ..errors import Problem
from ..zones import MatchKind, Zone
from ..zones.zoneset import ZoneSet
from .counters import SigningCounters
from .keys import SigningKey
from .secure import Signing
from .signer import Timing, ZoneSigner

_WILD = b"*"


def authoritative(zone: Zone) -> Iterator[RRset]:
    """The RRsets a signed zone signs: all but delegation NS, glue, and wildcard owners (an answer
    synthesised from a wildcard is signed under the name asked, when asked); the SOA also at the
    negative TTL it carries in denials."""
    for rrset in zone.rrsets():
        if rrset.name and rrset.name[0] == _WILD:
            continue
        if rrset.name != zone.origin and zone.find(rrset.name).kind is MatchKind.DELEGATION:
            continue
        yield rrset
    if zone.negative_ttl != zone.soa.ttl:
        yield zone.soa.with_ttl(zone.negative_ttl)


def sign_zones(
    zones: ZoneSet,
    keys: Mapping[Name, tuple[SigningKey, ...]],
    timing: Timing,
    gslb_names: Container[Name],
) -> tuple[ZoneSet, Signing]:
    """The zones as served signed (the DNSKEY RRset added at each apex with keys) and their signers,
    every static RRset signed already."""
    now = time.time()
    counters = SigningCounters()
    served: list[Zone] = []
    signers: dict[Name, ZoneSigner] = {}
    for zone in zones:
        zone_keys = keys.get(zone.origin)
        if zone_keys:
            signer = ZoneSigner(zone.origin, zone_keys, timing)
            zone = zone.with_apex(signer.dnskey_rrset(zone.apex_ns.ttl))
            signer.presign(authoritative(zone), now, counters)
            signers[zone.origin] = signer
        served.append(zone)
    signed = ZoneSet(served)
    signing = Signing(signers, signed, gslb_names)
    signing.loaded = counters
    return signed, signing


def check_signed(source: str, signed: Mapping[Name, tuple[str, int | None]], zones: ZoneSet) -> list[Problem]:
    """Every zone ``dnssec.zones`` names (origin -> its text and line there) must be one the server serves."""
    return [
        Problem(source, line, f"dnssec.zones.{text}: not a served zone (zones: lists the zone files)")
        for origin, (text, line) in signed.items()
        if zones.get(origin) is None
    ]
