"""``workers: auto`` counts the CPUs a container may use: its cgroup CPU quota as well as affinity.

The cgroup files are real files in a temporary directory laid out like
/sys/fs/cgroup, read through the same code that reads the real ones.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from geodns.config import model
from geodns.config.cpus import CGROUP_ROOT_ENV, cgroup_cpu_limit, usable_cpus
from geodns.config.load import load_config
from tests.dnsserver import write

AFFINITY = len(os.sched_getaffinity(0))


def v2(root: Path, cpu_max: str, path: str = "") -> Path:
    return write(root / path / "cpu.max", cpu_max + "\n")


def test_cgroup_v2_quota_is_rounded_up_and_max_means_no_limit(tmp_path):
    v2(tmp_path, "100000 100000")
    assert cgroup_cpu_limit(tmp_path, "0::/\n") == 1
    v2(tmp_path, "150000 100000")
    assert cgroup_cpu_limit(tmp_path, "0::/\n") == 2
    v2(tmp_path, "20000 100000")  # a fifth of a CPU still runs one worker
    assert cgroup_cpu_limit(tmp_path, "0::/\n") == 1
    v2(tmp_path, "max 100000")
    assert cgroup_cpu_limit(tmp_path, "0::/\n") is None


def test_the_smallest_quota_along_the_cgroup_path_counts(tmp_path):
    v2(tmp_path, "400000 100000", "kubepods")
    v2(tmp_path, "max 100000", "kubepods/pod1")
    v2(tmp_path, "300000 100000", "kubepods/pod1/ctr")
    proc = "0::/kubepods/pod1/ctr\n"
    assert cgroup_cpu_limit(tmp_path, proc) == 3
    v2(tmp_path, "200000 100000", "kubepods")
    assert cgroup_cpu_limit(tmp_path, proc) == 2
    # A container that does not see its own path (no cgroup namespace) still reads the root it sees.
    assert cgroup_cpu_limit(tmp_path / "kubepods", "0::/somewhere/else\n") == 2


def test_cgroup_v1_cfs_quota(tmp_path):
    proc = "2:cpuacct:/\n1:cpu:/docker/abc\n0::/\n"
    write(tmp_path / "cpu" / "docker" / "abc" / "cpu.cfs_quota_us", "250000\n")
    write(tmp_path / "cpu" / "docker" / "abc" / "cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_limit(tmp_path, proc) == 3
    write(tmp_path / "cpu" / "docker" / "abc" / "cpu.cfs_quota_us", "-1\n")
    assert cgroup_cpu_limit(tmp_path, proc) is None
    assert cgroup_cpu_limit(tmp_path / "nothing-mounted-here", proc) is None


@pytest.mark.skipif(AFFINITY < 2, reason="needs more than one usable CPU to tell a quota from affinity")
def test_usable_cpus_is_the_smaller_of_affinity_and_quota(tmp_path):
    v2(tmp_path, "100000 100000")
    assert usable_cpus(256, tmp_path) == 1
    v2(tmp_path, f"{(AFFINITY + 8) * 100000} 100000")  # a quota above the affinity leaves the affinity
    assert usable_cpus(256, tmp_path) == AFFINITY
    assert usable_cpus(1, tmp_path) == 1


@pytest.mark.skipif(AFFINITY < 2, reason="needs more than one usable CPU to tell a quota from affinity")
def test_workers_auto_in_a_config_honours_the_quota(tmp_path, monkeypatch):
    """A container limited to one CPU: `workers: auto` loads as 1, however many CPUs the node has."""
    root = tmp_path / "cgroup"
    v2(root, "100000 100000")
    monkeypatch.setenv(CGROUP_ROOT_ENV, str(root))
    config = write(tmp_path / "geodns.yaml", "server:\n  workers: auto\n")
    model.usable_cpus.cache_clear()  # the process reads the cgroup once; this test is a new process
    try:
        assert load_config(config).server.workers == 1
        v2(root, "max 100000")
        assert load_config(config).server.workers == 1  # read once: a reload does not read the cgroup again
        model.usable_cpus.cache_clear()  # a process started now
        assert load_config(config).server.workers == AFFINITY
    finally:
        model.usable_cpus.cache_clear()
