"""Starting and stopping the stack's processes, always by PID.

Children run in sessions of their own so a Ctrl-C in the terminal reaches only
``geodns stack``, which then stops them in order.  Before signalling a PID
read from the state file we compare ``/proc/PID/cmdline`` with the argv we
started, so a PID reused by something else since is never touched.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from .topology import ProcInfo


def geodns_argv(*args: str) -> list[str]:
    """The same interpreter and package as this process: works from a venv or a checkout."""
    return [sys.executable, "-m", "geodns", *args]


def spawn(name: str, role: str, argv: list[str], log: Path, address: str = "") -> ProcInfo:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as handle:
        proc = subprocess.Popen(
            argv, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    _children[proc.pid] = proc
    return ProcInfo(name=name, role=role, pid=proc.pid, argv=list(argv), log=str(log), address=address)


# Popen objects of the processes this process started, so they are reaped (no zombies).
_children: dict[int, subprocess.Popen] = {}


def alive(info: ProcInfo) -> bool:
    """Running and still the process we started (not a reused PID, not a zombie)."""
    proc = _children.get(info.pid)
    if proc is not None:
        return proc.poll() is None
    try:
        cmdline = Path(f"/proc/{info.pid}/cmdline").read_bytes().split(b"\0")
        stat = Path(f"/proc/{info.pid}/stat").read_text()
        exe = os.path.realpath(f"/proc/{info.pid}/exe")
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":
        return False
    if [c.decode(errors="replace") for c in cmdline if c] == info.argv:
        return True
    # redis-server rewrites its command line (its process title); its executable still tells.
    return exe == os.path.realpath(shutil.which(info.argv[0]) or info.argv[0])


def stop(info: ProcInfo, sig: int = signal.SIGTERM, grace: float = 8.0) -> None:
    """Signal one process, wait up to ``grace`` seconds, then SIGKILL it."""
    if not alive(info):
        _reap(info.pid)
        return
    try:
        os.kill(info.pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not alive(info):
            _reap(info.pid)
            return
        time.sleep(0.05)
    try:
        os.kill(info.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 5
    while alive(info) and time.monotonic() < deadline:
        time.sleep(0.05)
    _reap(info.pid)


def _reap(pid: int) -> None:
    proc = _children.pop(pid, None)
    if proc is not None:
        try:
            proc.wait(1)
        except subprocess.TimeoutExpired:
            pass


def exited(info: ProcInfo) -> int | None:
    """The exit code of a child of ours that has exited, else None."""
    proc = _children.get(info.pid)
    return None if proc is None else proc.poll()


def tail(log: str | Path, lines: int = 15) -> str:
    try:
        return "\n".join(Path(log).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def redis_ping(port: int, host: str = "127.0.0.1", password: str | None = None) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as s:
            if password:
                s.sendall(f"AUTH {password}\r\n".encode())
                s.recv(64)
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def wait_until(check, timeout: float, what: str, info: ProcInfo | None = None) -> None:
    """Poll ``check()`` until true; fail early (with the log's tail) if the process exits."""
    deadline = time.monotonic() + timeout
    while not check():
        if info is not None and exited(info) is not None:
            raise RuntimeError(f"{info.name} exited ({exited(info)}) before {what}; its log:\n{tail(info.log)}")
        if time.monotonic() > deadline:
            log_text = f"; its log:\n{tail(info.log)}" if info is not None else ""
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}{log_text}")
        time.sleep(0.05)
