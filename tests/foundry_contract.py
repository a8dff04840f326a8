"""A local stand-in for the Azure AI Foundry hosted-agent data plane, both API generations.

It serves what the shared reference ``azure-foundry-hosted-agents.md`` documents, under a
project endpoint ``http://127.0.0.1:PORT/api/projects/test-project`` (paths below are relative
to it), on an ephemeral port in a thread. ``api`` picks the generation the server speaks:

``api="v1"`` (GA; azure-ai-projects >= 2.3), every route with ``?api-version=v1``::

    POST   /agents/{name}/versions                    create a version -> status "creating"
    GET    /agents/{name}/versions[?limit&order&after&before]    paged list
    GET    /agents/{name}/versions/{v}                 the version; "creating" for the first
                                                       `activation_polls` GETs, then "active"
                                                       or "failed" + error {code, message}
    DELETE /agents/{name}/versions/{v}[?force=true]    409 while it has active sessions
    GET    /agents/{name}          DELETE /agents/{name}[?force=true]          GET /agents[?kind]
    PATCH  /agents/{name}          Content-Type: application/merge-patch+json (RFC 7396) of
           {"agent_endpoint", "agent_card"} (the SDK's ``agents.update_details``); the merged
           result is checked as ``AgentEndpointConfig``/``AgentCard`` and stored on the agent,
           and ``GET /agents/{name}`` returns it. Version selector rules: percentages 0-100
           adding up to 100, one version receiving traffic (Learn, "Configure and share your
           agent": no traffic splitting), each ``agent_version`` an existing version or
           ``@latest`` (seen in public scripts; unverified)
    POST   /agents/{name}/endpoint/protocols/openai/responses      -> the container's /responses
           (served by the version the endpoint's selector picks, the latest one when none is
           set; it must be active; each call opens a session on it and records the version
           that served it in ``Recorded.served_by``)
    GET    /agents/{name}/versions/{v}/sessions/{sid}:logstream    the session's log as SSE
           frames ``event: log`` / ``data: <line>`` (404 for a session the version never had)

``api="2025-11-15-preview"`` (initial preview; azure-ai-projects 2.0.0b3), every route with
``?api-version=2025-11-15-preview``::

    POST/GET/DELETE versions and agents as above (no version status, no ``force``)
    POST   /agents/{name}/versions/{v}/containers/default:start   {min_replicas, max_replicas}
           -> 202 + Operation-Location + operation {id, agent_id, agent_version_id, status,
              error, container}; also :update (same body), :stop, :delete
    GET    /agents/{name}/operations/{id}    NotStarted -> InProgress (`activation_polls` GETs)
                                             -> Succeeded | Failed {code, type, message}
    GET    /agents/{name}/operations, .../containers/default, .../containers/default/operations
    GET    .../containers/default:logstream?kind=console|system&tail=1..300&follow=bool
           the container's log as a chunked text stream, the last ``tail`` lines (400 for a
           kind or tail outside those ranges; 404 before the container was started)
    POST   /openai/responses   body {"agent": {"type": "agent_reference", "name", "version"?},
           ...} -> the container's /responses (its container must be Running)

Every request needs ``Authorization: Bearer <token>`` (else 401) and the generation's
api-version. Bodies are checked twice: against the SDK models (the GA shape against the
installed azure-ai-projects, by its own deserialize/re-serialize round trip and by the model
descriptions; the preview shape against ``tests/fixtures/azure_preview_models.json``, dumped
from azure-ai-projects 2.0.0b3 by ``scripts/azure-preview-fixtures``), and against the service
rules: agent name, cpu/memory pairs, environment variable names, metadata limits, description
length, image reference. A broken rule gets the service's 400 ``{"error": {"code", "message",
"param", "type", "details"}}`` naming the field in ``param``. The checks are public so client
unit tests can use them: ``check_ga_definition``, ``check_preview_definition``,
``check_ga_create_version``, ``check_preview_create_version``, ``check_ga_patch_agent``
(AssertionError naming the field).

Use it through the ``foundry`` fixture (``pytest_plugins = ["tests.foundry_contract"]``)::

    def test_deploy(foundry):
        contract = foundry(api="v1", activation_polls=2)
        deploy(endpoint=contract.endpoint, env=contract.env)
        contract.fail(429, path_contains="/versions", method="POST", headers={"Retry-After": "2"})
        contract.version_outcome("failed", error="image_pull")
        contract.forward_responses_to(container_url)
        assert contract.violations == []

Faults (``fail``) come in the service's shapes: 429 ``rate_limit_exceeded`` + Retry-After, 500
``server_error``, 503 ``service_unavailable``, 403 ``preview_feature_required``, 409
``conflict``, 401, 404, or any status with an explicit body. ``require_endpoint_header`` gates
the PATCH behind ``Foundry-Features: AgentEndpoints=V1Preview`` as the spec's routes.tsp and
the Learn page still do (azure-ai-projects 2.3+ sends no header for it). ``violations`` lists
what a correct client should never do even where the service would let it pass (and any answer
of this server that its SDK models would not accept); tests assert it is empty.
"""

from __future__ import annotations

import copy
import functools
import http.client
import importlib.machinery
import importlib.util
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

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

GA = "v1"
PREVIEW = "2025-11-15-preview"
API_VERSIONS = (GA, PREVIEW)
PREVIEW_FEATURE = "HostedAgents=V1Preview"
ENDPOINT_FEATURE = "AgentEndpoints=V1Preview"
MERGE_PATCH = "application/merge-patch+json"
LATEST = "@latest"  # an agent_version that follows the newest version
TOKEN_SCOPE = "https://ai.azure.com/.default"
REPO = Path(__file__).resolve().parents[1]
PREVIEW_FIXTURE = REPO / "tests" / "fixtures" / "azure_preview_models.json"
DUMPER = REPO / "scripts" / "azure-preview-fixtures"

# --- service rules (reference §2, the spec's routes.tsp/models.tsp, Container Apps sizes) ---------

NAME_RULE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
ENV_NAME_RULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# A docker reference: [host[:port]/]path[:tag][@sha256:digest] (a port is fine, e.g. a test
# registry on 127.0.0.1:5000).
IMAGE_RULE = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)
# Hosted agents run on Container Apps consumption sizes (spec: HostedAgentDefinition.cpu; the
# reference's §4.2, §8): 0.25 to 2 vCPU in steps of 0.25, with twice as many GiB of memory.
CPU_MEMORY_PAIRS = {Decimal(n) / 4: Decimal(n) / 2 for n in range(1, 9)}
METADATA_MAX_PAIRS = 16
METADATA_MAX_KEY = 64
METADATA_MAX_VALUE = 512
DESCRIPTION_MAX = 512
# Known reasons a version (GA) or a container start (preview) fails; `version_outcome(error=)`.
# ImageError and ContainerProbesFailed are what the field reports (reference §5.1, §7); the
# protocol message is agentserver-core's (reference §3.3); its code is our label.
VERSION_ERRORS = {
    "image_pull": {
        "code": "ImageError",
        "message": "Failed to pull container image '{image}'. Check that the image exists and "
        "that the project's managed identity can pull from the registry.",
    },
    "probe": {
        "code": "ContainerProbesFailed",
        "message": "Container readiness probe failed: GET /readiness on port 8088 did not "
        "return 200 before the startup timeout.",
    },
    "protocol": {
        "code": "UnsupportedProtocolVersion",
        "message": "Unsupported responses protocol version. Please use version '1.0.0'",
    },
}


# --- SDK model descriptions -----------------------------------------------------------------------


def _dumper() -> Any:
    """scripts/azure-preview-fixtures as a module (it describes SDK models; no side effects)."""
    loader = importlib.machinery.SourceFileLoader("azure_preview_fixtures", str(DUMPER))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


GA_ANSWER_MODELS = (
    "AgentVersionDetails",
    "AgentDetails",
    "DeleteAgentVersionResponse",
    "DeleteAgentResponse",
    "ApiErrorResponse",
)


@functools.cache
def ga_schema() -> dict[str, Any]:
    """The installed (current) azure-ai-projects, described like the preview fixture."""
    from azure.ai.projects import __version__, models
    from azure.ai.projects.operations._operations import AgentsOperations

    dumper = _dumper()
    enums: dict[str, list[str]] = {}
    body = dumper.describe_body(AgentsOperations.create_version, models, enums)
    # PATCH /agents/{name}: {"agent_endpoint": AgentEndpointConfig, "agent_card": AgentCard}
    patch = dumper.describe_body(AgentsOperations.update_details, models, enums)
    roots = ["HostedAgentDefinition", *GA_ANSWER_MODELS, *body["refs"], *patch["refs"]]
    description = dumper.describe_models(models, roots, expand={"AgentDefinition": ["hosted"]})
    description["enums"] = {**enums, **description["enums"]}
    return {
        "sdk": {"package": "azure-ai-projects", "version": __version__},
        "api_version": GA,
        "root": "HostedAgentDefinition",
        "create_version_body": body,
        "update_details_body": patch,
        **description,
    }


