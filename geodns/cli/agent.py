"""``geodns agent``: one per Kubernetes cluster, registering what the cluster serves.

    geodns agent --cluster NAME --region REGION --store URL [--kubeconfig FILE] [--namespace NS]...
                 [--renew 10s] [--lease 30s] [--agent-id ID]

It watches Services (type LoadBalancer), Ingresses and Gateway API Gateways that carry
``geodns.io/hostname`` (or, for Services, ``geodns.io/export: "true"``) and keeps their status
addresses in the store as this cluster's registrations, under a lease renewed every ``--renew``
that lasts ``--lease`` (``discovery/agent.py``).  Without ``--kubeconfig`` it uses the pod's
service account (in-cluster).  ``--namespace`` (repeatable) limits it to those namespaces.
SIGINT/SIGTERM stop it without deregistering anything (exit 0).  Bad flags, a ``memory://`` store
or a kubeconfig that cannot be read exit 2 before it starts.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys

from ..config import values
from ..errors import InputError
from ..process.runloop import run as run_loop
from ..state.store import open_store

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
    try:
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
        await api.close()
        await store.close()
