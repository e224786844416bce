"""The admin API under ``/api/v1``: JSON in, JSON out, one handler per operation.

Bodies are checked here, at the boundary, with the config's own converters
(``config/values.py``), so the API accepts exactly what a config may say: cluster
names, weights 0..1,000,000, bounded probe strings.  A body that is too big, not
UTF-8, not JSON, nested too deeply or not an object is refused with the reason.

Writes go to the store and then wait for this server's own keeper to load the
new version (``keeper.sync()``) and, with ``server.workers``, for every worker
to confirm it, so by the time the client gets its answer the next DNS query
already reflects the change.  Errors are JSON
``{"error": "..."}`` with the status that says what went wrong: 400 bad body or
value, 413 body over 64 KiB, 401/403 token, 404 unknown cluster/endpoint/record, 409 already exists,
422 a rejected config on reload, 503 store unavailable.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from ..config import values
from ..config.model import ClusterSpec, EndpointSpec
from ..dns import names, wire
from ..state.model import AdminState
from ..state.store import StateError, StateStore, StoreUnavailable
from ..state.table import DEFAULT_LOAD_TTL, load_report, parse_address, require
from . import views
from .auth import error
from .traffic import TrafficViews, send_parts

if TYPE_CHECKING:
    from ..process.server import Server

log = logging.getLogger("geodns.http.api")

PREFIX = "/api/v1"
MAX_BODY = 64 * 1024  # bytes of a request body (app.py gives aiohttp the same limit)
MAX_DEPTH = 8  # nesting of a JSON body; the deepest we take is three
_ADMIN_ACTIONS = {
    "drain": AdminState.DRAINED,
    "undrain": AdminState.ACTIVE,
    "force-up": AdminState.FORCED_UP,
    "force-down": AdminState.FORCED_DOWN,
}
_QTYPES = {"A": wire.T_A, "AAAA": wire.T_AAAA}


def add_routes(app: web.Application, server: Server, traffic_views: TrafficViews) -> None:
    api = _Api(server, traffic_views)
    r = app.router
    r.add_get(f"{PREFIX}/status", api.status)
    r.add_get(f"{PREFIX}/records", api.records)
    r.add_get(f"{PREFIX}/clusters", api.clusters)
    r.add_post(f"{PREFIX}/clusters", api.add_cluster)
    r.add_get(f"{PREFIX}/clusters/{{name}}", api.cluster)
    r.add_delete(f"{PREFIX}/clusters/{{name}}", api.remove_cluster)
    for action in _ADMIN_ACTIONS:
        r.add_post(f"{PREFIX}/clusters/{{name}}/{action}", api.admin_action(action))
    r.add_put(f"{PREFIX}/clusters/{{name}}/weight", api.set_weight)
    r.add_put(f"{PREFIX}/clusters/{{name}}/load", api.set_load)
    r.add_post(f"{PREFIX}/clusters/{{name}}/endpoints", api.add_endpoint)
    r.add_delete(f"{PREFIX}/clusters/{{name}}/endpoints", api.remove_endpoint)
    r.add_delete(f"{PREFIX}/clusters/{{name}}/endpoints/{{address}}", api.remove_endpoint)
    r.add_get(f"{PREFIX}/explain", api.explain)
    r.add_get(f"{PREFIX}/traffic", api.traffic)
    r.add_post(f"{PREFIX}/reload", api.reload)


def reply(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data, indent=1) + "\n", status=status, content_type="application/json")


class _Api:
    def __init__(self, server: Server, traffic_views: TrafficViews):
        self.server = server
        self.traffic_views = traffic_views

    # -- reads ------------------------------------------------------------------------------
    async def status(self, request: web.Request) -> web.Response:
        return reply(views.status_view(self.server))

    async def records(self, request: web.Request) -> web.Response:
        return reply({"records": views.records_view(self.server)})

    async def clusters(self, request: web.Request) -> web.Response:
        return reply(views.clusters_view(self.server))

    async def cluster(self, request: web.Request) -> web.Response:
        return reply(self._cluster_or_404(request.match_info["name"]))

    async def traffic(self, request: web.Request) -> web.StreamResponse:
        """Where clients in each region and sample place are sent now (the status page's picture).

        Computed and serialised off the event loop, once per state generation (traffic.py)."""
        parts = await self.traffic_views.json_parts(views.gslb(self.server))
        return await send_parts(request, parts, "application/json")

    async def explain(self, request: web.Request) -> web.Response:
        """Why a client gets its answer: ?name=app.example.com&type=A&client=ADDR[/PREFIX]."""
        query = request.query
        text = query.get("name", "").strip()
        client = query.get("client", "").strip()
        if not text or not client:
            raise error(400, "explain needs ?name=RECORD&client=ADDRESS[/PREFIX] (and optionally &type=A|AAAA)")
        qtype_text = query.get("type", "A").strip().upper()
        if qtype_text not in _QTYPES:
            raise error(400, f"type must be A or AAAA, not {qtype_text!r}")
        try:
            name = names.from_text(text.rstrip(".") + ".")
        except ValueError as exc:
            raise error(400, f"bad name {text!r}: {exc}") from None
        address, prefix = _client(client)
        responder = views.gslb(self.server)
        if responder is None or name not in responder.records:
            known = ", ".join(r.text for r in views.current_records(self.server).values()) or "none"
            raise error(404, f"{text} is not a GSLB record (records: {known})")
        result = responder.explain(name, _QTYPES[qtype_text], address, prefix)
        result["type"] = qtype_text
        live = responder.live
        snapshot, health, load = live.snapshot, live.health, live.load
        result["candidates"] = {c: _candidate(snapshot, health, c) for c in responder.records[name].clusters}
        origins = live.discovered.origins.get(name)
        result["origin"] = "discovery" if origins else "config"
        if origins:
            now = time.time()
            result["registrations"] = [o.view(now) for o in origins]
        for c, candidate in result["candidates"].items():
            if c in load.states:
                candidate["shed_share"] = round(load.share(c), 4)
        return reply(result)

    # -- writes -----------------------------------------------------------------------------
    def admin_action(self, action: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        state = _ADMIN_ACTIONS[action]

        async def handler(request: web.Request) -> web.Response:
            name = request.match_info["name"]
            body = await _body(request)
            endpoint = request.query.get("endpoint") or _opt_str(body, "endpoint")
            store = self._store()
            await self._write(lambda: store.set_admin(name, state, endpoint))
            log.info(
                "event=admin action=%s cluster=%s endpoint=%s remote=%s", action, name, endpoint or "-", request.remote
            )
            return reply(self._cluster_or_404(name))

        return handler

    async def set_weight(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = await _body(request)
        if "weight" not in body:
            raise error(400, 'the body must be {"weight": N} (and optionally "endpoint": ADDRESS)')
        weight = _field(body, "weight", values.weight)
        endpoint = request.query.get("endpoint") or _opt_str(body, "endpoint")
        store = self._store()
        await self._write(lambda: store.set_weight(name, weight, endpoint))
        log.info(
            "event=admin action=weight cluster=%s endpoint=%s weight=%s remote=%s",
            name,
            endpoint or "-",
            weight,
            request.remote,
        )
        return reply(self._cluster_or_404(name))

    async def set_load(self, request: web.Request) -> web.Response:
        """An operator's (or automation's) load reading: {"load": 0.83, "ttl": "60s", "endpoint": ADDRESS}.

        It wins over the checkers' readings until its ttl runs out (default 60 s); then the
        load is whatever the checkers say, or unknown."""
        name = request.match_info["name"]
        body = await _body(request)
        if "load" not in body:
            raise error(
                400, 'the body must be {"load": N} (1 = at capacity; optionally "ttl": "60s", "endpoint": ADDRESS)'
            )
        unknown = set(body) - {"load", "ttl", "endpoint"}
        if unknown:
            raise error(400, f"unknown keys: {', '.join(sorted(unknown))}")
        endpoint = request.query.get("endpoint") or _opt_str(body, "endpoint")
        ttl = body.get("ttl", DEFAULT_LOAD_TTL)
        store = self._store()
        snapshot = views.keeper_of(self.server).snapshot

        async def write() -> int:
            cluster = require(snapshot.clusters.get(name), name)
            return await store.report_load([load_report(cluster, body["load"], ttl, endpoint)])

        await self._write(write)
        log.info(
            "event=admin action=load cluster=%s endpoint=%s load=%s ttl=%s remote=%s",
            name,
            endpoint or "-",
            body["load"],
            ttl,
            request.remote,
        )
        return reply(self._cluster_or_404(name))

    async def add_endpoint(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = await _body(request)
        spec = _endpoint_spec(body, "body")
        store = self._store()
        await self._write(lambda: store.add_endpoint(name, spec))
        log.info("event=admin action=add-endpoint cluster=%s endpoint=%s remote=%s", name, spec.address, request.remote)
        return reply(self._cluster_or_404(name), status=201)

    async def remove_endpoint(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = await _body(request)
        address = request.match_info.get("address") or request.query.get("address") or _opt_str(body, "address")
        if not address:
            raise error(400, 'say which endpoint: DELETE .../endpoints/ADDRESS, ?address= or {"address": ...}')
        store = self._store()
        await self._write(lambda: store.remove_endpoint(name, address))
        log.info("event=admin action=remove-endpoint cluster=%s endpoint=%s remote=%s", name, address, request.remote)
        return reply(self._cluster_or_404(name))

    async def add_cluster(self, request: web.Request) -> web.Response:
        body = await _body(request)
        spec = self._cluster_spec(body)
        store = self._store()
        await self._write(lambda: store.add_cluster(spec))
        log.info("event=admin action=add-cluster cluster=%s remote=%s", spec.name, request.remote)
        return reply(self._cluster_or_404(spec.name), status=201)

    async def remove_cluster(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        store = self._store()
        version = await self._write(lambda: store.remove_cluster(name))
        log.info("event=admin action=remove-cluster cluster=%s remote=%s", name, request.remote)
        return reply({"removed": name, "version": version})

    async def reload(self, request: web.Request) -> web.Response:
        server = self.server
        if await server.reload():
            engine, config = server.engine, views.config_of(server)
            assert engine is not None  # a successful reload has just set it
            return reply(
                {
                    "reloaded": True,
                    "zones": [names.to_text(z.origin) for z in engine.zones],
                    "records": [r.text for r in config.records.values()],
                    "reloads": dict(server.reloads),
                }
            )
        raise error(
            422,
            "the new config was rejected; the running config stays in force",
            problems=list(server.reload_problems),
            reloads=dict(server.reloads),
        )

    # -- helpers ----------------------------------------------------------------------------
    async def _write(self, operation: Callable[[], Awaitable[int]]) -> int:
        """Run one store write, map its errors to HTTP, and wait until our snapshot has it."""
        try:
            version = await operation()
        except StateError as exc:
            message = str(exc)
            raise error(409 if "already" in message else 404, message) from None
        except ValueError as exc:
            raise error(400, str(exc)) from None
        except StoreUnavailable as exc:
            raise error(503, f"state store unavailable: {exc}; nothing was changed") from None
        try:
            await views.keeper_of(self.server).sync()
        except StoreUnavailable as exc:
            raise error(
                503,
                f"the change was stored (version {version}) but could not be loaded back: {exc}; "
                "DNS answers pick it up when the store is reachable",
            ) from None
        if not await self.server.settled():
            raise error(
                503,
                f"the change was stored (version {version}) and this server has it, but not every "
                "DNS worker confirmed it in time; a stuck worker answers from the old state",
            )
        return version

    def _store(self) -> StateStore:
        store = self.server.store
        if store is None:
            raise error(503, "the state store is closed: the server is stopping")
        return store

    def _cluster_or_404(self, name: str) -> dict[str, Any]:
        view = views.one_cluster_view(self.server, name)
        if view is None:
            raise error(404, f"unknown cluster '{name}'")
        return view

    def _cluster_spec(self, body: dict[str, Any]) -> ClusterSpec:
        if "name" not in body:
            raise error(400, 'the body needs "name": the new cluster\'s name')
        name = _field(body, "name", values.cluster_name)
        region = body.get("region")
        regions = views.config_of(self.server).regions
        if not isinstance(region, str) or region not in regions:
            raise error(400, f"unknown region {region!r} (known: {', '.join(sorted(regions)) or 'none'})")
        raw = body.get("endpoints")
        if not isinstance(raw, list) or not raw:
            raise error(400, '"endpoints" must be a non-empty list of addresses or {"address": ..., "weight": ...}')
        endpoints = tuple(
            _endpoint_spec(item if isinstance(item, dict) else {"address": item}, f"endpoints[{i}]")
            for i, item in enumerate(raw)
        )
        numbers = {
            key: _field(body, key, convert, default)
            for key, convert, default in (
                ("weight", values.weight, 100),
                ("priority", values.priority, 0),
                ("min_healthy", values.min_healthy, 1),
            )
        }
        unknown = set(body) - {"name", "region", "endpoints", "weight", "priority", "min_healthy"}
        if unknown:
            raise error(400, f"unknown keys: {', '.join(sorted(unknown))}")
        return ClusterSpec(name=name, region=region, endpoints=endpoints, **numbers)


def _candidate(snapshot, health, name: str) -> dict[str, Any]:
    cluster = snapshot.clusters.get(name)
    if cluster is None:
        return {"state": "absent"}
    return {
        "region": cluster.region,
        "weight": cluster.weight,
        "priority": cluster.priority,
        "admin": cluster.admin.value,
        "state": views.cluster_state(health, name),
        "rtt_ms": {v: round(ms, 3) for (c, v), ms in health.rtts().items() if c == name},
    }


async def _body(request: web.Request) -> dict[str, Any]:
    """The JSON object in the body, or {} for none; anything else is a 400 (413: too big) with the reason."""
    if not request.can_read_body:
        return {}
    try:
        data = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise error(413, f"the body is larger than {MAX_BODY} bytes") from None
    except (ConnectionError, HttpProcessingError) as exc:  # cut off, or a broken chunked encoding
        raise error(400, f"the body could not be read: {exc}") from None
    except web.RequestPayloadError as exc:  # not what its Content-Encoding says
        raise error(400, f"the body could not be read: {' '.join(str(exc).split())}") from None
    try:
        text = data.decode("utf-8")  # JSON is UTF-8 (RFC 8259), whatever the header says
    except UnicodeDecodeError as exc:
        raise error(400, f"the body is not UTF-8 text (bad byte at offset {exc.start})") from None
    if not text.strip():
        return {}
    try:
        body = json.loads(text)
    except RecursionError:
        raise error(400, f"the body is not valid JSON: nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise error(400, f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise error(400, "the body must be a JSON object")
    if _too_deep(body, MAX_DEPTH):
        raise error(400, f"the body is nested deeper than {MAX_DEPTH} levels")
    return body


def _too_deep(value: Any, limit: int) -> bool:
    """Whether lists and objects nest more than ``limit`` levels (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _field(body: dict[str, Any], key: str, convert: Callable[[Any], Any], default: Any = None, where: str = "") -> Any:
    """``body[key]`` (or ``default``) through one of the config's converters; its ValueError is a 400."""
    try:
        return convert(body.get(key, default))
    except ValueError as exc:
        raise error(400, f'{where}"{key}" {exc}') from None


def _opt_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise error(400, f'"{key}" must be a non-empty string')
    return value.strip()


def _endpoint_spec(body: dict[str, Any], where: str) -> EndpointSpec:
    raw = body.get("address")
    if not isinstance(raw, str):
        raise error(400, f'{where}: "address" must be an IP address string')
    try:
        address = parse_address(raw)
    except ValueError as exc:
        raise error(400, f"{where}: {exc}") from None
    weight = _field(body, "weight", values.weight, 100, f"{where}: ")
    probe = None if body.get("probe") is None else _field(body, "probe", values.probe, None, f"{where}: ")
    return EndpointSpec(address=address, weight=weight, probe=probe)


def _client(text: str) -> tuple[str, int | None]:
    """ADDRESS or ADDRESS/PREFIX; with a prefix the address is masked to it, as a resolver's ECS is."""
    address, _, prefix_text = text.partition("/")
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise error(400, f"client must be an IP address, optionally /PREFIX, not {text!r}") from None
    if not prefix_text:
        return str(ip), None
    bits = 32 if ip.version == 4 else 128
    if not prefix_text.isdigit() or not 0 <= int(prefix_text) <= bits:
        raise error(400, f"the prefix in {text!r} must be 0-{bits}")
    prefix = int(prefix_text)
    network = ipaddress.ip_network(f"{ip}/{prefix}", strict=False)
    return str(network.network_address), prefix
