"""Load-aware steering as an operator sees it (issue 17): `geodns load`, DNS answers, traffic, explain, status.

A real server (memory:// store) with the HTTP API, the CLI as child processes,
dnspython over real UDP.  eu-west-1 has watermarks; London's answers leave it
as its reported load rises and come back when the reading expires.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from geodns.config.load import load_config
from geodns.errors import ConfigError
from tests.dnsserver import write
from tests.test_admin_cli import EU, USE, geodns
from tests.test_gslb_dns import LONDON, ask, config_text
from tests.test_http_api import base_url, http
from tests.test_metrics import scrape

TOKEN = "t0ken"
LOADED = (
    'eu-west-1:      {region: eu-west, endpoints: ["198.51.100.10", "2001:db8:1::10"], '
    "load: {low: 0.5, high: 0.9, interval: 0.3s, step: 0.25, smoothing: 0.1s, hysteresis: 0.02, ttl: 5}}"
)


def with_watermarks(text: str) -> str:
    old = 'eu-west-1:      {region: eu-west, endpoints: ["198.51.100.10", "2001:db8:1::10"]}'
    assert old in text
    return text.replace(old, LOADED)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("shed")
    text = with_watermarks(config_text(tmp, policy="[healthy, shed, geo, weighted]"))
    text = text.replace("http_listen: null", f'http_listen: "127.0.0.1:0", admin_token: "{TOKEN}"')
    from geodns.process.server import Settings
    from tests.dnsserver import RunningServer

    running = RunningServer(Settings(config_path=write(tmp / "geodns.yaml", text)))
    yield running
    running.stop()


SEEN: list = []  # what the last poll saw, for its failure message


def poll(condition, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}; last seen {SEEN[-3:]}")
        time.sleep(0.05)


def london_traffic(server) -> dict[str, float]:
    status, body = http(server, "GET", "/api/v1/traffic")
    assert status == 200
    record = next(r for r in body["records"] if r["record"] == "app.gslb.example.com")
    return next(p for p in record["places"] if p["place"] == "eu-west (region)")["shares"]


def london_answers(server, n: int) -> Counter:
    return Counter(frozenset(r.to_text() for rr in ask(server, LONDON, 32).answer for r in rr) for _ in range(n))


def api(*args: str):
    return geodns(*args, "--api", API[0], "--token", TOKEN)


API: list[str] = []


def test_a_rising_load_moves_london_away_gradually_and_back_when_it_expires(server):
    API[:] = [base_url(server)]
    assert london_traffic(server) == {"eu-west-1": 1.0}
    # 0.7 is halfway between the watermarks: half of London's new answers go elsewhere,
    # reached in steps of 0.25 per interval, with short TTLs while it moves.
    done = api("load", "eu-west-1", "0.7", "--ttl", "1m")
    assert done.returncode == 0, done.stderr
    assert "load 0.7 for 1m: cluster eu-west-1" in done.stdout
    ttls = set()

    def settled():
        resp = ask(server, LONDON, 32)
        ttls.add(resp.answer[0].ttl)
        shares = london_traffic(server)
        SEEN.append((resp.answer[0].ttl, shares, http(server, "GET", "/api/v1/clusters/eu-west-1")[1]["load"]))
        return resp.answer[0].ttl == 30 and shares.get("us-east-1", 0) > 0

    poll(settled, "London split and the record's own TTL back once shedding settled")
    assert 5 in ttls  # the short TTL while shedding moved
    shares = london_traffic(server)
    assert set(shares) == {"eu-west-1", "us-east-1"} and abs(shares["eu-west-1"] - 0.5) < 0.02
    # The exact share is what DNS answers do (a binomial bound, 400 draws).
    counts = london_answers(server, 400)
    assert set(counts) == {frozenset({EU}), frozenset({USE})}
    assert abs(counts[frozenset({EU})] - 400 * shares["eu-west-1"]) < 4 * 10
    # explain and status show the same share.
    done = api("explain", "app.gslb.example.com", "--client", LONDON + "/32")
    assert done.returncode == 0, done.stderr
    assert (
        f"shares of new answers: eu-west-1 {shares['eu-west-1'] * 100:.1f}%, "
        f"us-east-1 {shares['us-east-1'] * 100:.1f}%" in done.stdout
    )
    assert "shed" in done.stdout
    done = api("status")
    row = next(line for line in done.stdout.splitlines() if line.startswith("eu-west-1"))
    assert "0.70" in row.split() and f"{shares['us-east-1'] * 100:.0f}%" in row.split()
    # So does the status page: the load and the share shed, in the cluster's row.
    status, page = http(server, "GET", "/")
    assert status == 200
    row = page.split("data-cluster='eu-west-1'", 1)[1].split("</tr>", 1)[0]
    assert "<td class='load' title='smoothed" in row and ">0.70</td>" in row
    assert f"<td class='shed'>{shares['us-east-1'] * 100:.0f}%" in row
    other = page.split("data-cluster='us-east-1'", 1)[1].split("</tr>", 1)[0]
    assert "<td class='load'><span class='muted'>unknown</span></td>" in other
    # So does /metrics; a cluster nobody reports a load for has no load sample (unknown, not 0).
    samples = scrape(server)
    assert samples[("geodns_cluster_load", (("cluster", "eu-west-1"),))] == 0.7
    assert samples[("geodns_cluster_shed_share", (("cluster", "eu-west-1"),))] == pytest.approx(
        shares["us-east-1"], abs=1e-4
    )
    assert ("geodns_cluster_load", (("cluster", "us-east-1"),)) not in samples
    assert ("geodns_cluster_shed_share", (("cluster", "us-east-1"),)) not in samples  # no watermarks
    # Over the high watermark: out for London (it still has us-east-1 to go to).
    assert api("load", "eu-west-1", "0.95", "--ttl", "2s").returncode == 0
    poll(lambda: london_traffic(server) == {"us-east-1": 1.0}, "eu-west-1 out")
    assert london_answers(server, 50) == Counter({frozenset({USE}): 50})
    # The reading expires: unknown load sheds nothing, so London comes home step by step.
    seen = set()

    def home():
        shares = london_traffic(server)
        seen.add(shares.get("eu-west-1", 0.0))
        return shares == {"eu-west-1": 1.0}

    poll(home, "London back at eu-west-1")
    assert seen & {0.25, 0.5, 0.75}  # it came back gradually
    _, cluster = http(server, "GET", "/api/v1/clusters/eu-west-1")
    assert cluster["load"]["reported"] is None and cluster["load"]["shed_share"] == 0.0
    samples = scrape(server)
    assert ("geodns_cluster_load", (("cluster", "eu-west-1"),)) not in samples
    assert samples[("geodns_cluster_shed_share", (("cluster", "eu-west-1"),))] == 0.0


def test_bad_load_input_is_refused_with_the_reason(server):
    API[:] = [base_url(server)]
    for args, message in (
        (("eu-west-1", "-0.5"), "load must be between 0 and 1000"),
        (("eu-west-1", "nan"), "load must be"),
        (("eu-west-1", "0.5", "--ttl", "soon"), "ttl 'soon' is not a duration"),
        (("nowhere-1", "0.5"), "unknown cluster 'nowhere-1'"),
        (("eu-west-1", "0.5", "--endpoint", "192.0.2.99"), "has no endpoint 192.0.2.99"),
    ):
        done = api("load", *args)
        assert done.returncode != 0 and message in done.stderr, (args, done.stdout, done.stderr)
    status, body = http(server, "PUT", "/api/v1/clusters/eu-west-1/load", {"load": 0.5, "tll": 5}, token=TOKEN)
    assert status == 400 and "unknown keys: tll" in body["error"]
    status, body = http(server, "PUT", "/api/v1/clusters/eu-west-1/load", {"load": 0.5})
    assert status == 401


def test_watermarks_are_validated_with_their_key_paths(tmp_path):
    text = config_text(tmp_path).replace(
        'eu-west-1:      {region: eu-west, endpoints: ["198.51.100.10", "2001:db8:1::10"]}',
        'eu-west-1:      {region: eu-west, endpoints: ["198.51.100.10"], load: {low: 0.9, high: 0.8, ttl: 0.2s}, '
        'check: {type: http, url: "http://127.0.0.1:1/", load_json: "a..b", load_metric: "9x"}}',
    )
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path / "geodns.yaml", text))
    problems = str(info.value)
    for message in (
        "clusters.eu-west-1.load.high: must be above low (0.9), not 0.8",
        "clusters.eu-west-1.load.ttl: must be at least 1s",
        "clusters.eu-west-1.check.load_json: 'a..b' is not a dotted JSON path",
        "clusters.eu-west-1.check.load_metric: '9x' is not a Prometheus metric name",
        "clusters.eu-west-1.check.load_metric: give load_json or load_metric, not both",
    ):
        assert message in problems, problems
    good = config_text(tmp_path).replace(
        'eu-west-1:      {region: eu-west, endpoints: ["198.51.100.10", "2001:db8:1::10"]}', LOADED
    )
    spec = load_config(write(tmp_path / "geodns.yaml", good)).clusters["eu-west-1"].load
    assert (spec.low, spec.high, spec.interval, spec.step, spec.ttl) == (0.5, 0.9, 0.3, 0.25, 5)
