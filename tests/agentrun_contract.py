"""A local stand-in for Alibaba Cloud AgentRun (API 2025-09-10), checked like the real service.

It serves the documented subset ``actk deploy/status/delete alibaba`` and ``actk invoke
--target alibaba`` need (reference ``alibaba-agentrun.md`` §1), on 127.0.0.1, two ephemeral
ports: the control plane (what the client uses instead of ``https://agentrun.<region>.
aliyuncs.com``) and the data plane (standing in for ``https://<uid>.agentrun-data.<region>.
aliyuncs.com``). Control-plane routes, ROA style, each with ``x-acs-action`` and
``x-acs-version: 2025-09-10``::

    POST   /2025-09-10/agents/runtimes                         CreateAgentRuntime
    GET    /2025-09-10/agents/runtimes                         ListAgentRuntimes
           ?agentRuntimeName (substring; exact with searchMode=exact), status, workspaceId,
            systemTags, pageNumber (1...), pageSize (1-100, default 20)
    GET    /2025-09-10/agents/runtimes/{id}[?agentRuntimeVersion]   GetAgentRuntime
    PUT    /2025-09-10/agents/runtimes/{id}                    UpdateAgentRuntime
    DELETE /2025-09-10/agents/runtimes/{id}                    DeleteAgentRuntime
    POST   /2025-09-10/agents/runtimes/{id}/versions           PublishRuntimeVersion
    GET    /2025-09-10/agents/runtimes/{id}/versions           ListAgentRuntimeVersions
    POST   /2025-09-10/agents/runtimes/{id}/endpoints          CreateAgentRuntimeEndpoint
    GET    /2025-09-10/agents/runtimes/{id}/endpoints          ListAgentRuntimeEndpoints
           ?endpointName, searchMode, pageNumber, pageSize
    GET    /2025-09-10/agents/runtimes/{id}/endpoints/{eid}    GetAgentRuntimeEndpoint
    PUT    /2025-09-10/agents/runtimes/{id}/endpoints/{eid}    UpdateAgentRuntimeEndpoint
    DELETE /2025-09-10/agents/runtimes/{id}/endpoints/{eid}    DeleteAgentRuntimeEndpoint

Data plane: any method on ``/agent-runtimes/{runtimeName}/endpoints/{endpointName}/invocations
{rest}`` is proxied to ``{forward_to}{rest}`` (``/responses`` stays ``/responses``; SSE is
streamed as it arrives). The endpoint resource's ``endpointPublicUrl`` is that URL up to and
including ``/invocations``, so a client takes it from the endpoint, never builds it.

The gateway: every control-plane request is authenticated as Alibaba's gateway does it, by
``tests/alibaba_contract.py``'s ``authenticate`` (ACS3-HMAC-SHA256 recomputed by Alibaba's own
signer from ``alibabacloud_tea_openapi``, 15-minute date window, one use per nonce, STS token).
Gateway errors have the gateway's shape (``RequestId``, ``HostId``, ``Code``, ``Message``,
``Recommend``); the service's own errors have the documented envelope ``{"code",
"requestId", "message"}`` (``ERR_VALIDATION_FAILED``, ``ERR_BAD_REQUEST``, ``ERR_NOT_FOUND``,
``ERR_CONFLICT``, ``ERR_INTERNAL_SERVER_ERROR``), the message naming each rejected field.

Bodies are checked twice. Against the official ``alibabacloud-agentrun20250910`` models: the
body goes through ``Model().from_map(body).to_map()`` and every key the SDK drops (unknown) or
changes is reported; since tea models keep whatever type they are given and never enforce
"required", the models' own type annotations and their "This parameter is required." notes
are checked too (``sdk_problems``). And against the service's rules (``rule_problems``): names,
cpu/memory/port, session limits, network mode, image registry type against the image's host,
health check, log pairing, disk size. ``check_create_runtime_body``, ``check_update_runtime_body``,
``check_create_endpoint_body``, ``check_update_endpoint_body`` and ``check_publish_version_body``
raise AssertionError naming the fields, for the client's unit tests.

Lifecycle: a created runtime is ``CREATING`` for its first ``ready_polls`` reads (Get or List),
then ``READY`` (or what ``runtime_outcome`` set: ``CREATE_FAILED`` with ``statusReason``);
updates go ``UPDATING`` -> ``READY``/``UPDATE_FAILED``, deletes ``DELETING`` -> gone (404) or
``DELETE_FAILED``. Endpoints are ``CREATING``/``UPDATING`` without a URL for ``endpoint_polls``
reads, then ``endpoint_ready_status`` (``READY``; the official example says ``ACTIVE``) with
``endpointPublicUrl``. Endpoint create/update while the runtime is CREATING/UPDATING answers
409 (arcli), as do runtime updates and publishes then; deleting a runtime that still has
endpoints answers 409 (delete them first, as s-comp does).

Use it through the ``agentrun`` fixture (``-p tests.agentrun_contract``)::

    def test_deploy(agentrun):
        contract = agentrun(region="cn-hangzhou", ready_polls=2)
        run_actk("deploy", "alibaba", env=contract.env)
        contract.fail("Throttling", action="GetAgentRuntime", times=2)
        contract.runtime_outcome("CREATE_FAILED", reason="image pull failed")
        contract.forward_to(container_url)
        assert contract.violations == []

``violations`` lists what a correct client should never do even where the service lets it
pass (deprecated fields, unknown query parameters, a body on a GET, a missing
``imageRegistryType`` or ``acrInstanceId``...), and any answer of this server that the SDK's
models would not accept.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import http.client
import inspect
import json
import math
import re
import threading
import time
import typing
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import pytest

from tests.alibaba_contract import authenticate, gateway_error
from tests.contract_server import (
    MISSING,
    Faults,
    differences,
    dotted,
    excerpt,
    read_body,
    relay,
    serve,
    shut,
    stopped_after,
    unavailable,
    url_of,
)

API_VERSION = "2025-09-10"
LATEST = "LATEST"
DEFAULT_ACCOUNT_ID = "1760720386195983"
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100

# --- the documented surface -------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    action: str
    body_model: str | None = None  # the SDK input model of the JSON body
    query: tuple[str, ...] = ()  # the query parameters the SDK client sends

    @functools.cached_property
    def pattern(self) -> re.Pattern[str]:
        parts = re.split(r"(\{[A-Za-z]+\})", self.template)
        regex = "".join(
            f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") else re.escape(p) for p in parts
        )
        return re.compile(f"^{regex}$")


_RUNTIMES = f"/{API_VERSION}/agents/runtimes"
_RUNTIME = _RUNTIMES + "/{agentRuntimeId}"
_ENDPOINTS = _RUNTIME + "/endpoints"
_ENDPOINT = _ENDPOINTS + "/{agentRuntimeEndpointId}"
PAGING = ("pageNumber", "pageSize")
ROUTES = (
    Route("POST", _RUNTIMES, "CreateAgentRuntime", "CreateAgentRuntimeInput"),
    Route(
        "GET",
        _RUNTIMES,
        "ListAgentRuntimes",
        query=(
            "agentRuntimeName",
            *PAGING,
            "searchMode",
            "status",
            "systemTags",
            "workspaceId",
            "workspaceIds",
            "resourceGroupId",
            "discoveryResourceGroupId",
        ),
    ),
    Route("GET", _RUNTIME, "GetAgentRuntime", query=("agentRuntimeVersion",)),
    Route("PUT", _RUNTIME, "UpdateAgentRuntime", "UpdateAgentRuntimeInput"),
    Route("DELETE", _RUNTIME, "DeleteAgentRuntime"),
    Route("POST", _RUNTIME + "/versions", "PublishRuntimeVersion", "PublishRuntimeVersionInput"),
    Route("GET", _RUNTIME + "/versions", "ListAgentRuntimeVersions", query=PAGING),
    Route("POST", _ENDPOINTS, "CreateAgentRuntimeEndpoint", "CreateAgentRuntimeEndpointInput"),
    Route(
        "GET",
        _ENDPOINTS,
        "ListAgentRuntimeEndpoints",
        query=("endpointName", *PAGING, "searchMode"),
    ),
    Route("GET", _ENDPOINT, "GetAgentRuntimeEndpoint"),
    Route("PUT", _ENDPOINT, "UpdateAgentRuntimeEndpoint", "UpdateAgentRuntimeEndpointInput"),
    Route("DELETE", _ENDPOINT, "DeleteAgentRuntimeEndpoint"),
)
# What each action answers, as SDK result models (checked: this server must speak the SDK).
ANSWER_MODELS = {
    "CreateAgentRuntime": "AgentRuntimeResult",
    "GetAgentRuntime": "AgentRuntimeResult",
    "UpdateAgentRuntime": "AgentRuntimeResult",
    "DeleteAgentRuntime": "AgentRuntimeResult",
    "ListAgentRuntimes": "ListAgentRuntimesResult",
    "PublishRuntimeVersion": "AgentRuntimeVersionResult",
    "ListAgentRuntimeVersions": "ListAgentRuntimeVersionsResult",
    "CreateAgentRuntimeEndpoint": "AgentRuntimeEndpointResult",
    "GetAgentRuntimeEndpoint": "AgentRuntimeEndpointResult",
    "UpdateAgentRuntimeEndpoint": "AgentRuntimeEndpointResult",
    "DeleteAgentRuntimeEndpoint": "AgentRuntimeEndpointResult",
    "ListAgentRuntimeEndpoints": "ListAgentRuntimeEndpointsResult",
}
INVOCATION_PATH = re.compile(
    r"^/agent-runtimes/(?P<runtime>[^/]+)/endpoints/(?P<endpoint>[^/]+)/invocations"
    r"(?P<rest>/.*)?$"
)

# --- the service's rules (reference §1.3-1.5, Function Compute instance limits) ----------------

# arcli enforces [a-z0-9-]{1,63} (runtime-yaml.md); the server-side rule is not published.
RUNTIME_NAME_RULE = re.compile(r"^[a-z0-9-]{1,63}$")
# Endpoint names: not documented; letters, digits, '-' and '_' (arcli's `default`, s-comp's
# `production-endpoint`), 1-63 characters.
ENDPOINT_NAME_RULE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
ARTIFACT_TYPES = ("Code", "Container")
REGISTRY_TYPES = ("ACR", "ACREE", "CUSTOM")
NETWORK_MODES = ("PUBLIC", "PRIVATE", "PUBLIC_AND_PRIVATE")
AFFINITY_TYPES = ("NONE", "HEADER_FIELD", "GENERATED_COOKIE", "COOKIE")
PROTOCOL_TYPES = ("HTTP", "HTTPS", "MCP", "SUPER_AGENT")  # arsdk/arcli, plus s-comp's HTTPS
CODE_LANGUAGES = ("python3.10", "python3.12", "nodejs18", "nodejs20", "java8", "java11", "java17")
DISK_SIZES = (512, 10240)  # MB (s-comp schema; FC's 512 MB or 10 GB writable layer)
# Function Compute elastic instances, which AgentRun runs on (FC "Instance types and
# specifications"): 0.05-16 vCPU in steps of 0.05, 128-32768 MB in steps of 64, and GB of
# memory per vCPU between 1 and 4.
CPU_RANGE = (0.05, 16.0)
MEMORY_RANGE = (128, 32768)
SESSION_CONCURRENCY_RANGE = (1, 200)  # API metadata min/max
ROLE_ARN_RULE = re.compile(r"^acs:ram::\d+:role/[A-Za-z0-9._-]+$")
PERSONAL_HOST = re.compile(
    r"^registry(?:-vpc|-intl|-intl-vpc)?\.(?P<region>[a-z]{2,3}(?:-[a-z0-9]+){1,4})\.aliyuncs\.com$"
)
ENTERPRISE_HOST = re.compile(
    r"^(?P<instance>[a-z0-9][a-z0-9-]{1,28}[a-z0-9])-registry(?:-vpc)?"
    r"\.(?P<region>[a-z]{2,3}(?:-[a-z0-9]+){1,4})\.cr\.aliyuncs\.com$"
)
IMAGE_RULE = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)
# Deprecated in the Go SDK (reference §1.3): accepted, but a new client should not send them.
# protocolConfiguration.type is deprecated too, but it is not listed: its replacement,
# protocolSettings[].type, has no published values, so `type: HTTP` is still the only
# documented way to declare an HTTP agent.
DEPRECATED = {
    "credentialId": "use credentialName",
    "resourceGroupId": "deprecated",
}
DEPRECATED_PROTOCOL_SETTINGS = (
    "path",
    "pathPrefix",
    "method",
    "headers",
    "requestContentType",
    "responseContentType",
    "inputBodyJsonSchema",
    "outputBodyJsonSchema",
    "a2aAgentCard",
    "A2AAgentCard",
    "a2aAgentCardUrl",
)
RUNTIME_STATUSES = (
    "CREATING",
    "CREATE_FAILED",
    "UPDATING",
    "UPDATE_FAILED",
    "READY",
    "DELETING",
    "DELETE_FAILED",
    "FAILED",
)
BUSY = ("CREATING", "UPDATING", "DELETING")
SERVING = ("READY", "UPDATING", "UPDATE_FAILED")  # the previous revision keeps serving an update


# --- problems ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One reason the service rejects a body: the field (dotted path), a kind, a message."""

    field: str
    kind: str  # missing | unknown | type | value
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def _unique(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[str, str]] = set()
    out = []
    for problem in problems:
        if (problem.field, problem.kind) not in seen:
            seen.add((problem.field, problem.kind))
            out.append(problem)
    return out


