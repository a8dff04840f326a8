"""`actk build`: agent.yaml + flags -> a build request -> an image, on the best builder at hand."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from toolkit.build_context import collect, refuse_secret_files
from toolkit.builders import (
    BuildRequest,
    build_with_api,
    build_with_cli,
    builder_mode,
    choose_builder,
)
from toolkit.ca_bundle import find_ca_bundle
from toolkit.console import Console
from toolkit.gitinfo import GitInfo, read_git_info
from toolkit.manifest import Manifest, find_manifest, load_manifest
from toolkit.options import split_pair
from toolkit.tags import image_references

LABEL_PREFIX = "org.opencontainers.image."


@dataclass
class BuildOptions:
    """What the command line can override; None means "as agent.yaml says"."""

    tags: list[str] = field(default_factory=list)
    platform: str | None = None
    base_image: str | None = None
    build_args: list[str] = field(default_factory=list)
    ca_bundle: Path | None = None
    allow_secret_files: bool = False
    builder: str = "auto"
    tag_latest: bool = True  # also tag <repository>:latest, the default of run and smoke


@dataclass
class BuildResult:
    image_id: str
    tags: list[str]
    platform: str
    size: int
    builder: str
    context_bytes: int
    seconds: float
    ca_bundle: str | None

    def to_dict(self) -> dict[str, object]:
        return {
            "image_id": self.image_id,
            "tags": self.tags,
            "platform": self.platform,
            "size": self.size,
            "builder": self.builder,
            "context_bytes": self.context_bytes,
            "seconds": round(self.seconds, 2),
            "ca_bundle": self.ca_bundle,
        }


def project_version(repo: Path) -> str:
    """``[project].version`` of the repository's pyproject.toml, else 0.0.0."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    path = repo / "pyproject.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "0.0.0"
    version = data.get("project", {}).get("version")
    return str(version) if version else "0.0.0"


def parse_build_args(pairs: list[str]) -> dict[str, str]:
    return dict(split_pair(p, "--build-arg", "--build-arg PIP_INDEX_URL=https://…") for p in pairs)


def planned_tags(
    repo: Path,
    manifest: Manifest,
    templates: list[str],
    console: Console,
    *,
    latest: bool = True,
    git: GitInfo | None = None,
    now: datetime | None = None,
) -> list[str]:
    """The references a build of ``repo`` gets: each tag template filled (and ``:latest``)."""
    git = git or read_git_info(repo)
    now = now or datetime.now(timezone.utc)
    templates = templates or [manifest.image.tag]
    if git.short_sha:
        git_sha = git.short_sha + ("-dirty" if git.dirty else "")
    else:
        git_sha = "dev"
        if any("{git_sha}" in t for t in templates):
            console.warn(f"{repo.resolve()} is not a git repository: {{git_sha}} becomes 'dev'")
    values = {
        "git_sha": git_sha,
        "timestamp": now.strftime("%Y%m%d%H%M%S"),
        "version": project_version(repo),
    }
    repository = manifest.image.repository or manifest.name
    return image_references(repository, [*templates, *(["latest"] if latest else [])], values)


def plan_build(
    repo: Path, manifest: Manifest, options: BuildOptions, console: Console
) -> BuildRequest:
    """Everything the build needs, resolved and checked before the engine is touched."""
    git = read_git_info(repo)
    now = datetime.now(timezone.utc)
    version = project_version(repo)
    tags = planned_tags(
        repo, manifest, options.tags, console, latest=options.tag_latest, git=git, now=now
    )

    build = manifest.build
    context = collect((repo / build.context).resolve(), build.dockerfile)
    if not options.allow_secret_files:
        refuse_secret_files(context)

    created = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    revision = git.sha or "unknown"
    build_args = {
        "BASE_IMAGE": options.base_image or build.base_image,
        "VERSION": version,
        "REVISION": revision,
        "CREATED": created,
        "SOURCE": git.remote_url or "",
        **build.args,
        **parse_build_args(options.build_args),
    }
    labels = {
        LABEL_PREFIX + "title": manifest.name,
        LABEL_PREFIX + "description": manifest.description,
        LABEL_PREFIX + "version": version,
        LABEL_PREFIX + "revision": revision,
        LABEL_PREFIX + "created": created,
    }
    if git.remote_url:
        labels[LABEL_PREFIX + "source"] = git.remote_url
    return BuildRequest(
        context=context,
        tags=tags,
        platform=options.platform or build.platform,
        build_args=build_args,
        labels=labels,
        ca=find_ca_bundle(options.ca_bundle),
    )


def prepare_build(
    directory: Path, options: BuildOptions, console: Console
) -> tuple[Path, Manifest, BuildRequest]:
    """The repository, its manifest and the build request, after the agent's start-up checks."""
    from toolkit.agent_code import check_startup

    manifest_path = find_manifest(directory)
    repo = manifest_path.parent
    manifest = load_manifest(manifest_path)
    check_startup(repo, manifest_path)
    request = plan_build(repo, manifest, options, console)
    return repo, manifest, request


def build_image(directory: Path, options: BuildOptions, console: Console) -> BuildResult:
    """Check the repository, plan, build and inspect the image."""
    from toolkit.engine import docker_client

    _, _, request = prepare_build(directory, options, console)
    wanted, request.builder_name = builder_mode(options.builder)
    client = docker_client()  # fail early, with the fix, when no engine answers
    mode, cli = choose_builder(wanted)

    builder = f"{mode} via {cli.path}" if cli else "the Engine API (classic builder)"
    if request.builder_name:
        builder += f", builder {request.builder_name}"
    console.step(
        f"context {request.context.root}: {len(request.context.files)} files, "
        f"{request.context.human_size}"
    )
    if request.ca is not None:
        console.step(f"CA bundle {request.ca.path} (from {request.ca.source}) as a build secret")
    started = time.monotonic()
    with console.live_log(f"building {request.tags[0]} ({request.platform}) with {builder}") as log:
        if cli is not None:
            image_id = build_with_cli(cli, mode, request, log)
        else:
            image_id = build_with_api(request, log, client)
    seconds = time.monotonic() - started
    size = int(client.images.get(image_id).attrs.get("Size", 0))
    return BuildResult(
        image_id=image_id,
        tags=request.tags,
        platform=request.platform,
        size=size,
        builder=mode,
        context_bytes=request.context.size,
        seconds=seconds,
        ca_bundle=str(request.ca.path) if request.ca else None,
    )
