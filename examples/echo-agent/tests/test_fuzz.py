"""Fuzzing: generated requests, never a 5xx, never a hang, every error in the OpenAI shape.

- schemathesis generates requests for every operation of the server's own OpenAPI document
  (``GET /openapi.json``, src/echo_agent/openapi.py) and checks each answer against it;
- hypothesis generates JSON bodies (any JSON, Responses-shaped bodies with wrong values, raw
  bytes, lone surrogates), headers, and structured inputs for an agent.yaml whose templates use
  every Handlebars construct.

FUZZ_EXAMPLES sets the examples of each hypothesis test (default 100: seconds; schemathesis
gets a fifteenth of it, at least 20, per operation). The toolkit's CI runs 1500 (about a minute,
ten thousand requests); raise it for a long run: ``FUZZ_EXAMPLES=10000 pytest -s
tests/test_fuzz.py``. Each test counts its requests; ``pytest -s`` prints the counts. Needs
``hypothesis`` and ``schemathesis`` (skipped without them).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import threading
import time
from typing import Any

import httpx
import pytest

hypothesis = pytest.importorskip("hypothesis")
schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from echo_agent.app import create_app  # noqa: E402
from echo_agent.openapi import document  # noqa: E402
from echo_agent.settings import Settings  # noqa: E402

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "100"))
HANG = 10.0  # seconds: an answer slower than this is a hang
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))
SCHEMA_FUZZ = settings(FUZZ, max_examples=max(EXAMPLES // 15, 20))
REQUESTS: dict[str, int] = {}  # test name: requests made, printed at the end


@pytest.fixture(scope="module", autouse=True)
def report_counts():
    yield
    total = sum(REQUESTS.values())
    lines = [f"  {name}: {count}" for name, count in REQUESTS.items()]
    print(f"\nfuzz requests: {total} (FUZZ_EXAMPLES={EXAMPLES})", *lines, sep="\n")


def count(name: str, n: int = 1) -> None:
    REQUESTS[name] = REQUESTS.get(name, 0) + n


# --- the checks every answer passes --------------------------------------------------------------


def check_answer(status: int, headers: dict[str, str], body: bytes) -> None:
    """No 5xx (but the documented 502: the echo model's answer is not the JSON a
    text.format asked for), errors in the OpenAI shape, streams ending in [DONE]."""
    if status == 502:
        assert json.loads(body)["error"]["code"] == "invalid_model_output", body[:500]
    else:
        assert status < 500, f"{status}: {body[:500]!r}"
    if status >= 400:
        assert headers.get("content-type", "").startswith("application/json"), headers
        error = json.loads(body)["error"]
        assert set(error) == {"message", "type", "param", "code"}, error
        assert isinstance(error["message"], str) and error["message"]
        assert isinstance(error["type"], str)
        return
    if headers.get("content-type", "").startswith("text/event-stream"):
        assert body.endswith(b"data: [DONE]\n\n"), body[-200:]
        for block in body.decode().split("\n\n"):
            data = [line[6:] for line in block.split("\n") if line.startswith("data: ")]
            if data and data[0] != "[DONE]":
                assert "type" in json.loads(data[0])
    elif status not in (204, 307):
        json.loads(body)


# --- an in-process caller: raw ASGI, one event loop, a timeout per request ----------------------


class Caller:
    """Calls the app's ASGI interface directly (no sockets): tens of microseconds a request."""

    def __init__(self, app) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()

    def close(self) -> None:
        self.loop.close()

    def __call__(self, method: str, path: str, body: bytes = b"",
                 headers: list[tuple[bytes, bytes]] | None = None) -> tuple[int, dict, bytes]:
        return self.loop.run_until_complete(
            asyncio.wait_for(self._call(method, path, body, headers or []), HANG)
        )

    async def _call(self, method, path, body, headers):
        path, _, query = path.partition("?")
        scope = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1", "method": method, "scheme": "http", "path": path,
            "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
            "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8088),
            "headers": [(b"content-length", str(len(body)).encode()), *headers],
        }
        sent = False
        done = asyncio.Event()
        answer: dict[str, Any] = {"body": []}

        async def receive():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message):
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                answer["headers"] = {k.decode("latin-1"): v.decode("latin-1")
                                     for k, v in message.get("headers", [])}
            elif message["type"] == "http.response.body":
                answer["body"].append(message.get("body", b""))
                if not message.get("more_body", False):
                    done.set()

        await self.app(scope, receive, send)
        done.set()
        return answer["status"], answer["headers"], b"".join(answer["body"])