@functools.cache
def preview_schema() -> dict[str, Any]:
    """azure-ai-projects 2.0.0b3's models, from the checked-in fixture."""
    return json.loads(PREVIEW_FIXTURE.read_text())


def schema_for(api: str) -> dict[str, Any]:
    return ga_schema() if api == GA else preview_schema()


# --- validation -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One reason the service rejects a body: the field, an OpenAI-style code, a message."""

    param: str
    code: str  # missing_required_parameter | unknown_parameter | invalid_type | invalid_value
    message: str

    def __str__(self) -> str:
        return f"{self.param}: {self.message}"


def _type_name(spec: Any) -> str:
    if isinstance(spec, str):
        return spec
    if "model" in spec:
        return f"object ({spec['model']})"
    if "list" in spec:
        return f"array of {_type_name(spec['list'])}"
    if "dict" in spec:
        return f"object of {_type_name(spec['dict'])}"
    if "literal" in spec:
        return " or ".join(json.dumps(v) for v in spec["literal"])
    if "enum" in spec:
        return "string"
    return " or ".join(_type_name(s) for s in spec["union"])


def value_problems(schema: dict, spec: Any, value: Any, where: str, *, request: bool) -> list:
    """What is wrong with ``value`` as the described type ``spec`` (see ``describe_models``)."""
    wrong = [Problem(where, "invalid_type", f"expected {_type_name(spec)}, got {excerpt(value)}")]
    if spec == "any":
        return []
    if spec == "string" or spec == "date-time":
        return [] if isinstance(value, str) else wrong
    if spec == "boolean":
        return [] if isinstance(value, bool) else wrong
    if spec in ("integer", "unix-timestamp"):
        return [] if isinstance(value, int) and not isinstance(value, bool) else wrong
    if spec == "number":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return [] if ok else wrong
    if "literal" in spec:
        if value in spec["literal"]:
            return []
        message = f"must be {_type_name(spec)}, got {excerpt(value)}"
        return [Problem(where, "invalid_value", message)]
    if "enum" in spec:
        if not isinstance(value, str):
            return wrong
        known = schema["enums"].get(spec["enum"], [])
        if spec["open"] or value in known:
            return []
        return [Problem(where, "invalid_value", f"must be one of {known}, got {excerpt(value)}")]
    if "list" in spec:
        if not isinstance(value, list):
            return wrong
        problems = []
        for index, item in enumerate(value):
            problems += value_problems(
                schema, spec["list"], item, f"{where}[{index}]", request=request
            )
        return problems
    if "dict" in spec:
        if not isinstance(value, dict):
            return wrong
        problems = []
        for key, item in value.items():
            problems += value_problems(
                schema, spec["dict"], item, dotted(where, key), request=request
            )
        return problems
    if "model" in spec:
        return model_problems(schema, spec["model"], value, where, request=request)
    for branch in spec["union"]:
        if not value_problems(schema, branch, value, where, request=request):
            return []
    return wrong


def _resolve(schema: dict, name: str, value: dict, where: str) -> tuple[str, list[Problem]]:
    """Follow discriminators (``kind``, ``type``) from a base model to the concrete one."""
    while True:
        entry = schema["models"][name]
        discriminator = entry.get("discriminator")
        if not discriminator or discriminator["field"] not in value:
            return name, []
        tag = value[discriminator["field"]]
        target = discriminator["mapping"].get(tag) if isinstance(tag, str) else None
        if target is None:
            param = dotted(where, discriminator["field"])
            known = sorted(discriminator["mapping"])
            message = f"must be one of {known}, got {excerpt(tag)}"
            return name, [Problem(param, "invalid_value", message)]
        if target == name:
            return name, []
        if target not in schema["models"]:
            param = dotted(where, discriminator["field"])
            message = (
                f"{excerpt(tag)} is not a hosted agent definition (only kind 'hosted' is served)"
            )
            return name, [Problem(param, "invalid_value", message)]
        name = target


def model_problems(schema: dict, name: str, value: Any, where: str, *, request: bool) -> list:
    """What is wrong with ``value`` as the SDK model ``name``: not an object, unknown fields,
    missing required fields, read-only fields in a request, wrong types (recursively).
    Answers (``request=False``) may carry fields the model does not know, as SDKs tolerate."""
    if not isinstance(value, dict):
        return [Problem(where, "invalid_type", f"expected an object, got {excerpt(value)}")]
    name, problems = _resolve(schema, name, value, where)
    if problems:
        return problems
    fields = schema["models"][name]["fields"]
    for key in value:
        if key not in fields and request:
            message = f"unknown parameter: {name} has no field {key!r}"
            problems.append(Problem(dotted(where, key), "unknown_parameter", message))
    for key, info in fields.items():
        param = dotted(where, key)
        present = value.get(key) is not None
        if info["required"] and not present and not (request and info["read_only"]):
            problems.append(
                Problem(param, "missing_required_parameter", f"{name}.{key} is required")
            )
        elif present and request and info["read_only"]:
            message = f"{name}.{key} is read-only and must not be sent"
            problems.append(Problem(param, "unknown_parameter", message))
        elif present:
            problems += value_problems(schema, info["type"], value[key], param, request=request)
    return problems


def _ga_round_trip_problems(definition: Any) -> list[Problem]:
    """Let azure-ai-projects itself judge the GA definition: deserialize it as an
    ``AgentDefinition`` (which must come out a ``HostedAgentDefinition``), read every field
    through the SDK, rebuild the object from its known fields only and re-serialize it the way
    ``create_version`` does. Any difference from the input is a field the SDK does not know, a
    read-only field, or a value the SDK had to coerce (a wrong type)."""
    from azure.ai.projects import models

    if not isinstance(definition, dict):
        return [Problem("definition", "invalid_type", "expected an object")]
    return _sdk_round_trip_problems(
        definition, "AgentDefinition", "definition", expected=models.HostedAgentDefinition
    )


def _sdk_round_trip_problems(
    value: Any, model: str, where: str, *, expected: type | None = None
) -> list[Problem]:
    """The round trip above for any azure-ai-projects model ``model`` (a JSON object sent as
    it, e.g. ``AgentEndpointConfig``); ``expected`` is the class a polymorphic base must
    deserialize to."""
    from azure.ai.projects import models
    from azure.ai.projects._utils.model_base import Model, SdkJSONEncoder, _deserialize

    if not isinstance(value, dict):
        return [Problem(where, "invalid_type", "expected an object")]
    try:
        obj = _deserialize(getattr(models, model), copy.deepcopy(value))
    except Exception as exc:  # the SDK's own deserializer refused it
        return [Problem(where, "invalid_value", f"azure-ai-projects: {exc}")]
    if expected is not None and type(obj) is not expected:
        kind = excerpt(value.get("kind"))
        message = f"kind {kind} deserializes to {type(obj).__name__}, not {expected.__name__}"
        return [Problem(dotted(where, "kind"), "invalid_value", message)]
    problems: list[Problem] = []

    def rebuild(value: Any, where: str) -> Any:
        if isinstance(value, Model):
            kwargs = {}
            for attr, rest_field in type(value)._attr_to_rest_field.items():
                if rest_field._rest_name not in value:
                    continue
                param = dotted(where, rest_field._rest_name)
                try:
                    kwargs[attr] = rebuild(getattr(value, attr), param)
                except Exception as exc:
                    problems.append(Problem(param, "invalid_type", f"azure-ai-projects: {exc}"))
            return type(value)(**kwargs)
        if isinstance(value, list):
            return [rebuild(item, f"{where}[{i}]") for i, item in enumerate(value)]
        if isinstance(value, dict):
            return {key: rebuild(item, dotted(where, key)) for key, item in value.items()}
        return value

    rebuilt = rebuild(obj, where)
    back = json.loads(json.dumps(rebuilt, cls=SdkJSONEncoder, exclude_readonly=True))
    for param, sent, kept in differences(value, back, where):
        if kept is MISSING:
            message = "not kept by azure-ai-projects (unknown or read-only field)"
            problems.append(Problem(param, "unknown_parameter", message))
        else:
            message = f"azure-ai-projects turns {excerpt(sent)} into {excerpt(kept)} (wrong type)"
            problems.append(Problem(param, "invalid_type", message))
    return problems


# --- the service's own rules ----------------------------------------------------------------------


