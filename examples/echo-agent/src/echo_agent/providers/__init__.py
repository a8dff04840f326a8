"""Model providers: one module each, all with the same small streaming interface."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..settings import Settings


@dataclass(slots=True)
class ModelCall:
    model: str
    instructions: str | None
    conversation: list[dict[str, Any]]
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None
    # The answer's format in the Responses ``text.format`` shape (``{"type": "json_object"}``,
    # ``{"type": "json_schema", "name", "schema", "strict"}``); ``None`` or type text: plain
    # text. formats.py maps it to each provider's option.
    response_format: dict[str, Any] | None = None


@dataclass(slots=True)
class Usage:
    """Filled in by the provider while it streams."""

    input_tokens: int = 0
    output_tokens: int = 0
    incomplete_reason: str | None = None  # "max_output_tokens" when the answer was cut short


class ModelProvider(Protocol):
    name: str

    def stream(self, call: ModelCall, usage: Usage) -> AsyncIterator[str]:
        """Yield the answer text in pieces, updating ``usage`` as it goes."""
        ...


def item_text(item: dict[str, Any]) -> str:
    """The text of a message item (its text parts joined); empty for other item types."""
    if item.get("type") != "message":
        return ""
    content = item["content"]
    if len(content) == 1:  # the usual case
        return content[0].get("text", "")
    return "".join(part.get("text", "") for part in content if "text" in part)


PROVIDERS = ("echo", "openai", "azure-openai", "anthropic", "dashscope", "openai-compatible")


def load_provider(settings: Settings) -> ModelProvider:
    """The provider ``settings.model_provider`` names, configured from ``settings`` and the
    environment (see ``config.py``); imported lazily so unused providers cost nothing (the echo
    container never imports httpx). Raises ``SettingsError`` when the provider cannot work, for
    example without its key, so the server refuses to start."""
    name = settings.model_provider
    if name == "echo":
        from .echo import EchoProvider

        return EchoProvider(delay=settings.echo_delay)
    if name not in PROVIDERS:
        from ..settings import SettingsError

        raise SettingsError(
            f"MODEL_PROVIDER={name!r} is not a known model provider; use one of "
            f"{', '.join(PROVIDERS)}."
        )
    from .config import model_config

    config = model_config(settings)
    if name == "anthropic":
        from .anthropic import AnthropicProvider

        return AnthropicProvider(config)
    from .openai_compat import OpenAICompatProvider

    return OpenAICompatProvider(config)
