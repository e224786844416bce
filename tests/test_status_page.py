"""The status page: what it shows must be what the API says, and it must explain.

A real server (real sockets) with two GSLB records and two clusters in one
region (so their map labels compete for the same spot); checkers report into
its store: one voting, one that abstains (suspect), one whose reports expired
(silent), and an endpoint that flaps.  The page is read twice: parsed with
``html.parser`` here (always), and rendered by a real headless Chromium where
Debian's ``chromium`` is installed, whose screenshot must be a real picture and
whose DOM must carry the API's numbers.
"""

from __future__ import annotations

import itertools
import re
import shutil
import struct
import subprocess
import time
from pathlib import Path

import pytest

from geodns.gslb.history import RING
from geodns.http import worldmap
from geodns.http.status_parts import QueryRate
from geodns.process.server import Settings
from geodns.state.model import Observation
from tests.dnsserver import RunningServer, write
from tests.htmldom import Element, parse, shares
from tests.test_gslb_dns import LONDON, ask, config_text
from tests.test_http_api import base_url, http

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
AP = ("ap-southeast-1", "203.0.113.10")
LATENCY_RECORD = (
    "  lat.gslb.example.com: {clusters: [us-east-1, eu-west-1, eu-west-2, ap-southeast-1], "
    "policy: [healthy, latency, weighted]}\n"
)


def start_page_server(tmp_path: Path) -> RunningServer:
    """The GSLB test config, plus eu-west-2 (a second cluster in eu-west, weight 50) and a latency record."""
    text = config_text(tmp_path, extra=LATENCY_RECORD).replace("http_listen: null", 'http_listen: "127.0.0.1:0"')
    ap = '  ap-southeast-1: {region: ap-southeast, endpoints: ["203.0.113.10"]}\n'
    assert ap in text
    text = text.replace(
        ap, ap + '  eu-west-2: {region: eu-west, endpoints: ["198.51.100.20", "2001:db8:1::20"], weight: 50}\n'
    )
    return RunningServer(Settings(config_path=write(tmp_path / "geodns.yaml", text)))


def report(running: RunningServer, *observations: Observation) -> None:
    """Into the store, then into the server's snapshot (the keeper's sync is what a report becomes)."""
    running.call(running.server.store.report(list(observations)))
    running.call(running.server.keeper.sync())


def ap_seen(up: bool) -> Observation:
    now = time.time()
    return Observation("chk-eu", "eu-west", *AP, up, 170.0 if up else None, now, now + 300)


FLAPS = [True, False, True, False]  # after "unknown" at start: ap-southeast-1 ends down


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = start_page_server(tmp_path_factory.mktemp("status"))
    now = time.time()
    # chk-gone last reported 400 s ago and its report expires now: the store drops it, the page still names it.
    report(running, Observation("chk-gone", "us-east", "us-east-1", "192.0.2.10", True, 3.0, now - 400, now + 0.3))
    report(
        running,
        Observation("chk-eu", "eu-west", "eu-west-1", "198.51.100.10", True, 6.0, now, now + 300),
        Observation("chk-eu", "eu-west", "us-east-1", "192.0.2.10", True, 80.0, now, now + 300),
        Observation("chk-ap", "ap-southeast", *AP, None, None, now, now + 300),
    )  # abstains: suspect
    for _ in range(400):  # until the store has dropped the expired report
        if not any(
            o.checker == "chk-gone" for obs in running.server.keeper.snapshot.observations.values() for o in obs
        ):
            break
        time.sleep(0.05)
        running.call(running.server.keeper.sync())
    else:
        raise AssertionError("chk-gone's expired report stayed in the table")
    for up in FLAPS:
        report(running, ap_seen(up))
    yield running
    running.stop()


def page(running: RunningServer) -> Element:
    status, html = http(running, "GET", "/")
    assert status == 200 and html.startswith("<!doctype html>")
    return parse(html)


def place_row(root: Element, place: str, record: str = "app.gslb.example.com") -> Element:
    return root.find("tr", where=lambda e: e.attrs.get("data-record") == record and e.attrs.get("data-place") == place)


