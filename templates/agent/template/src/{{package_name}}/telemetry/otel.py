"""The OpenTelemetry side of the server: imported only when an exporter is configured.

:class:`Telemetry` owns a tracer provider and a meter provider with the configured exporters,
and instruments the server at four points, all chosen at start-up (see ``app.py``):

- :class:`TracedApp` wraps the ASGI app: a ``SERVER`` span per request (health checks
  excluded), its parent taken from the request's W3C ``traceparent``; the request metrics.
- :meth:`Telemetry.run_started`, called by ``AgentServer._start``: the agent's attributes on the
  server span, and the response's final status, usage and error code when it ends.
- :meth:`Telemetry.wrap_agent`: time to first token (the first text the agent yields).
- :meth:`Telemetry.wrap_provider`: a ``chat {model}`` span per model call, with the GenAI
  semantic conventions (``gen_ai.operation.name``, ``gen_ai.provider.name``,
  ``gen_ai.request.model``, ``gen_ai.usage.input_tokens`` / ``output_tokens``,
  ``gen_ai.response.finish_reasons``), and the GenAI client metrics.

The model-call span is never made the current span: it lives across the agent generator's
pauses, and a context attached there could not be detached reliably. Log lines during a model
call carry the server span's ids.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import aclosing
from contextvars import ContextVar
from typing import Any
from urllib.parse import unquote

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from .. import logs
from ..errors import AgentError
from . import TelemetryConfig

logger = logging.getLogger(__name__)

SCOPE = __package__.rpartition(".")[0]  # the instrumentation scope: the agent's package
HEALTH_PATHS = frozenset({"/readiness", "/ready", "/liveness", "/health", "/ping"})
# Model providers by their gen_ai.provider.name (the semantic conventions' well-known values
# where there is one).
PROVIDER_NAMES = {"openai": "openai", "azure-openai": "azure.ai.openai",
                  "anthropic": "anthropic", "dashscope": "dashscope",
                  "openai-compatible": "openai", "echo": "echo"}
# Latency buckets (seconds) for the request, first-token and model-call histograms: the SDK's
# default ones are milliseconds-shaped (0, 5, 10, ... 10000).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                    7.5, 10.0, 30.0, 60.0, 120.0, 300.0)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)

_REQUEST: ContextVar[RequestRecord | None] = ContextVar("agent_request", default=None)


class RequestRecord:
    """One traced request: its span, start time and what the run reports."""

    __slots__ = ("span", "start", "route", "method", "first_token", "failure", "done")

    def __init__(self, span: trace.Span, start: float, route: str | None, method: str) -> None:
        self.span = span
        self.start = start
        self.route = route
        self.method = method
        self.first_token: float | None = None
        self.failure: str | None = None  # the code of a response that failed
        self.done = False  # the request has been answered (a background run may go on)


class Telemetry:
    def __init__(self, config: TelemetryConfig, settings: Any) -> None:
        self.config = config
        self.capture_content = config.capture_content
        self.agent_name = settings.agent_name
        self.provider_name = PROVIDER_NAMES.get(settings.model_provider, settings.model_provider)
        env = config.env
        resource = Resource.create(resource_attributes(env, settings))
        span_exporters, metric_exporters = exporters(config)
        self.exporting = bool(span_exporters or metric_exporters)
        self.tracer_provider = TracerProvider(resource=resource)
        for exporter in span_exporters:
            self.tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
        interval = _number(env, "OTEL_METRIC_EXPORT_INTERVAL", 60000.0)
        readers = [PeriodicExportingMetricReader(exporter, export_interval_millis=interval)
                   for exporter in metric_exporters]
        self.meter_provider = MeterProvider(resource=resource, metric_readers=readers)
        from .. import __version__

        self.tracer = self.tracer_provider.get_tracer(SCOPE, __version__)
        meter = self.meter_provider.get_meter(SCOPE, __version__)
        self.request_duration = meter.create_histogram(
            "http.server.request.duration", unit="s",
            description="Duration of HTTP server requests.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS)
        self.requests = meter.create_counter(
            "agent.server.requests", unit="{request}", description="Requests served.")
        self.errors = meter.create_counter(
            "agent.server.errors", unit="{error}",
            description="Requests answered with an error and responses that failed, by code "
                        "(error.type).")
        self.active_streams = meter.create_up_down_counter(
            "agent.server.active_streams", unit="{stream}",
            description="Server-sent event streams open now.")
        self.time_to_first_token = meter.create_histogram(
            "gen_ai.server.time_to_first_token", unit="s",
            description="Time from receiving a request to the agent's first output text.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS)
        self.operation_duration = meter.create_histogram(
            "gen_ai.client.operation.duration", unit="s",
            description="Duration of model calls.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS)
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}",
            description="Tokens used by model calls (gen_ai.token.type: input or output).",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS)
        self.routes: list[Any] = []

    # --- the process -------------------------------------------------------------------------

    def install(self) -> None:
        """Make these providers the global ones (for spans and metrics of the agent's own code,
        ``opentelemetry.trace.get_tracer(...)``), and the JSON logs carry trace ids."""
        trace.set_tracer_provider(self.tracer_provider)
        from opentelemetry import metrics

        metrics.set_meter_provider(self.meter_provider)
        logs.trace_ids = current_trace_ids

    def flush(self, timeout_ms: int = 10_000) -> None:
        self.tracer_provider.force_flush(timeout_ms)
        self.meter_provider.force_flush(timeout_ms)

    def shutdown(self) -> None:
        """Export what is pending and stop the exporters (at the end of ``serve``)."""
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()

    # --- requests ----------------------------------------------------------------------------

    def instrument(self, app: Any) -> TracedApp:
        self.routes = list(app.routes)
        logs.trace_ids = current_trace_ids
        return TracedApp(app, self)

    def route_of(self, method: str, path: str) -> str | None:
        for route in self.routes:
            if route.pattern.match(path) and method in route.methods:
                return route.path
        return None

    async def serve(self, app: Any, scope: Any, receive: Any, send: Any) -> None:
        method = scope["method"]
        route = self.route_of(method, scope["path"])
        carrier = {key.decode("latin-1"): value.decode("latin-1")
                   for key, value in scope["headers"]
                   if key in (b"traceparent", b"tracestate", b"baggage")}
        parent = propagate.extract(carrier)
        attributes = {"http.request.method": method, "url.path": scope["path"],
                      "url.scheme": scope.get("scheme", "http"),
                      "network.protocol.version": scope.get("http_version", "1.1")}
        if route:
            attributes["http.route"] = route
        span = self.tracer.start_span(f"{method} {route}" if route else method, context=parent,
                                      kind=SpanKind.SERVER, attributes=attributes)
        token = context.attach(trace.set_span_in_context(span, parent))
        record = RequestRecord(span, time.perf_counter(), route, method)
        record_token = _REQUEST.set(record)
        status = 500
        streaming = False
        error_body: list[bytes] = []
        error_type: str | None = None

        async def traced_send(message: Any) -> None:
            nonlocal status, streaming
            if message["type"] == "http.response.start":
                status = message["status"]
                for key, value in message.get("headers", ()):
                    if key == b"content-type" and value.startswith(b"text/event-stream"):
                        streaming = True
                        self.active_streams.add(1, {"http.route": route or ""})
            elif status >= 400 and sum(map(len, error_body)) < 65536:
                error_body.append(message.get("body", b""))
            await send(message)

        try:
            await app(scope, receive, traced_send)
        except BaseException as exc:
            error_type = type(exc).__qualname__
            raise
        finally:
            record.done = True
            if streaming:
                self.active_streams.add(-1, {"http.route": route or ""})
            code = record.failure or _error_code(error_body) or error_type
            if code is None and status >= 500:
                code = str(status)
            self._end_request(record, status, code)
            _REQUEST.reset(record_token)
            context.detach(token)

    def _end_request(self, record: RequestRecord, status: int, code: str | None) -> None:
        span = record.span
        attributes = {"http.request.method": record.method, "http.response.status_code": status}
        if record.route:
            attributes["http.route"] = record.route
        span.set_attribute("http.response.status_code", status)
        if code is not None:
            span.set_attribute("error.type", code)
            attributes["error.type"] = code
            if status >= 500 or record.failure:
                span.set_status(Status(StatusCode.ERROR, code))
            self.errors.add(1, attributes)
        self.requests.add(1, attributes)
        self.request_duration.record(time.perf_counter() - record.start, attributes)
        span.end()

    # --- runs ----------------------------------------------------------------------------------

    def run_started(self, run: Any) -> None:
        """``AgentServer._start`` made ``run``: describe it on the request's span, and learn
        how it ends."""
        record = _REQUEST.get()
        ctx = run.ctx
        if record is not None:
            span = record.span
            span.set_attributes({
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": self.agent_name,
                "gen_ai.request.model": ctx.model,
                "gen_ai.provider.name": self.provider_name,
                "gen_ai.response.id": ctx.response_id,
                "gen_ai.conversation.id": ctx.session_id,
            })
            if ctx.structured_inputs:  # names only: the values are the caller's data
                span.set_attribute("agent.structured_inputs", sorted(ctx.structured_inputs))
            if run.response.get("background"):
                span.set_attribute("agent.background", True)
        inner = run.on_end

        def on_end() -> None:
            if inner is not None:
                inner()
            self._run_ended(run, record)

        run.on_end = on_end

    def _run_ended(self, run: Any, record: RequestRecord | None) -> None:
        response = run.response
        usage = run.ctx.usage
        failed = response["status"] == "failed"
        code = (response.get("error") or {}).get("code") if failed else None
        if record is None:
            if code:
                self.errors.add(1, {"error.type": code})
            return
        span = record.span
        if span.is_recording():
            span.set_attributes({
                "agent.response.status": response["status"],
                "gen_ai.usage.input_tokens": usage.input_tokens,
                "gen_ai.usage.output_tokens": usage.output_tokens,
            })
        if code is None:
            return
        if record.done:  # a background run that failed after its request was answered
            self.errors.add(1, {"error.type": code, "http.route": record.route or ""})
        else:
            record.failure = code

    def wrap_agent(self, agent: Callable[[Any], AsyncIterator[str]]
                   ) -> Callable[[Any], AsyncIterator[str]]:
        """``agent``, timing its first text from the request's start."""

        def traced_agent(ctx: Any) -> AsyncIterator[str]:
            chunks = agent(ctx)  # a refusal raised here reaches the server as before
            record = _REQUEST.get()
            if record is None:
                return chunks
            return self._first_token(chunks, record, ctx)

        traced_agent.__wrapped__ = agent  # type: ignore[attr-defined]
        return traced_agent

    async def _first_token(self, chunks: AsyncIterator[str], record: RequestRecord,
                           ctx: Any) -> AsyncIterator[str]:
        async with aclosing(chunks):
            async for chunk in chunks:
                if chunk and record.first_token is None:
                    record.first_token = now = time.perf_counter()
                    self.time_to_first_token.record(now - record.start, {
                        "gen_ai.operation.name": "invoke_agent",
                        "gen_ai.request.model": ctx.model,
                        "gen_ai.provider.name": self.provider_name,
                    })
                yield chunk

    # --- model calls -----------------------------------------------------------------------

    def wrap_provider(self, provider: Any) -> TracedProvider:
        return TracedProvider(provider, self)

    async def model_call(self, provider: Any, call: Any, usage: Any) -> AsyncIterator[str]:
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": self.provider_name,
            "gen_ai.request.model": call.model,
        }
        for name, value in (("gen_ai.request.temperature", call.temperature),
                            ("gen_ai.request.top_p", call.top_p),
                            ("gen_ai.request.max_tokens", call.max_output_tokens)):
            if value is not None:
                attributes[name] = value
        fmt = (call.response_format or {}).get("type")
        attributes["gen_ai.output.type"] = "json" if fmt in ("json_object", "json_schema") \
            else "text"
        if self.capture_content:
            if call.instructions:
                attributes["gen_ai.system_instructions"] = json.dumps(
                    [{"type": "text", "content": call.instructions}], ensure_ascii=False)
            attributes["gen_ai.input.messages"] = json.dumps(
                input_messages(call.conversation), ensure_ascii=False)
        # In-process models (echo) are INTERNAL spans; a model behind HTTP is a CLIENT call.
        kind = SpanKind.INTERNAL if provider.name == "echo" else SpanKind.CLIENT
        span = self.tracer.start_span(f"chat {call.model}", kind=kind, attributes=attributes)
        start = time.perf_counter()
        pieces: list[str] | None = [] if self.capture_content else None
        error_type: str | None = None
        finished = False
        try:
            async with aclosing(provider.stream(call, usage)) as stream:
                async for piece in stream:
                    if pieces is not None:
                        pieces.append(piece)
                    yield piece
            finished = True
        except AgentError as exc:
            error_type = exc.code
            raise
        except GeneratorExit:  # the agent stopped reading: not the model's failure
            raise
        except BaseException as exc:
            error_type = type(exc).__qualname__
            raise
        finally:
            metric = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": self.provider_name,
                      "gen_ai.request.model": call.model}
            span.set_attributes({"gen_ai.usage.input_tokens": usage.input_tokens,
                                 "gen_ai.usage.output_tokens": usage.output_tokens})
            if finished:
                reason = "length" if usage.incomplete_reason else "stop"
                span.set_attribute("gen_ai.response.finish_reasons", [reason])
                if pieces is not None:
                    span.set_attribute("gen_ai.output.messages", json.dumps([{
                        "role": "assistant", "finish_reason": reason,
                        "parts": [{"type": "text", "content": "".join(pieces)}],
                    }], ensure_ascii=False))
            if error_type is not None:
                span.set_attribute("error.type", error_type)
                span.set_status(Status(StatusCode.ERROR, error_type))
                metric["error.type"] = error_type
            self.operation_duration.record(time.perf_counter() - start, metric)
            if usage.input_tokens:
                self.token_usage.record(usage.input_tokens,
                                        {**metric, "gen_ai.token.type": "input"})
            if usage.output_tokens:
                self.token_usage.record(usage.output_tokens,
                                        {**metric, "gen_ai.token.type": "output"})
            span.end()


