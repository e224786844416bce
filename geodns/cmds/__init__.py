"""The admin subcommands: ``geodns status``, ``drain``, ``undrain``, ``force-up``, ``force-down``,
``weight``, ``explain`` and ``reload``, one module per concern, each a thin client of the HTTP API.

``add_parsers`` registers them all on the main parser's subparsers; every
command takes ``--api`` (default ``$GEODNS_API`` or http://127.0.0.1:8053),
``--token`` (default ``$GEODNS_ADMIN_TOKEN``) and ``--json``.
"""

from __future__ import annotations

import argparse

from . import admin, explain, reload, status
from .client import common_options


def add_parsers(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = common_options()
    status.add_parser(subparsers, common)
    admin.add_parsers(subparsers, common)
    explain.add_parser(subparsers, common)
    reload.add_parser(subparsers, common)
