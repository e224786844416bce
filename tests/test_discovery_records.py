"""Records from discovery end to end: leases in a real store (memory:// and a real redis-server),
real DNS servers answering them to dnspython, and the operator's views of them."""

from __future__ import annotations

import json
import logging
import time
import urllib.request
from pathlib import Path

import dns.edns
import dns.message
import dns.query
import dns.rcode
import pytest

from geodns.cli.status import render as render_status
from geodns.config.load import load_config
from geodns.errors import ConfigError
from geodns.process.server import Settings
from geodns.state import codec
from geodns.state.memory import MemoryStore
from geodns.state.model import AdminState, Lease, Registration
from geodns.state.redis import RedisStore
from geodns.state.store import StateStore
from tests.dnsserver import GEOIP_TEST_DB, GSLB_ZONE, RunningServer, write
from tests.polling import wait_for
from tests.redis_server import RedisServer, free_port

APP = "shop.apps.gslb.example.com."
SG, LONDON = "214.0.0.0", "81.2.69.142"


def discovery_config(tmp_path: Path, store: str, extra: str = "", grace: str = "2s", http: bool = False) -> Path:
    http_listen = f'"127.0.0.1:{free_port()}"' if http else "null"
    return write(
        tmp_path / "geodns.yaml",
        f"""
server: {{dns_listen: ["127.0.0.1:0"], http_listen: {http_listen}}}
store: "{store}"
zones: ["{write(tmp_path / "gslb.example.com.zone", GSLB_ZONE)}"]
geoip:
  database: "{GEOIP_TEST_DB}"
regions:
  us-east:      {{lat: 39.0, lon: -77.5, continent: NA, countries: [US, CA]}}
  eu-west:      {{lat: 53.3, lon: -6.3,  continent: EU, countries: [GB, IE]}}
  ap-southeast: {{lat: 1.35, lon: 103.8, continent: AS, countries: [SG]}}
clusters:
  us-east-1: {{region: us-east, endpoints: ["192.0.2.10"]}}
records:
  app.gslb.example.com: {{clusters: [us-east-1], policy: [healthy, geo, weighted]}}
discovery:
  zone: gslb.example.com
  suffixes: [apps.gslb.example.com, app.gslb.example.com]
  defaults: {{policy: [healthy, geo, weighted], ttl: 20}}
  grace: {grace}
{extra}""",
    )


def lease(
    cluster: str, region: str, registrations: list[Registration], ttl: float = 30.0, agent: str = "agent-0"
) -> Lease:
    now = time.time()
    return Lease(cluster, region, agent, tuple(registrations), now, now + ttl)


def ask(server: RunningServer, name: str = APP, subnet: str | None = None, rdtype: str = "A"):
    options = [dns.edns.ECSOption(subnet, 32 if subnet == LONDON else 24)] if subnet else None
    query = dns.message.make_query(name, rdtype, use_edns=0, options=options)
    return dns.query.udp(query, server.host, port=server.port, timeout=3)


def addresses(response) -> set[str]:
    return {r.to_text() for rrset in response.answer for r in rrset if rrset.rdtype in (1, 28)}


@pytest.fixture
def redis(tmp_path):
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


# -- config -----------------------------------------------------------------------------------


def test_the_discovery_block_is_read_with_its_defaults(tmp_path):
    config = load_config(discovery_config(tmp_path, "memory://"))
    d = config.discovery
    assert d is not None and d.grace == 2.0 and d.ttl == 20 and d.policy == ("healthy", "geo", "weighted")
    assert [b".".join(s).decode() for s in d.suffixes] == ["apps.gslb.example.com", "app.gslb.example.com"]
    assert d.export_zone is None and d.hostnames == "cname" and d.check is None


def test_bad_discovery_blocks_name_every_problem_with_its_key(tmp_path):
    extra = "  hostnames: alias\n  check: {type: tcp}\n  export_zone: 'bad..name'\n"
    path = discovery_config(tmp_path, "memory://", extra=extra, grace="2h")
    path.write_text(path.read_text().replace("app.gslb.example.com]", "elsewhere.example.org]"))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    text = str(caught.value)
    for expected in (
        "discovery.suffixes[1]: elsewhere.example.org. is outside the discovery zone gslb.example.com.",
        "discovery.grace: must be at most 1h",
        "discovery.hostnames: ",
        "discovery.check: a tcp check needs port",
        "discovery.export_zone: ",
    ):
        assert expected in text, text
    assert str(path) in text


