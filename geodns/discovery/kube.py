"""Listing and watching one kind of Kubernetes object, through kubernetes_asyncio.

Why kubernetes_asyncio (README, "Discovery"): it is asyncio-native like the rest of geodns (the
official client is synchronous, and would need a thread per watch), and it is generated from the
API's OpenAPI spec with the real list/watch protocol (resourceVersion, ``continue`` pages,
bookmarks, ERROR events), where kr8s hides the watch behind a higher-level API that re-lists on
its own terms.

The protocol, as the API server defines it (kubernetes.io, "Efficient detection of changes"):

1. List in pages (``limit`` + ``continue``); the list's ``resourceVersion`` is where a watch starts.
2. Watch from that version with ``allowWatchBookmarks``: ADDED / MODIFIED / DELETED events move
   the version forward, BOOKMARK events move it without a change.  The server ends a watch after
   ``timeoutSeconds``; a dropped connection ends it too: either way the next watch resumes from
   the last version seen, so no event is lost across a reconnect, and nothing is listed again.
3. A version the server no longer has answers ``410 Gone`` (an ERROR event with Status code 410,
   or a 410 response): only then is the kind listed again from scratch.
4. Any other error (the API unreachable, 5xx, 429) waits a jittered exponential backoff, then
   resumes from the last version.

Objects are handed over as the API's JSON (dicts, camelCase): ``discovery.objects`` reads them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.watch import Watch

from .objects import KINDS, key

log = logging.getLogger("geodns.agent")

PAGE = 500  # objects per list page
WATCH_SECONDS = 300  # the server ends each watch after this; the next resumes from the last version


class Gone(Exception):
    """The API server no longer has the resource version asked for (410): list again."""


@dataclass
class Backoff:
    """Jittered exponential backoff between failed attempts, reset by a success."""

    low: float = 0.2
    high: float = 30.0
    current: float = 0.0

    def next(self) -> float:
        self.current = self.low if self.current == 0 else min(self.current * 2, self.high)
        return self.current * random.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.current = 0.0


async def api_client(kubeconfig: str | None) -> k8s.ApiClient:
    """A client for ``kubeconfig``, or the pod's own service account when None."""
    if kubeconfig is None:
        k8s_config.load_incluster_config()
        return k8s.ApiClient()
    configuration = k8s.Configuration()
    await k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    return k8s.ApiClient(configuration)


def list_function(api: k8s.ApiClient, kind: str, namespace: str | None) -> Callable[..., Awaitable[Any]]:
    """The generated client's list call for ``kind`` (in one namespace, or all)."""
    group, plural = KINDS[kind]
    if kind == "Service":
        core = k8s.CoreV1Api(api)
        return (
            core.list_service_for_all_namespaces if namespace is None else _in(core.list_namespaced_service, namespace)
        )
    if kind == "Ingress":
        net = k8s.NetworkingV1Api(api)
        return net.list_ingress_for_all_namespaces if namespace is None else _in(net.list_namespaced_ingress, namespace)
    custom = k8s.CustomObjectsApi(api)
    if namespace is None:
        return _bind(custom.list_cluster_custom_object, group, "v1", plural)
    return _bind(custom.list_namespaced_custom_object, group, "v1", namespace, plural)


def _in(fn: Callable[..., Awaitable[Any]], namespace: str) -> Callable[..., Awaitable[Any]]:
    return _bind(fn, namespace)


def _bind(fn: Callable[..., Awaitable[Any]], *args: Any) -> Callable[..., Awaitable[Any]]:
    async def call(**kwargs: Any) -> Any:
        return await fn(*args, **kwargs)

    call.__doc__ = fn.__doc__  # Watch reads the return type and the watch flag's name from it
    return call


