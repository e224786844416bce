"""Probes against real servers on loopback: HTTP ingresses that misbehave on demand, HTTPS, TCP.

``Ingress`` (a cluster ingress played by an aiohttp server) and ``tls_files``
are imported by the other health tests.
"""

from __future__ import annotations

import asyncio
import ipaddress
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from geodns.config.model import CheckSpec
from geodns.health.probe import ProbeResult, new_session, probe_http, probe_tcp
from geodns.health.target import Target, resolve_target
from geodns.state.model import Endpoint
from tests.redis_server import free_port


class Ingress:
    """A cluster ingress on 127.0.0.1 whose behaviour a test switches at runtime.

    Modes: ok (200 "status: healthy"), 503, wrong-body (200 "maintenance"),
    hang (answers nothing until stopped), reset (drops the connection),
    flap (alternates ok and 503 per request), and ``await stop()`` closes the
    port so probes are refused; ``await start()`` opens the same port again.
    """

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.mode = "ok"
        self.port = free_port()
        self.requests = 0
        self.hosts: list[str] = []
        self._ssl = ssl_context
        self._flap = False
        self._release = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5, access_log=None)
        self._site: web.TCPSite | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self._ssl else 'http'}://127.0.0.1:{self.port}/healthz"

    async def start(self) -> Ingress:
        if self._runner.server is None:
            await self._runner.setup()
        self._release = asyncio.Event()
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=self._ssl)
        await self._site.start()
        return self

    async def stop(self) -> None:
        """Close the listening port (probes get 'refused'); the app stays ready to start again."""
        self._release.set()
        if self._site is not None:
            await self._site.stop()
            self._site = None

    async def close(self) -> None:
        await self.stop()
        await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        self.hosts.append(request.headers.get("Host", ""))
        mode = self.mode
        if mode == "flap":
            self._flap = not self._flap
            mode = "ok" if self._flap else "503"
        if mode == "hang":
            await self._release.wait()
        if mode == "reset":
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=500)
        if mode == "503":
            return web.Response(status=503, text="overloaded")
        if mode == "wrong-body":
            return web.Response(text="maintenance")
        return web.Response(text="status: healthy")


@pytest.fixture
async def ingress() -> AsyncIterator[Ingress]:
    server = await Ingress().start()
    yield server
    await server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    client = new_session()
    yield client
    await client.close()


def target_of(url: str) -> Target:
    """Where an endpoint whose answer address is 192.0.2.10 is probed when its probe is ``url``."""
    return resolve_target(Endpoint(ipaddress.ip_address("192.0.2.10"), probe=url), CheckSpec())


FAST = CheckSpec(timeout=0.3, interval=1.0)


# -- HTTP -----------------------------------------------------------------------------------
async def test_http_modes(ingress: Ingress, session: aiohttp.ClientSession) -> None:
    target = target_of(ingress.url)
    spec = CheckSpec(timeout=0.3, interval=1.0, body="healthy")
    expected = {
        "ok": (True, "ok", "ok"),
        "503": (False, "HTTP 503", "http_status"),
        "wrong-body": (False, "body mismatch", "body_mismatch"),
        "hang": (False, "timeout after 0.3s", "timeout"),
        "reset": (False, "connection reset", "error"),
    }
    for mode, (ok, reason, outcome) in expected.items():
        ingress.mode = mode
        result = await probe_http(target, spec, session)
        assert (result.ok, result.reason, result.outcome) == (ok, reason, outcome), mode
        if mode in ("ok", "503", "wrong-body"):
            assert result.rtt_ms is not None and 0 < result.rtt_ms < 300
        if mode == "hang":
            assert result.rtt_ms is None
    await ingress.stop()
    refused = await probe_http(target, spec, session)
    assert (refused, refused.outcome) == (ProbeResult(False, None, "connection refused"), "refused")


async def test_http_expectations_and_host_header(ingress: Ingress, session: aiohttp.ClientSession) -> None:
    target = target_of(ingress.url)
    ingress.mode = "503"
    assert (await probe_http(target, CheckSpec(timeout=0.5, expect_status=[200, "500-503"]), session)).ok
    assert not (await probe_http(target, CheckSpec(timeout=0.5, expect_status="2xx"), session)).ok
    ingress.mode = "ok"
    head = await probe_http(target, CheckSpec(timeout=0.5, method="HEAD", host="app.example.com"), session)
    assert head.ok and ingress.hosts[-1] == "app.example.com"
    assert (await probe_http(target, CheckSpec(timeout=0.5), session)).ok
    assert ingress.hosts[-1] == f"127.0.0.1:{ingress.port}"


async def test_each_probe_dials_afresh(ingress: Ingress, session: aiohttp.ClientSession) -> None:
    """No pooled keep-alive connection may outlive the listener and hide that it is gone."""
    target = target_of(ingress.url)
    assert (await probe_http(target, FAST, session)).ok
    await ingress.stop()
    assert (await probe_http(target, FAST, session)).reason == "connection refused"
    await ingress.start()
    assert (await probe_http(target, FAST, session)).ok