# --- the SDK's models, described --------------------------------------------------------------


@dataclass(frozen=True)
class SdkField:
    """One field of a tea model: its JSON key, Python attribute, type and required flag."""

    key: str
    attr: str
    type: Any  # "str" | "int" | "float" | "bool" | "any" | ("list"|"dict", spec) | ("model", name)
    required: bool


def _models() -> Any:
    from alibabacloud_agentrun20250910 import models

    return models


def _spec_of(hint: Any) -> Any:
    from darabonba.model import DaraModel

    simple = {str: "str", int: "int", float: "float", bool: "bool"}
    if hint in simple:
        return simple[hint]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list:
        return ("list", _spec_of(args[0]) if args else "any")
    if origin is dict:
        return ("dict", _spec_of(args[1]) if len(args) == 2 else "any")
    if isinstance(hint, type) and issubclass(hint, DaraModel):
        return ("model", hint.__name__)
    return "any"


def _probe(spec: Any) -> Any:
    if spec in ("str", "any"):
        return "probe"
    if spec == "int":
        return 7
    if spec == "float":
        return 7.5
    if spec == "bool":
        return True
    kind, inner = spec
    if kind == "list":
        return [_probe(inner)]
    if kind == "dict":
        return {"k": _probe(inner)}
    return getattr(_models(), inner)()


def _required_attrs(cls: type) -> set[str]:
    """Attributes whose generated comment says "This parameter is required." (tea models keep
    that knowledge in comments only; ``validate()`` never checks it)."""
    required: set[str] = set()
    comment: list[str] = []
    for line in inspect.getsource(cls.__init__).splitlines():
        text = line.strip()
        if text.startswith("#"):
            comment.append(text)
            continue
        assignment = re.match(r"self\.(\w+) = \1$", text)
        if assignment:
            if any(re.fullmatch(r"#\s*This parameter is required\.", c) for c in comment):
                required.add(assignment[1])
            comment = []
    return required


@functools.cache
def sdk_fields(model: str) -> dict[str, SdkField]:
    """The fields of SDK model ``model`` by JSON key. Keys are found by asking the model
    itself: set one attribute, see which key its ``to_map`` changes."""
    cls = getattr(_models(), model)
    hints = typing.get_type_hints(cls.__init__)
    required = _required_attrs(cls)
    base = cls().to_map()
    fields: dict[str, SdkField] = {}
    for name in inspect.signature(cls.__init__).parameters:
        if name == "self":
            continue
        spec = _spec_of(hints.get(name, Any))
        probed = cls(**{name: _probe(spec)}).to_map()
        changed = [k for k in probed if probed[k] != base.get(k, MISSING)]
        assert len(changed) == 1, f"{model}.{name}: cannot tell its JSON key ({changed})"
        fields[changed[0]] = SdkField(changed[0], name, spec, name in required)
    return fields


_TYPE_NAMES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}


def _type_name(spec: Any) -> str:
    if isinstance(spec, str):
        return _TYPE_NAMES.get(spec, "anything")
    kind, inner = spec
    if kind == "list":
        return f"array of {_type_name(inner)}"
    if kind == "dict":
        return f"object of {_type_name(inner)}"
    return f"object ({inner})"


def _value_problems(spec: Any, value: Any, where: str, *, request: bool) -> list[Problem]:
    wrong = [Problem(where, "type", f"expected {_type_name(spec)}, got {excerpt(value)}")]
    if spec == "any":
        return []
    if spec == "str":
        return [] if isinstance(value, str) else wrong
    if spec == "bool":
        return [] if isinstance(value, bool) else wrong
    if spec == "int":
        return [] if isinstance(value, int) and not isinstance(value, bool) else wrong
    if spec == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return [] if ok and math.isfinite(value) else wrong
    kind, inner = spec
    if kind == "list":
        if not isinstance(value, list):
            return wrong
        problems = []
        for index, item in enumerate(value):
            if item is None:
                problems.append(Problem(f"{where}[{index}]", "type", "null is not allowed"))
            else:
                problems += _value_problems(inner, item, f"{where}[{index}]", request=request)
        return problems
    if kind == "dict":
        if not isinstance(value, dict):
            return wrong
        problems = []
        for key, item in value.items():
            problems += _value_problems(inner, item, dotted(where, key), request=request)
        return problems
    return model_problems(inner, value, where, request=request)


def model_problems(model: str, value: Any, where: str = "", *, request: bool = True) -> list:
    """What is wrong with ``value`` as SDK model ``model`` by its description: not an object,
    unknown keys, missing required fields (requests only), wrong types, recursively."""
    if not isinstance(value, dict):
        return [Problem(where or "body", "type", f"expected an object ({model})")]
    fields = sdk_fields(model)
    problems = [
        Problem(dotted(where, key), "unknown", f"{model} has no field {key!r}")
        for key in value
        if key not in fields
    ]
    for key, info in fields.items():
        item = value.get(key)
        if item is None:
            if info.required and request:
                problems.append(Problem(dotted(where, key), "missing", "is required"))
            continue
        problems += _value_problems(info.type, item, dotted(where, key), request=request)
    return problems


