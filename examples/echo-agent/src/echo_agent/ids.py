"""Opaque, unique, unguessable identifiers in OpenAI's style (``resp_…``, ``msg_…``).

Stored responses are fetched by id, so ids come from the OS's cryptographic random source;
it is read in blocks because a system call per id shows up in the request path.
"""

from __future__ import annotations

import os
import re

_VALID_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_ID_BYTES = 24
_BLOCK = _ID_BYTES * 256
_pool = b""
_offset = _BLOCK


def new_id(prefix: str) -> str:
    global _pool, _offset
    if _offset >= _BLOCK:
        _pool, _offset = os.urandom(_BLOCK), 0
    start = _offset
    _offset += _ID_BYTES
    return f"{prefix}_{_pool[start:_offset].hex()}"


def is_valid_id(value: str) -> bool:
    return bool(_VALID_ID.match(value))
