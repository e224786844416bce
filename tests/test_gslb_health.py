"""HealthView: admin states first, then a quorum of fresh observations, then unknown."""

from __future__ import annotations

import math
from ipaddress import ip_address
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geodns.gslb.health import HealthView, check_quorum, quorum_met
from geodns.state.model import AdminState, Cluster, Endpoint, Observation, Snapshot

NOW = 1_000_000.0
A = AdminState.ACTIVE
DR = AdminState.DRAINED
FU = AdminState.FORCED_UP
FD = AdminState.FORCED_DOWN
V4 = "192.0.2.10"


def ep(address: str, weight: int = 100, admin: AdminState = A) -> Endpoint:
    return Endpoint(ip_address(address), weight, admin)


def cluster(
    name: str, *endpoints: Endpoint, region: str = "us-east", admin: AdminState = A, min_healthy: int = 1
) -> Cluster:
    return Cluster(name, region, tuple(endpoints), min_healthy=min_healthy, admin=admin)


def obs(
    cluster_name: str,
    address: str,
    checker: str,
    up: bool | None,
    *,
    rtt: float | None = None,
    vantage: str = "us-east",
    at: float = NOW - 1,
    expires: float = NOW + 10,
) -> Observation:
    return Observation(checker, vantage, cluster_name, str(ip_address(address)), up, rtt, at, expires)


def snapshot(clusters: list[Cluster], observations: list[Observation] = ()) -> Snapshot:
    table: dict[tuple[str, str], tuple[Observation, ...]] = {}
    for o in observations:
        table[(o.cluster, o.endpoint)] = table.get((o.cluster, o.endpoint), ()) + (o,)
    return Snapshot(1, MappingProxyType({c.name: c for c in clusters}), MappingProxyType(table), NOW)


def votes(*verdicts: bool | None, **kw) -> list[Observation]:
    return [obs("c", V4, f"chk{i}", v, **kw) for i, v in enumerate(verdicts)]


# -- one endpoint, every rule --------------------------------------------------------------
# (cluster admin, endpoint admin, observations, quorum, unknown_is_up) -> (state, eligible)
ENDPOINT_CASES = {
    "no observations: unknown, up by default": (A, A, [], "majority", True, "unknown", True),
    "no observations, unknown_is_up off": (A, A, [], "majority", False, "unknown", False),
    "one up vote": (A, A, votes(True), "majority", True, "up", True),
    "one down vote": (A, A, votes(False), "majority", True, "down", False),
    "only 'no verdict yet' votes": (A, A, votes(None, None), "majority", True, "unknown", True),
    "no-verdict votes do not count as voters": (A, A, votes(True, None, None), "majority", True, "up", True),
    "expired up votes are ignored": (A, A, votes(True, True, expires=NOW), "majority", False, "unknown", False),
    "expired up, fresh down": (
        A,
        A,
        votes(True, True, expires=NOW - 5) + [obs("c", V4, "x", False)],
        "majority",
        True,
        "down",
        False,
    ),
    "majority 2 of 3": (A, A, votes(True, True, False), "majority", True, "up", True),
    "majority: a 1-1 tie keeps it in": (A, A, votes(True, False), "majority", True, "up", True),
    "majority: a 2-2 tie keeps it in": (A, A, votes(True, True, False, False), "majority", True, "up", True),
    "majority: 2 of 3 down take it out": (A, A, votes(True, False, False), "majority", True, "down", False),
    "majority: 3 of 5 down take it out": (
        A,
        A,
        votes(True, True, False, False, False),
        "majority",
        True,
        "down",
        False,
    ),
    "any: 1 of 3": (A, A, votes(True, False, False), "any", True, "up", True),
    "any: 0 of 2": (A, A, votes(False, False), "any", True, "down", False),
    "all: 2 of 3": (A, A, votes(True, True, False), "all", True, "down", False),
    "all: 3 of 3": (A, A, votes(True, True, True), "all", True, "up", True),
    "N=2: 2 of 5": (A, A, votes(True, True, False, False, False), 2, True, "up", True),
    "N=2: 1 of 1": (A, A, votes(True), 2, True, "down", False),
    "endpoint forced up beats down votes": (A, FU, votes(False, False), "majority", True, "forced-up", True),
    "endpoint forced down beats up votes": (A, FD, votes(True, True), "majority", True, "forced-down", False),
    "cluster forced up applies to endpoints": (FU, A, votes(False), "majority", True, "forced-up", True),
    "cluster forced down applies to endpoints": (FD, A, votes(True), "majority", True, "forced-down", False),
    "forced down anywhere beats forced up": (FD, FU, votes(True), "majority", True, "forced-down", False),
    "endpoint forced down in forced-up cluster": (FU, FD, [], "majority", True, "forced-down", False),
    "drained cluster gets no traffic": (DR, A, votes(True, True), "majority", True, "drained", False),
    "drained endpoint gets no traffic": (A, DR, votes(True), "majority", True, "drained", False),
    "drain beats forced up": (FU, DR, votes(True), "majority", True, "drained", False),
    "drained cluster beats endpoint forced up": (DR, FU, [], "majority", True, "drained", False),
}