def round_trip_problems(model: str, value: Any, where: str = "") -> list[Problem]:
    """Let the SDK judge: ``Model().from_map(value).to_map()`` must give ``value`` back. A key
    it drops is one the model does not know; a value it changes (or a ``from_map`` that
    raises) is one of the wrong shape."""
    if not isinstance(value, dict):
        return [Problem(where or "body", "type", f"expected an object ({model})")]
    cls = getattr(_models(), model)
    try:
        back = cls().from_map(copy.deepcopy(value)).to_map()
    except Exception as exc:  # the SDK could not read it
        return [Problem(where or "body", "type", f"{model}.from_map failed: {exc!r}")]
    problems = []
    for path, sent, kept in differences(value, back, where):
        if kept is MISSING:
            problems.append(Problem(path, "unknown", f"dropped by the SDK's {model} model"))
        else:
            message = f"the SDK's {model} turns {excerpt(sent)} into {excerpt(kept)}"
            problems.append(Problem(path, "type", message))
    return problems


def sdk_problems(model: str, body: Any) -> list[Problem]:
    """Everything the SDK's models have against ``body`` (see the module docstring)."""
    return _unique(model_problems(model, body) + round_trip_problems(model, body))


# --- the service's rules ----------------------------------------------------------------------


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _range(value: Any, low: float, high: float, where: str, unit: str = "") -> list[Problem]:
    if not _number(value) or low <= value <= high:
        return []
    return [Problem(where, "value", f"must be between {low:g} and {high:g}{unit}, got {value}")]


def _image_host(image: str) -> str:
    first = image.split("/", 1)[0]
    return first.lower() if "/" in image and ("." in first or ":" in first) else "docker.io"


def resource_problems(spec: dict[str, Any]) -> list[Problem]:
    problems = []
    cpu, memory = spec.get("cpu"), spec.get("memory")
    if _number(cpu):
        problems += _range(cpu, *CPU_RANGE, "cpu", " vCPU")
        if not problems and abs(round(cpu / 0.05) * 0.05 - cpu) > 1e-9:
            problems.append(Problem("cpu", "value", f"must be a multiple of 0.05, got {cpu}"))
    if _integer(memory):
        found = _range(memory, *MEMORY_RANGE, "memory", " MB")
        if not found and memory % 64:
            found.append(Problem("memory", "value", f"must be a multiple of 64 MB, got {memory}"))
        problems += found
    if _number(cpu) and _integer(memory) and not problems:
        ratio = memory / 1024 / cpu
        if not 1 <= ratio <= 4:
            message = (
                f"memory {memory} MB for {cpu:g} vCPU: memory in GB per vCPU must be between "
                f"1 and 4 (here {ratio:.2f}); e.g. {cpu:g} vCPU takes "
                f"{math.ceil(cpu * 1024 / 64) * 64}-{int(cpu * 4096) // 64 * 64} MB"
            )
            problems.append(Problem("memory", "value", message))
    problems += _range(spec.get("port"), 1, 65535, "port")
    problems += _range(
        spec.get("sessionConcurrencyLimitPerInstance"),
        *SESSION_CONCURRENCY_RANGE,
        "sessionConcurrencyLimitPerInstance",
    )
    idle = spec.get("sessionIdleTimeoutSeconds")
    if _integer(idle) and idle < 1:
        problems.append(Problem("sessionIdleTimeoutSeconds", "value", f"must be >= 1, got {idle}"))
    disk = spec.get("diskSize")
    if _integer(disk) and disk not in DISK_SIZES:
        message = f"must be one of {list(DISK_SIZES)} (MB), got {disk}"
        problems.append(Problem("diskSize", "value", message))
    return problems


def _enum(value: Any, allowed: tuple[str, ...], where: str) -> list[Problem]:
    if not isinstance(value, str) or value in allowed:
        return []
    return [Problem(where, "value", f"must be one of {list(allowed)}, got {excerpt(value)}")]


def container_problems(
    spec: dict[str, Any], region: str | None, violations: list[str] | None = None
) -> list[Problem]:
    """``artifactType`` and its configuration; the image registry type against the host."""
    problems = _enum(spec.get("artifactType"), ARTIFACT_TYPES, "artifactType")
    artifact = spec.get("artifactType")
    container, code = spec.get("containerConfiguration"), spec.get("codeConfiguration")
    if artifact == "Container":
        if container is None:
            message = "is required when artifactType is Container"
            problems.append(Problem("containerConfiguration", "missing", message))
        if code is not None:
            message = "is only for artifactType Code (this runtime is a Container)"
            problems.append(Problem("codeConfiguration", "value", message))
    if artifact == "Code":
        if code is None:
            message = "is required when artifactType is Code"
            problems.append(Problem("codeConfiguration", "missing", message))
        if container is not None:
            message = "is only for artifactType Container (this runtime is Code)"
            problems.append(Problem("containerConfiguration", "value", message))
    if isinstance(code, dict):
        problems += _enum(code.get("language"), CODE_LANGUAGES, "codeConfiguration.language")
        has_oss = code.get("ossBucketName") and code.get("ossObjectName")
        if not code.get("zipFile") and not has_oss:
            message = "zipFile or ossBucketName + ossObjectName is required"
            problems.append(Problem("codeConfiguration.zipFile", "missing", message))
    if not isinstance(container, dict):
        return problems
    where = "containerConfiguration"
    problems += _range(container.get("port"), 1, 65535, f"{where}.port")
    image = container.get("image")
    if not image:
        problems.append(Problem(f"{where}.image", "missing", "is required"))
        return problems
    if not isinstance(image, str):
        return problems
    if not IMAGE_RULE.match(image):
        message = f"{image!r} is not a valid image reference"
        return [*problems, Problem(f"{where}.image", "value", message)]
    registry_type = container.get("imageRegistryType")
    problems += _enum(registry_type, REGISTRY_TYPES, f"{where}.imageRegistryType")
    host = _image_host(image)
    personal, enterprise = PERSONAL_HOST.match(host), ENTERPRISE_HOST.match(host)
    if registry_type is None:
        _note(violations, f"{where}.imageRegistryType is not set (ACR, ACREE or CUSTOM)")
        registry_type = "ACR" if personal else "ACREE" if enterprise else "CUSTOM"
        if registry_type == "CUSTOM":
            message = (
                f"{host} is not Container Registry: set imageRegistryType CUSTOM and "
                "registryConfig for another registry"
            )
            return [*problems, Problem(f"{where}.imageRegistryType", "missing", message)]
    type_param = f"{where}.imageRegistryType"
    if registry_type == "ACR" and not personal:
        message = (
            f"ACR (personal edition) images live on registry[-vpc].<region>.aliyuncs.com, "
            f"not {host}"
        )
        problems.append(Problem(type_param, "value", message))
    if registry_type == "ACREE" and not enterprise:
        message = (
            "ACREE (enterprise edition) images live on "
            f"<instance>-registry[-vpc].<region>.cr.aliyuncs.com, not {host}"
        )
        problems.append(Problem(type_param, "value", message))
    if registry_type == "ACREE" and enterprise and not container.get("acrInstanceId"):
        _note(violations, f"{where}.acrInstanceId is not set for an ACREE image")
    matched = (
        personal if registry_type == "ACR" else enterprise if registry_type == "ACREE" else None
    )
    if matched and region and matched["region"] != region:
        message = (
            f"the image is in {matched['region']}, the runtime in {region}: private images "
            "must be in Container Registry in the same region"
        )
        problems.append(Problem(f"{where}.image", "value", message))
    if registry_type == "CUSTOM" and not container.get("registryConfig"):
        message = "is required when imageRegistryType is CUSTOM"
        problems.append(Problem(f"{where}.registryConfig", "missing", message))
    return problems


def network_problems(spec: dict[str, Any]) -> list[Problem]:
    network = spec.get("networkConfiguration")
    if not isinstance(network, dict):
        return []
    where = "networkConfiguration"
    mode = network.get("networkMode", "PUBLIC")
    problems = _enum(mode, NETWORK_MODES, f"{where}.networkMode")
    if mode in ("PRIVATE", "PUBLIC_AND_PRIVATE") and not network.get("vpcId"):
        problems.append(Problem(f"{where}.vpcId", "missing", f"is required with {mode}"))
    private = mode in ("PRIVATE", "PUBLIC_AND_PRIVATE") and network.get("vpcId")
    if spec.get("nasConfig") and not private:
        message = "NAS is reached through a VPC: needs networkMode PRIVATE or PUBLIC_AND_PRIVATE"
        problems.append(Problem("nasConfig", "value", message))
    return problems


