"""``redis://``: the table in one Redis, shared by many DNS servers and checkers.

Key schema (``<p>`` is the prefix, ``geodns:`` unless the URL says
``?prefix=...``, so several deployments or tests can share one Redis; for Redis
Cluster use a hash-tagged prefix such as ``{geodns}:`` so every key lands in one
slot, as the scripts below touch several keys):

=========================  ======  ==============================================
key                        type    contents
=========================  ======  ==============================================
``<p>version``             string  the table's version, an integer INCRed by every
                                   change; absent = never seeded (or wiped)
``<p>clusters``            set     the cluster names
``<p>cluster:<name>``      string  the cluster as JSON: name, region, weight,
                                   priority, min_healthy, admin, check, and
                                   endpoints ``[{address, weight, admin, probe}]``
``<p>checkers``            zset    checker id -> unix time its latest observation
                                   expires; entries in the past are pruned by the
                                   next report
``<p>obs:<checker>``       hash    ``<cluster>|<endpoint>`` -> JSON ``{vantage, up,
                                   rtt_ms, at, expires}``; the key PEXPIREATs at
                                   its latest observation's expiry, so a checker
                                   that stops reporting leaves nothing behind
``<p>loads``               hash    ``<cluster>|<endpoint>|<source>`` -> JSON ``{load,
                                   at, expires}``: load readings (endpoint empty for
                                   the whole cluster; source a checker id or
                                   ``admin``); expired fields are pruned by the next
                                   write, the key PEXPIREATs at the latest expiry;
                                   read through ``codec.load_load`` (bad fields are
                                   skipped and named in the snapshot's problems)
``<p>leases``              zset    cluster -> unix time its discovery lease expires
                                   (entries ``table.LEASE_KEEP`` past it are pruned)
``<p>lease:<cluster>``      string  the cluster's lease and registrations as JSON
                                   (``codec.dump_lease``); PEXPIREAT ``LEASE_KEEP``
                                   past its expiry, so a dead agent leaves nothing
``<p>changes``             pubsub  channel carrying the new version after each
                                   change
=========================  ======  ==============================================

Every admin write is one MULTI/EXEC under WATCH of the keys it read; the last
command in it is a small script that INCRs the version and PUBLISHes it, so the
data, the version and the notification are one atomic step.  ``load()`` is one
read-only Lua script, so the version always matches the data.  Reports bump the
version only when a verdict changes (``table.notable_change``).

Redis Sentinel: ``redis+sentinel://[[user]:password@]host:port[,host:port...]/SERVICE[/DB]``
(``sentinel://`` is the same; ``rediss+sentinel://`` speaks TLS to the sentinels
and the data nodes).  The password in the URL is the data nodes'; the
sentinels' own is ``?sentinel_password=...``; ``?ssl_ca_certs=FILE`` names the CA
for TLS.  The client asks the sentinels for the primary on every new
connection, so after a failover the keeper's reconnect lands on the new one.

Redis errors that mean "cannot reach it" become ``StoreUnavailable``.  The
client does not retry (the keeper owns retrying, with backoff) and connects with
a 1 s timeout, so an outage shows within about a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import urllib.parse
from collections import defaultdict
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar, cast

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, WatchError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..config.model import ClusterSpec, EndpointSpec, IPAddress
from . import codec, table
from .model import AdminState, Cluster, Lease, LoadReport, Observation, Snapshot
from .sentinel import SENTINEL_SCHEMES, SentinelURL, master_client, parse_sentinel_url  # noqa: F401  (re-exported)
from .store import StateStore, StoreUnavailable

T = TypeVar("T")

DEFAULT_PREFIX = "geodns:"

# Errors that mean the store is out of reach (ReadOnlyError: we reached a replica,
# e.g. mid-failover, and cannot write until a primary is back).
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, ReadOnlyError, OSError)

# KEYS[1] = version; ARGV[1] = channel; ARGV[2] = "1" to create the version (seed only; a version
# that is not an integer, which INCR refuses, starts again: the seed that restores the table mends it).
_BUMP = """
if ARGV[2] == '1' and not string.match(redis.call('GET', KEYS[1]) or '0', '^%d+$') then
  redis.call('DEL', KEYS[1])
end
if ARGV[2] == '1' or redis.call('EXISTS', KEYS[1]) == 1 then
  local v = redis.call('INCR', KEYS[1])
  redis.call('PUBLISH', ARGV[1], v)
  return v
