"""Value converters for the configuration: each returns the typed value or raises
ValueError with the reason, which the loader prefixes with the file, line and key path.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable
from typing import Any

from . import model
from .filters import DECLARED

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
MAX_WORKERS = model.MAX_WORKERS
MAX_WEIGHT = 1_000_000  # also the bound of priority and min_healthy
MAX_PROBE = 2048  # characters: a host:port or a URL, as long as URLs usefully get
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_CONTINENTS = {"AF", "AN", "AS", "EU", "NA", "OC", "SA"}


def split_host_port(text: str, default_port: int | None = None) -> tuple[str, str]:
    """'HOST:PORT' or '[IPv6]:PORT' → (host, port text), the one way every address is split.

    With ``default_port``, a bare 'HOST' or '[IPv6]' takes it.  Either part may
    come back empty; the caller checks what its field needs (an IP, a port range)
    and words the error for its field.
    """
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            return host, ""
        if not rest and default_port is not None:
            return host, str(default_port)
        return host, rest[1:] if rest.startswith(":") else ""
    host, sep, port = text.rpartition(":")
    if not sep:
        return (text, str(default_port)) if default_port is not None else (text, "")
    return host, port


def parse_listen(text: str) -> tuple[str, int]:
    """'127.0.0.1:5353' or '[::1]:5353' → (host, port); ValueError says why."""
    if not isinstance(text, str):
        raise ValueError("must be a string 'HOST:PORT' (IPv6 as '[::1]:PORT')")
    host, port = split_host_port(text)
    if text.startswith("[") and not port:
        raise ValueError(f"{text!r}: IPv6 listen addresses are written '[::1]:PORT'")
    if ":" not in text:
        raise ValueError(f"{text!r}: expected HOST:PORT")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{text!r}: {host!r} is not an IP address") from None
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: port must be 0-65535")
    return host, int(port)


def parse_duration(value: Any) -> float:
    """Seconds from 2, 0.5, '2s', '500ms', '1m'."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 2s or 500ms")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration such as 2s or 500ms")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not math.isfinite(seconds):
        raise ValueError(f"must be a finite duration such as 2s or 500ms, not {value!r}")
    if seconds <= 0:
        raise ValueError("must be greater than zero")
    return seconds


_DAYS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*d\s*$")


def long_duration(value: Any) -> float:
    """``parse_duration``, plus days ('7d'): signature lifetimes (``dnssec.validity``) are written in days."""
    match = _DAYS.match(value) if isinstance(value, str) else None
    if match:
        seconds = float(match.group(1)) * 86400.0
        if seconds <= 0:
            raise ValueError("must be greater than zero")
        return seconds
    return parse_duration(value)


def duration_or_zero(value: Any) -> float:
    """``long_duration``, where 0 (none) is allowed too."""
    if value == 0 and not isinstance(value, bool):
        return 0.0
    return long_duration(value)


def parse_workers(value: Any) -> int:
    """``server.workers`` / ``serve --workers``: an integer 1..256, or "auto" for one per usable CPU."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return model.usable_cpus()
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be an integer between 1 and {MAX_WORKERS} or 'auto', not {value!r}")
    if not 1 <= value <= MAX_WORKERS:
        raise ValueError(f"must be between 1 and {MAX_WORKERS} or 'auto', not {value}")
    return value


def int_range(lo: int, hi: int) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be an integer between {lo} and {hi}, not {value!r}")
        if not lo <= value <= hi:
            digits = str(value)
            shown = digits if len(digits) <= 24 else f"{digits[:12]}... ({len(digits)} digits)"
            raise ValueError(f"must be between {lo} and {hi}, not {shown}")
        return value

    return convert


def cluster_name(value: Any) -> str:
    """A cluster's name: it becomes a store key, a URL path segment and a metric label, so it is kept
    to 1-63 letters, digits, '.', '_' and '-', starting with a letter or digit."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        shown = value if not isinstance(value, str) or len(value) <= 80 else value[:80] + "..."
        raise ValueError(
            f"must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit, not {shown!r}"
        )
    return value


# The cluster and endpoint numbers, shared by the config and the admin API.
weight = int_range(0, MAX_WEIGHT)
priority = int_range(0, MAX_WEIGHT)
min_healthy = int_range(1, MAX_WEIGHT)


def probe(value: Any) -> str:
    """An endpoint's probe override, "host:port" or a URL (health/target.py reads it)."""
    text = nonempty_str(value)
    if len(text) > MAX_PROBE:
        raise ValueError(f"must be at most {MAX_PROBE} characters, not {len(text)}")
    return text


