"""Shared helpers: render the agent template and run commands the way users do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "templates" / "agent"


def render(destination: Path, **answers: Any) -> Path:
    """Render the agent template non-interactively, as `actk new --defaults` does."""
    import copier

    copier.run_copy(
        str(TEMPLATE), str(destination), data=answers, defaults=True, unsafe=False, quiet=True
    )
    return destination


def run(
    args: list[str],
    cwd: Path | None = None,
    timeout: float = 300,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command with no stdin (as CI does) and capture its output."""
    return subprocess.run(
        args,
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def actk(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "toolkit", *args], cwd=cwd)


@pytest.fixture(scope="session")
def default_render(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One default render (`actk new echo-agent --defaults`) shared by read-only tests."""
    return render(tmp_path_factory.mktemp("default") / "echo-agent")