end
return 0
"""

# ARGV[1] = prefix; ARGV[2] = now; ARGV[3] = the cluster keys' SCAN pattern; ARGV[4] = now - LEASE_KEEP.
# Returns {version, {name, json or '', ...}, {checker, {field, json, ...}, ...}, {field, json, ...},
# {cluster, lease json or '', ...}}.  An index that
# is gone while cluster keys remain (evicted, deleted) reads as version 0: unseeded, so a server
# rebuilds it (``seed``) instead of every reader swapping to an empty table.
_LOAD = """
local p = ARGV[1]
local version = redis.call('GET', p .. 'version')
local names = redis.call('SMEMBERS', p .. 'clusters')
if version and #names == 0 then
  local cursor = '0'
  repeat
    local page = redis.call('SCAN', cursor, 'MATCH', ARGV[3], 'COUNT', 1000)
    cursor = page[1]
    if #page[2] > 0 then version = false; break end
  until cursor == '0'
end
local clusters = {}
for _, name in ipairs(names) do
  table.insert(clusters, name)
  table.insert(clusters, redis.call('GET', p .. 'cluster:' .. name) or '')
end
local obs = {}
for _, checker in ipairs(redis.call('ZRANGEBYSCORE', p .. 'checkers', ARGV[2], '+inf')) do
  table.insert(obs, checker)
  table.insert(obs, redis.call('HGETALL', p .. 'obs:' .. checker))
end
local leases = {}
for _, cluster in ipairs(redis.call('ZRANGEBYSCORE', p .. 'leases', ARGV[4], '+inf')) do
  table.insert(leases, cluster)
  table.insert(leases, redis.call('GET', p .. 'lease:' .. cluster) or '')
end
return {version or '0', clusters, obs, redis.call('HGETALL', p .. 'loads'), leases}
"""

MISSING = "missing (evicted or deleted) though the index names it"


def version_number(text: str | bytes | None) -> int:
    """The table version in ``text``; 0 (not seeded) for none or anything but a decimal integer, which
    is bad data, not an outage: the keeper then has the table restored (a seed mends the version)."""
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    return int(text) if text and text.isascii() and text.isdigit() else 0


def glob_escape(text: str) -> str:
    """``text`` as a literal in a Redis MATCH pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


Edit = Callable[[dict[str, Cluster | None]], dict[str, Cluster | None]]


