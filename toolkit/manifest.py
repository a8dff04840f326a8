"""`agent.yaml`: the models (pydantic v2), loading, validation messages and JSON Schema export.

One file describes the agent for every command; flags override it. A wrong field is reported
as ``agent.yaml: <field path>: <what is wrong>`` with a hint naming the fix, never a traceback.
Cloud targets are validated loosely here (their own modules check them before any call).
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from toolkit.errors import ManifestError

MANIFEST_NAME = "agent.yaml"
NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
INPUT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
METADATA_MAX_PAIRS, METADATA_MAX_KEY, METADATA_MAX_VALUE = 16, 64, 512


class Strict(BaseModel):
    """Unknown keys are errors: a typo must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class InputSchema(Strict):
    type: Literal["string", "number", "integer", "boolean", "array", "object"]
    items: InputSchema | None = None
    description: str | None = None


class StructuredInput(Strict):
    description: str = ""
    required: bool = False
    default_value: Any = None
    schema_: InputSchema = Field(default_factory=lambda: InputSchema(type="string"), alias="schema")

    @model_validator(mode="after")
    def _default_matches_schema(self) -> StructuredInput:
        if self.default_value is not None and not value_matches(self.default_value, self.schema_):
            raise ValueError(f"default_value {self.default_value!r} is not a {self.schema_.type}")
        return self


class ModelSettings(Strict):
    provider: Literal[
        "echo", "openai", "azure-openai", "anthropic", "dashscope", "openai-compatible"
    ] = "echo"
    name: str = "echo-1"


class JsonSchemaFormat(Strict):
    name: str
    schema_: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None
    description: str | None = None


class ResponseFormat(Strict):
    type: Literal["text", "json_object", "json_schema"] = "text"
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_when_needed(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("type json_schema needs a json_schema: {name, schema}")
        return self


class RegistrySettings(Strict):
    """How to sign in to the image's registry, when its host alone does not say enough."""

    # Which credential provider; auto picks it from the host (*.azurecr.io, *.aliyuncs.com).
    kind: Literal["auto", "azure", "alibaba", "generic"] = "auto"
    # Azure: the Entra tenant for the ACR token exchange (default: the token's own tenant),
    # and the registry's subscription and resource group for `actk build --remote acr`.
    tenant_id: str | None = None
    subscription_id: str | None = None
    resource_group: str | None = None
    # Alibaba enterprise edition: the instance id (cri-...); looked up by name when absent.
    instance_id: str | None = Field(None, pattern=r"^cri-[a-z0-9]+$")
    # Alibaba: the region when the host does not carry it.
    region: str | None = None


class ImageSettings(Strict):
    repository: str | None = None
    tag: str = "{git_sha}"
    registry: RegistrySettings = Field(default_factory=RegistrySettings)

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str | None) -> str | None:
        from toolkit.tags import REPOSITORY_PATTERN

        if value is not None and not REPOSITORY_PATTERN.match(value):
            raise ValueError(f"{value!r} is not an image repository; use lower-case letters, "
                             "digits and . _ - separators, e.g. example.io/team/agent")
        return value

    @field_validator("tag")
    @classmethod
    def _tag(cls, value: str) -> str:
        import string

        from toolkit.tags import PLACEHOLDERS

        try:
            names = [n for _, n, _, _ in string.Formatter().parse(value) if n is not None]
        except ValueError as exc:
            raise ValueError(f"cannot read {value!r} ({exc}); a literal brace is {{{{ or }}}}"
                             ) from None
        unknown = sorted(set(names) - set(PLACEHOLDERS))
        if unknown:
            raise ValueError(f"unknown placeholder {{{unknown[0]}}}; tags may use "
                             + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS))
        return value


class BuildSettings(Strict):
    context: str = "."
    dockerfile: str = "Dockerfile"
    platform: str = "linux/amd64"
    base_image: str = "python:3.12-slim"
    args: dict[str, str] = Field(default_factory=dict)

    @field_validator("platform")
    @classmethod
    def _platform(cls, value: str) -> str:
        if not re.match(r"^linux/(amd64|arm64)(/v8)?$", value):
            raise ValueError("use linux/amd64 (what the cloud runtimes run) or linux/arm64")
        return value


class RuntimeSettings(Strict):
    port: int = Field(8088, ge=1, le=65535)
    cpu: str = "1"
    memory: str = "2Gi"
    env: dict[str, str] = Field(default_factory=dict)
    secrets: list[str] = Field(default_factory=list)

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not ENV_NAME.match(name):
                raise ValueError(
                    f"{name!r} is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)"
                )
        return value

    @field_validator("secrets")
    @classmethod
    def _secret_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not ENV_NAME.match(name):
                raise ValueError(
                    f"{name!r} is not an environment variable name; list names only, the values "
                    "come from your environment at deploy time"
                )
        return value


