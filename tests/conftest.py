"""Shared helpers: render the agent template and run commands the way users do."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

# Local stand-ins for the cloud services the toolkit talks to (see each module's docstring).
pytest_plugins = [
    "alibaba_contract",
    "tests.registries",
    "tests.foundry_contract",
    "tests.agentrun_contract",
    "tests.anthropic_contract",
]

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "templates" / "agent"


def render(destination: Path, **answers: Any) -> Path:
    """Render the agent template non-interactively, as `actk new --defaults` does."""
    import copier

    copier.run_copy(
        str(TEMPLATE), str(destination), data=answers, defaults=True, unsafe=False, quiet=True
    )
    return destination


def run(
    args: list[str],
    cwd: Path | None = None,
    timeout: float = 300,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command with no stdin (as CI does) and capture its output."""
    return subprocess.run(
        args,
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def actk(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "toolkit", *args], cwd=cwd, env=env)


@pytest.fixture(scope="session")
def default_render(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One default render (`actk new echo-agent --defaults`) shared by read-only tests."""
    return render(tmp_path_factory.mktemp("default") / "echo-agent")


# --- a real Docker engine -------------------------------------------------------------------
# `.ci/run` installs and starts one (scripts/engine) and bootstraps the base image
# (scripts/base-image); elsewhere engine tests are skipped with the reason, except in CI, where
# a missing engine is a failure rather than a silent skip.
BASE_IMAGE = os.environ.get("ACTK_TEST_BASE_IMAGE", "actk-base/python:bookworm")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def engine() -> Any:
    """A docker-py client of a running engine that holds the test base image; else a skip
    naming the fix (a failure in CI)."""
    from toolkit.engine import docker_client
    from toolkit.errors import DockerError

    try:
        client = docker_client(timeout=60)
        client.images.get(BASE_IMAGE)
    except DockerError as exc:
        reason = f"no Docker engine: {exc.message}; run scripts/engine"
    except Exception as exc:  # docker.errors.ImageNotFound
        reason = f"base image {BASE_IMAGE} is missing ({exc}); run scripts/base-image"
    else:
        return client
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_engine() -> Any:
    return engine()


def build_args_for_tests() -> list[str]:
    """`actk build` flags every engine test uses: the local base and the host's CA bundle."""
    args = ["--base-image", BASE_IMAGE]
    if HOST_CA_BUNDLE.is_file():
        args += ["--ca-bundle", str(HOST_CA_BUNDLE)]
    return args


def succeed(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    """``done``, after asserting it exited 0 (else its output is the failure message)."""
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def commit_all(repo: Path, message: str = "new agent") -> None:
    """``git init`` (when needed), add everything and commit, so tags carry the git sha."""
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", message]):
        succeed(run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo))


# --- the deploy end-to-end tests: a pushed image, run locally, behind a contract server -------


def new_pushed_agent(repo: Path, registry: Any, repository: str, targets: dict[str, Any]
                     ) -> dict[str, Any]:
    """`actk new`, agent.yaml pointed at ``registry``/``repository`` (tag: the git sha) with
    ``targets``, a commit, `actk build --push`; returns the pushed image as state.json has it."""
    succeed(actk("new", str(repo), "--defaults", "--data", f"base_image={BASE_IMAGE}"))
    manifest = yaml.safe_load((repo / "agent.yaml").read_text())
    manifest["image"] = {"repository": f"{registry.host}/{repository}", "tag": "{git_sha}"}
    manifest.setdefault("targets", {}).update(targets)
    (repo / "agent.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    commit_all(repo)
    credentials = {
        "ACTK_REGISTRY_USERNAME": registry.username,
        "ACTK_REGISTRY_PASSWORD": registry.password,
    }
    succeed(actk("build", str(repo), "--push", *build_args_for_tests(), env=credentials))
    return dict(json.loads((repo / ".actk" / "state.json").read_text())["image"])


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


def run_detached(repo: Path, reference: str, running: list[str]) -> str:
    """`actk run --detach` the image (as the cloud would run it); its URL. ``running``
    removes the container after the test."""
    started = json.loads(
        succeed(actk("run", reference, "-C", str(repo), "--detach", "--port", "0", "--json")).stdout
    )
    running.append(started["name"])
    return str(started["url"])


def cli_json(repo: Path, env: dict[str, str], *args: str) -> dict[str, Any]:
    """`actk <args> -C repo --json` in-process; its JSON answer (after asserting exit 0)."""
    from click.testing import CliRunner

    from toolkit.cli import cli

    result = CliRunner().invoke(cli, [*args, "-C", str(repo), "--json"], env=env)
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


# --- the example agent's own server, for the deploy contract tests ---------------------------

EXAMPLE = REPO / "examples" / "echo-agent"


@pytest.fixture(scope="session")
def echo_agent() -> Iterator[str]:
    """The example repository's own server (echo model), as the container would run it."""
    import httpx

    port = free_port()
    env = {**os.environ, "PORT": str(port), "PYTHONPATH": str(EXAMPLE / "src"),
           "LOG_LEVEL": "warning"}
    process = subprocess.Popen(
        [sys.executable, "-m", "echo_agent"], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/readiness", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            assert process.stderr is not None
            pytest.fail(f"the example agent did not start: {process.stderr.read().decode()}")
        time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(timeout=30)
