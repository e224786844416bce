"""The background task that keeps signatures fresh: static RRsets are re-signed before their
signatures reach the refresh point, answer signatures are forgotten (the next query that needs one
signs it), and the fast path sees ``Signing.generation`` move and drops the encoded answers that
carried the old ones.  The work runs on the event loop in small chunks
(``signer.REFRESH_CHUNK`` signatures between yields), so queries wait at most for one chunk.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from .counters import SigningCounters
from .secure import Signing

log = logging.getLogger("geodns.dnssec")


async def keep_signatures_fresh(current: Callable[[], tuple[Signing | None, SigningCounters]]) -> None:
    """``current`` returns the signing in use now (it changes on reload) and the counters to count into."""
    while True:
        signing, _ = current()
        await asyncio.sleep(signing.refresh_interval() if signing is not None else 1.0)
        signing, counters = current()
        if signing is None:
            continue
        changed = await signing.refresh(counters)
        if changed:
            log.info("event=resigned signatures=%d generation=%d", changed, signing.generation)
