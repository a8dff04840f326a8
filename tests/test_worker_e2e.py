"""`actk deploy anthropic` on a self-hosted environment, then `actk worker`: the session's tool
calls run inside the agent's own image, with a real engine, a real container and a real bash.

    actk new (anthropic target) -> actk build -> actk deploy anthropic (self_hosted)
    -> actk worker (subprocess: polls the contract server's queue, one container per item)
    -> actk invoke --target anthropic "run: <command>" -> the command's output comes back

The contract server (tests/anthropic_contract.py) is the work queue and the session; its
scripted model asks for a ``bash`` tool call for messages starting with ``run:``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import (
    BASE_IMAGE,
    actk,
    build_args_for_tests,
    cli_json,
    commit_all,
    succeed,
)
from toolkit.worker import WORK_LABEL

pytestmark = pytest.mark.usefixtures("docker_engine")


@pytest.fixture(scope="module")
def tool_agent(tmp_path_factory: pytest.TempPathFactory, docker_engine: Any) -> Path:
    """An agent repo with the anthropic target on a self-hosted environment, built locally."""
    repo = tmp_path_factory.mktemp("worker") / "tool-agent"
    succeed(actk("new", str(repo), "--defaults", "--data", f"base_image={BASE_IMAGE}",
                 "--data", "deploy_targets=anthropic"))
    manifest = yaml.safe_load((repo / "agent.yaml").read_text())
    manifest["targets"]["anthropic"]["environment"] = {"type": "self_hosted",
                                                       "name": "tool-agent-e2e"}
    (repo / "agent.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    commit_all(repo)
    succeed(actk("build", str(repo), *build_args_for_tests()))
    return repo


class ContainerWatch:
    """Inspects every work-item container while it exists: what the engine was given."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.seen: dict[str, dict[str, Any]] = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self.done.wait(0.2):
            for container in self.engine.containers.list(
                    all=True, filters={"label": WORK_LABEL}):
                if container.id not in self.seen:
                    self.seen[container.id] = container.attrs

    def __enter__(self) -> ContainerWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()


@pytest.fixture
def deployed(tool_agent: Path, anthropic_contract: Any) -> Iterator[tuple[Any, dict[str, str]]]:
    """A contract server, and the agent deployed to it by `actk deploy anthropic`."""
    contract = anthropic_contract()
    env = {"ANTHROPIC_API_KEY": contract.api_key, "ANTHROPIC_BASE_URL": contract.url}
    (tool_agent / ".actk" / "state.json").unlink(missing_ok=True)
    cli_json(tool_agent, env, "deploy", "anthropic")
    yield contract, env
    assert contract.violations == []


def start_worker(repo: Path, env: dict[str, str], key: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "toolkit", "worker", "-C", str(repo), "--json", *args],
        env={**os.environ, **env, "ANTHROPIC_ENVIRONMENT_KEY": key, "CI": "true"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )


def test_a_bash_tool_call_runs_inside_the_agent_image(
    tool_agent: Path, deployed: tuple[Any, dict[str, str]], docker_engine: Any
) -> None:
    contract, env = deployed
    state = json.loads((tool_agent / ".actk" / "state.json").read_text())["anthropic"]
    assert state["environment_type"] == "self_hosted"
    session_id = state["session_id"]
    key = contract.environment_key(state["environment_id"])

    with ContainerWatch(docker_engine) as watch:
        worker = start_worker(tool_agent, env, key, "--once", "--max-idle", "1")
        try:
            answer = cli_json(
                tool_agent, env, "invoke", "--target", "anthropic",
                "run: id -u; test -f /app/agent.json && echo in-the-image; "
                "touch /workspace/made-here && echo workspace-writable",
            )
            stdout, stderr = worker.communicate(timeout=180)
        finally:
            if worker.poll() is None:
                worker.kill()
    assert worker.returncode == 0, stderr

    # The command ran in the agent's image, as its non-root user, in its workdir.
    text = answer["output_text"]
    assert "tool output:" in text
    assert "10001" in text and "in-the-image" in text and "workspace-writable" in text
    assert answer["stop_reason"] == "end_turn"

    report = json.loads(stdout)
    assert report["served"] == 1 and report["failed"] == 0
    assert report["items"][0]["session_id"] == session_id
    assert report["stopped_by"] == "max-items"
    (work,) = contract.work_for(session_id)
    assert work["state"] == "stopped"  # released by the worker inside the container
    assert contract.calls("POST", rf"/work/{work['id']}/heartbeat")  # the lease was kept

    # The key reached the container on stdin only: not in its configuration, not printed.
    assert watch.seen, "no work-item container was seen"
    for attrs in watch.seen.values():
        config = json.dumps(attrs)
        assert key not in config
        assert attrs["Config"]["Cmd"] == ["worker"]
        assert "ANTHROPIC_ENVIRONMENT_KEY" not in config
    assert key not in stdout + stderr
    assert docker_engine.containers.list(all=True, filters={"label": WORK_LABEL}) == []


def test_sigterm_releases_the_item_and_removes_its_container(
    tool_agent: Path, deployed: tuple[Any, dict[str, str]], docker_engine: Any
) -> None:
    import httpx

    contract, env = deployed
    state = json.loads((tool_agent / ".actk" / "state.json").read_text())["anthropic"]
    session_id = state["session_id"]
    worker = start_worker(tool_agent, env, contract.environment_key(state["environment_id"]))
    try:
        # A long tool call, started the way any client would send a message.
        httpx.post(
            f"{contract.url}/v1/sessions/{session_id}/events?beta=true",
            headers={"x-api-key": contract.api_key, "anthropic-version": "2023-06-01",
                     "anthropic-beta": "managed-agents-2026-04-01"},
            json={"events": [{"type": "user.message",
                              "content": [{"type": "text", "text": "run: sleep 120"}]}]},
        ).raise_for_status()
        assert contract.wait_for(lambda: any(
            event["type"] == "agent.tool_use" for event in contract.events(session_id)), 60)
        # The container is serving the item (and runs the sleep) before the signal comes.
        assert contract.wait_for(lambda: bool(contract.calls("POST", r"/heartbeat$")), 60)
        worker.send_signal(signal.SIGTERM)
        stdout, stderr = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, stderr
    report = json.loads(stdout)
    assert report["stopped_by"] == "signal" and report["served"] == 1
    assert all(w["state"] == "stopped" for w in contract.work_for(session_id))
    assert docker_engine.containers.list(all=True, filters={"label": WORK_LABEL}) == []
