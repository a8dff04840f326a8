"""POST /responses with stream: true — the SDK's two ways to stream, and the wire format."""

from __future__ import annotations

import anyio
import pytest

pytestmark = pytest.mark.anyio

TEXT_ANSWER = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.delta",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]
TERMINAL = {"response.completed", "response.incomplete", "response.failed"}


async def test_sdk_create_stream_yields_the_events_in_protocol_order(client):
    stream = await client.responses.create(model="echo-1", input="one two three", stream=True)

    assert [event.type async for event in stream] == TEXT_ANSWER


async def test_sdk_create_stream_deltas_add_up_to_the_answer(client):
    stream = await client.responses.create(model="echo-1", input="one two three", stream=True)
    events = [event async for event in stream]

    deltas = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert deltas == "one two three"
    assert events[-1].response.output_text == "one two three"


async def test_sdk_stream_helper_gives_the_final_response(client):
    async with client.responses.stream(model="echo-1", input="streamed answer") as stream:
        async for _ in stream:
            pass
        final = await stream.get_final_response()

    assert final.status == "completed"
    assert final.output_text == "streamed answer"
    assert final.usage.output_tokens == 2


async def test_sdk_stream_helper_collects_text_deltas(client):
    async with client.responses.stream(model="echo-1", input="a b c") as stream:
        deltas = [
            event.delta async for event in stream if event.type == "response.output_text.delta"
        ]

    assert deltas == ["a ", "b ", "c"]


async def test_stream_follows_the_protocol_event_order(post_stream):
    reply = await post_stream({"input": "one two three"})

    assert reply.types == TEXT_ANSWER


async def test_sequence_numbers_count_from_zero_without_gaps(post_stream):
    reply = await post_stream({"input": "one two three"})

    assert [event["sequence_number"] for event in reply.events] == list(range(len(reply.events)))


async def test_stream_has_exactly_one_terminal_event_and_it_is_last(post_stream):
    reply = await post_stream({"input": "one two three"})

    assert [kind for kind in reply.types if kind in TERMINAL] == ["response.completed"]
    assert reply.types[-1] == "response.completed"


async def test_stream_ends_with_done_after_completed(post_stream):
    reply = await post_stream({"input": "hi"})

    assert reply.frames[-2].event == "response.completed"
    assert reply.frames[-1].data == "[DONE]"
    assert reply.text.endswith("}\n\ndata: [DONE]\n\n")


async def test_event_name_equals_the_json_type(post_stream):
    reply = await post_stream({"input": "one two three"})

    for frame in reply.frames[:-1]:
        assert frame.event == frame.json["type"]


async def test_stream_has_no_id_lines(post_stream):
    reply = await post_stream({"input": "hi"})

    assert not [line for line in reply.text.splitlines() if line.startswith("id:")]


async def test_stream_headers_are_event_stream_and_not_cached(post_stream):
    reply = await post_stream({"input": "hi"})

    assert reply.response.status_code == 200
    assert reply.response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert reply.response.headers["cache-control"] == "no-cache"
    assert reply.response.headers["x-accel-buffering"] == "no"


async def test_created_event_carries_an_in_progress_response_without_output(post_stream):
    reply = await post_stream({"input": "hi"})

    created = reply.events[0]["response"]
    assert created["status"] == "in_progress"
    assert created["output"] == []


async def test_item_and_part_ids_line_up_across_events(post_stream):
    reply = await post_stream({"input": "one two"})

    item_id = reply.events[2]["item"]["id"]
    assert reply.events[2]["item"]["status"] == "in_progress"
    for event in reply.events[3:-2]:
        assert event["item_id"] == item_id
        assert (event["output_index"], event["content_index"]) == (0, 0)
    assert reply.events[-2]["item"]["id"] == item_id
    assert reply.events[-1]["response"]["output"][0]["id"] == item_id


async def test_text_events_carry_logprobs(post_stream):
    reply = await post_stream({"input": "one two"})

    text_events = [e for e in reply.events if e["type"].startswith("response.output_text.")]
    assert text_events
    assert all(event["logprobs"] == [] for event in text_events)


async def test_done_events_carry_the_whole_text(post_stream):
    reply = await post_stream({"input": "one two"})
    by_type = {event["type"]: event for event in reply.events}

    assert by_type["response.output_text.done"]["text"] == "one two"
    assert by_type["response.content_part.done"]["part"]["text"] == "one two"
    assert by_type["response.output_item.done"]["item"]["content"][0]["text"] == "one two"


async def test_completed_event_carries_usage(post_stream):
    reply = await post_stream({"input": "one two"})

    assert reply.events[-1]["response"]["usage"]["output_tokens"] == 2


async def test_max_output_tokens_ends_the_stream_with_response_incomplete(post_stream):
    reply = await post_stream({"input": "one two three", "max_output_tokens": 1})

    assert reply.types[-1] == "response.incomplete"
    assert reply.events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert not TERMINAL & set(reply.types[:-1])


async def test_every_event_validates_against_open_responses(post_stream):
    types = pytest.importorskip("openresponses_types")
    models = {
        "response.created": types.ResponseCreatedStreamingEvent,
        "response.in_progress": types.ResponseInProgressStreamingEvent,
        "response.output_item.added": types.ResponseOutputItemAddedStreamingEvent,
        "response.content_part.added": types.ResponseContentPartAddedStreamingEvent,
        "response.output_text.delta": types.ResponseOutputTextDeltaStreamingEvent,
        "response.output_text.done": types.ResponseOutputTextDoneStreamingEvent,
        "response.content_part.done": types.ResponseContentPartDoneStreamingEvent,
        "response.output_item.done": types.ResponseOutputItemDoneStreamingEvent,
        "response.completed": types.ResponseCompletedStreamingEvent,
    }
    reply = await post_stream({"input": "one two"})

    for event in reply.events:
        models[event["type"]].model_validate(event)


async def test_silent_agent_gets_keep_alive_comments(make_app, http_for, post_stream):
    async def slow_agent(ctx):
        yield "thinking"
        await anyio.sleep(0.3)
        yield " done"

    http = http_for(make_app(agent=slow_agent, sse_keepalive_interval=0.05))

    reply = await post_stream({"input": "hi"}, via=http)

    assert ": keep-alive\n\n" in reply.text
    assert reply.types[-1] == "response.completed"
    assert reply.events[-1]["response"]["output"][0]["content"][0]["text"] == "thinking done"


async def test_keep_alive_zero_sends_no_comments(make_app, http_for, post_stream):
    async def slow_agent(ctx):
        await anyio.sleep(0.2)
        yield "done"

    http = http_for(make_app(agent=slow_agent, sse_keepalive_interval=0))

    reply = await post_stream({"input": "hi"}, via=http)

    assert ": keep-alive" not in reply.text
    assert reply.types[-1] == "response.completed"
