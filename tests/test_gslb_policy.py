"""The policy chain: each filter on its own, the runner, select, fallback and ECS scope."""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections import Counter
from dataclasses import replace
from ipaddress import ip_address
from types import MappingProxyType

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from geodns.config.filters import DECLARED
from geodns.config.model import RecordSpec, Region
from geodns.geo.distance import great_circle_km
from geodns.geo.location import UNKNOWN, Location
from geodns.gslb import filters as f
from geodns.gslb.health import HealthView
from geodns.gslb.policy import (
    FILTERS,
    Candidate,
    Client,
    Context,
    Selection,
    Step,
    contexts,
    ecs_scope,
    run_chain,
    select,
)
from geodns.state.model import AdminState, Cluster, Endpoint, Observation, Snapshot

NOW = 1_000_000.0

REGIONS = {
    "us-east": Region("us-east", 39.0, -77.5, "NA", ("US", "CA", "MX")),
    "eu-west": Region("eu-west", 53.3, -6.3, "EU", ("GB", "IE", "FR", "DE")),
    "ap-southeast": Region("ap-southeast", 1.35, 103.8, "AS", ("SG", "MY", "ID", "TH")),
}

# Clients, as the geo part would place them.
SG = Location(None, "SG", "AS", 1.29, 103.85, 24, "geoip")
LONDON = Location(None, "GB", "EU", 51.5, -0.13, 22, "geoip")
US = Location(None, "US", "NA", 47.6, -122.3, 20, "geoip")
BRAZIL = Location(None, "BR", "SA", -23.5, -46.6, 18, "geoip")  # no region on SA: nearest
JAPAN_NO_COORDS = Location(None, "JP", "AS", None, None, 16, "geoip")  # continent match
BRAZIL_NO_COORDS = Location(None, "BR", "SA", None, None, 16, "geoip")
OFFICE = Location("ap-southeast", None, None, None, None, 16, "networks")
OFFICE_IN_GB = Location("ap-southeast", "GB", "EU", 51.5, -0.13, 16, "networks")


def ep(address: str, weight: int = 100, admin: AdminState = AdminState.ACTIVE) -> Endpoint:
    return Endpoint(ip_address(address), weight, admin)


def cluster(
    name: str,
    region: str,
    *endpoints: Endpoint,
    weight: int = 100,
    priority: int = 0,
    admin: AdminState = AdminState.ACTIVE,
    min_healthy: int = 1,
) -> Cluster:
    return Cluster(name, region, tuple(endpoints), weight, priority, min_healthy, admin)


US1 = cluster("us-east-1", "us-east", ep("192.0.2.10"), ep("2001:db8::10"))
EU1 = cluster("eu-west-1", "eu-west", ep("198.51.100.10"), ep("2001:db8:1::10"))
AP1 = cluster("ap-southeast-1", "ap-southeast", ep("203.0.113.10"), ep("2001:db8:2::10"))
THREE = [US1, EU1, AP1]


def obs(
    cluster_name: str,
    address: str,
    up: bool | None = True,
    *,
    rtt: float | None = None,
    vantage: str = "us-east",
    checker: str | None = None,
) -> Observation:
    return Observation(
        checker or f"chk-{vantage}", vantage, cluster_name, str(ip_address(address)), up, rtt, NOW - 1, NOW + 10
    )


def down(c: Cluster) -> list[Observation]:
    return [obs(c.name, str(e.address), False) for e in c.endpoints]


def record(
    clusters,
    policy=("healthy", "geo", "weighted"),
    *,
    answers: int = 1,
    fallback: str = "all",
    pct: float = 20.0,
    ms: float = 10.0,
    reach: float = 2000.0,
) -> RecordSpec:
    return RecordSpec(
        name=(b"app", b"gslb", b"example", b"com"),
        text="app.gslb.example.com",
        clusters=tuple(clusters),
        policy=tuple(policy),
        answers=answers,
        fallback=fallback,
        latency_tolerance_pct=pct,
        latency_tolerance_ms=ms,
        latency_reach_km=reach,
    )


