"""Server-sent events: one encoder for every event, and the streaming ASGI response.

Frames are ``event: <type>\\ndata: <json>\\n\\n``; the stream ends with ``data: [DONE]``.
While the producer is silent for ``keepalive`` seconds a ``: keep-alive`` comment is sent.
When the client disconnects, the producer is cancelled (and closed), so no work leaks.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio

DONE = b"data: [DONE]\n\n"
KEEPALIVE = b": keep-alive\n\n"
HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"connection", b"keep-alive"),
    (b"x-accel-buffering", b"no"),
]

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def encode_event(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {_dumps(event)}\n\n".encode()


def encode_response_event(kind: str, sequence_number: int, response_json: str) -> bytes:
    """A lifecycle event around an already serialised response (``_dumps(response)``)."""
    return (
        f'event: {kind}\ndata: {{"type":"{kind}","sequence_number":{sequence_number},'
        f'"response":{response_json}}}\n\n'
    ).encode()


class EventStreamResponse:
    """An ASGI response streaming pre-encoded SSE frames from ``frames``; each item may hold
    several frames and is one write. The producer ends the stream with ``[DONE]`` itself."""

    def __init__(
        self,
        frames: AsyncIterator[bytes],
        *,
        keepalive: float,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        self.frames = frames
        self.keepalive = keepalive
        self.headers = HEADERS + (headers or [])
        self._last_send = 0.0
        self._lock = asyncio.Lock()

    async def __call__(self, scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        self._last_send = time.monotonic()
        async with anyio.create_task_group() as group:
            group.start_soon(self._watch, receive, send, group.cancel_scope)
            try:
                async for frame in self.frames:
                    await self._send(send, frame)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except OSError:  # the client went away while we were writing
                pass
            finally:
                group.cancel_scope.cancel()
                aclose = getattr(self.frames, "aclose", None)
                if aclose is not None:
                    with anyio.CancelScope(shield=True):
                        await aclose()

    async def _send(self, send, frame: bytes) -> None:
        async with self._lock:
            await send({"type": "http.response.body", "body": frame, "more_body": True})
            self._last_send = time.monotonic()

    async def _watch(self, receive, send, scope: anyio.CancelScope) -> None:
        """Cancel the stream on disconnect; send keep-alive comments while it is silent."""
        while True:
            timeout = None
            if self.keepalive > 0:
                timeout = max(0.01, self.keepalive - (time.monotonic() - self._last_send))
            try:
                with anyio.fail_after(timeout):
                    message = await receive()
            except TimeoutError:
                if time.monotonic() - self._last_send >= self.keepalive:
                    try:
                        await self._send(send, KEEPALIVE)
                    except OSError:
                        scope.cancel()
                        return
                continue
            if message["type"] == "http.disconnect":
                scope.cancel()
                return
