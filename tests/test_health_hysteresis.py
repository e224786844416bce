"""Pure parts of the checker: rise/fall hysteresis, RTT smoothing, where each endpoint is probed."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geodns.config.model import CheckSpec
from geodns.health.checker import expiry
from geodns.health.hysteresis import DOWN, UNKNOWN, UP, Health, advance, smooth
from geodns.health.target import Target, TargetError, resolve_target
from geodns.state.model import Endpoint


def run(results: list[bool], rise: int = 2, fall: int = 2, start: Health = Health()) -> list[str]:
    health, states = start, []
    for ok in results:
        health = advance(health, ok, 10.0 if ok else None, "ok" if ok else "status 503", rise, fall)
        states.append(health.state)
    return states


def test_starts_unknown_and_needs_rise_successes() -> None:
    assert Health().state == UNKNOWN and Health().verdict is None and Health().last_ok is None
    assert run([True, True, True]) == [UNKNOWN, UP, UP]
    assert run([False, False]) == [UNKNOWN, DOWN]
    assert run([True], rise=1) == [UP]


def test_fall_consecutive_failures_take_it_down_and_rise_brings_it_back() -> None:
    assert run([True, True, False, False, False, True, True], rise=2, fall=3) == [UNKNOWN, UP, UP, UP, DOWN, DOWN, UP]


def test_a_broken_streak_starts_over() -> None:
    assert run([True, True, False, True, False, True, False, False]) == [UNKNOWN, UP, UP, UP, UP, UP, UP, DOWN]


@given(st.integers(2, 5), st.integers(2, 5), st.integers(0, 40), st.booleans())
def test_alternating_results_never_change_state(rise: int, fall: int, n: int, first: bool) -> None:
    up = Health(state=UP, successes=rise)
    alternating = [(i % 2 == 0) == first for i in range(n)]
    assert set(run(alternating, rise, fall, up)) <= {UP}
    assert set(run(alternating, rise, fall)) <= {UNKNOWN}


def test_verdict_and_reason_follow_the_latest_result() -> None:
    health = advance(Health(), False, None, "timeout", 2, 1)
    assert (health.state, health.verdict, health.reason, health.last_ok, health.probes) == (
        DOWN,
        False,
        "timeout",
        False,
        1,
    )


def test_the_failure_reason_is_kept_until_the_endpoint_is_up_again() -> None:
    """A down endpoint that begins to answer (rise 2) still says why it went down; up clears it."""
    health = advance(Health(state=UP, successes=2), False, None, "HTTP 503", 2, 2)
    assert (health.state, health.failure) == (UP, "HTTP 503")  # failing, not yet down
    health = advance(health, False, None, "connection refused", 2, 2)
    assert (health.state, health.failure) == (DOWN, "connection refused")
    health = advance(health, True, 5.0, "ok", 2, 2)
    assert (health.state, health.reason, health.failure) == (DOWN, "ok", "connection refused")
    health = advance(health, True, 5.0, "ok", 2, 2)
    assert (health.state, health.failure) == (UP, "")


def test_rtt_is_an_ewma_of_successes_only() -> None:
    assert smooth(None, 50.0) == 50.0
    assert smooth(50.0, 100.0) == pytest.approx(65.0)  # alpha 0.3
    health = advance(Health(), True, 50.0, "ok", 2, 2)
    health = advance(health, True, 100.0, "ok", 2, 2)
    health = advance(health, False, 900.0, "status 503", 2, 2)
    assert health.rtt_ms == pytest.approx(65.0)


def test_observation_expiry_covers_a_few_intervals_and_one_slow_probe() -> None:
    assert expiry(CheckSpec(interval=5.0, timeout=2.0)) == 15.0
    assert expiry(CheckSpec(interval=0.2, timeout=0.15)) == pytest.approx(1.35)


# -- targets ------------------------------------------------------------------------------------
V4 = ipaddress.ip_address("192.0.2.10")
V6 = ipaddress.ip_address("2001:db8::10")


@pytest.mark.parametrize(
    "endpoint, spec, expected",
    [
        # the endpoint's address with the check's port and path
        (Endpoint(V4), CheckSpec(), Target("http", "192.0.2.10", 80, "/healthz")),
        (
            Endpoint(V6),
            CheckSpec(type="https", port=8443, path="/ready"),
            Target("https", "2001:db8::10", 8443, "/ready"),
        ),
        (Endpoint(V4), CheckSpec(type="tcp", port=5432), Target("tcp", "192.0.2.10", 5432, "/healthz")),
        # the check's url stands for every endpoint
        (
            Endpoint(V4),
            CheckSpec(url="http://127.0.0.1:18081/healthz?full=1"),
            Target("http", "127.0.0.1", 18081, "/healthz?full=1"),
        ),
        (Endpoint(V4), CheckSpec(type="tcp", url="tcp://127.0.0.1:6000"), Target("tcp", "127.0.0.1", 6000, "/")),
        # the endpoint's probe wins: a URL as written, HOST:PORT with the check's scheme and path
        (
            Endpoint(V4, probe="https://127.0.0.1:9443/z"),
            CheckSpec(url="http://127.0.0.1:1/"),
            Target("https", "127.0.0.1", 9443, "/z"),
        ),
        (
            Endpoint(V4, probe="127.0.0.1:9000"),
            CheckSpec(type="https", path="/live"),
            Target("https", "127.0.0.1", 9000, "/live"),
        ),
        (Endpoint(V6, probe="[::1]:9000"), CheckSpec(type="tcp"), Target("tcp", "::1", 9000, "/healthz")),
        (Endpoint(V4, probe="http://127.0.0.1:7000/h"), CheckSpec(type="tcp"), Target("tcp", "127.0.0.1", 7000, "/h")),
    ],
)
def test_resolve_target(endpoint: Endpoint, spec: CheckSpec, expected: Target) -> None:
    assert resolve_target(endpoint, spec) == expected


def test_target_urls() -> None:
    assert Target("https", "2001:db8::10", 443, "/h").url == "https://[2001:db8::10]:443/h"
    assert Target("tcp", "127.0.0.1", 5, "/ignored").url == "tcp://127.0.0.1:5"


@pytest.mark.parametrize(
    "endpoint, spec",
    [
        (Endpoint(V4), CheckSpec(type="tcp")),  # no port anywhere
        (Endpoint(V4, probe="127.0.0.1"), CheckSpec()),  # no port
        (Endpoint(V4, probe="ftp://127.0.0.1:21/"), CheckSpec()),
        (Endpoint(V4, probe="tcp://127.0.0.1:21"), CheckSpec()),  # http check, tcp URL
    ],
)
def test_unusable_targets(endpoint: Endpoint, spec: CheckSpec) -> None:
    with pytest.raises(TargetError):
        resolve_target(endpoint, spec)
