"""Adapting a BuildKit Dockerfile to the classic builder behind the Engine API.

The classic builder rejects ``RUN --mount=...``. For the one mount the template uses, the CA
bundle as secret ``ca``, it gets the same file at the same path a different way: the bundle
travels in the build context and is copied to ``/run/secrets/ca`` in that *build* stage, then
deleted. That stage never reaches the final image, so the bundle stays out of every layer of
the result; a secret mount in the final stage is refused instead, because there it would leak.
Cache mounts are dropped (they only speed builds up); other mounts cannot be emulated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from toolkit.ca_bundle import SECRET_ID
from toolkit.errors import UsageError

SECRET_PATH = f"/run/secrets/{SECRET_ID}"
BUILDKIT_HINT = (
    "install the docker buildx plugin (or use a docker client before 23.0 with "
    "DOCKER_BUILDKIT=1) so `actk build` can use BuildKit"
)
_CONTINUATION = re.compile(r"\\[ \t]*\r?\n")


@dataclass
class Instruction:
    lines: list[str]  # physical lines, newline included

    @property
    def text(self) -> str:
        return "".join(self.lines)

    @property
    def keyword(self) -> str:
        for line in self.lines:
            stripped = line.strip()
            if stripped and not stripped.startswith("#"):
                return stripped.split(None, 1)[0].upper()
        return ""


def split_instructions(text: str) -> list[Instruction]:
    """Logical instructions (continuations joined); comments and blank lines stand alone."""
    instructions: list[Instruction] = []
    current: list[str] = []
    for line in text.splitlines(keepends=True):
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            instructions.append(Instruction([line]))
            continue
        current.append(line)
        if not line.rstrip("\r\n").rstrip().endswith("\\"):
            instructions.append(Instruction(current))
            current = []
    if current:
        instructions.append(Instruction(current))
    return instructions


def run_flags(instruction: Instruction) -> tuple[list[str], str]:
    """The ``--flag=value`` options of a RUN and the text of the instruction without them."""
    text = instruction.text
    match = re.match(r"(\s*RUN)", text, re.IGNORECASE)
    assert match is not None
    position = match.end()
    flags: list[str] = []
    while True:
        gap = re.match(r"(?:[ \t]+|\\[ \t]*\r?\n)+", text[position:])
        after_gap = position + (gap.end() if gap else 0)
        flag = re.match(r"--\S+", text[after_gap:])
        if not flag:
            break
        flags.append(flag.group(0))
        position = after_gap + flag.end()
    return flags, match.group(1) + text[position:]


def parse_mount(flag: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for part in flag.split("=", 1)[1].split(","):
        key, _, value = part.partition("=")
        options[key.strip().lower()] = value.strip()
    return options


def for_classic_builder(text: str, *, ca_file: str | None) -> tuple[str, list[str]]:
    """``text`` rewritten for the classic builder, and warnings for the user.

    ``ca_file`` is the context-relative path of the CA bundle, or None when there is none.
    """
    instructions = split_instructions(text)
    froms = [i for i, ins in enumerate(instructions) if ins.keyword == "FROM"]
    final_stage_start = froms[-1] if froms else 0
    output: list[str] = []
    warnings: list[str] = []
    for index, instruction in enumerate(instructions):
        if instruction.keyword != "RUN":
            output.append(instruction.text)
            continue
        flags, rest = run_flags(instruction)
        if not flags:
            output.append(instruction.text)
            continue
        copy_ca = False
        for flag in flags:
            if not flag.startswith("--mount="):
                raise UsageError(
                    f"the Engine API builder cannot run `RUN {flag}`", hint=BUILDKIT_HINT
                )
            mount = parse_mount(flag)
            kind = mount.get("type", "bind")
            if kind == "cache":
                warnings.append(f"cache mount {mount.get('target', '')} ignored (no BuildKit)")
                continue
            secret_id = mount.get("id") or mount.get("target", "").rsplit("/", 1)[-1]
            if kind != "secret" or secret_id != SECRET_ID:
                raise UsageError(
                    f"the Engine API builder cannot provide the mount `{flag}`", hint=BUILDKIT_HINT
                )
            target = mount.get("target") or mount.get("dst") or SECRET_PATH
            if target != SECRET_PATH:
                raise UsageError(
                    f"the CA secret must be mounted at {SECRET_PATH} for the Engine API builder",
                    hint=BUILDKIT_HINT,
                )
            if ca_file is None:
                if mount.get("required", "false").lower() == "true":
                    raise UsageError(
                        "the Dockerfile requires the CA bundle secret and none was found",
                        hint="pass --ca-bundle PATH or set SSL_CERT_FILE",
                    )
                continue
            if index > final_stage_start:
                raise UsageError(
                    "the Dockerfile mounts the CA bundle in its final stage; without BuildKit "
                    "it would be written into the image",
                    hint=BUILDKIT_HINT + ", or move the step to a build stage",
                )
            copy_ca = True
        if copy_ca:
            output.append(f"COPY {ca_file} {SECRET_PATH}\n")
        output.append(rest if rest.endswith("\n") else rest + "\n")
        if copy_ca:
            output.append(f"RUN rm -f {SECRET_PATH}\n")
    return "".join(output), warnings
