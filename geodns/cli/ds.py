"""``geodns ds ZONE``: the DS record(s) the parent zone publishes for ZONE's key-signing keys.

The keys are the ones the config names for ZONE (``dnssec.zones.ZONE.keys``), or the files given
with ``--key``.  One DS per SEP key (flags 257), SHA-256 digest (type 2, what RFC 8624 asks
every validator to support).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("ds", help="print the DS records for a signed zone, for its parent")
    p.add_argument("zone", help="the signed zone, e.g. gslb.example.com")
    p.add_argument("--config", type=Path, help="the config naming the zone's keys (default: the shipped one)")
    p.add_argument("--key", type=Path, action="append", help="a key file (.key or .private) instead of the config's")
    p.add_argument("--ttl", type=int, default=3600, help="the TTL written on the DS records (default 3600)")
    p.set_defaults(func=cmd_ds)


def cmd_ds(args: argparse.Namespace) -> int:
    from ..dns.names import from_text, to_text
    from ..dnssec.keys import KeyFileError, read
    from ..errors import InputError

    try:
        zone = from_text(args.zone.rstrip(".") + ".")
    except ValueError as exc:
        print(f"geodns ds: {exc}", file=sys.stderr)
        return 2
    if args.key:
        try:
            keys = [read(path) for path in args.key]
        except KeyFileError as exc:
            print(f"geodns ds: {exc}", file=sys.stderr)
            return 2
    else:
        from ..process.server import Settings, default_config_path

        try:
            config = Settings(config_path=args.config or default_config_path()).load()
        except InputError as exc:
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            return 1
        signed = config.dnssec.zones.get(zone)
        if signed is None:
            print(
                f"geodns ds: {to_text(zone)} is not signed in {config.source} (no dnssec.zones entry)", file=sys.stderr
            )
            return 1
        keys = list(signed.keys)
    chosen = [key for key in keys if key.sep and key.zone.to_text().lower() == to_text(zone)]
    if not chosen:
        print(f"geodns ds: no key-signing key (flags 257) for {to_text(zone)}", file=sys.stderr)
        return 1
    for key in chosen:
        print(f"{to_text(zone)} {args.ttl} IN DS {key.ds().to_text()}")
    return 0
