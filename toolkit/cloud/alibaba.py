"""Alibaba Cloud OpenAPI calls: credentials, V3-signed RPC and ROA requests, errors with fixes.

Credentials come from ``ALIBABA_CLOUD_ACCESS_KEY_ID`` / ``ALIBABA_CLOUD_ACCESS_KEY_SECRET``
(plus ``ALIBABA_CLOUD_SECURITY_TOKEN`` for STS), else from the ``alibabacloud_credentials``
default chain when that optional package is installed.

``AlibabaClient`` sends each call to ``<product>.<region>.aliyuncs.com`` (or an ``endpoint``
override, which tests point at a local contract server) through
:class:`~toolkit.cloud.http.CloudHttp`, which retries throttling (429/503, and Alibaba's
``Throttling.*`` codes in a 400), 5xx answers and connection failures a bounded number of
times; :class:`Acs3Auth` signs every attempt afresh (a new date and nonce). Alibaba's error
bodies (RPC ``Code``/``Message``/``RequestId``, ROA ``code``/``message``/``requestId``) become
``AlibabaAPIError`` with a hint. No secret reaches an exception's text.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from toolkit.cloud import acs3
from toolkit.cloud.http import CloudHttp, RetryPolicy, attempts_made
from toolkit.errors import CloudError
from toolkit.registry.hosts import is_loopback

ACCESS_KEY_ID_VARIABLE = "ALIBABA_CLOUD_ACCESS_KEY_ID"
ACCESS_KEY_SECRET_VARIABLE = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"
SECURITY_TOKEN_VARIABLE = "ALIBABA_CLOUD_SECURITY_TOKEN"

# cn-hangzhou, ap-southeast-1, cn-shanghai-finance-1, cn-north-2-gov-1 ...
REGION_PATTERN = re.compile(r"^[a-z]{2,3}(-[a-z0-9]+){1,4}$")

SIGNATURE_CODES = frozenset({"SignatureDoesNotMatch", "IncompleteSignature"})
CLOCK_CODES = frozenset(
    {"InvalidTimeStamp.Expired", "InvalidTimeStamp.Format", "RequestTimeTooSkewed"}
)
PERMISSION_CODES = frozenset(
    {"Forbidden.RAM", "NoPermission", "Forbidden.NoPermission", "Forbidden", "NotAuthorized"}
)
REGION_CODES = frozenset({"InvalidRegionId", "InvalidRegionId.NotFound", "UnsupportedRegion"})
THROTTLING_CODES = frozenset({"ServiceUnavailable", "SystemBusy", "ServiceBusy"})
MAX_SERVER_MESSAGE = 300


# --- credentials ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlibabaCredentials:
    """An access key (and, for STS, its security token); the secret parts stay out of repr."""

    access_key_id: str
    access_key_secret: str = field(repr=False)
    security_token: str | None = field(default=None, repr=False)
    source: str = ""

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in output (for ``toolkit.redact``)."""
        return tuple(s for s in (self.access_key_secret, self.security_token) if s)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AlibabaCredentials:
        """The access key in ``env``, else the ``alibabacloud_credentials`` default chain
        (which reads the process environment, ~/.alibabacloud/credentials, an ECS RAM role or
        OIDC), else a CloudError naming the variables to set."""
        key_id = (env.get(ACCESS_KEY_ID_VARIABLE) or "").strip()
        secret = (env.get(ACCESS_KEY_SECRET_VARIABLE) or "").strip()
        token = (env.get(SECURITY_TOKEN_VARIABLE) or "").strip() or None
        if key_id and secret:
            names = [ACCESS_KEY_ID_VARIABLE, ACCESS_KEY_SECRET_VARIABLE]
            if token:
                names.append(SECURITY_TOKEN_VARIABLE)
            return cls(key_id, secret, token, source="/".join(names))
        if key_id or secret:
            missing = ACCESS_KEY_SECRET_VARIABLE if key_id else ACCESS_KEY_ID_VARIABLE
            raise CloudError(
                f"{missing} is not set but its partner is",
                hint=f"set both {ACCESS_KEY_ID_VARIABLE} and {ACCESS_KEY_SECRET_VARIABLE} "
                "(RAM console > AccessKey), or neither",
            )
        return _from_default_chain()


