"""Azure AI Foundry hosted agents: the data-plane calls behind `actk deploy|status|delete azure`.

Both API generations, on the project endpoint
(``https://<resource>.services.ai.azure.com/api/projects/<project>``), with an Entra token
for ``https://ai.azure.com/.default``:

    api-version v1 (GA; azure-ai-projects 2.3+)
      POST   agents/{name}/versions                  HostedAgentDefinition -> AgentVersion
      GET    agents/{name}/versions?limit&order      {"data": [AgentVersion...], "has_more"}
      GET    agents/{name}/versions/{v}              AgentVersion with status creating|active|
                                                     failed|deleting|deleted
      DELETE agents/{name}/versions/{v}[?force=true] 409 while sessions are active
      DELETE agents/{name}[?force=true]
      GET    agents/{name}                           AgentDetails: versions.latest, agent_endpoint
      PATCH  agents/{name}    application/merge-patch+json, which version the endpoint serves:
               {"agent_endpoint": {"version_selector": {"version_selection_rules": [
                 {"type": "FixedRatio", "agent_version": v, "traffic_percentage": 100}]}}}
      POST   agents/{name}/endpoint/protocols/openai/responses      the agent's Responses API

    api-version 2025-11-15-preview (the initial preview; azure-ai-projects 2.0.0b3)
      the same version routes, with ImageBasedHostedAgentDefinition and no version status, plus
      POST   agents/{name}/versions/{v}/containers/default:start   {min_replicas, max_replicas}
                                                     -> 202 + Operation-Location + operation
      POST   agents/{name}/versions/{v}/containers/default:stop
      GET    agents/{name}/versions/{v}/containers/default         container status
      GET    agents/{name}/operations/{id}          NotStarted|InProgress|Succeeded|Failed
      POST   openai/responses                       {"agent": {"type": "agent_reference", ...}}

Every call goes through :class:`~toolkit.cloud.http.CloudHttp` (429 and 503 after Retry-After,
5xx replayed only when safe, the token and every named secret out of logs and errors). A failed
call becomes one :class:`CloudError` whose hint names the fix for the known failures: the
preview opt-in header, roles, image pulls, readiness probes, protocol versions, throttling.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

from toolkit import __version__
from toolkit.cloud.http import CloudHttp, RetryPolicy, retry_after
from toolkit.errors import CloudError
from toolkit.redact import REDACTED

if TYPE_CHECKING:
    import httpx

GA_API = "v1"
PREVIEW_API = "2025-11-15-preview"
FEATURES_HEADER = "Foundry-Features"
HOSTED_AGENTS_FEATURE = "HostedAgents=V1Preview"
SERVICE = "Azure AI Foundry"
JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"  # PATCH agents/{name} (spec: patchAgentObject)
FIXED_RATIO = "FixedRatio"  # the one VersionSelectionRule type (azure-ai-projects 2.10)
# A preview opt-in the service names in a 403: "...feature(s): AgentEndpoints=V1Preview..."
PREVIEW_FEATURE = re.compile(r"\b([A-Za-z0-9]+=V\d+Preview)\b")
# GA version statuses; the preview has none (its container and operations have their own).
VERSION_TERMINAL = frozenset({"active", "failed", "deleting", "deleted"})
OPERATION_TERMINAL = frozenset({"succeeded", "failed", "canceled", "cancelled"})
CONTAINER_RUNNING = frozenset({"running", "started"})
REQUEST_ID_HEADERS = ("x-request-id", "apim-request-id", "x-ms-request-id", "request-id")
MAX_SERVICE_MESSAGE = 500

ROLE_HINT = (
    "your identity needs the Azure AI Project Manager (or Foundry Project Manager) role on the "
    "project; check with `az role assignment list --assignee <you> --scope <project id>`"
)
TOKEN_HINT = (
    "the token must be for https://ai.azure.com and current: `az account get-access-token "
    "--resource https://ai.azure.com --query accessToken -o tsv` into AZURE_AI_ACCESS_TOKEN, or "
    "unset it and sign in again (az login)"
)
FEATURES_HINT = (
    f"this project still gates hosted agents behind a preview opt-in: pass --features "
    f"{HOSTED_AGENTS_FEATURE}, or set targets.azure.foundry_features: {HOSTED_AGENTS_FEATURE} "
    "in agent.yaml"
)
PULL_HINT = (
    "Foundry could not pull the image: give the project's managed identity (and the Foundry "
    "account's) AcrPull on the registry, plus Container Registry Repository Reader for "
    "ABAC-mode registries, and enable the registry's azureADAuthenticationAsArmPolicy "
    "(az acr config authentication-as-arm update -r <registry> --status enabled)"
)
PROBE_HINT = (
    "the container never became ready: it must listen on port 8088 and answer GET /readiness "
    "with 200 (check CMD, PORT and start-up errors with `actk smoke`, which runs the same "
    "checks locally)"
)
PROTOCOL_HINT = (
    "the agent's server speaks another protocol version: set targets.azure.protocol_version "
    "to the one its server library expects ('1.0.0' for azure-ai-agentserver-responses and the "
    "actk template on api v1; 'v1' on 2025-11-15-preview)"
)
REGION_HINT = (
    "hosted agents are not available in this project's region: use a Foundry project in a "
    "supported region"
)
PLATFORM_HINT = (
    "the image must be linux/amd64: rebuild with `actk build --platform linux/amd64` and push"
)


# --- values -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One request as data: what ``--dry-run`` prints is what :meth:`FoundryClient.send` sends."""

    method: str
    path: str  # relative to the project endpoint, already quoted
    query: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    purpose: str = ""  # for error messages: "create version 3 of support-agent"
    idempotent: bool | None = None
    content_type: str = JSON  # of the body, when there is one


