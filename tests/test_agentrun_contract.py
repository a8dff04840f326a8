"""The AgentRun contract server itself: its routes are the SDK client's, it accepts what the
service accepts and rejects the rest naming the field, checks every signature, moves runtimes
and endpoints through their states, injects faults, and forwards invocations to a container.

Run with ``-p tests.agentrun_contract`` until the plugin is registered in conftest.py."""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.agentrun_contract import (
    API_VERSION,
    ROUTES,
    AgentRunContract,
    check_create_endpoint_body,
    check_create_runtime_body,
    check_publish_version_body,
    check_update_endpoint_body,
    check_update_runtime_body,
    round_trip_problems,
)
from toolkit.cloud import acs3
from toolkit.cloud.acs3 import canonical_query_string, canonical_uri, sign_request

Start = Callable[..., AgentRunContract]
RUNTIMES = f"/{API_VERSION}/agents/runtimes"
IMAGE = "registry.cn-hangzhou.aliyuncs.com/actk/echo-agent@sha256:" + "0" * 64
ENTERPRISE_IMAGE = "team-a-registry.cn-hangzhou.cr.aliyuncs.com/actk/echo-agent:1.0"
DELETE = object()  # remove the field
# One client for the module: building an httpx client (its TLS context) costs ~40 ms.
HTTP = httpx.Client(timeout=10)


@dataclass(frozen=True)
class Key:
    access_key_id: str
    access_key_secret: str
    security_token: str | None = None


def key_of(contract: AgentRunContract, **changes: Any) -> Key:
    fields = {
        "access_key_id": contract.access_key_id,
        "access_key_secret": contract.access_key_secret,
        "security_token": contract.security_token,
        **changes,
    }
    return Key(**fields)


def call(
    contract: AgentRunContract,
    action: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    query: dict[str, Any] | None = None,
    key: Key | None = None,
    headers: dict[str, str] | None = None,
    nonce: str | None = None,
    raw: bytes | None = None,
) -> httpx.Response:
    """One ROA call signed by the toolkit's signer (the server checks it with Alibaba's);
    ``raw`` sends those bytes as the body instead of ``body`` as JSON."""
    content = raw if raw is not None else b"" if body is None else json.dumps(body).encode()
    sent = {"x-acs-action": action, "x-acs-version": API_VERSION, **(headers or {})}
    if content:
        sent.setdefault("content-type", "application/json; charset=utf-8")
    signed = sign_request(
        method,
        urlsplit(contract.endpoint).netloc,
        path,
        query,
        sent,
        content,
        credentials=key or key_of(contract),
        nonce=nonce,
    )
    url = contract.endpoint + canonical_uri(path)
    if query:
        url += "?" + canonical_query_string(query)
    return HTTP.request(method, url, headers=signed, content=content)


def runtime_body(**changes: Any) -> dict[str, Any]:
    """A container runtime with every field a deploy sets; ``changes`` by dotted path
    (``containerConfiguration__port=...`` style keys use ``__`` for ``.``)."""
    body: dict[str, Any] = {
        "agentRuntimeName": "echo-agent",
        "description": "Echo agent deployed by actk",
        "artifactType": "Container",
        "containerConfiguration": {
            "image": IMAGE,
            "imageRegistryType": "ACR",
            "port": 8088,
            "command": ["python", "-m", "server"],
        },
        "cpu": 1.0,
        "memory": 2048,
        "port": 8088,
        "diskSize": 512,
        "networkConfiguration": {"networkMode": "PUBLIC"},
        "healthCheckConfiguration": {
            "httpGetUrl": "/ready",
            "initialDelaySeconds": 5,
            "periodSeconds": 10,
            "timeoutSeconds": 3,
            "failureThreshold": 3,
            "successThreshold": 1,
        },
        "environmentVariables": {"LOG_LEVEL": "info"},
        "sessionConcurrencyLimitPerInstance": 20,
        "sessionIdleTimeoutSeconds": 3600,
        "systemTags": ["actk"],
    }
    for dotted, value in changes.items():
        set_path(body, dotted.replace("__", "."), value)
    return body


def set_path(body: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    target = body
    for part in parents:
        target = target.setdefault(part, {})
    if value is DELETE:
        target.pop(last, None)
    else:
        target[last] = value


def create(contract: AgentRunContract, body: dict[str, Any] | None = None) -> dict[str, Any]:
    answer = call(contract, "CreateAgentRuntime", "POST", RUNTIMES, body or runtime_body())
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


def get(contract: AgentRunContract, runtime_id: str) -> httpx.Response:
    return call(contract, "GetAgentRuntime", "GET", f"{RUNTIMES}/{runtime_id}")


def ready_runtime(contract: AgentRunContract, **changes: Any) -> str:
    """A runtime read until READY; its id."""
    runtime_id = create(contract, runtime_body(**changes))["agentRuntimeId"]
    for _ in range(contract.ready_polls + 1):
        status = get(contract, runtime_id).json()["data"]["status"]
    assert status == "READY"
    return runtime_id


def create_endpoint(contract: AgentRunContract, runtime_id: str, **body: Any) -> httpx.Response:
    body = {"agentRuntimeEndpointName": "default", "targetVersion": "LATEST", **body}
    path = f"{RUNTIMES}/{runtime_id}/endpoints"
    return call(contract, "CreateAgentRuntimeEndpoint", "POST", path, body)


def service_error(answer: httpx.Response, status: int, code: str) -> str:
    """Assert the documented envelope ``{code, requestId, message}``; return the message."""
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"code", "requestId", "message"}, body
    assert body["code"] == code
    assert body["requestId"]
    return body["message"]


