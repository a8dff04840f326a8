"""Server-sent events: one encoder for every event, and the streaming ASGI response.

Frames are ``event: <type>\\ndata: <json>\\n\\n``; the stream ends with ``data: [DONE]``.
While the producer is silent for ``keepalive`` seconds a ``: keep-alive`` comment is sent.
When the client disconnects, the producer is cancelled (and closed), so no work leaks.
"""

from __future__ import annotations

import asyncio
import json
import sys
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
    """An ASGI response streaming batches of pre-encoded SSE frames; each batch is one write.
    The producer ends the stream with ``[DONE]`` itself.

    A watcher task reads ``receive``: on ``http.disconnect`` it cancels the streaming task, so
    the agent stops at once (its generator is closed); while the producer is silent it sends
    keep-alive comments.
    """

    def __init__(
        self,
        batches: AsyncIterator[list[bytes]],
        *,
        keepalive: float,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        self.batches = batches
        self.keepalive = keepalive
        self.headers = HEADERS + (headers or [])
        self._last_send = 0.0
        self._lock = asyncio.Lock()
        self._disconnected = False

    async def __call__(self, scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        self._last_send = time.monotonic()
        streaming = asyncio.current_task()
        watcher = asyncio.get_running_loop().create_task(self._watch(receive, send, streaming))
        try:
            last: list[bytes] = []
            async for batch in self.batches:
                if batch and batch[-1] is DONE:  # the end: one write with the chunked trailer
                    last = batch
                    break
                await self._send(send, b"".join(batch))
            async with self._lock:
                await send({"type": "http.response.body", "body": b"".join(last),
                            "more_body": False})
        except OSError:  # the client went away while we were writing
            pass
        except asyncio.CancelledError:
            if not self._disconnected:
                raise  # cancelled by the server (shutdown), not by us
            if sys.version_info >= (3, 11):
                streaming.uncancel()
        finally:
            watcher.cancel()
            await self.batches.aclose()

    async def _send(self, send, body: bytes) -> None:
        async with self._lock:
            await send({"type": "http.response.body", "body": body, "more_body": True})
            self._last_send = time.monotonic()

    async def _watch(self, receive, send, streaming: asyncio.Task) -> None:
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
                        message = {"type": "http.disconnect"}
                    else:
                        continue
                else:
                    continue
            if message["type"] == "http.disconnect":
                self._disconnected = True
                streaming.cancel()
                return
