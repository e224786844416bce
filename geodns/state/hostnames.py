"""Host-name endpoints resolved off the query path, and kept fresh within their TTL.

An endpoint may be a host name (a cloud load balancer's: an AWS ELB publishes one, not an
address).  A record that *flattens* answers the addresses that name resolves to, as a Route 53
alias record does; the query path never resolves anything, so the process that keeps the
snapshot resolves every host name in its table here, refreshes each before its TTL runs out,
and adds what it found to the snapshot (``Snapshot.resolved``) before any responder or worker
sees it.

Resolution goes through the config's ``resolver:`` (one DNS server, ``IP:PORT``) or, without
one, the system's (/etc/resolv.conf), with dnspython's asyncio resolver.  A name that stops
resolving (a timeout, SERVFAIL) keeps its last good addresses: fail static, as with the store.
A name that no longer exists (NXDOMAIN) or has no address of a family has none.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import dns.asyncresolver
import dns.exception
import dns.resolver

from ..config.model import HostName, IPAddress
from .model import Resolved, Snapshot

log = logging.getLogger("geodns.hostnames")

MIN_REFRESH = 1.0  # seconds: a TTL of 0 is refreshed this often, not in a busy loop
MAX_REFRESH = 300.0  # seconds: a long TTL is still looked at now and then
RETRY = 5.0  # seconds after a failed look-up (the last good addresses stay meanwhile)
TIMEOUT = 2.0  # seconds one look-up (A and AAAA) may take


def host_names(snapshot: Snapshot) -> frozenset[str]:
    """The host-name endpoints of every cluster in ``snapshot`` (discovered ones included)."""
    return frozenset(
        e.address.text for c in snapshot.clusters.values() for e in c.endpoints if isinstance(e.address, HostName)
    )


def make_resolver(server: tuple[str, int] | None) -> dns.asyncresolver.Resolver:
    """dnspython's resolver for ``server`` (host, port), or the system's when None."""
    if server is None:
        resolver = dns.asyncresolver.Resolver()
    else:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [server[0]]
        resolver.port = server[1]
    resolver.lifetime = TIMEOUT
    resolver.timeout = TIMEOUT
    return resolver


async def look_up(resolver: dns.asyncresolver.Resolver, name: str) -> Resolved:
    """``name``'s A and AAAA addresses; raises ``dns.exception.DNSException`` when the server did not
    say (a timeout, SERVFAIL), so the caller can keep what it had."""
    v4, v6 = await asyncio.gather(_family(resolver, name, "A"), _family(resolver, name, "AAAA"))
    ttls = [ttl for _, ttl in (v4, v6) if ttl is not None]
    return Resolved(v4[0], v6[0], min(ttls) if ttls else 0)


async def _family(
    resolver: dns.asyncresolver.Resolver, name: str, rdtype: str
) -> tuple[tuple[IPAddress, ...], int | None]:
    try:
        answer = await resolver.resolve(name + ".", rdtype, raise_on_no_answer=False, search=False)
    except dns.resolver.NXDOMAIN:
        return (), None
    if answer.rrset is None:
        return (), None
    found = sorted({ipaddress.ip_address(r.address) for r in answer.rrset}, key=lambda a: a.packed)
    return tuple(found), answer.rrset.ttl


@dataclass
class _Entry:
    resolved: Resolved | None = None
    due: float = 0.0  # monotonic time of the next look-up
    failing: str | None = None  # why the latest look-up failed (logged once per spell)


class HostWatch:
    """Resolves the host names it is told to (``want``), refreshes each within its TTL, and calls
    ``on_change`` with the new ``current`` whenever some name's addresses change."""

    def __init__(self, server: tuple[str, int] | None, on_change: Callable[[Mapping[str, Resolved]], None]):
        self.server = server
        self.resolver = make_resolver(server)
        self.on_change = on_change
        self.current: Mapping[str, Resolved] = MappingProxyType({})
        self.lookups = 0
        self.failures = 0
        self._entries: dict[str, _Entry] = {}
        self._wake = asyncio.Event()

    def use(self, server: tuple[str, int] | None) -> None:
        """A reload named another resolver: look every name up again through it."""
        if server != self.server:
            self.server, self.resolver = server, make_resolver(server)
            for entry in self._entries.values():
                entry.due = 0.0
            self._wake.set()

    def want(self, names: Iterable[str]) -> None:
        """The host names to keep resolved: new ones are looked up at once, gone ones forgotten."""
        wanted = set(names)
        if wanted == self._entries.keys():
            return
        for name in list(self._entries):
            if name not in wanted:
                del self._entries[name]
        for name in wanted:
            self._entries.setdefault(name, _Entry())
        self._wake.set()

    async def run(self) -> None:
        while True:
            now = time.monotonic()
            due = [name for name, entry in self._entries.items() if entry.due <= now]
            if due:
                await asyncio.gather(*(self._refresh(name) for name in due))
            changed = self._collect()
            if changed:
                self.on_change(self.current)
            next_due = min((e.due for e in self._entries.values()), default=math.inf)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), max(0.0, min(next_due - time.monotonic(), MAX_REFRESH)))
            except asyncio.TimeoutError:
                pass

    async def _refresh(self, name: str) -> None:
        self.lookups += 1
        try:
            found = await look_up(self.resolver, name)
        except (dns.exception.DNSException, OSError) as exc:
            self.failures += 1
            entry = self._entries.get(name)
            if entry is None:
                return
            entry.due = time.monotonic() + RETRY
            reason = type(exc).__name__
            if entry.failing != reason:
                entry.failing = reason
                log.warning(
                    "event=hostname-lookup-failed name=%s reason=%s keeping=%s",
                    name,
                    reason,
                    "last-good" if entry.resolved is not None else "nothing",
                )
            return
        entry = self._entries.get(name)
        if entry is None:  # no longer wanted while it was looked up
            return
        entry.failing = None
        entry.due = time.monotonic() + min(MAX_REFRESH, max(MIN_REFRESH, found.ttl * 0.75))
        if entry.resolved != found:
            log.info(
                "event=hostname-resolved name=%s a=%s aaaa=%s ttl=%d",
                name,
                ",".join(map(str, found.v4)) or "-",
                ",".join(map(str, found.v6)) or "-",
                found.ttl,
            )
        entry.resolved = found

    def _collect(self) -> bool:
        """Rebuild ``current`` from the entries; True when some name's addresses (or TTL) changed."""
        fresh = {name: entry.resolved for name, entry in self._entries.items() if entry.resolved is not None}
        if fresh == dict(self.current) and all(fresh[n].ttl == self.current[n].ttl for n in fresh):
            return False
        self.current = MappingProxyType(fresh)
        return True
