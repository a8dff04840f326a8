"""The built agent image exports OpenTelemetry to a collector: the container-level check of the
generated server's telemetry (the generated repository's tests/test_telemetry.py covers the
rest in-process). The collector is the template's own OTLP receiver
(templates/agent/template/tests/otlp_receiver.py), on this host; the container shares the
host's network so it reaches it at 127.0.0.1."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests import images
from tests.conftest import TEMPLATE, free_port

RECEIVER = TEMPLATE / "template" / "tests" / "otlp_receiver.py"
PROMPT = "the container's private prompt"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_SPAN_ID = "b7ad6b7169203331"


def otlp_receiver() -> Any:
    pytest.importorskip("opentelemetry.proto", reason="needs opentelemetry-proto")
    spec = importlib.util.spec_from_file_location("otlp_receiver", RECEIVER)
    module = sys.modules.setdefault("otlp_receiver", importlib.util.module_from_spec(spec))
    spec.loader.exec_module(module)
    return module.OTLPReceiver().start()


@pytest.fixture
def collector() -> Iterator[Any]:
    receiver = otlp_receiver()
    yield receiver
    receiver.stop()


@pytest.fixture
def traced_container(request: pytest.FixtureRequest,
                     tmp_path_factory: pytest.TempPathFactory, docker_engine: Any,
                     collector: Any) -> Iterator[tuple[Any, str]]:
    """The session's agent image, running with OTLP export to ``collector``; (container, URL)."""
    image = images.good_image(request.config, tmp_path_factory)
    port = free_port()
    container = docker_engine.containers.run(
        image, detach=True, network_mode="host",
        name=f"actk-test-otel-{images.SESSION}-{port}",
        environment={"PORT": str(port), "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
                     "OTEL_SERVICE_NAME": "container-agent", "OTEL_BSP_SCHEDULE_DELAY": "100",
                     "OTEL_METRIC_EXPORT_INTERVAL": "300"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/readiness", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            container.reload()
            if container.status == "exited" or time.monotonic() > deadline:
                raise AssertionError(f"the container did not start:\n"
                                     f"{container.logs().decode()[-2000:]}")
            time.sleep(0.1)
        yield container, url
    finally:
        container.remove(force=True)


@pytest.mark.docker
def test_the_built_image_exports_spans_metrics_and_correlated_logs(traced_container, collector):
    container, url = traced_container
    headers = {"traceparent": f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"}
    for stream in (False, True):
        reply = httpx.post(f"{url}/responses", json={"input": PROMPT, "stream": stream},
                           headers=headers, timeout=10)
        assert reply.status_code == 200

    collector.wait_for(lambda: len([s for s in collector.spans() if s.kind == "SERVER"]) == 2
                       and "gen_ai.server.time_to_first_token" in collector.metrics())

    spans = collector.spans()
    servers = [s for s in spans if s.kind == "SERVER"]
    models = [s for s in spans if s.name.startswith("chat ")]
    assert {s.trace_id for s in spans} == {TRACE_ID}
    assert {s.parent_span_id for s in servers} == {PARENT_SPAN_ID}
    assert {m.parent_span_id for m in models} == {s.span_id for s in servers}
    assert models[0].attributes["gen_ai.usage.output_tokens"] == len(PROMPT.split())
    assert servers[0].resource["service.name"] == "container-agent"
    assert PROMPT.encode() not in b"".join(collector.payloads)
    logged = [json.loads(line) for line in container.logs(stdout=True, stderr=False).splitlines()
              if line.startswith(b"{")]
    requests = [line for line in logged if line.get("message") == "request"]
    assert {(line["trace_id"], line["span_id"]) for line in requests} == {
        (s.trace_id, s.span_id) for s in servers}
