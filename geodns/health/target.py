"""Where a check dials: one ``Target`` per endpoint, from its probe override or the cluster's check.

The rule, in order (the first that applies wins):

1. The endpoint has a ``probe``:
   - a URL (``http://127.0.0.1:18081/healthz``, ``https://...``, ``tcp://h:p``)
     is dialled as written; for http and https checks its scheme decides TLS;
   - ``HOST:PORT`` (``[v6]:PORT``) is dialled with the check's scheme and ``path``.
2. The check has a ``url``: it is the target of *every* endpoint of the cluster
   (one health URL standing for the whole cluster, as in DESIGN.md's example).
3. Otherwise the endpoint's own address, on the check's ``port`` (default 80
   for http, 443 for https; tcp checks must name one) and ``path``.  A host-name
   endpoint (a cloud load balancer's) is dialled by its name: each address it
   resolves to in turn, with the name as Host and TLS SNI (``check_for``).

``host`` in the check sets the Host header and the TLS SNI/verification name
whatever is dialled, so an ingress can be probed by IP under the app's name.
For tcp checks only the host and port of a URL matter.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, replace

from ..config.model import CheckSpec, HostName
from ..config.values import split_host_port
from ..state.model import Endpoint

_DEFAULT_PORTS = {"http": 80, "https": 443}


class TargetError(ValueError):
    """An endpoint's probe (or its cluster's check) does not say where to dial."""


@dataclass(frozen=True, slots=True)
class Target:
    """One place to probe: scheme (http, https or tcp), host, port and, for HTTP, the path with query."""

    scheme: str
    host: str  # a name or an IP address, without brackets
    port: int
    path: str = "/"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.netloc}{self.path if self.scheme != 'tcp' else ''}"

    @property
    def netloc(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return self.url


def check_for(endpoint: Endpoint, spec: CheckSpec) -> CheckSpec:
    """The check of one endpoint: the cluster's, except that a host-name endpoint probed at its own
    name is probed *as* that name (Host and SNI), whatever name the cluster's check gives: the
    load balancer's name is the one its certificate and routing answer to."""
    if isinstance(endpoint.address, HostName) and not endpoint.probe and not spec.url and spec.host is not None:
        return replace(spec, host=None)
    return spec


def resolve_target(endpoint: Endpoint, spec: CheckSpec) -> Target:
    """The target for ``endpoint`` under ``spec``, following the rule in this module's docstring."""
    if endpoint.probe:
        if "://" in endpoint.probe:
            return _from_url(endpoint.probe, spec)
        return _from_host_port(endpoint.probe, spec)
    if spec.url:
        return _from_url(spec.url, spec)
    scheme = spec.type
    port = spec.port or _DEFAULT_PORTS.get(scheme)
    if port is None:
        raise TargetError("a tcp check needs a port (or a url, or a probe on the endpoint)")
    return Target(scheme, str(endpoint.address), port, spec.path)


def _from_url(text: str, spec: CheckSpec) -> Target:
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise TargetError(f"{text!r} is not a URL ({exc})") from None
    if parts.scheme not in ("http", "https", "tcp") or not parts.hostname:
        raise TargetError(f"{text!r}: expected http://, https:// or tcp://HOST:PORT")
    scheme = parts.scheme
    if spec.type == "tcp":
        scheme = "tcp"
    elif scheme == "tcp":
        raise TargetError(f"{text!r}: an http check needs an http:// or https:// URL")
    port = port or _DEFAULT_PORTS.get(parts.scheme)
    if port is None:
        raise TargetError(f"{text!r}: needs a port")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(scheme, parts.hostname, port, path)


def _from_host_port(text: str, spec: CheckSpec) -> Target:
    host, port = split_host_port(text)
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise TargetError(f"{text!r}: expected HOST:PORT, [IPv6]:PORT or a URL")
    return Target(spec.type, host, int(port), spec.path)
