"""`actk build --remote acr`: the planned build runs on ACR Tasks, so no local Docker is needed.

    plan (toolkit.build.plan_build) -> the registry's ARM resource -> the context as tar.gz
    -> listBuildSourceUploadUrl + PUT -> scheduleRun (DockerBuildRequest) -> follow the log
    -> wait for the run -> RemoteBuildResult with the pushed digests

ACR pushes the image itself (``isPushEnabled``), so a remote build needs no `actk push`. Build
arguments travel in the run request and end up in the image history, so a value of a secret
never goes there; the CA bundle of a local build stays local (ACR Tasks builds on Azure's
network, not behind this machine's proxy); labels come from the Dockerfile's LABEL lines, which
the template fills from the VERSION / REVISION / CREATED / SOURCE build arguments.

A DockerBuildRequest runs the classic builder, not BuildKit (https://github.com/Azure/acr/
issues/721 is open), so the uploaded Dockerfile is the one :mod:`toolkit.dockerfile` adapts for
it: the template's optional CA secret mount is dropped (there is no bundle to mount), cache
mounts are dropped, and any other ``RUN --mount`` is refused before anything is uploaded.
"""

from __future__ import annotations

import codecs
import gzip
import io
import tarfile
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from toolkit.build_context import BuildContext, human_bytes, refuse_secret_files, secret_files
from toolkit.builders import BuildRequest
from toolkit.cloud.acr_tasks import (
    ARM_RETRY,
    CLOUD_ARM_ENDPOINTS,
    DEFAULT_ARM_ENDPOINT,
    AcrTasksClient,
    LogLinkExpired,
    OutputImage,
    RegistryResource,
    RunState,
    parse_login_server,
)
from toolkit.cloud.azure_auth import ARM_SCOPE, TOKEN_VARIABLES, azure_token
from toolkit.cloud.http import RetryPolicy
from toolkit.console import Console
from toolkit.dockerfile import for_classic_builder
from toolkit.errors import CloudError, ManifestError, UsageError
from toolkit.manifest import RegistrySettings
from toolkit.redact import MIN_SECRET_LENGTH
from toolkit.tags import split_reference

BUILDER = "acr-tasks"
TAIL_LINES = 20
# Environment variables whose values are secrets whatever the manifest says.
ALWAYS_SECRET = (*TOKEN_VARIABLES.values(), "AZURE_CLIENT_SECRET")
ARCHITECTURES = ("amd64", "x86", "386", "arm", "arm64")
VARIANTS = ("v6", "v7", "v8")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
# Idle log polls between looks at the run; a run seen finished twice ends the following.
STATUS_EVERY = 5


@dataclass(frozen=True)
class RemoteBuildOptions:
    """How the remote build runs and how patiently it is followed."""

    timeout: int = 3600  # the run's own limit on ACR, seconds (300-28800)
    no_cache: bool = False
    poll_interval: float = 1.0  # the first wait between log polls; doubles while idle
    poll_max: float = 10.0
    queue_allowance: float = 1800.0  # how long a run may wait in ACR's queue before it starts
    retry: RetryPolicy = ARM_RETRY


@dataclass
class RemoteBuildResult:
    run_id: str
    status: str
    registry: str  # the login server, e.g. myreg.azurecr.io
    image_names: list[str]  # registry/repository:tag, as planned
    images: list[OutputImage]  # what ACR reports it pushed, with digests
    platform: str
    context_bytes: int  # the files of the context, uncompressed
    upload_bytes: int  # the tar.gz sent to ACR
    seconds: float

    @property
    def digest(self) -> str | None:
        """The pushed manifest digest (every tag of one build shares it)."""
        return next((image.digest for image in self.images if image.digest), None)

    def to_dict(self) -> dict[str, object]:
        return {
            "builder": BUILDER,
            "run_id": self.run_id,
            "status": self.status,
            "registry": self.registry,
            "tags": self.image_names,
            "images": [image.to_dict() for image in self.images],
            "digest": self.digest,
            "platform": self.platform,
            "context_bytes": self.context_bytes,
            "upload_bytes": self.upload_bytes,
            "seconds": round(self.seconds, 2),
        }


# --- the request, from the plan ---------------------------------------------------------------


