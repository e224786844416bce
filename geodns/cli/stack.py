"""``geodns stack``: the local topology as processes on loopback, until Ctrl-C.

    geodns stack [--base-port N] [--dir D] [--interval 1s] [--sentinel | --no-redis] [--discovery]
    geodns stack --down [--dir D]        # stop what a stack left behind (say, after kill -9)

Default ports: DNS 5301/5302, HTTP 8101/8102, checkers' HTTP 8103/8104, ingresses 18081-18083 (us-east,
eu-west, ap-southeast), Redis 16379 (replica 16380, sentinels 26380-26382).
``--base-port N`` counts from N instead (DNS N+1/N+2, HTTP N+11/N+12,
ingresses N+21..23, Redis N+31/N+32, sentinels N+33..35); ``--base-port 0``
picks free ports.  Without ``redis-server`` on the PATH the stack runs one
server on ``memory://`` with its embedded checker, and says so.  ``--discovery`` leaves clusters
and records out of the config: one ``geodns agent`` per cluster registers them, each watching a
local Kubernetes API (``geodns/tooling/kubeapi.py``, served from the stack's own process) that
holds the cluster's annotated Service, whose status address is the cluster's ingress.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

from ..tooling.stack import procs
from ..tooling.stack.runner import Stack, stop_state
from ..tooling.stack.topology import APP, DEFAULT_DIR, FAST, STATE_FILE, CheckTiming, StackState, layout


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "stack",
        help="run the local topology (Redis, 2 servers, 2 checkers, 3 ingresses) as processes",
        description="Run the local GeoDNS topology on loopback, no Docker; Ctrl-C stops everything it started.",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_DIR,
        help=f"work directory for configs, logs and {STATE_FILE} (default {DEFAULT_DIR})",
    )
    parser.add_argument(
        "--base-port",
        type=int,
        default=None,
        metavar="N",
        help="lay ports out from N (0: free ports; default: 5301/5302, 8101/8102, 8103/8104, 18081-18083, 16379)",
    )
    parser.add_argument("--interval", type=float, default=1.0, metavar="SECONDS", help="health-check interval (1)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="health-check timeout (default: half the interval)",
    )
    parser.add_argument("--rise", type=int, default=2)
    parser.add_argument("--fall", type=int, default=2)
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--sentinel", action="store_true", help="Redis primary + replica + three sentinels instead of one Redis"
    )
    group.add_argument(
        "--no-redis", action="store_true", help="no Redis: one server on memory:// with its embedded checker"
    )
    parser.add_argument(
        "--discovery",
        action="store_true",
        help="clusters register through `geodns agent` processes watching local Kubernetes APIs (not the config)",
    )
    parser.add_argument("--down", action="store_true", help="stop the processes the state file in --dir lists")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    state_path = args.dir / STATE_FILE
    if args.down:
        if not state_path.exists():
            print(f"geodns stack: nothing to stop: no {state_path}")
            return 0
        state = StackState.load(state_path)
        if state.supervisor and state.supervisor != os.getpid() and _is_stack(state.supervisor):
            os.kill(state.supervisor, signal.SIGTERM)  # it stops its own processes, in order
            deadline = time.monotonic() + 30
            while _is_stack(state.supervisor) and time.monotonic() < deadline:
                time.sleep(0.1)
        stop_state(state)
        print(f"geodns stack: stopped what {state_path} listed")
        return 0
    if state_path.exists():
        old = StackState.load(state_path)
        if any(procs.alive(p) for p in old.processes.values()):
            print(
                f"geodns stack: a stack is already running from {args.dir} "
                f"(stop it with Ctrl-C, or `geodns stack --down --dir {args.dir}`)",
                file=sys.stderr,
            )
            return 2
    mode = "sentinel" if args.sentinel else "memory" if args.no_redis else "redis"
    if mode != "memory" and shutil.which("redis-server") is None:
        print(
            "geodns stack: redis-server is not installed (apt-get install redis-server): running ONE server "
            "on memory:// with its embedded checker; the Redis and multi-server drills will not apply."
        )
        mode = "memory"
    if args.discovery and mode == "memory":
        print("geodns stack: --discovery needs Redis (the agents and servers share the store)", file=sys.stderr)
        return 2
    timing = CheckTiming(args.interval, args.timeout if args.timeout else args.interval / 2, args.rise, args.fall)
    stack = Stack(args.dir, layout(args.base_port), timing, mode, discovery=args.discovery)

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(f"geodns stack: starting in {args.dir} ...", flush=True)
        try:
            state = stack.start()
        except (RuntimeError, OSError) as exc:
            print(f"geodns stack: could not start: {exc}\n(everything it had started is stopped)", file=sys.stderr)
            return 1
        if stop.is_set():
            return 0
        print(summary(state), flush=True)
        stop.wait()
        print("geodns stack: stopping ...", flush=True)
        return 0
    finally:
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _is_stack(pid: int) -> bool:
    """Whether ``pid`` is still a ``geodns stack`` process (not a reused PID)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"stack" in argv and any(b"geodns" in a for a in argv)


def summary(state: StackState) -> str:
    """What runs where, and what to type next."""
    lines = [f"geodns stack: running ({state.mode}); state file {Path(state.dir) / STATE_FILE}", ""]
    for info in state.processes.values():
        lines.append(f"  {info.name:<16} {info.role:<9} pid {info.pid:<8} {info.address:<22} log {info.log}")
    for name, cluster in state.clusters.items():
        lines.append(
            f"  cluster {name:<15} answers {', '.join(cluster['addresses'])}; ingress control {cluster['ingress']}/_sim"
        )
    lines.append(f"  store {state.store}")
    if state.mode == "memory":
        lines.append("  NOTE: no Redis: one server with its embedded checker (memory://)")
    if state.discovery:
        lines.append(
            f"  discovery: each cluster's agent registers {APP[:-1]} from an annotated Service in a local "
            f"Kubernetes API (lease {state.discovery['lease']:g}s, grace {state.discovery['grace']:g}s)"
        )
    host, port = state.dns[0].rsplit(":", 1)
    lines += [
        "",
        "Ask it as resolvers in Singapore, London and the US would:",
        f"  dig @{host} -p {port} {APP[:-1]} +subnet=214.0.0.0/24 +short      # SG  -> ap-southeast-1",
        f"  dig @{host} -p {port} {APP[:-1]} +subnet=81.2.69.142/32 +short    # GB  -> eu-west-1",
        f"  dig @{host} -p {port} {APP[:-1]} +subnet=216.160.83.56/29 +short  # US  -> us-east-1",
    ]
    if "fast" in state.records:
        lines.append(f"  dig @{host} -p {port} {FAST[:-1]} +subnet=81.2.69.142/32 +short   # latency policy")
    lines += [
        "Break it:",
        f"  curl -X PUT '{state.clusters['ap-southeast-1']['ingress']}/_sim?mode=503'",
        f"  geodns drill {'agent-down' if state.discovery else 'cluster-down'} --stack {state.dir}",
        "Ctrl-C stops everything.",
    ]
    return "\n".join(lines)
