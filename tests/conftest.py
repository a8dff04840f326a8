"""Shared helpers: render the agent template and run commands the way users do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

# Local stand-ins for the cloud services the toolkit talks to (see each module's docstring).
pytest_plugins = [
    "alibaba_contract",
    "tests.registries",
    "tests.foundry_contract",
    "tests.agentrun_contract",
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
