"""Host-name endpoints (issue 12 item 8): a cloud load balancer publishes a host name, not an address.

A record answers one as a CNAME (one target per answer, chosen by the policy), or flattened to the
addresses the name resolves to, resolved off the query path and refreshed within their TTL. The
host names resolve through a second geodns on loopback serving their zone (the config's
``resolver:``); health checks dial them by name, with the name as Host.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import dns.edns
import dns.message
import dns.query
import dns.rdatatype
import pytest
from aiohttp import web

from geodns.config.load import load_config
from geodns.errors import ConfigError
from geodns.process.server import Settings
from geodns.state.model import Registration
from tests.dnsserver import GSLB_ZONE, RunningServer, write
from tests.polling import wait_for
from tests.test_discovery_records import lease

EU, AP = "10.20.1.0", "10.30.1.0"  # clients placed by the CIDR map

LB_ZONE = """\
$ORIGIN lb.example.net.
$TTL 1
@        IN SOA ns1 hostmaster.example.net. {serial} 7200 900 1209600 1
@        IN NS  ns1
ns1      IN A   192.0.2.53
elb-eu   IN A   {eu}
elb-eu   IN AAAA 2001:db8::10
elb-ap   IN A   203.0.113.20
ingress  IN A   127.0.0.1
"""


def lb_zone(path: Path, eu: str = "198.51.100.10", serial: int = 1) -> Path:
    return write(path, LB_ZONE.format(eu=eu, serial=serial))


@pytest.fixture
def lb_dns(tmp_path):
    """The DNS server the load balancers' names live on (a geodns serving lb.example.net)."""
    zone = lb_zone(tmp_path / "lb.zone")
    server = RunningServer(Settings(zone_paths=(zone,), dns_listen=(("127.0.0.1", 0),), http_listen=None))
    yield server, zone
    if server.thread.is_alive():  # a test may stop it itself (the resolver going away)
        server.stop()


def config(tmp_path: Path, resolver: RunningServer, clusters: str, records: str, extra: str = "") -> Path:
    return write(
        tmp_path / "geodns.yaml",
        f"""
server: {{dns_listen: ["127.0.0.1:0"], http_listen: null}}
zones: ["{write(tmp_path / "gslb.zone", GSLB_ZONE)}"]
resolver: "127.0.0.1:{resolver.port}"
geoip:
  networks:
    - {{cidr: "10.20.0.0/16", region: eu-west}}
    - {{cidr: "10.30.0.0/16", region: ap-southeast}}
regions:
  eu-west:      {{lat: 53.3, lon: -6.3,  continent: EU}}
  ap-southeast: {{lat: 1.35, lon: 103.8, continent: AS}}
clusters:
{clusters}
records:
{records}
{extra}
""",
    )


def ask(server: RunningServer, name: str, subnet: str, rdtype: str = "A"):
    query = dns.message.make_query(name, rdtype, use_edns=0, options=[dns.edns.ECSOption(subnet, 24)])
    return dns.query.udp(query, server.host, port=server.port, timeout=3)


def answer(response) -> list[tuple[str, str]]:
    """(type, data) of each record in the answer section."""
    return sorted((dns.rdatatype.to_text(rrset.rdtype), r.to_text()) for rrset in response.answer for r in rrset)


