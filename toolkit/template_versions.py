"""Versions of ``templates/agent``, so `copier update` has an old and a new template to diff.

Copier updates a repository by rendering the template at the version recorded in
``.copier-answers.yml`` (``_commit``) and at the new version, and merging the difference into
the repository. It needs the template as a git repository with version tags. The template
ships inside the toolkit (a wheel has no git history; a CI clone may be shallow, with no tags),
so its released versions are stored next to it, and a git repository of them is built when
needed:

    templates/agent/versions/releases.json   [{"version": "0.1.0", "sha256": "..."}, ...]
    templates/agent/versions/0.1.0.patch     the whole template at 0.1.0 (from the empty tree)
    templates/agent/versions/0.2.0.patch     0.1.0 -> 0.2.0
    ...

``build_history`` applies the patches in order into a fresh git repository, checks each result
against its recorded tree hash, commits and tags it ``v<version>``. When the template in the
tree differs from the last release (work in progress), it is committed on top and tagged
``v<last>+dev.<hash>``, so ``actk new`` and ``actk update`` always use exactly the template in
this installation.

Generated repositories record ``_src_path: actk://templates/agent.git`` (the same on every
machine) and ``_commit: v<version>``; while copier runs, git is told through
``GIT_CONFIG_*`` variables that this URL means the repository just built (``url.<path>.
insteadOf``). Copier's own mirror cache is pointed at a temporary directory for the run.

Releasing a template version (after changing the template): ``scripts/template-version X.Y.Z``
(``python -m toolkit.template_versions release X.Y.Z``) writes the patch from the last release
to the current tree and records its hash; then re-render the examples.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from toolkit.errors import ScaffoldError

SOURCE_URL = "actk://templates/agent.git"
VERSIONS_DIR = "versions"
RELEASES_FILE = "releases.json"
IGNORED_PARTS = {"__pycache__", ".pytest_cache", ".ruff_cache", ".git", ".mypy_cache"}
IGNORED_SUFFIXES = (".pyc", ".pyo")
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
# Fixed identity and dates: the same versions always make the same commits.
GIT_ENV = {
    "GIT_AUTHOR_NAME": "actk",
    "GIT_AUTHOR_EMAIL": "actk@localhost",
    "GIT_COMMITTER_NAME": "actk",
    "GIT_COMMITTER_EMAIL": "actk@localhost",
    "GIT_AUTHOR_DATE": "2025-01-01T00:00:00+0000",
    "GIT_COMMITTER_DATE": "2025-01-01T00:00:00+0000",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
}


@dataclass(frozen=True)
class Release:
    version: str
    sha256: str

    @property
    def tag(self) -> str:
        return f"v{self.version}"


@dataclass(frozen=True)
class History:
    """A built repository of template versions."""

    path: Path
    tags: list[str]  # oldest first; the last one is the template of this installation
    current: str
    released: bool  # the current template is a release (not work in progress)


def template_root() -> Path:
    from toolkit.scaffold import template_dir

    return template_dir()


def _template_files(root: Path) -> list[Path]:
    files = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if relative.parts[0] == VERSIONS_DIR:
            continue
        if IGNORED_PARTS.intersection(relative.parts) or path.name.endswith(IGNORED_SUFFIXES):
            continue
        if path.is_file():
            files.append(path)
    return files


def tree_hash(root: Path) -> str:
    """A hash of the template's files (paths, executable bits, contents), versions/ excluded."""
    digest = hashlib.sha256()
    for path in _template_files(root):
        relative = path.relative_to(root).as_posix()
        executable = "x" if os.access(path, os.X_OK) else "-"
        content = path.read_bytes()
        digest.update(f"{relative}\0{executable}\0{len(content)}\0".encode())
        digest.update(content)
    return digest.hexdigest()


def releases(root: Path | None = None) -> list[Release]:
    root = root or template_root()
    path = root / VERSIONS_DIR / RELEASES_FILE
    if not path.is_file():
        return []
    return [Release(item["version"], item["sha256"]) for item in json.loads(path.read_text())]


def _git(args: list[str], cwd: Path, *, stdin: bytes | None = None) -> str:
    done = subprocess.run(
        ["git", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        env={**os.environ, **GIT_ENV},
        check=False,
    )
    if done.returncode != 0:
        raise ScaffoldError(
            f"git {' '.join(args[:2])} failed while building the template versions: "
            f"{done.stderr.decode(errors='replace').strip()[:400]}",
            hint="the versions in templates/agent/versions do not apply: reinstall "
            "agent-container-toolkit (or, in a checkout, run scripts/template-version)",
        )
    return done.stdout.decode()


def _copy_tree(source: Path, destination: Path) -> None:
    for path in _template_files(source):
        target = destination / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)


def _clear_worktree(repo: Path) -> None:
    for child in repo.iterdir():
        if child.name == ".git":
            continue
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()


def _commit(repo: Path, message: str, tag: str) -> None:
    _git(["add", "--all", "--force", "."], repo)
    _git(["commit", "--quiet", "--allow-empty", "--no-verify", "-m", message], repo)
    _git(["tag", tag], repo)


