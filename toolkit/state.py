"""What `actk` has done for a repository, in ``.actk/state.json``: safe to commit, no secrets.

Sections are owned by one command each (``image`` by push and remote builds; deploy targets
add their own), and a write replaces only its own section.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

STATE_FILE = Path(".actk") / "state.json"


def read_state(repo: Path) -> dict[str, Any]:
    """The whole state of ``repo`` (empty when nothing was recorded or the file is unreadable)."""
    try:
        data = json.loads((repo / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_section(repo: Path, section: str, value: dict[str, Any]) -> Path:
    """Replace one section atomically (a crash leaves the old file, never half a file)."""
    path = repo / STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    state = read_state(repo)
    state[section] = value
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".state-", suffix=".json")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(state, stream, indent=2, sort_keys=True)
            stream.write("\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