def context(
    clusters: list[Cluster],
    observations=(),
    policy=("healthy", "geo", "weighted"),
    *,
    names=None,
    regions=REGIONS,
    seed: int = 7,
    **kw,
) -> Context:
    table: dict = {}
    for o in observations:
        table[(o.cluster, o.endpoint)] = table.get((o.cluster, o.endpoint), ()) + (o,)
    snap = Snapshot(1, MappingProxyType({c.name: c for c in clusters}), MappingProxyType(table), NOW)
    rec = record(names if names is not None else [c.name for c in clusters], policy, **kw)
    return Context(snap, HealthView.build(snap, NOW), regions, rec, random.Random(seed))


def client(location: Location = UNKNOWN, ecs_source: int | None = None) -> Client:
    return Client(ip_address("192.0.2.200"), location, ecs_source)


def names(candidates) -> list[str]:
    return [c.cluster.name for c in candidates]


def run(name: str, ctx: Context, location: Location = UNKNOWN, candidates=None) -> list[str]:
    cands = list(ctx.candidates) if candidates is None else candidates
    return names(FILTERS[name](cands, client(location), ctx))


def test_every_config_word_runs_its_own_function():
    """config/filters.py declares the words; gslb/filters.py runs the function named like each."""
    assert list(FILTERS) == list(DECLARED)
    assert all(FILTERS[word].__name__ == word for word in DECLARED)


def test_context_rejects_unknown_filters():
    with pytest.raises(ValueError, match="nearest"):
        context(THREE, policy=("healthy", "nearest"))


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_every_filter_passes_an_empty_list(name):
    assert FILTERS[name]([], client(SG), context(THREE)) == []


# -- healthy ---------------------------------------------------------------------------------
def test_healthy_drops_down_drained_and_forced_down_clusters():
    drained = cluster("eu-west-1", "eu-west", ep("198.51.100.10"), admin=AdminState.DRAINED)
    forced = cluster("ap-southeast-1", "ap-southeast", ep("203.0.113.10"), admin=AdminState.FORCED_DOWN)
    us2 = cluster("us-east-2", "us-east", ep("192.0.2.20"))
    ctx = context([US1, drained, forced, us2], down(us2))
    assert run("healthy", ctx) == ["us-east-1"]


def test_healthy_keeps_only_up_endpoints():
    c = cluster("c", "us-east", ep("192.0.2.1"), ep("192.0.2.2"), ep("192.0.2.3", admin=AdminState.DRAINED))
    ctx = context([c], [obs("c", "192.0.2.1", False)])
    (kept,) = f.healthy(list(ctx.candidates), client(), ctx)
    assert [str(e.address) for e in kept.endpoints] == ["192.0.2.2"]


def test_healthy_on_already_narrowed_candidates():
    c = cluster("c", "us-east", ep("192.0.2.1"), ep("192.0.2.2"), ep("192.0.2.3"))
    ctx = context([c], [obs("c", "192.0.2.2", False)])
    narrowed = Candidate(c, (c.endpoints[2], c.endpoints[1]))  # as after a reordering filter
    (kept,) = f.healthy([narrowed], client(), ctx)
    assert kept.endpoints == (c.endpoints[2],)
    all_up = context([c])
    assert f.healthy([narrowed], client(), all_up) == [narrowed]


def test_healthy_respects_min_healthy():
    c = cluster("c", "us-east", ep("192.0.2.1"), ep("192.0.2.2"), min_healthy=2)
    assert run("healthy", context([c, US1], [obs("c", "192.0.2.1", False)])) == ["us-east-1"]


