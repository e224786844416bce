"""The configuration as typed, immutable objects.

Everything here has been validated by ``geodns.config.load``; code that
receives a ``Config`` never re-checks it.  The words follow DESIGN.md.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ..dns.names import Name
from .checks import status_ranges
from .cpus import usable_cpus as _usable_cpus

if TYPE_CHECKING:  # the loader reads key files with dnssec.keys; the model only names the type
    from ..dnssec.keys import SigningKey

MAX_WORKERS = 256
# The filters of a record that names none: config records and discovery.defaults alike.
DEFAULT_POLICY: tuple[str, ...] = ("healthy", "geo", "weighted")


@functools.cache
def usable_cpus() -> int:
    """CPUs this process may use (affinity and the cgroup CPU quota, unlike os.cpu_count), 1..MAX_WORKERS.

    Read once, the first time a config needs the default (``ServerConfig.workers``, ``workers: auto``):
    a reload re-reads the config, not the cgroup, so the figure is the one the process started with.
    """
    return _usable_cpus(MAX_WORKERS)


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class HostName:
    """An endpoint that is a DNS name, not an address (a cloud load balancer's: an AWS ELB's status
    has a host name).  A record answers it as a CNAME, or "flattened" to the addresses the name
    resolves to (``RecordSpec.hostnames``; state/hostnames.py resolves them off the query path).

    ``version`` is 0, neither 4 nor 6, so code that picks addresses of one family passes it by;
    the policy's address step (gslb/policy.py) is where a host name is answered.
    """

    text: str  # lower case, without the final dot
    version: ClassVar[int] = 0

    def __str__(self) -> str:
        return self.text


EndpointAddress = IPAddress | HostName

DEFAULT_DNS_LISTEN: tuple[tuple[str, int], ...] = (("127.0.0.1", 5353),)
DEFAULT_HTTP_LISTEN: tuple[str, int] = ("127.0.0.1", 8053)

# The filters a record's policy chain may name, in DESIGN.md's words.


@dataclass(frozen=True)
class QueryLogConfig:
    """Sampled query logging: off by default, since a busy server answers thousands a second."""

    enabled: bool = False
    sample: float = 0.01  # fraction of queries logged (0..1) when enabled


@dataclass(frozen=True)
class ServerConfig:
    dns_listen: tuple[tuple[str, int], ...] = DEFAULT_DNS_LISTEN
    http_listen: tuple[str, int] | None = DEFAULT_HTTP_LISTEN
    nsid: bytes | None = None
    udp_payload: int = 1232  # what we advertise in our OPT (RFC 6891, DNS flag day 2020)
    tcp_idle_timeout: float = 10.0  # seconds a TCP client may sit idle after its last answered query
    tcp_message_timeout: float = 5.0  # seconds from a TCP message's first octet to its last
    tcp_max_connections: int = 256  # concurrent TCP connections per listener
    tcp_source_share: float = 0.25  # of tcp_max_connections one source (IPv4 address, IPv6 /64) may hold
    admin_token: str | None = None
    debug_txt: bool = False  # answer TXT _geodns.<record> with the decision for the asker
    query_log: QueryLogConfig = field(default_factory=QueryLogConfig)
    ready_max_staleness: float = 60.0  # /readyz fails when the store has been unreachable this long
    # Processes answering DNS with SO_REUSEPORT (geodns/process/workers.py); by default one per usable CPU.
    workers: int = field(default_factory=lambda: usable_cpus())


@dataclass(frozen=True)
class GeoNetwork:
    """An operator-declared network that belongs to a region (internal ranges, PoPs)."""

    network: IPNetwork
    region: str


@dataclass(frozen=True)
class GeoIPConfig:
    database: Path | None = None
    networks: tuple[GeoNetwork, ...] = ()
    unlocated: str | None = None  # the region of clients the database does not place (None: none)


@dataclass(frozen=True)
class Region:
    """A place the policies reason about: a point on the map and the countries it serves."""

    name: str
    lat: float
    lon: float
    continent: str  # two-letter continent code: AF AN AS EU NA OC SA
    countries: tuple[str, ...] = ()  # ISO 3166-1 alpha-2, upper case


@dataclass(frozen=True)
class CheckSpec:
    """How the checker probes a cluster's endpoints (see geodns/health/target.py for where).

    Every field has a JSON-friendly type because the Redis store keeps specs
    as JSON; ``expect_status`` is normalised so a decoded spec equals the original.
    """

    type: str = "http"  # http | https | tcp
    url: str | None = None  # full URL (tcp://host:port for tcp); the target of every endpoint
    port: int | None = None
    path: str = "/healthz"
    host: str | None = None  # Host header and TLS SNI when they differ from the dialled address
    interval: float = 5.0
    timeout: float = 2.0
    rise: int = 2  # consecutive successes to become up
    fall: int = 2  # consecutive failures to become down
    method: str = "GET"
    expect_status: tuple[tuple[int, int], ...] = ((200, 399),)  # inclusive ranges; redirects are not followed
    body: str | None = None  # substring expected within the first 64 KiB of the body
    tls_verify: bool = True
    ca_file: str | None = None  # PEM file of the CA(s) to trust instead of the system's
    send: str | None = None  # tcp: bytes (UTF-8) to send after connecting
    expect: str | None = None  # tcp: substring expected in the reply (first 64 KiB)
    jitter: float = 0.1  # fraction of the interval a check's start is spread over
    # Where the health response says how loaded the endpoint is (gslb/load.py): a dotted path
    # into a JSON body ("load" or "status.cpu"), or a metric name in a Prometheus-text body.
    load_json: str | None = None
    load_metric: str | None = None

    def __post_init__(self) -> None:
        # Accept the config forms (200, "2xx", "300-399") and JSON's lists; store one tuple form.
        object.__setattr__(self, "expect_status", status_ranges(self.expect_status))


@dataclass(frozen=True)
class EndpointSpec:
    address: EndpointAddress
    weight: int = 100
    probe: str | None = None  # "host:port" or URL probed instead of the address


@dataclass(frozen=True)
class LoadSpec:
    """A cluster's ``load:`` block: the watermarks of the ``shed`` filter and how it is damped.

    Load is a fraction of capacity.  Below ``low`` nothing is shed; between
    ``low`` and ``high`` the share of new answers sent elsewhere grows linearly;
    at ``high`` and above the cluster is out unless nothing else is left.  The
    reported load is smoothed (an EWMA with time constant ``smoothing``), the
    share moves at most ``step`` per ``interval`` and only down once the
    smoothed load is ``hysteresis`` below what the share stands for, and while
    it moves answers carry a TTL of at most ``ttl`` (see gslb/load.py).
    """

    low: float = 0.7
    high: float = 0.9
    smoothing: float = 20.0  # seconds
    step: float = 0.1  # of the shed share, per interval
    interval: float = 5.0  # seconds
    hysteresis: float = 0.05  # of load
    ttl: int = 10  # seconds


@dataclass(frozen=True)
class ClusterSpec:
    name: str
    region: str
    endpoints: tuple[EndpointSpec, ...]
    weight: int = 100
    priority: int = 0  # for `failover`: lower wins
    min_healthy: int = 1  # endpoints that must be up for the cluster to be up
    check: CheckSpec | None = None
    load: LoadSpec | None = None  # the shed filter's watermarks; None: never shed


@dataclass(frozen=True)
class RecordSpec:
    """A GSLB name: which clusters may answer it and how they are chosen."""

    name: Name
    text: str  # as written in the config, for messages
    clusters: tuple[str, ...]
    policy: tuple[str, ...] = DEFAULT_POLICY
    ttl: int = 30
    answers: int = 1  # addresses per response, per family
    fallback: str = "all"  # all | none | <cluster name>
    latency_tolerance_pct: float = 20.0
    latency_tolerance_ms: float = 10.0
    # A vantage farther than this from the client says little about the client's own paths: its
    # measurements would steer everyone towards the checker's home (with one embedded checker, every
    # client to the cluster next to the server), so beyond it filters.latency estimates from distance.
    # 2000 km is about 20 ms of round trip.
    latency_reach_km: float = 2000.0
    # How a host-name endpoint is answered: "cname" (one target per answer) or "flatten" (its
    # A/AAAA addresses, as resolved off the query path).
    hostnames: str = "cname"
    line: int | None = None  # where the record is defined in the config file


@dataclass(frozen=True)
class CheckerConfig:
    """The checker that `geodns serve` runs inside itself."""

    embedded: str = "auto"  # auto (on with memory://) | on | off
    id: str | None = None  # default: "<hostname>-serve"
    region: str | None = None  # its vantage; default "local" (not a region: no RTT votes)
    # Where a `geodns check` process serves /healthz, /readyz and /metrics (its --http-listen);
    # None: no HTTP port.  The embedded checker's metrics are on the server's own port.
    http_listen: tuple[str, int] | None = None


@dataclass(frozen=True)
class HealthConfig:
    """How the DNS side turns checkers' observations into up/down."""

    quorum: str | int = "majority"  # majority | any | all | N checkers that must see it up
    unknown: str = "up"  # how an endpoint with no fresh verdict is answered: up | down


