"""Redis Sentinel: one primary, one replica, three sentinels, all on loopback, stopped by PID.

The redis-failover drill kills the primary; geodns must keep answering (no
failed query) and follow the new primary (a drain written after the failover
reaches both DNS servers).  URL parsing is checked without any Redis.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from geodns.config.load import load_config
from geodns.state.redis import RedisStore, parse_sentinel_url
from geodns.state.store import open_store
from geodns.tooling.drill.scenarios import Options, run
from geodns.tooling.drill.target import Deployment
from geodns.tooling.stack import procs
from geodns.tooling.stack.runner import Stack
from geodns.tooling.stack.topology import STATE_FILE, CheckTiming, StackState, layout
from tests.dnsserver import write


def test_sentinel_urls_parse():
    url = parse_sentinel_url(
        "redis+sentinel://:s3cret@127.0.0.1:26380,[::1]:26381,sentinel-c/geodns/2?prefix=t:&sentinel_password=sp"
    )
    assert url.hosts == (("127.0.0.1", 26380), ("::1", 26381), ("sentinel-c", 26379))
    assert (url.service, url.db, url.password, url.sentinel_password, url.tls) == ("geodns", 2, "s3cret", "sp", False)
    assert "s3cret" not in repr(url) and "sp" not in repr(url).replace("sentinel_password", "")
    tls = parse_sentinel_url("rediss+sentinel://h:5/svc?ssl_ca_certs=/etc/ca.pem")
    assert tls.tls and tls.ssl_ca_certs == "/etc/ca.pem"
    assert parse_sentinel_url("sentinel://h:1/svc").service == "svc"
    for bad, why in [
        ("sentinel://h:1", "service"),
        ("sentinel:///svc", "no sentinel"),
        ("sentinel://h:x/svc", "bad sentinel address"),
        ("sentinel://h:1/svc/x", "database"),
    ]:
        with pytest.raises(ValueError, match=why):
            parse_sentinel_url(bad)


def test_sentinel_url_accepted_by_config_and_store(tmp_path):
    store = open_store("redis+sentinel://127.0.0.1:1,127.0.0.1:2/geodns/0?prefix=x:")
    assert isinstance(store, RedisStore) and store.prefix == "x:"
    assert "sentinel" in repr(store)
    cfg = write(tmp_path / "g.yaml", 'store: "redis+sentinel://127.0.0.1:26380/geodns"\n')
    assert load_config(cfg).store.startswith("redis+sentinel://")
    bad = write(tmp_path / "b.yaml", 'store: "sentinel://127.0.0.1:26380"\n')
    with pytest.raises(Exception, match="SERVICE"):
        load_config(bad)


def _sentinel_reason() -> str | None:
    binary = shutil.which("redis-server")
    if binary is None:
        return "redis-server is not installed"
    out = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    if "v=2." in out:
        return f"this redis-server has no usable Sentinel mode: {out.strip()}"
    return None


@pytest.mark.skipif(_sentinel_reason() is not None, reason=_sentinel_reason() or "")
def test_primary_killed_geodns_answers_and_follows_the_new_primary(tmp_path):
    stack = Stack(tmp_path / "stack", layout(0), CheckTiming(0.5, 0.25), mode="sentinel")
    stack.start()
    try:
        report = run("redis-failover", Deployment.from_stack(tmp_path / "stack"), Options(baseline=1.0))
        print("\n" + report.to_text())
        data = json.loads(report.to_json())
        assert data["failed_queries"] == 0
        assert report.passed, data["checks"]
        names = [c["name"] for c in data["checks"] if c["ok"]]
        assert any("promoted" in n for n in names)
        assert any("reached every DNS server (they follow" in n for n in names)
    finally:
        stack.stop()
    state = StackState.load(tmp_path / "stack" / STATE_FILE)
    assert len([p for p in state.processes.values() if p.role == "sentinel"]) == 3
    assert not [p for p in state.processes.values() if procs.alive(p)]
