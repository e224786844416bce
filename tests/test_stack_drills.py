"""The drills, run against the real local stack (``geodns stack`` as a process), asserting their reports.

One stack for the module (short check intervals), started with the real
command and stopped with SIGTERM at the end, when every process it listed must
be gone.  Each drill's report is printed, so CI logs show measured times.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from geodns.tooling.drill.scenarios import Options, netns_reason, run
from geodns.tooling.drill.target import Deployment
from geodns.tooling.stack import procs
from geodns.tooling.stack.topology import STATE_FILE, StackState

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")

REPO = Path(__file__).resolve().parent.parent
INTERVAL = 0.5
FALL = 2
PROMISE = FALL * INTERVAL + 1.0  # the bound: fall x interval + 1 s
SLACK = 0.5  # scheduling slack on a busy CI machine


@contextmanager
def running_stack(directory: Path, *options: str, ready_within: float = 60) -> Iterator[Path]:
    """``geodns stack OPTIONS`` in ``directory`` on free ports, until it says it is up; stopped with
    SIGTERM on the way out, when every process it listed must be gone."""
    argv = [sys.executable, "-m", "geodns", "stack", *options, "--dir", str(directory), "--base-port", "0"]
    with open(directory / "stack.out", "wb") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        deadline = time.monotonic() + ready_within
        while b"Ctrl-C stops everything" not in (directory / "stack.out").read_bytes():
            assert proc.poll() is None, (directory / "stack.out").read_text()
            assert time.monotonic() < deadline, (directory / "stack.out").read_text()
            time.sleep(0.1)
        yield directory
    finally:
        listed = StackState.load(directory / STATE_FILE).processes.values() if (directory / STATE_FILE).exists() else []
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, (directory / "stack.out").read_text()
        left = [p for p in listed if procs.alive(p)]
        assert not left, f"still running after the stack stopped: {left}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with running_stack(tmp_path_factory.mktemp("stack"), "--interval", str(INTERVAL)) as directory:
        yield directory


def drill(stack: Path, scenario: str, **options) -> dict:
    report = run(scenario, Deployment.from_stack(stack), Options(baseline=1.0, **options))
    print("\n" + report.to_text())
    return json.loads(report.to_json())


def check(report: dict, name_part: str) -> dict:
    return next(c for c in report["checks"] if name_part in c["name"])


def test_stack_runs_what_it_says(stack):
    state = StackState.load(stack / STATE_FILE)
    roles = sorted(p.role for p in state.processes.values())
    assert roles == ["checker"] * 2 + ["ingress"] * 3 + ["redis"] + ["server"] * 2
    assert all(procs.alive(p) for p in state.processes.values())
    assert "dig @127.0.0.1" in (stack / "stack.out").read_text()
    # Each checker is observable on its own HTTP port: ready once it has probed and reported.
    for info in (p for p in state.processes.values() if p.role == "checker"):
        http = info.address.split()[1]
        with urllib.request.urlopen(f"http://{http}/readyz", timeout=5) as response:
            assert response.status == 200
        with urllib.request.urlopen(f"http://{http}/metrics", timeout=5) as response:
            assert b"geodns_checker_probes_total{" in response.read()


def test_cluster_down_moves_traffic_within_the_promise_and_back(stack, tmp_path):
    """Through the real CLI, with --json: exit 0 means every check passed."""
    out, plot = tmp_path / "report.json", tmp_path / "report.svg"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "geodns",
            "drill",
            "cluster-down",
            "--stack",
            str(stack),
            "--baseline",
            "1",
            "--json",
            str(out),
            "--plot",
            str(plot),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    print(result.stdout, result.stderr)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    sg = next(c for c in report["clients"] if c["client"] == "SG")
    assert sg["away_s"] is not None and sg["away_s"] <= PROMISE + SLACK
    assert sg["back_s"] is not None
    assert sum(c["stale_after_window"] for c in report["clients"]) == 0
    assert report["failed_queries"] == 0
    # Clients elsewhere never saw the failure.
    for c in report["clients"]:
        if c["client"] != "SG":
            assert c["away_s"] is None and len(c["baseline"]) == 1
    # The plot draws what the report measured: one bar per answer, SG's last ones not on the failed cluster.
    drawn = plot.read_text()
    assert drawn.startswith("<svg") and drawn.count('class="sample"') == report["samples"]
    sg_series = next(points for client, points in report["series"].items() if client == "SG")
    assert sg_series[0][1] == "ap-southeast-1" and sg_series[-1][1] == "ap-southeast-1"  # away, then back


def test_flapping_ingress_holds_its_verdict(stack):
    report = drill(stack, "flapping")
    assert report["passed"], report["checks"]
    assert check(report, "really failed")["ok"]
    assert sum(c["changed"] for c in report["clients"]) == 0


def test_slow_cluster_loses_latency_traffic(stack):
    report = drill(stack, "cluster-slow", after=5.0)
    london = next(c for c in report["clients"] if c["client"] == "London")
    assert london["away_s"] is not None and london["away_s"] <= PROMISE + SLACK, report["checks"]
    assert sum(c["stale_after_window"] for c in report["clients"]) == 0
    assert report["failed_queries"] == 0


def test_redis_down_loses_no_query(stack):
    report = drill(stack, "redis-down")
    assert report["failed_queries"] == 0
    assert report["passed"], report["checks"]
    assert check(report, "seeded the empty Redis")["ok"]
    assert check(report, "the drain of ap-southeast-1 survived")["ok"]  # restored, not re-seeded from config
    assert check(report, "answers stayed put")["ok"]  # SG never went back to the drained one
    redis = StackState.load(stack / STATE_FILE).processes["redis"]
    assert "--appendonly" in redis.argv and redis.argv[redis.argv.index("--appendonly") + 1] == "yes"


def test_one_dns_server_down_the_other_answers(stack):
    report = drill(stack, "dns-server-down")
    assert report["failed_queries"] == 0
    assert report["passed"], report["checks"]
    assert sum(report["failed_attempts"].values()) > 0  # the dead one was asked, and failed


def test_partitioned_checker_takes_nothing_out(stack):
    report = drill(stack, "checker-partition")
    reason = netns_reason()
    partition = [n for n in report["notes"] if "network namespace" in n]
    assert partition if reason is None else not partition
    assert report["passed"], report["checks"]
    # After the drill both checkers are back and reporting.
    state = StackState.load(stack / STATE_FILE)
    assert procs.alive(state.processes["checker-eu"])


def test_overloaded_cluster_sheds_gradually_settles_and_gets_its_traffic_back(stack):
    """The ingress reports demand x the share of London's answers it still gets: shedding lowers
    the very load it reacts to, so this is the feedback loop with every real part in it."""
    report = drill(stack, "cluster-overload", period=0.05)
    for name in (
        "traffic left gradually",
        "the load settled under the high watermark",
        "traffic came back when the load fell",
        "no failed queries",
    ):
        assert check(report, name)["ok"], report["checks"]
    assert report["passed"]


def test_drill_refuses_what_the_deployment_lacks(stack, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "geodns", "drill", "redis-failover", "--stack", str(stack)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
    )
    assert result.returncode == 2
    assert "--sentinel" in result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "geodns", "drill", "cluster-down", "--stack", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
    )
    assert result.returncode == 2 and "geodns stack" in result.stderr


def test_partial_start_failure_stops_everything(tmp_path):
    """An ingress port already taken: start-up fails, and nothing it started is left running."""
    import socket

    from geodns.tooling.stack.runner import Stack
    from geodns.tooling.stack.topology import CheckTiming, layout

    ports = layout(0)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", ports.ingress[1]))
        busy.listen()
        stack = Stack(tmp_path / "s", ports, CheckTiming(0.5, 0.25))
        with pytest.raises(RuntimeError, match="ingress"):
            stack.start()
    state = StackState.load(tmp_path / "s" / STATE_FILE)
    assert state.processes, "it had started something"
    assert not [p for p in state.processes.values() if procs.alive(p)]
    assert os.path.exists(tmp_path / "s" / "logs" / "redis.log")