@dataclass(frozen=True)
class DiscoveryConfig:
    """Records that clusters register themselves (``geodns agent``, geodns/discovery/).

    A registration names a DNS name and this cluster's endpoints for it; the DNS side turns every
    name registered by one or more clusters into a GSLB record with these defaults.  A name the
    config also defines stays the config's (logged as a conflict); a name outside ``suffixes`` is
    refused (logged), so a cluster cannot claim a name it was not given.
    """

    zone: Name  # the served zone discovered names live in
    suffixes: tuple[Name, ...]  # names may be claimed at or below these (default: the zone)
    export_zone: Name | None = None  # east-west: `geodns.io/export` Services as <svc>.<ns>.<export_zone>
    policy: tuple[str, ...] = DEFAULT_POLICY
    ttl: int = 30
    answers: int = 1
    fallback: str = "all"  # all | none (a discovered record has no fixed cluster to fall back to)
    check: CheckSpec | None = None  # the template for discovered endpoints' checks; None: not probed
    grace: float = 300.0  # seconds a registration whose lease lapsed stays (stale) before it is removed
    hostnames: str = "cname"  # how a hostname endpoint is answered: cname | flatten
    line: int | None = None


@dataclass(frozen=True)
class DnssecZone:
    """A signed zone: its keys, read and checked at load (geodns/dnssec/keys.py)."""

    name: Name
    text: str  # as written in the config, for messages
    keys: tuple[SigningKey, ...]
    line: int | None = None