# Foundry agent names: 1-63 characters, alphanumeric at both ends, hyphens allowed in between.
AZURE_AGENT_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class AzureTarget(Strict):
    """``targets.azure``: a Foundry project and how the agent is registered in it.

    ``actk deploy azure`` checks what only makes sense against the rest of the manifest (the
    cpu/memory pair, environment names, the merged metadata) before it sends anything.
    """

    # https://<resource>.services.ai.azure.com/api/projects/<project>; empty until it is set
    # (what `actk new` writes), which only `actk deploy azure` refuses.
    project_endpoint: str = ""
    # v1: HostedAgentDefinition, version status polled until active. 2025-11-15-preview:
    # ImageBasedHostedAgentDefinition, then containers/default:start (the initial preview).
    api: Literal["v1", "2025-11-15-preview"] = "v1"
    # The responses protocol version: default "1.0.0" for v1, "v1" for the preview.
    protocol_version: str | None = Field(None, min_length=1, max_length=32)
    # Default: the manifest's name.
    agent_name: str | None = None
    # Default: the manifest's description; metadata is merged over the manifest's.
    description: str | None = Field(None, max_length=512)
    metadata: dict[str, str] = Field(default_factory=dict)
    # The Foundry-Features header, for tenants that still gate hosted agents behind an opt-in
    # (HostedAgents=V1Preview).
    foundry_features: str | None = Field(None, min_length=1)
    # 2025-11-15-preview only: replicas of the started container (v1 scales by itself).
    min_replicas: int | None = Field(None, ge=0, le=1000)
    max_replicas: int | None = Field(None, ge=1, le=1000)
    # 2025-11-15-preview only: the definition's tools (v1 removed them).
    tools: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("project_endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        from urllib.parse import urlsplit

        value = value.strip()
        if not value:
            return value
        parts = urlsplit(value)
        example = "https://<resource>.services.ai.azure.com/api/projects/<project>"
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"{value!r} is not a URL; use the project endpoint, {example}")
        if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
            raise ValueError(
                f"{value!r} must use https (plain http is allowed only for localhost); "
                f"use {example}"
            )
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError(
                f"{parts.scheme}://{parts.hostname}/...: remove the query, fragment or "
                f"credentials; use {example}"
            )
        return value.rstrip("/")

    @field_validator("agent_name")
    @classmethod
    def _agent_name(cls, value: str | None) -> str | None:
        if value is not None and not AZURE_AGENT_NAME.match(value):
            raise ValueError(
                f"{value!r} is not a Foundry agent name: use 1-63 letters, digits and '-', "
                "starting and ending with a letter or digit"
            )
        return value

    @model_validator(mode="after")
    def _generation_fields(self) -> AzureTarget:
        if self.api == "v1":
            preview_only = [
                name
                for name, set_ in (
                    ("min_replicas", self.min_replicas is not None),
                    ("max_replicas", self.max_replicas is not None),
                    ("tools", bool(self.tools)),
                )
                if set_
            ]
            if preview_only:
                raise ValueError(
                    f"{', '.join(preview_only)} apply to api 2025-11-15-preview only (v1 "
                    "scales hosted agents by itself and has no definition tools); remove "
                    "them, or set api: 2025-11-15-preview"
                )
        low, high = self.min_replicas, self.max_replicas
        if low is not None and high is not None and low > high:
            raise ValueError(
                f"min_replicas {low} is above max_replicas {high}; make max_replicas at least "
                f"{low}"
            )
        return self

    @field_validator("metadata")
    @classmethod
    def _metadata_limits(cls, value: dict[str, str]) -> dict[str, str]:
        for key, item in value.items():
            if len(key) > METADATA_MAX_KEY:
                raise ValueError(f"key {key[:20]!r}… is longer than {METADATA_MAX_KEY} characters")
            if len(item) > METADATA_MAX_VALUE:
                raise ValueError(f"value of {key!r} is longer than {METADATA_MAX_VALUE} characters")
        return value  # the pair count is checked on the merged metadata, at deploy time

    @property
    def resolved_protocol_version(self) -> str:
        return self.protocol_version or ("1.0.0" if self.api == "v1" else "v1")

    @property
    def replicas(self) -> tuple[int, int]:
        """(min, max) for containers/default:start: azd's defaults, 1 and 3 (at least min)."""
        low = 1 if self.min_replicas is None else self.min_replicas
        high = max(low, 3) if self.max_replicas is None else self.max_replicas
        return low, high


# AgentRun runtime and endpoint names (what the `ar` CLI enforces before the service does).
ALIBABA_RUNTIME_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# Endpoint names also take upper case and '_' (the agentrun SDK's own default is "Default").
ALIBABA_ENDPOINT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
ALIBABA_ROLE_ARN = re.compile(r"^acs:ram::\d+:role/[A-Za-z0-9._-]+$")
ALIBABA_NETWORK_MODES = ("PUBLIC", "PRIVATE", "PUBLIC_AND_PRIVATE")


