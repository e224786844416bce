"""``redis-failover``: kill the Redis primary under Sentinel; geodns answers throughout and follows
the new primary.

The proof that it follows is a write made *after* the failover: drain a
cluster through the store (the same Sentinel URL the servers use) and watch
both DNS servers stop answering it, then undrain it and watch it come back.
Answers must not move while the primary is dead, and no query may fail.
"""

from __future__ import annotations

import asyncio
import signal
import time

import redis

from ...state.store import StoreUnavailable, open_store
from ..dnsclient import CLIENTS, ask
from ..stack import procs
from ..stack.runner import SENTINEL_MASTER
from ..stack.topology import APP
from .recorder import Recorder
from .report import Phases, Report
from .target import Deployment, DrillError


def primary_port(sentinel_port: int) -> int | None:
    """The primary's port as one sentinel sees it, or None when it cannot say."""
    try:
        client = redis.Redis(host="127.0.0.1", port=sentinel_port, socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            address = client.sentinel_get_master_addr_by_name(SENTINEL_MASTER)
        finally:
            client.close()
    except redis.RedisError:
        return None
    return int(address[1]) if isinstance(address, (tuple, list)) else None  # (host, port), or None


def role(port: int) -> str | None:
    try:
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            return str(client.info("replication").get("role"))
        finally:
            client.close()
    except redis.RedisError:
        return None


def _write(url: str, cluster: str, state: str, timeout: float) -> tuple[bool, float, str]:
    """Set a cluster's admin state through the store, retrying while the store fails over."""

    async def once() -> None:
        store = open_store(url)
        try:
            await store.set_admin(cluster, state)
        finally:
            await store.close()

    started, error = time.monotonic(), ""
    while time.monotonic() - started < timeout:
        try:
            asyncio.run(once())
            return True, time.monotonic() - started, ""
        except StoreUnavailable as exc:  # mid-failover: try again
            error = str(exc)
            time.sleep(0.2)
    return False, time.monotonic() - started, error


def _until_every_server(dep: Deployment, rec: Recorder, subnet: str, want, timeout: float) -> tuple[bool, float]:
    started = time.monotonic()
    ok = rec.wait_for(lambda: all(want(set(ask(s, APP, "A", subnet, 0.5).addresses)) for s in dep.dns), timeout)
    return ok, time.monotonic() - started


def redis_failover(dep: Deployment, opts) -> Report:
    from .scenarios import _timeline

    state = dep.state()
    if state.mode != "sentinel":
        raise DrillError("redis-failover needs a stack under Redis Sentinel: start it with `geodns stack --sentinel`")
    sentinels = [int(p.address.rsplit(":", 1)[1]) for p in state.processes.values() if p.role == "sentinel"]
    old = int(dep.process("redis").address.rsplit(":", 1)[1])
    if primary_port(sentinels[0]) != old:
        raise DrillError(
            f"the sentinels do not name 127.0.0.1:{old} as primary (a previous drill's failover?); restart the stack"
        )
    cluster = opts.cluster or "ap-southeast-1"
    addresses = dep.addresses(cluster)
    subnet = CLIENTS["SG"]

    def inject(rec: Recorder, ph: Phases) -> None:
        dep.stop_process("redis", signal.SIGKILL)
        started = time.monotonic()
        promoted = rec.wait_for(lambda: primary_port(sentinels[0]) not in (old, None), 30, step=0.1)
        took = time.monotonic() - started
        ph.checks.append(
            (
                "the sentinels promoted the replica",
                promoted,
                f"{took:.2f}s after the primary was killed (down-after 1 s)",
            )
        )
        ph.steady_until = rec.now()
        if not promoted:
            return
        wrote, took, error = _write(dep.store, cluster, "drained", 15)  # type: ignore[arg-type]  # a Sentinel drill runs on a local stack, whose state file names the store
        ph.checks.append(
            (
                f"a drain of {cluster} written after the failover",
                wrote,
                f"{took:.2f}s to write" + (f" ({error})" if error else ""),
            )
        )
        if wrote:
            moved, took = _until_every_server(dep, rec, subnet, lambda a: not a & addresses, 10)
            ph.checks.append(
                ("the drain reached every DNS server (they follow the new primary)", moved, f"{took:.2f}s")
            )
        undone, took, error = _write(dep.store, cluster, "active", 15)  # type: ignore[arg-type]  # as above
        back, took = _until_every_server(dep, rec, subnet, lambda a: bool(a & addresses), 10) if undone else (False, 0)
        ph.checks.append(("the undrain reached every DNS server", back, f"{took:.2f}s"))
        ph.notes.append(
            f"primary 127.0.0.1:{old} killed with SIGKILL; answers may move only after the "
            f"failover, by the deliberate drain of {cluster}"
        )

    def recover(rec: Recorder, ph: Phases) -> None:
        info = dep.start_process("redis")
        procs.wait_until(lambda: procs.redis_ping(old), 10, "the old primary to answer PING", info)
        rejoined = rec.wait_for(lambda: role(old) == "slave", 20, step=0.2)
        ph.checks.append(("the old primary came back as a replica", rejoined, f"role {role(old)}"))

    if opts.hold is None:
        opts.hold = 0.0  # inject() itself waits for the failover, the write and the undrain
    if opts.after is None:
        opts.after = 2.0
    return _timeline(
        dep,
        opts,
        scenario="redis-failover",
        record=opts.record or APP,
        cluster=None,
        expect="steady",
        inject=inject,
        recover=recover,
    )