def gateway_error(answer: httpx.Response, status: int, code: str) -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert {"RequestId", "HostId", "Code", "Message", "Recommend"} <= set(body), body
    assert body["Code"] == code
    return body["Message"]


# --- the surface ------------------------------------------------------------------------------


def sdk_operations() -> dict[str, tuple[str, str, frozenset[str]]]:
    """Each operation of the installed SDK client: action -> (method, path, query names)."""
    from alibabacloud_agentrun20250910.client import Client

    operations = {}
    for name, function in inspect.getmembers(Client, inspect.isfunction):
        wanted = "agent_runtime" in name or "runtime_version" in name
        if not name.endswith("_with_options") or not wanted:
            continue
        source = inspect.getsource(function)
        action = re.search(r"action = '(\w+)'", source)
        if action is None:
            continue
        path = re.search(r"pathname = f'([^']+)'", source)[1]
        path = re.sub(r"\{DaraURL\.percent_encode\((\w+)\)\}", r"{\1}", path)
        path = re.sub(r"_(\w)", lambda m: m[1].upper(), path)
        method = re.search(r"method = '(\w+)'", source)[1]
        query = frozenset(re.findall(r"query\['(\w+)'\]", source))
        operations[action[1]] = (method, path, query)
    return operations


def test_every_route_is_the_sdk_clients_method_path_and_query() -> None:
    operations = sdk_operations()
    for route in ROUTES:
        wanted = (route.method, route.template, frozenset(route.query))
        assert operations[route.action] == wanted, route


def test_alibabas_sdk_client_drives_a_runtime_through_its_life(agentrun: Start) -> None:
    from alibabacloud_agentrun20250910 import models
    from alibabacloud_agentrun20250910.client import Client
    from alibabacloud_tea_openapi import models as openapi

    contract = agentrun(ready_polls=1)
    client = Client(
        openapi.Config(
            access_key_id=contract.access_key_id,
            access_key_secret=contract.access_key_secret,
            endpoint=urlsplit(contract.endpoint).netloc,
            protocol="http",
            region_id="cn-hangzhou",
        )
    )
    body = models.CreateAgentRuntimeInput().from_map(runtime_body())
    created = client.create_agent_runtime(models.CreateAgentRuntimeRequest(body=body)).body.data
    runtime_id = created.agent_runtime_id
    assert created.status == "CREATING"
    statuses = [
        client.get_agent_runtime(runtime_id, models.GetAgentRuntimeRequest()).body.data.status
        for _ in range(2)
    ]
    assert statuses == ["CREATING", "READY"]
    listed = client.list_agent_runtimes(
        models.ListAgentRuntimesRequest(agent_runtime_name="echo-agent")
    ).body.data
    assert [item.agent_runtime_id for item in listed.items] == [runtime_id]
    endpoint = client.create_agent_runtime_endpoint(
        runtime_id,
        models.CreateAgentRuntimeEndpointRequest(
            body=models.CreateAgentRuntimeEndpointInput(
                agent_runtime_endpoint_name="default", target_version="LATEST"
            )
        ),
    ).body.data
    assert endpoint.status == "CREATING"
    for _ in range(2):  # endpoint_polls=1: the URL comes with the second read
        again = client.get_agent_runtime_endpoint(runtime_id, endpoint.agent_runtime_endpoint_id)
    assert again.body.data.status == "READY"
    assert again.body.data.endpoint_public_url.endswith(
        "/agent-runtimes/echo-agent/endpoints/default/invocations"
    )
    published = client.publish_runtime_version(
        runtime_id,
        models.PublishRuntimeVersionRequest(
            body=models.PublishRuntimeVersionInput(description="v1")
        ),
    )
    assert published.body.data.agent_runtime_version == "1"
    client.delete_agent_runtime_endpoint(runtime_id, endpoint.agent_runtime_endpoint_id)
    assert client.delete_agent_runtime(runtime_id).body.data.status == "DELETING"
    assert contract.violations == []


# --- bodies -----------------------------------------------------------------------------------


def test_a_runtime_with_every_deploy_field_is_created_and_echoed(agentrun: Start) -> None:
    contract = agentrun()
    body = runtime_body()
    check_create_runtime_body(body, region="cn-hangzhou")
    data = create(contract, body)
    assert data["agentRuntimeId"].startswith("ar-")
    assert data["agentRuntimeArn"].startswith("acs:agentrun:cn-hangzhou:")
    assert data["status"] == "CREATING"
    assert data["agentRuntimeVersion"] == "LATEST"
    assert {key: data[key] for key in body} == body
    assert contract.runtime("echo-agent") is not None
    assert contract.violations == []