def _from_default_chain() -> AlibabaCredentials:
    hint = (
        f"set {ACCESS_KEY_ID_VARIABLE} and {ACCESS_KEY_SECRET_VARIABLE} (plus "
        f"{SECURITY_TOKEN_VARIABLE} for STS credentials), or configure the Alibaba Cloud "
        "default credential chain (aliyun configure, an ECS RAM role, or OIDC in CI)"
    )
    try:
        from alibabacloud_credentials.client import Client as CredentialClient
    except ImportError:
        raise CloudError(
            f"no Alibaba Cloud credentials: {ACCESS_KEY_ID_VARIABLE} and "
            f"{ACCESS_KEY_SECRET_VARIABLE} are not set and alibabacloud_credentials is not "
            "installed",
            hint=hint + " after pip install alibabacloud_credentials",
        ) from None
    # The chain logs each provider it tries, with a traceback, on its own stderr handler
    # (logger "credentials"); what failed is reported below as one line instead.
    chain_log = logging.getLogger("credentials")
    was_disabled, chain_log.disabled = chain_log.disabled, True
    try:
        model = CredentialClient().get_credential()
    except Exception as exc:  # the chain raises its own CredentialException and others
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CloudError(
            f"the Alibaba Cloud default credential chain found no credentials: {text[:200]}",
            hint=hint,
        ) from None
    finally:
        chain_log.disabled = was_disabled
    if not (model.access_key_id and model.access_key_secret):
        raise CloudError(
            "the Alibaba Cloud default credential chain gave no access key",
            hint=hint,
        )
    provider = getattr(model, "provider_name", None) or getattr(model, "type", None) or "default"
    return AlibabaCredentials(
        model.access_key_id,
        model.access_key_secret,
        model.security_token or None,
        source=f"alibabacloud_credentials default chain ({provider})",
    )


# --- errors -----------------------------------------------------------------------------------


class AlibabaAPIError(CloudError):
    """An Alibaba Cloud API call failed; ``code`` and ``request_id`` are Alibaba's own."""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        code: str = "",
        status: int | None = None,
        request_id: str = "",
        action: str = "",
    ) -> None:
        super().__init__(message, hint=hint)
        self.code = code
        self.status = status
        self.request_id = request_id
        self.action = action

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "code": self.code, "request_id": self.request_id}


@dataclass(frozen=True)
class ErrorBody:
    """The fields Alibaba puts in an error answer, whichever casing the API style uses."""

    code: str
    message: str
    request_id: str = ""
    recommend: str = ""
    auth_action: str = ""

    @classmethod
    def parse(cls, status: int, text: str) -> ErrorBody:
        """From an answer's text: JSON in either casing, else the first of the raw text."""
        try:
            body = json.loads(text) if text.strip() else {}
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return cls(code=f"HTTP{status}", message=text.strip()[:MAX_SERVER_MESSAGE])
        return cls.from_json(status, body)

    @classmethod
    def from_json(cls, status: int, body: Mapping[str, Any]) -> ErrorBody:
        def pick(*names: str) -> str:
            for name in names:
                value = body.get(name)
                if value not in (None, ""):
                    return str(value)
            return ""

        detail = body.get("AccessDeniedDetail") or body.get("accessDeniedDetail")
        return cls(
            code=pick("Code", "code", "errorCode", "ErrorCode") or f"HTTP{status}",
            message=pick("Message", "message", "errorMessage", "ErrorMessage"),
            request_id=pick("RequestId", "requestId", "request_id"),
            recommend=pick("Recommend", "recommend"),
            auth_action=str(detail.get("AuthAction") or "") if isinstance(detail, dict) else "",
        )


def is_throttling(status: int, code: str) -> bool:
    return status == 429 or code.startswith("Throttling") or code in THROTTLING_CODES


def throttled(response: httpx.Response) -> bool:
    """A failed answer whose error code says "throttled" (Alibaba sends them with a 400)."""
    if response.is_success:
        return False
    code = ErrorBody.parse(response.status_code, response.text).code
    return is_throttling(response.status_code, code)


