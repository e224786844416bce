"""The drills: what each breaks, how it mends it, and what it promises.

Every scenario runs the same timeline: record a baseline, inject the fault,
hold it, recover, record the aftermath; ``report.analyse`` then measures.
A scenario that needs what the deployment lacks (a process to stop, a Sentinel)
raises ``DrillError`` with the reason before breaking anything.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..dnsclient import CLIENTS
from ..stack import procs
from ..stack.topology import APP, FAST
from .recorder import Recorder
from .report import Phases, Report, analyse
from .target import Deployment, DrillError, run_quiet

SCENARIOS = (
    "cluster-down",
    "cluster-slow",
    "flapping",
    "checker-partition",
    "redis-down",
    "dns-server-down",
    "redis-failover",
    "cluster-overload",
    "agent-down",
)


@dataclass
class Options:
    cluster: str | None = None  # the cluster to break (default per scenario)
    record: str | None = None  # the name to ask (default per scenario)
    baseline: float = 2.0  # seconds recorded before the fault
    hold: float | None = None  # seconds the fault lasts (default: window + 1.5 s)
    after: float | None = None  # seconds recorded after recovery (default: rise x interval + 2 s)
    period: float = 0.1  # seconds between one client's queries
    timeout: float = 0.5  # per DNS attempt
    slow_ms: int | None = None  # cluster-slow delay (default: 100, below the check timeout)


def run(name: str, dep: Deployment, opts: Options) -> Report:
    if name not in SCENARIOS:
        raise DrillError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    return _SCENARIOS[name](dep, opts)


def _timeline(
    dep: Deployment,
    opts: Options,
    *,
    scenario: str,
    record: str,
    cluster: str | None,
    expect: str,
    inject: Callable[[Recorder, Phases], object],
    recover: Callable[[Recorder, Phases], object],
) -> Report:
    """Baseline, fault, hold, recovery, aftermath; the scenario supplies inject and recover."""
    window = dep.timing.promise
    hold = opts.hold if opts.hold is not None else window + 1.5
    after = opts.after if opts.after is not None else dep.timing.rise * dep.timing.interval + 2.0
    phases = Phases(
        scenario, record, 0.0, 0.0, 0.0, cluster, dep.addresses(cluster) if cluster else set(), expect, window
    )
    rec = Recorder(dep.dns, record, CLIENTS, opts.period, opts.timeout).start()
    try:
        rec.sleep(opts.baseline)
        phases.t_fault = rec.mark("fault")
        inject(rec, phases)
        rec.sleep(max(0.0, phases.t_fault + hold - rec.now()))
        phases.t_recover = rec.mark("recover")
        recover(rec, phases)
        rec.sleep(max(0.0, phases.t_recover + after - rec.now()))
        phases.t_end = rec.now()
    finally:
        rec.stop()
        dep.cleanup()
    return analyse(rec.samples, phases, dep.clusters)


# -- cluster faults (work against any deployment with ingress control URLs) ------------


def cluster_down(dep: Deployment, opts: Options) -> Report:
    cluster = opts.cluster or "ap-southeast-1"
    return _timeline(
        dep,
        opts,
        scenario="cluster-down",
        record=opts.record or APP,
        cluster=cluster,
        expect="shift",
        inject=lambda rec, ph: dep.set_mode(cluster, "down"),
        recover=lambda rec, ph: dep.set_mode(cluster, "up"),
    )


def cluster_slow(dep: Deployment, opts: Options) -> Report:
    """Slower than the others but still passing its check: only a latency policy moves traffic,
    so the default record is the stack's fast.<zone> ([healthy, latency, weighted])."""
    cluster = opts.cluster or "eu-west-1"
    ms = opts.slow_ms or max(30, min(100, int(dep.timing.timeout * 1000 * 0.5)))

    def inject(rec: Recorder, ph: Phases) -> None:
        dep.set_mode(cluster, "slow", ms)
        ph.notes.append(
            f"{cluster} answers its checks {ms} ms late (check timeout "
            f"{dep.timing.timeout * 1000:.0f} ms): up, but slow; clients whose nearest "
            f"checker vantage measures it move to faster clusters"
        )

    if opts.after is None:
        # The RTT average (alpha 0.3) decays over several probes, and small moves are
        # published only at the readers' resync (5 s): coming back takes longer than leaving.
        opts.after = 8 * dep.timing.interval + 5.5
    return _timeline(
        dep,
        opts,
        scenario="cluster-slow",
        record=opts.record or FAST,
        cluster=cluster,
        expect="shift",
        inject=inject,
        recover=lambda rec, ph: dep.set_mode(cluster, "up"),
    )


