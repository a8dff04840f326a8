"""`actk push`: a local image -> its registry, with in-memory credentials, retries and digest.

Credentials go to the Engine API push call as ``X-Registry-Auth`` and nowhere else: nothing is
written to ``~/.docker/config.json``. Failures the registry may recover from (resets, timeouts,
5xx) are retried with backoff; refusals are explained with the permission that is missing.
The digest is then read back from the registry and recorded in ``.actk/state.json``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.console import Console
from toolkit.errors import DockerError, RegistryError
from toolkit.manifest import Manifest, RegistrySettings
from toolkit.push_progress import LayerSink, LayerTally, layer_progress
from toolkit.redact import redact
from toolkit.registry.credentials import RegistryCredentials
from toolkit.registry.hosts import DOCKER_HUB, registry_host, repository_path
from toolkit.tags import split_reference

if TYPE_CHECKING:
    import docker

# Engine messages after which the same push may well succeed.
TRANSIENT_MARKERS = (
    "connection reset",
    "broken pipe",
    "eof",
    "i/o timeout",
    "timeout",
    "connection refused",
    "tls handshake",
    "500 internal server error",
    "502 bad gateway",
    "503 service unavailable",
    "504 gateway",
    "too many requests",
    "toomanyrequests",
    "blob upload unknown",
    "received unexpected http status: 5",
)
DENIED_MARKERS = ("denied", "unauthorized", "authentication required", "forbidden")


@dataclass
class PushOptions:
    """What the command line says; empty ``images`` means the tags a build of the repo gets."""

    images: list[str] = field(default_factory=list)
    username: str | None = None
    password: str | None = None
    registry_kind: str | None = None
    platform: str | None = None
    force: bool = False
    retries: int = 3
    backoff: float = 1.0


@dataclass
class PushResult:
    repository: str
    tags: list[str]
    digest: str
    registry: str
    credentials: str
    digest_verified: bool
    bytes_uploaded: int
    layers_uploaded: int
    layers_existing: int
    attempts: int
    seconds: float
    state_file: str | None = None

    @property
    def reference(self) -> str:
        return f"{self.repository}@{self.digest}"

    def to_dict(self) -> dict[str, object]:
        return {
            "reference": self.reference,
            "repository": self.repository,
            "tags": self.tags,
            "digest": self.digest,
            "digest_verified": self.digest_verified,
            "registry": self.registry,
            "credentials": self.credentials,
            "bytes_uploaded": self.bytes_uploaded,
            "layers_uploaded": self.layers_uploaded,
            "layers_existing": self.layers_existing,
            "attempts": self.attempts,
            "seconds": round(self.seconds, 2),
            "state_file": self.state_file,
        }


class TransientPushError(Exception):
    """A push failure worth retrying."""


def push_image(
    directory: Path, options: PushOptions, console: Console, env: Mapping[str, str]
) -> PushResult:
    """Push the repository's image (or ``options.images``) and record the digest."""
    from toolkit.build import planned_tags
    from toolkit.engine import docker_client
    from toolkit.manifest import find_manifest, load_manifest

    manifest_path = find_manifest(directory)
    repo = manifest_path.parent
    manifest = load_manifest(manifest_path)
    references = options.images or planned_tags(repo, manifest, [], console)
    repository = _one_repository(references)
    tags = [split_reference(r)[1] or "latest" for r in references]
    host = _registry_of(repository, manifest)
    client = docker_client()
    platform = options.platform or manifest.build.platform
    for reference in references:
        check_platform(client, reference, platform, force=options.force)
    if set(tags) == {"latest"}:
        console.warn(
            f"{repository} is pushed only as :latest; deployments pin a digest, but people "
            "and rollbacks need a stable tag: add one with --tag '{git_sha}' or image.tag"
        )

    credentials = resolve_for(host, manifest, options, env)
    console.step(
        f"pushing {repository} ({', '.join(tags)}) to {host} with "
        + (credentials.source if credentials else "no credentials (anonymous)")
    )
    check_access(host, repository, credentials, console)
    started = time.monotonic()
    tally = LayerTally()
    attempts, digest = 0, ""
    for tag in tags:
        used, digest = push_with_retries(
            client, repository, tag, credentials, console, options, tally
        )
        attempts += used
    verified, digest = verify_digest(host, repository, tags[0], digest, credentials, console)
    result = PushResult(
        repository=repository,
        tags=tags,
        digest=digest,
        registry=host,
        credentials=credentials.source if credentials else "anonymous",
        digest_verified=verified,
        bytes_uploaded=tally.bytes_uploaded,
        layers_uploaded=len(tally.uploaded),
        layers_existing=len(tally.existing - tally.uploaded.keys()),
        attempts=attempts,
        seconds=time.monotonic() - started,
    )
    result.state_file = str(
        record_image(repo, repository=repository, tags=tags, digest=digest, platform=platform)
    )
    return result


