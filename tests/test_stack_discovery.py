"""``geodns stack --discovery`` as a process: its clusters register through real ``geodns agent``
processes watching local Kubernetes APIs, and the agent-down drill kills one (SIGKILL) and shows
the answers do not change while its lease lapses, then restarts it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from geodns.tooling.dnsclient import CLIENTS, ask
from geodns.tooling.drill.scenarios import Options, run
from geodns.tooling.drill.target import Deployment
from geodns.tooling.stack import procs
from geodns.tooling.stack.topology import APP, STATE_FILE, StackState
from tests.test_stack_drills import running_stack

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with running_stack(
        tmp_path_factory.mktemp("stack"), "--discovery", "--interval", "0.5", ready_within=90
    ) as directory:
        yield directory


def test_the_clusters_register_through_agents_and_each_place_gets_its_own(stack):
    state = StackState.load(stack / STATE_FILE)
    agents = sorted(name for name, info in state.processes.items() if info.role == "agent")
    assert agents == ["agent-ap-southeast-1", "agent-eu-west-1", "agent-us-east-1"]
    config = (stack / "geodns-1.yaml").read_text()
    assert "records: {}" in config and "clusters: {}" in config  # nothing about them in the config
    # The answers are the Services' status addresses, registered by the agents, nearest first.
    expected = {"SG": "ap-southeast-1", "London": "eu-west-1", "US": "us-east-1"}
    for place, cluster in expected.items():
        answer = ask(state.dns[0], APP, "A", CLIENTS[place], 1.0)
        assert set(answer.addresses) == set(state.clusters[cluster]["addresses"]), (place, answer)


def test_agent_down_changes_no_answer_and_its_lease_lapses(stack):
    report = run("agent-down", Deployment.from_stack(stack), Options(baseline=1.0))
    print("\n" + report.to_text())
    data = json.loads(report.to_json())
    assert data["passed"], report.to_text()
    names = [c["name"] for c in data["checks"] if c["ok"]]
    assert any("lease lapsed" in n for n in names) and any("holds its lease again" in n for n in names), names
    state = StackState.load(stack / STATE_FILE)
    assert procs.alive(state.processes["agent-ap-southeast-1"])  # restarted, and the stack still owns it


def test_agent_down_needs_a_discovery_stack(tmp_path):
    state = StackState(
        dir=str(tmp_path), store="redis://127.0.0.1:1/0", store_unix=None, dns=[], http=[], timing={}, clusters={}
    )
    state.save(tmp_path / STATE_FILE)
    with pytest.raises(Exception, match="geodns stack --discovery"):
        run("agent-down", Deployment.from_stack(tmp_path), Options())
