"""CEILING: the least a Starlette + uvicorn echo can do for ``POST /responses``.

Parses the JSON body; answers a minimal JSON object, or (``"stream": true``) the same number of
SSE frames the generated server sends for the same input (created, in_progress,
output_item.added, content_part.added, one delta per word, output_text.done, content_part.done,
output_item.done, completed, ``[DONE]``) with no validation and no store.

    PORT=8090 python bench/ceiling_app.py
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

_WORDS = re.compile(r"\s*\S+\s*")
_BEFORE = ("response.created", "response.in_progress", "response.output_item.added",
           "response.content_part.added")
_AFTER = ("response.output_text.done", "response.content_part.done", "response.output_item.done",
          "response.completed")


def _frame(kind: str, seq: int, extra: str = "") -> bytes:
    return f'event: {kind}\ndata: {{"type":"{kind}","sequence_number":{seq}{extra}}}\n\n'.encode()


async def _frames(words: list[str]) -> AsyncIterator[bytes]:
    seq = 0
    for kind in _BEFORE:
        yield _frame(kind, seq)
        seq += 1
    for word in words:
        yield _frame("response.output_text.delta", seq, f',"delta":{json.dumps(word)}')
        seq += 1
    for kind in _AFTER:
        yield _frame(kind, seq)
        seq += 1
    yield b"data: [DONE]\n\n"


async def create(request: Request) -> Response:
    body = json.loads(await request.body())
    text = body.get("input")
    words = _WORDS.findall(text) if isinstance(text, str) else []
    if body.get("stream"):
        return StreamingResponse(_frames(words), media_type="text/event-stream")
    answer = {"object": "response", "status": "completed", "output_text": "".join(words)}
    return Response(json.dumps(answer), media_type="application/json")


app = Starlette(routes=[Route("/responses", create, methods=["POST"])])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8090")),
                access_log=False, log_level="warning", lifespan="off", server_header=False)
