"""Telemetry: what a collector receives from the server, decoded by a local OTLP receiver
(otlp_receiver.py), and that nothing of it costs anything when no exporter is configured."""

from __future__ import annotations

import asyncio
import importlib
import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import PACKAGE, free_port
from otlp_receiver import OTLPReceiver

telemetry_config = importlib.import_module(f"{PACKAGE}.telemetry").telemetry_config

pytestmark = pytest.mark.anyio

REPO_ROOT = Path(__file__).resolve().parents[1]
PROMPT = "my secret plan is purple elephants"
INSTRUCTIONS = "You are assisting {{userName}} with the moonbase."
USER_NAME = "Ada Quartermaine"
API_KEY = "sk-test-0123456789abcdefSECRET"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN_ID = "00f067aa0ba902b7"


@pytest.fixture(scope="module")
def receiver():
    server = OTLPReceiver().start()
    yield server
    server.stop()


@pytest.fixture
def collector(receiver):
    receiver.clear()
    return receiver


@pytest.fixture
def traced_app(make_app, collector):
    """``traced_app(env=..., **settings)``: an app exporting to the receiver; its telemetry is
    flushed by ``flush(app)`` and shut down after the test."""
    made = []

    def make(env: dict[str, str] | None = None, **overrides):
        config = telemetry_config({"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
                                   **(env or {})})
        app = make_app(telemetry=config, **overrides)
        made.append(app)
        return app

    yield make
    for app in made:
        app.state.server.telemetry.shutdown()


def flush(app) -> None:
    app.state.server.telemetry.flush()


def spans_named(collector, prefix: str):
    return [span for span in collector.spans() if span.name.startswith(prefix)]


def with_user_name(**overrides):
    return {"instructions": INSTRUCTIONS,
            "structured_inputs": {"userName": {"schema": {"type": "string"}}}, **overrides}


# --- configuration ------------------------------------------------------------------------------


def test_no_exporter_variable_means_no_telemetry():
    assert telemetry_config({}) is None
    assert telemetry_config({"OTEL_SERVICE_NAME": "agent", "PATH": "/bin"}) is None