@dataclass(frozen=True)
class DnssecConfig:
    """``dnssec:``: which zones are signed, and how long signatures live (geodns/dnssec/signer.py)."""

    zones: dict[Name, DnssecZone] = field(default_factory=dict)
    validity: float = 7 * 86400.0  # a signature is valid this long from when it is made
    refresh: float = 2 * 86400.0  # and replaced when less than this is left
    inception_backdate: float = 3600.0  # its inception this far in the past (validators' clock skew)


@dataclass(frozen=True)
class Config:
    source: Path | None = None  # the YAML file, None for the embedded defaults
    server: ServerConfig = field(default_factory=ServerConfig)
    store: str = "memory://"
    zones: tuple[Path, ...] = ()
    geoip: GeoIPConfig = field(default_factory=GeoIPConfig)
    regions: dict[str, Region] = field(default_factory=dict)
    clusters: dict[str, ClusterSpec] = field(default_factory=dict)
    records: dict[Name, RecordSpec] = field(default_factory=dict)
    health: HealthConfig = field(default_factory=HealthConfig)
    checker: CheckerConfig = field(default_factory=CheckerConfig)
    discovery: DiscoveryConfig | None = None  # None: no discovered records
    # The DNS server host-name endpoints are resolved through (flattening, probes): (host, port);
    # None: the system's (/etc/resolv.conf).
    resolver: tuple[str, int] | None = None
    dnssec: DnssecConfig = field(default_factory=DnssecConfig)
