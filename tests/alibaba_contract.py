"""A local stand-in for the Alibaba Cloud Container Registry API, checked like the real gateway.

It serves the documented subset the toolkit calls, on 127.0.0.1 and an ephemeral port:

    GET  /tokens         cr 2016-06-07 GetAuthorizationToken (ROA)    -> data.tempUserName, ...
    POST /?InstanceId=   cr 2018-12-01 GetAuthorizationToken (RPC)    -> TempUsername, ...
    POST /?PageNo=...    cr 2018-12-01 ListInstance (RPC, paged)      -> Instances, TotalCount

Every request is authenticated the way Alibaba's API gateway does it: the ACS3-HMAC-SHA256
signature is recomputed with the configured secret by Alibaba's own signer
(``alibabacloud_tea_openapi``, a test dependency, so the toolkit's signer is never its own
judge), and mismatches get Alibaba's status and error body (``RequestId``, ``HostId``, ``Code``,
``Message``, ``Recommend``). The date must be within 15 minutes, a nonce is accepted once, and
STS requests must carry (and sign) the right security token.

Use it through the ``alibaba_cr`` fixture (register this module in ``pytest_plugins``)::

    def test_push(alibaba_cr):
        cr = alibaba_cr(username="cr_temp_user", password="s3cret-registry-password")
        credentials_for(host, env=cr.env, endpoint=cr.endpoint)
        cr.fail("throttling", action="GetAuthorizationToken", times=2)
        assert [r.action for r in cr.requests] == [...]

Faults (``fail``): ``throttling`` (400 Throttling.User), ``server_error`` (500 InternalError),
``forbidden`` (403 Forbidden.RAM with AccessDeniedDetail), ``user_not_exist`` (404, ROA
``code``/``message`` form), or any status and body given explicitly.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.contract_server import (
    Faults,
    read_body,
    serve,
    shut,
    stopped_after,
    unavailable,
    url_of,
)

ACS3 = "ACS3-HMAC-SHA256"
PERSONAL_VERSION = "2016-06-07"
ENTERPRISE_VERSION = "2018-12-01"
MAX_CLOCK_SKEW_SECONDS = 15 * 60
_AUTHORIZATION = re.compile(
    r"^ACS3-HMAC-SHA256 Credential=(?P<key>[^,]+),SignedHeaders=(?P<names>[^,]+),"
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)

FAULTS: dict[str, tuple[int, Callable[[str], dict[str, Any]]]] = {
    "throttling": (
        400,
        lambda action: {
            "Code": "Throttling.User",
            "Message": "Request was denied due to user flow control.",
        },
    ),
    "server_error": (
        500,
        lambda action: {
            "Code": "InternalError",
            "Message": "The request processing has failed due to some unknown error, "
            "exception or failure.",
        },
    ),
    "forbidden": (
        403,
        lambda action: {
            "Code": "Forbidden.RAM",
            "Message": "User not authorized to operate on the specified resource, or this API "
            "doesn't support RAM.",
            "AccessDeniedDetail": {
                "AuthAction": f"cr:{action}",
                "AuthPrincipalType": "SubUser",
                "PolicyType": "AccountLevelIdentityBasedPolicy",
                "NoPermissionType": "ImplicitDeny",
            },
        },
    ),
    # The personal edition API's answer for a RAM user without a registry password (fc3).
    "user_not_exist": (
        404,
        lambda action: {"code": "USER_NOT_EXIST", "message": "user is not exist."},
    ),
}


@dataclass
class Instance:
    """An enterprise edition instance as ListInstance returns it."""

    instance_id: str
    name: str
    status: str = "RUNNING"

    def as_json(self, region: str) -> dict[str, Any]:
        return {
            "InstanceId": self.instance_id,
            "InstanceName": self.name,
            "InstanceStatus": self.status,
            "InstanceSpecification": "Enterprise_Basic",
            "RegionId": region,
            "CreateTime": "1562849679000",
            "ModifiedTime": "1562849760000",
        }


@dataclass
class RecordedRequest:
    """One request as the server saw it, and what it answered."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    status: int = 0
    code: str = ""

    @property
    def action(self) -> str | None:
        return self.headers.get("x-acs-action")

    @property
    def version(self) -> str | None:
        return self.headers.get("x-acs-version")

    @property
    def signed_headers(self) -> list[str]:
        match = _AUTHORIZATION.match(self.headers.get("authorization", ""))
        return match["names"].split(";") if match else []


