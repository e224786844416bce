"""deploy/: the systemd units an operator copies, checked as systemd and our own parser read them."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from geodns.cli import build_parser

REPO = Path(__file__).resolve().parent.parent
UNITS = sorted((REPO / "deploy" / "systemd").glob("*.service")) + sorted((REPO / "deploy" / "systemd").glob("*.timer"))


def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(path)
    return parser


@pytest.mark.parametrize("name", ["geodns.service", "geodns-check.service"])
def test_exec_lines_are_commands_geodns_accepts(name):
    service = unit(REPO / "deploy" / "systemd" / name)["Service"]
    for key in ("ExecStart", "ExecStartPre"):
        if key in service:
            argv = shlex.split(service[key])
            assert argv[0] == "/opt/geodns/bin/geodns"
            build_parser().parse_args(argv[1:])  # SystemExit (status 2) on a wrong flag


def test_server_unit_binds_port_53_unprivileged_and_hardened():
    service = unit(REPO / "deploy" / "systemd" / "geodns.service")["Service"]
    assert service["User"] == "geodns"
    assert service["AmbientCapabilities"] == service["CapabilityBoundingSet"] == "CAP_NET_BIND_SERVICE"
    assert service["ProtectSystem"] == "strict" and service["NoNewPrivileges"] == "yes"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"  # what re-opens the GeoIP database


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_systemd_accepts_the_unit(path):
    done = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60)
    # The binaries live on the target host, not here; anything else systemd says is a defect.
    complaints = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if line.strip() and "is not executable: No such file or directory" not in line
    ]
    assert complaints == []
