"""The generated CI pipelines, for every answer that shapes them.

GitHub workflows are checked with actionlint (the real workflow linter, with shellcheck for the
`run:` scripts); Azure Pipelines YAML is parsed and checked against the structure it must have.
Only the pipeline files are rendered (copier's exclude), so every combination is cheap.
"""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import TEMPLATE

TARGETS = ["azure", "alibaba", "anthropic"]
TARGET_SETS = [list(c) for n in range(4) for c in itertools.combinations(TARGETS, n)]
PROVIDERS = ["echo", "openai", "azure-openai", "anthropic", "dashscope"]
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
SECRET = {"openai": "OPENAI_API_KEY", "azure-openai": "AZURE_OPENAI_API_KEY",
          "anthropic": "ANTHROPIC_API_KEY", "dashscope": "DASHSCOPE_API_KEY"}
PIPELINE_ONLY = ["*", "!.github", "!.github/**", "!azure-pipelines.yml"]
ACTION_PIN = r"^[\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+(\.\d+)*$"


def combinations() -> list[dict[str, Any]]:
    """Every deploy-target set with every model provider; Python versions in rotation."""
    result = []
    for index, (targets, provider) in enumerate(itertools.product(TARGET_SETS, PROVIDERS)):
        result.append({"deploy_targets": targets, "model_provider": provider,
                       "python_version": PYTHONS[index % len(PYTHONS)]})
    return result


COMBINATIONS = combinations()


def combo_id(answers: dict[str, Any]) -> str:
    return "+".join(answers["deploy_targets"]) or "none"


def render_pipeline(destination: Path, **answers: Any) -> Path:
    import copier

    copier.run_copy(str(TEMPLATE), str(destination), data=answers, defaults=True, quiet=True,
                    unsafe=False, exclude=PIPELINE_ONLY)
    return destination


def tool(name: str) -> str:
    """A linter installed with the test extra (next to this Python, else on PATH)."""
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.is_file() else shutil.which(name)
    assert found, f"{name} is missing: pip install -e '.[test]' (it brings {name})"
    return found


def actionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("actionlint"), "-shellcheck", tool("shellcheck"), "-no-color",
         *map(str, paths)],
        capture_output=True, text=True, timeout=300, check=False,
    )


@pytest.fixture(scope="module")
def github_renders(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[dict, Path]]:
    root = tmp_path_factory.mktemp("github")
    renders = []
    for index, answers in enumerate(COMBINATIONS):
        project = render_pipeline(root / f"r{index}", ci="github", **answers)
        renders.append((answers, project / ".github/workflows/ci.yml"))
    return renders


@pytest.fixture(scope="module")
def azure_renders(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[dict, dict]]:
    root = tmp_path_factory.mktemp("azure")
    renders = []
    for index, answers in enumerate(COMBINATIONS):
        project = render_pipeline(root / f"r{index}", ci="azure-devops", **answers)
        assert not (project / ".github").exists()
        text = (project / "azure-pipelines.yml").read_text()
        renders.append((answers, yaml.safe_load(text)))
    return renders


def test_actionlint_is_a_real_linter(tmp_path: Path):
    """The linter used below rejects a broken workflow (so its passes mean something)."""
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: actions/checkout@v4\n        with: {fetch-dept: 1}\n"
        "      - run: echo ${{ github.event.pull_request.title }}\n"
        "      - if: ${{ steps.nope.outputs.x == 'y' }}\n        run: test $unset = 1\n"
    )
    done = actionlint(broken)
    assert done.returncode == 1, done.stdout + done.stderr
    for rule in ("action", "expression", "shellcheck"):
        assert f"[{rule}]" in done.stdout, done.stdout


def test_every_github_workflow_passes_actionlint(github_renders):
    done = actionlint(*(path for _, path in github_renders))
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr


