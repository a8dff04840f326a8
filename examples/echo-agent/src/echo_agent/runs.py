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

When the effective format (``ctx.response_format``) is json_object or json_schema, the finished
answer is checked (``formats.output_problem``); an answer that is not valid JSON for it fails the
response with ``invalid_model_output``: ``response.failed`` right after the deltas when
streaming, a 502 without. An answer cut short (``incomplete``) is not checked.

Streaming yields *batches*: the SSE frames that are ready at the same moment (the four opening
events, each delta, the closing events), so one socket write carries each batch. Non-streaming
requests skip the events and build the final state directly.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

from .context import AgentContext
from .errors import AgentError
from .formats import INVALID_OUTPUT, invalid_output_message, output_problem
from .ids import new_id
from .objects import message_item, text_part, usage
from .sse import DONE, encode_event, encode_response_event

logger = logging.getLogger(__name__)

AgentFunction = Callable[[AgentContext], AsyncIterator[str]]
TERMINAL_STATUSES = frozenset({"completed", "incomplete", "failed", "cancelled"})
GENERIC_FAILURE = "The agent failed; the server log has the details."
SHUTTING_DOWN = ("server_shutting_down",
                 "The agent was stopped because the server is shutting down; retry the request.")
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class ResponseRun:
    """One response being produced. ``response`` is updated in place as the run goes on."""

    def __init__(self, response: dict[str, Any], ctx: AgentContext, agent: AgentFunction):
        self.response = response
        self.ctx = ctx
        self.agent = agent
        self.sequence = 0
        self.ended = False  # set once the response has reached its final state
        self.output_item: dict[str, Any] | None = None
        # Called once, on reaching the final state, before the terminal event is sent: the
        # server stores the response there, so a client reading that event can fetch it.
        self.on_end: Callable[[], None] | None = None
        self.task: asyncio.Task | None = None  # the task producing the response
        self.aborted = False

    def abort(self) -> bool:
        """Stop a run that is still going (the shutdown drain ran out of time): it ends as
        ``failed`` with ``server_shutting_down``, and a stream still gets its terminal event."""
        if self.ended or self.task is None or self.task.done():
            return False
        self.aborted = True
        self.task.cancel()
        return True

    def _stopped(self) -> None:
        """Turn the cancellation that :meth:`abort` caused into the failed state."""
        task = asyncio.current_task()
        if task is not None and hasattr(task, "uncancel"):  # Python 3.11+
            task.uncancel()
        self._fail(*SHUTTING_DOWN)

    def _end(self) -> None:
        self.ended = True
        if self.on_end is not None:
            self.on_end()

    # --- streaming ---------------------------------------------------------------------------

    def _frame(self, kind: str, **fields: Any) -> bytes:
        frame = encode_event({"type": kind, "sequence_number": self.sequence, **fields})
        self.sequence += 1
        return frame

    def response_frame(self, kind: str, response_json: str | None = None) -> bytes:
        """A lifecycle event carrying the whole response (serialised once per state)."""
        if response_json is None:
            response_json = _dumps(self.response)
        frame = encode_response_event(kind, self.sequence, response_json)
        self.sequence += 1
        return frame

    async def stream(self, *, done_marker: bool) -> AsyncIterator[list[bytes]]:
        """Batches of SSE frames; with ``done_marker`` the last batch ends with ``[DONE]``.

        Frames that are ready together leave together: the opening events wait for the agent's
        first pause, and every delta the agent produces without pausing joins the batch. The
        events and their order are the same either way; only the number of writes changes.
        """
        self.task = asyncio.current_task()
        try:
            chunks = self.agent(self.ctx)
        except Exception as exc:
            self._fail(*_failure(exc))
            error = {"type": "server_error", **self.response["error"], "param": None}
            yield [self._frame("error", error=error), *([DONE] if done_marker else [])]
            return
        response = self.response
        snapshot = _dumps(response)
        batch = [self.response_frame("response.created", snapshot)]
        if response["status"] != "in_progress":  # background runs start "queued"
            response["status"] = "in_progress"
            snapshot = _dumps(response)
        batch.append(self.response_frame("response.in_progress", snapshot))
        item_id = new_id("msg")
        item = message_item(None, status="in_progress", item_id=item_id)
        where = {"item_id": item_id, "output_index": 0, "content_index": 0}
        batch.append(self._frame("response.output_item.added", output_index=0, item=item))
        batch.append(self._frame("response.content_part.added", **where, part=text_part("")))
        pieces: list[str] = []
        try:
            async with aclosing(chunks):
                while True:
                    step = chunks.__anext__()
                    try:
                        paused_on = step.send(None)
                    except StopIteration as ready:
                        chunk = ready.value
                    except StopAsyncIteration:
                        break
                    else:  # the agent paused: send what is ready, then wait for it
                        try:
                            yield batch
                        except BaseException:  # closed or cancelled while the agent waits
                            await _abandon(step, paused_on)
                            raise
                        batch = []
                        try:
                            chunk = await _Resume(step, paused_on)
                        except StopAsyncIteration:
                            break
                    if _is_text(chunk):
                        pieces.append(chunk)
                        batch.append(self._frame("response.output_text.delta", **where,
                                                 delta=chunk, logprobs=[]))
        except Exception as exc:
            self._fail(*_failure(exc))
        except asyncio.CancelledError:
            if not self.aborted:
                raise
            self._stopped()
        text = "".join(pieces)
        if not self.ended:
            self._check_output(text)
        if self.ended:  # failed
            batch.append(self.response_frame("response.failed"))
            if done_marker:
                batch.append(DONE)
            yield batch
            return
        batch.append(self._frame("response.output_text.done", **where, text=text, logprobs=[]))
        batch.append(self._frame("response.content_part.done", **where, part=text_part(text)))
        done_item = self._finish(text, item_id)
        batch.append(self._frame("response.output_item.done", output_index=0, item=done_item))
        batch.append(self.response_frame(f"response.{self.response['status']}"))
        if done_marker:
            batch.append(DONE)
        yield batch

    # --- without streaming -------------------------------------------------------------------

    async def complete(self) -> dict[str, Any]:
        """Run to the end without streaming; returns the final response."""
        self.task = asyncio.current_task()
        try:
            chunks = self.agent(self.ctx)
            self.response["status"] = "in_progress"
            pieces: list[str] = []
            async with aclosing(chunks):
                async for chunk in chunks:
                    if _is_text(chunk):
                        pieces.append(chunk)
        except Exception as exc:
            self._fail(*_failure(exc))
            return self.response
        except asyncio.CancelledError:
            if not self.aborted:
                raise
            self._stopped()
            return self.response
        text = "".join(pieces)
        if not self._check_output(text):
            return self.response
        self._finish(text, new_id("msg"))
        return self.response

    # --- final states ------------------------------------------------------------------------

    def _check_output(self, text: str) -> bool:
        """Fail the response (``invalid_model_output``) when a complete answer does not fit the
        requested JSON format; ``True`` when it is fine."""
        fmt = self.ctx.response_format
        if self.ctx.usage.incomplete_reason:
            return True
        problem = output_problem(text, fmt)
        if problem is None:
            return True
        logger.warning(
            "the model's answer is not valid JSON for the requested format: %s", problem,
            extra={"code": INVALID_OUTPUT, "response_id": self.ctx.response_id,
                   "text_format": fmt["type"] if fmt else None},
        )
        self._fail(INVALID_OUTPUT, invalid_output_message(fmt, problem))
        return False

    def _finish(self, text: str, item_id: str) -> dict[str, Any]:
        incomplete = self.ctx.usage.incomplete_reason
        status = "incomplete" if incomplete else "completed"
        done_item = message_item(text, status=status, item_id=item_id)
        response = self.response
        response["output"] = [done_item]
        response["usage"] = usage(self.ctx.usage.input_tokens, self.ctx.usage.output_tokens)
        response["status"] = status
        if incomplete:
            response["incomplete_details"] = {"reason": incomplete}
        else:
            response["completed_at"] = int(time.time())
        self.output_item = done_item
        self._end()
        return done_item

    def _fail(self, code: str, message: str) -> None:
        self.response["status"] = "failed"
        self.response["error"] = {"code": code, "message": message}
        self.response["usage"] = usage(self.ctx.usage.input_tokens, self.ctx.usage.output_tokens)
        self._end()

    def cancelled_frame(self) -> bytes:
        """The terminal frame of a cancelled background run (status ``cancelled``)."""
        self.response["status"] = "cancelled"
        self._end()
        return self.response_frame("response.failed")


