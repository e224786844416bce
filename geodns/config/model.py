"""The configuration as typed, immutable objects.

Everything here has been validated by ``geodns.config.load``; code that
receives a ``Config`` never re-checks it.  The words follow DESIGN.md.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from ..names import Name

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

DEFAULT_DNS_LISTEN: tuple[tuple[str, int], ...] = (("127.0.0.1", 5353),)
DEFAULT_HTTP_LISTEN: tuple[str, int] = ("127.0.0.1", 8053)

# The filters a record's policy chain may name, in DESIGN.md's words.
POLICY_FILTERS = ("healthy", "geo", "latency", "weighted", "failover", "first_n")


@dataclass(frozen=True)
class ServerConfig:
    dns_listen: tuple[tuple[str, int], ...] = DEFAULT_DNS_LISTEN
    http_listen: tuple[str, int] | None = DEFAULT_HTTP_LISTEN
    nsid: bytes | None = None
    udp_payload: int = 1232            # what we advertise in our OPT (RFC 6891, DNS flag day 2020)
    tcp_idle_timeout: float = 10.0     # seconds a TCP client may sit idle between queries
    tcp_max_connections: int = 256     # concurrent TCP connections per listener
    admin_token: str | None = None


@dataclass(frozen=True)
class GeoNetwork:
    """An operator-declared network that belongs to a region (internal ranges, PoPs)."""

    network: IPNetwork
    region: str


@dataclass(frozen=True)
class GeoIPConfig:
    database: Path | None = None
    networks: tuple[GeoNetwork, ...] = ()


@dataclass(frozen=True)
class Region:
    """A place the policies reason about: a point on the map and the countries it serves."""

    name: str
    lat: float
    lon: float
    continent: str                      # two-letter continent code: AF AN AS EU NA OC SA
    countries: tuple[str, ...] = ()     # ISO 3166-1 alpha-2, upper case


@dataclass(frozen=True)
class CheckSpec:
    """How the checker probes a cluster's endpoints."""

    type: str = "http"                  # http | https | tcp
    url: str | None = None              # full URL for http(s); overrides address/port/path
    port: int | None = None
    path: str = "/healthz"
    host: str | None = None             # Host header / SNI when it differs from the dialled address
    interval: float = 5.0
    timeout: float = 2.0
    rise: int = 2
    fall: int = 2


@dataclass(frozen=True)
class EndpointSpec:
    address: IPAddress
    weight: int = 100
    probe: str | None = None            # "host:port" or URL probed instead of the address


@dataclass(frozen=True)
class ClusterSpec:
    name: str
    region: str
    endpoints: tuple[EndpointSpec, ...]
    weight: int = 100
    priority: int = 0                   # for `failover`: lower wins
    min_healthy: int = 1                # endpoints that must be up for the cluster to be up
    check: CheckSpec | None = None


@dataclass(frozen=True)
class RecordSpec:
    """A GSLB name: which clusters may answer it and how they are chosen."""

    name: Name
    text: str                           # as written in the config, for messages
    clusters: tuple[str, ...]
    policy: tuple[str, ...] = ("healthy", "geo", "weighted")
    ttl: int = 30
    answers: int = 1                    # addresses per response, per family
    fallback: str = "all"               # all | none | <cluster name>
    latency_tolerance_pct: float = 20.0
    latency_tolerance_ms: float = 10.0
    line: int | None = None             # where the record is defined in the config file


@dataclass(frozen=True)
class Config:
    source: Path | None = None          # the YAML file, None for the embedded defaults
    server: ServerConfig = field(default_factory=ServerConfig)
    store: str = "memory://"
    zones: tuple[Path, ...] = ()
    geoip: GeoIPConfig = field(default_factory=GeoIPConfig)
    regions: dict[str, Region] = field(default_factory=dict)
    clusters: dict[str, ClusterSpec] = field(default_factory=dict)
    records: dict[Name, RecordSpec] = field(default_factory=dict)
