"""The operator's HTTP side: liveness and readiness now; metrics and the admin API build on it.

One aiohttp application on ``server.http_listen``.  Handlers only read the
server's state; they never touch the query path.
"""
from __future__ import annotations

from aiohttp import web


def make_app(server) -> web.Application:
    app = web.Application()
    app["server"] = server

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(request: web.Request) -> web.Response:
        ready, reason = server.ready
        return web.Response(text=reason + "\n", status=200 if ready else 503)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def start_http(server, host: str, port: int) -> web.AppRunner:
    """Bind the HTTP server; the returned runner's cleanup() stops it."""
    runner = web.AppRunner(make_app(server), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    return runner
