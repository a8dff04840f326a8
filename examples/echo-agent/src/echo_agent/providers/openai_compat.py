"""OpenAI-compatible Chat Completions, streamed over httpx (no SDK in the container).

One client for every server that speaks ``POST /chat/completions`` with ``stream: true``:

    openai             https://api.openai.com/v1, ``Authorization: Bearer $OPENAI_API_KEY``
    azure-openai       {AZURE_OPENAI_ENDPOINT}/openai/deployments/{MODEL_NAME}/chat/completions
                       ?api-version=..., ``api-key: $AZURE_OPENAI_API_KEY`` or an Entra ID
                       token from AZURE_OPENAI_AD_TOKEN
    dashscope          https://dashscope.aliyuncs.com/compatible-mode/v1 (Alibaba Qwen)
    openai-compatible  MODEL_BASE_URL, for vLLM, Ollama and the like (a key only if they need one)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from ..formats import chat_response_format
from . import ModelCall, Usage, item_text
from .remote import RemoteProvider, StreamError, parse_json, sse_events

LABELS = {
    "openai": "OpenAI",
    "azure-openai": "Azure OpenAI",
    "dashscope": "DashScope",
    "openai-compatible": "The model server",
}
# Providers whose chat API knows the ``developer`` role and ``max_completion_tokens``.
OPENAI_NATIVE = frozenset({"openai", "azure-openai"})


class OpenAICompatProvider(RemoteProvider):
    def __init__(self, config, transport=None) -> None:
        super().__init__(config, transport)
        self.name = config.provider
        self.label = LABELS.get(config.provider, "The model server")

    def url(self) -> str:
        config = self.config
        if config.provider == "azure-openai":
            deployment = quote(config.model, safe="")
            return (f"{config.base_url}/openai/deployments/{deployment}/chat/completions"
                    f"?api-version={quote(config.azure_api_version, safe='')}")
        return f"{config.base_url}/chat/completions"

    def headers(self) -> dict[str, str]:
        config = self.config
        headers = {"accept": "text/event-stream"}
        if config.provider == "azure-openai":
            if config.azure_ad_token:
                headers["authorization"] = f"Bearer {config.azure_ad_token}"
            else:
                headers["api-key"] = config.api_key
        elif config.api_key:
            headers["authorization"] = f"Bearer {config.api_key}"
        return headers

    def body(self, call: ModelCall) -> dict[str, Any]:
        native = self.config.provider in OPENAI_NATIVE
        body: dict[str, Any] = {
            "messages": chat_messages(call, developer_role=native),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.config.provider != "azure-openai":  # Azure takes the deployment from the URL
            body["model"] = call.model
        if call.temperature is not None:
            body["temperature"] = call.temperature
        if call.top_p is not None:
            body["top_p"] = call.top_p
        if call.max_output_tokens is not None:
            body["max_completion_tokens" if native else "max_tokens"] = call.max_output_tokens
        response_format = chat_response_format(call.response_format)
        if response_format is not None:
            body["response_format"] = response_format
        return body

    async def read(self, lines: AsyncIterator[str], usage: Usage) -> AsyncIterator[str]:
        async for _, data in sse_events(lines):
            if data.strip() == "[DONE]":
                return
            chunk = parse_json(data)
            if "error" in chunk:  # some servers report a failure inside the stream
                raise StreamError(f"error in stream: {chunk['error']}")
            if chunk.get("usage"):
                usage.input_tokens = int(chunk["usage"].get("prompt_tokens") or 0)
                usage.output_tokens = int(chunk["usage"].get("completion_tokens") or 0)
            for choice in chunk.get("choices") or []:
                if choice.get("index", 0) != 0:
                    continue
                text = (choice.get("delta") or {}).get("content")
                if text:
                    yield text
                if choice.get("finish_reason") == "length":
                    usage.incomplete_reason = "max_output_tokens"
        raise StreamError("the stream ended without [DONE]")


def chat_messages(call: ModelCall, *, developer_role: bool) -> list[dict[str, str]]:
    """The conversation as chat messages: instructions first as ``system``; ``developer``
    becomes ``system`` where the provider lacks it. Tool items are left out."""
    messages: list[dict[str, str]] = []
    if call.instructions:
        messages.append({"role": "system", "content": call.instructions})
    for item in call.conversation:
        if item.get("type") != "message":
            continue
        role = item.get("role", "user")
        if role == "developer" and not developer_role:
            role = "system"
        if role not in ("system", "developer", "user", "assistant"):
            continue
        messages.append({"role": role, "content": item_text(item)})
    return messages
