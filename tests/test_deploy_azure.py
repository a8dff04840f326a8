"""`actk deploy azure` without a cloud: the checks made before any call, the request bodies of
both API generations, the idempotency rule, the bounded wait, and that secret values never
reach output, --json or errors. (The calls themselves: test_deploy_azure_contract.py.)"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from tests import deploying
from tests.deploying import RUNTIME, FakeClock, deep_update
from toolkit.cli import cli
from toolkit.cloud.foundry import (
    AgentDetails,
    FoundryClient,
    failure_hint,
    parse_error,
    status_hint,
    traffic_body,
)
from toolkit.console import Console
from toolkit.deploy import azure as azure_deploy
from toolkit.deploy.azure import (
    AzureOptions,
    build_body,
    build_definition,
    definition_changes,
    deploy_azure,
    validate,
)
from toolkit.deploy.core import PlannedRequest, WaitTimeout, poll
from toolkit.errors import ManifestError, UsageError
from toolkit.manifest import Manifest, load_manifest

ENDPOINT = "https://acct.services.ai.azure.com/api/projects/proj"
DIGEST = "sha256:" + "ab" * 32
PUSHED = f"myreg.azurecr.io/support-agent@{DIGEST}"
SECRET = "sk-live-0123456789abcdef"  # what OPENAI_API_KEY holds in these tests
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOi.test-foundry-token"


def manifest_data(**azure: Any) -> dict[str, Any]:
    return {
        "name": "support-agent",
        "description": "Answers support questions",
        "metadata": {"team": "support"},
        "image": {"repository": "myreg.azurecr.io/support-agent", "tag": "v1"},
        "runtime": copy.deepcopy(RUNTIME),
        "targets": {"azure": {"project_endpoint": ENDPOINT, **azure}},
    }


def manifest(data: dict[str, Any] | None = None, **azure: Any) -> Manifest:
    return Manifest.model_validate(data or manifest_data(**azure))


write_repo = functools.partial(deploying.write_repo, pushed=PUSHED)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return write_repo(tmp_path / "agent", manifest_data())


# --- validation: every rule names the field and the fix ---------------------------------------


# (path in agent.yaml, value, the field the message names, words of the message and its fix)
RULES = {
    "empty endpoint": (
        "targets.azure.project_endpoint", "", "targets.azure.project_endpoint",
        ["is empty", "services.ai.azure.com/api/projects/"],
    ),
    "cpu not a size": ("runtime.cpu", "3", "runtime.cpu", ["'3'", "0.25 to 2", "1/2Gi"]),
    "cpu not a number": ("runtime.cpu", "one", "runtime.cpu", ["'one'", "steps of 0.25"]),
    "memory not paired": (
        "runtime.memory", "3Gi", "runtime.memory", ["3Gi does not go with cpu 1", "use 2Gi"],
    ),
    "memory in Mi": ("runtime.memory", "2048Mi", "runtime.memory", ["write it in Gi", "2Gi"]),
    "reserved FOUNDRY_ name": (
        "runtime.env", {"FOUNDRY_MODEL": "x"}, "runtime.env",
        ["'FOUNDRY_MODEL'", "reserved", "rename it"],
    ),
    "reserved AGENT_ secret": (
        "runtime.secrets", ["AGENT_KEY"], "runtime.secrets", ["'AGENT_KEY'", "reserved"],
    ),
    "secret also in env": (
        "runtime.env", {"OPENAI_API_KEY": "x"}, "runtime.secrets",
        ["'OPENAI_API_KEY' is also in runtime.env", "keep it in one place"],
    ),
    "too much metadata with the v1 marker": (
        "metadata", {f"k{i}": "v" for i in range(16)}, "metadata",
        ["17 pairs", "enableVnextExperience", "remove 1"],
    ),
    "preview protocol version on v1": (
        "targets.azure.protocol_version", "v1", "targets.azure.protocol_version",
        ["'v1' is the 2025-11-15-preview form", 'use "1.0.0"'],
    ),
    "image without a registry": (
        "image.repository", "support-agent", "image.repository",
        ["names no registry", "<registry>.azurecr.io"],
    ),
}


@pytest.mark.parametrize("case", sorted(RULES))
def test_each_rule_names_the_field_and_the_fix(case: str):
    path, value, field, words = RULES[case]
    data = deep_update(manifest_data(), path, value)
    loaded = manifest(data)
    image = "support-agent:v1" if path == "image.repository" else PUSHED
    problems = validate(loaded, loaded.targets.azure, image=image)
    assert [p.field for p in problems] == [field], problems
    for word in words:
        assert word in problems[0].message


def test_a_valid_manifest_has_no_problems():
    loaded = manifest()
    assert validate(loaded, loaded.targets.azure, image=PUSHED) == []


@pytest.mark.parametrize("cpu,memory", [("0.25", "0.5Gi"), ("0.5", "1Gi"), ("1.5", "3Gi"),
                                        ("2", "4Gi"), ("2.0", "4.0Gi")])
def test_every_offered_size_passes(cpu: str, memory: str):
    data = deep_update(deep_update(manifest_data(), "runtime.cpu", cpu), "runtime.memory", memory)
    loaded = manifest(data)
    assert validate(loaded, loaded.targets.azure, image=PUSHED) == []


def test_the_preview_allows_reserved_names_and_sixteen_metadata_pairs():
    data = manifest_data(api="2025-11-15-preview")
    data["runtime"]["env"] = {"AGENT_LOG_LEVEL": "debug"}
    data["metadata"] = {f"k{i}": "v" for i in range(16)}
    loaded = manifest(data)
    assert validate(loaded, loaded.targets.azure, image=PUSHED) == []


def test_the_preview_wants_its_own_protocol_version_form():
    loaded = manifest(api="2025-11-15-preview", protocol_version="1.0.0")
    (problem,) = validate(loaded, loaded.targets.azure, image=PUSHED)
    assert problem.field == "targets.azure.protocol_version"
    assert 'use "v1"' in problem.message


def test_an_invalid_agent_name_names_the_rule():
    loaded = manifest()
    target = loaded.targets.azure.model_copy(update={"agent_name": "-bad-"})
    (problem,) = validate(loaded, target, image=PUSHED)
    assert problem.field == "targets.azure.agent_name"
    assert "1-63 letters, digits and '-'" in problem.message


# agent.yaml errors for targets.azure itself, reported when the manifest is loaded.
LOAD_RULES = {
    "http endpoint": (
        {"project_endpoint": "http://acct.services.ai.azure.com/api/projects/p"},
        "targets.azure.project_endpoint", "must use https",
    ),
    "not a URL": ({"project_endpoint": "acct"}, "targets.azure.project_endpoint", "not a URL"),
    "unknown api": ({"api": "2025-05-15-preview"}, "targets.azure.api", "'v1'"),
    "agent name": ({"agent_name": "no_underscores"}, "targets.azure.agent_name",
                   "1-63 letters, digits and '-'"),
    "replicas on v1": ({"min_replicas": 1}, "targets.azure", "set api: 2025-11-15-preview"),
    "tools on v1": ({"tools": [{"type": "code_interpreter"}]}, "targets.azure",
                    "remove them, or set api: 2025-11-15-preview"),
    "replicas reversed": ({"api": "2025-11-15-preview", "min_replicas": 3, "max_replicas": 2},
                          "targets.azure", "make max_replicas at least 3"),
    "metadata value": ({"metadata": {"k": "x" * 513}}, "targets.azure.metadata",
                       "longer than 512"),
    "typo": ({"protocol_versoin": "1.0.0"}, "targets.azure.protocol_versoin", "unknown field"),
}


@pytest.mark.parametrize("case", sorted(LOAD_RULES))
def test_targets_azure_errors_name_the_field(tmp_path: Path, case: str):
    fields, where, words = LOAD_RULES[case]
    write_repo(tmp_path, manifest_data(**fields), pushed=None)
    with pytest.raises(ManifestError) as caught:
        load_manifest(tmp_path)
    assert f"agent.yaml: {where}: " in caught.value.message
    assert words in caught.value.message + (caught.value.hint or "")


def test_a_typo_in_targets_azure_suggests_the_field(tmp_path: Path):
    write_repo(tmp_path, manifest_data(protocol_versoin="1.0.0"), pushed=None)
    with pytest.raises(ManifestError) as caught:
        load_manifest(tmp_path)
    assert "did you mean 'protocol_version'" in (caught.value.hint or "")


def test_loopback_http_and_an_empty_endpoint_load(tmp_path: Path):
    write_repo(tmp_path / "a", manifest_data(project_endpoint="http://127.0.0.1:9/api/projects/p"))
    write_repo(tmp_path / "b", manifest_data(project_endpoint=""))
    assert load_manifest(tmp_path / "a").targets.azure.project_endpoint.startswith("http://127")
    assert load_manifest(tmp_path / "b").targets.azure.project_endpoint == ""


def test_every_problem_is_reported_at_once_before_any_call(tmp_path: Path):
    data = manifest_data(protocol_version="v1")
    data["runtime"]["cpu"] = "4"
    write_repo(tmp_path, data)
    with pytest.raises(ManifestError) as caught:
        deploy_azure(tmp_path, AzureOptions(), Console(as_json=True), {"OPENAI_API_KEY": SECRET})
    lines = caught.value.message.splitlines()
    assert [line.split(":")[1].strip() for line in lines] == [
        "runtime.cpu", "targets.azure.protocol_version"
    ]
    assert "runtime.cpu" in (caught.value.hint or "")


# --- the request bodies -------------------------------------------------------------------------


def test_the_ga_definition_is_a_hosted_agent_definition():
    definition = build_definition(
        "v1", image=PUSHED, cpu="1", memory="2Gi", environment={"A": "b"},
        protocol_version="1.0.0", tools=[],
    )
    assert definition == {
        "kind": "hosted",
        "container_configuration": {"image": PUSHED},
        "protocol_versions": [{"protocol": "responses", "version": "1.0.0"}],
        "cpu": "1",
        "memory": "2Gi",
        "environment_variables": {"A": "b"},
    }


def test_the_preview_definition_is_an_image_based_hosted_agent_definition():
    definition = build_definition(
        "2025-11-15-preview", image=PUSHED, cpu="1", memory="2Gi", environment={"A": "b"},
        protocol_version="v1", tools=[{"type": "code_interpreter"}],
    )
    assert definition == {
        "kind": "hosted",
        "container_protocol_versions": [{"protocol": "responses", "version": "v1"}],
        "cpu": "1",
        "memory": "2Gi",
        "image": PUSHED,
        "environment_variables": {"A": "b"},
        "tools": [{"type": "code_interpreter"}],
    }


def test_empty_fields_are_left_out_as_the_sdk_does():
    definition = build_definition("v1", image=PUSHED, cpu="1", memory="2Gi", environment={},
                                  protocol_version="1.0.0")
    assert "environment_variables" not in definition
    assert build_body(definition, description=None, metadata={}) == {"definition": definition}


def test_the_deploy_body_merges_metadata_and_marks_v1_versions(repo: Path, fake: FakeFoundry):
    deploy(repo)
    body = fake.created[0]
    assert body["description"] == "Answers support questions"
    assert body["metadata"] == {"team": "support", "enableVnextExperience": "true"}
    assert body["definition"]["container_configuration"]["image"] == PUSHED
    assert body["definition"]["environment_variables"] == {
        "LOG_LEVEL": "info", "OPENAI_API_KEY": SECRET
    }


def test_the_sdk_models_accept_both_bodies():
    """Cross-check with azure-ai-projects when it is installed (2.0.0b3 for the preview shape,
    2.3+ for v1): what its models serialize is what actk sends."""
    models = pytest.importorskip("azure.ai.projects.models")
    if hasattr(models, "ImageBasedHostedAgentDefinition"):
        sdk = models.ImageBasedHostedAgentDefinition(
            container_protocol_versions=[models.ProtocolVersionRecord(protocol="responses",
                                                                      version="v1")],
            cpu="1", memory="2Gi", image=PUSHED, environment_variables={"A": "b"},
        )
        ours = build_definition("2025-11-15-preview", image=PUSHED, cpu="1", memory="2Gi",
                                environment={"A": "b"}, protocol_version="v1")
    else:
        sdk = models.HostedAgentDefinition(
            container_configuration=models.ContainerConfiguration(image=PUSHED),
            protocol_versions=[models.ProtocolVersionRecord(protocol="responses",
                                                            version="1.0.0")],
            cpu="1", memory="2Gi", environment_variables={"A": "b"},
        )
        ours = build_definition("v1", image=PUSHED, cpu="1", memory="2Gi",
                                environment={"A": "b"}, protocol_version="1.0.0")
    assert sdk.as_dict() == ours


def test_the_pushed_digest_is_deployed_and_a_tag_warns(tmp_path: Path, fake: FakeFoundry):
    pinned = write_repo(tmp_path / "pinned", manifest_data())
    assert deploy(pinned).details["image"] == PUSHED
    tagged = write_repo(tmp_path / "tagged", manifest_data(), pushed=None)
    result = deploy(tagged)
    assert result.details["image"].startswith("myreg.azurecr.io/support-agent:")
    assert any("run `actk push` first" in warning for warning in result.warnings)


def test_a_digest_pushed_for_another_repository_is_not_deployed(tmp_path: Path,
                                                                 fake: FakeFoundry):
    root = write_repo(tmp_path, manifest_data(), pushed=f"otherreg.azurecr.io/x@{DIGEST}")
    result = deploy(root)
    assert "@" not in result.details["image"]
    assert any("the last push was otherreg.azurecr.io/x" in w for w in result.warnings)


def test_a_missing_secret_stops_the_deploy_naming_it(repo: Path):
    with pytest.raises(UsageError) as caught:
        deploy_azure(repo, AzureOptions(), Console(as_json=True), {})
    assert "runtime.secrets: OPENAI_API_KEY is not set" in caught.value.message
    assert "export OPENAI_API_KEY" in (caught.value.hint or "")


# --- secrets never reach output ------------------------------------------------------------------


def run_cli(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli, list(args), env={"OPENAI_API_KEY": SECRET, **(env or {})},
                              catch_exceptions=False)


def test_dry_run_prints_the_exact_requests_without_the_secret(repo: Path):
    result = run_cli("deploy", "azure", "--dry-run", "-C", str(repo))
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    assert f"POST {ENDPOINT}/agents/support-agent/versions?api-version=v1" in result.output
    assert '"OPENAI_API_KEY": "[REDACTED]"' in result.output
    assert "Authorization: Bearer [REDACTED]" in result.output
    assert "Content-Type: application/json" in result.output
    assert f"PATCH {ENDPOINT}/agents/support-agent?api-version=v1" in result.output
    assert "Content-Type: application/merge-patch+json" in result.output


def test_dry_run_sends_nothing_and_needs_no_token(repo: Path, fake: FakeFoundry):
    result = run_cli("deploy", "azure", "--dry-run", "--json", "-C", str(repo),
                     env={"AZURE_AI_ACCESS_TOKEN": ""})
    assert result.exit_code == 0, result.output
    assert fake.requests == []
    payload = json.loads(result.stdout)
    assert payload["dry_run"] is True
    assert SECRET not in result.output
    methods = [(r["method"], r["url"].split("?")[0].removeprefix(ENDPOINT)) for r in
               payload["requests"]]
    assert methods == [
        ("GET", "/agents/support-agent/versions"),
        ("POST", "/agents/support-agent/versions"),
        ("GET", "/agents/support-agent/versions/{version}"),
        ("GET", "/agents/support-agent"),
        ("PATCH", "/agents/support-agent"),
    ]
    body = payload["requests"][1]["body"]
    assert body["definition"]["environment_variables"]["OPENAI_API_KEY"] == "[REDACTED]"
    assert payload["requests"][4]["body"] == traffic_body("{version}")


def test_a_dry_run_without_wait_leaves_the_endpoint_out(repo: Path):
    result = run_cli("deploy", "azure", "--dry-run", "--no-wait", "--json", "-C", str(repo))
    methods = [r["method"] for r in json.loads(result.stdout)["requests"]]
    assert methods == ["GET", "POST"]


def test_the_preview_dry_run_starts_the_container_and_follows_the_operation(tmp_path: Path):
    root = write_repo(tmp_path, manifest_data(api="2025-11-15-preview", min_replicas=2,
                                              max_replicas=4))
    result = run_cli("deploy", "azure", "--dry-run", "--json", "-C", str(root))
    payload = json.loads(result.stdout)
    requests = [(r["method"], r["url"].split("?")[0].removeprefix(ENDPOINT), r["body"])
                for r in payload["requests"]]
    assert requests[2] == ("POST", "/agents/support-agent/versions/{version}/containers/"
                           "default:start", {"min_replicas": 2, "max_replicas": 4})
    assert requests[3][:2] == ("GET", "/agents/support-agent/operations/{operation_id}")
    assert all("api-version=2025-11-15-preview" in r["url"] for r in payload["requests"])


def test_a_dry_run_without_the_secret_warns_instead_of_failing(repo: Path):
    result = CliRunner().invoke(cli, ["deploy", "azure", "--dry-run", "-C", str(repo)],
                                env={"OPENAI_API_KEY": None})
    assert result.exit_code == 0, result.output
    assert "secret OPENAI_API_KEY is not set" in result.output


def test_json_output_of_a_deploy_hides_the_secret(repo: Path, fake: FakeFoundry):
    result = run_cli("deploy", "azure", "--json", "-C", str(repo))
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    payload = json.loads(result.stdout)
    assert payload["environment"] == {"LOG_LEVEL": "info", "OPENAI_API_KEY": "[REDACTED]"}
    assert payload["version"] == "1" and payload["status"] == "active"
    state = (repo / ".actk" / "state.json").read_text()
    assert SECRET not in state and TOKEN not in state
    assert json.loads(state)["azure"]["version"] == "1"


def test_a_service_error_echoing_the_secret_is_redacted(repo: Path, fake: FakeFoundry):
    fake.fail_create = (400, {"error": {"code": "invalid_payload",
                                           "message": f"bad value {SECRET} for OPENAI_API_KEY"}})
    result = run_cli("deploy", "azure", "--json", "-C", str(repo))
    assert result.exit_code == 9
    assert SECRET not in result.output
    assert "[REDACTED]" in json.loads(result.stdout)["message"]


def test_a_failure_reason_echoing_the_secret_is_redacted(repo: Path, fake: FakeFoundry):
    fake.outcome = ("failed", {"code": "ContainerCrashed", "message": f"exit 1: {SECRET}"})
    result = run_cli("deploy", "azure", "-C", str(repo))
    assert result.exit_code == 9
    assert SECRET not in result.output
    assert "ContainerCrashed" in result.output


def test_a_failure_without_a_reason_points_to_the_logs(repo: Path, fake: FakeFoundry):
    # api v1 dropped `error` from AgentVersion (models.tsp: @removed(Versions.v1)).
    fake.outcome = ("failed", None)
    result = run_cli("deploy", "azure", "-C", str(repo))
    assert result.exit_code == 9
    assert "version 1 of support-agent failed: the service gave no reason" in result.output
    assert "Logs" in result.output and "actk smoke" in result.output


def test_the_token_never_reaches_errors():
    client = FoundryClient(ENDPOINT, token=TOKEN, transport=httpx.MockTransport(
        lambda request: httpx.Response(401, json={"error": {"code": "unauthorized", "message":
                                                            f"token {TOKEN} expired"}})))
    with pytest.raises(Exception) as caught:
        client.list_versions("a")
    assert TOKEN not in str(caught.value) and "az account get-access-token" in caught.value.hint


def test_planned_requests_redact_secret_values_everywhere():
    request = PlannedRequest("POST", f"https://x/?k={SECRET}", {"X": SECRET}, {"v": [SECRET]})
    assert SECRET not in json.dumps(request.redacted([SECRET]).to_dict())


# --- the idempotency rule ----------------------------------------------------------------------


GA = build_definition("v1", image=PUSHED, cpu="1", memory="2Gi", environment={"A": "b"},
                      protocol_version="1.0.0")


def test_the_same_definition_in_another_spelling_is_unchanged():
    returned = json.loads(json.dumps(GA))
    returned.update(cpu="1.0", memory="2.0Gi")
    returned["protocol_versions"] = [{"protocol": "Responses", "version": "1.0.0"}]
    returned["rai_config"] = {"rai_policy_name": "default"}  # what the service adds
    assert definition_changes(GA, returned) == []


def test_changes_are_named_and_environment_values_are_not_shown():
    returned = {**GA, "environment_variables": {"A": SECRET, "B": "x"},
                "container_configuration": {"image": "myreg.azurecr.io/support-agent@sha256:"
                                            + "cd" * 32}}
    changes = definition_changes(GA, returned)
    assert changes == ["image", "environment_variables (A, B)"]
    assert SECRET not in repr(changes)


@pytest.mark.parametrize("status,action", [("active", "unchanged"), ("creating", "wait"),
                                           ("failed", "create"), ("deleted", "create")])
def test_what_an_unchanged_definition_does_depends_on_the_latest_status(
    repo: Path, fake: FakeFoundry, status: str, action: str
):
    deploy(repo)
    fake.versions[-1]["status"] = status
    fake.outcome = ("active", None)
    result = deploy(repo)
    assert result.action == action
    assert len(fake.created) == (2 if action == "create" else 1)


def test_a_changed_environment_creates_a_version_and_says_why(repo: Path, fake: FakeFoundry):
    deploy(repo)
    result = deploy(repo, env={"OPENAI_API_KEY": SECRET + "-rotated"})
    assert result.action == "create" and result.version == "2"
    assert result.details["changes"] == ["environment_variables (OPENAI_API_KEY)"]


def test_a_preview_version_with_a_stopped_container_is_started_not_recreated(tmp_path: Path,
                                                                              fake: FakeFoundry):
    root = write_repo(tmp_path, manifest_data(api="2025-11-15-preview"))
    fake.api = "2025-11-15-preview"
    deploy(root)
    fake.containers["1"] = "Stopped"
    result = deploy(root)
    assert result.action == "start" and len(fake.created) == 1
    assert fake.started == [("1", {"min_replicas": 1, "max_replicas": 3})] * 2
    assert deploy(root).action == "unchanged"


# --- the endpoint's traffic (v1) ----------------------------------------------------------------


def selector(*rules: tuple[str, int], kind: str = "FixedRatio") -> dict[str, Any]:
    return {"version_selector": {"version_selection_rules": [
        {"type": kind, "agent_version": version, "traffic_percentage": share}
        for version, share in rules
    ]}}


def test_the_traffic_patch_is_what_the_sdk_sends():
    models = pytest.importorskip("azure.ai.projects.models")
    from azure.ai.projects._utils.model_base import SdkJSONEncoder

    endpoint = models.AgentEndpointConfig(version_selector=models.VersionSelector(
        version_selection_rules=[models.FixedRatioVersionSelectionRule(
            agent_version="2", traffic_percentage=100)]))
    # update_details(agent_endpoint=...) builds {"agent_endpoint": ...} and serializes it so
    sent = json.dumps({"agent_endpoint": endpoint}, cls=SdkJSONEncoder, exclude_readonly=True)
    assert json.loads(sent) == traffic_body("2")


@pytest.mark.parametrize(
    "endpoint,pinned",
    [
        ({}, False),  # no selector: the service serves the latest version
        (selector(("2", 100)), True),
        (selector(("1", 100)), False),
        (selector(("@latest", 100)), False),  # follows the newest, not this one
        (selector(("1", 0), ("2", 100)), True),
        (selector(("2", 100), kind="fixedratio"), True),  # the SDK's enums ignore case
        ({"protocol_configuration": {"responses": {}}}, False),
    ],
)
def test_the_endpoint_pins_a_version_only_by_name_with_all_the_traffic(
    endpoint: dict[str, Any], pinned: bool
):
    agent = AgentDetails.from_json({"name": "a", "versions": {"latest": {"version": "2"}},
                                    "agent_endpoint": endpoint})
    assert agent.pins("2") is pinned


def test_a_deploy_sends_the_traffic_to_the_new_version(repo: Path, fake: FakeFoundry):
    result = run_cli("deploy", "azure", "--json", "-C", str(repo))
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["traffic"] == {"version": "1", "percentage": 100, "changed": True,
                                  "previous": []}
    (patch,) = fake.patched
    assert patch.headers["content-type"] == "application/merge-patch+json"
    assert patch.url.params["api-version"] == "v1"
    assert json.loads(patch.content) == traffic_body("1")
    state = json.loads((repo / ".actk" / "state.json").read_text())["azure"]
    assert state["traffic_version"] == "1"


def test_an_endpoint_already_on_the_version_is_not_patched(repo: Path, fake: FakeFoundry):
    deploy(repo)
    result = deploy(repo)
    assert result.action == "unchanged" and not result.changed
    assert result.details["traffic"]["changed"] is False
    assert len(fake.patched) == 1


def test_an_endpoint_following_latest_is_pinned(repo: Path, fake: FakeFoundry):
    deploy(repo)
    fake.endpoint = selector(("@latest", 100))
    result = deploy(repo)
    assert result.changed and result.details["traffic"]["previous"] == [
        {"version": "@latest", "percentage": 100}
    ]
    assert fake.endpoint == selector(("1", 100))


def test_without_wait_the_endpoint_is_left_and_the_result_says_so(repo: Path,
                                                                    fake: FakeFoundry):
    result = deploy_azure(repo, AzureOptions(wait=False), Console(as_json=True),
                          {"OPENAI_API_KEY": SECRET}, clock=FakeClock())
    assert result.status == "creating" and fake.patched == []
    assert result.details["traffic"]["version"] is None
    assert any("not pointed at it" in warning for warning in result.warnings)


def test_the_human_output_names_the_version_with_the_traffic(repo: Path, fake: FakeFoundry):
    result = run_cli("deploy", "azure", "-C", str(repo))
    assert "traffic: all to version 1 (moved now)" in result.stdout


def test_a_refused_patch_gets_a_hint(repo: Path, fake: FakeFoundry):
    fake.fail_patch = (400, {"error": {"code": "invalid_value", "message": "bad selector"}})
    result = run_cli("deploy", "azure", "-C", str(repo))
    assert result.exit_code == 9
    assert "send the traffic of support-agent to version 1: HTTP 400" in result.output
    assert "hint:" in result.output


@pytest.mark.parametrize(
    "sent,value",
    [(None, "AgentEndpoints=V1Preview"),
     ("HostedAgents=V1Preview", "HostedAgents=V1Preview,AgentEndpoints=V1Preview")],
)
def test_a_403_for_another_preview_opt_in_names_it(sent: str | None, value: str):
    message = ("Agent endpoints is in preview. This operation requires the following opt-in "
               "preview feature(s): AgentEndpoints=V1Preview. Include the 'Foundry-Features: "
               "AgentEndpoints=V1Preview' header in your request.")
    hint = status_hint(403, "preview_feature_required", message, features_sent=bool(sent),
                       features=sent, purpose="send the traffic of a to version 1")
    assert f"--features {value}" in hint


# --- the bounded wait --------------------------------------------------------------------------


def readings(*statuses: str) -> Callable[[], tuple[str, None]]:
    queue = list(statuses)
    return lambda: (queue.pop(0), None)


def test_the_wait_needs_two_terminal_readings_in_a_row():
    clock = FakeClock()
    seen: list[str] = []
    status, _ = poll(readings("creating", "active", "creating", "active", "active", "x"),
                     terminal=lambda s: s in {"active", "failed"}, interval=10, timeout=600,
                     clock=clock, confirmations=2, on_reading=lambda s, t: seen.append(s))
    assert status == "active"
    assert seen == ["creating", "active", "creating", "active", "active"]
    assert clock.slept == [10] * 4


def test_the_wait_is_bounded():
    clock = FakeClock()
    with pytest.raises(WaitTimeout) as caught:
        poll(lambda: ("creating", None), terminal=lambda s: s == "active", interval=10,
             timeout=35, clock=clock, what="version 3")
    assert "version 3 is still creating after 30 s (limit 35 s)" in caught.value.message
    assert caught.value.exit_code == 9


def test_a_version_that_never_activates_times_out_with_the_status_hint(repo: Path,
                                                                        fake: FakeFoundry):
    fake.outcome = ("creating", None)
    with pytest.raises(WaitTimeout) as caught:
        deploy(repo, timeout=60)
    assert "still creating" in caught.value.message
    assert "actk status azure" in (caught.value.hint or "")


# --- error hints -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,words",
    [
        ("ImageError: Failed to pull container image", "AcrPull"),
        ("ContainerProbesFailed: readiness probe failed", "/readiness"),
        ("Unsupported responses protocol version. Please use version '1.0.0'", "protocol_version"),
        ("Hosted Agents are not enabled in this region", "region"),
    ],
)
def test_known_failures_get_their_fix(text: str, words: str):
    assert words in (failure_hint(text) or "")


def test_a_403_asking_for_the_preview_header_names_the_flag():
    hint = status_hint(403, "preview_feature_required", "Include the 'Foundry-Features: "
                       "HostedAgents=V1Preview' header", features_sent=False, purpose="create")
    assert "--features HostedAgents=V1Preview" in hint
    assert "targets.azure.foundry_features" in hint


def test_a_409_on_delete_names_force():
    assert "--force" in status_hint(409, "conflict", "active sessions", features_sent=False,
                                    purpose="delete version 1 of a")


def test_error_bodies_of_every_shape_are_read():
    def answer(**kwargs: Any) -> httpx.Response:
        return httpx.Response(400, request=httpx.Request("GET", "https://x"), **kwargs)

    assert parse_error(answer(json={"error": {"code": "c", "message": "m"}})) == ("c", "c: m")
    assert parse_error(answer(json={"statusCode": 401, "message": "m"})) == ("401", "401: m")
    assert parse_error(answer(text="<html> bad   gateway </html>")) == (
        None, "<html> bad gateway </html>")


def test_invoke_target_azure_refuses_local_flags(repo: Path):
    result = run_cli("invoke", "hi", "--target", "azure", "--local", "-C", str(repo))
    assert result.exit_code == 2
    assert "drop --local/--url" in result.output


def test_a_manifest_without_targets_azure_says_how_to_add_it(tmp_path: Path):
    data = manifest_data()
    del data["targets"]
    write_repo(tmp_path, data)
    result = run_cli("status", "azure", "-C", str(tmp_path))
    assert result.exit_code == 3
    assert "has no targets.azure section" in result.output
    assert "project_endpoint" in result.output


# --- status, delete, invoke --------------------------------------------------------------------


def test_status_lists_versions_and_marks_the_deployed_one(repo: Path, fake: FakeFoundry):
    deploy(repo)
    result = run_cli("status", "azure", "-C", str(repo))
    assert result.exit_code == 0, result.output
    assert "* 1" in result.stdout and "active" in result.stdout and PUSHED in result.stdout
    assert f"{ENDPOINT}/agents/support-agent/endpoint/protocols/openai/responses" in result.stdout
    payload = json.loads(run_cli("status", "azure", "--json", "-C", str(repo)).stdout)
    assert payload["versions"][0] | {"created_at": None} == {
        "version": "1", "status": "active", "created_at": None, "image": PUSHED, "cpu": "1",
        "memory": "2Gi", "reason": None, "deployed": True,
    }


def test_delete_with_active_sessions_explains_force(repo: Path, fake: FakeFoundry):
    deploy(repo)
    fake.sessions_active = True
    result = run_cli("delete", "azure", "--version", "1", "-C", str(repo))
    assert result.exit_code == 9
    assert "HTTP 409" in result.output and "pass --force" in result.output
    result = run_cli("delete", "azure", "--version", "1", "--force", "-C", str(repo))
    assert result.exit_code == 0, result.output
    assert fake.deleted[-1].endswith("/versions/1?api-version=v1&force=true")
    state = json.loads((repo / ".actk" / "state.json").read_text())["azure"]
    assert state["status"] == "deleted"


def test_invoke_goes_through_the_agent_endpoint_and_streams(repo: Path, fake: FakeFoundry):
    result = run_cli("invoke", "hi", "--target", "azure", "-C", str(repo))
    assert result.exit_code == 0, result.output
    assert result.stdout == "echo: hi\n"
    request = fake.requests[-1]
    assert request.url.path == (
        "/api/projects/proj/agents/support-agent/endpoint/protocols/openai/responses"
    )
    assert request.url.params["api-version"] == "v1"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert fake.invoked == [{"input": "hi", "stream": True}]


def test_preview_invoke_names_the_agent_and_its_deployed_version(tmp_path: Path,
                                                                 fake: FakeFoundry):
    root = write_repo(tmp_path, manifest_data(api="2025-11-15-preview"))
    fake.api = "2025-11-15-preview"
    deploy(root)
    result = run_cli("invoke", "hi", "--target", "azure", "--json", "-C", str(root))
    assert json.loads(result.stdout)["output_text"] == "echo: hi"
    request = fake.requests[-1]
    assert request.url.path == "/api/projects/proj/openai/responses"
    assert request.url.params["api-version"] == "2025-11-15-preview"
    assert fake.invoked[-1]["agent"] == {"type": "agent_reference", "name": "support-agent",
                                            "version": "1"}


@pytest.mark.parametrize(
    "status,body,words",
    [
        (424, {"error": {"code": "session_not_ready", "message": "not ready"}}, "port 8088"),
        (403, {"error": {"code": "preview_feature_required", "message": "Include the "
                         "'Foundry-Features: HostedAgents=V1Preview' header"}}, "--features"),
        (403, {"error": {"code": "PermissionDenied", "message": "denied"}}, "Azure AI User"),
    ],
)
def test_invoke_failures_get_their_fix(repo: Path, fake: FakeFoundry, status: int,
                                       body: Any, words: str):
    fake.fail_invoke = (status, body)
    result = run_cli("invoke", "hi", "--target", "azure", "-C", str(repo))
    assert result.exit_code == 7
    assert f"HTTP {status}" in result.output and words in result.output


# --- a small in-memory Foundry for the decisions above -------------------------------------------


class FakeFoundry:
    """Just enough of the data plane for the deploy's decisions (the full contract server is
    tests/foundry_contract.py)."""

    def __init__(self) -> None:
        self.api = "v1"
        self.versions: list[dict[str, Any]] = []
        self.created: list[dict[str, Any]] = []
        self.started: list[tuple[str, Any]] = []
        self.containers: dict[str, str] = {}
        self.requests: list[httpx.Request] = []
        self.outcome: tuple[str, Any] = ("active", None)
        self.fail_create: tuple[int, Any] | None = None
        self.fail_invoke: tuple[int, Any] | None = None
        self.invoked: list[dict[str, Any]] = []
        self.deleted: list[str] = []
        self.sessions_active = False
        self.endpoint: dict[str, Any] = {}  # the agent's agent_endpoint
        self.patched: list[httpx.Request] = []
        self.fail_patch: tuple[int, Any] | None = None

    def agent(self, name: str) -> httpx.Response:
        if not self.versions:
            return httpx.Response(404, json={"error": {"code": "not_found", "message": name}})
        latest = max(self.versions, key=lambda v: int(v["version"]))
        body = {"object": "agent", "id": name, "name": name, "versions": {"latest": latest}}
        if self.endpoint:
            body["agent_endpoint"] = self.endpoint
        return httpx.Response(200, json=body)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path.removeprefix("/api/projects/proj/")
        parts = path.split("/")
        if len(parts) == 2 and request.method == "GET":
            return self.agent(parts[1])
        if len(parts) == 2 and request.method == "PATCH":
            self.patched.append(request)
            if self.fail_patch:
                status, body = self.fail_patch
                return httpx.Response(status, json=body)
            self.endpoint = {**self.endpoint, **json.loads(request.content)["agent_endpoint"]}
            return self.agent(parts[1])
        if request.method == "GET" and path.endswith("/versions"):
            data = sorted(self.versions, key=lambda v: int(v["version"]), reverse=True)
            return httpx.Response(200, json={"object": "list", "data": data[:1]})
        if request.method == "POST" and path.endswith("/versions"):
            if self.fail_create:
                status, body = self.fail_create
                return httpx.Response(status, json=body)
            body = json.loads(request.content)
            self.created.append(body)
            version = {"object": "agent.version", "name": parts[1],
                       "version": str(len(self.versions) + 1), "created_at": len(self.versions),
                       "definition": body["definition"], "metadata": body.get("metadata", {})}
            if self.api == "v1":
                version["status"] = "creating"
            self.versions.append(version)
            return httpx.Response(200, json=version)
        if path.endswith(":start"):
            self.started.append((parts[3], json.loads(request.content)))
            self.containers[parts[3]] = "Running"
            return httpx.Response(202, json={"id": "op1", "status": "InProgress"},
                                  headers={"Operation-Location": f"{ENDPOINT}/agents/x/"
                                           "operations/op1"})
        if "/operations/" in path:
            return httpx.Response(200, json={"id": "op1", "status": "Succeeded"})
        if path.endswith("/responses"):
            self.invoked.append(json.loads(request.content))
            if self.fail_invoke:
                status, body = self.fail_invoke
                return httpx.Response(status, json=body)
            events = [
                {"type": "response.created", "response": {"id": "resp_1", "status": "in_progress"}},
                {"type": "response.output_text.delta", "delta": "echo: "},
                {"type": "response.output_text.delta", "delta": "hi"},
                {"type": "response.completed", "response": {
                    "id": "resp_1", "status": "completed", "output": [{
                        "type": "message", "content": [{"type": "output_text",
                                                        "text": "echo: hi"}]}]}},
            ]
            text = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)
            return httpx.Response(200, text=text, headers={"content-type": "text/event-stream"})
        if request.method == "DELETE":
            if self.sessions_active and request.url.params.get("force") != "true":
                return httpx.Response(409, json={"error": {
                    "code": "conflict", "message": "The version has active sessions."}})
            self.deleted.append(str(request.url))
            return httpx.Response(200, json={"object": "agent.version.deleted", "deleted": True})
        if path.endswith("/containers/default"):
            if parts[3] not in self.containers:
                return httpx.Response(404, json={"error": {"code": "not_found", "message": "x"}})
            return httpx.Response(200, json={"status": self.containers[parts[3]]})
        if request.method == "GET" and "/versions/" in path:
            version = next(v for v in self.versions if v["version"] == parts[3])
            status, error = self.outcome
            if version.get("status") == "creating":
                version["status"] = status
                if error:
                    version["error"] = error
            return httpx.Response(200, json=version)
        return httpx.Response(404, json={"error": {"code": "not_found", "message": path}})


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeFoundry]:
    fake = FakeFoundry()

    def client(target: Any, env: Any, **kwargs: Any) -> FoundryClient:
        return FoundryClient(
            target.project_endpoint, api=target.api, token=TOKEN,
            features=kwargs.get("features") or target.foundry_features,
            secrets=kwargs.get("secrets", ()), sleep=kwargs["clock"].sleep,
            transport=httpx.MockTransport(fake.handle),
        )

    monkeypatch.setattr(azure_deploy, "_client", client)
    monkeypatch.setattr(azure_deploy, "SYSTEM_CLOCK", FakeClock())
    yield fake


def deploy(root: Path, *, env: dict[str, str] | None = None, timeout: float = 600) -> Any:
    return deploy_azure(root, AzureOptions(timeout=timeout), Console(as_json=True),
                        env or {"OPENAI_API_KEY": SECRET}, clock=FakeClock())
