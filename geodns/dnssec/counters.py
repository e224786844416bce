"""What signing counts, read by /metrics (kept apart from the signer so the counters cost no crypto import)."""

from __future__ import annotations


class SigningCounters:
    """Signatures made, found in the cache, and the earliest expiry held (unix time; 0: none)."""

    __slots__ = ("made", "hits", "expiry")

    def __init__(self) -> None:
        self.made = 0
        self.hits = 0
        self.expiry = 0.0

    def add(self, other: SigningCounters) -> SigningCounters:
        self.made += other.made
        self.hits += other.hits
        if other.expiry and (not self.expiry or other.expiry < self.expiry):
            self.expiry = other.expiry
        return self
