"""`geodns check --http-listen` as an operator runs it: a real checker process, a real Redis, real
`geodns sim-ingress` ingresses, a real server; /healthz, /readyz and /metrics over real HTTP, and the
failure reason travelling from the probe through the store to the API and `geodns status`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from geodns.process.server import Settings
from geodns.state.redis import RedisStore
from tests.conftest import REPO
from tests.dnsserver import RunningServer, write
from tests.processes import Child, SimIngress, sim_ingresses
from tests.redis_server import RedisServer, free_port
from tests.scrape import Samples, scrape
from tests.test_http_api import http

EU, US = "198.51.100.10", "192.0.2.10"
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def config(tmp_path: Path, store: str, sims: dict[str, SimIngress]) -> Path:
    return write(
        tmp_path / "geodns.yaml",
        f"""
server: {{dns_listen: ["127.0.0.1:0"], http_listen: "127.0.0.1:0"}}
store: "{store}"
checker: {{embedded: off}}
regions:
  us-east: {{lat: 39.0, lon: -77.5, continent: NA}}
  eu-west: {{lat: 53.3, lon: -6.3, continent: EU}}
clusters:
  eu-west-1:
    region: eu-west
    endpoints: [{{address: "{EU}", probe: "{sims["eu"].probe}"}}]
    check: {{type: http, path: /healthz, interval: 0.3s, timeout: 0.25s, rise: 1, fall: 2}}
  us-east-1:
    region: us-east
    endpoints: [{{address: "{US}", probe: "{sims["us"].probe}"}}]
    check: {{type: http, path: /healthz, interval: 0.3s, timeout: 0.25s, rise: 1, fall: 2}}
""",
    )


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with _DIRECT.open(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def poll(what, condition, child: Child, timeout: float = 15.0):
    """``what()`` until ``condition`` holds for it; the child's log on failure (it may have exited)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = what()
            if condition(last):
                return last
        except OSError as exc:  # not listening yet
            last = exc
        if child.proc.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting; last: {last!r}\nchecker log:\n{child.output()}")


def metrics(port: int) -> Samples:
    return scrape(f"http://127.0.0.1:{port}/metrics")


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def checker(tmp_path: Path, cfg: Path, store: str, port: int) -> Child:
    return Child(
        [
            "check",
            "--config",
            str(cfg),
            "--store",
            store,
            "--checker-id",
            "chk-http",
            "--region",
            "us-east",
            "--http-listen",
            f"127.0.0.1:{port}",
        ],
        tmp_path / "checker.log",
    )


@pytest.fixture
def sims(tmp_path):
    with sim_ingresses(("eu", "us"), tmp_path) as started:
        yield started


def test_checker_http_port_metrics_and_the_reason_down_to_the_api(tmp_path, sims):
    redis = RedisServer(tmp_path).start()
    cfg = config(tmp_path, redis.url, sims)
    server = RunningServer(Settings(config_path=cfg))  # seeds the store's table
    port = free_port()
    child = checker(tmp_path, cfg, redis.url, port)
    store = RedisStore(redis.url)
    try:
        assert poll(lambda: get(port, "/healthz"), lambda r: r[0] == 200, child) == (200, "ok\n")
        assert poll(lambda: get(port, "/readyz"), lambda r: r[0] == 200, child) == (200, "ok\n")

        eu = dict(cluster="eu-west-1", endpoint=EU)
        samples = poll(
            lambda: metrics(port),
            lambda s: (value(s, "geodns_checker_probes_total", **eu, outcome="ok") or 0) >= 1,
            child,
        )
        assert value(samples, "geodns_checker_probes_total", **eu, outcome="http_status") == 0
        assert value(samples, "geodns_checker_endpoint_state", **eu, state="up") == 1
        assert value(samples, "geodns_checker_endpoint_rtt_seconds", **eu) > 0
        assert value(samples, "geodns_checker_endpoint_rtt_seconds", cluster="us-east-1", endpoint=US) > 0
        assert value(samples, "geodns_checker_suspect") == 0
        assert value(samples, "geodns_checker_ready") == 1
        assert value(samples, "geodns_checker_reports_total", result="ok") >= 1
        assert value(samples, "geodns_checker_info", checker="chk-http", vantage="us-east") == 1
        counted = value(samples, "geodns_checker_probe_duration_seconds_count", cluster="eu-west-1")
        assert counted >= 1

        began = time.time()
        sims["eu"].set_mode("503")
        samples = poll(
            lambda: metrics(port), lambda s: value(s, "geodns_checker_endpoint_state", **eu, state="down") == 1, child
        )
        assert value(samples, "geodns_checker_probes_total", **eu, outcome="http_status") >= 2  # fall: 2
        assert value(samples, "geodns_checker_probe_duration_seconds_count", cluster="eu-west-1") > counted
        assert value(samples, "geodns_checker_endpoint_down_since_timestamp_seconds", **eu) >= began

        def ours():
            return {o.checker: o for o in server.call(store.load()).observations[("eu-west-1", EU)]}["chk-http"]

        observation = poll(ours, lambda o: o.up is False, child)
        assert observation.reason == "HTTP 503"
        assert began <= observation.down_since <= time.time()

        def api():
            status, body = http(server, "GET", "/api/v1/clusters/eu-west-1")
            assert status == 200
            return body["endpoints"][0]["observations"]

        seen = poll(api, lambda obs: any(o["checker"] == "chk-http" and o["up"] is False for o in obs), child)
        mine = next(o for o in seen if o["checker"] == "chk-http")
        assert (mine["reason"], mine["down_since"]) == ("HTTP 503", pytest.approx(observation.down_since, abs=1e-3))

        status, page = http(server, "GET", "/")  # the status page's endpoint chip says why
        assert status == 200
        chip = page[page.index(f"{EU} down") :]
        chip = chip[: chip.index("</span>")]
        assert "(down, HTTP 503 since " in chip

        host, http_port = server.server.http.addresses[0][:2]
        env = {k: v for k, v in os.environ.items() if not k.startswith("GEODNS_")}
        out = subprocess.run(
            [sys.executable, "-m", "geodns", "status", "--api", f"http://{host}:{http_port}"],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=REPO,
            env=env,
        )
        assert out.returncode == 0, out.stderr
        print(out.stdout)
        row = next(line for line in out.stdout.splitlines() if "chk-http" in line)
        assert row.split()[:6] == ["eu-west-1", EU, "chk-http", "us-east", "down", "HTTP"]
        assert "503" in row and time.strftime("%H:", time.gmtime(observation.down_since)) in row and "ago)" in row

        redis.stop()  # the store goes away: the checker says so
        status, reason = poll(lambda: get(port, "/readyz"), lambda r: r[0] == 503, child)
        assert reason.startswith("store unreachable"), reason
        poll(lambda: metrics(port), lambda s: value(s, "geodns_checker_reports_total", result="failed") >= 1, child)
    finally:
        child.stop()
        server.call(store.close())
        server.stop()
        redis.stop()


def test_a_checker_whose_store_is_down_is_not_ready(tmp_path, sims):
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    cfg = config(tmp_path, dead, sims)
    port = free_port()
    child = checker(tmp_path, cfg, dead, port)
    try:
        assert poll(lambda: get(port, "/healthz"), lambda r: r[0] == 200, child) == (200, "ok\n")
        status, reason = poll(lambda: get(port, "/readyz"), lambda r: "store unreachable" in r[1], child)
        assert status == 503 and reason.startswith("store unreachable")
        samples = metrics(port)
        assert value(samples, "geodns_checker_ready") == 0
    finally:
        assert child.stop() == 0, child.output()
