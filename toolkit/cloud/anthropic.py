"""Anthropic managed agents (beta ``managed-agents-2026-04-01``): environments, agents,
sessions and their events, on :class:`~toolkit.cloud.http.CloudHttp`.

Every call carries ``x-api-key``, ``anthropic-version: 2023-06-01``, ``anthropic-beta:
managed-agents-2026-04-01`` and ``content-type: application/json``; paths carry ``?beta=true``
as the official SDK's do:

    environments  GET/POST /v1/environments, GET/POST/DELETE /v1/environments/{id},
                  POST /v1/environments/{id}/archive, GET /v1/environments/{id}/work/stats
                  (the last with the environment key as a Bearer token, not the API key)
    agents        GET/POST /v1/agents, GET/POST /v1/agents/{id}, POST /v1/agents/{id}/archive
    sessions      GET/POST /v1/sessions, GET/POST/DELETE /v1/sessions/{id},
                  POST /v1/sessions/{id}/archive, POST /v1/sessions/{id}/events,
                  GET /v1/sessions/{id}/events/stream (server-sent events)

Lists page with ``limit`` + ``page`` and answer ``data`` + ``next_page``. Errors come as
``{"type": "error", "error": {"type", "message"}, "request_id"}`` and become an
:class:`AnthropicAPIError` naming the status, type, message and request id, with a hint per
status. 429 (and 503/529 overload) are retried after ``retry-after`` by CloudHttp; a POST that
creates something is never sent twice on a 5xx or a timeout (a retried create can duplicate):
callers look the resource up by name instead.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from toolkit.cloud.http import CloudHttp, RetryPolicy, attempts_made
from toolkit.errors import CloudError, UsageError
from toolkit.redact import REDACTED

if TYPE_CHECKING:
    import httpx

    from toolkit.invoke import SSEEvent

DEFAULT_BASE = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
BETA = "managed-agents-2026-04-01"
KEY_VARIABLE = "ANTHROPIC_API_KEY"
BASE_VARIABLE = "ANTHROPIC_BASE_URL"
ENVIRONMENT_KEY_VARIABLE = "ANTHROPIC_ENVIRONMENT_KEY"
PAGE_LIMIT = 100
MAX_PAGES = 50
SERVICE = "the Anthropic API"
# 529 is Anthropic's "overloaded": as safe to wait for as a 503.
OVERLOADED = 529

STATUS_HINTS = {
    400: "fix what the message names in targets.anthropic of agent.yaml; "
    "`actk deploy anthropic --dry-run` shows the request",
    401: f"{KEY_VARIABLE} is missing, mistyped or revoked: create a key in the Claude Console "
    "(Settings > API keys) and export it",
    402: "the organization's credit or billing needs attention (Claude Console > Billing)",
    403: "the API key's workspace may not use managed agents (or this resource): check the "
    "key's workspace and its permissions in the Claude Console",
    404: "it does not exist (or not in this key's workspace): deploy first (`actk deploy "
    "anthropic`), or check the id",
    409: "the name or version is taken, or the resource changed meanwhile: run the command "
    "again (it looks the resource up by name and compares once more)",
    413: "the request is too large: shorten the system prompt, tools or metadata",
    429: "rate limited even after waiting as the API asked: wait a minute and run the command "
    "again (managed-agents creates are limited per minute per organization)",
    500: "the API failed: retry in a moment (https://status.anthropic.com)",
    529: "the API is overloaded: retry in a few minutes (https://status.anthropic.com)",
}


class AnthropicAPIError(CloudError):
    """An error answer from the API: ``status``, the error ``type`` and the ``request_id``."""

    def __init__(self, message: str, *, hint: str | None, status: int, type: str = "",
                 request_id: str = "") -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.type = type
        self.request_id = request_id

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "status": self.status, "type": self.type,
                "request_id": self.request_id}


def api_base(env: Mapping[str, str], configured: str | None = None) -> str:
    """The API base: ANTHROPIC_BASE_URL, else ``targets.anthropic.api_base``, else the public
    API. http is allowed for loopback hosts only."""
    from toolkit.manifest import check_api_base

    chosen = (env.get(BASE_VARIABLE) or "").strip() or configured or DEFAULT_BASE
    try:
        return check_api_base(chosen)
    except ValueError as exc:
        raise UsageError(f"{BASE_VARIABLE}: {exc}",
                         hint=f"unset {BASE_VARIABLE} to use {DEFAULT_BASE}") from None


def path(template: str, **ids: str) -> str:
    """``/v1/...?beta=true`` with ``ids`` filled in (a dry run keeps ``{name}`` placeholders)."""
    return template.format(**ids) + "?beta=true"


ENVIRONMENTS = "/v1/environments"
AGENTS = "/v1/agents"
SESSIONS = "/v1/sessions"


@dataclass(frozen=True)
class Call:
    """One request as data: what ``--dry-run`` shows is what :meth:`AnthropicClient.send`
    sends. ``path`` holds ``?beta=true``; ``query`` is added after it."""

    method: str
    path: str
    query: Mapping[str, Any] = field(default_factory=dict)
    body: Any = None
    idempotent: bool | None = None

    def url(self, base: str) -> str:
        query = urlencode([(k, _query_value(v)) for k, v in self.query.items() if v is not None])
        return base + self.path + (f"&{query}" if query else "")


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --- calls ------------------------------------------------------------------------------------


def list_environments_call(*, include_archived: bool = False, page: str | None = None) -> Call:
    return Call("GET", path(ENVIRONMENTS), {"limit": PAGE_LIMIT, "page": page,
                                            "include_archived": include_archived or None})


def get_environment_call(environment_id: str) -> Call:
    return Call("GET", path(ENVIRONMENTS + "/{id}", id=environment_id))


def create_environment_call(body: Mapping[str, Any]) -> Call:
    return Call("POST", path(ENVIRONMENTS), body=dict(body))


def update_environment_call(environment_id: str, body: Mapping[str, Any]) -> Call:
    return Call("POST", path(ENVIRONMENTS + "/{id}", id=environment_id), body=dict(body))


def delete_environment_call(environment_id: str) -> Call:
    return Call("DELETE", path(ENVIRONMENTS + "/{id}", id=environment_id))


def archive_environment_call(environment_id: str) -> Call:
    return Call("POST", path(ENVIRONMENTS + "/{id}/archive", id=environment_id), idempotent=True)


def work_stats_call(environment_id: str) -> Call:
    return Call("GET", path(ENVIRONMENTS + "/{id}/work/stats", id=environment_id))


def list_agents_call(*, include_archived: bool = False, page: str | None = None) -> Call:
    return Call("GET", path(AGENTS), {"limit": PAGE_LIMIT, "page": page,
                                      "include_archived": include_archived or None})


def get_agent_call(agent_id: str) -> Call:
    return Call("GET", path(AGENTS + "/{id}", id=agent_id))


def create_agent_call(body: Mapping[str, Any]) -> Call:
    return Call("POST", path(AGENTS), body=dict(body))


def update_agent_call(agent_id: str, body: Mapping[str, Any]) -> Call:
    return Call("POST", path(AGENTS + "/{id}", id=agent_id), body=dict(body))


def archive_agent_call(agent_id: str) -> Call:
    return Call("POST", path(AGENTS + "/{id}/archive", id=agent_id), idempotent=True)


def list_sessions_call(*, agent_id: str | None = None, agent_version: int | str | None = None,
                       include_archived: bool = False, page: str | None = None) -> Call:
    return Call("GET", path(SESSIONS), {"agent_id": agent_id, "agent_version": agent_version,
                                        "limit": PAGE_LIMIT, "page": page,
                                        "include_archived": include_archived or None})


def get_session_call(session_id: str) -> Call:
    return Call("GET", path(SESSIONS + "/{id}", id=session_id))


def create_session_call(body: Mapping[str, Any]) -> Call:
    return Call("POST", path(SESSIONS), body=dict(body))


def update_session_call(session_id: str, body: Mapping[str, Any]) -> Call:
    return Call("POST", path(SESSIONS + "/{id}", id=session_id), body=dict(body))


def delete_session_call(session_id: str) -> Call:
    return Call("DELETE", path(SESSIONS + "/{id}", id=session_id))


def archive_session_call(session_id: str) -> Call:
    return Call("POST", path(SESSIONS + "/{id}/archive", id=session_id), idempotent=True)


def send_events_call(session_id: str, events: list[dict[str, Any]]) -> Call:
    return Call("POST", path(SESSIONS + "/{id}/events", id=session_id), body={"events": events})


def stream_events_call(session_id: str) -> Call:
    return Call("GET", path(SESSIONS + "/{id}/events/stream", id=session_id))


def user_message(text: str) -> dict[str, Any]:
    return {"type": "user.message", "content": [{"type": "text", "text": text}]}


# --- errors -----------------------------------------------------------------------------------


def error_from(response: httpx.Response, what: str, redact: Callable[[str], str] = str
               ) -> AnthropicAPIError:
    """An error answer as one AnthropicAPIError with its hint."""
    status = response.status_code
    kind, message, request_id = "", "", response.headers.get("request-id", "")
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict):
            kind = str(error.get("type") or "")
            message = str(error.get("message") or "")
        request_id = str(payload.get("request_id") or request_id)
    if not message:
        message = (response.text or "")[:200].strip() or response.reason_phrase
    text = f"{what}: HTTP {status}" + (f" {kind}" if kind else "") + f": {message}"
    if request_id:
        text += f" (request_id {request_id})"
    hint = STATUS_HINTS.get(status)
    if hint is None:
        hint = STATUS_HINTS[500] if status >= 500 else STATUS_HINTS[400]
    if status == 429:
        attempts = attempts_made(response)
        text += f", after {attempts} attempt{'s' if attempts != 1 else ''}"
    return AnthropicAPIError(redact(text), hint=hint, status=status, type=kind,
                             request_id=request_id)


def _retry_overloaded(response: httpx.Response) -> bool:
    return response.status_code == OVERLOADED


# --- the client -------------------------------------------------------------------------------


class AnthropicClient:
    """The managed-agents API with one API key (``api_key`` None: describe calls only)."""

    def __init__(
        self,
        api_key: str | None,
        *,
        base_url: str = DEFAULT_BASE,
        retry: RetryPolicy | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_call: Callable[[str], None] | None = None,
        on_retry: Callable[[str], None] | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        from urllib.parse import urlsplit

        self.api_key = api_key
        self.base_url = base_url.rstrip("/")
        host = urlsplit(self.base_url).hostname
        self._transport = transport
        self._trust_env = host not in ("127.0.0.1", "localhost", "::1")
        self._sleep = sleep
        self.http = CloudHttp(
            SERVICE,
            base_url=self.base_url,
            headers=self.headers(api_key or ""),
            secrets=[api_key or "", *secrets],
            policy=retry,
            timeout=timeout,
            transport=transport,
            trust_env=self._trust_env,
            sleep=sleep,
            on_call=on_call,
            on_retry=on_retry,
            retry_if=_retry_overloaded,
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> AnthropicClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @staticmethod
    def headers(api_key: str) -> dict[str, str]:
        return {
            "x-api-key": api_key,
            "anthropic-version": API_VERSION,
            "anthropic-beta": BETA,
            "content-type": "application/json",
        }

    def describe(self, call: Call) -> tuple[str, str, dict[str, str], Any]:
        """(method, URL, headers, body) of ``call``, the API key replaced by [REDACTED]."""
        headers = self.headers(REDACTED)
        url = call.url(self.base_url).replace("%7B", "{").replace("%7D", "}")
        return call.method, url, headers, call.body

    # --- sending ---

    def _require_key(self) -> None:
        if not self.api_key:
            raise UsageError(f"{KEY_VARIABLE} is not set",
                             hint=f"export {KEY_VARIABLE}=... (an API key from the Claude Console; "
                             "in CI, from the secret store)")

    def send(self, call: Call, *, what: str | None = None) -> dict[str, Any]:
        """Send ``call``; the answer's JSON object ({} for an empty answer). An error answer
        raises :class:`AnthropicAPIError`."""
        self._require_key()
        what = what or f"{call.method} {call.path.split('?', 1)[0]}"
        kwargs: dict[str, Any] = {}
        if call.body is not None:
            kwargs["content"] = json.dumps(call.body).encode("utf-8")
        response = self.http.request(call.method, call.url(""), idempotent=call.idempotent,
                                     label=what, **kwargs)
        if response.status_code >= 400:
            raise error_from(response, what, self.http.redact)
        if not response.content:
            return {}
        try:
            payload = response.json()
        except ValueError:
            raise CloudError(
                self.http.redact(f"{what}: the answer is not JSON: {response.text[:200]!r}"),
                hint=f"is {self.base_url} the Anthropic API? ({BASE_VARIABLE})",
            ) from None
        return payload if isinstance(payload, dict) else {}

    def pages(self, make: Callable[[str | None], Call], what: str) -> Iterator[dict[str, Any]]:
        """Every item of a list, following ``next_page`` (at most MAX_PAGES pages)."""
        page: str | None = None
        for _ in range(MAX_PAGES):
            answer = self.send(make(page), what=what)
            yield from (item for item in answer.get("data") or [] if isinstance(item, dict))
            page = answer.get("next_page")
            if not page:
                return

    def _get_or_none(self, call: Call, what: str) -> dict[str, Any] | None:
        try:
            return self.send(call, what=what)
        except AnthropicAPIError as error:
            if error.status == 404:
                return None
            raise

    # --- environments ---

    def list_environments(self, *, include_archived: bool = False) -> Iterator[dict[str, Any]]:
        return self.pages(lambda page: list_environments_call(include_archived=include_archived,
                                                              page=page), "list environments")

    def find_environment(self, name: str, *, include_archived: bool = False
                         ) -> dict[str, Any] | None:
        """The environment called exactly ``name``; an unarchived one before an archived one."""
        found = [e for e in self.list_environments(include_archived=include_archived)
                 if e.get("name") == name]
        found.sort(key=lambda e: e.get("archived_at") is not None)
        return found[0] if found else None

    def get_environment(self, environment_id: str) -> dict[str, Any] | None:
        return self._get_or_none(get_environment_call(environment_id),
                                 f"get environment {environment_id}")

    def create_environment(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.send(create_environment_call(body),
                         what=f"create environment {body.get('name')}")

    def update_environment(self, environment_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.send(update_environment_call(environment_id, body),
                         what=f"update environment {environment_id}")

    def delete_environment(self, environment_id: str) -> dict[str, Any]:
        return self.send(delete_environment_call(environment_id),
                         what=f"delete environment {environment_id}")

    def archive_environment(self, environment_id: str) -> dict[str, Any]:
        return self.send(archive_environment_call(environment_id),
                         what=f"archive environment {environment_id}")

    def work_stats(self, environment_id: str, environment_key: str) -> dict[str, Any]:
        """The self-hosted work queue's stats, with the environment key (not the API key)."""
        from toolkit.cloud.anthropic_work import WorkQueue

        self.http.add_secret(environment_key)
        with WorkQueue(self.base_url, environment_id, environment_key, policy=self.http.policy,
                       transport=self._transport, trust_env=self._trust_env,
                       sleep=self._sleep) as queue:
            return queue.stats()

    # --- agents ---

    def list_agents(self, *, include_archived: bool = False) -> Iterator[dict[str, Any]]:
        return self.pages(lambda page: list_agents_call(include_archived=include_archived,
                                                        page=page), "list agents")

    def find_agent(self, name: str, *, include_archived: bool = False) -> dict[str, Any] | None:
        found = [a for a in self.list_agents(include_archived=include_archived)
                 if a.get("name") == name]
        found.sort(key=lambda a: a.get("archived_at") is not None)
        return found[0] if found else None

    def get_agent(self, agent_id: str) -> dict[str, Any] | None:
        return self._get_or_none(get_agent_call(agent_id), f"get agent {agent_id}")

    def create_agent(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.send(create_agent_call(body), what=f"create agent {body.get('name')}")

    def update_agent(self, agent_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.send(update_agent_call(agent_id, body), what=f"update agent {agent_id}")

    def archive_agent(self, agent_id: str) -> dict[str, Any]:
        return self.send(archive_agent_call(agent_id), what=f"archive agent {agent_id}")

    # --- sessions ---

    def list_sessions(self, *, agent_id: str | None = None, agent_version: int | None = None,
                      include_archived: bool = False) -> Iterator[dict[str, Any]]:
        return self.pages(
            lambda page: list_sessions_call(agent_id=agent_id, agent_version=agent_version,
                                            include_archived=include_archived, page=page),
            "list sessions",
        )

    def get_session(self, session_id: str) -> dict[str, Any] | None:
        return self._get_or_none(get_session_call(session_id), f"get session {session_id}")

    def create_session(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.send(create_session_call(body), what="create session")

    def update_session(self, session_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.send(update_session_call(session_id, body),
                         what=f"update session {session_id}")

    def delete_session(self, session_id: str) -> dict[str, Any]:
        return self.send(delete_session_call(session_id), what=f"delete session {session_id}")

    def archive_session(self, session_id: str) -> dict[str, Any]:
        return self.send(archive_session_call(session_id), what=f"archive session {session_id}")

    def send_events(self, session_id: str, events: list[dict[str, Any]]) -> dict[str, Any]:
        return self.send(send_events_call(session_id, events),
                         what=f"send events to session {session_id}")

    @contextmanager
    def stream_events(self, session_id: str, *, read_timeout: float
                      ) -> Iterator[Iterator[SSEEvent]]:
        """Open the session's event stream (headers received, so events sent afterwards are
        seen) and yield its server-sent events; closed when the block ends."""
        import httpx

        from toolkit.invoke import parse_sse

        self._require_key()
        call = stream_events_call(session_id)
        what = f"stream events of session {session_id}"
        response = self.http.request(
            "GET", call.url(""), label=what, stream=True,
            headers={"accept": "text/event-stream"},
            timeout=httpx.Timeout(read_timeout, connect=10),
        )
        try:
            if response.status_code >= 400:
                response.read()
                raise error_from(response, what, self.http.redact)
            yield parse_sse(response.iter_lines())
        finally:
            response.close()


def open_client(
    env: Mapping[str, str],
    *,
    configured_base: str | None = None,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] = time.sleep,
    on_call: Callable[[str], None] | None = None,
    on_retry: Callable[[str], None] | None = None,
) -> AnthropicClient:
    """A client with ANTHROPIC_API_KEY (None when unset: it can describe calls, and any send
    says how to set the key) on :func:`api_base`."""
    key = (env.get(KEY_VARIABLE) or "").strip() or None
    return AnthropicClient(
        key,
        base_url=api_base(env, configured_base),
        transport=transport,
        sleep=sleep,
        on_call=on_call,
        on_retry=on_retry,
        secrets=[env.get(ENVIRONMENT_KEY_VARIABLE) or ""],
    )