# -- what the page says must be what the API says --------------------------------------------------------
def assert_matches_api(root: Element, traffic: dict, clusters: dict) -> None:
    """Per record and place: the A and AAAA clusters with their shares and the why steps; per cluster its state;
    per checker its vantage."""
    rows = {
        (tr.attrs["data-record"], tr.attrs["data-place"]): tr for tr in root.find_all("tr") if "data-place" in tr.attrs
    }
    assert len(rows) == sum(len(r["places"]) for r in traffic["records"]) > 0
    for record in traffic["records"]:
        for place in record["places"]:
            tr = rows[record["record"], place["place"]]
            a, aaaa = tr.find("td", "a"), tr.find("td", "aaaa")
            assert shares(a) == {c: round(100 * s) for c, s in place["shares"].items()}, place["place"]
            assert shares(aaaa) == {c: round(100 * s) for c, s in place["aaaa"]["shares"].items()}, place["place"]
            assert next(iter(shares(a)), None) == place["primary"]
            steps = tr.find("ol", "why").find_all("li")
            assert [li.find("b").text for li in steps] == [s["filter"] for s in place["why"]]
            for li, step in zip(steps, place["why"]):
                assert step["why"] in li.text and [s.text for s in li.find_all("s")] == step["dropped"]
    for cluster in clusters["clusters"]:
        tr = root.find("tr", where=lambda e, name=cluster["name"]: e.attrs.get("data-cluster") == name)
        assert tr.find("td", "state").text == cluster["state"]
    checkers = {
        o["checker"]: o["vantage"] for c in clusters["clusters"] for e in c["endpoints"] for o in e["observations"]
    }
    shown = {tr.attrs["data-checker"]: tr.cells()[1].text for tr in root.find_all("tr") if "data-checker" in tr.attrs}
    assert checkers and shown.items() >= checkers.items()  # and checkers whose reports expired, as silent


def test_page_shows_what_the_api_says(server):
    root = page(server)
    assert_matches_api(root, http(server, "GET", "/api/v1/traffic")[1], http(server, "GET", "/api/v1/clusters")[1])


def test_each_place_says_why_it_goes_where_it_goes(server):
    root = page(server)

    def why(record: str, place: str) -> dict[str, str]:
        return {li.find("b").text: li.text for li in place_row(root, place, record).find("ol", "why").find_all("li")}

    london = why("app.gslb.example.com", "London")
    assert london["geo"] == "geo → eu-west-1 us-east-1 country GB matches region eu-west"
    assert london["healthy"] == "healthy → us-east-1, eu-west-1 ap-southeast-1 dropped ap-southeast-1 down"
    assert "nearest region us-east at" in why("app.gslb.example.com", "São Paulo")["geo"]
    lat = why("lat.gslb.example.com", "eu-west (region)")["latency"]
    assert "vantage eu-west is the nearest checker" in lat and "eu-west-1 6.0 ms measured from eu-west" in lat
    assert "eu-west-2 5.0 ms estimated from 0 km" in lat  # nobody measured eu-west-2
    assert "weighted" in why("lat.gslb.example.com", "eu-west (region)")  # eu-west-1 and -2: by weight
    assert place_row(root, "London").find("td", "aaaa").text == "eu-west-1 100%"  # AAAA answers too


def test_aaaa_answers_and_their_own_why_when_ipv6_is_down(tmp_path):
    running = start_page_server(tmp_path)
    try:
        now = time.time()
        report(running, Observation("chk-eu", "eu-west", "eu-west-1", "2001:db8:1::10", False, None, now, now + 300))
        london = next(
            p for p in http(running, "GET", "/api/v1/traffic")[1]["records"][0]["places"] if p["place"] == "London"
        )
        assert london["shares"] == {"eu-west-1": 1.0} and london["aaaa"]["shares"] == {"us-east-1": 1.0}
        row = place_row(page(running), "London")
        assert shares(row.find("td", "a")) == {"eu-west-1": 100}
        assert shares(row.find("td", "aaaa")) == {"us-east-1": 100}
        lists = row.find_all("ol", "why")
        assert len(lists) == 2 and "AAAA differs" in row.text
        lost = next(li for li in lists[1].find_all("li") if li.find("b").text == "ipv6 down")
        assert "eu-west-1: no IPv6 endpoint up, the chain runs again without it" in lost.text
    finally:
        running.stop()


def test_checkers_show_liveness_and_suspect_state(server):
    rows = {tr.attrs["data-checker"]: tr for tr in page(server).find_all("tr") if "data-checker" in tr.attrs}
    liveness = {name: tr.find("td", "liveness").text for name, tr in rows.items()}
    assert liveness == {"chk-eu": "voting", "chk-ap": "suspect", "chk-gone": "silent"}
    minutes, seconds = re.fullmatch(r"(\d+)m (\d+)s ago", rows["chk-gone"].find("td", "age").text).groups()
    assert 60 * int(minutes) + int(seconds) >= 400  # last reported 400 s ago
    assert rows["chk-ap"].cells()[1].text == "ap-southeast"


def test_each_endpoint_shows_its_state_changes(server):
    tr = page(server).find("tr", where=lambda e: e.attrs.get("data-endpoint") == "/".join(AP))
    segments = [title.children[0] for title in tr.find("svg", "timeline").find_all("title")]
    states = ["unknown"] + ["up" if up else "down" for up in FLAPS]
    assert [s.split()[0] for s in segments] == states  # one segment per state, oldest first
    assert segments[0].startswith("unknown from at least ")  # nothing was known before the server
    assert tr.find("td", "for").text.startswith("down for ")
    assert [c.text for c in tr.cells()][2] == "down"


def test_the_history_is_bounded(tmp_path):
    running = start_page_server(tmp_path)
    try:
        for up in itertools.islice(itertools.cycle((True, False)), RING + 5):
            report(running, ap_seen(up))
        assert len(running.server.history.transitions(*AP)) == RING
        tr = page(running).find("tr", where=lambda e: e.attrs.get("data-endpoint") == "/".join(AP))
        assert len(tr.find("svg", "timeline").find_all("title")) == RING
    finally:
        running.stop()


