"""`actk deploy|status|invoke|delete alibaba` against the AgentRun contract server
(tests/agentrun_contract.py): every request is signed and checked there by Alibaba's own
signer, every body against the SDK's models and the service's rules, and ``violations`` stays
empty but for the one noted below.

Invocations go through the endpoint's public URL to the contract's data plane, which forwards
them to the example agent's real server (examples/echo-agent, run in a subprocess). Waits run
on a fake clock: polling and retries cost no time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.agentrun_contract import (
    AgentRunContract,
    check_create_endpoint_body,
    check_create_runtime_body,
    check_publish_version_body,
    check_update_endpoint_body,
    check_update_runtime_body,
)
from tests.test_deploy_alibaba import (
    DIGEST,
    ENTERPRISE,
    EVERY_FIELD,
    PERSONAL,
    PUSHED,
    REGION,
    SECRET,
    FakeClock,
    manifest_data,
    write_repo,
)
from toolkit.cloud.alibaba import AlibabaAPIError
from toolkit.console import Console
from toolkit.deploy.alibaba import (
    AlibabaOptions,
    alibaba_status,
    delete_alibaba,
    deploy_alibaba,
    invoke_alibaba,
)
from toolkit.deploy.core import DeployResult
from toolkit.errors import CloudError

OTHER = f"{PERSONAL}@sha256:{'ef' * 32}"  # a second pushed image
WRITES = {"CreateAgentRuntime", "UpdateAgentRuntime", "DeleteAgentRuntime",
          "PublishRuntimeVersion", "CreateAgentRuntimeEndpoint", "UpdateAgentRuntimeEndpoint",
          "DeleteAgentRuntimeEndpoint"}


# --- fixtures -------------------------------------------------------------------------------------


def environment(contract: AgentRunContract, **extra: str) -> dict[str, str]:
    return {**contract.env, "OPENAI_API_KEY": SECRET, **extra}


def deploy(root: Path, contract: AgentRunContract, *, env: dict[str, str] | None = None,
           **options: Any) -> DeployResult:
    return deploy_alibaba(root, AlibabaOptions(**options), Console(as_json=True),
                          env or environment(contract), clock=FakeClock().clock)


def writes(contract: AgentRunContract) -> list[str]:
    return [a for a in contract.actions if a in WRITES]


def unexpected(contract: AgentRunContract) -> list[str]:
    return list(contract.violations)


# --- the whole flow ---------------------------------------------------------------------------


def test_create_ready_endpoint_invoke_status_delete(tmp_path: Path, agentrun: Any,
                                                    echo_agent: str):
    contract = agentrun(region=REGION, ready_polls=2)
    root = write_repo(tmp_path, manifest_data())

    result = deploy(root, contract)
    assert (result.action, result.status, result.changed) == ("create", "READY", True)
    assert writes(contract) == ["CreateAgentRuntime", "CreateAgentRuntimeEndpoint"]
    (create,) = contract.calls("CreateAgentRuntime")
    check_create_runtime_body(create.json, region=REGION)
    assert create.json["containerConfiguration"] == {"image": PUSHED, "imageRegistryType": "ACR",
                                                     "port": 8088}
    assert create.json["environmentVariables"]["OPENAI_API_KEY"] == SECRET
    (endpoint,) = contract.calls("CreateAgentRuntimeEndpoint")
    check_create_endpoint_body(endpoint.json)
    assert endpoint.json == {"agentRuntimeEndpointName": "default", "targetVersion": "LATEST"}
    url = (f"{contract.data_endpoint}/agent-runtimes/support-agent/endpoints/default/"
           "invocations")
    assert result.endpoint == url and result.details["invoke_url"] == url + "/responses"
    assert SECRET not in json.dumps(result.to_dict())
    runtime = contract.runtime("support-agent")
    assert runtime is not None and runtime.status == "READY"

    contract.forward_to(echo_agent)
    streamed: list[str] = []
    answer = invoke_alibaba(root, "hello there", env=environment(contract),
                            on_delta=streamed.append)
    assert "hello there" in answer.output_text and streamed
    whole = invoke_alibaba(root, "once", env=environment(contract), stream=False)
    assert whole.status == "completed"
    assert [r.path for r in contract.invocations] == [
        "/agent-runtimes/support-agent/endpoints/default/invocations/responses"] * 2
    assert [r.json["stream"] for r in contract.invocations] == [True, False]
    assert [r.served_by for r in contract.invocations] == ["support-agent@LATEST"] * 2

    report = alibaba_status(root, environment(contract))
    assert (report["exists"], report["status"], report["image"]) == (True, "READY", PUSHED)
    assert [(e["name"], e["status"]) for e in report["endpoints"]] == [("default", "READY")]
    assert report["invoke_url"] == url + "/responses"

    before = len(contract.actions)
    deleted = delete_alibaba(root, environment(contract), Console(as_json=True),
                             clock=FakeClock().clock)
    assert deleted["deleted"] and deleted["endpoints_deleted"] == ["default"]
    assert [a for a in contract.actions[before:] if a in WRITES] == [
        "DeleteAgentRuntimeEndpoint", "DeleteAgentRuntime"]
    assert contract.runtime("support-agent") is None
    assert unexpected(contract) == []


def test_a_rerun_without_changes_sends_no_write(tmp_path: Path, agentrun: Any):
    contract = agentrun(region=REGION, ready_polls=2)
    root = write_repo(tmp_path, manifest_data())
    deploy(root, contract)
    before = len(contract.actions)
    again = deploy(root, contract)
    assert (again.action, again.changed, again.status) == ("unchanged", False, "READY")
    assert [a for a in contract.actions[before:] if a in WRITES] == []
    assert again.endpoint is not None
    assert unexpected(contract) == []


def test_every_manifest_field_is_accepted_and_a_rerun_changes_nothing(tmp_path: Path,
                                                                     agentrun: Any):
    contract = agentrun(region=REGION, ready_polls=1)
    data = manifest_data(**EVERY_FIELD)
    data["image"] = {"repository": ENTERPRISE, "tag": "v1"}
    root = write_repo(tmp_path, data, pushed=f"{ENTERPRISE}@{DIGEST}")
    first = deploy(root, contract)
    assert first.status == "READY"
    (create,) = contract.calls("CreateAgentRuntime")
    check_create_runtime_body(create.json, region=REGION)
    assert create.json["containerConfiguration"]["imageRegistryType"] == "ACREE"
    before = len(contract.actions)
    again = deploy(root, contract)
    assert again.action == "unchanged"
    assert [a for a in contract.actions[before:] if a in WRITES] == []
    # the runtime name of targets.alibaba is the one looked up and invoked
    assert contract.runtime("support-runtime") is not None
    assert unexpected(contract) == []


def test_a_new_image_updates_the_runtime_found_by_name(tmp_path: Path, agentrun: Any):
    contract = agentrun(region=REGION, ready_polls=2)
    root = write_repo(tmp_path, manifest_data())
    deploy(root, contract)
    runtime_id = contract.runtime("support-agent").id
    write_repo(tmp_path, manifest_data(), pushed=OTHER)
    before = len(contract.actions)
    result = deploy(root, contract)
    assert result.action == "update" and result.details["changes"] == ["containerConfiguration"]
    assert [a for a in contract.actions[before:] if a in WRITES] == ["UpdateAgentRuntime"]
    (update,) = contract.calls("UpdateAgentRuntime")
    check_update_runtime_body(update.json, region=REGION)
    assert update.path.endswith(f"/agents/runtimes/{runtime_id}")
    runtime = contract.runtime("support-agent")
    assert runtime.id == runtime_id and runtime.status == "READY"
    assert runtime.spec["containerConfiguration"]["image"] == OTHER
    assert unexpected(contract) == []


def test_publish_points_the_endpoint_at_the_published_version(tmp_path: Path, agentrun: Any):
    contract = agentrun(region=REGION, ready_polls=1)
    root = write_repo(tmp_path, manifest_data())
    result = deploy(root, contract, publish=True)
    assert writes(contract) == ["CreateAgentRuntime", "PublishRuntimeVersion",
                                "CreateAgentRuntimeEndpoint"]
    (published,) = contract.calls("PublishRuntimeVersion")
    check_publish_version_body(published.json)
    assert result.version == "1"
    assert contract.calls("CreateAgentRuntimeEndpoint")[0].json["targetVersion"] == "1"
    before = len(contract.actions)
    again = deploy(root, contract, publish=True)
    assert [a for a in contract.actions[before:] if a in WRITES] == [] and again.version == "1"
    write_repo(tmp_path, manifest_data(), pushed=OTHER)
    deploy(root, contract, publish=True)
    (moved,) = contract.calls("UpdateAgentRuntimeEndpoint")
    check_update_endpoint_body(moved.json)
    assert moved.json["targetVersion"] == "2"
    assert unexpected(contract) == []


def test_without_wait_the_next_run_adds_the_endpoint(tmp_path: Path, agentrun: Any):
    contract = agentrun(region=REGION, ready_polls=3)
    root = write_repo(tmp_path, manifest_data())
    first = deploy(root, contract, wait=False)
    assert first.status == "CREATING" and writes(contract) == ["CreateAgentRuntime"]
    assert any("once it is READY" in w for w in first.warnings)
    second = deploy(root, contract)
    assert second.status == "READY" and second.endpoint
    assert writes(contract) == ["CreateAgentRuntime", "CreateAgentRuntimeEndpoint"]
    assert unexpected(contract) == []


# --- failures and their hints -----------------------------------------------------------------


@pytest.mark.parametrize("reason,words", [
    (None, ["0.0.0.0:8088", "GET /ready", "linux/amd64"]),  # the contract's health-check text
    ("Failed to pull image: manifest unknown", ["could not pull", "same account and region"]),
])
def test_create_failed_reports_the_status_reason(tmp_path: Path, agentrun: Any,
                                                 reason: str | None, words: list[str]):
    contract = agentrun(region=REGION, ready_polls=1)
    contract.runtime_outcome("CREATE_FAILED", reason=reason)
    root = write_repo(tmp_path, manifest_data())
    with pytest.raises(CloudError) as caught:
        deploy(root, contract)
    assert "is CREATE_FAILED" in caught.value.message
    assert (reason or "health check failed") in caught.value.message
    for word in words:
        assert word in caught.value.hint
    assert "CreateAgentRuntimeEndpoint" not in contract.actions
    assert unexpected(contract) == []


def test_throttling_is_retried_and_signed_afresh(tmp_path: Path, agentrun: Any):
    contract = agentrun(region=REGION, ready_polls=1)
    contract.fail("Throttling", action="CreateAgentRuntime", times=2)
    root = write_repo(tmp_path, manifest_data())
    result = deploy(root, contract)
    assert result.status == "READY"
    sent = contract.calls("CreateAgentRuntime")
    assert [r.status for r in sent] == [400, 400, 200]
    nonces = {r.headers["x-acs-signature-nonce"] for r in sent}
    assert len(nonces) == 3  # the gateway accepts a nonce once: each retry signs anew
    assert len(contract.runtimes) == 1
    assert unexpected(contract) == []


def test_a_missing_ram_permission_names_it(tmp_path: Path, agentrun: Any):
    contract = agentrun(region=REGION)
    contract.fail("Forbidden.RAM", action="CreateAgentRuntime")
    root = write_repo(tmp_path, manifest_data())
    with pytest.raises(AlibabaAPIError) as caught:
        deploy(root, contract)
    assert caught.value.code == "Forbidden.RAM"
    assert '"Action": "agentrun:CreateAgentRuntime"' in caught.value.hint


def test_a_wrong_secret_points_at_the_secret_and_the_clock(tmp_path: Path, agentrun: Any):
    contract = agentrun(region=REGION)
    wrong = "not-the-right-secret-0123456789"
    env = environment(contract, ALIBABA_CLOUD_ACCESS_KEY_SECRET=wrong)
    root = write_repo(tmp_path, manifest_data())
    with pytest.raises(AlibabaAPIError) as caught:
        deploy(root, contract, env=env)
    assert "Signature" in caught.value.code
    assert "ALIBABA_CLOUD_ACCESS_KEY_SECRET" in caught.value.hint
    assert "clock" in caught.value.hint
    assert wrong not in caught.value.message + caught.value.hint
    assert contract.runtimes == {}


def test_an_endpoint_change_while_the_runtime_updates_says_wait(tmp_path: Path, agentrun: Any):
    contract = agentrun(region=REGION, ready_polls=1)
    contract.fail("conflict", action="CreateAgentRuntimeEndpoint")
    root = write_repo(tmp_path, manifest_data())
    with pytest.raises(AlibabaAPIError) as caught:
        deploy(root, contract)
    assert caught.value.status == 409
    assert "wait until it is READY" in caught.value.hint


def test_sts_credentials_are_signed_with_their_token(tmp_path: Path, agentrun: Any):
    contract = agentrun(region=REGION, ready_polls=1,
                        security_token="CAIS-contract-sts-token-0123456789")
    root = write_repo(tmp_path, manifest_data())
    assert deploy(root, contract).status == "READY"
    assert all(r.headers.get("x-acs-security-token") for r in contract.requests
               if r.plane == "control")


# --- dry run, status and delete without a runtime ---------------------------------------------


def test_a_dry_run_sends_nothing_and_shows_bodies_the_service_accepts(tmp_path: Path,
                                                                    agentrun: Any):
    contract = agentrun(region=REGION)
    root = write_repo(tmp_path, manifest_data())
    result = deploy(root, contract, dry_run=True)
    assert contract.requests == []
    by_action = {r.headers["x-acs-action"]: r for r in result.requests}
    check_create_runtime_body(by_action["CreateAgentRuntime"].body, region=REGION)
    check_update_runtime_body(by_action["UpdateAgentRuntime"].body, region=REGION)
    check_create_endpoint_body(by_action["CreateAgentRuntimeEndpoint"].body)
    assert by_action["ListAgentRuntimes"].url.startswith(contract.endpoint)
    text = json.dumps(result.to_dict())
    assert SECRET not in text and contract.access_key_secret not in text


def test_status_and_delete_of_a_runtime_that_does_not_exist(tmp_path: Path, agentrun: Any):
    contract = agentrun(region=REGION)
    root = write_repo(tmp_path, manifest_data())
    assert alibaba_status(root, environment(contract))["exists"] is False
    report = delete_alibaba(root, environment(contract), Console(as_json=True))
    assert (report["existed"], report["deleted"]) == (False, False)
    assert writes(contract) == []
    assert unexpected(contract) == []
