"""Logs are one JSON object per line, with the fields passed as ``extra``."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest


def record(**extra) -> logging.LogRecord:
    entry = logging.LogRecord("agent.test", logging.INFO, __file__, 1, "hello %s", ("world",), None)
    entry.__dict__.update(extra)
    return entry


def test_a_log_line_is_one_json_object(package):
    line = package.logs.JsonFormatter().format(record(request_id="req_1", status=200))

    entry = json.loads(line)
    assert "\n" not in line
    assert entry["message"] == "hello world"
    assert entry["level"] == "info"
    assert entry["request_id"] == "req_1"
    assert entry["status"] == 200


def test_uvicorn_color_message_is_left_out(package):
    line = package.logs.JsonFormatter().format(record(color_message="\x1b[32mhello\x1b[0m"))

    assert "color_message" not in json.loads(line)


def handler_on(package, stream):
    handler = package.logs.BatchedStreamHandler(stream)
    handler.setFormatter(package.logs.JsonFormatter())
    return handler


@pytest.mark.anyio
async def test_info_lines_are_written_together_shortly_after(package):
    stream = io.StringIO()
    handler = handler_on(package, stream)

    handler.emit(record(n=1))
    handler.emit(record(n=2))
    assert stream.getvalue() == ""  # batched, not one write per line

    await asyncio.sleep(package.logs.FLUSH_INTERVAL * 3)
    assert [json.loads(line)["n"] for line in stream.getvalue().splitlines()] == [1, 2]


@pytest.mark.anyio
async def test_a_warning_is_written_at_once_with_what_was_pending(package):
    stream = io.StringIO()
    handler = handler_on(package, stream)

    handler.emit(record(n=1))
    warning = record(n=2)
    warning.levelno, warning.levelname = logging.WARNING, "WARNING"
    handler.emit(warning)

    assert [json.loads(line)["n"] for line in stream.getvalue().splitlines()] == [1, 2]


def test_without_an_event_loop_lines_are_written_at_once(package):
    stream = io.StringIO()

    handler_on(package, stream).emit(record(n=1))

    assert json.loads(stream.getvalue())["n"] == 1


def test_the_access_line_has_the_same_shape_as_other_lines(package, monkeypatch):
    stream = io.StringIO()
    handler = handler_on(package, stream)
    monkeypatch.setattr(package.logs.AccessLog, "handler", handler)
    logger = logging.getLogger("agent.test.access")
    monkeypatch.setattr(logger, "propagate", True)

    package.logs.AccessLog(logger).write({"status": 200, "path": "/responses"})
    handler.flush()

    entry = json.loads(stream.getvalue())
    assert entry["logger"] == "agent.test.access"
    assert entry["message"] == "request"
    assert entry["level"] == "info"
    assert entry["ts"].endswith("Z")
    assert (entry["status"], entry["path"]) == (200, "/responses")