class BackgroundRun:
    """A ``background: true`` run: it goes on without a client, recording its SSE frames so
    ``GET /responses/{id}?stream=true&starting_after=N`` can replay and follow it.
    """

    def __init__(self, run: ResponseRun) -> None:
        self.run = run
        self.batches = run.stream(done_marker=False)
        self.frames: list[bytes] = []  # frames[n] is the event with sequence_number n
        self.finished = False
        self._changed = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self._drive())

    async def _drive(self) -> None:
        try:
            async with aclosing(self.batches) as batches:
                async for batch in batches:
                    self.frames.extend(batch)
                    self._changed.set()
        except asyncio.CancelledError:
            self._record_cancelled()
        finally:
            self.finished = True
            self._changed.set()

    def _record_cancelled(self) -> None:
        self.frames.append(self.run.cancelled_frame())
        self._changed.set()

    async def cancel(self) -> None:
        """Cancel the run and wait until it has ended."""
        self.task.cancel()
        await asyncio.wait([self.task])
        if not self.finished:  # cancelled before its first step, so _drive never ran
            self._record_cancelled()
            self.finished = True
            self._changed.set()

    async def follow(self, starting_after: int = -1) -> AsyncIterator[list[bytes]]:
        """Frames after ``starting_after``, then new ones as they come, then ``[DONE]``."""
        position = starting_after + 1
        while True:
            if position < len(self.frames):
                yield self.frames[position:]
                position = len(self.frames)
            if self.finished:
                yield [DONE]
                return
            self._changed.clear()
            await self._changed.wait()


class _Resume:
    """Await the rest of a coroutine that was started by hand and paused on ``paused_on``.

    :meth:`ResponseRun.stream` steps the agent's ``__anext__()`` itself to learn whether the
    next piece is ready without pausing; when it is not, this hands the pending future to the
    running task exactly as a plain ``await`` would have, and passes results and exceptions
    (cancellation included) back into the coroutine.
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


async def _abandon(step: Any, paused_on: Any) -> None:
    """Cancel an agent step paused on ``paused_on`` and let its clean-up run to the end."""
    try:
        await _Resume(step, paused_on, throw=asyncio.CancelledError())
    except BaseException:  # the agent's own outcome no longer matters
        pass


def _is_text(chunk: Any) -> bool:
    """Empty pieces are skipped; anything but a string is a bug in the agent."""
    if not isinstance(chunk, str):
        raise TypeError(f"the agent yielded {type(chunk).__name__}, not str")
    return bool(chunk)


def _failure(exc: Exception) -> tuple[str, str]:
    """The ``(code, message)`` a caller sees for an exception from agent code."""
    if isinstance(exc, AgentError):
        logger.warning("agent failed: %s", exc.message, extra={"code": exc.code})
        return exc.code, exc.message
    logger.error("agent raised an unexpected error", exc_info=exc)
    return "server_error", GENERIC_FAILURE