def test_a_record_answers_host_names_as_cnames_or_flattened_and_follows_their_changes(tmp_path, lb_dns):
    resolver, zone = lb_dns
    path = config(
        tmp_path,
        resolver,
        clusters="""
  eu-west-1:      {region: eu-west, endpoints: ["elb-eu.lb.example.net"]}
  ap-southeast-1: {region: ap-southeast, endpoints: ["elb-ap.lb.example.net."]}
""",
        records="""
  app.gslb.example.com:  {clusters: [eu-west-1, ap-southeast-1], policy: [healthy, geo], ttl: 30}
  flat.gslb.example.com: {clusters: [eu-west-1, ap-southeast-1], policy: [healthy, geo], ttl: 30, hostnames: flatten}
""",
    )
    server = RunningServer(Settings(config_path=path))
    try:
        # CNAME: one target per answer, the policy's choice, for A and AAAA alike.
        assert answer(ask(server, "app.gslb.example.com", EU)) == [("CNAME", "elb-eu.lb.example.net.")]
        assert answer(ask(server, "app.gslb.example.com", AP)) == [("CNAME", "elb-ap.lb.example.net.")]
        assert answer(ask(server, "app.gslb.example.com", AP, "AAAA")) == [("CNAME", "elb-ap.lb.example.net.")]
        # Flattened: the name's addresses, as resolved through the configured resolver.
        assert wait_for(lambda: answer(ask(server, "flat.gslb.example.com", EU)) == [("A", "198.51.100.10")])
        assert answer(ask(server, "flat.gslb.example.com", AP)) == [("A", "203.0.113.20")]
        # ... no longer than the addresses hold (their TTL is 1 s; the record's 30 s).
        assert [rrset.ttl for rrset in ask(server, "flat.gslb.example.com", EU).answer] == [1]
        # eu-west's name has an AAAA too; ap-southeast's has none, so its clients get no AAAA, as
        # from a cluster whose table lists no IPv6 address.
        assert answer(ask(server, "flat.gslb.example.com", EU, "AAAA")) == [("AAAA", "2001:db8::10")]
        assert answer(ask(server, "flat.gslb.example.com", AP, "AAAA")) == []

        # The load balancer's address changes: the flattened answer follows within its TTL.
        lb_zone(zone, eu="198.51.100.11", serial=2)
        assert resolver.reload()
        assert wait_for(lambda: answer(ask(server, "flat.gslb.example.com", EU)) == [("A", "198.51.100.11")])

        # The resolver goes away: the last good addresses stay (fail static), while look-ups fail.
        hosts = server.server.hosts
        assert hosts is not None
        failures = hosts.failures
        resolver.stop()
        assert wait_for(lambda: hosts.failures > failures)
        assert answer(ask(server, "flat.gslb.example.com", EU)) == [("A", "198.51.100.11")]
    finally:
        server.stop()


class HealthSite:
    """An HTTP health endpoint on loopback that remembers the Host header of each probe."""

    def __init__(self) -> None:
        self.status = 200
        self.hosts: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runner, self.port = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _start(self) -> tuple[web.AppRunner, int]:
        async def healthz(request: web.Request) -> web.Response:
            self.hosts.append(request.headers.get("Host", ""))
            return web.Response(status=self.status, text="ok" if self.status == 200 else "down")

        app = web.Application()
        app.router.add_get("/healthz", healthz)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def test_a_host_name_endpoint_is_probed_at_its_addresses_with_the_name_as_host(tmp_path, lb_dns):
    resolver, _ = lb_dns
    site = HealthSite()
    server = None
    try:
        # The cluster's check names another Host (an app's); a host-name endpoint is probed as itself.
        check = (
            f"{{type: http, port: {site.port}, path: /healthz, host: app.gslb.example.com, "
            "interval: 0.3s, timeout: 0.3s, rise: 1, fall: 1}"
        )
        path = config(
            tmp_path,
            resolver,
            clusters=f"""
  eu-west-1:      {{region: eu-west, endpoints: ["ingress.lb.example.net"], check: {check}}}
  ap-southeast-1: {{region: ap-southeast, endpoints: ["elb-ap.lb.example.net"]}}
""",
            records="""
  app.gslb.example.com: {clusters: [eu-west-1, ap-southeast-1], policy: [healthy, geo]}
""",
        )
        server = RunningServer(Settings(config_path=path))
        assert wait_for(lambda: site.hosts)
        assert {host.rsplit(":", 1)[0] for host in site.hosts} == {"ingress.lb.example.net"}
        assert answer(ask(server, "app.gslb.example.com", EU)) == [("CNAME", "ingress.lb.example.net.")]
        # The load balancer fails its check: its clients are sent to the other cluster's name.
        site.status = 503
        assert wait_for(
            lambda: answer(ask(server, "app.gslb.example.com", EU)) == [("CNAME", "elb-ap.lb.example.net.")]
        )
        site.status = 200
        assert wait_for(
            lambda: answer(ask(server, "app.gslb.example.com", EU)) == [("CNAME", "ingress.lb.example.net.")]
        )
    finally:
        if server is not None:
            server.stop()
        site.stop()