INVALID = [
    # (dotted field, value, text the 400 must contain)
    ("cpu", DELETE, "CPU is required"),
    ("memory", DELETE, "Memory is required"),
    ("port", DELETE, "Port is required"),
    ("networkConfiguration", DELETE, "networkConfiguration"),
    ("agentRuntimeName", "Echo_Agent", "agentRuntimeName"),
    ("agentRuntimeName", "a" * 64, "agentRuntimeName"),
    ("artifactType", "Image", "artifactType"),
    ("containerConfiguration", DELETE, "containerConfiguration"),
    ("containerConfiguration.image", DELETE, "containerConfiguration.image"),
    ("containerConfiguration.image", "Not An Image", "containerConfiguration.image"),
    ("containerConfiguration.port", 0, "containerConfiguration.port"),
    ("containerConfiguration.imageRegistryType", "DOCKERHUB", "imageRegistryType"),
    ("containerConfiguration.imageRegistryType", "ACREE", "imageRegistryType"),
    ("containerConfiguration.image", ENTERPRISE_IMAGE, "imageRegistryType"),
    (
        "containerConfiguration.image",
        "registry.cn-shanghai.aliyuncs.com/actk/echo-agent:1.0",
        "containerConfiguration.image",
    ),
    ("cpu", 0.01, "cpu"),
    ("cpu", 1.03, "cpu"),
    ("cpu", 17, "cpu"),
    ("memory", 100, "memory"),
    ("memory", 2050, "memory"),
    ("memory", 8192, "memory"),  # 8 GB for 1 vCPU: more than 4 GB per vCPU
    ("port", 70000, "port"),
    ("sessionConcurrencyLimitPerInstance", 0, "sessionConcurrencyLimitPerInstance"),
    ("sessionConcurrencyLimitPerInstance", 201, "sessionConcurrencyLimitPerInstance"),
    ("sessionIdleTimeoutSeconds", 0, "sessionIdleTimeoutSeconds"),
    ("sessionAffinityType", "STICKY", "sessionAffinityType"),
    ("sessionAffinityType", "HEADER_FIELD", "headerFieldName"),
    ("networkConfiguration.networkMode", "INTERNET", "networkConfiguration.networkMode"),
    ("networkConfiguration.networkMode", "PRIVATE", "networkConfiguration.vpcId"),
    ("healthCheckConfiguration.httpGetUrl", "ready", "healthCheckConfiguration.httpGetUrl"),
    ("healthCheckConfiguration.periodSeconds", 0, "healthCheckConfiguration.periodSeconds"),
    ("logConfiguration", {"project": "actk"}, "logConfiguration.logstore"),
    ("diskSize", 1024, "diskSize"),
    ("executionRoleArn", "AgentRunExecutionRole", "executionRoleArn"),
    ("protocolConfiguration", {"type": "GRPC"}, "protocolConfiguration.type"),
    ("nasConfig", {"mountPoints": []}, "nasConfig"),
    # wrong types, which the SDK's models would carry through unchanged
    ("cpu", "1", "cpu"),
    ("memory", 2048.0, "memory"),
    ("environmentVariables", {"WORKERS": 2}, "environmentVariables.WORKERS"),
    ("containerConfiguration.command", "python -m server", "containerConfiguration.command"),
    ("systemTags", "actk", "systemTags"),
    # unknown fields, which the SDK's models would drop
    ("image", IMAGE, "image"),
    ("containerConfiguration.tag", "1.0", "containerConfiguration.tag"),
    ("networkConfiguration.mode", "PUBLIC", "networkConfiguration.mode"),
]


@pytest.mark.parametrize(("dotted", "value", "named"), INVALID)
def test_an_invalid_create_body_is_refused_naming_the_field(
    agentrun: Start, dotted: str, value: Any, named: str
) -> None:
    contract = agentrun()
    body = runtime_body()
    set_path(body, dotted, value)
    answer = call(contract, "CreateAgentRuntime", "POST", RUNTIMES, body)
    assert named in service_error(answer, 400, "ERR_VALIDATION_FAILED")
    assert contract.runtimes == {}
    with pytest.raises(AssertionError, match=re.escape(named)):
        check_create_runtime_body(body, region="cn-hangzhou")


def test_an_empty_create_names_the_required_fields_in_the_services_words(
    agentrun: Start,
) -> None:
    contract = agentrun()
    message = service_error(
        call(contract, "CreateAgentRuntime", "POST", RUNTIMES), 400, "ERR_VALIDATION_FAILED"
    )
    for text in ("CPU is required", "Memory is required", "Port is required", "artifactType"):
        assert text in message


def test_a_body_that_is_not_a_json_object_is_a_bad_request(agentrun: Start) -> None:
    contract = agentrun()
    for raw in (b"[1, 2]", b"{not json"):
        answer = call(contract, "CreateAgentRuntime", "POST", RUNTIMES, raw=raw)
        assert service_error(answer, 400, "ERR_BAD_REQUEST")
    plain = call(
        contract,
        "CreateAgentRuntime",
        "POST",
        RUNTIMES,
        raw=b"{}",
        headers={"content-type": "text/plain"},
    )
    assert "Content-Type" in service_error(plain, 400, "ERR_BAD_REQUEST")


def test_an_enterprise_image_needs_acree_and_is_accepted_with_its_instance(
    agentrun: Start,
) -> None:
    contract = agentrun()
    body = runtime_body(
        containerConfiguration__image=ENTERPRISE_IMAGE,
        containerConfiguration__imageRegistryType="ACREE",
        containerConfiguration__acrInstanceId="cri-teama0001",
    )
    create(contract, body)
    assert contract.violations == []


