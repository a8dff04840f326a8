"""Every error status in OpenAI's shape: {"error": {"message", "type", "param", "code"}}.

Bad input is always a 4xx that names the problem; never a 500, never a traceback.
"""

from __future__ import annotations

import json

import httpx
import openai
import pytest

pytestmark = pytest.mark.anyio


def error_of(reply: httpx.Response, status: int) -> dict:
    """The ``error`` object of an OpenAI-shaped error reply with ``status``."""
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    assert "Traceback" not in reply.text
    body = reply.json()
    assert list(body) == ["error"]
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"]
    return body["error"]


async def test_malformed_json_is_400(http):
    reply = await http.post(
        "/responses", content=b'{"input": ', headers={"content-type": "application/json"}
    )

    error = error_of(reply, 400)
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "invalid_json"


async def test_a_body_that_is_not_an_object_is_400(http):
    error = error_of(await http.post("/responses", json=["input", "hello"]), 400)

    assert error["code"] == "invalid_json"


async def test_invalid_field_is_400_naming_it(http):
    error = error_of(await http.post("/responses", json={"input": "hi", "stream": "yes"}), 400)

    assert error["type"] == "invalid_request_error"
    assert error["param"] == "stream"


async def test_sdk_bad_request_error_carries_param_code_and_type(client):
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model="echo-1", input="hi", temperature=5)

    assert caught.value.status_code == 400
    assert caught.value.param == "temperature"
    assert caught.value.code == "invalid_value"
    assert caught.value.type == "invalid_request_error"


async def test_unknown_response_id_is_404_naming_it(http):
    error = error_of(await http.get("/responses/resp_missing"), 404)

    assert error["type"] == "not_found_error"
    assert error["param"] == "response_id"


async def test_sdk_raises_not_found_for_an_unknown_id(client):
    with pytest.raises(openai.NotFoundError) as caught:
        await client.responses.retrieve("resp_missing")

    assert caught.value.param == "response_id"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/responses/resp_missing"),
        ("POST", "/responses/resp_missing/cancel"),
        ("GET", "/responses/resp_missing/input_items"),
    ],
)
async def test_every_route_on_an_unknown_id_is_404(http, method, path):
    error_of(await http.request(method, path), 404)


@pytest.mark.parametrize("path", ["/nowhere", "/v2/responses", "/responses/a/b/c"])
async def test_unknown_path_is_404(http, path):
    error = error_of(await http.get(path), 404)

    assert error["type"] == "not_found_error"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/responses"),
        ("PUT", "/responses/resp_1"),
        ("GET", "/invocations"),
        ("POST", "/readiness"),
        ("GET", "/v1/responses"),
    ],
)
async def test_wrong_method_is_405(http, method, path):
    reply = await http.request(method, path)

    error_of(reply, 405)
    assert reply.headers["allow"]


async def test_duplicate_response_id_is_409(http):
    headers = {"x-agent-response-id": "caresp_once"}
    await http.post("/responses", json={"input": "one"}, headers=headers)

    error = error_of(await http.post("/responses", json={"input": "two"}, headers=headers), 409)

    assert error["param"] == "response_id"


async def test_conflict_tells_sdk_clients_not_to_retry(http):
    headers = {"x-agent-response-id": "caresp_twice"}
    await http.post("/responses", json={"input": "one"}, headers=headers)

    reply = await http.post("/responses", json={"input": "two"}, headers=headers)

    assert reply.headers["x-should-retry"] == "false"


async def test_body_over_max_request_bytes_is_413(make_app, http_for):
    http = http_for(make_app(max_request_bytes=64))

    reply = await http.post("/responses", json={"input": "x" * 100})

    assert error_of(reply, 413)["code"] == "payload_too_large"


async def test_streamed_body_over_max_request_bytes_is_413(make_app, http_for):
    http = http_for(make_app(max_request_bytes=64))

    async def chunks():  # no content-length: the limit holds while reading
        for _ in range(10):
            yield b'{"input": "' + b"x" * 20

    reply = await http.post(
        "/responses", content=chunks(), headers={"content-type": "application/json"}
    )

    error_of(reply, 413)