def hint_for(
    code: str,
    status: int | None,
    *,
    ram_action: str,
    access_key_id: str,
    region: str,
    recommend: str = "",
) -> str:
    """The fix for an Alibaba error code (or status), in one line."""
    if code in SIGNATURE_CODES:
        return (
            f"Alibaba Cloud computed another signature: check that {ACCESS_KEY_SECRET_VARIABLE} "
            f"is the secret of access key {access_key_id} (no stray spaces or line breaks) and "
            "that this machine's clock is right (a signature is valid for 15 minutes; sync "
            "with NTP)"
        )
    if code in CLOCK_CODES:
        return (
            "this machine's clock is off (Alibaba Cloud accepts requests dated within 15 "
            "minutes): sync it with NTP and retry"
        )
    if code.startswith("InvalidAccessKeyId"):
        return (
            f"access key {access_key_id} does not exist or is disabled: check "
            f"{ACCESS_KEY_ID_VARIABLE} against the RAM console (AccessKey management)"
        )
    if code.startswith("InvalidSecurityToken"):
        return (
            f"the STS token is expired or belongs to another access key: get fresh STS "
            f"credentials and set {ACCESS_KEY_ID_VARIABLE}, {ACCESS_KEY_SECRET_VARIABLE} and "
            f"{SECURITY_TOKEN_VARIABLE} together"
        )
    if code in PERMISSION_CODES or code.startswith(("Forbidden.RAM", "NoPermission")):
        return (
            f"the RAM user or role lacks the {ram_action} permission: attach a policy that "
            f'allows "Action": "{ram_action}" (RAM console > Grant permission)'
        )
    if code in REGION_CODES:
        return f"'{region}' is not a region this service runs in: check the region id"
    if is_throttling(status or 0, code):
        return "Alibaba Cloud is throttling these calls: wait a minute and retry"
    if status is not None and status >= 500:
        return "Alibaba Cloud had a server-side failure: retry in a minute"
    if recommend:
        return f"see {recommend}"
    return f"see https://api.aliyun.com/troubleshoot?q={code}"


# --- the client -------------------------------------------------------------------------------


def validate_region(region: str) -> str:
    if not REGION_PATTERN.match(region or ""):
        raise CloudError(
            f"'{region}' is not an Alibaba Cloud region id",
            hint="use a region id such as cn-hangzhou, cn-shanghai or ap-southeast-1",
        )
    return region


def default_endpoint(product: str, region: str) -> str:
    return f"https://{product}.{validate_region(region)}.aliyuncs.com"


def _base_url(endpoint: str) -> str:
    endpoint = endpoint.strip().rstrip("/")
    return endpoint if "://" in endpoint else f"https://{endpoint}"


class Acs3Auth(httpx.Auth):
    """Signs one call (``path`` decoded, ``query`` as given) each time httpx sends it, so every
    retry carries its own date and nonce."""

    requires_request_body = True

    def __init__(
        self,
        credentials: AlibabaCredentials,
        path: str,
        query: Mapping[str, acs3.QueryValue],
    ) -> None:
        self.credentials = credentials
        self.path = path
        self.query = query

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.update(
            acs3.sign_request(
                request.method,
                request.headers["host"],
                self.path,
                self.query,
                request.headers,
                request.content,
                credentials=self.credentials,
            )
        )
        yield request