def dev_tag(last: Release | None, current_hash: str) -> str:
    base = last.version if last else "0.0.0"
    return f"v{base}+dev.{current_hash[:12]}"


def build_history(destination: Path, root: Path | None = None) -> History:
    """A git repository at ``destination`` with one tagged commit per template version."""
    root = root or template_root()
    known = releases(root)
    destination.mkdir(parents=True, exist_ok=True)
    _git(["init", "--quiet", "--initial-branch=main", "."], destination)
    tags: list[str] = []
    for release in known:
        patch = root / VERSIONS_DIR / f"{release.version}.patch"
        if not patch.is_file():
            raise ScaffoldError(
                f"template version {release.version} has no {patch.name}",
                hint="reinstall agent-container-toolkit",
            )
        if patch.stat().st_size:
            _git(["apply", "--index", "--whitespace=nowarn", str(patch)], destination)
        got = tree_hash(destination)
        if got != release.sha256:
            raise ScaffoldError(
                f"templates/agent/versions/{patch.name} does not reproduce template version "
                f"{release.version} (tree hash {got[:12]}, recorded {release.sha256[:12]})",
                hint="the versions directory is damaged: restore it from the toolkit's "
                "repository or reinstall agent-container-toolkit",
            )
        _commit(destination, f"agent template {release.version}", release.tag)
        tags.append(release.tag)
    current_hash = tree_hash(root)
    if known and known[-1].sha256 == current_hash:
        return History(destination, tags, tags[-1], released=True)
    tag = dev_tag(known[-1] if known else None, current_hash)
    _clear_worktree(destination)
    _copy_tree(root, destination)
    _commit(destination, "agent template (unreleased changes)", tag)
    tags.append(tag)
    return History(destination, tags, tag, released=False)


@contextmanager
def template_source(root: Path | None = None) -> Iterator[History]:
    """Build the versions repository and make ``SOURCE_URL`` resolve to it (for copier)."""
    from plumbum import local

    with tempfile.TemporaryDirectory(prefix="actk-template-") as scratch:
        history = build_history(Path(scratch) / "agent.git", root)
        redirect = {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": f"url.{history.path}.insteadOf",
            "GIT_CONFIG_VALUE_0": SOURCE_URL,
            "COPIER_CACHE_DIR": str(Path(scratch) / "copier-cache"),
        }
        saved = {name: os.environ.get(name) for name in redirect}
        os.environ.update(redirect)
        try:
            with local.env(**redirect):
                yield history
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def version_of(tag: str | None) -> str | None:
    return tag[1:] if tag and tag.startswith("v") else tag


# --- releasing --------------------------------------------------------------------------------


def release(version: str, root: Path | None = None) -> Path:
    """Record the current template as ``version``: write its patch and its tree hash."""
    from packaging.version import InvalidVersion, Version

    root = root or template_root()
    try:
        wanted = Version(version)
    except InvalidVersion:
        raise ScaffoldError(f"'{version}' is not a version", hint="use X.Y.Z") from None
    if wanted.local or wanted.is_prerelease or wanted.is_devrelease:
        raise ScaffoldError(f"release {version} as a plain X.Y.Z", hint="for example 0.3.0")
    known = releases(root)
    if known and Version(known[-1].version) >= wanted:
        raise ScaffoldError(
            f"{version} is not newer than the last release, {known[-1].version}",
            hint="choose a higher version",
        )
    current_hash = tree_hash(root)
    if known and known[-1].sha256 == current_hash:
        raise ScaffoldError(
            f"the template has not changed since {known[-1].version}",
            hint="nothing to release",
        )
    with tempfile.TemporaryDirectory(prefix="actk-release-") as scratch:
        history = build_history(Path(scratch) / "agent.git", root)
        base = history.tags[-2] if known else EMPTY_TREE
        patch = _git(["diff", "--binary", "--full-index", base, history.current], history.path)
    versions = root / VERSIONS_DIR
    versions.mkdir(exist_ok=True)
    target = versions / f"{version}.patch"
    target.write_text(patch, encoding="utf-8")
    entries = [{"version": r.version, "sha256": r.sha256} for r in known]
    entries.append({"version": version, "sha256": current_hash})
    (versions / RELEASES_FILE).write_text(json.dumps(entries, indent=2) + "\n", encoding="utf-8")
    return target


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "release":
        target = release(argv[1])
        print(f"wrote {target}; now run scripts/render-examples")
        return 0
    if argv == ["list"] or not argv:
        root = template_root()
        for item in releases(root):
            print(item.version)
        known = releases(root)
        if not known or known[-1].sha256 != tree_hash(root):
            print(f"{version_of(dev_tag(known[-1] if known else None, tree_hash(root)))}"
                  "  (the template in this tree: unreleased changes)")
        return 0
    print("usage: python -m toolkit.template_versions [list | release X.Y.Z]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except ScaffoldError as exc:
        print(f"error: {exc.message}\nhint: {exc.hint}", file=sys.stderr)
        sys.exit(exc.exit_code)
