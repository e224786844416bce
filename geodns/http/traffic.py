"""Where traffic goes right now: for a set of places, which clusters a client there is sent to.

Each place becomes a made-up client located there (country, continent,
coordinates; no operator network), and the record's real policy chain runs
over the live snapshot, exactly as for a DNS query.  Weighted choices are
random per query, so each place is asked many times and the answer is a share
per cluster.  The runs use a private random generator, so drawing the status
page never disturbs the query path's.  Only ``weighted`` draws at random; a
policy without it is asked once per place.  A page costs a few milliseconds of
the event loop (about 7 ms for 16 places and a weighted record on the CI VM).
"""
from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..geo.location import Location
from ..gslb.policy import Client, select
from .views import gslb

if TYPE_CHECKING:
    from ..server import Server

RUNS = 100                     # queries per place; shares are multiples of 1%
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
        context = replace(context, rng=random.Random(0))
        tries = runs if "weighted" in record.policy else 1     # the other filters are deterministic
        rows = []
        for place, client in clients:
            counts: dict[str, int] = {}
            fallback = 0
            for _ in range(tries):
                selection = select(context, client, 4)
                fallback += selection.fallback
                for cluster in selection.clusters[:1]:          # the first cluster is where the client goes
                    counts[cluster] = counts.get(cluster, 0) + 1
            shares = {c: n / tries for c, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))}
            rows.append({"place": place.name, "country": place.country, "continent": place.continent,
                         "lat": place.lat, "lon": place.lon, "shares": shares,
                         "primary": next(iter(shares), None), "fallback": fallback > 0})
        out.append({"record": record.text, "policy": list(record.policy), "places": rows})
    return out
