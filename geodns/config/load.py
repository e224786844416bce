"""Load and validate the YAML configuration into a ``Config``.

Every problem is collected, each naming the file, the line and the key path
(``clusters.us-east-1.weight: must be an integer >= 0``), and raised together
as one ``ConfigError``; a half-valid config is never returned.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

from ..dns import names
from ..errors import ConfigError, Problem
from . import checks, model, values
from .yamlsrc import LinedList, LinedMap, _YamlSyntax, parse_yaml


class _Reader:
    """Walks the parsed YAML, building model objects and collecting problems."""

    def __init__(self, source: str, base_dir: Path):
        self.source = source
        self.base_dir = base_dir
        self.problems: list[Problem] = []

    # -- helpers -----------------------------------------------------------
    def problem(self, line: int | None, path: str, reason: str) -> None:
        self.problems.append(Problem(self.source, line, f"{path}: {reason}"))

    def mapping(self, value: Any, line: int | None, path: str, known: tuple[str, ...] | None) -> LinedMap | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            self.problem(line, path, "must be a mapping")
            return None
        for key, dup_line in getattr(value, "duplicates", []):
            self.problem(dup_line, f"{path}.{key}" if path else str(key), "duplicate key")
        if known is not None:
            for key in value:
                if key not in known:
                    where = f"{path}.{key}" if path else str(key)
                    self.problem(_line(value, key), where, f"unknown key (expected one of: {', '.join(known)})")
        return cast(LinedMap, value)  # parse_yaml makes every mapping a LinedMap

    def field(self, m: LinedMap, key: str, path: str, convert: Callable[[Any], Any], default: Any) -> Any:
        if key not in m or m[key] is None:
            return default
        try:
            return convert(m[key])
        except (ValueError, TypeError) as exc:
            self.problem(_line(m, key), f"{path}.{key}" if path else key, str(exc))
            return default

    def items(self, seq: list, convert: Callable[[Any], Any], parent: LinedMap, key: str, path: str) -> tuple:
        """Each item of a list converted; a bad item is a problem at ``path[i]`` and is left out."""
        out = []
        for i, item in enumerate(seq):
            try:
                out.append(convert(item))
            except ValueError as exc:
                self.problem(_item_line(seq, i, parent, key), f"{path}[{i}]", str(exc))
        return tuple(out)

    def path_of(self, value: Any) -> Path:
        if not isinstance(value, str) or not value:
            raise ValueError("must be a file path")
        p = Path(value)
        return p if p.is_absolute() else self.base_dir / p

    # -- sections ----------------------------------------------------------
    def read(self, doc: Any) -> model.Config:
        top = self.mapping(
            doc,
            1,
            "",
            (
                "server",
                "store",
                "zones",
                "geoip",
                "regions",
                "clusters",
                "records",
                "health",
                "checker",
                "discovery",
                "resolver",
                "dnssec",
            ),
        )
        if top is None:
            top = LinedMap()
        server = self.server(top)
        store = self.field(top, "store", "", values.store_url, "memory://")
        zones = self.zones(top)
        geoip = self.geoip(top)
        regions = self.regions(top)
        clusters = self.clusters(top, regions)
        records = self.records(top, clusters)
        for net in geoip.networks:
            if net.region not in regions:
                self.problem(_line(top, "geoip"), "geoip.networks", f"unknown region {net.region!r} for {net.network}")
        if geoip.unlocated is not None and geoip.unlocated not in regions:
            geo = top.get("geoip")
            line = _line(geo, "unlocated") if isinstance(geo, LinedMap) else _line(top, "geoip")
            self.problem(line, "geoip.unlocated", f"unknown region {geoip.unlocated!r} (not under regions)")
        return model.Config(
            None,
            server,
            store,
            zones,
            geoip,
            regions,
            clusters,
            records,
            self.health(top),
            self.checker(top, regions),
            self.discovery(top),
            self.field(top, "resolver", "", values.resolver, None),
            self.dnssec(top),
        )

    def discovery(self, top: LinedMap) -> model.DiscoveryConfig | None:
        """``discovery:``: the zone discovered names live in, what may be claimed, the defaults of a
        discovered record, the check template and how long a lapsed lease keeps its registrations."""
        known = ("zone", "suffixes", "export_zone", "defaults", "check", "grace", "hostnames")
        m = self.mapping(top.get("discovery"), _line(top, "discovery"), "discovery", known)
        if m is None:
            return None
        p = "discovery"
        zone = self.field(m, "zone", p, _absolute_name, None)
        if zone is None:
            if m.get("zone") is None:
                self.problem(
                    _line(m, "zone") or m.line, f"{p}.zone", "missing (the served zone discovered names live in)"
                )
            return None
        suffixes = (zone,)
        if m.get("suffixes") is not None:
            raw = m["suffixes"]
            if not isinstance(raw, list) or not raw:
                self.problem(_line(m, "suffixes"), f"{p}.suffixes", "must be a non-empty list of names")
            else:
                suffixes = self.items(raw, _absolute_name, m, "suffixes", f"{p}.suffixes")
                for i, suffix in enumerate(suffixes):
                    if not names.is_subdomain(suffix, zone):
                        self.problem(
                            _item_line(raw, i, m, "suffixes"),
                            f"{p}.suffixes[{i}]",
                            f"{names.to_text(suffix)} is outside the discovery zone {names.to_text(zone)}",
                        )
        d = model.DiscoveryConfig(zone=zone, suffixes=suffixes)
        defaults = self.mapping(
            m.get("defaults"), _line(m, "defaults"), f"{p}.defaults", ("policy", "ttl", "answers", "fallback")
        )
        dp = f"{p}.defaults"
        policy, ttl, answers, fallback = d.policy, d.ttl, d.answers, d.fallback
        if defaults is not None:
            policy = self.field(defaults, "policy", dp, values.policy, d.policy)
            ttl = self.field(defaults, "ttl", dp, values.int_range(0, 86400), d.ttl)
            answers = self.field(defaults, "answers", dp, values.int_range(1, 64), d.answers)
            fallback = self.field(defaults, "fallback", dp, values.choice("all", "none"), d.fallback)
        return model.DiscoveryConfig(
            zone=zone,
            suffixes=suffixes,
            export_zone=self.field(m, "export_zone", p, _absolute_name, None),
            policy=policy,
            ttl=ttl,
            answers=answers,
            fallback=fallback,
            check=self.check(m, p),
            grace=self.field(m, "grace", p, _grace, d.grace),
            hostnames=self.field(m, "hostnames", p, values.choice("cname", "flatten"), d.hostnames),
            line=m.line,
        )

    def dnssec(self, top: LinedMap) -> model.DnssecConfig:
        """``dnssec:``: signed zones with their key files (read here, so a bad one is a config error at
        its line) and the signature timing."""
        known = ("zones", "validity", "refresh", "inception_backdate")
        m = self.mapping(top.get("dnssec"), _line(top, "dnssec"), "dnssec", known)
        d = model.DnssecConfig()
        if m is None:
            return d
        validity = self.field(m, "validity", "dnssec", values.long_duration, d.validity)
        refresh = self.field(m, "refresh", "dnssec", values.long_duration, d.refresh)
        backdate = self.field(m, "inception_backdate", "dnssec", values.duration_or_zero, d.inception_backdate)
        if refresh >= validity:
            self.problem(
                _line(m, "refresh") or _line(m, "validity"),
                "dnssec.refresh",
                f"must be shorter than validity ({validity:g}s): a signature is replaced when less than this is left",
            )
        zones: dict[names.Name, model.DnssecZone] = {}
        z = self.mapping(m.get("zones"), _line(m, "zones"), "dnssec.zones", None)
        for text, raw in (z or {}).items():
            path = f"dnssec.zones.{text}"
            line = _line(z, text)
            entry = self.mapping(raw, line, path, ("keys",))
            try:
                name = names.from_text(str(text).rstrip(".") + ".")
            except ValueError as exc:
                self.problem(line, path, f"bad name: {exc}")
                continue
            raw_keys = entry.get("keys") if entry is not None else None
            if isinstance(raw_keys, str):
                raw_keys = [raw_keys]
            if not isinstance(raw_keys, list) or not raw_keys:
                self.problem(
                    line, f"{path}.keys", "must be a non-empty list of key files (K<zone>+<alg>+<tag>.private)"
                )
                continue
            assert entry is not None  # raw_keys came from it
            keys = self.items(raw_keys, self._key_for(name), entry, "keys", f"{path}.keys")
            zones[name] = model.DnssecZone(name, str(text), keys, line)
        return model.DnssecConfig(zones, validity, refresh, backdate)

    def _key_for(self, zone: names.Name) -> Callable[[Any], Any]:
        def read(value: Any):
            from ..dnssec.keys import KeyFileError
            from ..dnssec.keys import read as read_key

            try:
                key = read_key(self.path_of(value))
            except KeyFileError as exc:
                raise ValueError(str(exc)) from None
            if key.zone.to_text().lower() != names.to_text(zone):
                raise ValueError(f"{key.path}: a key for {key.zone.to_text()}, not {names.to_text(zone)}")
            return key

        return read

    def checker(self, top: LinedMap, regions: dict[str, model.Region]) -> model.CheckerConfig:
        m = self.mapping(
            top.get("checker"), _line(top, "checker"), "checker", ("embedded", "id", "region", "http_listen")
        )
        if m is None:
            return model.CheckerConfig()
        embedded = m.get("embedded", "auto")
        embedded = {True: "on", False: "off"}.get(embedded, embedded)  # true/false mean on/off here
        if embedded not in ("auto", "on", "off"):
            self.problem(_line(m, "embedded"), "checker.embedded", f"must be auto, on or off, not {embedded!r}")
            embedded = "auto"
        region = self.field(m, "region", "checker", values.nonempty_str, None)
        if region is not None and region not in regions:
            self.problem(_line(m, "region"), "checker.region", f"unknown region {region!r}")
        http_listen = None
        if m.get("http_listen") not in (None, False, "", "off"):
            http_listen = self.field(m, "http_listen", "checker", values.parse_listen, None)
        return model.CheckerConfig(
            embedded, self.field(m, "id", "checker", values.nonempty_str, None), region, http_listen
        )

    def health(self, top: LinedMap) -> model.HealthConfig:
        m = self.mapping(top.get("health"), _line(top, "health"), "health", ("quorum", "unknown"))
        if m is None:
            return model.HealthConfig()
        return model.HealthConfig(
            quorum=self.field(m, "quorum", "health", values.quorum, "majority"),
            unknown=self.field(m, "unknown", "health", values.choice("up", "down"), "up"),
        )

    def server(self, top: LinedMap) -> model.ServerConfig:
        known = (
            "dns_listen",
            "http_listen",
            "nsid",
            "udp_payload",
            "tcp_idle_timeout",
            "tcp_message_timeout",
            "tcp_max_connections",
            "tcp_source_share",
            "admin_token",
            "debug_txt",
            "query_log",
            "ready_max_staleness",
            "workers",
        )
        m = self.mapping(top.get("server"), _line(top, "server"), "server", known)
        d = model.ServerConfig()
        if m is None:
            return d
        dns_listen = d.dns_listen
        if "dns_listen" in m:
            raw = m["dns_listen"]
            items = [raw] if isinstance(raw, str) else raw
            if not isinstance(items, list) or not items:
                self.problem(_line(m, "dns_listen"), "server.dns_listen", "must be a non-empty list of 'HOST:PORT'")
            else:
                dns_listen = self.items(items, values.parse_listen, m, "dns_listen", "server.dns_listen") or dns_listen
        http_listen = d.http_listen
        if "http_listen" in m:
            http_listen = (
                None
                if m["http_listen"] in (None, False, "", "off")
                else self.field(m, "http_listen", "server", values.parse_listen, d.http_listen)
            )
        return model.ServerConfig(
            dns_listen=dns_listen,
            http_listen=http_listen,
            nsid=self.field(m, "nsid", "server", values.nsid, None),
            udp_payload=self.field(m, "udp_payload", "server", values.int_range(512, 4096), d.udp_payload),
            tcp_idle_timeout=self.field(m, "tcp_idle_timeout", "server", values.parse_duration, d.tcp_idle_timeout),
            tcp_message_timeout=self.field(
                m, "tcp_message_timeout", "server", values.parse_duration, d.tcp_message_timeout
            ),
            tcp_max_connections=self.field(
                m, "tcp_max_connections", "server", values.int_range(1, 100000), d.tcp_max_connections
            ),
            tcp_source_share=self.field(
                m, "tcp_source_share", "server", values.float_range(0.01, 1.0), d.tcp_source_share
            ),
            admin_token=self.field(m, "admin_token", "server", values.nonempty_str, None),
            debug_txt=self.field(m, "debug_txt", "server", values.boolean, False),
            query_log=self.query_log(m),
            ready_max_staleness=self.field(
                m, "ready_max_staleness", "server", values.parse_duration, d.ready_max_staleness
            ),
            workers=self.field(m, "workers", "server", values.parse_workers, d.workers),
        )

    def query_log(self, server: LinedMap) -> model.QueryLogConfig:
        m = self.mapping(server.get("query_log"), _line(server, "query_log"), "server.query_log", ("enabled", "sample"))
        d = model.QueryLogConfig()
        if m is None:
            return d
        return model.QueryLogConfig(
            enabled=self.field(m, "enabled", "server.query_log", values.boolean, d.enabled),
            sample=self.field(m, "sample", "server.query_log", values.float_range(0.0, 1.0), d.sample),
        )

    def zones(self, top: LinedMap) -> tuple[Path, ...]:
        raw = top.get("zones")
        if raw is None:
            return ()
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list):
            self.problem(_line(top, "zones"), "zones", "must be a list of zone file paths")
            return ()
        return self.items(raw, self.path_of, top, "zones", "zones")

    def geoip(self, top: LinedMap) -> model.GeoIPConfig:
        m = self.mapping(top.get("geoip"), _line(top, "geoip"), "geoip", ("database", "networks", "unlocated"))
        if m is None:
            return model.GeoIPConfig()
        database = self.field(m, "database", "geoip", self.path_of, None)
        networks = []
        raw = m.get("networks") or []
        if not isinstance(raw, list):
            self.problem(_line(m, "networks"), "geoip.networks", "must be a list of {cidr, region}")
            raw = []
        for i, item in enumerate(raw):
            path = f"geoip.networks[{i}]"
            entry = self.mapping(item, _item_line(raw, i, m, "networks"), path, ("cidr", "region"))
            if entry is None:
                continue
            cidr = self.field(entry, "cidr", path, values.network, None)
            region = self.field(entry, "region", path, values.nonempty_str, None)
            if cidr is None or region is None:
                if entry.get("cidr") is None or entry.get("region") is None:  # absent or empty
                    self.problem(entry.line, path, "needs both cidr and region")
                continue
            networks.append(model.GeoNetwork(cidr, region))
        unlocated = self.field(m, "unlocated", "geoip", values.nonempty_str, None)
        return model.GeoIPConfig(database, tuple(networks), unlocated)

    def regions(self, top: LinedMap) -> dict[str, model.Region]:
        m = self.mapping(top.get("regions"), _line(top, "regions"), "regions", None)
        out: dict[str, model.Region] = {}
        for name, raw in (m or {}).items():
            path = f"regions.{name}"
            r = self.mapping(raw, _line(m, name), path, ("lat", "lon", "continent", "countries"))
            if r is None:
                self.problem(_line(m, name), path, "must be a mapping with lat, lon, continent")
                continue
            missing = [k for k in ("lat", "lon", "continent") if k not in r]
            if missing:
                self.problem(r.line, path, f"missing {', '.join(missing)}")
                continue
            out[str(name)] = model.Region(
                name=str(name),
                lat=self.field(r, "lat", path, values.float_range(-90, 90), 0.0),
                lon=self.field(r, "lon", path, values.float_range(-180, 180), 0.0),
                continent=self.field(r, "continent", path, values.continent, "NA"),
                countries=self.field(r, "countries", path, values.countries, ()),
            )
        return out

    def clusters(self, top: LinedMap, regions: dict[str, model.Region]) -> dict[str, model.ClusterSpec]:
        m = self.mapping(top.get("clusters"), _line(top, "clusters"), "clusters", None)
        out: dict[str, model.ClusterSpec] = {}
        known = ("region", "endpoints", "weight", "priority", "min_healthy", "check", "load")
        for name, raw in (m or {}).items():
            path = f"clusters.{name}"
            c = self.mapping(raw, _line(m, name), path, known)
            if c is None:
                self.problem(_line(m, name), path, "must be a mapping with region and endpoints")
                continue
            try:
                values.cluster_name(name)
            except ValueError as exc:
                self.problem(_line(m, name), path, f"bad name: {exc}")
            region = c.get("region")
            if region not in regions:
                self.problem(
                    _line(c, "region") or c.line,
                    f"{path}.region",
                    f"unknown region {region!r}" if region is not None else "missing",
                )
            endpoints = self.endpoints(c, path)
            out[str(name)] = model.ClusterSpec(
                name=str(name),
                region=str(region),
                endpoints=endpoints,
                weight=self.field(c, "weight", path, values.weight, 100),
                priority=self.field(c, "priority", path, values.priority, 0),
                min_healthy=self.field(c, "min_healthy", path, values.min_healthy, 1),
                check=self.check(c, path),
                load=self.load(c, path),
            )
        return out

    def load(self, c: LinedMap, path: str) -> model.LoadSpec | None:
        """A cluster's ``load:`` watermarks and damping (``shed`` filter); every problem with its key path."""
        known = ("low", "high", "smoothing", "step", "interval", "hysteresis", "ttl")
        m = self.mapping(c.get("load"), _line(c, "load"), f"{path}.load", known)
        if m is None:
            return None
        p, d = f"{path}.load", model.LoadSpec()
        fraction = values.float_range(0.0, 1000.0)
        spec = model.LoadSpec(
            low=self.field(m, "low", p, fraction, d.low),
            high=self.field(m, "high", p, fraction, d.high),
            smoothing=self.field(m, "smoothing", p, values.parse_duration, d.smoothing),
            step=self.field(m, "step", p, values.float_range(0.001, 1.0), d.step),
            interval=self.field(m, "interval", p, values.parse_duration, d.interval),
            hysteresis=self.field(m, "hysteresis", p, values.float_range(0.0, 1000.0), d.hysteresis),
            ttl=int(self.field(m, "ttl", p, values.parse_duration, d.ttl)),
        )
        if spec.high <= spec.low:
            self.problem(
                _line(m, "high") or _line(c, "load"),
                f"{p}.high",
                f"must be above low ({spec.low:g}), not {spec.high:g}",
            )
        elif spec.hysteresis >= spec.high - spec.low:
            self.problem(
                _line(m, "hysteresis"), f"{p}.hysteresis", f"must be less than high - low ({spec.high - spec.low:g})"
            )
        if spec.ttl < 1:
            self.problem(_line(m, "ttl"), f"{p}.ttl", "must be at least 1s")
        return spec

    def endpoints(self, c: LinedMap, path: str) -> tuple[model.EndpointSpec, ...]:
        raw = c.get("endpoints")
        if not isinstance(raw, list) or not raw:
            self.problem(
                _line(c, "endpoints") or c.line,
                f"{path}.endpoints",
                "must be a non-empty list of addresses or host names",
            )
            return ()
        out = []
        for i, item in enumerate(raw):
            ipath = f"{path}.endpoints[{i}]"
            line = _item_line(raw, i, c, "endpoints")
            if isinstance(item, str):
                try:
                    out.append(model.EndpointSpec(address=values.endpoint(item)))
                except ValueError as exc:
                    self.problem(line, ipath, str(exc))
                continue
            item_map = self.mapping(item, line, ipath, ("address", "weight", "probe"))
            if item_map is None:
                continue
            address = self.field(item_map, "address", ipath, values.endpoint, None)
            if address is None:
                if item_map.get("address") is None:  # absent or empty (a bad one is reported)
                    self.problem(line, ipath, "missing address")
                continue
            out.append(
                model.EndpointSpec(
                    address=address,
                    weight=self.field(item_map, "weight", ipath, values.weight, 100),
                    probe=self.field(item_map, "probe", ipath, values.probe, None),
                )
            )
        return tuple(out)

    def check(self, c: LinedMap, path: str) -> model.CheckSpec | None:

        known = (
            "type",
            "url",
            "port",
            "path",
            "host",
            "interval",
            "timeout",
            "rise",
            "fall",
            "method",
            "expect_status",
            "body",
            "tls_verify",
            "ca_file",
            "send",
            "expect",
            "jitter",
            "load_json",
            "load_metric",
        )
        m = self.mapping(c.get("check"), _line(c, "check"), f"{path}.check", known)
        if m is None:
            return None
        p = f"{path}.check"
        d = model.CheckSpec()

        def ca_file(value: Any) -> str:
            file = self.path_of(value)
            if not file.is_file():
                raise ValueError(f"{str(file)!r} is not a readable file")
            return str(file)

        kind = self.field(m, "type", p, values.choice("http", "https", "tcp"), d.type)
        spec = model.CheckSpec(
            type=kind,
            url=self.field(m, "url", p, checks.check_url(kind), None),
            port=self.field(m, "port", p, values.int_range(1, 65535), None),
            path=self.field(m, "path", p, checks.url_path, d.path),
            host=self.field(m, "host", p, checks.hostname, None),
            interval=self.field(m, "interval", p, values.parse_duration, d.interval),
            timeout=self.field(m, "timeout", p, values.parse_duration, d.timeout),
            rise=self.field(m, "rise", p, values.int_range(1, 100), d.rise),
            fall=self.field(m, "fall", p, values.int_range(1, 100), d.fall),
            method=self.field(m, "method", p, checks.http_method, d.method),
            expect_status=self.field(m, "expect_status", p, checks.status_ranges, d.expect_status),
            body=self.field(m, "body", p, values.nonempty_str, None),
            tls_verify=self.field(m, "tls_verify", p, checks.boolean, d.tls_verify),
            ca_file=self.field(m, "ca_file", p, ca_file, None),
            send=self.field(m, "send", p, values.nonempty_str, None),
            expect=self.field(m, "expect", p, values.nonempty_str, None),
            jitter=self.field(m, "jitter", p, values.float_range(0.0, 1.0), d.jitter),
            load_json=self.field(m, "load_json", p, checks.load_json, None),
            load_metric=self.field(m, "load_metric", p, checks.load_metric, None),
        )
        if "load_json" in m and "load_metric" in m:
            self.problem(_line(m, "load_metric"), f"{p}.load_metric", "give load_json or load_metric, not both")
        if kind == "tcp":
            for key in ("load_json", "load_metric"):
                if key in m:
                    self.problem(_line(m, key), f"{p}.{key}", "applies to http and https checks, not tcp")
        if spec.timeout > spec.interval:
            self.problem(_line(m, "timeout"), f"{p}.timeout", "must not be longer than the interval")
        if kind == "tcp":
            for key in ("method", "expect_status", "body", "host", "tls_verify", "ca_file"):
                if key in m:
                    self.problem(_line(m, key), f"{p}.{key}", "applies to http and https checks, not tcp")
            if "url" not in m and "port" not in m:
                self.problem(_line(c, "check"), p, "a tcp check needs port (or url: tcp://HOST:PORT)")
        else:
            for key in ("send", "expect"):
                if key in m:
                    self.problem(_line(m, key), f"{p}.{key}", "applies to tcp checks only")
        if "ca_file" in m and m.get("tls_verify") is False:
            self.problem(_line(m, "ca_file"), f"{p}.ca_file", "has no effect with tls_verify: false; drop one of them")
        return spec

    def records(self, top: LinedMap, clusters: dict[str, model.ClusterSpec]) -> dict[names.Name, model.RecordSpec]:
        m = self.mapping(top.get("records"), _line(top, "records"), "records", None)
        out: dict[names.Name, model.RecordSpec] = {}
        known = (
            "ttl",
            "clusters",
            "policy",
            "answers",
            "fallback",
            "latency_tolerance",
            "latency_reach_km",
            "hostnames",
        )
        for text, raw in (m or {}).items():
            path = f"records.{text}"
            line = _line(m, text)
            r = self.mapping(raw, line, path, known)
            if r is None:
                self.problem(line, path, "must be a mapping with clusters and policy")
                continue
            try:
                name = names.from_text(str(text).rstrip(".") + ".")
            except ValueError as exc:
                self.problem(line, path, f"bad name: {exc}")
                continue
            members = r.get("clusters")
            if not isinstance(members, list) or not members:
                self.problem(
                    _line(r, "clusters") or r.line, f"{path}.clusters", "must be a non-empty list of cluster names"
                )
                members = []
            for i, member in enumerate(members):
                if member not in clusters:
                    self.problem(
                        _item_line(members, i, r, "clusters"), f"{path}.clusters[{i}]", f"unknown cluster {member!r}"
                    )
            policy = self.field(r, "policy", path, values.policy, model.DEFAULT_POLICY)
            fallback = self.field(r, "fallback", path, values.nonempty_str, "all")
            if fallback not in ("all", "none") and fallback not in clusters:
                self.problem(
                    _line(r, "fallback"), f"{path}.fallback", f"must be all, none or a cluster name, not {fallback!r}"
                )
            pct, ms = self.tolerance(r, path)
            if name in out:
                self.problem(line, path, "the same name is defined twice")
            out[name] = model.RecordSpec(
                name=name,
                text=str(text),
                clusters=tuple(str(x) for x in members),
                policy=policy,
                ttl=self.field(r, "ttl", path, values.int_range(0, 86400), 30),
                answers=self.field(r, "answers", path, values.int_range(1, 64), 1),
                fallback=fallback,
                latency_tolerance_pct=pct,
                latency_tolerance_ms=ms,
                latency_reach_km=self.field(r, "latency_reach_km", path, values.km, model.RecordSpec.latency_reach_km),
                hostnames=self.field(r, "hostnames", path, values.choice("cname", "flatten"), "cname"),
                line=line,
            )
        return out

    def tolerance(self, r: LinedMap, path: str) -> tuple[float, float]:
        """``latency_tolerance: {pct: 20, ms: 10}``; each part checked on its own, so errors name it."""
        p = f"{path}.latency_tolerance"
        m = self.mapping(r.get("latency_tolerance"), _line(r, "latency_tolerance"), p, ("pct", "ms"))
        if m is None:
            return 20.0, 10.0
        return (
            self.field(m, "pct", p, values.finite_at_least(0), 20.0),
            self.field(m, "ms", p, values.finite_at_least(0), 10.0),
        )


