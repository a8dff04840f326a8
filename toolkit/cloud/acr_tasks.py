"""ACR Tasks over Azure Resource Manager: the calls behind `actk build --remote acr`.

api-version 2019-06-01-preview (the last ARM version with the Tasks operations; azure-mgmt-
containerregistry 10.3.0 ``v2019_06_01_preview``, azd ``pkg/containerregistry/remote_build.go``):

    POST {registry}/listBuildSourceUploadUrl -> SourceUploadDefinition {uploadUrl, relativePath}
    PUT  uploadUrl (blob SAS, x-ms-blob-type: BlockBlob)     the build context as tar.gz
    POST {registry}/scheduleRun  DockerBuildRequest -> Run (200), or 202 and a Location to poll
    POST {registry}/runs/{id}/listLogSasUrl  -> RunGetLogResult {logLink, logArtifactLink}
    HEAD/GET logLink (Range)                    the log; x-ms-meta-Complete when it is finished
    GET  {registry}/runs/{id}                -> Run {status, outputImages, runErrorMessage}
    POST {registry}/runs/{id}/cancel

Every call goes through :class:`~toolkit.cloud.http.CloudHttp`. The ARM bearer token goes to
the ARM endpoint only, never to a blob URL. Blob URLs carry SAS signatures: they are redacted,
with the token and every other secret the caller names, from every message this module
produces. Throttling (429/503, honouring Retry-After), 408 and, for calls that are safe to
repeat, other 5xx answers are retried with backoff; every other failure becomes one
:class:`CloudError` with a hint.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from toolkit import __version__
from toolkit.cloud.http import CloudHttp, RetryPolicy, attempts_made, retry_after
from toolkit.errors import CloudError

API_VERSION = "2019-06-01-preview"
DEFAULT_ARM_ENDPOINT = "https://management.azure.com"
# Registry login-server suffix -> the Resource Manager endpoint of that cloud.
CLOUD_ARM_ENDPOINTS = {
    "azurecr.io": DEFAULT_ARM_ENDPOINT,
    "azurecr.cn": "https://management.chinacloudapi.cn",
    "azurecr.us": "https://management.usgovcloudapi.net",
}
# <name>.azurecr.io, or <name>-<hash>.azurecr.io for a registry with a domain name label scope.
# Registry names are 5-50 letters and digits, so a hyphen always starts the hash.
LOGIN_SERVER = re.compile(
    r"^(?P<name>[a-z0-9]{5,50})(?:-[a-z0-9]+)?\.(?P<suffix>azurecr\.(?:io|cn|us))$"
)
TERMINAL_STATUSES = frozenset({"Succeeded", "Failed", "Canceled", "Error", "Timeout"})
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# ARM's defaults: five tries, 1 s doubling to 60 s, jittered so parallel CI jobs spread out.
ARM_RETRY = RetryPolicy(attempts=5, backoff=1.0, max_backoff=60.0, jitter=0.2)
BLOB_VERSION = "2021-08-06"  # single-PUT block blobs up to 5000 MiB
TASKS_NOT_ALLOWED = "TasksOperationsNotAllowed"

# The ARM action each call needs, for the hint of a 403.
ACTIONS = {
    "listBuildSourceUploadUrl": "listBuildSourceUploadUrl/action",
    "scheduleRun": "scheduleRun/action",
    "listLogSasUrl": "runs/listLogSasUrl/action",
    "getRun": "runs/read",
    "cancel": "runs/cancel/action",
}
ACTION_PREFIX = "Microsoft.ContainerRegistry/registries/"
NOT_FOUND_CODES = frozenset(
    {"ResourceNotFound", "ResourceGroupNotFound", "SubscriptionNotFound", "InvalidSubscriptionId"}
)
_ARM_ACTION = re.compile(r"action '([^']+)'")
_BLOB_CODE = re.compile(r"<Code>([^<]+)</Code>")
MAX_SERVER_MESSAGE = 400


# --- values -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegistryResource:
    """One registry as ARM names it, and the host images are pushed to."""

    subscription_id: str
    resource_group: str
    name: str
    login_server: str

    @property
    def id(self) -> str:
        return (
            f"/subscriptions/{quote(self.subscription_id, safe='')}"
            f"/resourceGroups/{quote(self.resource_group, safe='')}"
            f"/providers/Microsoft.ContainerRegistry/registries/{quote(self.name, safe='')}"
        )

    @property
    def arm_endpoint(self) -> str:
        """The Resource Manager endpoint of the registry's cloud."""
        return CLOUD_ARM_ENDPOINTS[self.login_server.split(".", 1)[1]]


