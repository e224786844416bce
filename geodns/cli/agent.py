"""``geodns agent``: one per Kubernetes cluster, registering what the cluster serves.

    geodns agent --cluster NAME --region REGION --store URL [--kubeconfig FILE] [--namespace NS]...
                 [--renew 10s] [--lease 30s] [--agent-id ID] [--http-listen HOST:PORT]

It watches Services (type LoadBalancer), Ingresses and Gateway API Gateways that carry
``geodns.io/hostname`` (or, for Services, ``geodns.io/export: "true"``) and keeps their status
addresses in the store as this cluster's registrations, under a lease renewed every ``--renew``
that lasts ``--lease`` (``discovery/agent.py``).  Without ``--kubeconfig`` it uses the pod's
service account (in-cluster).  ``--namespace`` (repeatable) limits it to those namespaces.
``--http-listen`` serves ``/healthz`` (503 once a watch or the lease keeper has ended: restart it)
and ``/readyz`` (503 until every kind is listed and the lease is held), for the orchestrator's
probes.  SIGINT/SIGTERM stop it without deregistering anything (exit 0).  Bad flags, a ``memory://`` store
or a kubeconfig that cannot be read exit 2 before it starts.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys
from typing import TYPE_CHECKING

from ..config import values
from ..errors import InputError
from ..process.runloop import run as run_loop
from ..state.store import open_store

if TYPE_CHECKING:
    from aiohttp import web

    from ..discovery.agent import Agent

log = logging.getLogger("geodns.agent")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "agent",
        help="register this Kubernetes cluster's annotated Services, Ingresses and Gateways in the store",
        description="Watch Services, Ingresses and Gateways annotated geodns.io/hostname (or geodns.io/export) "
        "and keep their addresses in the store as this cluster's registrations, under a lease.",
    )
    parser.add_argument("--cluster", required=True, metavar="NAME", help="this cluster's name in geodns")
    parser.add_argument("--region", required=True, metavar="REGION", help="the region it serves (a config region)")
    parser.add_argument("--store", required=True, metavar="URL", help="the shared store, redis://HOST:PORT/DB")
    parser.add_argument("--kubeconfig", metavar="FILE", help="a kubeconfig file (default: in-cluster credentials)")
    parser.add_argument(
        "--namespace", action="append", default=[], metavar="NS", help="watch only this namespace (repeatable)"
    )
    parser.add_argument("--renew", default="10s", metavar="DURATION", help="renew the lease this often (10s)")
    parser.add_argument("--lease", default="30s", metavar="DURATION", help="a renewal lasts this long (30s)")
    parser.add_argument("--agent-id", default=socket.gethostname(), metavar="ID", help="default: the host name")
    parser.add_argument(
        "--http-listen", metavar="HOST:PORT", help="serve /healthz and /readyz here (default: no HTTP port)"
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    problems = []
    try:
        values.cluster_name(args.cluster)
    except ValueError as exc:
        problems.append(f"--cluster: {exc}")
    durations = {}
    for flag in ("renew", "lease"):
        try:
            durations[flag] = values.parse_duration(getattr(args, flag))
        except ValueError as exc:
            problems.append(f"--{flag}: {exc}")
    if len(durations) == 2 and durations["renew"] >= durations["lease"]:
        problems.append("--renew: must be shorter than --lease (a lease must be renewed before it lapses)")
    if args.http_listen is not None:
        try:
            args.http_listen = values.parse_listen(args.http_listen)
        except ValueError as exc:
            problems.append(f"--http-listen: {exc}")
    if args.store.startswith("memory:"):
        problems.append("--store: the agent needs the store the DNS servers read (redis://...), not memory://")
    try:
        open_store(args.store)
    except InputError as exc:
        problems.extend(str(p) for p in exc.problems)
    if problems:
        for text in problems:
            print(f"geodns agent: {text}", file=sys.stderr)
        return 2
    try:
        run_loop(_serve(args, durations["renew"], durations["lease"]))
    except _CannotStart as exc:
        print(f"geodns agent: {exc}", file=sys.stderr)
        return 2
    return 0


class _CannotStart(Exception):
    pass


async def _serve(args: argparse.Namespace, renew: float, lease: float) -> None:
    from ..discovery.agent import Agent
    from ..discovery.kube import Follower, api_client
    from ..discovery.objects import KINDS

    try:
        api = await api_client(args.kubeconfig)
    except Exception as exc:  # noqa: BLE001 - any failure to read credentials is reported as such
        raise _CannotStart(f"cannot load Kubernetes credentials: {exc}") from None
    store = open_store(args.store)
    agent = Agent(store, args.cluster, args.region, agent_id=args.agent_id, renew=renew, ttl=lease)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    namespaces = tuple(args.namespace)
    http = None
    try:
        if args.http_listen is not None:
            try:
                http = await _start_http(agent, *args.http_listen)
            except OSError as exc:
                raise _CannotStart(f"cannot listen on {args.http_listen[0]}:{args.http_listen[1]}: {exc}") from None
        await agent.start(Follower(api, kind, namespaces, agent.changed) for kind in KINDS)
        log.info(
            "event=agent-started cluster=%s region=%s agent=%s store=%r namespaces=%s",
            args.cluster,
            args.region,
            agent.agent_id,
            store,
            ",".join(namespaces) or "all",
        )
        await stopping.wait()
        log.info("event=agent-stopping cluster=%s (registrations stay until the lease lapses)", args.cluster)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await agent.stop()
        if http is not None:
            await http.cleanup()
        await api.close()
        await store.close()


async def _start_http(agent: Agent, host: str, port: int) -> web.AppRunner:
    """The agent's /healthz and /readyz (the routes every geodns process serves alike)."""
    from aiohttp import web

    from ..health.routes import add_health_routes

    app = web.Application()
    add_health_routes(app, agent.readiness, agent.liveness)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, reuse_address=True).start()
    log.info("event=listening transport=http address=%s:%d", host, port)
    return runner
