"""`actk deploy azure` end to end: new -> build -> push (a real local registry) -> deploy azure
(the Foundry contract server) -> status -> invoke (the contract server forwards the Responses
call to the pushed image, running) -> delete.

The deploy, status, invoke and delete commands run in-process through the CLI, with the GA
version-status poll shortened (the service's 10 s interval is a constant of the module).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.conftest import cli_json, new_pushed_agent, run_detached

pytestmark = pytest.mark.docker


def test_new_build_push_deploy_status_invoke_delete(
    tmp_path: Path,
    htpasswd_registry: Any,
    foundry: Any,
    running: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import toolkit.deploy.azure
    from toolkit.cli import cli

    registry, contract = htpasswd_registry, foundry(api="v1", activation_polls=1)
    repo = tmp_path / "foundry-agent"
    pushed = new_pushed_agent(repo, registry, "team/foundry-agent",
                              {"azure": {"project_endpoint": contract.endpoint}})["reference"]

    # The service would pull and run the image; here it runs locally, from the pushed digest.
    contract.forward_responses_to(run_detached(repo, pushed, running))

    monkeypatch.setattr(toolkit.deploy.azure, "POLL_INTERVAL", 0.05)
    runner = CliRunner()
    env = {**contract.env, "CI": "true"}

    deployed = cli_json(repo, env, "deploy", "azure")
    agent = contract.agents["foundry-agent"]
    assert list(agent.versions) == ["1"]
    definition = agent.versions["1"].definition
    assert definition["container_configuration"]["image"] == pushed
    assert deployed["version"] == "1" and deployed["status"] == "active"
    again = cli_json(repo, env, "deploy", "azure")
    assert (again["action"], again["changed"]) == ("unchanged", False)
    assert list(agent.versions) == ["1"]

    status = cli_json(repo, env, "status", "azure")
    assert [(v["version"], v["status"]) for v in status["versions"]] == [("1", "active")]

    answer = runner.invoke(cli, ["invoke", "--target", "azure", "-C", str(repo), "hello"], env=env)
    assert answer.exit_code == 0, answer.output
    assert "hello" in answer.stdout
    assert any(c.path.endswith("/endpoint/protocols/openai/responses") for c in contract.requests)

    # The invoke opened a session: the service refuses the delete until --force ends it.
    refused = runner.invoke(cli, ["delete", "azure", "-C", str(repo), "--yes", "--json"], env=env)
    assert refused.exit_code == 9 and "--force" in json.loads(refused.stdout)["hint"]
    cli_json(repo, env, "delete", "azure", "--yes", "--force")
    assert "foundry-agent" not in contract.agents
    assert contract.violations == []
