"""The route table's machinery: requests, JSON responses, routes and the router.

It follows Starlette's rules, which this server used until its import (http.client, email,
hashlib, anyio and forty more modules) turned out to be a quarter of the container's
start-up, about 25 ms of 100, for a dozen routes whose one hot route bypasses the router:

- a route's path may hold ``{name}`` segments (one path segment each, in ``path_params``);
- a GET route answers HEAD too;
- the first route matching path and method answers; when routes match the path but not the
  method: 405 with ``Allow`` (every method of that path); when none match the path but one
  matches it with (or without) a trailing slash: a 307 redirect there; else 404;
- an :class:`~.errors.APIError` raised by an endpoint is answered in the OpenAI error shape.

Anything else an endpoint raises propagates, to ``app.RequestLog`` (the last-resort 500).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, quote

from .errors import APIError, Conflict, MethodNotAllowed, NotFound, ServiceUnavailable

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_JSON_TYPE = (b"content-type", b"application/json")


class ClientDisconnect(Exception):
    """The client went away before its request body had arrived."""


class Request:
    """What an endpoint reads of its request."""

    __slots__ = ("scope", "receive", "path_params", "_query_params")

    def __init__(self, scope: Scope, receive: Receive, path_params: dict[str, str]) -> None:
        self.scope = scope
        self.receive = receive
        self.path_params = path_params
        self._query_params: dict[str, str] | None = None

    @property
    def method(self) -> str:
        return self.scope["method"]

    @property
    def path(self) -> str:
        return self.scope["path"]

    @property
    def query_params(self) -> dict[str, str]:
        """The query string's parameters; of a repeated one, the last value."""
        if self._query_params is None:
            query = self.scope.get("query_string", b"").decode("latin-1")
            self._query_params = dict(parse_qsl(query, keep_blank_values=True))
        return self._query_params


def encode_headers(headers: dict[str, str] | None) -> list[tuple[bytes, bytes]]:
    """Headers as an ASGI message carries them: lower-case names, latin-1."""
    if not headers:
        return []
    return [(key.lower().encode("latin-1"), value.encode("latin-1"))
            for key, value in headers.items()]


async def send_json(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]],
                    trailing: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    """A whole JSON answer: ``headers``, content-length, content-type, then ``trailing`` (where
    the request log's ``x-request-id`` goes)."""
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [*headers, (b"content-length", b"%d" % len(body)), _JSON_TYPE, *trailing],
    })
    await send({"type": "http.response.body", "body": body})


class Response:
    """A whole JSON answer. Subclasses change only :meth:`render` (``content`` to bytes)."""

    __slots__ = ("body", "status_code", "headers")

    def __init__(self, content: Any, status_code: int = 200,
                 headers: dict[str, str] | None = None) -> None:
        self.body = self.render(content)
        self.status_code = status_code
        self.headers = headers

    def render(self, content: Any) -> bytes:
        return content.encode() if isinstance(content, str) else content

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_json(send, self.status_code, self.body, encode_headers(self.headers))


def error_headers(error: APIError) -> dict[str, str] | None:
    """Headers an error response adds: 503 closes the connection, 409 tells SDKs not to retry."""
    if isinstance(error, ServiceUnavailable):
        return {"connection": "close"}
    if isinstance(error, Conflict):  # replaying the same request cannot succeed
        return {"x-should-retry": "false"}
    return None


def error_response(error: APIError, headers: dict[str, str] | None = None) -> Response:
    return Response(error.body(), error.status, headers)


Endpoint = Callable[[Request], Awaitable[Response]]
_PARAM = re.compile(r"{(\w+)}")


class Route:
    """One line of the route table. ``endpoint(request)`` returns a :class:`Response`; with
    ``raw=True`` the endpoint is an ASGI app itself, called with ``scope, receive, send``."""

    __slots__ = ("path", "endpoint", "methods", "raw", "pattern")

    def __init__(self, path: str, endpoint: Endpoint | ASGIApp, methods: list[str] | frozenset[str],
                 *, raw: bool = False) -> None:
        self.path = path
        self.endpoint = endpoint
        self.methods = frozenset(methods) | ({"HEAD"} if "GET" in methods else set())
        self.raw = raw
        parts = _PARAM.split(path)  # literal, name, literal, name, ..., literal
        self.pattern = re.compile("".join(
            f"(?P<{part}>[^/]+)" if i % 2 else re.escape(part) for i, part in enumerate(parts)
        ) + r"\Z")


class Router:
    """Dispatch an HTTP request to the first route matching its path and method."""

    def __init__(self, routes: list[Route]) -> None:
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        allowed: set[str] = set()
        for route in self.routes:
            match = route.pattern.match(path)
            if match is None:
                continue
            if method not in route.methods:
                allowed |= route.methods
                continue
            if route.raw:
                await route.endpoint(scope, receive, send)
                return
            try:
                response = await route.endpoint(Request(scope, receive, match.groupdict()))
            except APIError as exc:
                response = error_response(exc, error_headers(exc))
            await response(scope, receive, send)
            return
        if allowed:
            error: APIError = MethodNotAllowed(f"Method {method} is not allowed on {path}.")
            await error_response(error, {"allow": ", ".join(sorted(allowed))})(scope, receive, send)
            return
        if path != "/" and await self._redirect_slash(scope, send):
            return
        await error_response(NotFound(f"No route for {method} {path}."))(scope, receive, send)

    async def _redirect_slash(self, scope: Scope, send: Send) -> bool:
        """Redirect (307) to the path with or without its trailing slash when a route has that
        one; whether it did."""
        path = scope["path"]
        other = path.rstrip("/") if path.endswith("/") else path + "/"
        if not any(route.pattern.match(other) for route in self.routes):
            return False
        await send({
            "type": "http.response.start",
            "status": 307,
            "headers": [(b"content-length", b"0"),
                        (b"location", _url(scope, other).encode("latin-1"))],
        })
        await send({"type": "http.response.body", "body": b""})
        return True


def _url(scope: Scope, path: str) -> str:
    """The request's URL with another ``path``, as Starlette writes a redirect's location."""
    scheme = scope.get("scheme", "http")
    host = next((value.decode("latin-1") for key, value in scope["headers"] if key == b"host"),
                None)
    if host is None and scope.get("server"):
        name, port = scope["server"]
        default = {"http": 80, "https": 443}.get(scheme)
        host = name if port == default else f"{name}:{port}"
    url = f"{scheme}://{host}{path}" if host else path
    if scope.get("query_string"):
        url += "?" + scope["query_string"].decode()
    return quote(url, safe=":/%#?=@[]!$&'()*+,;")
