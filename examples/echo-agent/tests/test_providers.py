"""The remote model providers, against local stubs that speak each provider's wire format.

Everything goes through the agent server and the official ``openai`` client (or raw HTTP), and
stays offline: the stubs listen on 127.0.0.1.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import subprocess
import sys
import time

import openai
import pytest
from conftest import PACKAGE, REPO_ROOT, SSEReply
from model_stubs import (
    ModelStub,
    Reply,
    anthropic_event,
    anthropic_stream,
    free_port,
    openai_chunk,
    openai_stream,
)

pytestmark = pytest.mark.anyio

FAKE_KEY = "sk-test-FAKEKEY0123456789abcdefSECRET"
MODEL_ENV = (
    "MODEL_BASE_URL", "MODEL_API_KEY_ENV", "MODEL_TIMEOUT", "MODEL_MAX_RETRIES",
    "OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "ANTHROPIC_API_KEY", "DASHSCOPE_API_KEY",
    "AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_VERSION", "AZURE_OPENAI_AD_TOKEN",
)
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-sonnet-4-5", "dashscope": "qwen-plus",
          "azure-openai": "my-deployment", "openai-compatible": "llama3.2"}
KEY_ENVS = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY",
            "dashscope": "DASHSCOPE_API_KEY", "azure-openai": "AZURE_OPENAI_API_KEY"}


@pytest.fixture
def model_app(make_app, stub, monkeypatch):
    """``model_app(provider, **env)``: the app calling ``provider`` at the stub, with a fake key
    and no retries unless ``env`` says otherwise (and quick backoff when it does)."""
    for name in MODEL_ENV:
        monkeypatch.delenv(name, raising=False)
    remote = importlib.import_module(f"{PACKAGE}.providers.remote")
    monkeypatch.setattr(remote, "BACKOFF_BASE", 0.01)

    def make(provider: str, **env: str):
        defaults = {"MODEL_MAX_RETRIES": "0", "MODEL_TIMEOUT": "5"}
        if provider == "azure-openai":
            defaults["AZURE_OPENAI_ENDPOINT"] = stub.base_url
        elif provider == "anthropic":
            defaults["MODEL_BASE_URL"] = stub.base_url
        else:
            defaults["MODEL_BASE_URL"] = f"{stub.base_url}/v1"
        if provider in KEY_ENVS:
            defaults[KEY_ENVS[provider]] = FAKE_KEY
        for name, value in {**defaults, **env}.items():
            monkeypatch.setenv(name, value)
        return make_app(model_provider=provider, model_name=MODELS[provider])

    return make


def stream_for(provider: str, pieces: list[str], **kwargs) -> list[str]:
    if provider == "anthropic":
        return anthropic_stream(pieces, **kwargs)
    return openai_stream(pieces, **kwargs)


async def post_stream(http_for, app, body) -> SSEReply:
    response = await http_for(app).post("/responses", json={**body, "stream": True})
    return SSEReply(response)


# --- answers ------------------------------------------------------------------------------------


async def test_openai_streams_the_answer_and_usage(model_app, stub, openai_for):
    stub.script(Reply(chunks=openai_stream(["Hello", ", ", "world"], input_tokens=11)))
    client = openai_for(model_app("openai"))

    deltas, final = [], None
    async with await client.responses.create(
        model="gpt-4o-mini", input="hi", instructions="Be brief.", stream=True
    ) as stream:
        async for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
            elif event.type == "response.completed":
                final = event.response

    assert deltas == ["Hello", ", ", "world"]
    assert final.output_text == "Hello, world"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (11, 3)
    request = stub.received[0]
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {FAKE_KEY}"
    assert request.body["model"] == "gpt-4o-mini"
    assert request.body["stream"] is True
    assert request.body["stream_options"] == {"include_usage": True}
    assert request.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]


async def test_anthropic_streams_the_answer_and_usage(model_app, stub, openai_for):
    stub.script(Reply(chunks=anthropic_stream(["Bonjour", " le monde"], input_tokens=13)))
    client = openai_for(model_app("anthropic"))

    response = await client.responses.create(
        model="claude-sonnet-4-5",
        instructions="Be brief.",
        input=[
            {"role": "developer", "content": "Answer in French."},
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "Salut"},
            {"role": "user", "content": "again"},
        ],
    )

    assert response.output_text == "Bonjour le monde"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (13, 2)
    request = stub.received[0]
    assert request.path == "/v1/messages"
    assert request.headers["x-api-key"] == FAKE_KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.body["stream"] is True
    assert request.body["model"] == "claude-sonnet-4-5"
    assert request.body["max_tokens"] == 1024  # required by the API; the request set none
    assert request.body["system"] == "Be brief.\n\nAnswer in French."
    assert [m["role"] for m in request.body["messages"]] == ["user", "assistant", "user"]


async def test_sampling_parameters_reach_openai(model_app, stub, openai_for):
    stub.script(Reply(chunks=openai_stream(["ok"])))
    client = openai_for(model_app("openai"))

    await client.responses.create(model="gpt-4o-mini", input="hi", temperature=0.3, top_p=0.9,
                                  max_output_tokens=42)

    body = stub.received[0].body
    assert (body["temperature"], body["top_p"], body["max_completion_tokens"]) == (0.3, 0.9, 42)
    assert "max_tokens" not in body


async def test_sampling_parameters_reach_anthropic(model_app, stub, openai_for):
    stub.script(Reply(chunks=anthropic_stream(["ok"])))
    client = openai_for(model_app("anthropic"))

    await client.responses.create(model="x", input="hi", temperature=0.3, top_p=0.9,
                                  max_output_tokens=42)

    body = stub.received[0].body
    assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.3, 0.9, 42)


async def test_dashscope_gets_max_tokens_and_no_developer_role(model_app, stub, openai_for):
    stub.script(Reply(chunks=openai_stream(["ok"])))
    client = openai_for(model_app("dashscope"))

    await client.responses.create(
        model="qwen-plus", max_output_tokens=16,
        input=[{"role": "developer", "content": "Be formal."}, {"role": "user", "content": "hi"}],
    )

    request = stub.received[0]
    assert request.headers["authorization"] == f"Bearer {FAKE_KEY}"
    assert request.body["max_tokens"] == 16
    assert request.body["messages"][0] == {"role": "system", "content": "Be formal."}


async def test_azure_openai_uses_the_deployment_url_and_api_key(model_app, stub, openai_for):
    stub.script(Reply(chunks=openai_stream(["ok"])))
    client = openai_for(model_app("azure-openai", AZURE_OPENAI_API_VERSION="2024-10-21"))

    response = await client.responses.create(model="x", input="hi")

    assert response.output_text == "ok"
    request = stub.received[0]
    assert request.path == "/openai/deployments/my-deployment/chat/completions"
    assert request.query == "api-version=2024-10-21"
    assert request.headers["api-key"] == FAKE_KEY
    assert "authorization" not in request.headers


async def test_azure_openai_accepts_an_entra_id_token(model_app, stub, openai_for):
    stub.script(Reply(chunks=openai_stream(["ok"])))
    app = model_app("azure-openai", AZURE_OPENAI_AD_TOKEN="entra-token")  # wins over the key

    await openai_for(app).responses.create(model="x", input="hi")

    assert stub.received[0].headers["authorization"] == "Bearer entra-token"
    assert "api-key" not in stub.received[0].headers


async def test_a_self_hosted_server_needs_no_key(model_app, stub, openai_for):
    stub.script(Reply(chunks=openai_stream(["ok"])))
    client = openai_for(model_app("openai-compatible"))  # vLLM, Ollama, ...

    response = await client.responses.create(model="x", input="hi")

    assert response.output_text == "ok"
    assert "authorization" not in stub.received[0].headers


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_a_cut_short_answer_is_incomplete(model_app, stub, openai_for, provider):
    reason = {"stop_reason": "max_tokens"} if provider == "anthropic" else {"finish": "length"}
    stub.script(Reply(chunks=stream_for(provider, ["a", "b"], **reason)))
    client = openai_for(model_app(provider))

    response = await client.responses.create(model="x", input="hi", max_output_tokens=2)

    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == "ab"


# --- failures -----------------------------------------------------------------------------------


def failure_case(case: str, provider: str, stub: ModelStub) -> tuple[dict[str, str], str]:
    """Script ``case`` on the stub; returns the env overrides and the expected code."""
    error = {"message": f"Incorrect API key provided: {FAKE_KEY}", "type": "invalid_request"}
    if case in ("401", "403", "404", "429", "500", "503"):
        stub.script(Reply(int(case), error=error))
        code = {"401": "model_authentication_failed", "403": "model_authentication_failed",
                "404": "model_not_found", "429": "rate_limit_exceeded"}.get(case,
                                                                            "model_unavailable")
        return {}, code
    if case == "timeout":
        stub.script(Reply(chunks=stream_for(provider, ["late"]), delay=0.5))
        return {"MODEL_TIMEOUT": "0.1"}, "model_timeout"
    if case == "refused":
        url = f"http://127.0.0.1:{free_port()}"
        return {"MODEL_BASE_URL": url, "AZURE_OPENAI_ENDPOINT": url}, "model_stream_error"
    if case == "dropped":
        stub.script(Reply(chunks=stream_for(provider, ["partial"])[:3], drop=True))
        return {}, "model_stream_error"
    if case == "malformed":
        stub.script(Reply(chunks=["data: {not json\n\n"]))
        return {}, "model_stream_error"
    if case == "truncated":
        stub.script(Reply(chunks=stream_for(provider, ["cut"])[:-1]))
        return {}, "model_stream_error"
    if case == "error_event":
        chunks = (
            [anthropic_event("error", error={"type": "overloaded_error", "message": "Overloaded"})]
            if provider == "anthropic"
            else [f"data: {json.dumps({'error': {'message': 'boom'}})}\n\n"]
        )
        stub.script(Reply(chunks=chunks))
        return {}, "model_stream_error"
    raise AssertionError(case)


CASES = ["401", "403", "404", "429", "500", "503", "timeout", "refused", "dropped", "malformed",
         "truncated", "error_event"]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("case", CASES)
async def test_a_failure_streams_response_failed_with_its_code(
    model_app, stub, http_for, provider, case
):
    env, code = failure_case(case, provider, stub)
    app = model_app(provider, **env)

    reply = await post_stream(http_for, app, {"model": "x", "input": "hi"})

    assert reply.types[-1] == "response.failed"
    error = reply.events[-1]["response"]["error"]
    assert error["code"] == code
    assert error["message"]


@pytest.mark.parametrize("provider", ["openai", "azure-openai", "anthropic"])
@pytest.mark.parametrize("case", CASES)
async def test_a_failure_without_streaming_is_a_500_with_its_code(
    model_app, stub, openai_for, provider, case
):
    env, code = failure_case(case, provider, stub)
    client = openai_for(model_app(provider, **env))

    with pytest.raises(openai.InternalServerError) as caught:
        await client.responses.create(model="x", input="hi")

    assert caught.value.status_code == 500
    assert caught.value.code == code


async def test_429_is_retried_after_retry_after(model_app, stub, openai_for):
    stub.script(Reply(429, error={"message": "slow down"}, headers={"retry-after": "1"}),
                Reply(chunks=openai_stream(["fine"])))
    client = openai_for(model_app("openai", MODEL_MAX_RETRIES="2"))

    started = time.monotonic()
    response = await client.responses.create(model="x", input="hi")

    assert response.output_text == "fine"
    assert len(stub.received) == 2
    assert time.monotonic() - started >= 0.9


async def test_a_retry_after_beyond_the_wait_cap_is_not_waited_for(model_app, stub, openai_for):
    stub.script(Reply(429, error={"message": "slow down"}, headers={"retry-after": "600"}))
    client = openai_for(model_app("openai", MODEL_MAX_RETRIES="2"))

    with pytest.raises(openai.InternalServerError) as caught:
        await client.responses.create(model="x", input="hi")

    assert caught.value.code == "rate_limit_exceeded"
    assert len(stub.received) == 1


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_5xx_is_retried_then_succeeds(model_app, stub, openai_for, provider):
    stub.script(Reply(503, error={"message": "busy"}), Reply(502, error={"message": "busy"}),
                Reply(chunks=stream_for(provider, ["back"])))
    client = openai_for(model_app(provider, MODEL_MAX_RETRIES="2"))

    response = await client.responses.create(model="x", input="hi")

    assert response.output_text == "back"
    assert len(stub.received) == 3


async def test_retries_are_bounded(model_app, stub, openai_for):
    stub.script(*[Reply(500, error={"message": "down"}) for _ in range(5)])
    client = openai_for(model_app("openai", MODEL_MAX_RETRIES="1"))

    with pytest.raises(openai.InternalServerError) as caught:
        await client.responses.create(model="x", input="hi")

    assert caught.value.code == "model_unavailable"
    assert len(stub.received) == 2


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_a_failure_after_the_first_token_is_not_retried(
    model_app, stub, http_for, provider
):
    stub.script(Reply(chunks=stream_for(provider, ["Hello", " there"])[:4], drop=True),
                Reply(chunks=stream_for(provider, ["never"])))
    app = model_app(provider, MODEL_MAX_RETRIES="2")

    reply = await post_stream(http_for, app, {"model": "x", "input": "hi"})

    deltas = [e["delta"] for e in reply.events if e["type"] == "response.output_text.delta"]
    assert deltas and "never" not in deltas
    assert reply.types[-1] == "response.failed"
    assert reply.events[-1]["response"]["error"]["code"] == "model_stream_error"
    assert len(stub.received) == 1


# --- keys ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["openai", "azure-openai", "anthropic"])
async def test_no_failure_shows_the_key(
    model_app, stub, http_for, openai_for, provider, caplog, capsys
):
    caplog.set_level(logging.DEBUG)
    shown: list[str] = []
    for case in CASES:
        for _ in range(3):  # one scripted reply for each way of asking below
            env, _code = failure_case(case, provider, stub)
        app = model_app(provider, **env)
        reply = await post_stream(http_for, app, {"model": "x", "input": "hi"})
        shown.append(reply.text)
        raw = await http_for(app).post("/responses", json={"model": "x", "input": "hi"})
        shown.append(raw.text)
        try:
            await openai_for(app).responses.create(model="x", input="hi")
        except openai.APIError as exc:
            shown.extend([str(exc), repr(exc), repr(exc.body)])
        provider_object = app.state.server.provider
        shown.append(repr(provider_object.config))
        stub.replies.clear()  # the stub's script for the next case only

    captured = capsys.readouterr()
    shown.extend([captured.out, captured.err, caplog.text])
    shown.extend(repr(record.__dict__) for record in caplog.records)
    assert all(FAKE_KEY not in text for text in shown)
    assert "model call failed" in caplog.text


async def test_a_missing_key_names_the_variable(make_app, monkeypatch, package):
    for name in MODEL_ENV:
        monkeypatch.delenv(name, raising=False)

    with pytest.raises(package.settings.SettingsError, match="ANTHROPIC_API_KEY"):
        make_app(model_provider="anthropic", model_name="claude-sonnet-4-5")

    monkeypatch.setenv("MODEL_API_KEY_ENV", "MY_OWN_KEY")
    with pytest.raises(package.settings.SettingsError, match="MY_OWN_KEY"):
        make_app(model_provider="openai", model_name="gpt-4o-mini")


async def test_an_unknown_provider_is_refused(make_app, package):
    with pytest.raises(package.settings.SettingsError, match="MODEL_PROVIDER"):
        make_app(model_provider="nope")


def test_the_server_refuses_to_start_without_the_key():
    env = {name: value for name, value in os.environ.items() if name not in MODEL_ENV}
    env.update(MODEL_PROVIDER="openai", MODEL_NAME="gpt-4o-mini", PYTHONPATH=str(REPO_ROOT / "src"))

    done = subprocess.run([sys.executable, "-m", PACKAGE], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=30)

    assert done.returncode == 2
    assert "error:" in done.stderr and "OPENAI_API_KEY" in done.stderr


def test_the_echo_server_does_not_import_httpx():
    code = (
        f"import sys; from {PACKAGE}.app import create_app; "
        f"from {PACKAGE}.settings import Settings; create_app(Settings()); "
        "print('httpx' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=30, env={**os.environ, "MODEL_PROVIDER": "echo",
                                                      "PYTHONPATH": str(REPO_ROOT / "src")})

    assert done.stdout.strip() == "False", done.stderr


def test_openai_chunk_helper_is_valid_json():
    assert json.loads(openai_chunk("x").removeprefix("data: "))["choices"][0]["delta"] == {
        "content": "x"
    }
