"""The model_provider answer picks the manifest's model name and the key listed as a secret."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import render

EXPECTED = {
    "echo": ("echo-1", []),
    "openai": ("gpt-4o-mini", ["OPENAI_API_KEY"]),
    "azure-openai": ("gpt-4o-mini", ["AZURE_OPENAI_API_KEY"]),
    "anthropic": ("claude-sonnet-4-5", ["ANTHROPIC_API_KEY"]),
    "dashscope": ("qwen-plus", ["DASHSCOPE_API_KEY"]),
}


@pytest.mark.parametrize("provider", list(EXPECTED))
def test_each_provider_fills_the_model_and_its_secret(tmp_path: Path, provider: str):
    project = render(tmp_path / "x", model_provider=provider)
    manifest = yaml.safe_load((project / "agent.yaml").read_text())
    name, secrets = EXPECTED[provider]
    assert manifest["model"] == {"provider": provider, "name": name}
    assert manifest["runtime"]["secrets"] == secrets
    readme = (project / "README.md").read_text()
    assert "MODEL_MAX_RETRIES" in readme
    assert all(secret in readme for secret in secrets)
    assert "httpx" in (project / "requirements.txt").read_text()


def test_an_unknown_provider_is_rejected(tmp_path: Path):
    with pytest.raises(ValueError, match="model_provider"):
        render(tmp_path / "x", model_provider="bedrock")
