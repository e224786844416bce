"""A browser on another machine reaches the status page by logging in once at /login.

Requests carry a non-loopback ``Host`` header, which is what the server sees from a
browser elsewhere (or through a container's published port): without the cookie
the page says 401, with it the page and the read API answer, and writes still
need the bearer token.
"""

from __future__ import annotations

import http.client
import urllib.parse

import pytest

from tests.test_http_api import start_server

FOREIGN = {"Host": "geodns.example.net:8053"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("login"), ', admin_token: "s3cret-token"')
    yield running
    running.stop()


def request(
    running, method: str, path: str, body: str | None = None, headers: dict[str, str] | None = None
) -> http.client.HTTPResponse:
    host, port = running.server.http.addresses[0][:2]
    conn = http.client.HTTPConnection(host, port, timeout=10)
    h = {**FOREIGN, **(headers or {})}
    if body is not None:
        h.setdefault("Content-Type", "application/x-www-form-urlencoded")
    conn.request(method, path, body=body, headers=h)
    response = conn.getresponse()
    response.text = response.read().decode()
    conn.close()
    return response


def log_in(running, token: str, **headers: str) -> http.client.HTTPResponse:
    return request(running, "POST", "/login", urllib.parse.urlencode({"token": token}), headers)


def cookie_of(response: http.client.HTTPResponse) -> str:
    return response.getheader("Set-Cookie").split(";", 1)[0]


def test_page_needs_a_login_from_elsewhere(server):
    response = request(server, "GET", "/")
    assert response.status == 401 and "log in at /login" in response.text
    form = request(server, "GET", "/login")
    assert form.status == 200 and 'name="token"' in form.text


def test_right_token_sets_a_read_only_cookie(server):
    response = log_in(server, "s3cret-token")
    assert response.status == 303 and response.getheader("Location") == "/"
    set_cookie = response.getheader("Set-Cookie")
    assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie
    assert "s3cret-token" not in set_cookie  # a keyed hash, never the token
    cookie = {"Cookie": cookie_of(response)}

    page = request(server, "GET", "/", headers=cookie)
    assert page.status == 200 and "app.gslb.example.com" in page.text
    assert request(server, "GET", "/api/v1/clusters", headers=cookie).status == 200
    # The cookie reads; it never writes, so no other site can drive a change through it.
    write = request(
        server, "POST", "/api/v1/clusters/eu-west-1/drain", "{}", {**cookie, "Content-Type": "application/json"}
    )
    assert write.status == 401
    assert request(server, "GET", "/api/v1/clusters/eu-west-1", headers=cookie).status == 200
    # Nor is the cookie's value a bearer token.
    value = cookie["Cookie"].split("=", 1)[1]
    assert request(server, "GET", "/", headers={"Authorization": f"Bearer {value}"}).status == 403


def test_wrong_token_cross_site_form_and_logout(server):
    wrong = log_in(server, "guess")
    assert wrong.status == 403 and wrong.getheader("Set-Cookie") is None
    cross_site = log_in(server, "s3cret-token", Origin="https://evil.example")
    assert cross_site.status == 403 and cross_site.getheader("Set-Cookie") is None
    forged = request(server, "GET", "/", headers={"Cookie": "geodns_session=" + "0" * 64})
    assert forged.status == 401
    out = request(server, "POST", "/logout", "")
    assert out.status == 303 and 'geodns_session=""' in out.getheader("Set-Cookie")


def test_without_a_token_there_is_nothing_to_log_in_with(tmp_path):
    running = start_server(tmp_path)
    try:
        assert request(running, "GET", "/login").status == 404
        assert log_in(running, "anything").status == 403
    finally:
        running.stop()
