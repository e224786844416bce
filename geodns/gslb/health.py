"""Endpoint and cluster health, decided once per snapshot so queries only look it up.

Rules, in the order they are applied to each endpoint:

1. Admin state.  Taking traffic away wins over giving it: a forced-down
   cluster or endpoint is down; else a drained cluster or endpoint is
   "drained" (not eligible for new traffic); else a forced-up cluster or
   endpoint is up.  An operator who forces a cluster down for maintenance
   must not be overridden by a forced-up left on one of its endpoints.
2. Fresh observations (``expires > now``), the latest one per checker, that
   carry a verdict.  The endpoint is up when the "up" votes satisfy the
   quorum.  ``majority`` (the default) takes an endpoint out only when more
   than half of the verdicts say down: a tie keeps it in.  See "The quorum
   rule" below for why.  ``any``, ``all`` and a number N (at least N up votes)
   are there for operators who want another bias.
3. No fresh verdict at all: "unknown", answered as up when ``unknown_is_up``
   (the default).  That is fail-open: a cluster without checks, a server
   that starts before the first probe, and a fleet whose checkers all died
   keep answering instead of going dark.

A cluster is up when at least ``min_healthy`` (at least 1) of its endpoints
are up; a forced-up cluster is up when any of its endpoints is.  Observations
expire while a snapshot stays the same, so the view also says until when it
holds (``valid_until``): rebuild it when the snapshot changes or that time passes.

The quorum rule.  Route 53 counts an endpoint healthy while more than 18 % of
its health checkers see it up, i.e. it takes one out only when over 82 % agree;
AWS chose 18 % so that checkers in several regions must see it up, and so that
network trouble isolating the endpoint from some checker locations does not
take it out.  That bar suits Route 53's many checkers in (by default) eight
regions.  A geodns fleet runs two to five checkers, where 18 % is one checker:
effectively ``any``, so a single checker next to a broken ingress (or behind a
proxy that answers 200 for it) would keep a dead cluster in for everyone
else's clients.  Route 53 also needs the low bar as its only defence against
its own checkers being cut off; geodns has another: a checker that loses
everything at once judges itself partitioned and stops voting
(geodns/health/places.py), so the quorum only has to weigh real disagreement.
There, most vantages failing to reach an endpoint stands for most clients
failing, so a majority of down votes takes it out (2 of 3 do); a tie is no
evidence either way, and taking capacity out on no evidence is the opposite of
failing open, so 1-1 and 2-2 keep it in.  ``any`` is Route 53's bias for
operators who want it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from ipaddress import ip_address
from statistics import median
from types import MappingProxyType

from ..config.model import IPAddress
from ..state.model import AdminState, Cluster, Endpoint, Observation, Snapshot, by_checker, latest_fresh

Quorum = str | int  # "majority" | "any" | "all" | N (at least N up votes)

UP = "up"
DOWN = "down"
UNKNOWN = "unknown"
DRAINED = "drained"
FORCED_UP = "forced-up"
FORCED_DOWN = "forced-down"

# Endpoint states that may receive traffic; UNKNOWN joins them when unknown_is_up.
_ELIGIBLE = frozenset((UP, FORCED_UP))


def check_quorum(quorum: Quorum) -> Quorum:
    """Reject a quorum that would silently mean something else (bools are ints in Python)."""
    if isinstance(quorum, bool):
        raise ValueError(f"quorum must be majority, any, all or a positive integer, not {quorum!r}")
    if isinstance(quorum, int):
        if quorum < 1:
            raise ValueError(f"a numeric quorum must be at least 1, not {quorum}")
        return quorum
    if quorum not in ("majority", "any", "all"):
        raise ValueError(f"quorum must be majority, any, all or a positive integer, not {quorum!r}")
    return quorum


def quorum_met(ups: int, voters: int, quorum: Quorum) -> bool:
    """Whether ``ups`` "up" votes out of ``voters`` verdicts make the endpoint up.

    ``majority`` is "not a majority down": at least half up, so a 1-1 split
    between two checkers keeps the endpoint in (see the module's quorum rule).
    """
    if voters == 0:
        return False
    if quorum == "majority":
        return 2 * ups >= voters
    if quorum == "any":
        return ups >= 1
    if quorum == "all":
        return ups == voters
    return ups >= quorum  # type: ignore[operator]  # a number: check_quorum allows only the three words above or an int


def _admin_state(cluster: AdminState, endpoint: AdminState) -> str | None:
    """The state the admin settings impose, or None to follow the health checks."""
    if cluster is AdminState.FORCED_DOWN or endpoint is AdminState.FORCED_DOWN:
        return FORCED_DOWN
    if cluster is AdminState.DRAINED or endpoint is AdminState.DRAINED:
        return DRAINED
    if cluster is AdminState.FORCED_UP or endpoint is AdminState.FORCED_UP:
        return FORCED_UP
    return None


def _fresh_verdicts(observations: tuple[Observation, ...], now: float) -> list[Observation]:
    """The latest fresh observation of each checker; a checker's older verdicts are history."""
    return list(latest_fresh(observations, now, by_checker).values())


class HealthView:
    """Who is up in one snapshot at one moment; read-only and cheap to query.

    Build it with ``HealthView.build``; every method is a dictionary lookup.
    Cluster arguments are cluster names; unknown clusters and endpoints read as
    not up (``state`` raises KeyError instead, since it is asked about a
    specific thing that should exist).
    """

    __slots__ = (
        "_states",
        "_up_endpoints",
        "_cluster_up",
        "_cluster_state",
        "_rtt",
        "_min_rtt",
        "vantages",
        "valid_until",
        "quorum",
        "unknown_is_up",
    )

    def __init__(self) -> None:
        self._states: dict[str, dict[str, str]] = {}  # cluster -> endpoint key -> state
        self._up_endpoints: dict[str, tuple[Endpoint, ...]] = {}
        self._cluster_up: dict[str, bool] = {}
        self._cluster_state: dict[str, str] = {}
        self._rtt: dict[tuple[str, str], float] = {}  # (cluster, vantage) -> ms
        self._min_rtt: dict[str, float] = {}  # cluster -> best over vantages
        self.vantages: frozenset[str] = frozenset()
        self.valid_until: float = math.inf
        self.quorum: Quorum = "majority"
        self.unknown_is_up = True

    @classmethod
    def build(
        cls, snapshot: Snapshot, now: float, quorum: Quorum = "majority", unknown_is_up: bool = True
    ) -> HealthView:
        """Decide every endpoint and cluster of ``snapshot`` as of ``now`` (unix seconds)."""
        view = cls()
        view.quorum = check_quorum(quorum)
        view.unknown_is_up = unknown_is_up
        eligible = _ELIGIBLE | {UNKNOWN} if unknown_is_up else _ELIGIBLE
        valid_until = math.inf
        rtt_samples: dict[tuple[str, str], list[float]] = {}
        for name, cluster in snapshot.clusters.items():
            states: dict[str, str] = {}
            up: list[Endpoint] = []
            for endpoint in cluster.endpoints:
                key = endpoint.key
                fresh = _fresh_verdicts(snapshot.observations.get((name, key), ()), now)
                for obs in fresh:
                    valid_until = min(valid_until, obs.expires)
                state = _admin_state(cluster.admin, endpoint.admin) or _checked_state(fresh, view.quorum)
                states[key] = state
                if state in eligible:
                    up.append(endpoint)
                    for obs in fresh:
                        if obs.up and obs.rtt_ms is not None:
                            rtt_samples.setdefault((name, obs.vantage), []).append(obs.rtt_ms)
            view._states[name] = states
            # The cluster's own tuple when all are up: callers may test identity to skip work.
            view._up_endpoints[name] = cluster.endpoints if len(up) == len(cluster.endpoints) else tuple(up)
            view._cluster_state[name], view._cluster_up[name] = _cluster_verdict(cluster, len(up))
        view._rtt = {key: float(median(samples)) for key, samples in rtt_samples.items()}
        for (name, _vantage), ms in view._rtt.items():
            best = view._min_rtt.get(name)
            view._min_rtt[name] = ms if best is None else min(best, ms)
        view.vantages = frozenset(vantage for _name, vantage in view._rtt)
        view.valid_until = valid_until
        return view

    # -- endpoints ------------------------------------------------------------------------
    def state(self, cluster: str, address: IPAddress | str) -> str:
        """up, down, unknown, drained, forced-up or forced-down: for the admin API and explain."""
        states = self._states[cluster]
        key = str(address)
        if key not in states and isinstance(address, str):
            key = str(ip_address(address))  # "2001:DB8::0010" names the same endpoint
        return states[key]

    def endpoint_states(self, cluster: str) -> Mapping[str, str]:
        """Endpoint (address as text) -> state, for one cluster: for the state history (``history.py``)."""
        return self._states.get(cluster, {})

    def endpoint_up(self, cluster: str, address: IPAddress | str) -> bool:
        """Whether the endpoint may get new traffic (unknown counts when unknown_is_up)."""
        try:
            state = self.state(cluster, address)
        except (KeyError, ValueError):
            return False
        return state in _ELIGIBLE or (state == UNKNOWN and self.unknown_is_up)

    def up_endpoints(self, cluster: str) -> tuple[Endpoint, ...]:
        """The cluster's endpoints that may get traffic, in config order.

        It is the very ``Cluster.endpoints`` tuple when all of them are up.
        """
        return self._up_endpoints.get(cluster, ())

    # -- clusters -------------------------------------------------------------------------
    def cluster_up(self, cluster: str) -> bool:
        return self._cluster_up.get(cluster, False)

    def cluster_state(self, cluster: str) -> str:
        """up, down, drained, forced-up or forced-down (the cluster's own admin state first)."""
        return self._cluster_state[cluster]

    # -- latency --------------------------------------------------------------------------
    def rtt_ms(self, cluster: str, vantage: str) -> float | None:
        """The cluster's RTT as seen from ``vantage``, or None when nobody there measured it.

        The median of the fresh "up" observations' RTTs from that vantage, over
        the cluster's eligible endpoints: one checker with a congested link,
        or one slow endpoint, does not move it, while the minimum would follow
        the single luckiest probe.
        """
        return self._rtt.get((cluster, vantage))

    def min_rtt_ms(self, cluster: str) -> float | None:
        """The best of the cluster's per-vantage RTTs: for clients with no place to start from."""
        return self._min_rtt.get(cluster)

    def rtts(self) -> Mapping[tuple[str, str], float]:
        """Every (cluster, vantage) -> RTT, for explain and metrics."""
        return MappingProxyType(self._rtt)

    def same_decisions(self, other: HealthView, with_rtt: bool) -> bool:
        """Whether the policy chain would decide the same under ``other`` over the same clusters.

        The chain reads which endpoints may take traffic and which clusters are
        up (an "unknown" that became "up" changes neither), the admin states
        (part of the clusters), and, where ``with_rtt`` says a record's chain
        reads them (``latency``), the RTTs, which move with every probe.
        """
        return (
            self._up_endpoints == other._up_endpoints
            and self._cluster_up == other._cluster_up
            and (not with_rtt or self._rtt == other._rtt)
        )


def _checked_state(fresh: list[Observation], quorum: Quorum) -> str:
    voters = ups = 0
    for obs in fresh:
        if obs.up is None:
            continue
        voters += 1
        ups += obs.up
    if voters == 0:
        return UNKNOWN
    return UP if quorum_met(ups, voters, quorum) else DOWN


def _cluster_verdict(cluster: Cluster, up_count: int) -> tuple[str, bool]:
    if cluster.admin is AdminState.FORCED_DOWN:
        return FORCED_DOWN, False
    if cluster.admin is AdminState.DRAINED:
        return DRAINED, False
    if cluster.admin is AdminState.FORCED_UP:
        return FORCED_UP, up_count >= 1
    is_up = up_count >= max(1, cluster.min_healthy)
    return (UP if is_up else DOWN), is_up
