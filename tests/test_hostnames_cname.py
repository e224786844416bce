"""A record answering a host name as a CNAME owns its name (RFC 1034 3.6.2): every type asked there
gets the CNAME (but DS, NSEC and RRSIG), a target inside our zones is followed as a static CNAME's
is (so the answer carries the target's data, or another record's decision), and the zone file may
hold nothing else at that name.
"""

from __future__ import annotations

from pathlib import Path

import dns.edns
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from geodns.config.load import load_config
from geodns.errors import ConfigError
from geodns.process.server import Settings, build_engine
from tests.dnsserver import RunningServer, write

EU, AP = "10.20.1.0", "10.30.1.0"  # clients placed by the CIDR map

ZONE = """\
$ORIGIN gslb.example.com.
$TTL 300
@        IN SOA ns1 hostmaster.example.com. 1 7200 900 1209600 60
@        IN NS  ns1
ns1      IN A   192.0.2.53
edge     IN A   192.0.2.81
edge     IN TXT "behind the balancer"
edge     IN MX  10 ns1
{extra}"""


def config(tmp_path: Path, zone_extra: str = "", records_extra: str = "") -> Path:
    zone = write(tmp_path / "gslb.zone", ZONE.format(extra=zone_extra))
    return write(
        tmp_path / "geodns.yaml",
        f"""
server: {{dns_listen: ["127.0.0.1:0"], http_listen: null}}
zones: ["{zone}"]
geoip:
  networks:
    - {{cidr: "10.20.0.0/16", region: eu-west}}
    - {{cidr: "10.30.0.0/16", region: ap-southeast}}
regions:
  eu-west:      {{lat: 53.3, lon: -6.3,  continent: EU}}
  ap-southeast: {{lat: 1.35, lon: 103.8, continent: AS}}
clusters:
  eu-west-1:      {{region: eu-west, endpoints: ["elb-eu.lb.example.net"]}}
  ap-southeast-1: {{region: ap-southeast, endpoints: ["edge.gslb.example.com"]}}
  eu-addr:        {{region: eu-west, endpoints: ["198.51.100.10"]}}
  ap-addr:        {{region: ap-southeast, endpoints: ["203.0.113.20"]}}
  chained:        {{region: eu-west, endpoints: ["inner.gslb.example.com"]}}
records:
  app.gslb.example.com:   {{clusters: [eu-west-1, ap-southeast-1], policy: [healthy, geo], ttl: 30}}
  inner.gslb.example.com: {{clusters: [eu-addr, ap-addr], policy: [healthy, geo], ttl: 20}}
  outer.gslb.example.com: {{clusters: [chained], policy: [healthy], ttl: 30}}
{records_extra}""",
    )


def ask(server: RunningServer, name: str, subnet: str, rdtype: str = "A", tcp: bool = False):
    query = dns.message.make_query(name, rdtype, use_edns=0, options=[dns.edns.ECSOption(subnet, 24)])
    send = dns.query.tcp if tcp else dns.query.udp
    return send(query, server.host, port=server.port, timeout=3)


def answer(response) -> list[tuple[str, str, str]]:
    """(owner, type, data) of each record in the answer section, in order."""
    return [
        (rrset.name.to_text(), dns.rdatatype.to_text(rrset.rdtype), r.to_text())
        for rrset in response.answer
        for r in sorted(rrset, key=str)
    ]


APP, EDGE = "app.gslb.example.com.", "edge.gslb.example.com."


@pytest.fixture
def server(tmp_path):
    running = RunningServer(Settings(config_path=config(tmp_path)))
    yield running
    running.stop()


@pytest.mark.parametrize("rdtype", ["A", "AAAA", "TXT", "MX", "CAA", "SRV"])
def test_every_type_at_a_cname_record_gets_the_cname(server, rdtype):
    response = ask(server, APP, EU, rdtype)
    assert response.rcode() == dns.rcode.NOERROR
    # Out of our zones: the CNAME alone; the resolver follows it.
    assert answer(response) == [(APP, "CNAME", "elb-eu.lb.example.net.")]


def test_a_target_inside_our_zones_is_followed_for_the_type_asked(server):
    for _ in range(3):  # the first full path, then the fast path: the same answer, target data and all
        assert answer(ask(server, APP, AP)) == [(APP, "CNAME", EDGE), (EDGE, "A", "192.0.2.81")]
    assert answer(ask(server, APP, AP, tcp=True)) == [(APP, "CNAME", EDGE), (EDGE, "A", "192.0.2.81")]
    assert answer(ask(server, APP, AP, "TXT")) == [(APP, "CNAME", EDGE), (EDGE, "TXT", '"behind the balancer"')]
    assert answer(ask(server, APP, AP, "MX")) == [(APP, "CNAME", EDGE), (EDGE, "MX", "10 ns1.gslb.example.com.")]
    # A type the target lacks: the CNAME, and NODATA for the target (its SOA in authority).
    nodata = ask(server, APP, AP, "AAAA")
    assert answer(nodata) == [(APP, "CNAME", EDGE)]
    assert [dns.rdatatype.to_text(r.rdtype) for r in nodata.authority] == ["SOA"]


def test_a_target_that_is_another_record_carries_that_records_decision_for_the_client(server):
    inner = "inner.gslb.example.com."
    for subnet, address in ((EU, "198.51.100.10"), (AP, "203.0.113.20"), (EU, "198.51.100.10")):
        response = ask(server, "outer.gslb.example.com", subnet)
        assert answer(response) == [("outer.gslb.example.com.", "CNAME", inner), (inner, "A", address)]
        (ecs,) = [o for o in response.options if isinstance(o, dns.edns.ECSOption)]
        assert ecs.scopelen > 0  # the inner record's decision depends on where the client is


def test_dnssec_types_at_a_cname_record_are_nodata_not_the_cname(server):
    for rdtype in ("DS", "NSEC", "RRSIG"):
        response = ask(server, APP, EU, rdtype)
        assert response.rcode() == dns.rcode.NOERROR and not response.answer, response.to_text()
        assert [dns.rdatatype.to_text(r.rdtype) for r in response.authority] == ["SOA"]


def test_an_address_record_still_leaves_other_types_to_the_zone(server):
    # inner answers addresses: a TXT there is NODATA, not a CNAME.
    response = ask(server, "inner.gslb.example.com", EU, "TXT")
    assert response.rcode() == dns.rcode.NOERROR and not response.answer


def test_a_cname_record_where_the_zone_has_data_is_a_config_error_naming_it(tmp_path):
    path = config(
        tmp_path,
        zone_extra='clash IN TXT "v=spf1 -all"\n',
        records_extra="  clash.gslb.example.com: {clusters: [eu-west-1], policy: [healthy]}\n",
    )
    with pytest.raises(ConfigError) as caught:
        build_engine(load_config(path))
    message = str(caught.value)
    assert "records.clash.gslb.example.com: " in message and "also has TXT records at this name" in message
    assert "answers a host name as a CNAME, which owns its name alone" in message
    # The same name answering addresses may share its name with a TXT.
    path = config(
        tmp_path,
        zone_extra='clash IN TXT "v=spf1 -all"\n',
        records_extra="  clash.gslb.example.com: {clusters: [eu-addr], policy: [healthy]}\n",
    )
    build_engine(load_config(path))