@dataclass(frozen=True)
class AgentVersion:
    """The parts of an ``AgentVersion`` (``agent.version``) the toolkit reads."""

    name: str
    version: str
    status: str | None  # v1 only; compare lower-cased
    created_at: int | None
    definition: dict[str, Any]
    description: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, body: Any) -> AgentVersion:
        if not isinstance(body, dict) or body.get("version") in (None, ""):
            raise CloudError(
                "Foundry answered with something that is not an agent version",
                hint="check targets.azure.project_endpoint: it must be the project endpoint, "
                "https://<resource>.services.ai.azure.com/api/projects/<project>",
            )
        error = body.get("error")
        return cls(
            name=str(body.get("name") or ""),
            version=str(body["version"]),
            status=str(body["status"]).lower() if body.get("status") else None,
            created_at=body.get("created_at") if isinstance(body.get("created_at"), int) else None,
            definition=body.get("definition") if isinstance(body.get("definition"), dict) else {},
            description=body.get("description"),
            metadata=body.get("metadata") if isinstance(body.get("metadata"), dict) else {},
            error=error if isinstance(error, dict) else None,
        )

    @property
    def image(self) -> str | None:
        definition = self.definition
        container = definition.get("container_configuration")
        if isinstance(container, dict) and container.get("image"):
            return str(container["image"])
        return str(definition["image"]) if definition.get("image") else None

    @property
    def reason(self) -> str | None:
        """Why the version failed, as the service says it (None when it says nothing)."""
        if self.error:
            return error_text(self.error)
        for key in ("status_reason", "error_message", "status_message"):
            value = self.definition.get(key)
            if isinstance(value, str) and value:
                return value
        return None


@dataclass(frozen=True)
class Operation:
    """A container operation of the initial preview."""

    id: str
    status: str  # lower-cased: notstarted, inprogress, succeeded, failed
    error: dict[str, Any] | None = None
    container: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, body: Any, fallback_id: str = "") -> Operation:
        if not isinstance(body, dict):
            body = {}
        error = body.get("error")
        container = body.get("container")
        return cls(
            id=str(body.get("id") or fallback_id),
            status=str(body.get("status") or "NotStarted").lower(),
            error=error if isinstance(error, dict) and error else None,
            container=container if isinstance(container, dict) else None,
        )

    @property
    def finished(self) -> bool:
        return self.status in OPERATION_TERMINAL


