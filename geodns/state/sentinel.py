"""Redis Sentinel: a client that follows whichever node the sentinels call primary (see ``redis.py``).

The URL itself is parsed by the config (``geodns.config.urls``), which checks it at load.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from ..config.urls import SENTINEL_SCHEMES, SentinelURL, parse_sentinel_url  # noqa: F401  (re-exported)


def master_client(url: SentinelURL, connect_timeout: float, socket_timeout: float) -> aioredis.Redis:
    """A client whose connections go to whichever node the sentinels call primary."""
    from redis.asyncio.sentinel import Sentinel

    common: dict = {"socket_connect_timeout": connect_timeout, "socket_timeout": socket_timeout}
    if url.tls:
        common["ssl"] = True
        if url.ssl_ca_certs:
            common["ssl_ca_certs"] = url.ssl_ca_certs
    sentinel_kwargs = dict(common)
    if url.sentinel_password:
        sentinel_kwargs["password"] = url.sentinel_password
    sentinel = Sentinel(list(url.hosts), sentinel_kwargs=sentinel_kwargs, **common)
    return sentinel.master_for(
        url.service,
        db=url.db,
        username=url.username,
        password=url.password,
        decode_responses=True,
        client_name="geodns",
        retry=Retry(NoBackoff(), 0),
        **common,
    )