@dataclass
class _Fault:
    name: str
    action: str | None
    remaining: int | None
    status: int
    body: dict[str, Any] | None


@dataclass(eq=False)
class AlibabaCRContract:
    """The server's configuration and state; ``start`` it, or use the ``alibaba_cr`` fixture."""

    username: str = "cr_temp_user"
    password: str = "temporary-registry-password-0123456789"
    access_key_id: str = "LTAI5tContractTestKey01"
    access_key_secret: str = "contract-test-access-key-secret-0123456789"
    security_token: str | None = None
    region: str = "cn-hangzhou"
    instances: list[Instance] = field(default_factory=list)
    token_lifetime: float = 3600.0
    # Seconds the server's clock runs ahead of this machine's (negative: behind).
    clock_skew: float = 0.0
    requests: list[RecordedRequest] = field(default_factory=list)
    _faults: Faults[_Fault] = field(default_factory=Faults)
    _nonces: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    # -- the test's handles --

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "start() the contract server first"
        return url_of(self._server)

    @property
    def env(self) -> dict[str, str]:
        """The environment a toolkit command needs to reach this server with its access key."""
        env = {
            "ALIBABA_CLOUD_ACCESS_KEY_ID": self.access_key_id,
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": self.access_key_secret,
            "ACTK_ALIBABA_CR_ENDPOINT": self.endpoint,
        }
        if self.security_token:
            env["ALIBABA_CLOUD_SECURITY_TOKEN"] = self.security_token
        return env

    def fail(
        self,
        fault: str,
        *,
        action: str | None = None,
        times: int | None = 1,
        status: int | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        """Answer the next ``times`` calls (of ``action``, or any; None: all of them) with a
        fault from ``FAULTS``, or with ``status`` and ``body`` when given."""
        if body is None and fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
        default_status = FAULTS[fault][0] if fault in FAULTS else 400
        self._faults.add(_Fault(fault, action, times, status or default_status, body))

    def clear_faults(self) -> None:
        self._faults.clear()

    def calls(self, action: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.action == action]

    # -- lifecycle --

    def start(self) -> AlibabaCRContract:
        self._server = serve(self._handle)
        return self

    def stop(self) -> None:
        shut(self._server)
        self._server = None

    # -- the gateway --

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        split = urlsplit(handler.path)
        headers = {name.lower(): value for name, value in handler.headers.items()}
        request = RecordedRequest(
            method=handler.command,
            path=split.path,
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            headers=headers,
            body=read_body(handler, headers),
        )
        status, body = self._authenticate(request) or self._fault(request) or self._route(request)
        if "RequestId" not in body and "requestId" not in body:  # ROA bodies are camelCase
            body["requestId" if "code" in body or "data" in body else "RequestId"] = _request_id()
        request.status, request.code = status, str(body.get("Code") or body.get("code") or "")
        with self._lock:
            self.requests.append(request)
        payload = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json;charset=utf-8")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def _gateway_error(self, status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
        return gateway_error(f"cr.{self.region}.aliyuncs.com", status, code, message)

    def _authenticate(self, request: RecordedRequest) -> tuple[int, dict[str, Any]] | None:
        return authenticate(
            request,
            access_key_id=self.access_key_id,
            access_key_secret=self.access_key_secret,
            security_token=self.security_token,
            clock_skew=self.clock_skew,
            nonces=self._nonces,
            lock=self._lock,
            host_id=f"cr.{self.region}.aliyuncs.com",
        )

    def _fault(self, request: RecordedRequest) -> tuple[int, dict[str, Any]] | None:
        fault = self._faults.take(lambda fault: fault.action in (None, request.action))
        if fault is None:
            return None
        if fault.body is not None:
            return fault.status, dict(fault.body)
        return fault.status, FAULTS[fault.name][1](request.action or "")

    def _route(self, request: RecordedRequest) -> tuple[int, dict[str, Any]]:
        action, version = request.action, request.version
        expires = int((time.time() + self.token_lifetime) * 1000)
        if (request.method, request.path, version) == ("GET", "/tokens", PERSONAL_VERSION):
            return 200, {
                "data": {
                    "tempUserName": self.username,
                    "authorizationToken": self.password,
                    "expireDate": expires,
                },
                "requestId": _request_id(),
            }
        if request.path == "/" and version == ENTERPRISE_VERSION:
            if action == "GetAuthorizationToken":
                return self._enterprise_token(request, expires)
            if action == "ListInstance":
                return self._list_instances(request)
        return self._gateway_error(
            404,
            "InvalidAction.NotFound",
            "Specified api is not found, please check your url and method.",
        )

    def _enterprise_token(self, request: RecordedRequest, expires: int) -> tuple[int, Any]:
        instance_id = request.query.get("InstanceId")
        if not instance_id:
            return self._gateway_error(
                400, "MissingInstanceId", "InstanceId is mandatory for this action."
            )
        if all(i.instance_id != instance_id for i in self.instances):
            # Assumed shape: cr 2018-12-01 reports business failures as IsSuccess=false.
            return 200, {
                "IsSuccess": False,
                "Code": "INSTANCE_NOT_EXIST",
                "Message": f"instance {instance_id} does not exist",
            }
        return 200, {
            "IsSuccess": True,
            "Code": "success",
            "TempUsername": self.username,
            "AuthorizationToken": self.password,
            "ExpireTime": expires,
        }

    def _list_instances(self, request: RecordedRequest) -> tuple[int, Any]:
        page = int(request.query.get("PageNo") or 1)
        size = int(request.query.get("PageSize") or 30)
        chosen = self.instances[(page - 1) * size : page * size]
        return 200, {
            "IsSuccess": True,
            "Code": "success",
            "PageNo": page,
            "PageSize": size,
            "TotalCount": len(self.instances),
            "Instances": [i.as_json(self.region) for i in chosen],
        }


def gateway_error(host_id: str, status: int, code: str, message: str) -> tuple[int, dict]:
    """An error in the shape Alibaba's API gateway answers with (before the product sees the
    request): ``RequestId``, ``HostId``, ``Code``, ``Message``, ``Recommend``."""
    return status, {
        "RequestId": _request_id(),
        "HostId": host_id,
        "Code": code,
        "Message": message,
        "Recommend": f"https://api.aliyun.com/troubleshoot?q={code}",
    }


def authenticate(
    request: Any,
    *,
    access_key_id: str,
    access_key_secret: str,
    security_token: str | None,
    clock_skew: float,
    nonces: set[str],
    lock: threading.Lock,
    host_id: str,
) -> tuple[int, dict[str, Any]] | None:
    """The gateway's checks of one V3-signed request, or None when it passes: the
    Authorization header's form and key, the signed header list, ``x-acs-action``/``-version``,
    the date (within 15 minutes of this machine's clock plus ``clock_skew``), the STS token,
    the signature (recomputed by Alibaba's own signer) and a nonce used once (kept in
    ``nonces``). ``request`` has ``method``, ``path`` (as sent), ``query`` (decoded),
    ``headers`` (lower-case names) and ``body`` (bytes); other contract servers reuse this."""
    headers = request.headers
    match = _AUTHORIZATION.match(headers.get("authorization", ""))
    if match is None:
        return gateway_error(
            host_id,
            400,
            "IncompleteSignature",
            "The request signature does not conform to Aliyun standards.",
        )
    if match["key"] != access_key_id:
        return gateway_error(
            host_id, 404, "InvalidAccessKeyId.NotFound", "Specified access key is not found."
        )
    names = match["names"].split(";")
    required = {"host", "x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256"}
    required |= {n for n in headers if n.startswith("x-acs-") or n == "content-type"}
    if not required <= set(names) or any(n not in headers for n in names):
        return gateway_error(
            host_id,
            400,
            "IncompleteSignature",
            "The request signature does not conform to Aliyun standards. "
            f"SignedHeaders must cover: {';'.join(sorted(required))}",
        )
    if not headers.get("x-acs-action") or not headers.get("x-acs-version"):
        return gateway_error(
            host_id, 400, "MissingParameter", "x-acs-action and x-acs-version are mandatory."
        )
    try:
        signed_at = datetime.strptime(headers["x-acs-date"], "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return gateway_error(
            host_id,
            400,
            "InvalidTimeStamp.Format",
            "Specified time stamp or date value is not well formatted.",
        )
    now = time.time() + clock_skew
    if abs(signed_at.replace(tzinfo=timezone.utc).timestamp() - now) > MAX_CLOCK_SKEW_SECONDS:
        return gateway_error(
            host_id,
            400,
            "InvalidTimeStamp.Expired",
            "Specified time stamp or date value is expired.",
        )
    token = headers.get("x-acs-security-token")
    if security_token is not None and token != security_token:
        return gateway_error(
            host_id,
            400,
            "InvalidSecurityToken.MismatchWithAccessKey",
            "Specified SecurityToken mismatch with the AccessKey.",
        )
    if security_token is None and token:
        return gateway_error(
            host_id, 400, "InvalidSecurityToken.Malformed", "Specified SecurityToken is malformed."
        )
    expected, to_sign = _sdk_signature(request, names, access_key_id, access_key_secret)
    if match["signature"] != expected:
        return gateway_error(
            host_id,
            400,
            "SignatureDoesNotMatch",
            "Specified signature does not match our calculation. server string to sign "
            f"is:{to_sign}",
        )
    with lock:
        nonce = headers["x-acs-signature-nonce"]
        if nonce in nonces:
            return gateway_error(
                host_id, 400, "SignatureNonceUsed", "Specified signature nonce was used already."
            )
        nonces.add(nonce)
    return None


def _request_id() -> str:
    return str(uuid.uuid4()).upper()


def _sdk_signature(request: Any, names: list[str], key_id: str, secret: str) -> tuple[str, str]:
    """The signature Alibaba's own signer computes for ``request``, and its string to sign."""
    from alibabacloud_tea_openapi.utils import (
        Utils,
        get_canonical_query_string,
        get_canonicalized_headers,
    )

    signed = {name: request.headers[name] for name in names}
    payload = hashlib.sha256(request.body).hexdigest()
    sdk_request = SimpleNamespace(
        method=request.method, pathname=request.path, query=request.query, headers=signed
    )
    authorization = Utils.get_authorization(sdk_request, ACS3, payload, key_id, secret)
    canonical_headers, signed_names = get_canonicalized_headers(signed)
    canonical = "\n".join(
        (
            request.method,
            request.path or "/",
            get_canonical_query_string(request.query),
            canonical_headers,
            signed_names,
            payload,
        )
    )
    to_sign = f"{ACS3}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    return authorization.rsplit("Signature=", 1)[1], to_sign


def _require_sdk() -> None:
    try:
        import alibabacloud_tea_openapi.utils  # noqa: F401
    except ImportError:
        reason = (
            "alibabacloud_tea_openapi is not installed (the contract server checks signatures "
            "with it): pip install -e '.[test]'"
        )
        unavailable(reason)


@pytest.fixture
def alibaba_cr() -> Iterator[Callable[..., AlibabaCRContract]]:
    """Start contract servers: ``alibaba_cr(username=..., password=..., instances=[...],
    security_token=...)`` returns a running ``AlibabaCRContract``; all stop after the test."""
    _require_sdk()
    yield from stopped_after(lambda **config: AlibabaCRContract(**config).start())
