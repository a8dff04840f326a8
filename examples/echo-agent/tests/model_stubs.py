"""Local stand-ins for the model providers: a Starlette app under uvicorn on 127.0.0.1 that
answers each request with the next scripted :class:`Reply`, in the provider's streaming wire
format, and records what it received. Real sockets, so a dropped connection is a real one."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import threading
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclasses.dataclass
class Reply:
    """One scripted answer: an error status with a JSON body, or a 200 event stream."""

    status: int = 200
    chunks: list[str] = dataclasses.field(default_factory=list)  # SSE text, sent one by one
    error: dict[str, Any] | None = None  # the JSON body of an error status
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    delay: float = 0.0  # seconds before answering at all
    drop: bool = False  # cut the connection after the chunks, mid-body


@dataclasses.dataclass
class Received:
    path: str
    query: str
    headers: dict[str, str]
    body: dict[str, Any]


class ModelStub:
    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.received: list[Received] = []
        self.base_url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def script(self, *replies: Reply) -> ModelStub:
        self.replies.extend(replies)
        return self

    async def _handle(self, request: Request) -> Response:
        body = json.loads(await request.body() or b"{}")
        self.received.append(
            Received(request.url.path, request.url.query, dict(request.headers), body)
        )
        reply = self.replies.pop(0) if self.replies else Reply(500, error={"message": "no script"})
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.status != 200:
            return JSONResponse({"error": reply.error or {"message": "failed"}},
                                status_code=reply.status, headers=reply.headers)

        async def chunks():
            for chunk in reply.chunks:
                yield chunk.encode()
                await asyncio.sleep(0)
            if reply.drop:
                raise ConnectionAbortedError("stub: dropping the connection mid-stream")

        return StreamingResponse(chunks(), media_type="text/event-stream", headers=reply.headers)

    def start(self) -> ModelStub:
        app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])
        port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off",
                                log_config=None, access_log=False, loop="asyncio",
                                timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the model stub did not start")
            time.sleep(0.01)
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True
            self._thread.join(timeout=5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- OpenAI Chat Completions: data-only SSE, ``data: [DONE]`` at the end ------------------------


def openai_chunk(content: str | None = None, finish: str | None = None,
                 usage: dict[str, int] | None = None, choices: bool = True) -> str:
    chunk: dict[str, Any] = {"id": "chatcmpl-1", "object": "chat.completion.chunk",
                             "created": 1, "model": "gpt-4o-mini", "choices": []}
    if choices:
        delta = {"content": content} if content is not None else {}
        chunk["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish}]
    if usage is not None:
        chunk["usage"] = usage
    return f"data: {json.dumps(chunk)}\n\n"


def openai_stream(pieces: list[str], *, input_tokens: int = 7, finish: str = "stop",
                  done: bool = True) -> list[str]:
    chunks = [openai_chunk("")]  # the role-only first chunk
    chunks += [openai_chunk(piece) for piece in pieces]
    chunks.append(openai_chunk(finish=finish))
    chunks.append(openai_chunk(choices=False, usage={
        "prompt_tokens": input_tokens, "completion_tokens": len(pieces),
        "total_tokens": input_tokens + len(pieces)}))
    if done:
        chunks.append("data: [DONE]\n\n")
    return chunks


# --- Anthropic Messages: named events ---------------------------------------------------------


def anthropic_event(kind: str, **fields: Any) -> str:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **fields})}\n\n"


def anthropic_stream(pieces: list[str], *, input_tokens: int = 9, stop_reason: str = "end_turn",
                     stop: bool = True) -> list[str]:
    chunks = [
        anthropic_event("message_start", message={
            "id": "msg_1", "type": "message", "role": "assistant", "content": [],
            "model": "claude-sonnet-4-5", "stop_reason": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1}}),
        anthropic_event("content_block_start", index=0,
                        content_block={"type": "text", "text": ""}),
        anthropic_event("ping"),
    ]
    chunks += [
        anthropic_event("content_block_delta", index=0,
                        delta={"type": "text_delta", "text": piece})
        for piece in pieces
    ]
    chunks += [
        anthropic_event("content_block_stop", index=0),
        anthropic_event("message_delta", delta={"stop_reason": stop_reason},
                        usage={"output_tokens": len(pieces)}),
    ]
    if stop:
        chunks.append(anthropic_event("message_stop"))
    return chunks