def other_problems(spec: dict[str, Any]) -> list[Problem]:
    problems = _enum(spec.get("sessionAffinityType"), AFFINITY_TYPES, "sessionAffinityType")
    if spec.get("sessionAffinityType") == "HEADER_FIELD" and not spec.get("headerFieldName"):
        message = "is required when sessionAffinityType is HEADER_FIELD"
        problems.append(Problem("headerFieldName", "missing", message))
    health = spec.get("healthCheckConfiguration")
    if isinstance(health, dict):
        where = "healthCheckConfiguration"
        url = health.get("httpGetUrl")
        if isinstance(url, str) and not url.startswith("/"):
            problems.append(Problem(f"{where}.httpGetUrl", "value", f"must be a path, got {url}"))
        for key, low in (
            ("initialDelaySeconds", 0),
            ("periodSeconds", 1),
            ("timeoutSeconds", 1),
            ("failureThreshold", 1),
            ("successThreshold", 1),
        ):
            value = health.get(key)
            if _integer(value) and value < low:
                problems.append(Problem(f"{where}.{key}", "value", f"must be >= {low}"))
    log = spec.get("logConfiguration")
    if isinstance(log, dict) and bool(log.get("project")) != bool(log.get("logstore")):
        missing = "logstore" if log.get("project") else "project"
        message = "project and logstore go together"
        problems.append(Problem(f"logConfiguration.{missing}", "missing", message))
    protocol = spec.get("protocolConfiguration")
    if isinstance(protocol, dict):
        problems += _enum(protocol.get("type"), PROTOCOL_TYPES, "protocolConfiguration.type")
    role = spec.get("executionRoleArn")
    if isinstance(role, str) and not ROLE_ARN_RULE.match(role):
        message = f"must look like acs:ram::<uid>:role/<name>, got {role!r}"
        problems.append(Problem("executionRoleArn", "value", message))
    for where, config, keys in (
        ("nasConfig", spec.get("nasConfig"), ("serverAddr", "mountDir")),
        ("ossMountConfig", spec.get("ossMountConfig"), ("bucketName", "mountDir")),
    ):
        points = config.get("mountPoints") if isinstance(config, dict) else None
        for index, point in enumerate(points if isinstance(points, list) else []):
            for key in keys:
                if isinstance(point, dict) and not point.get(key):
                    param = f"{where}.mountPoints[{index}].{key}"
                    problems.append(Problem(param, "missing", "is required"))
    return problems


def runtime_rule_problems(
    spec: dict[str, Any], region: str | None = None, violations: list[str] | None = None
) -> list[Problem]:
    """The service's rules for a runtime's whole configuration (a create body, or an update
    merged onto the stored runtime)."""
    problems = []
    name = spec.get("agentRuntimeName")
    if isinstance(name, str) and not RUNTIME_NAME_RULE.match(name):
        message = f"{name!r}: 1-63 characters of lower-case letters, digits and '-'"
        problems.append(Problem("agentRuntimeName", "value", message))
    problems += resource_problems(spec)
    problems += container_problems(spec, region, violations)
    problems += network_problems(spec)
    problems += other_problems(spec)
    return problems


def deprecated_uses(spec: dict[str, Any]) -> list[str]:
    """Deprecated fields the body sets (reference §1.3), as violation texts."""
    found = [
        f"{key} is {note}" for key, note in DEPRECATED.items() if "." not in key and key in spec
    ]
    protocol = spec.get("protocolConfiguration")
    if isinstance(protocol, dict):
        settings = protocol.get("protocolSettings")
        for index, setting in enumerate(settings if isinstance(settings, list) else []):
            for key in DEPRECATED_PROTOCOL_SETTINGS:
                if isinstance(setting, dict) and setting.get(key) is not None:
                    found.append(
                        f"protocolConfiguration.protocolSettings[{index}].{key} is deprecated"
                    )
    return found


def endpoint_rule_problems(
    body: dict[str, Any], versions: set[str] | None = None, *, create: bool
) -> list[Problem]:
    """Endpoint rules. ``versions``: the runtime's published versions (None: any number)."""
    problems = []
    name = body.get("agentRuntimeEndpointName")
    if name is None and create:
        problems.append(Problem("agentRuntimeEndpointName", "missing", "is required"))
    if isinstance(name, str) and not ENDPOINT_NAME_RULE.match(name):
        message = f"{name!r}: 1-63 letters, digits, '-' or '_', starting alphanumeric"
        problems.append(Problem("agentRuntimeEndpointName", "value", message))

    def known(version: Any) -> bool:
        if version == LATEST:
            return True
        if versions is None:
            return isinstance(version, str) and version.isdigit()
        return version in versions

    target = body.get("targetVersion")
    if isinstance(target, str) and not known(target):
        message = f"version {target!r} does not exist (LATEST or a published version)"
        problems.append(Problem("targetVersion", "value", message))
    routing = body.get("routingConfiguration")
    weights = routing.get("versionWeights") if isinstance(routing, dict) else None
    if isinstance(weights, list):
        total = 0.0
        for index, item in enumerate(weights):
            if not isinstance(item, dict):
                continue
            where = f"routingConfiguration.versionWeights[{index}]"
            if not isinstance(item.get("version"), str):
                problems.append(Problem(f"{where}.version", "missing", "is required"))
            elif not known(item["version"]):
                message = f"version {item['version']!r} does not exist"
                problems.append(Problem(f"{where}.version", "value", message))
            weight = item.get("weight")
            if not _number(weight):
                problems.append(Problem(f"{where}.weight", "missing", "is required"))
            elif not 0 <= weight <= 1:
                message = f"is a ratio between 0.0 and 1.0, got {weight}"
                problems.append(Problem(f"{where}.weight", "value", message))
            else:
                total += weight
        if total > 1 + 1e-9:
            message = f"weights add up to {total:g}; at most 1.0"
            problems.append(Problem("routingConfiguration.versionWeights", "value", message))
    scaling = body.get("scalingConfig")
    if isinstance(scaling, dict):
        low = scaling.get("minInstances")
        if _integer(low) and low < 0:
            problems.append(Problem("scalingConfig.minInstances", "value", "must be >= 0"))
        policies = scaling.get("scheduledPolicies")
        for index, policy in enumerate(policies if isinstance(policies, list) else []):
            target_count = policy.get("target") if isinstance(policy, dict) else None
            if _integer(target_count) and _integer(low) and target_count < low:
                param = f"scalingConfig.scheduledPolicies[{index}].target"
                problems.append(Problem(param, "value", f"must be >= minInstances ({low})"))
    return problems


def _note(violations: list[str] | None, text: str) -> None:
    if violations is not None:
        violations.append(text)


# --- the public checks ------------------------------------------------------------------------


def create_runtime_problems(body: Any, *, rules: bool = True, region: str | None = None) -> list:
    problems = sdk_problems("CreateAgentRuntimeInput", body)
    if rules and isinstance(body, dict):
        problems += runtime_rule_problems(body, region)
    return _documented_messages(_unique(problems))


def update_runtime_problems(body: Any, *, rules: bool = True, region: str | None = None) -> list:
    problems = sdk_problems("UpdateAgentRuntimeInput", body)
    if rules and isinstance(body, dict):
        problems += runtime_rule_problems(body, region)
    return _documented_messages(_unique(problems))


def _documented_messages(problems: list[Problem]) -> list[Problem]:
    """The backend's own words for missing resources (arcli): "CPU is required" ..."""
    words = {"cpu": "CPU is required", "memory": "Memory is required", "port": "Port is required"}
    return [
        Problem(p.field, p.kind, words[p.field]) if p.kind == "missing" and p.field in words else p
        for p in problems
    ]


def _check(problems: list[Problem], what: str) -> None:
    if problems:
        raise AssertionError(f"{what} rejected: " + "; ".join(str(p) for p in problems))


def check_create_runtime_body(body: Any, *, rules: bool = True, region: str | None = None) -> None:
    """Raise AssertionError naming the fields unless AgentRun would accept this
    ``CreateAgentRuntimeInput``: the SDK model round trip, types and required fields, and
    (``rules``) the service's rules; ``region`` also checks the image's registry region."""
    _check(create_runtime_problems(body, rules=rules, region=region), "CreateAgentRuntimeInput")


def check_update_runtime_body(body: Any, *, rules: bool = True, region: str | None = None) -> None:
    """The same for an ``UpdateAgentRuntimeInput`` (rules applied to the body alone)."""
    _check(update_runtime_problems(body, rules=rules, region=region), "UpdateAgentRuntimeInput")


def check_create_endpoint_body(body: Any, *, rules: bool = True) -> None:
    """The same for a ``CreateAgentRuntimeEndpointInput`` (any numbered version counts as
    published)."""
    problems = sdk_problems("CreateAgentRuntimeEndpointInput", body)
    if rules and isinstance(body, dict):
        problems += endpoint_rule_problems(body, create=True)
    _check(_unique(problems), "CreateAgentRuntimeEndpointInput")


def check_update_endpoint_body(body: Any, *, rules: bool = True) -> None:
    """The same for an ``UpdateAgentRuntimeEndpointInput``."""
    problems = sdk_problems("UpdateAgentRuntimeEndpointInput", body)
    if rules and isinstance(body, dict):
        problems += endpoint_rule_problems(body, create=False)
    _check(_unique(problems), "UpdateAgentRuntimeEndpointInput")


def check_publish_version_body(body: Any) -> None:
    """The same for a ``PublishRuntimeVersionInput`` (``{description, publisher}``)."""
    _check(sdk_problems("PublishRuntimeVersionInput", body), "PublishRuntimeVersionInput")


# --- state ------------------------------------------------------------------------------------


