"""`actk invoke`: one Responses request to an agent, its text printed as it arrives.

The request is ``POST <url>/responses`` with ``{"input": text, "stream": true}`` (plus
``model`` and ``structured_inputs`` when given). The stream is read with a small
server-sent-events parser (:func:`parse_sse`) that `actk smoke` shares.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from toolkit.errors import InvokeError
from toolkit.options import split_pair

if TYPE_CHECKING:
    import httpx

DONE = "[DONE]"


class _CanClose(Protocol):
    def close(self) -> None: ...


_Closable = TypeVar("_Closable", bound=_CanClose)
LOGS_HINT = "read the agent's logs for the cause"
RUN_HINT = "start the agent first with `actk run` (in another terminal), or pass --url"


@contextmanager
def closing_unless_interrupted(resource: _Closable) -> Iterator[_Closable]:
    """Close ``resource`` (an httpx client or response) after the block, except when Ctrl-C
    ended it: the interrupted call may hold the connection pool's lock, and closing would then
    wait for that lock for ever. The process is on its way out anyway."""
    try:
        yield resource
    except KeyboardInterrupt:
        raise
    except BaseException:
        resource.close()
        raise
    resource.close()


@dataclass(frozen=True)
class SSEEvent:
    """One server-sent event: its ``event:`` name (None when absent) and its ``data``."""

    event: str | None
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


def parse_sse(lines: Iterable[str]) -> Iterator[SSEEvent]:
    """Events from the lines of a ``text/event-stream`` body (comments are skipped)."""
    event: str | None = None
    data: list[str] = []
    for line in lines:
        line = line.rstrip("\r")
        if not line:
            if data:
                yield SSEEvent(event, "\n".join(data))
            event, data = None, []
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
    if data:
        yield SSEEvent(event, "\n".join(data))


def parse_inputs(pairs: Sequence[str]) -> dict[str, Any]:
    """``name=value`` pairs as structured inputs; a value that parses as JSON is taken as JSON
    (``n=3`` is 3, ``tags=["a"]`` a list), anything else as a string."""
    inputs: dict[str, Any] = {}
    for pair in pairs:
        name, raw = split_pair(
            pair, "--input", "--input userName=Ada or --input tags='[\"a\"]'", "name=value"
        )
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        inputs[name] = value
    return inputs


def responses_url(base: str) -> str:
    """``base`` + ``/responses``, unless ``base`` already ends with it."""
    base = base.rstrip("/")
    return base if base.endswith("/responses") else base + "/responses"


@dataclass
class InvokeResult:
    url: str
    id: str | None = None
    status: str | None = None
    model: str | None = None
    output_text: str = ""
    usage: Mapping[str, Any] | None = None
    events: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "id": self.id,
            "status": self.status,
            "model": self.model,
            "output_text": self.output_text,
            "usage": self.usage,
        }


def invoke(
    url: str,
    text: str,
    *,
    stream: bool = True,
    structured_inputs: Mapping[str, Any] | None = None,
    model: str | None = None,
    timeout: float = 120,
    on_delta: Callable[[str], None] | None = None,
) -> InvokeResult:
    """Send one request to ``url`` (the agent's base URL); ``on_delta`` gets each text piece."""
    import httpx

    target = responses_url(url)
    body: dict[str, Any] = {"input": text, "stream": stream}
    if model:
        body["model"] = model
    if structured_inputs:
        body["structured_inputs"] = dict(structured_inputs)
    result = InvokeResult(url=target)
    timeouts = httpx.Timeout(timeout, connect=10)
    try:
        from toolkit.call_log import httpx_hooks

        client = httpx.Client(timeout=timeouts, event_hooks=httpx_hooks())
        with closing_unless_interrupted(client) as http:
            if not stream:
                answer = http.post(target, json=body)
                _raise_for_error(answer, target)
                return from_response(result, _json(answer, target))
            request = http.build_request("POST", target, json=body)
            with closing_unless_interrupted(http.send(request, stream=True)) as answer:
                if answer.status_code >= 400:
                    answer.read()
                    _raise_for_error(answer, target)
                kind = answer.headers.get("content-type", "")
                if not kind.startswith("text/event-stream"):
                    answer.read()  # a server that ignores `stream`: take the JSON it sent
                    return from_response(result, _json(answer, target))
                return read_stream(result, parse_sse(answer.iter_lines()), on_delta)
    except httpx.ConnectError as exc:
        if "refused" in str(exc).lower():
            raise InvokeError(
                f"nothing answers at {target} (connection refused)", hint=RUN_HINT
            ) from None
        raise InvokeError(f"cannot connect to {target}: {exc}", hint=RUN_HINT) from None
    except httpx.RemoteProtocolError as exc:
        raise InvokeError(
            f"{target} closed the connection without a complete answer ({exc})",
            hint="the agent may still be starting or may have crashed: read `actk run`'s logs",
        ) from None
    except httpx.TimeoutException:
        raise InvokeError(
            f"no answer from {target} within {timeout:g} s",
            hint="raise --timeout, or check the agent's logs",
        ) from None
    except httpx.HTTPError as exc:
        raise InvokeError(f"request to {target} failed: {exc}", hint=RUN_HINT) from None


def read_stream(
    result: InvokeResult,
    events: Iterator[SSEEvent],
    on_delta: Callable[[str], None] | None,
) -> InvokeResult:
    """Fill ``result`` from a Responses event stream (text deltas go to ``on_delta`` as they
    arrive); a failed response, an error event or a stream without ``response.completed``
    raises InvokeError. Shared by every target's invoke."""
    for sse in events:
        if sse.data == DONE:
            break
        result.events += 1
        try:
            event = sse.json()
        except ValueError:
            raise InvokeError(
                f"the agent sent an event that is not JSON: {sse.data[:200]!r}",
                hint="the server does not speak the Responses streaming protocol",
            ) from None
        kind = event.get("type") or sse.event
        if kind == "response.output_text.delta":
            result.output_text += event.get("delta", "")
            if on_delta is not None:
                on_delta(event.get("delta", ""))
        elif kind in ("response.created", "response.in_progress"):
            _take_ids(result, event.get("response") or {})
        elif kind in ("response.completed", "response.incomplete"):
            response = event.get("response") or {}
            _take_ids(result, response)
            result.status = response.get("status") or kind.split(".")[-1]
            result.usage = response.get("usage")
            result.output_text = output_text(response) or result.output_text
        elif kind == "response.failed":
            error = (event.get("response") or {}).get("error") or {}
            raise InvokeError(f"the response failed: {_error_line(error)}", hint=LOGS_HINT)
        elif kind == "error":
            error = event.get("error") if isinstance(event.get("error"), dict) else event
            raise InvokeError(
                f"the agent sent an error event: {_error_line(error)}", hint=LOGS_HINT
            )
    if result.status is None:
        raise InvokeError(
            "the stream ended before response.completed",
            hint="the agent stopped mid-answer: read its logs",
        )
    return result


def from_response(result: InvokeResult, response: Any) -> InvokeResult:
    """Fill ``result`` from a whole (non-streamed) Responses object."""
    if not isinstance(response, dict):
        raise InvokeError(
            f"{result.url} answered with JSON that is not a response object",
            hint="is the URL the agent's base URL?",
        )
    _take_ids(result, response)
    result.status = response.get("status")
    result.usage = response.get("usage")
    result.output_text = output_text(response)
    if result.status == "failed":
        error = response.get("error") or {}
        raise InvokeError(f"the response failed: {_error_line(error)}", hint=LOGS_HINT)
    return result


def _error_line(error: Mapping[str, Any]) -> str:
    """``code: message`` of an OpenAI error object."""
    return f"{error.get('code') or 'error'}: {error.get('message') or 'no message'}"


def _take_ids(result: InvokeResult, response: Mapping[str, Any]) -> None:
    result.id = response.get("id") or result.id
    result.model = response.get("model") or result.model


def output_text(response: Mapping[str, Any]) -> str:
    """What the OpenAI SDK's ``response.output_text`` is: every output_text part joined."""
    return "".join(
        part.get("text", "")
        for item in response.get("output") or []
        if isinstance(item, dict) and item.get("type") == "message"
        for part in item.get("content") or []
        if isinstance(part, dict) and part.get("type") == "output_text"
    )


def _json(answer: httpx.Response, target: str) -> Any:
    try:
        return answer.json()
    except ValueError:
        raise InvokeError(
            f"{target} answered HTTP {answer.status_code} with a body that is not JSON: "
            f"{answer.text[:200]!r}",
            hint="is the URL the agent's base URL? it should serve POST /responses",
        ) from None


HINTS = {
    400: "fix the request as the message says",
    404: "is the URL the agent's base URL? it should serve POST /responses",
    413: "send a smaller input",
    415: "the agent wants Content-Type: application/json",
    503: "the agent is shutting down or not ready yet; retry in a moment",
}


def _raise_for_error(answer: httpx.Response, target: str) -> None:
    """An OpenAI-shaped error answer becomes one InvokeError naming type, code and param."""
    if answer.status_code < 400:
        return
    try:
        body = answer.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        details = ", ".join(
            f"{key} {error[key]}" for key in ("type", "code", "param") if error.get(key)
        )
        message = f"{error.get('message') or 'no message'}" + (f" ({details})" if details else "")
    else:
        message = answer.text[:200] or answer.reason_phrase
    raise InvokeError(
        f"the agent answered HTTP {answer.status_code}: {message}",
        hint=HINTS.get(answer.status_code, LOGS_HINT),
    )
