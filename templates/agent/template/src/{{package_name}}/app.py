"""The HTTP surface of the agent container. The route table at the end is the whole contract."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from functools import partial
from types import SimpleNamespace
from typing import Any

from . import agent as user_agent
from .context import AgentContext
from .errors import (
    APIError,
    BadGateway,
    Conflict,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    UnsupportedMediaType,
)
from .formats import INVALID_OUTPUT
from .ids import is_valid_id, new_id
from .inputs import compile_inputs
from .logs import AccessLog
from .objects import dumps, new_response, response_segments
from .protocol import CreateRequest, parse_create_request
from .providers import load_provider
from .routing import (
    ASGIApp,
    ClientDisconnect,
    Receive,
    Request,
    Response,
    Route,
    Router,
    Scope,
    Send,
    encode_headers,
    error_headers,
    error_response,
    send_json,
)
from .runs import SHUTTING_DOWN, AgentFunction, BackgroundRun, ResponseRun
from .settings import Settings
from .sse import EventStreamResponse, Resume
from .store import ResponseStore, StoredResponse

logger = logging.getLogger(__name__)
access_log = AccessLog(logging.getLogger(f"{__package__}.access"))

HEALTH_PATHS = frozenset({"/readiness", "/ready", "/liveness", "/health", "/ping"})
CREATE_PATHS = frozenset({"/responses", "/v1/responses"})  # POST: the hot route


class JSONBody(Response):
    """A JSON answer made from data."""

    __slots__ = ()

    def render(self, content: Any) -> bytes:
        return dumps(content).encode()


# The HTTP error of a response that failed without streaming, by its code; else a 500.
_FAILURE_ERRORS: dict[str, type[APIError]] = {
    SHUTTING_DOWN[0]: ServiceUnavailable, INVALID_OUTPUT: BadGateway,
}


def failure_error(response: dict[str, Any]) -> APIError:
    """The HTTP error for a response that failed without streaming (503 when shutting down)."""
    error = response["error"]
    return _FAILURE_ERRORS.get(error["code"], APIError)(error["message"], code=error["code"])


def _session_header(session_id: str) -> list[tuple[bytes, bytes]]:
    """``x-agent-session-id`` as a JSON answer carries it: latin-1, as every JSON answer (so a
    header's id goes back byte for byte), or UTF-8 for a body's id that latin-1 cannot write."""
    try:
        return [(b"x-agent-session-id", session_id.encode("latin-1"))]
    except UnicodeEncodeError:
        return [(b"x-agent-session-id", session_id.encode())]


class AgentServer:
    """State shared by every request: settings, the model provider, the response store and the
    drain flag that SIGTERM sets."""

    def __init__(self, settings: Settings, agent: AgentFunction | None = None) -> None:
        self.settings = settings
        # SettingsError if agent.yaml's templates are bad (Settings.from_env has checked them).
        self.inputs = settings.input_plan or compile_inputs(settings)
        self.agent = agent or user_agent.respond
        self.provider = load_provider(settings)
        # None unless an exporter is configured: then the agent, the provider and (in
        # create_app) the app are wrapped at start-up, and _start() tells it about each run.
        self.telemetry = None
        if settings.telemetry is not None:
            from .telemetry import start_telemetry

            self.telemetry = start_telemetry(settings.telemetry, settings)
            if self.telemetry is not None:
                self.agent = self.telemetry.wrap_agent(self.agent)
                self.provider = self.telemetry.wrap_provider(self.provider)
        self.store = ResponseStore(settings.response_store_size)
        self.draining = False
        self.in_flight = 0  # requests being served (health checks excluded)
        self.background_runs: set[BackgroundRun] = set()
        self.runs: set[ResponseRun] = set()  # runs going on, for abort_runs()
        self.claimed: set[str] = set()  # caller-chosen response ids of requests going on
        self._plain_segments: tuple[str, ...] | None = None  # see objects.response_segments
        self._openapi: bytes | None = None  # GET /openapi.json, once asked for

    def abort_runs(self) -> int:
        """End every run still going as failed (``server_shutting_down``); how many there were."""
        return sum(run.abort() for run in list(self.runs))

    @property
    def busy(self) -> int:
        """Work a SIGTERM drain waits for: requests in flight and background runs going on."""
        return self.in_flight + len(self.background_runs)

    # --- Responses -------------------------------------------------------------------------

    async def create_response(self, scope: Scope, receive: Receive, send: Send,
                              trailing: tuple[tuple[bytes, bytes], ...] = (),
                              headers: dict[bytes, bytes] | None = None) -> None:
        """``POST /responses``, as a raw ASGI handler: the route every answer goes through, so it
        skips the request and response objects. It answers API errors itself (as the router
        would), sends ``trailing`` headers last, and records the status it sent and the
        response id in ``scope["state"]`` for the request log. ``headers`` are
        ``_first_values(scope["headers"])`` when the caller has them."""
        state = scope.setdefault("state", {})
        try:  # API errors come from here: after _start, failures are the response's own
            if self.draining:
                raise ServiceUnavailable("The agent is shutting down; retry on another instance.")
            if headers is None:
                headers = _first_values(scope["headers"])
            create = parse_create_request(await read_json(receive, headers,
                                                          self.settings.max_request_bytes))
            run, entry = self._start(create, _latin1(headers.get(b"x-agent-response-id")),
                                     _latin1(headers.get(b"x-agent-session-id")))
        except APIError as exc:
            state["status"] = exc.status
            await send_json(send, exc.status, exc.body(), encode_headers(error_headers(exc)),
                            trailing)
            return
        except ClientDisconnect:  # gone before its body had arrived: nobody to answer
            state["status"] = CLIENT_CLOSED
            return
        state["response_id"] = response_id = run.response["id"]
        session_id = run.ctx.session_id
        try:
            if create.background:
                await self._background(scope, receive, send, run, entry, create.stream,
                                       trailing, state)
                return
            if create.stream:
                await self._stream(scope, receive, send, run.stream(done_marker=True),
                                   session_id, trailing, state)
                if run.final_json is not None:
                    entry.settle(run.final_json)
                return
            response = await complete_or_cancel(run, receive)
            if response is None:  # the client went away: nobody to answer
                state["status"] = CLIENT_CLOSED
                return
            session = _session_header(session_id)
            if response["status"] == "failed":
                error = failure_error(response)
                state["status"] = error.status
                await send_json(send, error.status, error.body(), session, trailing)
                return
            text = run.json()
            entry.settle(text)
            state["status"] = 200
            await send_json(send, 200, text.encode(), session, trailing)
        finally:  # a caller's id is claimed while its request runs (see _start)
            self.claimed.discard(response_id)

    async def _background(self, scope: Scope, receive: Receive, send: Send, run: ResponseRun,
                          entry: StoredResponse, stream: bool,
                          trailing: tuple[tuple[bytes, bytes], ...], state: dict[str, Any]) -> None:
        """A ``background: true`` request: the run goes on by itself, stored at once."""
        background = BackgroundRun(run)
        entry.run = background
        self.store.put(run.response["id"], entry)
        self.background_runs.add(background)
        background.task.add_done_callback(lambda _: self.background_runs.discard(background))
        if stream:
            await self._stream(scope, receive, send, background.follow(), run.ctx.session_id,
                               trailing, state)
            return
        state["status"] = 200
        await send_json(send, 200, run.json().encode(),
                        _session_header(run.ctx.session_id), trailing)

    async def _stream(self, scope: Scope, receive: Receive, send: Send,
                      batches: AsyncIterator[list[bytes]], session_id: str,
                      trailing: tuple[tuple[bytes, bytes], ...], state: dict[str, Any]) -> None:
        # SSE headers are UTF-8 encoded (JSON answers use latin-1).
        headers = [(b"x-agent-session-id", session_id.encode()), *trailing]
        response = EventStreamResponse(
            batches, keepalive=self.settings.sse_keepalive_interval, headers=headers,
            write_timeout=self.settings.write_timeout,
        )
        state["status"] = 200
        await response(scope, receive, send)

    def _start(self, create: CreateRequest, response_id_header: str | None,
               session_id_header: str | None) -> tuple[ResponseRun, StoredResponse]:
        """A run for ``create``; the headers are ``x-agent-response-id`` and
        ``x-agent-session-id`` when the request has them."""
        response_id = response_id_header or create.response_id
        if not response_id:  # a new random id is valid, and no stored response has it
            response_id = new_id("resp")
        elif not is_valid_id(response_id):
            raise InvalidRequest(
                "A response id may hold only letters, digits, '_' and '-' (at most 128).",
                param="response_id",
            )
        elif response_id in self.store or response_id in self.claimed:
            raise Conflict(f"Response '{response_id}' already exists.", param="response_id",
                           code="response_id_conflict")
        history: list[dict[str, Any]] = []
        if create.previous_response_id is not None:
            previous = self.store.get(create.previous_response_id)
            if previous is None:
                raise NotFound(
                    f"Previous response '{create.previous_response_id}' was not found; it may "
                    "have been deleted, evicted from the store, or created with store: false.",
                    param="previous_response_id",
                    code="previous_response_not_found",
                )
            history = previous.history
        settings = self.settings
        inputs = self.inputs
        values = inputs.resolve(create.structured_inputs)
        defaults_only = not create.structured_inputs  # templates pre-rendered at start-up
        if create.instructions is None:
            instructions = inputs.manifest_instructions(values, defaults_only)
        else:
            instructions = inputs.render_request_text(create.instructions, values, "instructions")
        items = inputs.render_messages(create.items, values)
        tools = inputs.manifest_tools(values, defaults_only) + create.tools
        session_id = (
            create.agent_session_id
            or session_id_header
            or settings.foundry.session_id
            or new_id("sess")
        )
        # The request's sampling, format and metadata win over agent.yaml's defaults.
        temperature = settings.temperature if create.temperature is None else create.temperature
        top_p = settings.top_p if create.top_p is None else create.top_p
        text_format = (create.text or {}).get("format") or settings.response_format
        if text_format is not None:
            text_format = dict(text_format)
        metadata = create.metadata or dict(settings.metadata)
        ctx = AgentContext(  # by position, in field order: 13 keywords cost a microsecond
            instructions,  # instructions
            history + items,  # conversation
            values,  # structured_inputs
            tools,  # tools
            metadata,  # metadata
            response_id,  # response_id
            session_id,  # session_id
            settings.model_name,  # model
            self.provider,  # provider
            temperature,  # temperature
            top_p,  # top_p
            create.max_output_tokens,  # max_output_tokens
            text_format,  # response_format
        )
        response = new_response(create, response_id=response_id, model=settings.model_name,
                                instructions=instructions, temperature=temperature, top_p=top_p,
                                text_format=text_format, metadata=metadata)
        entry = StoredResponse(
            response=response,
            inputs=create.items if create.store else [],
            history=ctx.conversation,
        )
        run = ResponseRun(response, ctx, self.agent, self.runs)
        if create.plain:  # the Response has the defaults: its JSON shares their text
            if self._plain_segments is None:
                self._plain_segments = response_segments(response)
            run.segments = self._plain_segments
        run.on_end = partial(self._remember, run, entry)
        if self.telemetry is not None:
            self.telemetry.run_started(run)
        if response_id_header or create.response_id:
            # Claimed until the request is over (the caller releases it), so a concurrent
            # request with the same id gets 409 before this one is stored. Nothing above
            # awaits: the check and the claim cannot interleave with another request's.
            self.claimed.add(response_id)
        return run, entry

    def _remember(self, run: ResponseRun, entry: StoredResponse) -> None:
        if not run.response["store"]:
            return
        if run.output_item is not None:
            entry.history = entry.history + [run.output_item]
        self.store.put(run.response["id"], entry)

    async def get_response(self, request: Request) -> Response:
        entry = self._lookup(request)
        if request.query_params.get("stream") == "true":
            if entry.run is None:
                raise InvalidRequest(
                    "Only background responses can be streamed again; this one has finished.",
                    param="stream",
                )
            starting_after = _int_param(request, "starting_after", -1, -1, 10**9)
            return EventStreamResponse(
                entry.run.follow(starting_after), keepalive=self.settings.sse_keepalive_interval,
                write_timeout=self.settings.write_timeout,
            )
        return Response(entry.json())

    async def delete_response(self, request: Request) -> Response:
        entry = self._lookup(request)
        response_id = request.path_params["response_id"]  # the id it is stored under
        if entry.run is not None and not entry.run.finished:
            await entry.run.cancel()
        self.store.delete(response_id)
        return JSONBody({"id": response_id, "object": "response.deleted", "deleted": True})

    async def cancel_response(self, request: Request) -> Response:
        entry = self._lookup(request)
        if entry.run is None:
            raise InvalidRequest(
                "Only responses created with background: true can be cancelled.",
                param="response_id",
            )
        if entry.run.finished:
            if entry.response["status"] == "cancelled":
                return JSONBody(entry.response)
            raise InvalidRequest(
                f"The response has already finished with status '{entry.response['status']}'.",
                param="response_id",
            )
        await entry.run.cancel()
        return JSONBody(entry.response)

    async def list_input_items(self, request: Request) -> Response:
        entry = self._lookup(request)
        limit = _int_param(request, "limit", 20, 1, 100)
        order = request.query_params.get("order", "desc")
        if order not in ("asc", "desc"):
            raise InvalidRequest("'order' must be 'asc' or 'desc'.", param="order")
        items = entry.input_items if order == "asc" else entry.input_items[::-1]
        for cursor, param in (("after", 1), ("before", 0)):
            item_id = request.query_params.get(cursor)
            if item_id is None:
                continue
            position = next((i for i, item in enumerate(items) if item["id"] == item_id), None)
            if position is None:
                raise InvalidRequest(f"No input item '{item_id}' in this response.", param=cursor)
            items = items[position + 1 :] if param else items[:position]
        page = items[:limit]
        return JSONBody(
            {
                "object": "list",
                "data": page,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "has_more": len(items) > limit,
            }
        )

    def _lookup(self, request: Request) -> StoredResponse:
        response_id = request.path_params["response_id"]
        entry = self.store.get(response_id)
        if entry is None:
            raise NotFound(f"Response '{response_id}' was not found.", param="response_id")
        return entry

    # --- raw invocation --------------------------------------------------------------------

    async def invoke(self, request: Request) -> Response:
        """``POST /invocations``: the same request fields as /responses, a compact JSON answer."""
        if self.draining:
            raise ServiceUnavailable("The agent is shutting down; retry on another instance.")
        headers = _first_values(request.scope["headers"])
        create = parse_create_request(await read_json(request.receive, headers,
                                                      self.settings.max_request_bytes))
        create.stream = create.background = False
        run, entry = self._start(create, _latin1(headers.get(b"x-agent-response-id")),
                                 _latin1(headers.get(b"x-agent-session-id")))
        try:
            response = await complete_or_cancel(run, request.receive)
        finally:
            self.claimed.discard(run.response["id"])
        if response is None:  # the client went away: what is sent now reaches nobody
            gone = APIError("The client closed the request.", code="client_closed_request")
            return Response(gone.body(), CLIENT_CLOSED)
        if response["status"] == "failed":
            return error_response(failure_error(response))
        output_text = "".join(
            part["text"] for item in response["output"] for part in item["content"]
        )
        return JSONBody(
            {
                "id": response["id"],
                "status": response["status"],
                "output_text": output_text,
                "usage": response["usage"],
            }
        )

    # --- health ----------------------------------------------------------------------------

    async def readiness(self, request: Request) -> Response:
        if self.draining:
            return JSONBody({"status": "draining"}, status_code=503)
        return JSONBody({"status": "ready"})

    async def liveness(self, request: Request) -> Response:
        return JSONBody({"status": "alive"})

    async def ping(self, request: Request) -> Response:
        """AgentCore-style: ``Healthy``, or ``HealthyBusy`` while requests are in flight."""
        return JSONBody({"status": "HealthyBusy" if self.busy else "Healthy"})

    async def openapi(self, request: Request) -> Response:
        """This server's OpenAPI document (openapi.py), written once."""
        if self._openapi is None:
            from .openapi import document

            self._openapi = dumps(document()).encode()
        return Response(self._openapi)

    def routes(self) -> list[Route]:
        responses = [
            Route("/responses", self.create_response, methods=["POST"], raw=True),
            Route("/responses/{response_id}", self.get_response, methods=["GET"]),
            Route("/responses/{response_id}", self.delete_response, methods=["DELETE"]),
            Route("/responses/{response_id}/cancel", self.cancel_response, methods=["POST"]),
            Route("/responses/{response_id}/input_items", self.list_input_items, methods=["GET"]),
        ]
        aliases = [
            Route("/v1" + route.path, route.endpoint, route.methods, raw=route.raw)
            for route in responses
        ]
        return [
            *responses,
            *aliases,
            Route("/invocations", self.invoke, methods=["POST"]),
            Route("/readiness", self.readiness, methods=["GET"]),
            Route("/ready", self.readiness, methods=["GET"]),
            Route("/health", self.readiness, methods=["GET"]),
            Route("/liveness", self.liveness, methods=["GET"]),
            Route("/ping", self.ping, methods=["GET"]),
            Route("/openapi.json", self.openapi, methods=["GET"]),
        ]


# --- request helpers -------------------------------------------------------------------------


CLIENT_CLOSED = 499  # the status the request log records when the client left first (nginx's)


async def complete_or_cancel(run: ResponseRun, receive: Receive) -> dict[str, Any] | None:
    """``await run.complete()``, cancelled when the client disconnects first (then ``None``).

    A run that finishes without pausing (a fast agent) needs no watcher: it is stepped once by
    hand, and only when it pauses does a task start reading ``receive`` for the disconnect."""
    coroutine = run.complete()
    try:
        paused_on = coroutine.send(None)
    except StopIteration as done:
        return done.value
    task = asyncio.current_task()
    gone = asyncio.Event()
    watcher = asyncio.get_running_loop().create_task(_cancel_on_disconnect(receive, task, gone))
    try:
        return await Resume(coroutine, paused_on)
    except asyncio.CancelledError:
        if not gone.is_set():
            raise  # cancelled by the server (shutdown), not by the client
        if hasattr(task, "uncancel"):  # Python 3.11+
            task.uncancel()
        return None
    finally:
        watcher.cancel()


async def _cancel_on_disconnect(receive: Receive, task: asyncio.Task, gone: asyncio.Event) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass  # the body was read already: nothing else should come but the disconnect
    gone.set()
    task.cancel()


def _first_values(raw: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """The request's headers by (lower-case) name; the first one wins."""
    return dict(reversed(raw)) if len(raw) > 1 else dict(raw)


def _latin1(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


def check_body_headers(content_type: bytes | None, content_length: bytes | None,
                       limit: int) -> None:
    """415 unless the body is JSON; 413 when its declared length is over ``limit``."""
    if content_type != b"application/json":
        media_type = (content_type or b"").split(b";", 1)[0].strip().lower()
        if media_type != b"application/json":
            raise UnsupportedMediaType(
                f"Content-Type must be application/json; got {_latin1(content_type) or 'none'!r}.",
                param="content-type",
            )
    if content_length is not None and content_length.isdigit() and int(content_length) > limit:
        raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")


def decode_json(body: bytes) -> Any:
    """The JSON value of ``body``; 400 ``invalid_json`` when it is not JSON, or when a string in
    it holds a lone surrogate (``"\\ud800"``), which no answer or log line could encode."""
    try:
        if body[:1] == b"{" and body[1:2] != b"\x00":
            # What json.loads(body) does, minus its encoding sniffing: this start means UTF-8
            # (strict: UTF-8-encoded surrogates are not text).
            value = json.loads(body.decode("utf-8"))
            if b"\\u" not in body:  # no escapes: no surrogate can have come in
                return value
        else:
            value = json.loads(body)
        _check_text(value)
        return value
    except (ValueError, UnicodeError) as exc:
        raise InvalidRequest(
            f"The request body is not valid JSON: {exc}.", code="invalid_json"
        ) from None
    except RecursionError:  # nesting deeper than the parser's recursion limit
        raise InvalidRequest(
            "The request body is nested too deeply.", code="invalid_json"
        ) from None


def _check_text(value: Any) -> None:
    """UnicodeEncodeError when a string (or key) in the decoded ``value`` is not valid Unicode
    text (a lone surrogate); the slow path of :func:`decode_json`, for bodies with escapes."""
    json.dumps(value, ensure_ascii=False).encode("utf-8")


async def read_json(receive: Receive, headers: dict[bytes, bytes], limit: int) -> Any:
    """The decoded JSON body; ``headers`` are the request's (see :func:`_first_values`)."""
    check_body_headers(headers.get(b"content-type"), headers.get(b"content-length"), limit)
    chunks: list[bytes] = []  # the messages before the last (most bodies arrive in one)
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
        if not message.get("more_body", False):
            return decode_json(b"".join((*chunks, chunk)) if chunks else chunk)
        chunks.append(chunk)


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"'{name}' must be an integer.", param=name) from None
    if not low <= value <= high:
        raise InvalidRequest(f"'{name}' must be between {low} and {high}.", param=name)
    return value


# --- errors and the access log -----------------------------------------------------------------


UNEXPECTED = "The server had an error while processing your request."


class RequestLog:
    """Pure ASGI middleware, outermost: request id, in-flight count, one JSON access-log line,
    and the last-resort answer to an unexpected exception (logged, answered 500 unless an
    answer has started, then raised again for the server to see).

    :class:`AgentApp` sends ``POST /responses`` to :meth:`create`, straight to its raw handler,
    past the router (the handler answers API errors itself)."""

    def __init__(self, app: ASGIApp, server: AgentServer) -> None:
        self.app = app
        self.server = server

    async def create(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /responses``."""
        headers = _first_values(scope["headers"])
        request_id = _request_id(headers.get(b"x-request-id"))
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        server = self.server
        trailing = ((b"x-request-id", request_id.encode("latin-1")),)
        start = time.perf_counter()
        server.in_flight += 1
        try:
            await server.create_response(scope, receive, send, trailing, headers)
        except Exception as exc:
            logger.error("unhandled error", exc_info=exc)
            if "status" not in state:  # nothing sent yet
                state["status"] = 500
                await send_json(send, 500, APIError(UNEXPECTED).body(), [], trailing)
            raise
        finally:
            server.in_flight -= 1
            if access_log.enabled():
                access_log.request(
                    request_id, state.get("response_id"), scope["method"], scope["path"],
                    state.get("status", 500), round((time.perf_counter() - start) * 1000, 3),
                )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Any other HTTP request."""
        request_id = _request_id(_first_value(scope["headers"], b"x-request-id"))
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 500
        started = False
        tracked = scope["path"] not in HEALTH_PATHS
        request_id_header = (b"x-request-id", request_id.encode("latin-1"))

        async def send_with_id(message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status = message["status"]
                started = True
                message["headers"] = [*message.get("headers", ()), request_id_header]
            await send(message)

        start = time.perf_counter()
        if tracked:
            self.server.in_flight += 1
        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:  # gone before its body had arrived: nobody to answer
            status = CLIENT_CLOSED
        except Exception as exc:
            logger.error("unhandled error", exc_info=exc)
            if not started:
                await send_json(send_with_id, 500, APIError(UNEXPECTED).body(), [])
            raise
        finally:
            if tracked:
                self.server.in_flight -= 1
            if (tracked or status >= 400) and access_log.enabled():
                access_log.request(
                    request_id, state.get("response_id"), scope["method"], scope["path"],
                    status, round((time.perf_counter() - start) * 1000, 3),
                )


def _first_value(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def _request_id(header: bytes | None) -> str:
    """The caller's ``x-request-id`` (at most 128 characters), else a new one."""
    return header and header.decode("latin-1")[:128] or new_id("req")


class AgentApp:
    """The ASGI app: ``POST /responses`` straight to its raw handler, every other request
    through :class:`RequestLog` and the router. ``state.server`` is the :class:`AgentServer`."""

    def __init__(self, server: AgentServer, routes: list[Route]) -> None:
        self.state = SimpleNamespace(server=server)
        self.routes = routes
        self.request_log = RequestLog(Router(routes), server)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            scope["app"] = self
            if scope["method"] == "POST" and scope["path"] in CREATE_PATHS:
                await self.request_log.create(scope, receive, send)
            else:
                await self.request_log(scope, receive, send)
        elif kind == "lifespan":
            await _lifespan(receive, send)
        else:  # no WebSocket routes: close (uvicorn runs with ws="none" and sends none)
            await send({"type": "websocket.close", "code": 1000, "reason": ""})


async def _lifespan(receive: Receive, send: Send) -> None:
    """The ASGI lifespan protocol, for servers that run it: nothing to start or stop."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def create_app(settings: Settings | None = None, agent: AgentFunction | None = None) -> AgentApp:
    """Build the ASGI app. Tests pass their own ``settings`` and ``agent``."""
    settings = settings or Settings.from_env(os.environ)
    server = AgentServer(settings, agent)
    app = AgentApp(server, server.routes())
    if server.telemetry is not None:  # a server span around each request (telemetry/otel.py)
        return server.telemetry.instrument(app)
    return app