@dataclass
class Recorded:
    """One request as the server saw it. ``plane`` is "control" or "data"; ``action`` is the
    ``x-acs-action`` header (None on the data plane); ``json`` the decoded body, if any."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any
    plane: str
    status: int = 0
    code: str = ""
    served_by: str | None = None  # data plane: "<runtime name>@<version>" that served it

    @property
    def action(self) -> str | None:
        return self.headers.get("x-acs-action") if self.plane == "control" else None


@dataclass
class Version:
    version: str
    spec: dict[str, Any]
    description: str | None
    publisher: str | None
    last_updated_at: str


@dataclass
class Endpoint:
    id: str
    name: str
    runtime_id: str
    arn: str
    spec: dict[str, Any]  # description, targetVersion, routingConfiguration, ...
    status: str = "CREATING"
    status_reason: str = ""
    url: str = ""
    polls_left: int = 0
    pending: str | None = None  # the status it turns into after polls_left reads


@dataclass
class Runtime:
    id: str
    name: str
    arn: str
    spec: dict[str, Any]  # the stored configuration, camelCase as sent
    created_at: str
    last_updated_at: str
    status: str = "CREATING"
    status_reason: str = ""
    versions: dict[str, Version] = field(default_factory=dict)
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    polls_left: int = 0
    pending: tuple[str, str] | None = None  # (status, reason) after polls_left reads

    def endpoint_named(self, name: str) -> Endpoint | None:
        return next((e for e in self.endpoints.values() if e.name == name), None)


@dataclass
class _Fault:
    name: str
    action: str | None
    remaining: int | None
    status: int
    body: dict[str, Any] | None
    headers: dict[str, str]


class Reply(Exception):
    """An answer decided in the middle of handling (errors, mostly)."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def _request_id() -> str:
    return str(uuid.uuid4()).upper()


def service_error(status: int, code: str, message: str) -> Reply:
    """The service's documented error envelope: ``{"code", "requestId", "message"}``."""
    return Reply(status, {"code": code, "requestId": _request_id(), "message": message})


def _problems_reply(problems: list[Problem]) -> Reply:
    code = "ERR_BAD_REQUEST" if problems[0].field == "body" else "ERR_VALIDATION_FAILED"
    return service_error(400, code, "; ".join(str(p) for p in problems))


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# Faults by name (``fail``): (status, shape, code, message). "gateway" errors come before the
# product sees the request; "service" ones are AgentRun's own envelope.
FAULTS: dict[str, tuple[int, str, str, str]] = {
    "Throttling": (
        400,
        "gateway",
        "Throttling.User",
        "Request was denied due to user flow control.",
    ),
    "Throttling.User": (
        400,
        "gateway",
        "Throttling.User",
        "Request was denied due to user flow control.",
    ),
    "Throttling.Api": (
        400,
        "gateway",
        "Throttling.Api",
        "Request was denied due to api flow control.",
    ),
    "Forbidden.RAM": (
        403,
        "gateway",
        "Forbidden.RAM",
        "User not authorized to operate on the specified resource, or this API doesn't support "
        "RAM.",
    ),
    "ServiceUnavailable": (
        503,
        "gateway",
        "ServiceUnavailable",
        "The request has failed due to a temporary failure of the server.",
    ),
    "InternalError": (
        500,
        "gateway",
        "InternalError",
        "The request processing has failed due to some unknown error, exception or failure.",
    ),
    "ERR_INTERNAL_SERVER_ERROR": (
        500,
        "service",
        "ERR_INTERNAL_SERVER_ERROR",
        "internal server error, please retry later",
    ),
    "conflict": (
        409,
        "service",
        "ERR_CONFLICT",
        "the agent runtime is UPDATING; endpoints can be created or updated once it is READY",
    ),
}
STATUS_FAULTS = {
    429: "Throttling.User",
    500: "ERR_INTERNAL_SERVER_ERROR",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
    409: "conflict",
    403: "Forbidden.RAM",
}
DEFAULT_REASONS = {
    "CREATE_FAILED": "Function instance health check failed on port {port}: GET {path} did not "
    "succeed within the startup timeout (image {image})",
    "UPDATE_FAILED": "Function instance health check failed on port {port} after the update: "
    "GET {path} did not succeed (image {image})",
    "FAILED": "Function instance failed to start (image {image})",
    "DELETE_FAILED": "Failed to release the runtime's resources; retry the deletion",
}


# --- the server -------------------------------------------------------------------------------