def registry_resource(tags: Sequence[str], registry: RegistrySettings) -> RegistryResource:
    """The ACR that every tag names, with agent.yaml's subscription and resource group."""
    if registry.kind not in ("auto", "azure"):
        raise UsageError(
            f"image.registry.kind is '{registry.kind}', but --remote acr builds on Azure "
            "Container Registry",
            hint="set image.registry.kind to azure (or auto), or build locally with `actk build`",
        )
    hosts: dict[str, str] = {}
    for tag in tags:
        name, _ = split_reference(tag)
        host = name.split("/", 1)[0] if "/" in name else ""
        if not parse_login_server(host):
            raise UsageError(
                f"'{tag}' is not in an Azure Container Registry (<registry>.azurecr.io)",
                hint="set image.repository in agent.yaml to <registry>.azurecr.io/<name> (or "
                "pass such a --tag); other registries build locally with `actk build`",
            )
        hosts.setdefault(host.lower(), tag)
    if len(hosts) != 1:
        raise UsageError(
            "an ACR Tasks run pushes to one registry, but the tags name "
            + ", ".join(sorted(hosts)),
            hint="give every --tag the same <registry>.azurecr.io host",
        )
    login_server = next(iter(hosts))
    name, _ = parse_login_server(login_server) or ("", "")
    missing = [
        f"image.registry.{field_name}"
        for field_name in ("subscription_id", "resource_group")
        if not getattr(registry, field_name)
    ]
    if missing:
        raise ManifestError(
            f"agent.yaml has no {' and no '.join(missing)}, which `actk build --remote acr` "
            f"needs to find registry {name}",
            hint="add them under image.registry in agent.yaml; "
            f"`az acr show --name {name} --query id -o tsv` prints "
            "/subscriptions/<subscription_id>/resourceGroups/<resource_group>/...",
        )
    return RegistryResource(
        subscription_id=str(registry.subscription_id).strip(),
        resource_group=str(registry.resource_group).strip(),
        name=name,
        login_server=login_server,
    )


def image_names(tags: Sequence[str]) -> list[str]:
    """``myreg.azurecr.io/team/app:v1`` -> ``team/app:v1`` (ACR Tasks pushes to its registry)."""
    return [tag.split("/", 1)[1] for tag in tags]


def platform_properties(platform: str) -> dict[str, str]:
    """``linux/arm64/v8`` -> ``{"os": "Linux", "architecture": "arm64", "variant": "v8"}``."""
    parts = platform.lower().split("/")
    if len(parts) in (2, 3) and parts[0] in ("linux", "windows") and parts[1] in ARCHITECTURES:
        properties = {"os": parts[0].capitalize(), "architecture": parts[1]}
        if len(parts) == 3 and parts[2] in VARIANTS:
            properties["variant"] = parts[2]
            return properties
        if len(parts) == 2:
            return properties
    raise UsageError(
        f"ACR Tasks cannot build for platform '{platform}'",
        hint="use linux/amd64 (what the cloud runtimes run) or linux/arm64",
    )


def secret_values(env: Mapping[str, str], secret_names: Sequence[str]) -> dict[str, str]:
    """Name -> value of every secret present in ``env`` (the manifest's and Azure's own)."""
    names = dict.fromkeys((*secret_names, *ALWAYS_SECRET))
    return {name: env[name] for name in names if env.get(name)}


def build_arguments(build_args: Mapping[str, str], secrets: Mapping[str, str]) -> list[dict]:
    """``Argument`` objects; a build argument that carries a secret value is refused."""
    arguments = []
    for name, value in build_args.items():
        leaked = next(
            (
                secret
                for secret, secret_value in secrets.items()
                if len(secret_value) >= MIN_SECRET_LENGTH and secret_value in value
            ),
            None,
        )
        if name in secrets or leaked:
            what = f"is the secret {name}" if name in secrets else f"carries the secret {leaked}"
            raise UsageError(
                f"build argument {name} {what}; a remote build would store it in the ACR run "
                "and the image history",
                hint="pass secrets to the container at run time (runtime.secrets), not as "
                "--build-arg",
            )
        arguments.append({"name": name, "value": value, "isSecret": False})
    return arguments


