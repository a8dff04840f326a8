"""Every supported combination of answers renders a repository that lints and passes its own
tests. The full product of answers is large, so a pairwise covering set is used: every pair of
values of any two questions appears in at least one render."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from allpairspy import AllPairs

from tests.conftest import render, run
from toolkit.manifest import load_manifest

ANSWER_VALUES: dict[str, list[Any]] = {
    "python_version": ["3.10", "3.11", "3.12", "3.13"],
    "ci": ["github", "azure-devops", "none"],
    "deploy_targets": [
        [],
        ["azure"],
        ["alibaba"],
        ["anthropic"],
        ["azure", "alibaba", "anthropic"],
    ],
    "port": [8088, 9000],
    "slug": ["echo-agent", "2nd-support-bot"],
}


def covering_set() -> list[dict[str, Any]]:
    names = list(ANSWER_VALUES)
    return [
        dict(zip(names, values, strict=True)) for values in AllPairs(list(ANSWER_VALUES.values()))
    ]


COMBINATIONS = covering_set()


def combination_id(answers: dict[str, Any]) -> str:
    targets = "+".join(answers["deploy_targets"]) or "no-targets"
    version, ci, port, slug = (answers[k] for k in ("python_version", "ci", "port", "slug"))
    return f"py{version}-{ci}-{targets}-{port}-{slug}"


def test_covering_set_holds_every_pair_of_values():
    names = list(ANSWER_VALUES)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            for a in ANSWER_VALUES[first]:
                for b in ANSWER_VALUES[second]:
                    assert any(c[first] == a and c[second] == b for c in COMBINATIONS), (
                        first,
                        a,
                        second,
                        b,
                    )


@pytest.mark.slow
@pytest.mark.parametrize("answers", COMBINATIONS, ids=map(combination_id, COMBINATIONS))
def test_render_lints_and_passes_its_own_tests(tmp_path: Path, answers: dict[str, Any]):
    project = render(tmp_path / "agent", **answers)
    load_manifest(project)  # the toolkit accepts what the template writes
    manifest = yaml.safe_load((project / "agent.yaml").read_text())
    assert manifest["name"] == answers["slug"]
    assert manifest["runtime"]["port"] == answers["port"]
    assert sorted(manifest["targets"]) == sorted(answers["deploy_targets"])
    assert (project / ".github/workflows/ci.yml").is_file() == (answers["ci"] == "github")
    assert (project / "azure-pipelines.yml").is_file() == (answers["ci"] == "azure-devops")
    dockerfile = (project / "Dockerfile").read_text()
    assert f"EXPOSE {answers['port']}" in dockerfile

    lint = run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=project)
    assert lint.returncode == 0, lint.stdout + lint.stderr

    # The server's hardening, fuzz, load and drain tests do not depend on any answer:
    # tests/test_hardening.py runs them once (fuzz at CI size), not twenty times here.
    skipped = ("test_hardening", "test_fuzz", "test_load", "test_serve")
    tests = run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not container",
         *(f"--ignore=tests/{name}.py" for name in skipped)],
        cwd=project,
    )
    assert tests.returncode == 0, tests.stdout[-4000:] + tests.stderr[-2000:]
