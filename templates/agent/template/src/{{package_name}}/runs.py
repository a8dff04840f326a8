"""Turn the agent's text into a Response: state changes and the streaming events, in order.

The event order is the one the Responses protocol fixes for a text answer::

    response.created → response.in_progress → response.output_item.added
    → response.content_part.added → response.output_text.delta × N → response.output_text.done
    → response.content_part.done → response.output_item.done
    → response.completed | response.incomplete | response.failed   (exactly one)

Failures follow the protocol's two rules. After ``response.created`` a failure is the terminal
``response.failed`` (never a standalone ``error`` event). Before it, when calling the agent
function raises (a plain function that checks the request and returns the generator may refuse
this way), the stream is a single ``error`` event. Either way :class:`AgentError` shows its
``code`` and ``message``; any other exception shows a generic ``server_error``.

Non-streaming requests consume the same events and keep only the final state, so both
modes share one code path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

from .context import AgentContext
from .errors import AgentError
from .objects import message_item, text_part, usage
from .sse import encode_event

logger = logging.getLogger(__name__)

AgentFunction = Callable[[AgentContext], AsyncIterator[str]]
TERMINAL_EVENTS = ("response.completed", "response.incomplete", "response.failed")
GENERIC_FAILURE = "The agent failed; the server log has the details."


class ResponseRun:
    """One response being produced. ``response`` is updated in place as the run goes on."""

    def __init__(self, response: dict[str, Any], ctx: AgentContext, agent: AgentFunction):
        self.response = response
        self.ctx = ctx
        self.agent = agent
        self.sequence = 0
        self.output_item: dict[str, Any] | None = None

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return event

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        try:
            chunks = self.agent(self.ctx)
        except Exception as exc:
            yield self._error(*_failure(exc))
            return
        response = self.response
        yield self._event("response.created", response=response)
        response["status"] = "in_progress"
        yield self._event("response.in_progress", response=response)
        item = message_item(None, status="in_progress")
        item_id = item["id"]
        yield self._event("response.output_item.added", output_index=0, item=item)
        yield self._event(
            "response.content_part.added",
            item_id=item_id,
            output_index=0,
            content_index=0,
            part=text_part(""),
        )
        pieces: list[str] = []
        try:
            async with aclosing(chunks):
                async for chunk in chunks:
                    if not chunk:
                        continue
                    if not isinstance(chunk, str):
                        raise TypeError(f"the agent yielded {type(chunk).__name__}, not str")
                    pieces.append(chunk)
                    yield self._event(
                        "response.output_text.delta",
                        item_id=item_id,
                        output_index=0,
                        content_index=0,
                        delta=chunk,
                        logprobs=[],
                    )
        except Exception as exc:
            yield self._failed(*_failure(exc))
            return
        text = "".join(pieces)
        yield self._event(
            "response.output_text.done",
            item_id=item_id,
            output_index=0,
            content_index=0,
            text=text,
            logprobs=[],
        )
        yield self._event(
            "response.content_part.done",
            item_id=item_id,
            output_index=0,
            content_index=0,
            part=text_part(text),
        )
        incomplete = self.ctx.usage.incomplete_reason
        done_item = message_item(
            text, status="incomplete" if incomplete else "completed", item_id=item_id
        )
        self.output_item = done_item
        yield self._event("response.output_item.done", output_index=0, item=done_item)
        response["output"] = [done_item]
        response["usage"] = usage(self.ctx.usage.input_tokens, self.ctx.usage.output_tokens)
        if incomplete:
            response["status"] = "incomplete"
            response["incomplete_details"] = {"reason": incomplete}
            yield self._event("response.incomplete", response=response)
        else:
            response["status"] = "completed"
            response["completed_at"] = int(time.time())
            yield self._event("response.completed", response=response)

    def _failed(self, code: str, message: str) -> dict[str, Any]:
        self.response["status"] = "failed"
        self.response["error"] = {"code": code, "message": message}
        self.response["usage"] = usage(self.ctx.usage.input_tokens, self.ctx.usage.output_tokens)
        return self._event("response.failed", response=self.response)

    def _error(self, code: str, message: str) -> dict[str, Any]:
        """The standalone ``error`` event for a failure before ``response.created``; its
        nested ``error`` is OpenAI's wire shape (the openai SDK raises ``APIError`` on it)."""
        self.response["status"] = "failed"
        self.response["error"] = {"code": code, "message": message}
        error = {"type": "server_error", "code": code, "message": message, "param": None}
        return self._event("error", error=error)

    async def complete(self) -> dict[str, Any]:
        """Run to the end without streaming; returns the final response."""
        async for _ in self.events():
            pass
        return self.response


class BackgroundRun:
    """A ``background: true`` run: it goes on without a client, recording its SSE frames so
    ``GET /responses/{id}?stream=true&starting_after=N`` can replay and follow it.
    ``events`` defaults to ``run.events()``; the server passes them through its store."""

    def __init__(
        self, run: ResponseRun, events: AsyncIterator[dict[str, Any]] | None = None
    ) -> None:
        self.run = run
        self.events = run.events() if events is None else events
        self.frames: list[bytes] = []  # frames[n] is the event with sequence_number n
        self.finished = False
        self._changed = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self._drive())

    async def _drive(self) -> None:
        try:
            async with aclosing(self.events) as events:
                async for event in events:
                    self._record(event)
        except asyncio.CancelledError:
            self._record_cancelled()
        finally:
            self.finished = True
            self._changed.set()

    def _record_cancelled(self) -> None:
        response = self.run.response
        response["status"] = "cancelled"
        self._record(self.run._event("response.failed", response=response))

    def _record(self, event: dict[str, Any]) -> None:
        self.frames.append(encode_event(event))
        self._changed.set()

    async def cancel(self) -> None:
        """Cancel the run and wait until it has ended."""
        self.task.cancel()
        await asyncio.wait([self.task])
        if not self.finished:  # cancelled before its first step, so _drive never ran
            self._record_cancelled()
            self.finished = True
            self._changed.set()

    async def follow(self, starting_after: int = -1) -> AsyncIterator[bytes]:
        """Frames after ``starting_after``, then each new one until the run ends."""
        position = starting_after + 1
        while True:
            while position < len(self.frames):
                yield self.frames[position]
                position += 1
            if self.finished:
                return
            self._changed.clear()
            await self._changed.wait()


def _failure(exc: Exception) -> tuple[str, str]:
    """The ``(code, message)`` a caller sees for an exception from agent code."""
    if isinstance(exc, AgentError):
        logger.warning("agent failed: %s", exc.message, extra={"code": exc.code})
        return exc.code, exc.message
    logger.error("agent raised an unexpected error", exc_info=exc)
    return "server_error", GENERIC_FAILURE
