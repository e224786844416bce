"""The agent against an API server that speaks the real list/watch protocol (geodns/tooling/kubeapi.py),
through the real client library (kubernetes_asyncio, reading a kubeconfig the test writes)."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time

import dns.rcode
import pytest

from geodns.discovery.agent import Agent
from geodns.discovery.kube import Backoff, Follower, api_client
from geodns.discovery.objects import KINDS, registrations
from geodns.process.server import Settings
from geodns.state.memory import MemoryStore
from geodns.tooling.kubeapi import FakeKubeApi, service
from tests.dnsserver import RunningServer
from tests.polling import wait_for
from tests.processes import Child
from tests.redis_server import RedisServer, free_port
from tests.test_discovery_records import LONDON, SG, addresses, ask, discovery_config


class AgentThread:
    """An agent on its own event loop (the test thread polls and blocks meanwhile)."""

    def __init__(self, kubeconfig, store=None, cluster: str = "eu-west-1", region: str = "eu-west", **kw):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.kubeconfig, self.kw = str(kubeconfig), kw
        self.cluster, self.region = cluster, region
        self.store = store
        self.call(self._start())

    async def _start(self) -> None:
        if self.store is None:
            self.store = MemoryStore()
            await self.store.seed([])
        self.api = await api_client(self.kubeconfig)
        self.agent = Agent(self.store, self.cluster, self.region, renew=0.3, ttl=1.0, **self.kw)
        self.followers = {
            kind: Follower(self.api, kind, (), self.agent.changed, watch_seconds=30, page=2, backoff=Backoff(0.05, 0.5))
            for kind in KINDS
        }
        await self.agent.start(self.followers.values())

    def call(self, coro, timeout: float = 10.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def names(self) -> set[str]:
        async def go():
            lease = (await self.store.load()).leases.get(self.cluster)
            return {r.name for r in lease.registrations} if lease else None

        return self.call(go())

    def stop(self) -> None:
        async def go():
            await self.agent.stop()
            await self.api.close()

        self.call(go())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def api():
    server = FakeKubeApi().start()
    yield server
    server.stop()


@pytest.fixture
def agent(api, tmp_path):
    for i in range(5):  # more than two pages of services
        api.apply("services", service(f"web{i}", hostname=f"web{i}.apps.gslb.example.com"))
    api.apply("services", service("plain"))  # no annotation: nothing registered
    running = AgentThread(api.kubeconfig(tmp_path / "kubeconfig"))
    yield running
    running.stop()


ALL = {f"web{i}.apps.gslb.example.com" for i in range(5)}


def test_the_agent_lists_in_pages_then_publishes_what_is_annotated(api, agent):
    assert wait_for(lambda: agent.names() == ALL)
    lists = api.seen(plural="services", watch=False)
    assert [bool(r["continue"]) for r in lists] == [False, True, True]  # 6 objects, pages of 2
    (lease_reg,) = [
        r for r in agent.call(agent.store.load()).leases["eu-west-1"].registrations if r.name.startswith("web0")
    ]
    assert lease_reg.endpoints == ("198.51.100.20",) and lease_reg.source == "Service shop/web0"
    assert agent.followers["Service"].lists == 1
    # Ingresses and Gateways were listed and are watched, with bookmarks asked for.
    for plural in ("ingresses", "gateways"):
        assert wait_for(lambda p=plural: api.seen(plural=p, watch=True, bookmarks=True))


def test_a_dropped_watch_resumes_from_the_last_version_and_loses_nothing(api, agent):
    assert wait_for(lambda: agent.names() == ALL)
    assert wait_for(lambda: api.seen(plural="services", watch=True))
    before = len(api.seen(plural="services", watch=True))
    assert api.drop_watches() >= 1
    # Changes while the agent reconnects: it must get them from the history, not from a new list.
    deleted_at = api.delete("services", "shop", "web0")
    api.apply("services", service("new", hostname="new.apps.gslb.example.com"))
    assert wait_for(lambda: agent.names() == (ALL - {"web0.apps.gslb.example.com"}) | {"new.apps.gslb.example.com"})
    assert agent.followers["Service"].lists == 1  # resumed, never listed again
    resumed = api.seen(plural="services", watch=True)[before:]
    assert resumed and int(resumed[0]["resourceVersion"]) < deleted_at  # from before the missed events


def test_a_version_the_server_no_longer_has_is_listed_again(api, agent, caplog):
    assert wait_for(lambda: agent.names() == ALL)
    assert wait_for(lambda: api.seen(plural="services", watch=True))
    with caplog.at_level(logging.INFO, logger="geodns.agent"):
        api.compact()
        api.drop_watches()
        api.delete("services", "shop", "web1")
        api.compact()  # the delete is beyond the history too: only a new list shows it
        assert wait_for(lambda: agent.names() == ALL - {"web1.apps.gslb.example.com"})
    assert agent.followers["Service"].lists == 2
    assert "event=agent-relist kind=Service reason='410 Gone: resource version expired'" in caplog.text


def test_api_errors_are_retried_with_backoff_from_the_same_version(api, agent, caplog):
    assert wait_for(lambda: agent.names() == ALL)
    assert wait_for(lambda: api.seen(plural="services", watch=True))
    with caplog.at_level(logging.WARNING, logger="geodns.agent"):
        api.fail_next(500, 503, 429)
        api.drop_watches()
        api.apply("services", service("late", hostname="late.apps.gslb.example.com"))
        assert wait_for(lambda: "late.apps.gslb.example.com" in agent.names())
    assert "event=agent-api-error" in caplog.text and "status=500" in caplog.text
    assert sum(f.lists for f in agent.followers.values()) == 3  # one list per kind, never again


def test_bookmarks_move_where_a_watch_resumes(api, agent):
    assert wait_for(lambda: agent.names() == ALL)
    assert wait_for(lambda: api.seen(plural="services", watch=True))
    ingress_version = api.apply(
        "ingresses",
        {
            "metadata": {"name": "shop", "namespace": "shop"},
            "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.30"}]}},
        },
    )
    # The services watch sees no event, only bookmarks carrying the newer version...
    follower = agent.followers["Service"]
    assert wait_for(lambda: int(follower.version or 0) >= ingress_version)
    api.drop_watches()
    # ...so it resumes from there, not from where its last event left it.
    assert wait_for(
        lambda: any(int(r["resourceVersion"]) >= ingress_version for r in api.seen(plural="services", watch=True)[1:])
    )


def test_without_the_gateway_api_the_agent_still_publishes(tmp_path):
    api = FakeKubeApi(gateways=False).start()
    try:
        api.apply("services", service("web", hostname="web.apps.gslb.example.com"))
        running = AgentThread(api.kubeconfig(tmp_path / "kubeconfig"))
        try:
            assert wait_for(lambda: running.names() == {"web.apps.gslb.example.com"})
        finally:
            running.stop()
    finally:
        api.stop()


def test_what_objects_register():
    svc = service("web", hostname="a.apps.gslb.example.com, b.apps.gslb.example.com", weight="5", probe="8443/ready")
    found = registrations("Service", svc)
    assert [r.name for r in found.registrations] == ["a.apps.gslb.example.com", "b.apps.gslb.example.com"]
    assert found.registrations[0].weight == 5 and found.registrations[0].probe == "8443/ready"
    bad = registrations("Service", service("web", hostname="a.apps.gslb.example.com", ttl="soon", policy="nearest"))
    assert bad.registrations[0].ttl is None and len(bad.problems) == 2
    exported = registrations("Service", service("web", export=True))
    assert [(r.name, r.export) for r in exported.registrations] == [("web.shop", True)]
    pending = service("web", hostname="a.apps.gslb.example.com", ips=())
    assert registrations("Service", pending).registrations == ()  # no address yet: nothing
    gateway = {
        "metadata": {
            "name": "gw",
            "namespace": "infra",
            "annotations": {"geodns.io/hostname": "g.apps.gslb.example.com"},
        },
        "status": {
            "addresses": [
                {"type": "IPAddress", "value": "203.0.113.5"},
                {"type": "Hostname", "value": "lb.example.net"},
            ]
        },
    }
    (g,) = registrations("Gateway", gateway).registrations
    assert g.endpoints == ("203.0.113.5", "lb.example.net") and g.source == "Gateway infra/gw"
    cluster_ip = service("web", hostname="a.apps.gslb.example.com")
    cluster_ip["spec"]["type"] = "ClusterIP"
    assert registrations("Service", cluster_ip).problems == (
        "geodns.io/hostname applies to Services of type LoadBalancer",
    )


# -- end to end: `geodns agent` processes, a real Redis, real DNS servers ------------------------------


def test_agents_register_services_that_every_dns_server_answers(tmp_path, caplog):
    redis = RedisServer(tmp_path).start()
    eu_api, ap_api = FakeKubeApi().start(), FakeKubeApi().start()
    server = None
    agents: list[Child] = []
    try:
        server = RunningServer(Settings(config_path=discovery_config(tmp_path, redis.url, grace="3s")))
        app = "shop.apps.gslb.example.com"
        eu_api.apply("services", service("web", hostname=app, ips=("198.51.100.20",)))
        ap_api.apply("services", service("web", hostname=app, ips=("203.0.113.20",)))
        ap_api.apply("services", service("evil", hostname="www.example.org", ips=("203.0.113.66",)))
        for cluster, region, api in (("eu-west-1", "eu-west", eu_api), ("ap-southeast-1", "ap-southeast", ap_api)):
            kubeconfig = api.kubeconfig(tmp_path / f"kubeconfig-{cluster}")
            args = ["agent", "--cluster", cluster, "--region", region, "--store", redis.url]
            args += [
                "--kubeconfig",
                str(kubeconfig),
                "--renew",
                "0.3s",
                "--lease",
                "1s",
                "--agent-id",
                f"agent-{cluster}",
            ]
            agents.append(Child(args, tmp_path / f"agent-{cluster}.log"))
        with caplog.at_level(logging.INFO, logger="geodns.server"):
            # Two clusters, one name: each place gets its own region's service.
            assert wait_for(lambda: addresses(ask(server, subnet=SG)) == {"203.0.113.20"}, timeout=20)
            assert wait_for(lambda: addresses(ask(server, subnet=LONDON)) == {"198.51.100.20"})
            assert "event=discovery-refused name=www.example.org cluster=ap-southeast-1" in caplog.text
        assert ask(server, "www.example.org.").rcode() == dns.rcode.REFUSED

        # A Service deleted in the API leaves DNS.
        eu_api.delete("services", "shop", "web")
        assert wait_for(lambda: addresses(ask(server, subnet=LONDON)) == {"203.0.113.20"})

        # The ap-southeast agent is killed: its registration turns stale, still answered...
        agents[1].proc.send_signal(signal.SIGKILL)
        agents[1].proc.wait(10)
        responder = server.server.engine.responder
        name = next(n for n in responder.live.discovered.origins)

        def stale() -> bool:
            return all(o.stale(time.time()) for o in responder.live.discovered.origins.get(name, ()))

        assert wait_for(stale)
        assert addresses(ask(server, subnet=SG)) == {"203.0.113.20"}
        # ...until the grace ends.
        assert wait_for(lambda: ask(server, subnet=SG).rcode() == dns.rcode.NXDOMAIN)
        assert "event=agent-published cluster=eu-west-1" in agents[0].output()
    finally:
        for child in agents:
            child.stop()
        if server is not None:
            server.stop()
        eu_api.stop()
        ap_api.stop()
        redis.stop()


def _get(url: str) -> tuple[int, str]:
    """(status, body) of a GET, 5xx included; (0, error) when nothing answers."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, str(exc)