MANIFEST = """\
instructions: |
  Hello {{userName}}.{{#if vip}} A VIP.{{else}} A guest.{{/if}}
  {{#unless quiet}}Chatty.{{/unless}}
  Topics: {{#each topics}}{{this}}{{#unless @last}}, {{/unless}}{{/each}}. Level {{level}}.
structured_inputs:
  userName: {description: "The user's name", required: true, schema: {type: string}}
  vip: {schema: {type: boolean}, default_value: false}
  quiet: {schema: {type: boolean}}
  topics: {schema: {type: array}, default_value: []}
  level: {schema: {type: number}, default_value: 1}
"""



@pytest.fixture(scope="module")
def caller():
    app = create_app(Settings(model_provider="echo", model_name="echo-1"))
    caller = Caller(app)
    yield caller
    caller.close()


@pytest.fixture(scope="module")
def templated_caller(tmp_path_factory):
    path = tmp_path_factory.mktemp("manifest") / "agent.yaml"
    path.write_text(MANIFEST, encoding="utf-8")
    settings_ = Settings.from_env({"AGENT_MANIFEST": str(path), "MODEL_PROVIDER": "echo",
                                   "MODEL_NAME": "echo-1"})
    caller = Caller(create_app(settings_))
    yield caller
    caller.close()


JSON_TYPE = [(b"content-type", b"application/json")]

# --- hypothesis: bodies ---------------------------------------------------------------------------

# Text with everything JSON can carry, lone surrogates included.
any_text = st.text(st.characters(codec=None, categories=None), max_size=40)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | any_text
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(any_text, children, max_size=4),
    max_leaves=12,
)


def encode(value: Any, escaped: bool) -> bytes:
    """JSON text as clients send it: escaped (ensure_ascii: lone surrogates as ``\\ud800``)
    or not (then they go as UTF-8-encoded surrogates, which is not UTF-8)."""
    if escaped:
        return json.dumps(value).encode()
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


roles = st.sampled_from(["user", "system", "developer", "assistant", "tool", ""]) | any_text
parts = st.one_of(
    any_text,
    st.fixed_dictionaries({"type": st.sampled_from(
        ["input_text", "output_text", "refusal", "input_image", "input_file", "x"])},
        optional={"text": json_values, "refusal": json_values, "image_url": json_values}),
    json_values,
)
items = st.one_of(
    st.fixed_dictionaries({"role": roles, "content": any_text | st.lists(parts, max_size=3)},
                          optional={"type": st.sampled_from(["message", "weird"])}),
    st.fixed_dictionaries({"type": st.just("function_call")},
                          optional={"call_id": json_values, "name": json_values,
                                    "arguments": json_values}),
    st.fixed_dictionaries({"type": st.just("function_call_output")},
                          optional={"call_id": json_values, "output": json_values}),
    json_values,
)
formats = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["text", "json_object", "json_schema", "x"])},
                          optional={"name": json_values, "schema": json_values,
                                    "strict": json_values}),
    json_values,
)
ids = st.sampled_from(["resp_ok", "resp_1\n", "", "a" * 129, "../etc"]) | any_text
create_fields = {
    "input": any_text | st.lists(items, max_size=4) | json_values,
    "instructions": any_text | json_values,
    "model": any_text | json_values,
    "stream": st.booleans() | json_values,
    "store": st.booleans() | json_values,
    "background": st.booleans() | json_values,
    "previous_response_id": ids | json_values,
    "metadata": st.dictionaries(any_text, any_text, max_size=18) | json_values,
    "temperature": st.floats() | st.integers() | json_values,
    "top_p": st.floats() | st.integers() | json_values,
    "max_output_tokens": st.integers() | json_values,
    "tools": st.lists(json_values, max_size=3) | json_values,
    "tool_choice": json_values,
    "parallel_tool_calls": st.booleans() | json_values,
    "text": st.fixed_dictionaries({}, optional={"format": formats}) | json_values,
    "reasoning": json_values,
    "truncation": st.sampled_from(["auto", "disabled"]) | json_values,
    "user": json_values,
    "conversation": any_text | st.fixed_dictionaries({"id": json_values}) | json_values,
    "agent_reference": st.fixed_dictionaries(
        {"type": st.sampled_from(["agent_reference", "x"]), "name": json_values}) | json_values,
    "agent_session_id": json_values,
    "response_id": ids | json_values,
    "structured_inputs": st.dictionaries(any_text, json_values, max_size=4) | json_values,
}
create_bodies = st.fixed_dictionaries({}, optional=create_fields)
paths = st.sampled_from(["/responses", "/v1/responses", "/invocations"])