def test_github_workflow_jobs_follow_the_answers(github_renders):
    for answers, path in github_renders:
        workflow = yaml.safe_load(path.read_text())
        jobs = workflow["jobs"]
        expected = {"test", "image", *(f"deploy-{t}" for t in answers["deploy_targets"])}
        assert set(jobs) == expected, (answers, sorted(jobs))
        assert workflow["env"]["PYTHON_VERSION"] == answers["python_version"]
        # pull requests and the default branch; cancel superseded PR runs only
        assert set(workflow[True]) >= {"push", "pull_request"}  # yaml reads `on` as True
        assert workflow["concurrency"]["cancel-in-progress"] == (
            "${{ github.event_name == 'pull_request' }}")
        # least privilege: read-only by default, OIDC only where a cloud sign-in happens
        assert workflow["permissions"] == {"contents": "read"}
        assert "permissions" not in jobs["test"]
        for name, job in jobs.items():
            wants_oidc = name in ("image", "deploy-azure", "deploy-alibaba")
            assert job.get("permissions", {}).get("id-token") == (
                "write" if wants_oidc else None), name
            if name.startswith("deploy-"):
                target = name.removeprefix("deploy-")
                assert job["needs"] == "image"
                assert job["if"] == (f"github.event_name == 'push' && "
                                     f"needs.image.outputs.{target} == 'true'")
                assert job["concurrency"]["cancel-in-progress"] is False
        steps = jobs["image"]["steps"]
        runs = [step.get("run", "") for step in steps]
        assert any("actk build --builder" in run for run in runs)
        push = next(step for step in steps if step.get("id") == "push")
        assert push["if"].startswith("github.event_name == 'push'")
        smoke = next(step for step in steps if "actk smoke" in step.get("run", ""))
        secret = SECRET.get(answers["model_provider"])
        assert smoke.get("env", {}) == ({secret: f"${{{{ secrets.{secret} }}}}"} if secret
                                        else {})
        # Without the model's key (a fork's pull request) the echo model stands in.
        assert ("actk smoke --env MODEL_PROVIDER=echo" in smoke["run"]) == bool(secret)
        cache = next(step for step in steps if "build-push-action" in step.get("uses", ""))
        assert cache["with"]["cache-from"].startswith("type=gha")
        assert cache["with"]["outputs"] == "type=cacheonly"
        assert jobs["test"]["steps"][1]["with"]["cache"] == "pip"


def test_github_workflow_signs_in_as_the_toolkit_reads(github_renders):
    """OIDC for Azure and Alibaba, a secret for Anthropic; the variables are the toolkit's."""
    for answers, path in github_renders:
        text = path.read_text()
        workflow = yaml.safe_load(text)
        jobs = workflow["jobs"]
        image = jobs["image"]["steps"]
        assert any(s.get("uses", "").startswith("azure/login@") for s in image)
        assert "AZURE_ACCESS_TOKEN=$token" in text
        assert any(s.get("uses", "").startswith("aliyun/configure-aliyun-credentials-action@")
                   for s in image)
        if "azure" in answers["deploy_targets"]:
            deploy = jobs["deploy-azure"]["steps"]
            login = next(s for s in deploy if s.get("uses", "").startswith("azure/login@"))
            assert set(login["with"]) == {"client-id", "tenant-id", "subscription-id"}
            assert any("--resource https://ai.azure.com" in s.get("run", "") for s in deploy)
            assert any("AZURE_AI_ACCESS_TOKEN=$token" in s.get("run", "") for s in deploy)
        if "alibaba" in answers["deploy_targets"]:
            deploy = jobs["deploy-alibaba"]["steps"]
            login = next(s for s in deploy if "configure-aliyun" in s.get("uses", ""))
            assert {"role-to-assume", "oidc-provider-arn"} <= set(login["with"])
        if "anthropic" in answers["deploy_targets"]:
            deploy = jobs["deploy-anthropic"]["steps"][-1]
            assert deploy["env"]["ANTHROPIC_API_KEY"] == "${{ secrets.ANTHROPIC_API_KEY }}"
        for job in jobs.values():
            for step in job["steps"]:
                if "uses" in step:
                    uses = step["uses"]
                    line = next(x.strip() for x in text.splitlines() if uses in x)
                    # every action pinned to a commit with its version; build-push-action
                    # to its major tag (no v7 commit could be verified)
                    pinned = line.removeprefix("- ").removeprefix("uses: ")
                    assert re.search(ACTION_PIN, pinned) or pinned == (
                        "docker/build-push-action@v7"), line


