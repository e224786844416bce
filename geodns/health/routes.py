"""The open routes every geodns process serves the same way: ``/healthz``, ``/readyz``, ``/metrics``.

Shared by the server's application (``geodns/http/app.py``) and the standalone
checker's (``health/http.py``), so an orchestrator and Prometheus see one shape:
``/healthz`` answers "ok" while the process runs; ``/readyz`` answers 200 and
"ok", or 503 and the reason, as text or, with ``Accept: application/json``, as
``{"ready": bool, "reason": str}``.  This module imports nothing else of
geodns, so the checker does not load the server's HTTP side; it sits here, below
``geodns/http``, so the arrows between the two parts run one way.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

Readiness = Callable[[], tuple[bool, str]]


def add_health_routes(app: web.Application, readiness: Readiness, liveness: Readiness | None = None) -> None:
    """``/healthz`` and ``/readyz``, the latter answering from ``readiness()`` (ready, reason); the
    former "ok" while the process runs or, with ``liveness``, from it (503: restart me)."""

    async def healthz(request: web.Request) -> web.Response:
        if liveness is not None:
            alive, reason = liveness()
            if not alive:
                return web.Response(text=reason + "\n", status=503)
        return web.Response(text="ok\n")

    async def readyz(request: web.Request) -> web.Response:
        ready, reason = readiness()
        status = 200 if ready else 503
        if "application/json" in request.headers.get("Accept", ""):
            return web.Response(
                text=json.dumps({"ready": ready, "reason": reason}) + "\n",
                status=status,
                content_type="application/json",
            )
        return web.Response(text=reason + "\n", status=status)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)


def add_metrics_route(app: web.Application, registry: CollectorRegistry) -> None:
    """``/metrics``: ``registry`` in Prometheus' text format, collected at each scrape."""

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/metrics", metrics)