class AlibabaHealthCheck(Strict):
    """``healthCheckConfiguration``: an HTTP GET on the container's readiness route."""

    path: str = Field("/ready", pattern=r"^/\S*$")  # httpGetUrl; the actk container serves /ready
    initial_delay_seconds: int = Field(30, ge=0, le=3600)
    period_seconds: int = Field(30, ge=1, le=3600)
    timeout_seconds: int = Field(3, ge=1, le=3600)
    failure_threshold: int = Field(3, ge=1, le=1000)
    success_threshold: int = Field(1, ge=1, le=1000)

    @model_validator(mode="after")
    def _timeout_within_period(self) -> AlibabaHealthCheck:
        if self.timeout_seconds > self.period_seconds:
            raise ValueError(
                f"timeout_seconds {self.timeout_seconds} is longer than period_seconds "
                f"{self.period_seconds}; make the timeout at most the period"
            )
        return self


class AlibabaNetwork(Strict):
    """``networkConfiguration``: PUBLIC, or a VPC (PRIVATE / PUBLIC_AND_PRIVATE)."""

    mode: Literal["PUBLIC", "PRIVATE", "PUBLIC_AND_PRIVATE"] = "PUBLIC"
    vpc_id: str | None = Field(None, pattern=r"^vpc-[a-z0-9]+$")
    vswitch_ids: list[str] = Field(default_factory=list)
    security_group_id: str | None = Field(None, pattern=r"^sg-[a-z0-9]+$")

    @field_validator("mode", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper().replace("-", "_") if isinstance(value, str) else value

    @field_validator("vswitch_ids")
    @classmethod
    def _vswitches(cls, value: list[str]) -> list[str]:
        for item in value:
            if not re.match(r"^vsw-[a-z0-9]+$", item):
                raise ValueError(f"{item!r} is not a vSwitch id; use the vsw-... ids of the VPC")
        return value

    @model_validator(mode="after")
    def _vpc_when_private(self) -> AlibabaNetwork:
        vpc_fields = [
            name
            for name, set_ in (
                ("vpc_id", self.vpc_id is not None),
                ("vswitch_ids", bool(self.vswitch_ids)),
                ("security_group_id", self.security_group_id is not None),
            )
            if set_
        ]
        if self.mode == "PUBLIC" and vpc_fields:
            raise ValueError(
                f"{', '.join(vpc_fields)} apply to a VPC, but mode is PUBLIC; set mode "
                "PUBLIC_AND_PRIVATE (internet and the VPC) or PRIVATE, or remove them"
            )
        if self.mode != "PUBLIC":
            missing = [
                name
                for name in ("vpc_id", "vswitch_ids", "security_group_id")
                if name not in vpc_fields
            ]
            if missing:
                raise ValueError(
                    f"mode {self.mode} needs a VPC: set {', '.join(missing)} (vpc-..., "
                    "[vsw-...], sg-... from the VPC console), or use mode PUBLIC"
                )
        return self


class AlibabaSession(Strict):
    """Session settings: sessions per instance, idle timeout, affinity, isolation."""

    concurrency: int | None = Field(None, ge=1, le=200)  # sessionConcurrencyLimitPerInstance
    idle_timeout_seconds: int | None = Field(None, ge=1, le=86400)
    # NONE | HEADER_FIELD (header_field_name routes a session) | GENERATED_COOKIE (COOKIE is
    # the service's alias for it)
    affinity: Literal["NONE", "HEADER_FIELD", "GENERATED_COOKIE"] | None = None
    header_field_name: str | None = Field(None, pattern=r"^[A-Za-z0-9-]{1,128}$")
    isolation: bool | None = None  # enableSessionIsolation: each session its own environment

    @field_validator("affinity", mode="before")
    @classmethod
    def _affinity_alias(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.upper()
            return "GENERATED_COOKIE" if value == "COOKIE" else value
        return value

    @model_validator(mode="after")
    def _header_with_header_affinity(self) -> AlibabaSession:
        if self.affinity == "HEADER_FIELD" and not self.header_field_name:
            raise ValueError(
                "affinity HEADER_FIELD routes by a request header: set header_field_name, "
                "e.g. x-agentrun-session-id"
            )
        if self.header_field_name and self.affinity != "HEADER_FIELD":
            raise ValueError(
                "header_field_name is used only with affinity HEADER_FIELD; set that, or "
                "remove header_field_name"
            )
        return self


class AlibabaLog(Strict):
    """``logConfiguration``: the SLS project and logstore the runtime writes to (both)."""

    project: str = Field(min_length=3, max_length=63)
    logstore: str = Field(min_length=2, max_length=63)


class AlibabaNasMount(Strict):
    server_addr: str = Field(min_length=1)  # e.g. 0a1b2c3d-xyz.cn-hangzhou.nas.aliyuncs.com:/
    mount_dir: str = Field(pattern=r"^/\S+$")
    enable_tls: bool | None = None


class AlibabaNas(Strict):
    """``nasConfig``: NAS file systems mounted into the container (needs a VPC network)."""

    user_id: int | None = Field(None, ge=0)
    group_id: int | None = Field(None, ge=0)
    mount_points: list[AlibabaNasMount] = Field(min_length=1)


class AlibabaOssMount(Strict):
    """One ``ossMountConfig.mountPoints`` item: a bucket (path) mounted at ``mount_dir``."""

    bucket_name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
    bucket_path: str = "/"
    endpoint: str | None = None  # e.g. http://oss-cn-hangzhou-internal.aliyuncs.com
    mount_dir: str = Field(pattern=r"^/\S+$")
    read_only: bool = True


class AlibabaArms(Strict):
    """``armsConfiguration``: Application Real-Time Monitoring; the license key is a secret,
    read from the environment variable named here (never written in agent.yaml)."""

    enabled: bool = True
    license_key_env: str | None = Field(None, pattern=ENV_NAME.pattern)
    cms_workspace: str | None = None


class AlibabaTarget(Strict):
    """``targets.alibaba``: an Alibaba Cloud AgentRun runtime and its endpoint.

    ``actk deploy alibaba`` checks what only makes sense against the rest of the manifest (the
    cpu/memory derived from ``runtime``, the image host against ``registry``) before it sends
    anything.
    """

    region: str
    # The control plane: https://agentrun.<region>.aliyuncs.com by default; vpc_endpoint uses
    # agentrun-vpc.<region>.aliyuncs.com (from inside a VPC); api_endpoint replaces both.
    api_endpoint: str | None = Field(None, min_length=1)
    vpc_endpoint: bool = False
    # Default: the manifest's name (and description).
    runtime_name: str | None = None
    description: str | None = Field(None, max_length=512)
    # Which Container Registry edition holds the image: personal (ACR) or enterprise (ACREE);
    # default: read from the image host.
    registry: Literal["personal", "enterprise"] | None = None
    # ACREE: the instance id (cri-...); default image.registry.instance_id, else the
    # instance name from the image host (AgentRun takes either).
    instance_id: str | None = Field(None, pattern=r"^cri-[a-z0-9]+$")
    # Overrides the image's entrypoint/command.
    command: list[str] | None = Field(None, min_length=1)
    # Cores and MB; default: runtime.cpu and runtime.memory converted (1 -> 1.0, 2Gi -> 2048).
    cpu: float | None = Field(None, gt=0, le=16)
    memory: int | None = Field(None, ge=128, le=32768)
    disk_size: Literal[512, 10240] | None = None  # MB of writable disk
    health_check: AlibabaHealthCheck = Field(default_factory=AlibabaHealthCheck)
    network: AlibabaNetwork = Field(default_factory=AlibabaNetwork)
    session: AlibabaSession = Field(default_factory=AlibabaSession)
    log: AlibabaLog | None = None
    execution_role_arn: str | None = None
    credential_name: str | None = Field(None, min_length=1, max_length=128)
    workspace_id: str | None = Field(None, min_length=1)
    tags: list[str] = Field(default_factory=list)  # systemTags
    nas: AlibabaNas | None = None
    oss_mounts: list[AlibabaOssMount] = Field(default_factory=list)
    arms: AlibabaArms | None = None
    edition: str | None = Field(None, min_length=1)
    # The endpoint that serves invocations, and the version it sends traffic to: LATEST, or
    # a published version number. Default: LATEST, or the version `publish` creates.
    endpoint_name: str = "default"
    target_version: str | None = Field(None, pattern=r"^(LATEST|[0-9]+)$")
    # Publish an immutable runtime version after each change (`--publish` does it once).
    publish: bool = False

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        value = value.strip().lower()
        if not re.match(r"^[a-z]{2,3}(-[a-z0-9]+){1,4}$", value):
            raise ValueError(
                f"{value!r} is not an Alibaba Cloud region id; use one such as cn-hangzhou, "
                "cn-shanghai or ap-southeast-1"
            )
        return value

    @field_validator("api_endpoint")
    @classmethod
    def _api_endpoint(cls, value: str | None) -> str | None:
        from urllib.parse import urlsplit

        if value is None:
            return None
        value = value.strip().rstrip("/")
        parts = urlsplit(value if "://" in value else f"https://{value}")
        example = "https://agentrun.cn-hangzhou.aliyuncs.com"
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"{value!r} is not a URL; use e.g. {example}")
        if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
            raise ValueError(f"{value!r} must use https (http only for localhost); use {example}")
        if parts.path not in ("", "/") or parts.query or parts.username:
            raise ValueError(f"{value!r}: give the host only, e.g. {example}")
        return value

    @field_validator("runtime_name")
    @classmethod
    def _runtime_name(cls, value: str | None) -> str | None:
        if value is not None and not ALIBABA_RUNTIME_NAME.match(value):
            raise ValueError(
                f"{value!r} is not an AgentRun runtime name: use 1-63 characters of a-z, 0-9 "
                "and '-', starting with a letter or digit"
            )
        return value

    @field_validator("endpoint_name")
    @classmethod
    def _endpoint_name(cls, value: str) -> str:
        if not ALIBABA_ENDPOINT_NAME.match(value):
            raise ValueError(
                f"{value!r} is not an AgentRun endpoint name: use 1-63 letters, digits, '-' and "
                "'_', starting with a letter or digit"
            )
        return value

    @field_validator("execution_role_arn")
    @classmethod
    def _role(cls, value: str | None) -> str | None:
        if value is not None and not ALIBABA_ROLE_ARN.match(value):
            raise ValueError(
                f"{value!r} is not a RAM role ARN; use acs:ram::<account id>:role/<role name> "
                "(RAM console > Roles > the role > ARN)"
            )
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        for tag in value:
            if not tag.strip() or len(tag) > 128:
                raise ValueError(f"tag {tag[:20]!r} must be 1-128 characters")
        if len(set(value)) != len(value):
            raise ValueError("tags repeat; list each tag once")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> AlibabaTarget:
        if self.api_endpoint and self.vpc_endpoint:
            raise ValueError(
                "api_endpoint and vpc_endpoint both choose the control-plane endpoint; keep one"
            )
        if self.instance_id and self.registry == "personal":
            raise ValueError(
                "instance_id names an enterprise (ACREE) instance, but registry is personal; "
                "remove instance_id, or set registry: enterprise"
            )
        if self.nas is not None and self.network.mode == "PUBLIC":
            raise ValueError(
                "nas mounts reach the file system through a VPC: set network.mode PRIVATE or "
                "PUBLIC_AND_PRIVATE with vpc_id, vswitch_ids and security_group_id"
            )
        dirs = [m.mount_dir for m in self.oss_mounts] + (
            [m.mount_dir for m in self.nas.mount_points] if self.nas else []
        )
        repeated = sorted({d for d in dirs if dirs.count(d) > 1})
        if repeated:
            raise ValueError(f"mount_dir {repeated[0]} is used twice; give each mount its own")
        return self


# Anthropic managed agents (beta managed-agents-2026-04-01): the API's documented limits.
ANTHROPIC_NAME_MAX = 256
ANTHROPIC_SYSTEM_MAX = 100_000
ANTHROPIC_DESCRIPTION_MAX = 2048
ANTHROPIC_TOOLS_MAX = 128
ANTHROPIC_MCP_SERVERS_MAX = 20
ANTHROPIC_TOOL_TYPES = ("agent_toolset_20260401", "mcp_toolset", "custom")
# A bare host name or *.domain: no scheme, port, path or spaces.
ANTHROPIC_HOST = re.compile(
    r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}"
    r"[A-Za-z0-9])?)*$"
)
PACKAGE_MANAGERS = ("apt", "cargo", "gem", "go", "npm", "pip")


