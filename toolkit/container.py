"""One container life-cycle for `actk run`, `actk smoke`, the pytest plugin and the benches.

    spec = RunSpec.resolve(image=None, directory=Path("."))    # agent.yaml says the rest
    with AgentContainer.start(spec) as container:              # published on 127.0.0.1
        container.wait_ready(timeout=30)                       # GET /readiness == 200
        httpx.post(container.url + "/responses", json={"input": "hi"})
        result = container.stop(timeout=35)                    # SIGTERM: exit code, seconds
    # removed here, whatever happened (also on Ctrl-C)

Creating, starting and removing hold Ctrl-C and SIGTERM until they are done, and a container
the process created but never removed is removed when the interpreter exits, so an interrupt
at any moment leaves nothing behind. ``keep()`` lets a container outlive the process.

The environment is ``runtime.env`` + ``PORT`` + each of ``runtime.secrets`` copied by name from
the caller's environment. It travels in the Engine API's create request (never on a command
line), and no value is ever printed: only the names of missing secrets are reported.
"""

from __future__ import annotations

import atexit
import os
import re
import secrets as _random
import signal
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from toolkit.errors import ContainerError, DockerError, UsageError

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container

    from toolkit.manifest import Manifest, StructuredInput

MANAGED_LABEL = "dev.actk.managed"
READINESS_PATH = "/readiness"
DEFAULT_PORT = 8088
DEFAULT_TAG = "latest"  # `actk build` tags every image it builds with it too