@dataclass(frozen=True)
class Container:
    """``containers/default`` of a preview version."""

    status: str  # lower-cased
    min_replicas: int | None = None
    max_replicas: int | None = None
    error_message: str | None = None

    @classmethod
    def from_json(cls, body: Any) -> Container:
        body = body if isinstance(body, dict) else {}
        return cls(
            status=str(body.get("status") or "unknown").lower(),
            min_replicas=body.get("min_replicas"),
            max_replicas=body.get("max_replicas"),
            error_message=body.get("error_message") or None,
        )

    @property
    def running(self) -> bool:
        return self.status in CONTAINER_RUNNING


@dataclass(frozen=True)
class TrafficRule:
    """One ``VersionSelectionRule`` of an agent endpoint's version selector."""

    version: str  # agent_version
    percentage: int  # traffic_percentage
    type: str = FIXED_RATIO

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "percentage": self.percentage}


@dataclass(frozen=True)
class AgentDetails:
    """The parts of an agent (``agent``, ``GET agents/{name}``) the toolkit reads: its latest
    version and the ``agent_endpoint`` whose version selector picks the version that serves."""

    name: str
    latest: str | None
    endpoint: dict[str, Any] = field(default_factory=dict)  # {} when none is set

    @classmethod
    def from_json(cls, body: Any) -> AgentDetails:
        if not isinstance(body, dict) or not body.get("name"):
            raise CloudError(
                "Foundry answered with something that is not an agent",
                hint="check targets.azure.project_endpoint: it must be the project endpoint, "
                "https://<resource>.services.ai.azure.com/api/projects/<project>",
            )
        versions = body.get("versions")
        latest = versions.get("latest") if isinstance(versions, dict) else None
        version = latest.get("version") if isinstance(latest, dict) else None
        endpoint = body.get("agent_endpoint")
        return cls(
            name=str(body["name"]),
            latest=str(version) if version not in (None, "") else None,
            endpoint=endpoint if isinstance(endpoint, dict) else {},
        )

    @property
    def rules(self) -> list[TrafficRule]:
        """The version selector's rules; empty when none is set (the service then serves the
        latest version)."""
        selector = self.endpoint.get("version_selector")
        items = selector.get("version_selection_rules") if isinstance(selector, dict) else None
        rules = []
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, dict) or item.get("agent_version") in (None, ""):
                continue
            percentage = item.get("traffic_percentage")
            rules.append(
                TrafficRule(
                    version=str(item["agent_version"]),
                    percentage=percentage if isinstance(percentage, int) else 0,
                    type=str(item.get("type") or ""),
                )
            )
        return rules

    def pins(self, version: str) -> bool:
        """Whether the selector already sends all traffic to ``version``, named as such
        (``@latest`` or no selector does not count: a newer version would take the traffic)."""
        serving = [rule for rule in self.rules if rule.percentage > 0]
        if len(serving) != 1:
            return False
        rule = serving[0]
        fixed = rule.type.lower() == FIXED_RATIO.lower()
        return fixed and rule.version == version and rule.percentage == 100


def traffic_body(version: str) -> dict[str, Any]:
    """The merge-patch that sends all of the agent endpoint's traffic to ``version``: the
    ``PatchAgentRequest`` of the spec, as azure-ai-projects' ``agents.update_details(
    agent_endpoint=AgentEndpointConfig(version_selector=VersionSelector(...)))`` serializes it.
    Only ``version_selector`` is named, so the endpoint's protocols and authorization schemes
    stay as they are; its rule list is replaced whole (RFC 7396 replaces arrays)."""
    rule = {"type": FIXED_RATIO, "agent_version": version, "traffic_percentage": 100}
    return {"agent_endpoint": {"version_selector": {"version_selection_rules": [rule]}}}


# --- errors -----------------------------------------------------------------------------------


def error_text(error: Mapping[str, Any]) -> str:
    """``code: message`` of a service error object (``{code, message, type, param}``)."""
    code = error.get("code") or error.get("type")
    message = str(error.get("message") or "").strip()
    inner = error.get("innererror") or error.get("inner_error")
    if isinstance(inner, dict) and inner.get("code") and inner.get("code") != code:
        message += f" ({inner['code']})"
    if not message:
        details = error.get("details")
        if isinstance(details, list) and details and isinstance(details[0], dict):
            return error_text(details[0])
    text = f"{code}: {message}" if code and message else str(code or message or "")
    return text[:MAX_SERVICE_MESSAGE]