def test_the_otlp_endpoint_turns_on_both_signals_at_their_paths():
    config = telemetry_config({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"})

    assert config.traces_endpoint == "http://collector:4318/v1/traces"
    assert config.metrics_endpoint == "http://collector:4318/v1/metrics"


def test_a_signal_endpoint_is_used_as_is_and_alone():
    config = telemetry_config({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/t"})

    assert (config.traces_endpoint, config.metrics_endpoint) == ("http://c:4318/t", None)


def test_sdk_disabled_and_exporter_none_are_honoured():
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}
    assert telemetry_config({**endpoint, "OTEL_SDK_DISABLED": "true"}) is None
    config = telemetry_config({**endpoint, "OTEL_METRICS_EXPORTER": "none"})
    assert config.metrics_endpoint is None and config.traces_endpoint


def test_content_capture_is_off_unless_opted_in():
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}
    assert not telemetry_config(endpoint).capture_content
    opted = {**endpoint, "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"}
    assert telemetry_config(opted).capture_content


def test_the_config_repr_shows_no_header_or_connection_string():
    config = telemetry_config({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
                               "OTEL_EXPORTER_OTLP_HEADERS": f"api-key={API_KEY}",
                               "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=k1"})

    assert API_KEY not in repr(config) and "k1" not in repr(config)


# --- traces ---------------------------------------------------------------------------------------


async def test_a_request_is_a_server_span_with_its_route_and_status(traced_app, http_for,
                                                                    collector):
    app = traced_app()
    reply = await http_for(app).post("/responses", json={"input": PROMPT})
    flush(app)

    (server,) = spans_named(collector, "POST")
    assert reply.status_code == 200
    assert server.name == "POST /responses"
    assert server.kind == "SERVER"
    assert server.attributes["http.request.method"] == "POST"
    assert server.attributes["http.route"] == "/responses"
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["gen_ai.response.id"] == reply.json()["id"]
    assert server.attributes["gen_ai.agent.name"] == "agent"
    assert server.resource["service.name"] == "agent"


async def test_health_checks_make_no_spans(traced_app, http_for, collector):
    app = traced_app()
    await http_for(app).get("/readiness")
    flush(app)

    assert collector.spans() == []


async def test_a_model_call_is_a_child_span_with_the_genai_conventions(traced_app, http_for,
                                                                       collector):
    app = traced_app()
    await http_for(app).post("/responses", json={"input": "one two three",
                                                  "temperature": 0.5})
    flush(app)

    (server,) = spans_named(collector, "POST")
    (model,) = spans_named(collector, "chat")
    assert model.name == "chat echo-1"
    assert model.parent_span_id == server.span_id and model.trace_id == server.trace_id
    assert model.attributes["gen_ai.operation.name"] == "chat"
    assert model.attributes["gen_ai.provider.name"] == "echo"
    assert model.attributes["gen_ai.request.model"] == "echo-1"
    assert model.attributes["gen_ai.request.temperature"] == 0.5
    assert model.attributes["gen_ai.usage.input_tokens"] == 3
    assert model.attributes["gen_ai.usage.output_tokens"] == 3
    assert model.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert server.attributes["gen_ai.usage.output_tokens"] == 3


async def test_a_cut_short_answer_finishes_with_length(traced_app, http_for, collector):
    app = traced_app()
    await http_for(app).post("/responses", json={"input": "one two three",
                                                  "max_output_tokens": 16})
    await http_for(app).post("/responses", json={"input": " ".join(["w"] * 20),
                                                  "max_output_tokens": 16})
    flush(app)

    reasons = sorted(s.attributes["gen_ai.response.finish_reasons"][0]
                     for s in spans_named(collector, "chat"))
    assert reasons == ["length", "stop"]


async def test_the_request_traceparent_is_the_server_spans_parent(traced_app, http_for,
                                                                  collector):
    app = traced_app()
    traceparent = f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"
    await http_for(app).post("/responses", json={"input": PROMPT, "stream": True},
                             headers={"traceparent": traceparent})
    flush(app)

    (server,) = spans_named(collector, "POST")
    assert server.trace_id == TRACE_ID
    assert server.parent_span_id == PARENT_SPAN_ID
    assert all(span.trace_id == TRACE_ID for span in collector.spans())


async def test_structured_input_names_are_attributes_and_their_values_are_not(
        traced_app, http_for, collector):
    app = traced_app(**with_user_name())
    await http_for(app).post("/responses", json={
        "input": PROMPT, "structured_inputs": {"userName": USER_NAME}})
    flush(app)

    (server,) = spans_named(collector, "POST")
    assert server.attributes["agent.structured_inputs"] == ["userName"]
    assert not any(USER_NAME.encode() in payload for payload in collector.payloads)


async def test_a_failed_response_is_an_error_span_with_its_code(traced_app, http_for, collector,
                                                                package):
    async def refusing(ctx):
        raise package.errors.AgentError("No.", code="policy_refusal")
        yield ""  # pragma: no cover

    app = traced_app(agent=refusing)
    await http_for(app).post("/responses", json={"input": PROMPT, "stream": True})
    flush(app)

    (server,) = spans_named(collector, "POST")
    assert server.status == "ERROR"
    assert server.attributes["error.type"] == "policy_refusal"


# --- what is never exported -------------------------------------------------------------------


async def test_no_prompt_answer_instructions_input_value_or_secret_is_exported_by_default(
        traced_app, http_for, collector):
    app = traced_app(env={"OTEL_EXPORTER_OTLP_HEADERS": f"api-key={API_KEY}"},
                     **with_user_name())
    body = {"input": PROMPT, "structured_inputs": {"userName": USER_NAME}}
    headers = {"authorization": f"Bearer {API_KEY}", "api-key": API_KEY}
    await http_for(app).post("/responses", json=body, headers=headers)
    await http_for(app).post("/responses", json={**body, "stream": True}, headers=headers)
    flush(app)

    assert spans_named(collector, "chat") and collector.metrics()
    sent = b"".join(collector.payloads)
    for text in (PROMPT, "purple elephants", "moonbase", USER_NAME, API_KEY):
        assert text.encode() not in sent, text
    assert all(h.get("api-key") == API_KEY for h in collector.headers)  # to the collector only


async def test_content_capture_exports_instructions_messages_and_answer_when_opted_in(
        traced_app, http_for, collector):
    app = traced_app(env={"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"},
                     **with_user_name())
    await http_for(app).post("/responses", json={
        "input": PROMPT, "structured_inputs": {"userName": USER_NAME}})
    flush(app)

    (model,) = spans_named(collector, "chat")
    instructions = json.loads(model.attributes["gen_ai.system_instructions"])
    messages = json.loads(model.attributes["gen_ai.input.messages"])
    output = json.loads(model.attributes["gen_ai.output.messages"])
    assert USER_NAME in instructions[0]["content"]
    assert messages[-1] == {"role": "user", "parts": [{"type": "text", "content": PROMPT}]}
    assert output[0]["parts"][0]["content"] == PROMPT
    assert output[0]["finish_reason"] == "stop"


# --- metrics --------------------------------------------------------------------------------------


def points(collector, name: str, **attributes):
    return [p for p in collector.metrics().get(name, [])
            if all(p.attributes.get(k) == v for k, v in attributes.items())]


async def test_requests_are_counted_and_timed_by_route_and_status(traced_app, http_for,
                                                                  collector):
    app = traced_app()
    http = http_for(app)
    for _ in range(3):
        await http.post("/responses", json={"input": PROMPT})
    await http.get("/responses/resp_missing")
    flush(app)

    (ok,) = points(collector, "agent.server.requests", **{"http.route": "/responses",
                                                          "http.response.status_code": 200})
    (latency,) = points(collector, "http.server.request.duration",
                        **{"http.route": "/responses", "http.response.status_code": 200})
    (missing,) = points(collector, "agent.server.requests",
                        **{"http.route": "/responses/{response_id}",
                           "http.response.status_code": 404})
    assert ok.value == 3 and missing.value == 1
    assert latency.count == 3 and latency.sum > 0


async def test_errors_are_counted_by_code(traced_app, http_for, collector, package):
    async def throttled(ctx):
        raise package.errors.AgentError("Slow down.", code="rate_limit_exceeded")
        yield ""  # pragma: no cover

    app = traced_app(agent=throttled)
    http = http_for(app)
    await http.post("/responses", json={"input": PROMPT})
    await http.post("/responses", json={"input": PROMPT, "stream": True})
    await http.post("/responses", content=b"{not json", headers={"content-type":
                                                                  "application/json"})
    flush(app)

    throttling = points(collector, "agent.server.errors", **{"error.type":
                                                             "rate_limit_exceeded"})
    (invalid,) = points(collector, "agent.server.errors", **{"error.type": "invalid_json"})
    # the JSON answer is an error status; the stream is a 200 that ends in response.failed
    assert {(p.attributes["http.response.status_code"], p.value) for p in throttling} == {
        (500, 1), (200, 1)}
    assert invalid.value == 1 and invalid.attributes["http.response.status_code"] == 400


async def test_time_to_first_token_and_model_calls_are_measured(traced_app, http_for,
                                                                collector):
    app = traced_app()
    await http_for(app).post("/responses", json={"input": PROMPT, "stream": True})
    await http_for(app).post("/responses", json={"input": PROMPT})
    flush(app)

    (first,) = points(collector, "gen_ai.server.time_to_first_token")
    (calls,) = points(collector, "gen_ai.client.operation.duration")
    tokens = points(collector, "gen_ai.client.token.usage", **{"gen_ai.token.type": "output"})
    assert first.count == 2 and first.sum > 0
    assert calls.count == 2
    assert tokens[0].sum == 2 * len(PROMPT.split())


async def test_open_streams_are_counted_while_they_stream(traced_app, live_server, collector):
    app = traced_app(echo_delay=0.2)
    base_url = live_server(app)
    async with httpx.AsyncClient(base_url=base_url) as client:
        async with client.stream("POST", "/responses",
                                 json={"input": "a b c d e", "stream": True}) as reply:
            lines = reply.aiter_lines()
            await lines.__anext__()  # the stream is open
            flush(app)
            (during,) = points(collector, "agent.server.active_streams")
            async for _ in lines:
                pass
    # The server counts the stream closed just after its last byte, which the client may read
    # first: wait (bounded) for the count to come down rather than race it.
    for _ in range(250):
        flush(app)
        (after,) = points(collector, "agent.server.active_streams")
        if after.value == 0:
            break
        await asyncio.sleep(0.02)
    assert (during.value, after.value) == (1, 0)


# --- logs -------------------------------------------------------------------------------------


async def test_log_lines_in_a_request_carry_its_trace_and_span_ids(traced_app, http_for,
                                                                   collector, package):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(package.logs.JsonFormatter())
    access = logging.getLogger(f"{PACKAGE}.access")
    access.addHandler(handler)
    level = access.level
    access.setLevel(logging.INFO)
    try:
        app = traced_app()
        await http_for(app).post("/responses", json={"input": PROMPT})
        flush(app)
    finally:
        access.removeHandler(handler)
        access.setLevel(level)

    (server,) = spans_named(collector, "POST")
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["message"] == "request"
    assert (line["trace_id"], line["span_id"]) == (server.trace_id, server.span_id)


# --- the process ------------------------------------------------------------------------------


def start_server(**env: str) -> tuple[subprocess.Popen, str]:
    """``python -X importtime -m <package>`` on a free port, ready; stderr is piped."""
    port = free_port()
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("OTEL_", "APPLICATIONINSIGHTS_"))}
    environment.update({
        "HOST": "127.0.0.1", "PORT": str(port), "LOG_LEVEL": "warning",
        "MODEL_PROVIDER": "echo", "MODEL_NAME": "echo-1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT / "src"),
                                                    os.environ.get("PYTHONPATH")])),
        **env,
    })
    process = subprocess.Popen([sys.executable, "-X", "importtime", "-m", PACKAGE],
                               cwd=REPO_ROOT, env=environment, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {process.stderr.read()[-2000:]}")
        try:
            if httpx.get(f"{base_url}/readiness", timeout=1).status_code == 200:
                return process, base_url
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("the server did not become ready")
        time.sleep(0.05)


def serve_then_stop(**env: str) -> str:
    """Start the server, send a JSON and a streamed request, SIGTERM it; its stderr."""
    if sys.platform == "win32":
        pytest.skip("SIGTERM handling is POSIX-only")
    process, base_url = start_server(**env)
    try:
        headers = {"traceparent": f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"}
        for stream in (False, True):
            reply = httpx.post(f"{base_url}/responses", headers=headers,
                               json={"input": PROMPT, "stream": stream}, timeout=10)
            assert reply.status_code == 200
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr[-2000:]
    return stderr


def imported(importtime_log: str) -> set[str]:
    """Top-level package names ``-X importtime`` shows as imported."""
    names = set()
    for line in importtime_log.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def test_without_an_exporter_the_server_never_imports_opentelemetry():
    loaded = imported(serve_then_stop())

    assert "uvicorn" in loaded  # the log is read right
    assert not loaded & {"opentelemetry", "google", "azure", "requests"}


def test_the_server_process_exports_its_spans_and_metrics_when_it_stops(receiver):
    receiver.clear()
    loaded = imported(serve_then_stop(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                                      OTEL_SERVICE_NAME="support-agent",
                                      OTEL_RESOURCE_ATTRIBUTES="deployment.environment=test"))

    assert "opentelemetry" in loaded
    servers = [s for s in receiver.spans() if s.kind == "SERVER"]
    assert len(servers) == 2
    assert {s.parent_span_id for s in servers} == {PARENT_SPAN_ID}
    assert servers[0].resource["service.name"] == "support-agent"
    assert servers[0].resource["deployment.environment"] == "test"
    assert "agent.server.requests" in receiver.metrics()


# --- Azure Monitor ----------------------------------------------------------------------------

CONNECTION_STRING = ("InstrumentationKey=00000000-0000-0000-0000-000000000000;"
                     "IngestionEndpoint=http://127.0.0.1:9/")


def test_a_connection_string_exports_to_azure_monitor_when_it_is_installed(settings):
    pytest.importorskip("azure.monitor.opentelemetry.exporter",
                        reason="generated without azure_monitor")
    otel = importlib.import_module(f"{PACKAGE}.telemetry.otel")
    config = telemetry_config({"APPLICATIONINSIGHTS_CONNECTION_STRING": CONNECTION_STRING})

    spans, metrics = otel.exporters(config)

    assert [type(e).__name__ for e in spans + metrics] == [
        "AzureMonitorTraceExporter", "AzureMonitorMetricExporter"]


def test_a_connection_string_without_the_azure_exporter_warns_and_exports_nothing(
        settings, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "azure.monitor.opentelemetry.exporter", None)
    start_telemetry = importlib.import_module(f"{PACKAGE}.telemetry").start_telemetry
    config = telemetry_config({"APPLICATIONINSIGHTS_CONNECTION_STRING": CONNECTION_STRING})

    assert start_telemetry(config, settings) is None
    assert "azure-monitor-opentelemetry-exporter" in caplog.text
    assert "InstrumentationKey" not in caplog.text
