"""Bring the local topology up and down: Redis (or Sentinel), ingresses, servers, checkers.

Everything is started in dependency order and waited for (Redis answers PING,
an ingress answers ``/_sim``, a server answers DNS, both checkers have written
observations), so that when ``start()`` returns a drill can begin at once.
If any step fails, everything already started is stopped before the error
propagates: a half-started stack never lingers.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import time
import urllib.request
from pathlib import Path

from . import procs
from .topology import (
    AGENT_LEASE,
    AGENT_RENEW,
    APP,
    CHECKERS,
    CLUSTERS,
    DISCOVERY_GRACE,
    DISCOVERY_INGRESS,
    STATE_FILE,
    ZONE,
    CheckTiming,
    Ports,
    ProcInfo,
    StackState,
    render_config,
)

SENTINEL_MASTER = "geodns"
STOP_ORDER = ("agent", "checker", "server", "ingress", "sentinel", "redis")


def shipped_geoip() -> Path:
    from ...process.server import default_config_path

    return default_config_path().parent / "geoip" / "GeoIP2-City-Test.mmdb"


class Stack:
    def __init__(
        self, directory: Path, ports: Ports, timing: CheckTiming, mode: str = "redis", discovery: bool = False
    ):
        """``mode``: redis (one Redis), sentinel (primary, replica, three sentinels) or memory
        (no Redis: one server with its embedded checker).  ``discovery``: the clusters register
        through ``geodns agent`` processes, one per cluster, each watching a Kubernetes API of its
        own (``tooling/kubeapi.py``, served from this process) seeded with the cluster's Service."""
        if discovery and mode == "memory":
            raise ValueError("discovery needs a shared store (the agents write to Redis)")
        self.dir = Path(directory)
        self.ports = ports
        self.timing = timing
        self.mode = mode
        self.discovery = discovery
        self._kubeapis: list = []  # FakeKubeApi, one per cluster, stopped with the stack
        self.state_path = self.dir / STATE_FILE
        self.state: StackState | None = None

    # -- start -------------------------------------------------------------------

    def start(self) -> StackState:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "logs").mkdir(exist_ok=True)
        p = self.ports
        servers = 1 if self.mode == "memory" else 2
        self.state = StackState(
            dir=str(self.dir),
            store="memory://",
            store_unix=None,
            dns=[f"127.0.0.1:{port}" for port in p.dns[:servers]],
            http=[f"127.0.0.1:{port}" for port in p.http[:servers]],
            timing={
                "interval": self.timing.interval,
                "timeout": self.timing.timeout,
                "rise": self.timing.rise,
                "fall": self.timing.fall,
            },
            clusters={
                name: {"region": region, "addresses": [v4, v6], "ingress": f"http://127.0.0.1:{p.ingress[i]}"}
                for i, (name, (region, v4, v6)) in enumerate(CLUSTERS.items())
            },
            mode=self.mode,
            supervisor=os.getpid(),
        )
        if self.discovery:
            self.state.clusters = {
                name: {"region": region, "addresses": [ip], "ingress": f"http://{ip}:{p.ingress[i]}"}
                for i, ((name, (region, _v4, _v6)), ip) in enumerate(zip(CLUSTERS.items(), DISCOVERY_INGRESS.values()))
            }
            self.state.records = {"app": APP}
            self.state.discovery = {"renew": AGENT_RENEW, "lease": AGENT_LEASE, "grace": DISCOVERY_GRACE}
        try:
            if self.mode == "redis":
                self._start_redis()
            elif self.mode == "sentinel":
                self._start_sentinels()
            self._save()
            self._start_ingresses()
            self._write_configs()
            if self.discovery:
                self._start_agents()
            self._start_servers(servers)
            if self.mode != "memory":
                self._start_checkers()
                self._wait_checkers_reporting()
            self._save()
        except BaseException:
            self.stop()
            raise
        return self.state

    def _add(self, info: ProcInfo) -> ProcInfo:
        assert self.state is not None
        self.state.processes[info.name] = info
        self._save()
        return info

    def _save(self) -> None:
        assert self.state is not None
        self.state.save(self.state_path)

    def _log(self, name: str) -> Path:
        return self.dir / "logs" / f"{name}.log"

    def _redis_argv(self, port: int, workdir: Path, *extra: str) -> list[str]:
        binary = shutil.which("redis-server") or "redis-server"
        workdir.mkdir(parents=True, exist_ok=True)
        # AOF (fsync every second), as a deployment should run it: a restart keeps the table.  The servers
        # would restore it from their snapshots anyway; the redis-down drill wipes the AOF to prove that.
        return [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--dir",
            str(workdir),
            "--daemonize",
            "no",
            *extra,
        ]

    def _start_redis(self) -> None:
        assert self.state is not None
        port = self.ports.redis[0]
        # A unix socket too (short path: sun_path holds 108 bytes), so a checker in a
        # network namespace of its own (the partition drill) still reaches Redis.
        sock = self.dir / "redis.sock"
        if len(str(sock)) > 100:
            sock = Path(tempfile.mkdtemp(prefix="gds")) / "redis.sock"
        argv = self._redis_argv(port, self.dir / "redis", "--unixsocket", str(sock), "--unixsocketperm", "700")
        info = self._add(procs.spawn("redis", "redis", argv, self._log("redis"), f"127.0.0.1:{port}"))
        procs.wait_until(lambda: procs.redis_ping(port), 10, "Redis to answer PING", info)
        self.state.store = f"redis://127.0.0.1:{port}/0"
        self.state.store_unix = f"unix://{sock}?db=0"

    def _start_sentinels(self) -> None:
        assert self.state is not None
        primary, replica = self.ports.redis[:2]
        # No 5 s wait before a replica's first full sync (the default diskless delay).
        quick = ("--repl-diskless-sync-delay", "0")
        info = self._add(
            procs.spawn(
                "redis",
                "redis",
                self._redis_argv(primary, self.dir / "redis", *quick),
                self._log("redis"),
                f"127.0.0.1:{primary}",
            )
        )
        procs.wait_until(lambda: procs.redis_ping(primary), 10, "the Redis primary to answer PING", info)
        info = self._add(
            procs.spawn(
                "redis-replica",
                "redis",
                self._redis_argv(replica, self.dir / "redis-replica", *quick, "--replicaof", "127.0.0.1", str(primary)),
                self._log("redis-replica"),
                f"127.0.0.1:{replica}",
            )
        )
        procs.wait_until(lambda: _replica_in_sync(replica), 15, "the Redis replica to sync with the primary", info)
        for i, port in enumerate(self.ports.sentinel, 1):
            conf = self.dir / f"sentinel-{i}" / "sentinel.conf"
            conf.parent.mkdir(parents=True, exist_ok=True)
            conf.write_text(sentinel_conf(port, primary, conf.parent))
            argv = [shutil.which("redis-server") or "redis-server", str(conf), "--sentinel"]
            info = self._add(
                procs.spawn(f"sentinel-{i}", "sentinel", argv, self._log(f"sentinel-{i}"), f"127.0.0.1:{port}")
            )
            procs.wait_until(lambda port=port: procs.redis_ping(port), 10, f"sentinel {i} to answer PING", info)
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.ports.sentinel)
        self.state.store = f"redis+sentinel://{hosts}/{SENTINEL_MASTER}/0"

    def _start_ingresses(self) -> None:
        started = []
        for (name, (region, _v4, _v6)), port in zip(CLUSTERS.items(), self.ports.ingress):
            host = DISCOVERY_INGRESS[name] if self.discovery else "127.0.0.1"
            argv = procs.geodns_argv("sim-ingress", "--listen", f"{host}:{port}", "--name", name)
            started.append(
                (
                    name,
                    port,
                    self._add(
                        procs.spawn(
                            f"ingress-{region}", "ingress", argv, self._log(f"ingress-{region}"), f"{host}:{port}"
                        )
                    ),
                )
            )
        for name, _port, info in started:  # started together, waited for in turn: start-up is import-bound
            url = f"http://{info.address}/_sim"
            procs.wait_until(lambda url=url: _http_ok(url), 20, f"ingress {name} to answer /_sim", info)

    def _config_path(self, n: int) -> Path:
        return self.dir / f"geodns-{n}.yaml"

    def _write_configs(self) -> None:
        assert self.state is not None
        zone = self.dir / "gslb.example.com.zone"
        zone.write_text(ZONE)
        ingress = {name: port for name, port in zip(CLUSTERS, self.ports.ingress)}
        for n in (1, 2):
            self._config_path(n).write_text(
                render_config(
                    store=self.state.store,
                    geoip=shipped_geoip(),
                    zone=zone,
                    ingress=ingress,
                    timing=self.timing,
                    nsid=f"geodns-{n}",
                    embedded_checker=self.mode == "memory",
                    discovery=self.discovery,
                )
            )

    def _start_servers(self, count: int) -> None:
        from ..dnsclient import ask

        assert self.state is not None
        started = []
        for n in range(1, count + 1):
            dns, http = self.state.dns[n - 1], self.state.http[n - 1]
            argv = procs.geodns_argv(
                "serve",
                "--config",
                str(self._config_path(n)),
                "--dns-listen",
                dns,
                "--http-listen",
                http,
                "--store",
                self.state.store,
            )
            started.append(
                (n, dns, self._add(procs.spawn(f"geodns-{n}", "server", argv, self._log(f"geodns-{n}"), dns)))
            )
        for n, dns, info in started:
            procs.wait_until(
                lambda dns=dns: ask(dns, APP, "A", None, 0.3).rcode == "NOERROR",
                30,
                f"geodns-{n} to answer DNS on {dns}",
                info,
            )

    def _start_agents(self) -> None:
        """Per cluster: its Kubernetes API (in this process) holding one LoadBalancer Service for the
        app, annotated for geodns, whose status address is the cluster's ingress; and a real
        ``geodns agent`` watching it and registering that address in the store under a lease."""
        from ..kubeapi import FakeKubeApi, service

        assert self.state is not None
        for (name, (region, _v4, _v6)), port in zip(CLUSTERS.items(), self.ports.ingress):
            api = FakeKubeApi(bookmark_every=5.0).start()
            self._kubeapis.append(api)
            ip = DISCOVERY_INGRESS[name]
            api.apply("services", service("app", "shop", hostname=APP[:-1], ips=(ip,), probe=f"{port}/healthz"))
            kubeconfig = api.kubeconfig(self.dir / f"kubeconfig-{name}.json")
            argv = procs.geodns_argv(
                "agent",
                "--cluster",
                name,
                "--region",
                region,
                "--store",
                self.state.store,
                "--kubeconfig",
                str(kubeconfig),
                "--renew",
                f"{AGENT_RENEW:g}s",
                "--lease",
                f"{AGENT_LEASE:g}s",
                "--agent-id",
                f"agent-{name}",
            )
            address = f"kube API 127.0.0.1:{api.port}"
            self._add(procs.spawn(f"agent-{name}", "agent", argv, self._log(f"agent-{name}"), address))

    def _start_checkers(self) -> None:
        assert self.state is not None
        for (checker_id, region), port in zip(CHECKERS, self.ports.checker):
            http = f"127.0.0.1:{port}"
            argv = procs.geodns_argv(
                "check",
                "--config",
                str(self._config_path(1)),
                "--store",
                self.state.store,
                "--checker-id",
                checker_id,
                "--region",
                region,
                "--http-listen",
                http,
            )
            self._add(procs.spawn(checker_id, "checker", argv, self._log(checker_id), f"http {http} {region}"))

    def _wait_checkers_reporting(self, timeout: float = 30.0) -> None:
        """Until every endpoint has a verdict from both checkers, answers are not yet the steady state."""
        from ...state.store import open_store

        state = self.state
        assert state is not None
        wanted = {c for c, _ in CHECKERS}

        async def voters() -> set[str]:
            store = open_store(state.store)
            try:
                snapshot = await store.load()
            except Exception:  # noqa: BLE001 - not up yet; the caller polls
                return set()
            finally:
                await store.close()
            return {o.checker for obs in snapshot.observations.values() for o in obs if o.up is not None}

        deadline = time.monotonic() + timeout
        while True:
            for checker_id, _ in CHECKERS:
                info = state.processes[checker_id]
                if procs.exited(info) is not None:
                    raise RuntimeError(f"{checker_id} exited; its log:\n{procs.tail(info.log)}")
            if asyncio.run(voters()) >= wanted:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"checkers did not report within {timeout:.0f}s; see {self.dir / 'logs'}")
            time.sleep(0.1)

    # -- stop --------------------------------------------------------------------

    def stop(self) -> None:
        """Stop every process the state file lists (a drill may have restarted some), by PID."""
        state = self.state
        if self.state_path.exists():
            try:
                state = StackState.load(self.state_path)
            except (OSError, ValueError, TypeError):
                pass
        if state is not None:
            stop_state(state)
        for api in self._kubeapis:
            api.stop()
        self._kubeapis.clear()


def stop_state(state: StackState) -> None:
    for role in STOP_ORDER:
        for info in state.processes.values():
            if info.role == role:
                procs.stop(info)


def sentinel_conf(port: int, primary: int, workdir: Path) -> str:
    """Quick failure detection (1 s) so a drill sees the failover in seconds, not half a minute."""
    return (
        f"port {port}\nbind 127.0.0.1\ndaemonize no\ndir {workdir}\n"
        f"sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {primary} 2\n"
        f"sentinel down-after-milliseconds {SENTINEL_MASTER} 1000\n"
        f"sentinel failover-timeout {SENTINEL_MASTER} 5000\n"
        f"sentinel parallel-syncs {SENTINEL_MASTER} 1\n"
    )


def _replica_in_sync(port: int) -> bool:
    """A failover before the first sync would promote an empty replica."""
    import redis

    try:
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            return client.info("replication").get("master_link_status") == "up"
        finally:
            client.close()
    except redis.RedisError:
        return False


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            json.loads(r.read())
            return True
    except (OSError, ValueError):
        return False