class RedisStore(StateStore):
    def __init__(self, url: str, *, connect_timeout: float = 1.0, socket_timeout: float = 2.0):
        parts = urllib.parse.urlsplit(url)
        query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        self.prefix = next((v for k, v in query if k == "prefix"), DEFAULT_PREFIX)
        rest = urllib.parse.urlencode([(k, v) for k, v in query if k != "prefix"])
        self._url = urllib.parse.urlunsplit(parts._replace(query=rest))
        self._sentinel = parse_sentinel_url(url) if parts.scheme.lower() in SENTINEL_SCHEMES else None
        if self._sentinel is not None:
            self._where = (
                f"sentinel {','.join(f'{h}:{p}' for h, p in self._sentinel.hosts)} service {self._sentinel.service}"
            )
        else:
            self._where = (
                parts.path if parts.scheme == "unix" else f"{parts.hostname or 'localhost'}:{parts.port or 6379}"
            )  # no credentials
        self._connect_timeout = connect_timeout
        self._socket_timeout = socket_timeout
        self._client: aioredis.Redis | None = None
        self._closed = False
        p = self.prefix
        self._k_version, self._k_clusters, self._k_checkers = p + "version", p + "clusters", p + "checkers"
        self._k_loads = p + "loads"
        self._k_leases = p + "leases"
        self._cluster_pattern = glob_escape(p) + "cluster:*"
        self.channel = p + "changes"

    def __repr__(self) -> str:
        return f"RedisStore({self._where!r}, prefix={self.prefix!r})"

    def _cluster_key(self, name: str) -> str:
        return f"{self.prefix}cluster:{name}"

    def _lease_key(self, cluster: str) -> str:
        return f"{self.prefix}lease:{cluster}"

    def _obs_key(self, checker: str) -> str:
        return f"{self.prefix}obs:{checker}"

    def _redis(self) -> aioredis.Redis:
        if self._client is None and self._sentinel is not None:
            self._closed = False
            self._client = master_client(self._sentinel, self._connect_timeout, self._socket_timeout)
        if self._client is None:
            self._closed = False
            self._client = aioredis.from_url(
                self._url,
                decode_responses=True,
                client_name="geodns",
                socket_connect_timeout=self._connect_timeout,
                socket_timeout=self._socket_timeout,
                retry=Retry(NoBackoff(), 0),
            )
        return self._client

    @contextlib.contextmanager
    def _unavailable(self) -> Iterator[None]:
        try:
            yield
        except _UNREACHABLE as exc:
            raise StoreUnavailable(f"redis at {self._where} unreachable: {exc}") from exc

    async def connect(self) -> None:
        with self._unavailable():
            await self._redis().ping()

    async def close(self) -> None:
        self._closed = True
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()

    async def risks(self) -> list[str]:
        """An ``allkeys-*`` maxmemory policy lets Redis evict the table under memory pressure.

        (``volatile-*`` evicts only keys with a TTL: just the observations, which
        checkers write again.)  A Redis that hides CONFIG (managed services) says nothing.
        """
        try:
            with self._unavailable():
                policy = (await self._redis().config_get("maxmemory-policy")).get("maxmemory-policy") or ""
        except Exception:  # noqa: BLE001 - unreachable, or CONFIG renamed/forbidden: nothing to say
            return []
        if policy.startswith("allkeys-"):
            return [
                f"redis at {self._where} has maxmemory-policy {policy}: under memory pressure it can evict "
                f"the cluster table; use noeviction or a volatile-* policy (evicted entries are reported "
                f"as 'store data invalid' and served from the last good snapshot)"
            ]
        return []

    # -- reads -----------------------------------------------------------------

    async def load(self) -> Snapshot:
        """The table; an entry that is missing or fails validation is left out and named in
        ``problems`` (the keeper keeps its last good value), never raised as an outage."""
        now = time.time()
        with self._unavailable():
            version, pairs, obs_flat, loads_flat, lease_flat = await self._redis().eval(
                _LOAD, 0, self.prefix, repr(now), self._cluster_pattern, repr(now - table.LEASE_KEEP)
            )
        clusters: dict[str, Cluster] = {}
        problems: dict[str, str] = {}
        for name, text in zip(pairs[::2], pairs[1::2]):
            if not text:
                problems[f"cluster:{name}"] = MISSING
                continue
            try:
                clusters[name] = codec.load_cluster(text, name)
            except ValueError as exc:
                problems[f"cluster:{name}"] = str(exc)
        observations = []
        for checker, flat in sorted(zip(obs_flat[::2], obs_flat[1::2])):
            for key, text in zip(flat[::2], flat[1::2]):
                try:
                    observations.append(codec.load_observation(checker, key, text))
                except ValueError as exc:
                    problems[f"obs:{checker}"] = f"{key}: {exc}"
        loads = []
        for key, text in sorted(zip(loads_flat[::2], loads_flat[1::2])):
            try:
                loads.append(codec.load_load(key, text))
            except ValueError as exc:
                problems[f"loads:{key}"] = str(exc)
        leases = []
        for cluster, text in zip(lease_flat[::2], lease_flat[1::2]):
            if not text:
                continue  # expired between the index and the key: gone, not bad
            try:
                leases.append(codec.load_lease(text, cluster))
            except ValueError as exc:
                problems[f"lease:{cluster}"] = str(exc)
        number = version_number(version)
        if not number and version != "0":
            problems["version"] = f"not an integer: {version[:40]!r}"
        return table.snapshot(number, clusters, observations, now, problems, loads, leases)

    async def changes(self) -> AsyncGenerator[int, None]:
        client = self._redis()
        pubsub = client.pubsub()
        try:
            with self._unavailable():
                await pubsub.subscribe(self.channel)
                current = version_number(await client.get(self._k_version))
            yield current
            while not self._closed:
                with self._unavailable():
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None and message.get("type") == "message":
                    yield version_number(message["data"])  # any message means: load now
        except StoreUnavailable:
            if not self._closed:
                raise
        finally:
            # Bounded: a pubsub cancelled mid-command can leave aclose() waiting
            # forever on its own connection, and a server must always stop.
            with contextlib.suppress(Exception, asyncio.TimeoutError):
                await asyncio.wait_for(pubsub.aclose(), 1.0)

    # -- admin writes ------------------------------------------------------------

    async def _transact(self, names: Iterable[str], edit: Edit) -> int:
        """Read clusters under WATCH, apply ``edit``, write its result with the version bump.

        ``edit`` gets ``{name: Cluster or None}`` and returns only the entries it
        changes (None deletes).  On a concurrent write to a watched key, retry.
        A stored cluster that fails validation is a ``ValueError`` naming it:
        an admin write never builds on bad data.
        """
        with self._unavailable():
            async with self._redis().pipeline(transaction=True) as pipe:
                while True:
                    try:
                        wanted = list(dict.fromkeys(names))
                        keys = [self._cluster_key(n) for n in wanted]
                        await pipe.watch(*keys)
                        texts = cast("list[str | None]", await pipe.mget(keys))  # decode_responses=True: str
                        missing = [n for n, t in zip(wanted, texts) if not t]
                        if missing:
                            await self._refuse_indexed(pipe, missing)
                        current = {n: self._decode(n, t) for n, t in zip(wanted, texts)}
                        changed = edit(current)
                        if not changed:
                            return int(await pipe.get(self._k_version) or 0)
                        pipe.multi()
                        for name, cluster in changed.items():
                            if cluster is None:
                                pipe.delete(self._cluster_key(name))
                                pipe.srem(self._k_clusters, name)
                            else:
                                pipe.set(self._cluster_key(name), codec.dump_cluster(cluster))
                                pipe.sadd(self._k_clusters, name)
                        pipe.eval(_BUMP, 1, self._k_version, self.channel, "0")
                        return int((await pipe.execute())[-1])
                    except WatchError:
                        continue

    async def _refuse_indexed(self, client, names: list[str]) -> None:
        """A key the index names but that is gone (evicted, deleted) is bad data, not an unknown cluster:
        an admin write must not build on it (the servers serve its last good value until a reload writes
        it back)."""
        for name, indexed in zip(names, await client.smismember(self._k_clusters, names)):
            if indexed:
                raise ValueError(
                    f"the store's cluster:{name} is {MISSING}; reload a server (SIGHUP) to "
                    f"write back the last good value it serves"
                )

    def _decode(self, name: str, text: str | None) -> Cluster | None:
        if not text:
            return None
        try:
            return codec.load_cluster(text, name)
        except ValueError as exc:
            raise ValueError(
                f"the store's cluster:{name} is invalid ({exc}); fix it, or reload a "
                f"server (SIGHUP) to write back the last good value it serves"
            ) from None

    async def seed(
        self, specs: Iterable[ClusterSpec], overwrite: bool = False, base: Mapping[str, Cluster] | None = None
    ) -> int:
        """See ``StateStore.seed``; ``table.seed_plan`` decides, this writes it in one transaction.

        It reads every cluster the index names (and, when the store is unseeded or
        its index is empty, every ``cluster:*`` key a SCAN finds), so it also mends
        the index: every name of the table after seeding is in it, changed or not.
        """
        specs = list(specs)
        with self._unavailable():
            async with self._redis().pipeline(transaction=True) as pipe:
                while True:
                    try:
                        await pipe.watch(self._k_clusters, self._k_version)
                        index = cast("set[str]", set(await pipe.smembers(self._k_clusters)))  # decoded: str
                        seeded = version_number(await pipe.get(self._k_version)) > 0  # garbage: unseeded
                        found: set[str] = set()
                        if not seeded or not index:
                            found = await self._scan_cluster_names(pipe)
                        restoring = not seeded or (not index and bool(found))
                        names = sorted(index | found | {s.name for s in specs})
                        keys = [self._cluster_key(n) for n in names]
                        if keys:
                            await pipe.watch(*keys)
                        texts = dict(zip(names, cast("list[str | None]", await pipe.mget(keys)))) if keys else {}
                        stored: dict[str, Cluster | None] = {}
                        invalid: set[str] = set()
                        for name in sorted(index | found):
                            text = texts.get(name)
                            try:
                                stored[name] = codec.load_cluster(text, name) if text else None
                            except ValueError:
                                stored[name], invalid = None, invalid | {name}
                        for spec in specs:  # config clusters the index does not name: present or not
                            text = texts.get(spec.name)
                            if spec.name not in stored and text:
                                with contextlib.suppress(ValueError):
                                    stored[spec.name] = codec.load_cluster(text, spec.name)
                        after = table.seed_plan(specs, stored, base, overwrite=overwrite, restoring=restoring)
                        writes = {n: c for n, c in after.items() if stored.get(n) != c or n in invalid}
                        # Gone: a dangling index entry, or (overwrite) anything not in the config.  An
                        # invalid entry nobody has a value for stays, and stays reported, unless overwritten.
                        gone = [n for n in index | found if n not in after and (overwrite or n not in invalid)]
                        unindexed = set(after) - index
                        if not writes and not gone and not unindexed and seeded:
                            return int(await pipe.get(self._k_version) or 0)
                        pipe.multi()
                        for name, cluster in writes.items():
                            pipe.set(self._cluster_key(name), codec.dump_cluster(cluster))
                        if gone:
                            pipe.delete(*(self._cluster_key(n) for n in gone))
                            pipe.srem(self._k_clusters, *gone)
                        if after:
                            pipe.sadd(self._k_clusters, *after)
                        pipe.eval(_BUMP, 1, self._k_version, self.channel, "1")
                        return int((await pipe.execute())[-1])
                    except WatchError:
                        continue

    async def _scan_cluster_names(self, client) -> set[str]:
        """Every cluster key's name, found by SCAN: how a lost index is rebuilt."""
        start = len(self.prefix) + len("cluster:")
        return {key[start:] async for key in client.scan_iter(match=self._cluster_pattern, count=1000)}

    async def _edit_one(self, name: str, edit: Callable[[Cluster], Cluster]) -> int:
        return await self._transact([name], lambda cur: {name: edit(table.require(cur[name], name))})

    async def set_weight(self, cluster: str, weight: int, endpoint: str | IPAddress | None = None) -> int:
        table.check_weight(weight)
        return await self._edit_one(cluster, lambda c: table.with_weight(c, weight, endpoint))

    async def set_admin(self, cluster: str, state: AdminState | str, endpoint: str | IPAddress | None = None) -> int:
        table.parse_admin(state)
        return await self._edit_one(cluster, lambda c: table.with_admin(c, state, endpoint))

    async def add_endpoint(self, cluster: str, spec: EndpointSpec) -> int:
        return await self._edit_one(cluster, lambda c: table.with_endpoint(c, spec))

    async def remove_endpoint(self, cluster: str, address: str | IPAddress) -> int:
        return await self._edit_one(cluster, lambda c: table.without_endpoint(c, address))

    async def add_cluster(self, spec: ClusterSpec) -> int:
        return await self._transact([spec.name], lambda cur: {spec.name: table.new_cluster(spec, cur[spec.name])})

    async def remove_cluster(self, name: str) -> int:
        def edit(cur: dict[str, Cluster | None]) -> dict[str, Cluster | None]:
            table.require(cur[name], name)
            return {name: None}

        return await self._transact([name], edit)

    # -- checker writes ------------------------------------------------------------

    async def report(self, observations: Sequence[Observation]) -> None:
        by_checker: dict[str, list[Observation]] = defaultdict(list)
        for obs in observations:
            by_checker[obs.checker].append(obs)
        for checker, batch in by_checker.items():
            await self._report_one(checker, batch)

    async def _watched(self, key: str, attempt: Callable[[Any], Awaitable[T]]) -> T:
        """Optimistic locking on one key: ``attempt(pipe)`` reads under WATCH, calls ``pipe.multi()``,
        queues its writes and executes; run again whenever another client changed ``key`` in between."""
        with self._unavailable():
            async with self._redis().pipeline(transaction=True) as pipe:
                while True:
                    try:
                        await pipe.watch(key)
                        return await attempt(pipe)
                    except WatchError:
                        continue

    async def _report_one(self, checker: str, batch: list[Observation]) -> None:
        """Merge one checker's batch into its hash; publish only a notable change.

        WATCH on the checker's own hash makes concurrent reports from one checker
        safe; different checkers never touch each other's keys.
        """
        key = self._obs_key(checker)

        async def attempt(pipe):
            now = time.time()
            fields = cast("dict[str, str]", await pipe.hgetall(key))  # decode_responses=True: str
            live = {f: codec.load_observation(checker, f, t) for f, t in fields.items()}
            stale = [f for f, o in live.items() if o.expires < now]
            notable = any(table.notable_change(live.get(codec.observation_field(o)), o, now) for o in batch)
            fresh = {codec.observation_field(o): o for o in batch}
            latest = max(o.expires for o in [*live.values(), *fresh.values()])
            pipe.multi()
            pipe.hset(key, mapping={f: codec.dump_observation(o) for f, o in fresh.items()})
            gone = [f for f in stale if f not in fresh]
            if gone:
                pipe.hdel(key, *gone)
            pipe.pexpireat(key, math.ceil(latest * 1000))
            pipe.zadd(self._k_checkers, {checker: latest})
            pipe.zremrangebyscore(self._k_checkers, "-inf", f"({now!r}")
            if notable:
                pipe.eval(_BUMP, 1, self._k_version, self.channel, "0")
            await pipe.execute()

        await self._watched(key, attempt)

    # -- discovery agents' writes ----------------------------------------------------

    async def _stored_lease(self, pipe, cluster: str) -> Lease | None:
        text = await pipe.get(self._lease_key(cluster))
        if not text:
            return None
        try:
            return codec.load_lease(text, cluster)
        except ValueError:
            return None  # bad data: overwritten by this write

    async def publish_lease(self, lease: Lease) -> int:
        """Replace the cluster's lease under WATCH; publish only a notable change (``table.notable_lease``)."""
        key = self._lease_key(lease.cluster)

        async def attempt(pipe):
            now = time.time()
            notable = table.notable_lease(await self._stored_lease(pipe, lease.cluster), lease, now)
            pipe.multi()
            self._write_lease(pipe, lease, now)
            if notable:
                pipe.eval(_BUMP, 1, self._k_version, self.channel, "0")
            pipe.get(self._k_version)
            return int((await pipe.execute())[-1] or 0)

        return await self._watched(key, attempt)

    def _write_lease(self, pipe, lease: Lease, now: float) -> None:
        key = self._lease_key(lease.cluster)
        pipe.set(key, codec.dump_lease(lease))
        pipe.pexpireat(key, math.ceil((lease.expires + table.LEASE_KEEP) * 1000))
        pipe.zadd(self._k_leases, {lease.cluster: lease.expires})
        pipe.zremrangebyscore(self._k_leases, "-inf", f"({now - table.LEASE_KEEP!r}")

    async def renew_lease(self, cluster: str, agent: str, renewed: float, expires: float) -> bool:
        key = self._lease_key(cluster)

        async def attempt(pipe):
            old = await self._stored_lease(pipe, cluster)
            if old is None:
                await pipe.unwatch()
                return False
            now = time.time()
            pipe.multi()
            self._write_lease(pipe, replace(old, agent=agent, renewed=renewed, expires=expires), now)
            if old.expires <= now:
                pipe.eval(_BUMP, 1, self._k_version, self.channel, "0")
            await pipe.execute()
            return True

        return await self._watched(key, attempt)

    async def drop_lease(self, cluster: str) -> int:
        key = self._lease_key(cluster)

        async def attempt(pipe):
            present = bool(await pipe.exists(key))
            pipe.multi()
            pipe.delete(key)
            pipe.zrem(self._k_leases, cluster)
            if present:
                pipe.eval(_BUMP, 1, self._k_version, self.channel, "0")
            pipe.get(self._k_version)
            return int((await pipe.execute())[-1] or 0)

        return await self._watched(key, attempt)

    async def report_load(self, reports: Sequence[LoadReport]) -> int:
        """Merge readings into the loads hash under WATCH; publish only a notable change.

        A stored field that no longer decodes is overwritten or pruned, never built on.
        """
        key = self._k_loads

        async def attempt(pipe):
            now = time.time()
            live: dict[str, LoadReport | None] = {}
            fields = cast("dict[str, str]", await pipe.hgetall(key))  # decode_responses=True: str
            for f, t in fields.items():
                try:
                    live[f] = codec.load_load(f, t)
                except ValueError:
                    live[f] = None
            fresh = {codec.load_field(r): r for r in reports}
            notable = any(table.notable_load(live.get(f), r, now) for f, r in fresh.items())
            gone = [f for f, r in live.items() if f not in fresh and (r is None or r.expires < now)]
            kept = [r.expires for f, r in live.items() if r is not None and f not in gone]
            latest = max([*kept, *(r.expires for r in fresh.values())], default=now)
            pipe.multi()
            if fresh:
                pipe.hset(key, mapping={f: codec.dump_load(r) for f, r in fresh.items()})
            if gone:
                pipe.hdel(key, *gone)
            pipe.pexpireat(key, math.ceil(latest * 1000))
            if notable:
                pipe.eval(_BUMP, 1, self._k_version, self.channel, "0")
            pipe.get(self._k_version)
            return int((await pipe.execute())[-1] or 0)

        return await self._watched(key, attempt)
