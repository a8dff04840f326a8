"""A local stand-in for ACR Tasks: the Resource Manager calls and the blob URLs they hand out.

It implements the documented subset `actk build --remote acr` uses (api-version
2019-06-01-preview) on 127.0.0.1 with an ephemeral port, in a thread:

    POST {registry}/listBuildSourceUploadUrl   -> {uploadUrl, relativePath}
    PUT  /blob/source/<id>.tar.gz?...&sig=      the build context (BlockBlob, no bearer token)
    POST {registry}/scheduleRun                -> Run (200), or 202 + Location when async
    POST {registry}/runs/{id}/listLogSasUrl    -> {logLink}
    HEAD/GET /blob/logs/<id>/rawtext.log?...    a log that grows by one chunk per HEAD, then
                                                carries x-ms-meta-Complete
    GET  {registry}/runs/{id}                  -> Run, Queued -> Running -> the outcome
    POST {registry}/runs/{id}/cancel

Every ARM request must carry the bearer token and the api-version; every request body and
every answer is cross-checked against azure-mgmt-containerregistry's models (10.3.0,
``v2019_06_01_preview``): no field the model does not know, the model's required fields and
bounds, the documented enums. A broken rule is recorded in ``violations`` (and answered with
a 400) so a test can assert the list is empty. ``fail()`` queues faults (403, 429, 5xx ...) for
any operation, including the blob ones ("upload", "log").
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import io
import json
import re
import tarfile
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

try:
    from azure.mgmt.containerregistry._serialization import Deserializer, Model
    from azure.mgmt.containerregistry.v2019_06_01_preview import models as acr_models
except ImportError as exc:  # a test dependency; 15.0 no longer ships the Tasks api-version
    raise ImportError(
        "the ACR Tasks contract needs the v2019_06_01_preview models of "
        "azure-mgmt-containerregistry: pip install 'azure-mgmt-containerregistry==10.3.0'"
    ) from exc

API_VERSION = "2019-06-01-preview"
MODELS = {name: value for name, value in vars(acr_models).items() if isinstance(value, type)}
_deserialize = Deserializer(MODELS)


# --- the SDK cross-check -----------------------------------------------------------------------


def _key_paths(value: Any, prefix: str = "") -> set[str]:
    paths: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if item is None:
                continue
            paths.add(prefix + key)
            paths |= _key_paths(item, f"{prefix}{key}.")
    elif isinstance(value, list):
        for item in value:
            paths |= _key_paths(item, f"{prefix}[].")
    return paths


def _rule_problems(obj: Model, where: str, *, request: bool) -> list[str]:
    problems = []
    for attr, description in obj._attribute_map.items():
        rules = obj._validation.get(attr, {})
        value = getattr(obj, attr, None)
        name = f"{where}{description['key']}"
        if rules.get("required") and value is None:
            problems.append(f"{name} is required")
        if request and rules.get("readonly") and value is not None:
            problems.append(f"{name} is read-only and must not be sent")
        if value is not None and "minimum" in rules and value < rules["minimum"]:
            problems.append(f"{name}={value} is below {rules['minimum']}")
        if value is not None and "maximum" in rules and value > rules["maximum"]:
            problems.append(f"{name}={value} is above {rules['maximum']}")
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, Model):
                problems += _rule_problems(item, f"{name}.", request=request)
    return problems


def model_problems(model: str, body: Any, *, request: bool) -> list[str]:
    """What is wrong with ``body`` as the SDK model ``model`` (a request, or an answer)."""
    if not isinstance(body, dict):
        return [f"{model}: not a JSON object"]
    obj = _deserialize(model, copy.deepcopy(body))  # it pops the discriminator
    actual = type(obj).__name__
    back = obj.serialize(keep_readonly=not request)
    unknown = sorted(_key_paths(body) - _key_paths(back))
    problems = [f"{actual}: field {key} is not in the model" for key in unknown]
    problems += [f"{actual}: {problem}" for problem in _rule_problems(obj, "", request=request)]
    platform = getattr(obj, "platform", None)
    if isinstance(platform, acr_models.PlatformProperties):
        problems += _enum_problems(platform)
    return problems


def _enum_problems(platform: acr_models.PlatformProperties) -> list[str]:
    problems = []
    for value, enum in (
        (platform.os, acr_models.OS),
        (platform.architecture, acr_models.Architecture),
        (platform.variant, acr_models.Variant),
    ):
        if value is not None and value not in {member.value for member in enum}:
            problems.append(f"platform value {value!r} is not one of {[m.value for m in enum]}")
    return problems


# --- the server state --------------------------------------------------------------------------


@dataclass
class Fault:
    status: int
    code: str = ""
    message: str = ""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Recorded:
    method: str
    operation: str
    path: str
    headers: dict[str, str]
    at: float


@dataclass
class RunRecord:
    run_id: str
    request: dict[str, Any]
    digest: str
    outcome: str
    error_message: str | None
    log: bytes
    chunks: list[int]  # end offsets of each chunk the log grows by
    ticks: int = 0
    visible: int = 0  # bytes of the log that exist so far
    complete: bool = False
    canceled: bool = False

    def tick(self) -> None:
        """The run moves on each time someone looks (a log HEAD or a run GET): the first look
        finds it queued with no log; each later one finds one more chunk of log; the last chunk
        comes with the Complete metadata and the run's outcome."""
        self.ticks += 1
        if self.ticks > 1 and not self.canceled:
            shown = min(self.ticks - 1, len(self.chunks))
            self.visible = self.chunks[shown - 1]
            self.complete = self.complete or shown == len(self.chunks)

    @property
    def status(self) -> str:
        if self.canceled:
            return "Canceled"
        if self.complete:
            return self.outcome
        return "Running" if self.visible else "Queued"


