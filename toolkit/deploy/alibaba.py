"""Alibaba Cloud AgentRun: `actk deploy|status|delete alibaba`, `actk invoke --target alibaba`.

What a deploy sends (ROA, ACS3-signed; see :mod:`toolkit.cloud.agentrun`):

    GET  agents/runtimes?agentRuntimeName=<name>      the runtime of that name, if any, then
    GET  agents/runtimes/{id}                         its whole definition, to compare
    POST agents/runtimes                              when there is none:
         {"agentRuntimeName", "description", "artifactType": "Container",
          "containerConfiguration": {"image": <repo@sha256:..>, "imageRegistryType": "ACR" |
                                     "ACREE", "acrInstanceId", "port", "command"},
          "cpu": <cores>, "memory": <MB>, "port", "diskSize",
          "healthCheckConfiguration": {"httpGetUrl": "/ready", "initialDelaySeconds", ...},
          "protocolConfiguration": {"type": "HTTP"},
          "networkConfiguration": {"networkMode": "PUBLIC" | "PRIVATE" | "PUBLIC_AND_PRIVATE",
                                   "vpcId", "vswitchIds", "securityGroupId"},
          "sessionConcurrencyLimitPerInstance", "sessionIdleTimeoutSeconds",
          "sessionAffinityType", "headerFieldName", "enableSessionIsolation",
          "environmentVariables", "logConfiguration", "nasConfig", "ossMountConfig",
          "executionRoleArn", "credentialName", "workspaceId", "systemTags",
          "armsConfiguration", "edition"}
    PUT  agents/runtimes/{id}                         the same body, when the definition differs
                                                      (or the runtime is *_FAILED)
    GET  agents/runtimes/{id}                         every 10 s until READY or *_FAILED
    POST agents/runtimes/{id}/versions                with --publish / publish: true, unless the
                                                      newest version already has this definition
    GET  agents/runtimes/{id}/endpoints               then, only once the runtime is READY
    POST agents/runtimes/{id}/endpoints               {"agentRuntimeEndpointName": "default",
                                                       "targetVersion": "LATEST"} when missing,
    PUT  .../endpoints/{endpointId}                   or when its target version differs
    GET  .../endpoints/{endpointId}                   until it has its public URL

(s-comp's order: runtime, wait READY, endpoints; AgentRun refuses endpoint changes while the
runtime is CREATING or UPDATING.) The invoke URL is the endpoint's ``endpointPublicUrl``;
``actk invoke --target alibaba`` posts Responses requests to ``<that URL>/responses``, which
the platform passes to the container's ``/responses``.

Before any call the request is checked the way AgentRun would check it (names, cpu/memory/port,
the image host against the registry edition and region, linux/amd64), every problem on its own
line. runtime.secrets are read from the caller's environment and sent as environment
variables; their values appear in no output, ``--dry-run`` and ``--json`` included, nor in
errors. Idempotent: the same image and settings send no write at all (the runtime is compared
by the fields actk sends, so what AgentRun adds on its own is no change; an optional setting
removed from agent.yaml is left as it is on the runtime, except environment variables, which
are always sent whole).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.cloud.agentrun import (
    ENDPOINT_VARIABLE,
    FAILED,
    READY,
    TRANSITIONAL,
    AgentRunClient,
    Call,
    Runtime,
    RuntimeEndpoint,
    create_endpoint_call,
    create_runtime_call,
    failure_hint,
    get_endpoint_call,
    get_runtime_call,
    list_endpoints_call,
    list_runtimes_call,
    list_versions_call,
    open_client,
    publish_version_call,
    terminal,
    update_endpoint_call,
    update_runtime_call,
)
from toolkit.cloud.alibaba import AlibabaAPIError
from toolkit.deploy.core import (
    DIGEST_REFERENCE,
    SYSTEM_CLOCK,
    Clock,
    DeployOptions,
    DeployResult,
    Plan,
    PlannedRequest,
    Problem,
    invoke_failures,
    missing_secrets,
    poll,
    read_answer,
    read_environment,
    redact_values,
    resolve_image,
    responses_body,
    run_and_close,
    secret_values,
    target_section,
    utc_now,
)
from toolkit.errors import CloudError, InvokeError, ManifestError
from toolkit.manifest import ALIBABA_RUNTIME_NAME
from toolkit.redact import REDACTED, redact

if TYPE_CHECKING:
    import httpx

    from toolkit.console import Console
    from toolkit.invoke import InvokeResult
    from toolkit.manifest import AlibabaTarget, Manifest

TARGET = "alibaba"
POLL_INTERVAL = 10.0  # runtime status (s-comp: every 10 s, up to 15 minutes)
ENDPOINT_INTERVAL = 5.0
DELETE_INTERVAL = 5.0
DEFAULT_TIMEOUT = 900.0
PLATFORM = "linux/amd64"
# AgentRun runs on Function Compute, whose instances have 0.05-16 cores in steps of 0.05 and
# 128-32768 MB in steps of 64, with 1-4 GB per core.
CPU_MIN, CPU_MAX, CPU_STEP = Decimal("0.05"), Decimal("16"), Decimal("0.05")
MEMORY_STEP = 64
MEMORY_MIN, MEMORY_MAX = 128, 32768
MEMORY = re.compile(r"^(?P<amount>\d+(?:\.\d+)?)\s*(?P<unit>Mi|M|MB|MiB|Gi|G|GB|GiB)?$")
REGISTRY_TYPES = {"personal": "ACR", "enterprise": "ACREE"}
EDITION_NAMES = {"personal": "personal edition (ACR)", "enterprise": "enterprise edition (ACREE)"}
LATEST = "LATEST"
DESCRIPTION_LIMIT = 256


# --- options ----------------------------------------------------------------------------------


@dataclass
class AlibabaOptions(DeployOptions):
    timeout: float = DEFAULT_TIMEOUT
    publish: bool | None = None  # --publish/--no-publish; None: targets.alibaba.publish
    endpoint: str | None = None  # the control plane (else ACTK_ALIBABA_AGENTRUN_ENDPOINT)


# --- validation -------------------------------------------------------------------------------


def parse_cores(value: str) -> Decimal | None:
    """``runtime.cpu`` in cores: ``"1"``, ``"0.5"``, ``"500m"``; None when unreadable."""
    text = value.strip()
    try:
        cores = Decimal(text[:-1]) / 1000 if text.endswith("m") else Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    return cores if cores.is_finite() else None


def parse_memory_mb(value: str) -> int | None:
    """``runtime.memory`` in MB (binary units: ``2Gi``, ``2G`` and ``2GB`` are 2048;
    ``512Mi`` and a bare ``512`` are 512); None when unreadable or not whole."""
    match = MEMORY.match(value.strip())
    if not match:
        return None
    amount = Decimal(match["amount"])
    if (match["unit"] or "M").upper().startswith("G"):
        amount *= 1024
    return int(amount) if amount == amount.to_integral_value() else None


def _number(value: Decimal | float) -> str:
    return format(Decimal(str(value)).normalize(), "f")


@dataclass(frozen=True)
class Sizes:
    cpu: float | None
    memory: int | None
    problems: list[Problem]
    warnings: list[str]


def sizes(manifest: Manifest, target: AlibabaTarget) -> Sizes:
    """cpu (cores) and memory (MB): targets.alibaba's, else runtime.cpu/memory converted."""
    problems: list[Problem] = []
    warnings: list[str] = []
    cpu_field = "targets.alibaba.cpu" if target.cpu is not None else "runtime.cpu"
    cores = Decimal(str(target.cpu)) if target.cpu is not None else parse_cores(
        manifest.runtime.cpu
    )
    if cores is None:
        problems.append(Problem(cpu_field, f"{manifest.runtime.cpu!r} is not a CPU amount; "
                                "write cores, e.g. \"1\" or \"0.5\" (or set targets.alibaba.cpu)"))
    elif not CPU_MIN <= cores <= CPU_MAX:
        problems.append(Problem(cpu_field, f"{_number(cores)} cores is outside what AgentRun "
                                f"runs ({_number(CPU_MIN)} to {_number(CPU_MAX)}); pick a "
                                "value in that range"))
        cores = None
    elif cores % CPU_STEP:
        problems.append(Problem(cpu_field, f"{_number(cores)} cores is not a multiple of "
                                f"{_number(CPU_STEP)}; use e.g. "
                                f"{_number((cores / CPU_STEP).to_integral_value() * CPU_STEP)}"))
        cores = None
    memory_field = "targets.alibaba.memory" if target.memory is not None else "runtime.memory"
    memory = target.memory if target.memory is not None else parse_memory_mb(
        manifest.runtime.memory
    )
    if memory is None:
        problems.append(Problem(memory_field, f"{manifest.runtime.memory!r} is not a memory size; "
                                "write it in Mi or Gi, e.g. 2Gi (or set targets.alibaba.memory "
                                "in MB)"))
    elif not MEMORY_MIN <= memory <= MEMORY_MAX:
        problems.append(Problem(memory_field, f"{memory} MB is outside what AgentRun runs "
                                f"({MEMORY_MIN} to {MEMORY_MAX} MB); pick a size in that range"))
        memory = None
    elif memory % MEMORY_STEP:
        rounded = (memory + MEMORY_STEP - 1) // MEMORY_STEP * MEMORY_STEP
        problems.append(Problem(memory_field, f"{memory} MB is not a multiple of {MEMORY_STEP} "
                                f"MB; use e.g. {rounded}"))
        memory = None
    if cores is not None and memory is not None:
        gigabytes = Decimal(memory) / 1024
        if not cores <= gigabytes <= cores * 4:
            low = -(-int(cores * 1024) // MEMORY_STEP) * MEMORY_STEP
            high = int(cores * 4096) // MEMORY_STEP * MEMORY_STEP
            problems.append(Problem(memory_field, f"{memory} MB does not go with "
                                    f"{_number(cores)} cores: AgentRun gives each core 1-4 GB, "
                                    f"so use {low}-{high} MB (or change the cpu)"))
    return Sizes(float(cores) if cores is not None else None, memory, problems, warnings)


@dataclass(frozen=True)
class Registry:
    """How AgentRun pulls the image: ``imageRegistryType`` and ``acrInstanceId``."""

    type: str | None  # ACR | ACREE
    instance: str | None
    problems: list[Problem]
    warnings: list[str]


def registry_for(manifest: Manifest, target: AlibabaTarget, image: str, image_field: str
                 ) -> Registry:
    """The registry edition from the image host (``parse_host``), checked against
    ``targets.alibaba.registry`` and the region; the ACREE instance from ``instance_id``,
    ``image.registry.instance_id``, else the host's instance name (AgentRun takes either)."""
    from toolkit.registry.alibaba import parse_host

    problems: list[Problem] = []
    warnings: list[str] = []
    host = image.split("/", 1)[0]
    first_is_host = "/" in image and ("." in host or ":" in host or host == "localhost")
    if not first_is_host:
        return Registry(None, None, [Problem(
            image_field,
            f"{image!r} names no registry, so AgentRun cannot pull it; use your Container "
            f"Registry, e.g. registry.{target.region}.aliyuncs.com/<namespace>/{manifest.name} "
            "(personal edition) or <instance>-registry."
            f"{target.region}.cr.aliyuncs.com/<namespace>/{manifest.name} (enterprise), then "
            "`actk build` and `actk push`",
        )], [])
    parsed = parse_host(host)
    if parsed is None:
        return Registry(None, None, [Problem(
            image_field,
            f"{host} is not an Alibaba Cloud Container Registry host; AgentRun pulls from ACR "
            f"(registry.{target.region}.aliyuncs.com) or ACR EE "
            f"(<instance>-registry.{target.region}.cr.aliyuncs.com): push the image there",
        )], [])
    edition = parsed.edition
    if target.registry is not None and target.registry != edition:
        problems.append(Problem(
            "targets.alibaba.registry",
            f"is {target.registry}, but {host} is a {EDITION_NAMES[edition]} host; set "
            f"registry: {edition}, or push to a {EDITION_NAMES[target.registry]} registry",
        ))
    if parsed.region != target.region:
        text = (f"{host} is in {parsed.region}, but the runtime is in {target.region}: AgentRun "
                "pulls private images only from the same region")
        if edition == "enterprise":
            problems.append(Problem(image_field, f"{text}; push to {target.region}, or set "
                                    f"targets.alibaba.region: {parsed.region}"))
        else:
            warnings.append(f"{text} (a public personal-edition repository is the exception)")
    instance = None
    if edition == "enterprise":
        instance = target.instance_id or manifest.image.registry.instance_id or (
            parsed.instance_name
        )
    return Registry(REGISTRY_TYPES[edition], instance, problems, warnings)


def environment_problems(manifest: Manifest, target: AlibabaTarget) -> list[Problem]:
    problems = []
    for name in manifest.runtime.secrets:
        if name in manifest.runtime.env:
            problems.append(Problem("runtime.secrets", f"{name!r} is also in runtime.env; keep "
                                    "it in one place (secrets for values that must not be "
                                    "written down)"))
    return problems


def validate(
    manifest: Manifest,
    target: AlibabaTarget,
    *,
    image: str,
    image_field: str = "image.repository",
    image_platform: str | None = None,
) -> tuple[list[Problem], list[str]]:
    """(everything AgentRun would refuse, warnings), found before any call."""
    problems: list[Problem] = []
    warnings: list[str] = []
    name_field = "targets.alibaba.runtime_name" if target.runtime_name else "name"
    name = target.runtime_name or manifest.name
    if not ALIBABA_RUNTIME_NAME.match(name):
        problems.append(Problem(name_field, f"{name!r} is not an AgentRun runtime name; use "
                                "1-63 characters of a-z, 0-9 and '-', starting with a letter "
                                "or digit"))
    found = sizes(manifest, target)
    problems += found.problems
    warnings += found.warnings
    port = manifest.runtime.port
    if not 1 <= port <= 65535:  # pragma: no cover - the manifest model already bounds it
        problems.append(Problem("runtime.port", f"{port} is not a port; use 1-65535"))
    if manifest.build.platform != PLATFORM:
        problems.append(Problem("build.platform", f"is {manifest.build.platform}, but AgentRun "
                                f"runs {PLATFORM} images only; set build.platform: {PLATFORM}, "
                                "then `actk build` and `actk push`"))
    if image_platform and image_platform != PLATFORM:
        problems.append(Problem(image_field, f"the pushed image is {image_platform} "
                                f"(.actk/state.json), but AgentRun runs {PLATFORM} only; "
                                f"rebuild with build.platform: {PLATFORM} and push again"))
    if "@" in image and not DIGEST_REFERENCE.search(image):
        problems.append(Problem(image_field, f"{image!r} has a malformed digest; use "
                                "repo@sha256:<64 hex>"))
    registry = registry_for(manifest, target, image, image_field)
    problems += registry.problems
    warnings += registry.warnings
    problems += environment_problems(manifest, target)
    return problems, warnings


def check(problems: list[Problem]) -> None:
    """Raise one ManifestError listing every problem (each line names the field and the fix)."""
    if problems:
        raise ManifestError(
            "\n".join(problem.line() for problem in problems),
            hint=f"fix {problems[0].field} (each line says how); `actk deploy alibaba --dry-run` "
            "checks again without sending anything",
        )


# --- the request bodies -----------------------------------------------------------------------


def build_runtime_body(
    manifest: Manifest,
    target: AlibabaTarget,
    *,
    image: str,
    registry_type: str | None,
    acr_instance_id: str | None,
    cpu: float,
    memory: int,
    environment: Mapping[str, str],
    arms_license_key: str | None = None,
) -> dict[str, Any]:
    """``CreateAgentRuntimeInput`` (also the ``UpdateAgentRuntimeInput``): unset optional
    fields are left out, as the SDK does."""
    port = manifest.runtime.port
    container: dict[str, Any] = {"image": image}
    if registry_type:
        container["imageRegistryType"] = registry_type
    if acr_instance_id:
        container["acrInstanceId"] = acr_instance_id
    container["port"] = port
    if target.command:
        container["command"] = list(target.command)
    health = target.health_check
    network: dict[str, Any] = {"networkMode": target.network.mode}
    if target.network.vpc_id:
        network["vpcId"] = target.network.vpc_id
    if target.network.vswitch_ids:
        network["vswitchIds"] = list(target.network.vswitch_ids)
    if target.network.security_group_id:
        network["securityGroupId"] = target.network.security_group_id
    body: dict[str, Any] = {
        "agentRuntimeName": target.runtime_name or manifest.name,
    }
    description = target.description or manifest.description
    if description:
        body["description"] = description
    body.update(
        {
            "artifactType": "Container",
            "containerConfiguration": container,
            "cpu": cpu,
            "memory": memory,
            "port": port,
        }
    )
    if target.disk_size is not None:
        body["diskSize"] = target.disk_size
    body["healthCheckConfiguration"] = {
        "httpGetUrl": health.path,
        "initialDelaySeconds": health.initial_delay_seconds,
        "periodSeconds": health.period_seconds,
        "timeoutSeconds": health.timeout_seconds,
        "failureThreshold": health.failure_threshold,
        "successThreshold": health.success_threshold,
    }
    body["protocolConfiguration"] = {"type": "HTTP"}
    body["networkConfiguration"] = network
    session = target.session
    if session.concurrency is not None:
        body["sessionConcurrencyLimitPerInstance"] = session.concurrency
    if session.idle_timeout_seconds is not None:
        body["sessionIdleTimeoutSeconds"] = session.idle_timeout_seconds
    if session.affinity is not None:
        body["sessionAffinityType"] = session.affinity
    if session.header_field_name:
        body["headerFieldName"] = session.header_field_name
    if session.isolation is not None:
        body["enableSessionIsolation"] = session.isolation
    body["environmentVariables"] = dict(environment)  # {} clears what an update would keep
    if target.log is not None:
        body["logConfiguration"] = {"project": target.log.project,
                                    "logstore": target.log.logstore}
    if target.nas is not None:
        nas: dict[str, Any] = {}
        if target.nas.user_id is not None:
            nas["userId"] = target.nas.user_id
        if target.nas.group_id is not None:
            nas["groupId"] = target.nas.group_id
        nas["mountPoints"] = [
            {"serverAddr": m.server_addr, "mountDir": m.mount_dir}
            | ({"enableTLS": m.enable_tls} if m.enable_tls is not None else {})
            for m in target.nas.mount_points
        ]
        body["nasConfig"] = nas
    if target.oss_mounts:
        body["ossMountConfig"] = {
            "mountPoints": [
                {"bucketName": m.bucket_name, "bucketPath": m.bucket_path}
                | ({"endpoint": m.endpoint} if m.endpoint else {})
                | {"mountDir": m.mount_dir, "readOnly": m.read_only}
                for m in target.oss_mounts
            ]
        }
    if target.execution_role_arn:
        body["executionRoleArn"] = target.execution_role_arn
    if target.credential_name:
        body["credentialName"] = target.credential_name
    if target.workspace_id:
        body["workspaceId"] = target.workspace_id
    if target.tags:
        body["systemTags"] = list(target.tags)
    if target.arms is not None:
        arms: dict[str, Any] = {"enableArms": target.arms.enabled}
        if arms_license_key:
            arms["armsLicenseKey"] = arms_license_key
        if target.arms.cms_workspace:
            arms["cmsWorkspace"] = target.arms.cms_workspace
        body["armsConfiguration"] = arms
    if target.edition:
        body["edition"] = target.edition
    return body


def build_endpoint_body(name: str, target_version: str) -> dict[str, Any]:
    """``CreateAgentRuntimeEndpointInput`` (and ``UpdateAgentRuntimeEndpointInput``)."""
    return {"agentRuntimeEndpointName": name, "targetVersion": target_version}


# --- the idempotency rule ---------------------------------------------------------------------

# Lists whose order AgentRun does not keep meaningful.
UNORDERED = frozenset({"systemTags", "vswitchIds"})
# Maps compared whole (a removed key is a change), not only by the keys sent.
WHOLE = frozenset({"environmentVariables"})
# Fields the runtime AgentRun answers with (SDK ``AgentRuntime``) leaves out, with the secret
# keys inside them that are never compared.
UNREAD = {"armsConfiguration": frozenset({"armsLicenseKey"})}


def _same(want: Any, have: Any, key: str = "") -> bool:
    if isinstance(want, bool) or isinstance(have, bool):
        return want is have or want == have
    if isinstance(want, (int, float)) and isinstance(have, (int, float)):
        return float(want) == float(have)
    if isinstance(want, (int, float)) and isinstance(have, str):
        try:
            return float(want) == float(have)
        except ValueError:
            return False
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return False
        if key in WHOLE:
            return {k: str(v) for k, v in want.items()} == {k: str(v) for k, v in have.items()}
        return all(_same(value, have.get(name), name) for name, value in want.items())
    if isinstance(want, list):
        if not isinstance(have, list) or len(want) != len(have):
            return False
        if key in UNORDERED:
            return sorted(map(str, want)) == sorted(map(str, have))
        return all(_same(a, b, key) for a, b in zip(want, have, strict=True))
    return want == have


def runtime_changes(desired: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """The fields of ``desired`` the runtime does not have (what AgentRun adds on its own is
    ignored); environment variables by name only, as their values may be secrets."""
    changes = []
    for name, value in desired.items():
        have = current.get(name)
        if name == "environmentVariables":
            have_env = have if isinstance(have, dict) else {}
            names = sorted(
                key
                for key in value.keys() | have_env.keys()
                if str(value.get(key)) != str(have_env.get(key))
                or (key in value) != (key in have_env)
            )
            if names:
                changes.append(f"environmentVariables ({', '.join(names)})")
        elif name in UNREAD:
            # not in the AgentRuntime AgentRun answers with: compared only when it is there,
            # and never by its secret part
            if isinstance(have, dict) and not _same(
                {k: v for k, v in value.items() if k not in UNREAD[name]}, have, name
            ):
                changes.append(name)
        elif not _same(value, have, name):
            changes.append(name)
    return changes


def fingerprint(body: Mapping[str, Any]) -> str:
    """A short digest of a (redacted) runtime body: published versions carry it in their
    description, so a re-run knows the newest version already has this definition."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


# --- redaction --------------------------------------------------------------------------------


def redact_json(value: Any, secrets: list[str]) -> Any:
    """``value`` with every secret string replaced (however short)."""
    if isinstance(value, dict):
        return {key: redact_json(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_json(item, secrets) for item in value]
    if isinstance(value, str):
        if value in secrets:
            return REDACTED
        return redact(value, secrets)
    return value


# --- loading ----------------------------------------------------------------------------------

EXAMPLE = "targets: {alibaba: {region: cn-hangzhou}}"


def load_target(directory: Path) -> tuple[Path, Manifest, AlibabaTarget]:
    """(repository, manifest, targets.alibaba); a missing section is a ManifestError."""
    return target_section(
        directory, "alibaba", f"add `{EXAMPLE}` to {{file}} (the region of your Container Registry)"
    )


def control_plane(target: AlibabaTarget, env: Mapping[str, str], override: str | None
                  ) -> str | None:
    """The control-plane endpoint: the argument, else ACTK_ALIBABA_AGENTRUN_ENDPOINT, else
    targets.alibaba.api_endpoint (None: the region's default; vpc_endpoint is applied by the
    client)."""
    return override or (env.get(ENDPOINT_VARIABLE) or "").strip() or target.api_endpoint


def _client(
    target: AlibabaTarget,
    env: Mapping[str, str],
    *,
    endpoint: str | None,
    clock: Clock,
    secrets: list[str] | None = None,
    on_call: Callable[[str], None] | None = None,
    transport: httpx.BaseTransport | None = None,
    dry_run: bool = False,
) -> AgentRunClient:
    return open_client(
        env,
        region=target.region,
        endpoint=control_plane(target, env, endpoint),
        vpc=target.vpc_endpoint,
        transport=transport,
        sleep=clock.sleep,
        on_call=on_call,
        secrets=secrets or [],
        allow_missing_credentials=dry_run,
    )


# --- the deploy -------------------------------------------------------------------------------


@dataclass
class AlibabaDeploy:
    """The AgentRun deploy as :mod:`toolkit.deploy.core` phases."""

    repo: Path
    manifest: Manifest
    target: AlibabaTarget
    options: AlibabaOptions
    env: Mapping[str, str]
    console: Console
    clock: Clock = SYSTEM_CLOCK
    on_call: Callable[[str], None] | None = None
    transport: httpx.BaseTransport | None = None
    name: str = TARGET
    runtime_name: str = field(init=False)
    image: str = field(init=False)
    image_source: str = field(init=False)
    environment: dict[str, str] = field(init=False)
    arms_key: str | None = field(init=False, default=None)
    body: dict[str, Any] = field(init=False)
    warnings: list[str] = field(init=False)
    runtime_id: str | None = field(init=False, default=None)
    _client: AgentRunClient | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        manifest, target, options = self.manifest, self.target, self.options
        self.runtime_name = target.runtime_name or manifest.name
        self.image, self.image_source, platform, self.warnings = resolve_image(
            self.repo, manifest, options.image, puller="AgentRun", runs="the runtime"
        )
        image_field = "--image" if options.image else "image.repository"
        problems, warnings = validate(
            manifest, target, image=self.image, image_field=image_field, image_platform=platform
        )
        check(problems)
        self.warnings += warnings
        self.environment, missing = read_environment(manifest, self.env)
        if target.arms is not None and target.arms.license_key_env:
            self.arms_key = self.env.get(target.arms.license_key_env) or None
            if self.arms_key is None:
                missing.append(target.arms.license_key_env)
        self.warnings += missing_secrets(
            missing, dry_run=options.dry_run,
            suffix=" (runtime.secrets / targets.alibaba.arms.license_key_env)",
            remove="agent.yaml",
        )
        for name in missing:
            if name in manifest.runtime.secrets:
                self.environment[name] = REDACTED
            else:
                self.arms_key = REDACTED
        registry = registry_for(manifest, target, self.image, image_field)
        found = sizes(manifest, target)
        assert found.cpu is not None and found.memory is not None  # check() passed
        self.body = build_runtime_body(
            manifest,
            target,
            image=self.image,
            registry_type=registry.type,
            acr_instance_id=registry.instance,
            cpu=found.cpu,
            memory=found.memory,
            environment=self.environment,
            arms_license_key=self.arms_key,
        )

    # --- helpers ---

    @property
    def secret_names(self) -> list[str]:
        return list(self.manifest.runtime.secrets)

    @property
    def secret_values(self) -> list[str]:
        values = secret_values(self.environment, self.secret_names)
        if self.arms_key and self.arms_key != REDACTED:
            values.append(self.arms_key)
        return values

    @property
    def client(self) -> AgentRunClient:
        if self._client is None:
            self._client = _client(
                self.target,
                self.env,
                endpoint=self.options.endpoint,
                clock=self.clock,
                secrets=self.secret_values,
                on_call=self.on_call,
                transport=self.transport,
                dry_run=self.options.dry_run,
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    @property
    def publish(self) -> bool:
        return self.target.publish if self.options.publish is None else self.options.publish

    def redacted_body(self) -> dict[str, Any]:
        """The runtime body with secret values replaced, by name and by value."""
        body = dict(self.body)
        if "environmentVariables" in body:
            body["environmentVariables"] = redact_values(
                body["environmentVariables"], self.secret_names
            )
        if "armsConfiguration" in body and "armsLicenseKey" in body["armsConfiguration"]:
            body["armsConfiguration"] = {**body["armsConfiguration"], "armsLicenseKey": REDACTED}
        return redact_json(body, self.secret_values)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.redacted_body())

    def version_description(self) -> str:
        text = f"actk {self.fingerprint}: {self.image}"
        return text[:DESCRIPTION_LIMIT]

    def planned(self, call: Call, note: str = "") -> PlannedRequest:
        """``call`` as it would be sent (bodies are redacted before they are signed)."""
        if call.body is not None:
            call = Call(call.method, call.path, call.action, call.query,
                        redact_json(call.body, self.secret_values))
        method, url, headers, body = self.client.describe(call)
        return PlannedRequest(method, url, headers, body, note).redacted(self.secret_values)

    def _summary(self) -> list[tuple[str, str]]:
        body = self.body
        network = body["networkConfiguration"]
        container = body["containerConfiguration"]
        environment = redact_values(self.environment, self.secret_names)
        version = self.target.target_version or ("the published one" if self.publish
                                                  else LATEST)
        registry = container.get("imageRegistryType") or "-"
        if container.get("acrInstanceId"):
            registry += f" ({container['acrInstanceId']})"
        return [
            ("control plane", self.client.base_url),
            ("runtime", f"{self.runtime_name} (region {self.target.region})"),
            ("image", f"{self.image} (from {self.image_source})"),
            ("registry", registry),
            ("size", f"cpu {_number(body['cpu'])} (cores), memory {body['memory']} MB, "
                     f"port {body['port']}"),
            ("network", network["networkMode"]),
            ("health check", f"GET {body['healthCheckConfiguration']['httpGetUrl']}"),
            ("environment", ", ".join(f"{k}={v}" for k, v in environment.items()) or "none"),
            ("endpoint", f"{self.target.endpoint_name} -> version {version}"),
        ]

    # --- phases ---

    def plan(self, *, dry_run: bool) -> Plan:
        requests = self._planned_requests()
        summary = self._summary()
        if dry_run:
            return Plan(TARGET, "create", f"Dry run: the requests for runtime "
                        f"{self.runtime_name} (nothing is sent; a write goes out only when the "
                        "runtime or its endpoint differs)", summary, requests, self.warnings)
        client = self.client
        found = client.find_runtime(self.runtime_name, workspace_id=self.target.workspace_id)
        if found is None:
            return Plan(TARGET, "create", f"Creating runtime {self.runtime_name} in "
                        f"{self.target.region}", summary, requests, self.warnings,
                        {"current": None})
        current = client.get_runtime(found.id) or found
        self.runtime_id = current.id or found.id
        changes = runtime_changes(self.body, current.data)
        context: dict[str, Any] = {"current": current, "changes": changes}
        status = current.status
        if status == "DELETING":
            raise CloudError(
                f"runtime {self.runtime_name} is being deleted",
                hint="wait until it is gone (`actk status alibaba`), then deploy again",
            )
        if status in TRANSITIONAL:
            if changes:
                raise CloudError(
                    f"runtime {self.runtime_name} is {status} and differs from agent.yaml in "
                    f"{', '.join(changes)}",
                    hint="AgentRun accepts one change at a time: wait until it is READY "
                    "(`actk status alibaba`), then run `actk deploy alibaba` again",
                )
            return Plan(TARGET, "wait", f"Runtime {self.runtime_name} already has this "
                        f"definition and is {status}: waiting for it", summary, requests,
                        self.warnings, context)
        if changes:
            return Plan(TARGET, "update", f"Updating runtime {self.runtime_name} (it differs in "
                        f"{', '.join(changes)})", summary, requests, self.warnings, context)
        if status in FAILED or status.endswith("FAILED"):
            return Plan(TARGET, "update", f"Updating runtime {self.runtime_name}: it has this "
                        f"definition but is {status} ({current.reason or 'no reason given'})",
                        summary, requests, self.warnings, context)
        return Plan(TARGET, "unchanged", f"Runtime {self.runtime_name} already has this "
                    f"definition and is {status or READY}: nothing to update", summary,
                    requests, self.warnings, context)

    def _planned_requests(self) -> list[PlannedRequest]:
        runtime_id, endpoint_id = "{agentRuntimeId}", "{agentRuntimeEndpointId}"
        timeout = f"at most {self.options.timeout:g} s"
        requests = [
            self.planned(list_runtimes_call(self.runtime_name,
                                            workspace_id=self.target.workspace_id),
                         f"finds the runtime called {self.runtime_name}"),
            self.planned(get_runtime_call(runtime_id),
                         "when it exists: reads its definition, to compare (nothing is written "
                         "when it has this one)"),
            self.planned(create_runtime_call(self.body),
                         f"only when no runtime is called {self.runtime_name}"),
            self.planned(update_runtime_call(runtime_id, self.body),
                         "only when the runtime's definition differs, or it failed"),
        ]
        if not self.options.wait:
            return requests
        requests.append(self.planned(get_runtime_call(runtime_id),
                                     f"every {POLL_INTERVAL:g} s until READY or *_FAILED "
                                     f"({timeout})"))
        if self.publish:
            requests += [
                self.planned(list_versions_call(runtime_id),
                             "once READY: is the newest published version this definition?"),
                self.planned(publish_version_call(runtime_id, self.version_description()),
                             "only when it is not"),
            ]
        version = self.target.target_version or ("{version}" if self.publish else LATEST)
        endpoint_body = build_endpoint_body(self.target.endpoint_name, version)
        requests += [
            self.planned(list_endpoints_call(runtime_id),
                         f"once READY: finds the endpoint {self.target.endpoint_name}"),
            self.planned(create_endpoint_call(runtime_id, endpoint_body),
                         "only when the runtime has no endpoint of that name"),
            self.planned(update_endpoint_call(runtime_id, endpoint_id, endpoint_body),
                         f"only when the endpoint's target version is not {version}"),
            self.planned(get_endpoint_call(runtime_id, endpoint_id),
                         f"every {ENDPOINT_INTERVAL:g} s until it has its public URL ({timeout})"),
        ]
        return requests

    def apply(self, plan: Plan) -> DeployResult:
        current: Runtime | None = plan.context.get("current")
        result = DeployResult(TARGET, plan.action, changed=plan.action in ("create", "update"),
                              reason=plan.reason, details=self._details(plan))
        if plan.action == "create":
            runtime = self._create()
            self.console.success(f"created runtime {self.runtime_name} ({runtime.id})")
        elif plan.action == "update":
            assert current is not None
            runtime = self.client.update_runtime(current.id, self.body)
            if not runtime.id:
                runtime = Runtime(current.id, self.runtime_name, runtime.status or "UPDATING")
            self.console.success(f"updated runtime {self.runtime_name} ({current.id})")
        else:
            assert current is not None
            runtime = current
        self.runtime_id = runtime.id or (current.id if current else None)
        result.status = runtime.status or ("CREATING" if plan.action == "create" else "UPDATING")
        result.version = runtime.version
        result.details["runtime_id"] = self.runtime_id
        result.details["runtime_arn"] = runtime.arn
        return result

    def _create(self) -> Runtime:
        """POST the runtime. A 5xx may have created it anyway (a POST is not replayed): when a
        runtime of this name exists now, that is the answer."""
        try:
            return self.client.create_runtime(self.body)
        except AlibabaAPIError as error:
            if error.status is None or error.status < 500:
                raise
            self.console.warn(f"AgentRun answered HTTP {error.status} to the create; checking "
                              "whether the runtime was created anyway")
            found = self.client.find_runtime(self.runtime_name,
                                             workspace_id=self.target.workspace_id)
            if found is None:
                raise
            return found

    def _details(self, plan: Plan) -> dict[str, Any]:
        current: Runtime | None = plan.context.get("current")
        body = self.body
        return {
            "runtime": self.runtime_name,
            "runtime_id": current.id if current else None,
            "region": self.target.region,
            "control_plane": self.client.base_url,
            "image": self.image,
            "image_source": self.image_source,
            "registry_type": body["containerConfiguration"].get("imageRegistryType"),
            "cpu": body["cpu"],
            "memory": body["memory"],
            "port": body["port"],
            "network_mode": body["networkConfiguration"]["networkMode"],
            "environment": redact_values(self.environment, self.secret_names),
            "previous_status": current.status if current else None,
            "changes": plan.context.get("changes", []),
        }

    def wait(self, result: DeployResult, timeout: float) -> DeployResult:
        if result.status == READY or self.runtime_id is None:
            return result
        client, runtime_id = self.client, self.runtime_id

        def read() -> tuple[str, Runtime | None]:
            runtime = client.get_runtime(runtime_id)
            return (runtime.status if runtime else "DELETED"), runtime

        title = f"Waiting for runtime {self.runtime_name} to be READY"
        with self.console.live_log(title) as show:
            status, runtime = poll(
                read,
                terminal=lambda s: terminal(s) or s == "DELETED" or s.endswith("FAILED"),
                interval=POLL_INTERVAL,
                timeout=timeout,
                clock=self.clock,
                on_reading=lambda s, t: show(f"runtime {self.runtime_name}: {s} ({t:.0f} s)"),
                what=f"runtime {self.runtime_name}",
                hint="it may still become READY: `actk status alibaba` shows it; run `actk "
                "deploy alibaba` again to create the endpoint, or raise --timeout",
            )
        result.status = status
        if runtime is not None:
            result.version = runtime.version or result.version
        if status != READY:
            reason = (runtime.reason if runtime else None) or "AgentRun gave no reason"
            raise CloudError(
                redact(f"runtime {self.runtime_name} is {status}: {reason}", self.secret_values),
                hint=failure_hint(reason, image=self.image, region=self.target.region,
                                  port=self.manifest.runtime.port,
                                  health_path=self.target.health_check.path),
            )
        self.console.success(f"runtime {self.runtime_name} is READY")
        return result

    def route(self, result: DeployResult) -> DeployResult:
        """Once READY: publish a version (when asked), then create or update the endpoint so it
        serves ``target_version``, and wait for its public URL."""
        result.details.setdefault("endpoint", None)
        if result.status != READY or self.runtime_id is None:
            text = (
                f"runtime {self.runtime_name} is {result.status}, so its endpoint was not "
                "created or changed (AgentRun refuses that until it is READY): run `actk deploy "
                "alibaba` again once it is READY (`actk status alibaba` shows it)"
            )
            self.console.warn(text)
            result.warnings.append(text)
            return result
        published = self._publish(result) if self.publish else None
        version = self.target.target_version or published or LATEST
        endpoint = self._endpoint(result, version)
        result.endpoint = endpoint.url
        if published:
            result.version = published
        result.details["endpoint"] = {
            "name": endpoint.name,
            "id": endpoint.id,
            "status": endpoint.status,
            "target_version": endpoint.target_version or version,
            "url": endpoint.url,
        }
        result.details["published_version"] = published
        result.details["invoke_url"] = _responses_url(endpoint.url) if endpoint.url else None
        return result

    def _publish(self, result: DeployResult) -> str:
        client, runtime_id = self.client, str(self.runtime_id)
        marker = f"actk {self.fingerprint}:"
        if not result.changed:
            versions = client.list_versions(runtime_id)
            newest = versions[0] if versions else None
            if newest is not None and (newest.description or "").startswith(marker):
                self.console.detail(f"version {newest.version} already has this definition")
                return newest.version
        self.console.step(f"Publishing a version of runtime {self.runtime_name}")
        version = client.publish_version(runtime_id, self.version_description())
        result.changed = True
        self.console.success(f"published version {version.version}")
        return version.version

    def _endpoint(self, result: DeployResult, version: str) -> RuntimeEndpoint:
        client, runtime_id = self.client, str(self.runtime_id)
        name = self.target.endpoint_name
        body = build_endpoint_body(name, version)
        endpoint = client.find_endpoint(runtime_id, name)
        if endpoint is None:
            self.console.step(f"Creating endpoint {name} (target version {version})")
            endpoint = client.create_endpoint(runtime_id, body, runtime_name=self.runtime_name)
            result.changed = True
        elif (endpoint.target_version or LATEST) != version:
            self.console.step(f"Pointing endpoint {name} at version {version} (was "
                              f"{endpoint.target_version or LATEST})")
            endpoint = RuntimeEndpoint.from_json(
                {**endpoint.data, **client.update_endpoint(
                    runtime_id, endpoint.id, body, runtime_name=self.runtime_name
                ).data}
            )
            result.changed = True
        else:
            self.console.detail(f"endpoint {name} already serves version {version}")
        if not endpoint.settled:
            endpoint = self._wait_endpoint(endpoint)
        if endpoint.status in FAILED or endpoint.status.endswith("FAILED"):
            raise CloudError(
                f"endpoint {name} of runtime {self.runtime_name} is {endpoint.status}: "
                f"{endpoint.reason or 'AgentRun gave no reason'}",
                hint="fix the cause, then run `actk deploy alibaba` again (`actk status "
                "alibaba` shows the endpoint)",
            )
        return endpoint

    def _wait_endpoint(self, endpoint: RuntimeEndpoint) -> RuntimeEndpoint:
        client, runtime_id = self.client, str(self.runtime_id)
        endpoint_id, name = endpoint.id, endpoint.name

        def read() -> tuple[str, RuntimeEndpoint]:
            current = client.get_endpoint(runtime_id, endpoint_id)
            if current is None:
                raise CloudError(f"endpoint {name} disappeared while it was being set up",
                                 hint="run `actk deploy alibaba` again")
            return ("settled" if current.settled else current.status or "pending"), current

        with self.console.live_log(f"Waiting for endpoint {name}") as show:
            _, current = poll(
                read,
                terminal=lambda s: s == "settled",
                interval=ENDPOINT_INTERVAL,
                timeout=self.options.timeout,
                clock=self.clock,
                on_reading=lambda s, t: show(f"endpoint {name}: {s} ({t:.0f} s)"),
                what=f"endpoint {name}",
                hint="`actk status alibaba` shows it; run `actk deploy alibaba` again later",
            )
        return current

    def record(self, result: DeployResult) -> Path | None:
        from toolkit.state import write_section

        endpoint = result.details.get("endpoint") or {}
        return write_section(
            self.repo,
            TARGET,
            {
                "region": self.target.region,
                "runtime_name": self.runtime_name,
                "runtime_id": self.runtime_id,
                "status": result.status,
                "image": self.image,
                "endpoint_name": self.target.endpoint_name,
                "endpoint_id": endpoint.get("id"),
                "target_version": endpoint.get("target_version"),
                "published_version": result.details.get("published_version"),
                "endpoint_url": endpoint.get("url"),
                "invoke_url": result.details.get("invoke_url"),
                "deployed_at": utc_now(),
            },
        )


def _responses_url(endpoint_url: str) -> str:
    from toolkit.invoke import responses_url

    return responses_url(endpoint_url)


def deploy_alibaba(
    directory: Path,
    options: AlibabaOptions,
    console: Console,
    env: Mapping[str, str],
    *,
    clock: Clock | None = None,
    on_call: Callable[[str], None] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> DeployResult:
    """`actk deploy alibaba`: plan, show, apply, wait, endpoint (route), record."""
    clock = clock or SYSTEM_CLOCK
    repo, manifest, target = load_target(directory)
    deployment = AlibabaDeploy(repo, manifest, target, options, env, console, clock, on_call,
                               transport)
    return run_and_close(deployment, console, options, clock)


# --- status and delete ------------------------------------------------------------------------


def alibaba_status(
    directory: Path,
    env: Mapping[str, str],
    *,
    endpoint: str | None = None,
    clock: Clock | None = None,
    on_call: Callable[[str], None] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> dict[str, Any]:
    """The runtime (status, reason, image, size), its endpoints and its published versions."""
    from toolkit.state import read_state

    clock = clock or SYSTEM_CLOCK
    repo, manifest, target = load_target(directory)
    name = target.runtime_name or manifest.name
    recorded = read_state(repo).get(TARGET) or {}
    report: dict[str, Any] = {
        "target": TARGET,
        "region": target.region,
        "runtime": name,
        "exists": False,
        "runtime_id": None,
        "status": None,
        "status_reason": None,
        "image": None,
        "cpu": None,
        "memory": None,
        "version": None,
        "created_at": None,
        "updated_at": None,
        "endpoints": [],
        "versions": [],
        "invoke_url": None,
        "deployed_image": recorded.get("image") if recorded.get("runtime_name") == name else None,
    }
    with _client(target, env, endpoint=endpoint, clock=clock, on_call=on_call,
                 transport=transport) as client:
        report["control_plane"] = client.base_url
        found = client.find_runtime(name, workspace_id=target.workspace_id)
        if found is None:
            return report
        runtime = client.get_runtime(found.id) or found
        data = runtime.data
        report.update(
            exists=True,
            runtime_id=runtime.id or found.id,
            status=runtime.status,
            status_reason=runtime.reason,
            image=runtime.image,
            cpu=data.get("cpu"),
            memory=data.get("memory"),
            version=runtime.version,
            created_at=data.get("createdAt"),
            updated_at=data.get("lastUpdatedAt"),
        )
        endpoints = client.list_endpoints(report["runtime_id"])
        report["endpoints"] = [
            {
                "name": e.name,
                "id": e.id,
                "status": e.status,
                "status_reason": e.reason,
                "target_version": e.target_version,
                "url": e.url,
            }
            for e in endpoints
        ]
        report["versions"] = [
            {"version": v.version, "description": v.description, "updated_at": v.updated_at}
            for v in client.list_versions(report["runtime_id"])
        ]
    chosen = next((e for e in endpoints if e.name == target.endpoint_name), None)
    if chosen is not None and chosen.url:
        report["invoke_url"] = _responses_url(chosen.url)
    return report


def delete_alibaba(
    directory: Path,
    env: Mapping[str, str],
    console: Console,
    *,
    endpoint: str | None = None,
    wait: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    clock: Clock | None = None,
    on_call: Callable[[str], None] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> dict[str, Any]:
    """Delete the runtime's endpoints, then the runtime (AgentRun refuses a runtime that still
    has endpoints). A runtime that does not exist is not an error: there is nothing to do."""
    from toolkit.state import read_state, write_section

    clock = clock or SYSTEM_CLOCK
    repo, manifest, target = load_target(directory)
    name = target.runtime_name or manifest.name
    report: dict[str, Any] = {
        "target": TARGET,
        "region": target.region,
        "runtime": name,
        "runtime_id": None,
        "existed": False,
        "deleted": False,
        "endpoints_deleted": [],
    }
    with _client(target, env, endpoint=endpoint, clock=clock, on_call=on_call,
                 transport=transport) as client:
        found = client.find_runtime(name, workspace_id=target.workspace_id)
        if found is None:
            console.warn(f"there is no runtime called {name} in {target.region}: nothing to "
                         "delete")
            return report
        runtime_id = found.id
        report.update(runtime_id=runtime_id, existed=True)
        endpoints = client.list_endpoints(runtime_id)
        for item in endpoints:
            console.step(f"Deleting endpoint {item.name} of runtime {name}")
            client.delete_endpoint(runtime_id, item.id)
            report["endpoints_deleted"].append(item.name)
        if endpoints:
            poll(
                lambda: (str(len(client.list_endpoints(runtime_id))), None),
                terminal=lambda count: count == "0",
                interval=DELETE_INTERVAL,
                timeout=timeout,
                clock=clock,
                what=f"the number of endpoints of runtime {name}",
                hint="`actk status alibaba` shows them; run `actk delete alibaba` again",
            )
        console.step(f"Deleting runtime {name} ({runtime_id})")
        client.delete_runtime(runtime_id)
        report["deleted"] = True
        if wait:
            status, runtime = poll(
                lambda: _deletion_status(client, runtime_id),
                terminal=lambda s: s in ("DELETED", "DELETE_FAILED", "FAILED"),
                interval=DELETE_INTERVAL,
                timeout=timeout,
                clock=clock,
                what=f"runtime {name}",
                hint="it may still go away: `actk status alibaba` shows it",
            )
            if status != "DELETED":
                reason = (runtime.reason if runtime else None) or "AgentRun gave no reason"
                raise CloudError(f"runtime {name} is {status}: {reason}",
                                 hint="fix the cause, then run `actk delete alibaba` again")
    recorded = read_state(repo).get(TARGET) or {}
    if recorded.get("runtime_name") == name:
        write_section(repo, TARGET, {**recorded, "status": "deleted", "deleted_at": utc_now()})
    return report


def _deletion_status(client: AgentRunClient, runtime_id: str) -> tuple[str, Runtime | None]:
    runtime = client.get_runtime(runtime_id)
    return ("DELETED" if runtime is None else runtime.status), runtime


# --- invoke -----------------------------------------------------------------------------------

INVOKE_HINTS = {
    401: "the endpoint wants the runtime's inbound credential (targets.alibaba.credential_name): "
    "pass it as a header",
    403: "the endpoint wants the runtime's inbound credential (targets.alibaba.credential_name), "
    "or public access is disabled for it: pass the credential as a header, or call it from "
    "the VPC",
    404: "the endpoint or the container's /responses route was not found: deploy first "
    "(`actk deploy alibaba`), and check that the container serves POST /responses",
    502: "the runtime's container is starting (a cold start) or failing its health check: retry "
    "in a minute; `actk status alibaba` shows the runtime",
    503: "the runtime is starting or scaling (a cold start): retry in a minute; `actk status "
    "alibaba` shows the runtime",
    504: "the agent did not answer in time: retry, or raise --timeout",
}


def invoke_url(
    directory: Path,
    env: Mapping[str, str],
    *,
    endpoint: str | None = None,
    clock: Clock | None = None,
    transport: httpx.BaseTransport | None = None,
) -> str:
    """The endpoint's public URL: the one ``actk deploy alibaba`` recorded for this runtime
    and endpoint, else read from AgentRun."""
    from toolkit.state import read_state

    clock = clock or SYSTEM_CLOCK
    repo, manifest, target = load_target(directory)
    name = target.runtime_name or manifest.name
    recorded = read_state(repo).get(TARGET) or {}
    if (
        recorded.get("runtime_name") == name
        and recorded.get("region") == target.region
        and recorded.get("endpoint_name") == target.endpoint_name
        and recorded.get("status") != "deleted"
        and recorded.get("endpoint_url")
    ):
        return str(recorded["endpoint_url"])
    with _client(target, env, endpoint=endpoint, clock=clock, transport=transport) as client:
        runtime = client.find_runtime(name, workspace_id=target.workspace_id)
        if runtime is None:
            raise InvokeError(f"there is no runtime called {name} in {target.region}",
                              hint="deploy it first: `actk deploy alibaba`")
        found = client.find_endpoint(runtime.id, target.endpoint_name)
    if found is None or not found.url:
        raise InvokeError(
            f"runtime {name} has no endpoint {target.endpoint_name} with a public URL"
            + (f" (it is {found.status})" if found else ""),
            hint="run `actk deploy alibaba` (it creates the endpoint once the runtime is READY)",
        )
    return found.url


def invoke_alibaba(
    directory: Path,
    text: str,
    *,
    env: Mapping[str, str],
    stream: bool = True,
    structured_inputs: Mapping[str, Any] | None = None,
    model: str | None = None,
    timeout: float = 120.0,
    on_delta: Callable[[str], None] | None = None,
    endpoint: str | None = None,
    headers: Mapping[str, str] | None = None,
    clock: Clock | None = None,
    transport: httpx.BaseTransport | None = None,
) -> InvokeResult:
    """One Responses request through the runtime endpoint: ``POST <endpointPublicUrl>/responses``
    (AgentRun passes the path after ``/invocations`` to the container unchanged). ``headers``
    are added to the request (an inbound credential, a session header); their values never
    appear in output or errors."""
    import httpx

    from toolkit.call_log import httpx_hooks
    from toolkit.invoke import InvokeResult, closing_unless_interrupted, responses_url

    base = invoke_url(directory, env, endpoint=endpoint, clock=clock, transport=transport)
    url = responses_url(base)
    secrets = [value for value in (headers or {}).values() if value]
    body = responses_body(text, stream=stream, model=model, structured_inputs=structured_inputs)
    request_headers = {"content-type": "application/json",
                       "accept": "text/event-stream" if stream else "application/json",
                       **dict(headers or {})}
    host = httpx.URL(url).host
    client = httpx.Client(
        timeout=httpx.Timeout(timeout, connect=10),
        transport=transport,
        trust_env=host not in ("127.0.0.1", "localhost", "::1"),
        event_hooks=httpx_hooks(secrets),
    )
    def hide(text: str) -> str:
        return redact(text, secrets)

    with invoke_failures(
        url, timeout, who=url, hide=hide,
        network_hint="check your network (HTTPS_PROXY); a PRIVATE runtime's endpoint answers "
        "only inside its VPC",
    ), closing_unless_interrupted(client) as http:
        request = http.build_request("POST", url, headers=request_headers,
                                     content=json.dumps(body).encode())
        with closing_unless_interrupted(http.send(request, stream=True)) as answer:
            return read_answer(
                answer,
                InvokeResult(url=url),
                stream=stream,
                on_delta=on_delta,
                error=lambda failed: _invoke_error(failed, secrets),
                not_json_hint=INVOKE_HINTS[404],
                hide=hide,
            )


def _invoke_error(answer: httpx.Response, secrets: list[str]) -> InvokeError:
    status = answer.status_code
    try:
        payload = answer.json()
    except ValueError:
        payload = None
    message = ""
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict):
            message = str(error.get("message") or error.get("code") or "")
        message = message or str(payload.get("message") or payload.get("code") or "")
    message = message or answer.text[:200] or answer.reason_phrase
    return InvokeError(
        redact(f"the agent endpoint answered HTTP {status}: {message}", secrets),
        hint=INVOKE_HINTS.get(status, "read the runtime's logs (SLS, or the AgentRun console)"),
    )