# -- geo -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "location, expected",
    [
        (SG, ["ap-southeast-1"]),
        (LONDON, ["eu-west-1"]),
        (US, ["us-east-1"]),  # country US, coordinates are Seattle: country wins
        (OFFICE, ["ap-southeast-1"]),  # operator network, no other data
        (OFFICE_IN_GB, ["ap-southeast-1"]),  # operator network beats country
        (JAPAN_NO_COORDS, ["ap-southeast-1"]),  # no region lists JP: continent AS
        (BRAZIL, ["us-east-1"]),  # nothing on SA: nearest by distance
        (BRAZIL_NO_COORDS, ["us-east-1", "eu-west-1", "ap-southeast-1"]),  # nothing to go on
        (UNKNOWN, ["us-east-1", "eu-west-1", "ap-southeast-1"]),
    ],
)
def test_geo(location, expected):
    assert run("geo", context(THREE), location) == expected


def test_geo_country_before_continent_and_continent_keeps_all_its_regions():
    regions = dict(REGIONS, **{"eu-central": Region("eu-central", 50.1, 8.7, "EU", ("AT", "CH"))})
    eu2 = cluster("eu-central-1", "eu-central", ep("198.51.100.20"))
    ctx = context(THREE + [eu2], regions=regions)
    assert run("geo", ctx, Location(None, "CH", "EU", 47.4, 8.5, 20, "geoip")) == ["eu-central-1"]
    assert run("geo", ctx, Location(None, "FR", "EU", 47.4, 8.5, 20, "geoip")) == ["eu-west-1"]
    assert run("geo", ctx, Location(None, "PL", "EU", None, None, 20, "geoip")) == ["eu-west-1", "eu-central-1"]


def test_geo_moves_on_when_the_own_region_has_no_candidate():
    ctx = context(THREE, down(AP1))
    healthy = f.healthy(list(ctx.candidates), client(), ctx)
    # Singapore: no healthy cluster in ap-southeast or on AS, so the nearest of the rest.
    nearest = min(("us-east", "eu-west"), key=lambda r: great_circle_km(SG.lat, SG.lon, REGIONS[r].lat, REGIONS[r].lon))
    assert names(f.geo(healthy, client(SG), ctx)) == [f"{nearest}-1"]
    # An office network in ap-southeast stands in Singapore: the same answer.
    assert names(f.geo(healthy, client(OFFICE), ctx)) == [f"{nearest}-1"]


def test_geo_places_an_operator_network_client_at_its_region():
    regions = dict(REGIONS, office=Region("office", 48.9, 2.35, "EU"), lab=Region("lab", 6.5, 3.4, "AF"))
    ctx = context(THREE, regions=regions)
    in_paris = Location("office", None, None, None, None, 16, "networks")
    assert run("geo", ctx, in_paris) == ["eu-west-1"]  # the office's continent
    in_lagos = Location("lab", None, None, None, None, 16, "networks")
    assert run("geo", ctx, in_lagos) == ["eu-west-1"]  # nothing on AF: nearest to the lab
    assert run("latency", ctx, in_paris) == ["eu-west-1"]  # estimated from the office


def test_geo_nearest_keeps_every_cluster_of_the_nearest_region():
    us2 = cluster("us-east-2", "us-east", ep("192.0.2.20"))
    assert run("geo", context(THREE + [us2]), BRAZIL) == ["us-east-1", "us-east-2"]


WORLD = {
    "us-east": Region("us-east", 39.0, -77.5, "NA"),
    "us-west": Region("us-west", 45.6, -121.2, "NA"),
    "sa-east": Region("sa-east", -23.5, -46.6, "SA"),
    "eu-west": Region("eu-west", 53.3, -6.3, "EU"),
    "eu-central": Region("eu-central", 50.1, 8.7, "EU"),
    "ap-southeast": Region("ap-southeast", 1.35, 103.8, "AS"),
    "ap-northeast": Region("ap-northeast", 35.7, 139.7, "AS"),
    "au": Region("au", -33.9, 151.2, "OC"),
    "af-south": Region("af-south", -33.9, 18.4, "AF"),
}
WORLD_CLUSTERS = [cluster(f"{r}-1", r, ep(f"192.0.2.{i + 1}")) for i, r in enumerate(WORLD)]