def dockerfile_path(context: BuildContext) -> str:
    path = PurePosixPath(context.dockerfile.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts:
        raise UsageError(
            f"the Dockerfile {context.dockerfile} is outside the build context, which is all "
            "that ACR Tasks receives",
            hint="move the Dockerfile into the context (build.context in agent.yaml)",
        )
    return str(path)


def docker_build_request(
    plan: BuildRequest,
    source_location: str,
    arguments: list[dict],
    options: RemoteBuildOptions,
) -> dict[str, Any]:
    """The ``DockerBuildRequest`` body of scheduleRun."""
    return {
        "type": "DockerBuildRequest",
        "sourceLocation": source_location,
        "dockerFilePath": dockerfile_path(plan.context),
        "imageNames": image_names(plan.tags),
        "isPushEnabled": True,
        "noCache": options.no_cache,
        "platform": platform_properties(plan.platform),
        "arguments": arguments,
        "timeout": options.timeout,
    }


def classic_dockerfile(context: BuildContext) -> tuple[bytes | None, list[str]]:
    """The Dockerfile as ACR's classic builder needs it (None when it needs no change), and
    what was dropped on the way."""
    path = context.root / context.dockerfile
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"cannot read the Dockerfile {path}: {exc}", hint="check build.dockerfile in agent.yaml"
        ) from None
    try:
        adapted, warnings = for_classic_builder(text, ca_file=None)
    except UsageError as exc:
        raise UsageError(
            exc.message.replace("the Engine API builder", "ACR Tasks (the classic builder)"),
            hint="ACR Tasks quick builds have no BuildKit: remove that `RUN --mount` from the "
            "Dockerfile, or build locally with `actk build`",
        ) from None
    return (None if adapted == text else adapted.encode("utf-8")), warnings


def pack_context(
    context: BuildContext,
    *,
    allow_secret_files: bool = False,
    replace: Mapping[str, bytes] | None = None,
) -> bytes:
    """The context's entries (as ``collect`` chose them) as a reproducible tar.gz.

    Sorted entries, owners reset, a zero gzip timestamp: the same files give the same bytes.
    ``replace`` maps entry names to the content to send instead (the adapted Dockerfile).
    """
    if not allow_secret_files:
        refuse_secret_files(context)
    replace = replace or {}

    def normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = int(info.mtime)  # a float would add a PAX header to every entry
        return info

    buffer = io.BytesIO()
    try:
        with (
            gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as compressed,
            tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            for name in sorted(context.entries):
                path = context.root / name
                if name in replace:
                    info = normalise(tar.gettarinfo(str(path), arcname=name))
                    info.size = len(replace[name])
                    tar.addfile(info, io.BytesIO(replace[name]))
                else:
                    tar.add(path, arcname=name, recursive=False, filter=normalise)
    except OSError as exc:
        raise UsageError(
            f"cannot pack the build context {context.root}: {exc.strerror or exc} "
            f"({exc.filename or ''})",
            hint="make the files readable, or exclude them in .dockerignore",
        ) from None
    return buffer.getvalue()


# --- following the run ------------------------------------------------------------------------


class LogLines:
    """Bytes of the log in, whole lines out (scrubbed), the last few kept for errors."""

    def __init__(self, emit: Callable[[str], None], scrub: Callable[[str], str]) -> None:
        self._emit = emit
        self._scrub = scrub
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)

    def feed(self, data: bytes) -> None:
        self._pending += self._decoder.decode(data)
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self._line(line)

    def close(self) -> None:
        self._pending += self._decoder.decode(b"", final=True)
        if self._pending:
            self._line(self._pending)
            self._pending = ""

    def _line(self, line: str) -> None:
        # ACR writes \r\n; a bare \r redraws a progress line, so only its last state counts.
        line = self._scrub(line.rstrip("\r").rsplit("\r", 1)[-1])
        if line.strip():
            self.tail.append(line)
        self._emit(line)


