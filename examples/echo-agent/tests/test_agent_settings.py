"""agent.yaml's ``temperature``, ``top_p``, ``response_format`` and ``metadata``: defaults that a
request overrides, reported in the Response, passed to the model, and checked at start-up; a
JSON format makes the server check the finished answer (``invalid_model_output``)."""

from __future__ import annotations

import dataclasses
import json
import logging

import openai
import pytest
from conftest import SSEReply, model_agent
from model_stubs import Reply, anthropic_stream, openai_stream

pytestmark = pytest.mark.anyio

FAKE_KEY = "sk-test-FAKEKEY0123456789abcdef"
MODEL_ENV = (
    "MODEL_BASE_URL", "MODEL_API_KEY_ENV", "OPENAI_API_KEY", "ANTHROPIC_API_KEY",
)
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}
MANIFEST = """\
name: demo
temperature: 0.2
top_p: 0.5
metadata: {team: search}
response_format:
  type: json_schema
  json_schema:
    name: person
    strict: true
    schema:
      type: object
      properties: {name: {type: string}, age: {type: integer}}
      required: [name, age]
"""
PERSON_FORMAT = {"type": "json_schema", "name": "person", "schema": PERSON, "strict": True}


@pytest.fixture
def remote_app(package, stub, monkeypatch):
    """``remote_app(provider, settings)``: the app calling ``provider`` at the stub."""
    for name in MODEL_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MODEL_MAX_RETRIES", "0")
    monkeypatch.setenv("MODEL_TIMEOUT", "5")

    def make(provider: str, settings):
        if provider == "anthropic":
            monkeypatch.setenv("MODEL_BASE_URL", stub.base_url)
            monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
        else:
            monkeypatch.setenv("MODEL_BASE_URL", f"{stub.base_url}/v1")
            monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
        settings = dataclasses.replace(settings, model_provider=provider, model_name="m-1")
        return package.app.create_app(settings, agent=model_agent)

    return make


# --- manifest defaults and request overrides --------------------------------------------------


async def test_manifest_defaults_reach_the_response_and_the_model(
    load_settings, remote_app, stub, openai_for
):
    stub.script(Reply(chunks=openai_stream(['{"name": "Ada",', ' "age": 36}'])))
    client = openai_for(remote_app("openai", load_settings(MANIFEST)))

    response = await client.responses.create(model="m-1", input="who?")

    assert response.status == "completed"
    assert json.loads(response.output_text) == {"name": "Ada", "age": 36}
    assert (response.temperature, response.top_p) == (0.2, 0.5)
    assert response.metadata == {"team": "search"}
    assert response.text.format.model_dump(by_alias=True, exclude_none=True) == PERSON_FORMAT
    body = stub.received[0].body
    assert (body["temperature"], body["top_p"]) == (0.2, 0.5)
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "person", "schema": PERSON, "strict": True},
    }


async def test_request_values_override_the_manifest(load_settings, remote_app, stub, openai_for):
    stub.script(Reply(chunks=openai_stream(["plain words"])))
    client = openai_for(remote_app("openai", load_settings(MANIFEST)))

    response = await client.responses.create(
        model="m-1", input="hi", temperature=1.5, top_p=0.9, metadata={"run": "7"},
        text={"format": {"type": "text"}},
    )

    assert response.output_text == "plain words"
    assert (response.temperature, response.top_p) == (1.5, 0.9)
    assert response.metadata == {"run": "7"}
    assert response.text.format.type == "text"
    body = stub.received[0].body
    assert (body["temperature"], body["top_p"]) == (1.5, 0.9)
    assert "response_format" not in body


async def test_a_json_object_request_reaches_openai(remote_app, stub, openai_for, settings):
    stub.script(Reply(chunks=openai_stream(['{"ok": true}'])))
    client = openai_for(remote_app("openai", settings))

    response = await client.responses.create(
        model="m-1", input="hi", text={"format": {"type": "json_object"}}
    )

    assert response.text.format.type == "json_object"
    assert stub.received[0].body["response_format"] == {"type": "json_object"}


async def test_without_settings_nothing_extra_is_sent(remote_app, stub, openai_for, settings):
    stub.script(Reply(chunks=openai_stream(["ok"])))
    client = openai_for(remote_app("openai", settings))

    response = await client.responses.create(model="m-1", input="hi")

    assert (response.temperature, response.top_p, response.text.format.type) == (1.0, 1.0, "text")
    body = stub.received[0].body
    assert not {"temperature", "top_p", "response_format"} & body.keys()


async def test_anthropic_gets_a_json_instruction(load_settings, remote_app, stub, openai_for):
    stub.script(Reply(chunks=anthropic_stream(['{"name": "Ada", "age": 36}'])))
    client = openai_for(remote_app("anthropic", load_settings(MANIFEST)))

    response = await client.responses.create(model="m-1", input="who?", instructions="Be brief.")

    assert response.status == "completed"
    body = stub.received[0].body
    assert "response_format" not in body
    assert body["system"].startswith("Be brief.\n\n")
    assert "JSON" in body["system"] and '"required":["name","age"]' in body["system"]
    assert (body["temperature"], body["top_p"]) == (0.2, 0.5)


async def test_anthropic_without_a_format_gets_no_instruction(
    remote_app, stub, openai_for, settings
):
    stub.script(Reply(chunks=anthropic_stream(["ok"])))
    client = openai_for(remote_app("anthropic", settings))

    await client.responses.create(model="m-1", input="hi", instructions="Be brief.")

    assert stub.received[0].body["system"] == "Be brief."