def parse_login_server(host: str) -> tuple[str, str] | None:
    """``myreg.azurecr.io`` -> (``myreg``, ``azurecr.io``); None for a host ACR does not serve."""
    match = LOGIN_SERVER.match(host.lower())
    return (match["name"], match["suffix"]) if match else None


@dataclass(frozen=True)
class SourceUpload:
    upload_url: str = field(repr=False)  # a SAS URL: never printed
    relative_path: str


@dataclass(frozen=True)
class OutputImage:
    """An image a run pushed, as ACR reports it (``ImageDescriptor``)."""

    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def reference(self) -> str:
        """``registry/repository@digest``, else ``registry/repository:tag``."""
        base = f"{self.registry}/{self.repository}"
        return f"{base}@{self.digest}" if self.digest else f"{base}:{self.tag}"

    def to_dict(self) -> dict[str, str | None]:
        return {
            "registry": self.registry,
            "repository": self.repository,
            "tag": self.tag,
            "digest": self.digest,
        }


@dataclass(frozen=True)
class RunState:
    """The parts of a ``Run`` resource the flow reads."""

    run_id: str
    status: str
    error_message: str | None = None
    output_images: tuple[OutputImage, ...] = ()

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_json(cls, body: Any) -> RunState:
        properties = body.get("properties") if isinstance(body, dict) else None
        if not isinstance(properties, dict) or not (properties.get("runId") or body.get("name")):
            raise CloudError(
                "ACR answered with something that is not a run",
                hint="retry; if it persists, check the ARM endpoint (ACTK_AZURE_ARM_ENDPOINT)",
            )
        images = tuple(
            OutputImage(
                registry=str(item.get("registry") or ""),
                repository=str(item.get("repository") or ""),
                tag=item.get("tag"),
                digest=item.get("digest"),
            )
            for item in properties.get("outputImages") or ()
            if isinstance(item, dict)
        )
        return cls(
            run_id=str(properties.get("runId") or body["name"]),
            status=str(properties.get("status") or "Queued"),
            error_message=properties.get("runErrorMessage"),
            output_images=images,
        )


@dataclass(frozen=True)
class LogBlob:
    """What a HEAD of the log blob says: how long it is and whether ACR has finished it."""

    length: int
    complete: str | None  # the value of x-ms-meta-Complete (e.g. "successful"), else None


class LogLinkExpired(Exception):
    """The log blob refused its SAS URL (expired); ask for a new one."""


# --- errors -----------------------------------------------------------------------------------


def _arm_error(response: httpx.Response) -> tuple[str, str]:
    """(code, message) of an ARM error body ``{"error": {"code", "message"}}``."""
    try:
        body = response.json()
    except ValueError:
        return "", response.text.strip()[:MAX_SERVER_MESSAGE]
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", json.dumps(body)[:MAX_SERVER_MESSAGE]
    return str(error.get("code") or ""), str(error.get("message") or "")[:MAX_SERVER_MESSAGE]