@settings(max_examples=300, derandomize=True)
@given(st.floats(-90, 90), st.floats(-180, 180), st.sets(st.sampled_from(sorted(WORLD)), min_size=1))
def test_geo_nearest_is_never_farther_than_another_candidate(lat, lon, regions):
    ctx = context([c for c in WORLD_CLUSTERS if c.region in regions], regions=WORLD)
    where = Location(None, None, "AN", lat, lon, 16, "geoip")  # no region on Antarctica
    kept = f.geo(list(ctx.candidates), client(where), ctx)
    assert kept
    distance = {r: great_circle_km(lat, lon, WORLD[r].lat, WORLD[r].lon) for r in regions}
    for cand in kept:
        assert distance[cand.cluster.region] <= min(distance.values())


# -- latency ---------------------------------------------------------------------------------
def rtts_from(vantage: str, **by_cluster: float) -> list[Observation]:
    table = {"us": US1, "eu": EU1, "ap": AP1}
    return [
        obs(table[k].name, str(table[k].endpoints[0].address), rtt=v, vantage=vantage) for k, v in by_cluster.items()
    ]


@pytest.mark.parametrize(
    "observations, location, expected",
    [
        # measured from the vantage nearest the client
        (rtts_from("ap-southeast", us=220, eu=160, ap=2), SG, ["ap-southeast-1"]),
        (
            rtts_from("ap-southeast", us=220, eu=160, ap=2) + rtts_from("eu-west", us=80, eu=1, ap=160),
            LONDON,
            ["eu-west-1"],
        ),
        # within 20 % of the best, ordered by RTT
        (rtts_from("eu-west", us=61, eu=58, ap=50), LONDON, ["ap-southeast-1", "eu-west-1"]),
        # within 10 ms of the best, which is wider than 20 % of 5 ms
        (rtts_from("eu-west", us=16, eu=14, ap=5), LONDON, ["ap-southeast-1", "eu-west-1"]),
        # nothing measured: estimated from the distance between client and regions
        ([], SG, ["ap-southeast-1"]),
        ([], US, ["us-east-1"]),
        # measured where possible, estimated for the rest (eu: ~0.3 ms per 100 km + 5 from London)
        (rtts_from("eu-west", us=75, ap=170), LONDON, ["eu-west-1"]),
        # the only vantage is far from the client: its view would send Singapore to us-east
        (rtts_from("us-east", us=1, eu=80, ap=220), SG, ["ap-southeast-1"]),
        # no coordinates: each cluster's best vantage
        (rtts_from("eu-west", us=75, eu=40, ap=170) + rtts_from("us-east", us=2), JAPAN_NO_COORDS, ["us-east-1"]),
        # no coordinates and nothing measured: unchanged
        ([], JAPAN_NO_COORDS, ["us-east-1", "eu-west-1", "ap-southeast-1"]),
        ([], UNKNOWN, ["us-east-1", "eu-west-1", "ap-southeast-1"]),
    ],
)
def test_latency(observations, location, expected):
    assert run("latency", context(THREE, observations), location) == expected


def test_latency_reach_is_the_records_to_set():
    """A far vantage is ignored at the default reach; a record that trusts it further uses it."""
    far = rtts_from("us-east", us=1, eu=80, ap=220)  # Singapore is ~15,500 km from us-east
    assert run("latency", context(THREE, far), SG) == ["ap-southeast-1"]
    ctx = context(THREE, far)
    ctx = replace(ctx, record=replace(ctx.record, latency_reach_km=16000.0))
    assert run("latency", ctx, SG) == ["us-east-1"]


def test_latency_drops_candidates_with_no_figure_when_others_have_one():
    nowhere = cluster("mars-1", "mars", ep("192.0.2.99"))
    ctx = context(THREE + [nowhere])
    assert "mars-1" not in run("latency", ctx, US)


