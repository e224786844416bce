"""``geodns explain NAME --client ADDR[/PREFIX]``: why a client gets the answer it gets."""

from __future__ import annotations

import argparse
from typing import Any

from .apiclient import Api, common_options, run
from .table import table


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    common = common_options()
    p = subparsers.add_parser(
        "explain",
        parents=[common],
        help="show each policy filter's decision for a client (ADDR, or ADDR/PREFIX as ECS)",
    )
    p.add_argument("name", help="a GSLB record, e.g. app.gslb.example.com")
    p.add_argument(
        "--client",
        required=True,
        metavar="ADDR[/PREFIX]",
        help="the client's address; with /PREFIX it is treated as an EDNS Client Subnet",
    )
    p.add_argument("--type", default="A", choices=["A", "AAAA", "a", "aaaa"], help="A (default) or AAAA")
    p.set_defaults(func=cmd_explain)


def cmd_explain(args: argparse.Namespace) -> int:
    def call(api: Api) -> dict[str, Any]:
        return api.request(
            "GET", "/explain", query={"name": args.name, "client": args.client, "type": args.type.upper()}
        )

    return run(args, call, lambda result: print(render(result)))


def render(r: dict[str, Any]) -> str:
    client, loc = r["client"], r["client"]["location"]
    where = " / ".join(x for x in (loc["region"], loc["country"], loc["continent"]) if x) or "unknown"
    ecs = f" (as ECS /{client['ecs_source']})" if client["ecs_source"] is not None else " (as the resolver's address)"
    lines = [
        f"{r['name']} {r['type']} for client {client['address']}{ecs}",
        f"located: {where} via {loc['source']}, same answer for its /{loc['prefix']}",
        "",
        table(
            ("FILTER", "IN", "OUT", "DROPPED"),
            [
                (
                    s["filter"],
                    ", ".join(s["in"]) or "-",
                    ", ".join(s["out"]) or "-",
                    ", ".join(s["dropped"]),
                )
                for s in r["steps"]
            ],
        ),
        "",
        table(("FILTER", "WHY"), [(s["filter"], s.get("why") or "-") for s in r["steps"]]),
        "",
        table(
            ("CLUSTER", "STATE", "ADMIN", "REGION", "WEIGHT", "SHED", "RTT BY VANTAGE"),
            [
                (
                    name,
                    c.get("state"),
                    c.get("admin"),
                    c.get("region"),
                    c.get("weight"),
                    f"{c['shed_share'] * 100:.0f}%" if "shed_share" in c else "-",
                    " ".join(f"{v}:{ms:.1f}ms" for v, ms in (c.get("rtt_ms") or {}).items()) or "-",
                )
                for name, c in r.get("candidates", {}).items()
            ],
        ),
        "",
        "shares of new answers: "
        + (
            ", ".join(f"{name} {share * 100:.1f}%" for name, share in r["shares"].items())
            if r.get("shares")
            else "not listed (too many random paths)"
        ),
        f"answer: {', '.join(r['answer']) or 'none (NODATA)'}"
        f"{' from ' + ', '.join(r['clusters']) if r['clusters'] else ''}"
        f"{' (fallback: the policy left nothing)' if r['fallback'] else ''}; "
        f"ECS scope /{r['scope']}; snapshot v{r['snapshot_version']}",
    ]
    if r.get("registrations"):
        lines += ["", "origin: discovery", registrations_table(r["registrations"])]
    return "\n".join(lines)


def registrations_table(registrations: list[dict[str, Any]]) -> str:
    """Who registered a discovered record: the cluster, its agent, the Kubernetes object and the lease."""
    return table(
        ("CLUSTER", "REGION", "AGENT", "SOURCE", "LEASE"),
        [
            (
                o["cluster"],
                o["region"],
                o["agent"],
                o["source"] or "-",
                f"renewed {o['lease_age_s']:.0f}s ago"
                + (f", STALE (removed in {o['removed_in_s']:.0f}s)" if o["stale"] else ""),
            )
            for o in registrations
        ],
    )