def test_any_json_body_is_answered_without_a_server_error(caller):
    @FUZZ
    @given(body=json_values, path=paths, escaped=st.booleans())
    def check(body, path, escaped):
        count("any JSON body")
        check_answer(*caller("POST", path, encode(body, escaped), JSON_TYPE))

    check()


def test_responses_shaped_bodies_are_answered_without_a_server_error(caller):
    @FUZZ
    @given(body=create_bodies, path=paths, escaped=st.booleans())
    def check(body, path, escaped):
        count("Responses-shaped body")
        check_answer(*caller("POST", path, encode(body, escaped), JSON_TYPE))

    check()


def test_raw_bytes_and_broken_text_are_answered_without_a_server_error(caller):
    prefixes = st.sampled_from([b"", b"{", b'{"input": "', b"\xef\xbb\xbf", b"\xff\xfe", b"["])

    @FUZZ
    @given(prefix=prefixes, rest=st.binary(max_size=200), path=paths)
    def check(prefix, rest, path):
        count("raw bytes")
        check_answer(*caller("POST", path, prefix + rest, JSON_TYPE))

    check()


header_values = st.binary(max_size=60).filter(lambda v: b"\r" not in v and b"\n" not in v)


def test_headers_are_answered_without_a_server_error(caller):
    names = st.sampled_from([b"x-agent-response-id", b"x-agent-session-id", b"x-request-id",
                             b"content-type", b"content-length", b"x-client-anything"])

    @FUZZ
    @given(headers=st.lists(st.tuples(names, header_values), max_size=4),
           stream=st.booleans(), path=paths)
    def check(headers, stream, path):
        count("headers")
        body = json.dumps({"input": "hi", "stream": stream}).encode()
        # content-length first as the caller sends it; the fuzzed ones after (the first wins)
        check_answer(*caller("POST", path, body, [*JSON_TYPE, *headers]))

    check()


def test_structured_inputs_are_answered_without_a_server_error(templated_caller):
    values = st.one_of(json_values, any_text, st.booleans(), st.lists(any_text, max_size=4),
                       st.integers(), st.floats())
    inputs = st.fixed_dictionaries({}, optional={
        "userName": values, "vip": values, "quiet": values, "topics": values, "level": values,
    }) | st.dictionaries(any_text, values, max_size=3) | json_values

    @FUZZ
    @given(inputs=inputs, instructions=st.none() | any_text, stream=st.booleans(),
           system=st.none() | any_text, escaped=st.booleans())
    def check(inputs, instructions, stream, system, escaped):
        count("structured inputs")
        body: dict[str, Any] = {"input": "hi", "structured_inputs": inputs, "stream": stream}
        if instructions is not None:
            body["instructions"] = instructions  # Handlebars syntax, or not
        if system is not None:
            body["input"] = [{"role": "system", "content": system},
                             {"role": "user", "content": "hi"}]
        check_answer(*templated_caller("POST", "/responses", encode(body, escaped),
                                          JSON_TYPE))

    check()


