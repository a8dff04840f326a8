"""A corpus of broken agent.yaml files (tests/fixtures/bad_manifests/): each one is the valid
manifest (``valid_base.yaml``) broken in one place, and says in its header comments which
field is wrong (``# field:``) and which commands must refuse it (``# commands:``; ``# why:``
when not all). Every refusing command, `actk check` and `actk deploy <target> --dry-run` for
each target, answers with exactly one ``error:`` line naming the field and one ``hint:`` line
(the fix), exit code 3, never a traceback; the other commands accept the file.

The files are checked inside a copy of the example agent repository, so `actk check` also runs
the repository's own start-up checks (the Handlebars template of ``instructions``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from toolkit.cli import cli

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "fixtures" / "bad_manifests"
COMMANDS = ("check", "azure", "alibaba", "anthropic")
# No credentials: a dry run must find a manifest's problems before it needs any.
NO_CREDENTIALS = {name: None for name in (
    "AZURE_AI_ACCESS_TOKEN", "ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    "ANTHROPIC_API_KEY", "ANTHROPIC_ENVIRONMENT_KEY")}


def header(path: Path) -> dict[str, str]:
    fields = {}
    for line in path.read_text().splitlines():
        if not line.startswith("# "):
            break
        key, _, value = line[2:].partition(":")
        fields[key.strip()] = value.strip()
    return fields


def refusing(path: Path) -> set[str]:
    listed = header(path)["commands"]
    return set() if listed == "none" else {c.strip() for c in listed.split(",")}


CASES = sorted(CORPUS.glob("*.yaml"))


@pytest.fixture(scope="module")
def agent_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the example agent repository whose agent.yaml each case replaces."""
    repo = tmp_path_factory.mktemp("bad-manifests") / "agent"
    shutil.copytree(REPO / "examples" / "echo-agent", repo,
                    ignore=shutil.ignore_patterns("__pycache__", ".actk"))
    return repo


def run(command: str, repo: Path) -> tuple[int, str, BaseException | None]:
    argv = ["check", str(repo)] if command == "check" else [
        "deploy", command, "--dry-run", "-C", str(repo)]
    result = CliRunner().invoke(cli, argv, env={"NO_COLOR": "1", **NO_CREDENTIALS})
    exception = None if isinstance(result.exception, SystemExit) else result.exception
    return result.exit_code, result.output, exception


def test_the_corpus_covers_every_command_and_each_case_names_a_field() -> None:
    assert len(CASES) >= 25
    covered = set().union(*(refusing(path) for path in CASES))
    assert covered == set(COMMANDS)
    for path in CASES:
        fields = header(path)
        assert "commands" in fields and ("field" in fields), path.name
        if refusing(path) not in (set(), set(COMMANDS)):
            assert fields.get("why"), f"{path.name}: say why only {fields['commands']}"


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_a_broken_manifest_gets_one_error_line_naming_the_field_and_a_hint(
    path: Path, agent_repo: Path
) -> None:
    (agent_repo / "agent.yaml").write_text(path.read_text())
    field = header(path)["field"]
    for command in COMMANDS:
        code, output, exception = run(command, agent_repo)
        assert exception is None, f"{path.name}, {command}: {exception!r}\n{output}"
        assert "Traceback" not in output, f"{path.name}, {command}:\n{output}"
        if command not in refusing(path):
            assert code == 0, f"{path.name}: {command} should accept it:\n{output}"
            continue
        lines = [line for line in output.splitlines()
                 if line.strip() and not line.startswith("warning:")]
        assert code == 3, f"{path.name}, {command}: exit {code}\n{output}"
        assert len(lines) == 2, f"{path.name}, {command}: not one error and one hint:\n{output}"
        error, hint = lines
        assert error.startswith("error: ") and hint.startswith("hint: "), output
        assert field in error, f"{path.name}, {command}: the error does not name {field}: {error}"
        assert len(hint) > len("hint: ") + 10, hint
