"""Argument types shared by several commands: an ``argparse`` error names the flag and the reason."""

from __future__ import annotations

import argparse

from ..config.values import parse_listen, parse_workers


def listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[v6]:PORT``."""
    try:
        return parse_listen(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def http_listen(text: str) -> tuple[str, int] | None:
    """Like ``listen``; ``off`` (or ``none``, or empty) turns the HTTP listener off."""
    if text.lower() in ("off", "none", ""):
        return None
    return listen(text)


def workers(text: str) -> int:
    """``N`` or ``auto``."""
    try:
        return parse_workers(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def component_level(text: str) -> tuple[str, str]:
    """``geodns.dns=debug`` for ``--log-level-for``."""
    from ..logs import parse_component_level

    try:
        return parse_component_level(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
