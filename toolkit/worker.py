"""`actk worker`: serve an Anthropic self-hosted environment's work queue with the agent's image.

    poll (Bearer environment key) -> ack -> one container per work item, `python -m <pkg> worker`
                                             -> the SDK's EnvironmentWorker.handle_item() inside

Each claimed item gets its own container from the agent's image, so the session's tool calls
(bash, read, write ...) run inside the image the agent was built as. The container learns which
item it serves from ``ANTHROPIC_ENVIRONMENT_ID``, ``ANTHROPIC_WORK_ID`` and
``ANTHROPIC_SESSION_ID``; the environment key and the item's secret reach it as one JSON line on
its stdin, so they are in no image, no container configuration (`docker inspect`) and no command
line. Inside, the SDK heartbeats the lease and force-stops the item when the session is done;
the host force-stops it too when a container fails, so an item is never left leased.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from toolkit.cloud.anthropic import ENVIRONMENT_KEY_VARIABLE, AnthropicAPIError
from toolkit.errors import CloudError, DockerError, UsageError

if TYPE_CHECKING:
    import docker

    from toolkit.cloud.anthropic_work import WorkQueue
    from toolkit.console import Console
    from toolkit.manifest import Manifest

EMPTY_POLL_PAUSE = 1.0  # seconds between two empty polls (on top of the server's long poll)
ERROR_BACKOFF_CAP = 60.0
STOP_GRACE = 15  # seconds a container gets after SIGTERM to release its item
WORK_LABEL = "dev.actk.anthropic.work"


@dataclass
class WorkerOptions:
    image: str | None = None  # default: the pushed digest, else image.repository:latest
    environment_id: str | None = None  # default: ANTHROPIC_ENVIRONMENT_ID, else the deploy's
    concurrency: int = 1
    max_items: int | None = None  # stop after serving this many (--once is 1)
    idle_exit: float | None = None  # stop when the queue has been empty this many seconds
    max_idle: float = 60.0  # WORKER_MAX_IDLE in the container: seconds kept after end_turn
    output: Path | None = None  # mount <output>/<session id> at /workspace


@dataclass
class ServedItem:
    work_id: str
    session_id: str
    container: str = ""
    exit_code: int | None = None
    seconds: float = 0.0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "work_id": self.work_id,
            "session_id": self.session_id,
            "container": self.container,
            "exit_code": self.exit_code,
            "seconds": round(self.seconds, 2),
            "error": self.error,
        }


@dataclass
class WorkerReport:
    environment_id: str
    image: str
    items: list[ServedItem] = field(default_factory=list)
    stopped_by: str = ""  # max-items | idle | signal

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment_id": self.environment_id,
            "image": self.image,
            "served": len(self.items),
            "failed": sum(1 for item in self.items if item.exit_code != 0),
            "items": [item.to_dict() for item in self.items],
            "stopped_by": self.stopped_by,
        }


# --- one item, one container -------------------------------------------------------------------


@dataclass(frozen=True)
class ContainerPlan:
    """Everything a work item's container is created with (the secrets travel apart)."""

    image: str
    environment: dict[str, str]
    network_mode: str | None
    workspace: Path | None
    labels: dict[str, str]


def container_plan(item: Mapping[str, Any], *, image: str, base_url: str, max_idle: float,
                   output: Path | None) -> ContainerPlan:
    from toolkit.container import MANAGED_LABEL

    session_id = str(item["data"]["id"])
    environment = {
        "ANTHROPIC_ENVIRONMENT_ID": str(item["environment_id"]),
        "ANTHROPIC_WORK_ID": str(item["id"]),
        "ANTHROPIC_SESSION_ID": session_id,
        "ANTHROPIC_BASE_URL": base_url,
        "WORKER_MAX_IDLE": f"{max_idle:g}",
    }
    # A control plane on this machine (a proxy, a test server) is only reachable from the
    # host's own network namespace.
    from toolkit.registry.hosts import is_loopback

    loopback = is_loopback(urlsplit(base_url).hostname or "")
    return ContainerPlan(
        image=image,
        environment=environment,
        network_mode="host" if loopback else None,
        workspace=output / session_id if output else None,
        labels={MANAGED_LABEL: "true", WORK_LABEL: str(item["id"])},
    )


