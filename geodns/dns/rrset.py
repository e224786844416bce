"""The unit of DNS data the answer engine moves around."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .names import Name


@dataclass(frozen=True, slots=True)
class RRset:
    """All records of one owner name and type, with their rdata already in wire form.

    Rdata is encoded once, at load, without name compression, so that the
    query path only concatenates bytes.  ``targets`` lists the names inside the
    rdata that additional-section processing follows (NS, MX and SRV targets;
    the CNAME target), so nobody re-parses rdata per query.
    """

    name: Name
    rtype: int
    ttl: int
    rdatas: tuple[bytes, ...]
    targets: tuple[Name, ...] = ()

    def with_name(self, name: Name) -> RRset:
        """The same data under another owner (wildcard synthesis)."""
        return replace(self, name=name)

    def with_ttl(self, ttl: int) -> RRset:
        return replace(self, ttl=ttl)
