"""A small Kubernetes API server: the real list/watch wire protocol, on loopback.

Operator tooling for a laptop without Kubernetes, and the agent's tests' API server: ``geodns stack
--discovery`` runs one per simulated cluster, seeded with annotated Services, and real ``geodns
agent`` processes watch them.  It holds objects in memory only and checks nothing but a bearer
token: not a Kubernetes, just enough of its API for the agent to be exercised for real.

What it speaks, as kube-apiserver does (kubernetes.io/docs/reference/using-api/api-concepts/):

- ``GET`` of a collection (``/api/v1/services``, ``/api/v1/namespaces/NS/services``, and the same
  for ``networking.k8s.io/v1`` ingresses and ``gateway.networking.k8s.io/v1`` gateways): a List
  with ``metadata.resourceVersion``; ``limit`` pages it, each page but the last carrying
  ``metadata.continue``, and the pages are one consistent snapshot.
- ``?watch=1&resourceVersion=N``: a chunked stream of JSON lines ``{"type", "object"}`` with every
  change after N (ADDED, MODIFIED, DELETED), BOOKMARK events every ``bookmark_every`` seconds when
  ``allowWatchBookmarks`` is set, ended after ``timeoutSeconds``.  A version older than the last
  compaction gets an ERROR event whose object is a Status with code 410 (Expired), as the real
  server sends it.
- A bearer token is required (401 otherwise), as a kubeconfig gives one.

The test drives it: ``apply`` and ``delete`` objects, ``compact`` the history (so older versions
are Gone), ``drop_watches`` (abort every open watch connection mid-stream), ``fail_next`` (answer
the next requests with an error Status), and reads ``requests`` to see what the client asked.
It runs on its own event loop in a thread, so a test can block (dnspython, polling) meanwhile.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

TOKEN = "geodns-local-token"
# plural -> (URL prefix of its group/version, kind, List kind)
RESOURCES = {
    "services": ("/api/v1", "Service", "v1"),
    "ingresses": ("/apis/networking.k8s.io/v1", "Ingress", "networking.k8s.io/v1"),
    "gateways": ("/apis/gateway.networking.k8s.io/v1", "Gateway", "gateway.networking.k8s.io/v1"),
}


@dataclass
class _Watch:
    plural: str
    namespace: str | None
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    transport: Any = None


class FakeKubeApi:
    def __init__(self, bookmark_every: float = 0.2, gateways: bool = True):
        self.bookmark_every = bookmark_every
        self.gateways = gateways  # False: the Gateway API CRDs are not installed (404)
        self.version = 100
        self.objects: dict[str, dict[tuple[str, str], dict]] = {p: {} for p in RESOURCES}
        self.history: list[tuple[int, str, str, dict]] = []  # (version, plural, type, object)
        self.compacted = 0  # versions at or below this are Gone
        self.watches: list[_Watch] = []
        self.requests: list[dict[str, Any]] = []  # {"plural", "watch", "resourceVersion", "continue", ...}
        self.failures: list[int] = []  # statuses for the next requests
        self._pages: dict[str, list[dict]] = {}
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- life cycle ---------------------------------------------------------------------
    def start(self) -> FakeKubeApi:
        self._thread.start()
        self._call(self._start())
        return self

    async def _start(self) -> None:
        app = web.Application()
        for plural, (prefix, _, _) in RESOURCES.items():
            app.router.add_get(f"{prefix}/{plural}", self._handler(plural))
            app.router.add_get(f"{prefix}/namespaces/{{ns}}/{plural}", self._handler(plural))
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def stop(self) -> None:
        self.drop_watches()
        if self._runner is not None:
            self._call(self._runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    def _call(self, coro, timeout: float = 10.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{self.port}"}}],
                    "users": [{"name": "agent", "user": {"token": TOKEN}}],
                    "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "agent"}}],
                    "current-context": "fake",
                }
            )
        )
        return path

    # -- what the test does --------------------------------------------------------------
    def apply(self, plural: str, obj: dict) -> int:
        """Create or replace an object; its new resourceVersion."""

        async def go() -> int:
            obj2 = copy.deepcopy(obj)
            meta = obj2.setdefault("metadata", {})
            meta.setdefault("namespace", "default")
            k = (meta["namespace"], meta["name"])
            kind = "MODIFIED" if k in self.objects[plural] else "ADDED"
            self.objects[plural][k] = obj2
            return self._event(plural, kind, obj2)

        return self._call(go())

    def delete(self, plural: str, namespace: str, name: str) -> int:
        async def go() -> int:
            obj = self.objects[plural].pop((namespace, name))
            return self._event(plural, "DELETED", obj)

        return self._call(go())

    def compact(self) -> None:
        """Forget the history up to now: a watch from any older version is Gone (410)."""

        async def go() -> None:
            self.compacted = self.version
            self.history.clear()

        self._call(go())

    def drop_watches(self) -> int:
        """Abort every open watch connection mid-stream (as a load balancer or a restart would)."""

        async def go() -> int:
            dropped = 0
            for watch in list(self.watches):
                if watch.transport is not None:
                    watch.transport.abort()
                    dropped += 1
            return dropped

        return self._call(go())

    def fail_next(self, *statuses: int) -> None:
        async def go() -> None:
            self.failures.extend(statuses)

        self._call(go())

    def seen(self, **match: Any) -> list[dict[str, Any]]:
        """The requests so far that match every key given (``seen(plural="services", watch=False)``)."""

        async def go() -> list[dict[str, Any]]:
            return [r for r in self.requests if all(r.get(k) == v for k, v in match.items())]

        return self._call(go())

    # -- the server ----------------------------------------------------------------------
    def _event(self, plural: str, kind: str, obj: dict) -> int:
        self.version += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.version)
        if kind != "DELETED":
            self.objects[plural][(obj["metadata"]["namespace"], obj["metadata"]["name"])]["metadata"][
                "resourceVersion"
            ] = str(self.version)
        self.history.append((self.version, plural, kind, obj))
        for watch in self.watches:
            if watch.plural == plural and watch.namespace in (None, obj["metadata"]["namespace"]):
                watch.queue.put_nowait((kind, obj))
        return self.version

    def _handler(self, plural: str):
        async def handle(request: web.Request) -> web.StreamResponse:
            q = request.query
            watching = _flag(q.get("watch"))
            self.requests.append(
                {
                    "plural": plural,
                    "watch": watching,
                    "resourceVersion": q.get("resourceVersion"),
                    "continue": q.get("continue"),
                    "limit": q.get("limit"),
                    "bookmarks": _flag(q.get("allowWatchBookmarks")),
                }
            )
            if request.headers.get("Authorization") != f"Bearer {TOKEN}":
                return _status(401, "Unauthorized", "no or a wrong bearer token")
            if self.failures:
                code = self.failures.pop(0)
                return _status(code, "InternalError" if code >= 500 else "TooManyRequests", "injected by the test")
            if plural == "gateways" and not self.gateways:
                return _status(404, "NotFound", "the server could not find the requested resource")
            namespace = request.match_info.get("ns")
            if watching:
                return await self._watch(request, plural, namespace)
            return self._list(plural, namespace, q)

        return handle

    def _list(self, plural: str, namespace: str | None, q) -> web.Response:
        token = q.get("continue")
        if token:
            if token not in self._pages:
                return _status(410, "Expired", "the continue token is not known")
            items = self._pages.pop(token)
        else:
            items = [
                copy.deepcopy(o)
                for (ns, _), o in sorted(self.objects[plural].items())
                if namespace is None or ns == namespace
            ]
        limit = int(q.get("limit") or 0)
        meta: dict[str, Any] = {"resourceVersion": str(self.version)}
        if limit and len(items) > limit:
            token = uuid.uuid4().hex
            self._pages[token] = items[limit:]
            items = items[:limit]
            meta["continue"] = token
        _, kind, api_version = RESOURCES[plural]
        body = {"kind": f"{kind}List", "apiVersion": api_version, "metadata": meta, "items": items}
        return web.json_response(body)

    async def _watch(self, request: web.Request, plural: str, namespace: str | None) -> web.StreamResponse:
        q = request.query
        since = int(q.get("resourceVersion") or self.version)
        bookmarks = _flag(q.get("allowWatchBookmarks"))
        timeout = float(q.get("timeoutSeconds") or 1800)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        _, kind, api_version = RESOURCES[plural]

        async def send(event_type: str, obj: dict) -> None:
            await response.write((json.dumps({"type": event_type, "object": obj}) + "\n").encode())

        if since < self.compacted:
            await send(
                "ERROR",
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Failure",
                    "message": f"too old resource version: {since} ({self.compacted})",
                    "reason": "Expired",
                    "code": 410,
                },
            )
            await response.write_eof()
            return response
        watch = _Watch(plural, namespace, transport=request.transport)
        for version, p, event_type, obj in self.history:  # what happened since, then what happens
            if version > since and p == plural and namespace in (None, obj["metadata"]["namespace"]):
                watch.queue.put_nowait((event_type, obj))
        self.watches.append(watch)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while loop.time() < deadline:
                wait = min(self.bookmark_every, deadline - loop.time())
                try:
                    event_type, obj = await asyncio.wait_for(watch.queue.get(), max(wait, 0.001))
                except asyncio.TimeoutError:
                    if bookmarks:
                        await send(
                            "BOOKMARK",
                            {
                                "kind": kind,
                                "apiVersion": api_version,
                                "metadata": {"resourceVersion": str(self.version)},
                            },
                        )
                    continue
                await send(event_type, obj)
            await response.write_eof()
        except (ConnectionResetError, RuntimeError):
            pass  # dropped (by the test or the client)
        finally:
            self.watches.remove(watch)
        return response


def _flag(value: str | None) -> bool:
    """A boolean query parameter as the API server reads one (Go's strconv.ParseBool)."""
    return (value or "").lower() in ("1", "t", "true")


def _status(code: int, reason: str, message: str) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message}
    return web.json_response({**body, "reason": reason, "code": code}, status=code)


def service(
    name: str,
    namespace: str = "shop",
    hostname: str | None = None,
    ips: tuple[str, ...] = ("198.51.100.20",),
    export: bool = False,
    **annotations: str,
) -> dict:
    """A Service of type LoadBalancer with its status addresses and geodns.io annotations."""
    notes = {f"geodns.io/{k}": v for k, v in annotations.items()}
    if hostname:
        notes["geodns.io/hostname"] = hostname
    if export:
        notes["geodns.io/export"] = "true"
    ingress = [{"ip": ip} if ":" in ip or ip[0].isdigit() else {"hostname": ip} for ip in ips]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "annotations": notes},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 443}]},
        "status": {"loadBalancer": {"ingress": ingress}},
    }
