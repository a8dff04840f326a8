"""The two ways an image gets built: BuildKit through the docker CLI, or the Engine API.

BuildKit (``docker buildx build``, or ``DOCKER_BUILDKIT=1 docker build`` on clients before 23.0,
which carry the builder themselves) mounts the CA bundle as a secret. Without a BuildKit-capable
client, docker-py drives the engine's classic builder with a Dockerfile adapted by
:mod:`toolkit.dockerfile`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.build_context import BuildContext
from toolkit.ca_bundle import SECRET_ID, CaBundle
from toolkit.errors import DockerError, UsageError
from toolkit.process import ask

if TYPE_CHECKING:
    import docker

BUILDERS = ("auto", "buildx", "buildkit", "api")
LogLine = Callable[[str], None]


@dataclass
class BuildRequest:
    context: BuildContext
    tags: list[str]
    platform: str
    build_args: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    ca: CaBundle | None = None
    # A named buildx builder (`docker buildx create --name ...`, e.g. a remote BuildKit).
    builder_name: str | None = None


@dataclass(frozen=True)
class DockerCli:
    path: str
    version: tuple[int, ...]
    has_buildx: bool

    @property
    def buildkit_mode(self) -> str | None:
        """ "buildx", "buildkit" (the builder built into clients before 23.0) or None."""
        if self.has_buildx:
            return "buildx"
        if self.version and self.version < (23,):
            return "buildkit"
        return None


def docker_cli_paths() -> list[str]:
    """Every distinct ``docker`` executable on PATH, in PATH order."""
    found: list[str] = []
    seen: set[str] = set()
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = shutil.which("docker", path=directory) if directory else None
        if candidate and os.path.realpath(candidate) not in seen:
            seen.add(os.path.realpath(candidate))
            found.append(candidate)
    return found


def probe_cli(path: str) -> DockerCli | None:
    version = ask([path, "--version"])
    buildx = ask([path, "buildx", "version"])
    if version is None or buildx is None:
        return None
    match = re.search(r"version (\d+)\.(\d+)", version.stdout)
    numbers = tuple(int(n) for n in match.groups()) if match else ()
    return DockerCli(path=path, version=numbers, has_buildx=buildx.returncode == 0)


def builder_mode(wanted: str) -> tuple[str, str | None]:
    """(mode, buildx builder name): any name other than the modes is a buildx builder."""
    if wanted in BUILDERS:
        return wanted, None
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", wanted):
        raise UsageError(
            f"'{wanted}' is neither a builder mode nor a buildx builder name",
            hint="use " + ", ".join(BUILDERS) + ", or the name of a `docker buildx ls` builder",
        )
    return "buildx", wanted


def choose_builder(wanted: str = "auto") -> tuple[str, DockerCli | None]:
    """The builder to use: ``wanted``, or in ``auto`` the first BuildKit client, else the API."""
    if wanted not in BUILDERS:
        raise UsageError(f"unknown builder '{wanted}'", hint="use one of " + ", ".join(BUILDERS))
    if wanted == "api":
        return "api", None
    clients: list[DockerCli] = []
    for cli in filter(None, map(probe_cli, docker_cli_paths())):
        mode = cli.buildkit_mode
        if mode and (wanted == "auto" or wanted == mode):
            return mode, cli
        clients.append(cli)
    if wanted == "auto":
        return "api", None
    found = ", ".join(f"{c.path} {'.'.join(map(str, c.version))}" for c in clients) or "none"
    raise DockerError(
        f"no docker client on PATH can build with {wanted} (found: {found})",
        hint="install the docker buildx plugin, or use --builder auto to fall back to the "
        "Engine API builder",
    )


def cli_command(cli: DockerCli, mode: str, request: BuildRequest, iidfile: str) -> list[str]:
    """The docker CLI argv for a BuildKit build (no secret values on it: only file paths)."""
    context = request.context
    argv = [cli.path, *(["buildx", "build", "--load"] if mode == "buildx" else ["build"])]
    if mode == "buildx" and request.builder_name:
        argv += ["--builder", request.builder_name]
    argv += ["--progress", "plain", "--platform", request.platform, "--iidfile", iidfile]
    argv += ["--file", str(context.root / context.dockerfile)]
    for tag in request.tags:
        argv += ["--tag", tag]
    for name, value in request.build_args.items():
        argv += ["--build-arg", f"{name}={value}"]
    for name, value in request.labels.items():
        argv += ["--label", f"{name}={value}"]
    if request.ca is not None:
        argv += ["--secret", f"id={SECRET_ID},src={request.ca.path}"]
    argv.append(str(context.root))
    return argv


def build_with_cli(cli: DockerCli, mode: str, request: BuildRequest, on_line: LogLine) -> str:
    """Run the CLI build, feeding each output line to ``on_line``; the image id."""
    with tempfile.TemporaryDirectory(prefix="actk-build-") as scratch:
        iidfile = os.path.join(scratch, "iid")
        env = {**os.environ, "DOCKER_BUILDKIT": "1", "BUILDKIT_PROGRESS": "plain"}
        argv = cli_command(cli, mode, request, iidfile)
        tail: deque[str] = deque(maxlen=25)
        try:
            process = subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=env,
                stdin=subprocess.DEVNULL,
                errors="replace",
            )
        except OSError as exc:
            raise DockerError(f"cannot run {cli.path}: {exc}", hint="check the client") from None
        assert process.stdout is not None
        try:
            for raw in process.stdout:
                line = raw.rstrip("\n")
                tail.append(line)
                on_line(line)
            code = process.wait()
        except BaseException:
            process.terminate()
            process.wait(timeout=30)
            raise
        if code != 0:
            raise DockerError(
                f"the build failed ({mode}, exit code {code}):\n" + "\n".join(tail),
                hint="fix the step named above; rerun with CI=true to see the whole log",
            )
        return Path(iidfile).read_text(encoding="utf-8").strip()


def build_with_api(
    request: BuildRequest, on_line: LogLine, client: docker.DockerClient | None = None
) -> str:
    """Build through docker-py and the classic builder; the image id."""
    import docker
    from docker.utils.build import create_archive

    from toolkit.dockerfile import for_classic_builder
    from toolkit.engine import docker_client

    context = request.context
    dockerfile_path = context.root / context.dockerfile
    ca_name = ".actk/ca.crt" if request.ca else None
    text, warnings = for_classic_builder(
        dockerfile_path.read_text(encoding="utf-8"), ca_file=ca_name
    )
    for warning in warnings:
        on_line(f"warning: {warning}")
    extra = [(".actk/Dockerfile", text)]
    if request.ca is not None and ca_name is not None:
        extra.append((ca_name, request.ca.path.read_text(encoding="utf-8")))
    client = client or docker_client()
    archive = create_archive(str(context.root), files=context.entries, extra_files=extra)
    image_id = None
    tail: deque[str] = deque(maxlen=25)
    try:
        stream = client.api.build(
            fileobj=archive,
            custom_context=True,
            dockerfile=".actk/Dockerfile",
            tag=request.tags[0],
            buildargs=request.build_args,
            labels=request.labels,
            platform=request.platform,
            rm=True,
            forcerm=True,
            decode=True,
        )
        for chunk in stream:
            if "error" in chunk:
                detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
                raise DockerError(
                    "the build failed (Engine API):\n" + "\n".join([*tail, detail.strip()]),
                    hint="fix the step named above",
                )
            if "aux" in chunk and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
            for line in str(chunk.get("stream", "")).splitlines():
                if line.strip():
                    tail.append(line)
                    on_line(line)
    except docker.errors.APIError as exc:
        raise DockerError(f"the engine refused the build: {exc.explanation}", hint=None) from None
    finally:
        archive.close()
    if image_id is None:
        raise DockerError("the engine reported no image id for the build", hint="retry the build")
    for reference in request.tags[1:]:
        name, tag = reference.rsplit(":", 1)
        client.api.tag(image_id, name, tag)
    return image_id