class Follower:
    """Keeps ``objects`` (namespace/name -> object) equal to one kind's objects in the API, calling
    ``changed`` after each change; ``synced`` is set once the first list is in."""

    def __init__(
        self,
        api: k8s.ApiClient,
        kind: str,
        namespaces: tuple[str, ...],
        changed: Callable[[], None],
        *,
        watch_seconds: int = WATCH_SECONDS,
        backoff: Backoff | None = None,
        page: int = PAGE,
    ) -> None:
        self.kind = kind
        self.calls = [list_function(api, kind, ns) for ns in (namespaces or (None,))]
        self.objects: dict[str, dict[str, Any]] = {}
        self.changed = changed
        self.watch_seconds = watch_seconds
        self.page = page
        self.backoff = backoff or Backoff()
        self.synced = asyncio.Event()
        self.lists = 0  # how many times the kind was listed from scratch (the first, and after 410s)
        self.resumes = 0  # watches started from a version already held
        self.version: str | None = None  # the latest resource version held (with --namespace: of one of them)

    async def run(self) -> None:
        await asyncio.gather(*(self._follow(call) for call in self.calls))

    async def _follow(self, call: Callable[..., Awaitable[Any]]) -> None:
        cursor = _Cursor()
        while True:
            try:
                if cursor.version is None:
                    cursor.version = self.version = await self._list(call)
                    self.synced.set()
                else:
                    self.resumes += 1
                await self._watch(call, cursor)
                self.backoff.reset()
            except Gone:
                log.info("event=agent-relist kind=%s reason=%r", self.kind, "410 Gone: resource version expired")
                cursor.version = None
            except ApiException as exc:
                if exc.status == 404 and self.kind == "Gateway":
                    # No Gateway API in this cluster: nothing to watch; look again later.
                    self.synced.set()
                    log.info("event=agent-kind-absent kind=Gateway (the Gateway API CRDs are not installed)")
                    await asyncio.sleep(60)
                    continue
                delay = self.backoff.next()
                log.warning(
                    "event=agent-api-error kind=%s status=%s reason=%r retry_in=%.1fs",
                    self.kind,
                    exc.status,
                    exc.reason,
                    delay,
                )
                await asyncio.sleep(delay)
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
                delay = self.backoff.next()
                log.warning(
                    "event=agent-api-unreachable kind=%s error=%r resume_from=%s retry_in=%.1fs",
                    self.kind,
                    str(exc) or type(exc).__name__,
                    cursor.version or "-",
                    delay,
                )
                await asyncio.sleep(delay)

    async def _list(self, call: Callable[..., Awaitable[Any]]) -> str:
        """List every page, replace this call's objects with them, and return the list's version."""
        items: dict[str, dict[str, Any]] = {}
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": self.page, "_preload_content": False}
            if token:
                kwargs["_continue"] = token
            try:
                response = await call(**kwargs)
            except ApiException as exc:
                if exc.status == 410:  # the continue token expired mid-list: start over
                    raise Gone() from None
                raise
            try:
                body = json.loads(await response.read())
            finally:
                response.release()
            for obj in body.get("items") or ():
                items[key(obj)] = obj
            meta = body.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                break
        self.lists += 1
        namespace_of = {k.partition("/")[0] for k in items}
        for stale in [k for k in self.objects if k not in items and self._mine(k, call, namespace_of)]:
            del self.objects[stale]
        self.objects.update(items)
        self.changed()
        return str(meta.get("resourceVersion") or "")

    def _mine(self, k: str, call: Callable[..., Awaitable[Any]], namespaces: set[str]) -> bool:
        """Whether ``k`` was listed by ``call`` (with one call per namespace, another's objects stay)."""
        return len(self.calls) == 1 or k.partition("/")[0] in namespaces

    async def _watch(self, call: Callable[..., Awaitable[Any]], cursor: _Cursor) -> None:
        """Apply events from ``cursor.version`` on until the server ends the watch, moving the cursor
        with every event (bookmarks included), so a failure resumes from the last one applied."""
        watch = Watch(return_type="object")
        timeout = aiohttp.ClientTimeout(sock_connect=10, sock_read=self.watch_seconds + 15)
        stream = watch.stream(
            call,
            resource_version=cursor.version,
            allow_watch_bookmarks=True,
            timeout_seconds=self.watch_seconds,
            _request_timeout=timeout,
        )
        try:
            async for event in stream:
                kind, obj = event["type"], event["raw_object"]
                if kind in ("ADDED", "MODIFIED"):
                    self.objects[key(obj)] = obj
                    self.changed()
                elif kind == "DELETED":
                    self.objects.pop(key(obj), None)
                    self.changed()
                cursor.version = self.version = watch.resource_version or cursor.version
        except ApiException as exc:
            if exc.status == 410:
                raise Gone() from None
            raise
        finally:
            await watch.close()


@dataclass
class _Cursor:
    """Where one list/watch loop stands: the last resource version applied (None: list first)."""

    version: str | None = None
