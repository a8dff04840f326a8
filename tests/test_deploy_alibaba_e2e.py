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

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.conftest import cli_json, new_pushed_agent, run_detached

pytestmark = pytest.mark.docker
ACR_REPOSITORY = "registry.cn-hangzhou.aliyuncs.com/agents/runtime-agent"


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
    state = new_pushed_agent(repo, registry, "agents/runtime-agent",
                             {"alibaba": {"region": "cn-hangzhou"}})
    contract.forward_to(run_detached(repo, state["reference"], running))

    for name in ("POLL_INTERVAL", "ENDPOINT_INTERVAL", "DELETE_INTERVAL"):
        monkeypatch.setattr(deploying, name, 0.05)
    runner = CliRunner()
    env = {**contract.env, "CI": "true"}
    image = f"{ACR_REPOSITORY}@{state['digest']}"

    deployed = cli_json(repo, env, "deploy", "alibaba", "--image", image)
    assert (deployed["action"], deployed["status"]) == ("create", "READY")
    runtime = contract.runtime("runtime-agent")
    assert runtime.spec["containerConfiguration"]["image"] == image
    url = deployed["endpoint"]["url"]  # the endpoint's invocation URL
    assert [e.url for e in runtime.endpoints.values()] == [url]
    assert deployed["invoke_url"] == f"{url}/responses"
    again = cli_json(repo, env, "deploy", "alibaba", "--image", image)
    assert (again["action"], again["changed"]) == ("unchanged", False)

    status = cli_json(repo, env, "status", "alibaba")
    assert status["exists"] and status["status"] == "READY"
    assert [e["url"] for e in status["endpoints"]] == [url]

    answer = runner.invoke(cli, ["invoke", "--target", "alibaba", "-C", str(repo), "hello"],
                           env=env)
    assert answer.exit_code == 0, answer.output
    assert "hello" in answer.stdout
    assert contract.invocations

    deleted = cli_json(repo, env, "delete", "alibaba", "--yes")
    assert deleted["deleted"] and deleted["endpoints_deleted"]
    assert contract.violations == []
