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

The events are written straight into JSON text (``encode_fields_event``): their shapes are fixed
here, the ids in them are ours (``new_id``: letters, digits and ``_``), and every other value is
written by the same encoder as the Response (``objects.json_value``), so the text is what
``json.dumps`` of the event would give.
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
from .formats import INVALID_OUTPUT, invalid_output_message, output_problem
from .ids import new_id
from .objects import (
    dumps_response,
    json_value,
    message_item,
    message_item_json,
    response_segments,
    usage,
    usage_json,
)
from .sse import DONE, Resume, encode_event, encode_fields_event, encode_response_event

logger = logging.getLogger(__name__)

AgentFunction = Callable[[AgentContext], AsyncIterator[str]]
GENERIC_FAILURE = "The agent failed; the server log has the details."
SHUTTING_DOWN = ("server_shutting_down",
                 "The agent was stopped because the server is shutting down; retry the request.")
_EMPTY_PART = '{"type":"output_text","text":"","annotations":[],"logprobs":[]}'


class ResponseRun:
    """One response being produced. ``response`` is updated in place as the run goes on."""

    __slots__ = ("response", "ctx", "agent", "running", "sequence", "ended", "output_item",
                 "on_end", "task", "aborted", "final_json", "segments", "finished_json")

    def __init__(self, response: dict[str, Any], ctx: AgentContext, agent: AgentFunction,
                 running: set[ResponseRun] | None = None):
        self.response = response
        self.ctx = ctx
        self.agent = agent
        self.running = running  # the server's set of runs going on, which this one joins
        self.sequence = 0
        self.ended = False  # set once the response has reached its final state
        self.output_item: dict[str, Any] | None = None
        # Called once, on reaching the final state, before the terminal event is sent: the
        # server stores the response there, so a client reading that event can fetch it.
        self.on_end: Callable[[], None] | None = None
        self.task: asyncio.Task | None = None  # the task producing the response
        self.aborted = False
        self.final_json: str | None = None  # the final Response's JSON, once a stream sent it
        # objects.response_segments() of the response: given by the server when it has them,
        # else computed on the first use.
        self.segments: tuple[str, ...] | None = None
        # The JSON of the final output and usage, written when the run finishes (nothing
        # changes them afterwards).
        self.finished_json: tuple[str, str] | None = None

    def _join(self) -> None:
        """The run starts: it joins the server's set of runs going on."""
        if self.running is not None:
            self.running.add(self)

    def _pausing(self) -> None:
        """A stream's agent is about to pause (the run's task may be cancelled from now on):
        note the task. A run that never pauses cannot be aborted while it goes on, and does not
        pay for ``asyncio.current_task()``."""
        if self.task is None:
            self.task = asyncio.current_task()

    def _leave(self) -> None:
        if self.running is not None:
            self.running.discard(self)

    def abort(self) -> bool:
        """Stop a run that is still going (the shutdown drain ran out of time): it ends as
        ``failed`` with ``server_shutting_down``, and a stream still gets its terminal event."""
        if self.ended or self.task is None or self.task.done():
            return False
        self.aborted = True
        self.task.cancel()
        return True

    def _fail_with(self, exc: BaseException) -> None:
        """End the run as failed by ``exc``, raised while the agent ran: a cancellation that
        :meth:`abort` caused becomes ``server_shutting_down`` (any other is raised again); any
        other exception, the failure :func:`_failure` gives for it."""
        if not isinstance(exc, asyncio.CancelledError):
            self._fail(*_failure(exc))
            return
        if not self.aborted:
            raise exc
        task = asyncio.current_task()
        if task is not None and hasattr(task, "uncancel"):  # Python 3.11+
            task.uncancel()
        self._fail(*SHUTTING_DOWN)

    def _end(self) -> None:
        self.ended = True
        # Dropped once called: the callback usually refers back to this run, and without
        # that cycle the run is freed as soon as its request is done (not by a GC pass).
        on_end, self.on_end = self.on_end, None
        if on_end is not None:
            on_end()

    # --- streaming ---------------------------------------------------------------------------

    def _frame(self, kind: str, **fields: Any) -> bytes:
        frame = encode_event({"type": kind, "sequence_number": self.sequence, **fields})
        self.sequence += 1
        return frame

    def _event(self, kind: str, fields: str) -> bytes:
        """The next event, its members after ``sequence_number`` given as JSON text."""
        frame = encode_fields_event(kind, self.sequence, fields)
        self.sequence += 1
        return frame

    def json(self) -> str:
        """The response as JSON text, now."""
        if self.segments is None:
            self.segments = response_segments(self.response)
        if self.finished_json is None:
            return dumps_response(self.response, self.segments)
        return dumps_response(self.response, self.segments, *self.finished_json)

    def response_frame(self, kind: str, response_json: str | None = None) -> bytes:
        """A lifecycle event carrying the whole response (serialised once per state)."""
        if response_json is None:
            response_json = self.json()
        frame = encode_response_event(kind, self.sequence, response_json)
        self.sequence += 1
        return frame

    async def stream(self, *, done_marker: bool) -> AsyncIterator[list[bytes]]:
        """Batches of SSE frames; with ``done_marker`` the last batch ends with ``[DONE]``.

        Frames that are ready together leave together: the opening events wait for the agent's
        first pause, and every delta the agent produces without pausing joins the batch. The
        events and their order are the same either way; only the number of writes changes.
        """
        self._join()
        try:
            try:
                chunks = self.agent(self.ctx)
            except Exception as exc:
                self._fail(*_failure(exc))
                error = {"type": "server_error", **self.response["error"], "param": None}
                yield [self._frame("error", error=error), *([DONE] if done_marker else [])]
                return
            item_id = new_id("msg")
            where = f',"item_id":"{item_id}","output_index":0,"content_index":0'
            batch = self._opening(item_id, where)
            pieces: list[str] = []
            finished = False
            try:
                try:
                    while True:
                        step = chunks.__anext__()
                        try:
                            paused_on = step.send(None)
                        except StopIteration as ready:
                            chunk = ready.value
                        except StopAsyncIteration:
                            finished = True
                            break
                        else:  # the agent paused: send what is ready, then wait for it
                            self._pausing()
                            try:
                                yield batch
                            except BaseException:  # closed or cancelled while the agent waits
                                await _abandon(step, paused_on)
                                raise
                            batch = []
                            try:
                                chunk = await Resume(step, paused_on)
                            except StopAsyncIteration:
                                finished = True
                                break
                        if chunk.__class__ is str and chunk or _is_text(chunk):
                            pieces.append(chunk)
                            batch.append(self._event(
                                "response.output_text.delta",
                                f'{where},"delta":{json_value(chunk)},"logprobs":[]',
                            ))
                finally:
                    await self._close(chunks, finished)
            except (Exception, asyncio.CancelledError) as exc:
                self._fail_with(exc)
            self._closing(batch, "".join(pieces), item_id, where)
            if done_marker:
                batch.append(DONE)
            yield batch
        finally:
            self._leave()

    async def _close(self, chunks: AsyncIterator[str], finished: bool) -> None:
        """Close the agent's generator. Unless it has finished, its clean-up may pause."""
        if not finished:
            self._pausing()
        await chunks.aclose()

    def _opening(self, item_id: str, where: str) -> list[bytes]:
        """The four events that open a stream: created, in_progress, the empty message item and
        its empty text part."""
        response = self.response
        snapshot = self.json()
        batch = [self.response_frame("response.created", snapshot)]
        if response["status"] != "in_progress":  # background runs start "queued"
            response["status"] = "in_progress"
            snapshot = self.json()
        batch.append(self.response_frame("response.in_progress", snapshot))
        batch.append(self._event(
            "response.output_item.added",
            f',"output_index":0,"item":{{"id":"{item_id}","type":"message",'
            '"status":"in_progress","role":"assistant","content":[]}',
        ))
        batch.append(self._event("response.content_part.added", f'{where},"part":{_EMPTY_PART}'))
        return batch

    def _closing(self, batch: list[bytes], text: str, item_id: str, where: str) -> None:
        """Add the events that close the stream to ``batch``: the done events and the terminal
        one, or only ``response.failed`` when the run failed."""
        if not self.ended:
            self._check_output(text)
        if self.ended:  # failed
            batch.append(self.response_frame("response.failed"))
            return
        text_json = json_value(text)
        batch.append(self._event(
            "response.output_text.done", f'{where},"text":{text_json},"logprobs":[]'
        ))
        batch.append(self._event(
            "response.content_part.done",
            f'{where},"part":{{"type":"output_text","text":{text_json},'
            '"annotations":[],"logprobs":[]}',
        ))
        output_json, _ = self._finish(text, item_id, text_json)
        item_json = output_json[1:-1]  # the output list holds just this item
        batch.append(self._event(
            "response.output_item.done", f',"output_index":0,"item":{item_json}'
        ))
        self.final_json = self.json()
        batch.append(self.response_frame(f"response.{self.response['status']}", self.final_json))

    # --- without streaming -------------------------------------------------------------------

    async def complete(self) -> dict[str, Any]:
        """Run to the end without streaming; returns the final response."""
        self._join()
        self.task = asyncio.current_task()
        try:
            chunks = self.agent(self.ctx)
            self.response["status"] = "in_progress"
            pieces: list[str] = []
            try:
                async for chunk in chunks:
                    if chunk.__class__ is str and chunk or _is_text(chunk):
                        pieces.append(chunk)
            finally:
                await chunks.aclose()
        except (Exception, asyncio.CancelledError) as exc:
            self._fail_with(exc)
        else:
            text = "".join(pieces)
            if self._check_output(text):
                self._finish(text, new_id("msg"))
        finally:
            self._leave()
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

    def _finish(self, text: str, item_id: str, text_json: str | None = None) -> tuple[str, str]:
        """Complete the response with ``text`` (``json_value(text)`` when known); returns the
        JSON of its output and usage."""
        incomplete = self.ctx.usage.incomplete_reason
        status = "incomplete" if incomplete else "completed"
        done_item = message_item(text, status=status, item_id=item_id)
        response = self.response
        tokens = self.ctx.usage
        response["output"] = [done_item]
        response["usage"] = usage(tokens.input_tokens, tokens.output_tokens)
        response["status"] = status
        self.finished_json = finished = (
            f"[{message_item_json(item_id, status, text_json or json_value(text))}]",
            usage_json(tokens.input_tokens, tokens.output_tokens),
        )
        if incomplete:
            response["incomplete_details"] = {"reason": incomplete}
        else:
            response["completed_at"] = int(time.time())
        self.output_item = done_item
        self._end()
        return finished

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


async def _abandon(step: Any, paused_on: Any) -> None:
    """Cancel an agent step paused on ``paused_on`` and let its clean-up run to the end."""
    try:
        await Resume(step, paused_on, throw=asyncio.CancelledError())
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
