"""JSON forms of clusters, observations and load readings, as the Redis backend stores them.

Plain JSON (not pickle) so operators can read the table with ``redis-cli`` and
other tools can write it; unknown fields are ignored so a newer writer does not
break an older reader.  Reading is validating: see ``load_cluster``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from typing import Any

from ..config import checks, values
from ..config.model import CheckSpec
from . import table
from .model import AdminState, Cluster, Endpoint, Lease, LoadReport, Observation, Registration

_CHECK_FIELDS = {f.name for f in dataclasses.fields(CheckSpec)}

# The config's bounds (geodns/config/load.py), so the store accepts exactly what the config does.


def dump_cluster(cluster: Cluster) -> str:
    return json.dumps(
        {
            "name": cluster.name,
            "region": cluster.region,
            "weight": cluster.weight,
            "priority": cluster.priority,
            "min_healthy": cluster.min_healthy,
            "admin": cluster.admin.value,
            "check": dataclasses.asdict(cluster.check) if cluster.check is not None else None,
            "endpoints": [
                {"address": str(e.address), "weight": e.weight, "admin": e.admin.value, "probe": e.probe}
                for e in cluster.endpoints
            ],
        },
        separators=(",", ":"),
    )


def load_cluster(text: str, key: str | None = None) -> Cluster:
    """Decode one stored cluster, checked as the config checks a cluster.

    Redis is shared and writable by anyone with access (and evicts under
    memory pressure), so what it holds is input like a config file: every value
    passes the config's own converters, and a bad one raises ``ValueError``
    naming every problem (``weight: must be between 0 and 1000000, not -100``).
    ``key`` is the name the cluster is stored under; the JSON must agree with it.
    """
    try:
        d = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    if not isinstance(d, dict):
        raise ValueError("must be a JSON object")
    problems: list[str] = []

    def field(name: str, convert: Callable[[Any], Any], default: Any, where: dict[str, Any] = d, path: str = "") -> Any:
        if name not in where:
            return default
        try:
            return convert(where[name])
        except (ValueError, TypeError) as exc:
            problems.append(f"{path}{name}: {exc}")
            return default

    name = field("name", values.nonempty_str, key)
    if key is not None and name != key:
        problems.append(f"name: {name!r} does not match its key {key!r}")
    region = field("region", values.nonempty_str, None)
    if region is None and "region" not in d:
        problems.append("region: missing")
    raw = d.get("endpoints")
    endpoints: list[Endpoint] = []
    if not isinstance(raw, list) or not raw:
        problems.append("endpoints: must be a non-empty list of addresses")
    else:
        for i, item in enumerate(raw):
            endpoint = _load_endpoint(item, f"endpoints[{i}].", problems)
            if endpoint is not None:
                endpoints.append(endpoint)
        addresses = [e.address for e in endpoints]
        if len(set(addresses)) != len(addresses):
            problems.append("endpoints: the same address is listed twice")
    cluster = Cluster(
        name=name or "",
        region=region or "",
        endpoints=tuple(endpoints),
        weight=field("weight", values.weight, 100),
        priority=field("priority", values.priority, 0),
        min_healthy=field("min_healthy", values.min_healthy, 1),
        admin=field("admin", _admin, AdminState.ACTIVE),
        check=field("check", lambda v: _load_check(v, problems), None),
    )
    if problems:
        raise ValueError("; ".join(_short(p) for p in problems))
    return cluster


def _short(text: str, limit: int = 200) -> str:
    """A reason fit for a log line and /readyz, even when the bad value is 10**400."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _admin(value: Any) -> AdminState:
    return AdminState(values.choice(*(s.value for s in AdminState))(value))


def _load_endpoint(d: Any, path: str, problems: list[str]) -> Endpoint | None:
    if not isinstance(d, dict):
        problems.append(f"{path.rstrip('.')}: must be an object with an address")
        return None
    before = len(problems)
    address = None
    if "address" not in d:
        problems.append(f"{path}address: missing")
    else:
        try:
            address = values.endpoint(d["address"])
        except ValueError as exc:
            problems.append(f"{path}address: {exc}")
    endpoint_fields: dict[str, Any] = {}
    for name, convert, default in (
        ("weight", values.weight, 100),
        ("admin", _admin, AdminState.ACTIVE),
        ("probe", _optional(values.nonempty_str), None),
    ):
        try:
            endpoint_fields[name] = convert(d[name]) if name in d else default
        except (ValueError, TypeError) as exc:
            problems.append(f"{path}{name}: {exc}")
    if len(problems) > before or address is None:
        return None
    return Endpoint(address=address, **endpoint_fields)


