"""What the local stack runs and where: ports, the generated configs, the state file.

One place lays out every port so the CLI, the printed summary, the drill and
the tests agree.  Defaults are fixed and documented (DNS 5301/5302, HTTP
8101/8102, ingresses 18081-18083, Redis 16379); ``base_port=0`` picks free
ports instead, which is what the tests use to run several stacks side by side.
"""

from __future__ import annotations

import json
import os
import random
import socket
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

ZONE_ORIGIN = "gslb.example.com."
APP = "app.gslb.example.com."  # [healthy, geo, weighted]: the nearest cluster
FAST = "fast.gslb.example.com."  # [healthy, latency, weighted]: the fastest clusters
SHED = "shed.gslb.example.com."  # [healthy, shed, geo, weighted]: the nearest, unless it runs hot
SHED_LOW, SHED_HIGH = 0.6, 0.9  # every cluster's ``load:`` watermarks here (the cluster-overload drill reads them)

# cluster -> (region, IPv4 answer, IPv6 answer); documentation prefixes only.
CLUSTERS: dict[str, tuple[str, str, str]] = {
    "us-east-1": ("us-east", "192.0.2.10", "2001:db8::10"),
    "eu-west-1": ("eu-west", "198.51.100.10", "2001:db8:1::10"),
    "ap-southeast-1": ("ap-southeast", "203.0.113.10", "2001:db8:2::10"),
}
# ``geodns stack --discovery``: each cluster's ingress listens on a loopback address of its own
# (Linux routes all of 127.0.0.0/8 to lo), which its Service's status gives: the agents register
# these, so answers are addresses a check can dial.  Leases are short, the grace long, so the
# agent-down drill sees a registration go stale and stay answered.
DISCOVERY_INGRESS = {"us-east-1": "127.0.0.11", "eu-west-1": "127.0.0.12", "ap-southeast-1": "127.0.0.13"}
AGENT_RENEW, AGENT_LEASE, DISCOVERY_GRACE = 1.0, 3.0, 120.0
# Two checkers, two vantage points (the partition drill cuts off the second).
CHECKERS: tuple[tuple[str, str], ...] = (("checker-us", "us-east"), ("checker-eu", "eu-west"))

DEFAULTS = {
    "dns": [5301, 5302],
    "http": [8101, 8102],
    "checker": [8103, 8104],
    "ingress": [18081, 18082, 18083],
    "redis": [16379, 16380],
    "sentinel": [26380, 26381, 26382],
}

ZONE = f"""\
$ORIGIN {ZONE_ORIGIN}
$TTL 300
@    IN SOA ns1 hostmaster.example.com. 1 7200 900 1209600 60
@    IN NS  ns1
@    IN NS  ns2
ns1  IN A   192.0.2.53
ns2  IN A   198.51.100.53
"""


@dataclass
class Ports:
    dns: list[int]
    http: list[int]
    ingress: list[int]
    redis: list[int]  # primary, replica (the replica only with sentinels)
    sentinel: list[int]
    checker: list[int] = field(default_factory=lambda: list(DEFAULTS["checker"]))  # each checker's HTTP port


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (the ports it gives client sockets)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


_GIVEN: set[int] = set()  # ports this process handed out: never twice, even before their owner binds them


def free_port() -> int:
    """A loopback port free for TCP *and* UDP (a DNS listener needs both), below the kernel's
    ephemeral range: a port picked inside it can be taken, between this check and its use, by
    any client socket (a resolver's, dig's, a Redis client's) the kernel gives a port of its
    own, and then the listener cannot bind."""
    low = _ephemeral_low()
    first = max(10_000, low - 12_000)
    rng = random.Random()
    for _ in range(1000):
        port = rng.randrange(first, low) if first < low else 0
        if port in _GIVEN:
            continue
        with (
            socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
        ):
            try:
                tcp.bind(("127.0.0.1", port))
                port = tcp.getsockname()[1]
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
        _GIVEN.add(port)
        return port
    raise OSError("no free loopback port for TCP and UDP")


def layout(base_port: int | None) -> Ports:
    """Fixed defaults (None), free ports (0), or everything counted up from ``base_port``."""
    if base_port is None:
        return Ports(**{k: list(v) for k, v in DEFAULTS.items()})
    if base_port == 0:

        def pick(n: int) -> list[int]:
            return [free_port() for _ in range(n)]

        return Ports(dns=pick(2), http=pick(2), ingress=pick(3), redis=pick(2), sentinel=pick(3), checker=pick(2))
    b = base_port
    return Ports(
        dns=[b + 1, b + 2],
        http=[b + 11, b + 12],
        ingress=[b + 21, b + 22, b + 23],
        redis=[b + 31, b + 32],
        sentinel=[b + 33, b + 34, b + 35],
        checker=[b + 13, b + 14],
    )


@dataclass
class CheckTiming:
    interval: float = 1.0
    timeout: float = 0.5
    rise: int = 2
    fall: int = 2

    @property
    def promise(self) -> float:
        """How fast a failure must move traffic: fall x interval + 1 s (the issue's bound)."""
        return self.fall * self.interval + 1.0