def test_a_custom_registry_needs_its_registry_config(agentrun: Start) -> None:
    contract = agentrun()
    body = runtime_body(
        containerConfiguration__image="ghcr.io/actk/echo-agent:1.0",
        containerConfiguration__imageRegistryType="CUSTOM",
    )
    answer = call(contract, "CreateAgentRuntime", "POST", RUNTIMES, body)
    assert "containerConfiguration.registryConfig" in service_error(
        answer, 400, "ERR_VALIDATION_FAILED"
    )
    body["containerConfiguration"]["registryConfig"] = {
        "authConfig": {"userName": "bot", "password": "registry-password-123"}
    }
    data = create(contract, body)
    assert data["containerConfiguration"]["registryConfig"]["authConfig"]["password"] == "******"


def test_what_a_client_should_not_send_is_accepted_but_recorded(agentrun: Start) -> None:
    contract = agentrun()
    body = runtime_body(
        credentialId="cred-1",
        protocolConfiguration={"type": "HTTP"},
        containerConfiguration__imageRegistryType=DELETE,
    )
    create(contract, body)
    call(contract, "ListAgentRuntimes", "GET", RUNTIMES, query={"name": "echo-agent"})
    violations = "\n".join(contract.violations)
    assert "credentialId" in violations
    assert "protocolConfiguration.type" not in violations  # the only documented HTTP value
    assert "imageRegistryType is not set" in violations
    assert "unknown query parameter 'name'" in violations


def test_the_access_key_secret_in_a_request_is_a_violation(agentrun: Start) -> None:
    contract = agentrun()
    create(contract, runtime_body(environmentVariables={"KEY": contract.access_key_secret}))
    assert any("access key secret" in v for v in contract.violations)


# --- the public checks ------------------------------------------------------------------------


def test_check_create_names_a_field_the_sdk_would_drop() -> None:
    body = runtime_body(healthCheckConfiguration__path="/ready")
    with pytest.raises(AssertionError, match=r"healthCheckConfiguration\.path: "):
        check_create_runtime_body(body)
    assert [str(p) for p in round_trip_problems("CreateAgentRuntimeInput", body)] == [
        "healthCheckConfiguration.path: dropped by the SDK's CreateAgentRuntimeInput model"
    ]


def test_the_sdk_round_trip_alone_misses_wrong_types_so_types_are_checked_too() -> None:
    body = runtime_body(cpu="1", memory=2048.0)
    assert round_trip_problems("CreateAgentRuntimeInput", body) == []
    with pytest.raises(AssertionError, match=r"cpu: expected number.*memory: expected integer"):
        check_create_runtime_body(body)


def test_check_create_names_a_value_the_sdk_cannot_read() -> None:
    body = runtime_body(protocolConfiguration={"protocolSettings": ["OPENAI"]})
    with pytest.raises(AssertionError, match=r"protocolConfiguration\.protocolSettings\[0\]"):
        check_create_runtime_body(body)


def test_check_create_names_every_missing_required_field() -> None:
    with pytest.raises(AssertionError) as caught:
        check_create_runtime_body({"agentRuntimeName": "echo-agent"})
    for text in ("artifactType", "CPU is required", "Memory is required", "Port is required"):
        assert text in str(caught.value)
    assert "networkConfiguration: is required" in str(caught.value)


def test_check_create_without_rules_checks_the_sdk_only() -> None:
    check_create_runtime_body(runtime_body(cpu=64.0), rules=False)


def test_check_update_requires_cpu_as_the_sdk_says() -> None:
    body = runtime_body()
    check_update_runtime_body(body)
    del body["cpu"]
    with pytest.raises(AssertionError, match="CPU is required"):
        check_update_runtime_body(body)


def test_check_endpoint_bodies() -> None:
    check_create_endpoint_body({"agentRuntimeEndpointName": "default", "targetVersion": "LATEST"})
    check_update_endpoint_body({"targetVersion": "3", "description": "pinned"})
    with pytest.raises(AssertionError, match="agentRuntimeEndpointName: is required"):
        check_create_endpoint_body({"targetVersion": "LATEST"})
    with pytest.raises(AssertionError, match=r"versionWeights\[0\]\.weight"):
        check_update_endpoint_body(
            {"routingConfiguration": {"versionWeights": [{"version": "1", "weight": 90}]}}
        )
    with pytest.raises(AssertionError, match="targetVersion"):
        check_update_endpoint_body({"targetVersion": "v1"})
    with pytest.raises(AssertionError, match="endpointName"):
        check_create_endpoint_body({"endpointName": "default"})


def test_check_publish_version_body() -> None:
    check_publish_version_body({"description": "v1", "publisher": "actk"})
    with pytest.raises(AssertionError, match="version"):
        check_publish_version_body({"version": "1"})


# --- the gateway ------------------------------------------------------------------------------


def test_a_request_signed_with_another_secret_is_refused(agentrun: Start) -> None:
    contract = agentrun()
    wrong = key_of(contract, access_key_secret="not-the-secret")
    answer = call(contract, "CreateAgentRuntime", "POST", RUNTIMES, runtime_body(), key=wrong)
    assert "string to sign" in gateway_error(answer, 400, "SignatureDoesNotMatch")
    assert contract.runtimes == {}


