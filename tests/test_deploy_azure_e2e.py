"""`actk deploy azure` end to end: new -> build -> push (a real local registry) -> deploy azure
(the Foundry contract server) -> status -> invoke (the contract server forwards the Responses
call to the pushed image, running) -> delete.

The deploy, status, invoke and delete commands run in-process through the CLI, with the GA
version-status poll shortened (the service's 10 s interval is a constant of the module).
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


def succeed(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture
def running() -> Iterator[list[str]]:
    """Names of containers to remove at the end."""
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
    foundry: Any,
    running: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import toolkit.deploy.azure
    from toolkit.cli import cli

    registry, contract = htpasswd_registry, foundry(api="v1", activation_polls=1)
    repo = tmp_path / "foundry-agent"
    succeed(actk("new", str(repo), "--defaults", "--data", f"base_image={BASE_IMAGE}"))
    manifest = yaml.safe_load((repo / "agent.yaml").read_text())
    manifest["image"] = {"repository": f"{registry.host}/team/foundry-agent", "tag": "{git_sha}"}
    manifest.setdefault("targets", {})["azure"] = {"project_endpoint": contract.endpoint}
    (repo / "agent.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "new agent"]):
        succeed(run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo))

    credentials = {
        "ACTK_REGISTRY_USERNAME": registry.username,
        "ACTK_REGISTRY_PASSWORD": registry.password,
    }
    succeed(actk("build", str(repo), "--push", *build_args_for_tests(), env=credentials))
    pushed = json.loads((repo / ".actk" / "state.json").read_text())["image"]["reference"]

    # The service would pull and run the image; here it runs locally, from the pushed digest.
    started = json.loads(
        succeed(actk("run", pushed, "-C", str(repo), "--detach", "--port", "0", "--json")).stdout
    )
    running.append(started["name"])
    contract.forward_responses_to(started["url"])

    monkeypatch.setattr(toolkit.deploy.azure, "POLL_INTERVAL", 0.05)
    runner = CliRunner()
    env = {**contract.env, "CI": "true"}

    def cli_json(*args: str) -> dict[str, Any]:
        result = runner.invoke(cli, [*args, "-C", str(repo), "--json"], env=env)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    deployed = cli_json("deploy", "azure")
    agent = contract.agents["foundry-agent"]
    assert list(agent.versions) == ["1"]
    definition = agent.versions["1"].definition
    assert definition["container_configuration"]["image"] == pushed
    assert deployed["version"] == "1" and deployed["status"] == "active"
    again = cli_json("deploy", "azure")
    assert (again["action"], again["changed"]) == ("unchanged", False)
    assert list(agent.versions) == ["1"]

    status = cli_json("status", "azure")
    assert [(v["version"], v["status"]) for v in status["versions"]] == [("1", "active")]

    answer = runner.invoke(cli, ["invoke", "--target", "azure", "-C", str(repo), "hello"], env=env)
    assert answer.exit_code == 0, answer.output
    assert "hello" in answer.stdout
    assert any(c.path.endswith("/endpoint/protocols/openai/responses") for c in contract.requests)

    # The invoke opened a session: the service refuses the delete until --force ends it.
    refused = runner.invoke(cli, ["delete", "azure", "-C", str(repo), "--yes", "--json"], env=env)
    assert refused.exit_code == 9 and "--force" in json.loads(refused.stdout)["hint"]
    cli_json("delete", "azure", "--yes", "--force")
    assert "foundry-agent" not in contract.agents
    assert contract.violations == []
