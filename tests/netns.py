"""Network namespaces of the test's own, for cutting one checker off for real.

The rule this keeps: a test sends packets only to loopback (127.0.0.0/8, ::1) or to an
address inside a namespace the test created itself, never to any other address, private
or public.  Nothing is sent to a non-loopback address of the root namespace; the one
exception is the reply to a connection the root namespace opened, which goes back to the
pair's root-side end it came from (10.213.N.2).  Neither namespace has a route anywhere else.

    root namespace            ingress namespace (gqNi)          checker namespace (gqNc)
    test, checker a  --veth-- 10.213.N.1, .3 (sim-ingresses)
    10.213.N.2                10.214.N.1            --veth--    10.214.N.2, checker b
                                                                10.213.N.1/32, .3/32 via 10.214.N.1

* The ingress addresses (``addresses``) sit inside the ingress namespace, on its end of
  the pair to the root namespace; the sim-ingresses run there (``ingress_prefix``).
  Root-namespace processes (the test, ordinary checkers) reach them through that pair;
  the ingress namespace only answers them.  Its sole route back to the root namespace is
  the pair's /24, and it has no default route.
* The cut-off checker runs in the checker namespace (``prefix``), joined to the ingress
  namespace by its own pair on 10.214.N.0/24.  Its only routes are that /24 and one /32 per
  ingress address via the ingress namespace.  The ingress addresses are local there, so
  nothing is forwarded: forwarding is switched off in both namespaces, and a packet from
  the checker namespace can reach nothing but the ingress namespace.  It reaches Redis over
  its unix socket (no packet at all).
* ``cut`` replaces an address's route in the checker namespace with a blackhole: a
  partition seen from there and nowhere else.

IPv6 is off on every link made here, so not even link-local chatter (router
solicitations, DAD) is sent.  ``close`` removes both namespaces and the root-side link,
and says so loudly if any ``gqN`` namespace or link is left.
"""

from __future__ import annotations

import os
import shutil
import subprocess


class NetnsUnavailable(Exception):
    """Why this machine cannot give a test a namespace (not root, no ``ip``, no netns support)."""


def _ip(*args: str) -> str:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if result.returncode != 0:
        raise NetnsUnavailable(f"ip {' '.join(args)}: {result.stderr.strip() or result.returncode}")
    return result.stdout


def _sysctl(netns: str | None, key: str, value: str) -> None:
    """Set ``key`` in ``netns`` (None: this namespace) and read it back."""
    prefix = ["ip", "netns", "exec", netns] if netns else []
    result = subprocess.run(
        [*prefix, "sysctl", "-q", "-w", f"{key}={value}"], capture_output=True, text=True, timeout=10
    )
    got = subprocess.run([*prefix, "sysctl", "-n", key], capture_output=True, text=True, timeout=10)
    if result.returncode != 0 or got.stdout.strip() != value:
        raise NetnsUnavailable(
            f"sysctl {key}={value} in {netns or 'this namespace'}: {result.stderr.strip() or got.stdout.strip()}"
        )


