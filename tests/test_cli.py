"""`actk` itself: version, help, start-up cost and `actk new`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from tests.conftest import actk, run
from toolkit import __version__

HEAVY_MODULES = ("docker", "copier", "httpx", "rich", "pydantic", "yaml", "jinja2")


def test_version_prints_the_package_version():
    result = actk("--version")
    assert result.returncode == 0
    assert __version__ in result.stdout


def test_help_lists_the_commands():
    result = actk("--help")
    assert result.returncode == 0
    assert "new" in result.stdout


def test_console_script_and_module_give_the_same_help():
    script = Path(sys.executable).with_name("actk")
    assert run([str(script), "--help"]).stdout == actk("--help").stdout


def test_help_does_not_import_heavy_modules():
    probe = (
        "import sys\n"
        "from toolkit.cli import main\n"
        "sys.argv = ['actk', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules))\n"
    )
    result = run([sys.executable, "-c", probe])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_new_with_defaults_renders_a_repository_and_prints_next_steps(tmp_path: Path):
    result = actk("new", str(tmp_path / "demo"), "--defaults")
    assert result.returncode == 0, result.stderr
    for name in (
        "agent.yaml",
        "pyproject.toml",
        "Dockerfile",
        ".dockerignore",
        "README.md",
        ".copier-answers.yml",
        "src/demo/agent.py",
        "src/demo/app.py",
        "tests",
    ):
        assert (tmp_path / "demo" / name).exists(), name
    assert "Next:" in result.stdout
    assert "pytest" in result.stdout


def test_new_without_a_terminal_takes_the_defaults(tmp_path: Path):
    result = actk("new", str(tmp_path / "no-tty"))
    assert result.returncode == 0, result.stderr
    manifest = yaml.safe_load((tmp_path / "no-tty" / "agent.yaml").read_text())
    assert manifest["name"] == "no-tty"


def test_new_refuses_a_non_empty_directory(tmp_path: Path):
    (tmp_path / "keep.txt").write_text("mine")
    result = actk("new", str(tmp_path), "--defaults")
    assert result.returncode == 4
    assert "is not empty" in result.stderr
    assert "--force" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_new_force_renders_into_a_non_empty_directory_and_keeps_other_files(tmp_path: Path):
    (tmp_path / "keep.txt").write_text("mine")
    result = actk("new", str(tmp_path), "--defaults", "--force")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "keep.txt").read_text() == "mine"
    assert (tmp_path / "agent.yaml").is_file()


def test_new_data_sets_answers(tmp_path: Path):
    result = actk(
        "new",
        str(tmp_path / "x"),
        "--data",
        "slug=support-agent",
        "--data",
        "port=9000",
        "--data",
        "deploy_targets=azure,anthropic",
        "--data",
        "ci=none",
    )
    assert result.returncode == 0, result.stderr
    manifest = yaml.safe_load((tmp_path / "x" / "agent.yaml").read_text())
    assert manifest["name"] == "support-agent"
    assert manifest["runtime"]["port"] == 9000
    assert sorted(manifest["targets"]) == ["anthropic", "azure"]
    assert (tmp_path / "x" / "src" / "support_agent" / "agent.py").is_file()
    assert not (tmp_path / "x" / ".github").exists()


def test_new_rejects_an_invalid_slug_naming_the_rule(tmp_path: Path):
    result = actk("new", str(tmp_path / "x"), "--data", "slug=Not_A_Slug")
    assert result.returncode == 4
    assert "slug" in result.stderr and "a-z, 0-9 and '-'" in result.stderr
    assert not (tmp_path / "x").exists()


def test_new_rejects_an_unknown_question(tmp_path: Path):
    result = actk("new", str(tmp_path / "x"), "--data", "colour=blue")
    assert result.returncode == 2
    assert "no question 'colour'" in result.stderr
    assert "slug" in result.stderr  # the hint lists the known questions


def test_new_rejects_data_without_equals(tmp_path: Path):
    result = actk("new", str(tmp_path / "x"), "--data", "slug")
    assert result.returncode == 2
    assert "key=value" in result.stderr


def test_new_json_prints_the_path_answers_and_next_steps(tmp_path: Path):
    result = actk("new", str(tmp_path / "j"), "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["answers"]["slug"] == "j"
    assert payload["path"].endswith("j")
    assert payload["next"][0].startswith("cd ")


def test_new_json_reports_errors_as_json(tmp_path: Path):
    (tmp_path / "keep.txt").write_text("mine")
    result = actk("new", str(tmp_path), "--json")
    assert result.returncode == 4
    payload = json.loads(result.stdout)
    assert payload["error"] == "ScaffoldError"
    assert payload["hint"]
