"""The shed filter and its load view (issue 17): exact shares, the watermarks, the damped controller."""

from __future__ import annotations

import math
from types import MappingProxyType

import pytest

from geodns.config.model import ClusterSpec, EndpointSpec, LoadSpec
from geodns.gslb.load import IDLE, LoadView, ShedController, ShedState, reported_load, settle_share, target_share, tick
from geodns.gslb.model import Context
from geodns.gslb.policy import decision, select
from geodns.state.model import LoadReport, Snapshot
from tests.test_gslb_decision import shares_by_clusters
from tests.test_gslb_policy import EU1, LONDON, NOW, THREE, US1, client, cluster, context, ep

SPEC = LoadSpec(low=0.7, high=0.9)


def view(**shares: float) -> LoadView:
    states = {name.replace("_", "-"): ShedState(None, None, share, share, False) for name, share in shares.items()}
    return LoadView(MappingProxyType(states), MappingProxyType({n: SPEC for n in states}))


def with_load(ctx: Context, load: LoadView) -> Context:
    return Context(ctx.snapshot, ctx.health, ctx.regions, ctx.record, ctx.rng, load)


def test_a_shed_share_moves_exactly_that_share_of_new_answers_to_the_next_region():
    ctx = with_load(context(THREE, policy=("healthy", "shed", "geo", "weighted")), view(eu_west_1=0.3))
    result = decision(ctx, client(LONDON, 24), 4)
    assert shares_by_clusters(result) == pytest.approx({("eu-west-1",): 0.7, ("us-east-1",): 0.3})
    # Without shedding the same chain keeps London at home.
    plain = context(THREE, policy=("healthy", "shed", "geo", "weighted"))
    assert shares_by_clusters(decision(plain, client(LONDON, 24), 4)) == {("eu-west-1",): 1.0}


def test_inside_a_region_shed_answers_go_to_the_other_clusters_by_weight():
    eu2 = cluster("eu-west-2", "eu-west", ep("198.51.100.20"))
    ctx = with_load(context(THREE + [eu2], policy=("healthy", "geo", "shed", "weighted")), view(eu_west_1=0.4))
    result = decision(ctx, client(LONDON, 24), 4)
    # eu-west-1 is kept with 0.6 and then wins half the weighted draws.
    assert shares_by_clusters(result) == pytest.approx({("eu-west-1",): 0.3, ("eu-west-2",): 0.7})


def test_above_high_the_cluster_is_out_unless_nothing_else_is_left():
    chain = ("healthy", "shed", "geo", "weighted")
    ctx = with_load(context(THREE, policy=chain), view(eu_west_1=1.0))
    assert shares_by_clusters(decision(ctx, client(LONDON, 24), 4)) == {("us-east-1",): 1.0}
    alone = with_load(context([EU1], policy=chain), view(eu_west_1=1.0))
    assert shares_by_clusters(decision(alone, client(LONDON, 24), 4)) == {("eu-west-1",): 1.0}
    # Everyone over: nothing would be left, so all stay; partly shed ones before those that are out.
    both = with_load(
        context([EU1, US1], policy=("healthy", "shed", "first_n"), answers=1), view(eu_west_1=1.0, us_east_1=0.5)
    )
    assert shares_by_clusters(decision(both, client(LONDON, 24), 4)) == {("us-east-1",): 1.0}
    every = with_load(
        context([EU1, US1], policy=("healthy", "shed", "first_n"), answers=1), view(eu_west_1=1.0, us_east_1=1.0)
    )
    assert shares_by_clusters(decision(every, client(LONDON, 24), 4)) == {("eu-west-1",): 1.0}


def test_select_draws_the_same_shares_as_the_decision():
    ctx = with_load(context(THREE, policy=("healthy", "shed", "geo", "weighted"), seed=17), view(eu_west_1=0.25))
    n = 20_000
    moved = sum(select(ctx, client(LONDON, 24), 4).clusters == ("us-east-1",) for _ in range(n))
    assert abs(moved / n - 0.25) < 4 * math.sqrt(0.25 * 0.75 / n)


def test_target_share_is_linear_between_the_watermarks():
    assert [target_share(x, SPEC) for x in (0.0, 0.7, 0.8, 0.85, 0.9, 3.0)] == pytest.approx(
        [0.0, 0.0, 0.5, 0.75, 1.0, 1.0]
    )


