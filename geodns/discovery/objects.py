"""What a Kubernetes object registers: its ``geodns.io/*`` annotations and its status addresses.

Pure functions over the objects as the API serves them (JSON, camelCase), so they are tested
without a client and read Services, Ingresses and Gateway API Gateways alike:

- ``geodns.io/hostname: NAME[,NAME]``: the names this object's addresses answer (Services of type
  LoadBalancer, Ingresses, Gateways).
- ``geodns.io/export: "true"``: a Service served east-west as ``<service>.<namespace>.<export zone>``.
- ``geodns.io/weight`` (0..1000000), ``geodns.io/policy`` (``healthy,geo,weighted``),
  ``geodns.io/ttl`` (seconds), ``geodns.io/probe`` (``/path``, ``PORT`` or ``PORT/path``).

Addresses: a Service's and an Ingress's ``status.loadBalancer.ingress[].ip``/``.hostname`` (and a
Service's ``spec.externalIPs``), a Gateway's ``status.addresses[].value``.  A bad annotation value
is a problem (logged by the agent, naming the object) and that field is left to the defaults; an
object without addresses yet (its load balancer is being made) registers nothing until it has one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..config import values
from ..state.codec import endpoint_text
from ..state.model import Registration

PREFIX = "geodns.io/"
HOSTNAME, EXPORT = PREFIX + "hostname", PREFIX + "export"
WEIGHT, POLICY, TTL, PROBE = PREFIX + "weight", PREFIX + "policy", PREFIX + "ttl", PREFIX + "probe"

# The resources the agent reads (and its ClusterRole grants): kind -> (API group, plural).
KINDS = {
    "Service": ("", "services"),
    "Ingress": ("networking.k8s.io", "ingresses"),
    "Gateway": ("gateway.networking.k8s.io", "gateways"),
}


@dataclass(frozen=True)
class Found:
    """One object's registrations and what was wrong with its annotations."""

    registrations: tuple[Registration, ...]
    problems: tuple[str, ...]


def key(obj: dict[str, Any]) -> str:
    """``namespace/name``: how the agent keeps an object between events."""
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def addresses(kind: str, obj: dict[str, Any]) -> list[str]:
    """The object's status addresses (IPs and host names), in the order the API lists them."""
    status = obj.get("status") or {}
    found: list[Any] = []
    if kind == "Gateway":
        found = [a.get("value") for a in status.get("addresses") or () if isinstance(a, dict)]
    else:
        for item in (status.get("loadBalancer") or {}).get("ingress") or ():
            if isinstance(item, dict):
                found.append(item.get("ip") or item.get("hostname"))
        if kind == "Service":
            found.extend((obj.get("spec") or {}).get("externalIPs") or ())
    out = []
    for value in found:
        try:
            out.append(endpoint_text(value))
        except ValueError:
            continue
    return list(dict.fromkeys(out))


def registrations(kind: str, obj: dict[str, Any]) -> Found:
    """What ``obj`` (a ``kind`` from ``KINDS``) registers, from its annotations and status."""
    meta = obj.get("metadata") or {}
    notes = meta.get("annotations") or {}
    hostnames = [h.strip() for h in str(notes.get(HOSTNAME, "")).split(",") if h.strip()]
    export = kind == "Service" and str(notes.get(EXPORT, "")).strip().lower() == "true"
    problems: list[str] = []
    if kind == "Service" and hostnames and (obj.get("spec") or {}).get("type") != "LoadBalancer":
        problems.append(f"{HOSTNAME} applies to Services of type LoadBalancer")
        hostnames = []
    if not hostnames and not export:
        return Found((), tuple(problems))
    weight = _note(notes, WEIGHT, lambda v: values.weight(_integer(v)), problems)
    policy = _note(notes, POLICY, lambda v: values.policy([p.strip() for p in v.split(",") if p.strip()]), problems)
    ttl = _note(notes, TTL, lambda v: values.int_range(0, 86400)(_integer(v)), problems)
    probe = _note(notes, PROBE, _probe, problems)
    endpoints = tuple(addresses(kind, obj))
    if not endpoints:
        return Found((), tuple(problems))
    source = f"{kind} {key(obj)}"
    names: Iterable[tuple[str, bool]] = [(h, False) for h in hostnames]
    if export:
        names = [*names, (f"{meta.get('name')}.{meta.get('namespace')}", True)]
    return Found(
        tuple(Registration(name, endpoints, source, flag, weight, policy, ttl, probe) for name, flag in names),
        tuple(problems),
    )


def _note(notes: dict[str, Any], name: str, convert, problems: list[str]) -> Any:
    if name not in notes:
        return None
    try:
        return convert(str(notes[name]).strip())
    except (ValueError, TypeError) as exc:
        problems.append(f"{name}: {exc}")
        return None


def _integer(value: str) -> int:
    if not value.isdigit():
        raise ValueError(f"must be a whole number, not {value!r}")
    return int(value)


def _probe(value: str) -> str:
    port, _, path = value.partition("/")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"must be /PATH, PORT or PORT/PATH, not {value!r}")
    if not port and not path:
        raise ValueError("must not be empty")
    return value
