"""Parse and validate a Responses ``POST /responses`` body into a :class:`CreateRequest`.

Validation is hand-written (no pydantic) so the container starts fast and stays small; every
rejection is an :class:`InvalidRequest` whose ``param`` names the offending field the way
OpenAI does (``input[2].content[0].text``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidRequest
from .formats import FormatProblem, check_format

MESSAGE_ROLES = ("user", "system", "developer", "assistant")
INPUT_PART_TYPES = ("input_text", "input_image", "input_file")
ASSISTANT_PART_TYPES = ("output_text", "refusal")
ITEM_TYPES = ("message", "function_call", "function_call_output")
METADATA_MAX_PAIRS = 16
METADATA_MAX_KEY = 64
METADATA_MAX_VALUE = 512


@dataclass(slots=True)
class CreateRequest:
    """A validated request; ``items`` are normalised input items (content always a list)."""

    items: list[dict[str, Any]]
    instructions: str | None = None
    model: str | None = None
    stream: bool = False
    store: bool = True
    background: bool = False
    previous_response_id: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None
    tools: list[Any] = field(default_factory=list)
    tool_choice: Any = "auto"
    parallel_tool_calls: bool = True
    text: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    truncation: str = "disabled"
    user: str | None = None
    conversation: str | None = None
    agent_reference: dict[str, Any] | None = None
    agent_session_id: str | None = None
    response_id: str | None = None
    structured_inputs: dict[str, Any] = field(default_factory=dict)
    plain: bool = False  # sets none of RESPONSE_SHAPING (so the Response gets the defaults)


def _fail(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param, code="invalid_value")


def _optional_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None or isinstance(value, str):
        return value
    raise _fail(f"'{name}' must be a string.", name)


def _optional_bool(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    raise _fail(f"'{name}' must be a boolean.", name)


def _optional_number(body: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
        raise _fail(f"'{name}' must be a number between {low:g} and {high:g}.", name)
    if not low <= value <= high:
        raise _fail(f"'{name}' must be between {low:g} and {high:g}; got {value:g}.", name)
    return float(value)


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def _max_output_tokens(body: dict[str, Any]) -> int | None:
    value = body.get("max_output_tokens")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _fail("'max_output_tokens' must be a positive integer.", "max_output_tokens")
    return value


def _metadata(body: dict[str, Any]) -> dict[str, str]:
    value = body.get("metadata")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail("'metadata' must be an object of string keys and string values.", "metadata")
    if len(value) > METADATA_MAX_PAIRS:
        raise _fail(
            f"'metadata' has {len(value)} pairs; at most {METADATA_MAX_PAIRS} are allowed.",
            "metadata",
        )
    for key, item in value.items():
        if len(key) > METADATA_MAX_KEY:
            raise _fail(
                f"metadata key '{key[:20]}…' is longer than {METADATA_MAX_KEY} characters.",
                f"metadata.{key}",
            )
        if not isinstance(item, str):
            raise _fail(f"metadata value for '{key}' must be a string.", f"metadata.{key}")
        if len(item) > METADATA_MAX_VALUE:
            raise _fail(
                f"metadata value for '{key}' is longer than {METADATA_MAX_VALUE} characters.",
                f"metadata.{key}",
            )
    return value


def _text_part(part: Any, where: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    if isinstance(part, str):
        return {"type": allowed[0], "text": part}
    if not isinstance(part, dict):
        raise _fail("A content part must be an object.", where)
    kind = part.get("type")
    if kind not in allowed:
        raise _fail(
            f"Unsupported content part type {kind!r}; expected one of {', '.join(allowed)}.",
            f"{where}.type",
        )
    if kind in ("input_text", "output_text", "refusal"):
        key = "refusal" if kind == "refusal" else "text"
        if not isinstance(part.get(key), str):
            raise _fail(f"'{key}' of a {kind} part must be a string.", f"{where}.{key}")
    return part


def _message(item: dict[str, Any], where: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in MESSAGE_ROLES:
        raise _fail(
            f"A message role must be one of {', '.join(MESSAGE_ROLES)}; got {role!r}.",
            f"{where}.role",
        )
    allowed = ASSISTANT_PART_TYPES if role == "assistant" else INPUT_PART_TYPES
    content = item.get("content")
    if isinstance(content, str):
        parts = [{"type": allowed[0], "text": content}]
    elif isinstance(content, list):
        parts = [
            _text_part(part, f"{where}.content[{index}]", allowed)
            for index, part in enumerate(content)
        ]
    else:
        raise _fail("Message content must be a string or a list of parts.", f"{where}.content")
    return {"type": "message", "role": role, "content": parts}


def _function_item(item: dict[str, Any], where: str) -> dict[str, Any]:
    required = ("call_id", "name", "arguments") if item["type"] == "function_call" else (
        "call_id",
        "output",
    )
    for key in required:
        if not isinstance(item.get(key), str):
            raise _fail(f"'{key}' of a {item['type']} item must be a string.", f"{where}.{key}")
    return {key: item[key] for key in ("type", *required)}


def _items(body: dict[str, Any]) -> list[dict[str, Any]]:
    value = body.get("input")
    if value is None:
        return []
    if isinstance(value, str):
        part = {"type": "input_text", "text": value}
        return [{"type": "message", "role": "user", "content": [part]}]
    if not isinstance(value, list):
        raise _fail("'input' must be a string or a list of input items.", "input")
    items = []
    for index, item in enumerate(value):
        where = f"input[{index}]"
        if not isinstance(item, dict):
            raise _fail("An input item must be an object.", where)
        kind = item.get("type", "message")
        if kind == "message":
            items.append(_message(item, where))
        elif kind in ("function_call", "function_call_output"):
            items.append(_function_item(item, where))
        else:
            raise _fail(
                f"Unsupported input item type {kind!r}; this agent accepts "
                f"{', '.join(ITEM_TYPES)}.",
                f"{where}.type",
            )
    return items


def _conversation(body: dict[str, Any]) -> str | None:
    value = body.get("conversation")
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return value["id"]
    raise _fail("'conversation' must be a string id or an object with an 'id'.", "conversation")


def _agent_reference(body: dict[str, Any]) -> dict[str, Any] | None:
    value = body.get("agent_reference")
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("type") != "agent_reference":
        raise _fail(
            "'agent_reference' must be an object with type 'agent_reference'.", "agent_reference"
        )
    if not isinstance(value.get("name"), str) or not value["name"]:
        raise _fail("'agent_reference.name' must be a non-empty string.", "agent_reference.name")
    return value


def _object(body: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = body.get(name)
    if value is None or isinstance(value, dict):
        return value
    raise _fail(f"'{name}' must be an object.", name)


def _text(body: dict[str, Any]) -> dict[str, Any] | None:
    """``text``, with ``text.format`` checked (type text, json_object or json_schema)."""
    text = _object(body, "text")
    if text is None or text.get("format") is None:
        return text
    try:
        return {**text, "format": check_format(text["format"])}
    except FormatProblem as problem:
        raise _fail(f"Invalid 'text.format{problem.where}': {problem.message}",
                    f"text.format{problem.where}") from None


def _tools(body: dict[str, Any]) -> list[Any]:
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise _fail("'tools' must be a list.", "tools")
    return tools or []


def _session_id(body: dict[str, Any]) -> str | None:
    """``agent_session_id``: it goes back as the ``x-agent-session-id`` header, which cannot
    hold control characters (a newline there would end the header)."""
    value = _optional_str(body, "agent_session_id")
    if value is not None and _CONTROL.search(value):
        raise _fail("'agent_session_id' must not hold control characters.", "agent_session_id")
    return value


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _truncation(body: dict[str, Any]) -> str:
    truncation = body.get("truncation") or "disabled"
    if truncation not in ("auto", "disabled"):
        raise _fail("'truncation' must be 'auto' or 'disabled'.", "truncation")
    return truncation


# Every field a request may set: (body key, CreateRequest attribute, how it is read), in the
# order they are checked, so a request with several bad fields is told about the first one.
_FIELDS: tuple[tuple[str, str, Callable[[dict[str, Any]], Any]], ...] = (
    ("tools", "tools", _tools),
    ("truncation", "truncation", _truncation),
    ("input", "items", _items),
    ("instructions", "instructions", lambda body: _optional_str(body, "instructions")),
    ("model", "model", lambda body: _optional_str(body, "model")),
    ("stream", "stream", lambda body: _optional_bool(body, "stream", False)),
    ("store", "store", lambda body: _optional_bool(body, "store", True)),
    ("background", "background", lambda body: _optional_bool(body, "background", False)),
    ("previous_response_id", "previous_response_id",
     lambda body: _optional_str(body, "previous_response_id")),
    ("metadata", "metadata", _metadata),
    ("temperature", "temperature", lambda body: _optional_number(body, "temperature", 0, 2)),
    ("top_p", "top_p", lambda body: _optional_number(body, "top_p", 0, 1)),
    ("max_output_tokens", "max_output_tokens", _max_output_tokens),
    ("tool_choice", "tool_choice", lambda body: body.get("tool_choice") or "auto"),
    ("parallel_tool_calls", "parallel_tool_calls",
     lambda body: _optional_bool(body, "parallel_tool_calls", True)),
    ("text", "text", _text),
    ("reasoning", "reasoning", lambda body: _object(body, "reasoning")),
    ("user", "user", lambda body: _optional_str(body, "user")),
    ("conversation", "conversation", _conversation),
    ("agent_reference", "agent_reference", _agent_reference),
    ("agent_session_id", "agent_session_id", _session_id),
    ("response_id", "response_id", lambda body: _optional_str(body, "response_id")),
    ("structured_inputs", "structured_inputs",
     lambda body: _object(body, "structured_inputs") or {}),
)
_FIELD_BY_KEY = {key: (attribute, read) for key, attribute, read in _FIELDS}
# The fields that decide what a Response keeps from its creation (besides its id and time);
# the Response of a request that sets none of them has the server's defaults there.
RESPONSE_SHAPING = frozenset({
    "background", "instructions", "max_output_tokens", "parallel_tool_calls",
    "previous_response_id", "reasoning", "store", "temperature", "tool_choice", "top_p",
    "truncation", "user", "conversation", "agent_reference", "structured_inputs",
})


def parse_create_request(body: Any) -> CreateRequest:
    """Validate a decoded JSON body. Unknown top-level fields are ignored (Foundry adds its own)."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    try:
        # Only the fields the body has are read (a field left out keeps CreateRequest's
        # default, which is what reading it would give), in the body's order. Should one be
        # bad, all are read again in _FIELDS order, so the error is the one reported first.
        values = {}
        for key in body:
            field = _FIELD_BY_KEY.get(key)
            if field is not None:
                values[field[0]] = field[1](body)
        plain = values.keys().isdisjoint(RESPONSE_SHAPING)
    except Exception:
        values = {attribute: read(body) for _, attribute, read in _FIELDS}
        plain = False
    request = CreateRequest(items=values.pop("items", []), plain=plain, **values)
    if request.background and not request.store:
        raise _fail("'background' responses must be stored: remove 'store: false'.", "store")
    return request
