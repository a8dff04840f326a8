"""The template lifecycle: versions, `actk new` recording them, and `actk update` (copier update)
across a real template change (0.1.0 -> 0.2.0: the CI pipelines, the README's CI section and a
comment in agent.yaml)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import TEMPLATE, actk
from toolkit import template_versions
from toolkit.errors import ScaffoldError
from toolkit.template_versions import SOURCE_URL, build_history, release, template_source

OLD = "v0.1.0"


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=Dev", "-c", "user.email=dev@example.com", *args],
        cwd=repo, capture_output=True, text=True, check=True,
    )
    return done.stdout


def render_version(destination: Path, ref: str, **answers) -> Path:
    import copier

    with template_source():
        copier.run_copy(SOURCE_URL, str(destination), vcs_ref=ref, data=answers, defaults=True,
                        quiet=True, unsafe=False)
    git(destination, "init", "-q", "-b", "main")
    git(destination, "add", "-A")
    git(destination, "commit", "-qm", "agent from actk new")
    return destination


def answers_of(project: Path) -> dict:
    return yaml.safe_load((project / ".copier-answers.yml").read_text())


def test_versions_rebuild_exactly_as_recorded(tmp_path: Path):
    history = build_history(tmp_path / "repo")
    released = [f"v{r.version}" for r in template_versions.releases()]
    assert released[:2] == ["v0.1.0", "v0.2.0"]
    assert history.tags[: len(released)] == released
    if history.released:
        assert history.current == released[-1]
    else:  # work in progress on the template: the tree itself, on top of the last release
        assert history.current.startswith(released[-1] + "+dev.")
    # the two versions really differ where the template changed
    old = git(history.path, "show", "v0.1.0:template/{% if ci == 'github' %}.github{% endif %}"
              "/workflows/ci.yml.jinja")
    new = git(history.path, "show", "v0.2.0:template/{% if ci == 'github' %}.github{% endif %}"
              "/workflows/ci.yml.jinja")
    assert "actk push" not in old and "actk push" in new


def test_a_damaged_version_is_refused(tmp_path: Path):
    root = tmp_path / "support-bot"
    shutil.copytree(TEMPLATE, root, ignore=shutil.ignore_patterns("__pycache__"))
    patch = root / "versions" / "0.2.0.patch"
    patch.write_text(patch.read_text().replace("actk smoke", "actk smok", 1))
    with pytest.raises(ScaffoldError, match=r"does not reproduce template version 0\.2\.0"):
        build_history(tmp_path / "repo", root)


def test_release_records_the_current_template(tmp_path: Path):
    root = tmp_path / "support-bot"
    shutil.copytree(TEMPLATE, root, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "template" / "NOTES.md").write_text("new in 9.0.0\n")
    release("9.0.0", root)
    history = build_history(tmp_path / "repo", root)
    assert history.released and history.current == "v9.0.0"
    assert git(history.path, "show", "v9.0.0:template/NOTES.md") == "new in 9.0.0\n"
    with pytest.raises(ScaffoldError, match="not newer"):
        release("1.0.0", root)
    with pytest.raises(ScaffoldError, match="has not changed"):
        release("9.0.1", root)


def test_actk_new_records_the_template_version(tmp_path: Path):
    done = actk("new", str(tmp_path / "support-bot"), "--defaults", env={"CI": "true"})
    assert done.returncode == 0, done.stderr
    recorded = answers_of(tmp_path / "support-bot")
    with template_source() as history:
        assert recorded["_commit"] == history.current
    assert recorded["_src_path"] == SOURCE_URL


def test_update_keeps_user_edits_applies_template_changes_and_reports_conflicts(tmp_path: Path):
    project = render_version(tmp_path / "support-bot", OLD, deploy_targets=["azure"])
    assert answers_of(project)["_commit"] == OLD
    workflow = project / ".github/workflows/ci.yml"
    assert "actk push" not in workflow.read_text()  # 0.1.0: lint and test only
    agent_py = project / "src/support_bot/agent.py"
    manifest = project / "agent.yaml"

    # The user's own work: the agent's code, its manifest, and a tweak to the old workflow.
    agent_py.write_text(agent_py.read_text() + "\n\nCUSTOM_GREETING = 'kept by update'\n")
    text = manifest.read_text()
    text = text.replace("a concise and helpful assistant.", "a pirate who answers in rhyme.")
    text = text.replace("metadata: {}", "metadata: {team: support}")
    manifest.write_text(text)
    workflow.write_text(workflow.read_text().replace("run: pytest", "run: pytest -x --lf"))
    git(project, "commit", "-qam", "my agent")

    done = actk("update", str(project), "--json", env={"CI": "true"})
    assert done.returncode == 10, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["error"] == "UpdateConflictError"
    assert report["from"] == "0.1.0"
    assert report["conflicts"] == [".github/workflows/ci.yml"]
    assert "resolve" in report["hint"]

    # the user's edits are kept
    assert "CUSTOM_GREETING = 'kept by update'" in agent_py.read_text()
    updated = yaml.safe_load(manifest.read_text())
    assert updated["instructions"].strip() == "You are Support Bot, a pirate who answers in rhyme."
    assert updated["metadata"] == {"team": "support"}
    # ... and the template's changes are applied around them
    assert "# Where `actk push` (and CI, on the default branch) pushes" in manifest.read_text()
    readme = (project / "README.md").read_text()
    assert "## CI" in readme and "actk update --data" in readme
    # both changed the workflow: copier's inline conflict markers, both sides kept
    conflicted = workflow.read_text()
    assert "<<<<<<< before updating" in conflicted and ">>>>>>> after updating" in conflicted
    assert "pytest -x --lf" in conflicted and "actk push" in conflicted
    # the repository now records the new version
    with template_source() as history:
        assert answers_of(project)["_commit"] == history.current == f"v{report['to']}"


def test_update_without_conflicts_and_to_a_given_version(tmp_path: Path):
    project = render_version(tmp_path / "support-bot", OLD, ci="azure-devops")
    (project / "src/support_bot/agent.py").write_text("# mine\n")
    git(project, "commit", "-qam", "mine")
    done = actk("update", str(project), "--to", "0.2.0", "--json", env={"CI": "true"})
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert (report["from"], report["to"], report["conflicts"]) == ("0.1.0", "0.2.0", [])
    assert "azure-pipelines.yml" in report["changed"]
    assert (project / "src/support_bot/agent.py").read_text() == "# mine\n"
    pipeline = yaml.safe_load((project / "azure-pipelines.yml").read_text())
    assert [s["stage"] for s in pipeline["stages"]] == ["test", "image"]
    assert answers_of(project)["_commit"] == "v0.2.0"
    # an answer can change on the way: a deploy target added later gets its pipeline stage
    git(project, "add", "-A")
    git(project, "commit", "-qm", "update to 0.2.0")
    done = actk("update", str(project), "--to", "0.2.0", "--data", "deploy_targets=alibaba",
                "--json", env={"CI": "true"})
    assert done.returncode == 0, done.stdout + done.stderr
    pipeline = yaml.safe_load((project / "azure-pipelines.yml").read_text())
    assert [s["stage"] for s in pipeline["stages"]] == ["test", "image", "deploy_alibaba"]
    assert "alibaba" in yaml.safe_load((project / "agent.yaml").read_text())["targets"]


@pytest.mark.parametrize(
    ("setup", "message", "hint"),
    [
        ("dirty", "uncommitted changes", "commit or stash"),
        ("no-git", "not a git repository", "git init"),
        ("no-commit", "records no template version", "_commit: v0.1.0"),
        ("unknown", "does not know", "known versions"),
    ],
)
def test_update_refusals_name_the_fix(tmp_path: Path, setup: str, message: str, hint: str):
    project = render_version(tmp_path / "support-bot", OLD)
    answers = project / ".copier-answers.yml"
    if setup == "dirty":
        (project / "agent.yaml").write_text("name: changed\n")
    elif setup == "no-git":
        shutil.rmtree(project / ".git")
    elif setup == "no-commit":
        answers.write_text("\n".join(line for line in answers.read_text().splitlines()
                                     if not line.startswith("_commit")) + "\n")
        git(project, "commit", "-qam", "old answers")
    else:
        answers.write_text(answers.read_text().replace(OLD, "v0.0.7"))
        git(project, "commit", "-qam", "unknown")
    done = actk("update", str(project), env={"CI": "true"})
    assert done.returncode == 4, done.stdout + done.stderr
    assert message in done.stderr and hint in done.stderr


def test_update_lists_versions():
    done = actk("update", "--list", "--json")
    assert done.returncode == 0, done.stderr
    versions = json.loads(done.stdout)["versions"]
    assert versions[:2] == ["0.1.0", "0.2.0"]
