"""Structured logs: one line per event on stderr, ``key=value`` (default) or JSON.

Messages in geodns are already written as ``event=... key=value`` pairs; the
formatter puts time, level and component in front.  With ``--log-format
json`` the same pairs become fields of one JSON object per line, for log
shippers that index fields.

Levels are set per component (logger name prefix): ``--log-level info``
for everything, plus ``--log-level-for geodns.dns=debug`` (repeatable) to
open up one part without drowning in the rest.  Components: ``geodns.server``,
``geodns.dns``, ``geodns.engine``, ``geodns.gslb``, ``geodns.http``,
``geodns.querylog`` (sampled queries, ``server.query_log``), ``geodns.state``,
``geodns.health``, ``geodns.geo``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable
from typing import TextIO

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("kv", "json")

# key=value, where value is 'quoted', "quoted" (as %r writes them) or runs to the next space.
_PAIR = re.compile(r"""(?:^|\s)([A-Za-z_][\w.-]*)=('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\S*)""")


def _timestamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created)) + f".{int(record.msecs):03d}"


class KeyValueFormatter(logging.Formatter):
    """``ts=... level=INFO component=geodns.server event=started ...``"""

    def format(self, record: logging.LogRecord) -> str:
        line = f"ts={_timestamp(record)} level={record.levelname} component={record.name} {record.getMessage()}"
        if record.exc_info:
            line += " exc=" + json.dumps(self.formatException(record.exc_info))
        return line


class JsonFormatter(logging.Formatter):
    """``{"ts": ..., "level": ..., "component": ..., "event": ..., ...}``: the message's pairs as fields."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        out: dict[str, object] = {"ts": _timestamp(record), "level": record.levelname, "component": record.name}
        pairs = parse_pairs(message)
        if pairs:
            out.update((k, v) for k, v in pairs.items() if k not in out)
            rest = _PAIR.sub("", message).strip()
            if rest:
                out["msg"] = rest
        else:
            out["msg"] = message
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def parse_pairs(message: str) -> dict[str, str]:
    """The ``key=value`` pairs of a message, quotes removed."""
    pairs = {}
    for key, value in _PAIR.findall(message):
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1].replace("\\" + value[0], value[0])
        pairs[key] = value
    return pairs


def parse_component_level(text: str) -> tuple[str, str]:
    """``geodns.dns=debug`` -> ("geodns.dns", "debug"); ValueError says what is wrong."""
    name, sep, level = text.partition("=")
    level = level.strip().lower()
    if not sep or not name.strip() or level not in LEVELS:
        raise ValueError(f"{text!r}: expected COMPONENT=LEVEL, e.g. geodns.dns=debug (levels: {', '.join(LEVELS)})")
    return name.strip(), level


def setup(
    level: str = "info", per_component: Iterable[tuple[str, str]] = (), fmt: str = "kv", stream: TextIO | None = None
) -> None:
    """Configure the root logger once per process (replacing any earlier handler)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
    levels = dict(per_component)  # once: per_component may be a one-shot iterable
    for name, component_level in levels.items():
        logging.getLogger(name).setLevel(getattr(logging, component_level.upper()))
    # Third-party chatter stays at warning unless asked for by name.
    for noisy in ("aiohttp.access", "asyncio"):
        if noisy not in levels:
            logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
