"""A local stand-in for Anthropic's Claude Managed Agents API (beta ``managed-agents-2026-04-01``),
checked like the real service, with the official SDK (``anthropic``) as the reference for
every body (reference ``anthropic-managed-agents.md``).

It serves, on 127.0.0.1 (one ephemeral port, standing in for ``https://api.anthropic.com``)::

    POST   /v1/environments                     create      (EnvironmentCreateParams)
    GET    /v1/environments                     list        ?limit, page, include_archived
    GET    /v1/environments/{id}                retrieve
    POST   /v1/environments/{id}                update      (EnvironmentUpdateParams)
    DELETE /v1/environments/{id}                delete      409 while a session references it
    POST   /v1/environments/{id}/archive        archive
    POST   /v1/agents                           create      (AgentCreateParams)
    GET    /v1/agents                           list        ?limit, page, include_archived,
                                                            created_at[gte|lte]
    GET    /v1/agents/{id}                      retrieve    ?version
    POST   /v1/agents/{id}                      update      (AgentUpdateParams)
    POST   /v1/agents/{id}/archive              archive
    GET    /v1/agents/{id}/versions             versions    ?limit, page
    POST   /v1/sessions                         create      (SessionCreateParams)
    GET    /v1/sessions                         list        ?agent_id, agent_version, statuses[],
                                                            include_archived, order, limit, page
    GET    /v1/sessions/{id}                    retrieve                      (key or Bearer)
    POST   /v1/sessions/{id}                    update      (SessionUpdateParams)
    DELETE /v1/sessions/{id}                    delete
    POST   /v1/sessions/{id}/archive            archive
    GET    /v1/sessions/{id}/events             list        ?order, types[], limit, page (Bearer ok)
    POST   /v1/sessions/{id}/events             send        (EventSendParams)    (Bearer ok)
    GET    /v1/sessions/{id}/events/stream      SSE stream                        (Bearer ok)
    GET    /v1/environments/{id}/work/poll      ?block_ms (1-999), reclaim_older_than_ms  (Bearer)
    GET    /v1/environments/{id}/work           list                                      (Bearer)
    GET    /v1/environments/{id}/work/stats                                               (Bearer)
    GET    /v1/environments/{id}/work/{wid}                                               (Bearer)
    POST   /v1/environments/{id}/work/{wid}     metadata patch (WorkUpdateParams)         (Bearer)
    POST   /v1/environments/{id}/work/{wid}/ack        queued -> starting                 (Bearer)
    POST   /v1/environments/{id}/work/{wid}/heartbeat  ?desired_ttl_seconds,
                                                       expected_last_heartbeat (412)      (Bearer)
    POST   /v1/environments/{id}/work/{wid}/stop       {force}                            (Bearer)

The SDK's ``?beta=true`` suffix is accepted and ignored. Control-plane routes need ``x-api-key``
(401 ``authentication_error`` otherwise), ``anthropic-version: 2023-06-01`` and an
``anthropic-beta`` naming ``managed-agents-2026-04-01`` (400). Worker routes take only
``Authorization: Bearer <environment key>`` of that environment (``environment_key(id)``, as if
generated in the Console) or, for a work item's own heartbeat/stop/retrieve, the sessions token
carried in its ``secret``; session retrieve and events take the API key or either Bearer (the
SDK's ``EnvironmentWorker`` uses the sessions token from the secret when it can decode one, as
the real one does). Errors have Anthropic's envelope ``{"type": "error", "error": {"type",
"message"}, "request_id"}`` and a ``request-id`` header; 409s use ``invalid_request_error`` (the
SDK's ``ErrorType`` has no conflict type; branch on the status).

Bodies: every create/update/send body is validated with pydantic against the SDK's own param
TypedDicts (strict: no coercion, unknown keys refused, ``Iterable`` read as a list); what they
refuse is recorded in ``violations`` and answered 400 naming the dotted field. Then the service's
documented rules: limits (names 1-256, system <= 100000, description <= 2048, tools <= 128,
mcp_servers <= 20 and each referenced by an ``mcp_toolset``, skills <= 20, metadata 16 pairs,
keys <= 64, values <= 512), unique environment names (409), limited networking with packages
but no ``allow_package_managers`` (400), bare ``allowed_hosts``, no config type change on update,
no ``file``/``github_repository`` resources on self_hosted sessions, archived resources are
read-only. Every answer is checked against the SDK's response models (a failure is a violation:
a bug of this server).

Agents are versioned: an update that changes nothing returns the same version; otherwise
``version + 1``; ``version`` in the body is an optimistic-concurrency check (409).

Sessions run a scripted "model" on each ``user.message`` text T: ``session.status_running``
and ``span.model_request_start`` first, then

- ``run: <command>`` (self_hosted environment): ``agent.tool_use`` ``bash`` ``{"command": ...}``;
  the session waits (running) for the worker's ``user.tool_result``, then ``agent.message``
  ``tool output: <result text>`` and idle ``end_turn``;
- ``confirm: <command>``: ``agent.tool_use`` with ``evaluated_permission: "ask"``, then idle with
  ``requires_action`` naming it; ``user.tool_confirmation`` allow runs it (self_hosted: waits
  for the worker's result like ``run:``), deny answers ``denied: <command>``;
- ``error``: ``session.error`` (``model_overloaded_error``, terminal), idle ``retries_exhausted``;
- anything else: ``agent.message`` ``echo: `` and ``T`` (two events) and idle ``end_turn``.

The event stream delivers events emitted after it opened (``event: <type>`` / ``data: <json>``)
with ``event: ping`` keep-alives every ``ping_interval`` seconds.

Self-hosted work queue: creating a session on a self_hosted environment queues a work item
(``secret``: URL-safe base64 JSON carrying a ``sessions_token``); a ``user.message`` on a
session with no live item (stopped) queues a new one. ``lease_ttl`` sets the TTL heartbeats get.

Use it through the ``anthropic_contract`` fixture (``-p tests.anthropic_contract``)::

    def test_deploy(anthropic_contract):
        contract = anthropic_contract(page_size=2)
        env = {"ANTHROPIC_API_KEY": contract.api_key, "ANTHROPIC_BASE_URL": contract.url}
        contract.fail("POST", r"^/v1/agents$", 429)
        ...
        assert contract.violations == []
"""

from __future__ import annotations

import base64
import functools
import json
import queue
import re
import secrets
import threading
import time
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from tests.contract_server import (
    Faults,
    excerpt,
    read_body,
    serve,
    shut,
    stopped_after,
    unavailable,
    url_of,
)

API_VERSION = "2023-06-01"
BETA = "managed-agents-2026-04-01"
DEFAULT_PAGE_SIZE = 2  # small on purpose: clients must follow next_page
MAX_LIMIT = 100
MAX_EVENT_LIMIT = 1000  # the SDK's session tool runner lists events with limit=1000
DEFAULT_LEASE_TTL = 90  # seconds; what the SDK worker assumes before the first heartbeat
DEFAULT_RECLAIM_MS = 5000
NO_HEARTBEAT = "NO_HEARTBEAT"
# Documented limits (reference §2.2, §3.2).
NAME_MAX = 256
SYSTEM_MAX = 100_000
DESCRIPTION_MAX = 2048
TOOLS_MAX = 128
MCP_SERVERS_MAX = 20
SKILLS_MAX = 20
METADATA_PAIRS, METADATA_KEY_MAX, METADATA_VALUE_MAX = 16, 64, 512
INITIAL_EVENTS_MAX = 50
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "invalid_request_error",
    412: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
DEFAULT_MESSAGES = {
    429: "Number of requests has exceeded your rate limit. Please try again later.",
    500: "Internal server error",
    529: "Overloaded",
}
WORK_LIVE = ("queued", "starting", "active", "stopping")
_STREAMED = object()  # the answer was an event stream, already written


# --- the SDK's types ---------------------------------------------------------------------------


def _sdk() -> Any:
    import anthropic

    return anthropic


def _listify(tp: Any, memo: dict[Any, Any]) -> Any:
    """``tp`` with every ``Iterable``/``Sequence``/``SequenceNotStr`` read as ``List`` (pydantic
    validates ``Iterable`` lazily, after the fact and without the field's path) and every
    TypedDict copied with ``extra="forbid"`` (unknown keys are refused, not dropped)."""
    import collections.abc as cabc

    import typing_extensions
    from pydantic import ConfigDict

    if typing_extensions.is_typeddict(tp):
        if tp in memo:
            return memo[tp]
        hints = typing.get_type_hints(tp, include_extras=True)
        fields = {name: _listify(hint, memo) for name, hint in hints.items()}
        copy = typing_extensions.TypedDict(tp.__name__, fields, total=tp.__total__)  # type: ignore[operator]
        own = getattr(tp, "__pydantic_config__", None)
        copy.__pydantic_config__ = own or ConfigDict(extra="forbid")  # type: ignore[attr-defined]
        memo[tp] = copy
        return copy
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is None or not args:
        return tp
    name = getattr(origin, "__name__", "")
    if origin is typing_extensions.Annotated or origin is typing.Annotated:
        return typing_extensions.Annotated[(_listify(args[0], memo), *tp.__metadata__)]
    if origin in (typing_extensions.Required, typing.Required):
        return typing_extensions.Required[_listify(args[0], memo)]
    if origin in (typing_extensions.NotRequired, typing.NotRequired):
        return typing_extensions.NotRequired[_listify(args[0], memo)]
    if origin is typing.Union:
        return typing.Union[tuple(_listify(a, memo) for a in args)]  # noqa: UP007 (built)
    if origin is typing.Literal:
        return tp
    if origin in (list, cabc.Iterable, cabc.Sequence) or name == "SequenceNotStr":
        return list[_listify(args[0], memo)]  # type: ignore[misc]
    if origin in (dict, cabc.Mapping):
        return dict[args[0], _listify(args[1], memo)]  # type: ignore[misc,valid-type]
    return tp


