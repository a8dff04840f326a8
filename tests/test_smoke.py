"""`actk smoke`: the stream verdict on its own, then the command against real images, good and
deliberately broken (tests/broken_images/)."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest

from tests import images
from tests.conftest import actk
from toolkit.invoke import SSEEvent
from toolkit.manifest import InputSchema, StructuredInput
from toolkit.smoke import CheckFailed, placeholder, smoke_inputs, verify_stream

# --- the stream verdict ------------------------------------------------------------------------


# A two-word answer, in the documented order.
IN_ORDER = (
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
)


def stream(*types: str, text: str = "hi there", done: bool = True) -> list[SSEEvent]:
    """A well-formed stream for a two-delta answer, with the event types given (or the right
    ones), numbered in the order given."""
    words = ["hi ", "there"]
    ids = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    item = {"id": "msg_1", "type": "message", "role": "assistant", "content": []}
    final = {
        "status": "completed",
        "output": [{**item, "content": [{"type": "output_text", "text": text}]}],
    }
    payloads = {
        "response.created": {"response": {"status": "in_progress", "output": []}},
        "response.in_progress": {"response": {"status": "in_progress", "output": []}},
        "response.output_item.added": {"output_index": 0, "item": item},
        "response.content_part.added": {**ids, "part": {"type": "output_text", "text": ""}},
        "response.output_text.done": {**ids, "text": text},
        "response.content_part.done": {**ids, "part": {"type": "output_text", "text": text}},
        "response.output_item.done": {"output_index": 0, "item": final["output"][0]},
        "response.completed": {"response": final},
    }
    types = types or IN_ORDER
    events, delta = [], 0
    for number, kind in enumerate(types):
        if kind == "response.output_text.delta":
            payload = {**ids, "delta": words[delta % 2]}
            delta += 1
        else:
            payload = payloads[kind]
        data = {"type": kind, "sequence_number": number, **payload}
        events.append(SSEEvent(kind, json.dumps(data)))
    if done:
        events.append(SSEEvent(None, "[DONE]"))
    return events


def test_stream_in_the_documented_order_passes():
    assert verify_stream(stream()) == "10 events in order (sequence 0-9, 2 deltas), then [DONE]"


def test_stream_out_of_order_names_the_first_wrong_event():
    swapped = stream(*IN_ORDER[:2], IN_ORDER[3], IN_ORDER[2], *IN_ORDER[4:])
    wanted = "event 2: expected response.output_item.added, got response.content_part.added"
    with pytest.raises(CheckFailed, match=re.escape(wanted)):
        verify_stream(swapped)


def test_stream_without_in_progress_fails():
    events = stream()
    del events[1]
    for number, event in enumerate(events[:-1]):  # renumber, so only the order is wrong
        data = event.json() | {"sequence_number": number}
        events[number] = SSEEvent(event.event, json.dumps(data))
    with pytest.raises(CheckFailed, match=re.escape("event 1: expected response.in_progress")):
        verify_stream(events)


def test_sequence_numbers_must_count_from_zero():
    events = [
        SSEEvent(e.event, json.dumps(e.json() | {"sequence_number": n + 1}))
        for n, e in enumerate(stream()[:-1])
    ]
    with pytest.raises(CheckFailed, match="sequence_number 1; expected 0"):
        verify_stream([*events, SSEEvent(None, "[DONE]")])


def test_stream_must_end_with_done():
    with pytest.raises(CheckFailed, match=r"does not end with data: \[DONE\]"):
        verify_stream(stream(done=False))


def test_event_name_must_match_the_type():
    events = stream()
    events[0] = SSEEvent("response.in_progress", events[0].data)
    with pytest.raises(CheckFailed, match=re.escape("'event: response.in_progress' but type")):
        verify_stream(events)


def test_deltas_must_add_up_to_the_done_text():
    with pytest.raises(CheckFailed, match="the deltas add up to 'hi there'"):
        verify_stream(stream(text="something else"))


def test_inputs_use_defaults_and_placeholders_for_required_ones():
    declared = {
        "userName": StructuredInput(required=True),
        "units": StructuredInput(default_value="Celsius"),
        "optional": StructuredInput(),
        "count": StructuredInput.model_validate({"required": True, "schema": {"type": "integer"}}),
    }
    values, notes = smoke_inputs(declared)
    assert values == {"userName": "smoke", "units": "Celsius", "count": 1}
    assert notes == ["userName (placeholder)", "units (default)", "count (placeholder)"]


def test_placeholders_follow_the_schema_type():
    tags = InputSchema(type="array", items=InputSchema(type="boolean"))
    assert placeholder(tags) == [True]
    assert placeholder(InputSchema(type="object")) == {}
    assert placeholder(InputSchema(type="number")) == 1.5


# --- against the engine ------------------------------------------------------------------------

docker = pytest.mark.docker


@pytest.fixture(scope="session")
def agent_repo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return images.agent_repo(request.config, tmp_path_factory)


@pytest.fixture(scope="session")
def agent_image(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    return images.good_image(request.config, tmp_path_factory)


@pytest.fixture(scope="session")
def inputs_agent(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    return images.inputs_agent(request.config, tmp_path_factory)


def smoke(*args: str, cwd: Path | None = None):
    return actk("smoke", *args, cwd=cwd)


@docker
def test_smoke_passes_every_check_on_the_generated_image(agent_image: str, agent_repo: Path):
    result = smoke(agent_image, "--json", "-C", str(agent_repo))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["image"] == agent_image
    assert report["passed"] is True
    assert [check["name"] for check in report["checks"]] == [
        "readiness",
        "health-aliases",
        "response",
        "stream-events",
        "structured-inputs",
        "malformed-json",
        "sigterm",
    ]
    assert all(check["passed"] for check in report["checks"])
    assert images.engine().containers.list(
        all=True, filters={"ancestor": agent_image, "label": "dev.actk.managed=true"}
    ) == []


@docker
def test_smoke_prints_a_table_of_checks(agent_image: str, tmp_path: Path):
    result = smoke(agent_image, cwd=tmp_path)  # no agent.yaml: the image's own settings
    assert result.returncode == 0, result.stdout + result.stderr
    assert "stream-events      PASS" in result.stdout
    assert "exit 0 after" in result.stdout
    assert "all 7 checks passed" in result.stdout


@docker
def test_smoke_env_overrides_reach_the_container(agent_image: str, tmp_path: Path):
    # The echo image told to use OpenAI, without OpenAI's key: its server refuses to start, so
    # the override reached it. CI uses the inverse (--env MODEL_PROVIDER=echo) for a pull
    # request from a fork, which has no model key.
    result = smoke(agent_image, "--json", "--env", "MODEL_PROVIDER=openai", cwd=tmp_path)
    assert result.returncode == 6, result.stdout + result.stderr
    readiness = json.loads(result.stdout)["checks"][0]
    assert readiness["name"] == "readiness" and readiness["passed"] is False


@docker
def test_smoke_sends_the_declared_structured_inputs(inputs_agent: tuple[str, Path]):
    image, directory = inputs_agent
    result = smoke(image, "--json", "-C", str(directory))
    assert result.returncode == 0, result.stdout + result.stderr
    check = next(c for c in json.loads(result.stdout)["checks"] if c["name"] == "structured-inputs")
    assert check == {**check, "passed": True,
                     "detail": "completed with userName (placeholder), units (default)"}


@docker
def test_smoke_fails_naming_stream_events_when_the_event_order_is_wrong(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
):
    image = images.broken_image(request.config, tmp_path_factory, "wrong_order")
    result = smoke(image, cwd=tmp_path)
    assert result.returncode == 6, result.stdout + result.stderr
    assert "error: 1 check failed: stream-events" in result.stderr
    assert "event 2: expected response.output_item.added, got response.content_part.added" in (
        result.stdout
    )
    assert "--- container logs ---" in result.stderr
    assert "wrong-order server listening" in result.stderr


@docker
def test_smoke_fails_naming_sigterm_when_the_server_ignores_it(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, agent_repo: Path
):
    image = images.broken_image(request.config, tmp_path_factory, "ignores_sigterm")
    result = smoke(image, "--json", "--drain-timeout", "0", "-C", str(agent_repo))
    assert result.returncode == 6, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] is False
    assert report["failed"] == ["sigterm"]
    sigterm = report["checks"][-1]
    assert "killed (exit 137)" in sigterm["detail"]
    assert 2.5 < sigterm["seconds"] < 10
    assert "listening" in report["logs"]


@docker
def test_smoke_fails_naming_readiness_when_the_server_never_answers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
):
    image = images.broken_image(request.config, tmp_path_factory, "never_ready")
    result = smoke(image, "--timeout", "1", cwd=tmp_path)
    assert result.returncode == 6, result.stdout + result.stderr
    assert "error: 1 check failed: readiness" in result.stderr
    assert "did not answer GET /readiness with 200 within 1 s" in result.stdout
    assert "never ready" in result.stderr  # its logs


@docker
def test_smoke_removes_the_container_when_interrupted(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
):
    image = images.broken_image(request.config, tmp_path_factory, "never_ready")
    process, stderr = images.start_actk("smoke", image, "--timeout", "120", cwd=tmp_path)
    name = stderr.wait_for(r"(actk-smoke-\S+) on http://127\.0\.0\.1:\d+")[1]
    assert [c.status for c in images.containers_named(name)] == ["running"]
    assert images.interrupt(process, stderr, signal.SIGINT) == 130, stderr.drain()
    assert "interrupted: the container was removed" in stderr.drain()
    assert images.containers_named(name) == []


@docker
def test_smoke_of_an_image_that_is_not_built_says_how_to_build_it(tmp_path: Path):
    images.engine()
    result = smoke(f"actk-test-absent-{images.SESSION}:latest", cwd=tmp_path)
    assert result.returncode == 5
    assert "is not in the local engine" in result.stderr
    assert "actk build" in result.stderr


def test_smoke_without_image_or_manifest_is_a_usage_error(tmp_path: Path):
    result = smoke(cwd=tmp_path)
    assert result.returncode == 2
    assert "no IMAGE given and no agent.yaml" in result.stderr
