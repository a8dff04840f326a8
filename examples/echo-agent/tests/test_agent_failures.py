"""When the agent fails: AgentError shows its code and message, anything else stays private.

Streaming follows the protocol's two rules: a failure after ``response.created`` is the terminal
``response.failed``; a failure before it is a single standalone ``error`` event.
"""

from __future__ import annotations

import openai
import pytest

pytestmark = pytest.mark.anyio

SECRET = "password=hunter2 at db.internal:5432"


@pytest.fixture
def failing_app(make_app, package):
    """An agent that starts answering, then raises AgentError."""

    async def agent(ctx):
        yield "Let me check "
        raise package.errors.AgentError("The knowledge base is unavailable.", code="kb_down")

    return make_app(agent=agent)


@pytest.fixture
def crashing_app(make_app):
    """An agent that starts answering, then hits a bug whose message must not leak."""

    async def agent(ctx):
        yield "Let me check "
        raise RuntimeError(SECRET)

    return make_app(agent=agent)


@pytest.fixture
def refusing_app(make_app, package):
    """An agent that refuses before the response starts: a plain function that raises."""

    def agent(ctx):
        raise package.errors.AgentError("Structured input 'region' is required.", code="no_region")

    return make_app(agent=agent)


# --- AgentError ---------------------------------------------------------------------------------


async def test_agent_error_is_a_500_with_its_code_and_message(failing_app, openai_for):
    client = openai_for(failing_app)

    with pytest.raises(openai.InternalServerError) as caught:
        await client.responses.create(model="echo-1", input="hi")

    assert caught.value.status_code == 500
    assert caught.value.code == "kb_down"
    assert caught.value.body["message"] == "The knowledge base is unavailable."
    assert caught.value.type == "server_error"


async def test_agent_error_stream_ends_with_response_failed(failing_app, http_for, post_stream):
    reply = await post_stream({"input": "hi"}, via=http_for(failing_app))

    assert reply.response.status_code == 200
    assert reply.types[0] == "response.created"
    assert reply.types[-1] == "response.failed"
    assert reply.events[-1]["response"]["status"] == "failed"
    assert reply.events[-1]["response"]["error"] == {
        "code": "kb_down",
        "message": "The knowledge base is unavailable.",
    }


async def test_agent_error_after_created_sends_no_error_event(failing_app, http_for, post_stream):
    reply = await post_stream({"input": "hi"}, via=http_for(failing_app))

    assert "error" not in reply.types
    assert reply.frames[-1].data == "[DONE]"


async def test_agent_error_stream_keeps_numbering_and_one_terminal(
    failing_app, http_for, post_stream
):
    reply = await post_stream({"input": "hi"}, via=http_for(failing_app))

    assert [e["sequence_number"] for e in reply.events] == list(range(len(reply.events)))
    assert reply.types.count("response.failed") == 1
    assert "response.completed" not in reply.types


async def test_sdk_stream_reports_response_failed(failing_app, openai_for):
    client = openai_for(failing_app)

    stream = await client.responses.create(model="echo-1", input="hi", stream=True)
    events = [event async for event in stream]

    assert events[-1].type == "response.failed"
    assert events[-1].response.error.code == "kb_down"


async def test_failed_response_is_stored_as_failed(failing_app, http_for, post_stream):
    http = http_for(failing_app)
    reply = await post_stream({"input": "hi"}, via=http)

    stored = await http.get(f"/responses/{reply.events[0]['response']['id']}")

    assert stored.json()["status"] == "failed"
    assert stored.json()["error"]["code"] == "kb_down"


async def test_invocations_reports_an_agent_error_as_500(failing_app, http_for):
    reply = await http_for(failing_app).post("/invocations", json={"input": "hi"})

    assert reply.status_code == 500
    assert reply.json()["error"]["code"] == "kb_down"


# --- unexpected exceptions ----------------------------------------------------------------------


async def test_unexpected_exception_is_a_generic_server_error(crashing_app, http_for):
    reply = await http_for(crashing_app).post("/responses", json={"input": "hi"})

    assert reply.status_code == 500
    error = reply.json()["error"]
    assert error["type"] == "server_error"
    assert error["code"] == "server_error"


async def test_unexpected_exception_text_does_not_leak(crashing_app, http_for):
    reply = await http_for(crashing_app).post("/responses", json={"input": "hi"})

    assert "hunter2" not in reply.text
    assert "RuntimeError" not in reply.text
    assert "Traceback" not in reply.text


async def test_unexpected_exception_in_a_stream_fails_generically(
    crashing_app, http_for, post_stream
):
    reply = await post_stream({"input": "hi"}, via=http_for(crashing_app))

    assert reply.types[-1] == "response.failed"
    assert reply.events[-1]["response"]["error"]["code"] == "server_error"
    assert "hunter2" not in reply.text
    assert "RuntimeError" not in reply.text


async def test_agent_yielding_a_non_string_fails_the_response(make_app, http_for, post_stream):
    async def agent(ctx):
        yield "fine "
        yield {"not": "text"}

    reply = await post_stream({"input": "hi"}, via=http_for(make_app(agent=agent)))

    assert reply.types[-1] == "response.failed"
    assert reply.events[-1]["response"]["error"]["code"] == "server_error"
    assert reply.frames[-1].data == "[DONE]"


# --- failures before response.created -----------------------------------------------------------


async def test_error_before_created_is_a_single_error_event(refusing_app, http_for, post_stream):
    reply = await post_stream({"input": "hi"}, via=http_for(refusing_app))

    assert reply.response.status_code == 200
    assert reply.types == ["error"]
    assert reply.frames[0].event == "error"
    assert reply.frames[-1].data == "[DONE]"


async def test_error_event_carries_the_agent_error(refusing_app, http_for, post_stream):
    reply = await post_stream({"input": "hi"}, via=http_for(refusing_app))

    event = reply.events[0]
    assert event["sequence_number"] == 0
    assert event["error"] == {
        "type": "server_error",
        "code": "no_region",
        "message": "Structured input 'region' is required.",
        "param": None,
    }


async def test_error_event_validates_against_open_responses(refusing_app, http_for, post_stream):
    types = pytest.importorskip("openresponses_types")
    reply = await post_stream({"input": "hi"}, via=http_for(refusing_app))

    types.ErrorStreamingEvent.model_validate(reply.events[0])


async def test_sdk_raises_api_error_on_an_error_event(refusing_app, openai_for):
    client = openai_for(refusing_app)
    stream = await client.responses.create(model="echo-1", input="hi", stream=True)

    with pytest.raises(openai.APIError, match="Structured input 'region' is required."):
        async for _ in stream:
            pass


async def test_error_before_created_without_streaming_is_a_500(refusing_app, http_for):
    reply = await http_for(refusing_app).post("/responses", json={"input": "hi"})

    assert reply.status_code == 500
    assert reply.json()["error"]["code"] == "no_region"


async def test_unexpected_error_before_created_is_a_generic_error_event(
    make_app, http_for, post_stream
):
    def agent(ctx):
        raise KeyError(SECRET)

    reply = await post_stream({"input": "hi"}, via=http_for(make_app(agent=agent)))

    assert reply.types == ["error"]
    assert reply.events[0]["error"]["code"] == "server_error"
    assert "hunter2" not in reply.text
