"""A real ``redis-server`` for tests: own port, own directory, stopped by PID.

Never touches a Redis it did not start (the machine may run a shared one on
6379): it picks a free port, persists nothing, and signals only its own PID.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from geodns.tooling.stack.topology import free_port as _free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    """A free loopback TCP port (the stack's picker), never the shared Redis's 6379."""
    port = _free_port()
    assert port != 6379
    return port


class RedisServer:
    def __init__(self, tmp_path: Path, port: int | None = None):
        self.dir = Path(tmp_path) / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        # Also a unix socket (short path: sun_path holds 108 bytes), so a process in a
        # network namespace of its own can still reach this Redis.
        self.socket = Path(tempfile.mkdtemp(prefix="gdr")) / "redis.sock"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def unix_url(self) -> str:
        return f"unix://{self.socket}?db=0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        assert self.proc is None, "already running"
        with open(self.dir / "redis.log", "ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [
                    REDIS_SERVER,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.dir),
                    "--daemonize",
                    "no",
                    "--unixsocket",
                    str(self.socket),
                    "--unixsocketperm",
                    "700",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self.proc.poll() is not None:
                self.proc = None
                raise RuntimeError(f"redis-server exited; see {self.dir / 'redis.log'}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server on port {self.port} did not answer PING")
            time.sleep(0.02)
        return self

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM, wait, SIGKILL if it will not go."""
        self._signal(signal.SIGTERM, grace=5.0)

    def kill(self) -> None:
        """SIGKILL: an outage, as abrupt as a crashed host."""
        self._signal(signal.SIGKILL, grace=5.0)

    def restart(self) -> RedisServer:
        """Start again on the same port, empty (nothing is persisted)."""
        self.stop()
        return self.start()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _signal(self, sig: int, grace: float) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A running redis-server on a free port, always stopped afterwards."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
