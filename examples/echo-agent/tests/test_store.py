"""Stored responses: retrieval, continuation, input items, ids, background runs and cancel."""

from __future__ import annotations

import anyio
import openai
import pytest

pytestmark = pytest.mark.anyio


async def test_previous_response_id_gives_the_agent_the_earlier_turns(make_app, openai_for):
    seen = []

    async def recording_agent(ctx):
        seen.append([(item.get("role"), item["content"][0]["text"]) for item in ctx.conversation])
        yield "ok"

    client = openai_for(make_app(agent=recording_agent))
    first = await client.responses.create(model="echo-1", input="my name is Ada")

    await client.responses.create(
        model="echo-1", input="what is my name?", previous_response_id=first.id
    )

    assert seen[-1] == [
        ("user", "my name is Ada"),
        ("assistant", "ok"),
        ("user", "what is my name?"),
    ]


async def test_previous_response_id_is_echoed_on_the_response(client):
    first = await client.responses.create(model="echo-1", input="one")

    second = await client.responses.create(
        model="echo-1", input="two", previous_response_id=first.id
    )

    assert second.previous_response_id == first.id


async def test_unknown_previous_response_id_is_404_naming_the_param(client):
    with pytest.raises(openai.NotFoundError) as caught:
        await client.responses.create(
            model="echo-1", input="hi", previous_response_id="resp_missing"
        )

    assert caught.value.status_code == 404
    assert caught.value.param == "previous_response_id"


async def test_store_false_keeps_nothing(client):
    created = await client.responses.create(model="echo-1", input="secret", store=False)

    assert created.output_text == "secret"
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(created.id)


async def test_store_false_response_cannot_be_continued(client):
    created = await client.responses.create(model="echo-1", input="secret", store=False)

    with pytest.raises(openai.NotFoundError) as caught:
        await client.responses.create(
            model="echo-1", input="and then?", previous_response_id=created.id
        )

    assert caught.value.param == "previous_response_id"


async def test_streamed_response_is_stored_after_it_completes(client):
    stream = await client.responses.create(model="echo-1", input="stream me", stream=True)
    events = [event async for event in stream]

    retrieved = await client.responses.retrieve(events[-1].response.id)

    assert retrieved.status == "completed"
    assert retrieved.output_text == "stream me"


async def test_x_agent_response_id_header_sets_the_response_id(client):
    response = await client.responses.create(
        model="echo-1", input="hi", extra_headers={"x-agent-response-id": "caresp_given_by_foundry"}
    )

    assert response.id == "caresp_given_by_foundry"


async def test_x_agent_response_id_header_sets_the_streamed_response_id(post_stream):
    reply = await post_stream({"input": "hi"}, headers={"x-agent-response-id": "caresp_streamed"})

    assert {event["response"]["id"] for event in reply.events if "response" in event} == {
        "caresp_streamed"
    }


async def test_duplicate_response_id_is_409(client):
    headers = {"x-agent-response-id": "caresp_twice"}
    await client.responses.create(model="echo-1", input="one", extra_headers=headers)

    with pytest.raises(openai.ConflictError) as caught:
        await client.responses.create(model="echo-1", input="two", extra_headers=headers)

    assert caught.value.status_code == 409
    assert caught.value.code == "response_id_conflict"


async def test_x_agent_session_id_is_echoed(http):
    reply = await http.post(
        "/responses", json={"input": "hi"}, headers={"x-agent-session-id": "session-42"}
    )

    assert reply.headers["x-agent-session-id"] == "session-42"


async def test_x_agent_session_id_is_echoed_on_a_stream(post_stream):
    reply = await post_stream({"input": "hi"}, headers={"x-agent-session-id": "session-42"})

    assert reply.response.headers["x-agent-session-id"] == "session-42"


async def test_a_session_id_is_made_up_when_none_is_given(http):
    reply = await http.post("/responses", json={"input": "hi"})

    assert reply.headers["x-agent-session-id"]


async def test_x_request_id_is_echoed(http):
    reply = await http.post("/responses", json={"input": "hi"}, headers={"x-request-id": "req-7"})

    assert reply.headers["x-request-id"] == "req-7"


async def test_a_request_id_is_made_up_when_none_is_given(http):
    reply = await http.get("/readiness")

    assert reply.headers["x-request-id"].startswith("req_")


# --- input items --------------------------------------------------------------------------------

