"""pytest fixtures for an agent's container (entry point ``pytest11``: loaded automatically).

    def test_answers(responses_client):
        assert responses_client.responses.create(model="echo-1", input="hi").output_text

``agent_image``       the repository's image, built once per test run with ``actk build`` (or
                      the image named by ``--agent-image`` / ``ACTK_AGENT_IMAGE``).
``agent_container``   a container of it on a free port, ready (``/readiness`` 200), removed
                      afterwards; its scope is pytest-docker's ``--container-scope`` (session).
``responses_client``  the official ``openai`` client bound to ``agent_container``.
``start_agent_container``  a factory for tests that need their own container (SIGTERM, env).

Built on pytest-docker: containers are addressed through its ``docker_ip`` fixture and share
its ``--container-scope``. Without a Docker engine, or offline without the base image, the
fixtures skip with the reason; ``ACTK_REQUIRE_ENGINE=1`` turns that into a failure, so a CI
machine that lost its engine cannot pass silently.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from pytest_docker.plugin import containers_scope

if TYPE_CHECKING:
    import openai

    from toolkit.container import AgentContainer

IMAGE_VARIABLE = "ACTK_AGENT_IMAGE"
REQUIRE_VARIABLE = "ACTK_REQUIRE_ENGINE"
READY_TIMEOUT = 60.0


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("actk", "agent containers (agent-container-toolkit)")
    group.addoption(
        "--agent-image",
        default=None,
        help=f"test this image instead of building the repository's (also ${IMAGE_VARIABLE})",
    )
    group.addoption(
        "--agent-repo",
        default=None,
        help="the agent repository to build (default: the nearest agent.yaml above rootdir)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "container: needs the agent's image on a Docker engine")


def _unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE_VARIABLE, "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} ({REQUIRE_VARIABLE} is set)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def agent_repo(pytestconfig: pytest.Config) -> Path:
    """The agent repository under test: ``--agent-repo`` or the nearest agent.yaml."""
    chosen = pytestconfig.getoption("--agent-repo")
    if chosen:
        return Path(chosen).resolve()
    for directory in (pytestconfig.rootpath, *pytestconfig.rootpath.parents):
        if (directory / "agent.yaml").is_file():
            return directory
    pytest.fail("no agent.yaml at or above the rootdir; pass --agent-repo", pytrace=False)


@pytest.fixture(scope="session")
def agent_engine() -> Any:
    """A docker-py client of a running engine; skips (fails in CI) without one."""
    from toolkit.engine import docker_client
    from toolkit.errors import DockerError

    try:
        return docker_client()
    except DockerError as exc:
        _unavailable(f"{exc.message}; {exc.hint}")


@pytest.fixture(scope="session")
def agent_image(pytestconfig: pytest.Config, agent_repo: Path, agent_engine: Any) -> str:
    """The image under test, built once per run as ``<repository>:pytest``."""
    from toolkit.build import BuildOptions, build_image
    from toolkit.console import Console
    from toolkit.errors import ToolkitError

    named = pytestconfig.getoption("--agent-image") or os.environ.get(IMAGE_VARIABLE)
    if named:
        try:
            agent_engine.images.get(named)
        except Exception as exc:  # docker.errors.ImageNotFound, APIError
            pytest.fail(f"--agent-image {named}: {exc}", pytrace=False)
        return str(named)
    from toolkit.manifest import load_manifest

    _require_base_image(agent_engine, load_manifest(agent_repo).build.base_image)
    options = BuildOptions(tags=["pytest"], tag_latest=False)
    try:
        result = build_image(agent_repo, options, Console(as_json=True))
    except ToolkitError as exc:
        pytest.fail(f"actk build failed: {exc.message}\nhint: {exc.hint}", pytrace=False)
    return result.tags[0]


def _require_base_image(client: Any, reference: str) -> None:
    """Skip, rather than fail the build, when the base image is neither here nor pullable."""
    import docker.errors

    try:
        client.images.get(reference)
        return
    except docker.errors.ImageNotFound:
        pass
    try:
        client.images.pull(reference)
    except docker.errors.APIError as exc:
        _unavailable(
            f"the base image {reference} is not on this engine and cannot be pulled "
            f"({exc.explanation or exc}); pull it, set build.base_image, or pass --agent-image"
        )


@pytest.fixture
def start_agent_container(
    agent_image: str, agent_repo: Path, agent_engine: Any
) -> Iterator[Callable[..., AgentContainer]]:
    """``start(env={...}, ready=True)``: a new container, removed when the test ends."""
    from toolkit.container import AgentContainer, RunSpec

    started: list[AgentContainer] = []

    def start(env: Mapping[str, str] | None = None, ready: bool = True) -> AgentContainer:
        spec = RunSpec.resolve(agent_image, agent_repo)
        container = AgentContainer.start(
            spec, env=env, read_only=True, client=agent_engine, labels={"dev.actk.pytest": "1"}
        )
        started.append(container)
        if ready:
            container.wait_ready(timeout=READY_TIMEOUT)
        return container

    yield start
    for container in started:
        container.remove()


@pytest.fixture(scope=containers_scope)
def agent_container(
    agent_image: str, agent_repo: Path, agent_engine: Any
) -> Iterator[AgentContainer]:
    """A ready container of ``agent_image``, shared within pytest-docker's container scope."""
    from toolkit.container import AgentContainer, RunSpec

    spec = RunSpec.resolve(agent_image, agent_repo)
    with AgentContainer.start(
        spec, read_only=True, client=agent_engine, labels={"dev.actk.pytest": "1"}
    ) as container:
        container.wait_ready(timeout=READY_TIMEOUT)
        yield container


@pytest.fixture(scope=containers_scope)
def agent_url(agent_container: AgentContainer, docker_ip: str) -> str:
    """The container's base URL, through pytest-docker's ``docker_ip``."""
    return f"http://{docker_ip}:{agent_container.host_port}"


@pytest.fixture(scope=containers_scope)
def responses_client(agent_url: str) -> Iterator[openai.OpenAI]:
    """The official openai client, bound to the container (``/v1`` base URL, no retries)."""
    import openai

    with openai.OpenAI(
        base_url=f"{agent_url}/v1", api_key="not-needed-locally", max_retries=0, timeout=30
    ) as client:
        yield client
