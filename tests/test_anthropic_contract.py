"""The Anthropic managed-agents contract server, driven by the official SDK: if the SDK (and its
own ``EnvironmentWorker``) works against it, the server speaks the API the toolkit's client must
speak."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import anthropic  # a test dependency (pyproject's test extra): missing is a failure, not a skip
import httpx
import pytest

MODEL = "claude-sonnet-4-5"
TOOLSET = [{"type": "agent_toolset_20260401"}]


def sdk(contract: Any, **options: Any) -> Any:
    return anthropic.Anthropic(api_key=contract.api_key, base_url=contract.url, **options)


def user_message(text: str) -> dict[str, Any]:
    return {"type": "user.message", "content": [{"type": "text", "text": text}]}


def setup(contract: Any, *, self_hosted: bool = False, name: str = "contract-env") -> tuple:
    client = sdk(contract)
    config = {"type": "self_hosted"} if self_hosted else {"type": "cloud"}
    environment = client.beta.environments.create(name=name, config=config)
    agent = client.beta.agents.create(name="contract-agent", model=MODEL, tools=TOOLSET)
    session = client.beta.sessions.create(
        agent={"type": "agent", "id": agent.id, "version": agent.version},
        environment_id=environment.id,
        title="contract session",
    )
    return client, environment, agent, session


def raw(contract: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {
        "x-api-key": contract.api_key,
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "managed-agents-2026-04-01",
        **kwargs.pop("headers", {}),
    }
    return httpx.request(method, contract.url + path, headers=headers, timeout=10, **kwargs)


def stream_until_idle(client: Any, session_id: str, text: str) -> list[Any]:
    """Open the stream, send ``text``, read events up to the first idle."""
    seen = []
    with client.beta.sessions.events.stream(session_id) as stream:
        client.beta.sessions.events.send(session_id, events=[user_message(text)])
        for event in stream:
            seen.append(event)
            if event.type == "session.status_idle":
                break
    return seen


# --- resources -----------------------------------------------------------------------------------


def test_environment_agent_and_session_round_trip_through_the_sdk(anthropic_contract):
    contract = anthropic_contract()
    client = sdk(contract)
    config = {
        "type": "cloud",
        "networking": {
            "type": "limited",
            "allowed_hosts": ["api.example.com", "*.example.org"],
            "allow_package_managers": True,
        },
        "packages": {"pip": ["httpx==0.28.1"]},
    }
    environment = client.beta.environments.create(
        name="round-trip", config=config, metadata={"team": "agents"}
    )
    assert environment.id.startswith("env_")
    assert environment.config.networking.allowed_hosts == ["api.example.com", "*.example.org"]
    assert environment.config.networking.allow_mcp_servers is False
    assert environment.config.packages.pip == ["httpx==0.28.1"]
    assert environment.config.packages.npm == []
    assert client.beta.environments.retrieve(environment.id) == environment

    agent = client.beta.agents.create(
        name="round-trip", model=MODEL, tools=TOOLSET, system="Be brief.", metadata={"a": "1"}
    )
    assert agent.version == 1
    assert agent.model.id == MODEL and agent.model.speed == "standard"
    toolset = agent.tools[0]
    assert toolset.default_config.permission_policy.type == "always_allow"

    session = client.beta.sessions.create(
        agent=agent.id, environment_id=environment.id, title="t", metadata={"image": "x:1"}
    )
    assert session.id.startswith("sesn_")
    assert session.status == "idle"
    assert session.agent.id == agent.id and session.agent.version == 1
    assert session.agent.system == "Be brief."
    assert client.beta.sessions.retrieve(session.id).metadata == {"image": "x:1"}
    updated = client.beta.sessions.update(session.id, title="renamed", metadata={"image": None})
    assert (updated.title, updated.metadata) == ("renamed", {})

    no_retry = client.with_options(max_retries=0)
    with pytest.raises(anthropic.ConflictError) as refused:
        no_retry.beta.environments.delete(environment.id)
    assert session.id in refused.value.message
    assert client.beta.sessions.delete(session.id).type == "session_deleted"
    deleted = client.beta.environments.delete(environment.id)
    assert (deleted.id, deleted.type) == (environment.id, "environment_deleted")
    with pytest.raises(anthropic.NotFoundError):
        client.beta.environments.retrieve(environment.id)
    assert contract.violations == []


def test_agent_updates_make_versions_only_when_something_changes(anthropic_contract):
    contract = anthropic_contract()
    client = sdk(contract)
    agent = client.beta.agents.create(
        name="versioned", model=MODEL, tools=TOOLSET, metadata={"keep": "1", "drop": "2"}
    )

    same = client.beta.agents.update(agent.id, name="versioned", model=MODEL)
    assert same.version == 1 and same.updated_at == agent.updated_at

    changed = client.beta.agents.update(
        agent.id, system="New instructions.", metadata={"drop": None, "new": "3"}, version=1
    )
    assert changed.version == 2
    assert changed.metadata == {"keep": "1", "new": "3"}
    assert changed.tools == agent.tools  # omitted fields are preserved

    with pytest.raises(anthropic.ConflictError):
        client.with_options(max_retries=0).beta.agents.update(agent.id, system="x", version=1)

    assert client.beta.agents.retrieve(agent.id, version=1).system is None
    assert [v.version for v in client.beta.agents.versions.list(agent.id)] == [2, 1]

    client.beta.agents.archive(agent.id)
    with pytest.raises(anthropic.BadRequestError, match="archived"):
        client.beta.agents.update(agent.id, system="after archive")
    assert [a.id for a in client.beta.agents.list()] == []
    assert [a.id for a in client.beta.agents.list(include_archived=True)] == [agent.id]
    assert contract.violations == []


def test_lists_paginate_and_the_sdk_follows_next_page(anthropic_contract):
    contract = anthropic_contract(page_size=2)
    client = sdk(contract)
    created = [
        client.beta.environments.create(name=f"env-{i}", config={"type": "cloud"}).id
        for i in range(5)
    ]
    listed = [e.id for e in client.beta.environments.list()]
    assert sorted(listed) == sorted(created)
    pages = contract.calls("GET", r"^/v1/environments$")
    assert len(pages) == 3
    assert "page" not in pages[0].query and all("page" in p.query for p in pages[1:])

    client.beta.environments.archive(created[0])
    assert created[0] not in [e.id for e in client.beta.environments.list()]
    assert created[0] in [e.id for e in client.beta.environments.list(include_archived=True)]
    with pytest.raises(anthropic.BadRequestError, match="page"):
        client.beta.environments.list(page="page_not-a-cursor")
    assert contract.violations == []


def test_sessions_list_filters_by_agent_and_version(anthropic_contract):
    contract = anthropic_contract()
    client, environment, agent, first = setup(contract)
    client.beta.agents.update(agent.id, system="v2")
    second = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
    other = client.beta.agents.create(name="other", model=MODEL)
    client.beta.sessions.create(agent=other.id, environment_id=environment.id)

    assert [s.id for s in client.beta.sessions.list(agent_id=agent.id)] == [second.id, first.id]
    by_version = client.beta.sessions.list(agent_id=agent.id, agent_version=1)
    assert [s.id for s in by_version] == [first.id]
    client.beta.sessions.archive(first.id)
    assert [s.id for s in client.beta.sessions.list(agent_id=agent.id)] == [second.id]
    assert contract.violations == []


# --- rules ---------------------------------------------------------------------------------------


def test_the_documented_rules_are_enforced(anthropic_contract):
    contract = anthropic_contract()
    client = sdk(contract, max_retries=0)
    client.beta.environments.create(name="taken", config={"type": "cloud"})
    with pytest.raises(anthropic.ConflictError, match="taken"):
        client.beta.environments.create(name="taken", config={"type": "cloud"})

    limited = {"type": "limited", "allowed_hosts": ["pypi.org"]}
    with pytest.raises(anthropic.BadRequestError, match="allow_package_managers"):
        client.beta.environments.create(
            name="no-managers",
            config={"type": "cloud", "networking": limited, "packages": {"pip": ["x"]}},
        )
    with pytest.raises(anthropic.BadRequestError, match=r"allowed_hosts\[0\]"):
        client.beta.environments.create(
            name="scheme",
            config={
                "type": "cloud",
                "networking": {"type": "limited", "allowed_hosts": ["https://x.com"]},
            },
        )
    hosted = client.beta.environments.create(name="hosted", config={"type": "self_hosted"})
    with pytest.raises(anthropic.BadRequestError, match=r"config\.type"):
        client.beta.environments.update(hosted.id, config={"type": "cloud"})

    agent = client.beta.agents.create(name="rules", model=MODEL)
    with pytest.raises(anthropic.BadRequestError, match="not supported on self_hosted"):
        client.beta.sessions.create(
            agent=agent.id,
            environment_id=hosted.id,
            resources=[{"type": "file", "file_id": "file_011"}],
        )
    with pytest.raises(anthropic.BadRequestError, match="name"):
        client.beta.agents.create(name="x" * 257, model=MODEL)
    with pytest.raises(anthropic.BadRequestError, match="not referenced"):
        client.beta.agents.create(
            name="mcp", model=MODEL, mcp_servers=[{"type": "url", "name": "s", "url": "https://m"}]
        )
    with pytest.raises(anthropic.BadRequestError, match="metadata"):
        client.beta.agents.create(name="meta", model=MODEL, metadata={"k" * 65: "v"})
    client.beta.environments.archive(hosted.id)
    with pytest.raises(anthropic.BadRequestError, match="archived"):
        client.beta.sessions.create(agent=agent.id, environment_id=hosted.id)
    assert contract.violations == []


def test_bodies_the_sdk_types_refuse_are_400_and_violations(anthropic_contract):
    contract = anthropic_contract()
    client = sdk(contract)
    with pytest.raises(anthropic.BadRequestError) as unknown:
        client.beta.environments.create(
            name="image", config={"type": "cloud"}, extra_body={"image": "busybox"}
        )
    assert unknown.value.body["error"]["message"].startswith("image: unknown field")

    response = raw(
        contract,
        "POST",
        "/v1/environments?beta=true",
        json={"name": "nested", "config": {"type": "cloud", "image": "busybox"}},
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("config.image: unknown field")

    response = raw(contract, "POST", "/v1/agents", json={"name": 7, "model": MODEL})
    assert response.status_code == 400 and "name:" in response.json()["error"]["message"]
    response = raw(
        contract, "POST", "/v1/agents", json={"name": "a", "model": MODEL, "tools": [{"type": "x"}]}
    )
    assert "tools[0].type: must be one of" in response.json()["error"]["message"]
    assert [v.split(": ", 1)[1].split(":")[0] for v in contract.violations] == [
        "image",
        "config.image",
        "name",
        "tools[0].type",
    ]


# --- authentication and errors -------------------------------------------------------------------


def test_authentication_and_the_error_envelope(anthropic_contract):
    contract = anthropic_contract()
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(api_key="sk-ant-wrong", base_url=contract.url).beta.agents.list()

    response = raw(contract, "GET", "/v1/agents", headers={"anthropic-beta": "other-beta"})
    body = response.json()
    assert response.status_code == 400
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert body["request_id"].startswith("req_")
    assert response.headers["request-id"].startswith("req_")
    assert (
        raw(contract, "GET", "/v1/agents", headers={"anthropic-version": "2020"}).status_code == 400
    )

    client, environment, _, session = setup(contract, self_hosted=True)
    key = contract.environment_key(environment.id)
    bearer = {"authorization": f"Bearer {key}", "x-api-key": ""}
    # The environment key reads the session and its events, not the control plane.
    assert raw(contract, "GET", f"/v1/sessions/{session.id}", headers=bearer).status_code == 200
    assert (
        raw(contract, "GET", f"/v1/sessions/{session.id}/events", headers=bearer).status_code == 200
    )
    assert raw(contract, "GET", "/v1/agents", headers=bearer).status_code == 401
    # The work queue takes only the environment key.
    poll = f"/v1/environments/{environment.id}/work/poll"
    assert raw(contract, "GET", poll).status_code == 401
    assert raw(contract, "GET", poll, headers=bearer).status_code == 200
    other = client.beta.environments.create(name="other", config={"type": "self_hosted"})
    foreign = {"authorization": f"Bearer {contract.environment_key(other.id)}", "x-api-key": ""}
    assert raw(contract, "GET", poll, headers=foreign).status_code == 401
    assert raw(contract, "GET", f"/v1/sessions/{session.id}", headers=foreign).status_code == 401
    assert contract.violations == []


def test_a_429_with_retry_after_is_retried_by_the_sdk(anthropic_contract):
    contract = anthropic_contract()
    contract.fail("POST", r"^/v1/agents$", 429)
    agent = sdk(contract).beta.agents.create(name="retried", model=MODEL)
    calls = contract.calls("POST", r"^/v1/agents$")
    assert [c.status for c in calls] == [429, 200]
    assert agent.id in contract.agents

    contract.fail("GET", r"^/v1/agents/", 529, times=None)
    with pytest.raises(anthropic.OverloadedError) as failed:
        sdk(contract, max_retries=0).beta.agents.retrieve(agent.id)
    assert failed.value.status_code == 529
    assert failed.value.body["error"]["type"] == "overloaded_error"


# --- events --------------------------------------------------------------------------------------


def test_a_message_streams_running_echo_and_end_turn(anthropic_contract):
    contract = anthropic_contract()
    client, _, _, session = setup(contract)
    seen = stream_until_idle(client, session.id, "hello there")

    types = [e.type for e in seen]
    assert types[:2] == ["user.message", "session.status_running"]
    assert "span.model_request_start" in types and "span.model_request_end" in types
    messages = [e for e in seen if e.type == "agent.message"]
    assert len(messages) == 2
    assert "".join(b.text for m in messages for b in m.content) == "echo: hello there"
    assert seen[-1].stop_reason.type == "end_turn"
    assert all(e.id.startswith("sevt_") and e.processed_at is not None for e in seen)
    assert client.beta.sessions.retrieve(session.id).status == "idle"

    listed = list(client.beta.sessions.events.list(session.id))
    assert [e.id for e in listed] == [e.id for e in seen]
    # A stream opened now sees only what happens next.
    assert stream_until_idle(client, session.id, "again")[0].type == "user.message"
    assert contract.violations == []


def test_error_gives_a_session_error_then_retries_exhausted(anthropic_contract):
    contract = anthropic_contract()
    client, _, _, session = setup(contract)
    seen = stream_until_idle(client, session.id, "error")
    errors = [e for e in seen if e.type == "session.error"]
    assert [e.error.type for e in errors] == ["model_overloaded_error"]
    assert errors[0].error.retry_status.type == "terminal"
    assert seen[-1].stop_reason.type == "retries_exhausted"
    assert contract.violations == []


def test_confirm_requires_action_until_the_user_decides(anthropic_contract):
    contract = anthropic_contract()
    client, _, _, session = setup(contract)
    seen = stream_until_idle(client, session.id, "confirm: rm -rf build")
    use = next(e for e in seen if e.type == "agent.tool_use")
    assert (use.name, use.input, use.evaluated_permission) == (
        "bash",
        {"command": "rm -rf build"},
        "ask",
    )
    assert seen[-1].stop_reason.type == "requires_action"
    assert seen[-1].stop_reason.event_ids == [use.id]

    with client.beta.sessions.events.stream(session.id) as stream:
        client.beta.sessions.events.send(
            session.id,
            events=[{"type": "user.tool_confirmation", "tool_use_id": use.id, "result": "deny"}],
        )
        answer = []
        for event in stream:
            answer.append(event)
            if event.type == "session.status_idle":
                break
    text = [b.text for e in answer if e.type == "agent.message" for b in e.content]
    assert text == ["denied: rm -rf build"]
    assert answer[-1].stop_reason.type == "end_turn"
    with pytest.raises(anthropic.BadRequestError, match="tool_use_id"):
        client.beta.sessions.events.send(
            session.id,
            events=[{"type": "user.tool_confirmation", "tool_use_id": "sevt_x", "result": "allow"}],
        )
    assert contract.violations == []


# --- the self-hosted work queue ------------------------------------------------------------------


def worker_sdk(contract: Any, environment_id: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    return anthropic.Anthropic(
        api_key=None,
        auth_token=contract.environment_key(environment_id),
        base_url=contract.url,
        max_retries=0,
    )


def test_the_work_queue_protocol_step_by_step(anthropic_contract, monkeypatch):
    contract = anthropic_contract(lease_ttl=30)
    client, environment, _, session = setup(contract, self_hosted=True)
    work = worker_sdk(contract, environment.id, monkeypatch).beta.environments.work
    env = environment.id

    with pytest.raises(anthropic.BadRequestError, match="block_ms"):
        work.poll(env, block_ms=1000)
    assert work.stats(env).depth == 1
    item = work.poll(env, block_ms=10, anthropic_worker_id="worker-1")
    assert (item.state, item.data.type, item.data.id) == ("queued", "session", session.id)
    assert item.secret
    assert work.poll(env, block_ms=5) is None  # handed out, not yet reclaimable
    stats = work.stats(env)
    assert (stats.depth, stats.pending, stats.workers_polling) == (0, 1, 1)
    assert work.retrieve(item.id, environment_id=env).secret is None

    assert work.ack(item.id, environment_id=env).state == "starting"
    with pytest.raises(anthropic.ConflictError):
        work.ack(item.id, environment_id=env)
    beat = work.heartbeat(item.id, environment_id=env, expected_last_heartbeat="NO_HEARTBEAT")
    assert (beat.state, beat.lease_extended, beat.ttl_seconds) == ("active", True, 30)
    with pytest.raises(anthropic.APIStatusError) as stale:
        work.heartbeat(item.id, environment_id=env, expected_last_heartbeat="NO_HEARTBEAT")
    assert stale.value.status_code == 412
    assert stale.value.body["error"]["details"]["current_state"]["last_heartbeat"] == (
        beat.last_heartbeat
    )
    again = work.heartbeat(
        item.id,
        environment_id=env,
        expected_last_heartbeat=beat.last_heartbeat,
        desired_ttl_seconds=10,
    )
    assert again.last_heartbeat > beat.last_heartbeat and again.ttl_seconds == 10

    assert work.stop(item.id, environment_id=env).state == "stopping"
    told = work.heartbeat(item.id, environment_id=env, expected_last_heartbeat=again.last_heartbeat)
    assert (told.state, told.lease_extended) == ("stopping", False)
    assert work.stop(item.id, environment_id=env, force=True).state == "stopped"
    with pytest.raises(anthropic.ConflictError):
        work.stop(item.id, environment_id=env, force=True)

    # A message to a session whose item stopped queues a new one.
    client.beta.sessions.events.send(session.id, events=[user_message("wake up")])
    fresh = work.poll(env, block_ms=500)
    assert fresh.id != item.id and fresh.data.id == session.id
    assert [w["state"] for w in contract.work_for(session.id)] == ["stopped", "queued"]
    assert contract.violations == []


def test_the_sdk_environment_worker_runs_bash_for_a_run_message(anthropic_contract, tmp_path):
    from anthropic.lib.environments import EnvironmentWorker

    contract = anthropic_contract(lease_ttl=2)
    _, environment, _, session = setup(contract, self_hosted=True)
    key = contract.environment_key(environment.id)

    def finished() -> bool:
        texts = [
            block["text"]
            for event in contract.events(session.id)
            if event["type"] == "agent.message"
            for block in event["content"]
        ]
        items = contract.work_for(session.id)
        done = any("hello-from-bash" in text for text in texts)
        return done and all(item["state"] == "stopped" for item in items)

    async def scenario() -> bool:
        async_client = anthropic.AsyncAnthropic(api_key=contract.api_key, base_url=contract.url)
        worker = EnvironmentWorker(
            async_client,
            environment_id=environment.id,
            environment_key=key,
            workdir=tmp_path,
            max_idle=0.5,
        )
        task = asyncio.create_task(worker.run())
        try:
            await async_client.beta.sessions.events.send(
                session.id, events=[user_message("run: echo hello-from-bash")]
            )
            return await asyncio.to_thread(contract.wait_for, finished, 60)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await async_client.close()

    assert asyncio.run(scenario()), json.dumps(contract.events(session.id), indent=1)

    events = contract.events(session.id)
    use = next(e for e in events if e["type"] == "agent.tool_use")
    result = next(e for e in events if e["type"] == "user.tool_result")
    assert result["tool_use_id"] == use["id"] and not result.get("is_error")
    message = [e for e in events if e["type"] == "agent.message"][-1]
    assert message["content"][0]["text"].startswith("tool output: hello-from-bash")
    assert events[-1]["stop_reason"] == {"type": "end_turn"}

    # The worker spoke only with Bearer credentials, never the API key.
    worker_calls = contract.calls(None, r"/work/") + contract.calls("POST", r"/events$")[1:]
    assert worker_calls and all("x-api-key" not in c.headers for c in worker_calls)
    beats = contract.calls("POST", r"/heartbeat$")
    assert beats[0].query["expected_last_heartbeat"] == ["NO_HEARTBEAT"]
    assert all(b.status == 200 for b in beats)
    stop = contract.calls("POST", r"/stop$")[-1]
    assert stop.body == {"force": True}
    assert contract.violations == []


def test_handle_item_serves_an_item_claimed_by_someone_else(
    anthropic_contract, tmp_path, monkeypatch
):
    """The container's flow: a host polls and acks with the environment key, then hands the
    item (id, session, secret) to ``EnvironmentWorker.handle_item``; the session's history
    (sent before the worker attached) is reconciled and its tool call run."""
    from anthropic.lib.environments import EnvironmentWorker

    contract = anthropic_contract()
    client, environment, _, session = setup(contract, self_hosted=True)
    key = contract.environment_key(environment.id)
    client.beta.sessions.events.send(session.id, events=[user_message("run: echo from-history")])
    host = worker_sdk(contract, environment.id, monkeypatch)
    item = host.beta.environments.work.poll(environment.id, block_ms=500)
    host.beta.environments.work.ack(item.id, environment_id=environment.id)

    async def serve_item() -> None:
        async with anthropic.AsyncAnthropic(api_key=None, base_url=contract.url) as container:
            await EnvironmentWorker(container, workdir=tmp_path, max_idle=0.2).handle_item(
                work_id=item.id,
                environment_id=environment.id,
                session_id=session.id,
                environment_key=key,
                work_secret=item.secret,
            )

    asyncio.run(serve_item())
    texts = [
        block["text"]
        for event in contract.events(session.id)
        if event["type"] == "agent.message"
        for block in event["content"]
    ]
    assert texts == ["tool output: from-history"]
    assert contract.work[item.id]["state"] == "stopped"
    assert all("x-api-key" not in c.headers for c in contract.calls(None, r"/work/"))
    assert contract.violations == []


def test_overrides_and_initial_events_shape_a_session(anthropic_contract):
    contract = anthropic_contract()
    client, environment, agent, _ = setup(contract)
    session = client.beta.sessions.create(
        agent={"type": "agent_with_overrides", "id": agent.id, "system": "Override."},
        environment_id=environment.id,
        initial_events=[user_message("first")],
    )
    assert session.status == "running"
    assert session.agent.system == "Override." and session.agent.version == agent.version
    assert client.beta.agents.retrieve(agent.id).system is None  # no new agent version
    assert contract.wait_for(lambda: contract.sessions[session.id]["status"] == "idle")
    texts = [
        b.text
        for e in client.beta.sessions.events.list(session.id)
        if e.type == "agent.message"
        for b in e.content
    ]
    assert "".join(texts) == "echo: first"
    assert contract.violations == []


def test_answers_are_checked_against_the_sdk_models():
    from tests.anthropic_contract import answer_problems

    good = {"id": "env_1", "type": "environment_deleted"}
    assert answer_problems("BetaEnvironmentDeleteResponse", good) == []
    assert answer_problems("BetaEnvironmentDeleteResponse", {"type": "environment_deleted"})
    assert answer_problems("BetaEnvironmentDeleteResponse", {**good, "extra": 1}) == [
        "extra: unknown to the SDK"
    ]