FOUR_MESSAGES = [
    {"role": "system", "content": "one"},
    {"role": "developer", "content": "two"},
    {"role": "assistant", "content": "three"},
    {"role": "user", "content": "four"},
]


def texts(items) -> list[str]:
    return [item["content"][0]["text"] for item in items]


@pytest.fixture
async def stored_id(client) -> str:
    response = await client.responses.create(model="echo-1", input=FOUR_MESSAGES)
    return response.id


async def test_input_items_list_newest_first_by_default(http, stored_id):
    page = (await http.get(f"/responses/{stored_id}/input_items")).json()

    assert page["object"] == "list"
    assert texts(page["data"]) == ["four", "three", "two", "one"]
    assert page["has_more"] is False


async def test_input_items_order_asc_lists_oldest_first(http, stored_id):
    page = (await http.get(f"/responses/{stored_id}/input_items", params={"order": "asc"})).json()

    assert texts(page["data"]) == ["one", "two", "three", "four"]


async def test_input_items_limit_pages_and_reports_has_more(http, stored_id):
    reply = await http.get(f"/responses/{stored_id}/input_items", params={"limit": 2})
    page = reply.json()

    assert texts(page["data"]) == ["four", "three"]
    assert page["has_more"] is True
    assert page["first_id"] == page["data"][0]["id"]
    assert page["last_id"] == page["data"][-1]["id"]


async def test_input_items_after_continues_from_a_cursor(http, stored_id):
    path = f"/responses/{stored_id}/input_items"
    first = (await http.get(path, params={"limit": 2, "order": "asc"})).json()

    second = (await http.get(path, params={"order": "asc", "after": first["last_id"]})).json()

    assert texts(second["data"]) == ["three", "four"]
    assert second["has_more"] is False


async def test_input_items_before_stops_at_a_cursor(http, stored_id):
    path = f"/responses/{stored_id}/input_items"
    everything = (await http.get(path, params={"order": "asc"})).json()["data"]

    page = (await http.get(path, params={"order": "asc", "before": everything[2]["id"]})).json()

    assert texts(page["data"]) == ["one", "two"]


async def test_input_items_through_the_sdk_paginate(client, stored_id):
    items = [item async for item in client.responses.input_items.list(stored_id, limit=1)]

    assert [item.content[0].text for item in items] == ["four", "three", "two", "one"]


async def test_input_items_unknown_cursor_is_400_naming_it(http, stored_id):
    reply = await http.get(f"/responses/{stored_id}/input_items", params={"after": "msg_nope"})

    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == "after"


@pytest.mark.parametrize(
    ("params", "param"),
    [({"limit": 0}, "limit"), ({"limit": "x"}, "limit"), ({"order": "up"}, "order")],
)
async def test_input_items_bad_query_is_400_naming_it(http, stored_id, params, param):
    reply = await http.get(f"/responses/{stored_id}/input_items", params=params)

    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == param


# --- background runs and cancel -----------------------------------------------------------------


async def waiting_agent(ctx):
    """Says one word, then waits until it is cancelled."""
    yield "thinking "
    await anyio.sleep(60)
    yield "never"


class RunningAgent:
    """An agent that reports when it is running and when it has stopped."""

    def __init__(self) -> None:
        self.started = anyio.Event()
        self.stopped = anyio.Event()

    async def __call__(self, ctx):
        try:
            yield "thinking "
            self.started.set()
            await anyio.sleep(60)
            yield "never"
        finally:
            self.stopped.set()


async def wait_until_finished(client, response_id: str) -> None:
    with anyio.fail_after(5):
        while (await client.responses.retrieve(response_id)).status in ("queued", "in_progress"):
            await anyio.sleep(0.01)


async def test_background_response_starts_queued(make_app, openai_for):
    client = openai_for(make_app(agent=waiting_agent))

    created = await client.responses.create(model="echo-1", input="hi", background=True)

    assert created.status == "queued"
    assert created.background is True


async def test_background_response_completes_without_a_client(client):
    created = await client.responses.create(model="echo-1", input="unattended", background=True)

    await wait_until_finished(client, created.id)

    retrieved = await client.responses.retrieve(created.id)
    assert retrieved.status == "completed"
    assert retrieved.output_text == "unattended"


