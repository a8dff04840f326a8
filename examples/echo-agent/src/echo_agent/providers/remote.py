"""What every HTTP model provider shares: one streaming POST, retries, and clean failures.

A failure becomes an :class:`AgentError` with a stable code and a log line, and never shows a
key (the configured secrets are redacted from everything logged)::

    401, 403                  model_authentication_failed
    404                       model_not_found
    429                       rate_limit_exceeded    (retried; ``retry-after`` honoured)
    5xx                       model_unavailable      (retried)
    timeout                   model_timeout          (retried)
    connection error          model_stream_error     (retried)
    dropped / malformed /
    truncated stream          model_stream_error
    other 4xx                 model_request_rejected

Retries use exponential backoff, at most ``MODEL_MAX_RETRIES`` of them and at most
``MAX_TOTAL_WAIT`` seconds of waiting in all, and happen only before the first piece of the
answer was yielded: after it, a failure ends the response as failed.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import httpx

from ..errors import AgentError
from . import ModelCall, Usage
from .config import ModelConfig

logger = logging.getLogger(__name__)

MAX_TOTAL_WAIT = 10.0  # seconds of backoff, all retries of one call together
BACKOFF_BASE = 0.5  # seconds before the first retry; doubled for each further one
# Key-like strings an upstream error message may echo back (partially masked or not).
_KEY_LIKE = re.compile(r"\b(sk|sk-ant|sk-proj)-[A-Za-z0-9_\-*.]{6,}")


class StreamError(Exception):
    """The provider's stream broke its own format (malformed, truncated or an error event)."""


