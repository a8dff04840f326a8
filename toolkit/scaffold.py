"""`actk new`: render ``templates/agent`` with Copier into a new directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.errors import ScaffoldError, UsageError
from toolkit.options import split_pair

PACKAGE_DIR = Path(__file__).resolve().parent


def template_dir(name: str = "agent") -> Path:
    """The template inside an installed wheel, else the one in the source checkout."""
    for candidate in (PACKAGE_DIR / "_templates" / name, PACKAGE_DIR.parent / "templates" / name):
        if (candidate / "copier.yml").is_file():
            return candidate
    raise ScaffoldError(
        f"the '{name}' template is missing from this installation",
        hint="reinstall agent-container-toolkit",
    )


def template_questions(template: Path) -> dict[str, Any]:
    """The questions of a template's ``copier.yml`` (settings starting with ``_`` left out)."""
    import yaml

    data = yaml.safe_load((template / "copier.yml").read_text(encoding="utf-8"))
    return {key: value for key, value in data.items() if not key.startswith("_")}


def parse_data(pairs: list[str], questions: dict[str, Any]) -> dict[str, Any]:
    """Turn ``--data key=value`` pairs into answers; ``a,b`` fills a multi-select question."""
    answers: dict[str, Any] = {}
    for pair in pairs:
        key, value = split_pair(pair, "--data", "--data port=9000", "key=value")
        if key not in questions:
            raise UsageError(
                f"--data {key}: the template has no question '{key}'",
                hint=f"known questions: {', '.join(questions)}",
            )
        if questions[key].get("multiselect") and not value.lstrip().startswith("["):
            value = "[" + ", ".join(v.strip() for v in value.split(",") if v.strip()) + "]"
        answers[key] = value
    return answers


@dataclass(frozen=True)
class NewProject:
    path: Path
    answers: dict[str, Any]

    def next_steps(self) -> list[str]:
        package = self.answers.get("package_name", "agent")
        return [
            f"cd {self.path}",
            "python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[test]'",
            "pytest",
            f"python -m {package}",
            'actk build && actk smoke && actk run   # then: actk invoke --local "hello"',
        ]


def new_project(
    destination: Path,
    *,
    data: dict[str, Any],
    use_defaults: bool,
    force: bool,
) -> NewProject:
    if destination.exists() and not destination.is_dir():
        raise ScaffoldError(
            f"{destination} exists and is not a directory",
            hint="choose another path for the new agent",
        )
    if destination.is_dir() and any(destination.iterdir()) and not force:
        raise ScaffoldError(
            f"{destination} is not empty",
            hint="choose a new or empty directory, or pass --force to render into it "
            "(files the template also writes are overwritten)",
        )
    import copier

    from toolkit.template_versions import SOURCE_URL, template_source

    try:
        # From the versioned template source, so .copier-answers.yml records the template
        # version (_commit) and `actk update` can diff against it later.
        with template_source() as history:
            worker = copier.run_copy(
                SOURCE_URL,
                str(destination),
                data=data,
                vcs_ref=history.current,
                defaults=use_defaults,
                overwrite=force,
                unsafe=False,
                quiet=True,
            )
    except ValueError as exc:  # copier's validators: a bad answer passed with --data
        raise ScaffoldError(str(exc), hint="fix the --data value and run again") from None
    except KeyboardInterrupt:
        raise ScaffoldError("cancelled", hint="nothing was kept; run `actk new` again") from None
    combined = worker.answers.combined
    answers = {key: combined[key] for key in template_questions(template_dir()) if key in combined}
    return NewProject(path=destination, answers=answers)