def resolve_for(
    host: str, manifest: Manifest, options: PushOptions, env: Mapping[str, str]
) -> RegistryCredentials | None:
    from toolkit.registry.resolve import resolve_credentials

    settings: RegistrySettings = manifest.image.registry
    if options.registry_kind:
        settings = settings.model_copy(update={"kind": options.registry_kind})
    return resolve_credentials(
        host, settings, env, username=options.username, password=options.password
    )


def push_with_retries(
    client: docker.DockerClient,
    repository: str,
    tag: str,
    credentials: RegistryCredentials | None,
    console: Console,
    options: PushOptions,
    tally: LayerTally,
) -> tuple[int, str]:
    """(attempts used, digest the engine reported) for one tag; retries transient failures."""
    secrets = credentials.secrets if credentials else ()
    delay = options.backoff
    for attempt in range(1, options.retries + 2):
        try:
            with layer_progress(console, f"{repository}:{tag}") as sink:
                digest = push_once(client, repository, tag, credentials, sink, tally)
            return attempt, digest
        except TransientPushError as exc:
            reason = redact(str(exc), secrets)
            if attempt > options.retries:
                raise _failure(repository, tag, reason, credentials, transient=True) from None
            console.warn(
                f"push of {repository}:{tag} failed ({reason}); retrying in {delay:g} s "
                f"({attempt}/{options.retries})"
            )
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover


def push_once(
    client: docker.DockerClient,
    repository: str,
    tag: str,
    credentials: RegistryCredentials | None,
    sink: LayerSink,
    tally: LayerTally,
) -> str:
    """One Engine API push; returns the digest the engine reports."""
    import docker.errors
    import requests

    auth = credentials.auth_config() if credentials else None
    digest = ""
    try:
        for event in client.api.push(
            repository, tag=tag, auth_config=auth, stream=True, decode=True
        ):
            if not isinstance(event, dict):
                continue
            if event.get("error") or event.get("errorDetail"):
                detail = event.get("errorDetail") or {}
                message = str(event.get("error") or detail.get("message") or "unknown error")
                if is_transient(message):
                    raise TransientPushError(message)
                raise _failure(repository, tag, message, credentials, transient=False)
            aux = event.get("aux")
            if isinstance(aux, dict) and aux.get("Digest"):
                digest = str(aux["Digest"])
            tally.record(event)
            sink(event)
    except docker.errors.APIError as exc:
        message = str(exc.explanation or exc)
        if exc.status_code and exc.status_code >= 500 and is_transient(message):
            raise TransientPushError(message) from None
        raise DockerError(
            f"the engine refused to push {repository}:{tag}: {message}",
            hint="check that the image exists locally (docker image ls) and the engine is healthy",
        ) from None
    except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
        raise TransientPushError(f"connection to the engine lost: {type(exc).__name__}") from None
    if not digest:
        raise TransientPushError("the engine reported no digest")
    return digest


def is_transient(message: str) -> bool:
    lowered = message.lower()
    if any(marker in lowered for marker in DENIED_MARKERS):
        return False
    return any(marker in lowered for marker in TRANSIENT_MARKERS)


def check_access(
    host: str, repository: str, credentials: RegistryCredentials | None, console: Console
) -> None:
    """Refused credentials fail here, in a second, with the missing permission named."""
    from toolkit.registry.client import AccessDenied, RegistryClient

    try:
        with RegistryClient(host, credentials) as registry:
            registry.check_access(repository_path(repository))
    except AccessDenied as exc:
        source = credentials.source if credentials else "no credentials"
        raise RegistryError(
            f"{exc.message}: {source} may not push {repository}",
            hint=_denied_hint(host, credentials),
        ) from None
    except RegistryError as exc:
        # The engine may reach what we cannot (its own proxy or mirror settings): let it try.
        console.warn(f"could not check the credentials first ({exc.message})")


def verify_digest(
    host: str,
    repository: str,
    tag: str,
    pushed: str,
    credentials: RegistryCredentials | None,
    console: Console,
) -> tuple[bool, str]:
    """Read the tag's digest back from the registry; it must be the one the engine pushed."""
    from toolkit.registry.client import RegistryClient

    try:
        with RegistryClient(host, credentials) as registry:
            stored = registry.manifest_digest(repository_path(repository), tag)
    except RegistryError as exc:
        console.warn(
            f"could not read the digest back from {host} ({exc.message}); using the engine's"
        )
        return False, pushed
    if stored != pushed:
        raise RegistryError(
            f"{host} holds {repository}:{tag} as {stored}, but the engine pushed {pushed}",
            hint="another push to the same tag raced this one; push again, or use a unique tag",
        )
    return True, stored