def test_query_rate_comes_from_the_query_counter(tmp_path):
    running = start_page_server(tmp_path)
    try:
        first = page(running).find("span", "rate").text
        assert first == "(rate shown from the next refresh)"
        for _ in range(20):
            ask(running, LONDON, 32)
        rate = page(running).find("span", "rate").text
        per_second = float(re.fullmatch(r"\(([\d,.]+)/s over the last \d+s\)", rate).group(1).replace(",", ""))
        assert per_second > 0
    finally:
        running.stop()


def test_query_rate_is_over_about_the_last_minute():
    rate = QueryRate(window=60)
    assert rate.sample(0, 0) is None  # first load: nothing to compare with
    assert rate.sample(10, 100) == (10.0, 10)  # since the previous load
    assert rate.sample(70, 700) == (10.0, 60)  # the oldest load within the minute
    assert rate.sample(100, 1300) == (20.0, 30)  # (70, 700): the load at 10 left the window
    assert rate.sample(110, 5) is None  # the counter started again (a restart)


# -- the map -----------------------------------------------------------------------------------------------
def label_boxes(svg: Element) -> list[tuple[str, tuple[float, float, float, float]]]:
    """Every map text's box: 0.6 em per character (bold sans-serif runs about 0.55), one em high."""
    out = []
    for text in svg.find_all("text"):
        size, x, y = float(text.attrs["font-size"]), float(text.attrs["x"]), float(text.attrs["y"])
        width = 0.6 * size * len(text.text)
        left = x - width if text.attrs.get("text-anchor") == "end" else x
        out.append((text.text, (left, y - size, width, size)))
    return out


def test_map_labels_do_not_overlap(server):
    maps = page(server).find_all("svg", "map")
    assert len(maps) == 2
    for svg in maps:
        boxes = label_boxes(svg)
        assert {name.split()[0] for name, _ in boxes} == {"us-east-1", "eu-west-1", "eu-west-2", "ap-southeast-1"}
        for (one, a), (other, b) in itertools.combinations(boxes, 2):
            assert worldmap.overlap(a, b) == 0, (one, other)
        markers = [c for c in svg.find_all("circle") if c.attrs.get("r") == "11"]
        for (name, box), marker in itertools.product(boxes, markers):
            x, y = float(marker.attrs["cx"]), float(marker.attrs["cy"])
            assert worldmap.overlap(box, (x - 11, y - 11, 22, 22)) == 0, name


def test_crowded_labels_are_spread_out():
    anchors = [(450.0, 100.0, 120.0, 20.0)] * 8 + [(470.0, 105.0, 90.0, 20.0)] * 4
    boxes = worldmap.place_labels(anchors, [(439.0, 89.0, 22.0, 22.0)])
    assert all(worldmap.overlap(a, b) == 0 for a, b in itertools.combinations(boxes, 2))
    assert all(x >= 0 and x + w <= worldmap.WIDTH and y >= 0 and y + h <= worldmap.HEIGHT for x, y, w, h in boxes)


def test_page_is_self_contained(server):
    html = http(server, "GET", "/")[1]
    assert "<script" not in html and "<link" not in html and "src=" not in html and "@import" not in html
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", html))
    assert urls <= {"http://www.w3.org/2000/svg"}  # an XML namespace, not a fetch
    legend = parse(html).find("section", "legend").text
    for words in ("up: gets traffic", "down, forced-down: no traffic", "suspect", "silent", "a share of them"):
        assert words in legend


def test_page_follows_a_drain(server):
    assert http(server, "POST", "/api/v1/clusters/eu-west-1/drain")[0] == 200
    try:
        root = page(server)
        assert (
            root.find("tr", where=lambda e: e.attrs.get("data-cluster") == "eu-west-1").find("td", "state").text
            == "drained"
        )
        london = place_row(root, "London")
        assert "eu-west-1" not in shares(london.find("td", "a"))
        assert "dropped eu-west-1 drained" in london.find("ol", "why").text
    finally:
        http(server, "POST", "/api/v1/clusters/eu-west-1/undrain")


# -- a real browser ------------------------------------------------------------------------------------------
def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_headless_chromium_renders_the_page_with_the_apis_data(server, tmp_path):
    url = base_url(server) + "/"
    shot = tmp_path / "status.png"
    done = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2400", url)
    assert shot.exists(), done.stderr[-2000:]
    assert png_size(shot) == (1280, 2400)
    assert shot.stat().st_size > 100_000  # a blank or error page compresses to a few KB
    dumped = chromium(tmp_path, "--dump-dom", "--window-size=1280,2400", url)
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    root = parse(dumped.stdout)
    assert root.find("title").children == ["geodns status"]
    assert_matches_api(root, http(server, "GET", "/api/v1/traffic")[1], http(server, "GET", "/api/v1/clusters")[1])
