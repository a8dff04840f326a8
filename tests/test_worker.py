"""`actk worker`'s loop and what it hands each container, without an engine or a network.

The end-to-end flow (a real work queue, a real container running a real bash tool call) is in
tests/test_worker_e2e.py.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from toolkit import worker as worker_module
from toolkit.cloud.anthropic import AnthropicAPIError
from toolkit.console import Console
from toolkit.errors import CloudError, UsageError
from toolkit.state import write_section
from toolkit.worker import (
    RepoFacts,
    Worker,
    WorkerOptions,
    container_plan,
    secret_line,
    where_to_poll,
)

KEY = "sk-ant-oat01-environment-key-for-tests"


def work_item(number: int, *, kind: str = "session", secret: str | None = "ws-secret") -> dict:
    return {
        "id": f"work_{number:03d}",
        "type": "work",
        "environment_id": "env_01",
        "data": {"type": kind, "id": f"sesn_{number:03d}"},
        "state": "queued",
        "secret": secret,
    }


class FakeQueue:
    """The queue as the loop sees it: items handed out in order, then empty polls."""

    environment_id = "env_01"

    def __init__(self, answers: list[Any]) -> None:
        self.answers = list(answers)
        self.acked: list[str] = []
        self.stopped: list[str] = []
        self.polls = 0

    def poll(self, worker_id: str) -> dict | None:
        self.polls += 1
        answer = self.answers.pop(0) if self.answers else None
        if isinstance(answer, Exception):
            raise answer
        return answer

    def ack(self, work_id: str) -> None:
        self.acked.append(work_id)

    def stop(self, work_id: str, *, force: bool = True) -> None:
        self.stopped.append(work_id)


class FakeContainer:
    """Stands in for ItemContainer: records what it was given, ends with ``exit_code``."""

    made: list[FakeContainer] = []
    exit_code = 0

    def __init__(self, engine: Any, plan: Any, secret: bytes, show: Any) -> None:
        self.plan, self.secret, self.show = plan, secret, show
        self.id = f"c{len(FakeContainer.made):011d}"
        FakeContainer.made.append(self)

    def run(self) -> int:
        self.show(f"handling with {json.loads(self.secret)['environment_key']}")
        return FakeContainer.exit_code

    def stop(self) -> None:
        pass


@pytest.fixture
def fake_containers(monkeypatch: pytest.MonkeyPatch) -> type[FakeContainer]:
    FakeContainer.made = []
    FakeContainer.exit_code = 0
    monkeypatch.setattr(worker_module, "ItemContainer", FakeContainer)
    monkeypatch.setattr(worker_module, "EMPTY_POLL_PAUSE", 0.0)
    return FakeContainer


def run_loop(queue: FakeQueue, options: WorkerOptions, capsys: pytest.CaptureFixture[str]
             ) -> tuple[worker_module.WorkerReport, str]:
    ticks = iter(range(10_000))
    loop = Worker(queue, engine=None, console=Console(), image="agent:latest", key=KEY,  # type: ignore[arg-type]
                  base_url="https://api.anthropic.com", options=options,
                  now=lambda: float(next(ticks)))
    report = loop.run(threading.Event())
    return report, capsys.readouterr().err


def test_each_session_item_is_acknowledged_and_served_in_its_own_container(
    fake_containers: type[FakeContainer], capsys: pytest.CaptureFixture[str]
) -> None:
    queue = FakeQueue([work_item(1), None, work_item(2)])
    report, _ = run_loop(queue, WorkerOptions(max_items=2), capsys)
    assert queue.acked == ["work_001", "work_002"]
    assert [item.session_id for item in report.items] == ["sesn_001", "sesn_002"]
    assert [item.exit_code for item in report.items] == [0, 0]
    assert report.stopped_by == "max-items"
    assert queue.stopped == []  # a container that ends well released its own item


def test_the_key_and_the_item_secret_travel_on_stdin_only(
    fake_containers: type[FakeContainer], capsys: pytest.CaptureFixture[str]
) -> None:
    _, printed = run_loop(FakeQueue([work_item(1)]), WorkerOptions(max_items=1), capsys)
    (container,) = fake_containers.made
    assert json.loads(container.secret) == {"environment_key": KEY, "work_secret": "ws-secret"}
    assert KEY not in json.dumps(container.plan.environment)
    assert "ws-secret" not in json.dumps(container.plan.environment)
    assert KEY not in printed  # the container's own lines are scrubbed too
    assert "handling with [REDACTED]" in printed


def test_an_item_that_is_not_a_session_is_released_unserved(
    fake_containers: type[FakeContainer], capsys: pytest.CaptureFixture[str]
) -> None:
    queue = FakeQueue([work_item(1, kind="deployment")])
    report, printed = run_loop(queue, WorkerOptions(idle_exit=3), capsys)
    assert report.items == [] and queue.acked == []
    assert queue.stopped == ["work_001"]
    assert "not a session" in printed


def test_a_failed_container_releases_its_item_and_is_reported(
    fake_containers: type[FakeContainer], capsys: pytest.CaptureFixture[str]
) -> None:
    fake_containers.exit_code = 3
    queue = FakeQueue([work_item(1)])
    report, printed = run_loop(queue, WorkerOptions(max_items=1), capsys)
    assert report.items[0].exit_code == 3
    assert report.to_dict()["failed"] == 1
    assert queue.stopped == ["work_001"]
    assert "exited with code 3" in printed


def test_transient_poll_failures_back_off_and_recover(
    fake_containers: type[FakeContainer], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waits: list[float] = []
    monkeypatch.setattr(threading.Event, "wait", lambda self, timeout=None: waits.append(timeout))
    queue = FakeQueue([
        AnthropicAPIError("poll for work: HTTP 500 api_error: boom", hint=None, status=500),
        CloudError("cannot reach the Anthropic API"),
        work_item(1),
    ])
    report, printed = run_loop(queue, WorkerOptions(max_items=1), capsys)
    assert len(report.items) == 1
    assert waits[:2] == [2.0, 4.0]  # doubled per failure in a row
    assert "polling again in 2 s" in printed


@pytest.mark.parametrize("status", [401, 403, 404])
def test_a_refused_key_or_unknown_environment_stops_the_worker(
    fake_containers: type[FakeContainer], capsys: pytest.CaptureFixture[str], status: int
) -> None:
    queue = FakeQueue([AnthropicAPIError("refused", hint="generate a key", status=status)])
    with pytest.raises(AnthropicAPIError):
        run_loop(queue, WorkerOptions(), capsys)


def test_idle_exit_stops_once_the_queue_stayed_empty(
    fake_containers: type[FakeContainer], capsys: pytest.CaptureFixture[str]
) -> None:
    queue = FakeQueue([])
    report, _ = run_loop(queue, WorkerOptions(idle_exit=5), capsys)
    assert report.stopped_by == "idle" and report.items == []
    assert queue.polls >= 2


def test_the_container_plan_names_the_item_and_reaches_a_local_api_from_the_host_network(
    tmp_path: Path,
) -> None:
    plan = container_plan(work_item(7), image="agent@sha256:" + "a" * 64,
                          base_url="http://127.0.0.1:9999", max_idle=5, output=tmp_path)
    assert plan.environment == {
        "ANTHROPIC_ENVIRONMENT_ID": "env_01",
        "ANTHROPIC_WORK_ID": "work_007",
        "ANTHROPIC_SESSION_ID": "sesn_007",
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:9999",
        "WORKER_MAX_IDLE": "5",
    }
    assert plan.network_mode == "host"
    assert plan.workspace == tmp_path / "sesn_007"
    remote = container_plan(work_item(7), image="agent", base_url="https://api.anthropic.com",
                            max_idle=60, output=None)
    assert remote.network_mode is None and remote.workspace is None


def test_secret_line_is_one_json_line() -> None:
    line = secret_line(KEY, work_item(1, secret=None))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {"environment_key": KEY, "work_secret": None}


def test_the_environment_comes_from_the_flag_then_the_variable_then_the_deploy(
    tmp_path: Path,
) -> None:
    write_section(tmp_path, "anthropic", {"environment_id": "env_recorded",
                                          "environment_type": "self_hosted",
                                          "api_base": "http://127.0.0.1:8000"})
    env = {"ANTHROPIC_ENVIRONMENT_ID": "env_variable"}
    facts = RepoFacts.read(tmp_path)
    assert where_to_poll(facts, WorkerOptions(environment_id="env_flag"), env)[0] == "env_flag"
    assert where_to_poll(facts, WorkerOptions(), env)[0] == "env_variable"
    assert where_to_poll(facts, WorkerOptions(), {}) == ("env_recorded", "http://127.0.0.1:8000")
    assert where_to_poll(facts, WorkerOptions(), {"ANTHROPIC_BASE_URL": "https://x.test/"}
                         )[1] == "https://x.test"


def test_a_cloud_environment_has_no_queue_to_serve(tmp_path: Path) -> None:
    write_section(tmp_path, "anthropic", {"environment_id": "env_1",
                                          "environment_type": "cloud"})
    with pytest.raises(UsageError, match="cloud environment") as raised:
        where_to_poll(RepoFacts.read(tmp_path), WorkerOptions(), {})
    assert "self_hosted" in (raised.value.hint or "")


def test_nothing_deployed_and_nothing_given_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no environment to serve"):
        where_to_poll(RepoFacts.read(tmp_path), WorkerOptions(), {})


def test_plain_http_is_refused_beyond_this_machine(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="ANTHROPIC_BASE_URL"):
        where_to_poll(RepoFacts.read(tmp_path), WorkerOptions(environment_id="env_1"),
                      {"ANTHROPIC_BASE_URL": "http://api.example.com"})


def test_without_a_key_the_worker_explains_where_keys_come_from(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="ANTHROPIC_ENVIRONMENT_KEY") as raised:
        worker_module.run_worker(tmp_path, WorkerOptions(environment_id="env_1"), Console(), {})
    assert "Console" in (raised.value.hint or "")
