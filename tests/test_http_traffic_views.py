"""Where traffic goes is computed off the DNS event loop, once per state generation, and shared.

Before, ``/api/v1/traffic`` and the status page ran every record x place on the
loop that answers DNS: with ``workers: 1`` a query waited for the whole
computation.  Here the computation is held at its first policy run (the real
``decision`` runs once the test lets it go) while a DNS query is asked: it must
be answered before the computation finishes.
"""

from __future__ import annotations

import asyncio
import gc
import json
import re
import threading

import pytest

from geodns.gslb.model import Context
from geodns.http import status_page
from geodns.http import traffic as traffic_module
from geodns.http import views as api_views
from tests.test_gslb_dns import LONDON, addresses, ask
from tests.test_http_api import EU, USE, http, start_server

RECORDS = 300
MANY = "".join(
    f"  r{i}.gslb.example.com: {{clusters: [us-east-1, eu-west-1, ap-southeast-1], policy: [healthy, geo, weighted]}}\n"
    for i in range(RECORDS)
)


@pytest.fixture
def running(tmp_path):
    server = start_server(tmp_path, extra=MANY)
    yield server
    server.stop()


class Held:
    """``traffic.decision`` that counts its calls and, while ``hold`` is set, waits at the first one."""

    def __init__(self, monkeypatch, hold: bool):
        self.real = traffic_module.decision
        self.calls = 0
        self.started = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()
        monkeypatch.setattr(traffic_module, "decision", self)

    def __call__(self, *args, **kw):
        self.calls += 1
        self.started.set()
        self.release.wait(60)
        return self.real(*args, **kw)


def fetch_in_thread(running, path: str) -> tuple[threading.Thread, dict]:
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(reply=http(running, "GET", path)), daemon=True)
    thread.start()
    return thread, result


def views(running):
    from geodns.http.app import TRAFFIC_VIEWS

    return running.server.http.app[TRAFFIC_VIEWS]


@pytest.mark.parametrize("path", ["/api/v1/traffic", "/"])
def test_dns_is_answered_while_traffic_is_computed(running, monkeypatch, path):
    held = Held(monkeypatch, hold=True)
    first, first_result = fetch_in_thread(running, path)
    try:
        assert held.started.wait(30)  # the computation is under way, held
        for _ in range(3):
            assert addresses(ask(running, LONDON, 32)) == {EU}
        assert first.is_alive() and not first_result  # ... and still not finished
    finally:
        held.release.set()
        first.join(60)
    status, body = first_result["reply"]
    assert status == 200
    if path == "/":
        assert "Where traffic for r299.gslb.example.com goes" in body
    else:
        assert len(body["records"]) == RECORDS + 1


def test_concurrent_requests_share_one_computation(running, monkeypatch):
    held = Held(monkeypatch, hold=True)
    shared = views(running)
    entered = []
    real_json_parts = shared.json_parts

    async def counting_json_parts(responder):
        entered.append(responder)
        return await real_json_parts(responder)

    monkeypatch.setattr(shared, "json_parts", counting_json_parts)
    threads = [fetch_in_thread(running, "/api/v1/traffic") for _ in range(3)]
    try:
        assert held.started.wait(30)
        running.call(_until(lambda: len(entered) == 3))  # all three requests wait on the held computation
    finally:
        held.release.set()
        for thread, _ in threads:
            thread.join(60)
    replies = [result["reply"] for _, result in threads]
    assert all(status == 200 for status, _ in replies) and replies[0] == replies[1] == replies[2]
    assert shared.computed == 1