_BODY_TYPES = {
    # name: (module, TypedDict, keys that are not body fields: headers and path parameters)
    "environment_create": (
        "anthropic.types.beta.environment_create_params",
        "EnvironmentCreateParams",
        (),
    ),
    "environment_update": (
        "anthropic.types.beta.environment_update_params",
        "EnvironmentUpdateParams",
        (),
    ),
    "agent_create": ("anthropic.types.beta.agent_create_params", "AgentCreateParams", ()),
    "agent_update": ("anthropic.types.beta.agent_update_params", "AgentUpdateParams", ()),
    "session_create": ("anthropic.types.beta.session_create_params", "SessionCreateParams", ()),
    "session_update": ("anthropic.types.beta.session_update_params", "SessionUpdateParams", ()),
    "event_send": ("anthropic.types.beta.sessions.event_send_params", "EventSendParams", ()),
    "work_update": (
        "anthropic.types.beta.environments.work_update_params",
        "WorkUpdateParams",
        ("environment_id",),
    ),
    "work_stop": (
        "anthropic.types.beta.environments.work_stop_params",
        "WorkStopParams",
        ("environment_id",),
    ),
}


@functools.cache
def _adapter(kind: str) -> Any:
    import importlib

    import typing_extensions
    from pydantic import TypeAdapter

    module, name, path_keys = _BODY_TYPES[kind]
    params = getattr(importlib.import_module(module), name)
    memo: dict[Any, Any] = {}
    body_type = _listify(params, memo)
    hints = typing.get_type_hints(body_type, include_extras=True)
    kept = {k: v for k, v in hints.items() if k != "betas" and k not in path_keys}
    top = typing_extensions.TypedDict(name, kept, total=params.__total__)  # type: ignore[operator]
    top.__pydantic_config__ = body_type.__pydantic_config__  # type: ignore[attr-defined]
    return TypeAdapter(top)


@dataclass(frozen=True)
class Problem:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def _dotted_path(loc: tuple[Any, ...], data: Any) -> tuple[str, tuple[Any, ...]]:
    """A pydantic error location as the body's dotted path, and the location of each union
    member tag it passed (pydantic puts the member's name between the keys)."""
    path, tags, node = "", [], data
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        if isinstance(part, int) and isinstance(node, list) and 0 <= part < len(node):
            path, node = f"{path}[{part}]", node[part]
        elif isinstance(node, dict) and isinstance(part, str) and (part in node or last):
            path = f"{path}.{part}" if path else part
            node = node.get(part)
        else:
            tags.append(loc[: index + 1])
    return path or "body", tuple(tags)


def body_problems(kind: str, body: Any) -> list[Problem]:
    """What the SDK's param type for ``kind`` refuses in ``body`` (see ``_BODY_TYPES``)."""
    from pydantic import ValidationError

    if not isinstance(body, dict):
        return [Problem("body", "must be a JSON object")]
    try:
        _adapter(kind).validate_python(body, strict=True)
    except ValidationError as exc:
        errors = exc.errors()
    else:
        return []
    # In a union, drop the members whose ``type`` literal does not match (pydantic reports every
    # member); if none matches, say which types are allowed.
    mismatched: set[tuple[Any, ...]] = set()
    expected: dict[str, list[str]] = {}
    for error in errors:
        loc = tuple(error["loc"])
        if error["type"] == "literal_error" and loc and loc[-1] == "type":
            path, tags = _dotted_path(loc, body)
            if tags and tags[-1] == loc[:-1]:
                mismatched.add(tags[-1])
                expected.setdefault(path, []).append(str(error.get("ctx", {}).get("expected")))
    problems: list[Problem] = []
    for error in errors:
        loc = tuple(error["loc"])
        path, tags = _dotted_path(loc, body)
        if any(tag in mismatched for tag in tags):
            continue
        if error["type"] == "extra_forbidden":
            message = "unknown field (not in the SDK's type)"
        elif error["type"] == "missing":
            message = "is required"
        else:
            message = f"{error['msg']} (got {excerpt(error.get('input'))})"
        problems.append(Problem(path, message))
    if not problems:
        for path, options in expected.items():
            problems.append(Problem(path, f"must be one of {', '.join(sorted(set(options)))}"))
    unique: dict[str, Problem] = {}
    for problem in problems:
        unique.setdefault(str(problem), problem)
    return list(unique.values())


@functools.cache
def _answer_adapter(name: str) -> Any:
    from pydantic import TypeAdapter

    beta = _sdk().types.beta
    if name == "event":
        return TypeAdapter(beta.sessions.BetaManagedAgentsSessionEvent)
    for module in (beta, beta.sessions, beta.environments):
        if hasattr(module, name):
            return TypeAdapter(getattr(module, name))
    raise KeyError(name)


