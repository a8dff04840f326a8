"""A local OTLP/HTTP receiver for the telemetry tests: what a collector would get, decoded.

``OTLPReceiver().start()`` listens on 127.0.0.1 (``receiver.endpoint`` is the value for
``OTEL_EXPORTER_OTLP_ENDPOINT``), answers ``POST /v1/traces`` and ``POST /v1/metrics`` as a
collector does, and decodes each export request with opentelemetry-proto (installed with the
OTLP exporter). ``spans()`` and ``metrics()`` give plain data; ``payloads`` keeps every request
body as received, to check what was *not* sent.
"""

from __future__ import annotations

import gzip
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

SPAN_KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER",
              5: "CONSUMER"}
STATUS_CODES = {0: "UNSET", 1: "OK", 2: "ERROR"}


def value_of(any_value: Any) -> Any:
    """An OTLP ``AnyValue`` as plain Python."""
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [value_of(v) for v in any_value.array_value.values]
    if kind == "kvlist_value":
        return attributes_of(any_value.kvlist_value.values)
    return getattr(any_value, kind)


def attributes_of(key_values: Any) -> dict[str, Any]:
    return {kv.key: value_of(kv.value) for kv in key_values}


@dataclass
class Span:
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    status: str
    status_message: str
    resource: dict[str, Any]
    scope: str


@dataclass
class Point:
    attributes: dict[str, Any]
    value: float | None = None  # sums and gauges
    count: int | None = None  # histograms
    sum: float | None = None


@dataclass
class OTLPReceiver:
    payloads: list[bytes] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    trace_requests: list[Any] = field(default_factory=list)
    metric_requests: list[Any] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> OTLPReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path == "/v1/traces":
                    request, reply = ExportTraceServiceRequest(), ExportTraceServiceResponse()
                    requests = receiver.trace_requests
                elif self.path == "/v1/metrics":
                    request, reply = ExportMetricsServiceRequest(), ExportMetricsServiceResponse()
                    requests = receiver.metric_requests
                else:
                    self.send_error(404)
                    return
                request.ParseFromString(body)
                with receiver.lock:
                    receiver.payloads.append(body)
                    receiver.headers.append({k.lower(): v for k, v in self.headers.items()})
                    requests.append(request)
                answer = reply.SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def endpoint(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def clear(self) -> None:
        with self.lock:
            self.payloads.clear()
            self.headers.clear()
            self.trace_requests.clear()
            self.metric_requests.clear()

    # --- decoded -------------------------------------------------------------------------------

    def spans(self) -> list[Span]:
        found = []
        with self.lock:
            requests = list(self.trace_requests)
        for request in requests:
            for resource_spans in request.resource_spans:
                resource = attributes_of(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        found.append(Span(
                            name=span.name, kind=SPAN_KINDS[span.kind],
                            trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            attributes=attributes_of(span.attributes),
                            status=STATUS_CODES[span.status.code],
                            status_message=span.status.message,
                            resource=resource, scope=scope_spans.scope.name,
                        ))
        return found

    def metrics(self) -> dict[str, list[Point]]:
        """Each metric's data points in the latest export that has it (the exports are
        cumulative, so the latest holds the totals)."""
        latest: dict[str, list[Point]] = {}
        with self.lock:
            requests = list(self.metric_requests)
        for request in requests:
            for resource_metrics in request.resource_metrics:
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        latest[metric.name] = points_of(metric)
        return latest

    def wait_for(self, predicate, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("the receiver did not get what was expected in time")
            time.sleep(0.02)


def points_of(metric: Any) -> list[Point]:
    kind = metric.WhichOneof("data")
    data = getattr(metric, kind)
    points = []
    for point in data.data_points:
        attributes = attributes_of(point.attributes)
        if kind == "histogram":
            points.append(Point(attributes, count=point.count, sum=point.sum))
        else:
            number = point.WhichOneof("value")
            points.append(Point(attributes, value=getattr(point, number)))
    return points