def float_range(lo: float, hi: float) -> Callable[[Any], float]:
    def convert(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"must be a number between {lo} and {hi}, not {value!r}")
        if not lo <= value <= hi:
            raise ValueError(f"must be between {lo} and {hi}, not {value}")
        return float(value)

    return convert


def finite_at_least(lo: float) -> Callable[[Any], float]:
    """A number >= ``lo``; .inf and .nan (YAML reads them as floats) are not numbers a setting can use."""

    def convert(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"must be a finite number >= {lo:g}, not {value!r}")
        if value < lo:
            raise ValueError(f"must be >= {lo:g}, not {value}")
        return float(value)

    return convert


def choice(*options: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}, not {value!r}")
        return value

    return convert


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, not {value!r}")
    return value


def quorum(value: Any) -> str | int:
    if value in ("majority", "any", "all"):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise ValueError(f"must be majority, any, all or a number of checkers >= 1, not {value!r}")


def nonempty_str(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"must be a non-empty string, not {value!r}")
    return value


def store_url(value: Any) -> str:
    text = nonempty_str(value)
    scheme = text.split("://", 1)[0] if "://" in text else ""
    if scheme not in ("memory", "redis", "rediss", "unix", "redis+sentinel", "rediss+sentinel", "sentinel"):
        raise ValueError(
            f"{text!r}: use memory://, redis://HOST:PORT/DB, rediss:// (TLS), unix:///PATH "
            f"or redis+sentinel://HOST:PORT[,HOST:PORT]/SERVICE[/DB]"
        )
    if "sentinel" in scheme:
        from .urls import parse_sentinel_url  # urls imports this module

        parse_sentinel_url(text)  # its ValueError names what is wrong
    return text


def nsid(value: Any) -> bytes:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"must be a string (quote it), not {value!r}")
    text = nonempty_str(str(value))
    data = text.encode("utf-8")
    if len(data) > 512:
        raise ValueError("must be at most 512 octets")
    return data


def network(value: Any) -> model.IPNetwork:
    try:
        return ipaddress.ip_network(str(value), strict=True)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a network in CIDR form ({exc})") from None


def address(value: Any) -> model.IPAddress:
    try:
        return ipaddress.ip_address(str(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 or IPv6 address") from None


HOSTNAME = re.compile(
    r"(?=.{1,253}\.?$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.?"
)


def endpoint(value: Any) -> model.EndpointAddress:
    """An endpoint: an IP address, or a host name with at least two labels (``lb-1.elb.example.net``)."""
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not an IP address or a host name")
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        pass
    text = value.rstrip(".").lower()
    if ":" in value or "." not in text or not HOSTNAME.fullmatch(value) or text.replace(".", "").isdigit():
        raise ValueError(f"{value!r} is not an IP address or a host name (such as lb-1.elb.example.net)")
    return model.HostName(text)


def resolver(value: Any) -> tuple[str, int]:
    """``resolver:``: 'HOST:PORT' (IPv6 as '[::1]:PORT') or a bare IP address (port 53)."""
    if not isinstance(value, str):
        raise ValueError("must be 'IP:PORT' or an IP address (the DNS server host names are resolved through)")
    try:
        return str(ipaddress.ip_address(value)), 53
    except ValueError:
        pass
    host, port = split_host_port(value, 53)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{value!r}: {host!r} is not an IP address") from None
    if not port.isdigit() or not 0 < int(port) <= 65535:
        raise ValueError(f"{value!r}: port must be 1-65535")
    return host, int(port)


def continent(value: Any) -> str:
    text = str(value).upper()
    if text not in _CONTINENTS:
        raise ValueError(f"must be a continent code ({', '.join(sorted(_CONTINENTS))}), not {value!r}")
    return text


def countries(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError("must be a list of two-letter country codes")
    out = []
    for item in value:
        if not isinstance(item, str) or not re.fullmatch(r"[A-Za-z]{2}", item):
            raise ValueError(f"{item!r} is not a two-letter country code")
        out.append(item.upper())
    return tuple(out)


def policy(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"must be a non-empty list of filters ({', '.join(DECLARED)})")
    for item in value:
        if item not in DECLARED:
            raise ValueError(f"unknown filter {item!r} (known: {', '.join(DECLARED)})")
    return tuple(value)


def km(value: Any) -> float:
    """A distance on the earth's surface: 0 to 20,038 km (half the circumference)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 20038:
        raise ValueError(f"must be a distance in km from 0 to 20038, not {value!r}")
    return float(value)
