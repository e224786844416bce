"""The last state changes of every endpoint, and the checkers seen, as this server saw them: for the status page.

The store keeps only the present (the latest observation per checker), so a
flapping endpoint looks steady between two page loads.  The server notes each
new live view here (``Server._on_snapshot``, and the status page for states
rebuilt because observations expired), never on the query path: a dict
comparison per cluster, and a walk over a cluster's endpoints only when one of
them changed.  Bounded: ``RING`` changes per endpoint, endpoints that leave the
table leave the history; ``CHECKERS`` checkers.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from ..state.model import Snapshot
from .health import HealthView


class Live(Protocol):
    """What the history reads of the GSLB responder's live view (``responder.LiveView``)."""

    @property
    def built_at(self) -> float: ...
    @property
    def health(self) -> HealthView: ...
    @property
    def snapshot(self) -> Snapshot: ...


RING = 12  # state changes kept per endpoint
CHECKERS = 1000  # checkers remembered after their reports left the table (the most recent kept)


@dataclass(frozen=True, slots=True)
class Transition:
    at: float  # unix time the server's live view first showed ``state``
    state: str  # up, down, unknown, drained, forced-up, forced-down (HealthView.state)


class StateHistory:
    """Per (cluster, endpoint): its last ``RING`` states with the time each began."""

    def __init__(self, size: int = RING) -> None:
        self.size = size
        self.since: float | None = None  # when the first state was noted
        self._rings: dict[tuple[str, str], deque[Transition]] = {}
        self._last: dict[str, Mapping[str, str]] = {}  # cluster -> endpoint states as last noted
        self._noted: object = None
        self._clusters: object = None
        self._observations: object = None
        # checker id -> (vantage, time of its latest report): a checker that stopped reporting
        # vanishes from the table once its observations expire; the page still names it, as silent.
        self.checkers: dict[str, tuple[str, float]] = {}

    def note(self, state: Live) -> None:
        """Append every endpoint whose state differs from its last noted one (idempotent per state)."""
        if state is self._noted:
            return
        self._noted = state
        at, health, clusters = state.built_at, state.health, state.snapshot.clusters
        if self.since is None:
            self.since = at
        for name in clusters:
            states = health.endpoint_states(name)
            if states == self._last.get(name):
                continue
            self._last[name] = dict(states)
            for endpoint, now in states.items():
                ring = self._rings.get((name, endpoint))
                if ring is None:
                    ring = self._rings[name, endpoint] = deque(maxlen=self.size)
                if not ring or ring[-1].state != now:
                    ring.append(Transition(at, now))
        if state.snapshot.observations is not self._observations:
            self._observations = state.snapshot.observations
            self._note_checkers(self._observations)
        if clusters is not self._clusters:  # the table changed: forget what left it
            self._clusters = clusters
            for key in [k for k in self._rings if k[1] not in self._last.get(k[0], {}) or k[0] not in clusters]:
                del self._rings[key]
            for name in [n for n in self._last if n not in clusters]:
                del self._last[name]

    def _note_checkers(self, observations) -> None:
        latest: dict[str, tuple[str, float]] = {}
        for per_endpoint in observations.values():
            for obs in per_endpoint:
                seen = latest.get(obs.checker)
                if seen is None or obs.at > seen[1]:
                    latest[obs.checker] = (obs.vantage, obs.at)
        self.checkers.update(latest)
        if len(self.checkers) > CHECKERS:
            keep = sorted(self.checkers.items(), key=lambda kv: kv[1][1])[-CHECKERS:]
            self.checkers = dict(keep)

    def transitions(self, cluster: str, endpoint: str) -> tuple[Transition, ...]:
        """Oldest first; the last one is the endpoint's state now (empty: never noted)."""
        return tuple(self._rings.get((cluster, endpoint), ()))
