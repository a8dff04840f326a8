"""The process-wide call log behind ``--verbose``: one line per HTTP call, on stderr.

Every control-plane client sends through :class:`toolkit.cloud.http.CloudHttp`, which hands
each attempt's line (method, URL without its signatures, status, milliseconds; secrets
redacted) to :func:`record`; the plain httpx clients (registry, invoke, smoke, readiness) take
:func:`httpx_hooks`, and docker-py's client :func:`watch_engine`. All of them consult the one
sink here, which ``--verbose`` turns on for the command's lifetime, so no function takes a
"verbose" parameter. The lines go to stderr, so ``--json`` keeps stdout to one object.

    http: GET https://acct.services.ai.azure.com/api/projects/p/agents/a -> 200 (84 ms)
    http: POST https://myreg.azurecr.io/oauth2/exchange -> 401 (31 ms)
    engine: GET /v1.47/containers/json -> 200 (3 ms)
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

Sink = Callable[[str], None]

_lock = threading.Lock()
_sink: Sink | None = None
_STARTED = "actk.call_log.started"  # the request extension holding its send time
# ``Authorization: Bearer ...``, ``api-key=...`` and the like inside free text.
_CREDENTIAL_TEXT = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}")


def _stderr(line: str) -> None:
    import click

    click.echo(line, err=True)


def enable(sink: Sink | None = None) -> None:
    """Send every call's line to ``sink`` (default: stderr) until :func:`disable`."""
    global _sink
    with _lock:
        _sink = sink or _stderr


def disable() -> None:
    global _sink
    with _lock:
        _sink = None


def enabled() -> bool:
    return _sink is not None


@contextmanager
def capture() -> Iterator[list[str]]:
    """The lines recorded inside the block (for tests), instead of stderr."""
    lines: list[str] = []
    previous = _sink
    enable(lines.append)
    try:
        yield lines
    finally:
        _restore(previous)


def _restore(sink: Sink | None) -> None:
    global _sink
    with _lock:
        _sink = sink


def record(line: str, *, source: str = "http") -> None:
    """Log one line (already redacted by the caller) if ``--verbose`` is on."""
    sink = _sink
    if sink is not None:
        sink(f"{source}: {line}")


def call_line(
    method: str, url: object, outcome: str, elapsed_ms: float, secrets: Iterable[str] = ()
) -> str:
    """``GET <url> -> 200 (12 ms)`` with signature-like query values and ``secrets`` removed."""
    from toolkit.cloud.http import _SECRET_PARAMETER, safe_url
    from toolkit.redact import redact

    line = f"{method} {safe_url(str(url))} -> {outcome} ({elapsed_ms:.0f} ms)"
    line = _CREDENTIAL_TEXT.sub(r"\1 ***", line)
    return _SECRET_PARAMETER.sub(r"\1***", redact(line, secrets))


def httpx_hooks(secrets: Iterable[str] = ()) -> dict[str, list[Callable[..., Any]]]:
    """``event_hooks`` for an ``httpx.Client``: one line per response (every redirect hop
    included) while ``--verbose`` is on; nothing otherwise. Latency is time to the headers."""
    hidden = tuple(secrets)

    def on_request(request: httpx.Request) -> None:
        if _sink is not None:
            request.extensions[_STARTED] = time.monotonic()

    def on_response(response: httpx.Response) -> None:
        if _sink is None:
            return
        request = response.request
        started = request.extensions.get(_STARTED, time.monotonic())
        elapsed = (time.monotonic() - started) * 1000
        record(call_line(request.method, request.url, str(response.status_code), elapsed, hidden))

    return {"request": [on_request], "response": [on_response]}


def watch_engine(client: Any) -> Any:
    """Log docker-py's Engine API calls (its ``APIClient`` is a ``requests.Session``)."""
    api = getattr(client, "api", client)
    hooks = getattr(api, "hooks", None)
    if isinstance(hooks, dict) and _on_engine_response not in hooks.setdefault("response", []):
        hooks["response"].append(_on_engine_response)
    return client


def _on_engine_response(response: Any, *args: Any, **kwargs: Any) -> Any:
    if _sink is None:
        return response
    from urllib.parse import urlsplit

    parts = urlsplit(str(response.request.url))
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    elapsed = response.elapsed.total_seconds() * 1000
    record(call_line(response.request.method, path, str(response.status_code), elapsed),
           source="engine")
    return response
