"""What a build sends to the engine: ``.dockerignore`` applied, secrets refused, size counted."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from toolkit.errors import UsageError

# Files that hold credentials. A build context is copied into the engine (and often, through a
# careless COPY, into an image), so these are refused unless the user says otherwise.
SECRET_NAME_PATTERNS = (
    ".env",
    ".env.*",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "id_rsa",
    "id_dsa",
    "id_ecdsa",
    "id_ed25519",
    ".npmrc",
    ".pypirc",
    ".netrc",
    ".git-credentials",
    "credentials.json",
    "*.tfstate",
)
SECRET_PATH_PATTERNS = (
    ".aws/*",
    ".azure/*",
    ".aliyun/*",
    ".docker/config.json",
    ".kube/config",
    ".config/gcloud/*",
    ".ssh/*",
)
# Templates that document variables without values.
SAFE_NAMES = (".env.example", ".env.sample", ".env.template", ".env.dist")


@dataclass
class BuildContext:
    root: Path
    dockerfile: str
    files: list[str] = field(default_factory=list)  # regular files, for checks and size
    entries: list[str] = field(default_factory=list)  # files and directories, for the archive
    size: int = 0

    @property
    def human_size(self) -> str:
        return human_bytes(self.size)


def human_bytes(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def read_dockerignore(root: Path) -> list[str]:
    path = root / ".dockerignore"
    if not path.is_file():
        return []
    patterns = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            patterns.append(line)
    return patterns


def collect(root: Path, dockerfile: str) -> BuildContext:
    """Every file the engine will receive, as the docker CLI computes it from .dockerignore."""
    from docker.utils.build import exclude_paths

    if not root.is_dir():
        raise UsageError(
            f"the build context {root} is not a directory",
            hint="set build.context in agent.yaml or pass --context",
        )
    if not (root / dockerfile).is_file():
        raise UsageError(
            f"no Dockerfile at {root / dockerfile}",
            hint="set build.dockerfile in agent.yaml (relative to build.context)",
        )
    files = sorted(exclude_paths(str(root), read_dockerignore(root), dockerfile=dockerfile))
    context = BuildContext(root=root, dockerfile=dockerfile, entries=files)
    for name in files:
        path = root / name
        if path.is_file() and not path.is_symlink():
            context.files.append(name)
            context.size += path.stat().st_size
    return context


def secret_files(context: BuildContext) -> list[str]:
    """Context files that look like credentials."""
    found = []
    for name in context.files:
        posix = PurePosixPath(name)
        if posix.name in SAFE_NAMES or posix.name.endswith(".pub"):
            continue
        by_name = any(fnmatch.fnmatch(posix.name, p) for p in SECRET_NAME_PATTERNS)
        by_path = any(
            fnmatch.fnmatch(name, p) or fnmatch.fnmatch(name, f"*/{p}")
            for p in SECRET_PATH_PATTERNS
        )
        if by_name or by_path:
            found.append(name)
    return found


def refuse_secret_files(context: BuildContext) -> None:
    found = secret_files(context)
    if found:
        shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
        raise UsageError(
            f"the build context would send secret-looking files to the engine: {shown}",
            hint="add them to .dockerignore, or pass --allow-secret-files if they are meant "
            "to be there",
        )
