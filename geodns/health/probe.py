"""One probe of one target: HTTP/HTTPS with aiohttp, TCP with asyncio streams.

A probe never raises (except on cancellation): every outcome becomes a
``ProbeResult`` whose ``reason`` is what an operator reads (the log, the
observation in the store, ``geodns status``), from a small vocabulary:

    ok, HTTP <code>, timeout after <timeout>s, connection refused,
    connection reset, unreachable, tls: <detail>, body mismatch (also a tcp
    reply without ``expect``), bad response (the peer spoke something that is
    not HTTP).

``ProbeResult.outcome`` folds a reason into the fixed set metrics count by
(``OUTCOMES``), so a label never carries free text such as a TLS detail.

RTT is connect + time to first byte: for HTTP until the response headers
arrive (a fresh connection each time, so it includes the TCP and TLS
handshakes); for TCP the connect, plus the first reply byte when ``expect``
is set.  Each probe is bounded by the check's ``timeout`` as a whole.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import ipaddress
import logging
import socket
import ssl
import time
from dataclasses import dataclass

import aiohttp
import aiohttp.abc
import dns.exception
import yarl

from ..config.model import CheckSpec
from ..config.values import split_host_port
from ..state.hostnames import look_up, make_resolver
from .loadsignal import read_load
from .target import Target

log = logging.getLogger(__name__)

BODY_LIMIT = 64 * 1024  # bytes of a body (or tcp reply) searched for the expected text
USER_AGENT = "geodns-checker"


# The outcome label of geodns_checker_probes_total: one per reason family, "error" for the rest
# (reset, unreachable, bad response, a probe that raised).
OUTCOMES = ("ok", "http_status", "timeout", "refused", "tls", "body_mismatch", "error")
_OUTCOME_PREFIXES = (
    ("HTTP ", "http_status"),
    ("timeout", "timeout"),
    ("connection refused", "refused"),
    ("tls:", "tls"),
    ("body mismatch", "body_mismatch"),
)


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    rtt_ms: float | None  # None when nothing answered (refused, timeout, ...)
    reason: str
    load: float | None = None  # read from the response when the check says where (loadsignal.py)

    @property
    def outcome(self) -> str:
        """The reason's family, one of ``OUTCOMES``."""
        return outcome_of(self.ok, self.reason)


def outcome_of(ok: bool, reason: str) -> str:
    """``OUTCOMES`` member for a result: "HTTP 503" -> http_status, "connection reset" -> error."""
    if ok:
        return "ok"
    for prefix, outcome in _OUTCOME_PREFIXES:
        if reason.startswith(prefix):
            return outcome
    return "error"


def timed_out(timeout: float) -> str:
    """The reason of a probe that hit the check's timeout: 'timeout after 0.5s'."""
    return f"timeout after {timeout:g}s"


class HostResolver(aiohttp.abc.AbstractResolver):
    """Host names probed through the config's ``resolver:`` (the DNS server flattening resolves
    through too, state/hostnames.py), or the system's without one, for aiohttp and for tcp probes
    alike.  ``use`` switches it (a reload changed ``resolver:``) under the probes running."""

    def __init__(self, server: tuple[str, int] | None):
        self.use(server)

    def use(self, server: tuple[str, int] | None) -> None:
        """Resolve through ``server`` from the next look-up on; None: the system's resolver."""
        self.server = server
        self._resolver = make_resolver(server) if server is not None else None

    async def addresses(self, host: str) -> list[str]:
        """``host``'s addresses, IPv4 first; an address is its own answer."""
        try:
            return [str(ipaddress.ip_address(host))]
        except ValueError:
            pass
        if self._resolver is None:
            return await _system_addresses(host)
        try:
            found = await look_up(self._resolver, host.rstrip("."))
        except dns.exception.DNSException as exc:
            raise OSError(errno.EHOSTUNREACH, f"cannot resolve {host}: {type(exc).__name__}") from None
        if not found.v4 and not found.v6:
            raise OSError(errno.EHOSTUNREACH, f"{host} has no addresses")
        return [str(a) for a in found.v4 + found.v6]

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in await self.addresses(host)
            if family in (socket.AF_UNSPEC, socket.AF_INET6 if ":" in address else socket.AF_INET)
        ]

    async def close(self) -> None:
        pass


