"""A real validating resolver for the DNSSEC tests: Debian's ``unbound``, started by the test.

It listens on a free loopback port, sends every query for the signed zone to a geodns on
loopback (a stub zone), and trusts that zone through the DS or DNSKEY the test hands it, so
an answer it marks AD has been validated from that anchor down.  Every query it makes leaves
from 127.0.0.1 (``outgoing-interface``), so it cannot reach anything off this machine.
Stopped by its PID.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode

from tests.polling import wait_for
from tests.redis_server import free_port

UNBOUND = shutil.which("unbound") or "/usr/sbin/unbound"


class Unbound:
    def __init__(
        self,
        directory: Path,
        zone: str,
        upstream: tuple[str, int],
        anchors: list[str],
        extra: str = "",
    ):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log = self.dir / "unbound.log"
        host, port = upstream
        anchor_lines = "".join(f'  trust-anchor: "{anchor}"\n' for anchor in anchors)
        self.config = self.dir / "unbound.conf"
        self.config.write_text(
            "server:\n"
            f"  interface: 127.0.0.1@{self.port}\n"
            "  outgoing-interface: 127.0.0.1\n"
            "  do-ip6: no\n"
            "  do-daemonize: no\n"
            '  username: ""\n'
            '  chroot: ""\n'
            f'  directory: "{self.dir}"\n'
            '  pidfile: ""\n'
            "  use-syslog: no\n"
            f'  logfile: "{self.log}"\n'
            "  verbosity: 1\n"
            "  val-log-level: 2\n"
            "  log-servfail: yes\n"
            "  access-control: 127.0.0.0/8 allow\n"
            "  do-not-query-localhost: no\n"
            "  qname-minimisation: no\n"
            '  module-config: "validator iterator"\n'
            "  num-threads: 1\n"
            f"{anchor_lines}{extra}"
            "stub-zone:\n"
            f'  name: "{zone}"\n'
            f"  stub-addr: {host}@{port}\n"
            "remote-control:\n"
            "  control-enable: no\n"
        )
        check = subprocess.run(
            [UNBOUND.replace("unbound", "unbound-checkconf"), str(self.config)], capture_output=True, text=True
        )
        assert check.returncode == 0, check.stdout + check.stderr
        self.proc = subprocess.Popen([UNBOUND, "-d", "-c", str(self.config)], stdin=subprocess.DEVNULL)
        if not wait_for(self._answers, timeout=15):
            self.stop()
            raise AssertionError("unbound did not start:\n" + self.output())

    def _answers(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"unbound exited ({self.proc.returncode}):\n" + self.output())
        try:
            self.ask("localhost.", "A", timeout=0.5)  # answered by unbound itself
        except (OSError, dns.exception.Timeout):
            return False
        return True

    def ask(self, name: str, rdtype: str, timeout: float = 10.0, tcp: bool = False) -> dns.message.Message:
        """The resolver's answer, asking for AD (and DO, so the RRSIGs can be looked at)."""
        query = dns.message.make_query(name, rdtype, want_dnssec=True)
        query.flags |= dns.flags.AD
        send = dns.query.tcp if tcp else dns.query.udp
        return send(query, "127.0.0.1", port=self.port, timeout=timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def authenticated(message: dns.message.Message) -> bool:
    return bool(message.flags & dns.flags.AD) and message.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)
