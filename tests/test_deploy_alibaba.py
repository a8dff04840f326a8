"""`actk deploy alibaba` without a cloud: targets.alibaba and the checks made before any call,
the CreateAgentRuntimeInput built from every manifest field, the idempotency rule, the dry run
(exact signed requests, secrets and signature redacted), and the phases against a small
in-memory AgentRun behind httpx.MockTransport. (Against the contract server:
test_deploy_alibaba_contract.py.)"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from tests import deploying
from tests.deploying import RUNTIME, FakeClock, deep_update
from toolkit.cloud.agentrun import AgentRunClient, Call, control_endpoint, failure_hint
from toolkit.cloud.alibaba import AlibabaAPIError, AlibabaCredentials
from toolkit.console import Console
from toolkit.deploy.alibaba import (
    AlibabaOptions,
    alibaba_status,
    build_runtime_body,
    delete_alibaba,
    deploy_alibaba,
    invoke_alibaba,
    parse_cores,
    parse_memory_mb,
    registry_for,
    runtime_changes,
    sizes,
    validate,
)
from toolkit.errors import CloudError, InvokeError, ManifestError, UsageError
from toolkit.manifest import Manifest, load_manifest

REGION = "cn-hangzhou"
DIGEST = "sha256:" + "cd" * 32
PERSONAL = f"registry.{REGION}.aliyuncs.com/support/support-agent"
ENTERPRISE = f"myco-registry.{REGION}.cr.aliyuncs.com/support/support-agent"
PUSHED = f"{PERSONAL}@{DIGEST}"
SECRET = "sk-live-0123456789abcdef"  # what OPENAI_API_KEY holds in these tests
KEY_ID = "LTAI5tTestAccessKeyId"
KEY_SECRET = "test-access-key-secret-0123456789"
STS_TOKEN = "CAIS-test-security-token-abcdefghijklmnop"
ENV = {
    "ALIBABA_CLOUD_ACCESS_KEY_ID": KEY_ID,
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET": KEY_SECRET,
    "OPENAI_API_KEY": SECRET,
}
CONTROL = f"https://agentrun.{REGION}.aliyuncs.com"
DATA_HOST = f"1234567890.agentrun-data.{REGION}.aliyuncs.com"


def manifest_data(**alibaba: Any) -> dict[str, Any]:
    return {
        "name": "support-agent",
        "description": "Answers support questions",
        "image": {"repository": PERSONAL, "tag": "v1"},
        "runtime": copy.deepcopy(RUNTIME),
        "targets": {"alibaba": {"region": REGION, **alibaba}},
    }


def manifest(data: dict[str, Any] | None = None, **alibaba: Any) -> Manifest:
    return Manifest.model_validate(data or manifest_data(**alibaba))


write_repo = functools.partial(deploying.write_repo, pushed=PUSHED, platform="linux/amd64")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return write_repo(tmp_path / "agent", manifest_data())


# --- an in-memory AgentRun --------------------------------------------------------------------


@dataclass
class Seen:
    action: str
    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]


@dataclass
class FakeAgentRun:
    """The documented subset: runtimes by name, CREATING/UPDATING for ``reads`` GETs, then
    ``outcome``; endpoints that get their public URL on the first GET; published versions."""

    reads: int = 1
    outcome: tuple[str, str | None] = ("READY", None)
    runtimes: dict[str, dict[str, Any]] = field(default_factory=dict)
    endpoints: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    versions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    faults: list[tuple[str, int, dict[str, Any]]] = field(default_factory=list)
    invocations: list[tuple[str, Any, dict[str, str]]] = field(default_factory=list)
    _left: dict[str, int] = field(default_factory=dict)
    _count: int = 0

    @property
    def actions(self) -> list[str]:
        return [s.action for s in self.seen]

    @property
    def writes(self) -> list[str]:
        return [s.action for s in self.seen if s.method != "GET"]

    def fail(self, action: str, status: int, body: dict[str, Any]) -> None:
        self.faults.append((action, status, body))

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def _id(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}-{self._count:04d}"

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == DATA_HOST:
            return self._invoke(request)
        action = request.headers["x-acs-action"]
        assert request.headers["x-acs-version"] == "2025-09-10"
        assert request.headers["authorization"].startswith("ACS3-HMAC-SHA256 Credential=")
        body = json.loads(request.content) if request.content else None
        path = request.url.path
        self.seen.append(Seen(action, request.method, path,
                              dict(parse_qsl(request.url.query.decode())), body,
                              dict(request.headers)))
        for index, (name, status, payload) in enumerate(self.faults):
            if name == action:
                del self.faults[index]
                return httpx.Response(status, json=payload)
        prefix = "/2025-09-10/agents/runtimes"
        assert path.startswith(prefix), path
        parts = [p for p in path[len(prefix):].split("/") if p]
        if not parts:
            if request.method == "GET":
                name = request.url.params.get("agentRuntimeName")
                items = [r for r in self.runtimes.values() if name in r["agentRuntimeName"]]
                return self._ok({"items": items, "pageNumber": 1, "pageSize": 100,
                                 "total": len(items)})
            runtime_id = self._id("ar")
            runtime = {**body, "agentRuntimeId": runtime_id, "status": "CREATING",
                       "agentRuntimeVersion": "LATEST",
                       "agentRuntimeArn": f"acs:agentrun:{REGION}:123:runtimes/{runtime_id}"}
            self.runtimes[runtime_id] = runtime
            self._left[runtime_id] = self.reads
            return self._ok(runtime)
        runtime_id = parts[0]
        runtime = self.runtimes.get(runtime_id)
        if runtime is None:
            return httpx.Response(404, json={"code": "ERR_NOT_FOUND", "message": "no runtime",
                                             "requestId": "req-404"})
        if len(parts) == 1:
            if request.method == "GET":
                return self._ok(self._read(runtime))
            if request.method == "PUT":
                runtime.update(body)
                runtime["status"] = "UPDATING"
                self._left[runtime_id] = self.reads
                return self._ok(runtime)
            del self.runtimes[runtime_id]
            return self._ok({})
        if parts[1] == "versions":
            versions = self.versions.setdefault(runtime_id, [])
            if request.method == "GET":
                return self._ok({"items": list(versions), "total": len(versions)})
            version = {"agentRuntimeVersion": str(len(versions) + 1),
                       "description": body.get("description"), "agentRuntimeId": runtime_id}
            versions.append(version)
            return self._ok(version)
        endpoints = self.endpoints.setdefault(runtime_id, {})
        if len(parts) == 2:
            if request.method == "GET":
                return self._ok({"items": list(endpoints.values()), "total": len(endpoints)})
            if runtime["status"] != "READY":
                return httpx.Response(400, json={"code": "ERR_BAD_REQUEST", "message":
                                                 f"agent runtime is {runtime['status']}"})
            endpoint_id = self._id("are")
            endpoint = {**body, "agentRuntimeEndpointId": endpoint_id,
                        "agentRuntimeId": runtime_id, "status": "CREATING"}
            endpoints[endpoint_id] = endpoint
            return self._ok(endpoint)
        endpoint = endpoints[parts[2]]
        if request.method == "GET":
            name = endpoint["agentRuntimeEndpointName"]
            endpoint.update(status="ACTIVE", endpointPublicUrl=(
                f"https://{DATA_HOST}/agent-runtimes/{runtime['agentRuntimeName']}/endpoints/"
                f"{name}/invocations"))
            return self._ok(endpoint)
        if request.method == "PUT":
            endpoint.update(body)
            return self._ok(endpoint)
        del endpoints[parts[2]]
        return self._ok({})

    def _read(self, runtime: dict[str, Any]) -> dict[str, Any]:
        runtime_id = runtime["agentRuntimeId"]
        if runtime["status"] in ("CREATING", "UPDATING"):
            self._left[runtime_id] -= 1
            if self._left[runtime_id] <= 0:
                status, reason = self.outcome
                runtime["status"] = status
                if reason:
                    runtime["statusReason"] = reason
        return runtime

    def _invoke(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.invocations.append((request.url.path, body, dict(request.headers)))
        text = f"echo: {body['input']}"
        response = {"id": "resp_1", "object": "response", "status": "completed",
                    "model": "echo-1", "output": [{"type": "message", "role": "assistant",
                    "content": [{"type": "output_text", "text": text}]}]}
        if not body.get("stream"):
            return httpx.Response(200, json=response)
        events = [
            {"type": "response.created", "response": {**response, "status": "in_progress",
                                                       "output": []}},
            {"type": "response.output_text.delta", "delta": text},
            {"type": "response.completed", "response": response},
        ]
        stream = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)
        return httpx.Response(200, text=stream, headers={"content-type": "text/event-stream"})

    @staticmethod
    def _ok(data: Any) -> httpx.Response:
        return httpx.Response(200, json={"code": "SUCCESS", "requestId": "req-1", "data": data})


@pytest.fixture
def fake() -> FakeAgentRun:
    return FakeAgentRun()


def deploy(repo: Path, fake: FakeAgentRun | None = None, *, env: dict[str, str] | None = None,
           console: Console | None = None, **options: Any):
    transport = fake.transport() if fake else httpx.MockTransport(_no_call)
    return deploy_alibaba(repo, AlibabaOptions(**options), console or Console(as_json=True),
                          ENV if env is None else env, clock=FakeClock().clock,
                          transport=transport)


def _no_call(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"a dry run sent {request.method} {request.url}")


# --- targets.alibaba in agent.yaml ------------------------------------------------------------


def test_the_section_actk_new_writes_loads(tmp_path: Path):
    data = manifest_data(registry="personal", network={"mode": "PUBLIC"})
    loaded = load_manifest(write_repo(tmp_path, data))
    target = loaded.targets.alibaba
    assert (target.region, target.registry, target.network.mode) == (REGION, "personal", "PUBLIC")
    assert target.endpoint_name == "default" and target.health_check.path == "/ready"


# targets.alibaba values refused when agent.yaml is loaded: (value, field, words of the fix)
LOAD_RULES = {
    "region": ({"region": "Hangzhou 1"}, "targets.alibaba.region", "such as cn-hangzhou"),
    "concurrency 0": ({"session": {"concurrency": 0}}, "targets.alibaba.session.concurrency",
                      "at least 1"),
    "concurrency 201": ({"session": {"concurrency": 201}},
                        "targets.alibaba.session.concurrency", "at most 200"),
    "private without a VPC": ({"network": {"mode": "PRIVATE"}}, "targets.alibaba.network",
                              "set vpc_id, vswitch_ids, security_group_id"),
    "VPC fields on PUBLIC": ({"network": {"vpc_id": "vpc-1"}}, "targets.alibaba.network",
                             "set mode PUBLIC_AND_PRIVATE"),
    "vswitch id": ({"network": {"mode": "PRIVATE", "vpc_id": "vpc-1", "vswitch_ids": ["x"],
                                "security_group_id": "sg-1"}},
                   "targets.alibaba.network.vswitch_ids", "vsw-"),
    "header affinity without a header": ({"session": {"affinity": "HEADER_FIELD"}},
                                         "targets.alibaba.session", "set header_field_name"),
    "header without header affinity": ({"session": {"header_field_name": "x-s"}},
                                       "targets.alibaba.session", "affinity HEADER_FIELD"),
    "NAS on PUBLIC": ({"nas": {"mount_points": [{"server_addr": "a.nas.aliyuncs.com:/",
                                                 "mount_dir": "/mnt/nas"}]}},
                      "targets.alibaba", "network.mode PRIVATE"),
    "role ARN": ({"execution_role_arn": "AgentRunRole"}, "targets.alibaba.execution_role_arn",
                 "acs:ram::<account id>:role/<role name>"),
    "disk size": ({"disk_size": 1024}, "targets.alibaba.disk_size", "512"),
    "health timeout": ({"health_check": {"timeout_seconds": 40}},
                       "targets.alibaba.health_check", "at most the period"),
    "runtime name": ({"runtime_name": "Support_Agent"}, "targets.alibaba.runtime_name",
                     "a-z, 0-9 and '-'"),
    "instance id on personal": ({"registry": "personal", "instance_id": "cri-abc"},
                                "targets.alibaba", "set registry: enterprise"),
    "two control planes": ({"api_endpoint": "https://agentrun.example.com",
                            "vpc_endpoint": True}, "targets.alibaba", "keep one"),
    "http control plane": ({"api_endpoint": "http://agentrun.example.com"},
                           "targets.alibaba.api_endpoint", "must use https"),
    "target version": ({"target_version": "latest-ish"}, "targets.alibaba.target_version",
                       "LATEST"),
    "memory in GB": ({"memory": 4}, "targets.alibaba.memory", "at least 128"),
    "mount twice": ({"oss_mounts": [{"bucket_name": "my-bucket", "mount_dir": "/data"},
                                    {"bucket_name": "other", "mount_dir": "/data"}]},
                    "targets.alibaba", "used twice"),
    "typo": ({"regoin": "cn-hangzhou"}, "targets.alibaba.regoin", "unknown field"),
}


@pytest.mark.parametrize("case", sorted(LOAD_RULES))
def test_targets_alibaba_errors_name_the_field_and_the_fix(tmp_path: Path, case: str):
    values, field_, words = LOAD_RULES[case]
    data = manifest_data()
    data["targets"]["alibaba"].update(values)
    with pytest.raises(ManifestError) as caught:
        load_manifest(write_repo(tmp_path, data))
    assert f"agent.yaml: {field_}:" in caught.value.message, caught.value.message
    assert words in caught.value.message


def test_cookie_affinity_is_the_generated_cookie_and_modes_read_in_any_case():
    loaded = manifest(session={"affinity": "cookie"},
                      network={"mode": "public_and_private", "vpc_id": "vpc-1",
                               "vswitch_ids": ["vsw-1"], "security_group_id": "sg-1"})
    target = loaded.targets.alibaba
    assert target.session.affinity == "GENERATED_COOKIE"
    assert target.network.mode == "PUBLIC_AND_PRIVATE"


def test_a_typo_suggests_the_field(tmp_path: Path):
    data = manifest_data(endpoint_nmae="default")
    with pytest.raises(ManifestError) as caught:
        load_manifest(write_repo(tmp_path, data))
    assert "did you mean 'endpoint_name'" in caught.value.hint


# --- the checks made before any call ----------------------------------------------------------

# (path in agent.yaml, value, image, field named, words of the message and its fix)
RULES = {
    "cpu not a number": ("runtime.cpu", "one", PUSHED, "runtime.cpu", ["'one'", "cores"]),
    "cpu too large": ("runtime.cpu", "32", PUSHED, "runtime.cpu", ["32 cores", "0.05 to 16"]),
    "memory unreadable": ("runtime.memory", "2 gigs", PUSHED, "runtime.memory",
                          ["'2 gigs'", "2Gi"]),
    "memory too small": ("runtime.memory", "64Mi", PUSHED, "runtime.memory",
                         ["64 MB", "128 to 32768"]),
    "no registry": ("runtime.port", 8088, "support-agent:v1", "image.repository",
                    ["names no registry", f"registry.{REGION}.aliyuncs.com/<namespace>/"]),
    "not ACR": ("runtime.port", 8088, "ghcr.io/acme/agent:v1", "image.repository",
                ["not an Alibaba Cloud Container Registry host", "push the image there"]),
    "edition mismatch": ("targets.alibaba.registry", "enterprise", PUSHED,
                         "targets.alibaba.registry", ["personal edition (ACR) host",
                                                      "set registry: personal"]),
    "enterprise in another region": (
        "runtime.port", 8088, f"myco-registry.cn-beijing.cr.aliyuncs.com/a/b@{DIGEST}",
        "image.repository", ["in cn-beijing", "set targets.alibaba.region: cn-beijing"]),
    "arm64 build": ("build.platform", "linux/arm64", PUSHED, "build.platform",
                    ["linux/amd64 images only", "set build.platform: linux/amd64"]),
    "malformed digest": ("runtime.port", 8088, f"{PERSONAL}@sha256:abc", "image.repository",
                         ["malformed digest"]),
    "secret also in env": ("runtime.env", {"OPENAI_API_KEY": "x"}, PUSHED, "runtime.secrets",
                           ["also in runtime.env", "keep it in one place"]),
    "runtime name from the target": ("targets.alibaba.runtime_name", None, PUSHED, "", []),
}


@pytest.mark.parametrize("case", sorted(set(RULES) - {"runtime name from the target"}))
def test_each_rule_names_the_field_and_the_fix(case: str):
    path, value, image, field_, words = RULES[case]
    loaded = manifest(deep_update(manifest_data(), path, value))
    problems, _ = validate(loaded, loaded.targets.alibaba, image=image)
    assert [p.field for p in problems] == [field_], problems
    for word in words:
        assert word in problems[0].message


def test_a_valid_manifest_has_no_problems_or_warnings():
    loaded = manifest()
    assert validate(loaded, loaded.targets.alibaba, image=PUSHED) == ([], [])


def test_a_pushed_arm64_image_is_refused_even_when_the_manifest_says_amd64():
    loaded = manifest()
    problems, _ = validate(loaded, loaded.targets.alibaba, image=PUSHED,
                           image_platform="linux/arm64")
    assert [p.field for p in problems] == ["image.repository"]
    assert "linux/arm64" in problems[0].message and "rebuild" in problems[0].message


def test_an_invalid_runtime_name_from_the_manifest_name_is_named():
    loaded = manifest()
    target = loaded.targets.alibaba.model_copy(update={"runtime_name": "-bad"})
    problems, _ = validate(loaded, target, image=PUSHED)
    assert [p.field for p in problems] == ["targets.alibaba.runtime_name"]


@pytest.mark.parametrize("cpu,memory,field_,words", [
    (0.5, 4000, "targets.alibaba.memory", "not a multiple of 64 MB; use e.g. 4032"),
    (0.5, 4096, "targets.alibaba.memory", "use 512-2048 MB"),
    (0.33, 512, "targets.alibaba.cpu", "not a multiple of 0.05; use e.g. 0.35"),
])
def test_sizes_function_compute_does_not_offer_are_refused(cpu: float, memory: int, field_: str,
                                                           words: str):
    loaded = manifest(cpu=cpu, memory=memory)
    problems, _ = validate(loaded, loaded.targets.alibaba, image=PUSHED)
    assert [p.field for p in problems] == [field_] and words in problems[0].message


def test_a_personal_image_in_another_region_only_warns():
    loaded = manifest()
    image = f"registry.cn-beijing.aliyuncs.com/a/b@{DIGEST}"
    problems, warnings = validate(loaded, loaded.targets.alibaba, image=image)
    assert problems == [] and "same region" in warnings[0]


def test_every_problem_is_reported_at_once_before_any_call(tmp_path: Path):
    data = manifest_data(registry="enterprise")
    data["runtime"].update(cpu="lots", memory="2 gigs")
    with pytest.raises(ManifestError) as caught:
        deploy(write_repo(tmp_path, data))  # the transport fails on any call
    lines = caught.value.message.splitlines()
    assert [line.split(":")[1].strip() for line in lines] == [
        "runtime.cpu", "runtime.memory", "targets.alibaba.registry"]
    assert "--dry-run" in caught.value.hint


@pytest.mark.parametrize("text,cores", [("1", 1), ("0.5", 0.5), ("500m", 0.5), ("2.0", 2),
                                        ("one", None)])
def test_cpu_reads_cores_and_millicores(text: str, cores: float | None):
    value = parse_cores(text)
    assert (float(value) if value is not None else None) == cores


@pytest.mark.parametrize("text,mb", [("2Gi", 2048), ("2G", 2048), ("2GB", 2048), ("512Mi", 512),
                                     ("512", 512), ("1.5Gi", 1536), ("0.1Mi", None),
                                     ("2 gigs", None)])
def test_memory_reads_binary_units_as_megabytes(text: str, mb: int | None):
    assert parse_memory_mb(text) == mb


def test_targets_alibaba_sizes_win_over_runtime():
    loaded = manifest(cpu=2, memory=4096)
    found = sizes(loaded, loaded.targets.alibaba)
    assert (found.cpu, found.memory) == (2.0, 4096)


# --- the request bodies -----------------------------------------------------------------------


def body_for(loaded: Manifest, image: str = PUSHED, **environment: str) -> dict[str, Any]:
    target = loaded.targets.alibaba
    registry = registry_for(loaded, target, image, "image.repository")
    found = sizes(loaded, target)
    return build_runtime_body(loaded, target, image=image, registry_type=registry.type,
                              acr_instance_id=registry.instance, cpu=found.cpu,
                              memory=found.memory,
                              environment={**loaded.runtime.env, **environment})


def test_the_default_body_is_a_container_runtime_on_ready():
    assert body_for(manifest(), OPENAI_API_KEY=SECRET) == {
        "agentRuntimeName": "support-agent",
        "description": "Answers support questions",
        "artifactType": "Container",
        "containerConfiguration": {"image": PUSHED, "imageRegistryType": "ACR", "port": 8088},
        "cpu": 1.0,
        "memory": 2048,
        "port": 8088,
        "healthCheckConfiguration": {"httpGetUrl": "/ready", "initialDelaySeconds": 30,
                                     "periodSeconds": 30, "timeoutSeconds": 3,
                                     "failureThreshold": 3, "successThreshold": 1},
        "protocolConfiguration": {"type": "HTTP"},
        "networkConfiguration": {"networkMode": "PUBLIC"},
        "environmentVariables": {"LOG_LEVEL": "info", "OPENAI_API_KEY": SECRET},
    }


EVERY_FIELD = {
    "runtime_name": "support-runtime",
    "description": "Runtime for support",
    "registry": "enterprise",
    "instance_id": "cri-abc123",
    "command": ["python", "-m", "server"],
    "cpu": 2,
    "memory": 4096,
    "disk_size": 10240,
    "health_check": {"path": "/health", "initial_delay_seconds": 5, "period_seconds": 10,
                     "timeout_seconds": 2, "failure_threshold": 5, "success_threshold": 2},
    "network": {"mode": "PUBLIC_AND_PRIVATE", "vpc_id": "vpc-bp1", "vswitch_ids": ["vsw-a",
                "vsw-b"], "security_group_id": "sg-bp1"},
    "session": {"concurrency": 20, "idle_timeout_seconds": 3600, "affinity": "HEADER_FIELD",
                "header_field_name": "x-agentrun-session-id", "isolation": True},
    "log": {"project": "agents", "logstore": "support"},
    "execution_role_arn": "acs:ram::1234567890:role/AgentRunExecutionRole",
    "credential_name": "support-inbound",
    "workspace_id": "ws-123",
    "tags": ["team:support", "env:prod"],
    "nas": {"user_id": 1000, "group_id": 1000, "mount_points": [
        {"server_addr": "0a1b-xyz.cn-hangzhou.nas.aliyuncs.com:/", "mount_dir": "/mnt/nas",
         "enable_tls": True}]},
    "oss_mounts": [{"bucket_name": "support-docs", "bucket_path": "/kb", "endpoint":
                    "http://oss-cn-hangzhou-internal.aliyuncs.com", "mount_dir": "/mnt/kb"}],
    "arms": {"enabled": True, "cms_workspace": "cms-1"},
    "edition": "standard",
}


def test_every_manifest_field_reaches_the_body():
    loaded = manifest(**EVERY_FIELD)
    image = f"{ENTERPRISE}@{DIGEST}"
    assert body_for(loaded, image) == {
        "agentRuntimeName": "support-runtime",
        "description": "Runtime for support",
        "artifactType": "Container",
        "containerConfiguration": {"image": image, "imageRegistryType": "ACREE",
                                   "acrInstanceId": "cri-abc123", "port": 8088,
                                   "command": ["python", "-m", "server"]},
        "cpu": 2.0,
        "memory": 4096,
        "port": 8088,
        "diskSize": 10240,
        "healthCheckConfiguration": {"httpGetUrl": "/health", "initialDelaySeconds": 5,
                                     "periodSeconds": 10, "timeoutSeconds": 2,
                                     "failureThreshold": 5, "successThreshold": 2},
        "protocolConfiguration": {"type": "HTTP"},
        "networkConfiguration": {"networkMode": "PUBLIC_AND_PRIVATE", "vpcId": "vpc-bp1",
                                 "vswitchIds": ["vsw-a", "vsw-b"], "securityGroupId": "sg-bp1"},
        "sessionConcurrencyLimitPerInstance": 20,
        "sessionIdleTimeoutSeconds": 3600,
        "sessionAffinityType": "HEADER_FIELD",
        "headerFieldName": "x-agentrun-session-id",
        "enableSessionIsolation": True,
        "environmentVariables": {"LOG_LEVEL": "info"},
        "logConfiguration": {"project": "agents", "logstore": "support"},
        "nasConfig": {"userId": 1000, "groupId": 1000, "mountPoints": [
            {"serverAddr": "0a1b-xyz.cn-hangzhou.nas.aliyuncs.com:/", "mountDir": "/mnt/nas",
             "enableTLS": True}]},
        "ossMountConfig": {"mountPoints": [
            {"bucketName": "support-docs", "bucketPath": "/kb",
             "endpoint": "http://oss-cn-hangzhou-internal.aliyuncs.com", "mountDir": "/mnt/kb",
             "readOnly": True}]},
        "executionRoleArn": "acs:ram::1234567890:role/AgentRunExecutionRole",
        "credentialName": "support-inbound",
        "workspaceId": "ws-123",
        "systemTags": ["team:support", "env:prod"],
        "armsConfiguration": {"enableArms": True, "cmsWorkspace": "cms-1"},
        "edition": "standard",
    }


@pytest.mark.parametrize("image_registry,target,instance", [
    ({}, {}, "myco"),  # the host's instance name: AgentRun takes an id or a name
    ({"instance_id": "cri-fromimage"}, {}, "cri-fromimage"),
    ({"instance_id": "cri-fromimage"}, {"instance_id": "cri-fromtarget"}, "cri-fromtarget"),
])
def test_the_enterprise_instance_comes_from_the_target_the_image_or_the_host(
    image_registry: dict[str, str], target: dict[str, str], instance: str
):
    data = manifest_data(**target)
    data["image"] = {"repository": ENTERPRISE, "registry": image_registry}
    loaded = manifest(data)
    container = body_for(loaded, f"{ENTERPRISE}@{DIGEST}")["containerConfiguration"]
    assert (container["imageRegistryType"], container["acrInstanceId"]) == ("ACREE", instance)


def test_an_arms_license_key_comes_from_the_environment(repo: Path):
    data = manifest_data(arms={"license_key_env": "ARMS_KEY"})
    root = write_repo(repo.parent / "arms", data)
    result = deploy(root, env={**ENV, "ARMS_KEY": "arms-license-0123456789"}, dry_run=True)
    text = json.dumps(result.to_dict())
    assert "arms-license-0123456789" not in text
    assert '"armsLicenseKey": "[REDACTED]"' in text


# --- the idempotency rule ---------------------------------------------------------------------


def test_what_agentrun_adds_and_other_spellings_are_no_change():
    desired = body_for(manifest(), OPENAI_API_KEY=SECRET)
    current = json.loads(json.dumps(desired))
    current.update(cpu=1, agentRuntimeId="ar-1", status="READY", createdAt="2026-01-01",
                   sessionIdleTimeoutSeconds=3600)
    current["containerConfiguration"]["acrInstanceId"] = ""
    current["healthCheckConfiguration"]["extra"] = 1
    assert runtime_changes(desired, current) == []


def test_tags_and_vswitches_in_another_order_are_no_change():
    desired = body_for(manifest(**EVERY_FIELD), f"{ENTERPRISE}@{DIGEST}")
    current = json.loads(json.dumps(desired))
    current["systemTags"].reverse()
    current["networkConfiguration"]["vswitchIds"].reverse()
    assert runtime_changes(desired, current) == []


def test_changes_are_named_and_environment_values_are_not_shown():
    desired = body_for(manifest(), OPENAI_API_KEY=SECRET)
    current = json.loads(json.dumps(desired))
    current["containerConfiguration"]["image"] = f"{PERSONAL}@sha256:{'00' * 32}"
    current["memory"] = 4096
    current["environmentVariables"] = {"LOG_LEVEL": "info", "OPENAI_API_KEY": "old-secret",
                                       "STALE": "1"}
    changes = runtime_changes(desired, current)
    assert changes == ["containerConfiguration", "memory",
                       "environmentVariables (OPENAI_API_KEY, STALE)"]
    assert SECRET not in str(changes) and "old-secret" not in str(changes)


# --- the dry run ------------------------------------------------------------------------------


def test_dry_run_sends_nothing_and_prints_every_request_signed(repo: Path):
    result = deploy(repo, dry_run=True)
    assert result.dry_run and not result.changed
    actions = [r.headers["x-acs-action"] for r in result.requests]
    assert actions == [
        "ListAgentRuntimes", "GetAgentRuntime", "CreateAgentRuntime", "UpdateAgentRuntime",
        "GetAgentRuntime", "ListAgentRuntimeEndpoints", "CreateAgentRuntimeEndpoint",
        "UpdateAgentRuntimeEndpoint", "GetAgentRuntimeEndpoint",
    ]
    create = result.requests[2]
    assert create.method == "POST"
    assert create.url == f"{CONTROL}/2025-09-10/agents/runtimes"
    assert result.requests[3].url == f"{CONTROL}/2025-09-10/agents/runtimes/{{agentRuntimeId}}"
    assert result.requests[0].url.endswith(
        "/2025-09-10/agents/runtimes?agentRuntimeName=support-agent&pageNumber=1&pageSize=100")
    headers = create.headers
    assert headers["authorization"].startswith(
        f"ACS3-HMAC-SHA256 Credential={KEY_ID},SignedHeaders=content-type;host;x-acs-action;")
    assert headers["authorization"].endswith("Signature=[REDACTED]")
    assert headers["x-acs-version"] == "2025-09-10"
    assert headers["host"] == f"agentrun.{REGION}.aliyuncs.com"
    # the body shown is the body signed: its hash is the one in the headers
    shown = json.dumps(create.body, separators=(",", ":")).encode()
    assert headers["x-acs-content-sha256"] == hashlib.sha256(shown).hexdigest()
    assert create.body["environmentVariables"]["OPENAI_API_KEY"] == "[REDACTED]"
    assert result.requests[6].body == {"agentRuntimeEndpointName": "default",
                                       "targetVersion": "LATEST"}


def test_dry_run_output_never_holds_a_secret(repo: Path):
    env = {**ENV, "ALIBABA_CLOUD_SECURITY_TOKEN": STS_TOKEN}
    result = deploy(repo, env=env, dry_run=True)
    text = json.dumps(result.to_dict()) + "\n".join(r.render() for r in result.requests)
    for secret in (SECRET, KEY_SECRET, STS_TOKEN):
        assert secret not in text
    assert '"x-acs-security-token": "[REDACTED]"' in text
    assert f'"x-acs-accesskey-id": "{KEY_ID}"' in text


def test_a_short_secret_is_redacted_too(tmp_path: Path):
    root = write_repo(tmp_path, manifest_data())
    result = deploy(root, env={**ENV, "OPENAI_API_KEY": "abc"}, dry_run=True)
    bodies = [r.body for r in result.requests if r.body and "environmentVariables" in r.body]
    assert bodies and all(b["environmentVariables"]["OPENAI_API_KEY"] == "[REDACTED]"
                          for b in bodies)


def test_a_dry_run_without_credentials_or_secrets_warns_instead_of_failing(repo: Path):
    result = deploy(repo, env={}, dry_run=True)
    assert any("OPENAI_API_KEY is not set" in w for w in result.warnings)
    assert "Credential=<ALIBABA_CLOUD_ACCESS_KEY_ID>" in result.requests[0].headers[
        "authorization"]


def test_a_dry_run_without_wait_stops_at_the_runtime_and_publish_adds_the_version(repo: Path):
    actions = [r.headers["x-acs-action"] for r in deploy(repo, dry_run=True, wait=False).requests]
    assert actions[-1] == "UpdateAgentRuntime"
    published = deploy(repo, dry_run=True, publish=True).requests
    names = [r.headers["x-acs-action"] for r in published]
    assert "PublishRuntimeVersion" in names
    assert published[names.index("CreateAgentRuntimeEndpoint")].body["targetVersion"] == (
        "{version}")


def test_the_vpc_flag_and_the_endpoint_override_choose_the_control_plane(tmp_path: Path):
    vpc = deploy(write_repo(tmp_path / "vpc", manifest_data(vpc_endpoint=True)), dry_run=True)
    assert vpc.requests[0].url.startswith(f"https://agentrun-vpc.{REGION}.aliyuncs.com/")
    env = {**ENV, "ACTK_ALIBABA_AGENTRUN_ENDPOINT": "http://127.0.0.1:9"}
    local = deploy(write_repo(tmp_path / "local", manifest_data()), env=env, dry_run=True)
    assert local.requests[0].url.startswith("http://127.0.0.1:9/2025-09-10/")
    assert control_endpoint(REGION) is None


# --- a deploy against the in-memory AgentRun -------------------------------------------------


def test_a_first_deploy_creates_waits_then_adds_the_endpoint(repo: Path, fake: FakeAgentRun):
    fake.reads = 2
    result = deploy(repo, fake)
    assert fake.writes == ["CreateAgentRuntime", "CreateAgentRuntimeEndpoint"]
    assert fake.actions.index("CreateAgentRuntimeEndpoint") > max(
        i for i, a in enumerate(fake.actions) if a == "GetAgentRuntime")
    assert (result.action, result.status, result.changed) == ("create", "READY", True)
    url = f"https://{DATA_HOST}/agent-runtimes/support-agent/endpoints/default/invocations"
    assert result.endpoint == url
    assert result.details["invoke_url"] == url + "/responses"
    state = json.loads((repo / ".actk" / "state.json").read_text())["alibaba"]
    assert state["runtime_name"] == "support-agent" and state["endpoint_url"] == url
    assert state["image"] == PUSHED and SECRET not in json.dumps(state)
    sent = next(s for s in fake.seen if s.action == "CreateAgentRuntime")
    assert sent.body["environmentVariables"]["OPENAI_API_KEY"] == SECRET  # sent, not shown
    assert SECRET not in json.dumps(result.to_dict())


def test_a_second_deploy_without_changes_writes_nothing(repo: Path, fake: FakeAgentRun):
    deploy(repo, fake)
    fake.seen.clear()
    result = deploy(repo, fake)
    assert fake.writes == []
    assert (result.action, result.changed, result.status) == ("unchanged", False, "READY")
    assert result.endpoint is not None


def test_a_new_image_updates_the_runtime_by_name(tmp_path: Path, fake: FakeAgentRun):
    root = write_repo(tmp_path, manifest_data())
    deploy(root, fake)
    newer = f"{PERSONAL}@sha256:{'ef' * 32}"
    write_repo(tmp_path, manifest_data(), pushed=newer)
    fake.seen.clear()
    result = deploy(root, fake)
    assert fake.writes == ["UpdateAgentRuntime"]
    assert result.action == "update" and result.details["changes"] == ["containerConfiguration"]
    assert next(iter(fake.runtimes.values()))["containerConfiguration"]["image"] == newer


def test_a_failed_runtime_with_the_same_definition_is_sent_again(repo: Path, fake: FakeAgentRun):
    fake.outcome = ("CREATE_FAILED", "pull image failed: manifest unknown")
    with pytest.raises(CloudError):
        deploy(repo, fake)
    fake.outcome = ("READY", None)
    fake.seen.clear()
    result = deploy(repo, fake)
    assert result.action == "update" and "CREATE_FAILED" in result.reason
    assert fake.writes == ["UpdateAgentRuntime", "CreateAgentRuntimeEndpoint"]


@pytest.mark.parametrize("reason,words", [
    ("pull image failed: manifest unknown", ["could not pull", "same account and region",
                                             "AliyunContainerRegistryReadOnlyAccess"]),
    ("FunctionNotStarted: health check failed", ["0.0.0.0:8088", "GET /ready", "actk smoke"]),
    ("quota exceeded", ["read the runtime's logs"]),
])
def test_a_failed_runtime_reports_its_reason_and_the_fix(repo: Path, fake: FakeAgentRun,
                                                         reason: str, words: list[str]):
    fake.outcome = ("CREATE_FAILED", reason)
    with pytest.raises(CloudError) as caught:
        deploy(repo, fake)
    assert "CREATE_FAILED" in caught.value.message and reason in caught.value.message
    for word in words:
        assert word in caught.value.hint
    assert "CreateAgentRuntimeEndpoint" not in fake.actions


def test_a_failure_reason_echoing_the_secret_is_redacted(repo: Path, fake: FakeAgentRun):
    fake.outcome = ("CREATE_FAILED", f"bad env OPENAI_API_KEY={SECRET}")
    with pytest.raises(CloudError) as caught:
        deploy(repo, fake)
    assert SECRET not in caught.value.message


def test_the_wait_is_bounded(repo: Path, fake: FakeAgentRun):
    fake.reads = 10_000
    with pytest.raises(CloudError) as caught:
        deploy(repo, fake, timeout=60)
    assert "still CREATING" in caught.value.message and "actk status alibaba" in caught.value.hint


def test_without_wait_the_endpoint_is_left_for_the_next_run(repo: Path, fake: FakeAgentRun):
    result = deploy(repo, fake, wait=False)
    assert fake.writes == ["CreateAgentRuntime"]
    assert result.endpoint is None and any("once it is READY" in w for w in result.warnings)
    fake._left = {runtime_id: 2 for runtime_id in fake._left}  # CREATING for one more read
    fake.seen.clear()
    again = deploy(repo, fake)
    assert (again.action, again.status) == ("wait", "READY")
    assert fake.writes == ["CreateAgentRuntimeEndpoint"]


def test_a_busy_runtime_that_differs_is_not_updated(repo: Path, fake: FakeAgentRun):
    fake.reads = 10_000
    deploy(repo, fake, wait=False)
    write_repo(repo, manifest_data(cpu=2))
    with pytest.raises(CloudError) as caught:
        deploy(repo, fake)
    assert "is CREATING and differs" in caught.value.message
    assert "wait until it is READY" in caught.value.hint


def test_an_endpoint_refused_while_the_runtime_updates_says_wait(repo: Path, fake: FakeAgentRun):
    fake.fail("CreateAgentRuntimeEndpoint", 409, {"code": "ERR_CONFLICT", "message":
                                                  "agent runtime is UPDATING"})
    with pytest.raises(AlibabaAPIError) as caught:
        deploy(repo, fake)
    assert "refuses endpoint changes while runtime support-agent is CREATING or UPDATING" in (
        caught.value.hint)


def test_publish_creates_a_version_once_and_points_the_endpoint_at_it(repo: Path,
                                                                      fake: FakeAgentRun):
    result = deploy(repo, fake, publish=True)
    assert fake.writes == ["CreateAgentRuntime", "PublishRuntimeVersion",
                           "CreateAgentRuntimeEndpoint"]
    assert result.version == "1" and result.details["endpoint"]["target_version"] == "1"
    fake.seen.clear()
    again = deploy(repo, fake, publish=True)
    assert fake.writes == [] and again.version == "1"


def test_an_explicit_target_version_moves_the_endpoint(tmp_path: Path, fake: FakeAgentRun):
    root = write_repo(tmp_path, manifest_data())
    deploy(root, fake, publish=True)
    write_repo(tmp_path, manifest_data(target_version="LATEST"))
    fake.seen.clear()
    result = deploy(root, fake)
    assert fake.writes == ["UpdateAgentRuntimeEndpoint"]
    assert result.details["endpoint"]["target_version"] == "LATEST" and result.changed


def test_a_missing_secret_stops_a_real_deploy_naming_it(repo: Path, fake: FakeAgentRun):
    env = {k: v for k, v in ENV.items() if k != "OPENAI_API_KEY"}
    with pytest.raises(UsageError) as caught:
        deploy(repo, fake, env=env)
    assert "OPENAI_API_KEY is not set" in caught.value.message
    assert fake.seen == []


def test_a_create_answered_500_that_created_the_runtime_is_taken(repo: Path, fake: FakeAgentRun):
    original = fake.handle

    def flaky(request: httpx.Request) -> httpx.Response:
        answer = original(request)
        if request.headers.get("x-acs-action") == "CreateAgentRuntime":
            return httpx.Response(500, json={"code": "ERR_INTERNAL_SERVER_ERROR"})
        return answer

    result = deploy_alibaba(repo, AlibabaOptions(), Console(as_json=True), ENV,
                            clock=FakeClock().clock, transport=httpx.MockTransport(flaky))
    assert result.status == "READY" and len(fake.runtimes) == 1
    assert fake.actions.count("CreateAgentRuntime") == 1


# --- errors mapped to hints -------------------------------------------------------------------


def test_a_missing_ram_permission_names_the_action(repo: Path, fake: FakeAgentRun):
    fake.fail("ListAgentRuntimes", 403, {"Code": "Forbidden.RAM", "Message": "denied",
                                         "RequestId": "req-9"})
    with pytest.raises(AlibabaAPIError) as caught:
        deploy(repo, fake)
    assert '"Action": "agentrun:ListAgentRuntimes"' in caught.value.hint
    assert caught.value.request_id == "req-9"


def test_a_signature_mismatch_points_at_the_secret_and_the_clock(repo: Path, fake: FakeAgentRun):
    fake.fail("ListAgentRuntimes", 400, {"Code": "SignatureDoesNotMatch",
                                         "Message": "signature mismatch"})
    with pytest.raises(AlibabaAPIError) as caught:
        deploy(repo, fake)
    assert "ALIBABA_CLOUD_ACCESS_KEY_SECRET" in caught.value.hint
    assert "clock" in caught.value.hint
    assert KEY_SECRET not in caught.value.message + caught.value.hint


def test_throttling_is_retried(repo: Path, fake: FakeAgentRun):
    fake.fail("CreateAgentRuntime", 400, {"Code": "Throttling.User", "Message": "slow down"})
    result = deploy(repo, fake)
    assert result.status == "READY" and fake.actions.count("CreateAgentRuntime") == 2


def test_an_error_code_in_a_200_answer_is_an_error():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"code": "ERR_VALIDATION_FAILED",
                                         "message": "memory is invalid", "requestId": "r"})

    client = AgentRunClient(AlibabaCredentials(KEY_ID, KEY_SECRET), region=REGION,
                            transport=httpx.MockTransport(handler))
    with pytest.raises(AlibabaAPIError) as caught:
        client.send(Call("GET", "/2025-09-10/agents/runtimes", "ListAgentRuntimes"))
    assert "ERR_VALIDATION_FAILED: memory is invalid" in caught.value.message
    assert "--dry-run" in caught.value.hint


def test_failure_hints_without_a_reason_point_to_the_logs():
    assert "logs" in failure_hint(None)


def test_a_manifest_without_targets_alibaba_says_how_to_add_it(tmp_path: Path):
    data = manifest_data()
    del data["targets"]
    with pytest.raises(ManifestError) as caught:
        deploy(write_repo(tmp_path, data), dry_run=True)
    assert "no targets.alibaba section" in caught.value.message
    assert "region: cn-hangzhou" in caught.value.hint


# --- status, delete, invoke -------------------------------------------------------------------


def test_status_shows_the_runtime_its_endpoints_and_versions(repo: Path, fake: FakeAgentRun):
    deploy(repo, fake, publish=True)
    report = alibaba_status(repo, ENV, clock=FakeClock().clock, transport=fake.transport())
    assert report["exists"] and report["status"] == "READY" and report["image"] == PUSHED
    assert (report["cpu"], report["memory"]) == (1.0, 2048)
    assert [e["name"] for e in report["endpoints"]] == ["default"]
    assert [v["version"] for v in report["versions"]] == ["1"]
    assert report["invoke_url"].endswith("/endpoints/default/invocations/responses")
    assert SECRET not in json.dumps(report)


def test_status_of_a_runtime_never_deployed(repo: Path, fake: FakeAgentRun):
    report = alibaba_status(repo, ENV, transport=fake.transport())
    assert report["exists"] is False and report["endpoints"] == []


def test_delete_removes_the_endpoints_first_then_the_runtime(repo: Path, fake: FakeAgentRun):
    deploy(repo, fake)
    fake.seen.clear()
    report = delete_alibaba(repo, ENV, Console(as_json=True), clock=FakeClock().clock,
                            transport=fake.transport())
    assert fake.writes == ["DeleteAgentRuntimeEndpoint", "DeleteAgentRuntime"]
    assert report["deleted"] and report["endpoints_deleted"] == ["default"]
    assert fake.runtimes == {}
    state = json.loads((repo / ".actk" / "state.json").read_text())["alibaba"]
    assert state["status"] == "deleted"


def test_deleting_a_runtime_that_is_not_there_is_a_no_op(repo: Path, fake: FakeAgentRun):
    report = delete_alibaba(repo, ENV, Console(as_json=True), transport=fake.transport())
    assert report == {**report, "existed": False, "deleted": False}
    assert fake.writes == []


@pytest.mark.parametrize("stream", [True, False])
def test_invoke_goes_through_the_endpoint_url(repo: Path, fake: FakeAgentRun, stream: bool):
    deploy(repo, fake)
    deltas: list[str] = []
    result = invoke_alibaba(repo, "hello", env=ENV, stream=stream, on_delta=deltas.append,
                            transport=fake.transport())
    assert result.output_text == "echo: hello" and result.status == "completed"
    path, body, _ = fake.invocations[-1]
    assert path == "/agent-runtimes/support-agent/endpoints/default/invocations/responses"
    assert body == {"input": "hello", "stream": stream}
    assert deltas == (["echo: hello"] if stream else [])


def test_invoke_reads_the_endpoint_from_agentrun_when_nothing_is_recorded(
    tmp_path: Path, fake: FakeAgentRun
):
    root = write_repo(tmp_path / "a", manifest_data())
    deploy(root, fake)
    other = write_repo(tmp_path / "b", manifest_data())  # another checkout: no alibaba state
    fake.seen.clear()
    result = invoke_alibaba(other, "hi", env=ENV, transport=fake.transport(),
                            headers={"x-agentrun-session-id": "s-1"})
    assert result.output_text == "echo: hi"
    assert fake.actions == ["ListAgentRuntimes", "ListAgentRuntimeEndpoints"]
    assert fake.invocations[-1][2]["x-agentrun-session-id"] == "s-1"


def test_invoke_before_a_deploy_says_deploy_first(repo: Path, fake: FakeAgentRun):
    with pytest.raises(InvokeError) as caught:
        invoke_alibaba(repo, "hi", env=ENV, transport=fake.transport())
    assert "actk deploy alibaba" in caught.value.hint


@pytest.mark.parametrize("status,words", [(401, "credential_name"), (503, "cold start"),
                                          (404, "deploy first")])
def test_invoke_failures_get_their_fix(repo: Path, fake: FakeAgentRun, status: int, words: str):
    deploy(repo, fake)
    token = "inbound-credential-0123456789"

    def refuse(request: httpx.Request) -> httpx.Response:
        if request.url.host == DATA_HOST:
            return httpx.Response(status, json={"code": "Denied", "message": f"no {token}"})
        return fake.handle(request)

    with pytest.raises(InvokeError) as caught:
        invoke_alibaba(repo, "hi", env=ENV, transport=httpx.MockTransport(refuse),
                       headers={"authorization": token})
    assert f"HTTP {status}" in caught.value.message and words in caught.value.hint
    assert token not in caught.value.message


def test_the_human_output_of_a_deploy_shows_each_phase(repo: Path, fake: FakeAgentRun,
                                                       capsys: pytest.CaptureFixture[str]):
    deploy(repo, fake, console=Console())
    err = capsys.readouterr().err
    assert "Creating runtime support-agent in cn-hangzhou" in err
    assert re.search(r"environment: LOG_LEVEL=info, OPENAI_API_KEY=\[REDACTED\]", err)
    assert "Creating endpoint default (target version LATEST)" in err
    assert SECRET not in err


def test_the_call_log_is_passed_through(repo: Path, fake: FakeAgentRun):
    lines: list[str] = []
    deploy_alibaba(repo, AlibabaOptions(), Console(as_json=True), ENV, clock=FakeClock().clock,
                   transport=fake.transport(), on_call=lines.append)
    assert lines and all(KEY_SECRET not in line for line in lines)
    assert any("POST" in line and "/2025-09-10/agents/runtimes" in line for line in lines)