@pytest.mark.parametrize("case", ENDPOINT_CASES.values(), ids=ENDPOINT_CASES.keys())
def test_endpoint_state(case):
    cluster_admin, endpoint_admin, observations, quorum, unknown_is_up, state, eligible = case
    snap = snapshot([cluster("c", ep(V4, admin=endpoint_admin), admin=cluster_admin)], observations)
    view = HealthView.build(snap, NOW, quorum=quorum, unknown_is_up=unknown_is_up)
    assert view.state("c", V4) == state
    assert view.endpoint_up("c", ip_address(V4)) is eligible
    assert view.cluster_up("c") is eligible
    assert view.up_endpoints("c") == ((snap.clusters["c"].endpoints[0],) if eligible else ())


def test_latest_observation_per_checker_wins():
    old_up = obs("c", V4, "chk", True, at=NOW - 5)
    new_down = obs("c", V4, "chk", False, at=NOW - 1)
    view = HealthView.build(snapshot([cluster("c", ep(V4))], [new_down, old_up]), NOW)
    assert view.state("c", V4) == "down"  # one checker, one vote: not a 1-1 split


# -- clusters ------------------------------------------------------------------------------
def _three(min_healthy: int, admin: AdminState = A, up: int = 3) -> HealthView:
    addrs = ("192.0.2.1", "192.0.2.2", "192.0.2.3")
    observations = [obs("c", a, "chk", i < up) for i, a in enumerate(addrs)]
    endpoints = (ep(a) for a in addrs)
    snap = snapshot([cluster("c", *endpoints, min_healthy=min_healthy, admin=admin)], observations)
    return HealthView.build(snap, NOW)


@pytest.mark.parametrize(
    "min_healthy, up, admin, is_up, state",
    [
        (1, 1, A, True, "up"),
        (1, 0, A, False, "down"),
        (2, 1, A, False, "down"),
        (2, 2, A, True, "up"),
        (3, 3, A, True, "up"),
        (0, 0, A, False, "down"),  # min_healthy below 1 still needs an endpoint to answer with
        (3, 0, FU, True, "forced-up"),  # forced up: every endpoint is up, whatever min_healthy
        (1, 3, DR, False, "drained"),
        (1, 3, FD, False, "forced-down"),
    ],
)
def test_cluster_min_healthy_and_admin(min_healthy, up, admin, is_up, state):
    view = _three(min_healthy, admin, up)
    assert view.cluster_up("c") is is_up
    assert view.cluster_state("c") == state


def test_up_endpoints_is_the_cluster_tuple_when_all_up_else_the_up_subset():
    view = _three(1, up=3)
    snap_endpoints = view.up_endpoints("c")
    assert len(snap_endpoints) == 3
    view2 = _three(1, up=2)
    assert [str(e.address) for e in view2.up_endpoints("c")] == ["192.0.2.1", "192.0.2.2"]
    assert not view2.endpoint_up("c", "192.0.2.3")


def test_identity_of_all_up_tuple():
    c = cluster("c", ep("192.0.2.1"), ep("2001:db8::1"))
    view = HealthView.build(snapshot([c]), NOW)
    assert view.up_endpoints("c") is c.endpoints


def test_unknown_names():
    view = HealthView.build(snapshot([cluster("c", ep(V4))]), NOW)
    assert not view.cluster_up("nope")
    assert view.up_endpoints("nope") == ()
    assert not view.endpoint_up("nope", V4)
    assert not view.endpoint_up("c", "192.0.2.99")
    assert not view.endpoint_up("c", "not an address")
    with pytest.raises(KeyError):
        view.state("c", "192.0.2.99")
    with pytest.raises(KeyError):
        view.cluster_state("nope")


def test_state_accepts_any_spelling_of_an_address():
    view = HealthView.build(snapshot([cluster("c", ep("2001:db8::10"))], [obs("c", "2001:db8::10", "k", True)]), NOW)
    assert view.state("c", "2001:DB8:0::0010") == "up"
    assert view.state("c", ip_address("2001:db8::10")) == "up"