def metadata_problem(value: dict[str, str], *, max_pairs: int = METADATA_MAX_PAIRS) -> str | None:
    """What breaks the metadata limits (16 pairs, keys <=64, values <=512), or None."""
    if len(value) > max_pairs:
        return f"{len(value)} pairs; at most {max_pairs} are allowed"
    for key, item in value.items():
        if not key:
            return "a key is empty; give every key a name"
        if len(key) > METADATA_MAX_KEY:
            return f"key {key[:20]!r}… is longer than {METADATA_MAX_KEY} characters"
        if len(item) > METADATA_MAX_VALUE:
            return f"value of {key!r} is longer than {METADATA_MAX_VALUE} characters"
    return None


class AnthropicNetworking(Strict):
    """``config.networking`` of a cloud environment."""

    type: Literal["unrestricted", "limited"] = "unrestricted"
    # Bare hosts or *.domain (no scheme, port or path); limited networking only.
    allowed_hosts: list[str] = Field(default_factory=list)
    allow_mcp_servers: bool = False

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        for host in value:
            if not ANTHROPIC_HOST.match(host):
                bare = re.sub(r"^[a-z]+://", "", host.strip()).split("/", 1)[0].split(":", 1)[0]
                raise ValueError(
                    f"{host!r} is not a bare host name: write it without scheme, port or path "
                    f"(e.g. {bare or 'api.example.com'!r}, or '*.example.com' for subdomains)"
                )
        if len(set(value)) != len(value):
            raise ValueError("a host is listed twice; list each host once")
        return value

    @model_validator(mode="after")
    def _hosts_when_limited(self) -> AnthropicNetworking:
        if self.type == "unrestricted" and (self.allowed_hosts or self.allow_mcp_servers):
            raise ValueError(
                "allowed_hosts and allow_mcp_servers apply to type limited only; set type: "
                "limited, or remove them (unrestricted already reaches every host)"
            )
        return self


