"""The toolkit in CI: annotations, the GitHub job summary, step outputs and `actk ci plan`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import actk, render
from toolkit import ci


def github_env(tmp_path: Path) -> dict[str, str]:
    summary, output = tmp_path / "summary.md", tmp_path / "output.txt"
    summary.touch()
    output.touch()
    return {"CI": "true", "GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary),
            "GITHUB_OUTPUT": str(output), "TF_BUILD": ""}


def read_outputs(path: Path) -> dict[str, str]:
    """Parse $GITHUB_OUTPUT's heredoc syntax as the runner does."""
    values, lines = {}, path.read_text().splitlines()
    index = 0
    while index < len(lines):
        name, delimiter = lines[index].split("<<", 1)
        end = lines.index(delimiter, index + 1)
        values[name] = "\n".join(lines[index + 1 : end])
        index = end + 1
    return values


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render(tmp_path_factory.mktemp("ci") / "support-bot",
                  deploy_targets=["azure", "alibaba", "anthropic"])


def set_manifest(project: Path, **changes) -> None:
    path = project / "agent.yaml"
    data = yaml.safe_load(path.read_text())
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_workflow_command_escaping():
    line = ci.annotation("error", "50% done\nhint: a, b: c", title="actk push: failed, twice")
    assert line == "::error title=actk push%3A failed%2C twice::50%25 done%0Ahint: a, b: c"
    assert ci.azure_issue("error", "a\nb") == "##vso[task.logissue type=error]a b"


def test_a_failure_is_annotated_and_summarized_with_json_kept_clean(tmp_path: Path):
    (tmp_path / "agent.yaml").write_text("name: x\nruntime: {port: 70000}\n")
    env = github_env(tmp_path)
    done = actk("check", str(tmp_path), "--json", env=env)
    assert done.returncode == 3
    assert json.loads(done.stdout)["error"] == "ManifestError"  # stdout: one JSON object
    annotation = next(line for line in done.stderr.splitlines() if line.startswith("::error"))
    assert annotation.startswith("::error title=actk check failed::")
    assert "runtime.port" in annotation and "%0Ahint: " in annotation
    summary = Path(env["GITHUB_STEP_SUMMARY"]).read_text()
    assert "### :x: `actk check` failed (exit code 3)" in summary
    assert "runtime.port" in summary and "> hint:" in summary


def test_no_annotations_outside_ci(tmp_path: Path):
    (tmp_path / "agent.yaml").write_text("name: x\nruntime: {port: 70000}\n")
    done = actk("check", str(tmp_path), env={"GITHUB_ACTIONS": "", "TF_BUILD": ""})
    assert done.returncode == 3
    assert "::error" not in done.stderr and "##vso" not in done.stderr


def test_azure_pipelines_failure_is_a_logged_issue(tmp_path: Path):
    (tmp_path / "agent.yaml").write_text("name: x\nruntime: {port: 70000}\n")
    done = actk("check", str(tmp_path), env={"GITHUB_ACTIONS": "", "TF_BUILD": "True"})
    assert done.returncode == 3
    assert "##vso[task.logissue type=error]actk check failed: " in done.stderr


PUSH = {"reference": "reg.example.com/bot@sha256:" + "a" * 64, "repository": "reg.example.com/bot",
        "tags": ["1f2e3d4c5b6a", "latest"], "digest": "sha256:" + "a" * 64,
        "digest_verified": True, "registry": "reg.example.com", "credentials": "ACTK_REGISTRY_*",
        "bytes_uploaded": 1, "layers_uploaded": 3, "layers_existing": 5, "attempts": 1,
        "seconds": 1.0, "state_file": ".actk/state.json"}


def test_push_result_gives_summary_and_step_outputs(tmp_path: Path):
    env = github_env(tmp_path)
    assert ci.record_result("actk push", PUSH, env)
    summary = Path(env["GITHUB_STEP_SUMMARY"]).read_text()
    assert "### :arrow_up: `actk push`" in summary
    assert f"| digest | `{PUSH['digest']}` |" in summary
    assert "3 uploaded, 5 already there" in summary
    assert read_outputs(Path(env["GITHUB_OUTPUT"])) == {
        "image": f"reg.example.com/bot@{PUSH['digest']}", "digest": PUSH["digest"]}
    # build --push carries the push inside
    (tmp_path / "b").mkdir()
    env = github_env(tmp_path / "b")
    ci.record_result("actk build", {"image_id": "sha256:1", "tags": ["bot:latest"],
                                    "platform": "linux/amd64", "push": PUSH}, env)
    assert read_outputs(Path(env["GITHUB_OUTPUT"]))["image"].endswith(PUSH["digest"])
    assert "`actk build --push`" in Path(env["GITHUB_STEP_SUMMARY"]).read_text()