def test_the_toolkit_reads_what_the_workflow_sets():
    """The variables the pipelines set are the ones the toolkit's clients read."""
    import inspect

    from toolkit.cloud import alibaba, azure_auth
    from toolkit.registry import resolve

    assert azure_auth.TOKEN_VARIABLES[azure_auth.ARM_SCOPE] == "AZURE_ACCESS_TOKEN"
    assert azure_auth.TOKEN_VARIABLES[azure_auth.FOUNDRY_SCOPE] == "AZURE_AI_ACCESS_TOKEN"
    assert resolve.USERNAME_VARIABLE == "ACTK_REGISTRY_USERNAME"
    assert resolve.PASSWORD_VARIABLE == "ACTK_REGISTRY_PASSWORD"
    source = inspect.getsource(alibaba)
    for name in ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
                 "ALIBABA_CLOUD_SECURITY_TOKEN"):
        assert f'"{name}"' in source


def test_azure_pipeline_structure(azure_renders):
    for answers, pipeline in azure_renders:
        assert pipeline["trigger"] == {"branches": {"include": ["main"]}}
        assert pipeline["pr"] == {"branches": {"include": ["*"]}}
        variables = {v["name"]: v["value"] for v in pipeline["variables"] if "name" in v}
        assert {"group": "actk"} in pipeline["variables"]
        assert variables["pythonVersion"] == answers["python_version"]
        stages = {stage["stage"]: stage for stage in pipeline["stages"]}
        assert list(stages) == ["test", "image", *(f"deploy_{t}" for t in
                                                   answers["deploy_targets"])]
        assert stages["image"]["dependsOn"] == "test"
        image_steps = stages["image"]["jobs"][0]["steps"]
        names = [step.get("name") for step in image_steps]
        assert "plan" in names and "push" in names
        push = next(step for step in image_steps if step.get("name") == "push")
        assert "eq(variables.isMain, 'True')" in push["condition"]
        assert "actk push" in push["script"]
        smoke = next(step for step in image_steps if "actk smoke" in step.get("script", ""))
        secret = SECRET.get(answers["model_provider"])
        assert smoke.get("env", {}) == ({secret: f"$({secret})"} if secret else {})
        assert ("actk smoke --env MODEL_PROVIDER=echo" in smoke["script"]) == bool(secret)
        assert any(step.get("task") == "Cache@2" for step in image_steps)
        assert any("actk build --builder actk" in step.get("script", "") for step in image_steps)
        for target in answers["deploy_targets"]:
            stage = stages[f"deploy_{target}"]
            assert stage["dependsOn"] == "image"
            assert f"dependencies.image.outputs['image.plan.{target}']" in stage["condition"]
            assert stage["variables"]["image"] == (
                "$[ stageDependencies.image.image.outputs['push.image'] ]")
            job = stage["jobs"][0]
            assert job["environment"] == target
            steps = job["strategy"]["runOnce"]["deploy"]["steps"]
            text = yaml.safe_dump(steps)
            assert f"actk deploy {target} --image" in text
            if target == "azure":
                cli = next(s for s in steps if s.get("task") == "AzureCLI@2")
                assert cli["inputs"]["azureSubscription"] == "$(azureServiceConnection)"
                assert "--resource https://ai.azure.com" in cli["inputs"]["inlineScript"]
            if target == "anthropic":
                assert "ANTHROPIC_API_KEY: $(ANTHROPIC_API_KEY)" in text


def test_no_pipeline_for_ci_none(tmp_path: Path):
    project = render_pipeline(tmp_path / "x", ci="none", deploy_targets=TARGETS)
    assert not any(project.rglob("*.yml"))