def _grace(value: Any) -> float:
    """How long a lapsed lease's registrations stay: at most an hour (the store forgets a lease then)."""
    seconds = values.parse_duration(value)
    if seconds > 3600:
        raise ValueError(f"must be at most 1h (the store keeps a lapsed lease that long), not {seconds:g}s")
    return seconds


def _absolute_name(value: Any) -> names.Name:
    """A DNS name written with or without its final dot."""
    if not isinstance(value, str) or not value.strip(". "):
        raise ValueError("must be a DNS name")
    return names.from_text(value.strip().rstrip(".") + ".")


# -- where a value was written ----------------------------------------------
def _line(m: Any, key: Any) -> int | None:
    lines = getattr(m, "lines", None)
    if isinstance(lines, dict) and key in lines:
        return lines[key]
    return getattr(m, "line", None) or None


def _item_line(seq: Any, index: int, parent: Any, key: str) -> int | None:
    if isinstance(seq, LinedList) and index < len(seq.lines):
        return seq.lines[index]
    return _line(parent, key)


# -- entry points -------------------------------------------------------------
def config_from_text(text: str, source: str, base_dir: Path) -> model.Config:
    try:
        doc = parse_yaml(text, source)
    except _YamlSyntax as exc:
        raise ConfigError([exc.problem]) from None
    reader = _Reader(source, base_dir)
    config = reader.read(doc)
    if reader.problems:
        raise ConfigError(sorted(reader.problems, key=lambda p: p.line or 0))
    return config


def load_config(path: Path | str) -> model.Config:
    """Read and validate one config file; ConfigError lists every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem(str(path), None, f"cannot read: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem(str(path), None, f"not UTF-8 text: {exc}")]) from None
    return replace(config_from_text(text, str(path), path.parent), source=path)
