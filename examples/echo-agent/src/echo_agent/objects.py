"""Builders for the Response object and its output items, and their JSON text.

Every field the Open Responses schema requires is present with a non-null value where the
schema says so (``temperature``, ``top_p``, ``tools``, ``truncation``, …); message items carry
``id`` and ``status``; text parts carry ``annotations`` and ``logprobs``.

JSON text is compact (no spaces) and keeps non-ASCII characters as they are. :func:`dumps` is
``json`` with those options; :func:`dumps_response` writes the same text for a Response much
faster (see its docstring), since every answer and every streamed lifecycle event carries one.
"""

from __future__ import annotations

import json
import time
from json.encoder import encode_basestring as _string  # the C encoder of JSON strings
from typing import Any

from .ids import new_id
from .protocol import CreateRequest

dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def new_response(
    request: CreateRequest,
    *,
    response_id: str,
    model: str,
    instructions: str | None,
    temperature: float | None = None,
    top_p: float | None = None,
    text_format: dict[str, Any] | None = None,
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The response in its first state: ``in_progress`` (``queued`` for background runs).

    ``temperature``, ``top_p``, ``text_format`` and ``metadata`` are the effective values (the
    request's, else agent.yaml's); left out, the request's own are reported."""
    if temperature is None:
        temperature = request.temperature
    if top_p is None:
        top_p = request.top_p
    text = dict(request.text or {})
    text["format"] = text_format or text.get("format") or {"type": "text"}
    response: dict[str, Any] = {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "completed_at": None,
        "status": "queued" if request.background else "in_progress",
        "background": request.background,
        "error": None,
        "incomplete_details": None,
        "instructions": instructions,
        "max_output_tokens": request.max_output_tokens,
        "max_tool_calls": None,
        "model": model,
        "output": [],
        "parallel_tool_calls": request.parallel_tool_calls,
        "previous_response_id": request.previous_response_id,
        "reasoning": request.reasoning,
        "safety_identifier": None,
        "prompt_cache_key": None,
        "service_tier": "default",
        "store": request.store,
        "temperature": 1.0 if temperature is None else temperature,
        "text": text,
        "tool_choice": request.tool_choice,
        "tools": request.tools,
        "top_logprobs": 0,
        "top_p": 1.0 if top_p is None else top_p,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "truncation": request.truncation,
        "usage": None,
        "user": request.user,
        "metadata": request.metadata if metadata is None else metadata,
    }
    if request.conversation is not None:
        response["conversation"] = {"id": request.conversation}
    if request.agent_reference is not None:
        response["agent_reference"] = request.agent_reference
    return response


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(text: str | None, *, status: str, item_id: str | None = None) -> dict[str, Any]:
    """An assistant message; ``text=None`` gives the empty item announced at stream start."""
    return {
        "id": item_id or new_id("msg"),
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [] if text is None else [text_part(text)],
    }


def usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


def input_item_view(item: dict[str, Any], item_id: str) -> dict[str, Any]:
    """How a stored input item is listed by ``GET /responses/{id}/input_items``."""
    view = {"id": item_id, **item}
    if item["type"] == "message":
        view["status"] = "completed"
    return view


# --- JSON text ---------------------------------------------------------------------------------
#
# ``json`` pays about a microsecond per call before writing anything, and a Response is ~40
# values in a dozen containers. Writing the known shapes with f-strings, and every value with
# :func:`json_value` (which produces exactly what ``dumps`` would), is several times cheaper. Any
# shape these functions do not recognise (keys in another order, an unexpected type) is handed
# to ``dumps`` whole, so the text is the same as ``dumps(value)``; :func:`dumps_response` also
# relies on what the server never changes in a Response (said there).

_RESPONSE_KEYS = tuple(
    new_response(CreateRequest(items=[]), response_id="", model="", instructions=None)
)
_ITEM_KEYS = ("id", "type", "status", "role", "content")
_PART_KEYS = ("type", "text", "annotations", "logprobs")
_USAGE_KEYS = (
    "input_tokens", "input_tokens_details", "output_tokens", "output_tokens_details",
    "total_tokens",
)
_PLAIN_TEXT = {"format": {"type": "text"}}


def json_value(value: Any) -> str:
    """``dumps(value)``, with the scalars and empty containers written directly."""
    cls = value.__class__
    if cls is str:
        return _string(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if cls is int:
        return int.__repr__(value)
    if cls is float and value - value == 0:  # finite (``dumps`` spells out NaN and Infinity)
        return float.__repr__(value)
    if not value and (cls is list or cls is dict):
        return "[]" if cls is list else "{}"
    return dumps(value)


def _text_part(part: Any) -> str:
    if (
        part.__class__ is dict and tuple(part) == _PART_KEYS and part["type"] == "output_text"
        and part["annotations"] == [] and part["logprobs"] == []
    ):
        return (
            f'{{"type":"output_text","text":{json_value(part["text"])},'
            '"annotations":[],"logprobs":[]}'
        )
    return dumps(part)


def dumps_message_item(item: Any) -> str:
    """``dumps(item)`` for an assistant message built by :func:`message_item`."""
    if (
        item.__class__ is dict and tuple(item) == _ITEM_KEYS and item["type"] == "message"
        and item["role"] == "assistant" and item["content"].__class__ is list
    ):
        parts = ",".join(map(_text_part, item["content"]))
        return (
            f'{{"id":{json_value(item["id"])},"type":"message","status":{json_value(item["status"])},'
            f'"role":"assistant","content":[{parts}]}}'
        )
    return dumps(item)


def message_item_json(item_id: str, status: str, text_json: str) -> str:
    """``dumps(message_item(text, status=status, item_id=item_id))`` given ``json_value(text)``,
    for an id made by ``new_id`` and a status of ours (JSON writes both as they are)."""
    return (
        f'{{"id":"{item_id}","type":"message","status":"{status}","role":"assistant",'
        f'"content":[{{"type":"output_text","text":{text_json},"annotations":[],"logprobs":[]}}]}}'
    )


def usage_json(input_tokens: int, output_tokens: int, total_tokens: int | None = None) -> str:
    """``dumps(usage(input_tokens, output_tokens))``; ``total_tokens`` is their sum unless given."""
    if total_tokens is None:
        total_tokens = input_tokens + output_tokens
    return (
        f'{{"input_tokens":{json_value(input_tokens)},"input_tokens_details":{{"cached_tokens":0}},'
        f'"output_tokens":{json_value(output_tokens)},'
        f'"output_tokens_details":{{"reasoning_tokens":0}},'
        f'"total_tokens":{json_value(total_tokens)}}}'
    )


def _output(output: Any) -> str:
    if output.__class__ is list:
        return f'[{",".join(map(dumps_message_item, output))}]'
    return dumps(output)


def _is_zero(details: Any, key: str) -> bool:
    """Whether ``details`` is ``{key: 0}`` (an int 0: ``False`` and ``0.0`` are written apart)."""
    return details.__class__ is dict and len(details) == 1 and details.get(key).__class__ is int \
        and details[key] == 0


def _usage(value: Any) -> str:
    if (
        value.__class__ is dict and tuple(value) == _USAGE_KEYS
        and _is_zero(value["input_tokens_details"], "cached_tokens")
        and _is_zero(value["output_tokens_details"], "reasoning_tokens")
        and value["total_tokens"] is not None
    ):
        return usage_json(value["input_tokens"], value["output_tokens"], value["total_tokens"])
    return json_value(value)


def response_segments(response: dict[str, Any]) -> tuple[str, ...]:
    """The JSON text of the fields a Response keeps from its creation, in the seven pieces that
    go between the others: those its run changes (``completed_at``, ``status``, ``error``,
    ``incomplete_details``, ``output``, ``usage``) and those it shares with the agent's context
    (``text``, ``tools``, ``metadata``, which the agent could change), written every time.

    Computed once per run (a stream writes the Response three times), and once per server for
    the requests that set none of the fields they come from (``protocol.RESPONSE_SHAPING``):
    those all get the server's defaults."""
    r, v = response, json_value
    extra = "".join(f",{_string(key)}:{v(r[key])}" for key in tuple(r)[_BASE:])
    return (
        f',"background":{v(r["background"])},"error":',
        f',"instructions":{v(r["instructions"])},"max_output_tokens":{v(r["max_output_tokens"])},'
        f'"max_tool_calls":null,"model":{v(r["model"])},"output":',
        f',"parallel_tool_calls":{v(r["parallel_tool_calls"])},'
        f'"previous_response_id":{v(r["previous_response_id"])},"reasoning":{v(r["reasoning"])},'
        '"safety_identifier":null,"prompt_cache_key":null,"service_tier":"default",'
        f'"store":{v(r["store"])},"temperature":{v(r["temperature"])},"text":',
        f',"tool_choice":{v(r["tool_choice"])},"tools":',
        f',"top_logprobs":0,"top_p":{v(r["top_p"])},"presence_penalty":0.0,'
        f'"frequency_penalty":0.0,"truncation":{v(r["truncation"])},"usage":',
        f',"user":{v(r["user"])},"metadata":',
        f"{extra}}}",
    )


def dumps_response(response: dict[str, Any], segments: tuple[str, ...] | None = None,
                   output: str | None = None, usage: str | None = None) -> str:
    """``dumps(response)`` for a Response built by :func:`new_response`, without ``json``.

    ``segments`` are :func:`response_segments` of this Response, or of one created with the
    same values (left out, they are computed); ``output`` and ``usage`` are the JSON of those
    two fields when the caller has just written them. The key order is checked first (a
    Response always has :func:`new_response`'s keys in its order, optional ``conversation`` and
    ``agent_reference`` last). The eight fields :func:`new_response` sets to the same value in
    every Response (``object``, ``max_tool_calls``, ``service_tier``, …) are part of the text,
    and the segments may be written before the Response is done: the server never assigns a
    field after creating the Response, except the ones written here each time.
    """
    keys = tuple(response)
    if keys != _RESPONSE_KEYS and keys[:_BASE] != _RESPONSE_KEYS:
        return dumps(response)
    r, v = response, json_value
    background, instructions, parallel, tool_choice, top_p, user, end = (
        segments or response_segments(response)
    )
    text = r["text"]
    return (
        f'{{"id":{v(r["id"])},"object":"response","created_at":{v(r["created_at"])},'
        f'"completed_at":{v(r["completed_at"])},"status":{v(r["status"])}'
        f'{background}{v(r["error"])},"incomplete_details":{v(r["incomplete_details"])}'
        f'{instructions}{output or _output(r["output"])}'
        f'{parallel}{_PLAIN_TEXT_JSON if text == _PLAIN_TEXT else v(text)}'
        f'{tool_choice}{v(r["tools"])}{top_p}{usage or _usage(r["usage"])}{user}'
        f'{v(r["metadata"])}{end}'
    )


_BASE = len(_RESPONSE_KEYS)
_PLAIN_TEXT_JSON = dumps(_PLAIN_TEXT)
