"""The Server: start-up, signals, reload and graceful shutdown.

Settings come from one place (``Settings``: the config file plus command-line
overrides) so that a reload re-reads exactly what start-up read.  A reload
builds a complete new engine first and swaps it in with one assignment; if
anything fails the running engine stays and every problem is logged.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ..answer.counters import GslbCounters, QueryStats
from ..answer.engine import AnswerEngine
from ..answer.feed import EngineFeed
from ..answer.responder import GslbResponder, check_records, keep_health_fresh
from ..config.load import load_config
from ..config.model import Config
from ..discovery.records import NOTHING as NO_DISCOVERY
from ..discovery.records import check_zones
from ..discovery.records import news as discovery_news
from ..dns.listener import Listener
from ..dns.names import to_text
from ..dns.tcp import TcpLimits
from ..dns.udp import AVAILABLE as UDP_COMPILED
from ..dnssec.refresh import keep_signatures_fresh
from ..dnssec.signer import Timing
from ..dnssec.zones import check_signed, sign_zones
from ..errors import ConfigError, InputError
from ..geo import Locator
from ..gslb.history import StateHistory
from ..state import table
from ..state.hostnames import HostWatch, host_names
from ..state.keeper import SnapshotKeeper
from ..state.model import Cluster, Snapshot
from ..state.store import StateStore, StoreUnavailable, open_store, redact_url
from ..zones.zoneset import ZoneSet, load_zones
from .claim import Bound, address_text, claim_addresses

if TYPE_CHECKING:  # imported where used: http/ and health/ import this module, workers.py forks it
    from aiohttp import web

    from ..health.checker import Checker
    from .workers import WorkerPool

log = logging.getLogger("geodns.server")

DEFAULTS_DIR = Path(__file__).resolve().parent.parent / "defaults"


def default_config_path() -> Path:
    """The shipped config/geodns.yaml, embedded in the package."""
    return DEFAULTS_DIR / "config" / "geodns.yaml"


@dataclass(frozen=True)
class Settings:
    """Where the configuration comes from: a file and/or command-line overrides."""

    config_path: Path | None = None
    zone_paths: tuple[Path, ...] = ()
    dns_listen: tuple[tuple[str, int], ...] = ()
    http_listen: tuple[str, int] | None | Literal[False] = False  # False: as the config says
    store: str | None = None
    reset_state: bool = False  # seed with overwrite: forget runtime drains and weights
    workers: int | None = None  # serve --workers: overrides server.workers

    def load(self) -> Config:
        if self.config_path is not None:
            config = load_config(self.config_path)
        elif self.zone_paths:
            config = Config()
        else:
            config = load_config(default_config_path())
        server = config.server
        if self.dns_listen:
            server = replace(server, dns_listen=self.dns_listen)
        if self.http_listen is not False:
            server = replace(server, http_listen=self.http_listen)
        if self.workers is not None:
            server = replace(server, workers=self.workers)
        return replace(
            config,
            server=server,
            zones=config.zones + tuple(p for p in self.zone_paths if p not in config.zones),
            store=self.store or config.store,
        )


def build_engine(
    config: Config,
    snapshot: Snapshot | None = None,
    zones: ZoneSet | None = None,
    *,
    starting: bool = False,
    areas: bool = True,
) -> AnswerEngine:
    """Everything the query path needs, loaded and checked; raises InputError.

    ``zones`` already loaded (a worker gets the supervisor's) are used as they
    are.  Slow parts (a large GeoIP database) make this worth running off the
    event loop on reload.
    """
    if zones is None:
        zones = load_zones(config.zones)
    signed = {origin: (zone.text, zone.line) for origin, zone in config.dnssec.zones.items()}
    problems = (
        check_records(config, zones)
        + check_zones(config, (zone.origin for zone in zones))
        + check_signed(str(config.source or "config"), signed, zones)
    )
    if problems:
        raise ConfigError(problems)
    responder = None
    if config.records or config.discovery is not None:
        if snapshot is None:
            snapshot = Snapshot.from_specs(config.clusters.values())
        # ``areas``: compile the GeoIP database for cheap first sight (geo/compile.py; not for
        # ``geodns validate``).  ``starting``: answer before the database's whole-file check is
        # done (it runs in the compile); a reload checks first, so a damaged file is rejected.
        locator = Locator(config.geoip, regions=config.regions if areas else None, defer_verify=starting)
        responder = GslbResponder(config, locator, snapshot)
    signing = None
    if config.dnssec.zones:
        zones, signing = sign_zones(
            zones,
            {origin: signed.keys for origin, signed in config.dnssec.zones.items()},
            Timing(config.dnssec.validity, config.dnssec.refresh, config.dnssec.inception_backdate),
            _GslbNames(responder),
        )
    return AnswerEngine(
        zones,
        payload=config.server.udp_payload,
        nsid=config.server.nsid,
        responder=responder,
        debug_txt=config.server.debug_txt,
        query_log=config.server.query_log,
        signing=signing,
    )


class _GslbNames:
    """The GSLB names answered now, for DNSSEC's denial bitmaps (a name there has A and AAAA): the
    responder's, which records from discovery add to and take from while the engine runs."""

    def __init__(self, responder: GslbResponder | None):
        self.responder = responder

    def __contains__(self, name: object) -> bool:
        return self.responder is not None and name in self.responder.names


STOP_PART_TIMEOUT = 3.0


async def _bounded(stopping, what: str) -> None:
    """Await one part's shutdown, but never for long: a stuck part is logged and left."""
    try:
        await asyncio.wait_for(stopping, STOP_PART_TIMEOUT)
    except asyncio.TimeoutError:
        log.warning("event=stop-timeout part=%r waited=%.0fs", what, STOP_PART_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - stopping goes on whatever one part says
        log.warning("event=stop-error part=%r error=%r", what, exc)


class Server:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.config: Config | None = None
        self.engine: AnswerEngine | None = None
        self.listeners: list[Listener] = []
        self.http: web.AppRunner | None = None
        self.store: StateStore | None = None
        self.keeper: SnapshotKeeper | None = None
        self.checker: Checker | None = None  # the embedded health checker, when it runs
        self.workers: WorkerPool | None = None  # a WorkerPool when server.workers > 1 (geodns/process/workers.py)
        self.reloads = {"ok": 0, "failed": 0}
        self.loaded_at: float | None = None  # unix time the running config was loaded (start or reload)
        self.reload_problems: list[str] = []  # of the latest failed reload, for the admin API
        self.stats = QueryStats()  # shared by every engine, so reloads keep counting
        self.gslb_counters = GslbCounters()
        self.history = StateHistory()  # endpoint state changes, for the status page
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._seeded_names: set[str] = set()  # config clusters this server has put into the store
        self._discovered = NO_DISCOVERY  # the records from discovery last logged
        # Host-name endpoints resolved off the query path (state/hostnames.py), added to every
        # snapshot before the responder and the workers see it; ``_stored`` is the keeper's latest.
        self.hosts: HostWatch | None = None
        self._stored: Snapshot | None = None
        self.published: Snapshot | None = None  # what the responder and the workers were last given

    def query_stats(self) -> QueryStats:
        """What /metrics reports: this process's counters, or every worker's when workers answer."""
        if self.workers is not None:
            return self.workers.stats().add(self.stats)
        return self.stats

    def gslb_report(self) -> GslbCounters:
        """What /metrics reports of GSLB decisions: this process's, or every worker's when workers answer."""
        if self.workers is not None:
            return self.workers.gslb_counters()
        return self.gslb_counters

    def listener_report(self) -> list[dict]:
        """Per listen address: counters and open TCP connections, this process's or every worker's."""
        if self.workers is not None:
            return self.workers.listener_report()
        return [listener.report() for listener in self.listeners]

    async def settled(self) -> bool:
        """Whether every process answering DNS has the keeper's current snapshot (waits a little; see the
        admin API)."""
        if self.workers is not None and self.keeper is not None:
            return await self.workers.wait_applied(self.keeper.snapshot.version)
        return True

    # The listeners call this; it always reads the current engine.
    def handle(self, data: bytes, client: str, tcp: bool) -> bytes | None:
        # start() sets the engine before any listener exists; no None check on the query path.
        return self.engine.handle(data, client, tcp)  # type: ignore[union-attr]

    async def start(self) -> None:
        """Load everything, then bind; raises InputError before binding anything."""
        config = self.config = self.settings.load()
        self.store = open_store(config.store)
        seed = Snapshot.from_specs(config.clusters.values())
        self.engine = build_engine(config, seed, starting=True).count_into(self.stats, self.gslb_counters)
        # The DNS addresses are bound before anything touches the store: a second server started on an
        # address already served fails here, before it could seed (or --reset-state) the table the
        # first one serves (geodns/process/claim.py).
        server = config.server
        try:
            listen, claimed = claim_addresses(server.dns_listen, server.workers, reuse_port=server.workers > 1)
        except OSError:
            await self.stop()
            raise
        try:
            await self._start(config, seed, listen, claimed)
        except BaseException:
            if self.workers is None:  # the pool closes its own; ours may not have a listener yet
                for _, tcp, udp in (bound for slot in claimed for bound in slot):
                    tcp.close()
                    udp.close()
            raise

    async def _start(
        self, config: Config, seed: Snapshot, listen: tuple[tuple[str, int], ...], claimed: list[list[Bound]]
    ) -> None:
        """``start`` once the DNS addresses are ours: the store, the checker, the workers or listeners."""
        store = self.store
        assert store is not None and self.engine is not None, "start() opens the store and builds the engine first"
        if await self._seed_store(overwrite=self.settings.reset_state):
            for warning in await store.risks():
                log.warning("event=store-risk %s", warning)
        self.keeper = SnapshotKeeper(
            store,
            seed,
            on_change=self._on_snapshot,
            reseed=lambda: self._seed_store(restore=True),
            validate=self._validate_cluster,
        )
        await self.keeper.start()
        self.hosts = HostWatch(config.resolver, lambda _: self._publish())
        self._tasks.append(asyncio.create_task(self.hosts.run(), name="geodns-hostnames"))
        self._on_snapshot(self.keeper.snapshot)
        self._tasks.append(asyncio.create_task(keep_health_fresh(self._current_gslb), name="geodns-health-refresh"))
        self._tasks.append(asyncio.create_task(keep_signatures_fresh(self._current_signing), name="geodns-resign"))
        await self._start_checker()
        server = config.server
        try:
            if server.workers > 1:
                await self._start_workers(server.workers, listen, claimed)
            for (host, port), (_, tcp, udp) in zip(listen, claimed[0]) if self.workers is None else ():
                listener = Listener(
                    host,
                    port,
                    self.handle,
                    TcpLimits.from_config(server),
                    sockets=(tcp, udp),
                    feed=EngineFeed(lambda: self.engine),
                )
                await listener.start()
                self.listeners.append(listener)
                log.info("event=listening transport=udp+tcp address=%s udp=%s", listener.address, listener.udp_loop)
                _warn_without_compiled_udp(listener.udp_loop)
            if server.http_listen is not None:
                from ..http.app import start_http

                http = self.http = await start_http(self, *server.http_listen)
                for address in http.addresses:
                    log.info("event=listening transport=http address=%s", address_text(*address[:2]))
        except OSError:
            await self.stop()
            raise
        self.loaded_at = time.time()
        log.info(
            "event=started zones=%s store=%s records=%d",
            _zone_names(self.engine),
            redact_url(config.store),
            len(config.records),
        )

    async def _start_workers(self, count: int, listen: tuple[tuple[str, int], ...], claimed: list[list[Bound]]) -> None:
        """N processes forked from this one (sharing its loaded data) answer the queries; this one feeds
        them snapshots (geodns/process/workers.py)."""
        from .workers import WorkerPool

        config, keeper = self.config, self.keeper
        assert config is not None and keeper is not None, "start() loads the config and the keeper first"

        def current() -> tuple[Config, AnswerEngine]:
            assert self.config is not None and self.engine is not None  # never unset once started
            return self.config, self.engine

        def snapshot() -> Snapshot:
            return self.published if self.published is not None else keeper.snapshot

        workers = self.workers = WorkerPool(count, self.settings, listen, snapshot, current, claimed)
        await workers.start()
        udp_loop = "compiled" if UDP_COMPILED else "asyncio"
        for address in workers.addresses:
            log.info("event=listening transport=udp+tcp address=%s workers=%d udp=%s", address, count, udp_loop)
        _warn_without_compiled_udp(udp_loop)

    async def _start_checker(self) -> None:
        """The embedded checker: on by default with memory://, where no other checker can reach the table."""
        config, store, keeper = self.config, self.store, self.keeper
        assert config is not None and store is not None and keeper is not None, "start() sets them first"
        settings = config.checker
        wanted = settings.embedded == "on" or (settings.embedded == "auto" and config.store.startswith("memory:"))
        if not wanted:
            return
        from ..health.checker import Checker

        checker_id = settings.id or f"{socket.gethostname()}-serve"
        checker = self.checker = Checker(
            store, checker_id, settings.region or "local", table_source=_Table(self), resolver=config.resolver
        )
        await checker.start()
        log.info("event=checker-started id=%s vantage=%s", checker_id, settings.region or "local")

    async def _seed_store(self, overwrite: bool = False, restore: bool = False) -> bool:
        """Put the config's clusters into the store, keeping runtime changes (drains, weights)
        unless ``overwrite`` (``serve --reset-state``) says the config wins.

        Once the keeper has loaded a table, its snapshot is the base (``table.seed_plan``):
        a store that lost its data or its index gets that table back, runtime changes
        and all, and a config cluster removed at runtime stays removed (only clusters new
        to the config since our last seed are added).  A server that never loaded one
        (version 0) seeds from the config alone.  ``restore``: the keeper found the store
        empty; what comes back is logged.  False when the store is unreachable.
        """
        config, store = self.config, self.store
        assert config is not None and store is not None, "start() loads the config and opens the store first"
        last = self.keeper.snapshot if self.keeper is not None and not overwrite else None
        base = last.clusters if last is not None and last.version > 0 else None
        specs = [
            s for s in config.clusters.values() if base is None or s.name in base or s.name not in self._seeded_names
        ]
        try:
            version = await store.seed(specs, overwrite=overwrite, base=base)
        except StoreUnavailable as exc:
            log.warning("event=seed-deferred reason=%r (answering from the config until the store is back)", str(exc))
            return False
        self._seeded_names = set(config.clusters) if base is None else self._seeded_names | {s.name for s in specs}
        if restore:
            if base is None:
                log.warning("event=store-reseeded from=config version=%d (no table loaded yet to restore)", version)
            elif last is not None:  # always, when there is a base
                changes = table.runtime_changes(base, config.clusters)
                log.warning(
                    "event=store-restored from=snapshot-v%d version=%d clusters=%d runtime_changes=%r",
                    last.version,
                    version,
                    len(base),
                    "; ".join(changes) or "none",
                )
        return True

    def _validate_cluster(self, cluster: Cluster) -> list[str]:
        """What the store's own checks cannot know: the config's regions (as the config checks them)."""
        if self.config is not None and cluster.region not in self.config.regions:
            return [f"region: unknown region {cluster.region!r}"]
        return []

    def _current_signing(self):
        return (self.engine.signing if self.engine is not None else None), self.stats.dnssec

    def _current_gslb(self) -> GslbResponder | None:
        return self.engine.responder if self.engine is not None else None

    def _on_snapshot(self, snapshot: Snapshot) -> None:
        """The keeper's news: the store's table changed."""
        self._stored = snapshot
        self._publish()

    def _publish(self) -> None:
        """Hand the latest table, with its host names resolved, to the workers and the responder; then
        tell the host watch which host names the table (discovered clusters included) now has."""
        snapshot = self._stored
        if snapshot is None:
            return
        hosts = self.hosts
        if hosts is not None and hosts.current:
            snapshot = replace(snapshot, resolved=hosts.current)
        self.published = snapshot
        if self.workers is not None:
            self.workers.publish(snapshot)
        responder = self.engine.responder if self.engine is not None else None
        if responder is not None:
            responder.update(snapshot)
            self.history.note(responder.live)
            discovered = responder.live.discovered
            for line in discovery_news(self._discovered, discovered):
                if "refused" in line or "conflict" in line:
                    log.warning(line)
                else:
                    log.info(line)
            self._discovered = discovered
        if hosts is not None:
            hosts.want(host_names(responder.live.snapshot if responder is not None else snapshot))

    async def reload(self) -> bool:
        """Re-read config and zones; on any problem keep what is running."""
        try:
            config = self.settings.load()
            snapshot = self.keeper.snapshot if self.keeper is not None else None
            engine = await asyncio.get_running_loop().run_in_executor(None, build_engine, config, snapshot)
        except InputError as exc:
            self.reloads["failed"] += 1
            self.reload_problems = [str(problem) for problem in exc.problems]
            for problem in exc.problems:
                log.error("event=reload-rejected problem=%r", str(problem))
            log.error("event=reload-failed keeping=running-config")
            return False
        old = self.config
        if old is not None and config.server.dns_listen != old.server.dns_listen:
            log.warning("event=reload listen addresses changed; restart to apply them")
        if old is not None and config.server.workers != old.server.workers:
            log.warning("event=reload workers changed; restart to apply it")
        if old is not None and config.store != old.store:
            log.warning("event=reload store URL changed; restart to apply it")
            config = replace(config, store=old.store)
        self.config, self.engine = config, engine.count_into(self.stats, self.gslb_counters)
        if self.hosts is not None:
            self.hosts.use(config.resolver)
        if self.checker is not None:
            self.checker.use_resolver(config.resolver)
        if self.keeper is not None:
            self._on_snapshot(self.keeper.snapshot)
        confirmed = self.workers is None or await self.workers.reload()
        await self._seed_store()
        self.reloads["ok"] += 1
        self.loaded_at = time.time()
        if confirmed:
            log.info("event=reloaded zones=%s records=%d", _zone_names(engine), len(config.records))
        else:
            log.warning(
                "event=reloaded zones=%s records=%d workers=not-all-confirmed (a stuck worker answers "
                "from the old config until it catches up)",
                _zone_names(engine),
                len(config.records),
            )
        return True

    def request_stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Serve until SIGINT/SIGTERM; SIGHUP reloads.

        Handlers go in before start-up, so a signal that arrives while zones
        load still means a clean stop, not a traceback.
        """
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self._reload_soon)
        try:
            await self.start()
            await self._stopping.wait()
            log.info("event=stopping")
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            await self.stop()

    def _reload_soon(self) -> None:
        if self.engine is None:
            return  # still starting: start-up reads the files anyway
        task = asyncio.create_task(self.reload())
        self._tasks.append(task)
        task.add_done_callback(self._forget_task)

    def _forget_task(self, task: asyncio.Task) -> None:
        if task in self._tasks:
            self._tasks.remove(task)

    async def stop(self) -> None:
        """Stop everything started, each part within a bound: a stop must always finish."""
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=STOP_PART_TIMEOUT)
        self._tasks = []
        workers, self.workers = self.workers, None
        if workers is not None:
            await _bounded(workers.stop(), "workers")
        listeners, self.listeners = self.listeners, []
        for listener in listeners:
            await _bounded(listener.close(), f"listener {listener.address}")
        http, self.http = self.http, None
        if http is not None:
            await _bounded(http.cleanup(), "http")
        checker, self.checker = self.checker, None
        if checker is not None:
            await _bounded(checker.stop(), "checker")
        keeper, self.keeper = self.keeper, None
        if keeper is not None:
            await _bounded(keeper.stop(), "state keeper")
        store, self.store = self.store, None
        if store is not None:
            await _bounded(store.close(), "state store")

    @property
    def ready(self) -> tuple[bool, str]:
        if self.engine is None:
            return False, "zones not loaded"
        if self.workers is not None:
            return self.workers.ready()
        if not self.listeners:
            return False, "no DNS listener"
        return True, "ok"


class _Table:
    """What the embedded checker probes: the table the answers come from, discovered clusters included."""

    def __init__(self, server: Server) -> None:
        self.server = server

    @property
    def snapshot(self) -> Snapshot:
        responder = self.server._current_gslb()
        if responder is not None:
            return responder.live.snapshot
        keeper = self.server.keeper
        assert keeper is not None, "the checker runs only while the keeper does"
        return keeper.snapshot


def _zone_names(engine: AnswerEngine) -> str:
    return ",".join(to_text(zone.origin) for zone in engine.zones) or "-"


def _warn_without_compiled_udp(udp_loop: str) -> None:
    """Say so when UDP is not served by the compiled loop: geodns answers correctly, but a third
    to a half as fast under load, and an install without a compiler is easy to miss."""
    if udp_loop != "compiled":
        log.warning(
            "event=udp-slow-path: the compiled UDP loop (geodns/dns/_mmsg.c) is not available here (built "
            "without a compiler, or not Linux): UDP is served through asyncio's endpoint, every query in Python, "
            "a third to a half of the speed under load (GSLB; static 0.6); with gcc and python3-dev, install geodns again"
        )
