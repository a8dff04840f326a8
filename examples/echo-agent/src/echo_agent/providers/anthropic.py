"""Anthropic Messages, streamed over httpx (no SDK in the container).

``POST {MODEL_BASE_URL or https://api.anthropic.com}/v1/messages`` with ``x-api-key`` and
``anthropic-version: 2023-06-01``. The instructions and any system or developer messages become
``system``; the rest alternate user/assistant (consecutive turns of one role are merged).
``max_tokens`` is required by the API: :data:`DEFAULT_MAX_TOKENS` when the request sets none.

The Messages API has no ``response_format``: for a json_object or json_schema format a short
instruction asking for JSON (with the schema) is appended to ``system``
(``formats.json_instruction``); the server still checks the finished answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ..formats import json_instruction
from . import ModelCall, Usage, item_text
from .remote import RemoteProvider, StreamError, parse_json, sse_events

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024


class AnthropicProvider(RemoteProvider):
    name = "anthropic"
    label = "Anthropic"

    def url(self) -> str:
        return f"{self.config.base_url}/v1/messages"

    def headers(self) -> dict[str, str]:
        return {
            "x-api-key": self.config.api_key,
            "anthropic-version": API_VERSION,
            "accept": "text/event-stream",
        }

    def body(self, call: ModelCall) -> dict[str, Any]:
        system, messages = anthropic_messages(call)
        body: dict[str, Any] = {
            "model": call.model,
            "messages": messages,
            "max_tokens": call.max_output_tokens or DEFAULT_MAX_TOKENS,
            "stream": True,
        }
        if system:
            body["system"] = system
        if call.temperature is not None:
            # Anthropic's range is 0..1 where OpenAI's is 0..2.
            body["temperature"] = min(call.temperature, 1.0)
        if call.top_p is not None:
            body["top_p"] = call.top_p
        return body

    async def read(self, lines: AsyncIterator[str], usage: Usage) -> AsyncIterator[str]:
        async for event, data in sse_events(lines):
            message = parse_json(data)
            kind = message.get("type") or event
            if kind == "message_start":
                counts = (message.get("message") or {}).get("usage") or {}
                usage.input_tokens = int(counts.get("input_tokens") or 0) + int(
                    counts.get("cache_read_input_tokens") or 0
                ) + int(counts.get("cache_creation_input_tokens") or 0)
                usage.output_tokens = int(counts.get("output_tokens") or 0)
            elif kind == "content_block_delta":
                delta = message.get("delta") or {}
                if delta.get("type") == "text_delta" and delta.get("text"):
                    yield delta["text"]
            elif kind == "message_delta":
                counts = message.get("usage") or {}
                if counts.get("output_tokens") is not None:
                    usage.output_tokens = int(counts["output_tokens"])
                if (message.get("delta") or {}).get("stop_reason") == "max_tokens":
                    usage.incomplete_reason = "max_output_tokens"
            elif kind == "message_stop":
                return
            elif kind == "error":
                error = message.get("error") or {}
                raise StreamError(f"error event: {error.get('type')}: {error.get('message')}")
            # ping, content_block_start, content_block_stop: nothing to do
        raise StreamError("the stream ended without message_stop")


def anthropic_messages(call: ModelCall) -> tuple[str, list[dict[str, Any]]]:
    """``(system, messages)`` for the Messages API: system text joined, turns alternating and
    starting with the user."""
    system = [call.instructions] if call.instructions else []
    messages: list[dict[str, Any]] = []
    for item in call.conversation:
        if item.get("type") != "message":
            continue
        role, text = item.get("role"), item_text(item)
        if role in ("system", "developer"):
            if text:
                system.append(text)
            continue
        if role not in ("user", "assistant") or not text:
            continue
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"] += "\n\n" + text
        else:
            messages.append({"role": role, "content": text})
    if not messages or messages[0]["role"] != "user":
        messages.insert(0, {"role": "user", "content": "(continue)"})
    instruction = json_instruction(call.response_format)
    if instruction:
        system.append(instruction)
    return "\n\n".join(system), messages
