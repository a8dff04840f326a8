"""Your agent (``agent.py``) behind the real server. Change these when you change the agent;
the protocol tests in the other files run a stand-in agent and should keep passing."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio


@pytest.fixture
def agent_client(openai_for, make_app):
    return openai_for(make_app(agent=None))  # None: the respond() in agent.py


async def test_agent_answers_a_question(agent_client):
    response = await agent_client.responses.create(model="echo-1", input="hello agent")

    assert response.status == "completed"
    assert response.output_text == "hello agent"


async def test_agent_streams_its_answer(agent_client):
    async with agent_client.responses.stream(model="echo-1", input="hello agent") as stream:
        final = await stream.get_final_response()

    assert final.output_text == "hello agent"
