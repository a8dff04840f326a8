"""The built image on a real Docker engine: the same contract as the in-process tests.

The fixtures (`agent_image`, `agent_container`, `agent_url`, `responses_client`,
`start_agent_container`) come from agent-container-toolkit's pytest plugin: the image is built
once per run with `actk build` (or pass `--agent-image IMAGE`). Without the toolkit or without a
Docker engine these tests are skipped with the reason; `pytest -m "not container"` leaves them out.
"""

from __future__ import annotations

import httpx
import pytest

pytest.importorskip(
    "toolkit.pytest_plugin",
    reason="the container tests need agent-container-toolkit (pip install agent-container-toolkit)",
)

pytestmark = pytest.mark.container

HEALTH_ROUTES = ["/readiness", "/ready", "/health", "/liveness", "/ping"]


@pytest.mark.parametrize("route", HEALTH_ROUTES)
def test_health_routes_answer(agent_url, route):
    assert httpx.get(agent_url + route, timeout=10).status_code == 200


def test_malformed_json_is_a_400_in_the_openai_error_shape(agent_url):
    answer = httpx.post(
        agent_url + "/responses",
        content=b"{not json",
        headers={"content-type": "application/json"},
        timeout=10,
    )

    assert answer.status_code == 400
    assert set(answer.json()["error"]) >= {"message", "type", "param", "code"}


def test_a_response_through_the_official_client(responses_client):
    response = responses_client.responses.create(model="echo-1", input="hello container")

    assert response.status == "completed"
    assert response.output_text == "hello container"


def test_streaming_events_arrive_in_protocol_order(responses_client):
    stream = responses_client.responses.create(model="echo-1", input="one two", stream=True)
    events = list(stream)

    assert [event.type for event in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))


def test_sigterm_drains_and_exits_0(start_agent_container):
    container = start_agent_container(env={"DRAIN_TIMEOUT": "5"})

    result = container.stop(timeout=15)

    assert result.exit_code == 0 and not result.killed