async def _system_addresses(host: str) -> list[str]:
    """``host``'s addresses from the system's resolver (/etc/hosts too), IPv4 first."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OSError(errno.EHOSTUNREACH, f"cannot resolve {host}: {exc.strerror}") from None
    found = dict.fromkeys(str(info[4][0]) for info in sorted(infos, key=lambda info: info[0] != socket.AF_INET))
    return list(found)


def new_session(limit: int = 256, resolver: HostResolver | None = None) -> aiohttp.ClientSession:
    """The one HTTP client a checker shares across probes.

    ``force_close``: every probe dials afresh, so a dead ingress cannot hide
    behind a pooled keep-alive connection, and RTT always includes the connect.
    No cookies, no proxies from the environment, no redirects (see probe_http).
    Host names are resolved through ``resolver`` when given, else the system's.
    """
    connector = aiohttp.TCPConnector(force_close=True, limit=limit, ttl_dns_cache=10, resolver=resolver)
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
        timeout=aiohttp.ClientTimeout(total=None),
    )


@functools.lru_cache(maxsize=64)
def tls_context(verify: bool, ca_file: str | None) -> ssl.SSLContext:
    """A client TLS context per (verify, ca_file); cached since building one reads the CA store.

    ``ca_file`` replaces the system CAs (it pins the platform's own CA).  Call
    ``tls_context.cache_clear()`` to pick up a rotated CA file.
    """
    if not verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()


def status_ok(status: int, spec: CheckSpec) -> bool:
    return any(lo <= status <= hi for lo, hi in spec.expect_status)


async def probe(
    target: Target, spec: CheckSpec, session: aiohttp.ClientSession, resolver: HostResolver | None = None
) -> ProbeResult:
    """Probe ``target`` the way its scheme says (``resolver``: where a tcp target's host name is
    resolved; an HTTP one's goes through the session's)."""
    if target.scheme == "tcp":
        return await probe_tcp(target, spec, resolver)
    return await probe_http(target, spec, session)


async def probe_http(target: Target, spec: CheckSpec, session: aiohttp.ClientSession) -> ProbeResult:
    """``spec.method`` on the target URL; ok when the status is expected and the body (if asked) matches.

    Redirects are not followed: a 3xx is judged by ``expect_status`` (default
    200-399 accepts it), since following one would probe some other place.
    """
    started = time.perf_counter()
    try:
        return await asyncio.wait_for(_http(target, spec, session, started), spec.timeout)
    except (asyncio.TimeoutError, TimeoutError):
        return ProbeResult(False, None, timed_out(spec.timeout))
    except (aiohttp.ClientError, OSError, ssl.SSLError, UnicodeError) as exc:  # UnicodeError: a bad host name
        return ProbeResult(False, None, _reason(exc))


async def _http(target: Target, spec: CheckSpec, session: aiohttp.ClientSession, started: float) -> ProbeResult:
    headers = {"User-Agent": USER_AGENT, "Connection": "close"}
    server_hostname = None
    if spec.host:
        headers["Host"] = spec.host
        server_hostname = _strip_port(spec.host)
    tls = tls_context(spec.tls_verify, spec.ca_file) if target.scheme == "https" else None
    url = yarl.URL(target.url, encoded=True)
    async with session.request(
        spec.method,
        url,
        headers=headers,
        ssl=tls if tls is not None else True,
        server_hostname=server_hostname,
        allow_redirects=False,
    ) as response:
        rtt_ms = (time.perf_counter() - started) * 1000.0
        if not status_ok(response.status, spec):
            return ProbeResult(False, rtt_ms, f"HTTP {response.status}")
        if spec.load_json is not None or spec.load_metric is not None:
            body = await _prefix(response.content)
            if spec.body is not None and spec.body.encode() not in body:
                return ProbeResult(False, rtt_ms, "body mismatch")
            return ProbeResult(True, rtt_ms, "ok", read_load(body, spec))
        if spec.body is not None and not await _contains(response.content, spec.body.encode()):
            return ProbeResult(False, rtt_ms, "body mismatch")
        return ProbeResult(True, rtt_ms, "ok")


async def _prefix(stream: aiohttp.StreamReader, until: bytes | None = None) -> bytes:
    """The first ``BODY_LIMIT`` bytes of the body (all of it when shorter); with ``until``, no more
    than it takes for ``until`` to appear."""
    seen = b""
    while len(seen) < BODY_LIMIT:
        chunk = await stream.read(BODY_LIMIT - len(seen))
        if not chunk:
            break
        seen += chunk
        if until is not None and until in seen:
            break
    return seen


async def _contains(stream: aiohttp.StreamReader, wanted: bytes) -> bool:
    """Whether ``wanted`` occurs within the first ``BODY_LIMIT`` bytes; stops reading once it does."""
    return wanted in (await _prefix(stream, until=wanted))[:BODY_LIMIT]


async def probe_tcp(target: Target, spec: CheckSpec, resolver: HostResolver | None = None) -> ProbeResult:
    """Connect; then send ``spec.send`` and wait for ``spec.expect`` in the reply, when given."""
    started = time.perf_counter()
    streams: list[asyncio.StreamWriter] = []
    try:
        return await asyncio.wait_for(_tcp(target, spec, started, streams, resolver), spec.timeout)
    except (asyncio.TimeoutError, TimeoutError):
        return ProbeResult(False, None, timed_out(spec.timeout))
    except (OSError, UnicodeError) as exc:  # UnicodeError: a host name IDNA cannot encode
        return ProbeResult(False, None, _reason(exc))
    finally:
        for writer in streams:
            writer.close()  # no wait_closed(): a peer that never closes must not hold the probe


async def _tcp(
    target: Target, spec: CheckSpec, started: float, streams: list[asyncio.StreamWriter], resolver: HostResolver | None
) -> ProbeResult:
    reader, writer = await _connect(target, resolver)
    streams.append(writer)
    rtt_ms = (time.perf_counter() - started) * 1000.0
    if spec.send:
        writer.write(spec.send.encode())
        await writer.drain()
    if not spec.expect:
        return ProbeResult(True, rtt_ms, "ok")
    wanted, seen = spec.expect.encode(), b""
    while len(seen) < BODY_LIMIT:
        chunk = await reader.read(BODY_LIMIT - len(seen))
        if not chunk:
            break
        if not seen:
            rtt_ms = (time.perf_counter() - started) * 1000.0  # connect + first byte, as for HTTP
        seen += chunk
        if wanted in seen:
            return ProbeResult(True, rtt_ms, "ok")
    return ProbeResult(False, rtt_ms, "body mismatch")


async def _connect(target: Target, resolver: HostResolver | None) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to the target's host (each of its addresses in turn, the way the system's
    resolver would be tried when ``resolver`` is None)."""
    if resolver is None:
        return await asyncio.open_connection(target.host, target.port)
    failure: OSError | None = None
    for address in await resolver.addresses(target.host):
        try:
            return await asyncio.open_connection(address, target.port)
        except OSError as exc:
            failure = exc
    assert failure is not None  # addresses() returns at least one or raises
    raise failure


def _reason(exc: BaseException) -> str:
    """Map an exception from a probe onto the reason vocabulary (see the module docstring)."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"tls: {_tls_detail(exc.certificate_error)}"
    if isinstance(exc, aiohttp.ClientSSLError):
        return f"tls: {_tls_detail(getattr(exc, 'os_error', exc))}"
    if isinstance(exc, ssl.SSLError):
        return f"tls: {_tls_detail(exc)}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _os_reason(exc.os_error)
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError)):
        return "connection reset"
    if isinstance(exc, aiohttp.ClientResponseError):
        return "bad response"
    if isinstance(exc, OSError):
        return _os_reason(exc)
    log.debug("probe failed with an unexpected error: %r", exc)
    return "unreachable"


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError) or exc.errno == errno.ECONNREFUSED:
        return "connection refused"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)) or exc.errno in (
        errno.ECONNRESET,
        errno.EPIPE,
    ):
        return "connection reset"
    return "unreachable"


def _tls_detail(exc: BaseException) -> str:
    """A short, stable description: 'self-signed certificate', 'hostname mismatch', 'wrong version number'."""
    message = getattr(exc, "verify_message", None)
    if message:
        message = str(message)
        return "hostname mismatch" if message.lower().startswith("hostname mismatch") else message
    reason = getattr(exc, "reason", None)
    if reason:
        return str(reason).lower().replace("_", " ")
    return str(exc) or type(exc).__name__


def _strip_port(host: str) -> str:
    """The SNI name from a Host value: 'app.example.com:8443' -> 'app.example.com'."""
    if not host.startswith("[") and host.count(":") != 1:
        return host  # a bare name, or a bare IPv6 address
    return split_host_port(host, default_port=0)[0]
