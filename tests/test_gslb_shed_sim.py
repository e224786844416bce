"""Shedding under feedback (issue 17): moving traffic changes the load it reacts to.

A pure simulation with the real controller (``gslb.load.tick``), the real
``shed`` filter and exact decisions (``policy.decision``): N clusters with
capacities, a seeded population of resolvers that each cache their answer for
its TTL and then ask again, one cluster's home demand over its capacity.  The
damped controller settles, with every cluster under its high watermark; the
same model without the brakes keeps throwing the hot cluster's clients out and
back, which is what the test is there to catch.
"""

from __future__ import annotations

import ipaddress
import math
import random
from dataclasses import dataclass
from types import MappingProxyType

from geodns.config.model import LoadSpec
from geodns.geo.location import UNKNOWN
from geodns.gslb.health import HealthView
from geodns.gslb.load import IDLE, LoadView, target_share, tick
from geodns.gslb.model import Client, Context
from geodns.gslb.policy import decision
from geodns.state.model import Snapshot
from tests.test_gslb_policy import cluster, ep, record

SPEC = LoadSpec(low=0.7, high=0.9, smoothing=20.0, step=0.1, interval=5.0, hysteresis=0.05, ttl=10)
RECORD_TTL = 30
CAPACITY = {"c0": 100.0, "c1": 150.0, "c2": 120.0, "c3": 200.0}  # requests/s each cluster can take
DEMAND = {"c0": 130.0, "c1": 60.0, "c2": 50.0, "c3": 80.0}  # requests/s of each home's clients
RESOLVERS = 8000
SECONDS = 1800


@dataclass
class Resolver:
    home: str
    demand: float
    at: str = ""  # the cluster its cached answer names
    refresh: float = 0.0  # when its cache expires


@dataclass
class Run:
    shares: list[dict[str, float]]  # per interval
    loads: list[dict[str, float]]  # per interval, as reported (load = traffic / capacity)


def simulate(damped: bool, seed: int = 1) -> Run:
    rng = random.Random(seed)
    names = list(CAPACITY)
    table = {n: cluster(n, "r", ep(f"192.0.2.{i + 1}")) for i, n in enumerate(names)}
    snapshot = Snapshot(1, MappingProxyType(table))
    health = HealthView.build(snapshot, 0.0)
    # Each home's record: its own cluster first, then the others; `shed` then `first_n` answer one.
    records = {home: record([home] + [n for n in names if n != home], ("shed", "first_n")) for home in names}
    client = Client(ipaddress.ip_address("192.0.2.200"), UNKNOWN, None)
    resolvers = [
        Resolver(
            home, rng.uniform(0.5, 1.5) * DEMAND[home] / (RESOLVERS // len(names)), refresh=rng.uniform(0, RECORD_TTL)
        )
        for home in names
        for _ in range(RESOLVERS // len(names))
    ]
    due: dict[int, list[Resolver]] = {}  # second -> the resolvers whose cache expires then
    for r in resolvers:
        r.at = r.home  # before the run everyone sits at home
        due.setdefault(math.ceil(r.refresh), []).append(r)
    states = {n: IDLE for n in names}
    shares_by_home: dict[str, tuple[list[str], list[float]]] = {}
    view = LoadView(MappingProxyType({}), MappingProxyType({}))
    run = Run([], [])
    for second in range(SECONDS):
        if second % int(SPEC.interval) == 0:
            traffic = {n: 0.0 for n in names}
            for r in resolvers:
                traffic[r.at] += r.demand
            loads = {n: traffic[n] / CAPACITY[n] for n in names}
            states = {n: tick(states[n], loads[n], SPEC, damped=damped) for n in names}
            view = LoadView(MappingProxyType(states), MappingProxyType({n: SPEC for n in names}))
            run.loads.append(loads)
            run.shares.append({n: s.share for n, s in states.items()})
            shares_by_home = {}
            for home, rec in records.items():
                listed = decision(Context(snapshot, health, {}, rec, random.Random(0), view), client, 4)
                shares_by_home[home] = ([s.clusters[0] for s in listed.selections], list(listed.shares))
        for r in due.pop(second, ()):
            options, weights = shares_by_home[r.home]
            r.at = rng.choices(options, weights)[0]
            r.refresh = second + view.ttl(records[r.home].clusters, RECORD_TTL)
            due.setdefault(int(r.refresh), []).append(r)
    return run


def settled(run: Run, last: int) -> tuple[float, float]:
    """Over the last ``last`` intervals: the largest change of any share between two intervals,
    and the highest load any cluster reported."""
    tail_shares, tail_loads = run.shares[-last:], run.loads[-last:]
    moves = max(abs(a[n] - b[n]) for a, b in zip(tail_shares, tail_shares[1:]) for n in a)
    return moves, max(load for loads in tail_loads for load in loads.values())


def test_damped_shedding_settles_under_the_high_watermark():
    run = simulate(damped=True)
    # Reacts: the hot cluster sheds from its first report on, and keeps shedding more while it is over.
    assert run.loads[0]["c0"] > SPEC.high and 0.0 < run.shares[0]["c0"] < run.shares[1]["c0"]
    last = len(run.shares) // 3
    moves, peak = settled(run, last)
    tail = [s["c0"] for s in run.shares[-last:]]
    print(f"damped: largest share move {moves:.4f}, c0 share {min(tail):.3f}..{max(tail):.3f}, peak load {peak:.3f}")
    assert moves <= 0.01  # converged: the share has stopped moving ...
    assert max(tail) - min(tail) <= 0.03  # ... and does not drift either
    assert peak < SPEC.high  # nothing runs over its high watermark
    assert 0.3 < tail[-1] < 0.6  # c0 sheds part of its clients, not all of them
    # On the watermark line, within the hysteresis band: the share lies between what the load
    # stands for and what a load `hysteresis` higher would.
    load = sum(loads["c0"] for loads in run.loads[-last:]) / last
    assert target_share(load, SPEC) - 0.02 <= tail[-1] <= target_share(load + SPEC.hysteresis, SPEC) + 0.02


def test_without_damping_the_same_model_oscillates():
    run = simulate(damped=False)
    last = len(run.shares) // 3
    moves, peak = settled(run, last)
    tail = [s["c0"] for s in run.shares[-last:]]
    print(f"undamped: largest share move {moves:.4f}, c0 share {min(tail):.2f}..{max(tail):.2f}, peak load {peak:.3f}")
    assert moves > 0.3 and max(tail) - min(tail) > 0.5
    assert peak > SPEC.high
