"""How many CPUs this process may really use: affinity and the cgroup CPU quota.

``os.cpu_count()`` is the node's count.  In a container limited to one CPU on
a 64-core node that would start 64 workers, each getting a sliver of the
quota.  What the process may use is the smaller of its CPU affinity (taskset,
cpusets) and the CFS quota of every cgroup it sits in, rounded up
(``ceil(quota / period)``, at least 1).  cgroup v2 writes the quota as
``cpu.max`` ("max 100000" or "150000 100000"); v1 as ``cpu.cfs_quota_us``
(-1: none) and ``cpu.cfs_period_us``.  A limit on any ancestor applies too,
so the smallest along the path counts.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_ROOT_ENV = "GEODNS_CGROUP_ROOT"  # where cgroups are mounted, if not at CGROUP_ROOT
_V1_CPU_DIRS = ("cpu", "cpu,cpuacct", "cpuacct,cpu")


def cgroup_root() -> Path:
    return Path(os.environ.get(CGROUP_ROOT_ENV) or CGROUP_ROOT)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def quota_cpus(quota: str | None, period: str | None) -> int | None:
    """ceil(quota / period), at least 1; None when there is no limit or the values make no sense."""
    if quota is None or period is None:
        return None  # a missing file: no limit from here
    try:
        q, p = int(quota), int(period)
    except (TypeError, ValueError):
        return None  # "max", a missing file, garbage: no limit from here
    if q <= 0 or p <= 0:
        return None  # v1 writes -1 for "no limit"
    return max(1, math.ceil(q / p))


def _along(mount: Path, path: str) -> list[Path]:
    """``mount/path`` and each ancestor up to ``mount`` that exists (a container may not see its own path)."""
    dirs, current = [], mount / path.strip("/") if path.strip("/") else mount
    while True:
        if current.is_dir():
            dirs.append(current)
        if current == mount or mount not in current.parents:
            return dirs
        current = current.parent


def _memberships(proc_cgroup: str) -> tuple[str | None, str | None]:
    """This process's cgroup v2 path and v1 ``cpu`` path, from /proc/self/cgroup's text."""
    v2 = v1 = None
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            v2 = path
        elif "cpu" in controllers.split(","):
            v1 = path
    return v2, v1


def cgroup_cpu_limit(root: Path | None = None, proc_cgroup: str | None = None) -> int | None:
    """The smallest CPU quota (in whole CPUs, rounded up) of the cgroups this process is in; None: no quota."""
    root = cgroup_root() if root is None else root
    if proc_cgroup is None:
        proc_cgroup = _read(Path("/proc/self/cgroup")) or ""
    v2, v1 = _memberships(proc_cgroup)
    limits = []
    for directory in _along(root, v2 or "/"):
        text = _read(directory / "cpu.max")
        if text:
            fields = text.split()
            limits.append(quota_cpus(fields[0], fields[1] if len(fields) > 1 else "100000"))
    for name in _V1_CPU_DIRS:
        if (root / name).is_dir():
            for directory in _along(root / name, v1 or "/"):
                limits.append(quota_cpus(_read(directory / "cpu.cfs_quota_us"), _read(directory / "cpu.cfs_period_us")))
            break
    found = [n for n in limits if n is not None]
    return min(found) if found else None


def usable_cpus(maximum: int, root: Path | None = None) -> int:
    """CPUs this process may run on: affinity, bounded by the cgroup quota; 1..``maximum``."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    limit = cgroup_cpu_limit(root)
    if limit is not None:
        count = min(count, limit)
    return max(1, min(count, maximum))