async def test_body_at_max_request_bytes_is_accepted(make_app, http_for):
    body = json.dumps({"input": "hi"}).encode()
    http = http_for(make_app(max_request_bytes=len(body)))

    reply = await http.post(
        "/responses", content=body, headers={"content-type": "application/json"}
    )

    assert reply.status_code == 200


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_wrong_content_type_is_415(http, content_type):
    headers = {"content-type": content_type} if content_type else {}

    reply = await http.post("/responses", content=b'{"input": "hi"}', headers=headers)

    assert error_of(reply, 415)["code"] == "unsupported_media_type"


async def test_json_content_type_with_charset_is_accepted(http):
    reply = await http.post(
        "/responses",
        content=b'{"input": "hi"}',
        headers={"content-type": "application/json; charset=utf-8"},
    )

    assert reply.status_code == 200


@pytest.mark.parametrize("path", ["/responses", "/v1/responses", "/invocations"])
async def test_new_work_is_503_while_draining(app, http, path):
    app.state.server.draining = True

    reply = await http.post(path, json={"input": "hi"})

    error = error_of(reply, 503)
    assert error["code"] == "service_unavailable"
    assert reply.headers["connection"] == "close"


async def test_stored_responses_can_still_be_read_while_draining(app, http):
    created = (await http.post("/responses", json={"input": "hi"})).json()
    app.state.server.draining = True

    assert (await http.get(f"/responses/{created['id']}")).status_code == 200


async def test_invalid_x_agent_response_id_is_400(http):
    reply = await http.post(
        "/responses", json={"input": "hi"}, headers={"x-agent-response-id": "not an id!"}
    )

    assert error_of(reply, 400)["param"] == "response_id"


BAD_BODIES = {
    "empty body": b"",
    "truncated json": b'{"input": "hi"',
    "json null": b"null",
    "json string": b'"hello"',
    "invalid utf-8": b'{"input": "\xff\xfe"}',
    "deeply nested": b"[" * 100_000 + b"]" * 100_000,
    "nan temperature": b'{"input": "hi", "temperature": NaN}',
    "huge integer temperature": b'{"input": "hi", "temperature": 1' + b"0" * 400 + b"}",
    "huge float top_p": b'{"input": "hi", "top_p": 1e999}',
    "boolean temperature": b'{"input": "hi", "temperature": true}',
    "number input": b'{"input": 5}',
    "number item": b'{"input": [5]}',
    "item without role": b'{"input": [{"content": "hi"}]}',
    "unhashable item type": b'{"input": [{"type": ["message"], "content": "hi"}]}',
    "number content": b'{"input": [{"role": "user", "content": 5}]}',
    "part without text": b'{"input": [{"role": "user", "content": [{"type": "input_text"}]}]}',
    "function call without name": b'{"input": [{"type": "function_call", "call_id": "c"}]}',
    "list metadata": b'{"input": "hi", "metadata": ["a"]}',
    "number metadata value": b'{"input": "hi", "metadata": {"a": 1}}',
    "object tools": b'{"input": "hi", "tools": {}}',
    "string stream": b'{"input": "hi", "stream": "true"}',
    "unknown truncation": b'{"input": "hi", "truncation": "sometimes"}',
    "number conversation": b'{"input": "hi", "conversation": 7}',
    "nameless agent_reference": b'{"input": "hi", "agent_reference": {"type": "agent_reference"}}',
    "boolean max_output_tokens": b'{"input": "hi", "max_output_tokens": true}',
    "float max_output_tokens": b'{"input": "hi", "max_output_tokens": 1.5}',
    "number previous_response_id": b'{"input": "hi", "previous_response_id": 1}',
    "string structured_inputs": b'{"input": "hi", "structured_inputs": "x"}',
}


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
@pytest.mark.parametrize("path", ["/responses", "/invocations"])
async def test_bad_input_is_400_never_500(http, path, body):
    reply = await http.post(path, content=body, headers={"content-type": "application/json"})

    error = error_of(reply, 400)
    assert error["type"] == "invalid_request_error"


async def test_bad_input_with_stream_true_is_a_plain_400_not_a_stream(http):
    reply = await http.post("/responses", json={"input": 5, "stream": True})

    error_of(reply, 400)