class Netns:
    """The ingress namespace and the checker namespace, wired as the module docstring draws."""

    def __init__(self) -> None:
        if shutil.which("ip") is None or shutil.which("sysctl") is None:
            raise NetnsUnavailable("the ip or sysctl command is not installed")
        tag = f"gq{os.getpid() % 1_000_000}"
        self.tag = tag
        self.ingress_ns, self.checker_ns = f"{tag}i", f"{tag}c"
        self._root_end = f"{tag}h"  # root side of root <-> ingress
        self._made: list[str] = []
        n = self._free_subnet()
        self.addresses = [f"10.213.{n}.1", f"10.213.{n}.3"]
        self.root_address = f"10.213.{n}.2"  # the root-side end: the source of what this namespace sends them
        try:
            for ns in (self.ingress_ns, self.checker_ns):
                _ip("netns", "add", ns)
                self._made.append(ns)
                _sysctl(ns, "net.ipv4.ip_forward", "0")
                _sysctl(ns, "net.ipv6.conf.all.disable_ipv6", "1")
                _sysctl(ns, "net.ipv6.conf.default.disable_ipv6", "1")
                _ip("-n", ns, "link", "set", "lo", "up")
            # root <-> ingress: the ingress addresses on the ingress end.
            _ip("link", "add", self._root_end, "type", "veth", "peer", "name", f"{tag}r", "netns", self.ingress_ns)
            _sysctl(None, f"net.ipv6.conf.{self._root_end}.disable_ipv6", "1")
            _ip("addr", "add", f"{self.root_address}/24", "dev", self._root_end)
            for address in self.addresses:
                _ip("-n", self.ingress_ns, "addr", "add", f"{address}/24", "dev", f"{tag}r")
            # ingress <-> checker: a subnet of their own, seen nowhere else.
            _ip(
                "-n",
                self.ingress_ns,
                "link",
                "add",
                f"{tag}k",
                "type",
                "veth",
                "peer",
                "name",
                f"{tag}x",
                "netns",
                self.checker_ns,
            )
            _ip("-n", self.ingress_ns, "addr", "add", f"10.214.{n}.1/24", "dev", f"{tag}k")
            _ip("-n", self.checker_ns, "addr", "add", f"10.214.{n}.2/24", "dev", f"{tag}x")
            _ip("link", "set", self._root_end, "up")
            _ip("-n", self.ingress_ns, "link", "set", f"{tag}r", "up")
            _ip("-n", self.ingress_ns, "link", "set", f"{tag}k", "up")
            _ip("-n", self.checker_ns, "link", "set", f"{tag}x", "up")
            for address in self.addresses:
                _ip("-n", self.checker_ns, "route", "add", f"{address}/32", "via", f"10.214.{n}.1")
        except BaseException:
            self.close()
            raise

    @property
    def prefix(self) -> list[str]:
        """What to put before a command to run it in the checker namespace (the one ``cut`` cuts)."""
        return ["ip", "netns", "exec", self.checker_ns]

    @property
    def ingress_prefix(self) -> list[str]:
        """What to put before a command to run it in the ingress namespace, where ``addresses`` live."""
        return ["ip", "netns", "exec", self.ingress_ns]

    def route(self, netns: str | None, address: str) -> str | None:
        """How ``netns`` (None: this namespace) would send to ``address`` (``ip route get``, which
        sends nothing), or None when it cannot."""
        result = subprocess.run(
            ["ip", *(["-n", netns] if netns else []), "route", "get", address],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return result.stdout.split("\n")[0].strip() if result.returncode == 0 else None

    def cut(self, *addresses: str) -> None:
        """From the checker namespace, ``addresses`` are unreachable from now on."""
        for address in addresses:
            _ip("-n", self.checker_ns, "route", "replace", "blackhole", f"{address}/32")

    def close(self) -> None:
        """Remove what __init__ made; stop the processes inside first (a namespace with a
        process in it outlives its name).  Raises if a namespace or link of ours is left."""
        subprocess.run(["ip", "link", "del", self._root_end], capture_output=True, timeout=10)
        while self._made:
            subprocess.run(["ip", "netns", "del", self._made.pop()], capture_output=True, timeout=10)
        left = [line for line in leftovers() if self.tag in line]
        if left:
            raise AssertionError(f"left behind: {left}")

    @staticmethod
    def _free_subnet() -> int:
        """An N with no 10.213.N.0/24 address or route here (the root side of the pair is the only
        place it shows); the search starts at a per-process place so parallel runs rarely meet."""
        used = _ip("-4", "-o", "addr", "show") + _ip("-4", "route", "show")
        start = os.getpid() % 254
        for i in range(254):
            n = (start + i) % 254 + 1
            if f"10.213.{n}." not in used:
                return n
        raise NetnsUnavailable("no free 10.213.N.0/24 for the veth pair")


def leftovers() -> list[str]:
    """Every ``gq*`` namespace and root-namespace link there is (``ip netns list``, ``ip link``)."""
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10).stdout.split("\n")
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, timeout=10).stdout.split("\n")
    return [f"netns {line.split()[0]}" for line in names if line.startswith("gq")] + [
        f"link {line.split(':')[1].strip()}"
        for line in links
        if line.split(":")[1:2] and line.split(":")[1].strip().startswith("gq")
    ]
