"""Image references from templates such as ``{git_sha}`` or ``registry/app:v{version}``."""

from __future__ import annotations

import re
import string
from collections.abc import Mapping

from toolkit.errors import UsageError

PLACEHOLDERS = ("git_sha", "timestamp", "version")
# The distribution spec's tag grammar.
TAG_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
REPOSITORY_PATTERN = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)


def split_reference(reference: str) -> tuple[str, str | None]:
    """``registry:5000/app:tag`` -> (``registry:5000/app``, ``tag``); no tag -> None."""
    slash = reference.rfind("/")
    colon = reference.rfind(":")
    if colon > slash:
        return reference[:colon], reference[colon + 1 :]
    return reference, None


def expand(template: str, values: Mapping[str, str]) -> str:
    """Fill ``{name}`` placeholders; an unknown one is a UsageError naming the known ones."""
    names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    unknown = sorted({name for name in names if name not in PLACEHOLDERS})
    if unknown:
        raise UsageError(
            f"unknown placeholder {{{unknown[0]}}} in tag '{template}'",
            hint="tags may use " + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS),
        )
    try:
        return template.format_map(values)
    except (ValueError, IndexError) as exc:
        raise UsageError(
            f"cannot read tag template '{template}': {exc}",
            hint="write placeholders as {git_sha}; a literal brace is {{ or }}",
        ) from None


def image_references(
    repository: str, templates: list[str], values: Mapping[str, str]
) -> list[str]:
    """Full references for each template: a bare tag goes on ``repository``."""
    references: list[str] = []
    for template in templates:
        filled = expand(template, values)
        name, tag = split_reference(filled) if "/" in filled or ":" in filled else (None, filled)
        if name is None:
            name = repository
        if tag is None:
            tag = "latest"
        check_reference(name, tag, template)
        reference = f"{name}:{tag}"
        if reference not in references:
            references.append(reference)
    return references


def check_reference(name: str, tag: str, template: str) -> None:
    if not REPOSITORY_PATTERN.match(name):
        raise UsageError(
            f"'{name}' (from '{template}') is not a valid image repository",
            hint="use lower-case letters, digits and . _ - separators, e.g. example.io/team/agent",
        )
    if not TAG_PATTERN.match(tag):
        raise UsageError(
            f"tag '{tag}' (from '{template}') is not a valid image tag",
            hint="a tag is 1-128 of A-Z a-z 0-9 _ . - and must not start with . or -",
        )
