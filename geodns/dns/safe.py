"""The one place a query meets the handler: whatever goes wrong inside it is contained here,
so one bad packet can never take a listener (UDP or TCP) down."""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable

log = logging.getLogger("geodns.dns")

Handler = Callable[[bytes, str, bool], "bytes | None"]

_SERVFAIL_FLAGS = 0x8000 | 2


def servfail(data: bytes) -> bytes | None:
    """Last resort when the handler itself failed: SERVFAIL with the ID, if readable."""
    if len(data) < 12:
        return None
    qid, flags = struct.unpack_from("!HH", data)
    if flags & 0x8000:
        return None
    return struct.pack("!HHHHHH", qid, _SERVFAIL_FLAGS | (flags & 0x7900), 0, 0, 0, 0)


def answer_safely(handler: Handler, data: bytes, client: str, tcp: bool, stats) -> bytes | None:
    """The handler's answer, or SERVFAIL (counted in ``stats.handler_errors``) when it raised."""
    try:
        return handler(data, client, tcp)
    except Exception:  # the listener must survive any query
        stats.handler_errors += 1
        log.debug("handler failed for a query from %s", client, exc_info=True)
        return servfail(data)
