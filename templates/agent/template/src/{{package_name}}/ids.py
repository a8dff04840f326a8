"""Opaque, unique identifiers in OpenAI's style (``resp_…``, ``msg_…``)."""

from __future__ import annotations

import os
import re

_VALID_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def new_id(prefix: str) -> str:
    return f"{prefix}_{os.urandom(24).hex()}"


def is_valid_id(value: str) -> bool:
    return bool(_VALID_ID.match(value))
