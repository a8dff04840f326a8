"""Your agent. This is the file to edit; the server around it speaks the Responses protocol.

``respond`` receives an :class:`AgentContext` (resolved instructions, the conversation so far,
structured inputs, tools and settings) and yields the answer text piece by piece. Each piece
becomes one ``response.output_text.delta`` event when the caller streams.

Raise :class:`AgentError` to fail the response with a message the caller may see; any other
exception fails it with a generic ``server_error`` and a log line (no details leak to callers).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from .context import AgentContext
from .errors import AgentError  # noqa: F401  (re-exported for agent code)


async def respond(ctx: AgentContext) -> AsyncIterator[str]:
    async for text in ctx.stream_model():
        yield text
