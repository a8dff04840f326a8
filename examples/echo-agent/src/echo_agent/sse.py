"""Server-sent events: the frame encoders and the streaming ASGI response.

Frames are ``event: <type>\\ndata: <json>\\n\\n``; the stream ends with ``data: [DONE]``.
While the producer is silent for ``keepalive`` seconds a ``: keep-alive`` comment is sent.
When the client disconnects, the producer is cancelled (and closed), so no work leaks.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from .objects import dumps

DONE = b"data: [DONE]\n\n"
KEEPALIVE = b": keep-alive\n\n"
HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"connection", b"keep-alive"),
    (b"x-accel-buffering", b"no"),
]


def encode_event(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {dumps(event)}\n\n".encode()


def encode_fields_event(kind: str, sequence_number: int, fields: str) -> bytes:
    """``encode_event({"type": kind, "sequence_number": n, ...})`` where ``fields`` is the rest
    of the event already written as JSON members (``',"delta":"hi"'``); ``kind`` is one of the
    protocol's event names, which JSON writes as they are."""
    return (
        f'event: {kind}\ndata: {{"type":"{kind}","sequence_number":{sequence_number}{fields}}}'
        "\n\n"
    ).encode()


def encode_response_event(kind: str, sequence_number: int, response_json: str) -> bytes:
    """A lifecycle event around an already serialised response (``dumps_response``)."""
    return encode_fields_event(kind, sequence_number, f',"response":{response_json}')


class Resume:
    """Await the rest of a coroutine that was started by hand and paused on ``paused_on``.

    Stepping an awaitable with ``send(None)`` tells whether it finishes without pausing (the
    value arrives in ``StopIteration``); when it pauses instead, this hands the pending future
    to the running task exactly as a plain ``await`` would have, and passes results and
    exceptions (cancellation included) back into the coroutine.
    """

    __slots__ = ("coroutine", "paused_on", "throw")

    def __init__(self, coroutine: Any, paused_on: Any, throw: BaseException | None = None):
        self.coroutine = coroutine
        self.paused_on = paused_on
        self.throw = throw

    def __await__(self):
        coroutine, pending = self.coroutine, self.paused_on
        if self.throw is not None:
            try:
                pending = coroutine.throw(self.throw)
            except StopIteration as done:
                return done.value
        while True:
            try:
                result = yield pending
            except BaseException as exc:
                try:
                    pending = coroutine.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    pending = coroutine.send(result)
                except StopIteration as done:
                    return done.value


class EventStreamResponse:
    """An ASGI response streaming batches of pre-encoded SSE frames; each batch is one write.
    The producer ends the stream with ``[DONE]`` itself.

    A watcher task reads ``receive``: on ``http.disconnect`` it cancels the streaming task, so
    the agent stops at once (its generator is closed); while the producer is silent it sends
    keep-alive comments. The watcher starts when there is something to watch: when the producer
    first pauses or a batch that does not end the stream is sent. A stream that is ready in one
    batch (a fast agent) is sent in one write and needs no watcher.
    """

    def __init__(
        self,
        batches: AsyncIterator[list[bytes]],
        *,
        keepalive: float,
        headers: list[tuple[bytes, bytes]] | None = None,
        write_timeout: float | None = None,
    ) -> None:
        self.batches = batches
        self.keepalive = keepalive
        self.write_timeout = write_timeout
        self.headers = HEADERS + (headers or [])
        self._last_send = 0.0
        self._lock: asyncio.Lock | None = None  # with the watcher: it sends keep-alives too
        self._disconnected = False
        self._watcher: asyncio.Task | None = None
        self._streaming: asyncio.Task | None = None  # the task streaming, once watched

    async def __call__(self, scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        self._last_send = time.monotonic()
        try:
            last: list[bytes] = []
            batches = self.batches
            while True:
                step = batches.__anext__()
                try:
                    paused_on = step.send(None)
                except StopIteration as ready:
                    batch = ready.value
                except StopAsyncIteration:
                    break
                else:  # the producer waits for the agent: watch the client meanwhile
                    self._watch_from_now(receive, send)
                    try:
                        batch = await Resume(step, paused_on)
                    except StopAsyncIteration:
                        break
                if batch and batch[-1] is DONE:  # the end: one write with the chunked trailer
                    last = batch
                    break
                self._watch_from_now(receive, send)
                await self._send(send, b"".join(batch), True)
            await self._send(send, b"".join(last), False)
        except OSError:  # the client went away while we were writing
            pass
        except asyncio.CancelledError:
            if not self._disconnected:
                raise  # cancelled by the server (shutdown), not by us
            if sys.version_info >= (3, 11):
                self._streaming.uncancel()
        finally:
            if self._watcher is not None:
                self._watcher.cancel()
            await self.batches.aclose()

    def _watch_from_now(self, receive, send) -> None:
        if self._watcher is None:
            self._streaming = asyncio.current_task()
            self._lock = asyncio.Lock()
            self._watcher = asyncio.get_running_loop().create_task(
                self._watch(receive, send, self._streaming)
            )

    async def _send(self, send, body: bytes, more_body: bool) -> None:
        message = {"type": "http.response.body", "body": body, "more_body": more_body}
        if self._lock is None:
            await self._write(send, message)
            return
        async with self._lock:
            await self._write(send, message)
            self._last_send = time.monotonic()

    async def _write(self, send, message) -> None:
        """``await send(message)``; a write that waits more than ``write_timeout`` seconds for
        a client that reads nothing (slowloris) raises :class:`SlowClient`, so the stream ends
        as if the client had gone. A write that does not wait (the usual) costs no timer."""
        step = send(message).__await__()
        try:
            paused_on = step.send(None)
        except StopIteration:
            return
        if self.write_timeout is None:
            await Resume(step, paused_on)
            return
        try:
            await _within(Resume(step, paused_on), self.write_timeout)
        except TimeoutError:
            raise SlowClient(f"no write for {self.write_timeout:g} s") from None

    async def _watch(self, receive, send, streaming: asyncio.Task) -> None:
        """Cancel the stream on disconnect; send keep-alive comments while it is silent."""
        while True:
            timeout = None
            if self.keepalive > 0:
                timeout = max(0.01, self.keepalive - (time.monotonic() - self._last_send))
            try:
                message = await _receive_within(receive, timeout)
            except TimeoutError:
                if time.monotonic() - self._last_send >= self.keepalive:
                    try:
                        await self._send(send, KEEPALIVE, True)
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


class SlowClient(OSError):
    """The client read nothing for ``write_timeout`` seconds: treated as gone."""


async def _within(awaitable, timeout: float):
    """``await awaitable``, or TimeoutError after ``timeout`` seconds, in the calling task."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(timeout):
            return await awaitable
    import anyio  # Python 3.10 has no asyncio.timeout

    with anyio.fail_after(timeout):
        return await awaitable


async def _receive_within(receive, timeout: float | None):
    """``await receive()``, or TimeoutError after ``timeout`` seconds (None: no limit).

    It waits in the calling task: ``asyncio.wait_for`` would wait in a task of its own, which
    can finish just as the watcher is cancelled, and then wait_for returns its message and
    swallows the cancellation."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(timeout):
            return await receive()
    import anyio  # Python 3.10 has no asyncio.timeout

    with anyio.fail_after(timeout):
        return await receive()
