"""``geodns keygen ZONE``: a new signing key pair in BIND's files (``K<zone>+<alg>+<tag>.key/.private``).

By default a combined signing key (flags 257: it signs the zone and the parent's DS points at it);
``--zsk`` makes a zone-signing key (flags 256) for a KSK/ZSK split.  Prints the base name, as
``dnssec-keygen`` does, so ``geodns keygen ZONE`` can feed a script.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("keygen", help="make a DNSSEC key pair for a zone (BIND's K<zone>+<alg>+<tag> files)")
    p.add_argument("zone", help="the zone the key signs, e.g. gslb.example.com")
    p.add_argument("--algorithm", default="ecdsap256sha256", choices=["ecdsap256sha256", "ed25519"])
    p.add_argument("--directory", "-K", type=Path, default=Path("."), help="where to write the files (default: .)")
    p.add_argument("--zsk", action="store_true", help="a zone-signing key (flags 256) instead of a combined one (257)")
    p.set_defaults(func=cmd_keygen)


def cmd_keygen(args: argparse.Namespace) -> int:
    from ..dnssec.keys import KeyFileError, generate, write

    try:
        key = generate(args.zone, args.algorithm, ksk=not args.zsk)
    except (KeyFileError, ValueError) as exc:
        print(f"geodns keygen: {exc}", file=sys.stderr)
        return 2
    if not args.directory.is_dir():
        print(f"geodns keygen: {args.directory}: not a directory", file=sys.stderr)
        return 2
    write(key, args.directory)
    print(key.basename)
    return 0