def test_a_generation_is_computed_once_and_a_change_recomputes(running, monkeypatch):
    held = Held(monkeypatch, hold=False)
    status, first = http(running, "GET", "/api/v1/traffic")
    assert status == 200 and held.calls > 0
    one_computation = held.calls
    assert http(running, "GET", "/api/v1/traffic") == (200, first)
    assert http(running, "GET", "/")[0] == 200
    assert held.calls == one_computation  # served from the cache: no policy ran again
    assert views(running).computed == 1
    london = {p["place"]: p for p in first["records"][0]["places"]}["London"]
    assert london["shares"] == {"eu-west-1": 1.0}

    assert http(running, "POST", "/api/v1/clusters/eu-west-1/drain")[0] == 200
    try:
        status, drained = http(running, "GET", "/api/v1/traffic")
        assert status == 200 and held.calls == 2 * one_computation and views(running).computed == 2
        london = {p["place"]: p for p in drained["records"][0]["places"]}["London"]
        assert "eu-west-1" not in london["shares"]
        assert addresses(ask(running, LONDON, 32)) == {USE}
    finally:
        assert http(running, "POST", "/api/v1/clusters/eu-west-1/undrain")[0] == 200


async def _until(condition, attempts: int = 3000) -> None:
    """Poll ``condition`` on the server's loop (each poll yields to it) until it holds."""
    for _ in range(attempts):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


def tracked_inside(root) -> int:
    """How many containers the cyclic garbage collector tracks among what ``root`` holds (classes aside)."""
    seen, todo, tracked = set(), [root], 0
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if gc.is_tracked(obj):
            tracked += 1
        todo.extend(o for o in gc.get_referents(obj) if not isinstance(o, type))
    return tracked


def test_the_kept_result_is_out_of_the_collectors_way(running):
    """Kept as objects, a generation's views (here 301 records x 16 places) are thousands of tracked
    dicts and lists that every full collection walks while it holds the interpreter, stalling DNS
    answers with ``workers: 1``; kept packed they are a handful of objects, whatever the record count."""
    status, body = http(running, "GET", "/api/v1/traffic")
    assert status == 200 and len(body["records"]) == RECORDS + 1
    kept = running.call(views(running).records(api_views.gslb(running.server)))
    assert views(running).computed == 1  # the kept result, not a new computation
    assert len(kept) == RECORDS + 1
    assert tracked_inside(kept) < 10
    assert list(kept) == body["records"]  # and the page still reads every record, decoded


def test_packed_traffic_is_the_json_the_api_always_gave(running):
    """Byte for byte what ``json.dumps({"records": ...}, indent=1)`` gives, and the page built from the
    packed records is the page built from the records themselves."""
    responder = api_views.gslb(running.server)
    records = list(traffic_module.traffic(responder.records, responder.live, responder.regions))
    packed = traffic_module.pack(records)
    assert packed.body == (json.dumps({"records": records}, indent=1) + "\n").encode()
    assert traffic_module.pack([]).body == (json.dumps({"records": []}, indent=1) + "\n").encode()
    status = running.run(api_views.status_view, running.server)
    clusters = running.run(lambda: api_views.clusters_view(running.server)["clusters"])

    def page(records) -> str:
        html = status_page.render(status, clusters, responder.regions, records, now=1_700_000_000.0)
        return re.sub(r"Generated [^;]*;", "", html)  # the clock's time

    assert "Where traffic for r299.gslb.example.com goes" in page(records)
    assert page(packed) == page(records)


def test_a_computation_holds_one_records_context_at_a_time(running, monkeypatch):
    """Every record's policy context, kept until the computation ends, made each full collection in it
    walk thousands more objects; a record's context now goes with its record."""
    real = traffic_module.decision
    alive: list[int] = []

    def contexts_alive() -> int:
        return sum(isinstance(o, Context) for o in gc.get_objects())

    def counting(context, *args, **kw):
        if context.record.text == "r250.gslb.example.com" and not alive:
            alive.append(contexts_alive())  # 251 records in: 251 contexts if they were all kept
        return real(context, *args, **kw)

    before = contexts_alive()
    monkeypatch.setattr(traffic_module, "decision", counting)
    assert http(running, "GET", "/api/v1/traffic")[0] == 200
    assert alive and alive[0] - before <= 3
