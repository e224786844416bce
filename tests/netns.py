"""A network namespace of the test's own, for cutting one checker off for real.

The namespace is joined to this one by a veth pair that the test creates.  This
side of the pair carries the ingress addresses (``addresses``, 10.213.N.1 and
10.213.N.3 on a /24 nobody else uses here), so processes on either side reach
them and no packet leaves the machine.  A process run with ``prefix`` reaches
only those addresses (Redis over its unix socket); ``cut`` blackholes addresses
inside the namespace, a partition seen from there and nowhere else.
"""
from __future__ import annotations

import os
import shutil
import subprocess


class NetnsUnavailable(Exception):
    """Why this machine cannot give a test a namespace (not root, no ``ip``, no netns support)."""


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if result.returncode != 0:
        raise NetnsUnavailable(f"ip {' '.join(args)}: {result.stderr.strip() or result.returncode}")


class Netns:
    def __init__(self) -> None:
        if shutil.which("ip") is None:
            raise NetnsUnavailable("the ip command is not installed")
        tag = f"gq{os.getpid() % 1_000_000}"
        self.name, self._host, self._peer = tag, f"{tag}h", f"{tag}n"
        subnet = self._free_subnet()
        self.addresses = [f"{subnet}.1", f"{subnet}.3"]
        self._made = False
        try:
            _ip("netns", "add", self.name)
            self._made = True
            _ip("link", "add", self._host, "type", "veth", "peer", "name", self._peer, "netns", self.name)
            for address in self.addresses:
                _ip("addr", "add", f"{address}/24", "dev", self._host)
            _ip("link", "set", self._host, "up")
            _ip("-n", self.name, "addr", "add", f"{subnet}.2/24", "dev", self._peer)
            _ip("-n", self.name, "link", "set", self._peer, "up")
            _ip("-n", self.name, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise

    @property
    def prefix(self) -> list[str]:
        """What to put before a command to run it inside the namespace."""
        return ["ip", "netns", "exec", self.name]

    def cut(self, *addresses: str) -> None:
        """From inside the namespace, ``addresses`` are unreachable from now on."""
        for address in addresses:
            _ip("-n", self.name, "route", "add", "blackhole", f"{address}/32")

    def close(self) -> None:
        subprocess.run(["ip", "link", "del", self._host], capture_output=True, timeout=10)
        if self._made:
            subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=10)
            self._made = False

    @staticmethod
    def _free_subnet() -> str:
        used = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True,
                              timeout=10).stdout
        for n in range(1, 255):
            if f" 10.213.{n}." not in used:
                return f"10.213.{n}"
        raise NetnsUnavailable("no free 10.213.N.0/24 for the veth pair")
