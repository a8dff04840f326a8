"""Settings come from environment variables; a bad value is an error that names the variable."""

from __future__ import annotations

import time

import pytest


@pytest.fixture
def from_env(package, tmp_path):
    """``from_env(**env)``: Settings from ``env`` alone (no agent.yaml)."""

    def load(**env: str):
        return package.settings.Settings.from_env(
            {"AGENT_MANIFEST": str(tmp_path / "absent.yaml"), **env}
        )

    return load


def test_defaults_apply_without_environment_or_manifest(from_env):
    settings = from_env()

    assert settings.port == 8088
    assert settings.model_provider == "echo"
    assert settings.drain_timeout == 30
    assert settings.sse_keepalive_interval == 15
    assert settings.echo_delay == 0


def test_environment_variables_override_the_defaults(from_env):
    settings = from_env(
        PORT="9001",
        DRAIN_TIMEOUT="2.5",
        MAX_REQUEST_BYTES="1024",
        SSE_KEEPALIVE_INTERVAL="0",
        RESPONSE_STORE_SIZE="10",
        ECHO_DELAY="0.25",
        LOG_LEVEL="DEBUG",
    )

    assert settings.port == 9001
    assert settings.drain_timeout == 2.5
    assert settings.max_request_bytes == 1024
    assert settings.sse_keepalive_interval == 0
    assert settings.response_store_size == 10
    assert settings.echo_delay == 0.25
    assert settings.log_level == "debug"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "http"),
        ("PORT", "70000"),
        ("DRAIN_TIMEOUT", "-1"),
        ("ECHO_DELAY", "slow"),
        ("ECHO_DELAY", "nan"),
        ("MAX_REQUEST_BYTES", "0"),
        ("LOG_LEVEL", "loud"),
    ],
)
def test_a_bad_value_is_an_error_naming_the_variable(package, from_env, name, value):
    with pytest.raises(package.settings.SettingsError, match=name):
        from_env(**{name: value})


@pytest.mark.anyio
async def test_echo_delay_slows_each_word(make_app, openai_for):
    client = openai_for(make_app(echo_delay=0.05))
    started = time.monotonic()

    response = await client.responses.create(model="echo-1", input="one two three")

    assert time.monotonic() - started >= 0.15
    assert response.output_text == "one two three"