def test_a_discovery_zone_that_is_not_served_is_refused_at_start(tmp_path):
    path = discovery_config(tmp_path, "memory://")
    path.write_text(
        path.read_text()
        .replace("zone: gslb.example.com", "zone: example.net")
        .replace("suffixes: [apps.gslb.example.com, app.gslb.example.com]", "suffixes: [example.net]")
    )
    with pytest.raises(ConfigError, match="discovery.zone: example.net. is not inside any served zone"):
        RunningServer(Settings(config_path=path))


# -- the store's side: leases in both backends ---------------------------------------------------


@pytest.fixture(params=["memory", "redis"])
async def store(request, tmp_path):
    if request.param == "memory":
        memory = MemoryStore()
        await memory.seed([])
        yield memory
        await memory.close()
        return
    server = RedisServer(tmp_path).start()
    redis_store = RedisStore(server.url + "?prefix=d:")
    try:
        await redis_store.seed([])
        yield redis_store
    finally:
        await redis_store.close()
        server.stop()


async def test_a_lease_holds_a_clusters_registrations_and_renewing_it_publishes_nothing(store: StateStore):
    reg = Registration("shop.apps.gslb.example.com", ("198.51.100.20", "2001:db8:2::20"), "Service shop/web")
    before = (await store.load()).version
    v1 = await store.publish_lease(lease("eu-west-1", "eu-west", [reg]))
    assert v1 == before + 1
    loaded = (await store.load()).leases["eu-west-1"]
    assert loaded.registrations == (reg,) and loaded.region == "eu-west"
    # The same registrations again (the agent relisting): no news for readers.
    assert await store.publish_lease(lease("eu-west-1", "eu-west", [reg])) == v1
    assert await store.renew_lease("eu-west-1", "agent-1", time.time(), time.time() + 60)
    snapshot = await store.load()
    assert snapshot.version == v1 and snapshot.leases["eu-west-1"].agent == "agent-1"
    assert snapshot.leases["eu-west-1"].expires > time.time() + 50
    # A different set is news; a missing lease cannot be renewed (the agent publishes again).
    assert await store.publish_lease(lease("eu-west-1", "eu-west", [])) == v1 + 1
    assert not await store.renew_lease("us-east-1", "agent-9", time.time(), time.time() + 60)
    assert await store.drop_lease("eu-west-1") == v1 + 2
    assert (await store.load()).leases == {}


async def test_renewing_a_lapsed_lease_is_news(store: StateStore):
    reg = Registration("a.apps.gslb.example.com", ("198.51.100.20",))
    v1 = await store.publish_lease(lease("eu-west-1", "eu-west", [reg], ttl=-1.0))  # already lapsed
    assert (await store.load()).leases["eu-west-1"].stale(time.time())
    assert await store.renew_lease("eu-west-1", "agent-0", time.time(), time.time() + 30)
    snapshot = await store.load()
    assert snapshot.version == v1 + 1 and not snapshot.leases["eu-west-1"].stale(time.time())


async def test_a_bad_lease_in_redis_is_named_not_served(redis):
    store = RedisStore(redis.url)
    try:
        await store.seed([])
        client = store._redis()
        await client.set("geodns:lease:eu-west-1", json.dumps({"cluster": "eu-west-1", "region": "eu-west"}))
        await client.zadd("geodns:leases", {"eu-west-1": time.time() + 30})
        snapshot = await store.load()
        assert snapshot.leases == {}
        assert "agent: missing" in snapshot.problems["lease:eu-west-1"]
        with pytest.raises(ValueError, match=r"registrations\[0\].endpoints\[0\]: must be an address or a host name"):
            codec.load_lease(
                json.dumps(
                    {
                        "cluster": "c",
                        "region": "r",
                        "agent": "a",
                        "renewed": 1,
                        "expires": 2,
                        "registrations": [{"name": "x", "endpoints": ["not an address!"]}],
                    }
                )
            )
    finally:
        await store.close()


# -- DNS servers answering what clusters registered ---------------------------------------------------


