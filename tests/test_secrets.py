"""One test runs every command with known fake secrets and finds none of them anywhere it can
look: stdout, stderr, --json output, --verbose HTTP logs, the container's log, every file of
the generated repository (.actk/ state included; .git's compressed objects aside), the Docker
config directory, and every member of every layer of the built image (``docker save``).

The secrets: the registry password (htpasswd registry), the Azure access token (Foundry
contract), the Alibaba access key secret (AgentRun contract), the Anthropic API key and an
environment key (managed-agents contract), and the value of ``runtime.secrets``
(``OPENAI_API_KEY``), which goes to the cloud runtimes as the agent's environment (the contract
servers receive it, as they must) and into the local container with ``-e``, but nowhere else.

The commands: new, check, build (the one image build), push, smoke, run --detach, invoke,
and deploy (human with --verbose, and --json), status and delete for azure, alibaba and
anthropic, against the contract servers, with a fake clock for their waits.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from tests.conftest import BASE_IMAGE, build_args_for_tests, commit_all, succeed
from tests.deploying import FakeClock
from toolkit.cli import cli
from toolkit.deploy import alibaba as alibaba_deploy
from toolkit.deploy import anthropic as anthropic_deploy
from toolkit.deploy import azure as azure_deploy

pytestmark = pytest.mark.docker

ALIBABA_IMAGE = "registry.cn-hangzhou.aliyuncs.com/team/secret-agent@sha256:" + "ab" * 32


class Scan:
    """Everything a command printed or wrote, by where it came from."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.seen: list[tuple[str, bytes]] = []

    def add(self, where: str, data: str | bytes) -> None:
        self.seen.append((where, data.encode() if isinstance(data, str) else data))

    def leaks(self) -> list[str]:
        return [f"the {name} in {where}" for where, data in self.seen
                for name, value in self.values.items() if value.encode() in data]


def actk(scan: Scan, label: str, *args: str, cwd: Path, env: dict[str, str]
         ) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "toolkit", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    scan.add(f"`actk {label}` stdout", done.stdout)
    scan.add(f"`actk {label}` stderr", done.stderr)
    return succeed(done)


def in_process(scan: Scan, label: str, args: list[str], env: dict[str, str]) -> Any:
    result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
    scan.add(f"`actk {label}` stdout", result.stdout)
    scan.add(f"`actk {label}` stderr", result.stderr)
    assert result.exit_code == 0, f"actk {label}: exit {result.exit_code}\n{result.output}"
    return result


def image_members(image_id: str) -> list[tuple[str, bytes]]:
    """(name, content) of every file in ``docker save`` and in each of its layer tarballs."""
    saved = subprocess.run(["docker", "save", image_id], capture_output=True, timeout=300,
                           check=True).stdout
    found: list[tuple[str, bytes]] = []
    with tarfile.open(fileobj=io.BytesIO(saved)) as outer:
        for member in outer.getmembers():
            if not member.isfile():
                continue
            data = outer.extractfile(member).read()  # type: ignore[union-attr]
            try:
                with tarfile.open(fileobj=io.BytesIO(data)) as layer:
                    for inner in layer.getmembers():
                        if inner.isfile():
                            content = layer.extractfile(inner).read()  # type: ignore[union-attr]
                            found.append((f"{member.name}:{inner.name}", content))
                found.append((f"{member.name} (headers)", b""))
            except tarfile.TarError:
                found.append((member.name, data))  # the config, manifest.json, repositories
    return found