@dataclass(frozen=True)
class RunSpec:
    """What to run: the image, its port and environment, from agent.yaml and flags."""

    image: str
    port: int | None = None  # None: the image's exposed port, else 8088
    env: Mapping[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    structured_inputs: Mapping[str, StructuredInput] = field(default_factory=dict)

    @classmethod
    def resolve(cls, image: str | None, directory: Path) -> RunSpec:
        """``image`` (or agent.yaml's ``image.repository:latest``) with agent.yaml's runtime.

        Without an agent.yaml an explicit ``image`` still runs, with the image's own settings.
        """
        from toolkit.manifest import MANIFEST_NAME, load_manifest

        path = directory if directory.is_file() else directory / MANIFEST_NAME
        if not path.is_file():
            if image is None:
                raise UsageError(
                    f"no IMAGE given and no {MANIFEST_NAME} in {directory}",
                    hint="pass the IMAGE to run, or run in an agent repository made by `actk new`",
                )
            return cls(image=image)
        manifest = load_manifest(path)
        return cls.from_manifest(manifest, image=image)

    @classmethod
    def from_manifest(cls, manifest: Manifest, image: str | None = None) -> RunSpec:
        if image is None:
            if not manifest.image.repository:
                raise UsageError(
                    "agent.yaml has no image.repository, so there is no image to default to",
                    hint="pass the IMAGE, or set image.repository in agent.yaml",
                )
            image = f"{manifest.image.repository}:{DEFAULT_TAG}"
        return cls(
            image=image,
            port=manifest.runtime.port,
            env=dict(manifest.runtime.env),
            secrets=tuple(manifest.runtime.secrets),
            structured_inputs=dict(manifest.structured_inputs),
        )


@dataclass(frozen=True)
class StopResult:
    """How a container ended after SIGTERM."""

    exit_code: int | None
    seconds: float
    killed: bool  # the engine had to SIGKILL it when the timeout ran out


def container_environment(
    spec: RunSpec,
    port: int,
    *,
    overrides: Mapping[str, str] | None = None,
    source: Mapping[str, str] | None = None,
) -> tuple[dict[str, str], list[str]]:
    """The container's environment and the names of secrets missing from ``source``.

    Order of precedence: ``overrides`` > secrets from ``source`` > ``runtime.env``; ``PORT`` is
    always the container port.
    """
    source = os.environ if source is None else source
    env = dict(spec.env)
    missing = []
    for name in spec.secrets:
        if name in source:
            env[name] = source[name]
        else:
            missing.append(name)
    env.update(overrides or {})
    env["PORT"] = str(port)
    return env, missing


class AgentContainer:
    """A started agent container, published on 127.0.0.1; see the module docstring."""

    def __init__(
        self,
        container: Container,
        *,
        image: str,
        port: int,
        client: docker.DockerClient,
        missing_secrets: Sequence[str] = (),
    ) -> None:
        self.container = container
        self.image = image
        self.port = port
        self.client = client
        self.missing_secrets = list(missing_secrets)
        self.host_port = _host_port(container, port)
        self._removed = False

    # --- start -------------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        spec: RunSpec,
        *,
        host_port: int | None = None,
        env: Mapping[str, str] | None = None,
        require_secrets: bool = False,
        read_only: bool = False,
        stop_timeout: int | None = None,
        name: str | None = None,
        labels: Mapping[str, str] | None = None,
        client: docker.DockerClient | None = None,
    ) -> AgentContainer:
        """Create and start a container of ``spec.image``.

        ``host_port`` None (or 0) lets the engine pick a free port. A secret missing from the
        caller's environment is listed in ``missing_secrets`` (an error if ``require_secrets``).
        ``stop_timeout`` is what a plain ``docker stop`` waits before SIGKILL.
        """
        import docker.errors

        from toolkit.engine import docker_client

        client = client or docker_client()
        port = resolve_port(client, spec)
        environment, missing = container_environment(spec, port, overrides=env)
        if missing and require_secrets:
            raise UsageError(
                f"secret {', '.join(missing)} is not set in your environment",
                hint=f"export {missing[0]}=... first; the value is passed to the container by "
                "name through the Engine API and never printed",
            )
        api = client.api  # the low-level API: the models one cannot set stop_timeout
        host_config = api.create_host_config(
            port_bindings={f"{port}/tcp": ("127.0.0.1", host_port or None)},
            read_only=read_only or None,
            tmpfs={"/tmp": "rw,nosuid,nodev,size=64m"} if read_only else None,
        )
        try:
            # Ctrl-C waits until the container is known, so it cannot be created unseen.
            with _signals_deferred():
                created = api.create_container(
                    spec.image,
                    detach=True,
                    name=name or container_name("agent", spec.image),
                    environment=environment,
                    ports=[(port, "tcp")],
                    labels={MANAGED_LABEL: "true", "dev.actk.image": spec.image,
                            **(labels or {})},
                    host_config=host_config,
                    stop_timeout=None if stop_timeout is None else int(stop_timeout),
                )
                remember(created["Id"])
            container = client.containers.get(created["Id"])
        except docker.errors.APIError as exc:
            raise DockerError(
                f"the engine refused to create a container of {spec.image}: {_explain(exc)}",
                hint="check the image and the engine (`docker info`)",
            ) from None
        try:
            with _signals_deferred():
                container.start()
                container.reload()
            return cls(
                container, image=spec.image, port=port, client=client, missing_secrets=missing
            )
        except docker.errors.APIError as exc:
            force_remove(container.id)
            text = _explain(exc)
            if "already allocated" in text or "address already in use" in text:
                raise ContainerError(
                    f"cannot publish the agent on 127.0.0.1:{host_port}: the port is in use",
                    hint="pass --port with a free port (or --port 0 for any free port), or stop "
                    "what is using it",
                ) from None
            raise DockerError(
                f"the engine could not start a container of {spec.image}: {text}",
                hint="check the image's entrypoint and the engine (`docker info`)",
            ) from None
        except BaseException:
            force_remove(container.id)
            raise

    # --- state -------------------------------------------------------------------------------

    @property
    def id(self) -> str:
        return str(self.container.id)

    @property
    def name(self) -> str:
        return str(self.container.name)

    @property
    def url(self) -> str:
        """The agent's base URL on this machine, e.g. ``http://127.0.0.1:49153``."""
        return f"http://127.0.0.1:{self.host_port}"

    def status(self) -> str:
        """The engine's state: ``created``, ``running``, ``exited``..."""
        self.container.reload()
        return str(self.container.status)

    def exit_code(self) -> int | None:
        """The exit code once the container has stopped, else None."""
        self.container.reload()
        state = self.container.attrs.get("State", {})
        return None if state.get("Running") else state.get("ExitCode")

    # --- readiness, logs, stop, remove -------------------------------------------------------

    def wait_ready(self, timeout: float = 30, *, path: str = READINESS_PATH) -> float:
        """Poll ``path`` until it answers 200; the seconds it took.

        Raises :class:`ContainerError` (with the logs) as soon as the container exits, or when
        ``timeout`` runs out.
        """
        import httpx

        from toolkit.invoke import closing_unless_interrupted

        started = time.monotonic()
        deadline = started + timeout
        last = "no answer yet"
        from toolkit.call_log import httpx_hooks

        client = httpx.Client(timeout=2.0, event_hooks=httpx_hooks())
        with closing_unless_interrupted(client) as http:
            while True:
                try:
                    answer = http.get(self.url + path)
                    if answer.status_code == 200:
                        return time.monotonic() - started
                    last = f"HTTP {answer.status_code}"
                except httpx.HTTPError as exc:
                    last = type(exc).__name__
                code = self.exit_code()
                if code is not None:
                    raise ContainerError(
                        f"the container exited with code {code} before it was ready",
                        hint="its logs (above) say why; fix that, rebuild, and try again",
                        logs=self.logs(),
                    )
                if time.monotonic() >= deadline:
                    raise ContainerError(
                        f"the container did not answer GET {path} with 200 within "
                        f"{timeout:g} s (last: {last})",
                        hint="read its logs (above); raise the timeout if it is just slow to "
                        "start",
                        logs=self.logs(),
                    )
                time.sleep(0.05)

    def logs(self, tail: int | None = None) -> str:
        """Everything the container printed so far (stdout and stderr)."""
        import docker.errors

        try:
            raw = self.container.logs(stdout=True, stderr=True, tail=tail or "all")
        except docker.errors.APIError:
            return ""
        return raw.decode("utf-8", "replace")

    def follow_logs(self) -> Iterator[str]:
        """The container's output line by line, from its start until it stops."""
        buffer = b""
        for chunk in self.container.logs(stdout=True, stderr=True, stream=True, follow=True):
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                yield line.decode("utf-8", "replace")
        if buffer:
            yield buffer.decode("utf-8", "replace")

    def stop(self, timeout: float = 30) -> StopResult:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; how it ended and how long it took."""
        api = _fresh_api()
        started = time.monotonic()
        api.stop(self.id, timeout=max(1, round(timeout)))
        seconds = time.monotonic() - started
        state = api.inspect_container(self.id).get("State") or {}
        code = state.get("ExitCode")
        killed = code == 137 or bool(state.get("OOMKilled"))
        return StopResult(exit_code=code, seconds=seconds, killed=killed)

    def remove(self) -> None:
        """Remove the container (killing it if it still runs); safe to call more than once."""
        if self._removed:
            return
        self._removed = True
        force_remove(self.container.id)

    def keep(self) -> None:
        """Let the container outlive this process (``actk run --detach``): it is no longer
        removed at interpreter exit."""
        _unremoved.discard(self.id)
        self._removed = True  # nor by remove() or the context manager

    def __enter__(self) -> AgentContainer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.remove()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block SIGTERM raises KeyboardInterrupt, so `kill` cleans up like Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def container_name(purpose: str, image: str) -> str:
    """``actk-<purpose>-<image name>-<6 hex>``: unique, and readable in `docker ps`."""
    base = image.rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0]
    base = re.sub(r"[^a-zA-Z0-9_.-]", "-", base)[:40] or "image"
    return f"actk-{purpose}-{base}-{_random.token_hex(3)}"


def drain_timeout(env: Mapping[str, str], default: float) -> float:
    """``DRAIN_TIMEOUT`` from ``env`` in seconds, or ``default`` when unset or not a number."""
    try:
        return float(env.get("DRAIN_TIMEOUT", "").strip() or default)
    except ValueError:
        return default


def resolve_port(client: docker.DockerClient, spec: RunSpec) -> int:
    """The container port: agent.yaml's ``runtime.port``, else the image's only exposed port,
    else 8088. Also proves the image exists (a DockerError naming the fix if not)."""
    image_attrs = _image(client, spec.image)
    return spec.port or _exposed_port(image_attrs) or DEFAULT_PORT


def managed_containers(
    client: docker.DockerClient, **filters: str
) -> list[Container]:
    """Containers started by the toolkit (running or not), narrowed by engine ``filters``."""
    labels = [f"{MANAGED_LABEL}=true"]
    return client.containers.list(all=True, filters={"label": labels, **filters})


# --- helpers ---------------------------------------------------------------------------------


def _image(client: docker.DockerClient, image: str) -> dict[str, Any]:
    import docker.errors

    try:
        return client.images.get(image).attrs
    except docker.errors.ImageNotFound:
        raise DockerError(
            f"image {image} is not in the local engine",
            hint="build it first (`actk build`), or pass the name of an image you built",
        ) from None
    except docker.errors.APIError as exc:
        raise DockerError(f"cannot inspect image {image}: {_explain(exc)}") from None


def _exposed_port(image_attrs: Mapping[str, Any]) -> int | None:
    """The image's only exposed TCP port (its ``EXPOSE``), if it has exactly one."""
    ports = [p for p in (image_attrs.get("Config") or {}).get("ExposedPorts") or {}]
    tcp = [int(p.split("/")[0]) for p in ports if p.endswith("/tcp")]
    return tcp[0] if len(tcp) == 1 else None


