"""`actk deploy alibaba` end to end: new -> build -> push (a real local registry) -> deploy
alibaba (the AgentRun contract server, every request's signature re-checked) -> status ->
invoke (the contract server forwards the endpoint's invocations to the pushed image, running)
-> delete.

AgentRun pulls only from Alibaba's registries, whose host names cannot point at a local
registry: the image is pushed to the local registry and deployed as the same digest under the
ACR host the runtime would pull from (`--image`). Deploy, status, invoke and delete run
in-process through the CLI, with the status polls shortened.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from tests.conftest import BASE_IMAGE, actk, build_args_for_tests, run

pytestmark = pytest.mark.docker
ACR_REPOSITORY = "registry.cn-hangzhou.aliyuncs.com/agents/runtime-agent"


def succeed(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture
def running() -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    import docker

    client = docker.from_env()
    for name in names:
        with contextlib.suppress(docker.errors.NotFound):
            client.containers.get(name).remove(force=True)


def test_new_build_push_deploy_status_invoke_delete(
    tmp_path: Path,
    htpasswd_registry: Any,
    agentrun: Any,
    running: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import toolkit.deploy.alibaba as deploying
    from toolkit.cli import cli

    registry, contract = htpasswd_registry, agentrun(region="cn-hangzhou", ready_polls=1)
    repo = tmp_path / "runtime-agent"
    succeed(actk("new", str(repo), "--defaults", "--data", f"base_image={BASE_IMAGE}"))
    manifest = yaml.safe_load((repo / "agent.yaml").read_text())
    manifest["image"] = {"repository": f"{registry.host}/agents/runtime-agent", "tag": "{git_sha}"}
    manifest.setdefault("targets", {})["alibaba"] = {"region": "cn-hangzhou"}
    (repo / "agent.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "new agent"]):
        succeed(run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo))

    credentials = {
        "ACTK_REGISTRY_USERNAME": registry.username,
        "ACTK_REGISTRY_PASSWORD": registry.password,
    }
    succeed(actk("build", str(repo), "--push", *build_args_for_tests(), env=credentials))
    state = json.loads((repo / ".actk" / "state.json").read_text())["image"]
    started = json.loads(
        succeed(
            actk("run", state["reference"], "-C", str(repo), "--detach", "--port", "0", "--json")
        ).stdout
    )
    running.append(started["name"])
    contract.forward_to(started["url"])

    for name in ("POLL_INTERVAL", "ENDPOINT_INTERVAL", "DELETE_INTERVAL"):
        monkeypatch.setattr(deploying, name, 0.05)
    runner = CliRunner()
    env = {**contract.env, "CI": "true"}
    image = f"{ACR_REPOSITORY}@{state['digest']}"

    def cli_json(*args: str) -> dict[str, Any]:
        result = runner.invoke(cli, [*args, "-C", str(repo), "--json"], env=env)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    deployed = cli_json("deploy", "alibaba", "--image", image)
    assert (deployed["action"], deployed["status"]) == ("create", "READY")
    runtime = contract.runtime("runtime-agent")
    assert runtime.spec["containerConfiguration"]["image"] == image
    url = deployed["endpoint"]["url"]  # the endpoint's invocation URL
    assert [e.url for e in runtime.endpoints.values()] == [url]
    assert deployed["invoke_url"] == f"{url}/responses"
    again = cli_json("deploy", "alibaba", "--image", image)
    assert (again["action"], again["changed"]) == ("unchanged", False)

    status = cli_json("status", "alibaba")
    assert status["exists"] and status["status"] == "READY"
    assert [e["url"] for e in status["endpoints"]] == [url]

    answer = runner.invoke(cli, ["invoke", "--target", "alibaba", "-C", str(repo), "hello"],
                           env=env)
    assert answer.exit_code == 0, answer.output
    assert "hello" in answer.stdout
    assert contract.invocations

    deleted = cli_json("delete", "alibaba", "--yes")
    assert deleted["deleted"] and deleted["endpoints_deleted"]
    assert contract.violations == []
