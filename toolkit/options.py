"""Parsing of the repeatable ``NAME=VALUE`` options (``--data``, ``--build-arg``, ``--input``)."""

from __future__ import annotations

from toolkit.errors import UsageError


def split_pair(pair: str, option: str, example: str, form: str = "NAME=VALUE") -> tuple[str, str]:
    """``"name=value"`` -> ``("name", "value")``; anything else is a UsageError naming the
    ``form`` and showing ``example`` (a whole option, such as ``--data port=9000``)."""
    name, sep, value = pair.partition("=")
    name = name.strip()
    if not sep or not name:
        raise UsageError(f"{option} {pair!r} is not {form}", hint=f"for example {example}")
    return name, value