def test_a_content_hash_header_that_is_not_the_bodys_is_refused(agentrun: Start) -> None:
    contract = agentrun()
    content = json.dumps(runtime_body()).encode()
    headers = {
        "host": urlsplit(contract.endpoint).netloc,
        "x-acs-action": "CreateAgentRuntime",
        "x-acs-version": API_VERSION,
        "x-acs-date": acs3.format_date(datetime.now(timezone.utc)),
        "x-acs-signature-nonce": acs3.new_nonce(),
        "x-acs-content-sha256": acs3.EMPTY_BODY_SHA256,  # not this body's
        "content-type": "application/json",
    }
    # A signature that is right for the body actually sent: only the header lies.
    canonical = acs3.canonical_request(
        "POST", RUNTIMES, None, headers, hashlib.sha256(content).hexdigest()
    )
    signature = acs3.signature(contract.access_key_secret, acs3.string_to_sign(canonical))
    headers["authorization"] = (
        f"{acs3.ALGORITHM} Credential={contract.access_key_id},"
        f"SignedHeaders={';'.join(acs3.signed_headers(headers))},Signature={signature}"
    )
    answer = HTTP.post(contract.endpoint + RUNTIMES, headers=headers, content=content)
    assert "x-acs-content-sha256" in gateway_error(answer, 400, "SignatureDoesNotMatch")
    assert contract.runtimes == {}


def test_a_reused_nonce_is_refused(agentrun: Start) -> None:
    contract = agentrun()
    assert call(contract, "ListAgentRuntimes", "GET", RUNTIMES, nonce="n-1").status_code == 200
    again = call(contract, "ListAgentRuntimes", "GET", RUNTIMES, nonce="n-1")
    gateway_error(again, 400, "SignatureNonceUsed")


def test_sts_requests_must_carry_the_security_token(agentrun: Start) -> None:
    contract = agentrun(access_key_id="STS.NAgentRunKey", security_token="sts-token-0123")
    assert contract.env["ALIBABA_CLOUD_SECURITY_TOKEN"] == "sts-token-0123"
    assert call(contract, "ListAgentRuntimes", "GET", RUNTIMES).status_code == 200
    bare = key_of(contract, security_token=None)
    answer = call(contract, "ListAgentRuntimes", "GET", RUNTIMES, key=bare)
    gateway_error(answer, 400, "InvalidSecurityToken.MismatchWithAccessKey")


def test_an_action_that_does_not_match_the_path_is_not_found(agentrun: Start) -> None:
    contract = agentrun()
    answer = call(contract, "CreateAgentRuntime", "GET", RUNTIMES)
    gateway_error(answer, 404, "InvalidAction.NotFound")


def test_another_api_version_is_refused(agentrun: Start) -> None:
    contract = agentrun()
    answer = call(
        contract, "ListAgentRuntimes", "GET", RUNTIMES, headers={"x-acs-version": "2024-01-01"}
    )
    gateway_error(answer, 400, "InvalidVersion")


# --- transitions ------------------------------------------------------------------------------


def test_a_new_runtime_is_creating_for_ready_polls_reads_then_ready(agentrun: Start) -> None:
    contract = agentrun(ready_polls=2)
    runtime_id = create(contract)["agentRuntimeId"]
    statuses = [get(contract, runtime_id).json()["data"]["status"] for _ in range(4)]
    assert statuses == ["CREATING", "CREATING", "READY", "READY"]


def test_ready_polls_zero_answers_ready_at_once(agentrun: Start) -> None:
    contract = agentrun(ready_polls=0)
    assert create(contract)["status"] == "READY"


def test_a_failed_create_says_why(agentrun: Start) -> None:
    contract = agentrun(ready_polls=1)
    contract.runtime_outcome("CREATE_FAILED", reason="failed to pull image: unauthorized")
    runtime_id = create(contract)["agentRuntimeId"]
    get(contract, runtime_id)
    data = get(contract, runtime_id).json()["data"]
    assert (data["status"], data["statusReason"]) == (
        "CREATE_FAILED",
        "failed to pull image: unauthorized",
    )


def test_an_update_goes_updating_then_ready_and_keeps_other_fields(agentrun: Start) -> None:
    contract = agentrun(ready_polls=1)
    runtime_id = ready_runtime(contract)
    update = {"cpu": 2.0, "memory": 4096, "environmentVariables": {"LOG_LEVEL": "debug"}}
    check_update_runtime_body(update)
    answer = call(contract, "UpdateAgentRuntime", "PUT", f"{RUNTIMES}/{runtime_id}", update)
    assert answer.json()["data"]["status"] == "UPDATING"
    get(contract, runtime_id)
    data = get(contract, runtime_id).json()["data"]
    assert (data["status"], data["cpu"], data["memory"]) == ("READY", 2.0, 4096)
    assert data["containerConfiguration"]["image"] == IMAGE


def test_a_failed_update_names_the_port_in_its_reason(agentrun: Start) -> None:
    contract = agentrun(ready_polls=0)
    runtime_id = ready_runtime(contract)
    contract.runtime_outcome("UPDATE_FAILED")
    update = {"cpu": 1.0, "port": 9000, "containerConfiguration": {"image": IMAGE, "port": 9000}}
    call(contract, "UpdateAgentRuntime", "PUT", f"{RUNTIMES}/{runtime_id}", update)
    data = get(contract, runtime_id).json()["data"]
    assert data["status"] == "UPDATE_FAILED"
    assert "9000" in data["statusReason"]


