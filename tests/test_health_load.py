"""The checker reads a load from the health response it probes (issue 17): a JSON field or a
Prometheus-text metric of a real `geodns sim-ingress`, into the store as the checker's reading."""

from __future__ import annotations

import ipaddress
import urllib.request

import pytest

from geodns.config.model import CheckSpec, ClusterSpec, EndpointSpec
from geodns.health.loadsignal import from_json, from_prometheus
from geodns.state.memory import MemoryStore
from tests.processes import _DIRECT, SimIngress
from tests.test_health_checker import running, until, verdicts

A = "192.0.2.1"


def test_json_paths_and_prometheus_samples():
    assert from_json('{"load": 0.8}', "load") == 0.8
    assert from_json('{"status": {"cpu": [0.1, "0.45"]}}', "status.cpu.1") == 0.45
    for text, path in (
        ('{"load": true}', "load"),
        ('{"load": -1}', "load"),
        ('{"load": "high"}', "load"),
        ('{"x": 1}', "load"),
        ("healthy", "load"),
        ('{"load": 1e9}', "load"),
    ):
        assert from_json(text, path) is None, (text, path)
    metrics = (
        "# HELP ingress_load share of capacity\n# TYPE ingress_load gauge\n"
        'ingress_load{pool="api",zone="a"} 0.3\ningress_load{pool="web",zone="a"} 0.7 1700000000000\n'
        "ingress_load_total 5\n"
    )
    assert from_prometheus(metrics, "ingress_load") == 0.3
    assert from_prometheus(metrics, 'ingress_load{pool="web"}') == 0.7
    assert from_prometheus(metrics, 'ingress_load{pool="db"}') is None
    assert from_prometheus("ingress_load NaN\n", "ingress_load") is None
    assert from_prometheus("ingress_load +Inf\n", "ingress_load") is None


def set_load(sim: SimIngress, load: float) -> None:
    req = urllib.request.Request(f"http://{sim.host}:{sim.port}/_sim?load={load}", method="PUT")
    with _DIRECT.open(req, timeout=2):
        pass


def cluster(sim: SimIngress, **check: object) -> ClusterSpec:
    spec = CheckSpec(interval=0.2, timeout=0.15, rise=1, fall=2, **check)
    return ClusterSpec(
        name="eu-west-1",
        region="eu-west",
        check=spec,
        endpoints=(
            EndpointSpec(
                ipaddress.ip_address(A),
                probe=f"http://{sim.probe}{'/metrics' if 'load_metric' in check else '/healthz'}",
            ),
        ),
    )


async def readings(store: MemoryStore) -> dict:
    snap = await store.load()
    return {(key, r.source): r.load for key, reports in snap.loads.items() for r in reports}


@pytest.mark.parametrize("check", [{"load_json": "load", "body": "healthy"}, {"load_metric": "geodns_sim_load"}])
async def test_the_checker_reports_the_load_its_probe_reads(tmp_path, check) -> None:
    sim = SimIngress("eu", tmp_path)
    try:
        set_load(sim, 0.8)
        store = MemoryStore()
        await store.seed([cluster(sim, **check)])
        async with running(store):

            async def reads(value: float) -> bool:
                return await readings(store) == {(("eu-west-1", A), "chk-1"): value}

            await until(lambda: reads(0.8))
            set_load(sim, 0.35)
            await until(lambda: reads(0.35))
            assert (await verdicts(store)) == {A: True}
            # No load in the answer any more: the reading is not refreshed and expires (unknown, not 0),
            # while the endpoint stays up.
            set_load(sim, -1)

            async def gone() -> bool:
                return await readings(store) == {}

            await until(gone, timeout=5.0)
            assert (await verdicts(store)) == {A: True}
    finally:
        sim.stop()
