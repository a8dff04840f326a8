"""Opaque, unique, unguessable identifiers in OpenAI's style (``resp_…``, ``msg_…``).

Stored responses are fetched by id, so ids come from the OS's cryptographic random source;
it is read in blocks (and turned into hex a block at a time) because a system call per id
shows up in the request path.
"""

from __future__ import annotations

import os
import re

_VALID_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_ID_HEX = 48  # 24 random bytes
_BLOCK_HEX = _ID_HEX * 256
_pool = ""
_offset = _BLOCK_HEX


def new_id(prefix: str) -> str:
    global _pool, _offset
    start = _offset
    if start >= _BLOCK_HEX:
        _pool, start = os.urandom(_BLOCK_HEX // 2).hex(), 0
    _offset = end = start + _ID_HEX
    return f"{prefix}_{_pool[start:end]}"


def is_valid_id(value: str) -> bool:
    """Letters, digits, ``_`` and ``-``, 1 to 128 of them, and nothing else (no newline at the
    end either: the whole string must match)."""
    return _VALID_ID.fullmatch(value) is not None