def test_an_update_while_creating_is_a_conflict(agentrun: Start) -> None:
    contract = agentrun(ready_polls=3)
    runtime_id = create(contract)["agentRuntimeId"]
    answer = call(
        contract,
        "UpdateAgentRuntime",
        "PUT",
        f"{RUNTIMES}/{runtime_id}",
        {"cpu": 2.0, "memory": 4096},
    )
    assert "CREATING" in service_error(answer, 409, "ERR_CONFLICT")


def test_an_update_cannot_rename_the_runtime(agentrun: Start) -> None:
    contract = agentrun(ready_polls=0)
    runtime_id = ready_runtime(contract)
    body = {"cpu": 1.0, "agentRuntimeName": "other-agent"}
    answer = call(contract, "UpdateAgentRuntime", "PUT", f"{RUNTIMES}/{runtime_id}", body)
    assert "agentRuntimeName" in service_error(answer, 400, "ERR_VALIDATION_FAILED")


def test_a_second_runtime_with_the_same_name_already_exists(agentrun: Start) -> None:
    contract = agentrun()
    create(contract)
    answer = call(contract, "CreateAgentRuntime", "POST", RUNTIMES, runtime_body())
    assert "already exists" in service_error(answer, 409, "ERR_CONFLICT")


def test_a_deleted_runtime_is_deleting_then_not_found(agentrun: Start) -> None:
    contract = agentrun(ready_polls=1)
    runtime_id = ready_runtime(contract)
    answer = call(contract, "DeleteAgentRuntime", "DELETE", f"{RUNTIMES}/{runtime_id}")
    assert answer.json()["data"]["status"] == "DELETING"
    assert get(contract, runtime_id).json()["data"]["status"] == "DELETING"
    assert "does not exist" in service_error(get(contract, runtime_id), 404, "ERR_NOT_FOUND")
    assert contract.runtimes == {}


def test_a_failed_delete_leaves_the_runtime_delete_failed(agentrun: Start) -> None:
    contract = agentrun(ready_polls=0)
    runtime_id = ready_runtime(contract)
    contract.runtime_outcome("DELETE_FAILED", reason="resources busy")
    call(contract, "DeleteAgentRuntime", "DELETE", f"{RUNTIMES}/{runtime_id}")
    data = get(contract, runtime_id).json()["data"]
    assert (data["status"], data["statusReason"]) == ("DELETE_FAILED", "resources busy")


# --- lists ------------------------------------------------------------------------------------


def test_list_filters_by_name_and_pages(agentrun: Start) -> None:
    contract = agentrun(ready_polls=0)
    for name in ("echo-agent", "echo-agent-2", "support-agent"):
        create(contract, runtime_body(agentRuntimeName=name))

    def names(**query: Any) -> list[str]:
        answer = call(contract, "ListAgentRuntimes", "GET", RUNTIMES, query=query)
        return [item["agentRuntimeName"] for item in answer.json()["data"]["items"]]

    assert names(agentRuntimeName="echo-agent") == ["echo-agent", "echo-agent-2"]
    assert names(agentRuntimeName="echo-agent", searchMode="exact") == ["echo-agent"]
    assert names(pageSize=2, pageNumber=2) == ["support-agent"]
    page = call(contract, "ListAgentRuntimes", "GET", RUNTIMES, query={"pageSize": 1})
    assert page.json()["data"] | {"items": []} == {
        "items": [],
        "pageNumber": 1,
        "pageSize": 1,
        "total": 3,
    }
    too_big = call(contract, "ListAgentRuntimes", "GET", RUNTIMES, query={"pageSize": 101})
    assert "pageSize" in service_error(too_big, 400, "ERR_VALIDATION_FAILED")


# --- endpoints and versions -------------------------------------------------------------------


def test_endpoint_changes_wait_for_the_runtime_to_be_ready(agentrun: Start) -> None:
    contract = agentrun(ready_polls=1, endpoint_polls=0)
    runtime_id = create(contract)["agentRuntimeId"]
    refused = create_endpoint(contract, runtime_id)
    assert "CREATING" in service_error(refused, 409, "ERR_CONFLICT")
    get(contract, runtime_id)
    get(contract, runtime_id)
    created = create_endpoint(contract, runtime_id)
    assert created.status_code == 200
    call(
        contract,
        "UpdateAgentRuntime",
        "PUT",
        f"{RUNTIMES}/{runtime_id}",
        {"cpu": 2.0, "memory": 4096},
    )
    endpoint_id = created.json()["data"]["agentRuntimeEndpointId"]
    path = f"{RUNTIMES}/{runtime_id}/endpoints/{endpoint_id}"
    update = call(contract, "UpdateAgentRuntimeEndpoint", "PUT", path, {"description": "x"})
    assert "UPDATING" in service_error(update, 409, "ERR_CONFLICT")


def test_an_endpoint_gets_its_invocation_url_after_endpoint_polls_reads(agentrun: Start) -> None:
    contract = agentrun(ready_polls=0, endpoint_polls=1, endpoint_ready_status="ACTIVE")
    runtime_id = ready_runtime(contract)
    data = create_endpoint(contract, runtime_id).json()["data"]
    assert (data["status"], data["endpointPublicUrl"]) == ("CREATING", "")
    path = f"{RUNTIMES}/{runtime_id}/endpoints/{data['agentRuntimeEndpointId']}"
    first = call(contract, "GetAgentRuntimeEndpoint", "GET", path).json()["data"]
    second = call(contract, "GetAgentRuntimeEndpoint", "GET", path).json()["data"]
    assert first["status"] == "CREATING"
    assert second["status"] == "ACTIVE"
    assert second["endpointPublicUrl"] == (
        f"{contract.data_endpoint}/agent-runtimes/echo-agent/endpoints/default/invocations"
    )
    assert second["targetVersion"] == "LATEST"


