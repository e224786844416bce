"""``geodns drain|undrain|force-up|force-down CLUSTER``, ``geodns weight CLUSTER N`` and ``geodns load CLUSTER X``.

Each returns once the server's own snapshot has the change, so a ``dig`` run
right after already sees it.
"""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

from .apiclient import Api, common_options, run
from .status import cluster_table

ACTIONS = {
    "drain": "take a cluster (or one endpoint) out of DNS answers",
    "undrain": "put a drained or forced cluster (or endpoint) back under health checks",
    "force-up": "answer a cluster (or endpoint) whatever the health checks say",
    "force-down": "never answer a cluster (or endpoint)",
}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    common = common_options()
    for action, text in ACTIONS.items():
        p = subparsers.add_parser(action, parents=[common], help=text)
        p.add_argument("cluster")
        p.add_argument("--endpoint", metavar="ADDRESS", help="only this endpoint of the cluster")
        p.set_defaults(func=cmd_admin, action=action)
    p = subparsers.add_parser("weight", parents=[common], help="set a cluster's (or an endpoint's) weight")
    p.add_argument("cluster")
    p.add_argument("weight", type=int, help="0 or more; 0 = standby (traffic only if nothing else is left)")
    p.add_argument("--endpoint", metavar="ADDRESS", help="only this endpoint of the cluster")
    p.set_defaults(func=cmd_weight)
    p = subparsers.add_parser(
        "load", parents=[common], help="report a cluster's (or an endpoint's) load for the shed filter"
    )
    p.add_argument("cluster")
    p.add_argument("load", type=float, help="fraction of capacity: 0 idle, 1 full, above 1 overloaded")
    p.add_argument("--ttl", default="60s", help="how long it counts (default 60s; then the checkers' load, or unknown)")
    p.add_argument("--endpoint", metavar="ADDRESS", help="only this endpoint of the cluster")
    p.set_defaults(func=cmd_load)


def cmd_admin(args: argparse.Namespace) -> int:
    return _change(args, "POST", args.action, {}, args.action)


def cmd_weight(args: argparse.Namespace) -> int:
    return _change(args, "PUT", "weight", {"weight": args.weight}, f"weight {args.weight}")


def cmd_load(args: argparse.Namespace) -> int:
    return _change(args, "PUT", "load", {"load": args.load, "ttl": args.ttl}, f"load {args.load:g} for {args.ttl}")


def _change(args: argparse.Namespace, method: str, action: str, body: dict[str, Any], done: str) -> int:
    """One change to a cluster (or, with ``--endpoint``, one of its endpoints), then its row as it is now."""
    if args.endpoint:
        body = {**body, "endpoint": args.endpoint}

    def call(api: Api) -> dict[str, Any]:
        return api.request(method, f"/clusters/{_quote(args.cluster)}/{action}", body=body)

    return run(args, call, lambda cluster: _show(cluster, f"{done}: {_what(args)}"))


def _what(args: argparse.Namespace) -> str:
    return f"endpoint {args.endpoint} of cluster {args.cluster}" if args.endpoint else f"cluster {args.cluster}"


def _show(cluster: dict[str, Any], done: str) -> None:
    print(f"{done} (table version {cluster['version']})")
    print(cluster_table([cluster]))


def _quote(name: str) -> str:
    return quote(name, safe="")