def test_estimate():
    assert f.estimate_rtt_ms(0) == 5.0
    assert f.estimate_rtt_ms(10_000) == pytest.approx(105.0)


@settings(max_examples=300, derandomize=True)
@given(st.lists(st.floats(0.1, 500), min_size=2, max_size=6), st.floats(0, 100), st.floats(0, 50))
def test_latency_tolerance(rtts, pct, ms):
    vantage = REGIONS["eu-west"]
    clusters = [cluster(f"c{i}", "eu-west", ep(f"192.0.2.{i + 1}")) for i in range(len(rtts))]
    observations = [obs(c.name, str(c.endpoints[0].address), rtt=r, vantage="eu-west") for c, r in zip(clusters, rtts)]
    ctx = context(clusters, observations, pct=pct, ms=ms)
    at_vantage = Location(None, "GB", "EU", vantage.lat, vantage.lon, 20, "geoip")
    kept = run("latency", ctx, at_vantage)
    rtt = {c.name: r for c, r in zip(clusters, rtts)}
    best = min(rtts)
    limit = best + max(best * pct / 100, ms)
    assert rtt[kept[0]] == best  # the best is always kept, first
    assert all(rtt[name] <= limit for name in kept)  # nothing outside the tolerance
    assert sorted(kept) == sorted(n for n in rtt if rtt[n] <= limit)  # and everything inside it
    assert [rtt[n] for n in kept] == sorted(rtt[n] for n in kept)  # ordered by RTT


# -- weighted --------------------------------------------------------------------------------
# Chi-square critical values at alpha = 0.001, by degrees of freedom.
CHI2_999 = {1: 10.828, 2: 13.816, 3: 16.266, 4: 18.467, 5: 20.515, 6: 22.458, 7: 24.322, 8: 26.124}


def chi_square(observed: Counter, expected: dict) -> float:
    return sum((observed.get(k, 0) - e) ** 2 / e for k, e in expected.items())


def first_choices(ctx: Context, draws: int) -> Counter:
    cands = list(ctx.candidates)
    return Counter(f.weighted(cands, client(), ctx)[0].cluster.name for _ in range(draws))


@settings(max_examples=60, derandomize=True, deadline=None)
@given(st.lists(st.integers(1, 100), min_size=2, max_size=6))
def test_weighted_first_place_follows_the_weights(weights):
    draws = 4000
    clusters = [cluster(f"c{i}", "us-east", ep(f"192.0.2.{i + 1}"), weight=w) for i, w in enumerate(weights)]
    counts = first_choices(context(clusters, seed=sum(weights)), draws)
    total = sum(weights)
    expected = {c.name: draws * c.weight / total for c in clusters}
    assume(min(expected.values()) >= 5)  # where chi-square is a fair test
    assert chi_square(counts, expected) < CHI2_999[len(weights) - 1]


def test_weighted_whole_order_is_sampling_without_replacement():
    weights = {"a": 1, "b": 2, "c": 3}
    clusters = [cluster(n, "us-east", ep(f"192.0.2.{i + 1}"), weight=w) for i, (n, w) in enumerate(weights.items())]
    ctx = context(clusters, seed=11)
    draws = 12000
    counts = Counter(tuple(names(f.weighted(list(ctx.candidates), client(), ctx))) for _ in range(draws))
    expected = {}
    for perm in itertools.permutations(weights):
        p, left = 1.0, sum(weights.values())
        for n in perm:
            p *= weights[n] / left
            left -= weights[n]
        expected[perm] = draws * p
    assert chi_square(counts, expected) < CHI2_999[5]


def test_the_chi_square_check_has_teeth():
    """A sampler that ignored the weights would fail the same check."""
    uniform = Counter({"a": 2000, "b": 2000})
    assert chi_square(uniform, {"a": 1000, "b": 3000}) > CHI2_999[1]


