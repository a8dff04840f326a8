"""What the cloud contract servers (``foundry_contract``, ``agentrun_contract``,
``alibaba_contract``) share: a threaded local server, reading a request body, a queue of
injected faults, relaying an upstream answer (SSE streamed chunk by chunk), the fixture that
stops every server a test started, and the rule for a missing SDK (skip locally, fail in CI).

Also the pieces of body checking that do not depend on a cloud: dotted field paths, short JSON
quotes, and what an SDK round trip dropped or changed. Each server keeps its own routes, rules,
state and error shapes.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from http.client import HTTPResponse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, Protocol, TypeVar

import pytest


def unavailable(reason: str) -> None:
    """A contract needs something that is not installed: skip with ``reason``, but fail in CI
    (where a skip would pass a contract nobody checked)."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(reason)
    pytest.skip(reason)


def serve(
    handle: Callable[[BaseHTTPRequestHandler], None], *, poll_interval: float = 0.05
) -> ThreadingHTTPServer:
    """A server on 127.0.0.1 (a free port) that passes every request, whatever its method, to
    ``handle``, running on a daemon thread until :func:`shut`."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            handle(self)

        do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": poll_interval}, daemon=True
    ).start()
    return server


def url_of(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def shut(server: ThreadingHTTPServer | None) -> None:
    if server is not None:
        server.shutdown()
        server.server_close()


def read_body(handler: BaseHTTPRequestHandler, headers: dict[str, str]) -> bytes:
    """The request body, sent with a content-length or chunked (``headers`` lower-cased)."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        chunks = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(headers.get("content-length") or 0)
    return handler.rfile.read(length) if length else b""


def relay(
    handler: BaseHTTPRequestHandler, upstream: HTTPResponse, headers: Iterable[tuple[str, str]]
) -> None:
    """Answer with ``upstream``'s status and body under ``headers``: an event stream chunk by
    chunk as it arrives (so a client sees each event when the agent sends it), anything else
    whole with its length."""
    handler.send_response(upstream.status)
    for name, value in headers:
        handler.send_header(name, value)
    if "text/event-stream" in upstream.getheader("content-type", "application/json"):
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        while True:
            chunk = upstream.read1(65536)
            if not chunk:
                break
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            handler.wfile.flush()
        handler.wfile.write(b"0\r\n\r\n")
    else:
        data = upstream.read()
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


class CountedFault(Protocol):
    remaining: int | None  # None: every matching request


Fault = TypeVar("Fault", bound=CountedFault)


class Faults(Generic[Fault]):
    """The faults a test asked for, taken in order by the requests they match. A fault added
    with ``after=n`` lets the first ``n`` requests it matches through (a deploy interrupted
    after its n-th call)."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._after: dict[int, int] = {}  # id(fault) -> matching requests still let through
        self._lock = threading.Lock()

    def add(self, fault: Fault, after: int = 0) -> None:
        with self._lock:
            self._faults.append(fault)
            if after:
                self._after[id(fault)] = after

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._after.clear()

    def take(self, matches: Callable[[Fault], bool]) -> Fault | None:
        """The first fault left that ``matches``, counted down once."""
        with self._lock:
            for fault in self._faults:
                if fault.remaining is not None and fault.remaining <= 0:
                    continue
                if not matches(fault):
                    continue
                if self._after.get(id(fault)):
                    self._after[id(fault)] -= 1
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                return fault
        return None


class Server(Protocol):
    def stop(self) -> None: ...


Contract = TypeVar("Contract", bound=Server)


def stopped_after(start: Callable[..., Contract]) -> Iterator[Callable[..., Contract]]:
    """The body of a contract fixture: yields ``start`` (which returns a running server) and
    stops every server it started once the test is over."""
    started: list[Contract] = []

    def start_and_remember(*args: object, **config: object) -> Contract:
        contract = start(*args, **config)
        started.append(contract)
        return contract

    yield start_and_remember
    for contract in started:
        contract.stop()


# --- body checks --------------------------------------------------------------------------------

MISSING = object()  # what ``differences`` reports for a field the SDK dropped


def dotted(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def excerpt(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def differences(sent: Any, kept: Any, where: str) -> Iterator[tuple[str, Any, Any]]:
    """(path, sent, kept) for each field of ``sent`` that ``kept`` (the SDK's round trip of it)
    lacks (kept is :data:`MISSING`) or holds as another value or type; None fields are unsent."""
    if isinstance(sent, dict) and isinstance(kept, dict):
        for key, value in sent.items():
            if value is None:
                continue
            if key not in kept:
                yield dotted(where, key), value, MISSING
            else:
                yield from differences(value, kept[key], dotted(where, key))
    elif isinstance(sent, list) and isinstance(kept, list) and len(sent) == len(kept):
        for index, (a, b) in enumerate(zip(sent, kept, strict=True)):
            yield from differences(a, b, f"{where}[{index}]")
    elif sent != kept or type(sent) is not type(kept):
        yield where, sent, kept