class AgentRunContract:
    """The contract server; ``start()``/``stop()``, or use the ``agentrun`` fixture."""

    def __init__(
        self,
        *,
        region: str = "cn-hangzhou",
        ready_polls: int = 2,
        endpoint_polls: int = 1,
        endpoint_ready_status: str = "READY",
        access_key_id: str = "LTAI5tAgentRunContract01",
        access_key_secret: str = "agentrun-contract-access-key-secret-0123456789",
        security_token: str | None = None,
        account_id: str = DEFAULT_ACCOUNT_ID,
        clock_skew: float = 0.0,
    ) -> None:
        self.region = region
        self.ready_polls = ready_polls
        self.endpoint_polls = endpoint_polls
        self.endpoint_ready_status = endpoint_ready_status
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.security_token = security_token
        self.account_id = account_id
        self.clock_skew = clock_skew
        self.requests: list[Recorded] = []
        self.violations: list[str] = []
        self.runtimes: dict[str, Runtime] = {}
        self.upstream: str | None = None
        self._faults: Faults[_Fault] = Faults()
        self._outcomes: dict[str, tuple[str, str | None]] = {}
        self._nonces: set[str] = set()
        self._nonce_lock = threading.Lock()
        self._lock = threading.RLock()
        self._servers: dict[str, ThreadingHTTPServer] = {}

    # --- what tests use -------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """The control plane, instead of https://agentrun.<region>.aliyuncs.com."""
        return self._url("control")

    @property
    def data_endpoint(self) -> str:
        """The data plane, instead of https://<uid>.agentrun-data.<region>.aliyuncs.com."""
        return self._url("data")

    @property
    def env(self) -> dict[str, str]:
        """The environment a toolkit command needs to reach this server with its key."""
        env = {
            "ALIBABA_CLOUD_ACCESS_KEY_ID": self.access_key_id,
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": self.access_key_secret,
            "ACTK_ALIBABA_AGENTRUN_ENDPOINT": self.endpoint,
        }
        if self.security_token:
            env["ALIBABA_CLOUD_SECURITY_TOKEN"] = self.security_token
        return env

    def fail(
        self,
        code_or_status: str | int,
        *,
        action: str | None = None,
        times: int | None = 1,
        status: int | None = None,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        after: int = 0,
    ) -> None:
        """Answer the next ``times`` calls (of ``action``, or any; None: all; the first
        ``after`` of them pass) with a fault:
        a name from ``FAULTS`` ("Throttling", "Forbidden.RAM", "ServiceUnavailable",
        "InternalError", "ERR_INTERNAL_SERVER_ERROR", "conflict"), a status (429, 500, 502,
        503, 504, 409, 403), or any other gateway code with ``status``; ``body`` replaces the
        answer. Faults apply after the signature check (a bad signature never reaches them)."""
        if isinstance(code_or_status, int):
            name = STATUS_FAULTS.get(code_or_status, f"HTTP{code_or_status}")
            default_status = code_or_status
        else:
            name = code_or_status
            default_status = FAULTS[name][0] if name in FAULTS else 400
        self._faults.add(
            _Fault(name, action, times, status or default_status, body, dict(headers or {})),
            after,
        )

    def clear_faults(self) -> None:
        self._faults.clear()

    def runtime_outcome(self, status: str = "READY", *, reason: str | None = None) -> None:
        """What the next transition turns into: ``READY`` (the default for creates and
        updates), ``CREATE_FAILED`` or ``FAILED`` (next create), ``UPDATE_FAILED`` (next
        update), ``DELETE_FAILED`` (next delete), with ``reason`` as ``statusReason`` (a
        health-check failure naming the port and image by default)."""
        kinds = {
            "READY": (),
            "CREATE_FAILED": ("create",),
            "FAILED": ("create",),
            "UPDATE_FAILED": ("update",),
            "DELETE_FAILED": ("delete",),
        }
        if status not in kinds:
            raise ValueError(f"status is one of {sorted(kinds)}, got {status!r}")
        with self._lock:
            if status == "READY":
                self._outcomes.pop("create", None)
                self._outcomes.pop("update", None)
            for kind in kinds[status]:
                self._outcomes[kind] = (status, reason)

    def forward_to(self, base_url: str) -> None:
        """Proxy invocations to the container at ``base_url`` (its paths passed through)."""
        self.upstream = base_url.rstrip("/")

    def runtime(self, name: str) -> Runtime | None:
        """The runtime called ``name``, if it exists."""
        with self._lock:
            return next((r for r in self.runtimes.values() if r.name == name), None)

    def calls(self, action: str) -> list[Recorded]:
        return [r for r in self.requests if r.action == action]

    @property
    def actions(self) -> list[str | None]:
        """The ``x-acs-action`` of every control-plane request, in order."""
        return [r.action for r in self.requests if r.plane == "control"]

    @property
    def invocations(self) -> list[Recorded]:
        """The data-plane requests, in order."""
        return [r for r in self.requests if r.plane == "data"]

    # --- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> AgentRunContract:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> AgentRunContract:
        for plane in ("control", "data"):
            self._servers[plane] = serve(
                functools.partial(self._handle, plane=plane), poll_interval=0.01
            )
        return self

    def stop(self) -> None:
        for server in self._servers.values():
            shut(server)
        self._servers.clear()

    def _url(self, plane: str) -> str:
        server = self._servers.get(plane)
        assert server is not None, "start() the contract server first"
        return url_of(server)

    # --- dispatch -------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler, plane: str) -> None:
        parts = urlsplit(handler.path)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        raw = read_body(handler, headers)
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = _INVALID_JSON
        record = Recorded(
            handler.command,
            parts.path,
            dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers,
            raw,
            None if payload is _INVALID_JSON else payload,
            plane,
        )
        with self._lock:
            self.requests.append(record)
        self._check_secret(record)
        try:
            if plane == "data":
                self._invoke(handler, record, parts.query)
                return
            status, body = self._control(record, payload)
            self._send_json(handler, record, status, body)
        except Reply as reply:
            self._send_json(handler, record, reply.status, reply.body, reply.headers)
        except (BrokenPipeError, ConnectionResetError):
            return  # the client hung up (e.g. in the middle of a stream)
        except Exception as exc:  # a bug of this server: say so rather than drop the connection
            self._violation(f"contract server error on {record.method} {record.path}: {exc!r}")
            reply = service_error(500, "ERR_INTERNAL_SERVER_ERROR", f"contract error: {exc!r}")
            self._send_json(handler, record, reply.status, reply.body)

    def _check_secret(self, record: Recorded) -> None:
        """The access key secret never travels: not in a path, query, header or body."""
        secret = self.access_key_secret
        seen = [record.path, *record.query.values(), *record.headers.values()]
        if any(secret in text for text in seen) or secret.encode() in record.body:
            self._violation(f"{record.method} {record.path}: the access key secret was sent")

    def _control(self, record: Recorded, payload: Any) -> tuple[int, dict[str, Any]]:
        host = urlsplit(self.endpoint).netloc
        if record.headers.get("host") != host:
            self._violation(f"{record.action}: Host {record.headers.get('host')!r}, not {host}")
        refused = authenticate(
            record,
            access_key_id=self.access_key_id,
            access_key_secret=self.access_key_secret,
            security_token=self.security_token,
            clock_skew=self.clock_skew,
            nonces=self._nonces,
            lock=self._nonce_lock,
            host_id=f"agentrun.{self.region}.aliyuncs.com",
        )
        if refused is not None:
            raise Reply(*refused)
        if record.headers.get("x-acs-content-sha256") != hashlib.sha256(record.body).hexdigest():
            raise Reply(
                *self._gateway(
                    400,
                    "SignatureDoesNotMatch",
                    "x-acs-content-sha256 is not the SHA-256 of the request body.",
                )
            )
        version = record.headers.get("x-acs-version")
        if version != API_VERSION:
            raise Reply(
                *self._gateway(
                    400,
                    "InvalidVersion",
                    f"Specified parameter Version {version!r} is not valid; AgentRun "
                    f"serves {API_VERSION}.",
                )
            )
        route, params = self._route(record.method, record.path)
        if route is None or route.action != record.action:
            raise Reply(
                *self._gateway(
                    404,
                    "InvalidAction.NotFound",
                    "Specified api is not found, please check your url and method.",
                )
            )
        fault = self._take_fault(record.action)
        if fault is not None:
            raise self._fault_reply(fault, record.action)
        for name in record.query:
            if name not in route.query:
                self._violation(f"{route.action}: unknown query parameter {name!r}")
        if route.body_model is None:
            if record.body:
                self._violation(f"{route.action}: a {record.method} carries a body")
            body: dict[str, Any] = {}
        else:
            body = self._body(record, route, payload)
        handler = getattr(self, f"_op_{_snake(route.action)}")
        with self._lock:
            answer = handler(record, params, body)
        self._check_answer(route.action, answer)
        return 200, answer

    def _body(self, record: Recorded, route: Route, payload: Any) -> dict[str, Any]:
        if record.body and "application/json" not in record.headers.get("content-type", ""):
            raise service_error(
                400,
                "ERR_BAD_REQUEST",
                f"Content-Type must be application/json, got "
                f"{record.headers.get('content-type')!r}",
            )
        if payload is _INVALID_JSON:
            raise service_error(400, "ERR_BAD_REQUEST", "the request body is not valid JSON")
        if payload is None:
            payload = {}
        assert route.body_model is not None
        problems = sdk_problems(route.body_model, payload)
        if problems:
            raise _problems_reply(_documented_messages(problems))
        for text in deprecated_uses(payload):
            self._violation(f"{route.action}: {text}")
        return payload

    def _route(self, method: str, path: str) -> tuple[Route | None, dict[str, str]]:
        for route in ROUTES:
            match = route.pattern.match(path)
            if match and route.method == method:
                return route, {k: unquote(v) for k, v in match.groupdict().items()}
        return None, {}

    def _gateway(self, status: int, code: str, message: str) -> tuple[int, dict]:
        return gateway_error(f"agentrun.{self.region}.aliyuncs.com", status, code, message)

    def _take_fault(self, action: str | None) -> _Fault | None:
        return self._faults.take(lambda fault: fault.action in (None, action))

    def _fault_reply(self, fault: _Fault, action: str | None) -> Reply:
        if fault.body is not None:
            return Reply(fault.status, dict(fault.body), fault.headers)
        status, shape, code, message = FAULTS.get(
            fault.name, (fault.status, "gateway", fault.name, f"The service answered {fault.name}.")
        )
        if shape == "service":
            reply = service_error(fault.status, code, message)
            reply.headers.update(fault.headers)
            return reply
        status, body = self._gateway(fault.status, code, message)
        if code == "Forbidden.RAM":
            body["AccessDeniedDetail"] = {
                "AuthAction": f"agentrun:{action}",
                "AuthPrincipalType": "SubUser",
                "AuthPrincipalOwnerId": self.account_id,
                "PolicyType": "AccountLevelIdentityBasedPolicy",
                "NoPermissionType": "ImplicitDeny",
                "EncodedDiagnosticMessage": "AQIBIAAAAOPdwKY2QLOvgMEc7SkkoJp0",
            }
        return Reply(status, body, fault.headers)

    def _violation(self, text: str) -> None:
        with self._lock:
            self.violations.append(text)

    def _check_answer(self, action: str, answer: dict[str, Any]) -> None:
        model = ANSWER_MODELS[action]
        for problem in model_problems(model, answer, request=False):
            self._violation(f"this server's {model} answer: {problem}")
        for problem in round_trip_problems(model, answer):
            self._violation(f"this server's {model} answer: {problem}")

    def _send_json(
        self,
        handler: BaseHTTPRequestHandler,
        record: Recorded,
        status: int,
        body: Any,
        headers: dict[str, str] | None = None,
    ) -> None:
        if isinstance(body, dict) and "requestId" not in body and "RequestId" not in body:
            body["requestId"] = _request_id()
        record.status = status
        if isinstance(body, dict):
            record.code = str(body.get("code") or body.get("Code") or "")
        data = json.dumps(body).encode()
        request_id = (
            body.get("requestId") or body.get("RequestId") if isinstance(body, dict) else ""
        )
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json;charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("x-acs-request-id", str(request_id))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    # --- state helpers (called with the lock held) ----------------------------------------

    def _runtime(self, runtime_id: str) -> Runtime:
        runtime = self.runtimes.get(runtime_id)
        if runtime is None:
            raise service_error(404, "ERR_NOT_FOUND", f"agent runtime {runtime_id} does not exist")
        return runtime

    def _endpoint(self, runtime: Runtime, endpoint_id: str) -> Endpoint:
        endpoint = runtime.endpoints.get(endpoint_id)
        if endpoint is None:
            message = (
                f"agent runtime endpoint {endpoint_id} does not exist in agent runtime {runtime.id}"
            )
            raise service_error(404, "ERR_NOT_FOUND", message)
        return endpoint

    def _begin(self, runtime: Runtime, during: str, kind: str) -> None:
        status, reason = self._outcomes.pop(kind, None) or (
            "DELETED" if kind == "delete" else "READY",
            None,
        )
        if status.endswith("FAILED") and reason is None:
            reason = self._default_reason(status, runtime)
        runtime.status, runtime.status_reason = during, ""
        runtime.pending = (status, reason or "")
        runtime.polls_left = self.ready_polls
        runtime.last_updated_at = _now()
        if self.ready_polls <= 0:
            self._finish(runtime)

    def _default_reason(self, status: str, runtime: Runtime) -> str:
        spec = runtime.spec
        container = spec.get("containerConfiguration") or {}
        health = spec.get("healthCheckConfiguration") or {}
        return DEFAULT_REASONS[status].format(
            port=container.get("port") or spec.get("port"),
            path=health.get("httpGetUrl") or "/ready",
            image=container.get("image"),
        )

    def _finish(self, runtime: Runtime) -> None:
        assert runtime.pending is not None
        status, reason = runtime.pending
        runtime.pending = None
        if status == "DELETED":
            self.runtimes.pop(runtime.id, None)
            return
        runtime.status, runtime.status_reason = status, reason
        runtime.last_updated_at = _now()

    def _read(self, runtime: Runtime) -> bool:
        """One read of a runtime: advance its transition; False when it is now gone."""
        if runtime.pending is not None:
            if runtime.polls_left > 0:
                runtime.polls_left -= 1
            else:
                self._finish(runtime)
        return runtime.id in self.runtimes

    def _read_endpoint(self, runtime: Runtime, endpoint: Endpoint) -> None:
        if endpoint.pending is None:
            return
        if endpoint.polls_left > 0:
            endpoint.polls_left -= 1
            return
        self._finish_endpoint(runtime, endpoint)

    def _finish_endpoint(self, runtime: Runtime, endpoint: Endpoint) -> None:
        assert endpoint.pending is not None
        endpoint.status, endpoint.pending = endpoint.pending, None
        if endpoint.spec.get("disablePublicNetworkAccess"):
            endpoint.url = ""
        else:
            endpoint.url = (
                f"{self.data_endpoint}/agent-runtimes/{quote(runtime.name, safe='')}"
                f"/endpoints/{quote(endpoint.name, safe='')}/invocations"
            )

    def _begin_endpoint(self, runtime: Runtime, endpoint: Endpoint, during: str) -> None:
        endpoint.status, endpoint.status_reason = during, ""
        endpoint.pending = self.endpoint_ready_status
        endpoint.polls_left = self.endpoint_polls
        if during == "CREATING":
            endpoint.url = ""
        if self.endpoint_polls <= 0:
            self._finish_endpoint(runtime, endpoint)

    def _not_busy(self, runtime: Runtime, what: str) -> None:
        if runtime.status in BUSY:
            raise service_error(
                409,
                "ERR_CONFLICT",
                f"agent runtime {runtime.id} is {runtime.status}; {what} once it is READY",
            )

    # --- answers --------------------------------------------------------------------------

    def _runtime_json(
        self, runtime: Runtime, spec: dict[str, Any] | None = None, version: str = LATEST
    ) -> dict[str, Any]:
        known = sdk_fields("AgentRuntime")
        out = {k: copy.deepcopy(v) for k, v in (spec or runtime.spec).items() if k in known}
        if out.get("sessionAffinityType") == "COOKIE":
            out["sessionAffinityType"] = "GENERATED_COOKIE"
        registry = (out.get("containerConfiguration") or {}).get("registryConfig") or {}
        auth = registry.get("authConfig")
        if isinstance(auth, dict) and auth.get("password"):
            auth["password"] = "******"
        out.update(
            agentRuntimeId=runtime.id,
            agentRuntimeArn=runtime.arn,
            agentRuntimeName=runtime.name,
            agentRuntimeVersion=version,
            createdAt=runtime.created_at,
            lastUpdatedAt=runtime.last_updated_at,
            status=runtime.status,
            statusReason=runtime.status_reason,
        )
        return out

    def _endpoint_json(self, endpoint: Endpoint) -> dict[str, Any]:
        spec = endpoint.spec
        out: dict[str, Any] = {
            "agentRuntimeEndpointArn": endpoint.arn,
            "agentRuntimeEndpointId": endpoint.id,
            "agentRuntimeEndpointName": endpoint.name,
            "agentRuntimeId": endpoint.runtime_id,
            "description": spec.get("description") or "",
            "disablePublicNetworkAccess": bool(spec.get("disablePublicNetworkAccess")),
            "endpointPublicUrl": endpoint.url,
            "status": endpoint.status,
            "statusReason": endpoint.status_reason,
            "targetVersion": spec.get("targetVersion") or LATEST,
        }
        if spec.get("routingConfiguration") is not None:
            out["routingConfiguration"] = copy.deepcopy(spec["routingConfiguration"])
        scaling = spec.get("scalingConfig")
        if scaling is not None:
            low = scaling.get("minInstances") or 0
            out["scalingStatus"] = {
                "minInstances": low,
                "currentInstances": low if endpoint.status not in BUSY else 0,
                "targetInstances": low,
                "scheduledPolicies": copy.deepcopy(scaling.get("scheduledPolicies") or []),
            }
        return out

    @staticmethod
    def _version_json(runtime: Runtime, version: Version) -> dict[str, Any]:
        return {
            "agentRuntimeArn": runtime.arn,
            "agentRuntimeId": runtime.id,
            "agentRuntimeName": runtime.name,
            "agentRuntimeVersion": version.version,
            "description": version.description or "",
            "lastUpdatedAt": version.last_updated_at,
        }

    @staticmethod
    def _ok(data: Any) -> dict[str, Any]:
        return {"code": "SUCCESS", "requestId": _request_id(), "data": data}

    @staticmethod
    def _paging(query: dict[str, str]) -> tuple[int, int]:
        values = {}
        for name, default, high in (
            ("pageNumber", 1, None),
            ("pageSize", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE),
        ):
            text = query.get(name)
            if text is None or text == "":
                values[name] = default
                continue
            if not re.fullmatch(r"[0-9]+", text) or int(text) < 1:
                raise service_error(
                    400,
                    "ERR_VALIDATION_FAILED",
                    f"{name}: must be a positive integer, got {text!r}",
                )
            if high is not None and int(text) > high:
                raise service_error(
                    400, "ERR_VALIDATION_FAILED", f"{name}: must be at most {high}, got {text}"
                )
            values[name] = int(text)
        return values["pageNumber"], values["pageSize"]

    @staticmethod
    def _name_matches(name: str, wanted: str | None, mode: str | None) -> bool:
        if not wanted:
            return True
        if (mode or "").lower() == "exact":
            return name == wanted
        return wanted in name

    def _page(self, items: list[Any], query: dict[str, str]) -> dict[str, Any]:
        number, size = self._paging(query)
        chosen = items[(number - 1) * size : number * size]
        return {"items": chosen, "pageNumber": number, "pageSize": size, "total": len(items)}

    # --- runtimes -------------------------------------------------------------------------

    def _op_create_agent_runtime(self, record: Recorded, params: dict, body: dict) -> dict:
        problems = runtime_rule_problems(body, self.region, self.violations)
        if problems:
            raise _problems_reply(_unique(problems))
        name = body["agentRuntimeName"]
        if self.runtime(name) is not None:
            raise service_error(409, "ERR_CONFLICT", f"agent runtime {name} already exists")
        serial = uuid.uuid4()
        runtime = Runtime(
            id=f"ar-{serial.hex[:16]}",
            name=name,
            arn=f"acs:agentrun:{self.region}:{self.account_id}:runtimes/{serial}",
            spec=_stored(body, ("forceEvictInstances",)),
            created_at=_now(),
            last_updated_at=_now(),
        )
        self.runtimes[runtime.id] = runtime
        self._begin(runtime, "CREATING", "create")
        return self._ok(self._runtime_json(runtime))

    def _op_get_agent_runtime(self, record: Recorded, params: dict, body: dict) -> dict:
        runtime = self._runtime(params["agentRuntimeId"])
        version = record.query.get("agentRuntimeVersion")
        if version and version != LATEST:
            if version not in runtime.versions:
                message = f"version {version} of agent runtime {runtime.id} does not exist"
                raise service_error(404, "ERR_NOT_FOUND", message)
            published = runtime.versions[version]
            return self._ok(self._runtime_json(runtime, published.spec, version))
        if not self._read(runtime):
            raise service_error(404, "ERR_NOT_FOUND", f"agent runtime {runtime.id} does not exist")
        return self._ok(self._runtime_json(runtime))

    def _op_list_agent_runtimes(self, record: Recorded, params: dict, body: dict) -> dict:
        query = record.query
        status = query.get("status")
        if status:
            found = _enum(status, RUNTIME_STATUSES, "status")
            if found:
                raise _problems_reply(found)
        tags = {t for t in (query.get("systemTags") or "").split(",") if t}
        wanted, mode = query.get("agentRuntimeName"), query.get("searchMode")
        workspace = query.get("workspaceId")
        chosen = [
            runtime
            for runtime in list(self.runtimes.values())  # in creation order
            if self._name_matches(runtime.name, wanted, mode)
            and (not workspace or runtime.spec.get("workspaceId") == workspace)
            and tags <= set(runtime.spec.get("systemTags") or [])
            and (not status or runtime.status == status)
        ]
        page = self._page(chosen, query)
        page["items"] = [self._runtime_json(r) for r in page["items"] if self._read(r)]
        return self._ok(page)

    def _op_update_agent_runtime(self, record: Recorded, params: dict, body: dict) -> dict:
        runtime = self._runtime(params["agentRuntimeId"])
        name = body.get("agentRuntimeName")
        if name is not None and name != runtime.name:
            message = f"agentRuntimeName: cannot be changed ({runtime.name!r} -> {name!r})"
            raise service_error(400, "ERR_VALIDATION_FAILED", message)
        merged = {**runtime.spec, **_stored(body, ("forceEvictInstances",))}
        problems = runtime_rule_problems(merged, self.region, self.violations)
        if problems:
            raise _problems_reply(_unique(problems))
        self._not_busy(runtime, "it can be updated")
        runtime.spec = merged
        self._begin(runtime, "UPDATING", "update")
        return self._ok(self._runtime_json(runtime))

    def _op_delete_agent_runtime(self, record: Recorded, params: dict, body: dict) -> dict:
        runtime = self._runtime(params["agentRuntimeId"])
        if runtime.status == "DELETING":
            raise service_error(409, "ERR_CONFLICT", f"agent runtime {runtime.id} is DELETING")
        if runtime.endpoints:
            names = ", ".join(sorted(e.name for e in runtime.endpoints.values()))
            message = (
                f"agent runtime {runtime.id} still has {len(runtime.endpoints)} endpoint(s) "
                f"({names}); delete them first"
            )
            raise service_error(409, "ERR_CONFLICT", message)
        self._begin(runtime, "DELETING", "delete")
        return self._ok(self._runtime_json(runtime))

    # --- versions -------------------------------------------------------------------------

    def _op_publish_runtime_version(self, record: Recorded, params: dict, body: dict) -> dict:
        runtime = self._runtime(params["agentRuntimeId"])
        self._not_busy(runtime, "versions can be published")
        if runtime.status != "READY":
            message = f"agent runtime {runtime.id} is {runtime.status}; publish a READY runtime"
            raise service_error(409, "ERR_CONFLICT", message)
        number = str(max((int(v) for v in runtime.versions), default=0) + 1)
        version = Version(
            number,
            copy.deepcopy(runtime.spec),
            body.get("description"),
            body.get("publisher"),
            _now(),
        )
        runtime.versions[number] = version
        return self._ok(self._version_json(runtime, version))

    def _op_list_agent_runtime_versions(self, record: Recorded, params: dict, body: dict) -> dict:
        runtime = self._runtime(params["agentRuntimeId"])
        versions = [runtime.versions[k] for k in sorted(runtime.versions, key=int, reverse=True)]
        page = self._page(versions, record.query)
        page["items"] = [self._version_json(runtime, v) for v in page["items"]]
        return self._ok(page)

    # --- endpoints ------------------------------------------------------------------------

    def _endpoint_problems(self, runtime: Runtime, body: dict, *, create: bool) -> None:
        problems = endpoint_rule_problems(body, set(runtime.versions), create=create)
        if problems:
            raise _problems_reply(_unique(problems))

    def _op_create_agent_runtime_endpoint(self, record: Recorded, params: dict, body: dict) -> dict:
        runtime = self._runtime(params["agentRuntimeId"])
        self._endpoint_problems(runtime, body, create=True)
        self._not_busy(runtime, "endpoints can be created or updated")
        name = body["agentRuntimeEndpointName"]
        if runtime.endpoint_named(name) is not None:
            message = f"agent runtime endpoint {name} already exists in agent runtime {runtime.id}"
            raise service_error(409, "ERR_CONFLICT", message)
        serial = uuid.uuid4()
        endpoint = Endpoint(
            id=f"are-{serial.hex[:16]}",
            name=name,
            runtime_id=runtime.id,
            arn=f"acs:agentrun:{self.region}:{self.account_id}:runtime-endpoints/{serial}",
            spec=_stored(body, ("agentRuntimeEndpointName",)),
        )
        runtime.endpoints[endpoint.id] = endpoint
        self._begin_endpoint(runtime, endpoint, "CREATING")
        return self._ok(self._endpoint_json(endpoint))

    def _op_get_agent_runtime_endpoint(self, record: Recorded, params: dict, body: dict) -> dict:
        runtime = self._runtime(params["agentRuntimeId"])
        endpoint = self._endpoint(runtime, params["agentRuntimeEndpointId"])
        self._read_endpoint(runtime, endpoint)
        return self._ok(self._endpoint_json(endpoint))

    def _op_list_agent_runtime_endpoints(self, record: Recorded, params: dict, body: dict) -> dict:
        runtime = self._runtime(params["agentRuntimeId"])
        wanted, mode = record.query.get("endpointName"), record.query.get("searchMode")
        chosen = [e for e in runtime.endpoints.values() if self._name_matches(e.name, wanted, mode)]
        page = self._page(chosen, record.query)
        items = []
        for endpoint in page["items"]:
            self._read_endpoint(runtime, endpoint)
            items.append(self._endpoint_json(endpoint))
        page["items"] = items
        return self._ok(page)

    def _op_update_agent_runtime_endpoint(self, record: Recorded, params: dict, body: dict) -> dict:
        runtime = self._runtime(params["agentRuntimeId"])
        endpoint = self._endpoint(runtime, params["agentRuntimeEndpointId"])
        name = body.get("agentRuntimeEndpointName")
        if name is not None and name != endpoint.name:
            message = f"agentRuntimeEndpointName: cannot be changed ({endpoint.name!r} -> {name!r})"
            raise service_error(400, "ERR_VALIDATION_FAILED", message)
        self._endpoint_problems(runtime, body, create=False)
        self._not_busy(runtime, "endpoints can be created or updated")
        spec = {
            **endpoint.spec,
            **_stored(body, ("agentRuntimeEndpointName", "deleteScalingConfig")),
        }
        if body.get("deleteScalingConfig"):
            spec.pop("scalingConfig", None)
        endpoint.spec = spec
        self._begin_endpoint(runtime, endpoint, "UPDATING")
        return self._ok(self._endpoint_json(endpoint))

    def _op_delete_agent_runtime_endpoint(self, record: Recorded, params: dict, body: dict) -> dict:
        runtime = self._runtime(params["agentRuntimeId"])
        endpoint = self._endpoint(runtime, params["agentRuntimeEndpointId"])
        del runtime.endpoints[endpoint.id]
        endpoint.status, endpoint.url = "DELETING", ""
        return self._ok(self._endpoint_json(endpoint))

    # --- the data plane -------------------------------------------------------------------

    def _invoke(self, handler: BaseHTTPRequestHandler, record: Recorded, query: str) -> None:
        match = INVOCATION_PATH.match(record.path)
        if match is None:
            self._violation(f"data plane: {record.method} {record.path} is not an invocation URL")
            raise service_error(404, "ERR_NOT_FOUND", f"no route for {record.path}")
        runtime_name, endpoint_name = unquote(match["runtime"]), unquote(match["endpoint"])
        with self._lock:
            runtime = self.runtime(runtime_name)
            if runtime is None:
                raise service_error(
                    404, "ERR_NOT_FOUND", f"agent runtime {runtime_name} does not exist"
                )
            endpoint = runtime.endpoint_named(endpoint_name)
            if endpoint is None:
                message = f"agent runtime endpoint {endpoint_name} does not exist"
                raise service_error(404, "ERR_NOT_FOUND", message)
            if not endpoint.url:
                if endpoint.spec.get("disablePublicNetworkAccess"):
                    message = f"public network access to endpoint {endpoint_name} is disabled"
                    raise service_error(403, "ERR_FORBIDDEN", message)
                message = f"agent runtime endpoint {endpoint_name} is {endpoint.status}"
                raise service_error(503, "ERR_SERVICE_UNAVAILABLE", message)
            if runtime.status not in SERVING:
                message = f"agent runtime {runtime_name} is {runtime.status}"
                if runtime.status_reason:
                    message += f": {runtime.status_reason}"
                raise service_error(503, "ERR_SERVICE_UNAVAILABLE", message)
            record.served_by = f"{runtime.name}@{endpoint.spec.get('targetVersion') or LATEST}"
        if self.upstream is None:
            self._violation("an invocation arrived but forward_to() was never called")
            raise service_error(502, "ERR_BAD_GATEWAY", "no container to forward to")
        rest = match["rest"] or "/"
        self._forward(handler, record, rest + (f"?{query}" if query else ""))

    def _forward(self, handler: BaseHTTPRequestHandler, record: Recorded, target_path: str) -> None:
        target = urlsplit(self.upstream or "")
        connection = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=120)
        dropped = {
            "host",
            "authorization",
            "agentrun-authorization",
            "connection",
            "keep-alive",
            "transfer-encoding",
            "te",
            "upgrade",
            "content-length",
            "x-fc-access-key-id",
            "x-fc-access-key-secret",
            "x-fc-security-token",
        }
        headers = {k: v for k, v in record.headers.items() if k not in dropped}
        request_id = _request_id()
        headers.update({"x-fc-request-id": request_id, "x-agentrun-request-id": request_id})
        try:
            connection.request(
                record.method,
                target.path.rstrip("/") + target_path,
                body=record.body or None,
                headers=headers,
            )
            upstream = connection.getresponse()
        except OSError as exc:
            connection.close()
            raise service_error(
                502, "ERR_BAD_GATEWAY", f"the agent runtime's instance is not reachable ({exc})"
            ) from None
        try:
            record.status = upstream.status
            answer = [(name, value) for name, value in upstream.getheaders()
                      if name.lower() not in _NOT_PASSED_BACK]
            relay(handler, upstream, [*answer, ("x-fc-request-id", request_id)])
        finally:
            connection.close()


