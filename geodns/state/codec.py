"""JSON forms of clusters and observations, as the Redis backend stores them.

Plain JSON (not pickle) so operators can read the table with ``redis-cli`` and
other tools can write it; unknown fields are ignored so a newer writer does not
break an older reader.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import json
from typing import Any

from ..config.model import CheckSpec
from .model import AdminState, Cluster, Endpoint, Observation

_CHECK_FIELDS = {f.name for f in dataclasses.fields(CheckSpec)}


def dump_cluster(cluster: Cluster) -> str:
    return json.dumps({
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
    }, separators=(",", ":"))


def load_cluster(text: str) -> Cluster:
    d = json.loads(text)
    check = d.get("check")
    return Cluster(
        name=d["name"],
        region=d["region"],
        endpoints=tuple(_load_endpoint(e) for e in d.get("endpoints") or ()),
        weight=int(d.get("weight", 100)),
        priority=int(d.get("priority", 0)),
        min_healthy=int(d.get("min_healthy", 1)),
        admin=AdminState(d.get("admin", AdminState.ACTIVE.value)),
        check=CheckSpec(**{k: v for k, v in check.items() if k in _CHECK_FIELDS}) if check else None,
    )


def _load_endpoint(d: dict[str, Any]) -> Endpoint:
    return Endpoint(
        address=ipaddress.ip_address(d["address"]),
        weight=int(d.get("weight", 100)),
        admin=AdminState(d.get("admin", AdminState.ACTIVE.value)),
        probe=d.get("probe"),
    )


def observation_field(obs: Observation) -> str:
    """The hash field of an observation in its checker's hash: ``cluster|endpoint``."""
    return f"{obs.cluster}|{obs.endpoint}"


def dump_observation(obs: Observation) -> str:
    return json.dumps({"vantage": obs.vantage, "up": obs.up, "rtt_ms": obs.rtt_ms,
                       "at": obs.at, "expires": obs.expires}, separators=(",", ":"))


def load_observation(checker: str, field: str, text: str) -> Observation:
    cluster, _, endpoint = field.rpartition("|")
    d = json.loads(text)
    rtt = d.get("rtt_ms")
    return Observation(
        checker=checker,
        vantage=d.get("vantage", ""),
        cluster=cluster,
        endpoint=endpoint,
        up=d.get("up"),
        rtt_ms=float(rtt) if rtt is not None else None,
        at=float(d["at"]),
        expires=float(d["expires"]),
    )
