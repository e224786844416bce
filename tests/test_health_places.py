"""Partition or outage: the pure rules of geodns/health/places.py, one case per rule."""

from __future__ import annotations

import math

import pytest

from geodns.health.places import confirmed, judge_loss, lost_at_once, lost_everything, others_see_up, place_of
from tests.test_gslb_health import NOW, cluster, ep, obs, snapshot

E1, E2 = "192.0.2.1", "192.0.2.2"
KEYS = [("eu-west-1", E1), ("eu-west-1", E2)]
TABLE = [cluster("eu-west-1", ep(E1), ep(E2), region="eu-west")]


def sees(*observations) -> bool:
    return others_see_up(snapshot(TABLE, list(observations)), KEYS, "me", NOW)


def test_a_place_is_a_region():
    assert place_of(cluster("eu-west-1", ep(E1), region="eu-west")) == "eu-west"
    assert place_of(cluster("eu-west-2", ep(E2), region="eu-west")) == "eu-west"


@pytest.mark.parametrize("probed, failing, lost", [(0, 0, False), (2, 1, False), (1, 1, True), (3, 3, True)])
def test_lost_everything(probed, failing, lost):
    assert lost_everything(probed, failing) is lost


def test_a_down_vote_is_confirmed_by_reaching_anything_after_the_streak_began():
    assert confirmed(None, -math.inf)  # the latest probe succeeded
    assert confirmed(100.0, 100.5)  # something answered after
    assert not confirmed(100.0, 99.0)  # nothing answered since: maybe it is us


def test_places_lost_at_once_are_those_still_answering_at_the_last_reach():
    failing = [("eu-west", 105.0), ("eu-west", 90.0), ("us-east", 104.0), ("ap-southeast", 50.0)]
    assert lost_at_once(failing, 100.0) == {"eu-west", "us-east"}  # ap-southeast was down before
    assert lost_at_once(failing, -math.inf) == {"eu-west", "us-east", "ap-southeast"}  # never reached anything
    assert lost_at_once([("eu-west", 90.0)], 100.0) == set()


CASES = {
    "nobody else judges the place": ([], False),
    "another checker sees one endpoint up": ([obs("eu-west-1", E1, "b", True), obs("eu-west-1", E2, "b", False)], True),
    "every other checker sees it up": ([obs("eu-west-1", E1, "b", True), obs("eu-west-1", E2, "c", True)], True),
    "one other sees it down": (
        [obs("eu-west-1", E1, "b", True), obs("eu-west-1", E1, "c", False), obs("eu-west-1", E2, "c", False)],
        False,
    ),
    "a suspect (no-verdict) checker does not see it up": (
        [obs("eu-west-1", E1, "b", True), obs("eu-west-1", E1, "c", None)],
        False,
    ),
    "our own old votes do not count": ([obs("eu-west-1", E1, "me", True)], False),
    "expired votes do not count": ([obs("eu-west-1", E1, "b", True, expires=NOW)], False),
    "a checker's latest vote wins": (
        [obs("eu-west-1", E1, "b", True, at=NOW - 5), obs("eu-west-1", E1, "b", False, at=NOW - 1)],
        False,
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_others_see_up(case):
    observations, expected = case
    assert sees(*observations) is expected


def test_judge_loss():
    assert judge_loss(2, False)[0] is True  # two places at once: this checker is cut off
    assert judge_loss(1, True)[0] is True  # one place, which everyone else reaches
    partition, why = judge_loss(1, False)
    assert partition is False and "outage" in why  # one place, nobody reaches it: it is down