def test_smoke_and_deploy_summaries():
    smoke = ci.summary_markdown("actk smoke", {
        "image": "bot:latest", "passed": False,
        "checks": [{"name": "readiness", "passed": True, "detail": "ready | now", "seconds": 0.1},
                   {"name": "sigterm", "passed": False, "detail": "exit 137", "seconds": 13}]})
    assert "### :x: `actk smoke`: 1 of 2 checks failed" in smoke
    assert "| sigterm | **FAIL** | 13 | exit 137 |" in smoke
    assert "ready \\| now" in smoke  # a table cell cannot break the table
    deploy = ci.summary_markdown("actk deploy azure", {
        "target": "azure", "action": "created", "changed": True, "dry_run": False,
        "version": "3", "status": "active", "endpoint": "https://x/agents/bot",
        "image": "reg/bot@sha256:1", "warnings": ["metadata trimmed"]})
    assert deploy.startswith("### :rocket: `actk deploy azure`")
    for row in ("| action | created |", "| version | 3 |", "| status | active |",
                "| endpoint | `https://x/agents/bot` |"):
        assert row in deploy
    assert "> :warning: metadata trimmed" in deploy
    assert ci.summary_markdown("actk status azure", {"x": 1}) is None


def test_console_emit_summarizes_in_human_mode_too(tmp_path: Path, monkeypatch):
    import click

    from toolkit.console import Console

    for name, value in github_env(tmp_path).items():
        monkeypatch.setenv(name, value)

    @click.command(name="push")
    def command() -> None:
        Console(as_json=False).emit(PUSH)

    from click.testing import CliRunner

    result = CliRunner().invoke(click.Group("actk", commands=[command]), ["push"])
    assert result.exit_code == 0 and result.output == ""  # nothing on stdout for people
    assert "`actk push`" in (tmp_path / "summary.md").read_text()


def test_ci_plan_bare_repository_means_no_push(project: Path, tmp_path: Path):
    env = github_env(tmp_path)
    done = actk("ci", "plan", "-C", str(project), "--pipeline-targets", "azure,alibaba,anthropic",
                env=env)
    assert done.returncode == 0, done.stderr
    outputs = read_outputs(Path(env["GITHUB_OUTPUT"]))
    assert outputs["push"] == "false"
    assert outputs["azure"] == outputs["alibaba"] == outputs["anthropic"] == "false"
    assert json.loads(outputs["targets"]) == ["azure", "alibaba", "anthropic"]
    assert outputs["base_image"] == "python:3.12-slim"
    assert outputs["platform"] == "linux/amd64"
    warnings = [line for line in done.stderr.splitlines() if line.startswith("::warning")]
    assert any("names no registry" in line for line in warnings)
    assert any("targets.azure is not deployed: targets.azure.project_endpoint is empty" in w
               for w in warnings)


def test_ci_plan_configured_repository(project: Path, tmp_path: Path):
    set_manifest(project, **{
        "image.repository": "myreg.azurecr.io/support-bot",
        "targets.azure.project_endpoint":
            "https://res.services.ai.azure.com/api/projects/proj"})
    env = github_env(tmp_path)
    done = actk("ci", "plan", "-C", str(project), "--pipeline-targets", "azure,alibaba",
                "--json", env=env)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert (plan["push"], plan["registry"], plan["registry_kind"]) == (
        True, "myreg.azurecr.io", "azure")
    assert plan["ready"] == ["azure", "alibaba", "anthropic"]
    assert plan["warnings"] == [
        "agent.yaml configures targets.anthropic but the pipeline has no deploy job for it: "
        "run `actk update --data deploy_targets=alibaba,anthropic,azure`"]
    outputs = read_outputs(Path(env["GITHUB_OUTPUT"]))
    assert (outputs["push"], outputs["registry_kind"], outputs["azure"], outputs["alibaba"]) == (
        "true", "azure", "true", "true")


def test_ci_plan_in_azure_pipelines_sets_output_variables(project: Path):
    done = actk("ci", "plan", "-C", str(project), "--pipeline-targets", "azure",
                env={"TF_BUILD": "True", "GITHUB_ACTIONS": ""})
    assert done.returncode == 0, done.stderr
    variables = dict(re.findall(r"##vso\[task\.setvariable variable=(\w+);isOutput=true\](.*)",
                                done.stdout))
    assert {"push", "registry_kind", "base_image", "platform", "azure", "alibaba",
            "anthropic"} <= set(variables)


def test_ci_is_non_interactive_in_azure_pipelines(monkeypatch):
    from toolkit import console

    monkeypatch.setenv("CI", "")
    monkeypatch.setenv("TF_BUILD", "True")
    assert console.non_interactive()
    assert ci.in_ci({"TF_BUILD": "True"}) and not ci.in_ci({})
