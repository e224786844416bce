"""``geodns validate``: load a config and its zone files as ``serve`` would; print ``file:line: reason``
for every problem (exit 1), or one ``ok:`` line per zone and config (exit 0)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    validate = subparsers.add_parser("validate", help="check a config and its zone files; print file:line: reason")
    validate.add_argument("--config", type=Path)
    validate.add_argument("--zone", type=Path, action="append")
    validate.set_defaults(func=cmd_validate)
    return validate


def cmd_validate(args: argparse.Namespace) -> int:
    from ..dns.names import to_text
    from ..process.server import Settings, build_engine, default_config_path

    problems = []
    config = None
    if args.config is None and not args.zone:
        args.config = default_config_path()
    try:
        config = Settings(config_path=args.config, zone_paths=tuple(args.zone or ())).load()
    except InputError as exc:
        problems.extend(exc.problems)
    if config is not None:
        try:
            engine = build_engine(config, areas=False)  # every check, nothing compiled
        except InputError as exc:
            problems.extend(exc.problems)
        else:
            for zone in engine.zones:
                print(f"ok: {zone.source}: zone {to_text(zone.origin)} serial {zone.serial}, {zone.names} names")
            if args.config is not None:
                print(f"ok: {args.config}: {len(config.clusters)} clusters, {len(config.records)} records")
    for problem in problems:
        print(problem)
    return 1 if problems else 0
