"""Shared fixtures: a real geodns server on loopback, and the example zones it serves."""

from __future__ import annotations

#                   terminal summary otherwise, and on CPython 3.11.7 that late import can hit
#                   "SystemError: AST constructor recursion depth mismatch" and lose the summary line
import atexit
import os
import shutil
import tempfile
from pathlib import Path

import hypothesis  # noqa: F401 - imported up front: hypothesis's pytest plugin imports it lazily in the
import pytest

from geodns.process.server import Settings
from tests.dnsserver import RunningServer, write

# The `redis_server` fixture (a private redis-server per test) is offered to every test module
# from here, so modules ask for it by parameter name instead of importing it (F811 otherwise).
pytest_plugins = ["tests.redis_server"]

# Tests talk to loopback and their own namespaces only: no HTTP proxy from the environment may stand
# in between (urllib would send 127.0.0.1 requests to it), for this process and every child it starts.
os.environ["no_proxy"] = os.environ["NO_PROXY"] = "*"
# Compiled GeoIP areas (geo/compile.py) go to a directory of the test run's own, not the user's cache.
_AREAS = tempfile.mkdtemp(prefix="geodns-test-cache-")
os.environ["GEODNS_CACHE_DIR"] = _AREAS
atexit.register(shutil.rmtree, _AREAS, True)

REPO = Path(__file__).resolve().parent.parent

TEST_ZONE = """\
; The zone most answer tests run against; each name exists for one rule.
$ORIGIN gslb.example.com.
$TTL 300
@       3600 IN SOA ns1 hostmaster.example.com. ( 2026112601 7200 900 1209600 60 )
@            IN NS   ns1
@            IN NS   ns2.example.net.
@            IN MX   10 mail
ns1          IN A    192.0.2.53
ns1          IN AAAA 2001:db8::53
www          IN A    192.0.2.80
www          IN AAAA 2001:db8::80
mail         IN A    192.0.2.25
_sip._tcp    IN SRV  10 60 5060 sip
sip          IN A    192.0.2.60
txt          IN TXT  "hello" "world"
caa          IN CAA  0 issue "letsencrypt.org"
ptr          IN PTR  www
docs         IN CNAME www
ext          IN CNAME www.example.org.
chain1       IN CNAME chain2
chain2       IN CNAME www
loop1        IN CNAME loop2
loop2        IN CNAME loop1
dangling     IN CNAME missing
other        IN CNAME www.other.test.
*.apps       IN A    203.0.113.10
exists.apps  IN A    203.0.113.11
a.b.ent      IN A    192.0.2.7
a.*.entwild  IN A    192.0.2.9
sub          IN NS   ns.sub
sub          IN NS   ns.elsewhere.example.net.
ns.sub       IN A    192.0.2.99
"""

OTHER_ZONE = """\
$ORIGIN other.test.
$TTL 120
@   IN SOA ns1.other.test. hostmaster.other.test. 1 7200 900 1209600 30
@   IN NS  ns1
ns1 IN A   198.51.100.53
www IN A   198.51.100.80
"""


def big_zone_lines(count: int = 100) -> str:
    return "".join(f"big IN A 192.0.2.{i}\n" for i in range(1, count + 1))


@pytest.fixture(scope="module")
def zone_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("zones")
    write(d / "gslb.example.com.zone", TEST_ZONE + big_zone_lines())
    write(d / "other.test.zone", OTHER_ZONE)
    return d


@pytest.fixture(scope="module")
def dns_server(zone_dir):
    """One server for the read-only answer tests: two zones, NSID set."""
    config = write(
        zone_dir / "geodns.yaml",
        f"""
server:
  dns_listen: ["127.0.0.1:0"]
  http_listen: null
  nsid: "geodns-test"
zones: ["{zone_dir / "gslb.example.com.zone"}", "{zone_dir / "other.test.zone"}"]
""",
    )
    server = RunningServer(Settings(config_path=config))
    yield server
    server.stop()
