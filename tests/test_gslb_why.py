"""Why the chain decided: each step's reason in words, from the one explain implementation (gslb/why.py).

The reasons are what an operator reads on the status page, in ``geodns explain``
and in the debug TXT record; here each rule of ``geo`` and ``latency`` is made
to decide and must say so, and the trace still compares by what it did.
"""

from __future__ import annotations

from geodns.geo.distance import great_circle_km
from geodns.gslb.filters import FILTERS
from geodns.gslb.policy import Step, run_chain, select
from geodns.gslb.why import explain
from tests.test_gslb_policy import (
    AP1,
    BRAZIL,
    BRAZIL_NO_COORDS,
    EU1,
    JAPAN_NO_COORDS,
    LONDON,
    OFFICE,
    REGIONS,
    SG,
    THREE,
    US,
    US1,
    client,
    cluster,
    context,
    down,
    ep,
    obs,
)


def why(ctx, location, family: int = 4) -> dict[str, str]:
    return {s["filter"]: s["why"] for s in explain(ctx, client(location), family)["steps"]}


def test_geo_says_which_rule_matched():
    ctx = context(THREE)
    assert why(ctx, LONDON)["geo"] == "country GB matches region eu-west"
    assert why(ctx, JAPAN_NO_COORDS)["geo"] == "no candidate for country JP; continent AS matches region ap-southeast"
    assert why(ctx, OFFICE)["geo"] == "operator network puts the client in region ap-southeast"
    km = {name: great_circle_km(BRAZIL.lat, BRAZIL.lon, r.lat, r.lon) for name, r in REGIONS.items()}
    assert km["us-east"] < km["eu-west"] < km["ap-southeast"]
    assert why(ctx, BRAZIL)["geo"] == (
        f"no region matches the client; nearest region us-east at {km['us-east']:,.0f} km, "
        f"eu-west {km['eu-west']:,.0f} km, ap-southeast {km['ap-southeast']:,.0f} km"
    )
    assert why(ctx, BRAZIL_NO_COORDS)["geo"] == "no region matches and no coordinates: unchanged"


def test_latency_says_measured_from_which_vantage_or_estimated_from_distance():
    observations = [
        obs("us-east-1", "192.0.2.10", rtt=80.0, vantage="eu-west"),
        obs("eu-west-1", "198.51.100.10", rtt=6.0, vantage="eu-west"),
    ]
    ctx = context(THREE, observations, policy=("healthy", "latency"))
    reason = why(ctx, LONDON)["latency"]
    assert reason.startswith("vantage eu-west is the nearest checker within 2000 km; ")
    assert "us-east-1 80.0 ms measured from eu-west" in reason and "eu-west-1 6.0 ms measured from eu-west" in reason
    assert "ap-southeast-1 " in reason and "ms estimated from 10,8" in reason  # nobody measured it
    assert reason.endswith("kept those within 16.0 ms")  # 6 + max(20 %, 10 ms)
    far = why(ctx, SG)["latency"]  # no checker within 2000 km
    assert far.startswith("no checker within reach: distance estimates; ") and "measured" not in far


def test_healthy_weighted_failover_and_the_fallback_give_their_reasons():
    ctx = context(THREE, down(AP1))
    assert why(ctx, LONDON)["healthy"] == "dropped ap-southeast-1 down"
    weights = context(
        [US1, cluster("eu-west-1", "eu-west", ep("198.51.100.10"), weight=300)], policy=("healthy", "weighted")
    )
    assert (
        why(weights, LONDON)["weighted"]
        == "random order by weight, first place: us-east-1 w100 25%, eu-west-1 w300 75%"
    )
    prio = context(
        [US1, cluster("eu-west-1", "eu-west", ep("198.51.100.10"), priority=1)], policy=("healthy", "failover")
    )
    assert why(prio, LONDON)["failover"] == "us-east-1 has the best priority (0, then record order)"
    dead = explain(context(THREE, down(US1) + down(EU1) + down(AP1)), client(LONDON), 4)
    assert dead["fallback"] and dead["steps"][-1]["filter"] == "fallback"
    assert "fallback answers" in dead["steps"][-1]["why"]


def test_a_lost_address_family_says_so():
    v4_down = [obs("eu-west-1", "198.51.100.10", False)]
    steps = explain(context(THREE, v4_down), client(LONDON), 4)["steps"]
    lost = next(s for s in steps if s["filter"] == "ipv4 down")
    assert lost["dropped"] == ["eu-west-1"] and "no IPv4 endpoint up" in lost["why"]


def test_every_filter_explains_without_changing_the_decision():
    """The reason is extra: a traced run selects what an untraced one does, and steps compare without it."""
    ctx = context(THREE, down(AP1), policy=list(FILTERS))
    for location in (LONDON, SG, US, BRAZIL, OFFICE):
        trace: list = []
        assert select(ctx, client(location), 4, trace) == select(ctx, client(location), 4)
        assert all(step.why for step in trace), trace
    trace = []
    run_chain(ctx.record, list(ctx.candidates), client(LONDON), ctx, trace)
    assert trace[0] == Step("healthy", ("us-east-1", "eu-west-1", "ap-southeast-1"), ("us-east-1", "eu-west-1"))