def flapping(dep: Deployment, opts: Options) -> Report:
    cluster = opts.cluster or "ap-southeast-1"
    before: dict = {}

    period = int(dep.timing.interval * 1000 * 0.6)

    def inject(rec: Recorder, ph: Phases) -> None:
        before.update(dep.set_mode(cluster, "flap", period))

    def recover(rec: Recorder, ph: Phases) -> None:
        state = dep.set_mode(cluster, "up")
        failures = state["failures"] - before.get("failures", 0)
        ph.checks.append(
            ("the ingress really failed in between", failures >= 2, f"{failures} failed probes answered while flapping")
        )
        ph.notes.append(
            f"{cluster} failed {period} ms out of every {3 * period} ms, so every prober saw "
            f"failures between successes; rise/fall {dep.timing.rise}/{dep.timing.fall} "
            f"must hold its verdict"
        )

    return _timeline(
        dep,
        opts,
        scenario="flapping",
        record=opts.record or APP,
        cluster=None,
        expect="steady",
        inject=inject,
        recover=recover,
    )


# -- process faults (the local stack) ---------------------------------------------------


def netns_reason() -> str | None:
    """None when this machine lets us create a network namespace, else why not."""
    if shutil.which("unshare") is None:
        return "unshare is not installed"
    try:
        result = run_quiet(["unshare", "-n", "true"])
    except Exception as exc:  # noqa: BLE001 - any failure means "not here"
        return f"unshare failed: {exc}"
    return (
        None
        if result.returncode == 0
        else f"cannot create a network namespace: {result.stderr.decode(errors='replace').strip()}"
    )


def checker_partition(dep: Deployment, opts: Options) -> Report:
    """Cut checker-eu off from every ingress while it still reaches Redis: it must go suspect
    and cast no vote, so no healthy cluster is taken out (answers stay put)."""
    name = "checker-eu"
    state = dep.state()
    info = dep.process(name)
    reason = netns_reason() or (None if state.store_unix else "the stack's store has no unix socket (Sentinel mode)")

    def inject(rec: Recorder, ph: Phases) -> None:
        dep.stop_process(name)
        if reason is None:
            argv = list(info.argv)
            argv[argv.index("--store") + 1] = state.store_unix  # type: ignore[assignment]  # set: ``reason`` is None only then
            if "--http-listen" in argv:  # a namespace of its own has no loopback address to serve on
                at = argv.index("--http-listen")
                del argv[at : at + 2]
            dep.spawn_extra(
                f"{name}-partitioned", ["unshare", "-n", *argv], Path(info.log).with_name(f"{name}-partitioned.log")
            )
            ph.notes.append(
                f"{name} runs in a network namespace of its own (unshare -n): no route to any "
                f"ingress, Redis over its unix socket: a real partition"
            )
            abstains, s = _store_check(
                dep,
                3 * dep.timing.promise + 5,
                "suspect",
                lambda snap: (
                    (votes := [o.up for obs in snap.observations.values() for o in obs if o.checker == name])
                    and all(v is None for v in votes)
                ),
            )
            ph.checks.append(
                (f"the partitioned {name} went suspect and cast no vote", abstains, f"{s:.2f}s after the partition")
            )
        else:
            ph.notes.append(
                f"network namespaces unavailable ({reason}): {name} is STOPPED instead, a "
                f"stand-in for a partition (its observations expire, it does not go suspect)"
            )

    def recover(rec: Recorder, ph: Phases) -> None:
        dep.cleanup()
        dep.start_process(name)

    return _timeline(
        dep,
        opts,
        scenario="checker-partition",
        record=opts.record or APP,
        cluster=None,
        expect="steady",
        inject=inject,
        recover=recover,
    )


