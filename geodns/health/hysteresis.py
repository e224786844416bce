"""Per-endpoint hysteresis and RTT smoothing, as pure functions over frozen values.

An endpoint starts ``unknown`` (no verdict: the DNS side answers it as up by
default, see geodns/gslb/health.py).  ``rise`` consecutive successes make it
``up`` and ``fall`` consecutive failures make it ``down``, from any state; a
result that breaks a streak resets the other counter, so an endpoint that
alternates ok/fail never changes state when rise and fall are both above 1.

``failure`` keeps why the endpoint last failed while that still matters: a
down endpoint that has begun to answer again (fewer than ``rise`` successes)
still shows why it went down; reaching ``up`` clears it.

RTT is an exponentially weighted moving average (alpha 0.3) of successful
probes only: a failed probe's time says nothing about the path's latency.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

UNKNOWN = "unknown"
UP = "up"
DOWN = "down"

RTT_ALPHA = 0.3


@dataclass(frozen=True, slots=True)
class Health:
    """Where one endpoint stands after the results seen so far."""

    state: str = UNKNOWN
    successes: int = 0  # consecutive, up to the latest result
    failures: int = 0  # consecutive, up to the latest result
    rtt_ms: float | None = None  # EWMA over successful probes
    reason: str = ""  # the latest result's reason
    probes: int = 0  # results seen in total
    failure: str = ""  # the latest failed result's reason, until the endpoint is up again

    @property
    def verdict(self) -> bool | None:
        """What an observation carries: True (up), False (down) or None (no verdict yet)."""
        return None if self.state == UNKNOWN else self.state == UP

    @property
    def last_ok(self) -> bool | None:
        """Whether the latest probe succeeded; None before the first."""
        if self.probes == 0:
            return None
        return self.successes > 0


def smooth(previous: float | None, sample: float, alpha: float = RTT_ALPHA) -> float:
    """One EWMA step; the first sample is taken as is."""
    return sample if previous is None else previous + alpha * (sample - previous)


def advance(health: Health, ok: bool, rtt_ms: float | None, reason: str, rise: int, fall: int) -> Health:
    """The health after one more probe result (``rise``/``fall`` as in the check spec, both >= 1)."""
    if ok:
        successes, failures = health.successes + 1, 0
        rtt = smooth(health.rtt_ms, rtt_ms) if rtt_ms is not None else health.rtt_ms
        state = UP if successes >= rise else health.state
    else:
        successes, failures = 0, health.failures + 1
        rtt = health.rtt_ms
        state = DOWN if failures >= fall else health.state
    failure = reason if not ok else "" if state == UP else health.failure
    return replace(
        health,
        state=state,
        successes=successes,
        failures=failures,
        rtt_ms=rtt,
        reason=reason,
        probes=health.probes + 1,
        failure=failure,
    )
