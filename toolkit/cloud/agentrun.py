"""Alibaba Cloud AgentRun (API 2025-09-10): runtimes, their endpoints and published versions.

Every operation is ROA on ``https://agentrun.<region>.aliyuncs.com`` (``agentrun-vpc`` from
inside a VPC; ``ACTK_ALIBABA_AGENTRUN_ENDPOINT`` or ``targets.alibaba.api_endpoint`` replace
it), signed with ACS3 by :class:`~toolkit.cloud.alibaba.AlibabaClient` on every attempt (STS
tokens included), which also retries throttling and maps error bodies to hints:

    ListAgentRuntimes           GET    runtimes?agentRuntimeName=&pageNumber=&pageSize=
    CreateAgentRuntime          POST   runtimes                          CreateAgentRuntimeInput
    GetAgentRuntime             GET    runtimes/{id}
    UpdateAgentRuntime          PUT    runtimes/{id}                     UpdateAgentRuntimeInput
    DeleteAgentRuntime          DELETE runtimes/{id}
    PublishRuntimeVersion       POST   runtimes/{id}/versions            {description}
    ListAgentRuntimeVersions    GET    runtimes/{id}/versions
    ListAgentRuntimeEndpoints   GET    runtimes/{id}/endpoints
    CreateAgentRuntimeEndpoint  POST   runtimes/{id}/endpoints           {agentRuntimeEndpointName,
                                                                          targetVersion}
    GetAgentRuntimeEndpoint     GET    runtimes/{id}/endpoints/{endpointId}
    UpdateAgentRuntimeEndpoint  PUT    (same path)                       (same body)
    DeleteAgentRuntimeEndpoint  DELETE (same path)

(``runtimes`` is ``/2025-09-10/agents/runtimes``.)

Answers are ``{code, requestId, data}``; lists put their rows in ``data.items``. Each call is a
:class:`Call` first, so what ``--dry-run`` prints (:meth:`AgentRunClient.describe`: the exact
signed request, with the signature and the STS token redacted) is what :meth:`send` sends.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from toolkit.cloud import acs3
from toolkit.cloud.alibaba import AlibabaAPIError, AlibabaClient, AlibabaCredentials
from toolkit.errors import CloudError
from toolkit.redact import REDACTED

if TYPE_CHECKING:
    import httpx

    from toolkit.cloud.http import RetryPolicy

PRODUCT = "agentrun"
API_VERSION = "2025-09-10"
ENDPOINT_VARIABLE = "ACTK_ALIBABA_AGENTRUN_ENDPOINT"
RUNTIMES = f"/{API_VERSION}/agents/runtimes"
PAGE_SIZE = 100
MAX_PAGES = 50

READY = "READY"
TRANSITIONAL = frozenset({"CREATING", "UPDATING", "DELETING"})
FAILED = frozenset({"FAILED", "CREATE_FAILED", "UPDATE_FAILED", "DELETE_FAILED"})
# AgentRun answers a failed call with one of these in ``code`` (sometimes with HTTP 200).
ERROR_CODE_PREFIX = "ERR_"

# Words in a failure that mean "the platform could not pull the image".
PULL_WORDS = ("pull", "image not found", "manifest unknown", "imagenotfound", "repository")
# ... and "the container started but never answered its health check".
START_WORDS = ("healthcheck", "health check", "functionnotstarted", "not started", "timeout",
               "listen", "exec format", "crash", "exited")
BUSY_WORDS = ("creating", "updating", "not ready", "notready", "in progress", "inprogress",
              "conflict", "concurrent")


def terminal(status: str) -> bool:
    """Whether a runtime status is final: READY or one of the failures."""
    return status == READY or status in FAILED


def control_endpoint(
    region: str, *, override: str | None = None, vpc: bool = False
) -> str | None:
    """The control-plane endpoint to pass to :class:`AlibabaClient`: ``override`` (from the
    environment or agent.yaml), else the VPC endpoint when asked, else None (the default
    ``https://agentrun.<region>.aliyuncs.com``)."""
    if override:
        return override.strip().rstrip("/")
    if vpc:
        return f"https://{PRODUCT}-vpc.{region}.aliyuncs.com"
    return None


# --- the resources the toolkit reads ----------------------------------------------------------


@dataclass(frozen=True)
class Runtime:
    """The parts of an ``AgentRuntime`` the toolkit reads; ``data`` is the whole object."""

    id: str
    name: str
    status: str
    reason: str | None = None
    version: str | None = None
    arn: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Runtime:
        return cls(
            id=str(data.get("agentRuntimeId") or ""),
            name=str(data.get("agentRuntimeName") or ""),
            status=str(data.get("status") or "").upper(),
            reason=data.get("statusReason") or None,
            version=_text(data.get("agentRuntimeVersion")),
            arn=data.get("agentRuntimeArn") or None,
            data=dict(data),
        )

    @property
    def image(self) -> str | None:
        container = self.data.get("containerConfiguration")
        return container.get("image") if isinstance(container, dict) else None


@dataclass(frozen=True)
class RuntimeEndpoint:
    """The parts of an ``AgentRuntimeEndpoint`` the toolkit reads."""

    id: str
    name: str
    status: str
    reason: str | None = None
    target_version: str | None = None
    # endpointPublicUrl: https://<uid>.agentrun-data.<region>.aliyuncs.com/agent-runtimes/
    # <runtime>/endpoints/<endpoint>/invocations; whatever path follows it reaches the container
    url: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RuntimeEndpoint:
        return cls(
            id=str(data.get("agentRuntimeEndpointId") or ""),
            name=str(data.get("agentRuntimeEndpointName") or ""),
            status=str(data.get("status") or "").upper(),
            reason=data.get("statusReason") or None,
            target_version=_text(data.get("targetVersion")),
            url=data.get("endpointPublicUrl") or None,
            data=dict(data),
        )

    @property
    def settled(self) -> bool:
        """Serving (a public URL and no change under way) or failed."""
        if self.status in FAILED or self.status.endswith("FAILED"):
            return True
        return bool(self.url) and self.status not in TRANSITIONAL


@dataclass(frozen=True)
class RuntimeVersion:
    version: str
    description: str | None = None
    updated_at: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RuntimeVersion:
        return cls(
            version=_text(data.get("agentRuntimeVersion")) or "",
            description=data.get("description") or None,
            updated_at=data.get("lastUpdatedAt") or None,
        )


def _text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


# --- calls as data ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One AgentRun operation: ``path`` is decoded and may hold ``{agentRuntimeId}``-style
    placeholders in a dry run (they are shown, never sent)."""

    method: str
    path: str
    action: str
    query: Mapping[str, acs3.QueryValue] = field(default_factory=dict)
    body: Any = None


def runtime_path(runtime_id: str) -> str:
    return f"{RUNTIMES}/{runtime_id}"


def endpoints_path(runtime_id: str) -> str:
    return f"{RUNTIMES}/{runtime_id}/endpoints"


def list_runtimes_call(
    name: str, *, page: int = 1, workspace_id: str | None = None
) -> Call:
    query: dict[str, acs3.QueryValue] = {
        "agentRuntimeName": name,
        "pageNumber": page,
        "pageSize": PAGE_SIZE,
    }
    if workspace_id:
        query["workspaceId"] = workspace_id
    return Call("GET", RUNTIMES, "ListAgentRuntimes", query)


def create_runtime_call(body: Mapping[str, Any]) -> Call:
    return Call("POST", RUNTIMES, "CreateAgentRuntime", body=dict(body))


def get_runtime_call(runtime_id: str) -> Call:
    return Call("GET", runtime_path(runtime_id), "GetAgentRuntime")


def update_runtime_call(runtime_id: str, body: Mapping[str, Any]) -> Call:
    return Call("PUT", runtime_path(runtime_id), "UpdateAgentRuntime", body=dict(body))


def delete_runtime_call(runtime_id: str) -> Call:
    return Call("DELETE", runtime_path(runtime_id), "DeleteAgentRuntime")


def publish_version_call(runtime_id: str, description: str) -> Call:
    return Call(
        "POST",
        f"{runtime_path(runtime_id)}/versions",
        "PublishRuntimeVersion",
        body={"description": description},
    )


def list_versions_call(runtime_id: str, *, page: int = 1) -> Call:
    return Call(
        "GET",
        f"{runtime_path(runtime_id)}/versions",
        "ListAgentRuntimeVersions",
        {"pageNumber": page, "pageSize": PAGE_SIZE},
    )


def list_endpoints_call(runtime_id: str, *, page: int = 1) -> Call:
    return Call(
        "GET",
        endpoints_path(runtime_id),
        "ListAgentRuntimeEndpoints",
        {"pageNumber": page, "pageSize": PAGE_SIZE},
    )


def create_endpoint_call(runtime_id: str, body: Mapping[str, Any]) -> Call:
    return Call("POST", endpoints_path(runtime_id), "CreateAgentRuntimeEndpoint", body=dict(body))


def get_endpoint_call(runtime_id: str, endpoint_id: str) -> Call:
    return Call("GET", f"{endpoints_path(runtime_id)}/{endpoint_id}", "GetAgentRuntimeEndpoint")


def update_endpoint_call(runtime_id: str, endpoint_id: str, body: Mapping[str, Any]) -> Call:
    return Call(
        "PUT",
        f"{endpoints_path(runtime_id)}/{endpoint_id}",
        "UpdateAgentRuntimeEndpoint",
        body=dict(body),
    )


def delete_endpoint_call(runtime_id: str, endpoint_id: str) -> Call:
    return Call(
        "DELETE", f"{endpoints_path(runtime_id)}/{endpoint_id}", "DeleteAgentRuntimeEndpoint"
    )


# --- hints for what AgentRun itself reports ---------------------------------------------------


def failure_hint(reason: str | None, *, image: str | None = None, region: str = "",
                 port: int | None = None, health_path: str | None = None) -> str:
    """The fix for a runtime that ended in ``*_FAILED``, from its ``statusReason``."""
    text = (reason or "").lower()
    if any(word in text for word in PULL_WORDS):
        where = f" in {region}" if region else ""
        return (
            f"AgentRun could not pull {image or 'the image'}: it must be in Container Registry "
            f"in the same account and region{where} (push it with `actk push`), the runtime "
            "needs AliyunContainerRegistryReadOnlyAccess (its execution role), and an ACREE "
            "image needs targets.alibaba.instance_id"
        )
    if any(word in text for word in START_WORDS):
        return (
            f"the container did not pass its health check: it must listen on "
            f"0.0.0.0:{port or '<port>'} (runtime.port), answer GET {health_path or '/ready'} "
            "with 200, and be built for linux/amd64; `actk smoke` runs these checks locally"
        )
    return (
        "read the runtime's logs (targets.alibaba.log sends them to SLS; or the AgentRun "
        "console), fix the cause and run `actk deploy alibaba` again"
    )


def busy_hint(runtime: str) -> str:
    return (
        f"AgentRun refuses endpoint changes while runtime {runtime} is CREATING or UPDATING: "
        "wait until it is READY (`actk status alibaba`), then run `actk deploy alibaba` again"
    )


def _is_busy(error: AlibabaAPIError) -> bool:
    text = f"{error.code} {error.message}".lower()
    return error.status == 409 or any(word in text for word in BUSY_WORDS)


# --- the client -------------------------------------------------------------------------------


class AgentRunClient:
    """AgentRun calls for one region, on one :class:`AlibabaClient`."""

    def __init__(
        self,
        credentials: AlibabaCredentials,
        *,
        region: str,
        endpoint: str | None = None,
        vpc: bool = False,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_call: Callable[[str], None] | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        self.credentials = credentials
        self.region = region
        self.api = AlibabaClient(
            credentials,
            product=PRODUCT,
            region=region,
            endpoint=control_endpoint(region, override=endpoint, vpc=vpc),
            retry=retry,
            transport=transport,
            sleep=sleep,
        )
        if on_call is not None:  # AlibabaClient takes no call log; its CloudHttp has one
            self.api.http._on_call = on_call
        for secret in secrets:
            self.api.http.add_secret(secret)

    def close(self) -> None:
        self.api.close()

    def __enter__(self) -> AgentRunClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def base_url(self) -> str:
        return self.api.base_url

    # --- describing and sending ---

    def describe(self, call: Call) -> tuple[str, str, dict[str, str], Any]:
        """(method, URL, headers, body) of ``call`` exactly as :meth:`send` would sign it now,
        with the signature and the STS token replaced by ``[REDACTED]`` (a signed request can
        be replayed for 15 minutes). Placeholders such as ``{agentRuntimeId}`` stay readable."""
        headers: dict[str, str] = {
            "x-acs-action": call.action,
            "x-acs-version": API_VERSION,
            "accept": "application/json",
        }
        content = b""
        if call.body is not None:
            content = json.dumps(call.body, separators=(",", ":")).encode("utf-8")
            headers["content-type"] = "application/json; charset=utf-8"
        signed = acs3.sign_request(
            call.method,
            self.api.host,
            call.path,
            call.query,
            headers,
            content,
            credentials=self.credentials,
        )
        authorization = signed["authorization"]
        signed["authorization"] = authorization[: authorization.rindex("Signature=")] + (
            f"Signature={REDACTED}"
        )
        if "x-acs-security-token" in signed:
            signed["x-acs-security-token"] = REDACTED
        url = self.base_url + acs3.canonical_uri(call.path)
        query = acs3.canonical_query_string(call.query)
        if query:
            url += "?" + query
        url = url.replace("%7B", "{").replace("%7D", "}")
        return call.method, url, signed, call.body

    def send(self, call: Call) -> dict[str, Any]:
        """Send ``call``; the answer's ``data`` (an empty dict when there is none). An error
        answer raises :class:`AlibabaAPIError` with a hint."""
        answer = self.api.roa(
            call.method,
            call.path,
            action=call.action,
            version=API_VERSION,
            query=call.query,
            body=call.body,
        )
        code = str(answer.get("code") or "")
        if code.startswith(ERROR_CODE_PREFIX):
            raise AlibabaAPIError(
                self.api.http.redact(
                    f"{call.action} on {self.api.host} failed: {code}: "
                    f"{answer.get('message') or 'no message'}"
                ),
                hint="fix what the message names in targets.alibaba of agent.yaml; "
                "`actk deploy alibaba --dry-run` shows the request",
                code=code,
                status=200,
                request_id=str(answer.get("requestId") or ""),
                action=call.action,
            )
        data = answer.get("data")
        return data if isinstance(data, dict) else {}

    def _pages(self, make: Callable[[int], Call]) -> Iterable[dict[str, Any]]:
        seen = 0
        for page in range(1, MAX_PAGES + 1):
            data = self.send(make(page))
            items = [item for item in data.get("items") or [] if isinstance(item, dict)]
            yield from items
            seen += len(items)
            total = data.get("total")
            if not items or len(items) < PAGE_SIZE or (
                isinstance(total, int) and seen >= total
            ):
                return

    # --- runtimes ---

    def find_runtime(self, name: str, *, workspace_id: str | None = None) -> Runtime | None:
        """The runtime called exactly ``name`` (the list filter may also match others)."""
        for item in self._pages(
            lambda page: list_runtimes_call(name, page=page, workspace_id=workspace_id)
        ):
            if item.get("agentRuntimeName") == name:
                return Runtime.from_json(item)
        return None

    def get_runtime(self, runtime_id: str) -> Runtime | None:
        """The runtime, or None once it is gone (HTTP 404)."""
        try:
            return Runtime.from_json(self.send(get_runtime_call(runtime_id)))
        except AlibabaAPIError as error:
            if error.status == 404:
                return None
            raise

    def create_runtime(self, body: Mapping[str, Any]) -> Runtime:
        return Runtime.from_json(self.send(create_runtime_call(body)))

    def update_runtime(self, runtime_id: str, body: Mapping[str, Any]) -> Runtime:
        return Runtime.from_json(self.send(update_runtime_call(runtime_id, body)))

    def delete_runtime(self, runtime_id: str) -> None:
        self.send(delete_runtime_call(runtime_id))

    # --- versions ---

    def publish_version(self, runtime_id: str, description: str) -> RuntimeVersion:
        return RuntimeVersion.from_json(self.send(publish_version_call(runtime_id, description)))

    def list_versions(self, runtime_id: str) -> list[RuntimeVersion]:
        """Published versions, newest (highest number) first."""
        versions = [
            RuntimeVersion.from_json(item)
            for item in self._pages(lambda page: list_versions_call(runtime_id, page=page))
        ]
        return sorted(versions, key=_version_order, reverse=True)

    # --- endpoints ---

    def list_endpoints(self, runtime_id: str) -> list[RuntimeEndpoint]:
        return [
            RuntimeEndpoint.from_json(item)
            for item in self._pages(lambda page: list_endpoints_call(runtime_id, page=page))
        ]

    def find_endpoint(self, runtime_id: str, name: str) -> RuntimeEndpoint | None:
        return next((e for e in self.list_endpoints(runtime_id) if e.name == name), None)

    def get_endpoint(self, runtime_id: str, endpoint_id: str) -> RuntimeEndpoint | None:
        try:
            return RuntimeEndpoint.from_json(self.send(get_endpoint_call(runtime_id, endpoint_id)))
        except AlibabaAPIError as error:
            if error.status == 404:
                return None
            raise

    def create_endpoint(
        self, runtime_id: str, body: Mapping[str, Any], *, runtime_name: str
    ) -> RuntimeEndpoint:
        return RuntimeEndpoint.from_json(
            self._endpoint_change(create_endpoint_call(runtime_id, body), runtime_name)
        )

    def update_endpoint(
        self, runtime_id: str, endpoint_id: str, body: Mapping[str, Any], *, runtime_name: str
    ) -> RuntimeEndpoint:
        return RuntimeEndpoint.from_json(
            self._endpoint_change(update_endpoint_call(runtime_id, endpoint_id, body),
                                  runtime_name)
        )

    def delete_endpoint(self, runtime_id: str, endpoint_id: str) -> None:
        self.send(delete_endpoint_call(runtime_id, endpoint_id))

    def _endpoint_change(self, call: Call, runtime_name: str) -> dict[str, Any]:
        try:
            return self.send(call)
        except AlibabaAPIError as error:
            if error.status is not None and 400 <= error.status < 500 and _is_busy(error) and (
                error.code not in ("Forbidden.RAM",) and not error.code.startswith("Throttling")
            ):
                error.hint = busy_hint(runtime_name)
            raise


def _version_order(version: RuntimeVersion) -> tuple[int, str]:
    text = version.version
    return (int(text), "") if text.isdigit() else (-1, text)


def open_client(
    env: Mapping[str, str],
    *,
    region: str,
    endpoint: str | None = None,
    vpc: bool = False,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] = time.sleep,
    on_call: Callable[[str], None] | None = None,
    secrets: Iterable[str] = (),
    allow_missing_credentials: bool = False,
) -> AgentRunClient:
    """A client with the credentials in ``env`` (else the default chain). With
    ``allow_missing_credentials`` (dry runs) a missing key gives a client that can only
    describe calls, signed with a placeholder key."""
    try:
        credentials = AlibabaCredentials.from_env(env)
    except CloudError:
        if not allow_missing_credentials:
            raise
        credentials = AlibabaCredentials(
            "<ALIBABA_CLOUD_ACCESS_KEY_ID>", "unset", source="placeholder (dry run)"
        )
    return AgentRunClient(
        credentials,
        region=region,
        endpoint=endpoint,
        vpc=vpc,
        transport=transport,
        sleep=sleep,
        on_call=on_call,
        secrets=secrets,
    )