def _store_check(dep: Deployment, timeout: float, what: str, ok: Callable) -> tuple[bool, float]:
    """Poll the store until ``ok(snapshot)``; returns (ok, seconds)."""
    from ...state.store import open_store

    async def probe() -> bool:
        store = open_store(dep.store)  # type: ignore[arg-type]  # store drills stop and start the local stack's processes, and its state file names the store
        try:
            return bool(ok(await store.load()))
        except Exception:  # noqa: BLE001 - unreachable or empty: poll again
            return False
        finally:
            await store.close()

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if asyncio.run(probe()):
            return True, time.monotonic() - started
        time.sleep(0.1)
    return False, time.monotonic() - started


def redis_down(dep: Deployment, opts: Options) -> Report:
    """Drain a cluster, then kill Redis (SIGKILL), wipe its data (the AOF: a replaced host) and start
    it again empty: the servers answer from their snapshots throughout, then restore the table from
    them, drain included (not from the config); the checkers report again.  The drain is undone at
    the end."""
    from .failover import _until_every_server, _write

    if dep.state().mode != "redis":
        raise DrillError(f"redis-down needs a stack with one Redis (this one is {dep.state().mode!r})")
    drained = opts.cluster or "ap-southeast-1"
    addresses = dep.addresses(drained)
    redis_info = dep.process("redis")
    data_dir = Path(redis_info.argv[redis_info.argv.index("--dir") + 1]) if "--dir" in redis_info.argv else None

    def inject(rec: Recorder, ph: Phases) -> None:
        dep.stop_process("redis", signal.SIGKILL)
        if data_dir is not None and data_dir.is_dir():
            for item in data_dir.iterdir():  # what Redis persisted: it comes back empty
                shutil.rmtree(item) if item.is_dir() else item.unlink()
        ph.notes.append(
            f"{drained} drained before the baseline; Redis killed with SIGKILL and its data "
            f"directory wiped: it comes back empty"
        )

    def recover(rec: Recorder, ph: Phases) -> None:
        port = int(dep.process("redis").address.rsplit(":", 1)[1])
        info = dep.start_process("redis")
        procs.wait_until(lambda: procs.redis_ping(port), 10, "Redis to answer PING again", info)
        seeded, s = _store_check(dep, 10, "seeded", lambda snap: snap.version > 0 and snap.clusters)
        ph.checks.append(("the servers seeded the empty Redis again", seeded, f"{s:.2f}s after restart"))
        kept, s = _store_check(
            dep, 10, "drain", lambda snap: drained in snap.clusters and snap.clusters[drained].admin.value == "drained"
        )
        ph.checks.append(
            (
                f"the drain of {drained} survived (restored from the servers' snapshots)",
                kept,
                f"{s:.2f}s after restart" if kept else "the store has it undrained or missing",
            )
        )
        voters, s = _store_check(
            dep, 10, "checkers", lambda snap: len({o.checker for obs in snap.observations.values() for o in obs}) >= 2
        )
        ph.checks.append(("both checkers report again", voters, f"{s:.2f}s after restart"))

    wrote, _took, error = _write(dep.store, drained, "drained", 10)  # type: ignore[arg-type]  # as in _store_check
    if not wrote:
        raise DrillError(f"could not drain {drained} through the store before the drill: {error}")
    try:
        moved, took = _until_every_server(
            dep,
            Recorder(dep.dns, APP, {}, opts.period, opts.timeout),
            CLIENTS["SG"],
            lambda a: bool(a) and not a & addresses,
            10,
        )
        if not moved:
            raise DrillError(f"the drain of {drained} did not reach every DNS server within 10 s")
        report = _timeline(
            dep,
            opts,
            scenario="redis-down",
            record=opts.record or APP,
            cluster=None,
            expect="steady",
            inject=inject,
            recover=recover,
        )
    finally:
        _write(dep.store, drained, "active", 10)  # type: ignore[arg-type]  # as in _store_check
    return report


