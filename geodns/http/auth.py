"""Who may read and who may change things over HTTP.

The rules (README, "Operating geodns"):

- ``/healthz``, ``/readyz`` and ``/metrics`` are open: probes and Prometheus
  scrape from elsewhere, and they reveal nothing an operator would hide.
- Reads (``GET /api/v1/...`` and the status page ``/``) are open to loopback
  clients; others need the bearer token.
- Writes (``POST``, ``PUT``, ``DELETE``) need ``Authorization: Bearer <token>``,
  where the token is ``server.admin_token`` or, if that is unset, the
  ``GEODNS_ADMIN_TOKEN`` environment variable.  With no token configured,
  writes are accepted from loopback clients only.

Token-less loopback access is what a browser on the operator's machine also
has, so it is further limited to requests whose ``Host`` is a loopback name
(defeating DNS rebinding) and, for writes, whose ``Origin`` (sent by browsers
on cross-site requests) is that same host (defeating cross-site forms).

A browser cannot send a bearer token, so ``/login`` takes the token once in a
form and sets a session cookie.  The cookie grants *reads only* (the status page
and ``GET /api/v1``): it is ``HttpOnly`` and ``SameSite=Strict``, and holds an
HMAC of the token rather than the token, so it cannot be replayed as a bearer
token and changing the token logs every browser out.  Writes still need the
bearer token, so no page a browser visits can make changes with the cookie
(nothing to forge: there is no cookie-authenticated write).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aiohttp import web

if TYPE_CHECKING:
    from ..process.server import Server

TOKEN_ENV = "GEODNS_ADMIN_TOKEN"
SESSION_COOKIE = "geodns_session"
SESSION_DAYS = 7
_READ_METHODS = frozenset(("GET", "HEAD", "OPTIONS"))
_LOOPBACK_NAMES = frozenset(("localhost", "localhost.", "ip6-localhost"))


def configured_token(server: Server) -> str | None:
    config = server.config
    return (config.server.admin_token if config is not None else None) or os.environ.get(TOKEN_ENV) or None


def is_loopback(address: str | None) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def _loopback_host(request: web.Request) -> bool:
    """The Host header names this machine: 127.0.0.1:8053, [::1]:8053, localhost:8053."""
    host = request.host or ""
    name = urlsplit(f"//{host}").hostname or ""
    return name in _LOOPBACK_NAMES or is_loopback(name)


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser, or a same-origin GET
    return urlsplit(origin).netloc == request.host


def session_value(token: str) -> str:
    """What the session cookie holds for ``token``: a keyed hash, never the token itself."""
    return hmac.new(token.encode(), b"geodns status-page session v1", "sha256").hexdigest()


def _session_ok(request: web.Request, token: str | None) -> bool:
    cookie = request.cookies.get(SESSION_COOKIE)
    return (
        token is not None and cookie is not None and hmac.compare_digest(cookie.encode(), session_value(token).encode())
    )


def token_matches(given: str, server: Server) -> bool:
    token = configured_token(server)
    return token is not None and hmac.compare_digest(given.encode(), token.encode())


def same_origin(request: web.Request) -> bool:
    return _same_origin(request)


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def check(request: web.Request, server: Server) -> None:
    """Raise a JSON 401/403 unless the request may go ahead (see the module docstring)."""
    write = request.method not in _READ_METHODS
    token = configured_token(server)
    given = _bearer(request)
    if given is not None and token is not None:
        if hmac.compare_digest(given.encode(), token.encode()):
            return
        raise error(403, "the bearer token does not match server.admin_token / GEODNS_ADMIN_TOKEN")
    if not write and _session_ok(request, token):
        return  # a browser that logged in at /login
    local = is_loopback(request.remote) and _loopback_host(request)
    if write and token is not None:
        raise error(
            401,
            "this change needs 'Authorization: Bearer <token>' (server.admin_token or GEODNS_ADMIN_TOKEN)",
            challenge=True,
        )
    if local and (not write or _same_origin(request)):
        return
    if write:
        raise error(
            403,
            "changes without a token are accepted from loopback clients only; "
            "set server.admin_token or GEODNS_ADMIN_TOKEN and send it as a bearer token",
        )
    if token is None:
        raise error(
            403,
            "reads are open to loopback clients only; configure a token "
            "(server.admin_token or GEODNS_ADMIN_TOKEN) to read from elsewhere",
        )
    raise error(
        401,
        "reading from a non-loopback client needs 'Authorization: Bearer <token>' (in a browser: log in at /login)",
        challenge=True,
    )


def error(status: int, message: str, challenge: bool = False, **extra) -> web.HTTPException:
    """An HTTP error with a JSON body ``{"error": message, ...}``."""
    headers = {"WWW-Authenticate": 'Bearer realm="geodns"'} if challenge else None
    body = json.dumps({"error": message, **extra}, indent=1) + "\n"
    return _ERRORS[status](text=body, content_type="application/json", headers=headers)


class _TooLarge(web.HTTPRequestEntityTooLarge):
    """aiohttp's 413 wants the limit for its own text; ours brings a JSON body instead."""

    def __init__(self, **kwargs) -> None:
        super().__init__(0, **kwargs)


_ERRORS: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest,
    401: web.HTTPUnauthorized,
    403: web.HTTPForbidden,
    404: web.HTTPNotFound,
    409: web.HTTPConflict,
    413: _TooLarge,
    415: web.HTTPUnsupportedMediaType,
    422: web.HTTPUnprocessableEntity,
    500: web.HTTPInternalServerError,
    503: web.HTTPServiceUnavailable,
}
