"""`actk update`: `copier update` of a generated repository to the template this toolkit ships.

The template's versions come from ``toolkit.template_versions`` (a git repository of them,
built for the run). Copier renders the version recorded in ``.copier-answers.yml`` and the new
one with the same answers, and applies the difference to the repository: lines only the user
changed stay, lines only the template changed are updated, and lines both changed are left as
a conflict, inline (``<<<<<<< before updating`` ... ``>>>>>>> after updating``) or as ``.rej``
files, as copier does. Conflicts make the command exit 10 with the list of files.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.errors import ScaffoldError, ToolkitError
from toolkit.template_versions import SOURCE_URL, build_history, releases, template_source

ANSWERS_FILE = ".copier-answers.yml"
CONFLICT_MARKERS = ("<<<<<<< before updating", ">>>>>>> after updating")


class UpdateConflictError(ToolkitError):
    """`actk update` finished, but left conflicts for the user to resolve."""

    exit_code = 10

    def __init__(self, message: str, *, hint: str | None = None,
                 conflicts: list[str] | None = None,
                 result: dict[str, Any] | None = None) -> None:
        super().__init__(message, hint=hint)
        self.conflicts = conflicts or []
        self.result = result or {}

    def to_dict(self) -> dict[str, object]:
        return {**self.result, **super().to_dict(), "conflicts": self.conflicts}


@dataclass
class UpdateResult:
    path: Path
    from_version: str
    to_version: str
    pretend: bool
    changed: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "from": self.from_version,
            "to": self.to_version,
            "pretend": self.pretend,
            "changed": self.changed,
            "conflicts": self.conflicts,
        }

    def raise_for_conflicts(self) -> None:
        if self.conflicts:
            raise UpdateConflictError(
                f"template {self.to_version} and your edits both changed "
                f"{len(self.conflicts)} file{'s' if len(self.conflicts) > 1 else ''}: "
                + ", ".join(self.conflicts),
                hint="resolve the marked parts (keep what you want between <<<<<<< before "
                "updating and >>>>>>> after updating, or apply the .rej files), then commit",
                conflicts=self.conflicts,
                result=self.to_dict(),
            )


def known_versions() -> list[str]:
    """Released versions, oldest first, then the current template's (a dev version if the
    template has unreleased changes)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="actk-versions-") as scratch:
        history = build_history(Path(scratch) / "agent.git")
    return [tag[1:] for tag in history.tags]


def _git(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=project, capture_output=True, text=True,
                          check=False)


def _tag(version: str) -> str:
    return version if version.startswith("v") else f"v{version}"


def _read_answers(project: Path) -> dict[str, Any]:
    import yaml

    path = project / ANSWERS_FILE
    if not path.is_file():
        raise ScaffoldError(
            f"{project} has no {ANSWERS_FILE}: it was not generated from the agent template",
            hint="run actk update in a repository `actk new` made (the directory holding "
            "agent.yaml and .copier-answers.yml)",
        )
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return data if isinstance(data, dict) else {}


def _check_repository(project: Path) -> None:
    inside = _git(project, "rev-parse", "--show-toplevel")
    if inside.returncode != 0:
        raise ScaffoldError(
            f"{project} is not a git repository: copier updates only what git tracks, so you "
            "can review and undo the update",
            hint="git init && git add -A && git commit -m 'agent from actk new', then run "
            "actk update again",
        )
    dirty = _git(project, "status", "--porcelain", "--untracked-files=normal", "--", ".")
    if dirty.stdout.strip():
        files = [line[3:] for line in dirty.stdout.splitlines()][:5]
        raise ScaffoldError(
            f"{project} has uncommitted changes ({', '.join(files)}"
            f"{', ...' if len(dirty.stdout.splitlines()) > 5 else ''})",
            hint="commit or stash them first, so the update is one reviewable change",
        )


def _changed(project: Path) -> list[str]:
    status = _git(project, "status", "--porcelain", "--untracked-files=all", "--", ".")
    prefix = _git(project, "rev-parse", "--show-prefix").stdout.strip()
    paths = []
    for line in status.stdout.splitlines():
        path = line[3:].split(" -> ")[-1].strip('"')
        paths.append(path[len(prefix):] if prefix and path.startswith(prefix) else path)
    return sorted(set(paths))