class AnthropicPackages(Strict):
    """Extra packages for a cloud environment, in each manager's own pin syntax."""

    apt: list[str] = Field(default_factory=list)
    cargo: list[str] = Field(default_factory=list)
    gem: list[str] = Field(default_factory=list)
    go: list[str] = Field(default_factory=list)
    npm: list[str] = Field(default_factory=list)
    pip: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _no_blank(self) -> AnthropicPackages:
        for manager in PACKAGE_MANAGERS:
            for item in getattr(self, manager):
                if not item.strip() or any(c.isspace() for c in item.strip()):
                    raise ValueError(
                        f"{manager}: {item!r} is not one package; write one package per list "
                        "entry, without spaces (e.g. 'httpx==0.27.0')"
                    )
        return self

    def is_empty(self) -> bool:
        return not any(getattr(self, manager) for manager in PACKAGE_MANAGERS)


class AnthropicEnvironment(Strict):
    """``targets.anthropic.environment``: where the agent's tools run, reused by name."""

    type: Literal["cloud", "self_hosted"] = "cloud"
    name: str | None = Field(None, min_length=1, max_length=ANTHROPIC_NAME_MAX)  # default: name
    description: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    scope: Literal["organization", "account"] | None = None  # self_hosted only
    networking: AnthropicNetworking | None = None  # cloud only; default unrestricted
    packages: AnthropicPackages | None = None  # cloud only; extra packages
    # cloud only: the run-time lines of this file (relative to agent.yaml) become packages.pip;
    # null turns it off.
    requirements: str | None = "requirements.txt"

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, str]) -> dict[str, str]:
        problem = metadata_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _fields_of_the_type(self) -> AnthropicEnvironment:
        if self.type == "self_hosted":
            cloud_only = [
                name
                for name in ("networking", "packages", "requirements")
                if name in self.model_fields_set and getattr(self, name) is not None
            ]
            if cloud_only:
                raise ValueError(
                    f"{', '.join(cloud_only)} apply to cloud environments only: a self_hosted "
                    "environment runs the tools in your own image (`actk worker`), so install "
                    "packages in its Dockerfile/requirements.txt and remove "
                    f"{', '.join(cloud_only)}, or set type: cloud"
                )
        elif self.scope is not None:
            raise ValueError(
                "scope applies to self_hosted environments only; remove it, or set type: "
                "self_hosted"
            )
        return self