def render_config(
    *,
    store: str,
    geoip: Path,
    zone: Path,
    ingress: dict[str, int],
    timing: CheckTiming,
    nsid: str,
    embedded_checker: bool,
    discovery: bool = False,
) -> str:
    """The YAML every stack process reads; the servers differ only in nsid (and CLI ports).  With
    ``discovery`` it has no clusters or records: the agents register them (the ``discovery:`` block)."""
    check = (
        f"{{type: http, path: /healthz, interval: {timing.interval}s, timeout: {timing.timeout}s, "
        f"rise: {timing.rise}, fall: {timing.fall}, load_json: load}}"
    )
    if discovery:
        return _head(nsid, store, zone, geoip, "{embedded: off}") + (
            "clusters: {}\nrecords: {}\n"
            f"discovery: {{zone: {ZONE_ORIGIN[:-1]}, grace: {DISCOVERY_GRACE:g}s, check: {check}}}\n"
        )
    # Watermarks for the cluster-overload drill; a cluster nobody reports a load for sheds nothing.
    load = (
        f"{{low: {SHED_LOW}, high: {SHED_HIGH}, interval: {timing.interval}s, smoothing: {2 * timing.interval}s, "
        f"step: 0.2, hysteresis: 0.03, ttl: 2s}}"
    )
    clusters = "".join(
        f"  {name}:\n"
        f"    region: {region}\n"
        f'    endpoints: [{{address: "{v4}", probe: "127.0.0.1:{ingress[name]}"}},'
        f' {{address: "{v6}", probe: "127.0.0.1:{ingress[name]}"}}]\n'
        f"    check: {check}\n"
        f"    load: {load}\n"
        for name, (region, v4, v6) in CLUSTERS.items()
    )
    names = ", ".join(CLUSTERS)
    checker = "{embedded: on, region: us-east}" if embedded_checker else "{embedded: off}"
    return (
        _head(nsid, store, zone, geoip, checker)
        + f"""clusters:
{clusters}records:
  {APP[:-1]}:  {{ttl: 5, clusters: [{names}], policy: [healthy, geo, weighted], answers: 1, fallback: all}}
  {FAST[:-1]}: {{ttl: 5, clusters: [{names}], policy: [healthy, latency, weighted], answers: 1, fallback: all}}
  {SHED[:-1]}: {{ttl: 5, clusters: [{names}], policy: [healthy, shed, geo, weighted], answers: 1, fallback: all}}
"""
    )


def _head(nsid: str, store: str, zone: Path, geoip: Path, checker: str) -> str:
    """What every stack config starts with: server, store, zone, places."""
    return f"""# Generated by `geodns stack`: the local topology's config.
server: {{dns_listen: ["127.0.0.1:5301"], http_listen: "127.0.0.1:8101", nsid: "{nsid}", workers: 2}}
store: "{store}"
zones: ["{zone}"]
geoip: {{database: "{geoip}"}}
checker: {checker}
regions:
  us-east:      {{lat: 39.0,  lon: -77.5, continent: NA, countries: [US, CA, MX]}}
  eu-west:      {{lat: 53.3,  lon: -6.3,  continent: EU, countries: [GB, IE, FR, DE, NL]}}
  ap-southeast: {{lat: 1.35,  lon: 103.8, continent: AS, countries: [SG, MY, ID, TH, AU]}}
"""


@dataclass
class ProcInfo:
    """One process of the stack: enough to stop it by PID and to start it again the same way."""

    name: str
    role: str  # redis | sentinel | ingress | server | checker | agent
    pid: int
    argv: list[str]
    log: str
    address: str = ""  # what it listens on, for people and drills


@dataclass
class StackState:
    """``stack.json``: what runs where.  The drill reads it; a drill that restarts a
    process writes the new PID back so the stack still stops it."""

    dir: str
    store: str
    store_unix: str | None
    dns: list[str]
    http: list[str]
    timing: dict
    clusters: dict[str, dict]  # name -> {region, addresses, ingress (control URL)}
    records: dict[str, str] = field(default_factory=lambda: {"app": APP, "fast": FAST, "shed": SHED})
    mode: str = "redis"  # redis | sentinel | memory
    supervisor: int = 0  # the PID of `geodns stack` itself (--down signals it first)
    processes: dict[str, ProcInfo] = field(default_factory=dict)
    # With --discovery: {renew, lease, grace} (seconds); the clusters register through agents.
    discovery: dict = field(default_factory=dict)

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> StackState:
        data = json.loads(Path(path).read_text())
        data["processes"] = {k: ProcInfo(**v) for k, v in data.get("processes", {}).items()}
        return cls(**data)


STATE_FILE = "stack.json"
DEFAULT_DIR = Path(tempfile.gettempdir()) / "geodns-stack"  # `geodns stack --dir` and `geodns drill --stack`