def name_problems(name: str, param: str = "agent_name") -> list[Problem]:
    if NAME_RULE.match(name):
        return []
    message = (
        f"invalid agent name {name!r}: 1-63 characters, letters, digits and hyphens, starting "
        "and ending with a letter or digit"
    )
    return [Problem(param, "invalid_value", message)]


def metadata_problems(metadata: Any, param: str = "metadata") -> list[Problem]:
    if not isinstance(metadata, dict):
        return []  # the model check reports the type
    problems = []
    if len(metadata) > METADATA_MAX_PAIRS:
        message = f"at most {METADATA_MAX_PAIRS} pairs are allowed, got {len(metadata)}"
        problems.append(Problem(param, "invalid_value", message))
    for key, value in metadata.items():
        if len(key) > METADATA_MAX_KEY:
            message = (
                f"keys are at most {METADATA_MAX_KEY} characters, {key[:20]!r}... has {len(key)}"
            )
            problems.append(Problem(dotted(param, key), "invalid_value", message))
        if isinstance(value, str) and len(value) > METADATA_MAX_VALUE:
            message = f"values are at most {METADATA_MAX_VALUE} characters, got {len(value)}"
            problems.append(Problem(dotted(param, key), "invalid_value", message))
    return problems


def _quantity(text: Any, unit: str = "") -> Decimal | None:
    if not isinstance(text, str) or not text.endswith(unit):
        return None
    number = text[: len(text) - len(unit)] if unit else text
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)?", number):
        return None
    try:
        return Decimal(number)
    except InvalidOperation:
        return None


def resource_problems(definition: dict, where: str = "definition") -> list[Problem]:
    cpu, memory = definition.get("cpu"), definition.get("memory")
    if not isinstance(cpu, str) or not isinstance(memory, str):
        return []  # missing or mistyped: the model check reports it
    pairs = ", ".join(f"{c.normalize()}/{m.normalize()}Gi" for c, m in CPU_MEMORY_PAIRS.items())
    vcpu, gib = _quantity(cpu), _quantity(memory, "Gi")
    if vcpu is None or vcpu not in CPU_MEMORY_PAIRS:
        message = f"cpu {cpu!r} is not an allowed size; allowed cpu/memory pairs: {pairs}"
        return [Problem(dotted(where, "cpu"), "invalid_value", message)]
    if gib is None or gib != CPU_MEMORY_PAIRS[vcpu]:
        message = (
            f"memory {memory!r} does not pair with cpu {cpu!r} (expected "
            f"{CPU_MEMORY_PAIRS[vcpu].normalize()}Gi); allowed pairs: {pairs}"
        )
        return [Problem(dotted(where, "memory"), "invalid_value", message)]
    return []


def environment_problems(definition: dict, where: str = "definition") -> list[Problem]:
    variables = definition.get("environment_variables")
    if not isinstance(variables, dict):
        return []
    param = dotted(where, "environment_variables")
    return [
        Problem(
            dotted(param, name),
            "invalid_value",
            f"invalid environment variable name {name!r}: letters, digits and underscores, "
            "not starting with a digit",
        )
        for name in variables
        if not ENV_NAME_RULE.match(name)
    ]


def image_problems(image: Any, param: str) -> list[Problem]:
    if not isinstance(image, str) or IMAGE_RULE.match(image):
        return []
    return [Problem(param, "invalid_value", f"{image!r} is not a valid container image reference")]


def protocol_problems(records: Any, param: str, known: list[str] | tuple[str, ...]) -> list:
    problems = []
    for index, record in enumerate(records if isinstance(records, list) else []):
        protocol = record.get("protocol") if isinstance(record, dict) else None
        if isinstance(protocol, str) and protocol not in known:
            message = f"unknown protocol {protocol!r}; known protocols: {list(known)}"
            problems.append(Problem(f"{param}[{index}].protocol", "invalid_value", message))
    return problems


def rule_problems(api: str, definition: Any, where: str = "definition") -> list[Problem]:
    """The service's rules for a hosted definition beyond the SDK's types."""
    if not isinstance(definition, dict):
        return []
    problems = resource_problems(definition, where) + environment_problems(definition, where)
    if api == GA:
        container = definition.get("container_configuration")
        code = definition.get("code_configuration")
        if container is None and code is None:
            message = "exactly one of container_configuration and code_configuration is required"
            problems.append(
                Problem(
                    dotted(where, "container_configuration"), "missing_required_parameter", message
                )
            )
        elif code is not None:
            message = (
                "code_configuration (zip deploys) is not served by this contract; an image deploy "
                "sets container_configuration only"
                if container is None
                else "container_configuration and code_configuration are mutually exclusive"
            )
            problems.append(Problem(dotted(where, "code_configuration"), "invalid_value", message))
        if isinstance(container, dict):
            param = dotted(where, "container_configuration.image")
            problems += image_problems(container.get("image"), param)
        param = dotted(where, "protocol_versions")
        known = ga_schema()["enums"]["AgentEndpointProtocol"]
        problems += protocol_problems(definition.get("protocol_versions"), param, known)
    else:
        problems += image_problems(definition.get("image"), dotted(where, "image"))
        known = preview_schema()["enums"]["AgentProtocol"]
        param = dotted(where, "container_protocol_versions")
        problems += protocol_problems(definition.get("container_protocol_versions"), param, known)
    return problems


# --- the public checks ----------------------------------------------------------------------------


def definition_problems(api: str, definition: Any, *, rules: bool = True) -> list[Problem]:
    schema = schema_for(api)
    problems = model_problems(schema, "AgentDefinition", definition, "definition", request=True)
    if api == GA:
        problems += _ga_round_trip_problems(definition)
    if rules:
        problems += rule_problems(api, definition)
    return _unique(problems)


def create_version_problems(api: str, body: Any, *, rules: bool = True) -> list[Problem]:
    """Everything the service (of generation ``api``) would reject in a create-version body."""
    schema = schema_for(api)
    if not isinstance(body, dict):
        return [Problem("body", "invalid_type", f"expected a JSON object, got {excerpt(body)}")]
    problems = []
    fields = schema["create_version_body"]["fields"]
    for key in body:
        if key not in fields:
            message = f"unknown parameter {key!r}; the body has {sorted(fields)}"
            problems.append(Problem(key, "unknown_parameter", message))
    for key, info in fields.items():
        if key == "definition":
            continue
        if info["required"] and body.get(key) is None:
            problems.append(Problem(key, "missing_required_parameter", f"{key} is required"))
        elif body.get(key) is not None:
            problems += value_problems(schema, info["type"], body[key], key, request=True)
    if body.get("definition") is None:
        problems.append(
            Problem("definition", "missing_required_parameter", "definition is required")
        )
    else:
        problems += definition_problems(api, body["definition"], rules=rules)
    if rules:
        problems += metadata_problems(body.get("metadata"))
        description = body.get("description")
        if isinstance(description, str) and len(description) > DESCRIPTION_MAX:
            message = f"at most {DESCRIPTION_MAX} characters, got {len(description)}"
            problems.append(Problem("description", "invalid_value", message))
    return _unique(problems)


def _unique(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[str, str]] = set()
    out = []
    for problem in problems:
        if (problem.param, problem.code) not in seen:
            seen.add((problem.param, problem.code))
            out.append(problem)
    return out


def _check(problems: list[Problem], what: str) -> None:
    if problems:
        raise AssertionError(f"{what} rejected: " + "; ".join(str(p) for p in problems))


def check_ga_definition(definition: Any, *, rules: bool = True) -> None:
    """Raise AssertionError (naming the fields) unless the GA service would accept this
    ``HostedAgentDefinition`` JSON: checked by the installed azure-ai-projects and, with
    ``rules``, by the service's rules (cpu/memory pair, env var names, image ...)."""
    _check(definition_problems(GA, definition, rules=rules), "GA HostedAgentDefinition")


def check_preview_definition(definition: Any, *, rules: bool = True) -> None:
    """The same for the preview ``ImageBasedHostedAgentDefinition`` (azure-ai-projects 2.0.0b3,
    from tests/fixtures/azure_preview_models.json)."""
    _check(definition_problems(PREVIEW, definition, rules=rules), "preview definition")


def check_ga_create_version(body: Any, *, rules: bool = True) -> None:
    """Check a whole GA ``POST /agents/{name}/versions`` body (definition, metadata, ...)."""
    _check(create_version_problems(GA, body, rules=rules), "GA create-version body")


def check_preview_create_version(body: Any, *, rules: bool = True) -> None:
    """Check a whole preview ``POST /agents/{name}/versions`` body."""
    _check(create_version_problems(PREVIEW, body, rules=rules), "preview create-version body")