class AnthropicModel(Strict):
    """The agent's model with its settings (``model: {id, effort, speed}``)."""

    id: str = Field(min_length=1)
    effort: Literal["low", "medium", "high", "xhigh", "max"] | None = None
    speed: Literal["standard", "fast"] | None = None
    inference_geo: str | None = Field(None, min_length=1)


class AnthropicMcpServer(Strict):
    type: Literal["url"] = "url"
    name: str = Field(min_length=1, max_length=255)
    url: str

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"{value!r} is not an https URL; use e.g. https://mcp.example.com/mcp")
        return value


def _default_tools() -> list[dict[str, Any]]:
    return [{"type": "agent_toolset_20260401"}]


class AnthropicAgent(Strict):
    """``targets.anthropic.agent``: the agent, created once and updated in place."""

    name: str | None = Field(None, min_length=1, max_length=ANTHROPIC_NAME_MAX)  # default: name
    # A model id, or {id, effort, speed}; default: model.name when model.provider is anthropic.
    model: str | AnthropicModel | None = None
    system: str | None = Field(None, max_length=ANTHROPIC_SYSTEM_MAX)  # default: instructions
    description: str | None = Field(None, max_length=ANTHROPIC_DESCRIPTION_MAX)  # default: ours
    tools: list[dict[str, Any]] = Field(default_factory=_default_tools)
    mcp_servers: list[AnthropicMcpServer] = Field(default_factory=list)
    metadata: dict[str, str] | None = None  # default: the manifest's metadata

    @field_validator("model")
    @classmethod
    def _model(cls, value: str | AnthropicModel | None) -> str | AnthropicModel | None:
        if isinstance(value, str) and not value.strip():
            raise ValueError("is empty; name a Claude model, e.g. claude-sonnet-4-5")
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        problem = metadata_problem(value) if value is not None else None
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("tools")
    @classmethod
    def _tools(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if len(value) > ANTHROPIC_TOOLS_MAX:
            raise ValueError(f"{len(value)} tools; at most {ANTHROPIC_TOOLS_MAX} are allowed")
        for index, tool in enumerate(value):
            kind = tool.get("type")
            if kind not in ANTHROPIC_TOOL_TYPES:
                raise ValueError(
                    f"[{index}]: type {kind!r} is not a managed-agents tool; use one of "
                    f"{', '.join(ANTHROPIC_TOOL_TYPES)}"
                )
            needs = {"mcp_toolset": ("mcp_server_name",),
                     "custom": ("name", "description", "input_schema")}.get(kind, ())
            missing = [name for name in needs if not tool.get(name)]
            if missing:
                raise ValueError(f"[{index}]: a {kind} tool needs {', '.join(missing)}")
        return value

    @field_validator("mcp_servers")
    @classmethod
    def _servers(cls, value: list[AnthropicMcpServer]) -> list[AnthropicMcpServer]:
        if len(value) > ANTHROPIC_MCP_SERVERS_MAX:
            raise ValueError(
                f"{len(value)} servers; at most {ANTHROPIC_MCP_SERVERS_MAX} are allowed"
            )
        names = [server.name for server in value]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"{repeated[0]!r} is used twice; give each server its own name")
        return value

    @model_validator(mode="after")
    def _servers_referenced(self) -> AnthropicAgent:
        referenced = [tool.get("mcp_server_name") for tool in self.tools
                      if tool.get("type") == "mcp_toolset"]
        names = [server.name for server in self.mcp_servers]
        unused = [name for name in names if name not in referenced]
        if unused:
            raise ValueError(
                f"mcp_servers {', '.join(unused)} {'is' if len(unused) == 1 else 'are'} not "
                "used by any tool (the API refuses that): add "
                f"{{type: mcp_toolset, mcp_server_name: {unused[0]}}} to tools, or remove it"
            )
        unknown = [name for name in referenced if name not in names]
        if unknown:
            raise ValueError(
                f"tools name mcp_server_name {unknown[0]}, which is not in mcp_servers; add "
                f"{{type: url, name: {unknown[0]}, url: https://...}} to mcp_servers"
            )
        return self


