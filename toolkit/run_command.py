"""`actk run`: the agent image as a local container, its logs streamed until Ctrl-C.

The manifest's port is published on 127.0.0.1 (same host port unless ``--port``), with
``runtime.env``, ``PORT`` and the secrets copied by name from the caller's environment. Ctrl-C
or SIGTERM stops the container with SIGTERM (it drains), then removes it; a second Ctrl-C
kills it at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import click

from toolkit.console import Console
from toolkit.container import (
    AgentContainer,
    RunSpec,
    container_name,
    drain_timeout,
    resolve_port,
    sigterm_as_interrupt,
)
from toolkit.errors import ContainerError, UsageError

IMAGE_DRAIN_TIMEOUT = 30.0  # the generated server's DRAIN_TIMEOUT when none is set
STOP_GRACE = 3.0


def parse_env(pairs: tuple[str, ...], source: Mapping[str, str]) -> dict[str, str]:
    """``K=V`` pairs; a bare ``K`` copies K's value from ``source`` (as `docker run -e K`)."""
    env: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not name:
            raise UsageError(f"--env {pair!r} has no name", hint="write --env NAME=value")
        if not sep:
            if name not in source:
                raise UsageError(
                    f"--env {name}: {name} is not set in your environment",
                    hint=f"export {name} first, or write --env {name}=value",
                )
            value = source[name]
        env[name] = value
    return env


def run_agent(
    spec: RunSpec,
    *,
    console: Console,
    host_port: int | None = None,
    env: Mapping[str, str] | None = None,
    detach: bool = False,
    ready_timeout: float = 60,
) -> dict[str, Any]:
    """Start the container; attached, stream its logs until it stops or is interrupted."""
    from toolkit.engine import docker_client

    client = docker_client()
    spec = dataclasses.replace(spec, port=resolve_port(client, spec))
    assert spec.port is not None
    overrides = dict(env or {})
    window = drain_timeout({**spec.env, **overrides}, IMAGE_DRAIN_TIMEOUT) + STOP_GRACE
    with sigterm_as_interrupt():
        console.step(f"Starting {spec.image}")
        container = AgentContainer.start(
            spec,
            host_port=spec.port if host_port is None else host_port,
            env=overrides,
            stop_timeout=round(window),
            name=container_name("run", spec.image),
            client=client,
        )
        info = {
            "id": container.id,
            "name": container.name,
            "image": spec.image,
            "url": container.url,
            "port": container.host_port,
        }
        keep = False  # only a detached container that became ready outlives this call
        try:
            for name in container.missing_secrets:
                console.warn(f"secret {name} is not set in your environment; the container "
                             "starts without it")
            seconds = container.wait_ready(ready_timeout)
            console.step(f"{container.name} ready at {container.url} after {seconds:.2f} s")
            console.detail(f"invoke it: actk invoke --url {container.url} \"hello\"")
            if detach:
                console.detail(f"remove it: docker rm -f {container.name}")
                container.keep()
                keep = True
                return info
            console.detail("Ctrl-C stops and removes it")
            console.emit(info)
            try:
                for line in container.follow_logs():
                    click.echo(line, err=console.as_json)  # stdout holds the JSON then
            except KeyboardInterrupt:
                _stop(container, console, window)
            else:
                code = container.exit_code()
                if code != 0:
                    raise ContainerError(
                        f"the container exited with code {code}",
                        hint="its logs (above) say why",
                    )
                console.step("the container exited (code 0)")
            return info
        finally:
            if not keep:
                container.remove()
                console.step(f"removed {container.name}")


def _stop(container: AgentContainer, console: Console, window: float) -> None:
    console.step(f"stopping {container.name} (SIGTERM; Ctrl-C again to kill it now)")
    try:
        result = container.stop(timeout=window)
    except KeyboardInterrupt:
        console.step("killing it")
        return
    how = "killed" if result.killed else f"exit {result.exit_code}"
    console.step(f"stopped ({how}) after {result.seconds:.2f} s")
