"""A signed geodns for the DNSSEC tests: keys made with geodns's own keygen, a zone with one name
per rule (wildcard, empty non-terminal, delegation, CNAME, MX with its additional data), and
GSLB records of every kind of policy chain."""

from __future__ import annotations

from pathlib import Path

from geodns.dnssec import keys
from geodns.process.server import Settings
from tests.dnsserver import GEOIP_TEST_DB, RunningServer, write

ORIGIN = "gslb.example.com."

ZONE = """\
$ORIGIN gslb.example.com.
$TTL 300
@        IN SOA ns1 hostmaster.example.com. 2026120101 7200 900 1209600 60
@        IN NS  ns1
@        IN MX  10 mail
ns1      IN A   192.0.2.53
mail     IN A   192.0.2.25
www      IN A   192.0.2.80
www      IN AAAA 2001:db8::80
docs     IN CNAME www
txt      IN TXT "hello" "world"
*.apps   IN A   203.0.113.10
a.b.ent  IN A   192.0.2.7
sub      IN NS  ns.sub
ns.sub   IN A   192.0.2.99
big      IN TXT "{big}" "{big}"
edge-lb  IN A   192.0.2.81
edge-lb  IN TXT "behind the balancer"
"""

# Every record kind the policy chain has: by place, by weight (two answer sets), failover, two
# answers at once, a record with no IPv6 endpoint (AAAA is NODATA), one answering a host name in the
# zone as a CNAME (followed to the target's data).
RECORDS = """\
records:
  app.gslb.example.com:      {ttl: 30, clusters: [us-east-1, eu-west-1, ap-southeast-1], policy: [healthy, geo, weighted]}
  weighted.gslb.example.com: {ttl: 30, clusters: [us-east-1, eu-west-1], policy: [healthy, weighted]}
  failover.gslb.example.com: {ttl: 30, clusters: [eu-west-1, us-east-1], policy: [healthy, failover]}
  pair.gslb.example.com:     {ttl: 30, clusters: [us-east-1, eu-west-1], policy: [healthy, weighted], answers: 2}
  v4only.gslb.example.com:   {ttl: 30, clusters: [ap-southeast-1], policy: [healthy]}
  deep.gslb.example.com:     {ttl: 30, clusters: [us-east-1], policy: [healthy]}
  x.y.gslb.example.com:      {ttl: 30, clusters: [us-east-1], policy: [healthy]}
  edge.gslb.example.com:     {ttl: 30, clusters: [edge-1], policy: [healthy]}
"""


def make_key(directory: Path, algorithm: str = "ecdsap256sha256", zone: str = ORIGIN) -> keys.SigningKey:
    key = keys.generate(zone, algorithm)
    keys.write(key, directory)
    return key


def config_text(directory: Path, key_files: list[Path], dnssec_extra: str = "", server_extra: str = "") -> str:
    zone = write(directory / "gslb.example.com.zone", ZONE.replace("{big}", "x" * 200))
    key_list = ", ".join(f'"{path}"' for path in key_files)
    return f"""
server: {{dns_listen: ["127.0.0.1:0"], http_listen: null, nsid: "geodns-signed"{server_extra}}}
zones: ["{zone}"]
geoip:
  database: "{GEOIP_TEST_DB}"
regions:
  us-east:      {{lat: 39.0, lon: -77.5, continent: NA, countries: [US, CA]}}
  eu-west:      {{lat: 53.3, lon: -6.3,  continent: EU, countries: [GB, IE]}}
  ap-southeast: {{lat: 1.35, lon: 103.8, continent: AS, countries: [SG]}}
clusters:
  us-east-1:      {{region: us-east, endpoints: ["192.0.2.10", "2001:db8::10"], priority: 1}}
  eu-west-1:      {{region: eu-west, endpoints: ["198.51.100.10", "2001:db8:1::10"]}}
  ap-southeast-1: {{region: ap-southeast, endpoints: ["203.0.113.10"]}}
  edge-1:         {{region: eu-west, endpoints: ["edge-lb.gslb.example.com"]}}
{RECORDS}
dnssec:
  zones:
    {ORIGIN}: {{keys: [{key_list}]}}
{dnssec_extra}"""


def start(directory: Path, key: keys.SigningKey, dnssec_extra: str = "", **settings) -> RunningServer:
    assert key.path is None or key.path.exists()
    base = directory / f"{key.basename}.private"
    config = write(directory / "geodns.yaml", config_text(directory, [base], dnssec_extra))
    return RunningServer(Settings(config_path=config, **settings))


def ds_anchor(key: keys.SigningKey) -> str:
    return f"{ORIGIN} DS {key.ds().to_text()}"
