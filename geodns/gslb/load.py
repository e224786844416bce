"""How loaded each cluster is, and what share of new answers the ``shed`` filter sends elsewhere.

Three steps, each a pure function so the simulation test and the server run
the same code:

1. ``reported_load``: the fresh readings of one cluster in a snapshot, made
   into one number.  An operator's reading (source ``admin``) wins while it is
   fresh, as admin states win over health checks; otherwise the median of the
   sources' cluster-wide readings, else the mean of the endpoints' (each the
   median of its sources).  Nothing fresh: ``None``, unknown, never zero.
2. ``tick``: one control interval of one cluster.  The reported load is
   smoothed (an EWMA, time constant ``smoothing``); the *target* share is
   linear between the watermarks (0 at ``low``, 1 at ``high``); the share
   moves towards it by at most ``step`` per interval, and it comes down only
   once the smoothed load is ``hysteresis`` below what the current share
   stands for.  Moving traffic changes the load it reacts to: without these
   brakes a cluster near its limit is thrown out and back every TTL
   (tests/test_gslb_shed_sim.py shows both).  An unknown load sheds nothing:
   the share steps back down to 0.
3. ``ShedController.view``: ticks every cluster with a ``load:`` block on
   the wall-clock grid of its interval (every server ticks at the same
   moments) and returns a ``LoadView``, the immutable thing the policy chain
   reads.  The controller is the one stateful piece; it lives beside the live
   state, off the query path.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from statistics import median
from types import MappingProxyType

from ..config.model import ClusterSpec, LoadSpec
from ..state.model import LoadReport, Snapshot, by_source, latest_fresh
from ..state.table import ADMIN_SOURCE

# The ticks one rebuild catches up at most (a server that slept a day does not loop a day).
MAX_CATCH_UP = 1000
# Shares closer than this are the same decision: the responder's cached decisions survive such a change.
SHARE_EPSILON = 1e-9
# A share within this of its target has arrived: it stops moving (and TTLs go back to normal).
SETTLED = 0.005


def _combine(reports: Iterable[LoadReport], now: float) -> float | None:
    latest = latest_fresh(reports, now, by_source)
    if not latest:
        return None
    admin = latest.get(ADMIN_SOURCE)
    if admin is not None:
        return admin.load
    return float(median(r.load for r in latest.values()))


def reported_load(snapshot: Snapshot, cluster: str, now: float) -> float | None:
    """The cluster's load now from the snapshot's fresh readings (see the module's step 1)."""
    loads = snapshot.loads
    whole = _combine(loads.get((cluster, ""), ()), now)
    if whole is not None:
        return whole
    table = snapshot.clusters.get(cluster)
    if table is None:
        return None
    per_endpoint = [
        x for x in (_combine(loads.get((cluster, e.key), ()), now) for e in table.endpoints) if x is not None
    ]
    return sum(per_endpoint) / len(per_endpoint) if per_endpoint else None


@dataclass(frozen=True, slots=True)
class ShedState:
    """One cluster's controller state after a tick."""

    load: float | None  # the latest reported load (None: unknown)
    smoothed: float | None  # its EWMA (None: unknown)
    share: float  # of new answers sent elsewhere, 0..1 (1: out unless nothing else)
    target: float  # where the share is heading
    moving: bool  # the share changed this tick or has not reached its target
    applied: float = 0.0  # the share the smoothed load reflects: the share's own EWMA


IDLE = ShedState(None, None, 0.0, 0.0, False)

# Below this fraction kept, the traffic left says too little about the demand shed (see ``settle_share``).
MIN_KEPT = 0.05


def target_share(load: float, spec: LoadSpec) -> float:
    """The watermark line: 0 at or below ``low``, 1 at or above ``high``, linear between."""
    if load <= spec.low:
        return 0.0
    if load >= spec.high:
        return 1.0
    return (load - spec.low) / (spec.high - spec.low)


def settle_share(load: float, applied: float, spec: LoadSpec) -> float:
    """The share at which the cluster's load and share end up on the watermark line.

    The load was measured while ``applied`` of the answers went elsewhere, so
    the demand is about ``load / (1 - applied)``; shedding s of it leaves
    ``demand * (1 - s)``, and ``s == target_share(demand * (1 - s))`` solves to
    ``(demand - low) / (demand + high - low)``.  Aiming there, rather than at
    ``target_share(load)``, is what lets the loop settle: the latter reacts to
    each 0.01 of load with 0.05 of share (for 0.7/0.9), and to its own effect
    as if it were news.  A load at or above ``high`` still means out (share 1).
    """
    if load >= spec.high:
        return 1.0
    demand = load / max(1.0 - applied, MIN_KEPT)
    if demand <= spec.low:
        return 0.0
    return min(1.0, (demand - spec.low) / (demand + spec.high - spec.low))


def tick(state: ShedState, load: float | None, spec: LoadSpec, *, damped: bool = True) -> ShedState:
    """One interval of one cluster (see the module's step 2).

    ``damped=False`` is the controller without brakes (the watermark line
    applied to each raw reading, no smoothing, no step bound, no hysteresis):
    only for the simulation that shows why they exist.
    """
    if load is None:
        share = max(0.0, state.share - spec.step) if damped else 0.0
        return ShedState(None, None, share, 0.0, share != state.share or share > 0.0)
    if not damped:
        target = target_share(load, spec)
        return ShedState(load, load, target, target, target != state.share, target)
    alpha = 1.0 - math.exp(-spec.interval / spec.smoothing)
    smoothed = load if state.smoothed is None else state.smoothed + alpha * (load - state.smoothed)
    up = settle_share(smoothed, state.applied, spec)
    down = settle_share(smoothed + spec.hysteresis, state.applied, spec)
    if up > state.share:
        target = up
    elif down < state.share:
        target = down
    else:
        target = state.share
    if abs(target - state.share) < SETTLED:
        target = state.share  # close enough: a move this small would only stir the caches
    delta = max(-spec.step, min(spec.step, target - state.share))
    share = min(1.0, max(0.0, state.share + delta))
    if abs(share - target) < SHARE_EPSILON:
        share = target
    applied = state.applied + alpha * (share - state.applied)
    return ShedState(load, smoothed, share, target, share != state.share or share != target, applied)


@dataclass(frozen=True)
class LoadView:
    """What the policy chain and the views read: per cluster its load and shed share, as of one tick.

    ``valid_until``: the next tick of a cluster whose share is moving or that
    has a load (rebuild the live view then); ``inf`` when nothing is loaded.
    """

    states: Mapping[str, ShedState]
    specs: Mapping[str, LoadSpec]
    valid_until: float = math.inf

    def share(self, cluster: str) -> float:
        state = self.states.get(cluster)
        return 0.0 if state is None else state.share

    def ttl(self, clusters: Iterable[str], ttl: int) -> int:
        """``ttl`` capped by the ``load.ttl`` of those of ``clusters`` whose share is moving."""
        for name in clusters:
            state = self.states.get(name)
            if state is not None and state.moving:
                ttl = min(ttl, self.specs[name].ttl)
        return ttl

    def same_decisions(self, other: LoadView) -> bool:
        """Whether the chain decides alike (same shares) and answers carry the same TTL caps."""
        mine, theirs = self.states, other.states
        if mine.keys() != theirs.keys():
            return False
        return all(
            abs(s.share - theirs[n].share) < SHARE_EPSILON and s.moving == theirs[n].moving for n, s in mine.items()
        )


EMPTY = LoadView(MappingProxyType({}), MappingProxyType({}))


class ShedController:
    """Ticks each cluster with a ``load:`` block on its interval's wall-clock grid; holds their states."""

    def __init__(self, clusters: Mapping[str, ClusterSpec], previous: ShedController | None = None):
        self.specs = {name: spec.load for name, spec in clusters.items() if spec.load is not None}
        self._states: dict[str, ShedState] = {}
        self._ticks: dict[str, int] = {}  # cluster -> the grid index of its last tick
        if previous is not None:  # a reload keeps the state of clusters still configured
            for name in self.specs:
                if name in previous._states:
                    self._states[name], self._ticks[name] = previous._states[name], previous._ticks[name]

    def view(self, snapshot: Snapshot, now: float) -> LoadView:
        if not self.specs:
            return EMPTY
        until = math.inf
        for name, spec in self.specs.items():
            index = math.floor(now / spec.interval)
            last = self._ticks.get(name)
            state = self._states.get(name, IDLE)
            load = reported_load(snapshot, name, now)
            if last is None or index > last:
                # Ticks this server slept through are caught up, with the reading it has now; an
                # idle cluster (nothing known, nothing shed) slept through nothing worth replaying.
                idle = state.load is None and state.share == 0.0
                for _ in range(1 if last is None or idle else min(index - last, MAX_CATCH_UP)):
                    state = tick(state, load, spec)
                self._states[name], self._ticks[name] = state, index
            # A reading that arrived after this slot's tick (the tick saw none) is taken at the next one:
            # without this an idle cluster would wait for some other change of the table.
            fresh = state.load is None and load is not None
            if state.moving or state.load is not None or state.share > 0.0 or fresh:
                until = min(until, (index + 1) * spec.interval)
        return LoadView(MappingProxyType(dict(self._states)), MappingProxyType(dict(self.specs)), until)
