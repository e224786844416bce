"""Store URLs that say more than a host: Redis Sentinel's, parsed once for the config and the store.

The config checks a ``store:`` URL when it loads (so a mistake is a ``file:line``
error, not an outage at the first write); the Redis backend then builds its
client from the same parsed value (``state/sentinel.py``).
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field

from .values import split_host_port

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel", "sentinel")


@dataclass(frozen=True)
class SentinelURL:
    """A parsed ``redis+sentinel://`` URL: where the sentinels are, which service, how to log in."""

    hosts: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # the data nodes' (primary, replicas)
    sentinel_password: str | None = field(default=None, repr=False)
    tls: bool = False
    ssl_ca_certs: str | None = None


def parse_sentinel_url(url: str) -> SentinelURL:
    """``redis+sentinel://[[user]:pass@]h1:p1[,h2:p2...]/service[/db][?sentinel_password=..]``.

    Raises ValueError with the reason (the config loader reports it with the key path).
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in SENTINEL_SCHEMES:
        raise ValueError(f"not a sentinel URL (use {', '.join(s + '://' for s in SENTINEL_SCHEMES)})")
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    username = password = None
    if userinfo:
        user, sep, secret = userinfo.partition(":")
        username = urllib.parse.unquote(user) or None
        password = urllib.parse.unquote(secret) if sep else None
    hosts = []
    for item in filter(None, hostlist.split(",")):
        host, port = split_host_port(item, default_port=26379)
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"bad sentinel address {item!r} (want host:port)")
        hosts.append((host, int(port)))
    if not hosts:
        raise ValueError("no sentinel addresses (want redis+sentinel://host:port[,host:port]/service)")
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2:
        raise ValueError("name the monitored service: redis+sentinel://host:port/SERVICE[/DB]")
    if len(path) == 2 and not path[1].isdigit():
        raise ValueError(f"database must be a number, not {path[1]!r}")
    query = dict(urllib.parse.parse_qsl(parts.query))
    return SentinelURL(
        tuple(hosts),
        path[0],
        int(path[1]) if len(path) == 2 else 0,
        username,
        password,
        query.get("sentinel_password"),
        parts.scheme.lower().startswith("rediss"),
        query.get("ssl_ca_certs"),
    )
