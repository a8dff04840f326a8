"""The container contract: every route answers, on both /responses and /v1/responses."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("path", ["/responses", "/v1/responses"])
async def test_post_responses_answers_on_both_paths(http, path):
    reply = await http.post(path, json={"input": "hello"})

    assert reply.status_code == 200
    assert reply.json()["object"] == "response"
    assert reply.json()["status"] == "completed"


async def test_model_is_optional(http):
    reply = await http.post("/responses", json={"input": "no model given"})

    assert reply.status_code == 200
    assert reply.json()["model"] == "echo-1"


async def test_get_returns_the_stored_response(client):
    created = await client.responses.create(model="echo-1", input="remember me")

    retrieved = await client.responses.retrieve(created.id)

    assert retrieved.id == created.id
    assert retrieved.output_text == "remember me"


async def test_get_on_the_unprefixed_path_returns_the_same_response(client, http):
    created = await client.responses.create(model="echo-1", input="hello")

    reply = await http.get(f"/responses/{created.id}")

    assert reply.status_code == 200
    assert reply.json()["id"] == created.id


async def test_delete_removes_the_response(client, http):
    created = await client.responses.create(model="echo-1", input="forget me")

    reply = await http.delete(f"/responses/{created.id}")

    assert reply.json() == {"id": created.id, "object": "response.deleted", "deleted": True}
    assert (await http.get(f"/responses/{created.id}")).status_code == 404


async def test_delete_through_the_sdk_succeeds(client, http):
    created = await client.responses.create(model="echo-1", input="forget me")

    await client.responses.delete(created.id)

    assert (await http.get(f"/v1/responses/{created.id}")).status_code == 404


async def test_invocations_returns_a_compact_answer(http):
    reply = await http.post("/invocations", json={"input": "hello there"})

    assert reply.status_code == 200
    body = reply.json()
    assert body["output_text"] == "hello there"
    assert body["status"] == "completed"
    assert body["id"].startswith("resp_")
    assert body["usage"]["output_tokens"] == 2


async def test_invocations_stores_the_response(http):
    reply = await http.post("/invocations", json={"input": "hello"})

    assert (await http.get(f"/responses/{reply.json()['id']}")).status_code == 200


@pytest.mark.parametrize("path", ["/readiness", "/ready", "/health"])
async def test_readiness_probes_answer_ready(http, path):
    reply = await http.get(path)

    assert reply.status_code == 200
    assert reply.json() == {"status": "ready"}


async def test_liveness_answers_alive(http):
    reply = await http.get("/liveness")

    assert reply.status_code == 200
    assert reply.json() == {"status": "alive"}


async def test_ping_answers_healthy_when_idle(http):
    reply = await http.get("/ping")

    assert reply.status_code == 200
    assert reply.json() == {"status": "Healthy"}


@pytest.mark.parametrize("path", ["/readiness", "/ready", "/health"])
async def test_readiness_probes_answer_503_while_draining(app, http, path):
    app.state.server.draining = True

    reply = await http.get(path)

    assert reply.status_code == 503
    assert reply.json() == {"status": "draining"}


async def test_liveness_stays_200_while_draining(app, http):
    app.state.server.draining = True

    assert (await http.get("/liveness")).status_code == 200
