"""A Responses server that gets everything right but the order of the stream's events:
``response.content_part.added`` comes before ``response.output_item.added``.

Standard library only. Health paths answer 200, JSON responses are complete, malformed JSON
gets a 400 in the OpenAI error shape, and SIGTERM exits 0.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HEALTH = {"/readiness", "/ready", "/liveness", "/health", "/ping"}


def response(text: str, status: str) -> dict:
    done = status == "completed"
    return {
        "id": "resp_wrongorder",
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": "echo-1",
        "output": [message(text, "completed")] if done else [],
        "error": None,
        "usage": None,
    }


def message(text: str, status: str) -> dict:
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {"id": "msg_1", "type": "message", "status": status, "role": "assistant",
            "content": content if status == "completed" else []}


def events(text: str) -> list[dict]:
    part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    ids = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    words = text.split(" ")
    deltas = [word + (" " if i < len(words) - 1 else "") for i, word in enumerate(words)]
    return [
        {"type": "response.created", "response": response(text, "in_progress")},
        {"type": "response.in_progress", "response": response(text, "in_progress")},
        # The bug: these two are swapped.
        {"type": "response.content_part.added", **ids, "part": part},
        {"type": "response.output_item.added", "output_index": 0,
         "item": message(text, "in_progress")},
        *({"type": "response.output_text.delta", **ids, "delta": d, "logprobs": []}
          for d in deltas),
        {"type": "response.output_text.done", **ids, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **ids, "part": {**part, "text": text}},
        {"type": "response.output_item.done", "output_index": 0,
         "item": message(text, "completed")},
        {"type": "response.completed", "response": response(text, "completed")},
    ]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path in HEALTH:
            self.send_json(200, {"status": "ready"})
        else:
            self.send_json(404, error("not found", "not_found_error", "not_found"))

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.path not in ("/responses", "/v1/responses"):
            self.send_json(404, error("not found", "not_found_error", "not_found"))
            return
        try:
            request = json.loads(body)
        except ValueError:
            self.send_json(400, error("not JSON", "invalid_request_error", "invalid_json"))
            return
        text = request.get("input") if isinstance(request.get("input"), str) else "hello"
        if not request.get("stream"):
            self.send_json(200, response(text, "completed"))
            return
        frames = []
        for number, event in enumerate(events(text)):
            event = {"type": event["type"], "sequence_number": number, **event}
            frames.append(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n")
        frames.append("data: [DONE]\n\n")
        payload = "".join(frames).encode()
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def send_json(self, status: int, body: dict) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        print(format % args, file=sys.stderr, flush=True)


def error(message: str, kind: str, code: str) -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def main() -> None:
    server = ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8088"))), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("wrong-order server listening", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
