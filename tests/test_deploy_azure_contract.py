"""`actk deploy|status|invoke|delete azure` against the Foundry contract server
(tests/foundry_contract.py), in both API generations: every body the toolkit sends is checked
there against the SDK models and the service's rules, and `violations` stays empty.

Invocations are forwarded by the contract server to the example agent's real server
(examples/echo-agent, run in a subprocess), so `actk invoke --target azure` is exercised end
to end. Waits run on a fake clock: polling and Retry-After cost no time, and are asserted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.foundry_contract import (
    MERGE_PATCH,
    FoundryContract,
    check_ga_create_version,
    check_ga_patch_agent,
    check_preview_create_version,
)
from tests.test_deploy_azure import PUSHED, SECRET, FakeClock, manifest_data, write_repo
from toolkit.cli import cli
from toolkit.cloud.foundry import traffic_body
from toolkit.console import Console
from toolkit.deploy import azure as azure_deploy
from toolkit.deploy.azure import (
    AzureOptions,
    azure_status,
    delete_azure,
    deploy_azure,
    invoke_azure,
)
from toolkit.deploy.core import DeployResult, WaitTimeout
from toolkit.errors import CloudError

GA, PREVIEW = "v1", "2025-11-15-preview"
OTHER = "myreg.azurecr.io/support-agent@sha256:" + "cd" * 32  # a second pushed image


# --- fixtures -------------------------------------------------------------------------------------


def make_repo(root: Path, contract: FoundryContract, **azure: Any) -> Path:
    return write_repo(root, manifest_data(project_endpoint=contract.endpoint, api=contract.api,
                                          **azure))


def environment(contract: FoundryContract) -> dict[str, str]:
    return {**contract.env, "OPENAI_API_KEY": SECRET}


def deploy(root: Path, contract: FoundryContract, *, clock: FakeClock | None = None,
           **options: Any) -> DeployResult:
    return deploy_azure(root, AzureOptions(**options), Console(as_json=True),
                        environment(contract), clock=clock or FakeClock())


def creates(contract: FoundryContract) -> list[Any]:
    return [r for r in contract.calls("POST") if r.path.endswith("/versions")]


def patches(contract: FoundryContract) -> list[Any]:
    return contract.calls("PATCH", "/agents/support-agent")


def invoke(root: Path, contract: FoundryContract) -> str | None:
    """One `actk invoke --target azure`; the version that served it."""
    invoke_azure(root, "which version?", env=environment(contract), stream=False,
                 clock=FakeClock())
    return contract.served()[-1]


@pytest.fixture
def cli_run(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(azure_deploy, "SYSTEM_CLOCK", FakeClock())

    def run(contract: FoundryContract, *args: str) -> Any:
        return CliRunner().invoke(cli, list(args), env=environment(contract),
                                  catch_exceptions=False)

    return run


# --- the whole flow, both generations -------------------------------------------------------------


def test_ga_deploy_status_invoke_delete(tmp_path: Path, foundry: Any, echo_agent: str,
                                        cli_run: Any):
    contract = foundry(api=GA, activation_polls=2)
    root = make_repo(tmp_path, contract)

    deployed = cli_run(contract, "deploy", "azure", "--json", "-C", str(root))
    assert deployed.exit_code == 0, deployed.output
    result = json.loads(deployed.stdout)
    assert (result["version"], result["status"], result["action"]) == ("1", "active", "create")
    assert SECRET not in deployed.output
    (create,) = creates(contract)
    check_ga_create_version(create.json)
    assert create.json["definition"]["container_configuration"] == {"image": PUSHED}
    assert create.json["definition"]["environment_variables"]["OPENAI_API_KEY"] == SECRET
    polls = contract.calls("GET", "/agents/support-agent/versions/1")
    assert [r.status for r in polls] == [200] * 4  # creating, creating, active, active
    assert result["traffic"] == {"version": "1", "percentage": 100, "changed": True,
                                 "previous": []}
    (routed,) = patches(contract)
    assert routed.json == traffic_body("1") and routed.headers["content-type"] == MERGE_PATCH

    status = json.loads(cli_run(contract, "status", "azure", "--json", "-C", str(root)).stdout)
    assert [(v["version"], v["status"], v["deployed"]) for v in status["versions"]] == [
        ("1", "active", True)
    ]

    contract.forward_responses_to(echo_agent)
    invoked = cli_run(contract, "invoke", "hello there", "--target", "azure", "-C", str(root))
    assert invoked.exit_code == 0, invoked.output
    assert "hello there" in invoked.stdout
    one_answer = cli_run(contract, "invoke", "once", "--target", "azure", "--no-stream", "--json",
                         "-C", str(root))
    assert one_answer.exit_code == 0, one_answer.output
    assert json.loads(one_answer.stdout)["status"] == "completed"
    calls = contract.calls("POST", "/endpoint/protocols/openai/responses")
    assert [c.json["stream"] for c in calls] == [True, False]
    assert all(c.query == {"api-version": "v1"} for c in calls)
    assert contract.served() == ["1", "1"]

    deleted = cli_run(contract, "delete", "azure", "--json", "--force", "-C", str(root))
    assert deleted.exit_code == 0, deleted.output
    assert json.loads(deleted.stdout)["deleted"] is True
    assert contract.agents == {}
    assert contract.violations == []


def test_preview_deploy_starts_the_container_and_invokes_through_openai(
    tmp_path: Path, foundry: Any, echo_agent: str, cli_run: Any
):
    contract = foundry(api=PREVIEW, activation_polls=2)
    root = make_repo(tmp_path, contract, min_replicas=1, max_replicas=2)

    deployed = cli_run(contract, "deploy", "azure", "--json", "-C", str(root))
    assert deployed.exit_code == 0, deployed.output
    result = json.loads(deployed.stdout)
    assert (result["version"], result["status"]) == ("1", "running")
    (create,) = creates(contract)
    check_preview_create_version(create.json)
    assert create.json["definition"]["image"] == PUSHED
    assert "metadata" in create.json and "enableVnextExperience" not in create.json["metadata"]
    (start,) = contract.calls("POST", ":start")
    assert start.json == {"min_replicas": 1, "max_replicas": 2}
    operation = result["operation"]
    assert len(contract.calls("GET", f"/operations/{operation}")) == 3

    status = json.loads(cli_run(contract, "status", "azure", "--json", "-C", str(root)).stdout)
    assert status["versions"][0]["status"] == "running"

    contract.forward_responses_to(echo_agent)
    invoked = cli_run(contract, "invoke", "hi", "--target", "azure", "--json", "-C", str(root))
    assert invoked.exit_code == 0, invoked.output
    assert "hi" in json.loads(invoked.stdout)["output_text"]
    (call,) = contract.calls("POST", "/openai/responses")
    assert call.json["agent"] == {"type": "agent_reference", "name": "support-agent",
                                  "version": "1"}

    deleted = cli_run(contract, "delete", "azure", "--version", "1", "--json", "-C", str(root))
    assert deleted.exit_code == 0, deleted.output
    assert contract.agents == {}
    assert contract.violations == []


# --- idempotency ----------------------------------------------------------------------------------


@pytest.mark.parametrize("api", [GA, PREVIEW])
def test_a_redeploy_without_change_creates_no_version(tmp_path: Path, foundry: Any, api: str):
    contract = foundry(api=api)
    root = make_repo(tmp_path, contract)
    first = deploy(root, contract)
    again = deploy(root, contract)
    assert (first.action, again.action) == ("create", "unchanged")
    assert again.version == first.version == "1" and not again.changed
    assert len(creates(contract)) == 1
    assert len(contract.calls("POST", ":start")) == (1 if api == PREVIEW else 0)
    assert contract.violations == []


def test_a_new_image_creates_the_next_version(tmp_path: Path, foundry: Any):
    contract = foundry(api=GA)
    root = make_repo(tmp_path, contract)
    deploy(root, contract)
    result = deploy(root, contract, image=OTHER)
    assert (result.action, result.version) == ("create", "2")
    assert result.details["changes"] == ["image"]


# --- the endpoint's traffic (v1) ------------------------------------------------------------------


def test_a_new_version_takes_the_endpoints_traffic(tmp_path: Path, foundry: Any,
                                                     echo_agent: str):
    contract = foundry(api=GA)
    contract.forward_responses_to(echo_agent)
    root = make_repo(tmp_path, contract)
    deploy(root, contract)
    assert invoke(root, contract) == "1"
    # The endpoint is pinned to version 1 now: without a new PATCH it would keep serving it.
    second = deploy(root, contract, image=OTHER)
    assert second.details["traffic"] == {"version": "2", "percentage": 100, "changed": True,
                                         "previous": [{"version": "1", "percentage": 100}]}
    assert invoke(root, contract) == "2"
    assert [p.json for p in patches(contract)] == [traffic_body("1"), traffic_body("2")]
    assert all(p.status == 200 for p in patches(contract))
    assert contract.violations == []


def test_a_redeploy_without_change_sends_no_patch(tmp_path: Path, foundry: Any):
    contract = foundry(api=GA)
    root = make_repo(tmp_path, contract)
    deploy(root, contract)
    again = deploy(root, contract)
    assert again.action == "unchanged" and not again.changed
    assert again.details["traffic"]["changed"] is False
    assert len(patches(contract)) == 1
    reads = [r for r in contract.calls("GET") if r.path == "/agents/support-agent"]
    assert len(reads) == 2  # each deploy reads the selector; the second leaves it alone
    assert contract.violations == []


def test_a_redeploy_moves_traffic_pinned_elsewhere_back(tmp_path: Path, foundry: Any,
                                                          echo_agent: str):
    contract = foundry(api=GA)
    contract.forward_responses_to(echo_agent)
    root = make_repo(tmp_path, contract)
    deploy(root, contract)
    deploy(root, contract, image=OTHER)
    # someone pins version 1 by hand (portal, az rest)
    pinned = traffic_body("1")
    contract.agents["support-agent"].settings = pinned
    assert invoke(root, contract) == "1"
    again = deploy(root, contract, image=OTHER)
    assert (again.action, again.version, again.changed) == ("unchanged", "2", True)
    assert again.details["traffic"]["previous"] == [{"version": "1", "percentage": 100}]
    assert invoke(root, contract) == "2"
    assert contract.violations == []


def test_the_endpoints_other_settings_survive_the_patch(tmp_path: Path, foundry: Any):
    contract = foundry(api=GA)
    root = make_repo(tmp_path, contract)
    deploy(root, contract)
    settings = contract.agents["support-agent"].settings
    settings["agent_endpoint"]["protocol_configuration"] = {"responses": {}, "invocations": {}}
    settings["agent_endpoint"]["authorization_schemes"] = [{"type": "Entra"}]
    deploy(root, contract, image=OTHER)
    endpoint = contract.agents["support-agent"].settings["agent_endpoint"]
    assert endpoint == {
        **traffic_body("2")["agent_endpoint"],
        "protocol_configuration": {"responses": {}, "invocations": {}},
        "authorization_schemes": [{"type": "Entra"}],
    }
    assert contract.violations == []


def test_a_version_created_without_wait_gets_the_traffic_on_the_next_deploy(
    tmp_path: Path, foundry: Any
):
    contract = foundry(api=GA)
    root = make_repo(tmp_path, contract)
    early = deploy(root, contract, wait=False)
    assert early.details["traffic"]["version"] is None and patches(contract) == []
    assert any("run `actk deploy azure` again" in warning for warning in early.warnings)
    later = deploy(root, contract)
    assert (later.action, later.status) == ("wait", "active")
    assert later.details["traffic"]["version"] == "1"
    assert len(patches(contract)) == 1 and len(creates(contract)) == 1
    assert contract.violations == []  # the PATCH came after the version was active


def test_a_patch_behind_the_endpoint_preview_names_the_opt_in(tmp_path: Path, foundry: Any):
    contract = foundry(api=GA, require_endpoint_header=True)
    root = make_repo(tmp_path, contract)
    with pytest.raises(CloudError) as caught:
        deploy(root, contract)
    assert "send the traffic of support-agent to version 1: HTTP 403" in caught.value.message
    assert "--features AgentEndpoints=V1Preview" in (caught.value.hint or "")
    result = deploy(root, contract, features="AgentEndpoints=V1Preview")
    assert (result.action, result.details["traffic"]["changed"]) == ("unchanged", True)
    assert patches(contract)[-1].headers["foundry-features"] == "AgentEndpoints=V1Preview"
    assert len(creates(contract)) == 1


def test_a_failed_patch_is_retried_when_the_service_is_busy(tmp_path: Path, foundry: Any):
    contract = foundry(api=GA)
    contract.fail(503, path_contains="/agents/support-agent", method="PATCH")
    contract.fail(500, path_contains="/agents/support-agent", method="PATCH")
    result = deploy(make_repo(tmp_path, contract), contract)
    assert result.details["traffic"]["version"] == "1"
    assert [p.status for p in patches(contract)] == [503, 500, 200]  # a PATCH that sets a state


def test_a_stopped_preview_container_is_started_again(tmp_path: Path, foundry: Any):
    contract = foundry(api=PREVIEW, activation_polls=0)
    root = make_repo(tmp_path, contract)
    deploy(root, contract)
    contract.agents["support-agent"].versions["1"].container.status = "Stopped"
    result = deploy(root, contract)
    assert (result.action, result.status) == ("start", "running")
    assert len(creates(contract)) == 1 and len(contract.calls("POST", ":start")) == 2


# --- retries --------------------------------------------------------------------------------------


def test_a_429_waits_as_long_as_the_service_asks(tmp_path: Path, foundry: Any):
    contract = foundry(api=GA)
    contract.fail(429, path_contains="/versions", method="POST", headers={"Retry-After": "7"})
    clock = FakeClock()
    result = deploy(make_repo(tmp_path, contract), contract, clock=clock)
    assert result.version == "1"
    assert [r.status for r in creates(contract)] == [429, 200]
    assert clock.slept[0] == 7.0
    assert len(contract.agents["support-agent"].versions) == 1


def test_transient_5xx_answers_are_retried_with_backoff(tmp_path: Path, foundry: Any):
    contract = foundry(api=GA)
    contract.fail(503, path_contains="/versions", method="GET", times=2)
    contract.fail(502, path_contains="/versions/1", method="GET")
    clock = FakeClock()
    result = deploy(make_repo(tmp_path, contract), contract, clock=clock)
    assert result.status == "active"
    # the list (503, 503, then 404: no agent yet), then the new version (502, then served)
    assert [r.status for r in contract.calls("GET")][:5] == [503, 503, 404, 502, 200]
    assert clock.slept[:3] == [0.5, 1.0, 0.5]


def test_a_500_on_create_is_sent_again_without_a_duplicate_version(tmp_path: Path, foundry: Any):
    contract = foundry(api=GA)
    contract.fail(500, path_contains="/versions", method="POST")
    result = deploy(make_repo(tmp_path, contract), contract)
    assert result.version == "1"
    assert [r.status for r in creates(contract)] == [500, 200]
    assert list(contract.agents["support-agent"].versions) == ["1"]


def test_a_create_failing_every_time_reports_the_request_id(tmp_path: Path, foundry: Any):
    contract = foundry(api=GA)
    contract.fail(500, path_contains="/versions", method="POST", times=10)
    with pytest.raises(CloudError) as caught:
        deploy(make_repo(tmp_path, contract), contract)
    assert "HTTP 500" in caught.value.message and "request id" in caught.value.message
    assert "retry" in (caught.value.hint or "")
    assert len(creates(contract)) == azure_deploy.CREATE_ATTEMPTS


# --- known failures and their hints ---------------------------------------------------------------


def test_403_preview_feature_required_names_the_header(tmp_path: Path, foundry: Any):
    contract = foundry(api=GA, require_features_header=True)
    root = make_repo(tmp_path, contract)
    with pytest.raises(CloudError) as caught:
        deploy(root, contract)
    assert "HTTP 403" in caught.value.message and "preview_feature_required" in caught.value.message
    assert "--features HostedAgents=V1Preview" in (caught.value.hint or "")
    result = deploy(root, contract, features="HostedAgents=V1Preview")
    assert result.status == "active"
    assert creates(contract)[-1].headers["foundry-features"] == "HostedAgents=V1Preview"


def test_the_opt_in_header_can_live_in_agent_yaml(tmp_path: Path, foundry: Any):
    contract = foundry(api=GA, require_features_header=True)
    root = make_repo(tmp_path, contract, foundry_features="HostedAgents=V1Preview")
    assert deploy(root, contract).status == "active"


@pytest.mark.parametrize(
    "error,reason,fix",
    [
        ("image_pull", "ImageError", "AcrPull"),
        ("probe", "ContainerProbesFailed", "/readiness"),
        ("protocol", "Unsupported responses protocol version", "targets.azure.protocol_version"),
    ],
)
def test_a_failed_version_shows_the_services_reason_and_the_fix(
    tmp_path: Path, foundry: Any, error: str, reason: str, fix: str
):
    contract = foundry(api=GA)
    contract.version_outcome("failed", error=error)
    with pytest.raises(CloudError) as caught:
        deploy(make_repo(tmp_path, contract), contract)
    assert "version 1 of support-agent failed" in caught.value.message
    assert reason in caught.value.message
    assert fix in (caught.value.hint or "")


def test_a_failed_preview_start_shows_the_operation_error(tmp_path: Path, foundry: Any):
    contract = foundry(api=PREVIEW)
    contract.version_outcome("failed", error="image_pull")
    with pytest.raises(CloudError) as caught:
        deploy(make_repo(tmp_path, contract), contract)
    assert "did not start (failed)" in caught.value.message
    assert "ImageError" in caught.value.message
    assert "AcrPull" in (caught.value.hint or "")
    assert contract.violations == []


def test_a_version_still_creating_at_the_timeout_says_so(tmp_path: Path, foundry: Any):
    contract = foundry(api=GA, activation_polls=1000)
    with pytest.raises(WaitTimeout) as caught:
        deploy(make_repo(tmp_path, contract), contract, timeout=60)
    assert "still creating after" in caught.value.message
    assert "actk status azure" in (caught.value.hint or "")


def test_no_wait_returns_while_the_version_is_creating(tmp_path: Path, foundry: Any):
    contract = foundry(api=GA)
    result = deploy(make_repo(tmp_path, contract), contract, wait=False)
    assert (result.version, result.status) == ("1", "creating")
    assert contract.calls("GET", "/versions/1") == []
    assert patches(contract) == []


def test_409_on_delete_explains_force(tmp_path: Path, foundry: Any):
    contract = foundry(api=GA)
    root = make_repo(tmp_path, contract)
    deploy(root, contract)
    contract.add_session("support-agent")
    console = Console(as_json=True)
    with pytest.raises(CloudError) as caught:
        delete_azure(root, environment(contract), console, version="1")
    assert "HTTP 409" in caught.value.message
    assert "pass --force" in (caught.value.hint or "")
    report = delete_azure(root, environment(contract), console, version="1", force=True)
    assert report["deleted"] is True
    assert contract.calls("DELETE")[-1].query == {"api-version": "v1", "force": "true"}
    assert contract.violations == []


def test_a_wrong_token_asks_for_one_for_ai_azure_com(tmp_path: Path, foundry: Any):
    contract = foundry(api=GA)
    root = make_repo(tmp_path, contract)
    with pytest.raises(CloudError) as caught:
        azure_status(root, {"AZURE_AI_ACCESS_TOKEN": "not-the-token"})
    assert "HTTP 401" in caught.value.message
    assert "--resource https://ai.azure.com" in (caught.value.hint or "")


def test_status_of_an_agent_never_deployed_is_empty(tmp_path: Path, foundry: Any):
    contract = foundry(api=GA)
    report = azure_status(make_repo(tmp_path, contract), contract.env)
    assert report["exists"] is False and report["versions"] == []


@pytest.mark.parametrize("api", [GA, PREVIEW])
def test_a_dry_run_sends_nothing_and_prints_what_the_service_accepts(
    tmp_path: Path, foundry: Any, api: str
):
    contract = foundry(api=api)
    result = deploy(make_repo(tmp_path, contract), contract, dry_run=True)
    assert result.dry_run and contract.requests == []
    printed = result.requests[1].body
    assert printed["definition"]["environment_variables"]["OPENAI_API_KEY"] == "[REDACTED]"
    printed["definition"]["environment_variables"]["OPENAI_API_KEY"] = SECRET
    (check_ga_create_version if api == GA else check_preview_create_version)(printed)
    routes = [r for r in result.requests if r.method == "PATCH"]
    if api == PREVIEW:
        assert routes == []
        return
    (route,) = routes
    assert route.url == f"{contract.endpoint}/agents/support-agent?api-version=v1"
    assert route.headers["Content-Type"] == MERGE_PATCH
    check_ga_patch_agent(route.body)
    assert route.body == traffic_body("{version}")
