"""A small blocking client of the admin API, shared by the admin subcommands (``status``, ``drain``,
``undrain``, ``force-up``, ``force-down``, ``weight``, ``load``, ``explain``, ``reload``): each takes
``--api`` (default ``$GEODNS_API`` or http://127.0.0.1:8053), ``--token`` (default
``$GEODNS_ADMIN_TOKEN``) and ``--json`` (``common_options``).

Standard library only (``urllib``): the commands start fast and need nothing
the server does not already need.  Every failure becomes an ``ApiError``
with a message an operator can act on; ``run`` prints it and returns the
exit status.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

DEFAULT_API = "http://127.0.0.1:8053"
TIMEOUT = 30.0


class ApiError(Exception):
    """The API could not be reached or said no; ``str()`` is the message for the operator."""


def common_options() -> argparse.ArgumentParser:
    """The flags every admin command takes, as a parent parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--api",
        default=os.environ.get("GEODNS_API", DEFAULT_API),
        metavar="URL",
        help="the geodns HTTP API, as a URL or HOST:PORT (default: $GEODNS_API or %(default)s)",
    )
    common.add_argument(
        "--token",
        default=os.environ.get("GEODNS_ADMIN_TOKEN"),
        help="bearer token for changes (default: $GEODNS_ADMIN_TOKEN)",
    )
    common.add_argument("--json", action="store_true", help="print the API's JSON instead of a table")
    return common


def api_base(text: str) -> str:
    """The API's base URL from what an operator typed: ``HOST:PORT`` and ``[::1]:PORT`` mean http://."""
    text = text.strip().rstrip("/")
    return text if "://" in text else f"http://{text}"


class Api:
    def __init__(self, base: str, token: str | None = None, timeout: float = TIMEOUT):
        self.base = api_base(base)
        self.token = token
        self.timeout = timeout

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, query: dict[str, str] | None = None
    ) -> Any:
        url = f"{self.base}/api/v1{path}"
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise ApiError(_http_error(exc)) from None
        except urllib.error.URLError as exc:
            raise ApiError(
                f"cannot reach the geodns API at {self.base}: {exc.reason} "
                "(is `geodns serve` running? set --api or GEODNS_API)"
            ) from None
        except (OSError, ValueError) as exc:
            raise ApiError(f"talking to {self.base} failed: {exc}") from None


def _http_error(exc: urllib.error.HTTPError) -> str:
    raw = exc.read()
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if isinstance(body, dict) and "error" in body:
        message = f"{body['error']} (HTTP {exc.code})"
        problems = body.get("problems") or []  # a rejected reload: every file:line: reason
        return "\n".join([message] + [f"  {p}" for p in problems])
    return f"{raw.decode('utf-8', 'replace').strip() or exc.reason} (HTTP {exc.code})"


def run(args: argparse.Namespace, action: Callable[[Api], Any], show: Callable[[Any], None]) -> int:
    """Call the API, print the result (JSON with --json), and say clearly what failed."""
    api = Api(args.api, args.token)
    try:
        result = action(api)
    except ApiError as exc:
        print(f"geodns {args.command}: {exc}{_known_clusters_hint(api, exc)}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        show(result)
    return 0


def _known_clusters_hint(api: Api, exc: ApiError) -> str:
    """For a mistyped cluster name, the names that exist (one more read; best effort)."""
    if not str(exc).startswith("unknown cluster "):
        return ""
    try:
        names = sorted(c["name"] for c in api.request("GET", "/clusters")["clusters"])
    except (ApiError, KeyError, TypeError):
        return ""
    return f"\n  clusters: {', '.join(names)}" if names else ""
