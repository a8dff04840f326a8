"""The toolkit inside CI pipelines: detection, GitHub Actions annotations, job summary, outputs.

Every command already runs without prompts or spinners when ``CI`` is set or there is no
terminal (``toolkit.console``). On GitHub Actions (``GITHUB_ACTIONS=true``) it also:

- writes an error annotation (``::error title=...::message``) for every failure, on stderr so
  ``--json`` output on stdout stays one JSON object (the runner reads workflow commands from
  both streams);
- appends a Markdown section to ``$GITHUB_STEP_SUMMARY`` for each command's result (image and
  tags, digest, smoke checks, deploy result) and for each failure.

``actk ci plan`` (``plan`` below) reads agent.yaml and tells a pipeline what there is to do:
push or not, which deploy targets are configured, and the base image; on GitHub it also writes
them to ``$GITHUB_OUTPUT`` so later jobs can be skipped with ``if:``.

Nothing here ever prints or writes an environment variable's value other than the paths the
runner gives; payloads come from the commands' own ``to_dict()``, which hold no secrets.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

TRUE_VALUES = ("1", "true", "yes")


def in_ci(env: Mapping[str, str] | None = None) -> bool:
    """``CI`` is set to a true value (GitHub Actions, Azure Pipelines' TF_BUILD, most others)."""
    env = os.environ if env is None else env
    return env.get("CI", "").lower() in TRUE_VALUES or env.get("TF_BUILD", "").lower() == "true"


def on_github(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return env.get("GITHUB_ACTIONS", "").lower() == "true"


def on_azure_pipelines(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return env.get("TF_BUILD", "").lower() == "true"


# --- workflow commands ------------------------------------------------------------------------


def escape_data(text: str) -> str:
    """A workflow command's message: ``%``, CR and LF escaped as the runner expects."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value: also ``:`` and ``,``."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(level: str, message: str, *, title: str | None = None,
               file: str | None = None) -> str:
    """The line of a GitHub annotation (``error``, ``warning`` or ``notice``)."""
    properties = []
    if title:
        properties.append(f"title={escape_property(title)}")
    if file:
        properties.append(f"file={escape_property(file)}")
    head = f"::{level}" + (" " + ",".join(properties) if properties else "")
    return f"{head}::{escape_data(message)}"


def azure_issue(level: str, message: str) -> str:
    """The Azure Pipelines logging command for an error or warning."""
    kind = "error" if level == "error" else "warning"
    flat = message.replace("\r", " ").replace("\n", " ")
    return f"##vso[task.logissue type={kind}]{flat}"


def _write_file(variable: str, text: str, env: Mapping[str, str]) -> bool:
    path = env.get(variable)
    if not path:
        return False
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text)
    except OSError:
        return False  # a summary must never turn a success into a failure
    return True


def append_summary(markdown: str, env: Mapping[str, str] | None = None) -> bool:
    """Append to the job summary; False when there is none (not on GitHub, or unwritable)."""
    env = os.environ if env is None else env
    return _write_file("GITHUB_STEP_SUMMARY", markdown.rstrip("\n") + "\n\n", env)


def set_outputs(values: Mapping[str, str], env: Mapping[str, str] | None = None, *,
                json_on_stdout: bool = False) -> bool:
    """Step outputs: ``$GITHUB_OUTPUT`` on GitHub (heredoc syntax, so any value is safe);
    ``##vso[task.setvariable ...;isOutput=true]`` lines in Azure Pipelines, on stdout unless
    stdout carries ``--json``'s one object (then on stderr, which the agent also reads)."""
    env = os.environ if env is None else env
    if on_azure_pipelines(env) and not on_github(env):
        stream = sys.stderr if json_on_stdout else sys.stdout
        for name, value in values.items():
            flat = str(value).replace("\r", " ").replace("\n", " ")
            print(f"##vso[task.setvariable variable={name};isOutput=true]{flat}", file=stream,
                  flush=True)
        return True
    lines = []
    for name, value in values.items():
        delimiter = f"ACTK_{uuid.uuid4().hex}"
        lines.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
    return _write_file("GITHUB_OUTPUT", "".join(lines), env)


# --- what a command reports -------------------------------------------------------------------


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _code(value: Any) -> str:
    text = _cell(value)
    return f"`{text}`" if text else ""


def summary_markdown(command: str, payload: Mapping[str, Any]) -> str | None:
    """The job-summary section for one command's result, or None if it has nothing to show."""
    verb = command.split()[1] if len(command.split()) > 1 else command
    if verb == "build":
        return _build_summary(command, payload)
    if verb == "push":
        return _push_summary(command, payload)
    if verb == "smoke":
        return _smoke_summary(command, payload)
    if verb == "deploy":
        return _deploy_summary(command, payload)
    if verb == "update":
        return _update_summary(command, payload)
    return None


def _table(rows: list[tuple[str, Any]]) -> str:
    lines = ["| | |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows if value not in (None, "")]
    return "\n".join(lines)


def _build_summary(command: str, payload: Mapping[str, Any]) -> str:
    tags = payload.get("tags") or []
    text = f"### :package: `{command}`\n\n" + _table([
        ("image", _code(payload.get("image_id"))),
        ("tags", "<br>".join(_code(tag) for tag in tags)),
        ("platform", _code(payload.get("platform"))),
        ("builder", _cell(payload.get("builder"))),
        ("seconds", _cell(payload.get("seconds"))),
    ])
    pushed = payload.get("push")
    if isinstance(pushed, Mapping):
        text += "\n\n" + _push_summary(f"{command} --push", pushed)
    return text


def _push_summary(command: str, payload: Mapping[str, Any]) -> str:
    digest = payload.get("digest")
    verified = "" if payload.get("digest_verified", True) else " (as reported by the engine)"
    return f"### :arrow_up: `{command}`\n\n" + _table([
        ("image", _code(payload.get("reference"))),
        ("digest", _code(digest) + verified if digest else "(none)"),
        ("tags", ", ".join(_code(tag) for tag in payload.get("tags") or [])),
        ("registry", _code(payload.get("registry"))),
        ("signed in with", _cell(payload.get("credentials"))),
        ("layers", f"{payload.get('layers_uploaded', 0)} uploaded, "
                   f"{payload.get('layers_existing', 0)} already there"),
    ])


def _smoke_summary(command: str, payload: Mapping[str, Any]) -> str:
    checks = payload.get("checks") or []
    passed = bool(payload.get("passed"))
    icon = ":white_check_mark:" if passed else ":x:"
    failed = sum(1 for check in checks if not check.get("passed"))
    verdict = (f"all {len(checks)} checks passed" if passed
               else f"{failed} of {len(checks)} checks failed")
    lines = [f"### {icon} `{command}`: {verdict}", "", f"image {_code(payload.get('image'))}",
             "", "| check | result | seconds | detail |", "|---|---|---|---|"]
    for check in checks:
        result = "PASS" if check.get("passed") else "**FAIL**"
        lines.append(f"| {_cell(check.get('name'))} | {result} | {_cell(check.get('seconds'))} "
                     f"| {_cell(check.get('detail'))} |")
    return "\n".join(lines)


def _deploy_summary(command: str, payload: Mapping[str, Any]) -> str:
    action = payload.get("action")
    icon = ":rocket:" if payload.get("changed") else ":ballot_box_with_check:"
    if payload.get("dry_run"):
        icon = ":memo:"
    rows: list[tuple[str, Any]] = [
        ("target", _cell(payload.get("target"))),
        ("action", _cell(action) + (" (dry run: nothing sent)" if payload.get("dry_run") else "")),
        ("image", _code(payload.get("image"))),
        ("version", _cell(payload.get("version"))),
        ("status", _cell(payload.get("status"))),
        ("endpoint", _code(payload.get("endpoint"))),
        ("reason", _cell(payload.get("reason"))),
    ]
    text = f"### {icon} `{command}`\n\n" + _table(rows)
    warnings = payload.get("warnings") or []
    if warnings:
        text += "\n\n" + "\n".join(f"> :warning: {_cell(w)}" for w in warnings)
    return text


def _update_summary(command: str, payload: Mapping[str, Any]) -> str:
    conflicts = payload.get("conflicts") or []
    icon = ":warning:" if conflicts else ":arrows_counterclockwise:"
    text = f"### {icon} `{command}`: template {payload.get('from')} → {payload.get('to')}"
    if conflicts:
        text += "\n\nconflicts to resolve:\n\n" + "\n".join(f"- `{c}`" for c in conflicts)
    return text


def error_markdown(command: str, error: Mapping[str, Any]) -> str:
    text = f"### :x: `{command}` failed (exit code {error.get('exit_code')})\n\n"
    text += f"**{_cell(error.get('error'))}**: {error.get('message')}"
    if error.get("hint"):
        text += f"\n\n> hint: {error['hint']}"
    logs = str(error.get("logs") or "").strip()
    if logs:
        tail = "\n".join(logs.splitlines()[-40:])
        text += ("\n\n<details><summary>container logs (last lines)</summary>\n\n"
                 f"```\n{tail}\n```\n\n</details>")
    return text


def result_outputs(command: str, payload: Mapping[str, Any]) -> dict[str, str]:
    """Step outputs a command's result gives: ``image`` (repository@digest) and ``digest``
    for a push, so a later job deploys exactly what was pushed."""
    pushed = payload.get("push") if isinstance(payload.get("push"), Mapping) else payload
    if command.split()[1:2] not in (["push"], ["build"]) or not isinstance(pushed, Mapping):
        return {}
    digest, repository = pushed.get("digest"), pushed.get("repository")
    if not (digest and repository):
        return {}
    return {"image": f"{repository}@{digest}", "digest": str(digest)}


def record_result(command: str, payload: Mapping[str, Any],
                  env: Mapping[str, str] | None = None, *, json_on_stdout: bool = False) -> bool:
    """In CI: a command's result in the GitHub job summary, and its step outputs."""
    env = os.environ if env is None else env
    outputs = result_outputs(command, payload)
    if outputs and (on_github(env) or on_azure_pipelines(env)):
        set_outputs(outputs, env, json_on_stdout=json_on_stdout)
    if not on_github(env):
        return False
    markdown = summary_markdown(command, payload)
    return bool(markdown) and append_summary(markdown, env)


def failure_lines(command: str, error: Mapping[str, Any],
                  env: Mapping[str, str] | None = None) -> list[str]:
    """The annotation lines for a failure (GitHub, Azure Pipelines), and the summary written."""
    env = os.environ if env is None else env
    message = str(error.get("message") or "")
    if error.get("hint"):
        message += f"\nhint: {error['hint']}"
    lines = []
    if on_github(env):
        lines.append(annotation("error", message, title=f"{command} failed"))
        append_summary(error_markdown(command, error), env)
    elif on_azure_pipelines(env):
        lines.append(azure_issue("error", f"{command} failed: {message}"))
    return lines


# --- actk ci plan -----------------------------------------------------------------------------


TARGETS = ("azure", "alibaba", "anthropic")


def plan(directory: Path) -> dict[str, Any]:
    """What a pipeline should do for the repository at ``directory``, from its agent.yaml.

    ``push`` is true when ``image.repository`` names a registry host (a bare name would go to
    Docker Hub's library namespace, which is never what an agent repository means); each target
    is "ready" when its section exists and has what the deploy needs to run.
    """
    from toolkit.manifest import load_manifest
    from toolkit.registry.hosts import DOCKER_HUB, registry_host
    from toolkit.registry.resolve import registry_kind
    from toolkit.tags import split_reference

    manifest = load_manifest(directory)
    repository = split_reference(manifest.image.repository or manifest.name)[0]
    host = registry_host(repository)
    has_host = host != DOCKER_HUB or repository.startswith(DOCKER_HUB + "/")
    first = host
    targets = manifest.targets
    configured = {name: getattr(targets, name, None) is not None for name in TARGETS}
    problems: dict[str, str] = {}
    if configured["azure"] and not (targets.azure.project_endpoint or "").strip():
        problems["azure"] = "targets.azure.project_endpoint is empty"
    ready = {name: configured[name] and name not in problems for name in TARGETS}
    if not has_host:
        push_reason = (f"image.repository '{repository}' names no registry: set it to "
                       f"<registry>/<name> (e.g. myregistry.azurecr.io/{manifest.name})")
    else:
        push_reason = ""
    return {
        "name": manifest.name,
        "repository": repository,
        "registry": first if has_host else None,
        "registry_kind": registry_kind(host, manifest.image.registry) if has_host else None,
        "push": has_host,
        "push_reason": push_reason,
        "base_image": manifest.build.base_image,
        "platform": manifest.build.platform,
        "targets": [name for name in TARGETS if configured[name]],
        "ready": [name for name in TARGETS if ready[name]],
        "problems": problems,
    }


def plan_outputs(result: Mapping[str, Any]) -> dict[str, str]:
    """The plan as GitHub step outputs (strings: ``true``/``false``, JSON lists)."""
    import json

    outputs = {
        "push": "true" if result["push"] else "false",
        "repository": str(result["repository"]),
        "base_image": str(result["base_image"] or ""),
        "platform": str(result["platform"] or ""),
        "targets": json.dumps(result["targets"]),
        "registry_kind": str(result.get("registry_kind") or ""),
    }
    for name in TARGETS:
        outputs[name] = "true" if (result["push"] and name in result["ready"]) else "false"
    return outputs