def _optional(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else convert(value)


# The check fields the config bounds, with the config's converters (geodns/config/load.py).
_CHECK_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "type": values.choice("http", "https", "tcp"),
    "port": _optional(values.int_range(1, 65535)),
    "interval": values.parse_duration,
    "timeout": values.parse_duration,
    "rise": values.int_range(1, 100),
    "fall": values.int_range(1, 100),
    "jitter": values.float_range(0.0, 1.0),
    "load_json": _optional(checks.load_json),
    "load_metric": _optional(checks.load_metric),
}


def _load_check(value: Any, problems: list[str]) -> CheckSpec | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError("must be an object or null")
    before = len(problems)
    fields = {}
    for key, raw in value.items():
        if key not in _CHECK_FIELDS:
            continue  # a newer writer's field: ignored
        convert = _CHECK_CONVERTERS.get(key)
        try:
            fields[key] = convert(raw) if convert is not None else raw
        except (ValueError, TypeError) as exc:
            problems.append(f"check.{key}: {exc}")
    if len(problems) > before:
        return None
    spec = CheckSpec(**fields)
    if spec.timeout > spec.interval:
        problems.append("check.timeout: must not be longer than the interval")
    return spec


def observation_field(obs: Observation) -> str:
    """The hash field of an observation in its checker's hash: ``cluster|endpoint``."""
    return f"{obs.cluster}|{obs.endpoint}"


REASON_LIMIT = 200  # characters of an observation's reason a reader accepts


def dump_observation(obs: Observation) -> str:
    """The stored form; ``reason`` and ``down_since`` only when set (a reader before them ignores them)."""
    d: dict[str, Any] = {
        "vantage": obs.vantage,
        "up": obs.up,
        "rtt_ms": obs.rtt_ms,
        "at": obs.at,
        "expires": obs.expires,
    }
    if obs.reason is not None:
        d["reason"] = obs.reason[:REASON_LIMIT]
    if obs.down_since is not None:
        d["down_since"] = obs.down_since
    return json.dumps(d, separators=(",", ":"))


