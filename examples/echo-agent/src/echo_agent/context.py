"""What the agent function receives for one request: :class:`AgentContext`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from .providers import ModelCall, ModelProvider, Usage, item_text


@dataclass(slots=True)
class AgentContext:
    """One request, resolved: instructions, the whole conversation, inputs and settings.

    ``conversation`` holds the items of earlier turns (via ``previous_response_id``) followed by
    this request's input items. Messages have ``role`` and a list of ``content`` parts.

    ``instructions`` and the text of ``system`` and ``developer`` messages arrive with their
    Handlebars placeholders already filled from ``structured_inputs`` (the request's values,
    checked against agent.yaml's declarations, defaults filled in). ``tools`` holds agent.yaml's
    ``tools`` with their templated fields rendered, followed by the request's ``tools`` as given.
    """

    # app.py creates this with positional arguments (once per request): keep the order in step.
    instructions: str | None
    conversation: list[dict[str, Any]]
    structured_inputs: dict[str, Any]
    tools: list[Any]
    metadata: dict[str, str]
    response_id: str
    session_id: str
    model: str
    provider: ModelProvider
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None
    # The effective ``text.format`` (the request's, else agent.yaml's ``response_format``);
    # a JSON format makes the server check the finished answer (formats.py).
    response_format: dict[str, Any] | None = None
    usage: Usage = field(default_factory=Usage)

    def last_user_text(self) -> str:
        for item in reversed(self.conversation):
            if item.get("role") == "user":
                return item_text(item)
        return ""

    def stream_model(self) -> AsyncIterator[str]:
        """Call the configured model with this context and yield its text as it arrives."""
        call = ModelCall(
            model=self.model,
            instructions=self.instructions,
            conversation=self.conversation,
            temperature=self.temperature,
            top_p=self.top_p,
            max_output_tokens=self.max_output_tokens,
            response_format=self.response_format,
        )
        return self.provider.stream(call, self.usage)