def test_tick_bounds_each_move_and_holds_inside_the_hysteresis_band():
    state = IDLE
    shares = []
    for _ in range(4):
        state = tick(state, 1.2, SPEC)
        shares.append(state.share)
    assert shares == pytest.approx([0.1, 0.2, 0.3, 0.4])  # at most `step` per interval
    assert state.moving
    # Settled: 0.4 of the answers have gone elsewhere for a while and the load is 0.78, so the
    # demand is 1.3, and 0.4 is where share and load meet on the watermark line.
    settled = ShedState(0.78, 0.78, 0.4, 0.4, False, applied=0.4)
    assert settle_share(0.78, 0.4, SPEC) == pytest.approx(0.4)
    assert target_share(0.78, SPEC) == pytest.approx(0.4)
    assert tick(settled, 0.78, SPEC).share == pytest.approx(0.4)
    # A little less load: within the hysteresis band (0.05) the share holds ...
    assert tick(settled, 0.76, SPEC).share == 0.4 and not tick(settled, 0.76, SPEC).moving
    # ... a little more: it sheds more at once (more load is never waited out).
    assert tick(settled, 0.85, SPEC).share > 0.4
    # Well below: it comes down, one step at a time.
    assert tick(ShedState(0.6, 0.6, 0.4, 0.4, False, applied=0.4), 0.6, SPEC).share == pytest.approx(0.3)
    # At or over high, it heads for out.
    assert tick(settled, 3.0, SPEC).target == 1.0


def test_unknown_load_sheds_nothing_but_steps_down():
    state = ShedState(0.85, 0.85, 0.5, 0.75, True)
    after = tick(state, None, SPEC)
    assert (after.load, after.smoothed, after.share) == (None, None, pytest.approx(0.4))


def reading(load: float, source: str = "chk-1", endpoint: str = "", at: float = NOW, ttl: float = 30.0):
    return LoadReport(source, "eu-west-1", endpoint, load, at, at + ttl)


def snapshot_with(*readings: LoadReport) -> Snapshot:
    loads: dict = {}
    for r in readings:
        loads.setdefault((r.cluster, r.endpoint), []).append(r)
    return Snapshot(
        1, MappingProxyType({c.name: c for c in THREE}), loads=MappingProxyType({k: tuple(v) for k, v in loads.items()})
    )


def test_reported_load_operator_first_then_median_then_endpoints_and_expired_is_unknown():
    assert (
        reported_load(snapshot_with(reading(0.2), reading(0.9, "chk-2"), reading(0.4, "chk-3")), "eu-west-1", NOW)
        == 0.4
    )
    assert reported_load(snapshot_with(reading(0.2), reading(0.95, "admin")), "eu-west-1", NOW) == 0.95
    assert reported_load(
        snapshot_with(reading(0.2, endpoint="198.51.100.10"), reading(0.6, endpoint="2001:db8:1::10")), "eu-west-1", NOW
    ) == pytest.approx(0.4)
    assert reported_load(snapshot_with(reading(0.8, ttl=5)), "eu-west-1", NOW + 5) is None
    assert reported_load(snapshot_with(), "eu-west-1", NOW) is None


def test_controller_ticks_on_the_wall_clock_grid_and_says_when_to_look_again():
    spec = ClusterSpec(
        "eu-west-1",
        "eu-west",
        (EndpointSpec(EU1.endpoints[0].address),),
        load=LoadSpec(low=0.7, high=0.9, interval=5.0, ttl=7),
    )
    controller = ShedController({"eu-west-1": spec})
    snap = snapshot_with(reading(1.5, at=0.0, ttl=1e9))
    first = controller.view(snap, 100.0)
    assert first.share("eu-west-1") == pytest.approx(0.1) and first.valid_until == 105.0
    assert controller.view(snap, 104.9).share("eu-west-1") == pytest.approx(0.1)  # same interval
    assert controller.view(snap, 115.0).share("eu-west-1") == pytest.approx(0.4)  # three ticks caught up
    moving = controller.view(snap, 115.0)
    assert moving.ttl(["us-east-1", "eu-west-1"], 60) == 7 and moving.ttl(["us-east-1"], 60) == 60
    # A cluster idle for a long while starts from its first reading: one step, not a replay of the gap.
    idle = ShedController({"eu-west-1": spec})
    assert idle.view(snapshot_with(), 100.0).valid_until == math.inf
    assert idle.view(snap, 1000.0).share("eu-west-1") == pytest.approx(0.1)
    # A controller without any load block costs nothing and never asks to be rebuilt.
    assert ShedController({}).view(snap, 0.0).valid_until == math.inf


def test_a_reading_that_arrives_after_the_slots_tick_is_taken_at_the_next_one():
    """The tick of this slot saw no load; a reading coming in later in the same slot must not wait for
    some other change of the table (the end-to-end test saw London never move in 60 s)."""
    spec = ClusterSpec(
        "eu-west-1",
        "eu-west",
        (EndpointSpec(EU1.endpoints[0].address),),
        load=LoadSpec(low=0.7, high=0.9, interval=5.0, ttl=7),
    )
    controller = ShedController({"eu-west-1": spec})
    assert controller.view(snapshot_with(), 100.0).valid_until == math.inf  # idle: nothing to do
    loaded = controller.view(snapshot_with(reading(1.5, at=101.0, ttl=1e9)), 101.0)  # same slot: no tick
    assert loaded.share("eu-west-1") == 0.0 and loaded.valid_until == 105.0  # ... but one is due
    assert controller.view(snapshot_with(reading(1.5, at=101.0, ttl=1e9)), 105.0).share("eu-west-1") > 0
