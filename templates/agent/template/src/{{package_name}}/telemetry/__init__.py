"""OpenTelemetry for the server: traces, metrics and trace ids in the logs, chosen by environment.

=============================================  ==============================================
``OTEL_EXPORTER_OTLP_ENDPOINT``                OTLP over HTTP/protobuf: traces to
                                               ``<endpoint>/v1/traces``, metrics to
                                               ``<endpoint>/v1/metrics``
``OTEL_EXPORTER_OTLP_{TRACES,METRICS}_*``      one signal's own endpoint (used as is) and
                                               headers
``APPLICATIONINSIGHTS_CONNECTION_STRING``      Azure Monitor (Application Insights), when the
                                               repository was generated with it
``OTEL_SDK_DISABLED=true``                     nothing, whatever else is set
``OTEL_{TRACES,METRICS}_EXPORTER=none``        not that signal
``OTEL_SERVICE_NAME``,                         the resource (``service.name`` defaults to the
``OTEL_RESOURCE_ATTRIBUTES``                   agent's name)
``OTEL_EXPORTER_OTLP_HEADERS``                 headers of every export request
``OTEL_METRIC_EXPORT_INTERVAL``                milliseconds between metric exports (60000)
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_``        ``true``: the model-call spans also carry the
``MESSAGE_CONTENT``                            instructions, messages and answer text
=============================================  ==============================================

What is recorded (see ``otel.py``): a server span per request (the W3C ``traceparent`` of the
request is its parent), a child span per model call with the GenAI semantic conventions, and
the metrics ``http.server.request.duration``, ``agent.server.requests``,
``agent.server.errors`` (by ``error.type``: the error code), ``agent.server.active_streams``,
``gen_ai.server.time_to_first_token``, ``gen_ai.client.operation.duration`` and
``gen_ai.client.token.usage``. The JSON log lines written while a span is active carry its
``trace_id`` and ``span_id``.

Never exported unless content capture is on: prompt and answer text, instructions, the values of
structured inputs (their names are), request headers, exception messages. Secrets never.

When no exporter is configured, :func:`telemetry_config` returns ``None`` and nothing else
happens: the OpenTelemetry packages are not imported, and the request path is the one without
telemetry (``AgentServer`` checks one attribute per request). This module imports nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

_PREFIXES = ("OTEL_", "APPLICATIONINSIGHTS_")
_TRUE = ("true", "1", "yes", "on")


class TelemetryConfig:
    """What the environment asks for. ``env`` holds its ``OTEL_*`` and
    ``APPLICATIONINSIGHTS_*`` variables (the exporters' headers and connection string among
    them: never logged)."""

    __slots__ = ("traces_endpoint", "metrics_endpoint", "azure_monitor", "capture_content", "env")

    def __init__(self, env: Mapping[str, str], traces_endpoint: str | None,
                 metrics_endpoint: str | None, azure_monitor: bool, capture_content: bool):
        self.env = env
        self.traces_endpoint = traces_endpoint  # OTLP, or None
        self.metrics_endpoint = metrics_endpoint  # OTLP, or None
        self.azure_monitor = azure_monitor
        self.capture_content = capture_content

    def __repr__(self) -> str:  # no headers, no connection string
        return (f"TelemetryConfig(traces_endpoint={self.traces_endpoint!r}, "
                f"metrics_endpoint={self.metrics_endpoint!r}, "
                f"azure_monitor={self.azure_monitor}, capture_content={self.capture_content})")


def _signal_endpoint(env: Mapping[str, str], signal: str) -> str | None:
    """OTLP/HTTP endpoint of ``signal`` (``traces`` or ``metrics``), as the specification
    resolves it: the signal's own variable as is, else the base one plus ``/v1/<signal>``."""
    if env.get(f"OTEL_{signal.upper()}_EXPORTER", "otlp").strip().lower() == "none":
        return None
    own = env.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT", "").strip()
    if own:
        return own
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    if not base:
        return None
    return f"{base.rstrip('/')}/v1/{signal}"


def telemetry_config(env: Mapping[str, str]) -> TelemetryConfig | None:
    """The telemetry ``env`` configures, or ``None`` when it configures no exporter."""
    if not any(key.startswith(_PREFIXES) for key in env):
        return None
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() in _TRUE:
        return None
    traces = _signal_endpoint(env, "traces")
    metrics = _signal_endpoint(env, "metrics")
    azure = bool(env.get("APPLICATIONINSIGHTS_CONNECTION_STRING", "").strip())
    if not (traces or metrics or azure):
        return None
    capture = env.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "").strip().lower()
    own = {key: value for key, value in env.items() if key.startswith(_PREFIXES)}
    return TelemetryConfig(own, traces, metrics, azure, capture in _TRUE)


def start_telemetry(config: TelemetryConfig, settings):
    """The :class:`~.otel.Telemetry` of ``config``, or ``None`` (with a warning) when the
    OpenTelemetry packages are missing."""
    try:
        from .otel import Telemetry
    except ImportError as exc:
        import logging

        logging.getLogger(__name__).warning(
            "telemetry is configured but OpenTelemetry is not installed (%s): nothing is "
            "exported; add opentelemetry-sdk and opentelemetry-exporter-otlp-proto-http to "
            "requirements.txt", exc.name)
        return None
    telemetry = Telemetry(config, settings)
    if not telemetry.exporting:  # only Azure Monitor asked for, and it is not installed
        telemetry.shutdown()
        return None
    return telemetry
