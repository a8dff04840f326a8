"""Logs are one JSON object per line, with the fields passed as ``extra``."""

from __future__ import annotations

import json
import logging


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
