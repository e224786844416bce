"""One server per address: prove a ``dns_listen`` address free before sharing it among workers.

With SO_REUSEPORT any process of the same user may join a port, so a second
``geodns serve`` started on an address already served would silently take
half of its queries (and ignore its drains).  Before binding the workers'
SO_REUSEPORT sockets, the supervisor binds each address for TCP and UDP
*without* SO_REUSEPORT and lets go: that bind fails while anything else is
on the address.  Having passed, it binds one SO_REUSEPORT pair per worker
slot and holds them for its whole life, so every later probe fails in turn.
Probe and group bind happen under a lock (an abstract unix socket, scoped to
the network namespace like the ports, released when its holder exits however
it exits), so two servers started at the same instant cannot both pass.
"""

from __future__ import annotations

import errno
import socket
import time

from ..dns.listener import _bound_socket, bound_pair

BIND_LOCK = b"\0geodns-dns-listen-bind"
BIND_LOCK_WAIT = 5.0

Bound = tuple[str, socket.socket, socket.socket]  # host, TCP, UDP: one listen address of one worker slot


def address_text(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def in_use_error(exc: OSError, host: str, port: int) -> OSError:
    """The OSError to show for an address that could not be bound: it names the address."""
    if exc.errno == errno.EADDRINUSE:
        text = f"{address_text(host, port)} is already in use (another geodns serve on it?): one server per address"
    else:
        text = f"{address_text(host, port)}: {exc.strerror or exc}"
    error = OSError(text)  # str() is the text alone; the errno is kept for code that asks
    error.errno = exc.errno
    return error


class _BindLock:
    """Held while one server proves its addresses free and binds them (see the module docstring)."""

    def __enter__(self) -> _BindLock:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        deadline = time.monotonic() + BIND_LOCK_WAIT
        while True:
            try:
                self.sock.bind(BIND_LOCK)
                return self
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                    return self  # no lock to be had: the exclusive probe still stands alone
                time.sleep(0.01)

    def __exit__(self, *exc) -> None:
        self.sock.close()


def claim_addresses(
    listen: tuple[tuple[str, int], ...], count: int, reuse_port: bool = True
) -> tuple[tuple[tuple[str, int], ...], list[list[Bound]]]:
    """Prove every address free, then bind ``count`` SO_REUSEPORT socket pairs on each; raises OSError.

    ``reuse_port=False`` (one process, ``count`` 1): a plain pair, which no other process can join.

    Returns the addresses with concrete ports (a port 0 becomes a free one) and, per
    worker slot, its sockets.  The error of an address already served names it.
    """
    slots: list[list[Bound]] = [[] for _ in range(count)]
    concrete = []
    try:
        with _BindLock():
            for host, port in listen:
                for attempt in range(20 if port == 0 else 1):
                    chosen = _probe(host, port)
                    try:
                        pairs = _pairs(host, chosen, count, reuse_port)
                        break
                    except OSError as exc:
                        # A port of 0 is free between the probe and the bind only as far as this
                        # process knows: another may have taken it for UDP since.  Try another one.
                        if port != 0 or exc.errno != errno.EADDRINUSE:
                            raise
                        if attempt == 19:
                            raise OSError(errno.EADDRINUSE, f"no port free for both TCP and UDP on {host}") from None
                for bound, pair in zip(slots, pairs):
                    bound.append(pair)
                concrete.append((host, chosen))
    except BaseException:
        for bound in slots:
            for _, tcp, udp in bound:
                tcp.close()
                udp.close()
        raise
    return tuple(concrete), slots


def _pairs(host: str, port: int, count: int, reuse_port: bool) -> list[Bound]:
    """``count`` bound (host, TCP, UDP) triples on ``host:port``; on an error none stays bound."""
    pairs: list[Bound] = []
    try:
        for _ in range(count):
            pairs.append((host, *bound_pair(host, port, reuse_port)))
    except OSError:
        for _, tcp, udp in pairs:
            tcp.close()
            udp.close()
        raise
    return pairs


def _probe(host: str, port: int) -> int:
    """Bind ``host:port`` for TCP and UDP without SO_REUSEPORT and let go: proof nobody serves it.

    A port of 0 becomes one free for both; an address in use is an OSError naming it.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(20 if port == 0 else 1):
        try:
            tcp = _bound_socket(family, socket.SOCK_STREAM, host, port, listen=False)
        except OSError as exc:
            raise in_use_error(exc, host, port) from None
        chosen = tcp.getsockname()[1]
        try:
            udp = _bound_socket(family, socket.SOCK_DGRAM, host, chosen)
        except OSError as exc:
            tcp.close()
            if port == 0 and exc.errno == errno.EADDRINUSE:
                continue
            raise in_use_error(exc, host, port) from None
        tcp.close()
        udp.close()
        return chosen
    raise OSError(errno.EADDRINUSE, f"no port free for both TCP and UDP on {host}")