# --- request validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "param"),
    [
        ("json", "text.format"),
        ({"type": "xml"}, "text.format.type"),
        ({"type": "json_schema", "schema": PERSON}, "text.format.name"),
        ({"type": "json_schema", "name": "p"}, "text.format.schema"),
        ({"type": "json_schema", "name": "p", "schema": "object"}, "text.format.schema"),
        ({"type": "json_schema", "name": "p", "schema": PERSON, "strict": "yes"},
         "text.format.strict"),
    ],
)
async def test_a_bad_text_format_is_a_400_naming_the_param(http, fmt, param):
    reply = await http.post("/responses", json={"input": "hi", "text": {"format": fmt}})

    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"


# --- checking the answer ----------------------------------------------------------------------


def json_schema_format(schema=PERSON):
    return {"format": {"type": "json_schema", "name": "person", "schema": schema}}


@pytest.mark.parametrize(
    "answer", ['{"name": "Ada", "age": 36}', '{"name": "Ada", "age": 36, "extra": []}']
)
async def test_a_json_schema_answer_that_fits_passes(make_app, openai_for, answer):
    client = openai_for(make_app())  # the echo model answers with the input

    response = await client.responses.create(model="echo-1", input=answer,
                                             text=json_schema_format())

    assert response.status == "completed"
    assert json.loads(response.output_text) == json.loads(answer)


@pytest.mark.parametrize(
    "answer", ["Ada is 36", '{"name": "Ada"}', '["Ada", 36]', '{"name": "Ada", "age": 36'],
)
async def test_a_json_schema_answer_that_does_not_fit_fails(make_app, openai_for, answer):
    client = openai_for(make_app())

    with pytest.raises(openai.APIStatusError) as caught:
        await client.responses.create(model="echo-1", input=answer, text=json_schema_format())

    assert caught.value.status_code == 502
    assert caught.value.code == "invalid_model_output"
    assert "not valid JSON for the requested format" in caught.value.message


async def test_the_echo_model_passes_a_json_object_request_with_json(make_app, openai_for):
    client = openai_for(make_app())

    response = await client.responses.create(
        model="echo-1", input='{"a": [1, 2], "b": "c d"}', text={"format": {"type": "json_object"}}
    )

    assert response.status == "completed"
    assert json.loads(response.output_text) == {"a": [1, 2], "b": "c d"}


async def test_the_echo_model_fails_a_json_object_request_with_text(make_app, http, caplog):
    caplog.set_level(logging.WARNING)

    reply = await http.post("/responses", json={
        "input": "just words", "text": {"format": {"type": "json_object"}}})

    assert reply.status_code == 502
    assert reply.json()["error"]["code"] == "invalid_model_output"
    assert "not valid JSON for the requested format" in caplog.text


async def test_a_streamed_invalid_answer_ends_with_response_failed(post_stream):
    reply = await post_stream({"input": "not json at all",
                               "text": {"format": {"type": "json_object"}}})

    assert reply.types[-1] == "response.failed"
    assert "response.output_text.delta" in reply.types
    assert "response.output_text.done" not in reply.types
    error = reply.events[-1]["response"]["error"]
    assert error["code"] == "invalid_model_output"
    assert "not valid JSON" in error["message"]


async def test_a_streamed_valid_answer_completes(post_stream):
    reply = await post_stream({"input": '{"name": "Ada", "age": 36}', "text": json_schema_format()})

    assert reply.types[-1] == "response.completed"
    assert reply.events[-1]["response"]["text"]["format"]["name"] == "person"


async def test_a_manifest_format_is_checked_too(load_settings, make_app, http_for):
    settings = load_settings(MANIFEST)
    app = make_app(response_format=settings.response_format)

    reply = SSEReply(await http_for(app).post("/responses", json={"input": "hi", "stream": True}))

    assert reply.types[-1] == "response.failed"
    assert reply.events[-1]["response"]["error"]["code"] == "invalid_model_output"


async def test_a_remote_invalid_answer_fails(remote_app, stub, openai_for, settings):
    stub.script(Reply(chunks=openai_stream(["Sure! ", '{"ok": true}'])))
    client = openai_for(remote_app("openai", settings))

    with pytest.raises(openai.APIStatusError) as caught:
        await client.responses.create(model="m-1", input="hi",
                                      text={"format": {"type": "json_object"}})

    assert caught.value.code == "invalid_model_output"


# --- manifest validation at start-up ----------------------------------------------------------


def test_manifest_settings_load(load_settings):
    settings = load_settings(MANIFEST)

    assert (settings.temperature, settings.top_p) == (0.2, 0.5)
    assert settings.response_format == PERSON_FORMAT
    assert settings.metadata == {"team": "search"}


def test_a_json_object_manifest_format_loads(load_settings):
    settings = load_settings("response_format: {type: json_object}\n")

    assert settings.response_format == {"type": "json_object"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("temperature: 3\n", "agent.yaml temperature: must be between 0 and 2"),
        ("temperature: hot\n", "agent.yaml temperature: must be a number"),
        ("top_p: 1.5\n", "agent.yaml top_p: must be between 0 and 1"),
        ("response_format: json\n", "agent.yaml response_format: must be a mapping"),
        ("response_format: {type: xml}\n", "agent.yaml response_format.type: must be one of"),
        ("response_format: {type: json_schema}\n", "agent.yaml response_format.json_schema:"),
        ("response_format: {type: json_schema, json_schema: {name: p}}\n",
         "agent.yaml response_format.json_schema.schema:"),
        ("metadata: {n: 1}\n", "agent.yaml metadata.n: must be a string"),
    ],
)
def test_a_bad_manifest_setting_stops_start_up(package, load_settings, text, message):
    with pytest.raises(package.settings.SettingsError) as caught:
        load_settings(text)

    assert message in str(caught.value)
