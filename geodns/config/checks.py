"""Converters for health-check options, shared by the config loader and ``CheckSpec``.

They belong to the config (the checker only reads the checked values), so the
loader, the model and the store's own validation call them without reaching up
into ``geodns.health``.  Each returns the clean value or raises ``ValueError``
with the reason (the loader adds file, line and key path).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable
from typing import Any

StatusRanges = tuple[tuple[int, int], ...]

_HOST = re.compile(r"[A-Za-z0-9._-]+(:\d+)?|\[[0-9A-Fa-f:.]+\](:\d+)?")


def status_ranges(value: Any) -> StatusRanges:
    """Expected HTTP statuses as inclusive ranges, from 200, "2xx", "300-399" or a list of those.

    Also takes the stored ``[[lo, hi], ...]`` form, which is what the Redis
    store's JSON gives back, so a decoded ``CheckSpec`` equals the original.
    """
    items = value if isinstance(value, (list, tuple)) else [value]
    if not items:
        raise ValueError("must name at least one status code or range")
    out: list[tuple[int, int]] = []
    for item in items:
        lo, hi = _status_range(item)
        if not 100 <= lo <= hi <= 599:
            raise ValueError(f"{item!r}: status codes are 100-599, written low-high")
        out.append((lo, hi))
    return tuple(out)


def _status_range(item: Any) -> tuple[int, int]:
    bad = ValueError(f"{item!r} is not a status code or range such as 200, 2xx or 300-399")
    if isinstance(item, (list, tuple)):
        if len(item) != 2 or not all(isinstance(x, int) and not isinstance(x, bool) for x in item):
            raise bad
        return int(item[0]), int(item[1])
    if isinstance(item, bool):
        raise bad
    if isinstance(item, int):
        return item, item
    if not isinstance(item, str):
        raise bad
    text = item.strip().lower()
    if re.fullmatch(r"[1-5]xx", text):
        return int(text[0]) * 100, int(text[0]) * 100 + 99
    match = re.fullmatch(r"(\d{3})(?:\s*-\s*(\d{3}))?", text)
    if not match:
        raise bad
    lo = int(match.group(1))
    return lo, int(match.group(2) or lo)


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, not {value!r}")
    return value


def http_method(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z]+", value):
        raise ValueError(f"must be an HTTP method such as GET or HEAD, not {value!r}")
    return value.upper()


def url_path(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise ValueError(f"must be a path starting with '/', not {value!r}")
    return value


def hostname(value: Any) -> str:
    """A Host header value: a name or address, optionally with a port."""
    if not isinstance(value, str) or not _HOST.fullmatch(value):
        raise ValueError(f"must be a host name such as app.example.com, not {value!r}")
    return value


def check_url(kind: str) -> Callable[[Any], str]:
    """A check URL: ``http(s)://HOST[:PORT]/PATH`` for http and https, ``tcp://HOST:PORT`` for tcp."""

    def convert(value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise ValueError(f"must be a non-empty string, not {value!r}")
        try:
            parts = urllib.parse.urlsplit(value)
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a URL ({exc})") from None
        schemes = ("tcp",) if kind == "tcp" else ("http", "https")
        if parts.scheme not in schemes or not parts.hostname:
            example = "tcp://HOST:PORT" if kind == "tcp" else "http(s)://HOST[:PORT]/PATH"
            raise ValueError(f"{value!r}: a {kind} check URL looks like {example}")
        if kind == "tcp" and port is None:
            raise ValueError(f"{value!r}: a tcp URL needs a port")
        return value

    return convert


_JSON_PATH = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")
_METRIC = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^{}]*\})?")


def load_json(value: Any) -> str:
    """A dotted path to a number in a JSON health body: ``load``, ``status.load`` (list items by index)."""
    if not isinstance(value, str) or not _JSON_PATH.fullmatch(value.strip()):
        raise ValueError(f"{value!r} is not a dotted JSON path such as load or status.cpu")
    return value.strip()


def load_metric(value: Any) -> str:
    """A Prometheus metric name, optionally with labels to match: ``ingress_load{pool="web"}``."""
    if not isinstance(value, str) or not _METRIC.fullmatch(value.strip()):
        raise ValueError(f"{value!r} is not a Prometheus metric name such as ingress_load")
    return value.strip()
