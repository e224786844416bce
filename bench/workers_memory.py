"""Start-up time and memory of ``server.workers: N`` against one process, on large data; and a reload under load.

    .venv/bin/python bench/workers_memory.py                       # 500k static records, 5k GSLB records
    .venv/bin/python bench/workers_memory.py --static 50000 --gslb 500 --workers 2

For each run (``--workers 1``, then ``--workers N``) it starts ``geodns serve``,
times it from launch to the first answered query, and sums the proportional
set size (``Pss`` of /proc/PID/smaps_rollup: a page shared by k processes
counts 1/k to each) over the supervisor and all its workers: the memory the
server really costs.  USS (private pages) and RSS are shown too.  Then, with
a client querying continuously, it sends SIGHUP and counts unanswered queries
until the reload is done and the old workers have left.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dns.exception
import dns.message
import dns.query

from bench import REPO, ZONE, free_port, geodns_config


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return out


def memory(pid: int) -> dict[str, float]:
    """MB of Pss, USS (private clean + dirty) and RSS, summed over the process tree."""
    total = {"pss": 0, "uss": 0, "rss": 0}
    for p in tree(pid):
        try:
            text = Path(f"/proc/{p}/smaps_rollup").read_text()
        except OSError:
            continue
        fields = {line.split(":")[0]: int(line.split()[1]) for line in text.splitlines()[1:] if line.strip()}
        total["pss"] += fields.get("Pss", 0)
        total["uss"] += fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
        total["rss"] += fields.get("Rss", 0)
    return {k: v / 1024 for k, v in total.items()}


class Server:
    def __init__(self, config: Path, port: int, workers: int):
        self.port = port
        self.lines: list[str] = []
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "geodns", "serve", "--config", str(config), "--workers", str(workers)],
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_for(self, needle: str, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            if any(needle in line for line in self.lines[seen:]):
                return
            if self.proc.poll() is not None:
                raise SystemExit("geodns serve exited:\n" + "".join(self.lines[-20:]))
            time.sleep(0.05)
        raise SystemExit(f"{needle!r} not logged in {timeout}s")

    def ask(self, name: str, timeout: float = 2.0):
        return dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=self.port, timeout=timeout)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run(config: Path, port: int, workers: int, static: int) -> dict:
    server = Server(config, port, workers)
    try:
        server.wait_for("event=started")
        while True:
            try:
                server.ask(f"h{static - 1}.{ZONE}.", 1.0)
                break
            except (dns.exception.Timeout, OSError):
                time.sleep(0.05)
        start_s = time.monotonic() - server.t0
        time.sleep(1.0)  # counters sent, everything settled
        before = memory(server.proc.pid)
        result = {"workers": workers, "start_s": start_s, **before}
        # A reload under load: every query must be answered.
        answered, lost, stop = [0], [], threading.Event()

        def client():
            i = 0
            while not stop.is_set():
                try:
                    server.ask(f"h{i % static}.{ZONE}.")
                    answered[0] += 1
                except Exception as exc:  # noqa: BLE001 - any failure is a lost query, listed with its repr
                    lost.append(repr(exc))
                i += 1

        thread = threading.Thread(target=client)
        thread.start()
        mark = len(server.lines)
        t = time.monotonic()
        server.proc.send_signal(signal.SIGHUP)
        while not any("event=reloaded" in line or "event=reload-failed" in line for line in server.lines[mark:]):
            time.sleep(0.05)
        result["reload_s"] = time.monotonic() - t
        time.sleep(3.0)  # the old workers drain and leave
        stop.set()
        thread.join()
        result["reload_answered"], result["reload_lost"] = answered[0], len(lost)
        result["after_reload_pss"] = memory(server.proc.pid)["pss"]
        result["processes"] = len(tree(server.proc.pid))
        result["orphaned"] = sum("worker-orphaned" in line or "worker-died" in line for line in server.lines)
        return result
    finally:
        server.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--static", type=int, default=500_000, help="static A records in the zone")
    ap.add_argument("--gslb", type=int, default=5_000, help="GSLB records")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="geodns-workers-mem-") as tmp:
        port = free_port()
        config = geodns_config(Path(tmp), port, records=args.gslb, static_records=args.static)
        results = [run(config, port, n, args.static) for n in (1, args.workers)]
    print(f"{args.static} static records, {args.gslb} GSLB records")
    print(
        f"{'workers':>7} {'start s':>8} {'PSS MB':>8} {'USS MB':>8} {'RSS MB':>8} {'procs':>5} "
        f"{'reload s':>8} {'answered':>8} {'lost':>5} {'PSS after':>9} {'orphaned':>8}"
    )
    for r in results:
        print(
            f"{r['workers']:>7} {r['start_s']:>8.1f} {r['pss']:>8.0f} {r['uss']:>8.0f} {r['rss']:>8.0f} "
            f"{r['processes']:>5} {r['reload_s']:>8.1f} {r['reload_answered']:>8} {r['reload_lost']:>5} "
            f"{r['after_reload_pss']:>9.0f} {r['orphaned']:>8}"
        )
    one, many = results
    print(
        f"start-up {many['start_s'] / one['start_s']:.2f}x one process's; memory (PSS) {many['pss'] / one['pss']:.2f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
