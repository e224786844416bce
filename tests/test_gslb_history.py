"""The server's memory of endpoint state changes and of the checkers it has seen (gslb/history.py)."""

from __future__ import annotations

from types import MappingProxyType

from geodns.answer.responder import LiveView
from geodns.gslb.health import HealthView
from geodns.gslb.history import StateHistory
from geodns.state.model import Observation, Snapshot
from tests.test_gslb_policy import AP1, EU1, US1, obs


def live(at: float, clusters, observations=()) -> LiveView:
    table: dict = {}
    for o in observations:
        table[(o.cluster, o.endpoint)] = table.get((o.cluster, o.endpoint), ()) + (o,)
    snapshot = Snapshot(1, MappingProxyType({c.name: c for c in clusters}), MappingProxyType(table), at)
    return LiveView(snapshot, HealthView.build(snapshot, at), {}, at, 0)


def states(history: StateHistory, cluster: str, endpoint: str) -> list[tuple[float, str]]:
    return [(t.at, t.state) for t in history.transitions(cluster, endpoint)]


def test_only_changes_are_kept_with_the_time_the_server_saw_them():
    history = StateHistory()
    first = live(1_000_000.0, [US1, EU1], [obs("us-east-1", "192.0.2.10", True)])
    history.note(first)
    history.note(first)  # the same state again: nothing new
    history.note(live(1_000_005.0, [US1, EU1], [obs("us-east-1", "192.0.2.10", True)]))  # nothing changed
    history.note(live(1_000_009.0, [US1, EU1], [obs("us-east-1", "192.0.2.10", False)]))
    assert states(history, "us-east-1", "192.0.2.10") == [(1_000_000.0, "up"), (1_000_009.0, "down")]
    assert states(history, "eu-west-1", "198.51.100.10") == [(1_000_000.0, "unknown")]
    assert history.since == 1_000_000.0


def test_bounded_and_forgets_what_left_the_table():
    history = StateHistory(size=3)
    for i in range(10):
        history.note(live(1_000_000.0 + i, [US1, AP1], [obs("us-east-1", "192.0.2.10", i % 2 == 0)]))
    assert [s for _, s in states(history, "us-east-1", "192.0.2.10")] == ["down", "up", "down"]  # the last 3
    history.note(live(1_000_020.0, [US1]))  # ap-southeast-1 removed from the table
    assert states(history, "ap-southeast-1", "203.0.113.10") == []
    assert states(history, "us-east-1", "192.0.2.10")[-1] == (1_000_020.0, "unknown")


def test_checkers_are_remembered_after_their_reports_leave_the_table():
    history = StateHistory()
    seen = Observation("chk-old", "eu-west", "us-east-1", "192.0.2.10", True, 5.0, 999_990.0, 1_000_010.0)
    history.note(live(1_000_000.0, [US1], [seen, obs("us-east-1", "192.0.2.10", True)]))
    history.note(live(1_000_100.0, [US1], [obs("us-east-1", "192.0.2.10", True)]))  # chk-old's report expired
    assert history.checkers["chk-old"] == ("eu-west", 999_990.0)
    assert history.checkers["chk-us-east"] == ("us-east", 999_999.0)
