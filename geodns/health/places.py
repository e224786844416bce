"""Partition or outage: what a checker may conclude when its probes fail.

A failing probe says "this checker cannot reach that endpoint"; whether the
endpoint is down or the checker is cut off is decided by *places*, not by
counting endpoints.  A place is a region: the clusters of one region share its
power and network and fail together, while two regions failing in the same
probe interval is far less likely than the one link of this checker failing.

The rules, applied by the checker after every probe result:

1. **A down vote waits for news from elsewhere.**  An endpoint's down verdict
   is *confirmed* once this checker has reached anything (any endpoint answered)
   after that endpoint's failing streak began.  Until then the checker
   withholds that vote (no verdict).  A partition makes every probe fail within
   one interval, so the vote it would cast is never confirmed: one endpoint
   whose ``fall`` comes first (``fall: 1``, or a shorter interval) is not taken
   out before the checker notices it lost everything.
2. **Everything lost at once, in two or more places, is a partition.**  When the
   latest probe of every endpoint this checker probes failed, the places lost
   *at once* are those that were still answering when the checker last reached
   anything (a place already down before then is an old outage the checker saw
   while it could still see).  Two or more of them: the checker is *suspect*
   and votes nothing until any probe succeeds again.  If all those places
   really died together, every checker goes suspect and the DNS side fails open
   (answers them), as principle 3 asks.
3. **One place lost at once is an outage** -- a single dead cluster or region
   must be taken out, even by a lone checker -- **unless every other checker
   that judges that place sees it up** (at least one such checker, and each has
   an "up" verdict on at least one endpoint there): then the fault is on this
   checker's side, a partition.  A checker with no verdict (itself suspect, or
   not decided yet) does not see the place up, so two cut-off checkers out of
   three do not excuse each other and the quorum takes the place out.

The functions here are pure; ``Checker`` keeps the counters they read.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..state.model import Cluster, Snapshot, by_checker, latest_fresh

CheckKey = tuple[str, str]  # (cluster, endpoint address as text)


def place_of(cluster: Cluster) -> str:
    """The place a cluster's endpoints are in: its region."""
    return cluster.region


def lost_everything(probed: int, failing: int) -> bool:
    """Whether the latest probe of every endpoint the checker probes failed (and there is one)."""
    return probed > 0 and failing == probed


def confirmed(failing_since: float | None, last_reach: float) -> bool:
    """Whether a down verdict may be cast (rule 1): the checker reached something after the
    endpoint's failing streak began (``failing_since``; None when the latest probe succeeded)."""
    return failing_since is None or last_reach >= failing_since


def lost_at_once(failing: Iterable[tuple[str, float | None]], last_reach: float) -> set[str]:
    """The places lost at once (rule 2), from (place, failing_since) of every endpoint when all
    are failing: those with an endpoint that began failing after the checker last reached anything."""
    return {place for place, since in failing if since is not None and since > last_reach}


def others_see_up(snapshot: Snapshot, keys: Iterable[CheckKey], me: str, now: float) -> bool:
    """Rule 3's test: at least one other checker has a fresh observation on ``keys``, and every
    such checker's latest fresh verdicts include an "up" on at least one of them."""
    sees: dict[str, bool] = {}  # checker -> has an "up" on one of them
    for key in keys:
        others = (obs for obs in snapshot.observations.get(key, ()) if obs.checker != me)
        for checker, obs in latest_fresh(others, now, by_checker).items():
            sees[checker] = sees.get(checker, False) or obs.up is True
    return bool(sees) and all(sees.values())


def judge_loss(places: int, others_up: bool) -> tuple[bool, str]:
    """(partition?, why) for a checker that lost everything, ``places`` of them at once (rules 2, 3)."""
    if places >= 2:
        return True, f"every endpoint failing, {places} places lost at once"
    if others_up:
        return True, "every endpoint failing; the one place lost is up for every other checker"
    return False, "every endpoint failing; one place lost: an outage"
