"""`actk smoke`: run the image, prove it keeps the container contract, remove it.

The checks, in the order they run (each one a row of the report):

| check             | passes when                                                          |
|-------------------|----------------------------------------------------------------------|
| readiness         | ``GET /readiness`` answers 200 within the timeout                    |
| health-aliases    | every health path (``HEALTH_PATHS``) answers 200                     |
| response          | ``POST /responses`` gives a completed ``response`` object with text  |
| stream-events     | the SSE stream follows ``STREAM_ORDER`` exactly, sequence numbers    |
|                   | count from 0, the text adds up, and ``data: [DONE]`` ends it         |
| structured-inputs | a request with the declared inputs (defaults, else placeholders)     |
|                   | completes                                                            |
| malformed-json    | a body that is not JSON gets 400 with the OpenAI error shape         |
| sigterm           | SIGTERM makes the container exit 0 within DRAIN_TIMEOUT + a grace    |

The container always goes away at the end, also when interrupted (Ctrl-C).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import zip_longest
from typing import TYPE_CHECKING, Any

from toolkit.container import AgentContainer, RunSpec, container_name, drain_timeout
from toolkit.errors import ContainerError
from toolkit.invoke import (
    DONE,
    SSEEvent,
    closing_unless_interrupted,
    output_text,
    parse_sse,
)

if TYPE_CHECKING:
    import docker
    import httpx

    from toolkit.manifest import InputSchema, StructuredInput

PROMPT = "actk smoke test"
HEALTH_PATHS = ("/readiness", "/ready", "/liveness", "/health", "/ping")
DELTA = "response.output_text.delta"
STREAM_HEAD = (
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
)
STREAM_TAIL = (
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
)
STREAM_ORDER = (*STREAM_HEAD, f"{DELTA} (x N)", *STREAM_TAIL, DONE)
DEFAULT_DRAIN_TIMEOUT = 10.0  # what smoke sets DRAIN_TIMEOUT to unless agent.yaml or a flag does
SIGTERM_GRACE = 3.0  # seconds on top of DRAIN_TIMEOUT for the process to exit


class CheckFailed(Exception):
    """A check's verdict: the message says what was wrong."""


@dataclass
class Check:
    name: str
    passed: bool
    detail: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "detail": self.detail,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class SmokeReport:
    image: str
    checks: list[Check] = field(default_factory=list)
    logs: str = ""  # the container's output, kept when a check failed
    missing_secrets: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(check.passed for check in self.checks)

    @property
    def failed(self) -> list[str]:
        return [check.name for check in self.checks if not check.passed]

    def to_dict(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "image": self.image,
            "passed": self.passed,
            "checks": [check.to_dict() for check in self.checks],
        }
        if not self.passed:
            payload["failed"] = self.failed
            payload["logs"] = self.logs
        return payload


@dataclass
class Target:
    """What a protocol check talks to."""

    http: httpx.Client
    structured_inputs: Mapping[str, StructuredInput]

    def request(self, **fields: Any) -> dict[str, Any]:
        """A request body for ``PROMPT``; it carries the required structured inputs (without
        them an agent that declares some can only answer 400)."""
        required = {name: spec for name, spec in self.structured_inputs.items() if spec.required}
        values, _ = smoke_inputs(required)
        return {"input": PROMPT, **({"structured_inputs": values} if values else {}), **fields}


# --- the protocol checks ---------------------------------------------------------------------


def check_health_aliases(target: Target) -> str:
    bad = []
    for path in HEALTH_PATHS:
        answer = target.http.get(path)
        if answer.status_code != 200:
            bad.append(f"{path} {answer.status_code}")
    if bad:
        raise CheckFailed("not 200: " + ", ".join(bad))
    return " ".join(HEALTH_PATHS) + ": 200"


def check_response(target: Target) -> str:
    body = _completed(target.http.post("/responses", json=target.request()))
    text = output_text(body)
    return f"completed, {len(text)} characters of text"


def check_stream_events(target: Target) -> str:
    request = target.http.build_request("POST", "/responses", json=target.request(stream=True))
    with closing_unless_interrupted(target.http.send(request, stream=True)) as got:
        if got.status_code != 200:
            got.read()
            raise CheckFailed(_status_detail(got, 200))
        kind = got.headers.get("content-type", "")
        if not kind.startswith("text/event-stream"):
            raise CheckFailed(f"content-type is {kind!r}, not text/event-stream")
        events = list(parse_sse(got.iter_lines()))
    return verify_stream(events)


def check_structured_inputs(target: Target) -> str:
    values, notes = smoke_inputs(target.structured_inputs)
    if not values:
        return "none declared" if not target.structured_inputs else "none required, no defaults"
    _completed(target.http.post("/responses", json=target.request(structured_inputs=values)))
    return "completed with " + ", ".join(notes)


