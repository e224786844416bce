"""What a drill acts on: a deployment's DNS servers, clusters, ingress controls and processes.

Two sources.  The local stack's state file (``geodns stack`` writes it) gives
everything, PIDs included, so process faults (Redis down, a server down, a
checker cut off) are possible.  A real deployment gives only what the
operator passes: DNS servers, and per cluster its answer addresses and the
control URL of a ``geodns sim-ingress`` (or anything speaking ``/_sim``).
Processes are always stopped by PID, and one restarted by a drill is written
back into the state file so that the stack still stops it at the end.
"""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from ..stack import procs
from ..stack.topology import STATE_FILE, CheckTiming, ProcInfo, StackState


class DrillError(Exception):
    """The drill cannot run against this deployment (a clear reason, not a failure of geodns)."""


@dataclass
class Deployment:
    dns: list[str]
    clusters: dict[str, dict]  # name -> {addresses: [...], ingress: URL or None, region}
    timing: CheckTiming = field(default_factory=CheckTiming)
    stack_path: Path | None = None  # the state file, when this is a local stack
    store: str | None = None
    spawned: list[ProcInfo] = field(default_factory=list)  # started by the drill itself, stopped by it

    @classmethod
    def from_stack(cls, path: Path) -> Deployment:
        path = Path(path)
        if path.is_dir():
            path = path / STATE_FILE
        if not path.exists():
            raise DrillError(
                f"no stack state file at {path}: start one with `geodns stack`, "
                f"or name the deployment with --dns and --cluster"
            )
        state = StackState.load(path)
        return cls(
            dns=list(state.dns),
            clusters=state.clusters,
            timing=CheckTiming(**state.timing),
            stack_path=path,
            store=state.store,
        )

    # -- the stack's processes ------------------------------------------------------

    def state(self) -> StackState:
        if self.stack_path is None:
            raise DrillError("this scenario stops and starts processes: it needs a local stack (--stack DIR)")
        return StackState.load(self.stack_path)

    def process(self, name: str) -> ProcInfo:
        state = self.state()
        if name not in state.processes:
            raise DrillError(f"the stack has no process {name!r} (it runs: {', '.join(state.processes)})")
        return state.processes[name]

    def has_process(self, name: str) -> bool:
        return self.stack_path is not None and name in self.state().processes

    def stop_process(self, name: str, sig: int = signal.SIGTERM) -> ProcInfo:
        info = self.process(name)
        procs.stop(info, sig)
        return info

    def start_process(self, name: str) -> ProcInfo:
        """Start a stopped stack process again, the same way, and record its new PID."""
        state = self.state()
        old = state.processes[name]
        new = procs.spawn(old.name, old.role, old.argv, Path(old.log), old.address)
        state.processes[name] = new
        state.save(self.stack_path)  # type: ignore[arg-type]  # a local stack: only then are there processes to start
        return new

    def spawn_extra(self, name: str, argv: list[str], log: Path) -> ProcInfo:
        info = procs.spawn(name, "drill", argv, log)
        self.spawned.append(info)
        return info

    def cleanup(self) -> None:
        for info in self.spawned:
            procs.stop(info)
        self.spawned.clear()

    # -- ingresses -------------------------------------------------------------------

    def ingress(self, cluster: str) -> str:
        if cluster not in self.clusters:
            raise DrillError(f"unknown cluster {cluster!r} (known: {', '.join(self.clusters)})")
        url = self.clusters[cluster].get("ingress")
        if not url:
            raise DrillError(f"no ingress control URL for {cluster}: pass --ingress {cluster}=http://HOST:PORT")
        return url.rstrip("/")

    def set_mode(self, cluster: str, mode: str, ms: int = 0) -> dict:
        url = f"{self.ingress(cluster)}/_sim?mode={mode}&ms={ms}"
        request = urllib.request.Request(url, method="PUT")
        with urllib.request.urlopen(request, timeout=3) as r:
            return json.loads(r.read())

    def addresses(self, cluster: str) -> set[str]:
        return set(self.clusters[cluster].get("addresses", ()))


def run_quiet(argv: list[str], timeout: float = 10.0) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
