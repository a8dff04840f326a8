"""The Foundry contract server (tests/foundry_contract.py) behaves like the service it stands in
for, in both API generations, so the client's tests can trust it."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.foundry_contract import (
    GA,
    MERGE_PATCH,
    PREVIEW,
    RULES_PARAM,
    FoundryContract,
    _ga_round_trip_problems,
    check_ga_create_version,
    check_ga_definition,
    check_ga_patch_agent,
    check_preview_create_version,
    check_preview_definition,
    create_version_problems,
    merge_patch,
    preview_schema,
)

GA_BODY: dict[str, Any] = {
    "definition": {
        "kind": "hosted",
        "container_configuration": {"image": "myacr.azurecr.io/support-agent:0123abc"},
        "protocol_versions": [{"protocol": "responses", "version": "1.0.0"}],
        "cpu": "1",
        "memory": "2Gi",
        "environment_variables": {"LOG_LEVEL": "info"},
    },
    "description": "Answers support questions.",
    "metadata": {"team": "support"},
}
PREVIEW_BODY: dict[str, Any] = {
    "definition": {
        "kind": "hosted",
        "container_protocol_versions": [{"protocol": "responses", "version": "v1"}],
        "cpu": "1",
        "memory": "2Gi",
        "image": "myacr.azurecr.io/support-agent:0123abc",
        "environment_variables": {"LOG_LEVEL": "info"},
    },
    "metadata": {"team": "support"},
}


def changed(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``body`` with the dotted ``path`` set to ``value`` (``DROP`` deletes it)."""
    body = copy.deepcopy(body)
    *parents, last = path.split(".")
    target = body
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if value is DROP:
        del target[last]
    elif isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return body


DROP = object()


class Client:
    """httpx against a contract, with the bearer token and api-version filled in."""

    def __init__(self, contract: FoundryContract) -> None:
        self.contract = contract
        self.http = httpx.Client(
            base_url=contract.endpoint,
            headers={"Authorization": f"Bearer {contract.token}"},
            params={"api-version": contract.api},
            timeout=10,
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self.http, name)


@pytest.fixture
def ga(foundry) -> Client:
    return Client(foundry(api=GA, activation_polls=2))


@pytest.fixture
def preview(foundry) -> Client:
    return Client(foundry(api=PREVIEW, activation_polls=2))


@pytest.fixture
def container() -> Iterator[Upstream]:
    upstream = Upstream()
    yield upstream
    upstream.server.shutdown()


