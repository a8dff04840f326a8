"""Azure AI Foundry hosted agents: `actk deploy|status|delete azure`, `actk invoke --target azure`.

What a deploy sends, by ``targets.azure.api``:

    v1 (default)        POST agents/{name}/versions
                          {"definition": {"kind": "hosted",
                                          "container_configuration": {"image": <repo@sha256:..>},
                                          "protocol_versions": [{"protocol": "responses",
                                                                 "version": "1.0.0"}],
                                          "cpu": "1", "memory": "2Gi",
                                          "environment_variables": {...}},
                           "description": ..., "metadata": {...}}
                        then GET agents/{name}/versions/{v} every 10 s until two readings in a
                        row are terminal: active, or failed (with the service's reason)
                        then GET agents/{name}, and unless its endpoint already sends all
                        traffic to that version, PATCH agents/{name} (merge-patch+json)
                          {"agent_endpoint": {"version_selector": {"version_selection_rules":
                            [{"type": "FixedRatio", "agent_version": <v>,
                              "traffic_percentage": 100}]}}}
                        (azd's order: create, wait until active, then the endpoint)
    2025-11-15-preview  POST agents/{name}/versions
                          {"definition": {"kind": "hosted",
                                          "container_protocol_versions": [{"protocol":
                                                          "responses", "version": "v1"}],
                                          "cpu", "memory", "image", "environment_variables",
                                          "tools"}, ...}
                        then POST agents/{name}/versions/{v}/containers/default:start
                        {"min_replicas", "max_replicas"} and GET agents/{name}/operations/{id}
                        every 5 s until it has ended

Before any call the request is checked the way the service checks it (agent name, cpu/memory
sizes, environment names, metadata limits, protocol version), every problem on its own line.
runtime.secrets are read from the caller's environment and sent as environment variables;
their values appear in no output, ``--dry-run`` and ``--json`` included, nor in errors.

Idempotent: when the latest version has the same definition (image, cpu, memory,
environment, protocols, and tools on the preview) no version is created; on the preview a
stopped container of that version is started again; on v1 the endpoint is patched only when
its version selector sends traffic elsewhere (or to ``@latest``, or has no selector).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.cloud.foundry import (
    GA_API,
    PREVIEW_API,
    VERSION_TERMINAL,
    AgentVersion,
    Call,
    FoundryClient,
    Operation,
    failure_hint,
    parse_error,
    status_hint,
)
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
from toolkit.manifest import (
    AZURE_AGENT_NAME,
    METADATA_MAX_KEY,
    METADATA_MAX_PAIRS,
    METADATA_MAX_VALUE,
)
from toolkit.redact import REDACTED, redact

if TYPE_CHECKING:
    from toolkit.console import Console
    from toolkit.invoke import InvokeResult
    from toolkit.manifest import AzureTarget, Manifest

TARGET = "azure"
POLL_INTERVAL = 10.0  # GA version status (azd: every 10 s)
OPERATION_INTERVAL = 5.0  # preview container operation (azd: every 5 s)
DEFAULT_TIMEOUT = 600.0
CONFIRMATIONS = 2  # terminal readings in a row before a GA version status is believed
CREATE_ATTEMPTS = 3  # a create answered 500/502/504 is re-sent when no version appeared
FLAKY = frozenset({500, 502, 504})
PROBE_PORT = 8088
# azd and the SDK samples mark v1 hosted versions for the current ("vnext") backend.
VNEXT_METADATA = ("enableVnextExperience", "true")
# Names Foundry injects into hosted containers on v1 and refuses in environment_variables.
RESERVED_ENV_PREFIXES = ("FOUNDRY_", "AGENT_")
FOUNDRY_ENV_NAME = re.compile(r"^[A-Za-z0-9_]+$")
# Hosted agent sizes: 0.25 to 2 vCPU in steps of 0.25, with twice as many GiB of memory.
CPU_STEP, CPU_MAX = Decimal("0.25"), Decimal("2")
MEMORY = re.compile(r"^(?P<amount>\d+(?:\.\d+)?)Gi$")
SEMVER = re.compile(r"^\d+\.\d+\.\d+$")
PREVIEW_PROTOCOL = re.compile(r"^v\d+(?:\.\d+){0,2}$")
ENDPOINT_EXAMPLE = "https://<resource>.services.ai.azure.com/api/projects/<project>"


# --- options ----------------------------------------------------------------------------------


@dataclass
class AzureOptions(DeployOptions):
    timeout: float = DEFAULT_TIMEOUT
    features: str | None = None  # --features: the Foundry-Features header value


# --- validation -------------------------------------------------------------------------------


def sizes() -> list[tuple[Decimal, Decimal]]:
    """Every (cpu, memory GiB) pair a hosted agent can have."""
    steps = int(CPU_MAX / CPU_STEP)
    return [(CPU_STEP * n, CPU_STEP * n * 2) for n in range(1, steps + 1)]


def _number(value: Decimal) -> str:
    return format(value.normalize(), "f")


def sizes_text() -> str:
    return ", ".join(f"{_number(cpu)}/{_number(memory)}Gi" for cpu, memory in sizes())


def parse_cpu(value: str) -> Decimal | None:
    try:
        cpu = Decimal(value.strip())
    except (InvalidOperation, AttributeError):
        return None
    return cpu if cpu.is_finite() else None


def parse_memory(value: str) -> Decimal | None:
    match = MEMORY.match(value.strip())
    return Decimal(match["amount"]) if match else None


def size_problems(cpu_text: str, memory_text: str) -> list[Problem]:
    cpu, memory = parse_cpu(cpu_text), parse_memory(memory_text)
    problems = []
    if cpu is None or (cpu, cpu * 2) not in sizes():
        problems.append(
            Problem(
                "runtime.cpu",
                f"{cpu_text!r} is not a hosted-agent CPU size; use 0.25 to 2 in steps of 0.25 "
                f"(cpu/memory sizes: {sizes_text()})",
            )
        )
    elif memory is None:
        problems.append(
            Problem(
                "runtime.memory",
                f"{memory_text!r} is not a memory size Foundry reads; write it in Gi, "
                f"e.g. {_number(cpu * 2)}Gi for cpu {cpu_text}",
            )
        )
    elif memory != cpu * 2:
        problems.append(
            Problem(
                "runtime.memory",
                f"{memory_text} does not go with cpu {cpu_text}; use {_number(cpu * 2)}Gi "
                f"(cpu/memory sizes: {sizes_text()})",
            )
        )
    return problems


def merged_metadata(manifest: Manifest, target: AzureTarget) -> dict[str, str]:
    """The version's metadata: the manifest's, targets.azure's over it, and (v1) the marker
    of the current hosted-agent backend."""
    metadata = {**manifest.metadata, **target.metadata}
    if target.api == GA_API:
        key, value = VNEXT_METADATA
        metadata.setdefault(key, value)
    return metadata


def validate(
    manifest: Manifest, target: AzureTarget, *, image: str, image_field: str = "image.repository"
) -> list[Problem]:
    """Everything Foundry would refuse, found before any call."""
    problems: list[Problem] = []
    if not target.project_endpoint:
        problems.append(
            Problem(
                "targets.azure.project_endpoint",
                f"is empty; set it to your Foundry project endpoint, {ENDPOINT_EXAMPLE} "
                "(portal: the project's Overview page)",
            )
        )
    name_field = "targets.azure.agent_name" if target.agent_name else "name"
    agent = target.agent_name or manifest.name
    if not AZURE_AGENT_NAME.match(agent):
        problems.append(
            Problem(
                name_field,
                f"{agent!r} is not a Foundry agent name; use 1-63 letters, digits and '-', "
                "starting and ending with a letter or digit",
            )
        )
    problems += size_problems(manifest.runtime.cpu, manifest.runtime.memory)
    problems += _environment_problems(manifest, target)
    metadata = merged_metadata(manifest, target)
    if len(metadata) > METADATA_MAX_PAIRS:
        added = " (actk adds enableVnextExperience on api v1)" if target.api == GA_API else ""
        problems.append(
            Problem(
                "metadata",
                f"{len(metadata)} pairs with targets.azure.metadata{added}; at most "
                f"{METADATA_MAX_PAIRS} are allowed: remove {len(metadata) - METADATA_MAX_PAIRS}",
            )
        )
    for key, value in metadata.items():
        if len(key) > METADATA_MAX_KEY:
            problems.append(
                Problem("metadata", f"key {key[:20]!r}… is longer than {METADATA_MAX_KEY} "
                        "characters; shorten it")
            )
        if len(value) > METADATA_MAX_VALUE:
            problems.append(
                Problem("metadata", f"value of {key!r} is longer than {METADATA_MAX_VALUE} "
                        "characters; shorten it")
            )
    problems += _protocol_problems(target)
    problems += _image_problems(image, image_field)
    return problems


def _environment_problems(manifest: Manifest, target: AzureTarget) -> list[Problem]:
    problems = []
    runtime = manifest.runtime
    sections = (("runtime.env", list(runtime.env)), ("runtime.secrets", runtime.secrets))
    for section, names in sections:
        for name in names:
            if not FOUNDRY_ENV_NAME.match(name):
                problems.append(
                    Problem(section, f"{name!r}: Foundry accepts only letters, digits and '_' "
                            "in environment variable names; rename it")
                )
            elif target.api == GA_API and name.upper().startswith(RESERVED_ENV_PREFIXES):
                problems.append(
                    Problem(
                        section,
                        f"{name!r}: names starting with FOUNDRY_ or AGENT_ are reserved (Foundry "
                        "sets them in the container itself); rename it",
                    )
                )
    for name in runtime.secrets:
        if name in runtime.env:
            problems.append(
                Problem("runtime.secrets", f"{name!r} is also in runtime.env; keep it in one "
                        "place (secrets for values that must not be written down)")
            )
    return problems


def _protocol_problems(target: AzureTarget) -> list[Problem]:
    version = target.resolved_protocol_version
    if target.api == GA_API and not SEMVER.match(version):
        hint = " ('v1' is the 2025-11-15-preview form)" if version.startswith("v") else ""
        return [
            Problem(
                "targets.azure.protocol_version",
                f"{version!r} is not a protocol version api v1 accepts{hint}; use \"1.0.0\" "
                "(what the actk template's server speaks)",
            )
        ]
    if target.api == PREVIEW_API and not PREVIEW_PROTOCOL.match(version):
        return [
            Problem(
                "targets.azure.protocol_version",
                f"{version!r} is not a protocol version api 2025-11-15-preview accepts; use "
                "\"v1\"",
            )
        ]
    return []


def _image_problems(image: str, image_field: str) -> list[Problem]:
    first = image.split("/", 1)[0]
    if "/" not in image or not ("." in first or ":" in first or first == "localhost"):
        return [
            Problem(
                image_field,
                f"{image!r} names no registry, so Foundry cannot pull it; use the registry's "
                "host, e.g. <registry>.azurecr.io/<name>, then `actk build` and `actk push`",
            )
        ]
    if "@" in image and not DIGEST_REFERENCE.search(image):
        return [Problem(image_field, f"{image!r} has a malformed digest; use repo@sha256:<64 hex>")]
    return []


def check(manifest: Manifest, target: AzureTarget, *, image: str, image_field: str) -> None:
    """Raise one ManifestError listing every problem (each line names the field and the fix)."""
    problems = validate(manifest, target, image=image, image_field=image_field)
    if problems:
        raise ManifestError(
            "\n".join(problem.line() for problem in problems),
            hint=f"fix {problems[0].field} (each line says how); `actk deploy azure --dry-run` "
            "checks again without sending anything",
        )


# --- the desired version ----------------------------------------------------------------------


def build_definition(
    api: str,
    *,
    image: str,
    cpu: str,
    memory: str,
    environment: Mapping[str, str],
    protocol_version: str,
    tools: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The hosted-agent definition of ``api``: GA ``HostedAgentDefinition`` or the preview's
    ``ImageBasedHostedAgentDefinition``."""
    protocols = [{"protocol": "responses", "version": protocol_version}]
    if api == GA_API:
        definition: dict[str, Any] = {
            "kind": "hosted",
            "container_configuration": {"image": image},
            "protocol_versions": protocols,
            "cpu": cpu,
            "memory": memory,
        }
    else:
        definition = {
            "kind": "hosted",
            "container_protocol_versions": protocols,
            "cpu": cpu,
            "memory": memory,
            "image": image,
        }
    if environment:
        definition["environment_variables"] = dict(environment)
    if api == PREVIEW_API and tools:
        definition["tools"] = list(tools)
    return definition


