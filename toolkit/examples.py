"""The example repositories in ``examples/``: each is a template render kept in sync by a test.

``python -m toolkit.examples DIR`` re-renders them into DIR.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

# name -> template answers (beyond the defaults)
EXAMPLES: dict[str, dict[str, Any]] = {"echo-agent": {}}
# .copier-answers.yml records where the template came from; examples point at the repo's copy.
PORTABLE_SRC_PATH = "_src_path: ../../templates/agent"


def render_example(name: str, destination: Path) -> Path:
    """Render example ``name`` into ``destination/name`` with a portable answers file."""
    import copier

    from toolkit.scaffold import template_dir

    target = destination / name
    copier.run_copy(
        str(template_dir()),
        str(target),
        data=EXAMPLES[name],
        defaults=True,
        unsafe=False,
        quiet=True,
    )
    answers = target / ".copier-answers.yml"
    lines = [
        PORTABLE_SRC_PATH if line.startswith("_src_path:") else line
        for line in answers.read_text(encoding="utf-8").splitlines()
    ]
    answers.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


def main(argv: list[str]) -> int:
    destination = Path(argv[0]) if argv else Path("examples")
    for name in EXAMPLES:
        with tempfile.TemporaryDirectory() as scratch:
            fresh = render_example(name, Path(scratch))
            shutil.rmtree(destination / name, ignore_errors=True)
            shutil.copytree(fresh, destination / name)
        print(f"rendered {destination / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
