"""POST /responses without streaming: accepted input, the Response object and its parameters."""

from __future__ import annotations

import openai
import pytest

pytestmark = pytest.mark.anyio


# --- input --------------------------------------------------------------------------------------


async def test_string_input_is_one_user_message(client):
    response = await client.responses.create(model="echo-1", input="hello world")

    assert response.output_text == "hello world"


@pytest.mark.parametrize("role", ["user", "system", "developer", "assistant"])
async def test_list_input_accepts_every_message_role(client, role):
    response = await client.responses.create(
        model="echo-1",
        input=[{"role": role, "content": f"a {role} message"}, {"role": "user", "content": "hi"}],
    )

    assert response.status == "completed"


async def test_list_input_accepts_input_text_parts(client):
    response = await client.responses.create(
        model="echo-1",
        input=[
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "first part "},
                    {"type": "input_text", "text": "second part"},
                ],
            }
        ],
    )

    assert response.output_text == "first part second part"


async def test_the_answer_echoes_the_last_user_message(client):
    response = await client.responses.create(
        model="echo-1",
        input=[
            {"role": "user", "content": "earlier question"},
            {"role": "assistant", "content": "earlier answer"},
            {"role": "user", "content": "latest question"},
            {"role": "developer", "content": "be brief"},
        ],
    )

    assert response.output_text == "latest question"


async def test_assistant_history_may_carry_output_text_parts(client):
    response = await client.responses.create(
        model="echo-1",
        input=[
            {"role": "assistant", "content": [{"type": "output_text", "text": "before"}]},
            {"role": "user", "content": "now"},
        ],
    )

    assert response.status == "completed"


async def test_function_call_items_are_accepted(client):
    response = await client.responses.create(
        model="echo-1",
        input=[
            {"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "42"},
            {"role": "user", "content": "and?"},
        ],
    )

    assert response.output_text == "and?"


async def test_unknown_item_type_is_400_naming_its_index(client):
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(
            model="echo-1",
            input=[{"role": "user", "content": "fine"}, {"type": "telepathy", "content": "?"}],
        )

    assert caught.value.status_code == 400
    assert caught.value.param == "input[1].type"
    assert caught.value.code == "invalid_value"


async def test_unknown_role_is_400_naming_it(client):
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model="echo-1", input=[{"role": "robot", "content": "x"}])

    assert caught.value.param == "input[0].role"


async def test_unknown_content_part_type_is_400_naming_it(client):
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(
            model="echo-1",
            input=[
                {"role": "user", "content": [{"type": "input_text", "text": "ok"}, {"type": "x"}]}
            ],
        )

    assert caught.value.param == "input[0].content[1].type"


async def test_instructions_reach_the_agent(make_app, openai_for):
    seen = []

    async def recording_agent(ctx):
        seen.append(ctx.instructions)
        yield "ok"

    client = openai_for(make_app(agent=recording_agent))
    await client.responses.create(model="echo-1", input="hi", instructions="Answer in French.")

    assert seen == ["Answer in French."]


# --- the Response object ------------------------------------------------------------------------


async def test_response_is_completed_with_one_assistant_message(client):
    response = await client.responses.create(model="echo-1", input="hi")

    assert response.object == "response"
    assert response.status == "completed"
    assert [item.type for item in response.output] == ["message"]
    assert response.output[0].role == "assistant"


async def test_message_item_has_an_id_and_a_status(client):
    response = await client.responses.create(model="echo-1", input="hi")

    message = response.output[0]
    assert message.id.startswith("msg_")
    assert message.status == "completed"


async def test_text_parts_carry_annotations_and_logprobs(http):
    body = (await http.post("/responses", json={"input": "hi"})).json()

    part = body["output"][0]["content"][0]
    assert part == {"type": "output_text", "text": "hi", "annotations": [], "logprobs": []}


async def test_usage_counts_input_and_output_tokens(client):
    response = await client.responses.create(model="echo-1", input="one two three")

    assert response.usage.input_tokens == 3
    assert response.usage.output_tokens == 3
    assert response.usage.total_tokens == 6


async def test_completed_response_has_completed_at(client):
    response = await client.responses.create(model="echo-1", input="hi")

    assert response.completed_at is not None
    assert response.completed_at >= response.created_at


async def test_response_ids_are_unique(client):
    first = await client.responses.create(model="echo-1", input="hi")
    second = await client.responses.create(model="echo-1", input="hi")

    assert first.id != second.id
    assert first.id.startswith("resp_")


