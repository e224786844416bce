"""RRSIGs for one zone, made with dnspython's ``dns.dnssec.sign`` and kept per RRset.

An RRset's signature depends only on its owner, type, TTL and rdatas (and the
keys and the clock), so that tuple is the cache key: a GSLB record that can
give a client one of three answer sets costs three signatures, however many
clients ask, and a static RRset is signed once at load.  Entries carry the
moment they should be replaced (``refresh`` before they expire); the query
path re-signs an entry it finds past that moment, and ``refresh`` below, run
by a background task, replaces them before anyone does.

Two tables: ``static`` holds the zone's own RRsets, signed at load and never
dropped; ``answers`` holds what queries needed beyond those (GSLB answer sets,
wildcard expansions, denial NSECs), bounded like the fast path's caches.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass

import dns.dnssec
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype

from ..dns.names import Name, to_wire
from ..dns.rrset import RRset
from .counters import SigningCounters
from .keys import SigningKey

T_DNSKEY, T_RRSIG = 48, 46
_RRSIG = struct.Struct("!HBBIIIH")  # RRSIG rdata before the signer's name (RFC 4034 3.1)
MAX_ANSWERS = 100_000  # signatures held for answers beyond the zone's own RRsets
REFRESH_CHUNK = 32  # signatures made between yields to the event loop while refreshing

# (owner, type, rdatas, ttl): what an RRSIG covers.
SignatureKey = tuple[Name, int, tuple[bytes, ...], int]


@dataclass(frozen=True)
class Timing:
    """How long signatures live: ``validity`` from now, replaced when less than ``refresh`` is left,
    with an inception ``backdate`` in the past for validators whose clocks are behind."""

    validity: float = 7 * 86400.0
    refresh: float = 2 * 86400.0
    backdate: float = 3600.0


def dns_name(name: Name) -> dns.name.Name:
    return dns.name.Name(name + (b"",))


def rdata_wire(rdata: dns.rdata.Rdata) -> bytes:
    """An rdata's uncompressed wire form (``to_wire`` without a file always returns the bytes)."""
    wire = rdata.to_wire()
    assert wire is not None
    return wire


class ZoneSigner:
    """The keys of one zone and the signatures made with them."""

    def __init__(self, origin: Name, keys: tuple[SigningKey, ...], timing: Timing):
        self.origin = origin
        self.keys = keys
        self.timing = timing
        self.signer = dns_name(origin)
        self.signer_wire = to_wire(origin)
        # With both kinds configured, the SEP keys (KSKs) sign the DNSKEY RRset and the others the
        # rest; with one kind, every key signs everything (a combined signing key).
        key_keys = tuple(k for k in keys if k.sep)
        zone_keys = tuple(k for k in keys if not k.sep)
        self.key_keys = key_keys or keys
        self.zone_keys = zone_keys or keys
        # key -> (RRSIG RRset, replace after, expires at)
        self.static: dict[SignatureKey, tuple[RRset, float, float]] = {}
        self.answers: dict[SignatureKey, tuple[RRset, float, float]] = {}

    def dnskey_rrset(self, ttl: int) -> RRset:
        """The zone's DNSKEY RRset, served at the apex."""
        return RRset(self.origin, T_DNSKEY, ttl, tuple(rdata_wire(k.dnskey) for k in self.keys))

    # -- on the query path (a cache look-up; a signature on first sight) -------------------------
    def rrsig(self, rrset: RRset, now: float, counters: SigningCounters) -> RRset:
        key = (rrset.name, rrset.rtype, rrset.rdatas, rrset.ttl)
        entry = self.static.get(key)
        if entry is None:
            entry = self.answers.get(key)
        if entry is not None and entry[1] > now:
            counters.hits += 1
            return entry[0]
        entry = self._sign(rrset, now, counters)
        if key in self.static:
            self.static[key] = entry
        else:
            if len(self.answers) >= MAX_ANSWERS:
                self.answers.clear()  # simple and bounded: the answers in use are signed again on sight
            self.answers[key] = entry
        return entry[0]

    # -- off the query path ----------------------------------------------------------------
    def presign(self, rrsets, now: float, counters: SigningCounters) -> None:
        """Sign the zone's own (authoritative) RRsets, at load."""
        for rrset in rrsets:
            self.static[(rrset.name, rrset.rtype, rrset.rdatas, rrset.ttl)] = self._sign(rrset, now, counters)

    async def refresh(self, now: float, horizon: float, counters: SigningCounters) -> int:
        """Re-sign the static RRsets whose signatures are due before ``now + horizon``, a few at a time
        so that queries keep being answered in between; forget due answer signatures (the next query
        that needs one signs it).  Returns how many signatures changed."""
        due = now + horizon
        changed = 0
        stale = [key for key, entry in self.static.items() if entry[1] <= due]
        for i, key in enumerate(stale):
            if i and i % REFRESH_CHUNK == 0:
                await asyncio.sleep(0)
            name, rtype, rdatas, ttl = key
            self.static[key] = self._sign(RRset(name, rtype, ttl, rdatas), now, counters)
            changed += 1
        gone = [key for key, entry in self.answers.items() if entry[1] <= due]
        for key in gone:
            del self.answers[key]
        return changed + len(gone)

    def earliest_expiry(self) -> float:
        expiries = [entry[2] for table in (self.static, self.answers) for entry in table.values()]
        return min(expiries, default=0.0)

    def _sign(self, rrset: RRset, now: float, counters: SigningCounters) -> tuple[RRset, float, float]:
        # The rdatas go in as they are served: their names are stored in lower case already (the zone
        # reader's and the responder's), which is RFC 4034's canonical form, so there is nothing to parse.
        rtype = dns.rdatatype.RdataType.make(rrset.rtype)
        data = dns.rdataset.Rdataset(dns.rdataclass.IN, rtype)
        data.update_ttl(rrset.ttl)
        for rdata in rrset.rdatas:
            data.add(dns.rdata.GenericRdata(dns.rdataclass.IN, rtype, rdata))
        owner = dns_name(rrset.name)
        timing = self.timing
        inception = int(now - timing.backdate)
        expiration = int(now + timing.validity)
        signatures = []
        for key in self.key_keys if rrset.rtype == T_DNSKEY else self.zone_keys:
            signature = dns.dnssec.sign(
                (owner, data), key.private, self.signer, key.dnskey, inception=inception, expiration=expiration
            )
            signatures.append(
                _RRSIG.pack(
                    rrset.rtype,
                    signature.algorithm,
                    signature.labels,
                    signature.original_ttl,
                    signature.expiration,
                    signature.inception,
                    signature.key_tag,
                )
                + self.signer_wire
                + signature.signature
            )
        counters.made += len(signatures)
        return RRset(rrset.name, T_RRSIG, rrset.ttl, tuple(signatures)), expiration - timing.refresh, float(expiration)
