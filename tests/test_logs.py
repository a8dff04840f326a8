"""`actk logs`: the local container's logs, Foundry's log streams (against the Foundry contract
server), an Anthropic session's events (against the Anthropic contract server), and a clear
message where a target offers no log API (AgentRun, Foundry v1 without a session)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tests.deploying import write_repo
from tests.foundry_contract import Agent, Container, Version
from toolkit.cli import cli
from toolkit.logs import event_line, parse_since

AGENT = "support-agent"


def actk(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, ["logs", *args], env=env or {}, catch_exceptions=False)


# --- --since --------------------------------------------------------------------------------------


NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "expected"), [
    ("90s", NOW - timedelta(seconds=90)),
    ("10m", NOW - timedelta(minutes=10)),
    ("2h", NOW - timedelta(hours=2)),
    ("1d", NOW - timedelta(days=1)),
    ("2026-05-01T11:00:00Z", datetime(2026, 5, 1, 11, tzinfo=UTC)),
    ("2026-05-01T11:00:00", datetime(2026, 5, 1, 11, tzinfo=UTC)),
    ("1777629600", datetime.fromtimestamp(1777629600, UTC)),
])
def test_since_takes_durations_times_and_unix_seconds(text: str, expected: datetime):
    assert parse_since(text, NOW) == expected


def test_an_unreadable_since_says_what_it_takes():
    result = actk("--since", "yesterday")
    assert result.exit_code == 2
    assert "--since 'yesterday'" in result.stderr and "10m" in result.stderr


def test_json_and_follow_together_are_refused():
    result = actk("--json", "--follow")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"] == "UsageError"


# --- local ----------------------------------------------------------------------------------------


class FakeContainer:
    def __init__(self, name: str, image: str, created: str, chunks: list[bytes]) -> None:
        self.name = name
        self.labels = {"dev.actk.managed": "true", "dev.actk.image": image}
        self.attrs = {"Created": created}
        self.chunks = chunks
        self.asked: dict[str, Any] = {}

    def logs(self, **kwargs: Any) -> Any:
        self.asked = kwargs
        return iter(self.chunks)


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """A docker-py stand-in holding the containers `managed_containers` would list."""
    containers: list[FakeContainer] = []

    def listing(all: bool, filters: dict[str, Any]) -> list[FakeContainer]:
        assert filters == {"label": ["dev.actk.managed=true"], "status": "running"}
        return containers

    client = SimpleNamespace(containers=SimpleNamespace(list=listing, get=None))
    monkeypatch.setattr("toolkit.engine.docker_client", lambda *a, **k: client)
    return SimpleNamespace(client=client, containers=containers)


def test_local_follows_the_newest_actk_run_container_of_this_agent(
        tmp_path: Path, engine: SimpleNamespace):
    mine = FakeContainer("actk-run-support-agent-abc123", "reg.io/support-agent:v1",
                         "2026-05-01T10:00:00Z", [b"line one\nline ", b"two\n", b"last"])
    newer_other = FakeContainer("actk-run-other-def456", "reg.io/other:v1",
                                "2026-05-01T11:00:00Z", [b"not mine\n"])
    smoke = FakeContainer("actk-smoke-support-agent-aaaaaa", "reg.io/support-agent:v1",
                          "2026-05-01T12:00:00Z", [b"smoke\n"])
    engine.containers.extend([mine, newer_other, smoke])
    repo = write_repo(tmp_path, {"name": AGENT, "image": {"repository": "reg.io/support-agent"}},
                      pushed=None)
    result = actk("-C", str(repo), "--follow", "--tail", "20", "--since", "10m")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["line one", "line two", "last"]
    assert mine.asked["follow"] is True and mine.asked["tail"] == 20
    assert abs(mine.asked["since"] - (time.time() - 600)) < 60


def test_local_without_an_actk_run_container_says_how_to_start_one(
        tmp_path: Path, engine: SimpleNamespace):
    result = actk("-C", str(tmp_path))
    assert result.exit_code == 5
    assert "no running container started by `actk run`" in result.stderr
    assert "actk run --detach" in result.stderr


@pytest.mark.docker
def test_local_prints_a_detached_runs_logs_from_the_engine(
        request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    from tests import images
    from tests.conftest import actk as actk_process

    image = images.good_image(request.config, tmp_path_factory)
    started = actk_process("run", image, "--detach", "--port", "0", "--json")
    assert started.returncode == 0, started.stderr
    info = json.loads(started.stdout)
    try:
        assert actk_process("invoke", "--url", info["url"], "hi").returncode == 0
        shown = actk_process("logs", "--container", info["name"], "--tail", "50", "--verbose")
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.strip(), "the container wrote nothing"
        assert "/responses" in shown.stdout  # the request it just served
        assert "engine: GET /v" in shown.stderr and "/logs?" in shown.stderr
    finally:
        for container in images.containers_named(info["name"]):
            container.remove(force=True)


# --- azure ----------------------------------------------------------------------------------------


def azure_repo(tmp_path: Path, contract: Any, *, deployed: str | None = None) -> Path:
    data = {"name": AGENT, "model": {"provider": "echo", "name": "echo-1"},
            "targets": {"azure": {"project_endpoint": contract.endpoint, "api": contract.api}}}
    repo = write_repo(tmp_path / "repo", data, pushed=None)
    if deployed:
        (repo / ".actk").mkdir(exist_ok=True)
        (repo / ".actk" / "state.json").write_text(
            json.dumps({"azure": {"agent_name": AGENT, "version": deployed}}))
    return repo


def add_versions(contract: Any, count: int, *, running: bool = True) -> None:
    agent = contract.agents.setdefault(AGENT, Agent(AGENT))
    for number in range(1, count + 1):
        container = Container(status="Running" if running else "Stopped")
        agent.versions[str(number)] = Version(AGENT, str(number), {}, None, {}, number,
                                              status="active", container=container)
    agent.next_version = count + 1


def test_azure_preview_streams_the_deployed_versions_container_log(tmp_path: Path,
                                                                   foundry: Any):
    contract = foundry(api="2025-11-15-preview")
    add_versions(contract, 2)
    contract.add_logs(AGENT, "1", [f"v1 line {n}" for n in range(5)])
    contract.add_logs(AGENT, "2", ["v2 line"])
    repo = azure_repo(tmp_path, contract, deployed="1")
    result = actk("--target", "azure", "--tail", "3", "-C", str(repo), env=contract.env)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["v1 line 2", "v1 line 3", "v1 line 4"]
    (call,) = contract.calls("GET", ":logstream")
    assert call.path == f"/agents/{AGENT}/versions/1/containers/default:logstream"
    assert call.query == {"api-version": "2025-11-15-preview", "kind": "console",
                          "follow": "false", "tail": "3"}
    assert contract.violations == []


def test_azure_preview_reads_the_latest_version_and_the_system_log(tmp_path: Path,
                                                                   foundry: Any):
    contract = foundry(api="2025-11-15-preview")
    add_versions(contract, 2)
    contract.add_logs(AGENT, "2", ["pulling image", "probe ok"], kind="system")
    repo = azure_repo(tmp_path, contract)
    result = actk("--target", "azure", "--kind", "system", "--follow", "--json", "-C", str(repo),
                  env=contract.env)
    assert result.exit_code == 2  # --json with --follow
    result = actk("--target", "azure", "--kind", "system", "--json", "-C", str(repo),
                  env=contract.env)
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert (answer["version"], answer["lines"]) == ("2", ["pulling image", "probe ok"])
    assert contract.calls("GET", ":logstream")[-1].query["kind"] == "system"


def test_azure_follow_asks_the_stream_to_stay_open_and_prints_as_lines_come(
        tmp_path: Path, foundry: Any):
    contract = foundry(api="2025-11-15-preview")
    add_versions(contract, 1)
    contract.add_logs(AGENT, "1", ["one", "two"])
    repo = azure_repo(tmp_path, contract, deployed="1")
    result = actk("--target", "azure", "--follow", "-C", str(repo), env=contract.env)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["one", "two"]
    assert contract.calls("GET", ":logstream")[0].query["follow"] == "true"


def test_azure_preview_tail_above_300_is_refused_before_any_call(tmp_path: Path, foundry: Any):
    contract = foundry(api="2025-11-15-preview")
    repo = azure_repo(tmp_path, contract, deployed="1")
    result = actk("--target", "azure", "--tail", "301", "-C", str(repo), env=contract.env)
    assert result.exit_code == 2
    assert "1 to 300 lines" in result.stderr
    assert contract.requests == []


def test_azure_preview_container_not_running_points_at_application_insights(
        tmp_path: Path, foundry: Any):
    contract = foundry(api="2025-11-15-preview")
    add_versions(contract, 1, running=False)
    repo = azure_repo(tmp_path, contract, deployed="1")
    result = actk("--target", "azure", "-C", str(repo), env=contract.env)
    assert result.exit_code == 9
    assert "HTTP 404" in result.stderr and "Application Insights" in result.stderr
    assert contract.token not in result.output


def test_azure_v1_streams_a_sessions_log_frames(tmp_path: Path, foundry: Any):
    contract = foundry(api="v1")
    add_versions(contract, 1)
    contract.add_logs(AGENT, "1", ["handling request", "answered in 12 ms"], session="sess_42")
    repo = azure_repo(tmp_path, contract, deployed="1")
    result = actk("--target", "azure", "--session", "sess_42", "-C", str(repo), env=contract.env)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["handling request", "answered in 12 ms"]
    (call,) = contract.calls("GET", ":logstream")
    assert call.path == f"/agents/{AGENT}/versions/1/sessions/sess_42:logstream"
    assert call.query == {"api-version": "v1"}


def test_azure_v1_without_a_session_says_where_the_logs_are(tmp_path: Path, foundry: Any):
    contract = foundry(api="v1")
    repo = azure_repo(tmp_path, contract, deployed="1")
    result = actk("--target", "azure", "-C", str(repo), env=contract.env)
    assert result.exit_code == 2
    assert "per session" in result.stderr
    assert "--session" in result.stderr and "Application Insights" in result.stderr
    assert contract.requests == []


def test_azure_since_is_refused_with_the_alternative(tmp_path: Path, foundry: Any):
    result = actk("--target", "azure", "--since", "1h", "-C", str(tmp_path))
    assert result.exit_code == 2 and "--tail" in result.stderr


# --- alibaba --------------------------------------------------------------------------------------


def alibaba_repo(tmp_path: Path, **alibaba: Any) -> Path:
    data = {"name": AGENT, "targets": {"alibaba": {"region": "cn-hangzhou", **alibaba}}}
    return write_repo(tmp_path, data, pushed=None)


def test_alibaba_names_the_sls_logstore_its_console_page_and_the_cli(tmp_path: Path):
    repo = alibaba_repo(tmp_path, log={"project": "agents-logs", "logstore": "support"})
    result = actk("--target", "alibaba", "-C", str(repo))
    assert result.exit_code == 2
    assert "AgentRun offers no log API" in result.stderr
    assert "SLS project agents-logs, logstore support (cn-hangzhou)" in result.stderr
    assert ("https://sls.console.aliyun.com/lognext/project/agents-logs/logsearch/support"
            in result.stderr)
    assert "aliyun sls GetLogs --project agents-logs --logstore support" in result.stderr


def test_alibaba_without_a_log_store_says_how_to_configure_one(tmp_path: Path):
    result = actk("--target", "alibaba", "-C", str(alibaba_repo(tmp_path)))
    assert result.exit_code == 2
    assert "targets.alibaba.log is not set" in result.stderr
    assert "log: {project:" in result.stderr


# --- anthropic ------------------------------------------------------------------------------------


def test_anthropic_prints_the_recorded_sessions_events(tmp_path: Path, anthropic_contract: Any):
    from tests.test_deploy_anthropic import actk as deploy_actk
    from tests.test_deploy_anthropic import api, make_repo
    from toolkit.cloud.anthropic import user_message

    contract = anthropic_contract(page_size=2)
    repo = make_repo(tmp_path / "repo")
    deployed = deploy_actk(contract, repo, "deploy", "anthropic", "--json")
    assert deployed.exit_code == 0, deployed.output
    session = json.loads((repo / ".actk" / "state.json").read_text())["anthropic"]["session_id"]
    api(contract, "POST", f"/v1/sessions/{session}/events", {"events": [user_message("hi")]})
    deadline = time.monotonic() + 10
    while not any(e["type"] == "session.status_idle" for e in contract.events(session)):
        assert time.monotonic() < deadline, contract.events(session)
        time.sleep(0.05)
    env = {"ANTHROPIC_API_KEY": contract.api_key, "ANTHROPIC_BASE_URL": contract.url}
    result = actk("--target", "anthropic", "--json", "-C", str(repo), env=env)
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["session"] == session
    assert len(answer["lines"]) == len(contract.events(session))  # every page was read
    kinds = [line.split(" ")[1] for line in answer["lines"]]
    assert kinds[0] == "user.message" and "agent.message" in kinds
    assert any(line.endswith("user.message hi") for line in answer["lines"])
    assert contract.api_key not in result.output
    tail = actk("--target", "anthropic", "--tail", "1", "-C", str(repo), env=env)
    assert tail.stdout.splitlines() == answer["lines"][-1:]


def test_anthropic_without_a_session_says_to_deploy_or_name_one(tmp_path: Path):
    data = {"name": AGENT, "targets": {"anthropic": {"environment": {"type": "cloud"}}}}
    repo = write_repo(tmp_path, data, pushed=None)
    result = actk("--target", "anthropic", "-C", str(repo), env={"ANTHROPIC_API_KEY": "x" * 10})
    assert result.exit_code == 2
    assert "--session" in result.stderr and "actk deploy anthropic" in result.stderr


def test_an_event_line_shows_time_type_and_text():
    assert event_line({"type": "agent.message", "processed_at": "2026-05-01T12:00:00Z",
                       "content": [{"type": "text", "text": "echo: hi\nthere"}]}) == (
        "2026-05-01T12:00:00Z agent.message echo: hi\\nthere")
    assert event_line({"type": "session.status_idle", "stop_reason": {"type": "end_turn"}}) == (
        "session.status_idle end_turn")
    assert event_line({"type": "session.error", "error": {"message": "boom"}}) == (
        "session.error boom")