def build_body(
    definition: dict[str, Any], *, description: str | None, metadata: Mapping[str, str]
) -> dict[str, Any]:
    """``CreateAgentVersionRequest``: None and empty fields are left out, as the SDK does."""
    body: dict[str, Any] = {"definition": definition}
    if description:
        body["description"] = description
    if metadata:
        body["metadata"] = dict(metadata)
    return body


# --- the idempotency rule ---------------------------------------------------------------------


def definition_key(definition: Mapping[str, Any]) -> dict[str, Any]:
    """What makes two definitions the same version, in either API generation's shape."""
    container = definition.get("container_configuration")
    image = container.get("image") if isinstance(container, dict) else definition.get("image")
    protocols = definition.get("protocol_versions") or definition.get(
        "container_protocol_versions"
    ) or []
    cpu = parse_cpu(str(definition.get("cpu", "")))
    memory = parse_memory(str(definition.get("memory", "")))
    return {
        "image": image,
        "cpu": cpu.normalize() if cpu is not None else definition.get("cpu"),
        "memory": memory.normalize() if memory is not None else definition.get("memory"),
        "environment_variables": dict(definition.get("environment_variables") or {}),
        "protocols": sorted(
            (str(p.get("protocol", "")).lower(), str(p.get("version", "")))
            for p in protocols
            if isinstance(p, dict)
        ),
        "tools": definition.get("tools") or [],
    }


