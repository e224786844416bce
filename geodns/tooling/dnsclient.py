"""A resolver-like DNS client for the drills and the local stack: ECS queries over UDP, several servers in turn.

The drill must not share code with the server it judges, so queries are built
here by hand (RFC 1035 header and question, RFC 6891 OPT, RFC 7871 Client
Subnet) and answers are read with dnslib, an independent parser.
"""

from __future__ import annotations

import ipaddress
import random
import socket
import struct
import time
from dataclasses import dataclass

from dnslib import QTYPE, RCODE, DNSRecord

# Places the drill plays clients from, as ECS subnets in MaxMind's test database
# (the one the stack ships): Singapore, London, and Milton (US).
CLIENTS: dict[str, str] = {"SG": "214.0.0.0/24", "London": "81.2.69.142/32", "US": "216.160.83.56/29"}


def build_query(name: str, qtype: str, subnet: str | None, qid: int | None = None) -> bytes:
    """A query with RD clear (we ask an authority) and, if ``subnet`` is given, an ECS option."""
    qid = random.randrange(0, 65536) if qid is None else qid
    header = struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 1)
    labels = b"".join(bytes([len(p)]) + p.encode("ascii") for p in name.rstrip(".").split(".") if p) + b"\0"
    question = labels + struct.pack("!HH", getattr(QTYPE, qtype), 1)
    options = b""
    if subnet is not None:
        net = ipaddress.ip_network(subnet, strict=False)
        family = 1 if net.version == 4 else 2
        address = net.network_address.packed[: (net.prefixlen + 7) // 8]
        body = struct.pack("!HBB", family, net.prefixlen, 0) + address
        options = struct.pack("!HH", 8, len(body)) + body
    opt = b"\0" + struct.pack("!HHIH", 41, 1232, 0, len(options)) + options
    return header + question + opt


@dataclass(frozen=True)
class Reply:
    """One exchange with one server: the answer addresses, or why there are none."""

    server: str
    rcode: str  # NOERROR, NXDOMAIN, SERVFAIL, ... or TIMEOUT / REFUSED-PORT / ERROR
    addresses: tuple[str, ...]
    ms: float

    @property
    def ok(self) -> bool:
        return self.rcode in ("NOERROR", "NXDOMAIN")


def parse_hostport(text: str, default_port: int = 53) -> tuple[str, int]:
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest.lstrip(":") or default_port)
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, default_port


def ask(server: str, name: str, qtype: str, subnet: str | None, timeout: float) -> Reply:
    """One UDP exchange.  A closed port shows at once (ICMP unreachable on a connected socket)."""
    host, port = parse_hostport(server)
    query = build_query(name, qtype, subnet)
    started = time.monotonic()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect((host, port))
            sock.send(query)
            while True:
                data = sock.recv(65535)
                if data[:2] == query[:2]:
                    break
        except TimeoutError:
            return Reply(server, "TIMEOUT", (), (time.monotonic() - started) * 1000)
        except ConnectionRefusedError:
            return Reply(server, "REFUSED-PORT", (), (time.monotonic() - started) * 1000)
        except OSError as exc:
            return Reply(server, f"ERROR:{exc.__class__.__name__}", (), (time.monotonic() - started) * 1000)
    ms = (time.monotonic() - started) * 1000
    try:
        record = DNSRecord.parse(data)
    except Exception:  # noqa: BLE001 - a reply we cannot parse is a failed query, whatever the reason
        return Reply(server, "BADREPLY", (), ms)
    rcode = RCODE.get(record.header.rcode, str(record.header.rcode))
    addresses = tuple(sorted(str(rr.rdata) for rr in record.rr if rr.rtype in (QTYPE.A, QTYPE.AAAA)))
    return Reply(server, str(rcode), addresses, ms)


def resolve(
    servers: list[str], name: str, qtype: str, subnet: str | None, timeout: float, start: int = 0
) -> tuple[Reply, list[Reply]]:
    """Ask the servers in turn from ``start`` until one answers, as a resolver with several
    NS records would; returns the final reply and every attempt."""
    attempts: list[Reply] = []
    for i in range(len(servers)):
        reply = ask(servers[(start + i) % len(servers)], name, qtype, subnet, timeout)
        attempts.append(reply)
        if reply.ok:
            return reply, attempts
    return attempts[-1], attempts
