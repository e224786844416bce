"""What the kernel says about a process: CPU time, resident and proportional memory.

The supervisor reads its workers' numbers from ``/proc`` when ``/metrics`` is
scraped, so nothing runs in a worker for it and a worker that hangs is still
measured.  PSS (the proportional set size) is the honest memory figure for
workers forked after load: their shared pages are counted once across all of
them, where RSS counts them in every worker.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class ProcStat:
    cpu_seconds: float  # user + system
    rss_bytes: int
    pss_bytes: int | None  # None where smaps_rollup is not readable (old kernels, other users)
    start_time: float  # seconds after boot


def read(pid: int, proc: str = "/proc") -> ProcStat | None:
    """The process's numbers, or None if it is gone."""
    try:
        with open(f"{proc}/{pid}/stat") as f:
            stat = f.read()
        with open(f"{proc}/{pid}/statm") as f:
            statm = f.read().split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name may hold spaces and parentheses: fields start after the last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / _TICKS
    return ProcStat(cpu, int(statm[1]) * _PAGE, _pss(pid, proc), int(fields[19]) / _TICKS)


def _pss(pid: int, proc: str) -> int | None:
    try:
        with open(f"{proc}/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