def definition_changes(desired: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """The fields that differ (environment variables by name only: values may be secrets)."""
    want, have = definition_key(desired), definition_key(current)
    changes = []
    for name in ("image", "cpu", "memory", "protocols", "tools"):
        if want[name] != have[name]:
            changes.append(name)
    env_want, env_have = want["environment_variables"], have["environment_variables"]
    names = sorted(
        key for key in env_want.keys() | env_have.keys() if env_want.get(key) != env_have.get(key)
    )
    if names:
        changes.append(f"environment_variables ({', '.join(names)})")
    return changes


# --- the deploy -------------------------------------------------------------------------------


def load_target(directory: Path) -> tuple[Path, Manifest, AzureTarget]:
    """(repository, manifest, targets.azure); a missing section is a ManifestError."""
    return target_section(
        directory, "azure",
        f"add `targets: {{azure: {{project_endpoint: {ENDPOINT_EXAMPLE}}}}}` to {{file}}",
    )


def _require_endpoint(target: AzureTarget) -> None:
    if not target.project_endpoint:
        raise ManifestError(
            "agent.yaml: targets.azure.project_endpoint: is empty",
            hint=f"set it to your Foundry project endpoint, {ENDPOINT_EXAMPLE}",
        )


def _client(
    target: AzureTarget,
    env: Mapping[str, str],
    *,
    features: str | None,
    secrets: list[str],
    clock: Clock,
    on_call: Callable[[str], None] | None = None,
    timeout: float = 60.0,
) -> FoundryClient:
    from toolkit.cloud.azure_auth import FOUNDRY_SCOPE, azure_token

    return FoundryClient(
        target.project_endpoint,
        api=target.api,
        token=lambda: azure_token(FOUNDRY_SCOPE, env),
        features=features or target.foundry_features,
        secrets=secrets,
        sleep=clock.sleep,
        on_call=on_call,
        timeout=timeout,
    )


@dataclass
class AzureDeploy:
    """The Foundry deploy as :mod:`toolkit.deploy.core` phases."""

    repo: Path
    manifest: Manifest
    target: AzureTarget
    options: AzureOptions
    env: Mapping[str, str]
    console: Console
    clock: Clock | None = None
    on_call: Callable[[str], None] | None = None
    name: str = TARGET
    agent: str = field(init=False)
    image: str = field(init=False)
    image_source: str = field(init=False)
    environment: dict[str, str] = field(init=False)
    body: dict[str, Any] = field(init=False)
    warnings: list[str] = field(init=False)
    _client: FoundryClient | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.clock = self.clock or SYSTEM_CLOCK
        manifest, target, options = self.manifest, self.target, self.options
        self.agent = target.agent_name or manifest.name
        self.image, self.image_source, _, self.warnings = resolve_image(
            self.repo, manifest, options.image, puller="Foundry", runs="the version"
        )
        check(
            manifest,
            target,
            image=self.image,
            image_field="--image" if options.image else "image.repository",
        )
        self.environment, missing = read_environment(manifest, self.env)
        self.warnings += missing_secrets(missing, dry_run=options.dry_run,
                                         prefix="runtime.secrets: ",
                                         remove="runtime.secrets in agent.yaml")
        for name in missing:
            self.environment[name] = REDACTED
        if manifest.runtime.port != PROBE_PORT:
            self.warnings.append(
                f"runtime.port is {manifest.runtime.port}, but Foundry sends traffic and its "
                f"readiness probe to port {PROBE_PORT}: the container must listen there (the "
                "actk template follows the PORT variable Foundry sets)"
            )
        host = self.image.split("/", 1)[0]
        if ".azurecr." not in host:
            self.warnings.append(
                f"{host} is not an Azure Container Registry: Foundry pulls with the project's "
                "managed identity, which other registries do not accept without a registry "
                "connection"
            )
        definition = build_definition(
            target.api,
            image=self.image,
            cpu=manifest.runtime.cpu,
            memory=manifest.runtime.memory,
            environment=self.environment,
            protocol_version=target.resolved_protocol_version,
            tools=target.tools,
        )
        self.body = build_body(
            definition,
            description=target.description or manifest.description or None,
            metadata=merged_metadata(manifest, target),
        )

    # --- helpers ---

    @property
    def secret_names(self) -> list[str]:
        return list(self.manifest.runtime.secrets)

    @property
    def secret_values(self) -> list[str]:
        return secret_values(self.environment, self.secret_names)

    @property
    def client(self) -> FoundryClient:
        if self._client is None:
            self._client = _client(
                self.target,
                self.env,
                features=self.options.features,
                secrets=self.secret_values,
                clock=self.clock,
                on_call=self.on_call,
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def redacted_body(self) -> dict[str, Any]:
        definition = dict(self.body["definition"])
        if "environment_variables" in definition:
            definition["environment_variables"] = redact_values(
                definition["environment_variables"], self.secret_names
            )
        return {**self.body, "definition": definition}

    def planned(self, call: Call, note: str = "", *, body: Any = None) -> PlannedRequest:
        method, url, headers, call_body = self.client.describe(call)
        url = url.replace("%7Bversion%7D", "{version}").replace("%7Boperation_id%7D",
                                                               "{operation_id}")
        request = PlannedRequest(method, url, headers, call_body if body is None else body, note)
        return request.redacted(self.secret_values)

    def responses_endpoint(self) -> str:
        return self.client.responses_url(self.agent)

    def _summary(self) -> list[tuple[str, str]]:
        definition = self.body["definition"]
        environment = redact_values(self.environment, self.secret_names)
        return [
            ("project", self.target.project_endpoint),
            ("agent", f"{self.agent} (api {self.target.api})"),
            ("image", f"{self.image} (from {self.image_source})"),
            ("size", f"cpu {definition['cpu']}, memory {definition['memory']}"),
            ("protocol", f"responses {self.target.resolved_protocol_version}"),
            ("environment", ", ".join(f"{k}={v}" for k, v in environment.items()) or "none"),
        ]

    # --- phases ---

    def plan(self, *, dry_run: bool) -> Plan:
        client = self.client
        requests = self._planned_requests()
        summary = self._summary()
        if dry_run:
            return Plan(
                TARGET,
                "create",
                f"Dry run: the requests for {self.agent} (nothing is sent; a version is created "
                "only when the latest one differs)",
                summary,
                requests,
                self.warnings,
            )
        latest = client.latest_version(self.agent)
        context: dict[str, Any] = {"latest": latest}
        if latest is None:
            return Plan(TARGET, "create", f"Creating the first version of {self.agent}",
                        summary, requests, self.warnings, context)
        changes = definition_changes(self.body["definition"], latest.definition)
        context["changes"] = changes
        if changes:
            return Plan(
                TARGET,
                "create",
                f"Creating a new version of {self.agent} (version {latest.version} differs in "
                f"{', '.join(changes)})",
                summary,
                requests,
                self.warnings,
                context,
            )
        if self.target.api == PREVIEW_API:
            container = client.get_container(self.agent, latest.version)
            context["container"] = container
            if container is not None and container.running:
                return Plan(TARGET, "unchanged", f"{self.agent} version {latest.version} already "
                            "has this definition and its container is running: nothing to do",
                            summary, requests, self.warnings, context)
            state = container.status if container else "never started"
            return Plan(TARGET, "start", f"{self.agent} version {latest.version} already has "
                        f"this definition; starting its container ({state})", summary, requests,
                        self.warnings, context)
        status = latest.status or "active"
        if status == "active":
            return Plan(TARGET, "unchanged", f"{self.agent} version {latest.version} already has "
                        "this definition and is active: no new version", summary, requests,
                        self.warnings, context)
        if status == "creating":
            return Plan(TARGET, "wait", f"{self.agent} version {latest.version} already has this "
                        "definition and is still being created: no new version", summary,
                        requests, self.warnings, context)
        return Plan(
            TARGET,
            "create",
            f"Creating a new version of {self.agent} (version {latest.version} has this "
            f"definition but is {status})",
            summary,
            requests,
            self.warnings,
            context,
        )

    def _planned_requests(self) -> list[PlannedRequest]:
        client, agent = self.client, self.agent
        requests = [
            self.planned(client.list_versions_call(agent, limit=1),
                         "reads the latest version, to compare (nothing else is sent when it "
                         "has this definition)"),
            self.planned(client.create_version_call(agent, self.body),
                         "only when the latest version's definition differs",
                         body=self.redacted_body()),
        ]
        if self.target.api == PREVIEW_API:
            low, high = self.target.replicas
            requests.append(
                self.planned(client.start_container_call(agent, "{version}", low, high),
                             "when the version's container is not running")
            )
            if self.options.wait:
                requests.append(
                    self.planned(client.get_operation_call(agent, "{operation_id}"),
                                 f"every {OPERATION_INTERVAL:g} s until the operation ends "
                                 f"(at most {self.options.timeout:g} s)")
                )
        elif self.options.wait:
            requests += [
                self.planned(client.get_version_call(agent, "{version}"),
                             f"every {POLL_INTERVAL:g} s until {CONFIRMATIONS} readings in a row "
                             f"are active or failed (at most {self.options.timeout:g} s)"),
                self.planned(client.get_agent_call(agent),
                             "once the version is active: reads the endpoint's version selector"),
                self.planned(client.route_traffic_call(agent, "{version}"),
                             "only when the selector does not already send all traffic to the "
                             "version (a merge-patch: the endpoint's other settings are kept)"),
            ]
        return requests

    def apply(self, plan: Plan) -> DeployResult:
        latest: AgentVersion | None = plan.context.get("latest")
        details = self._details(plan)
        result = DeployResult(TARGET, plan.action, changed=plan.action in ("create", "start"),
                              reason=plan.reason, endpoint=self.responses_endpoint(),
                              details=details)
        if plan.action == "create":
            created = self._create(latest)
            result.version, result.status = created.version, created.status or "creating"
            self.console.success(f"created version {created.version} of {self.agent}")
            if self.target.api == PREVIEW_API:
                self._start(result, created.version)
        elif latest is not None:
            result.version = latest.version
            if plan.action == "start":
                self._start(result, latest.version)
            elif self.target.api == PREVIEW_API:
                result.status = "running"
            else:
                result.status = latest.status or "active"
        return result

    def _details(self, plan: Plan) -> dict[str, Any]:
        definition = self.body["definition"]
        latest: AgentVersion | None = plan.context.get("latest")
        return {
            "agent": self.agent,
            "api": self.target.api,
            "project_endpoint": self.target.project_endpoint,
            "image": self.image,
            "image_source": self.image_source,
            "cpu": definition["cpu"],
            "memory": definition["memory"],
            "protocol_version": self.target.resolved_protocol_version,
            "environment": redact_values(self.environment, self.secret_names),
            "previous_version": latest.version if latest else None,
            "changes": plan.context.get("changes", []),
        }

    def _create(self, latest: AgentVersion | None) -> AgentVersion:
        """POST the version. A 500/502/504 may have created it anyway: when the latest version
        is now a new one with this definition, that is the answer; otherwise send it again."""
        client = self.client
        call = client.create_version_call(self.agent, self.body)
        delay = client.http.policy.backoff
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            response = client.send(call, ok=FLAKY)
            if response.status_code not in FLAKY:
                try:
                    return AgentVersion.from_json(response.json())
                except ValueError:
                    raise client.error(response, call.purpose) from None
            if attempt == CREATE_ATTEMPTS:
                raise client.error(response, call.purpose)
            self.console.warn(f"Foundry answered HTTP {response.status_code} to the create; "
                              "checking whether the version was created anyway")
            now = client.latest_version(self.agent)
            if now is not None and (latest is None or now.version != latest.version) and not (
                definition_changes(self.body["definition"], now.definition)
            ):
                return now
            self.clock.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def _start(self, result: DeployResult, version: str) -> None:
        low, high = self.target.replicas
        client = self.client
        call = client.start_container_call(self.agent, version, low, high)
        operation = client.container_operation(call, self.agent)
        self.console.step(f"Starting the container of version {version} ({low}-{high} replicas)")
        result.changed = True
        result.status = operation.status
        result.details["operation"] = operation.id

    def wait(self, result: DeployResult, timeout: float) -> DeployResult:
        if result.version is None:
            return result
        if self.target.api == PREVIEW_API:
            if result.details.get("operation"):
                self._wait_operation(result, timeout)
            return result
        if result.status in ("active",):
            return result
        self._wait_version(result, timeout)
        return result

    def _wait_version(self, result: DeployResult, timeout: float) -> None:
        client, version = self.client, str(result.version)

        def read() -> tuple[str, AgentVersion]:
            current = client.get_version(self.agent, version)
            return current.status or "active", current

        with self.console.live_log(f"Waiting for version {version} to become active") as show:
            status, current = poll(
                read,
                terminal=lambda s: s in VERSION_TERMINAL,
                interval=POLL_INTERVAL,
                timeout=timeout,
                clock=self.clock,
                confirmations=CONFIRMATIONS,
                on_reading=lambda s, t: show(f"version {version}: {s} ({t:.0f} s)"),
                what=f"version {version} of {self.agent}",
                hint="it usually takes 2-5 minutes and may still finish: `actk status azure` "
                "shows it; raise --timeout to wait longer",
            )
        result.status = status
        if status != "active":
            raise self._failed(version, status, current.reason)
        self.console.success(f"version {version} is active")

    def _failed(self, version: str, status: str, reason: str | None) -> CloudError:
        text = reason or "the service gave no reason"
        hint = failure_hint(reason) or (
            "read the version's logs in the Foundry portal (Agents > the agent > Logs); "
            "`actk smoke` runs the container contract checks locally"
        )
        state = {"failed": "failed", "deleting": "is being deleted", "deleted": "was deleted"}
        return CloudError(
            redact(f"version {version} of {self.agent} {state.get(status, 'is ' + status)}: "
                   f"{text}", self.secret_values),
            hint=hint,
        )

    def _wait_operation(self, result: DeployResult, timeout: float) -> None:
        client, operation_id = self.client, str(result.details["operation"])

        def read() -> tuple[str, Operation]:
            operation = client.get_operation(self.agent, operation_id)
            return operation.status, operation

        title = f"Waiting for the container of version {result.version}"
        with self.console.live_log(title) as show:
            status, operation = poll(
                read,
                terminal=lambda s: s in ("succeeded", "failed", "canceled", "cancelled"),
                interval=OPERATION_INTERVAL,
                timeout=timeout,
                clock=self.clock,
                on_reading=lambda s, t: show(f"operation {operation_id}: {s} ({t:.0f} s)"),
                what=f"the container start of version {result.version}",
                hint="it may still start: `actk status azure` shows it; raise --timeout to wait "
                "longer",
            )
        container = client.get_container(self.agent, str(result.version))
        if status != "succeeded":
            reasons = [
                text
                for text in (
                    _operation_reason(operation),
                    container.error_message if container else None,
                )
                if text
            ]
            reason = "; ".join(reasons) or "the service gave no reason"
            raise CloudError(
                redact(f"the container of version {result.version} did not start ({status}): "
                       f"{reason}", self.secret_values),
                hint=failure_hint(reason)
                or "read the container logs (GET .../containers/default:logstream) or the portal",
            )
        result.status = container.status if container else "running"
        self.console.success(f"the container of version {result.version} is {result.status}")

    def route(self, result: DeployResult) -> DeployResult:
        """v1: point the agent endpoint's version selector at the deployed version once it is
        active. Until then the endpoint may serve an older version (a selector pinned by an
        earlier deploy, or by hand). The preview names the version in each invocation instead."""
        if self.target.api != GA_API or result.version is None:
            return result
        version = str(result.version)
        if result.status != "active":
            text = (
                f"version {version} is {result.status}, so the agent endpoint was not pointed at "
                "it: run `actk deploy azure` again once it is active (`actk status azure` shows "
                "it)"
            )
            self.console.warn(text)
            result.warnings.append(text)
            result.details["traffic"] = {"version": None, "changed": False, "previous": None}
            return result
        client = self.client
        current = client.get_agent(self.agent)
        previous = [rule.to_dict() for rule in current.rules] if current else []
        changed = current is None or not current.pins(version)
        if changed:
            self.console.step(f"Sending all of the endpoint's traffic to version {version}")
            answer = client.route_traffic(self.agent, version)
            result.changed = True
            if not answer.pins(version):
                text = (
                    f"Foundry accepted the version selector for version {version} but answered "
                    "with another one: check the agent's endpoint in the portal (Agents > "
                    f"{self.agent} > Publish)"
                )
                self.console.warn(text)
                result.warnings.append(text)
        else:
            self.console.detail(f"the endpoint already sends all traffic to version {version}")
        result.details["traffic"] = {
            "version": version,
            "percentage": 100,
            "changed": changed,
            "previous": previous,
        }
        return result

    def record(self, result: DeployResult) -> Path | None:
        from toolkit.state import write_section

        return write_section(
            self.repo,
            TARGET,
            {
                "agent_name": self.agent,
                "api": self.target.api,
                "project_endpoint": self.target.project_endpoint,
                "version": result.version,
                "status": result.status,
                "image": self.image,
                "responses_url": result.endpoint,
                "traffic_version": (result.details.get("traffic") or {}).get("version"),
                "deployed_at": utc_now(),
            },
        )


def _operation_reason(operation: Operation) -> str | None:
    if not operation.error:
        return None
    from toolkit.cloud.foundry import error_text

    return error_text(operation.error) or None


def deploy_azure(
    directory: Path,
    options: AzureOptions,
    console: Console,
    env: Mapping[str, str],
    *,
    clock: Clock | None = None,
    on_call: Callable[[str], None] | None = None,
) -> DeployResult:
    """`actk deploy azure`: plan, show, apply, wait, record."""
    clock = clock or SYSTEM_CLOCK
    repo, manifest, target = load_target(directory)
    deployment = AzureDeploy(repo, manifest, target, options, env, console, clock, on_call)
    return run_and_close(deployment, console, options, clock)


# --- status and delete ------------------------------------------------------------------------


def azure_status(
    directory: Path,
    env: Mapping[str, str],
    *,
    features: str | None = None,
    limit: int = 20,
    clock: Clock | None = None,
    on_call: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The agent's versions, newest first, with their status (the preview: their container's)."""
    from toolkit.state import read_state

    clock = clock or SYSTEM_CLOCK
    repo, manifest, target = load_target(directory)
    _require_endpoint(target)
    agent = target.agent_name or manifest.name
    recorded = read_state(repo).get(TARGET) or {}
    deployed = recorded.get("version") if recorded.get("agent_name") == agent else None
    with _client(target, env, features=features, secrets=[], clock=clock,
                 on_call=on_call) as client:
        versions = client.list_versions(agent, limit=limit)
        rows = []
        for index, version in enumerate(versions):
            status = version.status
            if target.api == PREVIEW_API:
                container = client.get_container(agent, version.version) if index < 5 else None
                status = container.status if container else ("not started" if index < 5 else None)
            rows.append(
                {
                    "version": version.version,
                    "status": status,
                    "created_at": _iso(version.created_at),
                    "image": version.image,
                    "cpu": version.definition.get("cpu"),
                    "memory": version.definition.get("memory"),
                    "reason": version.reason if status == "failed" else None,
                    "deployed": version.version == deployed,
                }
            )
        endpoint = client.responses_url(agent)
    return {
        "target": TARGET,
        "agent": agent,
        "api": target.api,
        "project_endpoint": target.project_endpoint,
        "endpoint": endpoint,
        "exists": bool(rows),
        "deployed_version": deployed,
        "versions": rows,
    }


def delete_azure(
    directory: Path,
    env: Mapping[str, str],
    console: Console,
    *,
    version: str | None = None,
    force: bool = False,
    features: str | None = None,
    clock: Clock | None = None,
    on_call: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Delete one version, or the whole agent. A 409 (active sessions) names --force, which
    asks the service to end them (v1) or stops the version's container first (preview)."""
    from toolkit.state import read_state, write_section

    clock = clock or SYSTEM_CLOCK
    repo, manifest, target = load_target(directory)
    _require_endpoint(target)
    agent = target.agent_name or manifest.name
    with _client(target, env, features=features, secrets=[], clock=clock,
                 on_call=on_call) as client:
        preview = target.api == PREVIEW_API
        if version is not None:
            if force and preview:
                _stop_container(client, agent, version, console, clock)
            call = client.delete_version_call(agent, version, force=force and not preview)
        else:
            call = client.delete_agent_call(agent, force=force and not preview)
        console.step(f"Deleting {'version ' + version + ' of ' if version else 'the agent '}"
                     f"{agent}{' (force)' if force else ''}")
        answer = client.delete(call)
    recorded = read_state(repo).get(TARGET) or {}
    if recorded.get("agent_name") == agent and (version is None or recorded.get("version") ==
                                                version):
        write_section(repo, TARGET, {**recorded, "status": "deleted", "deleted_at": utc_now()})
    return {
        "target": TARGET,
        "agent": agent,
        "version": version,
        "deleted": bool(answer.get("deleted", True)),
        "force": force,
    }


def _stop_container(
    client: FoundryClient, agent: str, version: str, console: Console, clock: Clock
) -> None:
    container = client.get_container(agent, version)
    if container is None or container.status in ("stopped", "deleted", "failed"):
        return
    console.step(f"Stopping the container of version {version} first (--force)")
    operation = client.container_operation(client.stop_container_call(agent, version), agent)
    poll(
        lambda: (client.get_operation(agent, operation.id).status, None),
        terminal=lambda s: s in ("succeeded", "failed", "canceled", "cancelled"),
        interval=OPERATION_INTERVAL,
        timeout=DEFAULT_TIMEOUT,
        clock=clock,
        what=f"stopping the container of version {version}",
    )


def _iso(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- invoke -----------------------------------------------------------------------------------

INVOKE_HINTS = {
    404: "no agent endpoint answers there: deploy it first (`actk deploy azure`), and check "
    "targets.azure.api (the endpoint serves api-version v1 only)",
    424: "the agent's container is not ready (a cold start, or a failing readiness probe on port "
    "8088): retry in a minute; `actk status azure` shows the version's status",
    500: "the agent failed: a common cause is its identity lacking the Azure AI User role on the "
    "project (it gets 401 from Foundry storage); read the agent's logs in the portal",
}


def invoke_azure(
    directory: Path,
    text: str,
    *,
    env: Mapping[str, str],
    stream: bool = True,
    structured_inputs: Mapping[str, Any] | None = None,
    model: str | None = None,
    timeout: float = 120.0,
    on_delta: Callable[[str], None] | None = None,
    features: str | None = None,
    clock: Clock | None = None,
) -> InvokeResult:
    """One Responses request through the agent's Foundry endpoint: GA
    ``agents/{name}/endpoint/protocols/openai/responses``; the preview's ``openai/responses``
    with an ``agent`` reference in the body."""
    from toolkit.invoke import InvokeResult
    from toolkit.state import read_state

    clock = clock or SYSTEM_CLOCK
    repo, manifest, target = load_target(directory)
    _require_endpoint(target)
    agent = target.agent_name or manifest.name
    body = responses_body(text, stream=stream, model=model, structured_inputs=structured_inputs)
    if target.api == PREVIEW_API:
        reference: dict[str, Any] = {"type": "agent_reference", "name": agent}
        recorded = read_state(repo).get(TARGET) or {}
        if recorded.get("agent_name") == agent and recorded.get("version"):
            reference["version"] = str(recorded["version"])
        body["agent"] = reference
    with _client(target, env, features=features, secrets=[], clock=clock,
                 timeout=timeout) as client:
        url = client.responses_url(agent)
        with invoke_failures(
            url, timeout, who=agent, hide=client.http.redact,
            network_hint="check targets.azure.project_endpoint and your network (HTTPS_PROXY)",
        ), client.open_stream(url, body, timeout) as answer:
            return read_answer(
                answer,
                InvokeResult(url=url),
                stream=stream,
                on_delta=on_delta,
                error=lambda failed: _invoke_error(client, failed, url),
                not_json_hint=INVOKE_HINTS[404],
            )


def _invoke_error(client: FoundryClient, answer: Any, url: str) -> InvokeError:
    code, message = parse_error(answer)
    status = answer.status_code
    hint = INVOKE_HINTS.get(status) or status_hint(
        status, code, message, features_sent=bool(client.features), purpose="invoke"
    )
    if status == 403 or status == 401:
        hint = status_hint(status, code, message, features_sent=bool(client.features),
                           purpose="invoke")
        if status == 403 and "preview" not in message.lower():
            hint = ("calling the agent needs the Azure AI User role on the project for your "
                    "identity")
    return InvokeError(client.http.redact(f"the agent answered HTTP {status}: {message}"),
                       hint=hint)