def secret_line(key: str, item: Mapping[str, Any]) -> bytes:
    """What the container reads from stdin: the environment key and the item's secret."""
    return json.dumps({"environment_key": key, "work_secret": item.get("secret")}).encode() + b"\n"


class ItemContainer:
    """Runs one work item's container to its end: create, feed stdin, start, relay, remove."""

    def __init__(self, engine: docker.DockerClient, plan: ContainerPlan, secret: bytes,
                 show: Callable[[str], None]) -> None:
        self.engine = engine
        self.plan = plan
        self.secret = secret
        self.show = show
        self.id: str | None = None

    def run(self) -> int:
        api = self.engine.api
        config = api.create_container_config(
            self.plan.image,
            ["worker"],
            environment=self.plan.environment,
            stdin_open=True,
            labels=self.plan.labels,
            host_config=api.create_host_config(
                network_mode=self.plan.network_mode,
                binds=self._binds(),
                init=True,
            ),
        )
        config["StdinOnce"] = True  # stdin closes after the first attach: EOF after the line
        self.id = api.create_container_from_config(config)["Id"]
        from toolkit.container import remember

        remember(self.id)
        try:
            attached = api.attach_socket(self.id, params={"stdin": 1, "stream": 1})
            api.start(self.id)
            raw = getattr(attached, "_sock", attached)
            try:
                raw.sendall(self.secret)
                raw.shutdown(socket.SHUT_WR)
            finally:
                attached.close()
            for chunk in api.logs(self.id, stream=True, follow=True):
                for line in chunk.decode("utf-8", "replace").splitlines():
                    self.show(line)
            return int(api.wait(self.id)["StatusCode"])
        finally:
            self.remove()

    def stop(self) -> None:
        """SIGTERM: the worker inside releases its item and exits."""
        import docker.errors

        if self.id is not None:
            with suppress(docker.errors.APIError):
                self.engine.api.stop(self.id, timeout=STOP_GRACE)

    def remove(self) -> None:
        if self.id is None:
            return
        from toolkit.container import force_remove

        force_remove(self.id)

    def _binds(self) -> dict[str, dict[str, str]] | None:
        if self.plan.workspace is None:
            return None
        self.plan.workspace.mkdir(parents=True, exist_ok=True)
        self.plan.workspace.chmod(0o777)  # the image's user (10001) writes its deliverables
        return {str(self.plan.workspace.resolve()): {"bind": "/workspace", "mode": "rw"}}


# --- the loop ----------------------------------------------------------------------------------