def _host_port(container: Container, port: int) -> int:
    bindings = (container.attrs.get("NetworkSettings") or {}).get("Ports") or {}
    for binding in bindings.get(f"{port}/tcp") or []:
        if binding.get("HostPort"):
            return int(binding["HostPort"])
    state = container.attrs.get("State") or {}
    logs = container.logs().decode("utf-8", "replace")
    force_remove(container.id)
    raise ContainerError(
        f"the container exited with code {state.get('ExitCode')} at once",
        hint="its logs (above) say why; check the image's entrypoint",
        logs=logs,
    )


def force_remove(container_id: str) -> None:
    """Remove the container, killing it if it runs; gone already is fine."""
    import docker.errors

    with _signals_deferred():
        try:
            _fresh_api().remove_container(container_id, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if "already in progress" not in str(exc):
                raise
        _unremoved.discard(str(container_id))


def _fresh_api() -> docker.APIClient:
    """A new connection pool to the engine. A call cut short by Ctrl-C can leave the lock of
    the pool it used taken, so stopping and removing never reuse another call's pool."""
    from toolkit.engine import docker_client

    return docker_client(timeout=120).api


# Containers this process created and has not removed yet. Whatever is still here when the
# interpreter exits (an interrupt between two statements of a caller, a forgotten remove())
# is removed then; a detached container is taken off the list with keep().
_unremoved: set[str] = set()


def remember(container_id: str) -> None:
    """Remove this container when the interpreter exits, unless it was removed before."""
    _unremoved.add(container_id)


@atexit.register
def _remove_unremoved() -> None:
    if not _unremoved:
        return
    import docker.errors

    with suppress(DockerError):
        api = _fresh_api()
        while _unremoved:
            with suppress(docker.errors.APIError):
                api.remove_container(_unremoved.pop(), force=True)


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM until the block ends, then deliver them as they would have been,
    so a start or a removal is never cut in half."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda signum, frame: received.append(signum))
                for sig in held}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            if handler is not None:  # None: set outside Python, cannot be restored
                signal.signal(sig, handler)
    for sig in dict.fromkeys(received):
        signal.raise_signal(sig)


def _explain(exc: Exception) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc).strip()
