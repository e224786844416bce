"""Where traffic goes right now: for a set of places, which clusters a client there is sent to.

Each place becomes a made-up client located there (country, continent,
coordinates; no operator network), and the record's real policy chain runs
over the live snapshot, exactly as for a DNS query.  Weighted choices are
random per query, so the answer is a share per cluster: exact, from every
path of the random draws (``policy.outcomes``), or for records with too many
paths to list, from ``RUNS`` draws with a private random generator, so
drawing the status page never disturbs the query path's.
"""
from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..geo.location import Location
from ..gslb.policy import Client, outcomes, select
from .views import gslb

if TYPE_CHECKING:
    from ..server import Server

RUNS = 100                     # draws per place when the shares cannot be listed exactly
_ANON = ipaddress.ip_address("192.0.2.1")


@dataclass(frozen=True)
class Place:
    name: str
    country: str
    continent: str
    lat: float
    lon: float


# A few places on every continent, so the picture shows more than the regions themselves.
SAMPLE_PLACES: tuple[Place, ...] = (
    Place("San Francisco", "US", "NA", 37.8, -122.4),
    Place("New York", "US", "NA", 40.7, -74.0),
    Place("Mexico City", "MX", "NA", 19.4, -99.1),
    Place("São Paulo", "BR", "SA", -23.5, -46.6),
    Place("London", "GB", "EU", 51.5, -0.1),
    Place("Frankfurt", "DE", "EU", 50.1, 8.7),
    Place("Lagos", "NG", "AF", 6.5, 3.4),
    Place("Johannesburg", "ZA", "AF", -26.2, 28.0),
    Place("Dubai", "AE", "AS", 25.2, 55.3),
    Place("Mumbai", "IN", "AS", 19.1, 72.9),
    Place("Singapore", "SG", "AS", 1.35, 103.8),
    Place("Tokyo", "JP", "AS", 35.7, 139.7),
    Place("Sydney", "AU", "OC", -33.9, 151.2),
)


def places(server: "Server") -> list[Place]:
    """One place per configured region (at its coordinates), then the sample places."""
    out = [Place(f"{name} (region)", region.countries[0] if region.countries else "", region.continent,
                 region.lat, region.lon) for name, region in sorted(server.config.regions.items())]
    return out + list(SAMPLE_PLACES)


def _client(place: Place) -> Client:
    location = Location(None, place.country or None, place.continent, place.lat, place.lon, 0, "sample")
    return Client(_ANON, location, None)


def traffic(server: "Server", runs: int = RUNS) -> list[dict[str, Any]]:
    """Per GSLB record, per place: the share of A answers each cluster gets now."""
    dynamic = gslb(server)
    if dynamic is None:
        return []
    state = dynamic.state
    clients = [(place, _client(place)) for place in places(server)]
    out = []
    for name, record in dynamic.records.items():
        context = state.contexts.get(name)
        if context is None:
            continue
        rows = []
        for place, client in clients:
            counts, fallback = _shares(context, client, runs)
            shares = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
            rows.append({"place": place.name, "country": place.country, "continent": place.continent,
                         "lat": place.lat, "lon": place.lon, "shares": shares,
                         "primary": next(iter(shares), None), "fallback": fallback})
        out.append({"record": record.text, "policy": list(record.policy), "places": rows})
    return out


def _shares(context, client: Client, runs: int) -> tuple[dict[str, float], bool]:
    """Cluster -> share of first places, and whether the fallback answered, for one client.

    Exact (``outcomes``) when the record's random paths are few enough to list;
    else ``runs`` draws with a private generator, so the query path's is left alone.
    """
    counts: dict[str, float] = {}
    listed = outcomes(context, client, 4)
    if listed is not None:
        pairs = zip(listed.selections, listed.shares)
    else:
        context = replace(context, rng=random.Random(0))
        pairs = ((select(context, client, 4), 1 / runs) for _ in range(runs))
    fallback = False
    for selection, share in pairs:
        fallback = fallback or selection.fallback
        for cluster in selection.clusters[:1]:          # the first cluster is where the client goes
            counts[cluster] = counts.get(cluster, 0.0) + share
    return {c: round(share, 4) for c, share in counts.items()}, fallback
