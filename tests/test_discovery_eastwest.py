"""East-west names: a Service exported by several clusters is answered as
<service>.<namespace>.<export zone>, its own cluster first for a pod (located by the CIDR map),
another region's when the checks say its own is down."""

from __future__ import annotations

import dns.edns
import dns.message
import dns.query

from geodns.discovery.objects import registrations
from geodns.process.server import Settings
from geodns.state.model import Registration
from geodns.tooling.kubeapi import service
from tests.dnsserver import GSLB_ZONE, RunningServer, write
from tests.polling import wait_for
from tests.processes import SimIngress
from tests.test_discovery_records import addresses, lease

NAME = "web.shop.clusterset.example.internal."
EU_POD, AP_POD = "10.20.7.0", "10.30.7.0"
CLUSTERSET_ZONE = """\
$ORIGIN clusterset.example.internal.
$TTL 300
@    IN SOA ns1 hostmaster.example.com. 1 7200 900 1209600 60
@    IN NS  ns1
ns1  IN A   192.0.2.53
"""


def ask(server: RunningServer, pod: str):
    query = dns.message.make_query(NAME, "A", use_edns=0, options=[dns.edns.ECSOption(pod, 24)])
    return dns.query.udp(query, server.host, port=server.port, timeout=3)


def test_a_pod_gets_its_own_clusters_endpoint_first_and_another_regions_when_it_is_down(tmp_path):
    eu = SimIngress("eu-west-1", tmp_path, host="127.0.0.2")
    ap = SimIngress("ap-southeast-1", tmp_path, host="127.0.0.3")
    server = None
    try:
        config = write(
            tmp_path / "geodns.yaml",
            f"""
server: {{dns_listen: ["127.0.0.1:0"], http_listen: null}}
zones: ["{write(tmp_path / "gslb.zone", GSLB_ZONE)}", "{write(tmp_path / "clusterset.zone", CLUSTERSET_ZONE)}"]
geoip:
  networks:
    - {{cidr: "10.20.0.0/16", region: eu-west}}
    - {{cidr: "10.30.0.0/16", region: ap-southeast}}
regions:
  eu-west:      {{lat: 53.3, lon: -6.3,  continent: EU}}
  ap-southeast: {{lat: 1.35, lon: 103.8, continent: AS}}
discovery:
  zone: gslb.example.com
  export_zone: clusterset.example.internal
  check: {{type: http, path: /healthz, interval: 0.3s, timeout: 0.2s, rise: 1, fall: 1}}
""",
        )
        server = RunningServer(Settings(config_path=config))
        store = server.server.store
        assert store is not None
        # What each cluster's agent registers for an exported Service (the Service's LB address
        # here is the simulated ingress on loopback; geodns.io/probe names its health port).
        for sim, cluster, region in ((eu, "eu-west-1", "eu-west"), (ap, "ap-southeast-1", "ap-southeast")):
            svc = service("web", namespace="shop", ips=(sim.host,), export=True, probe=f"{sim.port}/healthz")
            (found,) = registrations("Service", svc).registrations
            assert found == Registration("web.shop", (sim.host,), "Service shop/web", True, probe=f"{sim.port}/healthz")
            server.call(store.publish_lease(lease(cluster, region, [found])))

        assert wait_for(lambda: addresses(ask(server, EU_POD)) == {"127.0.0.2"})
        assert addresses(ask(server, AP_POD)) == {"127.0.0.3"}
        # The checks probe each with the name as Host: eu-west's goes down, its pods go east.
        eu.set_mode("503")
        assert wait_for(lambda: addresses(ask(server, EU_POD)) == {"127.0.0.3"})
        eu.set_mode("up")
        assert wait_for(lambda: addresses(ask(server, EU_POD)) == {"127.0.0.2"})
    finally:
        if server is not None:
            server.stop()
        eu.stop()
        ap.stop()