class ModelFailure(Exception):
    """A failed attempt: the caller-visible code and message, and whether to retry."""

    def __init__(self, code: str, message: str, *, transient: bool = False,
                 retry_after: float | None = None, status: int | None = None,
                 detail: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.transient = transient
        self.retry_after = retry_after
        self.status = status
        self.detail = detail  # upstream's own message, for the log only (redacted)


class RemoteProvider:
    """Base of the HTTP providers: subclasses say where to POST and how to read the stream."""

    name = "remote"
    label = "The model provider"

    def __init__(self, config: ModelConfig, transport: httpx.AsyncBaseTransport | None = None):
        self.config = config
        self.transport = transport
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    # --- for subclasses ----------------------------------------------------------------------

    def url(self) -> str:
        raise NotImplementedError

    def headers(self) -> dict[str, str]:
        raise NotImplementedError

    def body(self, call: ModelCall) -> dict[str, Any]:
        raise NotImplementedError

    def read(self, lines: AsyncIterator[str], usage: Usage) -> AsyncIterator[str]:
        """The answer's text pieces from the response's lines; raise :class:`StreamError` when
        the stream is malformed or ends early."""
        raise NotImplementedError

    # --- the call ----------------------------------------------------------------------------

    def client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            timeout = httpx.Timeout(self.config.timeout)
            self._client = httpx.AsyncClient(timeout=timeout, transport=self.transport,
                                             follow_redirects=False)
            self._client_loop = loop
        return self._client

    async def stream(self, call: ModelCall, usage: Usage) -> AsyncIterator[str]:
        body = self.body(call)
        attempt = 0
        waited = 0.0
        while True:
            started = False
            try:
                async with aclosing(self._attempt(body, usage)) as pieces:
                    async for piece in pieces:
                        started = True
                        yield piece
                return
            except ModelFailure as exc:
                failure = exc
            except httpx.TimeoutException:
                failure = ModelFailure(
                    "model_timeout",
                    f"{self.label} did not answer within {self.config.timeout:g} seconds.",
                    transient=True,
                )
            except httpx.TransportError as exc:
                failure = ModelFailure(
                    "model_stream_error",
                    f"The connection to {self.label.lower()} failed or was dropped.",
                    transient=True, detail=type(exc).__name__,
                )
            except StreamError as exc:
                failure = ModelFailure(
                    "model_stream_error",
                    f"{self.label} sent a malformed or incomplete stream.",
                    detail=str(exc),
                )
            delay = self._retry_delay(failure, attempt, waited)
            if started or delay is None:
                self._log_failure(failure, attempt, started)
                raise AgentError(failure.message, code=failure.code) from None
            attempt += 1
            waited += delay
            logger.warning(
                "model call retried",
                extra={"provider": self.name, "code": failure.code, "status": failure.status,
                       "attempt": attempt, "delay": round(delay, 3)},
            )
            await asyncio.sleep(delay)

    async def _attempt(self, body: dict[str, Any], usage: Usage) -> AsyncIterator[str]:
        client = self.client()
        request = client.build_request("POST", self.url(), json=body, headers=self.headers())
        response = await client.send(request, stream=True)
        try:
            if response.status_code >= 400:
                await response.aread()
                raise self._status_failure(response)
            async with aclosing(self.read(response.aiter_lines(), usage)) as pieces:
                async for piece in pieces:
                    yield piece
        finally:
            await response.aclose()

    def _status_failure(self, response: httpx.Response) -> ModelFailure:
        status = response.status_code
        detail = _upstream_message(response)
        if status in (401, 403):
            where = f" in {self.config.key_env}" if self.config.key_env else ""
            return ModelFailure("model_authentication_failed",
                                f"{self.label} rejected the credentials (HTTP {status}); "
                                f"check the key{where}.", status=status, detail=detail)
        if status == 404:
            return ModelFailure("model_not_found",
                                f"{self.label} does not know the model or deployment "
                                f"'{self.config.model}' (HTTP 404).", status=status, detail=detail)
        if status == 429:
            return ModelFailure("rate_limit_exceeded",
                                f"{self.label} is rate limiting requests (HTTP 429); "
                                "retry later.", transient=True,
                                retry_after=_retry_after(response), status=status, detail=detail)
        if status >= 500:
            return ModelFailure("model_unavailable",
                                f"{self.label} is unavailable (HTTP {status}); retry later.",
                                transient=True, retry_after=_retry_after(response),
                                status=status, detail=detail)
        return ModelFailure("model_request_rejected",
                            f"{self.label} rejected the request (HTTP {status}).",
                            status=status, detail=detail)

    def _retry_delay(self, failure: ModelFailure, attempt: int, waited: float) -> float | None:
        """Seconds to wait before retrying, or ``None`` to give up."""
        if not failure.transient or attempt >= self.config.max_retries:
            return None
        delay = BACKOFF_BASE * 2**attempt
        if failure.retry_after is not None:
            delay = max(failure.retry_after, 0.0)
        if waited + delay > MAX_TOTAL_WAIT:
            return None
        return delay

    def _log_failure(self, failure: ModelFailure, attempt: int, started: bool) -> None:
        logger.warning(
            "model call failed",
            extra={"provider": self.name, "model": self.config.model, "code": failure.code,
                   "status": failure.status, "retries": attempt, "after_first_token": started,
                   "detail": self.redact(failure.detail)[:500]},
        )

    def redact(self, text: str) -> str:
        for secret in self.config.secrets:
            text = text.replace(secret, "[redacted]")
        return _KEY_LIKE.sub("[redacted]", text)


async def sse_events(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, str]]:
    """``(event, data)`` for each server-sent event in ``lines`` (multi-line data joined)."""
    event, data = "", []
    async for line in lines:
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
    if data:
        yield event, "\n".join(data)


def parse_json(data: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        raise StreamError("an event's data is not JSON") from None
    if not isinstance(value, dict):
        raise StreamError("an event's data is not a JSON object")
    return value


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("retry-after-ms")
    if raw:
        try:
            return float(raw) / 1000
        except ValueError:
            pass
    raw = response.headers.get("retry-after")
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _upstream_message(response: httpx.Response) -> str:
    """The provider's own error message, for the log."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error or body)[:500]