def test_a_registration_is_answered_by_every_server_and_a_deletion_takes_it_away(tmp_path, redis):
    config = discovery_config(tmp_path, redis.url, http=True)
    one = RunningServer(Settings(config_path=config))
    two = RunningServer(Settings(config_path=config, http_listen=("127.0.0.1", free_port())))
    agent = RedisStore(redis.url)
    try:
        assert ask(one).rcode() == dns.rcode.NXDOMAIN
        reg = Registration(APP, ("198.51.100.20", "2001:db8:2::20"), "Ingress shop/web", weight=50)
        one.call(agent.publish_lease(lease("eu-west-1", "eu-west", [reg])))
        for server in (one, two):
            assert wait_for(lambda s=server: addresses(ask(s)) == {"198.51.100.20"})
        assert addresses(ask(two, rdtype="AAAA")) == {"2001:db8:2::20"}
        assert ask(two).answer[0].ttl == 20  # the discovery defaults

        # Where it came from, in the API, `geodns status` and `explain`.
        api = f"http://127.0.0.1:{one.server.http.addresses[0][1]}/api/v1"
        records = {r["name"]: r for r in json.load(urllib.request.urlopen(f"{api}/records"))["records"]}
        assert records["app.gslb.example.com"]["origin"] == "config"
        shop = records["shop.apps.gslb.example.com"]
        assert shop["origin"] == "discovery" and shop["clusters"] == ["eu-west-1:shop.apps.gslb.example.com"]
        (origin,) = shop["registrations"]
        assert origin["cluster"] == "eu-west-1" and origin["source"] == "Ingress shop/web"
        assert origin["stale"] is False and origin["lease_age_s"] >= 0
        status = json.load(urllib.request.urlopen(f"{api}/status"))
        clusters = json.load(urllib.request.urlopen(f"{api}/clusters"))
        text = render_status("api", status, clusters, list(records.values()))
        assert "shop.apps.gslb.example.com  eu-west-1  eu-west  Ingress shop/web" in text
        explained = json.load(urllib.request.urlopen(f"{api}/explain?name={APP}&client={LONDON}"))
        assert explained["origin"] == "discovery" and explained["answer"] == ["198.51.100.20"]
        assert explained["candidates"]["eu-west-1:shop.apps.gslb.example.com"]["weight"] == 50
        page = urllib.request.urlopen(f"http://127.0.0.1:{one.server.http.addresses[0][1]}/").read().decode()
        assert "data-record='shop.apps.gslb.example.com'" in page and "Ingress shop/web" in page

        # The object is deleted: the agent publishes the cluster's set without it.
        one.call(agent.publish_lease(lease("eu-west-1", "eu-west", [])))
        for server in (one, two):
            assert wait_for(lambda s=server: ask(s).rcode() == dns.rcode.NXDOMAIN)
    finally:
        one.call(agent.close())
        one.stop()
        two.stop()


def test_two_clusters_register_one_name_and_each_place_gets_its_own(tmp_path):
    server = RunningServer(Settings(config_path=discovery_config(tmp_path, "memory://")))
    store = server.server.store
    assert store is not None
    try:
        server.call(store.publish_lease(lease("eu-west-1", "eu-west", [Registration(APP, ("198.51.100.20",))])))
        server.call(
            store.publish_lease(lease("ap-southeast-1", "ap-southeast", [Registration(APP, ("203.0.113.20",))]))
        )
        assert wait_for(lambda: addresses(ask(server, subnet=SG)) == {"203.0.113.20"})
        assert addresses(ask(server, subnet=LONDON)) == {"198.51.100.20"}
        # Draining the table's cluster of that name drains what it registered too.
        server.call(store.add_cluster(_spec("ap-southeast-1", "ap-southeast", "203.0.113.10")))
        server.call(store.set_admin("ap-southeast-1", AdminState.DRAINED))
        assert wait_for(lambda: addresses(ask(server, subnet=SG)) == {"198.51.100.20"})
    finally:
        server.stop()