class AlibabaClient:
    """Signed calls to one Alibaba Cloud product in one region.

    ``rpc`` sends an RPC-style call (parameters in the query, path ``/``); ``roa`` a ROA-style
    call (resource path, optional JSON body). Both return the decoded JSON answer.
    """

    def __init__(
        self,
        credentials: AlibabaCredentials,
        *,
        product: str,
        region: str,
        endpoint: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.credentials = credentials
        self.product = product
        self.region = validate_region(region)
        self.endpoint_overridden = bool(endpoint)
        self.base_url = _base_url(endpoint) if endpoint else default_endpoint(product, region)
        url = httpx.URL(self.base_url)
        self.host = url.netloc.decode("ascii")
        self.http = CloudHttp(
            f"Alibaba Cloud {product}",
            secrets=credentials.secrets,
            policy=retry or RetryPolicy(max_backoff=8.0),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
            # Proxy and CA settings from the environment, except for a loopback endpoint (a
            # local contract server), which no proxy can reach.
            trust_env=not is_loopback(url.host),
            sleep=sleep,
            retry_if=throttled,
            unreachable=self._unreachable,
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> AlibabaClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def rpc(
        self,
        action: str,
        version: str,
        params: Mapping[str, acs3.QueryValue] | None = None,
        *,
        method: str = "POST",
        ram_action: str | None = None,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        """An RPC call: ``params`` go in the query string, the body is empty. RPC calls are
        POSTs whatever they do, so a failed one is replayed unless ``idempotent=False`` (an
        action that creates something)."""
        return self._call(method, "/", params or {}, None, action, version, ram_action, idempotent)

    def roa(
        self,
        method: str,
        path: str,
        *,
        action: str,
        version: str,
        query: Mapping[str, acs3.QueryValue] | None = None,
        body: Any = None,
        ram_action: str | None = None,
        idempotent: bool | None = None,
    ) -> dict[str, Any]:
        """A ROA call on ``path`` (decoded; it is encoded when signed and sent), with ``body``
        sent as JSON when given; replayed after a failure as its method allows, unless
        ``idempotent`` says otherwise."""
        return self._call(method, path, query or {}, body, action, version, ram_action, idempotent)

    # -- internals --

    def _call(
        self,
        method: str,
        path: str,
        query: Mapping[str, acs3.QueryValue],
        json_body: Any,
        action: str,
        version: str,
        ram_action: str | None,
        idempotent: bool | None,
    ) -> dict[str, Any]:
        ram_action = ram_action or f"{self.product}:{action}"
        headers = {"x-acs-action": action, "x-acs-version": version, "accept": "application/json"}
        content = b""
        if json_body is not None:
            content = json.dumps(json_body, separators=(",", ":")).encode("utf-8")
            headers["content-type"] = "application/json; charset=utf-8"
        url = self.base_url + acs3.canonical_uri(path)
        query_string = acs3.canonical_query_string(query)
        if query_string:
            url += "?" + query_string
        response = self.http.request(
            method,
            url,
            headers=headers,
            content=content,
            auth=Acs3Auth(self.credentials, path, query),
            idempotent=idempotent,
            label=action,
        )
        if response.is_success:
            answer = self._decode(response, action)
            if answer.get("IsSuccess") is False:  # RPC APIs that answer 200 on failure
                error = ErrorBody.from_json(response.status_code, answer)
                raise self._error(action, ram_action, response.status_code, error, 1)
            return answer
        error = ErrorBody.parse(response.status_code, response.text)
        raise self._error(action, ram_action, response.status_code, error, attempts_made(response))

    def _decode(self, response: httpx.Response, action: str) -> dict[str, Any]:
        if not response.content.strip():
            return {}
        try:
            answer = response.json()
        except ValueError:
            raise CloudError(
                f"{action} on {self.host} answered with something that is not JSON: "
                f"{self.http.redact(response.text.strip()[:200])}",
                hint="check that the endpoint is an Alibaba Cloud OpenAPI endpoint",
            ) from None
        if not isinstance(answer, dict):
            raise CloudError(
                f"{action} on {self.host} answered with JSON that is not an object",
                hint="check that the endpoint is an Alibaba Cloud OpenAPI endpoint",
            )
        return answer

    def _error(
        self, action: str, ram_action: str, status: int, error: ErrorBody, attempts: int
    ) -> AlibabaAPIError:
        server_message = error.message.strip()
        if len(server_message) > MAX_SERVER_MESSAGE:
            server_message = server_message[:MAX_SERVER_MESSAGE] + "..."
        parts = [f"{action} on {self.host} failed: {error.code}"]
        if server_message:
            parts.append(f": {server_message}")
        parts.append(f" (HTTP {status}")
        if error.request_id:
            parts.append(f", RequestId {error.request_id}")
        if attempts > 1:
            parts.append(f", after {attempts} attempts")
        parts.append(")")
        hint = hint_for(
            error.code,
            status,
            ram_action=error.auth_action or ram_action,
            access_key_id=self.credentials.access_key_id,
            region=self.region,
            recommend=error.recommend,
        )
        return AlibabaAPIError(
            self.http.redact("".join(parts)),
            hint=self.http.redact(hint),
            code=error.code,
            status=status,
            request_id=error.request_id,
            action=action,
        )

    def _unreachable(self, action: str, exc: Exception, attempts: int) -> AlibabaAPIError:
        reason = str(exc).strip() or type(exc).__name__
        if self.endpoint_overridden:
            hint = f"check that the endpoint {self.base_url} is up and reachable"
        else:
            hint = (
                f"check the network and proxy settings, and that '{self.region}' is an Alibaba "
                f"Cloud region where {self.product} is offered (e.g. cn-hangzhou)"
            )
        return AlibabaAPIError(
            self.http.redact(
                f"cannot reach {self.host} for {action} after {attempts} attempts: {reason}"
            ),
            hint=hint,
            code="ConnectionError",
            action=action,
        )
