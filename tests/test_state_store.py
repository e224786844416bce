"""The StateStore contract, run against memory:// and redis:// alike."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import AsyncIterator

import pytest

from geodns.config.model import CheckSpec, ClusterSpec, EndpointSpec
from geodns.errors import ConfigError
from geodns.state.memory import MemoryStore
from geodns.state.model import AdminState, Cluster, Observation
from geodns.state.redis import RedisStore
from geodns.state.store import StateError, StateStore, open_store
from tests.redis_server import RedisServer


def cluster_spec(
    name: str, region: str = "eu-west", addresses: tuple[str, ...] = ("192.0.2.1", "2001:db8::1"), **kw: object
) -> ClusterSpec:
    return ClusterSpec(
        name=name, region=region, endpoints=tuple(EndpointSpec(ipaddress.ip_address(a)) for a in addresses), **kw
    )


SPECS = (
    cluster_spec(
        "eu-west-1",
        "eu-west",
        ("192.0.2.1", "2001:db8::1"),
        check=CheckSpec(type="http", url="http://127.0.0.1:1/healthz", interval=2.0),
    ),
    cluster_spec("us-east-1", "us-east", ("198.51.100.1",), weight=50, priority=1),
)


def observation(
    checker: str = "chk-1",
    cluster: str = "eu-west-1",
    endpoint: str = "192.0.2.1",
    up: bool | None = True,
    rtt_ms: float | None = 10.0,
    ttl: float = 30.0,
    vantage: str = "eu-west",
) -> Observation:
    now = time.time()
    return Observation(
        checker=checker,
        vantage=vantage,
        cluster=cluster,
        endpoint=endpoint,
        up=up,
        rtt_ms=rtt_ms,
        at=now,
        expires=now + ttl,
    )


async def next_version(feed: AsyncIterator[int], timeout: float = 1.0) -> int:
    return await asyncio.wait_for(feed.__anext__(), timeout)


@pytest.fixture(params=["memory", "redis"])
async def stores(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[tuple[StateStore, StateStore]]:
    """Two clients of one store: the same object for memory://, two connections for redis://."""
    if request.param == "memory":
        store = MemoryStore()
        yield store, store
        await store.close()
        return
    server = RedisServer(tmp_path).start()
    a, b = RedisStore(server.url + "?prefix=t:"), RedisStore(server.url + "?prefix=t:")
    try:
        await a.connect()
        await b.connect()
        yield a, b
    finally:
        await a.close()
        await b.close()
        server.stop()


@pytest.fixture
def store(stores: tuple[StateStore, StateStore]) -> StateStore:
    return stores[0]


@pytest.fixture
async def seeded(store: StateStore) -> StateStore:
    await store.seed(SPECS)
    return store


def test_open_store_picks_backend_by_scheme() -> None:
    assert isinstance(open_store("memory://"), MemoryStore)
    assert isinstance(open_store("redis://127.0.0.1:1/0"), RedisStore)
    assert isinstance(open_store("rediss://127.0.0.1:1/0"), RedisStore)
    with pytest.raises(ConfigError) as info:
        open_store("etcd://127.0.0.1:2379")
    assert "store: unsupported URL scheme 'etcd'; use memory:// or redis://" in str(info.value)


async def test_unseeded_store_is_version_zero(store: StateStore) -> None:
    snapshot = await store.load()
    assert snapshot.version == 0 and not snapshot.clusters


async def test_seed_fills_the_table(store: StateStore) -> None:
    version = await store.seed(SPECS)
    snapshot = await store.load()
    assert version == snapshot.version == 1
    assert dict(snapshot.clusters) == {s.name: Cluster.from_spec(s) for s in SPECS}


async def test_seed_with_empty_config_still_marks_the_store_seeded(store: StateStore) -> None:
    assert await store.seed([]) == 1
    assert await store.seed([]) == 1


async def test_seeding_again_unchanged_does_not_bump(seeded: StateStore) -> None:
    assert await seeded.seed(SPECS) == 1


async def test_seed_keeps_runtime_changes_and_takes_config_fields(seeded: StateStore) -> None:
    await seeded.set_admin("eu-west-1", AdminState.DRAINED)
    await seeded.set_weight("eu-west-1", 7, endpoint="192.0.2.1")
    await seeded.add_endpoint("eu-west-1", EndpointSpec(ipaddress.ip_address("192.0.2.99")))
    new_check = CheckSpec(type="tcp", port=443)
    respec = cluster_spec(
        "eu-west-1", "eu-central", ("192.0.2.1", "2001:db8::1", "192.0.2.2"), check=new_check, priority=3
    )
    version = await seeded.seed([respec, SPECS[1]])
    cluster = (await seeded.load()).clusters["eu-west-1"]
    assert version == 5
    assert cluster.admin is AdminState.DRAINED
    assert (cluster.region, cluster.priority, cluster.check) == ("eu-central", 3, new_check)
    assert [(str(e.address), e.weight) for e in cluster.endpoints] == [
        ("192.0.2.1", 7),
        ("2001:db8::1", 100),
        ("192.0.2.2", 100),
        ("192.0.2.99", 100),
    ]