def test_an_endpoint_name_is_unique_within_its_runtime(agentrun: Start) -> None:
    contract = agentrun(ready_polls=0, endpoint_polls=0)
    runtime_id = ready_runtime(contract)
    create_endpoint(contract, runtime_id)
    again = create_endpoint(contract, runtime_id)
    assert "already exists" in service_error(again, 409, "ERR_CONFLICT")
    listed = call(
        contract,
        "ListAgentRuntimeEndpoints",
        "GET",
        f"{RUNTIMES}/{runtime_id}/endpoints",
        query={"endpointName": "default"},
    )
    assert [e["agentRuntimeEndpointName"] for e in listed.json()["data"]["items"]] == ["default"]


def test_an_endpoint_targets_latest_or_a_published_version(agentrun: Start) -> None:
    contract = agentrun(ready_polls=0, endpoint_polls=0)
    runtime_id = ready_runtime(contract)
    refused = create_endpoint(contract, runtime_id, targetVersion="1")
    assert "targetVersion" in service_error(refused, 400, "ERR_VALIDATION_FAILED")
    versions = f"{RUNTIMES}/{runtime_id}/versions"
    published = call(contract, "PublishRuntimeVersion", "POST", versions, {"publisher": "actk"})
    assert published.json()["data"]["agentRuntimeVersion"] == "1"
    assert create_endpoint(contract, runtime_id, targetVersion="1").status_code == 200
    listed = call(contract, "ListAgentRuntimeVersions", "GET", versions).json()["data"]
    assert [v["agentRuntimeVersion"] for v in listed["items"]] == ["1"]
    pinned = call(
        contract,
        "GetAgentRuntime",
        "GET",
        f"{RUNTIMES}/{runtime_id}",
        query={"agentRuntimeVersion": "1"},
    )
    assert pinned.json()["data"]["agentRuntimeVersion"] == "1"


def test_a_runtime_with_endpoints_is_not_deleted(agentrun: Start) -> None:
    contract = agentrun(ready_polls=0, endpoint_polls=0)
    runtime_id = ready_runtime(contract)
    endpoint_id = create_endpoint(contract, runtime_id).json()["data"]["agentRuntimeEndpointId"]
    refused = call(contract, "DeleteAgentRuntime", "DELETE", f"{RUNTIMES}/{runtime_id}")
    assert "delete them first" in service_error(refused, 409, "ERR_CONFLICT")
    path = f"{RUNTIMES}/{runtime_id}/endpoints/{endpoint_id}"
    assert call(contract, "DeleteAgentRuntimeEndpoint", "DELETE", path).status_code == 200
    deleted = call(contract, "DeleteAgentRuntime", "DELETE", f"{RUNTIMES}/{runtime_id}")
    assert deleted.status_code == 200
    assert contract.violations == []


# --- faults -----------------------------------------------------------------------------------


def test_throttling_answers_the_named_action_times_then_passes(agentrun: Start) -> None:
    contract = agentrun()
    contract.fail("Throttling", action="ListAgentRuntimes", times=2)
    create(contract)  # another action is not throttled
    answers = [call(contract, "ListAgentRuntimes", "GET", RUNTIMES) for _ in range(3)]
    assert [a.status_code for a in answers] == [400, 400, 200]
    gateway_error(answers[0], 400, "Throttling.User")


def test_transient_server_errors_come_in_their_own_shapes(agentrun: Start) -> None:
    contract = agentrun()
    contract.fail(503)
    contract.fail(500)
    gateway_error(call(contract, "ListAgentRuntimes", "GET", RUNTIMES), 503, "ServiceUnavailable")
    answer = call(contract, "ListAgentRuntimes", "GET", RUNTIMES)
    service_error(answer, 500, "ERR_INTERNAL_SERVER_ERROR")
    assert call(contract, "ListAgentRuntimes", "GET", RUNTIMES).status_code == 200


def test_forbidden_ram_names_the_denied_action(agentrun: Start) -> None:
    contract = agentrun()
    contract.fail("Forbidden.RAM", action="CreateAgentRuntime", times=None)
    answer = call(contract, "CreateAgentRuntime", "POST", RUNTIMES, runtime_body())
    gateway_error(answer, 403, "Forbidden.RAM")
    assert answer.json()["AccessDeniedDetail"]["AuthAction"] == "agentrun:CreateAgentRuntime"
    again = call(contract, "CreateAgentRuntime", "POST", RUNTIMES, runtime_body())
    assert again.status_code == 403


def test_an_injected_conflict_refuses_an_endpoint_change(agentrun: Start) -> None:
    contract = agentrun(ready_polls=0)
    runtime_id = ready_runtime(contract)
    contract.fail("conflict", action="CreateAgentRuntimeEndpoint")
    assert "READY" in service_error(create_endpoint(contract, runtime_id), 409, "ERR_CONFLICT")
    assert create_endpoint(contract, runtime_id).status_code == 200