def parse_error(response: httpx.Response) -> tuple[str | None, str]:
    """(code, message) of an error answer: ``{"error": {...}}``, a bare ``{code, message}``
    (gateways), or the start of the body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return (error.get("code") or error.get("type")), error_text(error)
        if isinstance(error, str):
            return None, error[:MAX_SERVICE_MESSAGE]
        if body.get("message"):
            code = body.get("code") or body.get("statusCode")
            text = str(body["message"])[:MAX_SERVICE_MESSAGE]
            return (str(code) if code else None), (f"{code}: {text}" if code else text)
    text = " ".join(response.text.split())[:MAX_SERVICE_MESSAGE]
    return None, text or response.reason_phrase


def failure_hint(text: str | None) -> str | None:
    """The fix for a known reason a version, operation or container failed."""
    lowered = (text or "").lower()
    if not lowered:
        return None
    if "preview_feature_required" in lowered or "foundry-features" in lowered:
        return FEATURES_HINT
    if any(word in lowered for word in ("imageerror", "pull", "manifest unknown", "unauthorized:")):
        return PULL_HINT
    if any(word in lowered for word in ("probe", "readiness", "liveness", "startup")):
        return PROBE_HINT
    if "protocol" in lowered and "version" in lowered:
        return PROTOCOL_HINT
    if "region" in lowered and ("not enabled" in lowered or "unsupported" in lowered):
        return REGION_HINT
    if "arm64" in lowered or "platform" in lowered or "exec format" in lowered:
        return PLATFORM_HINT
    if "reserved" in lowered and ("environment" in lowered or "env" in lowered):
        return (
            "rename the variable: Foundry reserves the names it injects (FOUNDRY_*, AGENT_*)"
        )
    return None


def features_hint(message: str, *, features_sent: bool, features: str | None = None) -> str:
    """The fix for a 403 ``preview_feature_required``: the opt-in the message names, added to
    what was sent (``features``)."""
    asked = list(dict.fromkeys(PREVIEW_FEATURE.findall(message)))
    sent = [part.strip() for part in (features or "").split(",") if part.strip()]
    missing = [feature for feature in asked if feature not in sent]
    if missing and (sent or missing != [HOSTED_AGENTS_FEATURE]):
        value = ",".join([*sent, *missing])
        return (
            f"this call is behind the preview opt-in {', '.join(missing)}: pass --features "
            f"{value}, or set targets.azure.foundry_features: {value} in agent.yaml"
        )
    if features_sent:
        return (
            "the Foundry-Features header was sent but is not the one the service asks "
            "for: set --features (or targets.azure.foundry_features) to the value in "
            "the message"
        )
    return FEATURES_HINT


def status_hint(
    status: int,
    code: str | None,
    message: str,
    *,
    features_sent: bool,
    purpose: str,
    features: str | None = None,
) -> str:
    """The one-line fix for an HTTP failure of a control-plane call."""
    lowered = f"{code or ''} {message}".lower()
    if status == 401:
        return TOKEN_HINT
    if status == 403:
        if "preview_feature_required" in lowered or "foundry-features" in lowered:
            return features_hint(message, features_sent=features_sent, features=features)
        if "public access" in lowered or "private endpoint" in lowered:
            return "the project allows private-endpoint access only: run from its network"
        return ROLE_HINT
    if status == 404:
        if "api-version" in lowered or "api version" in lowered:
            return (
                "this endpoint does not serve that api-version: check targets.azure.api "
                "(v1, or 2025-11-15-preview for projects still on the initial preview)"
            )
        if "deploy" in purpose or "create" in purpose:
            return (
                "check targets.azure.project_endpoint: "
                "https://<resource>.services.ai.azure.com/api/projects/<project>"
            )
        return "nothing is deployed under that name: check the agent name, or deploy it first"
    if status == 409:
        if "delete" in purpose:
            return (
                "the agent has active sessions: pass --force to end them and delete anyway"
            )
        return "another change to this agent is in progress: wait for it, then retry"
    if status == 429:
        return (
            "Foundry is throttling this project: retry in a few minutes (or ask for a higher "
            "quota)"
        )
    if status >= 500:
        return (
            "a service-side failure (it was retried where safe): retry; if it persists, quote "
            "the request id to Azure support"
        )
    return failure_hint(message) or "fix the request as the message says"


# --- the client -------------------------------------------------------------------------------


class FoundryClient:
    """Calls to one Foundry project, for one API generation."""

    def __init__(
        self,
        endpoint: str,
        *,
        api: str = GA_API,
        token: str | Callable[[], str] | None = None,
        features: str | None = None,
        secrets: Iterable[str] = (),
        policy: RetryPolicy | None = None,
        timeout: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        on_call: Callable[[str], None] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.api = api
        self.features = features
        self._token = token
        self._resolved_token: str | None = token if isinstance(token, str) else None
        self._sleep = sleep
        self.http = CloudHttp(
            SERVICE,
            base_url=self.endpoint + "/",
            secrets=[*secrets, *([self._resolved_token] if self._resolved_token else [])],
            policy=policy,
            timeout=timeout,
            sleep=sleep,
            on_call=on_call,
            transport=transport,
        )

    def __enter__(self) -> FoundryClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    # --- requests as data (shared by --dry-run and the real calls) ---

    def url(self, path: str, query: Mapping[str, str] | None = None) -> str:
        params = {"api-version": self.api, **(query or {})}
        return f"{self.endpoint}/{path}?{urlencode(params, safe=':')}"

    def headers(
        self, *, token: str | None, body: bool, content_type: str = JSON
    ) -> dict[str, str]:
        """Every header a call sends (``token`` None: redacted, for --dry-run)."""
        headers = {
            "Authorization": f"Bearer {token if token is not None else REDACTED}",
            "Accept": JSON,
            "User-Agent": f"actk/{__version__}",
        }
        if body:
            headers["Content-Type"] = content_type
        if self.features:
            headers[FEATURES_HEADER] = self.features
        return headers

    def describe(self, call: Call) -> tuple[str, str, dict[str, str], Any]:
        """(method, URL, headers with the token redacted, body) of ``call``."""
        return (
            call.method,
            self.url(call.path, call.query),
            self.headers(token=None, body=call.body is not None, content_type=call.content_type),
            call.body,
        )

    # --- sending ---

    def token(self) -> str:
        if self._resolved_token is None:
            provider = self._token
            if provider is None:
                raise CloudError("no Foundry token", hint=TOKEN_HINT)
            self._resolved_token = provider() if callable(provider) else provider
            self.http.add_secret(self._resolved_token)
        return self._resolved_token

    def send(self, call: Call, *, ok: Iterable[int] = ()) -> httpx.Response:
        """Send ``call``; an error answer (other than ``ok``) raises a CloudError with a hint."""
        response = self.http.request(
            call.method,
            self.url(call.path, call.query),
            idempotent=call.idempotent,
            headers=self.headers(
                token=self.token(), body=call.body is not None, content_type=call.content_type
            ),
            content=None if call.body is None else json.dumps(call.body).encode(),
        )
        if response.status_code >= 400 and response.status_code not in set(ok):
            raise self.error(response, call.purpose or f"{call.method} {call.path}")
        return response

    def error(self, response: httpx.Response, purpose: str) -> CloudError:
        code, message = parse_error(response)
        request_id = next(
            (response.headers[h] for h in REQUEST_ID_HEADERS if h in response.headers), None
        )
        where = f" (request id {request_id})" if request_id else ""
        text = f"{purpose}: HTTP {response.status_code}: {message}{where}"
        if response.status_code == 429:
            asked = retry_after(response)
            if asked is not None:
                text += f"; the service asks to wait {asked:.0f} s"
        hint = status_hint(
            response.status_code,
            code,
            message,
            features_sent=bool(self.features),
            purpose=purpose,
            features=self.features,
        )
        return CloudError(self.http.redact(text), hint=self.http.redact(hint))

    def json(self, call: Call) -> Any:
        return self._body(self.send(call), call)

    def _body(self, response: httpx.Response, call: Call) -> Any:
        try:
            return response.json()
        except ValueError:
            raise CloudError(
                f"{call.purpose}: Foundry answered HTTP {response.status_code} with a body "
                f"that is not JSON: {self.http.redact(response.text[:200])!r}",
                hint="check targets.azure.project_endpoint: it must be the project endpoint, "
                "https://<resource>.services.ai.azure.com/api/projects/<project>",
            ) from None

    # --- the calls ---

    def list_versions_call(self, agent: str, *, limit: int = 20) -> Call:
        return Call(
            "GET",
            f"agents/{_segment(agent)}/versions",
            {"limit": str(limit), "order": "desc"},
            purpose=f"list the versions of {agent}",
        )

    def list_versions(self, agent: str, *, limit: int = 20) -> list[AgentVersion]:
        """The newest ``limit`` versions, newest first; empty when the agent does not exist."""
        call = self.list_versions_call(agent, limit=limit)
        response = self.send(call, ok={404})
        if response.status_code == 404:
            return []
        try:
            body = response.json()
        except ValueError:
            body = None
        items = body.get("data") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise CloudError(
                f"{call.purpose}: Foundry answered with something that is not a list",
                hint="check targets.azure.project_endpoint and targets.azure.api",
            )
        versions = [AgentVersion.from_json(item) for item in items]
        # Newest first whatever order the service used ("order" is a hint to it).
        return sorted(versions, key=_version_order, reverse=True)

    def latest_version(self, agent: str) -> AgentVersion | None:
        versions = self.list_versions(agent, limit=1)
        return versions[0] if versions else None

    def create_version_call(self, agent: str, body: dict[str, Any]) -> Call:
        return Call(
            "POST",
            f"agents/{_segment(agent)}/versions",
            body=body,
            purpose=f"create a version of {agent}",
            idempotent=False,  # a replayed create would add a second version
        )

    def create_version(self, agent: str, body: dict[str, Any]) -> AgentVersion:
        return AgentVersion.from_json(self.json(self.create_version_call(agent, body)))

    def get_version_call(self, agent: str, version: str) -> Call:
        return Call(
            "GET",
            f"agents/{_segment(agent)}/versions/{_segment(version)}",
            purpose=f"read version {version} of {agent}",
        )

    def get_version(self, agent: str, version: str) -> AgentVersion:
        return AgentVersion.from_json(self.json(self.get_version_call(agent, version)))

    def delete_version_call(self, agent: str, version: str, *, force: bool = False) -> Call:
        return Call(
            "DELETE",
            f"agents/{_segment(agent)}/versions/{_segment(version)}",
            {"force": "true"} if force else {},
            purpose=f"delete version {version} of {agent}",
        )

    def delete_agent_call(self, agent: str, *, force: bool = False) -> Call:
        return Call(
            "DELETE",
            f"agents/{_segment(agent)}",
            {"force": "true"} if force else {},
            purpose=f"delete the agent {agent}",
        )

    def delete(self, call: Call) -> dict[str, Any]:
        """Send a DELETE; its answer (``{"deleted": true, ...}``), or {} when it has no body."""
        response = self.send(call)
        try:
            body = response.json()
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}

    # --- the agent and its endpoint's version selector (v1) ---

    def get_agent_call(self, agent: str) -> Call:
        return Call("GET", f"agents/{_segment(agent)}", purpose=f"read the agent {agent}")

    def get_agent(self, agent: str) -> AgentDetails | None:
        """The agent (its endpoint's version selector); None when it does not exist."""
        call = self.get_agent_call(agent)
        response = self.send(call, ok={404})
        if response.status_code == 404:
            return None
        return AgentDetails.from_json(self._body(response, call))

    def route_traffic_call(self, agent: str, version: str) -> Call:
        return Call(
            "PATCH",
            f"agents/{_segment(agent)}",
            body=traffic_body(version),
            purpose=f"send the traffic of {agent} to version {version}",
            idempotent=True,  # sets a state: sending it twice sets the same one
            content_type=MERGE_PATCH,
        )

    def route_traffic(self, agent: str, version: str) -> AgentDetails:
        """PATCH the endpoint's version selector: all traffic to ``version``."""
        return AgentDetails.from_json(self.json(self.route_traffic_call(agent, version)))

    # --- initial preview: containers and operations ---

    def start_container_call(self, agent: str, version: str, low: int, high: int) -> Call:
        return Call(
            "POST",
            f"{_container(agent, version)}:start",
            body={"min_replicas": low, "max_replicas": high},
            purpose=f"start the container of {agent} version {version}",
            idempotent=True,  # asks for a state; sending it twice asks for the same state
        )

    def stop_container_call(self, agent: str, version: str) -> Call:
        return Call(
            "POST",
            f"{_container(agent, version)}:stop",
            purpose=f"stop the container of {agent} version {version}",
            idempotent=True,
        )

    def container_operation(self, call: Call, agent: str) -> Operation:
        """Send a start/stop and return the operation it began (202 + Operation-Location)."""
        response = self.send(call)
        try:
            body = response.json()
        except ValueError:
            body = {}
        location = response.headers.get("operation-location", "")
        fallback = ""
        if location and _same_origin(location, self.endpoint):
            fallback = urlsplit(location).path.rstrip("/").rsplit("/", 1)[-1]
        operation = Operation.from_json(body, fallback)
        if not operation.id:
            raise CloudError(
                f"{call.purpose}: Foundry accepted it but named no operation to follow",
                hint="follow it with `actk status azure`",
            )
        return operation

    def get_operation_call(self, agent: str, operation_id: str) -> Call:
        return Call(
            "GET",
            f"agents/{_segment(agent)}/operations/{_segment(operation_id)}",
            purpose=f"read operation {operation_id} of {agent}",
        )

    def get_operation(self, agent: str, operation_id: str) -> Operation:
        body = self.json(self.get_operation_call(agent, operation_id))
        return Operation.from_json(body, operation_id)

    def get_container_call(self, agent: str, version: str) -> Call:
        return Call(
            "GET",
            _container(agent, version),
            purpose=f"read the container of {agent} version {version}",
        )

    def get_container(self, agent: str, version: str) -> Container | None:
        """The version's container; None when it has none (never started)."""
        response = self.send(self.get_container_call(agent, version), ok={404})
        if response.status_code == 404:
            return None
        try:
            return Container.from_json(response.json())
        except ValueError:
            return Container(status="unknown")

    # --- the agent's Responses endpoint ---

    def responses_url(self, agent: str) -> str:
        if self.api == PREVIEW_API:
            return self.url("openai/responses")
        return self.url(f"agents/{_segment(agent)}/endpoint/protocols/openai/responses")

    @contextmanager
    def open_stream(
        self, url: str, body: dict[str, Any], timeout: float
    ) -> Iterator[httpx.Response]:
        """A streamed POST (the answer is read as it arrives); CloudHttp's retry rules apply
        to the status line: throttling (429, 503) is retried, as nothing was generated yet."""
        import httpx

        headers = {**self.headers(token=self.token(), body=True), "Accept": "text/event-stream"}
        response = self.http.request(
            "POST",
            url,
            headers=headers,
            content=json.dumps(body).encode(),
            timeout=httpx.Timeout(timeout, connect=10),
            stream=True,
        )
        try:
            yield response
        finally:
            response.close()


def _segment(value: str) -> str:
    return quote(str(value), safe="")


def _container(agent: str, version: str) -> str:
    return f"agents/{_segment(agent)}/versions/{_segment(version)}/containers/default"


def _same_origin(url: str, endpoint: str) -> bool:
    """The token goes to the project's own host only, never to a URL a response names."""
    a, b = urlsplit(url), urlsplit(endpoint)
    return (a.scheme, a.netloc.lower()) == (b.scheme, b.netloc.lower())


def _version_order(version: AgentVersion) -> tuple[int, int, str]:
    number = int(version.version) if version.version.isdigit() else -1
    return (version.created_at or 0, number, version.version)
