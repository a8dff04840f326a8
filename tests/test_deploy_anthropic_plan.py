"""`actk deploy anthropic` without a server: targets.anthropic and its errors, requirements.txt
translated into packages.pip, the bodies actk sends, the comparison that decides whether
anything is written, and Anthropic's error envelope turned into errors with a hint (against
httpx.MockTransport). The whole flow against the contract server: test_deploy_anthropic.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.deploying import FakeClock, write_repo
from toolkit.cloud.anthropic import (
    AnthropicAPIError,
    AnthropicClient,
    api_base,
    list_sessions_call,
)
from toolkit.cloud.http import RetryPolicy
from toolkit.console import Console
from toolkit.deploy.anthropic import (
    AnthropicInvokeResult,
    AnthropicOptions,
    _follow,
    agent_body,
    agent_changes,
    agent_update_body,
    deploy_anthropic,
    environment_body,
    environment_changes,
    environment_update_body,
    image_label,
    python_of,
    runtime_requirements,
    session_update_body,
    session_usable,
)
from toolkit.errors import InvokeError, ManifestError, UsageError
from toolkit.invoke import SSEEvent
from toolkit.manifest import Manifest, json_schema, load_manifest

KEY = "sk-ant-api03-unit-test-key-0123456789"
PUSHED = "registry.example.com/support-agent@sha256:" + "ab" * 32


def manifest_data(**anthropic: Any) -> dict[str, Any]:
    return {
        "name": "support-agent",
        "description": "Answers support questions",
        "instructions": "Be brief.",
        "metadata": {"team": "support"},
        "model": {"provider": "anthropic", "name": "claude-sonnet-4-5"},
        "targets": {"anthropic": anthropic},
    }


def manifest(**anthropic: Any) -> Manifest:
    return Manifest.model_validate(manifest_data(**anthropic))


# --- targets.anthropic ----------------------------------------------------------------------------


def test_the_section_actk_new_writes_loads_with_every_default():
    target = manifest(environment={"type": "cloud", "name": "support-agent"},
                      agent={"model": "claude-sonnet-4-5"}).targets.anthropic
    assert target is not None
    assert (target.environment.type, target.environment.requirements) == (
        "cloud", "requirements.txt")
    assert target.agent.tools == [{"type": "agent_toolset_20260401"}]
    assert target.session.metadata == {}


def test_a_model_object_is_read_with_its_settings():
    target = manifest(agent={"model": {"id": "claude-opus-4-6", "effort": "high",
                                       "speed": "fast"}}).targets.anthropic
    assert target is not None
    body = agent_body(manifest(), target, {"id": "claude-opus-4-6", "effort": "high",
                                          "speed": "fast"})
    assert body["model"] == {"id": "claude-opus-4-6", "effort": "high", "speed": "fast"}


BROKEN = {
    "packages on self_hosted": (
        {"environment": {"type": "self_hosted", "packages": {"pip": ["httpx"]}}},
        "targets.anthropic.environment", "packages apply to cloud environments only"),
    "networking on self_hosted": (
        {"environment": {"type": "self_hosted", "networking": {"type": "limited"}}},
        "targets.anthropic.environment", "networking apply to cloud environments only"),
    "scope on cloud": (
        {"environment": {"scope": "account"}},
        "targets.anthropic.environment", "scope applies to self_hosted environments only"),
    "host with a scheme": (
        {"environment": {"networking": {"type": "limited",
                                        "allowed_hosts": ["https://api.example.com/v1"]}}},
        "targets.anthropic.environment.networking.allowed_hosts",
        "without scheme, port or path (e.g. 'api.example.com'"),
    "host with a port": (
        {"environment": {"networking": {"type": "limited",
                                        "allowed_hosts": ["api.example.com:443"]}}},
        "allowed_hosts", "'api.example.com'"),
    "hosts while unrestricted": (
        {"environment": {"networking": {"allowed_hosts": ["api.example.com"]}}},
        "targets.anthropic.environment.networking", "set type: limited"),
    "unreferenced mcp server": (
        {"agent": {"mcp_servers": [{"name": "docs", "url": "https://mcp.example.com"}]}},
        "targets.anthropic.agent",
        "mcp_servers docs is not used by any tool (the API refuses that): add "
        "{type: mcp_toolset, mcp_server_name: docs}"),
    "toolset naming an unknown server": (
        {"agent": {"tools": [{"type": "mcp_toolset", "mcp_server_name": "docs"}]}},
        "targets.anthropic.agent", "which is not in mcp_servers"),
    "mcp server over http": (
        {"agent": {"tools": [{"type": "mcp_toolset", "mcp_server_name": "docs"}],
                   "mcp_servers": [{"name": "docs", "url": "http://mcp.example.com"}]}},
        "mcp_servers[0].url", "is not an https URL"),
    "unknown tool type": (
        {"agent": {"tools": [{"type": "bash_20250124"}]}},
        "targets.anthropic.agent.tools", "is not a managed-agents tool"),
    "too many tools": (
        {"agent": {"tools": [{"type": "agent_toolset_20260401"}] * 129}},
        "targets.anthropic.agent.tools", "129 tools; at most 128"),
    "agent metadata too many pairs": (
        {"agent": {"metadata": {f"k{i}": "v" for i in range(17)}}},
        "targets.anthropic.agent.metadata", "17 pairs; at most 16"),
    "environment metadata value too long": (
        {"environment": {"metadata": {"k": "v" * 513}}},
        "targets.anthropic.environment.metadata", "longer than 512 characters"),
    "session metadata leaves no room for actk_image": (
        {"session": {"metadata": {f"k{i}": "v" for i in range(16)}}},
        "targets.anthropic.session.metadata", "(actk adds actk_image, the 16th)"),
    "session metadata sets actk_image": (
        {"session": {"metadata": {"actk_image": "x"}}},
        "targets.anthropic.session.metadata", "actk_image is set by actk"),
    "system too long": (
        {"agent": {"system": "x" * 100_001}}, "targets.anthropic.agent.system",
        "at most 100000"),
    "agent name too long": (
        {"agent": {"name": "a" * 257}}, "targets.anthropic.agent.name", "at most 256"),
    "api_base over http": (
        {"api_base": "http://api.example.com"}, "targets.anthropic.api_base",
        "must use https (http only for localhost)"),
    "unknown field": (
        {"agent": {"modle": "claude-sonnet-4-5"}}, "targets.anthropic.agent.modle",
        "unknown field"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_targets_anthropic_errors_name_the_field_and_the_fix(tmp_path: Path, case: str):
    section, where, words = BROKEN[case]
    write_repo(tmp_path, manifest_data(**section), pushed=None)
    with pytest.raises(ManifestError) as caught:
        load_manifest(tmp_path)
    assert where in caught.value.message
    assert words in caught.value.message


def test_a_typo_suggests_the_field(tmp_path: Path):
    write_repo(tmp_path, manifest_data(environment={"netwroking": {}}), pushed=None)
    with pytest.raises(ManifestError) as caught:
        load_manifest(tmp_path)
    assert "did you mean 'networking'" in (caught.value.hint or "")


def test_the_json_schema_describes_targets_anthropic():
    schema = json_schema()
    json.dumps(schema)  # exportable
    definitions = schema["$defs"]
    assert set(definitions["AnthropicTarget"]["properties"]) == {
        "api_base", "environment", "agent", "session"}
    assert definitions["AnthropicEnvironment"]["additionalProperties"] is False


# --- checks made at deploy time, before any call ----------------------------------------------


def deploy_offline(root: Path, **options: Any) -> Any:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"nothing may be sent: {request.method} {request.url}")

    return deploy_anthropic(root, AnthropicOptions(**options), Console(as_json=True),
                            {"ANTHROPIC_API_KEY": KEY}, transport=httpx.MockTransport(refuse))


def test_the_model_is_required_when_the_provider_is_not_anthropic(tmp_path: Path):
    data = manifest_data()
    data["model"] = {"provider": "openai", "name": "gpt-4o-mini"}
    root = write_repo(tmp_path, data, pushed=PUSHED)
    with pytest.raises(ManifestError) as caught:
        deploy_offline(root, dry_run=True)
    assert "targets.anthropic.agent.model: is not set, and model.provider is openai" in (
        caught.value.message)
    assert "model: claude-sonnet-4-5" in caught.value.message


def test_instructions_longer_than_a_system_prompt_are_refused_before_any_call(tmp_path: Path):
    data = manifest_data()
    data["instructions"] = "x" * 100_001
    root = write_repo(tmp_path, data, pushed=PUSHED)
    with pytest.raises(ManifestError) as caught:
        deploy_offline(root)
    assert "agent.yaml: instructions: is 100001 characters" in caught.value.message


def test_a_requirements_file_that_is_named_but_missing_is_refused(tmp_path: Path):
    root = write_repo(tmp_path, manifest_data(environment={"requirements": "deps.txt"}),
                      pushed=PUSHED)
    with pytest.raises(ManifestError) as caught:
        deploy_offline(root, dry_run=True)
    assert "targets.anthropic.environment.requirements: deps.txt does not exist" in (
        caught.value.message)


def test_an_unreadable_requirement_names_its_line(tmp_path: Path):
    root = write_repo(tmp_path, manifest_data(), pushed=PUSHED)
    (root / "requirements.txt").write_text("httpx>=0.27\nnot a requirement!!\n")
    with pytest.raises(ManifestError) as caught:
        deploy_offline(root, dry_run=True)
    assert "requirements.txt line 2: 'not a requirement!!' is not a requirement" in (
        caught.value.message)


def test_a_real_deploy_without_an_api_key_says_how_to_set_it(tmp_path: Path):
    root = write_repo(tmp_path, manifest_data(), pushed=PUSHED)
    with pytest.raises(UsageError) as caught:
        deploy_anthropic(root, AnthropicOptions(), Console(as_json=True), {})
    assert "ANTHROPIC_API_KEY is not set" in caught.value.message


def test_a_manifest_without_the_section_says_how_to_add_it(tmp_path: Path):
    data = manifest_data()
    del data["targets"]
    root = write_repo(tmp_path, data, pushed=PUSHED)
    with pytest.raises(ManifestError) as caught:
        deploy_offline(root, dry_run=True)
    assert "has no targets.anthropic section" in caught.value.message
    assert "targets: {anthropic:" in (caught.value.hint or "")


def test_the_api_base_comes_from_the_environment_first():
    assert api_base({}, None) == "https://api.anthropic.com"
    assert api_base({}, "https://proxy.example.com/") == "https://proxy.example.com"
    assert api_base({"ANTHROPIC_BASE_URL": "http://127.0.0.1:9"},
                    "https://proxy.example.com") == "http://127.0.0.1:9"
    with pytest.raises(UsageError) as caught:
        api_base({"ANTHROPIC_BASE_URL": "http://api.example.com"})
    assert "ANTHROPIC_BASE_URL" in caught.value.message


# --- requirements.txt -> packages.pip -----------------------------------------------------------

TEMPLATE_REQUIREMENTS = """\
# What the container installs. pyproject.toml reads its dependencies from this file.
# A line marked "image: build only" is installed in the image's build stage alone.
uvicorn>=0.30,<1
httptools>=0.6
uvloop>=0.19; sys_platform != "win32"
anyio>=4; python_version < "3.11"  # the SSE keep-alive deadline on Python 3.10 (sse.py)
pyyaml>=6.0  # reads agent.yaml; image: build only (the image reads agent.json made from it)
httpx>=0.27  # the remote model providers
"""


def test_the_templates_requirements_become_its_run_time_pip_packages():
    pip, problems = runtime_requirements(TEMPLATE_REQUIREMENTS, python_version="3.12")
    assert problems == []
    assert pip == ["uvicorn<1,>=0.30", "httptools>=0.6", "uvloop>=0.19", "httpx>=0.27"]


def test_markers_are_evaluated_for_linux_x86_64_and_the_base_images_python():
    text = ("anyio>=4; python_version < '3.11'\n"
            "pywin32; sys_platform == 'win32'\n"
            "intel-only; platform_machine == 'x86_64'\n"
            "arm-only; platform_machine == 'aarch64'\n")
    assert runtime_requirements(text, python_version="3.10")[0] == ["anyio>=4", "intel-only"]
    assert runtime_requirements(text, python_version="3.12")[0] == ["intel-only"]
    assert python_of("python:3.10-slim") == "3.10"
    assert python_of("docker.io/library/python:3.13") == "3.13"
    assert python_of("ubuntu:24.04") == "3.12"


def test_options_includes_and_hashes_are_not_packages():
    text = ("--index-url https://pypi.example.com/simple\n"
            "-r other.txt\n"
            "-e .\n"
            "requests==2.32.3 \\\n"
            "    --hash=sha256:" + "0" * 64 + "\n"
            "\n"
            "  # indented comment\n"
            "rich[jupyter]>=13  # with extras\n"
            "requests==2.32.3\n")
    pip, problems = runtime_requirements(text)
    assert problems == []
    assert pip == ["requests==2.32.3", "rich[jupyter]>=13"]


def test_pip_gets_the_requirements_then_the_extra_packages_once():
    target = manifest(environment={"packages": {"pip": ["httpx>=0.27", "rich"],
                                                "apt": ["ripgrep"]}}).targets.anthropic
    assert target is not None
    body = environment_body("env", target, ["httpx>=0.27", "uvicorn<1"])
    assert body["config"]["packages"] == {"type": "packages", "apt": ["ripgrep"], "cargo": [],
                                          "gem": [], "go": [], "npm": [],
                                          "pip": ["httpx>=0.27", "uvicorn<1", "rich"]}


# --- the bodies ---------------------------------------------------------------------------------


def test_limited_networking_allows_package_managers_only_when_packages_are_listed():
    limited = {"type": "limited", "allowed_hosts": ["api.example.com", "*.example.org"]}
    with_packages = manifest(environment={"networking": limited}).targets.anthropic
    assert with_packages is not None
    network = environment_body("e", with_packages, ["httpx"])["config"]["networking"]
    assert network == {"type": "limited", "allowed_hosts": ["api.example.com", "*.example.org"],
                       "allow_mcp_servers": False, "allow_package_managers": True}
    network = environment_body("e", with_packages, [])["config"]["networking"]
    assert network["allow_package_managers"] is False


def test_a_self_hosted_environment_sends_only_its_type_and_scope():
    target = manifest(environment={"type": "self_hosted", "scope": "account",
                                   "description": "runs in our image"}).targets.anthropic
    assert target is not None
    assert environment_body("support", target, ["ignored"]) == {
        "name": "support", "config": {"type": "self_hosted"},
        "description": "runs in our image", "metadata": {}, "scope": "account"}


def test_the_agent_defaults_come_from_the_manifest():
    data = manifest()
    target = data.targets.anthropic
    assert target is not None
    assert agent_body(data, target, "claude-sonnet-4-5") == {
        "name": "support-agent", "model": "claude-sonnet-4-5", "system": "Be brief.",
        "description": "Answers support questions",
        "tools": [{"type": "agent_toolset_20260401"}], "mcp_servers": [],
        "metadata": {"team": "support"}}


def test_image_labels_are_the_short_digest_or_the_tag():
    assert image_label(PUSHED) == "sha256:" + "ab" * 6
    assert image_label("localhost:5000/agent:v1.2") == "v1.2"
    assert image_label("localhost:5000/agent") == "latest"


# --- the comparison -----------------------------------------------------------------------------

REMOTE_AGENT = {
    "id": "agent_1", "type": "agent", "version": 3, "name": "support-agent",
    "model": {"id": "claude-sonnet-4-5", "speed": "standard", "effort": {"type": "high"}},
    "system": "Be brief.", "description": "Answers support questions",
    "tools": [{"type": "agent_toolset_20260401",
               "default_config": {"enabled": True, "permission_policy": {"type": "always_allow"}},
               "configs": []}],
    "mcp_servers": [], "skills": [], "metadata": {"team": "support"},
}


def desired_agent(**changes: Any) -> dict[str, Any]:
    data = manifest()
    assert data.targets.anthropic is not None
    return {**agent_body(data, data.targets.anthropic, "claude-sonnet-4-5"), **changes}


def test_what_the_api_fills_in_is_no_change():
    assert agent_changes(desired_agent(), REMOTE_AGENT) == []
    assert agent_changes(desired_agent(model={"id": "claude-sonnet-4-5", "effort": "high"}),
                         REMOTE_AGENT) == []


def test_a_changed_field_is_named_and_only_it_is_sent_with_the_version():
    want = desired_agent(system="Be thorough.")
    changes = agent_changes(want, REMOTE_AGENT)
    assert changes == ["system"]
    assert agent_update_body(want, REMOTE_AGENT, changes) == {"system": "Be thorough.",
                                                              "version": 3}


def test_metadata_keys_no_longer_wanted_are_sent_as_null():
    want = desired_agent(metadata={"owner": "ada"})
    changes = agent_changes(want, REMOTE_AGENT)
    assert changes == ["metadata"]
    assert agent_update_body(want, REMOTE_AGENT, changes)["metadata"] == {
        "owner": "ada", "team": None}


def test_a_removed_system_prompt_is_cleared_and_an_empty_one_is_none():
    assert agent_changes(desired_agent(system=None), {**REMOTE_AGENT, "system": ""}) == []
    want = desired_agent(system=None)
    assert agent_update_body(want, REMOTE_AGENT, agent_changes(want, REMOTE_AGENT)) == {
        "system": None, "version": 3}


def test_a_model_change_and_a_tool_change_are_changes():
    assert agent_changes(desired_agent(model="claude-opus-4-6"), REMOTE_AGENT) == ["model"]
    tools = [{"type": "agent_toolset_20260401", "default_config": {"enabled": False}}]
    assert agent_changes(desired_agent(tools=tools), REMOTE_AGENT) == ["tools"]


def cloud_target(**environment: Any) -> Any:
    target = manifest(environment=environment).targets.anthropic
    assert target is not None
    return target


REMOTE_ENVIRONMENT = {
    "id": "env_1", "type": "environment", "name": "support-agent", "description": None,
    "metadata": {}, "scope": None, "archived_at": None,
    "config": {"type": "cloud", "networking": {"type": "unrestricted"},
               "packages": {"type": "packages", "apt": [], "cargo": [], "gem": [], "go": [],
                            "npm": [], "pip": ["uvicorn<1", "httpx>=0.27"]}},
}


def test_an_environment_with_the_same_packages_in_another_order_is_unchanged():
    desired = environment_body("support-agent", cloud_target(), ["httpx>=0.27", "uvicorn<1"])
    assert environment_changes(desired, REMOTE_ENVIRONMENT) == []


def test_a_new_package_updates_the_whole_config():
    desired = environment_body("support-agent", cloud_target(), ["httpx>=0.27", "rich"])
    changes = environment_changes(desired, REMOTE_ENVIRONMENT)
    assert changes == ["config.packages"]
    assert environment_update_body(desired, REMOTE_ENVIRONMENT, changes) == {
        "config": desired["config"]}


def test_environment_metadata_is_declarative():
    desired = environment_body("support-agent", cloud_target(metadata={"a": "1"}),
                               ["httpx>=0.27", "uvicorn<1"])
    remote = {**REMOTE_ENVIRONMENT, "metadata": {"b": "2"}}
    changes = environment_changes(desired, remote)
    assert changes == ["metadata"]
    assert environment_update_body(desired, remote, changes)["metadata"] == {"a": "1",
                                                                             "b": None}


SESSION = {"id": "sesn_1", "environment_id": "env_1", "status": "idle", "archived_at": None,
           "agent": {"type": "agent", "id": "agent_1", "version": 3},
           "title": "support-agent v1", "metadata": {"actk_image": "a:v1"}}


def test_a_session_is_usable_only_on_the_same_environment_and_agent_version():
    assert session_usable(SESSION, "env_1", "agent_1", 3)
    assert not session_usable(SESSION, "env_1", "agent_1", 4)
    assert not session_usable(SESSION, "env_2", "agent_1", 3)
    assert not session_usable({**SESSION, "status": "terminated"}, "env_1", "agent_1", 3)
    assert not session_usable({**SESSION, "archived_at": "2026-01-01T00:00:00Z"}, "env_1",
                              "agent_1", 3)


def test_a_reused_session_gets_only_what_differs():
    assert session_update_body("support-agent v1", {"actk_image": "a:v1"}, SESSION) == {}
    assert session_update_body("support-agent v2", {"actk_image": "a:v2"}, SESSION) == {
        "title": "support-agent v2", "metadata": {"actk_image": "a:v2"}}


# --- errors from the API --------------------------------------------------------------------------


def answering(status: int, payload: Any = None, headers: dict[str, str] | None = None,
              seen: list[httpx.Request] | None = None) -> AnthropicClient:
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        body = payload if payload is not None else {
            "type": "error", "error": {"type": "some_error", "message": f"status {status}"},
            "request_id": "req_011CZtest"}
        return httpx.Response(status, json=body, headers=headers)

    return AnthropicClient(KEY, transport=httpx.MockTransport(handler), sleep=lambda _: None,
                           retry=RetryPolicy(attempts=3))


@pytest.mark.parametrize(("status", "words"), [
    (401, "ANTHROPIC_API_KEY is missing, mistyped or revoked"),
    (403, "may not use managed agents"),
    (404, "deploy first"),
    (409, "the name or version is taken"),
    (413, "too large"),
    (500, "status.anthropic.com"),
])
def test_each_status_gets_its_hint_and_the_request_id(status: int, words: str):
    with pytest.raises(AnthropicAPIError) as caught:
        answering(status).create_agent({"name": "a", "model": "claude-sonnet-4-5"})
    error = caught.value
    assert error.status == status and error.request_id == "req_011CZtest"
    assert f"create agent a: HTTP {status} some_error: status {status} (request_id " \
           "req_011CZtest)" in error.message
    assert words in (error.hint or "")
    assert KEY not in error.message


def test_a_429_is_retried_then_reported_with_the_attempts():
    seen: list[httpx.Request] = []
    client = answering(429, headers={"retry-after": "0"}, seen=seen)
    with pytest.raises(AnthropicAPIError) as caught:
        client.get_agent("agent_1")
    assert len(seen) == 3
    assert "after 3 attempts" in caught.value.message
    assert "rate limited" in (caught.value.hint or "")


def test_a_create_is_not_sent_twice_after_a_500_but_a_read_is():
    seen: list[httpx.Request] = []
    with pytest.raises(AnthropicAPIError):
        answering(500, seen=seen).create_environment({"name": "e"})
    assert len(seen) == 1
    seen.clear()
    with pytest.raises(AnthropicAPIError):
        answering(500, seen=seen).get_environment("env_1")
    assert len(seen) == 3


def test_overloaded_529_is_waited_for_even_on_a_create():
    seen: list[httpx.Request] = []
    with pytest.raises(AnthropicAPIError) as caught:
        answering(529, seen=seen).create_agent({"name": "a", "model": "m"})
    assert len(seen) == 3 and "overloaded" in (caught.value.hint or "")


def test_every_call_carries_the_headers_and_the_beta_query():
    seen: list[httpx.Request] = []
    client = answering(200, {"data": [], "next_page": None}, seen=seen)
    list(client.list_environments())
    (request,) = seen
    assert request.url.path == "/v1/environments"
    assert request.url.params["beta"] == "true" and request.url.params["limit"] == "100"
    assert request.headers["x-api-key"] == KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["anthropic-beta"] == "managed-agents-2026-04-01"


def test_lists_follow_next_page():
    pages = {None: {"data": [{"id": "a", "name": "x"}], "next_page": "p2"},
             "p2": {"data": [{"id": "b", "name": "wanted"}], "next_page": None}}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=pages[request.url.params.get("page")])

    client = AnthropicClient(KEY, transport=httpx.MockTransport(handler))
    assert client.find_agent("wanted") == {"id": "b", "name": "wanted"}


def test_the_dry_run_shows_placeholders_unencoded():
    client = AnthropicClient(None)
    _, url, headers, _ = client.describe(list_sessions_call(agent_id="{agent_id}",
                                                            agent_version="{version}"))
    assert url == ("https://api.anthropic.com/v1/sessions?beta=true&agent_id={agent_id}"
                   "&agent_version={version}&limit=100")
    assert headers["x-api-key"] == "[REDACTED]"


def test_a_dry_run_needs_no_key_and_prints_it_nowhere(tmp_path: Path):
    root = write_repo(tmp_path, manifest_data(), pushed=PUSHED)
    (root / "requirements.txt").write_text(TEMPLATE_REQUIREMENTS)
    result = deploy_offline(root, dry_run=True)
    text = json.dumps(result.to_dict())
    assert KEY not in text
    methods = [(r.method, r.url.split("?")[0].removeprefix("https://api.anthropic.com"))
               for r in result.requests]
    assert ("POST", "/v1/environments") in methods and ("POST", "/v1/sessions") in methods
    create = next(r for r in result.requests
                  if (r.method, r.url) == ("POST", "https://api.anthropic.com/v1/environments"
                                           "?beta=true"))
    assert create.body["config"]["packages"]["pip"] == ["uvicorn<1,>=0.30", "httptools>=0.6",
                                                        "uvloop>=0.19", "httpx>=0.27"]


def test_yaml_written_by_actk_new_for_anthropic_is_valid(tmp_path: Path):
    (tmp_path / "agent.yaml").write_text(yaml.safe_dump(manifest_data(
        environment={"type": "cloud", "name": "support-agent"},
        agent={"model": "claude-sonnet-4-5"})))
    assert load_manifest(tmp_path).targets.anthropic is not None


# --- reading a session's event stream -------------------------------------------------------------


def sse(kind: str, **data: Any) -> SSEEvent:
    return SSEEvent(kind, json.dumps({"type": kind, "id": f"sevt_{kind}", **data}))


RUNNING = sse("session.status_running")
SPAN = sse("span.model_request_start")
PING = SSEEvent("ping", "{}")


def follow(events: list[SSEEvent], *, clock: Any = None, notices: list[str] | None = None,
           deltas: list[str] | None = None) -> AnthropicInvokeResult:
    result = AnthropicInvokeResult(url="https://api.anthropic.com/v1/sessions/sesn_1",
                                   session_id="sesn_1")
    clock = clock or FakeClock().clock
    return _follow(iter(events), result, {"sevt_mine"}, deadline=clock.now() + 60, clock=clock,
                   on_delta=None if deltas is None else deltas.append,
                   on_notice=None if notices is None else notices.append, hint="hint",
                   hide=lambda text: text.replace(KEY, "[REDACTED]"))


def message(text: str) -> SSEEvent:
    return sse("agent.message", content=[{"type": "text", "text": text}])


def test_text_arrives_piece_by_piece_until_end_turn():
    deltas: list[str] = []
    result = follow([PING, RUNNING, SPAN, message("echo: "), PING, message("hi"),
                     sse("session.status_idle", stop_reason={"type": "end_turn"})],
                    deltas=deltas)
    assert deltas == ["echo: ", "hi"]
    assert (result.output_text, result.status, result.stop_reason) == (
        "echo: hi", "completed", "end_turn")


def test_an_idle_from_before_the_message_is_not_the_end_of_the_turn():
    result = follow([sse("session.status_idle", stop_reason={"type": "end_turn"}),
                     sse("user.message", id="sevt_mine"), message("late"),
                     sse("session.status_idle", stop_reason={"type": "end_turn"})])
    assert result.output_text == "late"


def test_a_stream_that_ends_before_the_idle_is_an_error():
    with pytest.raises(InvokeError) as caught:
        follow([RUNNING, message("half")])
    assert "ended before the turn did" in caught.value.message


def test_a_terminated_session_is_an_error():
    with pytest.raises(InvokeError) as caught:
        follow([RUNNING, sse("session.status_terminated")])
    assert "session sesn_1 was terminated" in caught.value.message
    assert "actk deploy anthropic" in (caught.value.hint or "")


def test_an_error_still_retrying_is_a_notice_and_an_exhausted_one_ends_it():
    notices: list[str] = []
    retrying = sse("session.error", error={"type": "model_rate_limited_error",
                                           "message": "slow down",
                                           "retry_status": {"type": "retrying"}})
    result = follow([RUNNING, retrying, message("ok"),
                     sse("session.status_idle", stop_reason={"type": "end_turn"})],
                    notices=notices)
    assert notices == ["session error model_rate_limited_error: slow down (retry_status "
                       "retrying)"]
    assert result.errors[0]["retry_status"] == "retrying"
    exhausted = sse("session.error", error={"type": "mcp_connection_failed_error",
                                            "message": "no route", "retry_status": "exhausted"})
    with pytest.raises(InvokeError) as caught:
        follow([RUNNING, exhausted])
    assert "mcp_connection_failed_error: no route (retry_status exhausted)" in (
        caught.value.message)
    assert "mcp_servers" in (caught.value.hint or "")


@pytest.mark.parametrize(("stop", "words"), [("retries_exhausted", "stopped with retries"),
                                             ("budget_reached", "budget")])
def test_idle_without_end_turn_or_pending_action_is_an_error(stop: str, words: str):
    with pytest.raises(InvokeError) as caught:
        follow([RUNNING, sse("session.status_idle", stop_reason={"type": stop})])
    assert words in caught.value.message + (caught.value.hint or "")


def test_requires_action_names_what_waits():
    tool = sse("agent.tool_use", id="sevt_tool", name="bash", input={"command": "ls"},
               evaluated_permission="ask")
    result = follow([RUNNING, tool, sse("session.status_idle", stop_reason={
        "type": "requires_action", "event_ids": ["sevt_tool"]})])
    assert (result.status, result.stop_reason) == ("requires_action", "requires_action")
    assert result.waiting == [{"event_id": "sevt_tool", "type": "agent.tool_use",
                               "name": "bash", "input": {"command": "ls"},
                               "evaluated_permission": "ask"}]
    assert result.to_dict()["session_id"] == "sesn_1"


def test_the_wait_for_the_turn_is_bounded():
    fake = FakeClock()

    def slow() -> Any:
        yield RUNNING
        while True:
            fake.sleep(30)
            yield PING

    result = AnthropicInvokeResult(url="u", session_id="sesn_1")
    with pytest.raises(InvokeError) as caught:
        _follow(slow(), result, set(), deadline=fake.clock.now() + 60, clock=fake.clock,
                on_delta=None, on_notice=None, hint="is a worker running?", hide=str)
    assert "did not finish its turn in time (still running)" in caught.value.message
    assert caught.value.hint == "is a worker running?"