def test_no_command_leaks_a_secret(
    tmp_path: Path, htpasswd_registry: Any, foundry: Any, agentrun: Any,
    anthropic_contract: Any, running: list[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeClock()
    for module in (azure_deploy, alibaba_deploy, anthropic_deploy):
        monkeypatch.setattr(module, "SYSTEM_CLOCK", fake.clock)
    registry = htpasswd_registry
    azure = foundry(api="v1", activation_polls=1,
                    token="azure-token-FAKE-" + secrets.token_hex(12))
    alibaba = agentrun(region="cn-hangzhou", ready_polls=1,
                       access_key_secret="alibaba-secret-FAKE-" + secrets.token_hex(12))
    anthropic = anthropic_contract(api_key="sk-ant-api03-FAKE-" + secrets.token_hex(12))
    values = {
        "registry password": registry.password,
        "Azure token": azure.token,
        "Alibaba access key secret": alibaba.access_key_secret,
        "Anthropic API key": anthropic.api_key,
        "Anthropic environment key": "sk-ant-oat01-FAKE-" + secrets.token_hex(12),
        "runtime secret (OPENAI_API_KEY)": "sk-proj-FAKE-" + secrets.token_hex(12),
    }
    scan = Scan(values)
    docker_config = tmp_path / "docker-config"
    docker_config.mkdir()
    env = {
        **os.environ,
        "DOCKER_CONFIG": str(docker_config),
        "ACTK_REGISTRY_USERNAME": registry.username,
        "ACTK_REGISTRY_PASSWORD": registry.password,
        **azure.env,
        **alibaba.env,
        "ANTHROPIC_API_KEY": anthropic.api_key,
        "ANTHROPIC_BASE_URL": anthropic.url,
        "ANTHROPIC_ENVIRONMENT_KEY": values["Anthropic environment key"],
        "OPENAI_API_KEY": values["runtime secret (OPENAI_API_KEY)"],
    }

    # new, check, build, push
    repo = tmp_path / "secret-agent"
    actk(scan, "new", "new", str(repo), "--defaults", "--data", f"base_image={BASE_IMAGE}",
         cwd=tmp_path, env=env)
    manifest = yaml.safe_load((repo / "agent.yaml").read_text())
    manifest["image"] = {"repository": f"{registry.host}/team/secret-agent", "tag": "{git_sha}"}
    manifest.setdefault("runtime", {})["secrets"] = ["OPENAI_API_KEY"]
    manifest["targets"] = {
        "azure": {"project_endpoint": azure.endpoint, "api": "v1"},
        "alibaba": {"region": "cn-hangzhou"},
        "anthropic": {"environment": {"type": "cloud"}, "agent": {"model": "claude-sonnet-4-5"}},
    }
    (repo / "agent.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    commit_all(repo)
    actk(scan, "check --json", "check", "--json", cwd=repo, env=env)
    built = json.loads(actk(scan, "build --json", "build", "--json", "--verbose",
                            *build_args_for_tests(), cwd=repo, env=env).stdout)
    pushed = json.loads(actk(scan, "push --json", "push", "--json", "--verbose",
                             cwd=repo, env=env).stdout)
    actk(scan, "push", "push", cwd=repo, env=env)

    # the local container: smoke, run, invoke, its log
    reference = pushed["reference"]
    actk(scan, "smoke --json", "smoke", reference, "--json", "-e", "OPENAI_API_KEY",
         cwd=repo, env=env)
    started = json.loads(actk(scan, "run --detach", "run", reference, "--detach", "--port", "0",
                              "--json", "-e", "OPENAI_API_KEY", cwd=repo, env=env).stdout)
    running.append(started["name"])
    actk(scan, "invoke --json", "invoke", "hello", "--url", started["url"], "--json",
         "--verbose", cwd=repo, env=env)
    actk(scan, "invoke", "invoke", "hello", "--url", started["url"], cwd=repo, env=env)
    logs = subprocess.run(["docker", "logs", started["name"]], capture_output=True, timeout=60)
    scan.add("the container's log", logs.stdout + logs.stderr)

    # every target: deploy (human, verbose), deploy --json, status, delete
    for target, extra in (("azure", []), ("alibaba", ["--image", ALIBABA_IMAGE]),
                          ("anthropic", [])):
        base = ["-C", str(repo)]
        in_process(scan, f"deploy {target} --dry-run",
                   ["deploy", target, "--dry-run", *extra, *base], env)
        in_process(scan, f"deploy {target} --verbose",
                   ["deploy", target, "--verbose", *extra, *base], env)
        in_process(scan, f"deploy {target} --json", ["deploy", target, "--json", *extra, *base],
                   env)
        in_process(scan, f"status {target} --json", ["status", target, "--json", *base], env)
        in_process(scan, f"delete {target} --json --yes",
                   ["delete", target, "--json", "--yes", *base], env)
    assert azure.violations == [] and alibaba.violations == [] and anthropic.violations == []

    # what was written: the repository (state included), the Docker config, the image
    for path in sorted(repo.rglob("*")):
        if path.is_file() and ".git" not in path.relative_to(repo).parts:
            scan.add(str(path.relative_to(repo)), path.read_bytes())
    assert (repo / ".actk" / "state.json").is_file()
    for path in docker_config.rglob("*"):
        if path.is_file():
            scan.add(f"the Docker config's {path.name}", path.read_bytes())
    image_id = built.get("image_id") or built.get("id") or reference
    members = image_members(image_id)
    assert len(members) > 100
    for name, content in members:
        scan.add(f"image member {name}", content)

    # the values did travel where they must, and the scan finds them when they are there
    # (else the test proves nothing)
    canary = Scan(values)
    canary.add("the environment", json.dumps(env))
    assert len(canary.leaks()) == len(values)
    assert values["runtime secret (OPENAI_API_KEY)"] in json.dumps(
        [r.json for r in azure.requests if r.json])
    assert scan.leaks() == []