async def test_cancel_stops_a_running_background_response(make_app, openai_for):
    agent = RunningAgent()
    client = openai_for(make_app(agent=agent))
    created = await client.responses.create(model="echo-1", input="hi", background=True)
    with anyio.fail_after(5):
        await agent.started.wait()

    cancelled = await client.responses.cancel(created.id)

    assert cancelled.status == "cancelled"
    assert agent.stopped.is_set()
    assert (await client.responses.retrieve(created.id)).status == "cancelled"


async def test_delete_stops_a_running_background_response(make_app, http_for):
    agent = RunningAgent()
    http = http_for(make_app(agent=agent))
    created = (await http.post("/responses", json={"input": "hi", "background": True})).json()
    with anyio.fail_after(5):
        await agent.started.wait()

    await http.delete(f"/responses/{created['id']}")

    assert agent.stopped.is_set()
    assert (await http.get(f"/responses/{created['id']}")).status_code == 404


async def test_cancel_right_after_create_still_cancels(make_app, http_for):
    http = http_for(make_app(agent=waiting_agent))
    created = (await http.post("/responses", json={"input": "hi", "background": True})).json()

    reply = await http.post(f"/responses/{created['id']}/cancel")

    assert reply.status_code == 200
    assert reply.json()["status"] == "cancelled"


async def test_cancel_twice_returns_the_cancelled_response(make_app, openai_for):
    client = openai_for(make_app(agent=waiting_agent))
    created = await client.responses.create(model="echo-1", input="hi", background=True)
    await client.responses.cancel(created.id)

    again = await client.responses.cancel(created.id)

    assert again.status == "cancelled"


async def test_cancel_of_a_non_background_response_is_400(client):
    created = await client.responses.create(model="echo-1", input="hi")

    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.cancel(created.id)

    assert caught.value.param == "response_id"


async def test_cancel_of_a_finished_background_response_is_400(client):
    created = await client.responses.create(model="echo-1", input="hi", background=True)
    await wait_until_finished(client, created.id)

    with pytest.raises(openai.BadRequestError):
        await client.responses.cancel(created.id)


async def test_cancel_of_an_unknown_response_is_404(client):
    with pytest.raises(openai.NotFoundError):
        await client.responses.cancel("resp_missing")


async def test_background_stream_replays_after_a_sequence_number(client, http, sse):
    created = await client.responses.create(model="echo-1", input="a b c", background=True)
    await wait_until_finished(client, created.id)

    reply = sse(
        await http.get(f"/responses/{created.id}", params={"stream": "true", "starting_after": 2})
    )

    assert [event["sequence_number"] for event in reply.events][:2] == [3, 4]
    assert reply.types[-1] == "response.completed"
    assert reply.text.endswith("data: [DONE]\n\n")


async def test_background_stream_can_be_followed_from_the_start(client, http, sse):
    created = await client.responses.create(model="echo-1", input="a b c", background=True)

    reply = sse(await http.get(f"/responses/{created.id}", params={"stream": "true"}))

    assert reply.types[0] == "response.created"
    assert reply.types[-1] == "response.completed"


async def test_background_response_can_be_continued(make_app, openai_for):
    seen = []

    async def recording_agent(ctx):
        seen.append([item["content"][0]["text"] for item in ctx.conversation])
        yield "noted"

    client = openai_for(make_app(agent=recording_agent))
    first = await client.responses.create(model="echo-1", input="first turn", background=True)
    await wait_until_finished(client, first.id)

    await client.responses.create(
        model="echo-1", input="second turn", previous_response_id=first.id
    )

    assert seen[-1] == ["first turn", "noted", "second turn"]


async def test_the_store_evicts_the_least_recently_used_response(make_app, openai_for):
    client = openai_for(make_app(response_store_size=2))
    first = await client.responses.create(model="echo-1", input="one")
    second = await client.responses.create(model="echo-1", input="two")
    await client.responses.retrieve(first.id)  # first is now the most recently used

    await client.responses.create(model="echo-1", input="three")

    assert (await client.responses.retrieve(first.id)).id == first.id
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(second.id)


async def test_continuing_from_an_evicted_response_is_404_naming_previous_response_id(
    make_app, openai_for
):
    client = openai_for(make_app(response_store_size=1))
    first = await client.responses.create(model="echo-1", input="one")
    await client.responses.create(model="echo-1", input="two")

    with pytest.raises(openai.NotFoundError) as caught:
        await client.responses.create(
            model="echo-1", input="three", previous_response_id=first.id
        )

    assert caught.value.body["param"] == "previous_response_id"