# -- HTTPS ----------------------------------------------------------------------------------
@dataclass
class TLSFiles:
    ca: Path
    cert: Path
    key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    """A test CA and a certificate for app.example.com it signed (the cryptography package is not installed)."""
    if shutil.which("openssl") is None:
        pytest.skip("neither the cryptography package nor the openssl command is available")
    d = tmp_path_factory.mktemp("tls")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=geodns test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        cwd=d,
    )
    _openssl("req", *ec, "-keyout", "app.key", "-out", "app.csr", "-subj", "/CN=app.example.com", cwd=d)
    (d / "ext.cnf").write_text(
        "subjectAltName=DNS:app.example.com\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        "app.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "app.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        cwd=d,
    )
    return TLSFiles(ca=d / "ca.pem", cert=d / "app.pem", key=d / "app.key")


def server_context(files: TLSFiles, seen_sni: list[str | None]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(files.cert, files.key)
    context.sni_callback = lambda _sock, name, _ctx: seen_sni.append(name)  # type: ignore[assignment,misc]
    return context


async def test_https_verification_sni_and_host(tls_files: TLSFiles, session: aiohttp.ClientSession) -> None:
    seen_sni: list[str | None] = []
    ingress = await Ingress(server_context(tls_files, seen_sni)).start()
    try:
        target = target_of(ingress.url)  # dials 127.0.0.1, speaks for app.example.com
        base = dict(type="https", timeout=1.0, host="app.example.com", body="healthy")

        untrusted = await probe_http(target, CheckSpec(**base), session)
        assert not untrusted.ok and untrusted.reason.startswith("tls: "), untrusted
        assert "certificate" in untrusted.reason or "issuer" in untrusted.reason

        trusted = await probe_http(target, CheckSpec(**base, ca_file=str(tls_files.ca)), session)
        assert trusted == ProbeResult(True, trusted.rtt_ms, "ok")
        assert seen_sni[-1] == "app.example.com" and ingress.hosts[-1] == "app.example.com"

        wrong_name = await probe_http(
            target, CheckSpec(**{**base, "host": "other.example.com"}, ca_file=str(tls_files.ca)), session
        )
        assert wrong_name.reason == "tls: hostname mismatch"

        unverified = await probe_http(target, CheckSpec(**base, tls_verify=False), session)
        assert unverified.ok and seen_sni[-1] == "app.example.com"

        plain = await probe_http(target_of(f"http://127.0.0.1:{ingress.port}/healthz"), CheckSpec(timeout=1.0), session)
        assert not plain.ok and plain.reason in ("bad response", "connection reset"), plain
    finally:
        await ingress.close()


# -- TCP ------------------------------------------------------------------------------------
class TCPService:
    """Answers 'PING' with 'PONG'; in mute mode accepts and says nothing."""

    def __init__(self) -> None:
        self.mute = False
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        line = await reader.readline()
        if not self.mute and line.strip() == b"PING":
            writer.write(b"+PONG\r\n")
            await writer.drain()
        if not self.mute:
            writer.close()

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()
        await self.server.wait_closed()


async def test_tcp_connect_send_expect() -> None:
    service = TCPService()
    port = await service.start()
    target = Target("tcp", "127.0.0.1", port)
    try:
        connect = await probe_tcp(target, CheckSpec(type="tcp", timeout=0.5))
        assert connect.ok and connect.rtt_ms is not None
        assert (await probe_tcp(target, CheckSpec(type="tcp", timeout=0.5, send="PING\r\n", expect="PONG"))).ok
        wrong = await probe_tcp(target, CheckSpec(type="tcp", timeout=0.5, send="PING\r\n", expect="+OK"))
        assert wrong.reason == "body mismatch"
        service.mute = True
        mute = await probe_tcp(target, CheckSpec(type="tcp", timeout=0.3, send="PING\r\n", expect="PONG"))
        assert mute == ProbeResult(False, None, "timeout after 0.3s")
    finally:
        await service.close()
    refused = await probe_tcp(target, CheckSpec(type="tcp", timeout=0.5))
    assert refused == ProbeResult(False, None, "connection refused")


async def test_a_host_name_idna_rejects_is_unreachable_not_an_exception(session: aiohttp.ClientSession) -> None:
    """A probe never raises: 'a..b' or a 64+ character label makes the IDNA codec fail inside the dial."""
    for host in ("a..b", "x" * 64 + ".example"):
        http = await probe_http(Target("http", host, 80), FAST, session)
        assert http == ProbeResult(False, None, "unreachable"), host
        tcp = await probe_tcp(Target("tcp", host, 80), CheckSpec(type="tcp", timeout=0.3))
        assert tcp == ProbeResult(False, None, "unreachable"), host