class AnthropicSession(Strict):
    """``targets.anthropic.session``: the session deploy creates (actk adds ``actk_image``)."""

    title: str | None = Field(None, min_length=1)  # default: "<agent name> <image tag>"
    metadata: dict[str, str] = Field(default_factory=dict)

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, str]) -> dict[str, str]:
        problem = metadata_problem(value, max_pairs=METADATA_MAX_PAIRS - 1)
        if problem:
            raise ValueError(f"{problem} (actk adds actk_image, the 16th)")
        if "actk_image" in value:
            raise ValueError("actk_image is set by actk (the deployed image); remove it")
        return value


class AnthropicTarget(Strict):
    """``targets.anthropic``: Anthropic managed agents (an environment, an agent pinned to a
    version, and a session on both).

    ``actk deploy anthropic`` checks what depends on the rest of the manifest (the model when
    model.provider is not anthropic, the instructions' length, the requirements file) before
    it sends anything.
    """

    # https://api.anthropic.com by default; ANTHROPIC_BASE_URL wins over it.
    api_base: str | None = None
    environment: AnthropicEnvironment = Field(default_factory=AnthropicEnvironment)
    agent: AnthropicAgent = Field(default_factory=AnthropicAgent)
    session: AnthropicSession = Field(default_factory=AnthropicSession)

    @field_validator("api_base")
    @classmethod
    def _api_base(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return check_api_base(value)


def check_api_base(value: str) -> str:
    """An Anthropic API base URL: https (http only for loopback hosts), no path or query."""
    from urllib.parse import urlsplit

    value = value.strip().rstrip("/")
    parts = urlsplit(value)
    example = "https://api.anthropic.com"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{value!r} is not a URL; use e.g. {example}")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        raise ValueError(f"{value!r} must use https (http only for localhost); use {example}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{value!r}: give the scheme and host only, e.g. {example}")
    return value


class Targets(Strict):
    # Each target's own module validates its section before making any call.
    azure: AzureTarget | None = None
    alibaba: AlibabaTarget | None = None
    anthropic: AnthropicTarget | None = None


class Manifest(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = Field("", max_length=512)
    metadata: dict[str, str] = Field(default_factory=dict)
    instructions: str | None = None
    structured_inputs: dict[str, StructuredInput] = Field(default_factory=dict)
    model: ModelSettings = Field(default_factory=ModelSettings)
    tools: list[dict[str, Any]] = Field(default_factory=list)
    tool_resources: dict[str, Any] = Field(default_factory=dict)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    response_format: ResponseFormat | None = None
    image: ImageSettings = Field(default_factory=ImageSettings)
    build: BuildSettings = Field(default_factory=BuildSettings)
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)
    targets: Targets = Field(default_factory=Targets)

    @field_validator("metadata")
    @classmethod
    def _metadata_limits(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > METADATA_MAX_PAIRS:
            raise ValueError(f"{len(value)} pairs; at most {METADATA_MAX_PAIRS} are allowed")
        for key, item in value.items():
            if len(key) > METADATA_MAX_KEY:
                raise ValueError(f"key {key[:20]!r}… is longer than {METADATA_MAX_KEY} characters")
            if len(item) > METADATA_MAX_VALUE:
                raise ValueError(f"value of {key!r} is longer than {METADATA_MAX_VALUE} characters")
        return value

    @field_validator("structured_inputs")
    @classmethod
    def _input_names(cls, value: dict[str, StructuredInput]) -> dict[str, StructuredInput]:
        for name in value:
            if not INPUT_NAME.match(name):
                raise ValueError(
                    f"{name!r} is not a valid input name "
                    "(letters, digits and '_', not starting with a digit)"
                )
        return value


def value_matches(value: Any, schema: InputSchema) -> bool:
    """Whether ``value`` is of the JSON Schema ``type`` (booleans are not numbers). The same rule
    as the container's ``inputs.type_error``; ``actk check`` also runs that one."""
    kind = schema.type
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":  # 2.0 counts, as in the container's check (inputs.py)
        if isinstance(value, float):
            return value.is_integer()
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "array":
        return isinstance(value, list) and (
            schema.items is None or all(value_matches(item, schema.items) for item in value)
        )
    return isinstance(value, dict)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of agent.yaml, for editors (``actk schema``)."""
    schema = Manifest.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "agent.yaml (Agent Container Toolkit)"
    return schema


def find_manifest(start: Path) -> Path:
    """``start`` itself when it is a file, else ``start/agent.yaml``."""
    path = start if start.is_file() else start / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(
            f"{path} not found",
            hint="run the command in a repository made by `actk new`, or pass its directory",
        )
    return path


def load_manifest(start: Path) -> Manifest:
    """Read and validate agent.yaml; every problem becomes one :class:`ManifestError`."""
    import yaml

    path = find_manifest(start)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_unique_keys_loader())
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}" if mark else ""
        raise ManifestError(
            f"{path.name}{where}: {exc.problem}",
            hint="keep one of the two entries (YAML would silently use the last one)",
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ManifestError(
            f"{path.name} is not valid YAML{where}: {problem}",
            hint="fix the YAML syntax (indentation, quotes, colons)",
        ) from None
    if not isinstance(data, dict):
        raise ManifestError(
            f"{path.name} must be a mapping of fields (name: …, model: …)",
            hint="start from the agent.yaml that `actk new` writes",
        )
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        raise manifest_error(path.name, exc) from None


def _unique_keys_loader() -> Any:
    """A safe YAML loader that refuses a key given twice in one mapping (plain safe_load keeps
    the last one without a word)."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        pass

    def mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node)  # type: ignore[no-untyped-call]
            if key in seen and key != "<<":
                raise yaml.constructor.ConstructorError(
                    None, None, f"{key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return loader.construct_mapping(node)

    UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return UniqueKeyLoader


def manifest_error(file_name: str, exc: ValidationError) -> ManifestError:
    """One line per problem, each naming the field path; the hint fixes the first."""
    lines = [f"{file_name}: {_location(error['loc'])}: {_message(error)}" for error in exc.errors()]
    first = exc.errors()[0]
    return ManifestError("\n".join(lines), hint=_hint(first))


def _location(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += ("." if path else "") + str(part)
    return path or "(top level)"


def _message(error: dict[str, Any]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    if kind == "string_pattern_mismatch" and error["loc"] == ("name",):
        return (
            f"{error['input']!r} is not a valid name: use 1-63 characters of a-z, 0-9 and '-', "
            "starting and ending with a letter or digit"
        )
    if kind in ("less_than_equal", "greater_than_equal", "less_than", "greater_than"):
        words = {"le": "at most", "ge": "at least", "lt": "below", "gt": "above"}
        ((bound, limit),) = error["ctx"].items()
        return f"must be {words[bound]} {limit} (got {error['input']!r})"
    if kind == "literal_error":
        return f"{error['input']!r} is not allowed; {error['msg'].lower()}"
    message = error["msg"]
    return message.removeprefix("Value error, ")


def _hint(error: dict[str, Any]) -> str:
    loc = error["loc"]
    if error["type"] == "extra_forbidden":
        parent = _model_at(loc[:-1])
        aliases = [f.alias or name for name, f in parent.model_fields.items()] if parent else []
        close = difflib.get_close_matches(str(loc[-1]), aliases, n=1)
        if close:
            return f"did you mean '{close[0]}'? (known fields: {', '.join(aliases)})"
        return f"remove it; known fields here: {', '.join(aliases) or 'none'}"
    return f"fix '{_location(loc)}' in agent.yaml (`actk schema` prints every field and its rule)"


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class holding the fields at ``loc`` (to suggest names for unknown fields)."""
    model: type[BaseModel] = Manifest
    parts = [part for part in loc if not isinstance(part, int)]  # list indices hold no fields
    while parts:
        name = parts.pop(0)
        field = next((f for key, f in model.model_fields.items() if name in (key, f.alias)), None)
        inner = _model_of(field.annotation) if field else None
        if inner is None:
            return None
        if get_origin(field.annotation) is dict and parts:  # dict[str, Model]: skip the key
            parts.pop(0)
        model = inner
    return model


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None
