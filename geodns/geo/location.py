"""Where a client is, as far as the answer engine needs to know."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Location:
    """The place of one client address, and how far that answer stretches.

    ``prefix`` is the length of the largest network around the address for
    which every address gets this same Location.  It is what the answer
    depended on, so it is the scope prefix length of an EDNS Client Subnet
    reply (RFC 7871 section 7.2.1): a resolver may reuse the answer for that
    whole network and no further.
    """

    region: str | None  # set only when an operator CIDR (geoip.networks) matched
    country: str | None  # ISO 3166-1 alpha-2, upper case
    continent: str | None  # two-letter code: AF AN AS EU NA OC SA
    lat: float | None
    lon: float | None
    prefix: int  # see the class docstring: the ECS scope
    source: str  # "networks" | "geoip" | "default" (geoip.unlocated) | "none"


def nowhere(prefix: int, unlocated: str | None) -> Location:
    """Where the addresses of a /``prefix`` the database does not place are taken to be: the
    region ``geoip.unlocated`` names (as gdnsd takes its first datacenter, Route 53 its default
    location), else nowhere (the ``geo`` filter then keeps every candidate)."""
    if unlocated is not None:
        return Location(unlocated, None, None, None, None, prefix, "default")
    return Location(None, None, None, None, None, prefix, "none")


# Nothing known, and nothing looked at: valid for every address.
UNKNOWN = nowhere(0, None)
