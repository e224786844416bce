"""``geodns check --http-listen``: the checker's own small HTTP port.

- ``/healthz``: the process is alive (200 "ok").
- ``/readyz``: 200 once every endpoint was probed and its observation reached
  the store; 503 with the reason while the store is unreachable (the table
  cannot be loaded or reports fail), before the first full round, or while
  the checker is suspect (it believes it is partitioned and withholds votes).
  Same shape as the server's (``geodns/http/probes.py``): text, or JSON with
  ``Accept: application/json``.
- ``/metrics``: Prometheus, this checker's families (``health/metrics.py``)
  plus the process's own, in a registry of its own per scrape.  The checker's
  state is copied on the event loop and the families are built and formatted
  in a thread, so a scrape of thousands of endpoints does not hold up probes
  (whose RTT a stalled loop would inflate).

No auth: like the server's open paths, it says nothing an operator's
Prometheus should not read.  It imports the shared open routes only, not the
server's application.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from .metrics import CheckerView, ViewCollector, view_of
from .routes import add_health_routes

if TYPE_CHECKING:
    from ..state.keeper import SnapshotKeeper
    from .checker import Checker


def readiness(checker: Checker, keeper: SnapshotKeeper) -> tuple[bool, str]:
    """The keeper must reach the store (it follows the table from there), then the checker decides."""
    if not keeper.connected:
        stale = keeper.staleness()
        since = "never loaded" if stale == float("inf") else f"last loaded {stale:.0f}s ago"
        return False, f"store unreachable: cannot load the table ({since})"
    return checker.readiness()


def render(view: CheckerView) -> bytes:
    """The /metrics body for ``view``, with the process's own metrics; runs in a thread."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ViewCollector(view))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return generate_latest(registry)


def make_app(checker: Checker, keeper: SnapshotKeeper) -> web.Application:
    async def metrics(request: web.Request) -> web.Response:
        body = await asyncio.to_thread(render, view_of(checker))
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    add_health_routes(app, lambda: readiness(checker, keeper))
    app.router.add_get("/metrics", metrics)
    return app


async def start_http(checker: Checker, keeper: SnapshotKeeper, host: str, port: int) -> web.AppRunner:
    """Bind the checker's HTTP port; the returned runner's ``cleanup()`` stops it."""
    runner = web.AppRunner(make_app(checker, keeper), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, reuse_address=True).start()
    return runner
