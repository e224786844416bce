"""Child processes the end-to-end tests run: simulated ingresses and checkers.

Each is started with the real ``geodns`` command and stopped by its PID.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.redis_server import free_port

REPO = Path(__file__).resolve().parent.parent
# Straight to the sim-ingress, whatever *_proxy the environment names: a proxy is another address.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Child:
    def __init__(self, args: list[str], log: Path, prefix: list[str] | None = None):
        self.log = log
        with open(log, "ab") as handle:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [*(prefix or []), sys.executable, "-m", "geodns", *args],
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPO,
            )

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace")


class SimIngress(Child):
    """`geodns sim-ingress` on a free port, switched with set_mode(); on loopback unless ``host`` and
    ``prefix`` say otherwise (tests/netns.py: an address inside a test's own network namespace, and
    the prefix that runs the process there)."""

    def __init__(self, name: str, log_dir: Path, host: str = "127.0.0.1", prefix: list[str] | None = None):
        self.port = free_port()
        self.name = name
        self.host = host
        super().__init__(
            ["sim-ingress", "--listen", f"{host}:{self.port}", "--name", name], log_dir / f"sim-{name}.log", prefix
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                self.state()
                return
            except OSError as exc:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"sim-ingress {name} did not start:\n{self.output()}") from exc
                time.sleep(0.05)

    @property
    def probe(self) -> str:
        return f"{self.host}:{self.port}"

    def state(self) -> dict:
        with _DIRECT.open(f"http://{self.host}:{self.port}/_sim", timeout=2) as r:
            return json.loads(r.read())

    def set_mode(self, mode: str, ms: int = 0) -> dict:
        req = urllib.request.Request(f"http://{self.host}:{self.port}/_sim?mode={mode}&ms={ms}", method="PUT")
        with _DIRECT.open(req, timeout=2) as r:
            return json.loads(r.read())


@contextmanager
def sim_ingresses(names: Iterable[str], log_dir: Path) -> Iterator[dict[str, SimIngress]]:
    """One simulated ingress per name, all stopped on the way out (those started, should one fail)."""
    started: dict[str, SimIngress] = {}
    try:
        for name in names:
            started[name] = SimIngress(name, log_dir)
        yield started
    finally:
        for sim in started.values():
            sim.stop()
