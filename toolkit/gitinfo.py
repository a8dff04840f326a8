"""What git knows about a repository, for tags and OCI labels. Never fails: no git, no facts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from toolkit.process import ask

# user:password@ or token@ in https URLs must never reach an image label.
_CREDENTIALS = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@]*@", re.IGNORECASE)


@dataclass(frozen=True)
class GitInfo:
    sha: str | None = None
    dirty: bool = False
    remote_url: str | None = None

    @property
    def short_sha(self) -> str | None:
        return self.sha[:12] if self.sha else None


def _git(repo: Path, *args: str) -> str | None:
    done = ask(["git", "-C", str(repo), *args], timeout=10)
    return done.stdout.strip() if done is not None and done.returncode == 0 else None


def public_url(url: str) -> str:
    """``url`` without credentials; scp-style ``git@host:org/repo`` becomes https."""
    url = _CREDENTIALS.sub(r"\g<scheme>", url.strip())
    scp = re.match(r"^[\w.-]+@(?P<host>[\w.-]+):(?P<path>[^/].*)$", url)
    if scp:
        url = f"https://{scp['host']}/{scp['path']}"
    return url.removesuffix(".git")


def read_git_info(repo: Path) -> GitInfo:
    sha = _git(repo, "rev-parse", "HEAD")
    if not sha:
        return GitInfo()
    # .actk/ holds what actk recorded (pushed digests, deployed versions), not image source:
    # committing it after a push must not make the next build's tag "-dirty".
    status = _git(repo, "status", "--porcelain", "--untracked-files=no", "--", ".", ":!.actk")
    remote = _git(repo, "remote", "get-url", "origin")
    return GitInfo(sha=sha, dirty=bool(status), remote_url=public_url(remote) if remote else None)
