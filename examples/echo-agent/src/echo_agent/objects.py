"""Builders for the Response object and its output items.

Every field the Open Responses schema requires is present with a non-null value where the
schema says so (``temperature``, ``top_p``, ``tools``, ``truncation``, …); message items carry
``id`` and ``status``; text parts carry ``annotations`` and ``logprobs``.
"""

from __future__ import annotations

import time
from typing import Any

from .ids import new_id
from .protocol import CreateRequest


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
