"""Structured output: the answer's format (``text.format`` of a request, ``response_format`` of
agent.yaml), how each provider is asked for it, and the check of the finished answer.

A format is kept in the Responses ``text.format`` shape::

    {"type": "text"}
    {"type": "json_object"}
    {"type": "json_schema", "name": "...", "schema": {...}, "strict": true, "description": "..."}

agent.yaml writes ``json_schema`` the Chat Completions way (``{type: json_schema, json_schema:
{name, schema, strict, description}}``); :func:`from_manifest` converts it.

The check after the answer (:func:`output_problem`) is deliberately small: the text must parse
as JSON and, for ``json_schema``, the value must have the schema's top-level ``type`` and, for an
object, its ``required`` keys. No ``jsonschema`` dependency.

This module imports nothing from the package: ``protocol.py`` turns a problem into a 400 and
``settings.py`` into a ``SettingsError``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

FORMAT_TYPES = ("text", "json_object", "json_schema")
JSON_FORMATS = frozenset({"json_object", "json_schema"})
INVALID_OUTPUT = "invalid_model_output"
# Whether a decoded JSON value has the JSON Schema ``type``: booleans are not numbers, 2.0 is an
# integer, and NaN and the infinities (which ``json`` reads, though JSON has no such values) are
# not numbers. Structured inputs (inputs.py) are checked by the same rule.
JSON_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "number": lambda v: (isinstance(v, int) and not isinstance(v, bool))
    or (isinstance(v, float) and math.isfinite(v)),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool))
    or (isinstance(v, float) and v.is_integer()),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


class FormatProblem(Exception):
    """``where`` is the offending key below the format (``""`` for the format itself)."""

    def __init__(self, where: str, message: str):
        super().__init__(message)
        self.where = where
        self.message = message


def check_format(value: Any) -> dict[str, Any]:
    """A Responses-shaped format, checked and copied; raises :class:`FormatProblem`."""
    if not isinstance(value, Mapping):
        raise FormatProblem("", "must be an object with a 'type'.")
    kind = value.get("type")
    if kind not in FORMAT_TYPES:
        raise FormatProblem(".type", f"must be one of {', '.join(FORMAT_TYPES)}; got {kind!r}.")
    if kind != "json_schema":
        return {"type": kind}
    name = value.get("name")
    if not isinstance(name, str) or not name:
        raise FormatProblem(".name", "a json_schema format needs a non-empty string 'name'.")
    schema = value.get("schema")
    if not isinstance(schema, Mapping):
        raise FormatProblem(".schema", "a json_schema format needs an object 'schema'.")
    strict = value.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise FormatProblem(".strict", "'strict' must be a boolean.")
    description = value.get("description")
    if description is not None and not isinstance(description, str):
        raise FormatProblem(".description", "'description' must be a string.")
    checked: dict[str, Any] = {"type": kind, "name": name, "schema": dict(schema)}
    if description is not None:
        checked["description"] = description
    if strict is not None:
        checked["strict"] = strict
    return checked


def from_manifest(value: Any) -> dict[str, Any] | None:
    """agent.yaml's ``response_format`` in the Responses shape (``None`` when absent)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise FormatProblem("", "must be a mapping with a 'type'.")
    kind = value.get("type", "text")
    if kind != "json_schema":
        return check_format({"type": kind})
    inner = value.get("json_schema")
    if not isinstance(inner, Mapping):
        raise FormatProblem(".json_schema",
                            "type json_schema needs a json_schema: {name, schema}.")
    try:
        return check_format({**inner, "type": "json_schema"})
    except FormatProblem as problem:
        raise FormatProblem(".json_schema" + problem.where, problem.message) from None


def wants_json(fmt: Mapping[str, Any] | None) -> bool:
    return fmt is not None and fmt.get("type") in JSON_FORMATS


def chat_response_format(fmt: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The Chat Completions ``response_format`` for ``fmt`` (``None``: leave it out)."""
    if not wants_json(fmt):
        return None
    if fmt["type"] == "json_object":
        return {"type": "json_object"}
    schema: dict[str, Any] = {"name": fmt["name"], "schema": fmt["schema"]}
    if fmt.get("description"):
        schema["description"] = fmt["description"]
    if fmt.get("strict") is not None:
        schema["strict"] = fmt["strict"]
    return {"type": "json_schema", "json_schema": schema}


def json_instruction(fmt: Mapping[str, Any] | None) -> str | None:
    """A system instruction asking for JSON, for providers without a structured-output option
    (Anthropic). ``None`` for plain text."""
    if not wants_json(fmt):
        return None
    if fmt["type"] == "json_object":
        return ("Respond with a single valid JSON object and nothing else: no prose, no "
                "Markdown code fences.")
    schema = json.dumps(fmt["schema"], ensure_ascii=False, separators=(",", ":"))
    return (f"Respond with a single valid JSON value matching the JSON Schema "
            f"{fmt['name']!r} below, and nothing else: no prose, no Markdown code fences.\n"
            f"{schema}")


def output_problem(text: str, fmt: Mapping[str, Any] | None) -> str | None:
    """Why ``text`` is not a valid answer for ``fmt`` (``None`` when it is, or for plain text)."""
    if not wants_json(fmt):
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        return f"it does not parse as JSON ({exc.msg} at position {exc.pos})"
    if fmt["type"] != "json_schema":
        return None
    schema = fmt["schema"]
    expected = schema.get("type")
    if isinstance(expected, str):
        expected = [expected]
    if isinstance(expected, list):
        known = [name for name in expected if name in JSON_TYPES]
        if known and not any(JSON_TYPES[name](value) for name in known):
            return f"the value is not of the schema's type {' or '.join(known)}"
    required = schema.get("required")
    if isinstance(value, dict) and isinstance(required, list):
        missing = [key for key in required if isinstance(key, str) and key not in value]
        if missing:
            return f"the object lacks the required key(s) {', '.join(missing)}"
    return None


def invalid_output_message(fmt: Mapping[str, Any], problem: str) -> str:
    return (f"The model's answer was not valid JSON for the requested format "
            f"({fmt['type']}): {problem}.")