def check_platform(
    client: docker.DockerClient, reference: str, platform: str, *, force: bool
) -> None:
    """Refuse an image built for another platform than the one the targets run."""
    import docker.errors

    try:
        attrs: dict[str, Any] = client.images.get(reference).attrs
    except docker.errors.ImageNotFound:
        raise DockerError(
            f"there is no local image {reference}",
            hint="build it first (actk build), or name an existing image: actk push IMAGE:TAG",
        ) from None
    found = "/".join(
        part for part in (attrs.get("Os"), attrs.get("Architecture"), attrs.get("Variant")) if part
    )
    wanted_os, _, wanted_arch = platform.partition("/")
    wanted_arch = wanted_arch.split("/")[0]
    if (attrs.get("Os"), attrs.get("Architecture")) != (wanted_os, wanted_arch) and not force:
        raise RegistryError(
            f"{reference} is built for {found or 'an unknown platform'}, but the manifest's "
            f"platform is {platform}",
            hint=f"rebuild with `actk build --platform {platform}`, or push anyway with --force",
        )


def record_image(
    repo: Path, *, repository: str, tags: list[str], digest: str, platform: str
) -> Path:
    """What deploy pins: the pushed repository and digest, in ``.actk/state.json``."""
    from toolkit.state import write_section

    return write_section(
        repo,
        "image",
        {
            "repository": repository,
            "tags": tags,
            "digest": digest,
            "reference": f"{repository}@{digest}",
            "platform": platform,
            "pushed_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    )


def _one_repository(references: list[str]) -> str:
    repositories = {split_reference(r)[0] for r in references}
    if len(repositories) != 1:
        raise RegistryError(
            "push one repository at a time: " + ", ".join(sorted(repositories)),
            hint="run actk push once per repository",
        )
    return repositories.pop()


def _registry_of(repository: str, manifest: Manifest) -> str:
    host = registry_host(repository)
    if host == DOCKER_HUB and not repository.startswith(DOCKER_HUB + "/"):
        raise RegistryError(
            f"{repository} names no registry",
            hint=f"set image.repository in agent.yaml to <registry>/{manifest.name} (e.g. "
            f"myregistry.azurecr.io/{manifest.name} or registry.cn-hangzhou.aliyuncs.com/"
            f"<namespace>/{manifest.name}), or pass a full reference: actk push HOST/NAME:TAG "
            f"(docker.io/<user>/{manifest.name} for Docker Hub)",
        )
    return host


def _failure(
    repository: str,
    tag: str,
    message: str,
    credentials: RegistryCredentials | None,
    *,
    transient: bool,
) -> RegistryError:
    """The error for a failed push, naming the cause and the fix."""
    host = registry_host(repository)
    text = redact(message, credentials.secrets if credentials else ())
    lowered = text.lower()
    what = f"pushing {repository}:{tag} failed: {text}"
    if "no such host" in lowered or "server misbehaving" in lowered:
        return RegistryError(
            f"unknown registry host {host}: {text}",
            hint="check the host in image.repository (a typo, or a registry that does not exist)",
        )
    if "x509" in lowered or "certificate" in lowered:
        return RegistryError(
            what,
            hint=f"the engine does not trust {host}'s certificate: put its CA in "
            f"/etc/docker/certs.d/{host}/ca.crt",
        )
    if "expired" in lowered:
        return RegistryError(
            what, hint="the registry token expired: run the push again (it fetches a new one)"
        )
    if any(marker in lowered for marker in DENIED_MARKERS):
        return RegistryError(what, hint=_denied_hint(host, credentials))
    if "server gave http response to https client" in lowered:
        return RegistryError(
            what,
            hint=f"{host} speaks plain HTTP: serve it over TLS, or add it to the engine's "
            "insecure-registries (daemon.json)",
        )
    if transient:
        return RegistryError(
            f"{what} (after retries)",
            hint=f"{host} is unreachable or failing: check the network and the registry's "
            "health, then run the push again (layers already uploaded are not sent twice)",
        )
    return RegistryError(what, hint="run the push again; if it persists, check the registry")


def _denied_hint(host: str, credentials: RegistryCredentials | None) -> str:
    from toolkit.registry.alibaba import parse_host
    from toolkit.registry.hosts import is_azure

    if credentials is None:
        return (
            f"no credentials were found for {host}: pass --username with --password-stdin, set "
            "ACTK_REGISTRY_USERNAME/ACTK_REGISTRY_PASSWORD, or `docker login` first"
        )
    if is_azure(host) or credentials.username == "00000000-0000-0000-0000-000000000000":
        return (
            "the identity needs the AcrPush role on the registry (or Container Registry "
            "Repository Writer on ABAC-enabled registries); scoped tokens need content/write "
            "on this repository"
        )
    if parse_host(host) is not None:
        return (
            "the RAM identity needs cr:PushRepository on this repository (e.g. the "
            "AliyunContainerRegistryFullAccess policy), and the namespace must exist or allow "
            "automatic repository creation"
        )
    return f"the credentials from {credentials.source} may not push to this repository"

