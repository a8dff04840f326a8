"""The offline ``echo`` model: streams the last user message back word by word.

Deterministic and network-free, so a generated repository runs and passes its tests anywhere.
Token counts are whitespace-separated words, which is all an echo can honestly report.
``ECHO_DELAY`` (seconds per word, default 0) makes it slow, to try streaming, keep-alive and
shutdown behaviour by hand or in tests.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

from . import ModelCall, Usage, item_text

_WORDS = re.compile(r"\s*\S+\s*")


class EchoProvider:
    name = "echo"

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    async def stream(self, call: ModelCall, usage: Usage) -> AsyncIterator[str]:
        prompt = " ".join(
            filter(None, [call.instructions or "", *map(item_text, call.conversation)])
        )
        usage.input_tokens = len(prompt.split())
        last_user = next(
            (item_text(item) for item in reversed(call.conversation) if item.get("role") == "user"),
            "",
        )
        for word in _WORDS.findall(last_user):
            if call.max_output_tokens is not None and usage.output_tokens >= call.max_output_tokens:
                usage.incomplete_reason = "max_output_tokens"
                return
            if self.delay:
                await asyncio.sleep(self.delay)
            usage.output_tokens += 1
            yield word
