"""``geodns reload``: re-read config and zone files; a broken file is refused and nothing changes."""

from __future__ import annotations

import argparse
from typing import Any

from .apiclient import Api, common_options, run


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    common = common_options()
    p = subparsers.add_parser(
        "reload", parents=[common], help="re-read config and zones (like SIGHUP); a bad file keeps the running config"
    )
    p.set_defaults(func=cmd_reload)


def cmd_reload(args: argparse.Namespace) -> int:
    def call(api: Api) -> dict[str, Any]:
        return api.request("POST", "/reload", body={})

    return run(
        args,
        call,
        lambda r: print(f"reloaded: zones {', '.join(r['zones']) or '-'}; records {', '.join(r['records']) or '-'}"),
    )
