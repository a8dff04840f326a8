"""Asking a command line tool a question: its answer, or None when it cannot answer."""

from __future__ import annotations

import subprocess


def ask(argv: list[str], timeout: float = 20) -> subprocess.CompletedProcess[str] | None:
    """Run ``argv`` without stdin and capture its output; None if it is missing or hangs."""
    try:
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