def dns_server_down(dep: Deployment, opts: Options) -> Report:
    """Crash one DNS server (SIGKILL): clients that ask it first get their answer from the other."""
    if len(dep.dns) < 2 or not dep.has_process("geodns-2"):
        raise DrillError("dns-server-down needs a stack with two DNS servers")
    victim = dep.process("geodns-2").address

    def inject(rec: Recorder, ph: Phases) -> None:
        dep.stop_process("geodns-2", signal.SIGKILL)
        ph.notes.append(
            f"geodns-2 ({victim}) killed with SIGKILL; clients ask the servers in turn, "
            f"as resolvers do with several NS records"
        )

    def recover(rec: Recorder, ph: Phases) -> None:
        from ..dnsclient import ask

        dep.start_process("geodns-2")
        started = time.monotonic()
        back = rec.wait_for(lambda: ask(victim, APP, "A", None, 0.3).rcode == "NOERROR", 30)
        ph.checks.append(("geodns-2 answers again after restart", back, f"{time.monotonic() - started:.2f}s"))

    report = _timeline(
        dep,
        opts,
        scenario="dns-server-down",
        record=opts.record or APP,
        cluster=None,
        expect="steady",
        inject=inject,
        recover=recover,
    )
    missed = report.failed_attempts.get(victim, 0)
    report.checks.append(
        {
            "name": "the stopped server really was asked (and failed)",
            "ok": missed > 0,
            "detail": f"{missed} attempts at {victim} failed and were retried elsewhere",
        }
    )
    report.passed = report.passed and missed > 0
    return report


def agent_down(dep: Deployment, opts: Options) -> Report:
    """Kill one cluster's discovery agent (SIGKILL, as a crashed pod): its lease lapses and its
    registrations turn stale, but stay answered for the grace, and the health checks still decide,
    so answers do not change.  Then start it again: it renews the same registrations."""
    state = dep.state()
    if not state.discovery:
        raise DrillError("agent-down needs a stack whose clusters register through agents (geodns stack --discovery)")
    cluster = opts.cluster or "ap-southeast-1"
    name = f"agent-{cluster}"
    dep.process(name)  # refuses an unknown cluster before breaking anything
    lease = float(state.discovery["lease"])
    if opts.hold is None:
        opts.hold = max(dep.timing.promise + 1.5, lease + 3.0)  # long enough for the lease to lapse

    def lapsed(snap) -> bool:
        held = snap.leases.get(cluster)
        return held is not None and held.expires < time.time()

    def inject(rec: Recorder, ph: Phases) -> None:
        dep.stop_process(name, signal.SIGKILL)
        stale, s = _store_check(dep, lease + 5, "lapsed", lapsed)
        ph.checks.append((f"{cluster}'s lease lapsed: its registrations are stale", stale, f"{s:.2f}s after the kill"))
        ph.notes.append(
            f"{name} killed with SIGKILL; its lease ({lease:g}s) lapses, and its registrations stay "
            f"answered (stale) for the grace ({state.discovery['grace']:g}s) while health checks decide"
        )

    def recover(rec: Recorder, ph: Phases) -> None:
        dep.start_process(name)
        renewed, s = _store_check(dep, 30, "renewed", lambda snap: not lapsed(snap) and cluster in snap.leases)
        ph.checks.append((f"the restarted {name} holds its lease again", renewed, f"{s:.2f}s after restart"))

    return _timeline(
        dep,
        opts,
        scenario="agent-down",
        record=opts.record or APP,
        cluster=None,
        expect="steady",
        inject=inject,
        recover=recover,
    )


def redis_failover(dep: Deployment, opts: Options) -> Report:
    from .failover import redis_failover as run_failover

    return run_failover(dep, opts)


def cluster_overload(dep: Deployment, opts: Options) -> Report:
    from .overload import cluster_overload as run_overload

    return run_overload(dep, opts)


_SCENARIOS: dict[str, Callable[[Deployment, Options], Report]] = {
    "cluster-down": cluster_down,
    "cluster-slow": cluster_slow,
    "flapping": flapping,
    "checker-partition": checker_partition,
    "redis-down": redis_down,
    "dns-server-down": dns_server_down,
    "redis-failover": redis_failover,
    "cluster-overload": cluster_overload,
    "agent-down": agent_down,
}

__all__ = ["SCENARIOS", "Options", "run", "netns_reason"]