SECRET_SIGNATURE = "c2lnbmF0dXJlLW9mLXRoZS1zb3VyY2U%3D"  # what a real SAS sig looks like
LOG_SIGNATURE = "c2lnbmF0dXJlLW9mLXRoZS1sb2c%3D"


class AcrTasksContract:
    """The contract server; use it as a context manager (it stops at the end)."""

    def __init__(
        self,
        *,
        token: str,
        subscription_id: str,
        resource_group: str,
        registry: str,
        login_server: str,
        log_lines: list[str],
        log_steps: int = 4,
        outcome: str = "Succeeded",
        error_message: str | None = None,
        required_files: tuple[str, ...] = ("Dockerfile",),
        forbidden_files: tuple[str, ...] = (".env", ".env.*", "*.pem", "*.key", "id_rsa"),
        schedule_async: bool = False,
    ) -> None:
        self.token = token
        self.subscription_id = subscription_id
        self.resource_group = resource_group
        self.registry = registry
        self.login_server = login_server
        self.log_lines = log_lines
        self.log_steps = log_steps
        self.outcome = outcome
        self.error_message = error_message
        self.required_files = required_files
        self.forbidden_files = forbidden_files
        self.schedule_async = schedule_async
        self.requests: list[Recorded] = []
        self.violations: list[str] = []
        self.correlation_ids: list[str] = []
        self.uploads: dict[str, bytes] = {}  # relativePath -> tar.gz
        self.archive_names: list[list[str]] = []
        self.schedule_bodies: list[dict[str, Any]] = []
        self.runs: dict[str, RunRecord] = {}
        self.url = ""
        self._faults: dict[str, deque[Fault]] = {}
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- control --------------------------------------------------------------------------

    def fail(
        self,
        operation: str,
        status: int,
        *,
        code: str = "",
        message: str = "",
        headers: dict[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` calls of ``operation`` with this error."""
        queue = self._faults.setdefault(operation, deque())
        queue.extend(Fault(status, code, message, dict(headers or {})) for _ in range(times))

    def calls(self, operation: str) -> list[Recorded]:
        return [r for r in self.requests if r.operation == operation]

    @property
    def registry_path(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.ContainerRegistry/registries/{self.registry}"
        )

    def source_url(self, name: str) -> str:
        return (
            f"{self.url}/blob/source/{name}.tar.gz?sv=2021-08-06&sr=b&sp=cw"
            f"&se=2030-01-01T00%3A00%3A00Z&sig={SECRET_SIGNATURE}"
        )

    def log_url(self, run_id: str) -> str:
        return (
            f"{self.url}/blob/logs/{run_id}/rawtext.log?sv=2021-08-06&sr=b&sp=r"
            f"&se=2030-01-01T00%3A00%3A00Z&sig={LOG_SIGNATURE}"
        )

    def __enter__(self) -> AcrTasksContract:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        contract = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as separate writes

            def do_GET(self) -> None:
                contract._handle(self, "GET")

            def do_HEAD(self) -> None:
                contract._handle(self, "HEAD")

            def do_POST(self) -> None:
                contract._handle(self, "POST")

            def do_PUT(self) -> None:
                contract._handle(self, "PUT")

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # --- dispatch ---------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        length = int(handler.headers.get("content-length") or 0)
        body = handler.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in handler.headers.items()}
        operation = self._operation(method, parts.path)
        with self._lock:
            self.requests.append(Recorded(method, operation, parts.path, headers, time.monotonic()))
            queue = self._faults.get(operation)
            fault = queue.popleft() if queue else None
        if fault is not None:
            if parts.path.startswith("/blob/"):
                return self._blob_error(
                    handler,
                    fault.status,
                    fault.code or "ServerBusy",
                    fault.message,
                    fault.headers,
                    method,
                )
            return self._arm_error(handler, fault.status, fault.code, fault.message, fault.headers)
        if parts.path.startswith("/blob/"):
            return self._blob(handler, method, parts.path, query, headers, body)
        return self._arm(handler, method, operation, parts.path, query, headers, body)

    def _operation(self, method: str, path: str) -> str:
        if path.startswith("/blob/source/"):
            return "upload"
        if path.startswith("/blob/logs/"):
            return "log"
        tail = path.rsplit("/registries/", 1)[-1]
        segments = tail.split("/")[1:]
        if segments == ["listBuildSourceUploadUrl"]:
            return "listBuildSourceUploadUrl"
        if segments == ["scheduleRun"]:
            return "scheduleRun"
        if len(segments) == 2 and segments[0] == "operationResults":
            return "scheduleRunResult"
        if len(segments) == 2 and segments[0] == "runs":
            return "getRun"
        if len(segments) == 3 and segments[0] == "runs":
            return {"listLogSasUrl": "listLogSasUrl", "cancel": "cancel"}.get(segments[2], "?")
        return f"unknown {method} {path}"

    def _violation(self, text: str) -> None:
        with self._lock:
            self.violations.append(text)

    # --- ARM ----------------------------------------------------------------------------------

    def _arm(
        self,
        handler: BaseHTTPRequestHandler,
        method: str,
        operation: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
    ) -> None:
        if headers.get("authorization") != f"Bearer {self.token}":
            return self._arm_error(
                handler,
                401,
                "InvalidAuthenticationToken",
                "The access token is invalid.",
            )
        if query.get("api-version") != API_VERSION:
            self._violation(f"{operation}: api-version {query.get('api-version')!r}")
            return self._arm_error(
                handler,
                400,
                "InvalidApiVersionParameter",
                f"The api-version '{query.get('api-version')}' is invalid.",
            )
        not_found = self._not_found(path)
        if not_found:
            return self._arm_error(handler, 404, *not_found)
        expected = {
            "listBuildSourceUploadUrl": "POST",
            "scheduleRun": "POST",
            "getRun": "GET",
            "listLogSasUrl": "POST",
            "cancel": "POST",
            "scheduleRunResult": "GET",
        }
        if expected.get(operation) != method:
            self._violation(f"{method} {path}: no such ARM operation")
            return self._arm_error(handler, 405, "MethodNotAllowed", f"{method} {path}")
        return getattr(self, f"_op_{operation}")(handler, path, headers, body)

    def _not_found(self, path: str) -> tuple[str, str] | None:
        match = re.match(
            r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/"
            r"Microsoft\.ContainerRegistry/registries/([^/]+)",
            path,
        )
        if not match:
            return "InvalidResourceType", f"no resource at {path}"
        subscription, group, registry = match.groups()
        if subscription != self.subscription_id:
            return "SubscriptionNotFound", f"The subscription '{subscription}' could not be found."
        if group.lower() != self.resource_group.lower():
            return "ResourceGroupNotFound", f"Resource group '{group}' could not be found."
        if registry.lower() != self.registry.lower():
            return (
                "ResourceNotFound",
                f"The Resource 'Microsoft.ContainerRegistry/registries/{registry}' under "
                f"resource group '{group}' was not found.",
            )
        return None

    def _answer(
        self,
        handler: BaseHTTPRequestHandler,
        model: str,
        payload: dict[str, Any],
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> None:
        for problem in model_problems(model, payload, request=False):
            self._violation(f"answer {problem}")
        self._send(handler, status, json.dumps(payload).encode(), "application/json", headers)

    def _op_listBuildSourceUploadUrl(self, handler, path, headers, body) -> None:
        correlation = headers.get("x-ms-correlation-request-id")
        if not correlation:
            self._violation("listBuildSourceUploadUrl without x-ms-correlation-request-id")
            correlation = str(uuid.uuid4())
        with self._lock:
            if correlation in self.correlation_ids:
                self._violation(f"correlation id {correlation} reused for a second upload")
            self.correlation_ids.append(correlation)
        self._answer(
            handler,
            "SourceUploadDefinition",
            {
                "uploadUrl": self.source_url(correlation),
                "relativePath": f"source/202601010000/{correlation}.tar.gz",
            },
        )

    def _op_scheduleRun(self, handler, path, headers, body) -> None:
        try:
            request = json.loads(body)
        except ValueError:
            self._violation("scheduleRun body is not JSON")
            return self._arm_error(handler, 400, "InvalidRequestContent", "not JSON")
        problems = model_problems("RunRequest", request, request=True)
        problems += self._build_request_problems(request)
        if problems:
            for problem in problems:
                self._violation(f"scheduleRun {problem}")
            return self._arm_error(handler, 400, "InvalidRequestContent", "; ".join(problems))
        with self._lock:
            self.schedule_bodies.append(request)
            run_id = f"cb{len(self.runs) + 1}"
            archive = self.uploads[request["sourceLocation"]]
            run = RunRecord(
                run_id=run_id,
                request=request,
                digest="sha256:" + hashlib.sha256(archive).hexdigest(),
                outcome=self.outcome,
                error_message=self.error_message,
                log=("".join(line + "\r\n" for line in self.log_lines)).encode(),
                chunks=[],
            )
            run.chunks = _chunk_ends(len(run.log), self.log_steps)
            self.runs[run_id] = run
        if self.schedule_async:
            location = (
                f"{self.url}{self.registry_path}/operationResults/{run_id}"
                f"?api-version={API_VERSION}"
            )
            return self._send(
                handler, 202, b"", "application/json", {"Location": location, "Retry-After": "0"}
            )
        self._answer(handler, "Run", self._run_json(run))

    def _op_scheduleRunResult(self, handler, path, headers, body) -> None:
        run = self.runs.get(path.rsplit("/", 1)[-1])
        if run is None:
            return self._arm_error(handler, 404, "OperationNotFound", path)
        self._answer(handler, "Run", self._run_json(run))

    def _op_getRun(self, handler, path, headers, body) -> None:
        run = self.runs.get(path.rsplit("/", 1)[-1])
        if run is None:
            return self._arm_error(handler, 404, "RunNotFound", "run not found")
        with self._lock:
            run.tick()
        self._answer(handler, "Run", self._run_json(run))

    def _op_listLogSasUrl(self, handler, path, headers, body) -> None:
        run_id = path.rsplit("/", 2)[-2]
        if run_id not in self.runs:
            return self._arm_error(handler, 404, "RunNotFound", "run not found")
        self._answer(handler, "RunGetLogResult", {"logLink": self.log_url(run_id)})

    def _op_cancel(self, handler, path, headers, body) -> None:
        run = self.runs.get(path.rsplit("/", 2)[-2])
        if run is None:
            return self._arm_error(handler, 404, "RunNotFound", "run not found")
        with self._lock:
            run.canceled = run.complete = True
        self._send(handler, 200, b"", "application/json")

    def _build_request_problems(self, request: dict[str, Any]) -> list[str]:
        problems = []
        if request.get("type") != "DockerBuildRequest":
            problems.append(f"type {request.get('type')!r} is not DockerBuildRequest")
        source = request.get("sourceLocation")
        if source not in self.uploads:
            problems.append(f"sourceLocation {source!r} was never uploaded")
        for name in ("sourceLocation", "dockerFilePath", "imageNames", "platform"):
            if not request.get(name):
                problems.append(f"{name} is missing")
        if request.get("isPushEnabled") is not True:
            problems.append("isPushEnabled is not true")
        for image in request.get("imageNames") or ():
            if "/" in image and "." in image.split("/", 1)[0]:
                problems.append(f"imageNames entry {image!r} carries a registry host")
            if ":" not in image.rsplit("/", 1)[-1]:
                problems.append(f"imageNames entry {image!r} has no tag")
        if any(arg.get("isSecret") for arg in request.get("arguments") or ()):
            problems.append("a secret argument was sent")
        if source in self.uploads:
            problems += self._dockerfile_problems(self.uploads[source], request["dockerFilePath"])
        return problems

    @staticmethod
    def _dockerfile_problems(archive: bytes, path: str) -> list[str]:
        """ACR quick builds run the classic builder: no BuildKit-only RUN flags."""
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            try:
                member = tar.extractfile(path)
            except KeyError:
                member = None
            if member is None:
                return [f"dockerFilePath {path!r} is not in the uploaded context"]
            text = member.read().decode("utf-8")
        code = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
        if any(re.search(r"--mount=", line) for line in code):
            return [f"{path} uses RUN --mount, which the classic builder of ACR Tasks rejects"]
        return []

    def _run_json(self, run: RunRecord) -> dict[str, Any]:
        properties: dict[str, Any] = {
            "runId": run.run_id,
            "status": run.status,
            "runType": "QuickRun",
            "createTime": "2026-01-01T00:00:00+00:00",
            "lastUpdatedTime": "2026-01-01T00:00:05+00:00",
            "platform": run.request["platform"],
            "agentConfiguration": {"cpu": 2},
            "provisioningState": "Succeeded",
            "isArchiveEnabled": False,
        }
        if run.status == "Succeeded":
            properties["outputImages"] = [
                {
                    "registry": self.login_server,
                    "repository": name.rsplit(":", 1)[0],
                    "tag": name.rsplit(":", 1)[1],
                    "digest": run.digest,
                }
                for name in run.request["imageNames"]
            ]
        if run.status in ("Failed", "Error", "Timeout") and run.error_message:
            properties["runErrorMessage"] = run.error_message
        return {
            "id": f"{self.registry_path}/runs/{run.run_id}",
            "name": run.run_id,
            "type": "Microsoft.ContainerRegistry/registries/runs",
            "properties": properties,
        }

    def _arm_error(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        payload = {
            "error": {
                "code": code or "InternalServerError",
                "message": message or "An error occurred.",
            }
        }
        for problem in model_problems("ErrorResponse", payload, request=False):
            self._violation(f"error answer {problem}")
        extra = {"x-ms-correlation-request-id": str(uuid.uuid4()), **(headers or {})}
        self._send(handler, status, json.dumps(payload).encode(), "application/json", extra)

    # --- blobs ---------------------------------------------------------------------------------

    def _blob(self, handler, method, path, query, headers, body) -> None:
        if "authorization" in headers:
            self._violation(f"{method} {path}: a bearer token was sent to a blob URL")
        expected = SECRET_SIGNATURE if path.startswith("/blob/source/") else LOG_SIGNATURE
        # parse_qs decoded the signature; compare with the decoded form
        if query.get("sig") != expected.replace("%3D", "="):
            return self._blob_error(
                handler, 403, "AuthenticationFailed", "Signature did not match.", {}, method
            )
        if path.startswith("/blob/source/") and method == "PUT":
            return self._upload(handler, path, headers, body)
        if path.startswith("/blob/logs/") and method in ("HEAD", "GET"):
            return self._log(handler, method, path, headers)
        self._violation(f"{method} {path}: not a blob operation the flow needs")
        return self._blob_error(handler, 405, "UnsupportedHttpVerb", "", {}, method)

    def _upload(self, handler, path, headers, body) -> None:
        if headers.get("x-ms-blob-type") != "BlockBlob":
            self._violation(f"upload with x-ms-blob-type {headers.get('x-ms-blob-type')!r}")
            return self._blob_error(
                handler, 400, "MissingRequiredHeader", "x-ms-blob-type", {}, "PUT"
            )
        correlation = path.removeprefix("/blob/source/").removesuffix(".tar.gz")
        if headers.get("x-ms-correlation-request-id") != correlation:
            self._violation("the upload's correlation id differs from its listBuildSourceUploadUrl")
        try:
            with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
                members = tar.getmembers()
        except (tarfile.TarError, OSError, EOFError) as exc:
            self._violation(f"the uploaded context is not a tar.gz: {exc}")
            return self._blob_error(handler, 400, "InvalidInput", "not a tar.gz", {}, "PUT")
        names = [m.name for m in members]
        for name in self.required_files:
            if name not in names:
                self._violation(f"the uploaded context lacks {name}")
        for name in names:
            base = name.rsplit("/", 1)[-1]
            if any(fnmatch.fnmatch(base, pattern) for pattern in self.forbidden_files):
                self._violation(f"the uploaded context contains the secret file {name}")
            if name.startswith("/") or ".." in name.split("/"):
                self._violation(f"the uploaded context has an unsafe path {name}")
        with self._lock:
            self.uploads[f"source/202601010000/{correlation}.tar.gz"] = body
            self.archive_names.append(names)
        self._send(
            handler, 201, b"", "application/octet-stream", {"ETag": '"0x1"', "Content-MD5": ""}
        )

    def _log(self, handler, method, path, headers) -> None:
        run = self.runs.get(path.split("/")[3])
        if run is None:
            return self._blob_error(handler, 404, "BlobNotFound", "", {}, method)
        with self._lock:
            if method == "HEAD":
                run.tick()
            visible, complete = run.visible, run.complete
        meta = {"x-ms-blob-type": "AppendBlob"}
        if complete:
            meta["x-ms-meta-Complete"] = "successful" if run.outcome == "Succeeded" else "failed"
        if method == "HEAD":
            if not visible and not complete:
                return self._blob_error(handler, 404, "BlobNotFound", "", {}, method)
            return self._send(handler, 200, b"", "text/plain", meta, length=visible)
        match = re.match(r"^bytes=(\d+)-(\d+)$", headers.get("range", ""))
        if not match:
            self._violation("a log read without a Range header")
            return self._send(handler, 200, run.log[:visible], "text/plain", meta)
        start, end = int(match[1]), int(match[2])
        if start >= visible:
            return self._blob_error(handler, 416, "InvalidRange", "", {}, method)
        data = run.log[start : min(end + 1, visible)]
        meta["Content-Range"] = f"bytes {start}-{start + len(data) - 1}/{visible}"
        self._send(handler, 206, data, "text/plain", meta)

    def _blob_error(self, handler, status, code, message, headers, method) -> None:
        xml = (
            f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code>'
            f"<Message>{message}</Message></Error>"
        ).encode()
        body = b"" if method == "HEAD" else xml
        self._send(
            handler,
            status,
            body,
            "application/xml",
            {"x-ms-error-code": code, **headers},
            length=len(body),
        )

    # --- wire ---------------------------------------------------------------------------------

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
        length: int | None = None,
    ) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body) if length is None else length))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        if handler.command != "HEAD" and body:
            handler.wfile.write(body)


def _chunk_ends(size: int, steps: int) -> list[int]:
    """Offsets where the log's growth stops, at uneven places (mid-line, mid-character)."""
    if size == 0:
        return [0]
    ends = sorted({max(1, size * (i + 1) // steps - (i % 3)) for i in range(steps - 1)})
    return [*ends, size]
