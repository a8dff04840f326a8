"""The HTTP surface of the agent container. The route table at the end is the whole contract."""

from __future__ import annotations

import json
import logging
import os
import time
import weakref
from functools import partial
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from . import agent as user_agent
from .context import AgentContext
from .errors import (
    APIError,
    BadGateway,
    Conflict,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    UnsupportedMediaType,
)
from .formats import INVALID_OUTPUT
from .ids import is_valid_id, new_id
from .inputs import compile_inputs
from .logs import AccessLog
from .objects import new_response
from .protocol import CreateRequest, parse_create_request
from .providers import load_provider
from .runs import SHUTTING_DOWN, AgentFunction, BackgroundRun, ResponseRun
from .settings import Settings
from .sse import EventStreamResponse
from .store import ResponseStore, StoredResponse

logger = logging.getLogger(__name__)
access_log = AccessLog(logging.getLogger(f"{__package__}.access"))

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
HEALTH_PATHS = frozenset({"/readiness", "/ready", "/liveness", "/health", "/ping"})


class JSONBody(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return _dumps(content).encode()


def failure_response(response: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    """The HTTP error for a response that failed without streaming (503 when shutting down)."""
    error = response["error"]
    kind = {SHUTTING_DOWN[0]: ServiceUnavailable, INVALID_OUTPUT: BadGateway}.get(
        error["code"], APIError
    )
    return error_response(kind(error["message"], code=error["code"]), headers)


def error_response(error: APIError, headers: dict[str, str] | None = None) -> Response:
    return Response(
        error.body(), status_code=error.status, media_type="application/json", headers=headers
    )


class AgentServer:
    """State shared by every request: settings, the model provider, the response store and the
    drain flag that SIGTERM sets."""

    def __init__(self, settings: Settings, agent: AgentFunction | None = None) -> None:
        self.settings = settings
        self.inputs = compile_inputs(settings)  # SettingsError if agent.yaml's templates are bad
        self.agent = agent or user_agent.respond
        self.provider = load_provider(settings)
        self.store = ResponseStore(settings.response_store_size)
        self.draining = False
        self.in_flight = 0  # requests being served (health checks excluded)
        self.background_runs: set[BackgroundRun] = set()
        self.runs: weakref.WeakSet[ResponseRun] = weakref.WeakSet()  # for abort_runs()

    def abort_runs(self) -> int:
        """End every run still going as failed (``server_shutting_down``); how many there were."""
        return sum(run.abort() for run in list(self.runs))

    @property
    def busy(self) -> int:
        """Work a SIGTERM drain waits for: requests in flight and background runs going on."""
        return self.in_flight + len(self.background_runs)

    # --- Responses -------------------------------------------------------------------------

    async def create_response(self, request: Request) -> Response:
        if self.draining:
            raise ServiceUnavailable("The agent is shutting down; retry on another instance.")
        create = parse_create_request(await read_json(request, self.settings.max_request_bytes))
        run, entry = self._start(create, request)
        request.state.response_id = run.response["id"]
        headers = {"x-agent-session-id": run.ctx.session_id}
        if create.background:
            background = BackgroundRun(run)
            entry.run = background
            self.store.put(run.response["id"], entry)
            self.background_runs.add(background)
            background.task.add_done_callback(lambda _: self.background_runs.discard(background))
            if create.stream:
                return EventStreamResponse(
                    background.follow(),
                    keepalive=self.settings.sse_keepalive_interval,
                    headers=_raw_headers(headers),
                )
            return JSONBody(run.response, headers=headers)
        if create.stream:
            return EventStreamResponse(
                run.stream(done_marker=True),
                keepalive=self.settings.sse_keepalive_interval,
                headers=_raw_headers(headers),
            )
        response = await run.complete()
        if response["status"] == "failed":
            return failure_response(response, headers)
        return JSONBody(response, headers=headers)

    def _start(self, create: CreateRequest, request: Request) -> tuple[ResponseRun, StoredResponse]:
        response_id = (
            request.headers.get("x-agent-response-id") or create.response_id or new_id("resp")
        )
        if not is_valid_id(response_id):
            raise InvalidRequest(
                "A response id may hold only letters, digits, '_' and '-' (at most 128).",
                param="response_id",
            )
        if response_id in self.store:
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
            or request.headers.get("x-agent-session-id")
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
        ctx = AgentContext(
            instructions=instructions,
            conversation=history + items,
            structured_inputs=values,
            tools=tools,
            metadata=metadata,
            response_id=response_id,
            session_id=session_id,
            model=settings.model_name,
            provider=self.provider,
            temperature=temperature,
            top_p=top_p,
            max_output_tokens=create.max_output_tokens,
            response_format=text_format,
        )
        response = new_response(create, response_id=response_id, model=settings.model_name,
                                instructions=instructions, temperature=temperature, top_p=top_p,
                                text_format=text_format, metadata=metadata)
        entry = StoredResponse(
            response=response,
            inputs=create.items if create.store else [],
            history=ctx.conversation,
        )
        run = ResponseRun(response, ctx, self.agent)
        run.on_end = partial(self._remember, run, entry)
        self.runs.add(run)
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
                entry.run.follow(starting_after), keepalive=self.settings.sse_keepalive_interval
            )
        return JSONBody(entry.response)

    async def delete_response(self, request: Request) -> Response:
        entry = self._lookup(request)
        if entry.run is not None and not entry.run.finished:
            await entry.run.cancel()
        self.store.delete(entry.response["id"])
        return JSONBody({"id": entry.response["id"], "object": "response.deleted", "deleted": True})

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
        create = parse_create_request(await read_json(request, self.settings.max_request_bytes))
        create.stream = create.background = False
        run, entry = self._start(create, request)
        response = await run.complete()
        if response["status"] == "failed":
            return failure_response(response)
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

    def routes(self) -> list[Route]:
        responses = [
            Route("/responses", self.create_response, methods=["POST"]),
            Route("/responses/{response_id}", self.get_response, methods=["GET"]),
            Route("/responses/{response_id}", self.delete_response, methods=["DELETE"]),
            Route("/responses/{response_id}/cancel", self.cancel_response, methods=["POST"]),
            Route("/responses/{response_id}/input_items", self.list_input_items, methods=["GET"]),
        ]
        aliases = [
            Route("/v1" + route.path, route.endpoint, methods=route.methods - {"HEAD"})
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
        ]


# --- request helpers -------------------------------------------------------------------------


async def read_json(request: Request, limit: int) -> Any:
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaType(
            f"Content-Type must be application/json; got {content_type or 'none'!r}.",
            param="content-type",
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
    # Read straight from ASGI ``receive``: most bodies arrive in one message.
    chunks = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    try:
        return json.loads(chunks[0] if len(chunks) == 1 else b"".join(chunks))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(
            f"The request body is not valid JSON: {exc}.", code="invalid_json"
        ) from None
    except RecursionError:  # nesting deeper than the parser's recursion limit
        raise InvalidRequest(
            "The request body is nested too deeply.", code="invalid_json"
        ) from None


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


def _raw_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(key.encode(), value.encode()) for key, value in headers.items()]


# --- errors and the access log -----------------------------------------------------------------


async def api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    headers = None
    if isinstance(exc, ServiceUnavailable):
        headers = {"connection": "close"}
    elif isinstance(exc, Conflict):  # replaying the same request cannot succeed
        headers = {"x-should-retry": "false"}
    return error_response(exc, headers)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        error: APIError = MethodNotAllowed(
            f"Method {request.method} is not allowed on {request.url.path}.",
        )
        return error_response(error, exc.headers)
    if exc.status_code == 404:
        return error_response(NotFound(f"No route for {request.method} {request.url.path}."))
    error = InvalidRequest(str(exc.detail))
    error.status = exc.status_code
    return error_response(error, exc.headers)


async def unexpected_error(request: Request, exc: Exception) -> Response:
    logger.error("unhandled error", exc_info=exc)
    return error_response(APIError("The server had an error while processing your request."))


class RequestLog:
    """Pure ASGI middleware: request id, in-flight count and one JSON access-log line."""

    def __init__(self, app, server: AgentServer) -> None:
        self.app = app
        self.server = server

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = None
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                request_id = value.decode("latin-1")[:128]
                break
        request_id = request_id or new_id("req")
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 500
        tracked = scope["path"] not in HEALTH_PATHS
        request_id_header = (b"x-request-id", request_id.encode("latin-1"))

        async def send_with_id(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), request_id_header]
            await send(message)

        start = time.perf_counter()
        if tracked:
            self.server.in_flight += 1
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if tracked:
                self.server.in_flight -= 1
            if (tracked or status >= 400) and access_log.enabled():
                access_log.write(
                    {
                        "request_id": request_id,
                        "response_id": state.get("response_id"),
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "latency_ms": round((time.perf_counter() - start) * 1000, 3),
                    }
                )


def create_app(settings: Settings | None = None, agent: AgentFunction | None = None) -> Starlette:
    """Build the ASGI app. Tests pass their own ``settings`` and ``agent``."""
    settings = settings or Settings.from_env(os.environ)
    server = AgentServer(settings, agent)
    app = Starlette(
        routes=server.routes(),
        middleware=[Middleware(RequestLog, server=server)],
        exception_handlers={
            APIError: api_error,
            HTTPException: http_error,
            Exception: unexpected_error,
        },
    )
    app.state.server = server
    return app