class Worker:
    """Polls while it has a free slot, serves each item in a thread, stops on request."""

    def __init__(self, queue: WorkQueue, engine: docker.DockerClient, console: Console, *,
                 image: str, key: str, base_url: str, options: WorkerOptions,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.queue = queue
        self.engine = engine
        self.console = console
        self.image = image
        self.key = key
        self.base_url = base_url
        self.options = options
        self.now = now
        self._lock = threading.Lock()
        self._running: dict[str, tuple[threading.Thread, ItemContainer]] = {}

    def run(self, stop: threading.Event) -> WorkerReport:
        from uuid import uuid4

        report = WorkerReport(self.queue.environment_id, self.image)
        worker_id = f"actk-{socket.gethostname()}-{uuid4().hex[:8]}"
        options = self.options
        last_work, failures = self.now(), 0
        while not stop.is_set():
            self._reap()
            if options.max_items is not None and len(report.items) >= options.max_items:
                report.stopped_by = "max-items"
                break
            if len(self._running) >= options.concurrency:
                stop.wait(0.2)
                continue
            try:
                item = self.queue.poll(worker_id)
            except AnthropicAPIError as exc:
                if exc.status in (400, 401, 403, 404):
                    raise
                failures += 1
                self._pause(stop, failures, exc.message)
                continue
            except CloudError as exc:  # unreachable after CloudHttp's own retries
                failures += 1
                self._pause(stop, failures, exc.message)
                continue
            failures = 0
            if item is None:
                idle = self.now() - last_work
                if options.idle_exit is not None and not self._running and \
                        idle >= options.idle_exit:
                    report.stopped_by = "idle"
                    break
                stop.wait(EMPTY_POLL_PAUSE)
                continue
            last_work = self.now()
            served = self._claim(item)
            if served is not None:
                report.items.append(served)
        if stop.is_set():
            report.stopped_by = "signal"
            self._stop_all()
        self._join_all()
        return report

    def _claim(self, item: Mapping[str, Any]) -> ServedItem | None:
        work_id = str(item.get("id"))
        data = item.get("data") if isinstance(item.get("data"), dict) else {}
        if data.get("type") != "session" or not data.get("id"):
            self.console.warn(f"work item {work_id} is not a session ({data.get('type')!r}): "
                              "released without serving it")
            self._release(work_id)
            return None
        try:
            self.queue.ack(work_id)
        except CloudError as exc:
            self.console.warn(f"could not acknowledge {work_id} ({exc.message}): released")
            self._release(work_id)
            return None
        served = ServedItem(work_id=work_id, session_id=str(data["id"]))
        plan = container_plan(item, image=self.image, base_url=self.base_url,
                              max_idle=self.options.max_idle, output=self.options.output)
        secrets = [self.key, str(item.get("secret") or "")]

        def show(line: str) -> None:
            from toolkit.redact import redact

            self.console.detail(f"{served.session_id[-10:]} | {redact(line, secrets)}")

        runner = ItemContainer(self.engine, plan, secret_line(self.key, item), show)
        thread = threading.Thread(target=self._serve, args=(runner, served), daemon=True,
                                  name=f"work-{work_id}")
        self.console.step(f"serving session {served.session_id} (work item {work_id})")
        with self._lock:
            self._running[work_id] = (thread, runner)
        thread.start()
        return served

    def _serve(self, runner: ItemContainer, served: ServedItem) -> None:
        import docker.errors

        started = self.now()
        try:
            served.exit_code = runner.run()
        except (docker.errors.DockerException, DockerError) as exc:
            served.error = str(getattr(exc, "explanation", None) or exc).strip()[:300]
        finally:
            served.seconds = self.now() - started
            served.container = (runner.id or "")[:12]
        if served.exit_code == 0:
            self.console.detail(f"session {served.session_id}: done in {served.seconds:.1f} s")
            return
        why = served.error or f"the container exited with code {served.exit_code}"
        self.console.warn(f"session {served.session_id}: {why}; work item released")
        self._release(served.work_id)

    def _release(self, work_id: str) -> None:
        try:
            self.queue.stop(work_id, force=True)
        except CloudError as exc:
            self.console.warn(f"could not release work item {work_id}: {exc.message}")

    def _pause(self, stop: threading.Event, failures: int, why: str) -> None:
        wait = min(2.0 ** failures, ERROR_BACKOFF_CAP)
        self.console.warn(f"{why}; polling again in {wait:.0f} s")
        stop.wait(wait)

    def _reap(self) -> None:
        with self._lock:
            for work_id, (thread, _) in list(self._running.items()):
                if not thread.is_alive():
                    del self._running[work_id]

    def _stop_all(self) -> None:
        with self._lock:
            running = list(self._running.values())
        for _, runner in running:
            runner.stop()

    def _join_all(self) -> None:
        with self._lock:
            running = list(self._running.values())
        for thread, _ in running:
            thread.join()
        self._reap()


# --- what `actk worker` reads before it starts -------------------------------------------------


def run_worker(repo: Path, options: WorkerOptions, console: Console, env: Mapping[str, str], *,
               stop: threading.Event | None = None, key: str | None = None) -> WorkerReport:
    """Serve the environment's queue until ``stop`` is set (SIGINT/SIGTERM from the CLI), the
    queue has been empty ``idle_exit`` seconds, or ``max_items`` items were served."""
    from toolkit.engine import docker_client

    key = key or env.get(ENVIRONMENT_KEY_VARIABLE) or ""
    if not key.strip():
        raise UsageError(
            f"{ENVIRONMENT_KEY_VARIABLE} is not set: the worker authenticates with the "
            "environment's key",
            hint="generate one in the Claude Console (the environment's page > Generate "
            f"environment key) and export {ENVIRONMENT_KEY_VARIABLE}=..., or pipe it to "
            "--key-stdin",
        )
    key = key.strip()
    if options.concurrency < 1:
        raise UsageError("--concurrency must be at least 1", hint="--concurrency 1")
    facts = RepoFacts.read(repo)
    environment_id, base_url = where_to_poll(facts, options, env)
    engine = docker_client()
    image = choose_image(engine, facts, options, console)
    from toolkit.cloud.anthropic_work import WorkQueue

    queue = WorkQueue(base_url, environment_id, key)
    console.step(f"polling {environment_id} at {base_url} for work; one container of {image} "
                 "per item (Ctrl-C stops)")
    try:
        worker = Worker(queue, engine, console, image=image, key=key, base_url=base_url,
                        options=options)
        return worker.run(stop or threading.Event())
    finally:
        queue.close()


@dataclass(frozen=True)
class RepoFacts:
    """What the worker reads from the agent repository, once: what `actk deploy anthropic` and
    `actk push` recorded, and agent.yaml (None outside an agent repository)."""

    deployed: dict[str, Any]  # the state's anthropic section
    pushed: str | None  # the state's pushed image reference
    manifest: Manifest | None

    @classmethod
    def read(cls, repo: Path) -> RepoFacts:
        from toolkit.manifest import MANIFEST_NAME, load_manifest
        from toolkit.state import read_state

        state = read_state(repo)
        deployed = state.get("anthropic")
        pushed = (state.get("image") or {}).get("reference")
        path = repo if repo.is_file() else repo / MANIFEST_NAME
        return cls(
            deployed=deployed if isinstance(deployed, dict) else {},
            pushed=pushed if isinstance(pushed, str) else None,
            manifest=load_manifest(path) if path.is_file() else None,
        )


def where_to_poll(facts: RepoFacts, options: WorkerOptions, env: Mapping[str, str]
                  ) -> tuple[str, str]:
    """(environment id, API base URL): flags and variables first, then what deploy recorded."""
    from toolkit.cloud.anthropic import api_base

    recorded = facts.deployed
    environment_id = options.environment_id or env.get("ANTHROPIC_ENVIRONMENT_ID")
    if not environment_id:
        environment_id = recorded.get("environment_id")
        if not environment_id:
            raise UsageError(
                "no environment to serve: none was given and .actk/state.json records no "
                "Anthropic deploy",
                hint="run `actk deploy anthropic` (environment.type: self_hosted) first, or pass "
                "--environment-id env_...",
            )
        if recorded.get("environment_type") not in (None, "self_hosted"):
            raise UsageError(
                f"the deployed environment {environment_id} is a {recorded['environment_type']} "
                "environment: Anthropic runs its sandboxes, there is no queue to serve",
                hint="set targets.anthropic.environment.type: self_hosted in agent.yaml and run "
                "`actk deploy anthropic` again",
            )
    target = facts.manifest.targets.anthropic if facts.manifest else None
    base_url = api_base(env, recorded.get("api_base") or (target.api_base if target else None))
    return str(environment_id), base_url.rstrip("/")


def choose_image(engine: docker.DockerClient, facts: RepoFacts, options: WorkerOptions,
                 console: Console) -> str:
    """--image, else the image deploy recorded, else the pushed digest, else
    image.repository:latest: the first the engine has; otherwise the first one, pulled."""
    import docker.errors

    from toolkit.container import DEFAULT_TAG

    repository = facts.manifest.image.repository if facts.manifest else None
    candidates = [options.image] if options.image else [
        facts.deployed.get("image"),
        facts.pushed,
        repository and f"{repository}:{DEFAULT_TAG}",
    ]
    candidates = [c for c in candidates if isinstance(c, str) and c]
    if not candidates:
        raise UsageError("no image to run: pass --image, or run in an agent repository",
                         hint="actk worker --image REFERENCE")
    for candidate in candidates:
        try:
            engine.images.get(candidate)
            return candidate
        except docker.errors.ImageNotFound:
            continue
        except docker.errors.APIError as exc:
            raise DockerError(f"cannot inspect image {candidate}: {exc.explanation}") from None
    wanted = candidates[0]
    console.step(f"pulling {wanted}")
    try:
        engine.images.pull(wanted)
    except docker.errors.APIError as exc:
        raise DockerError(
            f"image {wanted} is neither in the local engine nor pullable: "
            f"{str(exc.explanation or exc).strip()[:200]}",
            hint="build it (`actk build`), sign in to its registry, or pass --image",
        ) from None
    return wanted