def _extras(value: Any, where: str) -> Iterator[str]:
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        for key in value.model_extra or {}:
            yield f"{where}.{key}" if where else key
        for key in type(value).model_fields:
            yield from _extras(getattr(value, key), f"{where}.{key}" if where else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _extras(item, f"{where}[{index}]")


def answer_problems(model: str, answer: Any) -> list[str]:
    """What the SDK's response model ``model`` has against ``answer`` (missing or mistyped
    fields, fields it does not know)."""
    from pydantic import ValidationError

    try:
        parsed = _answer_adapter(model).validate_python(answer)
    except ValidationError as exc:
        return [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
    return [f"{path}: unknown to the SDK" for path in _extras(parsed, "")]


# --- records -----------------------------------------------------------------------------------


@dataclass
class Recorded:
    """One request as the server saw it (secrets included: tests check the client elsewhere)."""

    method: str
    path: str  # without the query
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: Any  # parsed JSON, or None
    raw: bytes
    status: int = 0


@dataclass
class _Fault:
    method: str | None
    pattern: re.Pattern[str]
    remaining: int | None
    status: int
    body: Any
    headers: dict[str, str]


class Reply(Exception):
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def _request_id() -> str:
    return "req_011CZ" + secrets.token_hex(10)


def api_error(status: int, message: str, **extra: Any) -> Reply:
    """Anthropic's error envelope."""
    error = {"type": ERROR_TYPES.get(status, "api_error"), "message": message, **extra}
    return Reply(status, {"type": "error", "error": error, "request_id": _request_id()})


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


_ALPHABET = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _new_id(prefix: str) -> str:
    return prefix + "_011CZ" + "".join(secrets.choice(_ALPHABET) for _ in range(19))


@dataclass
class _Session:
    """What the server keeps of a session besides its JSON."""

    id: str
    events: list[dict[str, Any]] = field(default_factory=list)
    inbox: queue.Queue[dict[str, Any] | None] = field(default_factory=queue.Queue)
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)  # tool_use id -> event
    thread: threading.Thread | None = None
    gone: bool = False


# --- the server --------------------------------------------------------------------------------


class AnthropicContract:
    """The contract server; ``start()``/``stop()``, or use the ``anthropic_contract`` fixture."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        lease_ttl: int = DEFAULT_LEASE_TTL,
        ping_interval: float = 0.5,
        step_delay: float = 0.0,
    ) -> None:
        self.api_key = api_key or "sk-ant-api03-contract-" + secrets.token_urlsafe(24)
        self.page_size = page_size
        self.lease_ttl = lease_ttl
        self.ping_interval = ping_interval
        self.step_delay = step_delay  # seconds between scripted events (streaming is observable)
        self.requests: list[Recorded] = []
        self.violations: list[str] = []
        self.environments: dict[str, dict[str, Any]] = {}
        self.agents: dict[str, list[dict[str, Any]]] = {}  # id -> versions, oldest first
        self.sessions: dict[str, dict[str, Any]] = {}
        self.work: dict[str, dict[str, Any]] = {}  # id -> work item (without its secret)
        self._keys: dict[str, str] = {}  # environment id -> environment key
        self._work_secrets: dict[str, str] = {}  # work id -> secret
        self._sessions_tokens: dict[str, str] = {}  # sessions token -> work id
        self._heartbeats: dict[str, str] = {}  # work id -> last_heartbeat value
        self._delivered: dict[str, float] = {}  # work id -> when a poll handed it out
        self._pollers: dict[str, float] = {}  # worker id -> last poll
        self._state: dict[str, _Session] = {}
        self._faults: Faults[_Fault] = Faults()
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    # --- what tests use ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the contract server first"
        return url_of(self._server)

    def environment_key(self, environment_id: str) -> str:
        """The environment key for ``environment_id`` (generated once, as in the Console)."""
        with self._lock:
            if environment_id not in self.environments:
                raise KeyError(f"no environment {environment_id}")
            if environment_id not in self._keys:
                self._keys[environment_id] = "sk-ant-oat01-contract-" + secrets.token_urlsafe(32)
            return self._keys[environment_id]

    def events(self, session_id: str) -> list[dict[str, Any]]:
        """The session's events so far, oldest first."""
        with self._lock:
            return [dict(e) for e in self._state[session_id].events]

    def calls(self, method: str | None, path_regex: str) -> list[Recorded]:
        """The recorded requests of ``method`` (None: any) whose path matches ``path_regex``."""
        pattern = re.compile(path_regex)
        return [
            r
            for r in self.requests
            if (method is None or r.method == method.upper()) and pattern.search(r.path)
        ]

    def fail(
        self,
        method: str | None,
        path_regex: str,
        status: int,
        *,
        times: int | None = 1,
        body: Any = None,
        headers: dict[str, str] | None = None,
        after: int = 0,
    ) -> None:
        """Answer the next ``times`` (None: all; the first ``after`` pass) matching requests with
        ``status`` and Anthropic's
        error envelope (or ``body``). A 429 carries ``retry-after: 0`` unless ``headers`` say
        otherwise. Faults apply after authentication."""
        default_headers = {"retry-after": "0"} if status == 429 else {}
        self._faults.add(
            _Fault(
                method.upper() if method else None,
                re.compile(path_regex),
                times,
                status,
                body,
                {**default_headers, **(headers or {})},
            ),
            after,
        )

    def clear_faults(self) -> None:
        self._faults.clear()

    def work_for(self, session_id: str) -> list[dict[str, Any]]:
        """The session's work items, oldest first."""
        with self._lock:
            return [dict(w) for w in self.work.values() if w["data"]["id"] == session_id]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
        """Wait until ``predicate()`` (called with the server's lock held) is true."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.1))
            return True

    # --- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> AnthropicContract:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> AnthropicContract:
        self._server = serve(self._handle, poll_interval=0.01)
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()
            for state in self._state.values():
                state.inbox.put(None)
        shut(self._server)

    # --- dispatch ---------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        raw = read_body(handler, headers)
        query = parse_qs(parts.query, keep_blank_values=True)
        query.pop("beta", None)
        invalid = False
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload, invalid = None, True
        record = Recorded(handler.command, parts.path, query, headers, payload, raw)
        with self._lock:
            self.requests.append(record)
        try:
            if invalid:
                raise api_error(400, "The request body is not valid JSON.")
            answer = self._dispatch(handler, record)
            if answer is not _STREAMED:
                self._send_json(handler, record, 200, answer)
        except Reply as reply:
            self._send_json(handler, record, reply.status, reply.body, reply.headers)
        except (BrokenPipeError, ConnectionResetError):
            return
        except Exception as exc:  # a bug of this server: say so rather than drop the connection
            self._violation(f"contract server error on {record.method} {record.path}: {exc!r}")
            reply = api_error(500, f"contract server error: {exc!r}")
            self._send_json(handler, record, reply.status, reply.body)

    def _send_json(
        self,
        handler: BaseHTTPRequestHandler,
        record: Recorded,
        status: int,
        body: Any,
        headers: dict[str, str] | None = None,
    ) -> None:
        record.status = status
        data = json.dumps(body).encode()
        request_id = body.get("request_id") if isinstance(body, dict) else None
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("request-id", request_id or _request_id())
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _violation(self, text: str) -> None:
        with self._lock:
            self.violations.append(text)

    def _checked(self, model: str, answer: Any) -> Any:
        for problem in answer_problems(model, answer):
            self._violation(f"this server's {model} answer: {problem}")
        return answer

    def _dispatch(self, handler: BaseHTTPRequestHandler, record: Recorded) -> Any:
        route, params = _route(record.method, record.path)
        if route is None:
            raise api_error(404, f"{record.method} {record.path} is not a route of this API.")
        self._authenticate(record, route, params)
        fault = self._faults.take(
            lambda f: f.method in (None, record.method) and bool(f.pattern.search(record.path))
        )
        if fault is not None:
            if fault.body is not None:
                raise Reply(fault.status, fault.body, dict(fault.headers))
            message = DEFAULT_MESSAGES.get(fault.status, f"injected fault {fault.status}")
            reply = api_error(fault.status, message)
            reply.headers.update(fault.headers)
            raise reply
        body: dict[str, Any] = {}
        if route.body is not None:
            body = self._body(record, route.body)
        elif record.method == "POST" and record.body not in (None, {}):
            self._violation(f"{route.name}: a body was sent where the SDK sends none")
        if route.name == "events_stream":
            self._stream(handler, record, params["session_id"])
            return _STREAMED
        operation = getattr(self, f"_op_{route.name}")
        return operation(record, params, body)

    def _body(self, record: Recorded, kind: str) -> dict[str, Any]:
        if record.raw and "application/json" not in record.headers.get("content-type", ""):
            raise api_error(400, "content-type must be application/json")
        body = record.body if record.body is not None else {}
        problems = body_problems(kind, body)
        if problems:
            for problem in problems:
                self._violation(f"{record.method} {record.path}: {problem}")
            raise api_error(400, "; ".join(str(p) for p in problems))
        return body

    def _authenticate(self, record: Recorded, route: Route, params: dict[str, str]) -> None:
        headers = record.headers
        bearer = None
        authorization = headers.get("authorization", "")
        if authorization.lower().startswith("bearer "):
            bearer = authorization[7:].strip()
        if route.auth == "worker":
            self._worker_auth(bearer, params)
        elif headers.get("x-api-key") == self.api_key:
            pass
        elif route.auth == "session" and bearer is not None:
            self._session_bearer(bearer, params["session_id"])
        elif "x-api-key" in headers:
            raise api_error(401, "invalid x-api-key")
        elif bearer is not None:
            raise api_error(
                401, "this route takes the organization API key (x-api-key), not a Bearer token"
            )
        else:
            raise api_error(401, "x-api-key header is required")
        version = headers.get("anthropic-version")
        if version != API_VERSION:
            raise api_error(400, f"anthropic-version: expected {API_VERSION}, got {version!r}")
        betas = [b.strip() for b in headers.get("anthropic-beta", "").split(",")]
        if BETA not in betas:
            raise api_error(400, f"this route is in beta: send anthropic-beta: {BETA}")

    def _worker_auth(self, bearer: str | None, params: dict[str, str]) -> None:
        environment_id = params["environment_id"]
        with self._lock:
            key = self._keys.get(environment_id)
            token_work = self._sessions_tokens.get(bearer or "")
        if bearer is None:
            raise api_error(401, "Authorization: Bearer <environment key> is required")
        if key is not None and bearer == key:
            return
        work_id = params.get("work_id")
        if token_work is not None and work_id is not None and token_work == work_id:
            return
        raise api_error(401, f"this token does not authorize environment {environment_id}")

    def _session_bearer(self, bearer: str, session_id: str) -> None:
        with self._lock:
            session = self.sessions.get(session_id)
            if session is None:
                raise api_error(404, f"session {session_id} not found")
            if self._keys.get(session["environment_id"]) == bearer:
                return
            work_id = self._sessions_tokens.get(bearer)
            if work_id is not None and self.work[work_id]["data"]["id"] == session_id:
                return
        raise api_error(401, f"this token does not authorize session {session_id}")

    # --- helpers ----------------------------------------------------------------------------

    def _page(
        self,
        items: list[Any],
        query: dict[str, list[str]],
        listing: str,
        *,
        max_limit: int = MAX_LIMIT,
        prev: bool = False,
    ) -> dict[str, Any]:
        limit_text = _one(query, "limit")
        if limit_text is None:
            limit = self.page_size
        else:
            limit = _int(limit_text, "limit")
            if not 1 <= limit <= max_limit:
                raise api_error(400, f"limit: must be between 1 and {max_limit}, got {limit}")
        offset = 0
        token = _one(query, "page")
        if token:
            offset = _read_cursor(token, listing)
        page = items[offset : offset + limit]
        answer: dict[str, Any] = {
            "data": page,
            "next_page": _cursor(listing, offset + limit) if offset + limit < len(items) else None,
        }
        if prev:
            answer["prev_page"] = _cursor(listing, max(0, offset - limit)) if offset else None
        return answer

    def _environment(self, environment_id: str) -> dict[str, Any]:
        environment = self.environments.get(environment_id)
        if environment is None:
            raise api_error(404, f"environment {environment_id} not found")
        return environment

    def _agent(self, agent_id: str) -> list[dict[str, Any]]:
        versions = self.agents.get(agent_id)
        if versions is None:
            raise api_error(404, f"agent {agent_id} not found")
        return versions

    def _session(self, session_id: str) -> dict[str, Any]:
        session = self.sessions.get(session_id)
        if session is None:
            raise api_error(404, f"session {session_id} not found")
        return session

    def _work_item(self, environment_id: str, work_id: str) -> dict[str, Any]:
        work = self.work.get(work_id)
        if work is None or work["environment_id"] != environment_id:
            raise api_error(404, f"work {work_id} not found in environment {environment_id}")
        return work

    # --- environments -----------------------------------------------------------------------

    def _op_environment_create(self, record: Recorded, params: dict, body: dict) -> dict:
        problems = _text_problems(body, name_required=True) + _metadata_problems(
            body.get("metadata"), "metadata"
        )
        config = _environment_config(body.get("config"), None, problems)
        scope = body.get("scope")
        if scope is not None and config["type"] != "self_hosted":
            problems.append(Problem("scope", "only applicable to self_hosted environments"))
        _raise(problems)
        with self._lock:
            self._unique_name(body["name"], None)
            now = _now()
            environment = {
                "id": _new_id("env"),
                "type": "environment",
                "name": body["name"],
                "description": body.get("description") or "",
                "metadata": dict(body.get("metadata") or {}),
                "config": config,
                "scope": scope or ("organization" if config["type"] == "self_hosted" else None),
                "created_at": now,
                "updated_at": now,
                "archived_at": None,
            }
            self.environments[environment["id"]] = environment
            self._changed.notify_all()
            return self._checked("BetaEnvironment", _copy(environment))

    def _unique_name(self, name: str, own_id: str | None) -> None:
        for other in self.environments.values():
            if other["name"] == name and other["archived_at"] is None and other["id"] != own_id:
                raise api_error(409, f"an environment named {name!r} already exists: {other['id']}")

    def _op_environment_retrieve(self, record: Recorded, params: dict, body: dict) -> dict:
        with self._lock:
            return self._checked("BetaEnvironment", _copy(self._environment(params["id"])))

    def _op_environment_update(self, record: Recorded, params: dict, body: dict) -> dict:
        with self._lock:
            environment = self._environment(params["id"])
            if environment["archived_at"] is not None:
                raise api_error(400, f"environment {environment['id']} is archived (read-only)")
            problems = _text_problems(body, name_required=False)
            problems += _metadata_problems(
                _merge_metadata(environment["metadata"], body.get("metadata"), empty_deletes=True),
                "metadata",
            )
            config = environment["config"]
            if body.get("config") is not None:
                config = _environment_config(body["config"], environment["config"], problems)
            scope = body.get("scope", environment["scope"])
            if body.get("scope") is not None and config["type"] != "self_hosted":
                problems.append(Problem("scope", "only applicable to self_hosted environments"))
            _raise(problems)
            if body.get("name") is not None:
                self._unique_name(body["name"], environment["id"])
                environment["name"] = body["name"]
            if "description" in body:
                environment["description"] = body["description"]
            if "metadata" in body:
                environment["metadata"] = _merge_metadata(
                    environment["metadata"], body["metadata"], empty_deletes=True
                )
            environment["config"], environment["scope"] = config, scope
            environment["updated_at"] = _now()
            return self._checked("BetaEnvironment", _copy(environment))

    def _op_environment_list(self, record: Recorded, params: dict, body: dict) -> dict:
        archived = _bool(_one(record.query, "include_archived"), "include_archived")
        with self._lock:
            items = [
                _copy(e)
                for e in reversed(self.environments.values())
                if archived or e["archived_at"] is None
            ]
        return self._page(items, record.query, "environments")

    def _op_environment_delete(self, record: Recorded, params: dict, body: dict) -> dict:
        with self._lock:
            environment = self._environment(params["id"])
            using = [s["id"] for s in self.sessions.values() if s["environment_id"] == params["id"]]
            if using:
                raise api_error(
                    409,
                    f"environment {params['id']} is referenced by sessions "
                    f"({', '.join(using)}); delete them first",
                )
            del self.environments[environment["id"]]
            self._keys.pop(environment["id"], None)
            answer = {"id": environment["id"], "type": "environment_deleted"}
            return self._checked("BetaEnvironmentDeleteResponse", answer)

    def _op_environment_archive(self, record: Recorded, params: dict, body: dict) -> dict:
        with self._lock:
            environment = self._environment(params["id"])
            if environment["archived_at"] is None:
                environment["archived_at"] = environment["updated_at"] = _now()
            return self._checked("BetaEnvironment", _copy(environment))

    # --- agents -----------------------------------------------------------------------------

    def _agent_problems(self, spec: dict[str, Any]) -> list[Problem]:
        problems = _text_problems(spec, name_required=True)
        if isinstance(spec.get("system"), str) and len(spec["system"]) > SYSTEM_MAX:
            problems.append(Problem("system", f"at most {SYSTEM_MAX} characters"))
        tools, servers = spec.get("tools") or [], spec.get("mcp_servers") or []
        if len(tools) > TOOLS_MAX:
            problems.append(Problem("tools", f"at most {TOOLS_MAX} tools, got {len(tools)}"))
        if len(servers) > MCP_SERVERS_MAX:
            problems.append(
                Problem("mcp_servers", f"at most {MCP_SERVERS_MAX}, got {len(servers)}")
            )
        if len(spec.get("skills") or []) > SKILLS_MAX:
            problems.append(Problem("skills", f"at most {SKILLS_MAX}"))
        names = [s["name"] for s in servers]
        for index, name in enumerate(names):
            if names.index(name) != index:
                problems.append(Problem(f"mcp_servers[{index}].name", f"duplicate name {name!r}"))
        used = {t.get("mcp_server_name") for t in tools if t.get("type") == "mcp_toolset"}
        for index, name in enumerate(names):
            if name not in used:
                message = f"MCP server {name!r} is not referenced by any mcp_toolset in tools"
                problems.append(Problem(f"mcp_servers[{index}]", message))
        for index, tool in enumerate(tools):
            if tool.get("type") == "mcp_toolset" and tool.get("mcp_server_name") not in names:
                message = f"no MCP server named {tool.get('mcp_server_name')!r} in mcp_servers"
                problems.append(Problem(f"tools[{index}].mcp_server_name", message))
        kinds = [t.get("type") for t in tools]
        if kinds.count("agent_toolset_20260401") > 1:
            problems.append(Problem("tools", "agent_toolset_20260401 may appear once"))
        problems += _metadata_problems(spec.get("metadata"), "metadata")
        return problems

    def _op_agent_create(self, record: Recorded, params: dict, body: dict) -> dict:
        _raise(self._agent_problems(body))
        now = _now()
        agent = {
            "id": _new_id("agent"),
            "type": "agent",
            "version": 1,
            "created_at": now,
            "updated_at": now,
            "archived_at": None,
            **_agent_spec(body),
        }
        with self._lock:
            self.agents[agent["id"]] = [agent]
            return self._checked("BetaManagedAgentsAgent", _copy(agent))

    def _op_agent_retrieve(self, record: Recorded, params: dict, body: dict) -> dict:
        version = _one(record.query, "version")
        with self._lock:
            versions = self._agent(params["id"])
            if version is None:
                return self._checked("BetaManagedAgentsAgent", _copy(versions[-1]))
            number = _int(version, "version")
            for agent in versions:
                if agent["version"] == number:
                    return self._checked("BetaManagedAgentsAgent", _copy(agent))
        raise api_error(404, f"agent {params['id']} has no version {number}")

    def _op_agent_update(self, record: Recorded, params: dict, body: dict) -> dict:
        with self._lock:
            versions = self._agent(params["id"])
            current = versions[-1]
            if current["archived_at"] is not None:
                raise api_error(400, f"agent {current['id']} is archived; it cannot be updated")
            if "version" in body and body["version"] != current["version"]:
                raise api_error(
                    409,
                    f"version mismatch: the agent is at version {current['version']}, the update "
                    f"was made against version {body['version']}",
                )
            spec = {key: current[key] for key in _AGENT_FIELDS}
            for key in ("name", "model", "description", "system", "multiagent"):
                if key in body:
                    spec[key] = body[key]
            for key in ("tools", "mcp_servers", "skills"):
                if key in body:
                    spec[key] = body[key] if body[key] is not None else []
            if "metadata" in body:
                spec["metadata"] = _merge_metadata(current["metadata"], body["metadata"] or {})
            _raise(self._agent_problems(spec))
            spec = _agent_spec(spec)
            if all(spec[key] == current[key] for key in _AGENT_FIELDS):
                return self._checked("BetaManagedAgentsAgent", _copy(current))
            agent = {
                **_copy(current),
                **spec,
                "version": current["version"] + 1,
                "updated_at": _now(),
            }
            versions.append(agent)
            return self._checked("BetaManagedAgentsAgent", _copy(agent))

    def _op_agent_list(self, record: Recorded, params: dict, body: dict) -> dict:
        archived = _bool(_one(record.query, "include_archived"), "include_archived")
        gte, lte = _one(record.query, "created_at[gte]"), _one(record.query, "created_at[lte]")
        with self._lock:
            items = [
                _copy(v[-1])
                for v in reversed(self.agents.values())
                if (archived or v[-1]["archived_at"] is None)
                and (gte is None or _time(v[0]["created_at"]) >= _time(gte))
                and (lte is None or _time(v[0]["created_at"]) <= _time(lte))
            ]
        return self._page(items, record.query, "agents")

    def _op_agent_archive(self, record: Recorded, params: dict, body: dict) -> dict:
        with self._lock:
            versions = self._agent(params["id"])
            if versions[-1]["archived_at"] is None:
                when = _now()
                for agent in versions:
                    agent["archived_at"] = when
                versions[-1]["updated_at"] = when
            return self._checked("BetaManagedAgentsAgent", _copy(versions[-1]))

    def _op_agent_versions(self, record: Recorded, params: dict, body: dict) -> dict:
        with self._lock:
            items = [_copy(a) for a in reversed(self._agent(params["id"]))]
        return self._page(items, record.query, f"versions:{params['id']}")

    # --- sessions ---------------------------------------------------------------------------

    def _resolve_agent(self, reference: Any) -> dict[str, Any]:
        if isinstance(reference, str):
            reference = {"type": "agent", "id": reference}
        versions = self._agent(reference["id"])
        agent = versions[-1]
        if "version" in reference:
            found = [a for a in versions if a["version"] == reference["version"]]
            if not found:
                raise api_error(
                    404, f"agent {reference['id']} has no version {reference['version']}"
                )
            agent = found[0]
        if agent["archived_at"] is not None:
            raise api_error(400, f"agent {agent['id']} is archived; new sessions cannot use it")
        resolved = {key: _copy(agent[key]) for key in _SESSION_AGENT_FIELDS}
        if reference["type"] == "agent_with_overrides":
            overrides = {k: v for k, v in reference.items() if k in _OVERRIDABLE}
            merged = {**{k: agent[k] for k in _AGENT_FIELDS}, **overrides}
            _raise(self._agent_problems({**merged, "name": agent["name"]}))
            resolved.update({k: v for k, v in _agent_spec(merged).items() if k in overrides})
        return {"type": "agent", **resolved}

    def _op_session_create(self, record: Recorded, params: dict, body: dict) -> dict:
        problems = _metadata_problems(body.get("metadata"), "metadata")
        initial = body.get("initial_events") or []
        if len(initial) > INITIAL_EVENTS_MAX:
            problems.append(Problem("initial_events", f"at most {INITIAL_EVENTS_MAX} events"))
        _raise(problems)
        with self._lock:
            agent = self._resolve_agent(body["agent"])
            environment = self._environment(body["environment_id"])
            if environment["archived_at"] is not None:
                raise api_error(
                    400, f"environment {environment['id']} is archived; new sessions cannot use it"
                )
            self_hosted = environment["config"]["type"] == "self_hosted"
            resources = []
            for index, resource in enumerate(body.get("resources") or []):
                if self_hosted and resource["type"] in ("file", "github_repository"):
                    raise api_error(
                        400,
                        f"resources[{index}]: {resource['type']} resources are not supported on "
                        "self_hosted environments (only memory_store)",
                    )
                resources.append(_resource(resource))
            now = _now()
            session = {
                "id": _new_id("sesn"),
                "type": "session",
                "agent": agent,
                "environment_id": environment["id"],
                "status": "idle",
                "title": body.get("title"),
                "metadata": dict(body.get("metadata") or {}),
                "resources": resources,
                "vault_ids": list(body.get("vault_ids") or []),
                "stats": {"active_seconds": 0.0, "duration_seconds": 0.0},
                "usage": {"input_tokens": 0, "output_tokens": 0, "cache_read_input_tokens": 0},
                "outcome_evaluations": [],
                "budget": body.get("budget"),
                "deployment_id": None,
                "created_at": now,
                "updated_at": now,
                "archived_at": None,
            }
            self.sessions[session["id"]] = session
            self._state[session["id"]] = _Session(session["id"])
            if self_hosted:
                self._enqueue(session)
            if initial:
                session["status"] = "running"
                self._accept(session, [_copy(e) for e in initial])
            self._changed.notify_all()
            return self._checked("BetaManagedAgentsSession", _copy(session))

    def _op_session_retrieve(self, record: Recorded, params: dict, body: dict) -> dict:
        with self._lock:
            return self._checked("BetaManagedAgentsSession", _copy(self._session(params["id"])))

    def _op_session_update(self, record: Recorded, params: dict, body: dict) -> dict:
        with self._lock:
            session = self._session(params["id"])
            if session["archived_at"] is not None:
                raise api_error(400, f"session {session['id']} is archived (read-only)")
            if "vault_ids" in body:
                raise api_error(400, "vault_ids: cannot be changed on update")
            merged = _merge_metadata(session["metadata"], body.get("metadata") or {})
            _raise(_metadata_problems(merged, "metadata"))
            if "agent" in body:
                if session["status"] == "running":
                    raise api_error(400, "agent: tools and mcp_servers can change only while idle")
                spec = {
                    **{k: session["agent"][k] for k in _AGENT_FIELDS if k in session["agent"]},
                    **body["agent"],
                }
                _raise(self._agent_problems({**spec, "metadata": {}}))
                normalized = _agent_spec({**spec, "metadata": {}})
                for key in body["agent"]:
                    session["agent"][key] = normalized[key]
            if "title" in body:
                session["title"] = body["title"]
            if "metadata" in body:
                session["metadata"] = merged
            if "budget" in body:
                session["budget"] = body["budget"]
            session["updated_at"] = _now()
            return self._checked("BetaManagedAgentsSession", _copy(session))

    def _op_session_list(self, record: Recorded, params: dict, body: dict) -> dict:
        query = record.query
        archived = _bool(_one(query, "include_archived"), "include_archived")
        agent_id, agent_version = _one(query, "agent_id"), _one(query, "agent_version")
        statuses = query.get("statuses[]", []) + query.get("statuses", [])
        order = _one(query, "order") or "desc"
        if order not in ("asc", "desc"):
            raise api_error(400, f"order: must be asc or desc, got {order!r}")
        version = _int(agent_version, "agent_version") if agent_version is not None else None
        with self._lock:
            items = [
                _copy(s)
                for s in self.sessions.values()
                if (archived or s["archived_at"] is None)
                and (agent_id is None or s["agent"]["id"] == agent_id)
                and (version is None or agent_id is None or s["agent"]["version"] == version)
                and (not statuses or s["status"] in statuses)
            ]
        if order == "desc":
            items.reverse()
        return self._page(items, query, f"sessions:{order}", prev=True)

    def _op_session_delete(self, record: Recorded, params: dict, body: dict) -> dict:
        with self._lock:
            session = self._session(params["id"])
            state = self._state[session["id"]]
            self._emit(session, {"type": "session.deleted"})
            state.gone = True
            state.inbox.put(None)
            self._release_work(session["id"])
            del self.sessions[session["id"]]
            self._changed.notify_all()
            return self._checked(
                "BetaManagedAgentsDeletedSession", {"id": session["id"], "type": "session_deleted"}
            )

    def _op_session_archive(self, record: Recorded, params: dict, body: dict) -> dict:
        with self._lock:
            session = self._session(params["id"])
            if session["archived_at"] is None:
                if session["status"] == "running":
                    session["status"] = "terminated"
                    self._emit(session, {"type": "session.status_terminated"})
                session["archived_at"] = session["updated_at"] = _now()
                self._release_work(session["id"])
            return self._checked("BetaManagedAgentsSession", _copy(session))

    def _op_events_list(self, record: Recorded, params: dict, body: dict) -> dict:
        query = record.query
        order = _one(query, "order") or "asc"
        if order not in ("asc", "desc"):
            raise api_error(400, f"order: must be asc or desc, got {order!r}")
        types = query.get("types[]", []) + query.get("types", [])
        with self._lock:
            self._session(params["session_id"])
            items = [
                _copy(e)
                for e in self._state[params["session_id"]].events
                if not types or e["type"] in types
            ]
        if order == "desc":
            items.reverse()
        for item in items:
            self._checked("event", item)
        return self._page(
            items, query, f"events:{params['session_id']}:{order}", max_limit=MAX_EVENT_LIMIT
        )

    def _op_events_send(self, record: Recorded, params: dict, body: dict) -> dict:
        with self._lock:
            session = self._session(params["session_id"])
            if session["archived_at"] is not None or session["status"] == "terminated":
                raise api_error(400, f"session {session['id']} is {_closed(session)}")
            environment = self.environments.get(session["environment_id"])
            self_hosted = environment is not None and environment["config"]["type"] == "self_hosted"
            state = self._state[session["id"]]
            answered = {
                e.get("tool_use_id")
                for e in state.events
                if e["type"] in ("user.tool_result", "user.tool_confirmation")
            }
            tool_uses = {e["id"]: e for e in state.events if e["type"] == "agent.tool_use"}
            for index, event in enumerate(body["events"]):
                where = f"events[{index}]"
                kind = event["type"]
                if kind == "user.tool_result":
                    if not self_hosted:
                        raise api_error(
                            400, f"{where}: user.tool_result is for self_hosted environments only"
                        )
                    if event["tool_use_id"] not in tool_uses or event["tool_use_id"] in answered:
                        raise api_error(
                            400,
                            f"{where}.tool_use_id: no pending agent.tool_use "
                            f"{event['tool_use_id']}",
                        )
                if kind == "user.tool_confirmation":
                    use = tool_uses.get(event["tool_use_id"])
                    if use is None or use.get("evaluated_permission") != "ask":
                        raise api_error(
                            400,
                            f"{where}.tool_use_id: no tool use awaiting confirmation "
                            f"{event['tool_use_id']}",
                        )
            accepted = self._accept(session, [_copy(e) for e in body["events"]])
            dormant = not any(
                w["data"]["id"] == session["id"] and w["state"] in WORK_LIVE
                for w in self.work.values()
            )
            if self_hosted and dormant and any(e["type"] == "user.message" for e in accepted):
                self._enqueue(session)
            answer = {"data": [_copy(e) for e in accepted]}
            return self._checked("BetaManagedAgentsSendSessionEvents", answer)

    # --- the scripted model -----------------------------------------------------------------

    def _accept(self, session: dict[str, Any], events: list[dict[str, Any]]) -> list[dict]:
        """Queue user events for processing (ids now, ``processed_at`` when processed)."""
        state = self._state[session["id"]]
        accepted = []
        for event in events:
            event = {"id": _new_id("sevt"), **event, "processed_at": None}
            accepted.append(event)
            state.inbox.put(event)
        if state.thread is None:
            state.thread = threading.Thread(
                target=self._process, args=(session["id"],), daemon=True
            )
            state.thread.start()
        return accepted

    def _emit(self, session: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
        """Append an event to the session's log (called with the lock held)."""
        stamped = {"id": event.get("id") or _new_id("sevt"), **event, "processed_at": _now()}
        self._state[session["id"]].events.append(stamped)
        if stamped["type"] == "session.status_running":
            session["status"] = "running"
        elif stamped["type"] == "session.status_idle":
            session["status"] = "idle"
        session["updated_at"] = stamped["processed_at"]
        self._changed.notify_all()
        return stamped

    def _process(self, session_id: str) -> None:
        state = self._state[session_id]
        while not self._stopping.is_set():
            event = state.inbox.get()
            if event is None or state.gone or self._stopping.is_set():
                return
            with self._lock:
                session = self.sessions.get(session_id)
                if session is None:
                    return
                self._emit(session, event)
            try:
                self._react(session, state, event)
            except Exception as exc:  # a bug of this server
                self._violation(f"scripted model failed on {event['type']}: {exc!r}")

    def _step(self, session: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
        if self.step_delay:
            time.sleep(self.step_delay)
        with self._lock:
            if self._state[session["id"]].gone:
                return event
            return self._emit(session, event)

    def _react(self, session: dict[str, Any], state: _Session, event: dict[str, Any]) -> None:
        kind = event["type"]
        with self._lock:
            environment = self.environments.get(session["environment_id"])
        self_hosted = environment is not None and environment["config"]["type"] == "self_hosted"
        if kind == "user.message":
            text = "".join(b.get("text", "") for b in event["content"] if b["type"] == "text")
            self._turn(session, state, text.strip(), self_hosted)
        elif kind == "user.tool_result":
            use = state.pending.pop(event["tool_use_id"], None)
            if use is not None:
                output = "".join(
                    b.get("text", "") for b in event.get("content") or [] if b["type"] == "text"
                )
                start = self._step(session, {"type": "span.model_request_start"})
                self._step(session, _message(f"tool output: {output}"))
                self._step(session, _span_end(start))
                self._step(session, _idle({"type": "end_turn"}))
        elif kind == "user.tool_confirmation":
            use = state.pending.pop(event["tool_use_id"], None)
            if use is None:
                return
            command = use["input"].get("command", "")
            self._step(session, {"type": "session.status_running"})
            if event["result"] == "allow" and self_hosted:
                with self._lock:
                    state.pending[use["id"]] = use  # the worker runs it and posts the result
                return
            start = self._step(session, {"type": "span.model_request_start"})
            if event["result"] == "allow":
                text = f"tool output: (not run: the contract server has no cloud sandbox) {command}"
            else:
                text = f"denied: {command}"
                if event.get("deny_message"):
                    text += f" ({event['deny_message']})"
            self._step(session, _message(text))
            self._step(session, _span_end(start))
            self._step(session, _idle({"type": "end_turn"}))
        elif kind == "user.interrupt":
            with self._lock:
                state.pending.clear()
                running = session["status"] == "running"
            if running:
                self._step(session, _idle({"type": "end_turn"}))

    def _turn(self, session: dict[str, Any], state: _Session, text: str, self_hosted: bool) -> None:
        self._step(session, {"type": "session.status_running"})
        start = self._step(session, {"type": "span.model_request_start"})
        if text == "error":
            error = {
                "type": "model_overloaded_error",
                "message": "The model is overloaded (scripted by the contract server).",
                "retry_status": {"type": "terminal"},
            }
            self._step(session, {"type": "session.error", "error": error})
            self._step(session, _span_end(start, is_error=True))
            self._step(session, _idle({"type": "retries_exhausted"}))
            return
        for prefix, permission in (("run:", "allow"), ("confirm:", "ask")):
            if text.startswith(prefix) and (self_hosted or permission == "ask"):
                command = text[len(prefix) :].strip()
                use = {
                    "type": "agent.tool_use",
                    "name": "bash",
                    "input": {"command": command},
                    "evaluated_permission": permission,
                }
                with self._lock:
                    use = self._emit(session, use)
                    state.pending[use["id"]] = use
                self._step(session, _span_end(start))
                if permission == "ask":
                    self._step(
                        session, _idle({"type": "requires_action", "event_ids": [use["id"]]})
                    )
                return
        self._step(session, _message("echo: "))
        self._step(session, _message(text))
        self._step(session, _span_end(start))
        self._step(session, _idle({"type": "end_turn"}))

    # --- the event stream -------------------------------------------------------------------

    def _stream(self, handler: BaseHTTPRequestHandler, record: Recorded, session_id: str) -> None:
        with self._lock:
            self._session(session_id)
            state = self._state[session_id]
            cursor = len(state.events)
        record.status = 200
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream; charset=utf-8")
        handler.send_header("Cache-Control", "no-cache")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.send_header("request-id", _request_id())
        handler.end_headers()
        handler.close_connection = True

        def send(kind: str, data: Any) -> None:
            chunk = f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            handler.wfile.flush()

        try:
            send("ping", {"type": "ping"})
            last_ping = time.monotonic()
            while not self._stopping.is_set():
                with self._changed:
                    if cursor >= len(state.events) and not state.gone:
                        self._changed.wait(self.ping_interval)
                    fresh = state.events[cursor:]
                    cursor += len(fresh)
                    gone = state.gone
                for event in fresh:
                    self._checked("event", event)
                    send(event["type"], event)
                if gone and not fresh:
                    break
                if time.monotonic() - last_ping >= self.ping_interval:
                    send("ping", {"type": "ping"})
                    last_ping = time.monotonic()
            handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ValueError, OSError):
            return  # the client hung up

    # --- the work queue ---------------------------------------------------------------------

    def _enqueue(self, session: dict[str, Any]) -> dict[str, Any]:
        work_id = _new_id("work")
        token = "sk-ant-sst01-contract-" + secrets.token_urlsafe(24)
        payload = {"sessions_token": token, "ingress_token": secrets.token_urlsafe(12)}
        secret = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
        work = {
            "id": work_id,
            "type": "work",
            "environment_id": session["environment_id"],
            "data": {"type": "session", "id": session["id"]},
            "state": "queued",
            "metadata": {},
            "secret": None,
            "created_at": _now(),
            "acknowledged_at": None,
            "started_at": None,
            "latest_heartbeat_at": None,
            "stop_requested_at": None,
            "stopped_at": None,
        }
        self.work[work_id] = work
        self._work_secrets[work_id] = secret
        self._sessions_tokens[token] = work_id
        self._changed.notify_all()
        return work

    def _release_work(self, session_id: str) -> None:
        for work in self.work.values():
            if work["data"]["id"] != session_id or work["state"] not in WORK_LIVE:
                continue
            if work["state"] == "queued":
                work["state"], work["stopped_at"] = "stopped", _now()
            else:
                work["state"] = "stopping"
                work["stop_requested_at"] = work["stop_requested_at"] or _now()
        self._changed.notify_all()

    def _environment_for_work(self, environment_id: str) -> dict[str, Any]:
        environment = self._environment(environment_id)
        if environment["config"]["type"] != "self_hosted":
            raise api_error(400, f"environment {environment_id} is not self_hosted: no work queue")
        return environment

    def _claimable(self, environment_id: str, reclaim_ms: int) -> dict[str, Any] | None:
        now = time.monotonic()
        for work in self.work.values():
            if work["environment_id"] != environment_id or work["state"] != "queued":
                continue
            delivered = self._delivered.get(work["id"])
            if delivered is None or (now - delivered) * 1000 >= reclaim_ms:
                return work
        return None

    def _op_work_poll(self, record: Recorded, params: dict, body: dict) -> Any:
        block = _one(record.query, "block_ms")
        block_ms = 0
        if block is not None:
            block_ms = _int(block, "block_ms")
            if not 1 <= block_ms <= 999:
                raise api_error(400, f"block_ms: must be between 1 and 999, got {block_ms}")
        reclaim = _one(record.query, "reclaim_older_than_ms")
        reclaim_ms = _int(reclaim, "reclaim_older_than_ms") if reclaim else DEFAULT_RECLAIM_MS
        deadline = time.monotonic() + block_ms / 1000
        with self._changed:
            self._environment_for_work(params["environment_id"])
            worker = record.headers.get("anthropic-worker-id")
            if worker:
                self._pollers[worker] = time.monotonic()
            while True:
                work = self._claimable(params["environment_id"], reclaim_ms)
                left = deadline - time.monotonic()
                if work is not None or left <= 0 or self._stopping.is_set():
                    break
                self._changed.wait(left)
            if work is None:
                return None
            self._delivered[work["id"]] = time.monotonic()
            answer = {**_copy(work), "secret": self._work_secrets[work["id"]]}
            return self._checked("BetaSelfHostedWork", answer)

    def _op_work_ack(self, record: Recorded, params: dict, body: dict) -> dict:
        with self._lock:
            work = self._work_item(params["environment_id"], params["work_id"])
            if work["state"] != "queued":
                raise api_error(409, f"work {work['id']} is {work['state']}, not queued")
            work["state"], work["acknowledged_at"] = "starting", _now()
            self._changed.notify_all()
            return self._checked("BetaSelfHostedWork", _copy(work))

    def _op_work_heartbeat(self, record: Recorded, params: dict, body: dict) -> dict:
        expected = _one(record.query, "expected_last_heartbeat")
        desired = _one(record.query, "desired_ttl_seconds")
        ttl = _int(desired, "desired_ttl_seconds") if desired else self.lease_ttl
        if ttl < 1:
            raise api_error(400, f"desired_ttl_seconds: must be positive, got {ttl}")
        with self._lock:
            work = self._work_item(params["environment_id"], params["work_id"])
            last = self._heartbeats.get(work["id"], NO_HEARTBEAT)
            if expected is not None and expected != last:
                current = {"state": work["state"], "ttl_seconds": ttl, "last_heartbeat": last}
                raise api_error(
                    412,
                    f"expected_last_heartbeat {expected!r} does not match the lease ({last!r})",
                    details={"current_state": current},
                )
            extended = work["state"] in ("queued", "starting", "active")
            if extended:
                if work["state"] != "active":
                    work["state"], work["started_at"] = "active", _now()
                beat = _now()
                while beat <= self._heartbeats.get(work["id"], ""):
                    beat = _now()
                self._heartbeats[work["id"]] = work["latest_heartbeat_at"] = beat
            self._changed.notify_all()
            answer = {
                "type": "work_heartbeat",
                "last_heartbeat": self._heartbeats.get(work["id"], NO_HEARTBEAT),
                "lease_extended": extended,
                "state": work["state"],
                "ttl_seconds": ttl,
            }
            return self._checked("BetaSelfHostedWorkHeartbeatResponse", answer)

    def _op_work_stop(self, record: Recorded, params: dict, body: dict) -> dict:
        with self._lock:
            work = self._work_item(params["environment_id"], params["work_id"])
            if work["state"] == "stopped":
                raise api_error(409, f"work {work['id']} is already stopped")
            now = _now()
            work["stop_requested_at"] = work["stop_requested_at"] or now
            if body.get("force") or work["state"] in ("queued", "stopping"):
                work["state"], work["stopped_at"] = "stopped", now
            else:
                work["state"] = "stopping"
            self._changed.notify_all()
            return self._checked("BetaSelfHostedWork", _copy(work))

    def _op_work_retrieve(self, record: Recorded, params: dict, body: dict) -> dict:
        with self._lock:
            work = self._work_item(params["environment_id"], params["work_id"])
            return self._checked("BetaSelfHostedWork", _copy(work))

    def _op_work_update(self, record: Recorded, params: dict, body: dict) -> dict:
        with self._lock:
            work = self._work_item(params["environment_id"], params["work_id"])
            work["metadata"] = _merge_metadata(work["metadata"], body["metadata"])
            return self._checked("BetaSelfHostedWork", _copy(work))

    def _op_work_list(self, record: Recorded, params: dict, body: dict) -> dict:
        with self._lock:
            self._environment_for_work(params["environment_id"])
            items = [
                _copy(w)
                for w in reversed(self.work.values())
                if w["environment_id"] == params["environment_id"]
            ]
        return self._page(items, record.query, f"work:{params['environment_id']}")

    def _op_work_stats(self, record: Recorded, params: dict, body: dict) -> dict:
        with self._lock:
            self._environment_for_work(params["environment_id"])
            queued = [
                w
                for w in self.work.values()
                if w["environment_id"] == params["environment_id"] and w["state"] == "queued"
            ]
            pending = [w for w in queued if w["id"] in self._delivered]
            recent = time.monotonic() - 30
            answer = {
                "type": "work_queue_stats",
                "depth": len(queued) - len(pending),
                "pending": len(pending),
                "oldest_queued_at": min((w["created_at"] for w in queued), default=None),
                "workers_polling": sum(1 for t in self._pollers.values() if t >= recent),
            }
            return self._checked("BetaSelfHostedWorkQueueStats", answer)


# --- routes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    name: str
    body: str | None = None  # the _BODY_TYPES entry its JSON body is checked against
    auth: str = "key"  # key | session (key or Bearer) | worker (Bearer only)

    @functools.cached_property
    def pattern(self) -> re.Pattern[str]:
        parts = re.split(r"(\{[a-z_]+\})", self.template)
        regex = "".join(
            f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") else re.escape(p) for p in parts
        )
        return re.compile(f"^{regex}$")


_ENV = "/v1/environments/{id}"
_WORK = "/v1/environments/{environment_id}/work"
_SESSION = "/v1/sessions/{id}"
_EVENTS = "/v1/sessions/{session_id}/events"
ROUTES = (
    Route("GET", _WORK + "/poll", "work_poll", auth="worker"),
    Route("GET", _WORK + "/stats", "work_stats", auth="worker"),
    Route("GET", _WORK, "work_list", auth="worker"),
    Route("GET", _WORK + "/{work_id}", "work_retrieve", auth="worker"),
    Route("POST", _WORK + "/{work_id}", "work_update", "work_update", auth="worker"),
    Route("POST", _WORK + "/{work_id}/ack", "work_ack", auth="worker"),
    Route("POST", _WORK + "/{work_id}/heartbeat", "work_heartbeat", auth="worker"),
    Route("POST", _WORK + "/{work_id}/stop", "work_stop", "work_stop", auth="worker"),
    Route("POST", "/v1/environments", "environment_create", "environment_create"),
    Route("GET", "/v1/environments", "environment_list"),
    Route("GET", _ENV, "environment_retrieve"),
    Route("POST", _ENV, "environment_update", "environment_update"),
    Route("DELETE", _ENV, "environment_delete"),
    Route("POST", _ENV + "/archive", "environment_archive"),
    Route("POST", "/v1/agents", "agent_create", "agent_create"),
    Route("GET", "/v1/agents", "agent_list"),
    Route("GET", "/v1/agents/{id}", "agent_retrieve"),
    Route("POST", "/v1/agents/{id}", "agent_update", "agent_update"),
    Route("POST", "/v1/agents/{id}/archive", "agent_archive"),
    Route("GET", "/v1/agents/{id}/versions", "agent_versions"),
    Route("POST", "/v1/sessions", "session_create", "session_create"),
    Route("GET", "/v1/sessions", "session_list"),
    Route("GET", "/v1/sessions/{session_id}", "session_retrieve", auth="session"),
    Route("POST", _SESSION, "session_update", "session_update"),
    Route("DELETE", _SESSION, "session_delete"),
    Route("POST", _SESSION + "/archive", "session_archive"),
    Route("GET", _EVENTS, "events_list", auth="session"),
    Route("POST", _EVENTS, "events_send", "event_send", auth="session"),
    Route("GET", _EVENTS + "/stream", "events_stream", auth="session"),
)


def _route(method: str, path: str) -> tuple[Route | None, dict[str, str]]:
    for route in ROUTES:
        match = route.pattern.match(path)
        if match and route.method == method:
            params = {k: unquote(v) for k, v in match.groupdict().items()}
            if "session_id" in params and "id" not in params:
                params["id"] = params["session_id"]
            return route, params
    return None, {}


# --- the service's rules and shapes ------------------------------------------------------------

_AGENT_FIELDS = (
    "name",
    "model",
    "system",
    "description",
    "tools",
    "mcp_servers",
    "skills",
    "multiagent",
    "metadata",
)
_SESSION_AGENT_FIELDS = (
    "id",
    "version",
    "name",
    "model",
    "system",
    "description",
    "tools",
    "mcp_servers",
    "skills",
    "multiagent",
)
_OVERRIDABLE = ("model", "system", "tools", "mcp_servers", "skills")
_TOOLSET_TOOLS = ("bash", "edit", "read", "write", "glob", "grep", "web_fetch", "web_search")


def _raise(problems: list[Problem]) -> None:
    if problems:
        raise api_error(400, "; ".join(str(p) for p in problems))


def _text_problems(body: dict[str, Any], *, name_required: bool) -> list[Problem]:
    problems = []
    name = body.get("name")
    given = name is not None or name_required
    if given and (not isinstance(name, str) or not 1 <= len(name) <= NAME_MAX):
        problems.append(Problem("name", f"must be 1-{NAME_MAX} characters"))
    description = body.get("description")
    if isinstance(description, str) and len(description) > DESCRIPTION_MAX:
        problems.append(Problem("description", f"at most {DESCRIPTION_MAX} characters"))
    return problems


def _metadata_problems(metadata: Any, where: str) -> list[Problem]:
    if not isinstance(metadata, dict):
        return []
    problems = []
    if len(metadata) > METADATA_PAIRS:
        problems.append(Problem(where, f"at most {METADATA_PAIRS} pairs, got {len(metadata)}"))
    for key, value in metadata.items():
        if not 1 <= len(key) <= METADATA_KEY_MAX:
            problems.append(Problem(f"{where}.{key}", f"keys are 1-{METADATA_KEY_MAX} characters"))
        if isinstance(value, str) and len(value) > METADATA_VALUE_MAX:
            problems.append(
                Problem(f"{where}.{key}", f"values are at most {METADATA_VALUE_MAX} characters")
            )
    return problems


def _merge_metadata(
    current: dict[str, str], patch: dict[str, Any] | None, *, empty_deletes: bool = False
) -> dict[str, str]:
    merged = dict(current)
    for key, value in (patch or {}).items():
        if value is None or (empty_deletes and value == ""):
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


_HOST = re.compile(r"^(\*\.)?[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*$")
_MANAGERS = ("apt", "cargo", "gem", "go", "npm", "pip")


def _environment_config(
    config: dict[str, Any] | None, current: dict[str, Any] | None, problems: list[Problem]
) -> dict[str, Any]:
    """The stored config for a create (``current`` None) or an update of ``current``."""
    if config is None:
        config = {"type": "cloud"}
    if current is not None and config["type"] != current["type"]:
        problems.append(
            Problem("config.type", f"cannot change from {current['type']} to {config['type']}")
        )
        return current
    if config["type"] == "self_hosted":
        return {"type": "self_hosted"}
    previous = current or {}
    networking = config.get("networking")
    if networking is None:
        networking = previous.get("networking") or {"type": "unrestricted"}
    elif networking["type"] == "limited":
        networking = {
            "type": "limited",
            "allowed_hosts": list(networking.get("allowed_hosts") or []),
            "allow_mcp_servers": bool(networking.get("allow_mcp_servers")),
            "allow_package_managers": bool(networking.get("allow_package_managers")),
        }
        for index, host in enumerate(networking["allowed_hosts"]):
            if not _HOST.match(host):
                problems.append(
                    Problem(
                        f"config.networking.allowed_hosts[{index}]",
                        f"{host!r}: a bare host name or *.domain (no scheme, port or path)",
                    )
                )
    else:
        networking = {"type": "unrestricted"}
    packages = config.get("packages")
    if packages is None:
        packages = previous.get("packages") or {}
    packages = {"type": "packages", **{m: list(packages.get(m) or []) for m in _MANAGERS}}
    if (
        networking["type"] == "limited"
        and any(packages[m] for m in _MANAGERS)
        and not networking["allow_package_managers"]
    ):
        problems.append(
            Problem(
                "config.networking.allow_package_managers",
                "must be true when packages are listed under limited networking",
            )
        )
    return {"type": "cloud", "networking": networking, "packages": packages}


def _permission(config: dict[str, Any] | None, default: str) -> dict[str, str]:
    policy = (config or {}).get("permission_policy")
    return dict(policy) if policy else {"type": default}


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    kind = tool["type"]
    if kind == "agent_toolset_20260401":
        default = tool.get("default_config") or {}
        enabled = default.get("enabled")
        default_config = {
            "enabled": True if enabled is None else enabled,
            "permission_policy": _permission(default, "always_allow"),
        }
        configs = []
        for config in tool.get("configs") or []:
            item = {k: v for k, v in config.items() if v is not None}
            item["type"] = config["name"]
            if item.get("enabled") is None:
                item["enabled"] = default_config["enabled"]
            item["permission_policy"] = (
                dict(config["permission_policy"])
                if config.get("permission_policy")
                else dict(default_config["permission_policy"])
            )
            configs.append(item)
        return {"type": kind, "default_config": default_config, "configs": configs}
    if kind == "mcp_toolset":
        default = tool.get("default_config") or {}
        enabled = default.get("enabled")
        default_config = {
            "enabled": True if enabled is None else enabled,
            "permission_policy": _permission(default, "always_ask"),
        }
        configs = [
            {
                "name": c["name"],
                "enabled": default_config["enabled"] if c.get("enabled") is None else c["enabled"],
                "permission_policy": _permission(c, default_config["permission_policy"]["type"]),
            }
            for c in tool.get("configs") or []
        ]
        return {
            "type": kind,
            "mcp_server_name": tool["mcp_server_name"],
            "default_config": default_config,
            "configs": configs,
        }
    return _copy(tool)


def _model(model: Any) -> dict[str, Any]:
    if isinstance(model, str):
        return {"id": model, "speed": "standard"}
    answer = {k: v for k, v in model.items() if v is not None}
    answer.setdefault("speed", "standard")
    if isinstance(answer.get("effort"), str):  # a bare level is answered in its object form
        answer["effort"] = {"type": answer["effort"]}
    return answer


def _agent_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """An agent's stored fields, defaults filled in as the API echoes them."""
    return {
        "name": spec["name"],
        "model": _model(spec["model"]),
        "system": spec.get("system"),
        "description": spec.get("description"),
        "tools": [_tool(t) for t in spec.get("tools") or []],
        "mcp_servers": [_copy(s) for s in spec.get("mcp_servers") or []],
        "skills": [
            {"version": "latest", **{k: v for k, v in s.items() if v is not None}}
            for s in spec.get("skills") or []
        ],
        "multiagent": _copy(spec.get("multiagent")),
        "metadata": dict(spec.get("metadata") or {}),
    }


def _resource(resource: dict[str, Any]) -> dict[str, Any]:
    now = _now()
    kind = resource["type"]
    if kind == "memory_store":
        return {k: v for k, v in resource.items() if k != "prompt"}
    stored = {k: v for k, v in resource.items() if k not in ("authorization_token",)}
    if kind == "file":
        stored.setdefault("mount_path", f"/mnt/session/uploads/{resource['file_id']}")
    if kind == "github_repository":
        name = resource["url"].rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")
        stored.setdefault("mount_path", f"/workspace/{name}")
    return {"id": _new_id("sesrsc"), **stored, "created_at": now, "updated_at": now}


def _message(text: str) -> dict[str, Any]:
    return {"type": "agent.message", "content": [{"type": "text", "text": text}]}


def _idle(stop_reason: dict[str, Any]) -> dict[str, Any]:
    return {"type": "session.status_idle", "stop_reason": stop_reason}


def _span_end(start: dict[str, Any], *, is_error: bool = False) -> dict[str, Any]:
    usage = {
        "input_tokens": 12,
        "output_tokens": 7,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    return {
        "type": "span.model_request_end",
        "model_request_start_id": start["id"],
        "model_usage": usage,
        "is_error": is_error,
    }


def _closed(session: dict[str, Any]) -> str:
    return "archived" if session["archived_at"] is not None else session["status"]


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _int(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise api_error(400, f"{name}: expected an integer, got {text!r}") from None


def _bool(text: str | None, name: str) -> bool:
    if text is None:
        return False
    if text.lower() not in ("true", "false"):
        raise api_error(400, f"{name}: expected true or false, got {text!r}")
    return text.lower() == "true"


def _time(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise api_error(400, f"not an RFC 3339 time: {text!r}") from None


def _cursor(listing: str, offset: int) -> str:
    raw = json.dumps({"l": listing, "o": offset}).encode()
    return "page_" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read_cursor(token: str, listing: str) -> int:
    try:
        raw = token.removeprefix("page_")
        data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        if data["l"] != listing:
            raise ValueError(data["l"])
        return int(data["o"])
    except (ValueError, KeyError, TypeError):
        raise api_error(400, f"page: {token!r} is not a cursor of this listing") from None


# --- the fixture -------------------------------------------------------------------------------


def _require_sdk() -> None:
    try:
        import anthropic.types.beta  # noqa: F401
        import pydantic  # noqa: F401
    except ImportError:
        unavailable(
            "anthropic is not installed (the Anthropic contract checks bodies against its "
            "types): pip install anthropic==0.125.0"
        )


@pytest.fixture
def anthropic_contract() -> Iterator[Callable[..., AnthropicContract]]:
    """Start contract servers: ``anthropic_contract(page_size=2, lease_ttl=90,
    ping_interval=0.5, step_delay=0.0, api_key=None)`` returns a running
    ``AnthropicContract``; all stop after the test."""
    _require_sdk()

    def start(**config: Any) -> AnthropicContract:
        return AnthropicContract(**config).start()

    yield from stopped_after(start)