def _conflicts(project: Path, changed: list[str]) -> list[str]:
    found = set()
    for relative in changed:
        path = project / relative
        if relative.endswith(".rej"):
            found.add(relative[: -len(".rej")])
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        lines = {line.rstrip("\r") for line in text.splitlines()}
        if all(marker in lines for marker in CONFLICT_MARKERS):  # whole lines, as copier writes
            found.add(relative)
    return sorted(found)


def update_project(
    directory: Path,
    *,
    data: dict[str, Any] | None = None,
    to_version: str | None = None,
    use_defaults: bool = True,
    conflict: str = "inline",
    pretend: bool = False,
    quiet: bool = True,
) -> UpdateResult:
    """Run `copier update` on ``directory`` to ``to_version`` (default: the current template)."""
    project = directory.resolve()
    answers = _read_answers(project)
    recorded = answers.get("_commit")
    source = answers.get("_src_path")
    known = [release.version for release in releases()]
    first = known[0] if known else "0.1.0"
    if not recorded:
        raise ScaffoldError(
            f"{ANSWERS_FILE} records no template version (_commit), so there is nothing to "
            "diff against",
            hint=f"a repository generated before the template had versions was made from "
            f"{first}: put `_commit: v{first}` and `_src_path: {SOURCE_URL}` at the top of "
            f"{ANSWERS_FILE}, commit, and run actk update again",
        )
    if source != SOURCE_URL:
        raise ScaffoldError(
            f"{ANSWERS_FILE} says this repository comes from {source!r}, not from the toolkit's "
            f"agent template ({SOURCE_URL})",
            hint=f"if it was made with actk new, set `_src_path: {SOURCE_URL}` in "
            f"{ANSWERS_FILE} and commit; otherwise run `copier update` with its own template",
        )
    _check_repository(project)
    import copier
    from copier.errors import CopierError
    from packaging.version import Version

    with template_source() as history:
        if recorded not in history.tags:
            hint = "known versions: " + ", ".join(tag[1:] for tag in history.tags)
            if "+dev." in str(recorded):
                base = str(recorded)[1:].split("+", 1)[0]
                hint = (f"it was rendered from unreleased template changes after {base}: set "
                        f"`_commit: v{base}` in {ANSWERS_FILE}, commit, and update again "
                        "(changes made after that release may show as conflicts)")
            raise ScaffoldError(
                f"this repository was rendered from template {recorded[1:]}, which this "
                "toolkit does not know",
                hint=hint + "; or upgrade agent-container-toolkit",
            )
        target = _tag(to_version) if to_version else history.current
        if target not in history.tags:
            raise ScaffoldError(
                f"template version {target[1:]} is unknown",
                hint="known versions: " + ", ".join(tag[1:] for tag in history.tags),
            )
        if Version(target[1:]) < Version(recorded[1:]):
            raise ScaffoldError(
                f"{target[1:]} is older than {recorded[1:]}, the version this repository has",
                hint="copier does not downgrade; choose a newer version",
            )
        try:
            copier.run_update(
                str(project),
                data=data or {},
                vcs_ref=target,
                defaults=use_defaults,
                skip_answered=True,
                overwrite=True,
                conflict=conflict,
                pretend=pretend,
                quiet=quiet,
                unsafe=False,
            )
        except (CopierError, ValueError) as exc:
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ScaffoldError(
                f"copier update failed: {first_line}",
                hint="fix the answer or the repository as the message says, then run "
                "actk update again (nothing was committed; `git checkout .` undoes a partial "
                "update)",
            ) from None
        except KeyboardInterrupt:
            raise ScaffoldError(
                "cancelled", hint="`git status` shows anything already changed; "
                "`git checkout . && git clean -fd` undoes it"
            ) from None
    changed = [] if pretend else _changed(project)
    return UpdateResult(
        path=project,
        from_version=recorded[1:],
        to_version=target[1:],
        pretend=pretend,
        changed=changed,
        conflicts=[] if pretend else _conflicts(project, changed),
    )