def test_weighted_standby_clusters_only_when_nothing_else():
    standby = cluster("standby", "us-east", ep("192.0.2.99"), weight=0)
    ctx = context([standby, US1, EU1])
    for _ in range(50):
        assert "standby" not in run("weighted", ctx)
    only = context([standby, cluster("standby-2", "us-east", ep("192.0.2.98"), weight=0)])
    seen = Counter(run("weighted", only)[0] for _ in range(400))
    assert set(seen) == {"standby", "standby-2"}  # spread evenly among standbys
    assert sorted(run("weighted", only)) == ["standby", "standby-2"]


def test_weighted_orders_endpoints_by_weight():
    c = cluster("c", "us-east", ep("192.0.2.1", 1), ep("192.0.2.2", 1), ep("192.0.2.3", 2))
    ctx = context([c], seed=3)
    draws = 4000
    counts = Counter(str(f.weighted(list(ctx.candidates), client(), ctx)[0].endpoints[0].address) for _ in range(draws))
    expected = {"192.0.2.1": draws / 4, "192.0.2.2": draws / 4, "192.0.2.3": draws / 2}
    assert chi_square(counts, expected) < CHI2_999[2]


def test_weighted_endpoint_standby_is_per_address_family():
    c = cluster("c", "us-east", ep("192.0.2.1", 0), ep("192.0.2.2", 10), ep("2001:db8::1", 0))
    ctx = context([c])
    (cand,) = f.weighted(list(ctx.candidates), client(), ctx)
    assert [str(e.address) for e in cand.endpoints] == ["192.0.2.2", "2001:db8::1"]


# -- failover --------------------------------------------------------------------------------
def test_failover_picks_the_lowest_priority_then_record_order():
    a = cluster("a", "us-east", ep("192.0.2.1"), priority=2)
    b = cluster("b", "eu-west", ep("192.0.2.2"), priority=1)
    c = cluster("c", "eu-west", ep("192.0.2.3"), priority=1)
    ctx = context([a, b, c])
    assert run("failover", ctx) == ["b"]
    assert run("failover", ctx, candidates=list(reversed(ctx.candidates))) == ["b"]  # record order, not input
    a_, _b, c_ = ctx.candidates
    assert run("failover", ctx, candidates=[a_, Candidate(b, ()), c_]) == ["c"]  # b has nothing left
    assert run("failover", ctx, candidates=[Candidate(b, ())]) == []


def test_failover_after_healthy_moves_to_the_next_priority():
    a = cluster("a", "us-east", ep("192.0.2.1"), priority=0)
    b = cluster("b", "eu-west", ep("192.0.2.2"), priority=1)
    ctx = context([a, b], down(a), policy=("healthy", "failover"))
    assert names(run_chain(ctx.record, list(ctx.candidates), client(), ctx)) == ["b"]


@settings(max_examples=200, derandomize=True)
@given(st.lists(st.tuples(st.integers(0, 3), st.booleans()), min_size=1, max_size=8), st.randoms())
def test_failover_property(specs, shuffle):
    clusters = [cluster(f"c{i}", "us-east", ep(f"192.0.2.{i + 1}"), priority=p) for i, (p, _) in enumerate(specs)]
    ctx = context(clusters)
    cands = [Candidate(c, c.endpoints if eligible else ()) for c, (_, eligible) in zip(clusters, specs)]
    shuffle.shuffle(cands)
    kept = names(f.failover(cands, client(), ctx))
    eligible = [(p, i) for i, (p, ok) in enumerate(specs) if ok]
    assert kept == ([f"c{min(eligible)[1]}"] if eligible else [])


# -- first_n ---------------------------------------------------------------------------------
@pytest.mark.parametrize("answers, expected", [(1, 1), (2, 2), (3, 3), (5, 3)])
def test_first_n(answers, expected):
    assert run("first_n", context(THREE, answers=answers)) == [c.name for c in THREE][:expected]


