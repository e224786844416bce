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
from dataclasses import dataclass, replace
from pathlib import Path

from .config.load import load_config
from .config.model import Config
from .dns.listener import Listener
from .engine import AnswerEngine
from .errors import InputError
from .names import to_text
from .zones.zoneset import load_zones

log = logging.getLogger("geodns.server")

DEFAULTS_DIR = Path(__file__).resolve().parent / "defaults"


def default_config_path() -> Path:
    """The shipped config/geodns.yaml, embedded in the package."""
    return DEFAULTS_DIR / "config" / "geodns.yaml"


@dataclass(frozen=True)
class Settings:
    """Where the configuration comes from: a file and/or command-line overrides."""

    config_path: Path | None = None
    zone_paths: tuple[Path, ...] = ()
    dns_listen: tuple[tuple[str, int], ...] = ()
    http_listen: tuple[str, int] | None | bool = False   # False: as the config says
    store: str | None = None

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
        return replace(
            config,
            server=server,
            zones=config.zones + tuple(p for p in self.zone_paths if p not in config.zones),
            store=self.store or config.store,
        )


def build_engine(config: Config) -> AnswerEngine:
    """Everything the query path needs, loaded and checked; raises InputError."""
    zones = load_zones(config.zones)
    return AnswerEngine(zones, payload=config.server.udp_payload, nsid=config.server.nsid)


class Server:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.config: Config | None = None
        self.engine: AnswerEngine | None = None
        self.listeners: list[Listener] = []
        self.http = None
        self.reloads = {"ok": 0, "failed": 0}
        self._stopping = asyncio.Event()

    # The listeners call this; it always reads the current engine.
    def handle(self, data: bytes, client: str, tcp: bool) -> bytes | None:
        return self.engine.handle(data, client, tcp)

    async def start(self) -> None:
        """Load everything, then bind; raises InputError before binding anything."""
        self.config = self.settings.load()
        self.engine = build_engine(self.config)
        server = self.config.server
        try:
            for host, port in server.dns_listen:
                listener = Listener(host, port, self.handle, server.tcp_idle_timeout, server.tcp_max_connections)
                await listener.start()
                self.listeners.append(listener)
                log.info("event=listening transport=udp+tcp address=%s", listener.address)
            if server.http_listen is not None:
                from .http.app import start_http
                self.http = await start_http(self, *server.http_listen)
                for address in self.http.addresses:
                    log.info("event=listening transport=http address=%s", _host_port(address))
        except OSError:
            await self.stop()
            raise
        zones = _zone_names(self.engine)
        log.info("event=started zones=%s", zones)

    def reload(self) -> bool:
        """Re-read config and zones; on any problem keep what is running."""
        try:
            config = self.settings.load()
            engine = build_engine(config)
        except InputError as exc:
            self.reloads["failed"] += 1
            for problem in exc.problems:
                log.error("event=reload-rejected problem=%r", str(problem))
            log.error("event=reload-failed keeping=running-config")
            return False
        if self.config is not None and config.server.dns_listen != self.config.server.dns_listen:
            log.warning("event=reload listen addresses changed; restart to apply them")
        self.config, self.engine = config, engine
        self.reloads["ok"] += 1
        log.info("event=reloaded zones=%s", _zone_names(engine))
        return True

    def request_stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Serve until SIGINT/SIGTERM; SIGHUP reloads."""
        loop = asyncio.get_running_loop()
        await self.start()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        try:
            await self._stopping.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            log.info("event=stopping")
            await self.stop()

    async def stop(self) -> None:
        for listener in self.listeners:
            await listener.close()
        self.listeners = []
        if self.http is not None:
            await self.http.cleanup()
            self.http = None

    @property
    def ready(self) -> tuple[bool, str]:
        if self.engine is None:
            return False, "zones not loaded"
        if not self.listeners:
            return False, "no DNS listener"
        return True, "ok"


def _zone_names(engine: AnswerEngine) -> str:
    return ",".join(to_text(zone.origin) for zone in engine.zones) or "-"


def _host_port(address) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
