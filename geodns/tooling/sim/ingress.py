"""``geodns sim-ingress``: a stand-in cluster ingress whose health is switched at runtime.

The local stack, the drills and the tests need ingresses that fail on demand,
the way real ones do: refusing nothing but answering 503, answering slowly,
hanging, resetting connections, or flapping.  The behaviour is one ``mode``
changed over HTTP on the same port, so the control path never depends on the
data path working:

    curl -X PUT 'http://127.0.0.1:18081/_sim?mode=503'
    curl -X PUT 'http://127.0.0.1:18081/_sim?mode=slow&ms=250'
    curl -X PUT 'http://127.0.0.1:18081/_sim?mode=flap'            # every other request fails
    curl -X PUT 'http://127.0.0.1:18081/_sim?mode=flap&ms=300'     # fails 300 ms, healthy 600 ms, ...
    curl http://127.0.0.1:18081/_sim            # current mode and counters, JSON
    curl -X PUT 'http://127.0.0.1:18081/_sim?load=0.8'             # report a load (1 = at capacity)

With a load set, a healthy answer is JSON ``{"status": "healthy", "name": ..., "load": 0.8}``
and ``/metrics`` answers Prometheus text ``geodns_sim_load{name="..."} 0.8``: what a
check's ``load_json: load`` or ``load_metric: geodns_sim_load`` reads (the shed filter).

Flapping by time (``ms``) is what several probers see alike: every-other-request
flapping splits differently between two checkers (and two endpoints) sharing
one ingress.  Failing for ``ms`` out of every ``3 x ms`` means a prober whose
interval lies between ``ms`` and ``2 x ms`` never sees two failures in a row.

Every path other than ``/_sim`` is "the application": it answers as the mode says.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from dataclasses import asdict, dataclass

from aiohttp import web

log = logging.getLogger("geodns.sim")

MODES = ("up", "503", "slow", "hang", "reset", "flap")


@dataclass
class SimState:
    name: str
    mode: str = "up"
    delay_ms: int = 0
    requests: int = 0
    failures: int = 0
    load: float | None = None  # reported in healthy answers when set
    _flap: bool = False
    _since: float = 0.0  # monotonic time of the latest mode change (time-based flapping)


def make_app(state: SimState) -> web.Application:
    app = web.Application()
    hung: set[asyncio.Future] = set()

    async def control(request: web.Request) -> web.Response:
        if request.method == "PUT":
            mode = request.query.get("mode", state.mode)
            if mode == "down":
                mode = "reset"  # "down" as people say it: nothing usable comes back
            if mode not in MODES:
                return web.json_response({"error": f"mode must be one of {', '.join(MODES)} (or down)"}, status=400)
            try:
                delay = int(request.query.get("ms", state.delay_ms if mode == "slow" else 0))
            except ValueError:
                return web.json_response({"error": "ms must be an integer"}, status=400)
            if delay < 0:
                return web.json_response({"error": "ms must be >= 0"}, status=400)
            if "load" in request.query:
                try:
                    load = float(request.query["load"])
                except ValueError:
                    return web.json_response({"error": "load must be a number"}, status=400)
                state.load = load if load >= 0 else None  # a negative load clears it
            state.mode, state.delay_ms = mode, delay
            state._since = time.monotonic()
            for future in list(hung):  # whatever hung is released by any change
                future.cancel()
            log.info("event=sim-mode name=%s mode=%s ms=%d", state.name, mode, delay)
        return web.json_response({k: v for k, v in asdict(state).items() if not k.startswith("_")})

    async def serve(request: web.Request) -> web.StreamResponse:
        state.requests += 1
        mode = state.mode
        if mode == "flap" and state.delay_ms:
            phase = (time.monotonic() - state._since) * 1000 % (3 * state.delay_ms)
            mode = "503" if phase < state.delay_ms else "up"
        elif mode == "flap":
            state._flap = not state._flap
            mode = "503" if state._flap else "up"
        if mode == "hang":
            future = asyncio.get_running_loop().create_future()
            hung.add(future)
            try:
                await future
            except asyncio.CancelledError:
                pass
            finally:
                hung.discard(future)
            mode = state.mode
        if mode == "reset":
            state.failures += 1
            if request.transport is not None:
                request.transport.abort()
            raise web.HTTPServiceUnavailable()  # never seen: the connection is gone
        if mode == "slow" and state.delay_ms:
            await asyncio.sleep(state.delay_ms / 1000)
        if mode == "503":
            state.failures += 1
            return web.Response(status=503, text=f"unavailable: {state.name}\n")
        if state.load is not None and request.path == "/metrics":
            return web.Response(
                text=f'# TYPE geodns_sim_load gauge\ngeodns_sim_load{{name="{state.name}"}} {state.load!r}\n'
            )
        if state.load is not None:
            return web.json_response({"status": "healthy", "name": state.name, "load": state.load})
        return web.Response(text=f"healthy: {state.name}\n")

    app.router.add_route("*", "/_sim", control)
    app.router.add_route("*", "/{tail:.*}", serve)
    return app


async def run(host: str, port: int, state: SimState) -> None:
    runner = web.AppRunner(make_app(state), access_log=None, handler_cancellation=True, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    for address in runner.addresses:
        log.info("event=listening transport=http address=%s:%d name=%s", address[0], address[1], state.name)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