class Upstream:
    """A stand-in agent container: POST /responses answers JSON, or SSE when streaming."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], dict[str, Any]]] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                upstream.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                if body.get("stream"):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    for kind in (
                        "response.created",
                        "response.output_text.delta",
                        "response.completed",
                    ):
                        self.wfile.write(f'event: {kind}\ndata: {{"type": "{kind}"}}\n\n'.encode())
                        self.wfile.flush()
                    self.close_connection = True
                    return
                data = json.dumps({"object": "response", "output_text": f"echo: {body['input']}"})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data.encode())

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    assert {"code", "message", "param", "type"} <= set(body["error"]), body
    return body["error"]


def create(client: Client, name: str = "support-agent", body: Any = None) -> httpx.Response:
    body = body if body is not None else (GA_BODY if client.contract.api == GA else PREVIEW_BODY)
    return client.post(f"/agents/{name}/versions", json=body)


# --- the SDK cross-checks -------------------------------------------------------------------------


def test_reference_ga_body_passes_the_sdk_and_service_checks() -> None:
    check_ga_create_version(GA_BODY)
    check_ga_definition(GA_BODY["definition"])


def test_every_body_the_preview_sdk_sent_passes_the_preview_checks() -> None:
    recorded = preview_schema()["sdk_requests"]
    bodies = [recorded[name][0]["json"] for name in ("create_version", "create_version_minimal")]
    for body in bodies:
        check_preview_create_version(body)
        check_preview_definition(body["definition"])
    assert preview_schema()["sdk"] == {"package": "azure-ai-projects", "version": "2.0.0b3"}


GA_INVALID = [
    ("definition.cpu", DROP, "definition.cpu", "missing_required_parameter"),
    ("definition.cpu", 1, "definition.cpu", "invalid_type"),
    ("definition.image", "myacr.azurecr.io/a:1", "definition.image", "unknown_parameter"),
    (
        "definition.container_protocol_versions",
        [{"protocol": "responses", "version": "v1"}],
        "definition.container_protocol_versions",
        "unknown_parameter",
    ),
    ("definition.tools", [], "definition.tools", "unknown_parameter"),
    ("definition.kind", "prompt", "definition.kind", "invalid_value"),
    (
        "definition.container_configuration.image",
        DROP,
        "definition.container_configuration.image",
        "missing_required_parameter",
    ),
    (
        "definition.container_configuration.registry",
        "x",
        "definition.container_configuration.registry",
        "unknown_parameter",
    ),
    (
        "definition.container_configuration.image",
        "Not An Image",
        "definition.container_configuration.image",
        "invalid_value",
    ),
    (
        "definition.container_configuration",
        DROP,
        "definition.container_configuration",
        "missing_required_parameter",
    ),
    (
        "definition.code_configuration",
        {"runtime": "python_3_12", "entry_point": ["main.py"], "dependency_resolution": "bundled"},
        "definition.code_configuration",
        "invalid_value",
    ),
    (
        "definition.protocol_versions",
        [{"protocol": "grpc", "version": "1.0.0"}],
        "definition.protocol_versions[0].protocol",
        "invalid_value",
    ),
    (
        "definition.protocol_versions",
        {"responses": "1.0.0"},
        "definition.protocol_versions",
        "invalid_type",
    ),
    (
        "definition.protocol_versions",
        [{"protocol": "responses"}],
        "definition.protocol_versions[0].version",
        "missing_required_parameter",
    ),
    (
        "definition.environment_variables",
        {"1BAD": "x"},
        "definition.environment_variables.1BAD",
        "invalid_value",
    ),
    (
        "definition.environment_variables",
        {"LOG-LEVEL": "x"},
        "definition.environment_variables.LOG-LEVEL",
        "invalid_value",
    ),
    (
        "definition.environment_variables",
        {"WORKERS": 4},
        "definition.environment_variables.WORKERS",
        "invalid_type",
    ),
    ("definition.cpu", "3", "definition.cpu", "invalid_value"),
    ("definition.memory", "4Gi", "definition.memory", "invalid_value"),
    ("definition.memory", "2G", "definition.memory", "invalid_value"),
    ("metadata", {f"k{i}": "v" for i in range(17)}, "metadata", "invalid_value"),
    ("metadata", {"k" * 65: "v"}, "metadata." + "k" * 65, "invalid_value"),
    ("metadata", {"team": "v" * 513}, "metadata.team", "invalid_value"),
    ("metadata", {"team": 7}, "metadata.team", "invalid_type"),
    ("description", "d" * 513, "description", "invalid_value"),
    ("name", "support-agent", "name", "unknown_parameter"),
    ("definition", DROP, "definition", "missing_required_parameter"),
]


@pytest.mark.parametrize(("path", "value", "param", "code"), GA_INVALID)
def test_ga_checks_name_each_invalid_field(path: str, value: Any, param: str, code: str) -> None:
    problems = create_version_problems(GA, changed(GA_BODY, path, value))
    assert (param, code) in [(p.param, p.code) for p in problems], problems
    with pytest.raises(AssertionError, match=param.replace("[", r"\[").split(".")[-1]):
        check_ga_create_version(changed(GA_BODY, path, value))


PREVIEW_INVALID = [
    ("definition.image", DROP, "definition.image", "missing_required_parameter"),
    (
        "definition.container_protocol_versions",
        DROP,
        "definition.container_protocol_versions",
        "missing_required_parameter",
    ),
    (
        "definition.container_configuration",
        {"image": "myacr.azurecr.io/a:1"},
        "definition.container_configuration",
        "unknown_parameter",
    ),
    (
        "definition.protocol_versions",
        [{"protocol": "responses", "version": "1.0.0"}],
        "definition.protocol_versions",
        "unknown_parameter",
    ),
    (
        "definition.container_protocol_versions",
        [{"protocol": "activity", "version": "v1"}],
        "definition.container_protocol_versions[0].protocol",
        "invalid_value",
    ),
    ("definition.tools", [{"type": "teleport"}], "definition.tools[0].type", "invalid_value"),
    (
        "definition.tools",
        [{"type": "function", "parameters": {}}],
        "definition.tools[0].name",
        "missing_required_parameter",
    ),
    ("definition.memory", "1Gi", "definition.memory", "invalid_value"),
    (
        "definition.environment_variables",
        {"A B": "x"},
        "definition.environment_variables.A B",
        "invalid_value",
    ),
    ("draft", True, "draft", "unknown_parameter"),
    ("metadata", {f"k{i}": "v" for i in range(17)}, "metadata", "invalid_value"),
]


@pytest.mark.parametrize(("path", "value", "param", "code"), PREVIEW_INVALID)
def test_preview_checks_name_each_invalid_field(
    path: str, value: Any, param: str, code: str
) -> None:
    problems = create_version_problems(PREVIEW, changed(PREVIEW_BODY, path, value))
    assert (param, code) in [(p.param, p.code) for p in problems], problems


def test_preview_tools_are_checked_against_the_2_0_0b3_tool_models() -> None:
    tool = {"type": "function", "name": "lookup", "parameters": {"type": "object"}, "strict": True}
    check_preview_definition(changed(PREVIEW_BODY, "definition.tools", [tool])["definition"])


def test_sdk_round_trip_finds_unknown_read_only_and_coerced_fields() -> None:
    definition = copy.deepcopy(GA_BODY["definition"])
    definition["cpu"] = 1
    definition["surprise"] = True
    definition["code_configuration"] = {
        "runtime": "python_3_12",
        "entry_point": ["main.py"],
        "dependency_resolution": "bundled",
        "content_hash": "abc",
    }
    found = {(p.param, p.code) for p in _ga_round_trip_problems(definition)}
    assert found == {
        ("definition.cpu", "invalid_type"),
        ("definition.surprise", "unknown_parameter"),
        ("definition.code_configuration.content_hash", "unknown_parameter"),
    }


def test_sdk_round_trip_rejects_a_kind_that_is_not_hosted() -> None:
    problems = _ga_round_trip_problems({"kind": "prompt", "model": "gpt-4o"})
    assert [(p.param, p.code) for p in problems] == [("definition.kind", "invalid_value")]


def test_check_functions_raise_assertion_errors_naming_the_field() -> None:
    with pytest.raises(AssertionError, match=r"definition\.memory"):
        check_ga_definition(changed(GA_BODY, "definition.memory", "8Gi")["definition"])
    with pytest.raises(AssertionError, match=r"definition\.image: .*required"):
        check_preview_definition(changed(PREVIEW_BODY, "definition.image", DROP)["definition"])


# --- GA: versions and their status ----------------------------------------------------------------


def test_ga_version_is_creating_for_activation_polls_gets_then_active(ga: Client) -> None:
    created = create(ga)
    assert created.status_code == 200
    assert created.json()["status"] == "creating"
    assert created.json()["version"] == "1"
    statuses = [ga.get("/agents/support-agent/versions/1").json()["status"] for _ in range(4)]
    assert statuses == ["creating", "creating", "active", "active"]
    assert ga.contract.violations == []


def test_ga_version_answer_echoes_the_request(ga: Client) -> None:
    version = create(ga).json()
    assert version["object"] == "agent.version"
    assert version["id"] == "support-agent:1"
    assert version["definition"] == GA_BODY["definition"]
    assert version["metadata"] == {"team": "support"}
    assert version["description"] == GA_BODY["description"]
    assert isinstance(version["created_at"], int)


def test_ga_failed_version_carries_the_reason(ga: Client) -> None:
    ga.contract.version_outcome("failed", error="image_pull")
    create(ga)
    version = [ga.get("/agents/support-agent/versions/1").json() for _ in range(3)][-1]
    assert version["status"] == "failed"
    assert version["error"]["code"] == "ImageError"
    assert "myacr.azurecr.io/support-agent:0123abc" in version["error"]["message"]


def test_ga_outcome_applies_to_the_next_version_only(foundry) -> None:
    client = Client(foundry(api=GA, activation_polls=0))
    client.contract.version_outcome("failed", error={"code": "X", "message": "custom"})
    assert create(client).json()["status"] == "failed"
    assert create(client).json()["status"] == "active"


def test_ga_invalid_body_gets_400_naming_the_field(ga: Client) -> None:
    response = create(ga, body=changed(GA_BODY, "definition.image", "myacr.azurecr.io/a:1"))
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "unknown_parameter"
    assert error["param"] == "definition.image"
    assert error["type"] == "invalid_request_error"
    assert [d["param"] for d in error["details"]] == ["definition.image"]
    assert ga.contract.agents == {}


@pytest.mark.parametrize(
    "body", [{"definition": "hosted"}, [GA_BODY], {"definition": {"cpu": "1"}}, "text"]
)
def test_ga_malformed_bodies_get_400_not_a_crash(ga: Client, body: Any) -> None:
    response = create(ga, body=body)
    assert response.status_code == 400
    assert error_of(response)["type"] == "invalid_request_error"
    assert ga.contract.violations == []


def test_ga_body_that_is_not_json_is_400(ga: Client) -> None:
    response = ga.post(
        "/agents/a/versions", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert error_of(response)["code"] == "invalid_json"


def test_ga_agent_name_rule_is_enforced(ga: Client) -> None:
    for name in ("-leading-hyphen", "a" * 64, "under_score"):
        response = create(ga, name=name)
        assert response.status_code == 400, name
        assert error_of(response)["param"] == "agent_name"
    assert create(ga, name="A" + "b" * 61 + "9").status_code == 200


def test_ga_list_pages_with_a_cursor_newest_first(ga: Client) -> None:
    for _ in range(3):
        create(ga)
    first = ga.get("/agents/support-agent/versions", params={"limit": 2}).json()
    assert [v["version"] for v in first["data"]] == ["3", "2"]
    assert first["has_more"] is True
    rest = ga.get(
        "/agents/support-agent/versions", params={"limit": 2, "after": first["last_id"]}
    ).json()
    assert [v["version"] for v in rest["data"]] == ["1"]
    assert rest["has_more"] is False
    end = ga.get("/agents/support-agent/versions", params={"after": rest["last_id"]}).json()
    assert end == {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }


def test_ga_list_does_not_advance_the_status(ga: Client) -> None:
    create(ga)
    for _ in range(5):
        listed = ga.get("/agents/support-agent/versions").json()
    assert listed["data"][0]["status"] == "creating"


def test_ga_delete_with_active_sessions_is_409_until_force(ga: Client) -> None:
    create(ga)
    ga.contract.add_session("support-agent", "1")
    refused = ga.delete("/agents/support-agent/versions/1")
    assert refused.status_code == 409
    assert error_of(refused)["param"] == "force"
    assert "force=true" in error_of(refused)["message"]
    deleted = ga.delete("/agents/support-agent/versions/1", params={"force": "true"})
    assert deleted.json() == {
        "object": "agent.version.deleted",
        "name": "support-agent",
        "version": "1",
        "deleted": True,
    }
    assert ga.get("/agents/support-agent/versions/1").status_code == 404


def test_ga_delete_agent_is_409_with_sessions_until_force(ga: Client) -> None:
    create(ga)
    ga.contract.add_session("support-agent")
    assert ga.delete("/agents/support-agent").status_code == 409
    deleted = ga.delete("/agents/support-agent", params={"force": "true"})
    assert deleted.json() == {"object": "agent.deleted", "name": "support-agent", "deleted": True}
    assert ga.get("/agents/support-agent").status_code == 404


def test_ga_delete_without_sessions_needs_no_force(ga: Client) -> None:
    create(ga)
    create(ga)
    assert ga.delete("/agents/support-agent/versions/1").status_code == 200
    agent = ga.get("/agents/support-agent").json()
    assert agent["versions"]["latest"]["version"] == "2"
    listed = ga.get("/agents", params={"kind": "hosted"}).json()
    assert [a["name"] for a in listed["data"]] == ["support-agent"]


def test_ga_unknown_agent_and_version_are_404(ga: Client) -> None:
    assert error_of(ga.get("/agents/nobody/versions/1"))["code"] == "not_found"
    create(ga)
    assert ga.get("/agents/support-agent/versions/9").status_code == 404


# --- requests the service refuses before looking at them ------------------------------------------


def test_wrong_token_is_401_in_the_service_shape(ga: Client) -> None:
    response = ga.post(
        "/agents/a/versions", json=GA_BODY, headers={"Authorization": "Bearer stolen"}
    )
    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthorized"
    assert "https://ai.azure.com/.default" in error_of(response)["message"]


def test_missing_api_version_is_400(ga: Client) -> None:
    response = httpx.get(
        f"{ga.contract.endpoint}/agents/a/versions",
        headers={"Authorization": f"Bearer {ga.contract.token}"},
    )
    assert response.status_code == 400
    assert error_of(response)["message"] == "Missing required query parameter: api-version"


def test_other_generation_api_version_is_400_and_a_violation(ga: Client) -> None:
    response = ga.get("/agents/a/versions", params={"api-version": PREVIEW})
    assert response.status_code == 400
    assert error_of(response)["param"] == "api-version"
    assert ga.contract.violations == [f"GET /agents/a/versions: api-version '{PREVIEW}'"]


def test_preview_container_routes_do_not_exist_in_v1(ga: Client) -> None:
    create(ga)
    response = ga.post("/agents/support-agent/versions/1/containers/default:start", json={})
    assert response.status_code == 404
    assert ga.contract.violations


def test_non_json_content_type_is_415(ga: Client) -> None:
    response = ga.post(
        "/agents/a/versions",
        content=json.dumps(GA_BODY),
        headers={"Content-Type": "text/plain"},
    )
    assert response.status_code == 415


def test_preview_feature_header_gate_gives_the_real_403(foundry) -> None:
    client = Client(foundry(api=GA, require_features_header=True))
    refused = create(client)
    assert refused.status_code == 403
    assert error_of(refused)["code"] == "preview_feature_required"
    assert error_of(refused)["param"] == "Foundry-Features"
    assert "Foundry-Features: HostedAgents=V1Preview" in error_of(refused)["message"]
    accepted = client.post(
        "/agents/support-agent/versions",
        json=GA_BODY,
        headers={"Foundry-Features": "WorkflowAgents=V1Preview, HostedAgents=V1Preview"},
    )
    assert accepted.status_code == 200


# --- injected faults ------------------------------------------------------------------------------


def test_429_carries_retry_after_then_the_call_succeeds(ga: Client) -> None:
    ga.contract.fail(429, path_contains="/versions", method="POST", headers={"Retry-After": "3"})
    throttled = create(ga)
    assert throttled.status_code == 429
    assert throttled.headers["retry-after"] == "3"
    assert error_of(throttled)["code"] == "rate_limit_exceeded"
    assert create(ga).status_code == 200


def test_faults_match_method_and_path_and_count_down(ga: Client) -> None:
    ga.contract.fail(503, method="GET", path_contains="/versions/1", times=2)
    create(ga)
    assert [ga.get("/agents/support-agent/versions/1").status_code for _ in range(3)] == [
        503,
        503,
        200,
    ]
    ga.contract.fail(500)
    assert error_of(ga.get("/agents/support-agent"))["code"] == "server_error"


def test_a_fault_can_carry_any_body(ga: Client) -> None:
    ga.contract.fail(409, body={"error": {"code": "custom", "message": "m"}})
    assert create(ga).json() == {"error": {"code": "custom", "message": "m"}}


def test_fault_403_is_preview_feature_required(ga: Client) -> None:
    ga.contract.fail(403)
    assert error_of(create(ga))["code"] == "preview_feature_required"


# --- GA invocation through the agent endpoint -----------------------------------------------------

RESPONSES = "/agents/support-agent/endpoint/protocols/openai/responses"


def test_ga_invoke_forwards_to_the_container_and_opens_a_session(
    foundry, container: Upstream
) -> None:
    client = Client(foundry(api=GA, activation_polls=0))
    client.contract.forward_responses_to(container.url)
    create(client)
    answer = client.post(RESPONSES, json={"input": "hello"})
    assert answer.json() == {"object": "response", "output_text": "echo: hello"}
    headers, body = container.received[0]
    assert body == {"input": "hello"}
    assert headers["x-agent-session-id"].startswith("sess_")
    assert client.delete("/agents/support-agent/versions/1").status_code == 409


def test_ga_invoke_streams_server_sent_events(foundry, container: Upstream) -> None:
    client = Client(foundry(api=GA, activation_polls=0))
    client.contract.forward_responses_to(container.url)
    create(client)
    with client.stream("POST", RESPONSES, json={"input": "hi", "stream": True}) as response:
        assert response.headers["content-type"] == "text/event-stream"
        events = [line for line in response.iter_lines() if line.startswith("event:")]
    assert events == [
        "event: response.created",
        "event: response.output_text.delta",
        "event: response.completed",
    ]


def test_ga_invoke_needs_an_active_version(ga: Client, container: Upstream) -> None:
    ga.contract.forward_responses_to(container.url)
    assert ga.post(RESPONSES, json={"input": "x"}).status_code == 404
    create(ga)
    refused = ga.post(RESPONSES, json={"input": "x"})
    assert refused.status_code == 409
    assert "creating" in error_of(refused)["message"]
    assert container.received == []


def test_ga_endpoint_with_the_preview_api_version_is_404(ga: Client) -> None:
    create(ga)
    assert (
        ga.post(RESPONSES, json={"input": "x"}, params={"api-version": PREVIEW}).status_code == 404
    )


def test_ga_invoke_with_the_container_down_is_424(foundry) -> None:
    client = Client(foundry(api=GA, activation_polls=0))
    client.contract.forward_responses_to("http://127.0.0.1:9")
    create(client)
    assert error_of(client.post(RESPONSES, json={"input": "x"}))["code"] == "session_not_ready"


def test_the_current_sdk_drives_the_ga_contract_end_to_end(foundry, container: Upstream) -> None:
    from azure.ai.projects import AIProjectClient
    from azure.ai.projects import models as m
    from azure.core.credentials import AccessToken, AccessTokenInfo

    contract = foundry(api=GA, activation_polls=1)
    contract.forward_responses_to(container.url)

    class Credential:
        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            return AccessToken(contract.token, 4102444800)

        def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
            return AccessTokenInfo(contract.token, 4102444800)

    client = AIProjectClient(
        endpoint=contract.endpoint, credential=Credential(), allow_preview=True
    )
    plain = {"enforce_https": False}
    definition = m.HostedAgentDefinition(
        cpu="0.5",
        memory="1Gi",
        container_configuration=m.ContainerConfiguration(image="myacr.azurecr.io/a:1"),
        protocol_versions=[m.ProtocolVersionRecord(protocol="responses", version="1.0.0")],
    )
    version = client.agents.create_version("sdk-agent", definition=definition, **plain)
    assert version.status == "creating"
    assert client.agents.get_version("sdk-agent", "1", **plain).status == "creating"
    assert client.agents.get_version("sdk-agent", "1", **plain).status == "active"
    assert [v.version for v in client.agents.list_versions("sdk-agent", **plain)] == ["1"]
    openai = client.get_openai_client(agent_name="sdk-agent")
    openai.responses.create(input="from the sdk")
    assert container.received[-1][1]["input"] == "from the sdk"
    client.agents.delete_version("sdk-agent", "1", force=True, **plain)
    assert contract.violations == []


# --- GA: the agent endpoint (PATCH /agents/{name}) -----------------------------------------------


def rule(version: str, share: Any = 100, kind: str = "FixedRatio") -> dict[str, Any]:
    return {"type": kind, "agent_version": version, "traffic_percentage": share}


def selector(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"agent_endpoint": {"version_selector": {"version_selection_rules": list(rules)}}}


def patch(
    client: Client, body: Any, name: str = "support-agent", content_type: str = MERGE_PATCH
) -> httpx.Response:
    return client.patch(
        f"/agents/{name}", content=json.dumps(body), headers={"Content-Type": content_type}
    )


@pytest.fixture
def two_versions(foundry) -> Client:
    """An agent with versions 1 and 2, both active, and no endpoint settings yet."""
    client = Client(foundry(api=GA, activation_polls=0))
    create(client)
    create(client)
    return client


def test_merge_patch_follows_rfc_7396() -> None:
    target = {"a": "b", "c": {"d": "e", "f": "g"}, "list": [1, 2]}
    patch_ = {"a": "z", "c": {"f": None}, "list": [3], "new": {"x": 1}}
    assert merge_patch(target, patch_) == {"a": "z", "c": {"d": "e"}, "list": [3], "new": {"x": 1}}
    assert merge_patch({"a": 1}, {"a": None}) == {}
    assert merge_patch({"a": 1}, "replaced") == "replaced"


def test_ga_patch_sets_the_version_selector_and_get_returns_it(two_versions: Client) -> None:
    answer = patch(two_versions, selector(rule("1")))
    assert answer.status_code == 200, answer.text
    assert answer.json()["agent_endpoint"] == selector(rule("1"))["agent_endpoint"]
    agent = two_versions.get("/agents/support-agent").json()
    assert agent["agent_endpoint"] == selector(rule("1"))["agent_endpoint"]
    assert agent["versions"]["latest"]["version"] == "2"
    assert two_versions.contract.violations == []


def test_ga_agent_without_endpoint_settings_has_no_agent_endpoint(two_versions: Client) -> None:
    assert "agent_endpoint" not in two_versions.get("/agents/support-agent").json()


def test_ga_patch_merges_and_null_removes(two_versions: Client) -> None:
    protocols = {"agent_endpoint": {"protocol_configuration": {"responses": {}}}}
    assert patch(two_versions, protocols).status_code == 200
    assert patch(two_versions, selector(rule("2"))).status_code == 200
    endpoint = two_versions.get("/agents/support-agent").json()["agent_endpoint"]
    assert endpoint == {
        "protocol_configuration": {"responses": {}},
        **selector(rule("2"))["agent_endpoint"],
    }
    assert patch(two_versions, {"agent_endpoint": {"protocol_configuration": None}}).is_success
    endpoint = two_versions.get("/agents/support-agent").json()["agent_endpoint"]
    assert endpoint == selector(rule("2"))["agent_endpoint"]
    assert patch(two_versions, {"agent_endpoint": None}).is_success
    assert "agent_endpoint" not in two_versions.get("/agents/support-agent").json()


def test_ga_patch_replaces_the_rule_list_whole(two_versions: Client) -> None:
    patch(two_versions, selector(rule("1")))
    patch(two_versions, selector(rule("2")))
    endpoint = two_versions.get("/agents/support-agent").json()["agent_endpoint"]
    assert endpoint["version_selector"]["version_selection_rules"] == [rule("2")]


def test_ga_empty_patch_changes_nothing(two_versions: Client) -> None:
    patch(two_versions, selector(rule("1")))
    assert patch(two_versions, {}).json()["agent_endpoint"] == selector(rule("1"))["agent_endpoint"]


RULES = RULES_PARAM
PATCH_INVALID = {
    "a version's definition": (
        {"definition": GA_BODY["definition"]},
        "definition",
        "unknown_parameter",
    ),
    "a percentage as a string": (
        selector(rule("1", "100")),
        f"{RULES}[0].traffic_percentage",
        "invalid_type",
    ),
    "a rule without its percentage": (
        selector({"type": "FixedRatio", "agent_version": "1"}),
        f"{RULES}[0].traffic_percentage",
        "missing_required_parameter",
    ),
    "an unknown rule type": (
        selector(rule("1", kind="Weighted")),
        f"{RULES}[0].type",
        "invalid_value",
    ),
    "a version that does not exist": (
        selector(rule("9")),
        f"{RULES}[0].agent_version",
        "invalid_value",
    ),
    "a percentage over 100": (
        selector(rule("1", 150)),
        f"{RULES}[0].traffic_percentage",
        "invalid_value",
    ),
    "percentages short of 100": (selector(rule("1", 90)), RULES, "invalid_value"),
    "a traffic split": (selector(rule("1", 50), rule("2", 50)), RULES, "invalid_value"),
    "the same version twice": (
        selector(rule("1", 0), rule("1", 100)),
        f"{RULES}[1].agent_version",
        "invalid_value",
    ),
    "no rules": (selector(), RULES, "invalid_value"),
    "a selector whose rules are deleted (null)": (
        {"agent_endpoint": {"version_selector": {"version_selection_rules": None}}},
        RULES,
        "missing_required_parameter",
    ),
    "a read-only field": (
        {"agent_endpoint": {"publish_approval_status": "approved"}},
        "agent_endpoint.publish_approval_status",
        "unknown_parameter",
    ),
    "protocols, renamed protocol_configuration in azure-ai-projects 2.3": (
        {"agent_endpoint": {"protocols": ["responses"]}},
        "agent_endpoint.protocols",
        "unknown_parameter",
    ),
    "an endpoint that is not an object": (
        {"agent_endpoint": ["responses"]},
        "agent_endpoint",
        "invalid_type",
    ),
    "a body that is not an object": ([selector(rule("1"))], "body", "invalid_type"),
}


@pytest.mark.parametrize("case", sorted(PATCH_INVALID))
def test_ga_patch_rejects_an_invalid_body_naming_the_field(two_versions: Client, case: str) -> None:
    body, param, code = PATCH_INVALID[case]
    patch(two_versions, selector(rule("1")))
    refused = patch(two_versions, body)
    assert refused.status_code == 400, refused.text
    found = {(d["param"], d["code"]) for d in error_of(refused)["details"]}
    assert (param, code) in found, found
    endpoint = two_versions.get("/agents/support-agent").json()["agent_endpoint"]
    assert endpoint == selector(rule("1"))["agent_endpoint"]  # nothing was applied


def test_ga_patch_accepts_latest_and_a_zero_share_rule(two_versions: Client) -> None:
    assert patch(two_versions, selector(rule("@latest"))).status_code == 200
    assert patch(two_versions, selector(rule("1", 0), rule("2", 100))).status_code == 200


def test_ga_patch_wants_a_merge_patch(two_versions: Client) -> None:
    assert patch(two_versions, selector(rule("1")), content_type="text/plain").status_code == 415
    assert two_versions.contract.violations == []
    # azd sends application/json; the service takes it, a correct client does not send it
    assert patch(two_versions, selector(rule("1")), content_type="application/json").is_success
    assert two_versions.contract.violations == [
        "PATCH /agents/support-agent: Content-Type application/json, not "
        "application/merge-patch+json"
    ]


def test_ga_patch_of_an_unknown_agent_is_404(ga: Client) -> None:
    assert error_of(patch(ga, selector(rule("1")), name="nobody"))["code"] == "not_found"


def test_ga_patch_to_a_version_still_creating_is_a_violation(ga: Client) -> None:
    create(ga)
    assert patch(ga, selector(rule("1"))).status_code == 200
    assert ga.contract.violations == [
        "PATCH /agents/support-agent: traffic sent to version 1 while it is creating (wait "
        "until it is active)"
    ]


def test_ga_patch_behind_the_endpoint_preview_header_gives_the_real_403(foundry) -> None:
    client = Client(foundry(api=GA, activation_polls=0, require_endpoint_header=True))
    create(client)
    refused = patch(client, selector(rule("1")))
    assert refused.status_code == 403
    assert error_of(refused)["code"] == "preview_feature_required"
    assert "Foundry-Features: AgentEndpoints=V1Preview" in error_of(refused)["message"]
    accepted = client.patch(
        "/agents/support-agent",
        content=json.dumps(selector(rule("1"))),
        headers={"Content-Type": MERGE_PATCH, "Foundry-Features": "AgentEndpoints=V1Preview"},
    )
    assert accepted.status_code == 200


def test_check_ga_patch_agent_names_the_field() -> None:
    check_ga_patch_agent(selector(rule("{version}")))
    with pytest.raises(AssertionError, match=r"traffic_percentage"):
        check_ga_patch_agent(selector(rule("1", "all")))


def test_ga_invoke_follows_the_version_selector(two_versions: Client, container: Upstream) -> None:
    contract = two_versions.contract
    contract.forward_responses_to(container.url)

    def served_now() -> str | None:
        assert two_versions.post(RESPONSES, json={"input": "x"}).status_code == 200
        return contract.served()[-1]

    assert served_now() == "2"  # no selector: the latest version
    patch(two_versions, selector(rule("1")))
    assert served_now() == "1"
    patch(two_versions, selector(rule("2", 0), rule("1", 100)))
    assert served_now() == "1"
    patch(two_versions, selector(rule("@latest")))
    assert served_now() == "2"
    patch(two_versions, {"agent_endpoint": None})
    assert served_now() == "2"
    assert contract.violations == []


def test_ga_invoke_of_a_selected_version_that_is_gone_is_404(
    two_versions: Client, container: Upstream
) -> None:
    two_versions.contract.forward_responses_to(container.url)
    patch(two_versions, selector(rule("1")))
    assert two_versions.delete("/agents/support-agent/versions/1").status_code == 200
    refused = two_versions.post(RESPONSES, json={"input": "x"})
    assert refused.status_code == 404
    assert "version selector" in error_of(refused)["message"]
    assert two_versions.contract.served() == [None]


def test_the_sdk_update_details_routes_the_traffic(foundry, container: Upstream) -> None:
    from azure.ai.projects import AIProjectClient
    from azure.ai.projects import models as m
    from azure.core.credentials import AccessToken, AccessTokenInfo

    contract = foundry(api=GA, activation_polls=0)
    contract.forward_responses_to(container.url)
    create(Client(contract), name="sdk-agent")
    create(Client(contract), name="sdk-agent")

    class Credential:
        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            return AccessToken(contract.token, 4102444800)

        def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
            return AccessTokenInfo(contract.token, 4102444800)

    client = AIProjectClient(endpoint=contract.endpoint, credential=Credential())
    endpoint = m.AgentEndpointConfig(
        version_selector=m.VersionSelector(
            version_selection_rules=[
                m.FixedRatioVersionSelectionRule(agent_version="1", traffic_percentage=100)
            ]
        )
    )
    updated = client.agents.update_details(
        "sdk-agent", agent_endpoint=endpoint, enforce_https=False
    )
    assert updated.agent_endpoint.version_selector.version_selection_rules[0].agent_version == "1"
    (sent,) = contract.calls("PATCH")
    assert sent.headers["content-type"] == MERGE_PATCH
    read = client.agents.get("sdk-agent", enforce_https=False)
    assert read.agent_endpoint.version_selector.version_selection_rules[0].traffic_percentage == 100
    client.get_openai_client(agent_name="sdk-agent").responses.create(input="from the sdk")
    assert contract.served() == ["1"]
    assert contract.violations == []


# --- the preview generation -----------------------------------------------------------------------


def test_preview_replays_of_the_2_0_0b3_sdk_requests_are_accepted(preview: Client) -> None:
    recorded = preview_schema()["sdk_requests"]
    order = ["create_version", "create_version_minimal", "get_version", "list_versions"]
    order += ["delete_version", "delete_agent"]
    for name in order:
        for request in recorded[name]:
            response = preview.request(
                request["method"],
                request["path"],
                params=request["query"],
                json=request["json"],
            )
            assert response.status_code == 200, (name, response.text)
    assert preview.contract.violations == []
    assert preview.contract.agents == {}


def test_preview_versions_have_no_status(preview: Client) -> None:
    version = create(preview).json()
    assert "status" not in version
    assert version["definition"] == PREVIEW_BODY["definition"]


START = "/agents/support-agent/versions/1/containers/default:start"


def test_preview_start_is_an_operation_polled_to_success(preview: Client) -> None:
    create(preview)
    started = preview.post(START, json={"min_replicas": 1, "max_replicas": 3})
    assert started.status_code == 202
    operation = started.json()
    assert operation["status"] == "NotStarted"
    assert operation["agent_version_id"] == "support-agent:1"
    assert operation["container"]["status"] == "Starting"
    location = started.headers["operation-location"]
    assert location.endswith(
        f"/agents/support-agent/operations/{operation['id']}?api-version={PREVIEW}"
    )
    polled = [preview.get(location).json() for _ in range(3)]
    assert [p["status"] for p in polled] == ["InProgress", "InProgress", "Succeeded"]
    container = preview.get("/agents/support-agent/versions/1/containers/default").json()
    assert (container["status"], container["min_replicas"], container["max_replicas"]) == (
        "Running",
        1,
        3,
    )


def test_preview_failed_start_reports_the_error(preview: Client) -> None:
    preview.contract.version_outcome("failed", error="probe")
    create(preview)
    location = preview.post(START, json={}).headers["operation-location"]
    final = [preview.get(location).json() for _ in range(3)][-1]
    assert final["status"] == "Failed"
    assert final["error"]["code"] == "ContainerProbesFailed"
    assert set(final["error"]) == {"code", "type", "message"}
    assert final["container"]["status"] == "Failed"
    assert "readiness" in final["container"]["error_message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"minReplicas": 1, "maxReplicas": 1}, "minReplicas"),
        ({"min_replicas": 2, "max_replicas": 1}, "max_replicas"),
        ({"min_replicas": -1, "max_replicas": 1}, "min_replicas"),
        ({"min_replicas": "1", "max_replicas": 1}, "min_replicas"),
    ],
)
def test_preview_start_rejects_bad_replica_bodies(preview: Client, body: dict, param: str) -> None:
    create(preview)
    response = preview.post(START, json=body)
    assert response.status_code == 400
    assert error_of(response)["param"] == param


def test_preview_start_of_a_running_container_is_a_no_op(foundry) -> None:
    client = Client(foundry(api=PREVIEW, activation_polls=0))
    create(client)
    assert client.post(START, json={}).json()["status"] == "Succeeded"
    again = client.post(START, json={"min_replicas": 5, "max_replicas": 9}).json()
    assert again["status"] == "Succeeded"
    assert again["container"]["max_replicas"] == 1


def test_preview_operations_are_listed(preview: Client) -> None:
    create(preview)
    started = preview.post(START, json={}).json()
    listed = preview.get("/agents/support-agent/operations").json()
    assert [o["id"] for o in listed["data"]] == [started["id"]]
    per_version = preview.get("/agents/support-agent/versions/1/containers/default/operations")
    assert [o["id"] for o in per_version.json()["data"]] == [started["id"]]


def test_preview_invoke_uses_the_agent_key_and_a_running_container(
    foundry, container: Upstream
) -> None:
    client = Client(foundry(api=PREVIEW, activation_polls=0))
    client.contract.forward_responses_to(container.url)
    create(client)
    reference = {"type": "agent_reference", "name": "support-agent"}
    assert (
        client.post("/openai/responses", json={"input": "x", "agent": reference}).status_code == 409
    )
    client.post(START, json={})
    answered = client.post("/openai/responses", json={"input": "hi", "agent": reference})
    assert answered.json()["output_text"] == "echo: hi"
    assert container.received[-1][1]["agent"] == reference


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        (
            {"input": "x", "agent_reference": {"type": "agent_reference", "name": "a"}},
            400,
            "agent_reference",
        ),
        ({"input": "x"}, 400, "agent"),
        ({"input": "x", "agent": {"name": "support-agent"}}, 400, "agent.type"),
        ({"input": "x", "agent": {"type": "agent_reference", "name": "nobody"}}, 404, "agent_name"),
    ],
)
def test_preview_invoke_rejects_bad_agent_references(
    preview: Client, body: dict, status: int, param: str
) -> None:
    create(preview)
    response = preview.post("/openai/responses", json=body)
    assert response.status_code == status
    assert error_of(response)["param"] == param


def test_preview_replay_of_the_sdk_invoke_reaches_the_container(
    foundry, container: Upstream
) -> None:
    client = Client(foundry(api=PREVIEW, activation_polls=0))
    client.contract.forward_responses_to(container.url)
    create(client)
    client.post(START, json={})
    for name in ("invoke_responses", "invoke_responses_pinned_version"):
        request = preview_schema()["sdk_requests"][name][0]
        response = client.post(request["path"], params=request["query"], json=request["json"])
        assert response.status_code == 200, response.text
    assert len(container.received) == 2


def test_preview_force_is_not_a_parameter(preview: Client) -> None:
    create(preview)
    assert (
        preview.delete("/agents/support-agent/versions/1", params={"force": "true"}).status_code
        == 200
    )
    assert preview.contract.violations == [
        f"/agents/support-agent/versions/1: `force` is not a parameter of {PREVIEW}"
    ]


def test_preview_server_rejects_the_ga_shape(preview: Client) -> None:
    response = create(preview, body=GA_BODY)
    assert response.status_code == 400
    params = [d["param"] for d in error_of(response)["details"]]
    assert "definition.container_configuration" in params
    assert "definition.image" in params


def test_requests_are_recorded_relative_to_the_project(ga: Client) -> None:
    create(ga)
    [recorded] = ga.contract.requests
    assert (recorded.method, recorded.path, recorded.query) == (
        "POST",
        "/agents/support-agent/versions",
        {"api-version": GA},
    )
    assert recorded.json == GA_BODY
    assert recorded.status == 200
    assert recorded.headers["authorization"] == f"Bearer {ga.contract.token}"
    assert ga.contract.env == {"AZURE_AI_ACCESS_TOKEN": ga.contract.token}
    assert ga.contract.endpoint.endswith("/api/projects/test-project")
