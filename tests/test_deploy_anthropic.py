"""`actk deploy|status|invoke|delete anthropic`, run in-process (click's CliRunner) against the
managed-agents contract server (tests/anthropic_contract.py), which checks every body against
the official SDK's types and the service's rules: ``violations`` stays empty, and no output of
any command holds the API key.

What the flow must do: create the environment, agent and session once and record them; send no
write when nothing changed; update the agent in place (a new version, and a new session pinned
to it) when the manifest changes; find everything by name when .actk/state.json is missing (a
CI runner); ride out 429 and a 409 on the environment's name; stream an invocation to its
idle, and surface session errors and pending actions; archive and delete idempotently.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner, Result

from tests.anthropic_contract import AnthropicContract
from tests.deploying import write_repo
from toolkit.cli import cli
from toolkit.cloud import anthropic as anthropic_client

PUSHED = "registry.example.com/support/support-agent@sha256:" + "cd" * 32
OTHER = "registry.example.com/support/support-agent@sha256:" + "ef" * 32
WRITES = ("POST", "DELETE")
STATE_KEYS = {"environment_id", "environment_name", "environment_type", "agent_id", "agent_name",
              "agent_version", "session_id", "session_title", "image", "api_base", "deployed_at"}
REQUIREMENTS = """\
uvicorn>=0.30,<1
uvloop>=0.19; sys_platform != "win32"
anyio>=4; python_version < "3.11"
pyyaml>=6.0  # reads agent.yaml; image: build only
httpx>=0.27
"""


def manifest_data(**anthropic: Any) -> dict[str, Any]:
    return {
        "name": "support-agent",
        "description": "Answers support questions",
        "instructions": "You are a concise support agent.",
        "metadata": {"team": "support"},
        "model": {"provider": "anthropic", "name": "claude-sonnet-4-5"},
        "targets": {"anthropic": {"environment": {"type": "cloud"}, **anthropic}},
    }


def make_repo(root: Path, data: dict[str, Any] | None = None) -> Path:
    write_repo(root, data or manifest_data(), pushed=PUSHED, platform="linux/amd64")
    (root / "requirements.txt").write_text(REQUIREMENTS)
    return root


def set_manifest(root: Path, data: dict[str, Any]) -> None:
    (root / "agent.yaml").write_text(yaml.safe_dump(data))


def actk(contract: AnthropicContract, root: Path, *args: str, **env: str | None) -> Result:
    """One `actk` command in-process against ``contract``: its output never holds the key, and
    every body it sent passed the SDK's types and the service's rules."""
    result = CliRunner().invoke(
        cli, [*args, "-C", str(root)],
        env={"ANTHROPIC_API_KEY": contract.api_key, "ANTHROPIC_BASE_URL": contract.url,
             "ANTHROPIC_ENVIRONMENT_KEY": None, **env},
        catch_exceptions=False,
    )
    assert contract.api_key not in result.output
    assert contract.violations == []
    return result


def as_json(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def api(contract: AnthropicContract, method: str, path: str, body: Any = None
        ) -> dict[str, Any]:
    """A call made by someone else (another tool, the Console) with the organization's key."""
    headers = {"x-api-key": contract.api_key, "anthropic-version": "2023-06-01",
               "anthropic-beta": "managed-agents-2026-04-01"}
    answer = httpx.request(method, f"{contract.url}{path}?beta=true", headers=headers,
                           json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def writes(contract: AnthropicContract, since: int = 0) -> list[tuple[str, str, int]]:
    return [(r.method, r.path, r.status) for r in contract.requests[since:]
            if r.method in WRITES]


def state(root: Path) -> dict[str, Any]:
    return json.loads((root / ".actk" / "state.json").read_text())["anthropic"]


@pytest.fixture
def contract(anthropic_contract: Any) -> AnthropicContract:
    return anthropic_contract(page_size=2)


# --- deploy ---------------------------------------------------------------------------------------


def test_a_first_deploy_creates_environment_agent_and_session_and_records_them(
        tmp_path: Path, contract: AnthropicContract):
    root = make_repo(tmp_path)
    result = actk(contract, root, "deploy", "anthropic")
    assert result.exit_code == 0, result.output
    assert [(m, p) for m, p, _ in writes(contract)] == [
        ("POST", "/v1/environments"), ("POST", "/v1/agents"), ("POST", "/v1/sessions")]

    (environment,) = contract.environments.values()
    assert environment["name"] == "support-agent"
    assert environment["config"]["type"] == "cloud"
    assert environment["config"]["networking"]["type"] == "unrestricted"
    assert environment["config"]["packages"]["pip"] == ["uvicorn<1,>=0.30", "uvloop>=0.19",
                                                        "httpx>=0.27"]
    (create_agent,) = contract.calls("POST", r"^/v1/agents$")
    assert create_agent.body == {
        "name": "support-agent", "model": "claude-sonnet-4-5",
        "system": "You are a concise support agent.", "description": "Answers support questions",
        "tools": [{"type": "agent_toolset_20260401"}], "mcp_servers": [],
        "metadata": {"team": "support"}}
    (create_session,) = contract.calls("POST", r"^/v1/sessions$")
    recorded = state(root)
    assert create_session.body == {
        "agent": {"type": "agent", "id": recorded["agent_id"], "version": 1},
        "environment_id": environment["id"],
        "title": "support-agent sha256:cdcdcdcdcdcd",
        "metadata": {"actk_image": PUSHED}}

    assert set(recorded) == STATE_KEYS
    assert (recorded["environment_id"], recorded["environment_type"], recorded["agent_version"],
            recorded["image"], recorded["api_base"]) == (
        environment["id"], "cloud", 1, PUSHED, contract.url)
    assert recorded["session_id"] in contract.sessions
    assert contract.api_key not in (root / ".actk" / "state.json").read_text()
    assert "session " + recorded["session_id"] in result.output
    assert contract.violations == []


def test_a_second_deploy_creates_nothing(tmp_path: Path, contract: AnthropicContract):
    root = make_repo(tmp_path)
    first = as_json(actk(contract, root, "deploy", "anthropic", "--json"))
    before = len(contract.requests)
    again = as_json(actk(contract, root, "deploy", "anthropic", "--json"))
    assert writes(contract, before) == []
    assert (again["action"], again["changed"]) == ("unchanged", False)
    assert [again[kind]["action"] for kind in ("environment", "agent", "session")] == [
        "unchanged", "unchanged", "reuse"]
    assert again["session"]["id"] == first["session"]["id"]
    assert contract.violations == []


def test_a_changed_system_prompt_makes_a_new_agent_version_and_a_session_pinned_to_it(
        tmp_path: Path, contract: AnthropicContract):
    root = make_repo(tmp_path)
    first = as_json(actk(contract, root, "deploy", "anthropic", "--json"))
    data = manifest_data()
    data["instructions"] = "You are a thorough support agent."
    data["metadata"] = {"owner": "ada"}
    set_manifest(root, data)
    before = len(contract.requests)

    second = as_json(actk(contract, root, "deploy", "anthropic", "--json"))
    agent_id = first["agent"]["id"]
    assert [(m, p) for m, p, _ in writes(contract, before)] == [
        ("POST", f"/v1/agents/{agent_id}"), ("POST", "/v1/sessions")]
    (update,) = contract.calls("POST", rf"^/v1/agents/{agent_id}$")
    assert update.body == {"system": "You are a thorough support agent.",
                           "metadata": {"owner": "ada", "team": None}, "version": 1}
    assert (second["action"], second["version"], second["agent"]["changes"]) == (
        "create", "2", ["system", "metadata"])  # create: the session is new
    assert second["agent"]["action"] == "update"
    assert contract.agents[agent_id][-1]["metadata"] == {"owner": "ada"}
    new_session = contract.sessions[second["session"]["id"]]
    assert second["session"]["id"] != first["session"]["id"]
    assert new_session["agent"]["version"] == 2
    assert state(root)["agent_version"] == 2 and state(root)["session_id"] == new_session["id"]
    assert contract.violations == []


def test_a_new_image_updates_the_sessions_metadata_in_place(tmp_path: Path,
                                                            contract: AnthropicContract):
    root = make_repo(tmp_path)
    first = as_json(actk(contract, root, "deploy", "anthropic", "--json"))
    before = len(contract.requests)
    second = as_json(actk(contract, root, "deploy", "anthropic", "--image", OTHER, "--json"))
    session_id = first["session"]["id"]
    assert [(m, p) for m, p, _ in writes(contract, before)] == [
        ("POST", f"/v1/sessions/{session_id}")]
    assert second["session"] == {**second["session"], "id": session_id, "action": "update"}
    assert contract.sessions[session_id]["metadata"] == {"actk_image": OTHER}
    assert contract.sessions[session_id]["title"] == "support-agent sha256:efefefefefef"
    assert contract.violations == []


def test_without_the_state_file_everything_is_found_by_name(tmp_path: Path,
                                                            contract: AnthropicContract,
                                                            monkeypatch: pytest.MonkeyPatch):
    root = make_repo(tmp_path)
    monkeypatch.setattr(anthropic_client, "PAGE_LIMIT", 2)
    for number in range(3):  # others' resources, so the lists take more than one page
        api(contract, "POST", "/v1/environments", {"name": f"other-{number}",
                                                    "config": {"type": "cloud"}})
        api(contract, "POST", "/v1/agents", {"name": f"other-{number}",
                                              "model": "claude-haiku-4-5"})
    first = as_json(actk(contract, root, "deploy", "anthropic", "--image", PUSHED, "--json"))
    (root / ".actk" / "state.json").unlink()  # a CI runner that never saw the first deploy
    before = len(contract.requests)

    again = as_json(actk(contract, root, "deploy", "anthropic", "--image", PUSHED, "--json"))
    assert writes(contract, before) == []
    lists = [(r.path, r.query.get("page") is not None) for r in contract.requests[before:]
             if r.method == "GET"]
    assert ("/v1/environments", True) in lists and ("/v1/agents", True) in lists  # paged
    assert [again[kind]["id"] for kind in ("environment", "agent", "session")] == [
        first[kind]["id"] for kind in ("environment", "agent", "session")]
    assert state(root)["session_id"] == first["session"]["id"]
    assert contract.violations == []


def test_a_429_with_retry_after_is_waited_for(tmp_path: Path, contract: AnthropicContract):
    root = make_repo(tmp_path)
    contract.fail("POST", r"^/v1/agents$", 429, times=2, headers={"retry-after": "0"})
    result = actk(contract, root, "deploy", "anthropic")
    assert result.exit_code == 0, result.output
    assert [r.status for r in contract.calls("POST", r"^/v1/agents$")] == [429, 429, 200]
    assert len(contract.agents) == 1
    assert contract.violations == []


def test_a_429_that_lasts_is_reported_with_the_request_id(tmp_path: Path,
                                                          contract: AnthropicContract):
    root = make_repo(tmp_path)
    contract.fail("GET", r"^/v1/environments$", 429, times=None)
    result = actk(contract, root, "deploy", "anthropic")
    assert result.exit_code == 9
    assert "HTTP 429 rate_limit_error" in result.output and "request_id req_" in result.output
    assert "after 4 attempts" in result.output and "rate limited" in result.output
    assert writes(contract) == []


def test_a_409_on_the_environment_create_is_resolved_by_looking_it_up(
        tmp_path: Path, contract: AnthropicContract):
    root = make_repo(tmp_path)
    # someone else creates the environment between actk's lookup and its create
    theirs = api(contract, "POST", "/v1/environments", {"name": "support-agent",
                                                         "config": {"type": "cloud"}})
    contract.fail("GET", r"^/v1/environments$", 200, body={"data": [], "next_page": None})

    result = as_json(actk(contract, root, "deploy", "anthropic", "--json"))
    assert [r.status for r in contract.calls("POST", r"^/v1/environments$")] == [200, 409]
    assert result["environment"]["id"] == theirs["id"]
    assert result["environment"]["action"] == "update"  # their config had no packages
    assert len(contract.environments) == 1
    assert contract.environments[theirs["id"]]["config"]["packages"]["pip"] == [
        "uvicorn<1,>=0.30", "uvloop>=0.19", "httpx>=0.27"]
    assert contract.sessions[result["session"]["id"]]["environment_id"] == theirs["id"]
    assert contract.violations == []


def test_an_agent_changed_meanwhile_is_a_409_explained(tmp_path: Path,
                                                       contract: AnthropicContract):
    root = make_repo(tmp_path)
    actk(contract, root, "deploy", "anthropic")
    data = manifest_data()
    data["instructions"] = "Something else."
    set_manifest(root, data)
    contract.fail("POST", r"^/v1/agents/agent_", 409)
    result = actk(contract, root, "deploy", "anthropic")
    assert result.exit_code == 9
    assert "HTTP 409" in result.output and "request_id req_" in result.output
    assert "someone else updated it meanwhile" in result.output


def test_an_environment_does_not_change_type(tmp_path: Path, contract: AnthropicContract):
    root = make_repo(tmp_path)
    actk(contract, root, "deploy", "anthropic")
    before = len(contract.requests)
    set_manifest(root, manifest_data(environment={"type": "self_hosted"}))
    result = actk(contract, root, "deploy", "anthropic")
    assert result.exit_code == 9
    assert "is cloud, but agent.yaml asks for self_hosted" in result.output
    assert "give targets.anthropic.environment.name another name" in result.output
    assert writes(contract, before) == []


def test_limited_networking_with_packages_allows_the_package_managers(
        tmp_path: Path, contract: AnthropicContract):
    data = manifest_data(environment={
        "type": "cloud", "networking": {"type": "limited",
                                        "allowed_hosts": ["api.example.com", "*.example.org"]},
        "packages": {"apt": ["ripgrep"], "npm": ["typescript@5.6.3"]}})
    root = make_repo(tmp_path, data)
    assert actk(contract, root, "deploy", "anthropic").exit_code == 0
    (environment,) = contract.environments.values()
    assert environment["config"]["networking"] == {
        "type": "limited", "allowed_hosts": ["api.example.com", "*.example.org"],
        "allow_mcp_servers": False, "allow_package_managers": True}
    assert environment["config"]["packages"]["apt"] == ["ripgrep"]
    before = len(contract.requests)
    assert actk(contract, root, "deploy", "anthropic").exit_code == 0
    assert writes(contract, before) == []
    assert contract.violations == []


def test_a_self_hosted_deploy_says_how_to_run_the_worker_and_status_shows_the_queue(
        tmp_path: Path, contract: AnthropicContract):
    root = make_repo(tmp_path, manifest_data(environment={"type": "self_hosted"}))
    result = actk(contract, root, "deploy", "anthropic")
    assert result.exit_code == 0, result.output
    assert "ANTHROPIC_ENVIRONMENT_KEY=... actk worker" in result.output
    assert "Generate environment key" in result.output
    (environment,) = contract.environments.values()
    assert environment["config"] == {"type": "self_hosted"}

    key = contract.environment_key(environment["id"])
    report = as_json(actk(contract, root, "status", "anthropic", "--json",
                          ANTHROPIC_ENVIRONMENT_KEY=key))
    assert report["environment"]["type"] == "self_hosted"
    assert report["work_queue"]["type"] == "work_queue_stats"
    assert report["work_queue"]["depth"] == 1  # the session's work item waits for a worker
    (stats,) = contract.calls("GET", r"/work/stats$")
    assert stats.headers["authorization"] == f"Bearer {key}"
    assert "x-api-key" not in stats.headers
    human = actk(contract, root, "status", "anthropic", ANTHROPIC_ENVIRONMENT_KEY=key)
    assert "work queue: 1 waiting" in human.output and key not in human.output
    assert contract.violations == []


# --- dry run and --json ---------------------------------------------------------------------------


def test_a_dry_run_sends_nothing_and_shows_no_key(tmp_path: Path, contract: AnthropicContract):
    root = make_repo(tmp_path)
    result = actk(contract, root, "deploy", "anthropic", "--dry-run")
    assert result.exit_code == 0, result.output
    assert contract.requests == []
    assert f"POST {contract.url}/v1/environments?beta=true" in result.output
    assert f"POST {contract.url}/v1/agents/{{agent_id}}?beta=true" in result.output
    assert "x-api-key: [REDACTED]" in result.output
    assert '"actk_image": "' + PUSHED in result.output
    assert "dry run: nothing was sent" in result.output

    payload = as_json(actk(contract, root, "deploy", "anthropic", "--dry-run", "--json"))
    assert contract.requests == []
    assert {request["headers"]["x-api-key"] for request in payload["requests"]} == {
        "[REDACTED]"}
    assert not (root / ".actk" / "state.json").read_text().count("anthropic")


def test_json_output_holds_everything_but_the_key(tmp_path: Path, contract: AnthropicContract):
    root = make_repo(tmp_path)
    payload = as_json(actk(contract, root, "deploy", "anthropic", "--json"))
    assert payload["target"] == "anthropic" and payload["api_base"] == contract.url
    assert payload["image"] == PUSHED and payload["version"] == "1"
    assert contract.api_key not in json.dumps(payload)


# --- invoke ---------------------------------------------------------------------------------------


def test_invoke_streams_the_agents_text_and_ends_with_end_turn(tmp_path: Path,
                                                               contract: AnthropicContract):
    root = make_repo(tmp_path)
    session_id = as_json(actk(contract, root, "deploy", "anthropic", "--json"))["session"]["id"]
    result = actk(contract, root, "invoke", "--target", "anthropic", "hello there")
    assert result.exit_code == 0, result.output
    assert result.stdout == "echo: hello there\n"

    paths = [(r.method, r.path) for r in contract.requests]
    stream = paths.index(("GET", f"/v1/sessions/{session_id}/events/stream"))
    assert stream < paths.index(("POST", f"/v1/sessions/{session_id}/events"))
    (sent,) = contract.calls("POST", rf"^/v1/sessions/{session_id}/events$")
    assert sent.body == {"events": [{"type": "user.message",
                                     "content": [{"type": "text", "text": "hello there"}]}]}

    payload = as_json(actk(contract, root, "invoke", "--target", "anthropic", "again", "--json"))
    assert (payload["stop_reason"], payload["status"], payload["session_id"]) == (
        "end_turn", "completed", session_id)
    assert payload["output_text"] == "echo: again"
    assert contract.violations == []


def test_a_session_error_exits_7_with_its_message(tmp_path: Path, contract: AnthropicContract):
    root = make_repo(tmp_path)
    actk(contract, root, "deploy", "anthropic")
    result = actk(contract, root, "invoke", "--target", "anthropic", "error")
    assert result.exit_code == 7
    assert "session error model_overloaded_error" in result.output
    assert "retry_status terminal" in result.output
    assert "overloaded" in result.output  # the hint

    payload = json.loads(actk(contract, root, "invoke", "--target", "anthropic", "error",
                              "--json").stdout)
    assert (payload["error"], payload["exit_code"]) == ("InvokeError", 7)


def test_a_tool_waiting_for_confirmation_is_reported_as_requires_action(
        tmp_path: Path, contract: AnthropicContract):
    root = make_repo(tmp_path)
    actk(contract, root, "deploy", "anthropic")
    result = actk(contract, root, "invoke", "--target", "anthropic", "confirm: rm -rf build")
    assert result.exit_code == 0, result.output
    assert "waiting for your action on agent.tool_use sevt_" in result.output
    assert 'bash {"command": "rm -rf build"}' in result.output
    assert "requires_action" in result.output

    payload = as_json(actk(contract, root, "invoke", "--target", "anthropic", "confirm: ls",
                           "--json"))
    assert payload["stop_reason"] == "requires_action"
    (waiting,) = payload["waiting"]
    assert (waiting["name"], waiting["input"], waiting["evaluated_permission"]) == (
        "bash", {"command": "ls"}, "ask")


def test_invoke_before_a_deploy_says_deploy_first(tmp_path: Path, contract: AnthropicContract):
    root = make_repo(tmp_path)
    result = actk(contract, root, "invoke", "--target", "anthropic", "hello")
    assert result.exit_code == 7
    assert "actk deploy anthropic" in result.output


# --- status and delete ----------------------------------------------------------------------------


def test_status_shows_the_environment_the_agent_and_the_session(tmp_path: Path,
                                                                 contract: AnthropicContract):
    root = make_repo(tmp_path)
    deployed = as_json(actk(contract, root, "deploy", "anthropic", "--json"))
    report = as_json(actk(contract, root, "status", "anthropic", "--json"))
    assert report["environment"] == {**report["environment"], "exists": True, "type": "cloud",
                                     "id": deployed["environment"]["id"], "archived": False}
    assert report["agent"] == {**report["agent"], "exists": True, "version": 1,
                               "model": "claude-sonnet-4-5", "archived": False}
    assert report["session"] == {**report["session"], "exists": True, "status": "idle",
                                 "title": "support-agent sha256:cdcdcdcdcdcd"}
    assert report["work_queue"] is None
    human = actk(contract, root, "status", "anthropic")
    assert "version 1, model claude-sonnet-4-5" in human.output


def test_delete_archives_the_agent_and_explains_the_environment_and_can_run_again(
        tmp_path: Path, contract: AnthropicContract):
    root = make_repo(tmp_path)
    deployed = as_json(actk(contract, root, "deploy", "anthropic", "--json"))
    agent_id, environment_id = deployed["agent"]["id"], deployed["environment"]["id"]
    session_id = deployed["session"]["id"]

    first = as_json(actk(contract, root, "delete", "anthropic", "--yes", "--json"))
    assert first["agent"]["outcome"] == "archived"
    assert first["environment"]["outcome"] == "archived"
    assert "1 session(s) still reference it" in first["environment"]["why"]
    assert "--delete-sessions" in first["environment"]["why"]
    assert contract.agents[agent_id][-1]["archived_at"]
    assert contract.environments[environment_id]["archived_at"]
    assert session_id in contract.sessions

    again = as_json(actk(contract, root, "delete", "anthropic", "--yes", "--json"))
    assert (again["agent"]["outcome"], again["environment"]["outcome"]) == (
        "already archived", "already archived")

    human = actk(contract, root, "delete", "anthropic", "--yes", "--delete-sessions")
    assert human.exit_code == 0, human.output
    assert f"session {session_id}: deleted" in human.output
    assert "environment support-agent: deleted (no session references it)" in human.output
    assert session_id not in contract.sessions and environment_id not in contract.environments

    last = as_json(actk(contract, root, "delete", "anthropic", "--yes", "--delete-sessions",
                        "--json"))
    assert last["agent"]["outcome"] == "already archived"
    assert last["sessions"] == [{"id": session_id, "outcome": "already deleted"}]
    assert last["environment"]["outcome"] == "not found"
    assert state(root)["status"] == "deleted"
    assert contract.violations == []


def test_a_deploy_after_a_delete_starts_afresh(tmp_path: Path, contract: AnthropicContract):
    root = make_repo(tmp_path)
    first = as_json(actk(contract, root, "deploy", "anthropic", "--json"))
    actk(contract, root, "delete", "anthropic", "--yes", "--delete-sessions")
    again = as_json(actk(contract, root, "deploy", "anthropic", "--json"))
    assert [again[kind]["action"] for kind in ("environment", "agent", "session")] == [
        "create", "create", "create"]
    assert again["agent"]["id"] != first["agent"]["id"]
    assert contract.violations == []


def test_every_field_of_the_section_is_accepted_by_the_api(tmp_path: Path,
                                                           contract: AnthropicContract):
    section = {
        "environment": {
            "type": "cloud", "name": "support-env", "description": "the support sandbox",
            "metadata": {"cost-center": "42"},
            "networking": {"type": "limited", "allowed_hosts": ["api.example.com"],
                           "allow_mcp_servers": True},
            "packages": {"apt": ["jq"], "cargo": ["ripgrep@14.1.0"], "gem": ["rake:13.2.1"],
                         "go": ["golang.org/x/tools/gopls@latest"], "npm": ["typescript@5.6.3"],
                         "pip": ["rich==13.9.4"]},
        },
        "agent": {
            "name": "support-bot", "model": {"id": "claude-opus-4-6", "effort": "high",
                                             "speed": "standard"},
            "system": "Answer from the docs.", "description": "Support bot",
            "tools": [{"type": "agent_toolset_20260401",
                       "configs": [{"name": "web_search", "enabled": False}]},
                      {"type": "mcp_toolset", "mcp_server_name": "docs"},
                      {"type": "custom", "name": "lookup_order", "description": "Find an order",
                       "input_schema": {"type": "object",
                                        "properties": {"id": {"type": "string"}}}}],
            "mcp_servers": [{"type": "url", "name": "docs", "url": "https://mcp.example.com/mcp"}],
            "metadata": {"tier": "gold"},
        },
        "session": {"title": "support sandbox", "metadata": {"ticket": "SUP-1"}},
    }
    root = make_repo(tmp_path, manifest_data(**copy.deepcopy(section)))
    first = as_json(actk(contract, root, "deploy", "anthropic", "--json"))
    # Only what actk sent counts here: the contract server echoes a bare effort ("high") as a
    # string where the SDK's answer model wants {"type": "high"} (its own answer check).
    assert contract.violations == []
    assert first["agent"]["name"] == "support-bot"
    session = contract.sessions[first["session"]["id"]]
    assert session["title"] == "support sandbox"
    assert session["metadata"] == {"ticket": "SUP-1", "actk_image": PUSHED}
    before = len(contract.requests)
    again = as_json(actk(contract, root, "deploy", "anthropic", "--json"))
    assert writes(contract, before) == [] and again["changed"] is False