# --- PATCH /agents/{name}: a JSON merge patch of the agent's endpoint and card -------------------

# The SDK model each patchable field is checked as (``update_details`` keyword -> model).
PATCHABLE = {"agent_endpoint": "AgentEndpointConfig", "agent_card": "AgentCard"}
RULES_PARAM = "agent_endpoint.version_selector.version_selection_rules"


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: objects merge key by key, ``null`` deletes a key, anything else (arrays too)
    replaces the target whole."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def apply_patch(current: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """The agent's patchable fields after the merge patch ``body`` (unknown keys ignored)."""
    return merge_patch(current, {key: body[key] for key in body if key in PATCHABLE})


def selector_problems(endpoint: Any, versions: Any = None) -> list[Problem]:
    """The service's rules for a version selector beyond the SDK's types. ``versions`` (the
    agent's version names) also checks that each rule names one; None skips that."""
    selector = endpoint.get("version_selector") if isinstance(endpoint, dict) else None
    rules = selector.get("version_selection_rules") if isinstance(selector, dict) else None
    if not isinstance(rules, list):
        return []  # missing or mistyped: the model check reports it
    if not rules:
        return [Problem(RULES_PARAM, "invalid_value", "at least one rule is required")]
    problems = []
    total, serving, seen, counted = 0, 0, set(), True
    for index, rule in enumerate(rules):
        if not isinstance(rule, dict):
            counted = False
            continue
        param = f"{RULES_PARAM}[{index}]"
        share, version = rule.get("traffic_percentage"), rule.get("agent_version")
        counted = counted and isinstance(share, int) and not isinstance(share, bool)
        if isinstance(share, int) and not isinstance(share, bool):
            if not 0 <= share <= 100:
                message = f"traffic_percentage must be between 0 and 100, got {share}"
                problems.append(Problem(f"{param}.traffic_percentage", "invalid_value", message))
            total += share
            serving += share > 0
        if isinstance(version, str):
            if version in seen:
                message = f"agent version {version!r} is named by more than one rule"
                problems.append(Problem(f"{param}.agent_version", "invalid_value", message))
            seen.add(version)
            if versions is not None and version != LATEST and version not in versions:
                message = (
                    f"agent version {version!r} does not exist; the agent has "
                    f"{sorted(versions, key=_version_key)} (or {LATEST!r})"
                )
                problems.append(Problem(f"{param}.agent_version", "invalid_value", message))
    if counted and not problems and total != 100:
        message = f"traffic percentages must add up to 100, got {total}"
        problems.append(Problem(RULES_PARAM, "invalid_value", message))
    if not problems and serving > 1:
        message = "traffic splitting is not supported: one version receives all the traffic"
        problems.append(Problem(RULES_PARAM, "invalid_value", message))
    return problems


def patch_agent_problems(
    body: Any,
    current: dict[str, Any] | None = None,
    *,
    versions: Any = None,
    rules: bool = True,
) -> list[Problem]:
    """Everything the GA service would reject in a ``PATCH /agents/{name}`` body: unknown
    top-level keys (a version's definition is not patchable), then the merge of ``body`` into
    ``current`` (the agent's stored ``agent_endpoint``/``agent_card``), each checked as its SDK
    model (descriptions and azure-ai-projects' own round trip), and with ``rules`` the
    version selector's rules."""
    schema = ga_schema()
    if not isinstance(body, dict):
        return [Problem("body", "invalid_type", f"expected a JSON object, got {excerpt(body)}")]
    fields = schema["update_details_body"]["fields"]
    problems = [
        Problem(
            key,
            "unknown_parameter",
            f"unknown parameter {key!r}; a PATCH of the agent sets {sorted(fields)} (a new "
            "definition is a new version: POST /agents/{name}/versions)",
        )
        for key in body
        if key not in fields
    ]
    merged = apply_patch(current or {}, body)
    for key, info in fields.items():
        if merged.get(key) is None:
            continue
        problems += value_problems(schema, info["type"], merged[key], key, request=True)
        problems += _sdk_round_trip_problems(merged[key], PATCHABLE[key], key)
    if rules:
        problems += selector_problems(merged.get("agent_endpoint"), versions)
    return _unique(problems)


def check_ga_patch_agent(body: Any, *, rules: bool = True) -> None:
    """Check a GA ``PATCH /agents/{name}`` body on its own (merged into an agent with no
    endpoint settings yet; the version names are not checked)."""
    _check(patch_agent_problems(body, rules=rules), "GA PATCH /agents/{name} body")


def _version_key(name: str) -> tuple[int, str]:
    return (int(name), "") if name.isdigit() else (-1, name)


# --- state ----------------------------------------------------------------------------------------


@dataclass
class Recorded:
    """One request as the server saw it. ``path`` is relative to the project endpoint."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    status: int = 0
    served_by: str | None = None  # Responses calls: the version that served it


@dataclass
class Fault:
    status: int
    path_contains: str | None
    method: str | None
    headers: dict[str, str]
    body: Any
    remaining: int | None


@dataclass
class Container:
    """The preview era's per-version container (``containers/default``)."""

    status: str = "Stopped"
    min_replicas: int = 0
    max_replicas: int = 0
    error_message: str | None = None
    created_at: str = ""
    updated_at: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "object": "agent.container",
            "status": self.status,
            "min_replicas": self.min_replicas,
            "max_replicas": self.max_replicas,
            "error_message": self.error_message,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass
class Operation:
    """A preview container operation: NotStarted, InProgress for `polls` GETs, then done."""

    id: str
    agent: str
    version: str
    action: str  # start | update | stop | delete
    outcome: str  # Succeeded | Failed
    error: dict[str, str] | None
    polls_left: int
    no_op: bool = False  # e.g. start on a running container: done at once, nothing changes
    status: str = "NotStarted"


@dataclass
class Version:
    agent: str
    version: str
    definition: dict[str, Any]
    description: str | None
    metadata: dict[str, str]
    created_at: int
    outcome: str = "active"  # what it becomes: active | failed
    error: dict[str, str] | None = None
    status: str = "creating"  # GA only
    polls: int = 0  # GETs of this version so far
    container: Container | None = None  # preview only
    sessions: set[str] = field(default_factory=set)
    # What the log streams serve: {"console"|"system": [line, ...]}, {session id: [line, ...]}
    logs: dict[str, list[str]] = field(default_factory=dict)
    session_logs: dict[str, list[str]] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.agent}:{self.version}"

    @property
    def image(self) -> str:
        container = self.definition.get("container_configuration") or {}
        return container.get("image") or self.definition.get("image") or ""


@dataclass
class Agent:
    name: str
    versions: dict[str, Version] = field(default_factory=dict)
    next_version: int = 1
    operations: list[Operation] = field(default_factory=list)
    # What PATCH /agents/{name} set (GA): {"agent_endpoint": {...}, "agent_card": {...}}
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def latest(self) -> Version | None:
        return self.versions[max(self.versions, key=int)] if self.versions else None

    @property
    def selected(self) -> str | None:
        """The version name the endpoint's selector sends traffic to (None: the latest)."""
        endpoint = self.settings.get("agent_endpoint") or {}
        rules = (endpoint.get("version_selector") or {}).get("version_selection_rules") or []
        name = next((r["agent_version"] for r in rules if r["traffic_percentage"] > 0), None)
        return None if name == LATEST else name


# --- the server -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    handler: str

    @functools.cached_property
    def pattern(self) -> re.Pattern[str]:
        parts = re.split(r"(\{[a-z_]+\})", self.template)
        regex = "".join(
            f"(?P<{p[1:-1]}>[^/]+?)" if p.startswith("{") else re.escape(p) for p in parts
        )
        return re.compile(f"^{regex}$")


