"""agent.yaml: valid manifests load; every broken one gives a one-line error per problem that
names the field, and a hint with the fix, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO, actk, render
from toolkit.errors import ManifestError
from toolkit.manifest import load_manifest

# (agent.yaml text, what the message must say, what the hint must say)
BROKEN = {
    "name missing": ("description: x\n", "name: required field is missing", "'name'"),
    "name with capitals": ("name: Support_Agent\n", "name: 'Support_Agent' is not a valid", ""),
    "unknown top-level field": (
        "name: a\nrutime: {port: 1}\n",
        "rutime: unknown field",
        "did you mean 'runtime'",
    ),
    "unknown nested field": (
        "name: a\nruntime: {prot: 1}\n",
        "runtime.prot: unknown field",
        "did you mean 'port'",
    ),
    "unknown input field": (
        "name: a\nstructured_inputs: {user: {requird: true}}\n",
        "structured_inputs.user.requird: unknown field",
        "did you mean 'required'",
    ),
    "port too high": (
        "name: a\nruntime: {port: 70000}\n",
        "runtime.port: must be at most 65535 (got 70000)",
        "runtime.port",
    ),
    "temperature too high": ("name: a\ntemperature: 3\n", "temperature: must be at most 2", ""),
    "top_p negative": ("name: a\ntop_p: -0.1\n", "top_p: must be at least 0", ""),
    "unknown provider": (
        "name: a\nmodel: {provider: gemini}\n",
        "model.provider: 'gemini' is not allowed",
        "",
    ),
    "metadata too many pairs": (
        "name: a\nmetadata: {" + ", ".join(f"k{i}: v" for i in range(17)) + "}\n",
        "metadata: 17 pairs; at most 16",
        "",
    ),
    "metadata key too long": (
        f"name: a\nmetadata: {{{'k' * 65}: v}}\n",
        "longer than 64 characters",
        "",
    ),
    "secret given as a value": (
        "name: a\nruntime: {secrets: ['sk-123=abc']}\n",
        "runtime.secrets: 'sk-123=abc' is not an environment variable",
        "",
    ),
    "bad env name": ("name: a\nruntime: {env: {'1X': y}}\n", "runtime.env: '1X'", ""),
    "default of the wrong type": (
        "name: a\nstructured_inputs: {n: {default_value: 3, schema: {type: string}}}\n",
        "structured_inputs.n: default_value 3 is not a string",
        "",
    ),
    "unknown schema type": (
        "name: a\nstructured_inputs: {n: {schema: {type: date}}}\n",
        "structured_inputs.n.schema.type: 'date' is not allowed",
        "",
    ),
    "json_schema format without schema": (
        "name: a\nresponse_format: {type: json_schema}\n",
        "response_format: type json_schema needs",
        "",
    ),
    "platform": (
        "name: a\nbuild: {platform: windows/amd64}\n",
        "build.platform: use linux/amd64",
        "",
    ),
    "not a mapping": ("- a\n- b\n", "must be a mapping of fields", "actk new"),
    "invalid YAML": ("name: a\n  bad: [\n", "not valid YAML at line 2, column 6", "YAML syntax"),
}


def write(directory: Path, text: str) -> Path:
    (directory / "agent.yaml").write_text(text)
    return directory


def test_the_example_manifest_is_valid():
    manifest = load_manifest(REPO / "examples" / "echo-agent")
    assert manifest.name == "echo-agent"
    assert manifest.model.provider == "echo"
    assert manifest.runtime.port == 8088


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_manifest_names_the_field_and_the_fix(tmp_path: Path, case: str):
    text, message, hint = BROKEN[case]
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(tmp_path, text))
    assert message in caught.value.message
    assert hint in (caught.value.hint or "")


def test_each_problem_gets_its_own_line(tmp_path: Path):
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(tmp_path, "name: a\nruntime: {port: 0, prot: 1}\ntop_p: 9\n"))
    lines = caught.value.message.splitlines()
    assert len(lines) == 3
    assert all(line.startswith("agent.yaml: ") for line in lines)


def test_a_missing_manifest_says_where_it_looked(tmp_path: Path):
    with pytest.raises(ManifestError, match=r"agent\.yaml not found"):
        load_manifest(tmp_path)


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_actk_check_reports_a_broken_manifest_without_a_traceback(tmp_path: Path, case: str):
    result = actk("check", str(write(tmp_path, BROKEN[case][0])))
    assert result.returncode == 3
    assert result.stderr.startswith("error: ")
    assert "hint: " in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_actk_check_accepts_a_fresh_render(default_render: Path):
    result = actk("check", str(default_render))
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout


def test_actk_schema_prints_the_json_schema_of_every_field():
    result = actk("schema")
    schema = json.loads(result.stdout)
    assert {"name", "model", "runtime", "structured_inputs", "targets"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False


def test_actk_check_runs_the_containers_template_checks(tmp_path: Path):
    project = render(tmp_path / "support-agent")
    manifest = (project / "agent.yaml").read_text()
    manifest = manifest.replace("structured_inputs: {}", "structured_inputs:\n  userName: {}")
    manifest = manifest.replace(
        "concise and helpful assistant.", "concise and helpful assistant.\n  Greet {{usrName}}."
    )
    (project / "agent.yaml").write_text(manifest)

    result = actk("check", str(project))

    assert result.returncode == 3
    assert "unknown structured input 'usrName' at line 2" in result.stderr
    assert "declared: userName" in result.stderr


def test_actk_check_accepts_declared_placeholders(tmp_path: Path):
    project = render(tmp_path / "support-agent")
    manifest = (project / "agent.yaml").read_text()
    manifest = manifest.replace("structured_inputs: {}", "structured_inputs:\n  userName: {}")
    manifest = manifest.replace(
        "concise and helpful assistant.", "concise and helpful assistant.\n  Greet {{userName}}."
    )
    (project / "agent.yaml").write_text(manifest)

    result = actk("check", str(project), "--json")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["templates_checked"] is True
