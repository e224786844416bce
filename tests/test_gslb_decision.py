"""policy.decision: every answer a record can give, with exact probabilities, agreeing with select."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geodns.gslb.dice import Explorer, TooManyPaths
from geodns.gslb.policy import decision, select
from tests.test_gslb_policy import CHI2_999, EU1, LONDON, SG, THREE, US1, chi_square, client, cluster, context, down, ep


def shares_by_clusters(result) -> dict[tuple[str, ...], float]:
    out: dict[tuple[str, ...], float] = {}
    for selection, share in zip(result.selections, result.shares):
        out[selection.clusters] = out.get(selection.clusters, 0.0) + share
    return out


def test_weighted_first_place_shares_are_the_weights():
    clusters = [
        cluster(n, "us-east", ep(f"192.0.2.{i + 1}"), weight=w)
        for i, (n, w) in enumerate((("a", 1), ("b", 2), ("c", 5)))
    ]
    result = decision(context(clusters, policy=("weighted",)), client(), 4)
    assert shares_by_clusters(result) == pytest.approx({("a",): 1 / 8, ("b",): 2 / 8, ("c",): 5 / 8})
    assert math.fsum(result.shares) == pytest.approx(1.0)


def test_whole_orders_with_two_answers_are_sampling_without_replacement():
    weights = {"a": 1, "b": 2, "c": 3}
    clusters = [cluster(n, "us-east", ep(f"192.0.2.{i + 1}"), weight=w) for i, (n, w) in enumerate(weights.items())]
    ctx = context(clusters, policy=("weighted",), answers=2)
    expected = {}
    for perm in itertools.permutations(weights):
        p, left = 1.0, 6
        for n in perm[:2]:
            p *= weights[n] / left
            left -= weights[n]
        expected[perm[:2]] = expected.get(perm[:2], 0.0) + p
    assert shares_by_clusters(decision(ctx, client(), 4)) == pytest.approx(expected)


def test_deterministic_chains_decide_one_answer():
    ctx = context(THREE, policy=("healthy", "geo"))
    result = decision(ctx, client(SG, 24), 4)
    assert result.shares == (1.0,)
    assert result.selections == (select(ctx, client(SG, 24), 4),)


def test_geo_then_weighted_keeps_the_client_in_its_region_with_its_scope():
    ctx = context(THREE + [cluster("eu-west-2", "eu-west", ep("198.51.100.20"))])
    result = decision(ctx, client(LONDON, 24), 4)
    assert shares_by_clusters(result) == pytest.approx({("eu-west-1",): 0.5, ("eu-west-2",): 0.5})
    assert {s.scope for s in result.selections} == {22}


def test_fallback_is_one_answer_and_says_so():
    ctx = context([US1, EU1], observations=down(US1) + down(EU1))
    result = decision(ctx, client(), 4)
    assert len(result.selections) == 1 and result.selections[0].fallback


def test_standby_endpoints_shuffle_uniformly():
    c = cluster("c", "us-east", ep("192.0.2.1", 0), ep("192.0.2.2", 0), ep("192.0.2.3", 0))
    result = decision(context([c], policy=("weighted",), answers=3), client(), 4)
    assert len(result.selections) == 6  # every order of three standbys
    assert result.shares == pytest.approx((1 / 6,) * 6)


def test_too_many_paths_is_none():
    clusters = [cluster(f"c{i}", "us-east", ep(f"192.0.2.{i + 1}")) for i in range(6)]  # 720 orders
    assert decision(context(clusters, policy=("weighted",)), client(), 4, limit=100) is None
    assert len(decision(context(clusters, policy=("weighted",)), client(), 4, limit=720).selections) == 6


def test_explorer_visits_each_path_once():
    explorer = Explorer()
    seen = Counter()
    total = 0.0
    while explorer.next_path():
        first = explorer.pick((1, 3), 4)
        second = explorer.pick((2, 1, 1), 4) if first == 1 else None  # paths of different lengths
        seen[(first, second)] += 1
        total += explorer.probability
    assert seen == Counter({(0, None): 1, (1, 0): 1, (1, 1): 1, (1, 2): 1})
    assert total == pytest.approx(1.0)
    with pytest.raises(TooManyPaths):
        small = Explorer(limit=2)
        while small.next_path():
            small.pick((1, 1, 1), 3)


@settings(max_examples=25, derandomize=True, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=1, max_size=3), st.integers(1, 3), st.sampled_from([4, 6]))
def test_decision_matches_what_select_draws(weights, answers, family):
    """The exact shares and 3,000 real draws agree (chi-square at alpha 0.001), and select never
    gives an answer the decision did not list."""
    clusters = [
        cluster(
            f"c{i}",
            "us-east",
            ep(f"192.0.2.{i + 1}", 1 + i % 2),
            ep(f"192.0.2.{i + 101}", 2),
            ep(f"2001:db8::{i + 1}"),
            weight=w,
        )
        for i, w in enumerate(weights)
    ]
    ctx = context(clusters, policy=("healthy", "weighted", "first_n"), answers=answers, seed=len(weights))
    result = decision(ctx, client(), family)
    expected = dict(zip(result.selections, result.shares))
    draws = 3000
    counts = Counter(select(ctx, client(), family) for _ in range(draws))
    assert set(counts) <= set(expected)
    big = {s: draws * p for s, p in expected.items() if draws * p >= 5}
    assert chi_square(Counter({s: counts[s] for s in big}), big) < CHI2_999.get(len(big) - 1, 30) or len(big) < 2


def test_dual_stack_clusters_walk_only_the_asked_family():
    """3 clusters of 2 IPv4 + 2 IPv6 endpoints: 3! * 2^3 = 48 paths per family, not 3! * 4!^3."""
    clusters = [
        cluster(
            f"c{i}",
            "us-east",
            ep(f"192.0.2.{i + 1}1"),
            ep(f"192.0.2.{i + 1}2", 300),
            ep(f"2001:db8::{i + 1}1"),
            ep(f"2001:db8::{i + 1}2"),
        )
        for i in range(3)
    ]
    ctx = context(clusters, policy=("healthy", "weighted"), answers=1)
    for family, heavy in ((4, 0.75), (6, 0.5)):
        result = decision(ctx, client(), family, limit=48)
        assert result is not None and len(result.selections) == 6
        first = {str(s.addresses[0]): p for s, p in zip(result.selections, result.shares)}
        assert sum(p for a, p in first.items() if a.endswith("2")) == pytest.approx(heavy)


def test_explorer_refuses_a_chain_that_is_not_deterministic():
    explorer = Explorer()
    explorer.next_path()
    explorer.pick((1, 1), 2)
    explorer.next_path()
    with pytest.raises(RuntimeError, match="deterministic"):
        explorer.pick((1, 1, 1), 3)