COMMON_ROUTES = [
    Route("POST", "/agents/{agent_name}/versions", "create_version"),
    Route("GET", "/agents/{agent_name}/versions", "list_versions"),
    Route("GET", "/agents/{agent_name}/versions/{agent_version}", "get_version"),
    Route("DELETE", "/agents/{agent_name}/versions/{agent_version}", "delete_version"),
    Route("GET", "/agents/{agent_name}", "get_agent"),
    Route("DELETE", "/agents/{agent_name}", "delete_agent"),
    Route("GET", "/agents", "list_agents"),
]
GA_ROUTES = [
    *COMMON_ROUTES,
    Route("PATCH", "/agents/{agent_name}", "patch_agent"),
    Route("POST", "/agents/{agent_name}/endpoint/protocols/openai/responses", "invoke_ga"),
    Route("GET", "/agents/{agent_name}/versions/{agent_version}/sessions/{session_id}:logstream",
          "session_logstream"),
]
_CONTAINER = "/agents/{agent_name}/versions/{agent_version}/containers/default"
# A container action's state while its operation runs, and after it succeeds.
DURING = {"start": "Starting", "update": "Updating", "stop": "Stopping", "delete": "Deleting"}
AFTER = {"start": "Running", "update": "Running", "stop": "Stopped", "delete": "Deleted"}
PREVIEW_ROUTES = [
    Route("POST", _CONTAINER + ":start", "container_start"),
    Route("POST", _CONTAINER + ":update", "container_update"),
    Route("POST", _CONTAINER + ":stop", "container_stop"),
    Route("POST", _CONTAINER + ":delete", "container_delete"),
    Route("GET", _CONTAINER + ":logstream", "container_logstream"),
    Route("GET", _CONTAINER + "/operations", "list_version_operations"),
    Route("GET", _CONTAINER, "get_container"),
    Route("GET", "/agents/{agent_name}/operations/{operation_id}", "get_operation"),
    Route("GET", "/agents/{agent_name}/operations", "list_operations"),
    *COMMON_ROUTES,
    Route("POST", "/openai/responses", "invoke_preview"),
]


class Reply(Exception):
    """An answer decided in the middle of a handler (errors, mostly)."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def api_error(
    status: int,
    code: str,
    message: str,
    *,
    param: str | None = None,
    type: str = "invalid_request_error",
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """The data plane's error body (azure-ai-projects ``ApiErrorResponse``)."""
    body = {
        "error": {
            "code": code,
            "message": message,
            "param": param,
            "type": type,
            "details": details or [],
            "additionalInfo": {"request_id": uuid.uuid4().hex},
        }
    }
    return Reply(status, body, headers)


def preview_feature_required(feature: str = PREVIEW_FEATURE, what: str = "Hosted agents") -> Reply:
    """The exact 403 of https://github.com/Azure/azure-dev/issues/8442 (for ``feature``)."""
    return api_error(
        403,
        "preview_feature_required",
        f"{what} is in preview. This operation requires the following opt-in preview "
        f"feature(s): {feature}. Include the 'Foundry-Features: {feature}' "
        "header in your request.",
        param="Foundry-Features",
    )


def _problems_reply(problems: list[Problem]) -> Reply:
    first = problems[0]
    details = [
        {"code": p.code, "message": p.message, "param": p.param, "type": "invalid_request_error"}
        for p in problems
    ]
    message = first.message if len(problems) == 1 else "; ".join(str(p) for p in problems)
    return api_error(400, first.code, message, param=first.param, details=details)


def _fault_reply(fault: Fault) -> Reply:
    headers = dict(fault.headers)
    if fault.body is not None:
        return Reply(fault.status, fault.body, headers)
    status = fault.status
    presets: dict[int, tuple[str, str, str]] = {
        401: (
            "unauthorized",
            "Access token is missing, invalid or expired.",
            "invalid_request_error",
        ),
        403: ("", "", ""),
        404: ("not_found", "The requested resource was not found.", "invalid_request_error"),
        409: (
            "conflict",
            "The request conflicts with the current state of the resource.",
            "invalid_request_error",
        ),
        429: (
            "rate_limit_exceeded",
            "Rate limit is exceeded. Try again in {retry} seconds.",
            "rate_limit_error",
        ),
        500: (
            "server_error",
            "The server had an error processing your request. Sorry about that! You can retry "
            "your request, or contact us if the error persists.",
            "server_error",
        ),
        502: ("bad_gateway", "Bad gateway.", "server_error"),
        503: (
            "service_unavailable",
            "The service is temporarily unable to process your request. Please try again later.",
            "server_error",
        ),
        504: ("gateway_timeout", "The operation timed out.", "server_error"),
    }
    if status == 403:
        reply = preview_feature_required()
        reply.headers.update(headers)
        return reply
    if status == 429:
        headers.setdefault("Retry-After", "1")
    code, message, kind = presets.get(
        status, ("error", f"The service answered {status}.", "server_error")
    )
    message = message.format(retry=headers.get("Retry-After", "1"))
    return api_error(status, code, message, type=kind, headers=headers)