class TracedApp:
    """The ASGI app with a server span around every request but the health checks. Anything
    else (``state``, ``routes``) is the app's."""

    def __init__(self, app: Any, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in HEALTH_PATHS:
            await self.app(scope, receive, send)
            return
        await self.telemetry.serve(self.app, scope, receive, send)


class TracedProvider:
    """A model provider whose calls are spans (see :meth:`Telemetry.model_call`)."""

    def __init__(self, provider: Any, telemetry: Telemetry) -> None:
        self.provider = provider
        self.telemetry = telemetry
        self.name = provider.name

    def __getattr__(self, name: str) -> Any:
        return getattr(self.provider, name)

    def stream(self, call: Any, usage: Any) -> AsyncIterator[str]:
        return self.telemetry.model_call(self.provider, call, usage)


# --- helpers -----------------------------------------------------------------------------------


def current_trace_ids() -> tuple[str, str] | None:
    """``(trace_id, span_id)`` of the current span as hex, or ``None`` outside a span."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return format(span_context.trace_id, "032x"), format(span_context.span_id, "016x")


def resource_attributes(env: Mapping[str, str], settings: Any) -> dict[str, str]:
    """The resource: ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_SERVICE_NAME`` over it, and the
    agent's name as ``service.name`` when neither gives one."""
    attributes: dict[str, str] = {}
    for pair in env.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        key, sep, value = pair.partition("=")
        if sep and key.strip():
            attributes[key.strip()] = unquote(value.strip())
    service = env.get("OTEL_SERVICE_NAME", "").strip()
    if service:
        attributes["service.name"] = service
    attributes.setdefault("service.name", settings.agent_name)
    foundry = settings.foundry
    if foundry.agent_version:
        attributes.setdefault("service.version", foundry.agent_version)
    return attributes


def exporters(config: TelemetryConfig) -> tuple[list[Any], list[Any]]:
    """The span and metric exporters ``config`` asks for."""
    env = config.env
    spans: list[Any] = []
    metrics: list[Any] = []
    protocol = env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf").strip()
    if (config.traces_endpoint or config.metrics_endpoint) and protocol != "http/protobuf":
        logger.warning("OTEL_EXPORTER_OTLP_PROTOCOL=%s is not supported: exporting with "
                       "http/protobuf", protocol)
    if config.traces_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        spans.append(OTLPSpanExporter(endpoint=config.traces_endpoint,
                                      headers=_headers(env, "TRACES")))
    if config.metrics_endpoint:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        metrics.append(OTLPMetricExporter(endpoint=config.metrics_endpoint,
                                          headers=_headers(env, "METRICS")))
    if config.azure_monitor:
        try:
            from azure.monitor.opentelemetry.exporter import (
                AzureMonitorMetricExporter,
                AzureMonitorTraceExporter,
            )
        except ImportError:
            logger.warning("APPLICATIONINSIGHTS_CONNECTION_STRING is set but the Azure Monitor "
                           "exporter is not installed: add azure-monitor-opentelemetry-exporter "
                           "to requirements.txt (or answer azure_monitor: true to copier)")
        else:
            connection = env["APPLICATIONINSIGHTS_CONNECTION_STRING"]
            # No offline retry storage: the container's filesystem may be read-only.
            spans.append(AzureMonitorTraceExporter(connection_string=connection,
                                                   disable_offline_storage=True))
            metrics.append(AzureMonitorMetricExporter(connection_string=connection,
                                                      disable_offline_storage=True))
    return spans, metrics


def _headers(env: Mapping[str, str], signal: str) -> dict[str, str]:
    """``OTEL_EXPORTER_OTLP_HEADERS`` with the signal's own headers over them
    (``key=value,key2=value2``, values URL-encoded)."""
    headers: dict[str, str] = {}
    for name in ("OTEL_EXPORTER_OTLP_HEADERS", f"OTEL_EXPORTER_OTLP_{signal}_HEADERS"):
        for pair in env.get(name, "").split(","):
            key, sep, value = pair.partition("=")
            if sep and key.strip():
                headers[unquote(key.strip()).lower()] = unquote(value.strip())
    return headers


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    try:
        return float(env.get(name) or default)
    except ValueError:
        logger.warning("%s is not a number: using %g", name, default)
        return default


def _error_code(body: list[bytes]) -> str | None:
    """``error.code`` (else ``error.type``) of an error answer's JSON body."""
    try:
        error = json.loads(b"".join(body))["error"]
        return str(error.get("code") or error.get("type"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def input_messages(conversation: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation in the GenAI conventions' message shape (content capture only)."""
    messages = []
    for item in conversation:
        if item.get("type", "message") != "message":
            messages.append({"role": "tool" if "output" in item else "assistant",
                             "parts": [{"type": item.get("type", "unknown")}]})
            continue
        content = item.get("content")
        if isinstance(content, str):
            parts = [{"type": "text", "content": content}]
        else:
            parts = [{"type": "text", "content": part.get("text", "")}
                     for part in content or () if isinstance(part, dict)]
        messages.append({"role": item.get("role", "user"), "parts": parts})
    return messages
