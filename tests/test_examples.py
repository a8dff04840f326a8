"""examples/ holds template renders; they must not drift from what the template renders now."""

from __future__ import annotations

import filecmp
from pathlib import Path

import pytest

from tests.conftest import REPO
from toolkit.examples import EXAMPLES, render_example

IGNORED = {"__pycache__", ".pytest_cache", ".ruff_cache", ".venv", "server.log"}


def tree(root: Path) -> set[str]:
    return {
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and not IGNORED.intersection(path.relative_to(root).parts)
    }


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_matches_a_fresh_render(tmp_path: Path, name: str):
    committed = REPO / "examples" / name
    fresh = render_example(name, tmp_path)
    assert tree(committed) == tree(fresh), "files added or removed: run scripts/render-examples"
    drifted = [
        relative
        for relative in sorted(tree(fresh))
        if not filecmp.cmp(committed / relative, fresh / relative, shallow=False)
    ]
    assert not drifted, f"{drifted} differ from a fresh render: run scripts/render-examples"