def _reason(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > REASON_LIMIT:
        raise ValueError(f"reason: must be a string of at most {REASON_LIMIT} characters")
    return value


def _unix_time(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"down_since: must be a unix time, not {_short(repr(value), 40)}")
    return float(value)


def load_observation(checker: str, field: str, text: str) -> Observation:
    """Decode one checker's observation; ``ValueError`` if it is not one (the reader skips it)."""
    cluster, _, endpoint = field.rpartition("|")
    try:
        d = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    if not isinstance(d, dict) or not cluster or d.get("up") not in (True, False, None):
        raise ValueError("not an observation {vantage, up, rtt_ms, at, expires}")
    try:
        rtt = d.get("rtt_ms")
        return Observation(
            checker=checker,
            vantage=str(d.get("vantage", "")),
            cluster=cluster,
            endpoint=endpoint,
            up=d.get("up"),
            rtt_ms=float(rtt) if rtt is not None else None,
            at=float(d["at"]),
            expires=float(d["expires"]),
            reason=_reason(d.get("reason")),
            down_since=_unix_time(d.get("down_since")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not an observation ({exc!r})") from None


def load_field(report: LoadReport) -> str:
    """The hash field of a load reading: ``cluster|endpoint|source`` (endpoint "" for the cluster)."""
    return f"{report.cluster}|{report.endpoint}|{report.source}"


def dump_load(report: LoadReport) -> str:
    return json.dumps({"load": report.load, "at": report.at, "expires": report.expires}, separators=(",", ":"))


def load_load(field: str, text: str) -> LoadReport:
    """Decode one load reading, checked as the API checks one; ``ValueError`` naming what is wrong."""
    parts = field.split("|", 2)
    if len(parts) != 3 or not parts[2]:
        raise ValueError("field must be cluster|endpoint|source")
    cluster, endpoint, source = parts
    problems: list[str] = []
    try:
        values.cluster_name(cluster)
    except ValueError as exc:
        problems.append(f"cluster: {exc}")
    if endpoint:
        try:
            endpoint = str(values.endpoint(endpoint))
        except ValueError as exc:
            problems.append(f"endpoint: {exc}")
    try:
        d = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    if not isinstance(d, dict):
        raise ValueError("must be a JSON object {load, at, expires}")
    load = 0.0
    try:
        load = table.check_load(d.get("load"))
    except ValueError as exc:
        problems.append(str(exc))
    times = []
    for name in ("at", "expires"):
        value = d.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            problems.append(f"{name}: must be a finite number of unix seconds, not {value!r}")
            value = 0.0
        times.append(float(value))
    if not problems and times[1] < times[0]:
        problems.append("expires: must not be before at")
    if problems:
        raise ValueError("; ".join(_short(p) for p in problems))
    return LoadReport(source, cluster, endpoint, load, times[0], times[1])


# -- leases (discovery agents) ------------------------------------------------------------
MAX_REGISTRATIONS = 10_000  # per cluster; a lease holding more is refused as bad data
_TEXT_LIMIT = 255


def dump_lease(lease: Lease) -> str:
    return json.dumps(
        {
            "cluster": lease.cluster,
            "region": lease.region,
            "agent": lease.agent,
            "renewed": lease.renewed,
            "expires": lease.expires,
            "registrations": [
                {
                    k: v
                    for k, v in (
                        ("name", r.name),
                        ("endpoints", list(r.endpoints)),
                        ("source", r.source),
                        ("export", r.export),
                        ("weight", r.weight),
                        ("policy", list(r.policy) if r.policy is not None else None),
                        ("ttl", r.ttl),
                        ("probe", r.probe),
                    )
                    if v is not None
                }
                for r in lease.registrations
            ],
        },
        separators=(",", ":"),
    )


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > _TEXT_LIMIT:
        raise ValueError(f"must be a string of 1-{_TEXT_LIMIT} characters")
    return value


def _source(value: Any) -> str:
    if not isinstance(value, str) or len(value) > _TEXT_LIMIT:
        raise ValueError(f"must be a string of at most {_TEXT_LIMIT} characters")
    return value


def _time(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"must be a finite number of unix seconds, not {_short(repr(value), 40)}")
    return float(value)


def endpoint_text(value: Any) -> str:
    """A registered endpoint: an IP address (kept in its canonical text) or a host name (lower case,
    without the final dot)."""
    try:
        return str(values.endpoint(value))
    except ValueError:
        raise ValueError(f"must be an address or a host name, not {_short(repr(value), 40)}") from None


def _registration(d: Any, path: str, problems: list[str]) -> Registration | None:
    if not isinstance(d, dict):
        problems.append(f"{path}: must be an object with name and endpoints")
        return None
    before = len(problems)
    got: dict[str, Any] = {}
    for key, convert, default in (
        ("name", _text, None),
        ("source", _source, ""),
        ("export", checks.boolean, False),
        ("weight", _optional(values.weight), None),
        ("policy", _optional(values.policy), None),
        ("ttl", _optional(values.int_range(0, 86400)), None),
        ("probe", _optional(_text), None),
    ):
        try:
            got[key] = convert(d[key]) if key in d else default
        except (ValueError, TypeError) as exc:
            problems.append(f"{path}.{key}: {exc}")
    if got.get("name") is None and "name" not in d:
        problems.append(f"{path}.name: missing")
    raw = d.get("endpoints")
    endpoints: list[str] = []
    if not isinstance(raw, list) or not raw:
        problems.append(f"{path}.endpoints: must be a non-empty list of addresses or host names")
    else:
        for i, item in enumerate(raw):
            try:
                endpoints.append(endpoint_text(item))
            except ValueError as exc:
                problems.append(f"{path}.endpoints[{i}]: {exc}")
    if len(problems) > before:
        return None
    return Registration(endpoints=tuple(dict.fromkeys(endpoints)), **got)


def load_lease(text: str, key: str | None = None) -> Lease:
    """Decode one cluster's lease, checked as input (another agent, or anyone, may have written it);
    ``ValueError`` naming every problem."""
    try:
        d = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    if not isinstance(d, dict):
        raise ValueError("must be a JSON object")
    problems: list[str] = []
    got: dict[str, Any] = {}
    for name, convert in (
        ("cluster", values.cluster_name),
        ("region", values.nonempty_str),
        ("agent", _text),
        ("renewed", _time),
        ("expires", _time),
    ):
        if name not in d:
            problems.append(f"{name}: missing")
            continue
        try:
            got[name] = convert(d[name])
        except (ValueError, TypeError) as exc:
            problems.append(f"{name}: {exc}")
    if key is not None and "cluster" in got and got["cluster"] != key:
        problems.append(f"cluster: {got['cluster']!r} does not match its key {key!r}")
    raw = d.get("registrations", [])
    registrations: list[Registration] = []
    if not isinstance(raw, list) or len(raw) > MAX_REGISTRATIONS:
        problems.append(f"registrations: must be a list of at most {MAX_REGISTRATIONS}")
    else:
        for i, item in enumerate(raw):
            registration = _registration(item, f"registrations[{i}]", problems)
            if registration is not None:
                registrations.append(registration)
    if problems:
        raise ValueError("; ".join(_short(p) for p in problems[:5]))
    return Lease(registrations=tuple(registrations), **got)