def check_malformed_json(target: Target) -> str:
    answer = target.http.post(
        "/responses",
        content=b'{"input": "actk smoke test",',
        headers={"content-type": "application/json"},
    )
    if answer.status_code != 400:
        raise CheckFailed(_status_detail(answer, 400))
    error = _error_object(answer)
    if error is None:
        raise CheckFailed(
            'the body is not {"error": {"message", "type", "param", "code"}}: '
            f"{answer.text[:160]!r}"
        )
    return f"400 {error['type']} ({error['code']})"


PROTOCOL_CHECKS: tuple[tuple[str, Callable[[Target], str]], ...] = (
    ("health-aliases", check_health_aliases),
    ("response", check_response),
    ("stream-events", check_stream_events),
    ("structured-inputs", check_structured_inputs),
    ("malformed-json", check_malformed_json),
)


# --- the run ---------------------------------------------------------------------------------


def run_smoke(
    spec: RunSpec,
    *,
    timeout: float = 30,
    drain: float | None = None,
    read_only: bool = True,
    client: docker.DockerClient | None = None,
    on_start: Callable[[AgentContainer], None] | None = None,
    env: Mapping[str, str] | None = None,
) -> SmokeReport:
    """Start ``spec.image`` on a free port, run every check, stop and remove the container.
    ``env`` overrides the container's environment (not ``DRAIN_TIMEOUT``: that is ``drain``)."""
    import httpx

    from toolkit.call_log import httpx_hooks

    if drain is None:
        drain = drain_timeout(spec.env, DEFAULT_DRAIN_TIMEOUT)
    window = drain + SIGTERM_GRACE
    report = SmokeReport(image=spec.image)
    container = AgentContainer.start(
        spec,
        env={**(env or {}), "DRAIN_TIMEOUT": f"{drain:g}"},
        read_only=read_only,
        stop_timeout=round(window),
        name=container_name("smoke", spec.image),
        client=client,
    )
    with container:
        report.missing_secrets = container.missing_secrets
        if on_start is not None:
            on_start(container)
        started = time.monotonic()
        try:
            seconds = container.wait_ready(timeout)
        except ContainerError as exc:
            report.checks.append(Check("readiness", False, exc.message, time.monotonic() - started))
            report.logs = exc.logs
            return report
        report.checks.append(Check("readiness", True, f"200 after {seconds:.2f} s", seconds))
        target = Target(
            http=httpx.Client(base_url=container.url, timeout=timeout,
                              event_hooks=httpx_hooks()),
            structured_inputs=spec.structured_inputs,
        )
        with closing_unless_interrupted(target.http):
            for name, check in PROTOCOL_CHECKS:
                report.checks.append(_timed(name, check, target))
        report.checks.append(_timed("sigterm", lambda _: _check_sigterm(container, window), None))
        if not report.passed:
            report.logs = container.logs()
    return report


def _timed(name: str, check: Callable[[Any], str], target: Any) -> Check:
    import httpx

    started = time.monotonic()
    try:
        detail, passed = check(target), True
    except CheckFailed as exc:
        detail, passed = str(exc), False
    except httpx.HTTPError as exc:
        detail, passed = f"{type(exc).__name__}: {exc}", False
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        detail, passed = f"unexpected answer ({type(exc).__name__}: {exc})", False
    return Check(name, passed, detail, time.monotonic() - started)


def _check_sigterm(container: AgentContainer, window: float) -> str:
    result = container.stop(timeout=window)
    if result.killed:
        raise CheckFailed(
            f"still running {result.seconds:.1f} s after SIGTERM, so it was killed "
            f"(exit {result.exit_code}); it must drain and exit within {window:g} s"
        )
    if result.exit_code != 0:
        raise CheckFailed(
            f"exit code {result.exit_code} after {result.seconds:.2f} s; expected 0 (drain, "
            "then exit 0)"
        )
    if result.seconds > window:
        raise CheckFailed(f"exit 0, but after {result.seconds:.1f} s (window {window:g} s)")
    return f"exit 0 after {result.seconds:.2f} s (window {window:g} s)"


# --- verdicts --------------------------------------------------------------------------------