async def test_strict_validators_accept_the_response(http):
    types = pytest.importorskip("openresponses_types")
    body = (await http.post("/responses", json={"input": "hi", "metadata": {"k": "v"}})).json()

    types.ResponseResource.model_validate(body)


async def test_strict_validators_accept_an_incomplete_response(http):
    types = pytest.importorskip("openresponses_types")
    body = (await http.post("/responses", json={"input": "a b c", "max_output_tokens": 1})).json()

    types.ResponseResource.model_validate(body)


async def test_response_has_the_fields_strict_schemas_require(http):
    body = (await http.post("/responses", json={"input": "hi"})).json()

    assert body["temperature"] == 1.0
    assert body["top_p"] == 1.0
    assert body["presence_penalty"] == 0.0
    assert body["frequency_penalty"] == 0.0
    assert body["top_logprobs"] == 0
    assert body["tools"] == []
    assert body["tool_choice"] == "auto"
    assert body["truncation"] == "disabled"
    assert body["text"] == {"format": {"type": "text"}}
    assert body["service_tier"] == "default"
    assert body["store"] is True
    assert body["background"] is False


async def test_agent_reference_is_echoed(client):
    reference = {"type": "agent_reference", "name": "support-agent", "version": "3"}

    response = await client.responses.create(
        model="echo-1", input="hi", extra_body={"agent_reference": reference}
    )

    assert response.model_extra["agent_reference"] == reference


async def test_conversation_id_is_echoed(http):
    body = (await http.post("/responses", json={"input": "hi", "conversation": "conv_1"})).json()

    assert body["conversation"] == {"id": "conv_1"}


# --- parameters ---------------------------------------------------------------------------------


async def test_metadata_is_kept_on_the_response(client):
    response = await client.responses.create(model="echo-1", input="hi", metadata={"ticket": "T-1"})

    assert response.metadata == {"ticket": "T-1"}


async def test_metadata_of_16_pairs_is_accepted(client):
    metadata = {f"key{index}": "v" for index in range(16)}

    response = await client.responses.create(model="echo-1", input="hi", metadata=metadata)

    assert response.metadata == metadata


async def test_metadata_of_17_pairs_is_400(client):
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(
            model="echo-1", input="hi", metadata={f"key{index}": "v" for index in range(17)}
        )

    assert caught.value.param == "metadata"


async def test_metadata_key_of_65_characters_is_400_naming_it(client):
    key = "k" * 65

    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model="echo-1", input="hi", metadata={key: "v"})

    assert caught.value.param == f"metadata.{key}"


async def test_metadata_value_of_513_characters_is_400_naming_its_key(client):
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model="echo-1", input="hi", metadata={"note": "v" * 513})

    assert caught.value.param == "metadata.note"


async def test_metadata_at_the_limits_is_accepted(client):
    metadata = {"k" * 64: "v" * 512}

    response = await client.responses.create(model="echo-1", input="hi", metadata=metadata)

    assert response.metadata == metadata


@pytest.mark.parametrize(("name", "value"), [("temperature", 0), ("temperature", 2), ("top_p", 0)])
async def test_sampling_parameters_at_their_bounds_are_echoed(client, name, value):
    response = await client.responses.create(model="echo-1", input="hi", **{name: value})

    assert getattr(response, name) == value


@pytest.mark.parametrize(
    ("name", "value"),
    [("temperature", -0.1), ("temperature", 2.1), ("top_p", -0.1), ("top_p", 1.1)],
)
async def test_sampling_parameters_out_of_range_are_400_naming_them(client, name, value):
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model="echo-1", input="hi", **{name: value})

    assert caught.value.param == name


async def test_max_output_tokens_cuts_the_answer_short(client):
    response = await client.responses.create(
        model="echo-1", input="one two three four", max_output_tokens=2
    )

    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == "one two "
    assert response.output[0].status == "incomplete"


async def test_max_output_tokens_larger_than_the_answer_completes(client):
    response = await client.responses.create(model="echo-1", input="one two", max_output_tokens=2)

    assert response.status == "completed"
    assert response.incomplete_details is None


async def test_max_output_tokens_must_be_positive(client):
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model="echo-1", input="hi", max_output_tokens=0)

    assert caught.value.param == "max_output_tokens"


async def test_background_with_store_false_is_400(client):
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model="echo-1", input="hi", background=True, store=False)

    assert caught.value.param == "store"
