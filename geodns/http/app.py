"""The operator's HTTP side: one aiohttp application on ``server.http_listen``.

- ``/healthz`` (the process is alive), ``/readyz`` (listeners up, zones
  loaded, snapshot fresh enough; 503 with the reason otherwise), ``/metrics``
  (Prometheus, ``metrics.py``): open to anyone who can reach the port.
- ``/api/v1/...`` (``api.py``) and the status page ``/`` (``status_page.py``):
  behind the rules in ``auth.py``; ``/login`` (``login.py``) lets a browser in.

Handlers read the server's state and call the store; they never touch the
query path, which keeps answering from memory while they run.  Work that grows
with the number of records (where traffic goes, the status page's HTML) runs
in a thread of its own (``traffic.TrafficViews``), not on the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from ..health.routes import add_health_routes
from . import api, auth, login, metrics, status_page
from .traffic import TrafficViews
from .views import readiness

if TYPE_CHECKING:
    from ..process.server import Server

log = logging.getLogger("geodns.http")

_OPEN_PATHS = frozenset(("/healthz", "/readyz", "/metrics"))
MAX_BODY = api.MAX_BODY
# Where traffic goes, computed off the DNS loop once per state generation (traffic.py); the API and
# the status page share it.
TRAFFIC_VIEWS = web.AppKey("traffic_views", TrafficViews)


def make_app(server: Server) -> web.Application:
    @web.middleware
    async def guard(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        """Auth for everything but the open paths; JSON errors for the API, never a traceback."""
        if request.path not in _OPEN_PATHS and request.path not in login.OPEN_PATHS:
            auth.check(request, server)
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if (
                request.path.startswith(api.PREFIX)
                and exc.content_type != "application/json"
                and exc.status >= 400
                and exc.status in auth._ERRORS
            ):
                raise auth.error(exc.status, exc.reason) from exc
            raise
        except Exception:
            log.exception("event=http-error method=%s path=%s", request.method, request.path)
            raise auth.error(500, "internal error; see the server log") from None

    app = web.Application(middlewares=[guard], client_max_size=MAX_BODY)

    add_health_routes(app, lambda: readiness(server))
    traffic_views = app[TRAFFIC_VIEWS] = TrafficViews()

    async def close_views(app: web.Application) -> None:
        traffic_views.close()

    app.on_cleanup.append(close_views)
    metrics.add_routes(app, server)
    api.add_routes(app, server, traffic_views)
    status_page.add_routes(app, server, traffic_views)
    login.add_routes(app, server)
    return app


async def start_http(server: Server, host: str, port: int) -> web.AppRunner:
    """Bind the HTTP server; the returned runner's cleanup() stops it."""
    runner = web.AppRunner(make_app(server), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    return runner