def arm_error(
    response: httpx.Response,
    operation: str,
    registry: RegistryResource,
    scrub: Callable[[str], str],
    attempts: int = 1,
) -> CloudError:
    """The CloudError (message and hint) for an ARM answer that is not a success."""
    status = response.status_code
    code, message = _arm_error(response)
    correlation = response.headers.get("x-ms-correlation-request-id")
    detail = f"HTTP {status}" + (f" {code}" if code else "") + (f": {message}" if message else "")
    if correlation:
        detail += f" (correlation id {correlation})"
    what = f"ACR Tasks {operation} on registry {registry.name}"
    if code == TASKS_NOT_ALLOWED or "are not permitted" in message:
        return CloudError(
            scrub(f"ACR Tasks are not permitted for registry {registry.name}: {detail}"),
            hint="build locally instead: `actk build` (without --remote), then `actk push`; "
            "ACR Tasks are disabled on free-trial subscriptions and some others until an Azure "
            "support request enables them",
        )
    if status == 401:
        return CloudError(
            scrub(f"{what} was refused: the ARM token is invalid or expired ({detail})"),
            hint="get a fresh token for the tenant that owns the subscription: `az login`, or "
            "AZURE_ACCESS_TOKEN=$(az account get-access-token --query accessToken -o tsv)",
        )
    if status == 403:
        named = _ARM_ACTION.search(message)
        action = named.group(1) if named else ACTION_PREFIX + ACTIONS.get(operation, operation)
        return CloudError(
            scrub(f"{what} is not allowed for the signed-in identity: {detail}"),
            hint=f"grant it {action} on the registry: the Contributor or 'Container Registry "
            "Tasks Contributor' role (AcrPush alone pushes images but cannot run ACR Tasks): "
            f"az role assignment create --assignee <identity> --role 'Container Registry Tasks "
            f"Contributor' --scope {registry.id}",
        )
    registry_call = operation in ("listBuildSourceUploadUrl", "scheduleRun")
    if (code in NOT_FOUND_CODES and (status == 404 or code == "InvalidSubscriptionId")) or (
        status == 404 and registry_call
    ):
        return CloudError(
            scrub(
                f"registry {registry.name} not found in resource group {registry.resource_group}"
                f" of subscription {registry.subscription_id}: {detail}"
            ),
            hint="check image.registry.subscription_id and image.registry.resource_group in "
            f"agent.yaml: `az acr show --name {registry.name} --query id -o tsv` prints "
            "/subscriptions/<subscription_id>/resourceGroups/<resource_group>/...",
        )
    if status in RETRY_STATUSES:
        tried = f" after {attempts} attempts" if attempts > 1 else ""
        return CloudError(
            scrub(f"{what} failed{tried}: {detail}"),
            hint="Azure is throttling or unavailable; wait a few minutes and run the build again",
        )
    return CloudError(
        scrub(f"{what} failed: {detail}"),
        hint="check the request details above; quote the correlation id to Azure support if "
        "it persists",
    )


def blob_error(
    response: httpx.Response, what: str, url: str, scrub: Callable[[str], str], attempts: int = 1
) -> CloudError:
    code_match = _BLOB_CODE.search(response.text or "")
    code = code_match.group(1) if code_match else response.headers.get("x-ms-error-code", "")
    detail = f"HTTP {response.status_code}" + (f" {code}" if code else "")
    parts = urlsplit(url)
    where = f"{parts.scheme}://{parts.netloc}{parts.path}"  # the blob, without its SAS
    if response.status_code in (401, 403):
        return CloudError(
            scrub(f"{what} at {where} was refused ({detail})"),
            hint="the SAS URL from ACR expired or the clock of this machine is far off; "
            "check the clock and run the build again",
        )
    if response.status_code == 413 or code == "RequestBodyTooLarge":
        return CloudError(
            scrub(f"{what} at {where} was refused as too large ({detail})"),
            hint="exclude large files from the build context in .dockerignore",
        )
    tried = f" after {attempts} attempts" if attempts > 1 else ""
    return CloudError(
        scrub(f"{what} at {where} failed{tried} ({detail})"),
        hint="Azure Storage did not accept the request; run the build again",
    )


# --- the client -------------------------------------------------------------------------------


