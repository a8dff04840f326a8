"""Structured JSON logs on stdout, one object per line.

Under load the access log writes a line per request, and a write system call per line costs
as much as a good share of the request itself. :class:`BatchedStreamHandler` therefore collects
info and debug lines for at most ``FLUSH_INTERVAL`` seconds (or ``FLUSH_BYTES``) and writes them
with one call; warnings and errors go out at once, and everything pending is written at exit.

With telemetry on (telemetry/otel.py sets :data:`trace_ids`), a line written while a span is
active carries its ``trace_id`` and ``span_id``; without it, one ``is None`` test per line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Callable
from json.encoder import encode_basestring as _string

_encode = json.JSONEncoder(ensure_ascii=False, default=str).encode
# Attributes every LogRecord has; anything else passed via ``extra=`` is emitted as a field.
# uvicorn adds ``color_message`` (the message with ANSI colours) to its records: dropped too.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "color_message",
}
# ``(trace_id, span_id)`` of the current span, or None; set only when telemetry is on.
trace_ids: Callable[[], tuple[str, str] | None] | None = None


class JsonFormatter(logging.Formatter):
    _second = -1
    _second_text = ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:  # strftime once per second, not once per line
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        entry = {
            "ts": f"{self._second_text}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = record.__dict__
        for key in fields.keys() - _STANDARD:
            entry[key] = fields[key]
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if trace_ids is not None:
            _add_trace_ids(entry)
        return _encode(entry)


FLUSH_INTERVAL = 0.05  # seconds an info line may wait
FLUSH_BYTES = 64 * 1024


class BatchedStreamHandler(logging.StreamHandler):
    """A stream handler that writes in batches (see the module docstring)."""

    def __init__(self, stream=None) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        self._pending_bytes = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self.write(line, urgent=record.levelno >= logging.WARNING)

    def write(self, line: str, *, urgent: bool = False) -> None:
        """Queue one formatted line; ``urgent`` lines (warnings and worse) go out at once."""
        self._pending.append(line + "\n")
        self._pending_bytes += len(line) + 1
        if urgent or self._pending_bytes >= FLUSH_BYTES:
            self.flush()
            return
        if len(self._pending) > 1:
            return  # a flush is already scheduled
        try:
            asyncio.get_running_loop().call_later(FLUSH_INTERVAL, self.flush)
        except RuntimeError:  # no event loop: write now
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        lines, self._pending, self._pending_bytes = self._pending, [], 0
        try:
            self.stream.write("".join(lines))
            self.stream.flush()
        except (OSError, ValueError):  # stdout closed or gone: nothing better to do
            pass


class AccessLog:
    """The one log line of every request. With the JSON handler installed by :func:`configure`
    it is written here and queued on that handler directly, skipping the LogRecord machinery
    (a noticeable share of a request's cost); otherwise it is an ordinary ``info`` record.
    The line has the same fields either way."""

    handler: BatchedStreamHandler | None = None  # set by configure()

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._second = -1
        self._second_text = ""
        self._ms = -1
        self._ms_text = ""

    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)

    def _direct(self) -> BatchedStreamHandler | None:
        """The handler to queue lines on, when the line may skip the logging machinery."""
        handler = AccessLog.handler
        if handler is None or self.logger.handlers or not self.logger.propagate:
            return None
        return handler

    def _ts(self) -> str:
        """The time as ``JsonFormatter`` writes it (formatted at most once per millisecond)."""
        now = time.time()
        second = int(now)
        ms = int((now - second) * 1000)
        if ms == self._ms and second == self._second:
            return self._ms_text
        if second != self._second:
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        self._ms = ms
        self._ms_text = text = f"{self._second_text}.{ms:03d}Z"
        return text

    def write(self, fields: dict[str, object]) -> None:
        handler = self._direct()
        if handler is None:
            self.logger.info("request", extra=fields)
            return
        entry = {
            "ts": self._ts(),
            "level": "info",
            "logger": self.logger.name,
            "message": "request",
            **fields,
        }
        if trace_ids is not None:
            _add_trace_ids(entry)
        handler.write(_encode(entry))

    def request(self, request_id: str, response_id: str | None, method: str, path: str,
                status: int, latency_ms: float) -> None:
        """``write()`` of a request's fields, with the line written as text: the keys are fixed,
        and the values are strings, an int and a float, written as ``json`` writes them."""
        handler = self._direct()
        if (handler is None or latency_ms.__class__ is not float or status.__class__ is not int
                or trace_ids is not None):
            self.write({"request_id": request_id, "response_id": response_id, "method": method,
                        "path": path, "status": status, "latency_ms": latency_ms})
            return
        handler.write(
            f'{{"ts": "{self._ts()}", "level": "info", "logger": {_string(self.logger.name)}, '
            f'"message": "request", "request_id": {_string(request_id)}, '
            f'"response_id": {"null" if response_id is None else _string(response_id)}, '
            f'"method": {_string(method)}, "path": {_string(path)}, "status": {status}, '
            f'"latency_ms": {latency_ms!r}}}'
        )


def _add_trace_ids(entry: dict[str, object]) -> None:
    ids = trace_ids() if trace_ids is not None else None
    if ids is not None:
        entry["trace_id"], entry["span_id"] = ids


def configure(level: str) -> None:
    # Per-record extras nobody reads here, each costing time on every line: the caller's
    # file and line (a stack walk), thread, process and task names.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging.logAsyncioTasks = False
    handler = BatchedStreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    AccessLog.handler = handler
    root.setLevel(level.upper())
    # uvicorn's own loggers go through the same JSON handler; its access log is replaced by ours.
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