def test_a_fault_with_an_explicit_body_answers_it(agentrun: Start) -> None:
    contract = agentrun()
    body = {"code": "ERR_QUOTA_EXCEEDED", "requestId": "R-1", "message": "quota"}
    contract.fail("ERR_QUOTA_EXCEEDED", status=400, body=body)
    answer = call(contract, "ListAgentRuntimes", "GET", RUNTIMES)
    assert (answer.status_code, answer.json()) == (400, body)


# --- the data plane ---------------------------------------------------------------------------


class _Container(BaseHTTPRequestHandler):
    """A stand-in agent container: JSON, or SSE in two pieces when ``stream`` is true."""

    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str, dict[str, str], Any]]

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.seen.append((self.command, self.path, headers, body))  # type: ignore[attr-defined]
        if body.get("stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for event in ("response.created", "response.completed"):
                piece = f"event: {event}\ndata: {json.dumps({'type': event})}\n\n".encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
                time.sleep(0.05)
            self.wfile.write(b"0\r\n\r\n")
            return
        data = json.dumps({"id": "resp_1", "object": "response", "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def container() -> Iterator[tuple[str, list[Any]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Container)
    server.daemon_threads = True
    server.seen = []  # type: ignore[attr-defined]
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    ).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", server.seen  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


def invocation_url(contract: AgentRunContract) -> str:
    runtime_id = ready_runtime(contract)
    return create_endpoint(contract, runtime_id).json()["data"]["endpointPublicUrl"]


def test_an_invocation_reaches_the_containers_responses_path(
    agentrun: Start, container: tuple[str, list[Any]]
) -> None:
    contract = agentrun(ready_polls=0, endpoint_polls=0)
    upstream, seen = container
    contract.forward_to(upstream)
    url = invocation_url(contract)
    answer = HTTP.post(
        url + "/responses", json={"input": "hi"}, headers={"authorization": "Bearer t"}
    )
    assert answer.status_code == 200
    assert answer.json()["path"] == "/responses"
    method, path, headers, body = seen[0]
    assert (method, path, body) == ("POST", "/responses", {"input": "hi"})
    assert "authorization" not in headers
    assert headers["x-fc-request-id"] == headers["x-agentrun-request-id"]
    assert contract.invocations[0].served_by == "echo-agent@LATEST"
    assert contract.violations == []


def test_an_invocation_passes_the_path_and_query_through(
    agentrun: Start, container: tuple[str, list[Any]]
) -> None:
    contract = agentrun(ready_polls=0, endpoint_polls=0)
    upstream, seen = container
    contract.forward_to(upstream)
    url = invocation_url(contract)
    assert HTTP.get(url + "/responses/resp_1?include=x").status_code == 200
    assert seen[0][:2] == ("GET", "/responses/resp_1?include=x")


def test_a_streamed_invocation_arrives_as_server_sent_events(
    agentrun: Start, container: tuple[str, list[Any]]
) -> None:
    contract = agentrun(ready_polls=0, endpoint_polls=0)
    upstream, _ = container
    contract.forward_to(upstream)
    url = invocation_url(contract)
    with HTTP.stream("POST", url + "/responses", json={"input": "hi", "stream": True}) as answer:
        assert answer.headers["content-type"].startswith("text/event-stream")
        events = [line for line in answer.iter_lines() if line.startswith("event:")]
    assert events == ["event: response.created", "event: response.completed"]


def test_an_endpoint_without_its_url_yet_is_unavailable(
    agentrun: Start, container: tuple[str, list[Any]]
) -> None:
    contract = agentrun(ready_polls=0, endpoint_polls=5)
    contract.forward_to(container[0])
    runtime_id = ready_runtime(contract)
    assert create_endpoint(contract, runtime_id).json()["data"]["endpointPublicUrl"] == ""
    guessed = f"{contract.data_endpoint}/agent-runtimes/echo-agent/endpoints/default/invocations"
    answer = HTTP.post(guessed + "/responses", json={})
    service_error(answer, 503, "ERR_SERVICE_UNAVAILABLE")
    unknown = HTTP.post(guessed.replace("default", "nope") + "/responses", json={})
    service_error(unknown, 404, "ERR_NOT_FOUND")


def test_an_invocation_without_a_container_is_a_violation(agentrun: Start) -> None:
    contract = agentrun(ready_polls=0, endpoint_polls=0)
    url = invocation_url(contract)
    service_error(HTTP.post(url + "/responses", json={}), 502, "ERR_BAD_GATEWAY")
    assert any("forward_to" in v for v in contract.violations)


def test_the_state_is_visible_to_tests(agentrun: Start) -> None:
    contract = agentrun(ready_polls=0, endpoint_polls=0)
    runtime_id = ready_runtime(contract)
    create_endpoint(contract, runtime_id)
    runtime = contract.runtimes[runtime_id]
    assert runtime.name == "echo-agent" and runtime.status == "READY"
    assert [e.name for e in runtime.endpoints.values()] == ["default"]
    assert copy.deepcopy(runtime.spec)["containerConfiguration"]["image"] == IMAGE
    assert contract.actions[:2] == ["CreateAgentRuntime", "GetAgentRuntime"]
    assert [r.json for r in contract.calls("CreateAgentRuntime")] == [runtime_body()]
