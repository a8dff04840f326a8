"""Run the agent repository's own start-up checks from the toolkit.

The container checks its manifest when it starts (structured-input declarations, every
Handlebars template and every placeholder). ``actk check`` (and build and deploy after it)
runs that same code, loaded from the repository's ``src/<package>/``, so the toolkit and the
container can never disagree, and a mistake is found before an image is built.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from toolkit.errors import ManifestError

CHECKED_MODULES = ("settings", "inputs")


def find_package(repo: Path) -> Path | None:
    """``src/<package>`` of a generated repository (the one holding ``inputs.py``)."""
    candidates = sorted(p.parent for p in (repo / "src").glob("*/inputs.py"))
    return candidates[0] if candidates else None


def load_package(package_dir: Path) -> ModuleType:
    """Import ``package_dir`` under a private name, so it cannot clash with installed code."""
    name = f"_actk_agent_{abs(hash(str(package_dir.resolve())))}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, package_dir / "__init__.py", submodule_search_locations=[str(package_dir)]
    )
    if spec is None or spec.loader is None:
        raise ManifestError(
            f"cannot load {package_dir}", hint="is this a repository from actk new?"
        )
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    spec.loader.exec_module(package)
    for module in CHECKED_MODULES:
        importlib.import_module(f"{name}.{module}")
    return package


def check_startup(repo: Path, manifest_path: Path) -> bool:
    """Run the container's manifest checks; False when the repository has none to run."""
    package_dir = find_package(repo)
    if package_dir is None:
        return False
    package = load_package(package_dir)
    settings_module = package.settings
    try:
        # from_env compiles every structured-input template, as the server does at start-up.
        settings_module.Settings.from_env({"AGENT_MANIFEST": str(manifest_path)})
    except settings_module.SettingsError as exc:
        raise ManifestError(
            str(exc),
            hint="declare the input under structured_inputs, or fix the template",
        ) from None
    return True
