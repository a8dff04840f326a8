"""Reaching the Docker engine: one place that turns "no engine" into an actionable error."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from toolkit.errors import DockerError

if TYPE_CHECKING:
    import docker

ENGINE_HINT = (
    "install Docker Engine (https://docs.docker.com/engine/install/) and start it "
    "(`sudo systemctl start docker`, or `sudo dockerd &`), or point DOCKER_HOST at a running engine"
)


def docker_client(timeout: float = 120) -> docker.DockerClient:
    """A docker-py client that has answered a ping, or a DockerError naming the fix."""
    import docker

    from toolkit.call_log import watch_engine

    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = watch_engine(docker.from_env(timeout=int(timeout)))
        client.ping()
    except docker.errors.DockerException as exc:
        raise DockerError(
            f"no Docker engine answers at {host} ({_reason(exc)})", hint=ENGINE_HINT
        ) from None
    return client


def _reason(exc: Exception) -> str:
    """The innermost human part of docker-py's wrapped connection errors."""
    text = str(exc)
    for marker in ("No such file or directory", "Connection refused", "Permission denied"):
        if marker in text:
            return marker.lower()
    return text.splitlines()[0][:200] if text else type(exc).__name__