async def test_seed_overwrite_makes_the_table_the_config(seeded: StateStore) -> None:
    await seeded.set_admin("eu-west-1", AdminState.DRAINED)
    await seeded.add_cluster(cluster_spec("extra-1"))
    await seeded.seed(SPECS, overwrite=True)
    snapshot = await seeded.load()
    assert dict(snapshot.clusters) == {s.name: Cluster.from_spec(s) for s in SPECS}


async def test_every_admin_write_bumps_the_version_and_shows_in_load(seeded: StateStore) -> None:
    writes = [
        (seeded.set_weight("eu-west-1", 30), lambda s: s.clusters["eu-west-1"].weight == 30),
        (
            seeded.set_weight("eu-west-1", 0, endpoint="2001:db8::1"),
            lambda s: s.clusters["eu-west-1"].endpoints[1].weight == 0,
        ),
        (seeded.set_admin("us-east-1", "drained"), lambda s: s.clusters["us-east-1"].admin is AdminState.DRAINED),
        (
            seeded.set_admin("us-east-1", AdminState.ACTIVE),
            lambda s: s.clusters["us-east-1"].admin is AdminState.ACTIVE,
        ),
        (
            seeded.set_admin("eu-west-1", AdminState.FORCED_DOWN, endpoint=ipaddress.ip_address("192.0.2.1")),
            lambda s: s.clusters["eu-west-1"].endpoints[0].admin is AdminState.FORCED_DOWN,
        ),
        (
            seeded.add_endpoint("us-east-1", EndpointSpec(ipaddress.ip_address("198.51.100.2"), weight=5, probe="x:1")),
            lambda s: s.clusters["us-east-1"].endpoints[-1].weight == 5,
        ),
        (seeded.remove_endpoint("us-east-1", "198.51.100.1"), lambda s: len(s.clusters["us-east-1"].endpoints) == 1),
        (seeded.add_cluster(cluster_spec("ap-1", "ap-southeast")), lambda s: "ap-1" in s.clusters),
        (seeded.remove_cluster("ap-1"), lambda s: "ap-1" not in s.clusters),
    ]
    for expected, (write, check) in enumerate(writes, start=2):
        assert await write == expected
        snapshot = await seeded.load()
        assert snapshot.version == expected and check(snapshot)


async def test_bad_writes_fail_clearly_and_change_nothing(seeded: StateStore) -> None:
    with pytest.raises(StateError, match="unknown cluster 'nope'"):
        await seeded.set_weight("nope", 1)
    with pytest.raises(KeyError):
        await seeded.set_admin("nope", AdminState.DRAINED)
    with pytest.raises(StateError, match="has no endpoint 192.0.2.77"):
        await seeded.set_weight("eu-west-1", 1, endpoint="192.0.2.77")
    with pytest.raises(StateError, match="has no endpoint"):
        await seeded.remove_endpoint("eu-west-1", "192.0.2.77")
    with pytest.raises(StateError, match="already has endpoint 192.0.2.1"):
        await seeded.add_endpoint("eu-west-1", EndpointSpec(ipaddress.ip_address("192.0.2.1")))
    with pytest.raises(StateError, match="already exists"):
        await seeded.add_cluster(SPECS[0])
    with pytest.raises(StateError, match="unknown cluster"):
        await seeded.remove_cluster("nope")
    with pytest.raises(ValueError, match="between 0 and 1000000"):
        await seeded.set_weight("eu-west-1", -1)
    with pytest.raises(ValueError, match="integer"):
        await seeded.set_weight("eu-west-1", 1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="admin state must be one of"):
        await seeded.set_admin("eu-west-1", "sleepy")
    with pytest.raises(ValueError, match="not an IP address"):
        await seeded.set_weight("eu-west-1", 1, endpoint="eu-west")
    assert str(StateError("unknown cluster 'x'")) == "unknown cluster 'x'"
    snapshot = await seeded.load()
    assert snapshot.version == 1
    assert dict(snapshot.clusters) == {s.name: Cluster.from_spec(s) for s in SPECS}


async def test_change_feed_wakes_another_client(stores: tuple[StateStore, StateStore]) -> None:
    writer, reader = stores
    await writer.seed(SPECS)
    feed = reader.changes()
    try:
        assert await next_version(feed) == 1  # the current version, on subscription
        started = time.monotonic()
        await writer.set_admin("eu-west-1", AdminState.DRAINED)
        assert await next_version(feed) == 2
        assert time.monotonic() - started < 1.0
        await writer.set_weight("eu-west-1", 1)
        assert await next_version(feed) == 3
    finally:
        await feed.aclose()