class FoundryContract:
    """The contract server; ``start()``/``stop()`` or use it as a context manager."""

    def __init__(
        self,
        *,
        api: str = GA,
        require_features_header: bool = False,
        activation_polls: int = 2,
        project: str = "test-project",
        token: str | None = None,
        require_endpoint_header: bool = False,
    ) -> None:
        if api not in API_VERSIONS:
            raise ValueError(f"api must be one of {API_VERSIONS}, got {api!r}")
        self.api = api
        self.require_features_header = require_features_header
        self.require_endpoint_header = require_endpoint_header
        self.activation_polls = activation_polls
        self.project = project
        self.token = token or f"foundry-test-token-{uuid.uuid4().hex[:12]}"
        self.requests: list[Recorded] = []
        self.violations: list[str] = []
        self.agents: dict[str, Agent] = {}
        self.routes = GA_ROUTES if api == GA else PREVIEW_ROUTES
        self.upstream: str | None = None
        self.url = ""
        self._faults: Faults[Fault] = Faults()
        self._next_outcome: tuple[str, dict[str, str] | None] | None = None
        self._operation_ids = itertools.count(1)
        self._session_ids = itertools.count(1)
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None

    # --- what tests use -----------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"{self.url}/api/projects/{self.project}"

    @property
    def env(self) -> dict[str, str]:
        return {"AZURE_AI_ACCESS_TOKEN": self.token}

    def fail(
        self,
        status: int,
        *,
        path_contains: str | None = None,
        method: str | None = None,
        times: int | None = 1,
        headers: dict[str, str] | None = None,
        body: Any = None,
        after: int = 0,
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` (in the service's error
        shape for 401/403/404/409/429/500/502/503/504 unless ``body`` is given; 429 carries
        ``Retry-After: 1`` unless ``headers`` say otherwise). ``path_contains`` matches the path
        relative to the project endpoint (``/agents/a/versions``, ``...:start``); ``after``
        matching requests pass first."""
        self._faults.add(Fault(status, path_contains, method, dict(headers or {}), body, times),
                         after)

    def version_outcome(
        self, status: str = "active", error: str | dict[str, str] | None = None
    ) -> None:
        """What the next created version turns into: ``active``, or ``failed`` with ``error``
        (``"image_pull"``, ``"probe"``, ``"protocol"`` or a ``{"code", "message"}`` dict). In
        the preview generation the failure shows in the version's container start operation."""
        if status not in ("active", "failed"):
            raise ValueError("status is 'active' or 'failed'")
        if status == "failed":
            error = error or "probe"
            error = dict(VERSION_ERRORS[error]) if isinstance(error, str) else dict(error)
        with self._lock:
            self._next_outcome = (status, error if status == "failed" else None)

    def forward_responses_to(self, base_url: str) -> None:
        """Proxy Responses calls on the agent endpoint to ``{base_url}/responses``."""
        self.upstream = base_url.rstrip("/")

    def add_session(self, agent: str, version: str | None = None) -> str:
        """Open a session on a version (GA), as an invocation does; returns its id."""
        with self._lock:
            target = self._agent(agent)
            chosen = target.versions[version] if version else target.latest
            assert chosen is not None, f"agent {agent} has no versions"
            session = f"sess_{next(self._session_ids):04d}"
            chosen.sessions.add(session)
            return session

    def add_logs(
        self,
        agent: str,
        version: str,
        lines: list[str],
        *,
        session: str | None = None,
        kind: str = "console",
    ) -> None:
        """Lines the version's log stream serves: its container's ``kind`` log (preview), or
        one session's log (GA; the session is opened on the version if it is new)."""
        with self._lock:
            target = self._agent(agent).versions[version]
            if session is None:
                target.logs.setdefault(kind, []).extend(lines)
            else:
                target.sessions.add(session)
                target.session_logs.setdefault(session, []).extend(lines)

    def calls(self, method: str, path_contains: str = "") -> list[Recorded]:
        return [r for r in self.requests if r.method == method and path_contains in r.path]

    def served(self) -> list[str | None]:
        """The version that served each Responses call, in order; None for a refused one."""
        calls = [r for r in self.requests if r.method == "POST" and r.path.endswith("/responses")]
        return [r.served_by for r in calls]

    # --- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> FoundryContract:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> FoundryContract:
        self._server = serve(self._handle)
        self.url = url_of(self._server)
        return self

    def stop(self) -> None:
        shut(self._server)
        self._server = None

    # --- dispatch -----------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        raw = read_body(handler, headers)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        prefix = f"/api/projects/{self.project}"
        path = parts.path[len(prefix) :] if parts.path.startswith(prefix + "/") else parts.path
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = _INVALID_JSON
        record = Recorded(
            handler.command,
            path,
            query,
            headers,
            None if payload is _INVALID_JSON else payload,
        )
        with self._lock:
            self.requests.append(record)
        try:
            self._dispatch(handler, record, parts.path, raw, payload)
        except Reply as reply:
            self._send_json(handler, record, reply.status, reply.body, reply.headers)
        except Exception as exc:  # a bug of this server: say so rather than drop the connection
            self._violation(f"contract server error on {record.method} {record.path}: {exc!r}")
            reply = api_error(500, "server_error", f"contract server error: {exc!r}")
            self._send_json(handler, record, reply.status, reply.body, reply.headers)

    def _dispatch(
        self,
        handler: BaseHTTPRequestHandler,
        record: Recorded,
        full_path: str,
        raw: bytes,
        payload: Any,
    ) -> None:
        fault = self._take_fault(record)
        if fault is not None:
            raise _fault_reply(fault)
        if not full_path.startswith(f"/api/projects/{self.project}/"):
            self._violation(f"{record.method} {full_path}: not under the project endpoint")
            raise api_error(404, "not_found", f"Project not found for path {full_path}.")
        if record.headers.get("authorization") != f"Bearer {self.token}":
            raise api_error(
                401,
                "unauthorized",
                f"Access token is missing, invalid or expired. Use a token for {TOKEN_SCOPE}.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        route, params = self._route(record.method, record.path)
        api_version = record.query.get("api-version")
        if api_version is None:
            raise api_error(
                400,
                "missing_required_parameter",
                "Missing required query parameter: api-version",
                param="api-version",
            )
        if route is not None and route.handler == "invoke_ga" and api_version == PREVIEW:
            # agent-framework#5680: the agent endpoint does not exist in the preview version
            raise api_error(404, "not_found", "Resource not found.")
        if api_version != self.api:
            self._violation(f"{record.method} {record.path}: api-version {api_version!r}")
            raise api_error(
                400,
                "invalid_api_version",
                f"Unsupported api-version '{api_version}'. This contract serves '{self.api}'.",
                param="api-version",
            )
        if route is None:
            self._violation(f"{record.method} {record.path}: no such operation in {self.api}")
            raise api_error(404, "not_found", f"No route for {record.method} {record.path}.")
        if payload is _INVALID_JSON:
            raise api_error(400, "invalid_json", "The request body is not valid JSON.")
        if raw:
            self._check_content_type(record)
        getattr(self, f"_op_{route.handler}")(handler, record, params, payload)

    def _check_content_type(self, record: Recorded) -> None:
        """JSON bodies; the PATCH takes a merge patch (spec: ``patchAgentObject``). azd sends
        that PATCH as application/json, so the service takes it too, but not a correct client."""
        content_type = record.headers.get("content-type", "")
        wanted = MERGE_PATCH if record.method == "PATCH" else "application/json"
        if wanted in content_type:
            return
        if record.method == "PATCH" and "application/json" in content_type:
            self._violation(f"PATCH {record.path}: Content-Type {content_type}, not {MERGE_PATCH}")
            return
        raise api_error(
            415,
            "unsupported_media_type",
            f"Content-Type must be {wanted}.",
            param="Content-Type",
        )

    def _route(self, method: str, path: str) -> tuple[Route | None, dict[str, str]]:
        for route in self.routes:
            match = route.pattern.match(path)
            if match and route.method == method:
                return route, {k: unquote(v) for k, v in match.groupdict().items()}
        return None, {}

    def _take_fault(self, record: Recorded) -> Fault | None:
        return self._faults.take(
            lambda fault: (not fault.method or fault.method.upper() == record.method)
            and (not fault.path_contains or fault.path_contains in record.path)
        )

    def _violation(self, text: str) -> None:
        with self._lock:
            self.violations.append(text)

    # --- answers ------------------------------------------------------------------------------

    def _answer(
        self,
        handler: BaseHTTPRequestHandler,
        record: Recorded,
        model: str | None,
        payload: dict[str, Any],
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> None:
        if model is not None:
            schema = schema_for(self.api)
            for problem in model_problems(schema, model, payload, "", request=False):
                self._violation(f"this server's {model} answer: {problem}")
        self._send_json(handler, record, status, payload, headers)

    @staticmethod
    def _send_json(
        handler: BaseHTTPRequestHandler,
        record: Recorded,
        status: int,
        payload: Any,
        headers: dict[str, str] | None = None,
    ) -> None:
        record.status = status
        data = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("x-request-id", uuid.uuid4().hex)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _agent(self, name: str) -> Agent:
        agent = self.agents.get(name)
        if agent is None:
            raise api_error(404, "not_found", f"Agent '{name}' not found.", param="agent_name")
        return agent

    def _version(self, name: str, version: str) -> Version:
        found = self._agent(name).versions.get(version)
        if found is None:
            raise api_error(
                404,
                "not_found",
                f"Agent version '{name}:{version}' not found.",
                param="agent_version",
            )
        return found

    def _version_json(self, version: Version) -> dict[str, Any]:
        body: dict[str, Any] = {
            "object": "agent.version",
            "id": version.id,
            "name": version.agent,
            "version": version.version,
            "description": version.description,
            "created_at": version.created_at,
            "metadata": version.metadata,
            "definition": version.definition,
        }
        if body["description"] is None:
            del body["description"]
        if self.api == GA:
            body["status"] = version.status
            if version.status == "failed" and version.error:
                body["error"] = version.error
        return body

    def _agent_json(self, agent: Agent) -> dict[str, Any]:
        latest = agent.latest
        assert latest is not None
        body: dict[str, Any] = {
            "object": "agent",
            "id": agent.name,
            "name": agent.name,
            "versions": {"latest": self._version_json(latest)},
        }
        if self.api == GA:
            body["state"] = "enabled"
            body["configuration_state"] = "enabled"
            body.update(copy.deepcopy(agent.settings))
        return body

    @staticmethod
    def _page(items: list[Any], ids: list[str], query: dict[str, str]) -> dict[str, Any]:
        """OpenAI-style cursor paging: limit 1-100 (20), order asc|desc (desc), after, before."""
        limit_text = query.get("limit", "20")
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= 100:
            raise api_error(
                400, "invalid_value", "limit must be an integer from 1 to 100.", param="limit"
            )
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise api_error(400, "invalid_value", "order must be 'asc' or 'desc'.", param="order")
        pairs = list(zip(ids, items, strict=True))
        if order == "desc":
            pairs.reverse()
        if "after" in query:
            keys = [i for i, _ in pairs]
            pairs = pairs[keys.index(query["after"]) + 1 :] if query["after"] in keys else []
        if "before" in query:
            keys = [i for i, _ in pairs]
            pairs = pairs[: keys.index(query["before"])] if query["before"] in keys else []
        page = pairs[: int(limit_text)]
        return {
            "object": "list",
            "data": [item for _, item in page],
            "first_id": page[0][0] if page else None,
            "last_id": page[-1][0] if page else None,
            "has_more": len(pairs) > len(page),
        }

    def _force(self, record: Recorded) -> bool:
        if "force" not in record.query:
            return False
        if self.api == PREVIEW:
            self._violation(f"{record.path}: `force` is not a parameter of {PREVIEW}")
            return False
        value = record.query["force"]
        if value not in ("true", "false"):
            raise api_error(
                400, "invalid_value", f"force must be true or false, got '{value}'.", param="force"
            )
        return value == "true"

    # --- versions and agents ------------------------------------------------------------------

    def _op_create_version(self, handler, record, params, payload) -> None:
        name = params["agent_name"]
        problems = name_problems(name)
        if problems:
            raise _problems_reply(problems)
        definition = payload.get("definition") if isinstance(payload, dict) else None
        kind = definition.get("kind") if isinstance(definition, dict) else None
        if (
            self.api == GA
            and self.require_features_header
            and kind == "hosted"
            and PREVIEW_FEATURE not in _features(record.headers)
        ):
            raise preview_feature_required()
        problems = create_version_problems(self.api, payload)
        if problems:
            raise _problems_reply(problems)
        with self._lock:
            agent = self.agents.setdefault(name, Agent(name))
            outcome, error = self._next_outcome or ("active", None)
            self._next_outcome = None
            version = Version(
                agent=name,
                version=str(agent.next_version),
                definition=copy.deepcopy(payload["definition"]),
                description=payload.get("description"),
                metadata=dict(payload.get("metadata") or {}),
                created_at=int(time.time()),
                outcome=outcome,
                error=_format_error(error, payload["definition"]),
            )
            agent.next_version += 1
            if self.api == GA:
                version.status = "creating" if self.activation_polls > 0 else outcome
            else:
                now = _iso_now()
                version.container = Container(created_at=now, updated_at=now)
            agent.versions[version.version] = version
        self._answer(handler, record, "AgentVersionDetails", self._version_json(version))

    def _op_get_version(self, handler, record, params, payload) -> None:
        with self._lock:
            version = self._version(params["agent_name"], params["agent_version"])
            if self.api == GA and version.status == "creating":
                version.polls += 1
                if version.polls > self.activation_polls:
                    version.status = version.outcome
            body = self._version_json(version)
        self._answer(handler, record, "AgentVersionDetails", body)

    def _op_list_versions(self, handler, record, params, payload) -> None:
        with self._lock:
            agent = self._agent(params["agent_name"])
            ordered = sorted(agent.versions.values(), key=lambda v: int(v.version))
            page = self._page(
                [self._version_json(v) for v in ordered], [v.id for v in ordered], record.query
            )
        for item in page["data"]:
            for problem in model_problems(
                schema_for(self.api), "AgentVersionDetails", item, "", request=False
            ):
                self._violation(f"this server's list answer: {problem}")
        self._send_json(handler, record, 200, page)

    def _op_delete_version(self, handler, record, params, payload) -> None:
        force = self._force(record)
        with self._lock:
            version = self._version(params["agent_name"], params["agent_version"])
            if version.sessions and not force:
                raise _sessions_conflict(len(version.sessions), f"version '{version.id}'")
            agent = self.agents[version.agent]
            del agent.versions[version.version]
            if not agent.versions:
                del self.agents[agent.name]
        body = {
            "object": "agent.version.deleted",
            "name": version.agent,
            "version": version.version,
            "deleted": True,
        }
        self._answer(handler, record, "DeleteAgentVersionResponse", body)

    def _op_get_agent(self, handler, record, params, payload) -> None:
        with self._lock:
            body = self._agent_json(self._agent(params["agent_name"]))
        self._answer(handler, record, "AgentDetails", body)

    def _op_patch_agent(self, handler, record, params, payload) -> None:
        if self.require_endpoint_header and ENDPOINT_FEATURE not in _features(record.headers):
            raise preview_feature_required(ENDPOINT_FEATURE, "Agent endpoints")
        with self._lock:
            agent = self._agent(params["agent_name"])
            problems = patch_agent_problems(payload, agent.settings, versions=agent.versions)
            if problems:
                raise _problems_reply(problems)
            agent.settings = apply_patch(agent.settings, payload)
            selected = agent.versions.get(agent.selected or "")
            if selected is not None and selected.status != "active":
                self._violation(
                    f"PATCH {record.path}: traffic sent to version {selected.version} while it "
                    f"is {selected.status} (wait until it is active)"
                )
            body = self._agent_json(agent)
        self._answer(handler, record, "AgentDetails", body)

    def _op_delete_agent(self, handler, record, params, payload) -> None:
        force = self._force(record)
        with self._lock:
            agent = self._agent(params["agent_name"])
            sessions = sum(len(v.sessions) for v in agent.versions.values())
            if sessions and not force:
                raise _sessions_conflict(sessions, f"agent '{agent.name}'")
            del self.agents[agent.name]
        body = {"object": "agent.deleted", "name": agent.name, "deleted": True}
        self._answer(handler, record, "DeleteAgentResponse", body)

    def _op_list_agents(self, handler, record, params, payload) -> None:
        kind = record.query.get("kind")
        with self._lock:
            agents = [a for a in self.agents.values() if kind in (None, "hosted")]
            page = self._page(
                [self._agent_json(a) for a in agents], [a.name for a in agents], record.query
            )
        self._send_json(handler, record, 200, page)

    # --- preview containers ------------------------------------------------------------------

    def _replicas(self, payload: Any) -> tuple[int, int]:
        body = payload if payload is not None else {}
        if not isinstance(body, dict):
            raise api_error(400, "invalid_type", "The body must be a JSON object.")
        problems = [
            Problem(
                key,
                "unknown_parameter",
                f"unknown parameter {key!r}; the body has min_replicas and max_replicas",
            )
            for key in body
            if key not in ("min_replicas", "max_replicas")
        ]
        values = {}
        for key in ("min_replicas", "max_replicas"):
            value = body.get(key, 1)
            if not isinstance(value, int) or isinstance(value, bool):
                problems.append(
                    Problem(key, "invalid_type", f"expected an integer, got {excerpt(value)}")
                )
            elif value < 0:
                problems.append(Problem(key, "invalid_value", f"must be >= 0, got {value}"))
            values[key] = value
        if not problems and values["max_replicas"] < max(1, values["min_replicas"]):
            message = "max_replicas must be at least 1 and at least min_replicas"
            problems.append(Problem("max_replicas", "invalid_value", message))
        if problems:
            raise _problems_reply(problems)
        return values["min_replicas"], values["max_replicas"]

    def _container_action(self, handler, record, params, payload, action: str) -> None:
        replicas = self._replicas(payload) if action in ("start", "update") else None
        if action in ("stop", "delete") and payload is not None:
            self._violation(f"{record.path}: {action} takes no body")
        with self._lock:
            version = self._version(params["agent_name"], params["agent_version"])
            container = version.container
            assert container is not None
            no_op = (
                (action == "start" and container.status == "Running")
                or (action == "stop" and container.status in ("Stopped", "Deleted"))
                or (action == "update" and container.status != "Running")
            )
            failing = action == "start" and version.outcome == "failed"
            operation = Operation(
                id=f"op_{next(self._operation_ids):06d}",
                agent=version.agent,
                version=version.version,
                action=action,
                outcome="Failed" if failing else "Succeeded",
                error=_operation_error(version.error) if failing else None,
                polls_left=0 if no_op else self.activation_polls,
                no_op=no_op,
            )
            if replicas is not None and not no_op:
                container.min_replicas, container.max_replicas = replicas
            if not no_op:
                container.status = DURING[action]
                container.updated_at = _iso_now()
            if operation.polls_left == 0:
                self._finish(operation, version)
            self.agents[version.agent].operations.append(operation)
            body = self._operation_json(operation, version)
        location = (
            f"{self.endpoint}/agents/{operation.agent}/operations/{operation.id}"
            f"?api-version={PREVIEW}"
        )
        self._send_json(handler, record, 202, body, {"Operation-Location": location})

    def _op_container_start(self, handler, record, params, payload) -> None:
        self._container_action(handler, record, params, payload, "start")

    def _op_container_update(self, handler, record, params, payload) -> None:
        self._container_action(handler, record, params, payload, "update")

    def _op_container_stop(self, handler, record, params, payload) -> None:
        self._container_action(handler, record, params, payload, "stop")

    def _op_container_delete(self, handler, record, params, payload) -> None:
        self._container_action(handler, record, params, payload, "delete")

    def _finish(self, operation: Operation, version: Version) -> None:
        operation.status = operation.outcome
        container = version.container
        assert container is not None
        if operation.no_op:
            return
        if operation.outcome == "Failed":
            container.status = "Failed"
            container.error_message = (operation.error or {}).get("message")
        else:
            container.status = AFTER[operation.action]
            container.error_message = None
        container.updated_at = _iso_now()

    def _operation_json(self, operation: Operation, version: Version | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": operation.id,
            "agent_id": operation.agent,
            "agent_version_id": f"{operation.agent}:{operation.version}",
            "status": operation.status,
        }
        if operation.status == "Failed" and operation.error:
            body["error"] = operation.error
        if version is not None and version.container is not None:
            body["container"] = version.container.as_json()
        return body

    def _op_get_operation(self, handler, record, params, payload) -> None:
        with self._lock:
            agent = self._agent(params["agent_name"])
            operation = next((o for o in agent.operations if o.id == params["operation_id"]), None)
            if operation is None:
                raise api_error(
                    404, "not_found", f"Operation '{params['operation_id']}' not found."
                )
            version = agent.versions.get(operation.version)
            if operation.status in ("NotStarted", "InProgress"):
                operation.polls_left -= 1
                operation.status = "InProgress"
                if operation.polls_left < 0 and version is not None:
                    self._finish(operation, version)
            body = self._operation_json(operation, version)
        self._send_json(handler, record, 200, body)

    def _op_list_operations(self, handler, record, params, payload) -> None:
        with self._lock:
            agent = self._agent(params["agent_name"])
            ops = list(agent.operations)
            items = [self._operation_json(o, agent.versions.get(o.version)) for o in ops]
            page = self._page(items, [o.id for o in ops], record.query)
        self._send_json(handler, record, 200, page)

    def _op_list_version_operations(self, handler, record, params, payload) -> None:
        with self._lock:
            version = self._version(params["agent_name"], params["agent_version"])
            ops = [o for o in self.agents[version.agent].operations if o.version == version.version]
            items = [self._operation_json(o, version) for o in ops]
            page = self._page(items, [o.id for o in ops], record.query)
        self._send_json(handler, record, 200, page)

    def _op_get_container(self, handler, record, params, payload) -> None:
        with self._lock:
            version = self._version(params["agent_name"], params["agent_version"])
            assert version.container is not None
            body = version.container.as_json()
        self._send_json(handler, record, 200, body)

    # --- log streams --------------------------------------------------------------------------

    def _op_session_logstream(self, handler, record, params, payload) -> None:
        with self._lock:
            version = self._version(params["agent_name"], params["agent_version"])
            session = params["session_id"]
            if session not in version.sessions:
                raise api_error(
                    404, "not_found", f"Session '{session}' not found on '{version.id}'.",
                    param="session_id",
                )
            lines = list(version.session_logs.get(session, []))
        frames = "".join(f"event: log\ndata: {line}\n\n" for line in lines)
        self._send_stream(handler, record, "text/event-stream", [frames.encode()])

    def _op_container_logstream(self, handler, record, params, payload) -> None:
        kind = record.query.get("kind", "console")
        if kind not in ("console", "system"):
            raise api_error(400, "invalid_value", f"Invalid kind '{kind}'; use console or "
                            "system.", param="kind")
        tail = record.query.get("tail", "20")
        if not tail.isdigit() or not 1 <= int(tail) <= 300:
            raise api_error(400, "invalid_value", f"tail must be 1..300, got '{tail}'.",
                            param="tail")
        if record.query.get("follow", "false").lower() not in ("true", "false"):
            raise api_error(400, "invalid_value", "follow must be true or false.",
                            param="follow")
        with self._lock:
            version = self._version(params["agent_name"], params["agent_version"])
            if version.container is None or version.container.status in ("Stopped", "Deleted"):
                raise api_error(404, "not_found",
                                f"No running container for agent version '{version.id}'.")
            lines = version.logs.get(kind, [])[-int(tail):]
        self._send_stream(handler, record, "text/plain; charset=utf-8",
                          [f"{line}\n".encode() for line in lines])

    @staticmethod
    def _send_stream(
        handler: BaseHTTPRequestHandler, record: Recorded, content_type: str, chunks: list[bytes]
    ) -> None:
        """A chunked 200 (the service's log streams), ending after ``chunks``."""
        record.status = 200
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for chunk in chunks:
            if chunk:
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        handler.wfile.write(b"0\r\n\r\n")

    # --- invocation ---------------------------------------------------------------------------

    def _op_invoke_ga(self, handler, record, params, payload) -> None:
        if not isinstance(payload, dict):
            raise api_error(400, "invalid_type", "The body must be a JSON object.")
        with self._lock:
            agent = self._agent(params["agent_name"])
            selected = agent.selected
            version = agent.versions.get(selected) if selected else agent.latest
            if version is None:
                raise api_error(
                    404,
                    "not_found",
                    f"Agent version '{agent.name}:{selected}', which the agent endpoint's "
                    "version selector names, does not exist.",
                    param="agent_endpoint",
                )
            if version.status != "active":
                raise api_error(
                    409,
                    "agent_version_not_active",
                    f"Agent version '{version.id}' is {version.status}; it serves requests "
                    "once it is active.",
                )
            protocols = [
                p.get("protocol") for p in version.definition.get("protocol_versions") or []
            ]
            if "responses" not in protocols:
                raise api_error(
                    400,
                    "invalid_value",
                    f"Agent version '{version.id}' does not declare the responses protocol "
                    f"(protocol_versions: {protocols}).",
                    param="protocol_versions",
                )
            session = payload.get("agent_session_id")
            if not (isinstance(session, str) and session in version.sessions):
                session = f"sess_{next(self._session_ids):04d}"
                version.sessions.add(session)
            record.served_by = version.version
        self._forward(handler, record, payload, {"x-agent-session-id": session})

    def _op_invoke_preview(self, handler, record, params, payload) -> None:
        if not isinstance(payload, dict):
            raise api_error(400, "invalid_type", "The body must be a JSON object.")
        if "agent_reference" in payload:
            raise api_error(
                400,
                "unknown_parameter",
                f"Unknown parameter: 'agent_reference'. With api-version {PREVIEW} the agent "
                'is named by \'agent\': {"type": "agent_reference", "name": ...}.',
                param="agent_reference",
            )
        reference = payload.get("agent")
        if reference is None:
            raise api_error(
                400,
                "missing_required_parameter",
                'Missing required parameter: \'agent\' ({"type": "agent_reference", "name": ...}).',
                param="agent",
            )
        problems = model_problems(
            preview_schema(), "AgentReference", reference, "agent", request=True
        )
        if problems:
            raise _problems_reply(problems)
        with self._lock:
            agent = self._agent(reference["name"])
            version = (
                self._version(agent.name, reference["version"])
                if reference.get("version")
                else agent.latest
            )
            assert version is not None and version.container is not None
            if version.container.status != "Running":
                raise api_error(
                    409,
                    "container_not_running",
                    f"The container of agent version '{version.id}' is "
                    f"{version.container.status}; start it with containers/default:start.",
                )
            record.served_by = version.version
        self._forward(handler, record, payload, {})

    def _forward(
        self,
        handler: BaseHTTPRequestHandler,
        record: Recorded,
        payload: dict[str, Any],
        extra_headers: dict[str, str],
    ) -> None:
        if self.upstream is None:
            self._violation("a Responses call arrived but forward_responses_to() was never called")
            raise api_error(502, "bad_gateway", "No container to forward to.", type="server_error")
        target = urlsplit(self.upstream)
        connection = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=60)
        headers = {
            "Content-Type": "application/json",
            "Accept": record.headers.get("accept", "application/json"),
            "x-request-id": uuid.uuid4().hex,
            "x-agent-foundry-call-id": uuid.uuid4().hex,
            **extra_headers,
        }
        try:
            connection.request(
                "POST",
                f"{target.path}/responses",
                body=json.dumps(payload).encode(),
                headers=headers,
            )
            upstream = connection.getresponse()
        except OSError as exc:
            connection.close()
            raise api_error(
                424,
                "session_not_ready",
                f"The agent's container is not reachable ({exc}).",
                type="server_error",
            ) from None
        try:
            record.status = upstream.status
            content_type = upstream.getheader("content-type", "application/json")
            answer = [("Content-Type", content_type)]
            if "text/event-stream" in content_type:
                answer.append(("Cache-Control", "no-cache"))
            relay(handler, upstream, answer)
        finally:
            connection.close()


_INVALID_JSON = object()


def _features(headers: dict[str, str]) -> set[str]:
    return {part.strip() for part in headers.get("foundry-features", "").split(",") if part.strip()}


def _sessions_conflict(count: int, what: str) -> Reply:
    return api_error(
        409,
        "conflict",
        f"Cannot delete {what}: it has {count} active session(s). Set force=true to delete it "
        "together with its sessions.",
        param="force",
    )


def _format_error(error: dict[str, str] | None, definition: dict[str, Any]) -> dict | None:
    if error is None:
        return None
    container = definition.get("container_configuration") or {}
    image = container.get("image") or definition.get("image") or ""
    return {key: value.replace("{image}", image) for key, value in error.items()}


def _operation_error(error: dict[str, str] | None) -> dict[str, str]:
    error = error or VERSION_ERRORS["probe"]
    return {"code": error["code"], "type": "ContainerError", "message": error["message"]}


def _iso_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# --- the fixture ----------------------------------------------------------------------------------


def _require_sdk(api: str) -> None:
    reason = None
    if api == GA:
        try:
            import azure.ai.projects  # noqa: F401
        except ImportError:
            reason = (
                "azure-ai-projects is not installed (the Foundry contract checks GA bodies with "
                "it): pip install -e '.[test]'"
            )
    elif not PREVIEW_FIXTURE.is_file():
        reason = f"{PREVIEW_FIXTURE} is missing: run scripts/azure-preview-fixtures"
    if reason is not None:
        unavailable(reason)


@pytest.fixture
def foundry() -> Iterator[Callable[..., FoundryContract]]:
    """Start contract servers: ``foundry(api="v1" | "2025-11-15-preview",
    require_features_header=False, activation_polls=2)`` returns a running
    ``FoundryContract``; all stop after the test."""

    def start(
        api: str = GA,
        require_features_header: bool = False,
        activation_polls: int = 2,
        **config: Any,
    ) -> FoundryContract:
        _require_sdk(api)
        return FoundryContract(
            api=api,
            require_features_header=require_features_header,
            activation_polls=activation_polls,
            **config,
        ).start()

    yield from stopped_after(start)