def follow_log(
    client: AcrTasksClient,
    run_id: str,
    lines: LogLines,
    *,
    options: RemoteBuildOptions,
    deadline: float,
    console: Console,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Print the run's log as it grows, until ACR marks it Complete.

    It stops early when the run has finished but its log never completes, and at ``deadline``.
    """
    url = client.log_url(run_id)
    offset = 0
    delay = options.poll_interval
    idle = 0
    refreshed = 0
    seen_finished = 0
    while True:
        try:
            state = client.log_state(url)
            if state is not None and state.length > offset:
                chunk = client.read_log(url, offset, state.length - 1)
                if chunk:
                    offset += len(chunk)
                    lines.feed(chunk)
                    delay, idle = options.poll_interval, 0
                    continue
            if state is not None and state.complete is not None and offset >= state.length:
                break
        except LogLinkExpired:
            refreshed += 1
            if refreshed > 3:
                raise CloudError(
                    f"the log of run {run_id} keeps refusing its SAS URL",
                    hint="check this machine's clock; read the log with `az acr task logs "
                    f"--registry {client.registry.name} --run-id {run_id}`",
                ) from None
            url = client.log_url(run_id)
            continue
        if time.monotonic() > deadline:
            console.warn(f"stopped following the log of run {run_id}: it is taking too long")
            break
        idle += 1
        if idle % STATUS_EVERY == 0:
            seen_finished = seen_finished + 1 if client.get_run(run_id).finished else 0
            if seen_finished >= 2:  # the run is over but its log never completed
                break
        sleep(delay)
        delay = min(delay * 2, options.poll_max)
    lines.close()


def wait_for_run(
    client: AcrTasksClient,
    run_id: str,
    *,
    options: RemoteBuildOptions,
    deadline: float,
    sleep: Callable[[float], None] = time.sleep,
) -> RunState:
    """The run, once its status is terminal; a CloudError when ``deadline`` passes first."""
    delay = options.poll_interval
    while True:
        run = client.get_run(run_id)
        if run.finished:
            return run
        if time.monotonic() > deadline:
            raise CloudError(
                f"ACR Tasks run {run_id} is still {run.status} after "
                f"{options.queue_allowance + options.timeout:.0f} s",
                hint=f"follow it with `az acr task logs --registry {client.registry.name} "
                f"--run-id {run_id}`, or cancel it with `az acr task cancel-run --registry "
                f"{client.registry.name} --run-id {run_id}`",
            )
        sleep(delay)
        delay = min(delay * 2, options.poll_max)


def run_failed(
    run: RunState, tail: Sequence[str], registry: RegistryResource, scrub: Callable[[str], str]
) -> CloudError:
    message = f"ACR Tasks run {run.run_id} ended {run.status}"
    if run.error_message:
        message += f": {run.error_message}"
    if tail:
        message += f"\nlast {len(tail)} log lines:\n" + "\n".join(f"  {line}" for line in tail)
    logs = f"az acr task logs --registry {registry.name} --run-id {run.run_id}"
    hints = {
        "Timeout": f"the build ran longer than its timeout; raise it or make the build faster "
        f"(full log: {logs})",
        "Canceled": f"the run was cancelled; run the build again (full log: {logs})",
    }
    return CloudError(
        scrub(message),
        hint=hints.get(run.status, f"fix the failing step shown in the log (full log: `{logs}`)"),
    )


# --- the flow ---------------------------------------------------------------------------------


def check_endpoint(endpoint: str) -> str:
    """An https ARM endpoint (plain http only on loopback, for contract tests)."""
    parts = urlsplit(endpoint.strip())
    if not parts.netloc or not (
        parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK)
    ):
        raise UsageError(
            f"'{endpoint}' is not an https URL for Azure Resource Manager",
            hint=f"unset ACTK_AZURE_ARM_ENDPOINT, or set it to e.g. {DEFAULT_ARM_ENDPOINT}",
        )
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def arm_token(endpoint: str, env: Mapping[str, str]) -> str:
    """An ARM token; for a sovereign cloud without AZURE_ACCESS_TOKEN, one for its endpoint."""
    sovereign = endpoint in CLOUD_ARM_ENDPOINTS.values() and endpoint != DEFAULT_ARM_ENDPOINT
    if sovereign and not env.get(TOKEN_VARIABLES[ARM_SCOPE]):
        return azure_token(f"{endpoint}/.default", env)
    return azure_token(ARM_SCOPE, env)


def remote_build(
    plan: BuildRequest,
    *,
    registry: RegistrySettings,
    env: Mapping[str, str],
    console: Console,
    arm_endpoint: str | None = None,
    secret_names: Sequence[str] = (),
    allow_secret_files: bool = False,
    options: RemoteBuildOptions | None = None,
) -> RemoteBuildResult:
    """Build ``plan`` on ACR Tasks in the registry its tags name, and push it there.

    ``registry`` is agent.yaml's ``image.registry`` (subscription_id and resource_group);
    ``secret_names`` are the environment variables whose values must never leave this machine
    (the manifest's ``runtime.secrets``); ``allow_secret_files`` is ``--allow-secret-files``.
    """
    options = options or RemoteBuildOptions()
    if not 300 <= options.timeout <= 28800:
        raise UsageError(
            f"a remote build timeout of {options.timeout} s is outside ACR's 300-28800 s",
            hint="pick a timeout between 5 minutes and 8 hours",
        )
    started = time.monotonic()
    resource = registry_resource(plan.tags, registry)
    endpoint = check_endpoint(arm_endpoint or resource.arm_endpoint)
    secrets = secret_values(env, secret_names)
    arguments = build_arguments(plan.build_args, secrets)
    platform_properties(plan.platform)  # fail on these before anything is uploaded
    dockerfile_path(plan.context)

    context = plan.context
    dockerfile, dropped = classic_dockerfile(context)
    archive = pack_context(
        context,
        allow_secret_files=allow_secret_files,
        replace={dockerfile_path(context): dockerfile} if dockerfile else None,
    )
    console.step(
        f"context {context.root}: {len(context.files)} files, {context.human_size} "
        f"({human_bytes(len(archive))} as tar.gz)"
    )
    risky = secret_files(context)
    if risky:
        console.warn(
            "sending secret-looking files to ACR (--allow-secret-files): " + ", ".join(risky[:5])
        )
    for warning in dropped:
        console.detail(f"Dockerfile for ACR Tasks: {warning}")
    if plan.builder_name:
        console.detail(f"the buildx builder {plan.builder_name} is not used: ACR Tasks builds")
    if plan.ca is not None:
        console.detail(
            f"the CA bundle {plan.ca.path} stays here: ACR Tasks builds on Azure's network"
        )
    token = arm_token(endpoint, env)

    with AcrTasksClient(
        resource,
        token,
        endpoint=endpoint,
        retry=options.retry,
        secrets=secrets.values(),
        on_retry=console.detail,
    ) as client:
        scrub = client.redact
        correlation_id = str(uuid.uuid4())
        console.step(f"uploading the context to registry {resource.name} ({resource.login_server})")
        upload = client.source_upload_url(correlation_id)
        client.upload_source(upload, archive, correlation_id)
        request = docker_build_request(plan, upload.relative_path, arguments, options)
        run = client.schedule_run(request)
        console.step(f"ACR Tasks run {run.run_id} queued: {', '.join(plan.tags)} ({plan.platform})")
        deadline = time.monotonic() + options.queue_allowance + options.timeout
        lines = LogLines(lambda line: None, scrub)
        try:
            try:
                with console.live_log(f"building on ACR Tasks (run {run.run_id})") as sink:
                    lines = LogLines(sink, scrub)
                    follow_log(
                        client,
                        run.run_id,
                        lines,
                        options=options,
                        deadline=deadline,
                        console=console,
                    )
            except CloudError as exc:  # the log is a courtesy; the run's status is the verdict
                console.warn(f"cannot follow the log of run {run.run_id}: {exc.message}")
            final = wait_for_run(client, run.run_id, options=options, deadline=deadline)
        except KeyboardInterrupt:
            _cancel(client, run.run_id, console)
            raise

    if final.status != "Succeeded":
        raise run_failed(final, list(lines.tail), resource, scrub)
    images = list(final.output_images)
    pushed = {f"{image.repository}:{image.tag}" for image in images}
    missing = [
        tag
        for tag, name in zip(plan.tags, request["imageNames"], strict=True)
        if name not in pushed
    ]
    if missing:
        console.warn("ACR reported no pushed image for " + ", ".join(missing))
    return RemoteBuildResult(
        run_id=final.run_id,
        status=final.status,
        registry=resource.login_server,
        image_names=list(plan.tags),
        images=images,
        platform=plan.platform,
        context_bytes=context.size,
        upload_bytes=len(archive),
        seconds=time.monotonic() - started,
    )


def _cancel(client: AcrTasksClient, run_id: str, console: Console) -> None:
    """Best effort: a run left behind would still push an image nobody waits for."""
    try:
        client.cancel_run(run_id)
    except CloudError as exc:
        console.warn(f"could not cancel ACR Tasks run {run_id}: {exc.message}")
    else:
        console.warn(f"cancelled ACR Tasks run {run_id}")