def test_stored_response_routes_are_answered_without_a_server_error(caller):
    first = b'{"input": [{"role": "user", "content": "hi"}]}'
    status, _, body = caller("POST", "/responses", first, JSON_TYPE)
    stored = json.loads(body)["id"]
    status, _, body = caller("POST", "/responses",
                             b'{"input": "hi", "background": true}', JSON_TYPE)
    background = json.loads(body)["id"]
    queries = st.dictionaries(
        st.sampled_from(["stream", "starting_after", "limit", "order", "after", "before", "x"]),
        st.sampled_from(["true", "false", "-1", "0", "1", "100", "101", "1e9", "asc", "desc",
                         "", "%00", "msg_x"]) | st.text(max_size=10),
        max_size=4,
    )
    response_ids = st.sampled_from([stored, background, "resp_missing", "%ff", "a" * 300]) | \
        st.text(st.characters(codec="ascii", exclude_characters="/?#"), min_size=1, max_size=20)
    operations = st.sampled_from([
        ("GET", ""), ("DELETE", ""), ("POST", "/cancel"), ("GET", "/input_items"),
        ("PUT", ""), ("HEAD", ""),
    ])

    @FUZZ
    @given(response_id=response_ids, operation=operations, query=queries,
           v1=st.booleans())
    def check(response_id, operation, query, v1):
        count("stored-response routes")
        method, suffix = operation
        if method == "DELETE" and response_id in (stored, background):
            return  # keep them for the other examples
        path = ("/v1" if v1 else "") + f"/responses/{response_id}{suffix}"
        if query:
            path += "?" + "&".join(f"{key}={value}" for key, value in query.items())
        check_answer(*caller(method, path))

    check()


# --- schemathesis: the OpenAPI document -------------------------------------------------------


@dataclasses.dataclass
class LiveServer:
    base_url: str
    server: Any
    thread: threading.Thread


@pytest.fixture(scope="module")
def live_agent():
    """The app served by uvicorn on a free port in a thread (module-wide)."""
    import socket

    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = create_app(Settings(model_provider="echo", model_name="echo-1"))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_config=None,
                            loop="asyncio", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    yield LiveServer(f"http://127.0.0.1:{port}", server, thread)
    server.should_exit = True
    thread.join(timeout=10)


def test_the_served_openapi_document_is_the_one_in_openapi_py(live_agent):
    served = httpx.get(f"{live_agent.base_url}/openapi.json").json()

    assert served == json.loads(json.dumps(document()))


def test_the_openapi_document_covers_the_route_table():
    from echo_agent.app import AgentServer

    server = AgentServer(Settings(model_provider="echo", model_name="echo-1"))
    documented = {(path, method.upper()) for path, item in document()["paths"].items()
                  for method in item}
    routed = {(route.path, method) for route in server.routes() for method in route.methods
              if method != "HEAD" and route.path != "/openapi.json"}

    assert documented == routed


def fuzz_operation(operation, problems: list[str]) -> None:
    """schemathesis' positive and negative cases for one operation, each answer checked."""
    from schemathesis import checks

    selected = [  # server errors: check_answer (it knows the one documented 502)
        checks.status_code_conformance, checks.content_type_conformance,
        checks.response_schema_conformance,
    ]
    modes = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
    cases = st.one_of(*(operation.as_strategy(generation_mode=mode) for mode in modes))

    @SCHEMA_FUZZ
    @given(case=cases)
    def check(case):
        count("schemathesis")
        response = case.call(timeout=HANG)
        try:
            case.validate_response(response, checks=selected)
            headers = {key.lower(): value[0] if isinstance(value, list) else value
                       for key, value in response.headers.items()}
            check_answer(response.status_code, headers, response.content)
        except BaseException as exc:
            problems.append(f"{operation.label}: {exc}"[:2000])
            raise

    check()


def test_every_operation_of_the_openapi_document_under_schemathesis(live_agent):
    """schemathesis' own generation (valid and invalid data, every operation) against the live
    server, checked against the document: status codes, content types, response schemas."""
    schema = schemathesis.openapi.from_dict(document())
    schema.config.update(base_url=live_agent.base_url)
    problems: list[str] = []
    for result in schema.get_all_operations():
        fuzz_operation(result.ok(), problems)

    assert not problems
    assert httpx.get(f"{live_agent.base_url}/readiness").status_code == 200  # still answers