def test_discovered_host_names_are_answered_as_the_discovery_block_says(tmp_path, lb_dns):
    resolver, _ = lb_dns
    path = config(
        tmp_path,
        resolver,
        clusters="  {}",
        records="  {}",
        extra="discovery: {zone: gslb.example.com, hostnames: flatten}",
    )
    server = RunningServer(Settings(config_path=path))
    try:
        store = server.server.store
        assert store is not None
        # An AWS-style Service: its status holds the load balancer's host name, not an address.
        shop = Registration("shop.gslb.example.com", ("elb-eu.lb.example.net",), "Service shop/web")
        server.call(store.publish_lease(lease("eu-west-1", "eu-west", [shop])))
        assert wait_for(lambda: answer(ask(server, "shop.gslb.example.com", AP)) == [("A", "198.51.100.10")])
        assert answer(ask(server, "shop.gslb.example.com", AP, "AAAA")) == [("AAAA", "2001:db8::10")]
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        ('clusters: {eu: {region: eu-west, endpoints: ["not a host!"]}}', "clusters.eu.endpoints[0]: "),
        ("clusters: {eu: {region: eu-west, endpoints: [{address: 'x..y'}]}}", "clusters.eu.endpoints[0].address: "),
        ('resolver: "dns.example.net:53"', "resolver: 'dns.example.net:53': 'dns.example.net' is not an IP address"),
        ('resolver: "127.0.0.1:0"', "resolver: '127.0.0.1:0': port must be 1-65535"),
        (
            "clusters: {eu: {region: eu-west, endpoints: [elb.example.net]}}\n"
            "records: {app.gslb.example.com: {clusters: [eu], hostnames: alias}}",
            "records.app.gslb.example.com.hostnames: must be one of cname, flatten, not 'alias'",
        ),
    ],
)
def test_bad_host_name_settings_name_their_field(tmp_path, fragment, expected):
    path = write(tmp_path / "geodns.yaml", "regions: {eu-west: {lat: 53.3, lon: -6.3, continent: EU}}\n" + fragment)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert expected in str(caught.value), str(caught.value)


def test_a_reload_that_changes_the_resolver_moves_the_checker_to_it_too(tmp_path, lb_dns):
    """The embedded checker dials host names at what the config's ``resolver:`` says, and a reload
    naming another resolver switches it as it switches flattening (``geodns check`` does the same
    on SIGHUP, through the same ``Checker.use_resolver``)."""
    resolver, _ = lb_dns
    # A second resolver whose ingress address is one nothing listens on.
    other_zone = write(tmp_path / "lb-other.zone", LB_ZONE.format(eu="198.51.100.10", serial=1))
    other_zone.write_text(other_zone.read_text().replace("127.0.0.1", "127.0.0.2"))
    other = RunningServer(Settings(zone_paths=(other_zone,), dns_listen=(("127.0.0.1", 0),), http_listen=None))
    site = HealthSite()
    server = None
    try:
        check = f"{{type: http, port: {site.port}, path: /healthz, interval: 0.3s, timeout: 0.3s, rise: 1, fall: 1}}"
        clusters = f"""
  eu-west-1:      {{region: eu-west, endpoints: ["ingress.lb.example.net"], check: {check}}}
  ap-southeast-1: {{region: ap-southeast, endpoints: ["elb-ap.lb.example.net"]}}
"""
        records = "  app.gslb.example.com: {clusters: [eu-west-1, ap-southeast-1], policy: [healthy, geo]}\n"
        path = config(tmp_path, resolver, clusters=clusters, records=records)
        server = RunningServer(Settings(config_path=path))
        assert wait_for(lambda: site.hosts)
        assert wait_for(
            lambda: answer(ask(server, "app.gslb.example.com", EU)) == [("CNAME", "ingress.lb.example.net.")]
        )
        config(tmp_path, other, clusters=clusters, records=records)
        assert server.reload()
        # The checker now dials 127.0.0.2, where nothing answers: eu-west-1 is down, its clients go elsewhere.
        assert wait_for(
            lambda: answer(ask(server, "app.gslb.example.com", EU)) == [("CNAME", "elb-ap.lb.example.net.")]
        )
        config(tmp_path, resolver, clusters=clusters, records=records)
        assert server.reload()
        assert wait_for(
            lambda: answer(ask(server, "app.gslb.example.com", EU)) == [("CNAME", "ingress.lb.example.net.")]
        )
    finally:
        if server is not None:
            server.stop()
        site.stop()
        other.stop()
