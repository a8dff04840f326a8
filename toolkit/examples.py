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


def render_example(name: str, destination: Path) -> Path:
    """Render example ``name`` into ``destination/name`` as `actk new` does: from the versioned
    template source, so its answers file records the template version (``_commit``) and the
    portable source ``actk://templates/agent.git`` that `actk update` understands."""
    import copier

    from toolkit.template_versions import SOURCE_URL, template_source

    target = destination / name
    with template_source() as history:
        copier.run_copy(
            SOURCE_URL,
            str(target),
            data=EXAMPLES[name],
            vcs_ref=history.current,
            defaults=True,
            unsafe=False,
            quiet=True,
        )
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