# -- the chain -------------------------------------------------------------------------------
def test_run_chain_traces_each_filter():
    ctx = context(THREE, down(EU1), policy=("healthy", "geo", "weighted", "first_n"))
    trace: list = []
    out = run_chain(ctx.record, list(ctx.candidates), client(LONDON), ctx, trace)
    assert names(out) == ["us-east-1"]  # eu-west is down; nearest to London of the rest
    assert trace == [
        Step("healthy", ("us-east-1", "eu-west-1", "ap-southeast-1"), ("us-east-1", "ap-southeast-1")),
        Step("geo", ("us-east-1", "ap-southeast-1"), ("us-east-1",)),
        Step("weighted", ("us-east-1",), ("us-east-1",)),
        Step("first_n", ("us-east-1",), ("us-east-1",)),
    ]


def test_an_emptied_chain_runs_to_the_end():
    ctx = context(THREE, down(US1) + down(EU1) + down(AP1), policy=FILTERS.keys())
    trace: list = []
    assert run_chain(ctx.record, list(ctx.candidates), client(SG), ctx, trace) == []
    assert [s.filter for s in trace] == list(FILTERS)


# -- select ----------------------------------------------------------------------------------
def test_select_by_family():
    ctx = context(THREE)
    assert select(ctx, client(SG), 4) == Selection((ip_address("203.0.113.10"),), ("ap-southeast-1",), False, 24)
    assert select(ctx, client(SG), 6).addresses == (ip_address("2001:db8:2::10"),)


def test_select_takes_answers_addresses_across_candidates():
    ctx = context(THREE, policy=("healthy", "failover"), answers=2)
    assert select(ctx, client(), 4).addresses == (ip_address("192.0.2.10"),)  # failover keeps one cluster
    ctx = context(THREE, policy=("healthy",), answers=2)
    sel = select(ctx, client(), 4)
    assert sel.addresses == (ip_address("192.0.2.10"), ip_address("198.51.100.10"))
    assert sel.clusters == ("us-east-1", "eu-west-1")
    big = cluster("big", "us-east", *(ep(f"192.0.2.{i}") for i in range(1, 6)))
    assert len(select(context([big], policy=("healthy",), answers=3), client(), 4).addresses) == 3


def test_select_nodata_when_no_address_of_the_family():
    v4_only = cluster("v4", "us-east", ep("192.0.2.1"))
    sel = select(context([v4_only, AP1], policy=("healthy", "first_n")), client(), 6)
    assert sel == Selection((), (), False, 0)


def test_select_skips_clusters_missing_from_the_snapshot():
    ctx = context([EU1], names=["gone", "eu-west-1"], policy=("healthy", "first_n"))
    assert select(ctx, client(), 4).clusters == ("eu-west-1",)


FORCED_DOWN_AP = cluster(
    "ap-southeast-1",
    "ap-southeast",
    ep("203.0.113.10"),
    ep("203.0.113.11", admin=AdminState.DRAINED),
    ep("2001:db8:2::10", admin=AdminState.FORCED_DOWN),
)


@pytest.mark.parametrize(
    "fallback, family, addresses, clusters",
    [
        ("all", 4, ["192.0.2.10", "198.51.100.10", "203.0.113.10"], ["us-east-1", "eu-west-1", "ap-southeast-1"]),
        ("all", 6, ["2001:db8::10", "2001:db8:1::10"], ["us-east-1", "eu-west-1"]),  # forced down stays out
        ("none", 4, [], []),
        ("eu-west-1", 4, ["198.51.100.10"], ["eu-west-1"]),
        ("ap-southeast-1", 4, ["203.0.113.10"], ["ap-southeast-1"]),  # drained stays out
    ],
)
def test_fallback_when_nothing_is_healthy(fallback, family, addresses, clusters):
    ctx = context([US1, EU1, FORCED_DOWN_AP], down(US1) + down(EU1) + down(FORCED_DOWN_AP), fallback=fallback)
    trace: list = []
    sel = select(ctx, client(SG, 24), family, trace)
    assert sel == Selection(tuple(ip_address(a) for a in addresses), tuple(clusters), True, 0)
    assert trace[-1] == Step("fallback", (), tuple(clusters))