def verify_stream(events: Sequence[SSEEvent]) -> str:
    """Check a Responses event stream for a plain text answer; a one-line summary, or
    :class:`CheckFailed` naming the first event that is wrong."""
    if not events:
        raise CheckFailed("the stream carried no events")
    if events[-1].data != DONE:
        raise CheckFailed(f"the stream does not end with data: {DONE}")
    body = events[:-1]
    parsed: list[dict[str, Any]] = []
    for index, sse in enumerate(body):
        if sse.data == DONE:
            raise CheckFailed(f"data: {DONE} came early, as event {index}")
        try:
            event = json.loads(sse.data)
        except ValueError:
            raise CheckFailed(f"event {index} is not JSON: {sse.data[:80]!r}") from None
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise CheckFailed(f"event {index} has no type")
        kind = event["type"]
        if sse.event is not None and sse.event != kind:
            raise CheckFailed(f"event {index}: 'event: {sse.event}' but type {kind}")
        if event.get("sequence_number") != index:
            raise CheckFailed(
                f"event {index} ({kind}) has sequence_number {event.get('sequence_number')!r}; "
                f"expected {index} (they count from 0 by one)"
            )
        parsed.append(event)
    types = [event["type"] for event in parsed]
    deltas = 0
    while len(STREAM_HEAD) + deltas < len(types) and types[len(STREAM_HEAD) + deltas] == DELTA:
        deltas += 1
    expected = [*STREAM_HEAD, *[DELTA] * deltas, *STREAM_TAIL]
    for index, (want, got) in enumerate(zip_longest(expected, types)):
        if got is None:
            raise CheckFailed(f"the stream stopped after {index} events; expected {want} next")
        if want is None:
            raise CheckFailed(f"event {index}: unexpected {got} after response.completed")
        if want != got:
            raise CheckFailed(f"event {index}: expected {want}, got {got}")
    _verify_stream_content(parsed, deltas)
    return (
        f"{len(parsed)} events in order (sequence 0-{len(parsed) - 1}, {deltas} deltas), "
        f"then {DONE}"
    )


def _verify_stream_content(events: list[dict[str, Any]], deltas: int) -> None:
    created, completed = events[0]["response"], events[-1]["response"]
    if created.get("status") not in ("in_progress", "queued"):
        raise CheckFailed(f"response.created has status {created.get('status')!r}")
    if completed.get("status") != "completed":
        raise CheckFailed(f"response.completed has status {completed.get('status')!r}")
    item_id = events[2]["item"]["id"]
    for index, event in enumerate(events):
        if "item_id" in event and event["item_id"] != item_id:
            raise CheckFailed(f"event {index} names item {event['item_id']!r}, not {item_id!r}")
    streamed = "".join(event["delta"] for event in events[4 : 4 + deltas])
    done_text = events[4 + deltas]["text"]
    if streamed != done_text:
        raise CheckFailed(
            f"the deltas add up to {streamed[:40]!r}, but output_text.done has {done_text[:40]!r}"
        )
    if output_text(completed) != done_text:
        raise CheckFailed("response.completed's output text differs from output_text.done")


def smoke_inputs(declared: Mapping[str, StructuredInput]) -> tuple[dict[str, Any], list[str]]:
    """Values for the declared structured inputs: each default, and a placeholder of the right
    type for a required input without one. Also one note per value (for the report)."""
    values: dict[str, Any] = {}
    notes: list[str] = []
    for name, spec in declared.items():
        if spec.default_value is not None:
            values[name] = spec.default_value
            notes.append(f"{name} (default)")
        elif spec.required:
            values[name] = placeholder(spec.schema_)
            notes.append(f"{name} (placeholder)")
    return values, notes


def placeholder(schema: InputSchema) -> Any:
    """A value of the schema's type."""
    if schema.type == "array":
        return [placeholder(schema.items)] if schema.items is not None else []
    return {"string": "smoke", "number": 1.5, "integer": 1, "boolean": True}.get(schema.type, {})


# --- helpers ---------------------------------------------------------------------------------


def _completed(answer: httpx.Response) -> dict[str, Any]:
    if answer.status_code != 200:
        raise CheckFailed(_status_detail(answer, 200))
    body = answer.json()
    if not isinstance(body, dict):
        raise CheckFailed("the body is not a JSON object")
    if body.get("object") != "response":
        raise CheckFailed(f"object is {body.get('object')!r}, not 'response'")
    if not isinstance(body.get("id"), str) or not body["id"]:
        raise CheckFailed("the response has no id")
    if body.get("status") != "completed":
        error = body.get("error") or {}
        raise CheckFailed(f"status is {body.get('status')!r}: {error.get('message', '')}".strip())
    output = body.get("output")
    if not isinstance(output, list) or not any(
        isinstance(item, dict) and item.get("type") == "message" for item in output
    ):
        raise CheckFailed("output holds no message item")
    return body


def _error_object(answer: httpx.Response) -> dict[str, Any] | None:
    try:
        body = answer.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or not {"message", "type", "param", "code"} <= error.keys():
        return None
    if not isinstance(error["message"], str) or not error["message"]:
        return None
    if not isinstance(error["type"], str):
        return None
    return error


def _status_detail(answer: httpx.Response, expected: int) -> str:
    error = _error_object(answer)
    said = error["message"] if error else answer.text[:160]
    return f"HTTP {answer.status_code} (expected {expected}): {said}".rstrip(": ")