def test_a_discovered_name_has_its_debug_txt_while_it_is_answered(tmp_path):
    """``_geodns.<record>`` (server.debug_txt) for a name that was not there when the server started."""
    path = discovery_config(tmp_path, "memory://")
    path.write_text(path.read_text().replace("http_listen: null}", "http_listen: null, debug_txt: true}"))
    server = RunningServer(Settings(config_path=path))
    store = server.server.store
    assert store is not None
    debug = "_geodns." + APP
    try:
        assert ask(server, debug, LONDON, "TXT").rcode() == dns.rcode.NXDOMAIN
        server.call(store.publish_lease(lease("eu-west-1", "eu-west", [Registration(APP, ("198.51.100.20",))])))
        assert wait_for(lambda: ask(server, debug, LONDON, "TXT").answer)
        lines = sorted(
            b"".join(r.strings).decode() for rrset in ask(server, debug, LONDON, "TXT").answer for r in rrset
        )
        assert lines[0].startswith(f"01 client ecs {LONDON}/32 located GB/EU")
        assert any("answer A 198.51.100.20 AAAA - clusters eu-west-1:shop.apps.gslb.example.com" in x for x in lines)
        # Gone with the registration.
        server.call(store.publish_lease(lease("eu-west-1", "eu-west", [])))
        assert wait_for(lambda: ask(server, debug, LONDON, "TXT").rcode() == dns.rcode.NXDOMAIN)
    finally:
        server.stop()


def _spec(name: str, region: str, address: str):
    import ipaddress

    from geodns.config.model import ClusterSpec, EndpointSpec

    return ClusterSpec(name, region, (EndpointSpec(ipaddress.ip_address(address)),))


def test_a_dead_agent_leaves_its_names_stale_until_the_grace_ends(tmp_path, redis):
    server = RunningServer(Settings(config_path=discovery_config(tmp_path, redis.url, grace="3s")))
    agent = RedisStore(redis.url)
    try:
        reg = Registration(APP, ("198.51.100.20",), "Service shop/web")
        server.call(agent.publish_lease(lease("eu-west-1", "eu-west", [reg], ttl=1.0)))
        assert wait_for(lambda: addresses(ask(server)) == {"198.51.100.20"})
        # The agent is gone: nothing renews.  The lease lapses; the name is still answered, stale.
        responder = server.server.engine.responder

        def stale() -> bool:
            origins = responder.live.discovered.origins.get(next(iter(responder.live.discovered.origins), ()), ())
            return bool(origins) and origins[0].stale(time.time())

        assert wait_for(stale)
        assert addresses(ask(server)) == {"198.51.100.20"}
        # ...until the grace ends.
        assert wait_for(lambda: ask(server).rcode() == dns.rcode.NXDOMAIN)
    finally:
        server.call(agent.close())
        server.stop()


def test_claims_outside_the_allowed_suffixes_are_refused_and_config_records_win(tmp_path, caplog):
    server = RunningServer(Settings(config_path=discovery_config(tmp_path, "memory://")))
    store = server.server.store
    assert store is not None
    try:
        with caplog.at_level(logging.INFO, logger="geodns.server"):
            regs = [
                Registration("www.example.org", ("198.51.100.66",), "Service evil/x"),
                Registration("other.gslb.example.com", ("198.51.100.67",), "Service evil/y"),
                Registration("app.gslb.example.com", ("198.51.100.68",), "Ingress shop/app"),
                Registration(APP, ("198.51.100.20",), "Ingress shop/web"),
            ]
            server.call(store.publish_lease(lease("eu-west-1", "eu-west", regs)))
            assert wait_for(lambda: addresses(ask(server)) == {"198.51.100.20"})
            assert ask(server, "other.gslb.example.com.").rcode() == dns.rcode.NXDOMAIN
            assert addresses(ask(server, "app.gslb.example.com.")) == {"192.0.2.10"}  # the config's
            assert ask(server, "www.example.org.").rcode() == dns.rcode.REFUSED
        logged = caplog.text
        assert "event=discovery-refused name=www.example.org cluster=eu-west-1" in logged
        assert "outside the allowed suffixes (apps.gslb.example.com, app.gslb.example.com)" in logged
        assert "event=discovery-refused name=other.gslb.example.com" in logged
        assert "event=discovery-conflict name=app.gslb.example.com. cluster=eu-west-1" in logged
        assert "winner=config" in logged
        assert "event=discovered-record name=shop.apps.gslb.example.com. clusters=eu-west-1" in logged
        # Logged once, not at every rebuild.
        server.call(store.report([]))
        assert logged.count("event=discovery-refused name=www.example.org") == 1
    finally:
        server.stop()