# -- ECS scope -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "prefix, source, depended, scope",
    [
        (24, None, True, 24),  # no ECS in the query: the location's own prefix
        (24, 24, True, 24),
        (16, 24, True, 16),  # a wider network matched: say so, resolvers cache it wider
        (24, 20, True, 20),  # never longer than what the resolver revealed
        (24, 0, True, 0),  # RFC 7871: source /0 means scope /0
        (24, 24, False, 0),  # the answer is the same for everyone
        (0, 24, True, 0),  # unknown location: valid everywhere
    ],
)
def test_ecs_scope(prefix, source, depended, scope):
    location = Location(None, "SG", "AS", 1.3, 103.8, prefix, "geoip")
    assert ecs_scope(location, source, depended) == scope


@pytest.mark.parametrize(
    "policy, clusters, observations, scope",
    [
        (("healthy", "geo", "weighted"), THREE, [], 20),
        (("healthy", "latency"), THREE, [], 20),
        (("healthy", "weighted"), THREE, [], 0),  # nothing read the location
        (("healthy", "failover", "geo"), THREE, [], 0),  # geo had no choice left to make
        (("healthy", "geo"), THREE, down(US1) + down(EU1), 0),  # only one healthy cluster
        (("healthy", "geo"), THREE, down(US1) + down(EU1) + down(AP1), 0),  # fallback
    ],
)
def test_select_scope(policy, clusters, observations, scope):
    ctx = context(clusters, observations, policy=policy)
    assert select(ctx, client(SG, ecs_source=20), 4).scope == scope


def test_contexts_builds_one_per_record_sharing_the_rng():
    ctx = context(THREE)
    rng = random.Random(1)
    other = dataclasses.replace(record(["eu-west-1"]), name=(b"other", b"gslb", b"example", b"com"))
    built = contexts([ctx.record, other], ctx.snapshot, ctx.health, REGIONS, rng)
    assert set(built) == {ctx.record.name, other.name}
    assert all(c.rng is rng for c in built.values())
    assert names(built[other.name].candidates) == ["eu-west-1"]


def test_contexts_is_a_mapping_of_every_record_built_on_demand():
    records = [
        record([US1.name]),
        dataclasses.replace(record([EU1.name]), name=(b"other", b"example"), text="other.example"),
    ]
    snap = Snapshot(1, MappingProxyType({c.name: c for c in THREE}), MappingProxyType({}), NOW)
    built = contexts(records, snap, HealthView.build(snap, NOW), REGIONS, random.Random(1))
    assert len(built) == 2 and set(built) == {r.name for r in records}
    assert built.get((b"nope",)) is None and built.get((b"nope",), 7) == 7
    with pytest.raises(KeyError):
        built[(b"nope",)]
    first = built[records[1].name]
    assert first.record is records[1] and built[records[1].name] is first  # built once, then kept
    assert [c.record for c in built.values()] == records


def test_a_cluster_whose_family_is_all_down_is_no_answer_for_that_family():
    """Singapore's cluster has its IPv4 endpoint down and its IPv6 one up: A goes elsewhere, AAAA stays."""
    ctx = context(THREE, observations=[obs(AP1.name, "203.0.113.10", False)])
    trace: list = []
    a = select(ctx, client(SG, 24), 4, trace)
    assert a.addresses and a.clusters[0] != AP1.name and not a.fallback
    assert Step("ipv4 down", ("us-east-1", "eu-west-1", "ap-southeast-1"), ("us-east-1", "eu-west-1")) in trace
    assert select(ctx, client(SG, 24), 6).clusters == (AP1.name,)
    everything_down = context([AP1], observations=[obs(AP1.name, "203.0.113.10", False)])
    assert select(everything_down, client(SG, 24), 4).fallback  # nothing left: the fallback
