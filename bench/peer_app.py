"""PEER: Microsoft's ``azure-ai-agentserver-responses`` host serving the echo agent.

Run by ``server_throughput.py`` with the interpreter of ``bench/.venv-peer``:

    python peer_app.py run        # the host's own ``app.run()`` (Hypercorn): the peer as shipped
    python peer_app.py uvicorn    # the host's ASGI app re-hosted by us under uvicorn + uvloop

Fastest configuration of the host: no SDK observability (``configure_observability=None``), no
access log (``access_log=None``) and the in-memory response store instead of the default file
store. The host's own ``run()`` always uses Hypercorn; ``uvicorn`` mode serves the same ASGI
app with the server stack OURS uses, which is usually the faster of the two.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from typing import Any

from azure.ai.agentserver.responses import (  # type: ignore[import-not-found]
    InMemoryResponseProvider,
    ResponsesAgentServerHost,
    TextResponse,
)

_WORDS = re.compile(r"\s*\S+\s*")


def _text(item: Any) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    return "".join(part.get("text") or "" for part in content or () if "text" in part)


def build() -> ResponsesAgentServerHost:
    app = ResponsesAgentServerHost(
        configure_observability=None,
        access_log=None,
        store=InMemoryResponseProvider(),
    )

    @app.response_handler
    async def echo(request: Any, context: Any, cancellation_signal: asyncio.Event) -> TextResponse:
        items = await context.get_input_items()
        last_user = next(
            (_text(item) for item in reversed(items)
             if item.get("type", "message") == "message" and item.get("role") == "user"),
            "",
        )

        async def words() -> AsyncIterator[str]:
            for word in _WORDS.findall(last_user):
                yield word

        return TextResponse(context, request, text=words())

    return app


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "uvicorn"
    port = int(os.environ.get("PORT", "8088"))
    if mode == "run":
        build().run(host="127.0.0.1", port=port)
        return
    import uvicorn

    uvicorn.run(build(), host="127.0.0.1", port=port, loop="uvloop", http="httptools",
                access_log=False, log_level="warning", lifespan="on")


if __name__ == "__main__":
    main()