class AcrTasksClient:
    """The ACR Tasks calls for one registry, with one bearer token, over one CloudHttp."""

    def __init__(
        self,
        registry: RegistryResource,
        token: str,
        *,
        endpoint: str = DEFAULT_ARM_ENDPOINT,
        retry: RetryPolicy = ARM_RETRY,
        secrets: Iterable[str] = (),
        on_retry: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 60.0,
    ) -> None:
        self.registry = registry
        self.endpoint = endpoint.rstrip("/")
        self._token = token
        self._sleep = sleep
        # The token rides on the ARM calls only (see _arm); blob calls carry their SAS.
        self.http = CloudHttp(
            "ACR Tasks",
            headers={"User-Agent": f"actk/{__version__} (acr-tasks)"},
            secrets=[*secrets, token],
            policy=retry,
            timeout=httpx.Timeout(timeout, connect=15.0),
            sleep=sleep,
            on_retry=on_retry,
            retry_if=lambda response: response.status_code == 408,
            unreachable=self._no_answer,
        )
        self.redact = self.http.redact

    def __enter__(self) -> AcrTasksClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    # --- transport ----------------------------------------------------------------------------

    def _no_answer(self, what: str, exc: Exception, attempts: int) -> CloudError:
        tried = f" after {attempts} attempts" if attempts > 1 else ""
        return CloudError(
            self.redact(f"{what}: no answer{tried} ({type(exc).__name__}: {exc})"),
            hint="check the network, proxy (HTTPS_PROXY) and firewall between this machine and "
            "Azure",
        )

    def _arm(
        self,
        method: str,
        operation: str,
        path: str = "",
        *,
        body: dict[str, Any] | None = None,
        url: str | None = None,
        headers: dict[str, str] | None = None,
        ok: tuple[int, ...] = (200,),
        idempotent: bool | None = None,
    ) -> httpx.Response:
        target = url or f"{self.endpoint}{self.registry.id}{path}"
        params = None if url else {"api-version": API_VERSION}
        request_headers = {
            "Authorization": f"Bearer {self._token}",
            "Accept": "application/json",
            **(headers or {}),
        }
        response = self.http.request(
            method,
            target,
            params=params,
            json=body,
            headers=request_headers,
            idempotent=idempotent,
            label=f"ACR Tasks {operation}",
        )
        if response.status_code not in ok:
            raise arm_error(
                response, operation, self.registry, self.redact, attempts_made(response)
            )
        return response

    def _json(self, response: httpx.Response, operation: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise CloudError(
                f"ACR Tasks {operation}: the answer is not a JSON object",
                hint="check the ARM endpoint (ACTK_AZURE_ARM_ENDPOINT); retry if it persists",
            )
        return body

    # --- the calls ----------------------------------------------------------------------------

    def source_upload_url(self, correlation_id: str) -> SourceUpload:
        """Where to upload a build context. ACR derives the blob name from the correlation id,
        so each upload needs its own (parallel uploads with one id overwrite each other)."""
        response = self._arm(
            "POST",
            "listBuildSourceUploadUrl",
            "/listBuildSourceUploadUrl",
            headers={"x-ms-correlation-request-id": correlation_id},
            idempotent=True,  # it only hands out an upload URL
        )
        body = self._json(response, "listBuildSourceUploadUrl")
        if not body.get("uploadUrl") or not body.get("relativePath"):
            raise CloudError(
                "ACR Tasks listBuildSourceUploadUrl answered without uploadUrl or relativePath",
                hint="retry; if it persists, check the ARM endpoint (ACTK_AZURE_ARM_ENDPOINT)",
            )
        self.http.add_secret(body["uploadUrl"])
        return SourceUpload(upload_url=body["uploadUrl"], relative_path=body["relativePath"])

    def upload_source(self, upload: SourceUpload, archive: bytes, correlation_id: str) -> None:
        """PUT the tar.gz as one block blob (no ARM token: the SAS URL is the authorisation)."""
        headers = {
            "x-ms-blob-type": "BlockBlob",
            "x-ms-version": BLOB_VERSION,
            "x-ms-correlation-request-id": correlation_id,
            "Content-Type": "application/octet-stream",
        }
        what = "uploading the build context"
        response = self.http.request(
            "PUT", upload.upload_url, content=archive, headers=headers, timeout=600.0, label=what
        )
        if response.status_code not in (200, 201):
            raise blob_error(
                response, what, upload.upload_url, self.redact, attempts_made(response)
            )

    def schedule_run(self, request: dict[str, Any]) -> RunState:
        """Queue a run; a 202 is followed through its Location until the run appears."""
        response = self._arm(
            "POST", "scheduleRun", "/scheduleRun", body=request, ok=(200, 201, 202)
        )
        polls = 0
        while response.status_code == 202:
            location = response.headers.get("location") or response.headers.get(
                "azure-asyncoperation"
            )
            if not location or not self._same_origin(location) or polls >= 60:
                raise CloudError(
                    "ACR Tasks scheduleRun was accepted but the run never appeared",
                    hint="list recent runs with `az acr task list-runs --registry "
                    f"{self.registry.name}`, then run the build again",
                )
            polls += 1
            after = retry_after(response)
            self._sleep(1.0 if after is None else min(after, self.http.policy.max_backoff))
            response = self._arm("GET", "scheduleRun", url=location, ok=(200, 202))
        return RunState.from_json(self._json(response, "scheduleRun"))

    def get_run(self, run_id: str) -> RunState:
        response = self._arm("GET", "getRun", f"/runs/{quote(run_id, safe='')}")
        return RunState.from_json(self._json(response, "getRun"))

    def cancel_run(self, run_id: str) -> None:
        self._arm(
            "POST",
            "cancel",
            f"/runs/{quote(run_id, safe='')}/cancel",
            ok=(200, 202, 204),
            idempotent=True,
        )

    def log_url(self, run_id: str) -> str:
        """A SAS URL of the run's log blob (``logLink``)."""
        response = self._arm(
            "POST",
            "listLogSasUrl",
            f"/runs/{quote(run_id, safe='')}/listLogSasUrl",
            idempotent=True,  # it only hands out a read URL
        )
        body = self._json(response, "listLogSasUrl")
        link = body.get("logLink") or body.get("logArtifactLink")
        if not link:
            raise CloudError(
                f"ACR Tasks listLogSasUrl answered without a log link for run {run_id}",
                hint=f"read the log with `az acr task logs --registry {self.registry.name} "
                f"--run-id {run_id}`",
            )
        self.http.add_secret(link)
        return str(link)

    def log_state(self, url: str) -> LogBlob | None:
        """The log blob's length and Complete metadata; None while it does not exist yet."""
        response = self.http.request(
            "HEAD", url, headers=self._blob_headers(), label="reading the run log"
        )
        if response.status_code == 404:
            return None
        if response.status_code == 403:
            raise LogLinkExpired
        if response.status_code != 200:
            raise blob_error(
                response, "reading the run log", url, self.redact, attempts_made(response)
            )
        complete = next(
            (v for k, v in response.headers.items() if k.lower() == "x-ms-meta-complete"), None
        )
        return LogBlob(length=int(response.headers.get("content-length") or 0), complete=complete)

    def read_log(self, url: str, start: int, end: int) -> bytes:
        """Bytes ``start``..``end`` (inclusive) of the log blob."""
        headers = {**self._blob_headers(), "Range": f"bytes={start}-{end}"}
        response = self.http.request("GET", url, headers=headers, label="reading the run log")
        if response.status_code == 206:
            return response.content
        if response.status_code == 200:  # a server that ignored the range
            return response.content[start : end + 1]
        if response.status_code in (404, 416):
            return b""
        if response.status_code == 403:
            raise LogLinkExpired
        raise blob_error(response, "reading the run log", url, self.redact, attempts_made(response))

    # --- helpers ------------------------------------------------------------------------------

    @staticmethod
    def _blob_headers() -> dict[str, str]:
        return {"x-ms-version": BLOB_VERSION, "x-ms-client-request-id": str(uuid.uuid4())}

    def _same_origin(self, url: str) -> bool:
        """Whether ``url`` is on the ARM endpoint (the token goes nowhere else)."""
        mine, theirs = urlsplit(self.endpoint), urlsplit(url)
        return (mine.scheme, mine.netloc) == (theirs.scheme, theirs.netloc)