async def test_concurrent_writes_are_atomic(stores: tuple[StateStore, StateStore]) -> None:
    a, b = stores
    await a.seed(SPECS)
    n = 40
    weights = [
        a.set_weight("eu-west-1", i) if i % 2 else b.set_weight("us-east-1", i, endpoint="198.51.100.1")
        for i in range(n)
    ]
    adds = [
        (a if i % 2 else b).add_endpoint("us-east-1", EndpointSpec(ipaddress.ip_address(f"203.0.113.{i}")))
        for i in range(n)
    ]
    versions = await asyncio.gather(*weights, *adds)
    assert sorted(versions) == list(range(2, 2 * n + 2))  # each write got its own version
    snapshot = await b.load()
    assert snapshot.version == 2 * n + 1
    assert len(snapshot.clusters["us-east-1"].endpoints) == 1 + n  # no lost update


async def test_observations_are_loaded_by_endpoint(seeded: StateStore) -> None:
    await seeded.report(
        [
            observation("chk-1"),
            observation("chk-2", vantage="us-east", up=False, rtt_ms=None),
            observation("chk-1", endpoint="2001:db8::1", up=None),
        ]
    )
    snapshot = await seeded.load()
    seen = snapshot.observations[("eu-west-1", "192.0.2.1")]
    assert [(o.checker, o.vantage, o.up, o.rtt_ms) for o in seen] == [
        ("chk-1", "eu-west", True, 10.0),
        ("chk-2", "us-east", False, None),
    ]
    assert snapshot.observations[("eu-west-1", "2001:db8::1")][0].up is None


async def test_a_newer_observation_replaces_the_checkers_previous_one(seeded: StateStore) -> None:
    await seeded.report([observation(up=True)])
    await seeded.report([observation(up=False)])
    (only,) = (await seeded.load()).observations[("eu-west-1", "192.0.2.1")]
    assert only.up is False


async def test_expired_observations_disappear(seeded: StateStore) -> None:
    await seeded.report([observation("short", ttl=0.3), observation("long", ttl=30)])
    assert len((await seeded.load()).observations[("eu-west-1", "192.0.2.1")]) == 2
    await asyncio.sleep(0.4)
    (left,) = (await seeded.load()).observations[("eu-west-1", "192.0.2.1")]
    assert left.checker == "long"
    await seeded.report([observation("dead", ttl=-1)])  # already expired when reported
    assert len((await seeded.load()).observations[("eu-west-1", "192.0.2.1")]) == 1


async def test_reports_publish_verdicts_not_rtt_noise(seeded: StateStore) -> None:
    await seeded.report([observation(up=True, rtt_ms=10.0)])
    assert (await seeded.load()).version == 2  # a new verdict
    await seeded.report([observation(up=True, rtt_ms=11.0)])
    snapshot = await seeded.load()
    assert snapshot.version == 2  # noise: not published...
    assert snapshot.observations[("eu-west-1", "192.0.2.1")][0].rtt_ms == 11.0  # ...but stored
    await seeded.report([observation(up=True, rtt_ms=40.0)])
    assert (await seeded.load()).version == 3  # a real move
    await seeded.report([observation(up=False, rtt_ms=40.0)])
    assert (await seeded.load()).version == 4  # a flip


async def test_reports_to_an_unseeded_store_do_not_seed_it(store: StateStore) -> None:
    await store.report([observation()])
    snapshot = await store.load()
    assert snapshot.version == 0 and snapshot.observations
    await store.add_cluster(cluster_spec("x-1"))  # lands, but is not published either
    assert (await store.load()).version == 0
    assert await store.seed(SPECS) == 1
    assert set((await store.load()).clusters) == {"x-1", "eu-west-1", "us-east-1"}


async def test_a_bad_value_for_an_unknown_cluster_is_the_same_error_in_both_stores(store):
    """The value is checked before the cluster, in memory as in Redis: one bad call, one answer."""
    with pytest.raises(ValueError, match="between 0 and 1000000"):
        await store.set_weight("no-such-cluster", -1)
    with pytest.raises(ValueError):
        await store.set_admin("no-such-cluster", "sleeping")


async def test_a_weight_the_store_could_not_load_back_is_refused_on_write(seeded):
    """The config's bound holds for writes too: 10**400 would be stored, then rejected on every load."""
    for weight in (1_000_001, 10**400):
        with pytest.raises(ValueError, match="between 0 and 1000000"):
            await seeded.set_weight("eu-west-1", weight)
        with pytest.raises(ValueError, match="between 0 and 1000000"):
            await seeded.set_weight("eu-west-1", weight, endpoint="192.0.2.1")
    await seeded.set_weight("eu-west-1", 1_000_000)
    assert (await seeded.load()).clusters["eu-west-1"].weight == 1_000_000
