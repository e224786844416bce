"""The ``geodns`` command: argument parsing and dispatch to one function per command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .config.values import parse_listen, parse_workers
from .errors import InputError
from .process.runloop import run as run_loop


def _listen(text: str) -> tuple[str, int]:
    try:
        return parse_listen(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _component_level(text: str) -> tuple[str, str]:
    from .logs import parse_component_level

    try:
        return parse_component_level(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _workers(text: str) -> int:
    try:
        return parse_workers(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _http_listen(text: str):
    if text.lower() in ("off", "none", ""):
        return None
    return _listen(text)


def _setup_logging(level: str, per_component=(), fmt: str = "kv") -> None:
    from .logs import setup

    setup(level, per_component or (), fmt)


def cmd_serve(args: argparse.Namespace) -> int:
    from .process.server import Server, Settings

    settings = Settings(
        config_path=args.config,
        zone_paths=tuple(args.zone or ()),
        dns_listen=tuple(args.dns_listen or ()),
        http_listen=args.http_listen,
        store=args.store,
        reset_state=args.reset_state,
        workers=args.workers,
    )
    server = Server(settings)
    try:
        run_loop(server.run())
    except InputError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print("geodns: not started: fix the problems above", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"geodns: cannot listen: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from .process.server import Settings, build_engine, default_config_path

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
            engine = build_engine(config)
        except InputError as exc:
            problems.extend(exc.problems)
        else:
            for zone in engine.zones:
                print(f"ok: {zone.source}: zone {_text(zone.origin)} serial {zone.serial}, {zone.names} names")
            if args.config is not None:
                print(f"ok: {args.config}: {len(config.clusters)} clusters, {len(config.records)} records")
    for problem in problems:
        print(problem)
    return 1 if problems else 0


def _text(name) -> str:
    from .dns.names import to_text

    return to_text(name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="geodns", description="Authoritative geo- and latency-aware DNS server.")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument(
        "--log-level-for",
        type=_component_level,
        action="append",
        metavar="COMPONENT=LEVEL",
        help="level for one component, e.g. geodns.dns=debug or geodns.querylog=info (repeatable)",
    )
    parser.add_argument("--log-format", default="kv", choices=["kv", "json"], help="key=value lines or JSON lines")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="answer DNS queries (and serve the HTTP API)")
    serve.add_argument("--config", type=Path, help="YAML config (default: the shipped config/geodns.yaml)")
    serve.add_argument("--zone", type=Path, action="append", help="zone file to serve (repeatable)")
    serve.add_argument(
        "--dns-listen",
        type=_listen,
        action="append",
        metavar="HOST:PORT",
        help="UDP+TCP listen address (repeatable; default 127.0.0.1:5353)",
    )
    serve.add_argument(
        "--http-listen",
        type=_http_listen,
        metavar="HOST:PORT",
        default=False,
        help="HTTP listen address for /metrics, /healthz, /readyz (default 127.0.0.1:8053; 'off' disables)",
    )
    serve.add_argument("--store", metavar="URL", help="state store: memory:// or redis://HOST:PORT/DB")
    serve.add_argument(
        "--reset-state",
        action="store_true",
        help="seed the store from the config, discarding runtime drains, weights and endpoints",
    )
    serve.add_argument(
        "--workers",
        type=_workers,
        metavar="N|auto",
        help="processes answering DNS on the same addresses with SO_REUSEPORT "
        "(default: server.workers, else one per usable CPU)",
    )
    serve.set_defaults(func=cmd_serve)

    validate = sub.add_parser("validate", help="check a config and its zone files; print file:line: reason")
    validate.add_argument("--config", type=Path)
    validate.add_argument("--zone", type=Path, action="append")
    validate.set_defaults(func=cmd_validate)

    from . import cmds
    from .health import command as check_command
    from .tooling.drill import command as drill_command
    from .tooling.sim import ingress as sim_ingress
    from .tooling.stack import command as stack_command

    check_command.add_parser(sub)
    cmds.add_parsers(sub)
    sim_ingress.add_parser(sub)
    stack_command.add_parser(sub)
    drill_command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.log_level, args.log_level_for, args.log_format)
    try:
        status = args.func(args)
        sys.stdout.flush()  # inside the try: a closed pipe usually shows only at this flush
        return status
    except BrokenPipeError:
        # `geodns status | head`: the reader left, which is not an error of ours.  Point stdout
        # at /dev/null so the interpreter's own flush at exit does not raise again.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
