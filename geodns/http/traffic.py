"""Where traffic goes right now: for a set of places, which clusters a client there is sent to, and why.

Each place becomes a made-up client located there (country, continent,
coordinates; no operator network), and the record's real policy chain runs
over the live snapshot, exactly as for a DNS query.  Weighted choices are
random per query, so the answer is a share per cluster: exact, from every
path of the random draws (``policy.decision``), or for records with too many
paths to list, from ``RUNS`` draws with a private random generator, so
drawing the status page never disturbs the query path's.

This is every record times every place, seconds of work with thousands of
records, so it never runs on the event loop that answers DNS: ``TrafficViews``
computes it in a thread of its own from the responder's immutable live view,
once per live-view generation (which moves only when some answer could), and
hands the same result to every request until the generation moves.  That
result is kept as the API's JSON bytes (``Traffic``), not as objects: tens of
thousands of dicts would make every garbage collection, which holds the
interpreter, walk them, and DNS answers wait for it.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import json
import random
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..config.model import RecordSpec, Region
from ..dns.names import Name
from ..geo.location import Location
from ..gslb.filters import LOCATION_FILTERS
from ..gslb.model import Context
from ..gslb.policy import Client, Selection, decision, select
from ..gslb.why import steps

if TYPE_CHECKING:
    from ..answer.responder import GslbResponder, LiveView

RUNS = 100  # draws per place when the shares cannot be listed exactly
CHUNK = 256 * 1024  # bytes of a large response handed to the transport at once
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


def places(regions: Mapping[str, Region]) -> list[Place]:
    """One place per configured region (at its coordinates), then the sample places."""
    out = [
        Place(
            f"{name} (region)",
            region.countries[0] if region.countries else "",
            region.continent,
            region.lat,
            region.lon,
        )
        for name, region in sorted(regions.items())
    ]
    return out + list(SAMPLE_PLACES)


def _client(place: Place) -> Client:
    location = Location(None, place.country or None, place.continent, place.lat, place.lon, 0, "sample")
    return Client(_ANON, location, None)


def traffic(
    records: Mapping[Name, RecordSpec], live: LiveView, regions: Mapping[str, Region], runs: int = RUNS
) -> Iterator[dict[str, Any]]:
    """Per GSLB record, per place: the share of A and of AAAA answers each cluster gets in ``live``, and why.

    One record's view at a time (``pack`` keeps them as JSON, not as objects).
    ``why`` is the A decision's filter steps with their reasons (``gslb.why``, as
    ``/api/v1/explain`` gives them); ``why_aaaa`` the AAAA decision's, only when AAAA
    answers go elsewhere and its steps differ (an IPv6 endpoint down); else None.
    Pure over its arguments (the live view is immutable), so it may run in any
    thread.  Its contexts are its own, not the live view's lazily built ones,
    so it writes nothing the query path reads.
    """
    rng = random.Random(0)  # one generator for all records, drawn from in record order
    clients = [(place, _client(place)) for place in places(regions)]
    for record in records.values():
        let_the_loop_run()
        # A context of its own per record, dropped with it: kept (as ``policy.contexts`` keeps them),
        # thousands would pile up for every garbage collection to walk (see ``Traffic``).
        context = Context(live.snapshot, live.health, regions, record, rng, live.load)
        placed = bool(LOCATION_FILTERS.intersection(record.policy))
        same: dict[str, Any] | None = None
        rows = []
        for place, client in clients:
            if placed or same is None:  # without geo or latency every place gets the same
                same = _decide(context, client, runs)
            rows.append(
                {
                    "place": place.name,
                    "country": place.country,
                    "continent": place.continent,
                    "lat": place.lat,
                    "lon": place.lon,
                    **same,
                }
            )
        yield {"record": record.text, "policy": list(record.policy), "places": rows}


def _decide(context, client: Client, runs: int) -> dict[str, Any]:
    """Shares, primary cluster and fallback for A (top level) and AAAA (``aaaa``), and the steps why.

    The AAAA steps are worked out only when AAAA answers go to other clusters than
    A answers (an IPv6 endpoint down, a cluster without IPv6): otherwise they are
    the A steps, and explaining costs as much as the shares themselves.
    """
    families: dict[int, dict[str, Any]] = {}
    for family in (4, 6):
        counts, fallback = _shares(context, client, runs, family)
        shares = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        families[family] = {"shares": shares, "primary": next(iter(shares), None), "fallback": fallback}
    why_a = steps(context, client, 4)[1]
    why_aaaa = None
    a, aaaa = families[4]["shares"], families[6]["shares"]
    if aaaa and set(aaaa) != set(a):
        why_aaaa = steps(context, client, 6)[1]
        if _same_steps(why_a, why_aaaa):
            why_aaaa = None
    return {**families[4], "aaaa": families[6], "why": why_a, "why_aaaa": why_aaaa}


def _same_steps(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    """The same filters keeping the same clusters (a weighted step's random order aside)."""
    return [(s["filter"], set(s["in"]), set(s["out"])) for s in a] == [
        (s["filter"], set(s["in"]), set(s["out"])) for s in b
    ]


def _shares(context, client: Client, runs: int, family: int = 4) -> tuple[dict[str, float], bool]:
    """Cluster -> share of first places, and whether the fallback answered, for one client and address family.

    Exact (``decision``) when the record's random paths are few enough to list;
    else ``runs`` draws with a private generator, so the query path's is left alone.
    """
    counts: dict[str, float] = {}
    exact = decision(context, client, family)
    pairs: Iterable[tuple[Selection, float]]
    if exact is not None:
        pairs = zip(exact.selections, exact.shares)
    else:
        context = replace(context, rng=random.Random(0))
        pairs = ((select(context, client, family), 1 / runs) for _ in range(runs))
    fallback = False
    for selection, share in pairs:
        fallback = fallback or selection.fallback
        for cluster in selection.clusters[:1]:  # the first cluster is where the client goes
            counts[cluster] = counts.get(cluster, 0.0) + share
    return {c: round(share, 4) for c, share in counts.items()}, fallback


class Traffic(Collection[dict[str, Any]]):
    """A live-view generation's traffic as the API's JSON, one ``bytes`` per record, decoded again only while used.

    Kept as objects, 5,000 records' views are some 85,000 place dicts with
    their nested shares, steps and lists (about 240 containers per record), all
    tracked by the cyclic garbage collector: every full collection then walks
    them, for 50-250 ms, and with ``workers: 1`` a collection that runs in the
    views' thread holds the interpreter, so DNS answers wait that long.  Kept
    as a tuple of ``bytes``, the result is one container the collector sees,
    holding none it must look into; the page decodes one record at a time
    (``json.loads``, in C), so at most one record's objects live.  JSON keeps
    every value the page reads as it was (floats round-trip exactly).  The
    parts are never joined: 100 MB copied at once holds the interpreter too.
    """

    def __init__(self, records: tuple[bytes, ...]) -> None:
        self._records = records  # each record's object, encoded as it stands in the body

    def body_parts(self) -> Iterator[bytes]:
        """``json.dumps({"records": [...]}, indent=1)`` and a newline, UTF-8, in parts."""
        if not self._records:
            yield b'{\n "records": []\n}\n'
            return
        yield b'{\n "records": [\n  '
        for i, record in enumerate(self._records):
            if i:
                yield b",\n  "
            yield record
        yield b"\n ]\n}\n"

    @property
    def body(self) -> bytes:
        """The whole body at once (tests; the API sends ``body_parts``)."""
        return b"".join(self.body_parts())

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for record in self._records:
            yield json.loads(record)

    def __contains__(self, item: object) -> bool:
        return any(record == item for record in self)


def pack(records: Iterable[dict[str, Any]]) -> Traffic:
    """``Traffic`` from record views, each encoded as soon as it is made and then dropped.

    The body is byte for byte ``json.dumps({"records": records}, indent=1)`` plus a
    newline: a record encoded alone with ``indent=1`` is the same text one level
    shallower, and a JSON text has no raw newline but those between its lines, so
    indenting every line by two spaces puts it at its place in the whole.
    """
    parts = []
    for record in records:
        parts.append(json.dumps(record, indent=1).replace("\n", "\n  ").encode())
        let_the_loop_run()
    return Traffic(tuple(parts))


async def send_parts(
    request: web.Request, parts: Iterable[bytes], content_type: str, charset: str | None = None
) -> web.StreamResponse:
    """A large body sent in pieces of about ``CHUNK`` bytes, each written once the previous ones drained.

    ``web.Response(body=...)`` hands the whole body to the transport at once,
    which copies what the socket does not take (nearly all of 100 MB) on the
    event loop, and DNS answers wait for the copy.
    """
    parts = list(parts)
    response = web.StreamResponse()
    response.content_type = content_type
    if charset:
        response.charset = charset
    response.content_length = sum(map(len, parts))
    await response.prepare(request)
    batch: list[bytes] = []
    size = 0
    try:
        for part in parts:
            batch.append(part)
            size += len(part)
            if size >= CHUNK:
                await response.write(b"".join(batch))
                batch, size = [], 0
        if batch:
            await response.write(b"".join(batch))
        await response.write_eof()
    except ConnectionError:  # the client left mid-body (a browser reloading the page): nothing to answer
        pass
    return response


def computed_traffic(
    records: Mapping[Name, RecordSpec], live: LiveView, regions: Mapping[str, Region], runs: int = RUNS
) -> Traffic:
    """``traffic`` packed: what ``TrafficViews`` keeps per live-view generation."""
    return pack(traffic(records, live, regions, runs))


@dataclass
class _Computed:
    """The traffic of one responder's live-view generation."""

    responder: object
    generation: int
    traffic: asyncio.Future


class TrafficViews:
    """``traffic`` for the running responder, computed off the event loop and kept per live-view generation.

    One thread does the work (a status page render waits behind a computation
    rather than competing with it for the interpreter); concurrent requests for
    the same generation await the same computation; ``computed`` counts them.
    The result is kept packed (``Traffic``), out of the garbage collector's way.
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="geodns-views")
        self._current: _Computed | None = None
        self.computed = 0

    def _for(self, responder: GslbResponder) -> _Computed:
        live, current = responder.live, self._current
        if current is None or current.responder is not responder or current.generation != live.generation:
            current = self._current = _Computed(
                responder,
                live.generation,
                self._submit(computed_traffic, responder.records, live, responder.regions),
            )
            current.traffic.add_done_callback(functools.partial(self._forget_failure, computed=current))
            self.computed += 1
        return current

    async def records(self, responder: GslbResponder | None) -> Traffic:
        """``traffic`` for ``responder``'s live view now; none without GSLB records."""
        if responder is None:
            return pack([])
        return await asyncio.shield(self._for(responder).traffic)

    async def json_parts(self, responder: GslbResponder | None) -> Iterator[bytes]:
        """``{"records": traffic}`` as the API's JSON (UTF-8), made once per generation, off the loop; in parts."""
        return (await self.records(responder)).body_parts()

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Other heavy work for the same thread (the status page's HTML)."""
        return await asyncio.shield(self._submit(fn, *args))

    def _submit(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future:
        return asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _forget_failure(self, future: asyncio.Future, computed: _Computed) -> None:
        """A computation that failed is not kept: the next request tries again."""
        if (future.cancelled() or future.exception() is not None) and self._current is computed:
            self._current = None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def let_the_loop_run() -> None:
    """Hand the interpreter to the event loop's thread if it waits for it.

    A thread computing in Python holds the GIL until another thread has asked
    for it for 5 ms (``sys.getswitchinterval``); every DNS answer would wait
    that long.  Work done here in steps calls this between them, so a waiting
    query is answered after one step instead.
    """
    time.sleep(0)