def test_the_agents_probes_say_ready_once_it_holds_its_lease_and_alive_through_a_store_outage(tmp_path):
    redis = RedisServer(tmp_path).start()
    api = FakeKubeApi().start()
    agent = None
    try:
        api.apply("services", service("web", hostname="shop.apps.gslb.example.com", ips=("198.51.100.20",)))
        port = free_port()
        args = ["agent", "--cluster", "eu-west-1", "--region", "eu-west", "--store", redis.url]
        args += ["--kubeconfig", str(api.kubeconfig(tmp_path / "kubeconfig")), "--renew", "0.3s", "--lease", "1s"]
        agent = Child(args + ["--http-listen", f"127.0.0.1:{port}"], tmp_path / "agent.log")
        base = f"http://127.0.0.1:{port}"
        assert wait_for(lambda: _get(f"{base}/readyz")[0] == 200, timeout=20), agent.output()
        assert _get(f"{base}/readyz")[1].startswith("ok: 1 registrations, lease held for")
        assert _get(f"{base}/healthz") == (200, "ok\n")
        # The store goes away: not ready once the lease it wrote has lapsed, but alive (a restart
        # would not bring the store back).
        redis.stop()
        assert wait_for(lambda: _get(f"{base}/readyz")[0] == 503)
        assert _get(f"{base}/readyz")[1].startswith("lease not held (store unavailable: ")
        assert _get(f"{base}/healthz") == (200, "ok\n")
    finally:
        if agent is not None:
            agent.stop()
        api.stop()
        redis.stop()


async def test_the_agent_is_not_alive_once_a_watch_has_ended():
    """A watch never ends by itself (errors are retried); one that did (a bug) leaves the agent blind,
    and only a restart helps: /healthz says so."""

    class EndedWatch:
        kind = "Service"
        objects: dict[str, dict] = {}
        synced = asyncio.Event()

        async def run(self) -> None:
            raise RuntimeError("the watch gave up")

    agent = Agent(MemoryStore(), "eu-west-1", "eu-west")
    assert agent.readiness() == (False, "listing nothing yet (nothing is published before)")
    await agent.start([EndedWatch()])
    try:
        while agent.liveness()[0]:
            await asyncio.sleep(0.01)
        assert agent.liveness() == (False, "agent-Service ended: RuntimeError('the watch gave up')")
        assert agent.readiness() == (False, "listing Service (nothing is published before)")
    finally:
        await agent.stop()