_INVALID_JSON = object()
# Upstream answer headers the proxy sets itself rather than copying.
_NOT_PASSED_BACK = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "date", "server"}
)


def _stored(body: dict[str, Any], drop: tuple[str, ...]) -> dict[str, Any]:
    """What the service keeps of a body: non-null fields, minus per-request switches."""
    return {k: copy.deepcopy(v) for k, v in body.items() if v is not None and k not in drop}


def _snake(action: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", action).lower()


# --- the fixture ------------------------------------------------------------------------------


def _require_sdk() -> None:
    try:
        import alibabacloud_agentrun20250910.models  # noqa: F401
        import alibabacloud_tea_openapi.utils  # noqa: F401
    except ImportError:
        reason = (
            "alibabacloud-agentrun20250910 is not installed (the AgentRun contract checks "
            "bodies with its models and signatures with alibabacloud_tea_openapi): "
            "pip install -e '.[test]'"
        )
        unavailable(reason)


@pytest.fixture
def agentrun() -> Iterator[Callable[..., AgentRunContract]]:
    """Start contract servers: ``agentrun(region="cn-hangzhou", ready_polls=2,
    endpoint_polls=1, endpoint_ready_status="READY", security_token=None, ...)`` returns a
    running ``AgentRunContract``; all stop after the test."""
    _require_sdk()

    def start(region: str = "cn-hangzhou", ready_polls: int = 2, **config: Any) -> AgentRunContract:
        return AgentRunContract(region=region, ready_polls=ready_polls, **config).start()

    yield from stopped_after(start)
