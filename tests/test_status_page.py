"""The status page: served, self-contained, showing clusters and traffic; a headless Chromium screenshot where installed."""
from __future__ import annotations

import re
import shutil
import struct
import subprocess
import time

import pytest

from geodns.state.model import Observation
from tests.test_http_api import base_url, http, start_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("status"))
    now = time.time()
    observations = [Observation("chk-eu", "eu-west", "eu-west-1", "198.51.100.10", True, 6.0, now, now + 300),
                    Observation("chk-eu", "eu-west", "ap-southeast-1", "203.0.113.10", False, None, now, now + 300)]
    running.call(running.server.store.report(observations))
    running.call(running.server.keeper.sync())
    yield running
    running.stop()


def test_page_renders_clusters_health_and_traffic(server):
    status, page = http(server, "GET", "/")
    assert status == 200 and page.startswith("<!doctype html>")
    for name in ("us-east-1", "eu-west-1", "ap-southeast-1"):
        assert name in page
    assert "from eu-west" in page and "6.0 ms" in page                         # health per vantage
    assert re.search(r"ap-southeast-1</b>.*?badge bad\">down<", page)            # the down cluster, in red
    assert "Where traffic for app.gslb.example.com goes" in page and "<svg" in page
    assert re.search(r"<td>London</td><td>GB/EU</td><td>.*?eu-west-1 100%", page)
    assert re.search(r"<td>Singapore</td><td>SG/AS</td><td>.*?eu-west-1 100%", page)   # its own cluster is down


def test_page_is_self_contained(server):
    page = http(server, "GET", "/")[1]
    assert "<script" not in page and "<link" not in page and "src=" not in page and "@import" not in page
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", page))
    assert urls <= {"http://www.w3.org/2000/svg"}                                 # an XML namespace, not a fetch


def test_page_follows_a_drain(server):
    assert http(server, "POST", "/api/v1/clusters/eu-west-1/drain")[0] == 200
    try:
        page = http(server, "GET", "/")[1]
        assert re.search(r"eu-west-1</b>.*?badge warn\">drained<", page)
        assert not re.search(r"<td>London</td><td>GB/EU</td><td>[^\n]*?eu-west-1 100%", page)
    finally:
        http(server, "POST", "/api/v1/clusters/eu-west-1/undrain")


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_headless_chromium_screenshot(server, tmp_path):
    shot = tmp_path / "status.png"
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
                           "--window-size=1280,900", base_url(server) + "/"],
                          capture_output=True, text=True, timeout=60)
    assert shot.exists(), done.stderr[-2000:]
    assert png_size(shot) == (1280, 900)
    assert shot.stat().st_size > 30_000          # a blank or error page compresses to a few KB
