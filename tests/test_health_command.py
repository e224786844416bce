"""`geodns check` as a process: real Redis, real ingress, real signals; and its start-up refusals."""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import sys
from pathlib import Path

import pytest

from geodns.cli.check import add_parser
from geodns.config.load import load_config
from geodns.state.redis import RedisStore
from tests.conftest import REPO
from tests.processes import Child
from tests.redis_server import RedisServer, free_port
from tests.test_checker_http import get, poll
from tests.test_health_checker import until
from tests.test_health_probe import Ingress

CONFIG = """\
regions:
  eu-west: {{lat: 53.3, lon: -6.3, continent: EU}}
  us-east: {{lat: 39.0, lon: -77.5, continent: NA}}
clusters:
  eu-west-1:
    region: eu-west
    endpoints:
{endpoints}
    check: {{type: http, interval: 200ms, timeout: 150ms, rise: 1, fall: 2, body: healthy}}
"""


def endpoint_lines(*pairs: tuple[str, Ingress]) -> str:
    return "\n".join(f'      - {{address: {address}, probe: "{ingress.url}"}}' for address, ingress in pairs)


class Process:
    """The checker process; its stderr is collected line by line as it runs."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.lines.append(line.decode())

    @property
    def log(self) -> str:
        return "".join(self.lines)

    async def logged(self, needle: str, timeout: float = 5.0) -> None:
        async def seen() -> bool:
            return needle in self.log

        try:
            await until(seen, timeout)
        except AssertionError:
            raise AssertionError(f"{needle!r} not logged:\n{self.log}") from None

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()
                raise
        await self._reader
        return self.proc.returncode  # type: ignore[return-value]


async def test_geodns_check_process(redis_server: RedisServer, tmp_path: Path) -> None:
    url = redis_server.url + "?prefix=cmd:"
    store = RedisStore(url)
    a, b = await Ingress().start(), await Ingress().start()
    config = tmp_path / "geodns.yaml"
    config.write_text(CONFIG.format(endpoints=endpoint_lines(("192.0.2.1", a))))
    proc = Process(
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "geodns",
            "check",
            "--config",
            str(config),
            "--store",
            url,
            "--checker-id",
            "chk-proc",
            "--region",
            "us-east",
            cwd=REPO,
            stderr=asyncio.subprocess.PIPE,
        )
    )
    try:

        async def verdict(endpoint: str, up: bool) -> bool:
            snapshot = await store.load()
            return any(
                (o.checker, o.vantage, o.up) == ("chk-proc", "us-east", up)
                for o in snapshot.observations.get(("eu-west-1", endpoint), ())
            )

        # The store holds no table: the checker probes the config's clusters and does not seed it.
        await until(lambda: verdict("192.0.2.1", True), timeout=10.0)
        assert (await store.load()).version == 0

        # Once the table exists (as `geodns serve` seeds it), the store's table is what gets probed.
        config.write_text(CONFIG.format(endpoints=endpoint_lines(("192.0.2.1", a), ("192.0.2.2", b))))
        await store.seed(load_config(config).clusters.values())
        await until(lambda: verdict("192.0.2.2", True), timeout=5.0)

        # A broken config on SIGHUP is logged and the running one kept.
        config.write_text("clusters: [oops\n")
        proc.proc.send_signal(signal.SIGHUP)
        await proc.logged("event=reload-failed keeping=running-config")
        a.mode = "503"
        await until(lambda: verdict("192.0.2.1", False), timeout=5.0)
        await proc.logged(
            "event=health-change endpoint=192.0.2.1 cluster=eu-west-1 old=up new=down "
            'reason="HTTP 503" checker=chk-proc'
        )
    finally:
        rc = await proc.stop()
        await a.close()
        await b.close()
        await store.close()
    assert rc == 0, proc.log
    assert "event=checker-stopped checker=chk-proc" in proc.log


def check(argv: list[str]) -> int:
    """``geodns check ARGV`` in this process, as the CLI dispatches it (no logging set-up)."""
    parser = argparse.ArgumentParser(prog="geodns")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["check", *argv])
    return args.func(args)


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "geodns.yaml"
    path.write_text(text)
    return path


def test_a_bad_config_exits_2_with_file_line_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path, CONFIG.format(endpoints='      - "192.0.2.1"').replace("rise: 1", "rise: 0"))
    assert check(["--config", str(path), "--store", "redis://127.0.0.1:1/0", "--region", "eu-west"]) == 2
    assert f"{path}:9: clusters.eu-west-1.check.rise: must be between 1 and 100, not 0" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--store", "memory://", "--region", "eu-west"], "--store: a checker process needs a shared store"),
        (["--store", "redis://127.0.0.1:1/0", "--region", "mars"], "--region: unknown region 'mars'"),
        (["--store", "mongodb://x", "--region", "eu-west"], "unsupported URL scheme 'mongodb'"),
    ],
)
def test_start_up_refusals_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    path = write_config(tmp_path, CONFIG.format(endpoints='      - "192.0.2.1"'))
    assert check(["--config", str(path), *args]) == 2
    assert message in capsys.readouterr().err


def test_http_listen_problems_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A bad checker.http_listen is a config problem with file and line; a port in use refuses to start."""
    base = CONFIG.format(endpoints='      - "192.0.2.1"')
    path = write_config(tmp_path, base + "checker: {http_listen: 'localhost:80'}\n")
    assert check(["--config", str(path), "--store", "redis://127.0.0.1:1/0", "--region", "eu-west"]) == 2
    assert (
        f"{path}:10: checker.http_listen: 'localhost:80': 'localhost' is not an IP address" in capsys.readouterr().err
    )
    path = write_config(tmp_path, base)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert (
            check(
                [
                    "--config",
                    str(path),
                    "--store",
                    "redis://127.0.0.1:1/0",
                    "--region",
                    "eu-west",
                    "--http-listen",
                    f"127.0.0.1:{port}",
                ]
            )
            == 2
        )
    assert f"geodns check: --http-listen: cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_the_config_key_gives_the_checker_its_http_port(tmp_path: Path) -> None:
    port = free_port()
    path = write_config(
        tmp_path, CONFIG.format(endpoints='      - "192.0.2.1"') + f"checker: {{http_listen: '127.0.0.1:{port}'}}\n"
    )
    child = Child(
        ["check", "--config", str(path), "--store", f"redis://127.0.0.1:{free_port()}/0", "--region", "eu-west"],
        tmp_path / "check.log",
    )
    try:
        assert poll(lambda: get(port, "/healthz"), lambda r: r[0] == 200, child) == (200, "ok\n")
    finally:
        assert child.stop() == 0, child.output()
