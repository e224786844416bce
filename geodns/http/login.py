"""``/login`` and ``/logout``: how a browser reaches the status page from another machine.

A browser cannot attach a bearer token to a page load, and from a container's
published port no request is loopback, so without this the page would be
reachable only from the server's own host.  The form posts the admin token once;
a right token gets the read-only session cookie described in ``auth.py``.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from aiohttp import web

from . import auth

if TYPE_CHECKING:
    from ..process.server import Server

OPEN_PATHS = frozenset(("/login", "/logout"))

_FORM = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>geodns: log in</title>
<style>body{{font:15px system-ui,sans-serif;margin:3em auto;max-width:28em;color:#222}}
input{{font:inherit;padding:.3em;width:100%;box-sizing:border-box;margin:.4em 0}}
.err{{color:#b00020}}</style></head>
<body><h1>geodns</h1>
<p>The status page is read-only; logging in lets this browser read it from another machine.
Use the server's admin token (<code>server.admin_token</code> or <code>GEODNS_ADMIN_TOKEN</code>).</p>
{message}
<form method="post" action="/login">
<label>Token <input type="password" name="token" autocomplete="current-password" autofocus></label>
<input type="submit" value="Log in">
</form></body></html>
"""


def _page(message: str = "", status: int = 200) -> web.Response:
    return web.Response(text=_FORM.format(message=message), status=status, content_type="text/html")


def add_routes(app: web.Application, server: Server) -> None:
    async def form(request: web.Request) -> web.Response:
        if auth.configured_token(server) is None:
            return _page(
                '<p class="err">No token is configured, so there is nothing to log in with: '
                "the page is open to loopback clients only.</p>",
                status=404,
            )
        return _page()

    async def login(request: web.Request) -> web.StreamResponse:
        if not auth.same_origin(request):
            return _page('<p class="err">That form came from another site.</p>', status=403)
        if request.content_type != "application/x-www-form-urlencoded":
            return _page('<p class="err">Send the form as application/x-www-form-urlencoded.</p>', status=415)
        try:
            data = await request.post()
        except ValueError:
            return _page('<p class="err">That form could not be read.</p>', status=400)
        given = data.get("token")
        if not isinstance(given, str) or not auth.token_matches(given, server):
            return _page(f'<p class="err">{html.escape("That token is not right.")}</p>', status=403)
        response = web.HTTPSeeOther("/")
        response.set_cookie(
            auth.SESSION_COOKIE,
            auth.session_value(auth.configured_token(server) or ""),
            max_age=auth.SESSION_DAYS * 86400,
            httponly=True,
            samesite="Strict",
            secure=request.secure,
            path="/",
        )
        raise response

    async def logout(request: web.Request) -> web.StreamResponse:
        response = web.HTTPSeeOther("/login")
        response.del_cookie(auth.SESSION_COOKIE, path="/")
        raise response

    app.router.add_get("/login", form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
