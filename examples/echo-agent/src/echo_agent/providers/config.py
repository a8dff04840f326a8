"""Where a remote model provider is and how to reach it, read from the environment in one place.

    MODEL_BASE_URL            API base URL; default: the provider's public endpoint (set it for
                              vLLM, Ollama and other OpenAI-compatible servers)
    MODEL_API_KEY_ENV         the NAME of the variable holding the key (never the key itself);
                              default OPENAI_API_KEY, AZURE_OPENAI_API_KEY, ANTHROPIC_API_KEY or
                              DASHSCOPE_API_KEY by provider
    AZURE_OPENAI_ENDPOINT     https://<resource>.openai.azure.com (required for azure-openai)
    AZURE_OPENAI_API_VERSION  the ``api-version`` query parameter; default 2024-10-21
    AZURE_OPENAI_AD_TOKEN     an Entra ID bearer token, used instead of the key
    MODEL_TIMEOUT             seconds to connect and between reads; default 60
    MODEL_MAX_RETRIES         retries of 429, 5xx, timeouts and connection errors, before the
                              first token only; default 2

Keys are read here and nowhere else, are kept out of ``repr`` and never appear in messages:
a missing key is reported by the *name* of its variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..settings import SettingsError, env_number

if TYPE_CHECKING:
    from ..settings import Settings

DEFAULT_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "dashscope": "https://dashscope.aliyuncs.com/compatible-mode/v1",
}
DEFAULT_KEY_ENVS = {
    "openai": "OPENAI_API_KEY",
    "azure-openai": "AZURE_OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "dashscope": "DASHSCOPE_API_KEY",
    "openai-compatible": "",  # vLLM, Ollama, ...: a key only when MODEL_API_KEY_ENV names one
}
DEFAULT_AZURE_API_VERSION = "2024-10-21"


@dataclass(frozen=True, slots=True)
class ModelConfig:
    provider: str
    model: str
    base_url: str
    key_env: str = ""  # the variable the key came from (safe to show)
    api_key: str = field(default="", repr=False)
    azure_ad_token: str = field(default="", repr=False)
    azure_api_version: str = DEFAULT_AZURE_API_VERSION
    timeout: float = 60.0
    max_retries: int = 2

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never be shown (for redaction)."""
        return tuple(value for value in (self.api_key, self.azure_ad_token) if value)


def model_config(settings: Settings, env: Mapping[str, str] | None = None) -> ModelConfig:
    """The configuration of ``settings.model_provider``; :class:`SettingsError` when it cannot
    work (the message names the variable to set, never a value)."""
    env = os.environ if env is None else env
    provider = settings.model_provider
    base_url = (env.get("MODEL_BASE_URL") or "").strip().rstrip("/")
    key_env = (env.get("MODEL_API_KEY_ENV") or "").strip() or DEFAULT_KEY_ENVS[provider]
    api_key = (env.get(key_env) or "").strip() if key_env else ""
    common = {
        "provider": provider,
        "model": settings.model_name,
        "key_env": key_env,
        "api_key": api_key,
        "timeout": env_number(env, "MODEL_TIMEOUT", float, 60.0, 0.001, 3600),
        "max_retries": env_number(env, "MODEL_MAX_RETRIES", int, 2, 0, 10),
    }
    if provider == "azure-openai":
        endpoint = (env.get("AZURE_OPENAI_ENDPOINT") or "").strip().rstrip("/") or base_url
        if not endpoint:
            raise SettingsError(
                "MODEL_PROVIDER=azure-openai needs AZURE_OPENAI_ENDPOINT "
                "(https://<resource>.openai.azure.com)."
            )
        ad_token = (env.get("AZURE_OPENAI_AD_TOKEN") or "").strip()
        if not api_key and not ad_token:
            raise SettingsError(
                f"MODEL_PROVIDER=azure-openai needs a key in {key_env} "
                "(or an Entra ID token in AZURE_OPENAI_AD_TOKEN)."
            )
        return ModelConfig(
            base_url=endpoint,
            azure_ad_token=ad_token,
            azure_api_version=(env.get("AZURE_OPENAI_API_VERSION") or "").strip()
            or DEFAULT_AZURE_API_VERSION,
            **common,
        )
    if provider == "openai-compatible" and not base_url:
        raise SettingsError(
            "MODEL_PROVIDER=openai-compatible needs MODEL_BASE_URL "
            "(for example http://localhost:11434/v1 for Ollama, http://localhost:8000/v1 for vLLM)."
        )
    # A self-hosted server (a MODEL_BASE_URL of your own) may need no key.
    if key_env and not api_key and not (provider == "openai" and base_url):
        raise SettingsError(
            f"MODEL_PROVIDER={provider} needs its API key in {key_env} "
            "(or set MODEL_API_KEY_ENV to the variable that holds it)."
        )
    return ModelConfig(base_url=base_url or DEFAULT_BASE_URLS[provider], **common)