@pytest.mark.parametrize("bad", ["most", "", 0, -1, True, 1.5])
def test_bad_quorum_is_rejected(bad):
    with pytest.raises(ValueError):
        check_quorum(bad)
    with pytest.raises(ValueError):
        HealthView.build(snapshot([]), NOW, quorum=bad)


# -- RTT per vantage -----------------------------------------------------------------------
def test_rtt_is_the_median_of_fresh_up_observations_per_vantage():
    c = cluster("c", ep("192.0.2.1"), ep("192.0.2.2"), ep("192.0.2.3"))
    observations = [
        obs("c", "192.0.2.1", "eu-a", True, rtt=80.0, vantage="eu-west"),
        obs("c", "192.0.2.2", "eu-a", True, rtt=90.0, vantage="eu-west"),
        obs("c", "192.0.2.1", "eu-b", True, rtt=500.0, vantage="eu-west"),  # one congested checker
        obs("c", "192.0.2.1", "us-a", True, rtt=10.0, vantage="us-east"),
        obs("c", "192.0.2.1", "us-b", True, rtt=1.0, vantage="us-east", expires=NOW),  # expired
        obs("c", "192.0.2.2", "us-b", None, rtt=2.0, vantage="us-east"),  # no verdict
        obs("c", "192.0.2.3", "ap-a", False, rtt=3.0, vantage="ap-southeast"),  # endpoint down
        obs("c", "192.0.2.3", "us-a", False, rtt=3.0, vantage="us-east"),
    ]
    view = HealthView.build(snapshot([c], observations), NOW)
    assert view.rtt_ms("c", "eu-west") == 90.0
    assert view.rtt_ms("c", "us-east") == 10.0
    assert view.rtt_ms("c", "ap-southeast") is None
    assert view.rtt_ms("other", "us-east") is None
    assert view.min_rtt_ms("c") == 10.0
    assert view.vantages == frozenset({"eu-west", "us-east"})
    assert dict(view.rtts()) == {("c", "eu-west"): 90.0, ("c", "us-east"): 10.0}


def test_rtt_ignores_endpoints_that_get_no_traffic():
    c = cluster("c", ep("192.0.2.1", admin=DR), ep("192.0.2.2"))
    observations = [obs("c", "192.0.2.1", "k", True, rtt=1.0), obs("c", "192.0.2.2", "k", True, rtt=40.0)]
    view = HealthView.build(snapshot([c], observations), NOW)
    assert view.rtt_ms("c", "us-east") == 40.0


def test_valid_until_is_the_first_expiry_of_a_fresh_observation():
    c = cluster("c", ep("192.0.2.1"), ep("192.0.2.2"))
    observations = [
        obs("c", "192.0.2.1", "a", True, expires=NOW + 7),
        obs("c", "192.0.2.2", "b", True, expires=NOW + 3),
        obs("c", "192.0.2.2", "c", True, expires=NOW - 1),
    ]
    assert HealthView.build(snapshot([c], observations), NOW).valid_until == NOW + 3
    assert HealthView.build(snapshot([c]), NOW).valid_until == math.inf


# -- quorum against a reference ------------------------------------------------------------
def _reference(verdicts: list[tuple[bool | None, bool]], quorum) -> str:
    counted = [up for up, fresh in verdicts if fresh and up is not None]
    if not counted:
        return "unknown"
    ups = sum(counted)
    downs = len(counted) - ups
    need = {"majority": not downs * 2 > len(counted), "any": ups >= 1, "all": ups == len(counted)}
    ok = need[quorum] if isinstance(quorum, str) else ups >= quorum
    return "up" if ok else "down"


@settings(max_examples=300, derandomize=True)
@given(
    st.lists(st.tuples(st.sampled_from([True, False, None]), st.booleans()), max_size=7),
    st.sampled_from(["majority", "any", "all", 1, 2, 3]),
)
def test_quorum_matches_reference(verdicts, quorum):
    observations = [
        obs("c", V4, f"k{i}", up, expires=NOW + 5 if fresh else NOW - 5) for i, (up, fresh) in enumerate(verdicts)
    ]
    view = HealthView.build(snapshot([cluster("c", ep(V4))], observations), NOW, quorum=quorum)
    assert view.state("c", V4) == _reference(verdicts, quorum)


def test_quorum_met_edges():
    assert not quorum_met(0, 0, "any")
    assert not quorum_met(0, 0, "all")
    assert not quorum_met(0, 0, "majority")
    assert quorum_met(3, 5, "majority") and quorum_met(2, 4, "majority") and quorum_met(1, 2, "majority")
    assert not quorum_met(1, 3, "majority") and not quorum_met(2, 5, "majority")
