"""`actk ci`: what a CI pipeline asks the toolkit (argument parsing and rendering only)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from toolkit.cli_common import DIRECTORY_OPTION, JSON_OPTION, handle_errors


@click.group()
def ci() -> None:
    """Helpers for CI pipelines (the generated GitHub and Azure DevOps pipelines use them)."""


@ci.command()
@click.option(
    "--pipeline-targets",
    default="",
    metavar="A,B",
    help="The deploy targets the pipeline has jobs for; a target agent.yaml configures that "
    "is not among them gets a warning (re-render the pipeline with actk update).",
)
@DIRECTORY_OPTION
@JSON_OPTION
@handle_errors
def plan(pipeline_targets: str, directory: Path, as_json: bool) -> None:
    """Read agent.yaml and say what the pipeline should do: push or not, which targets.

    On GitHub Actions the answers are also step outputs (push, registry_kind, repository,
    base_image, platform, targets, and azure/alibaba/anthropic: true when that target is
    configured completely and the image can be pushed); in Azure Pipelines, output variables.
    """
    from toolkit import ci as ci_module
    from toolkit.console import Console

    console = Console(as_json=as_json)
    result = ci_module.plan(directory)
    wanted = [name.strip() for name in pipeline_targets.split(",") if name.strip()]
    warnings = []
    for name in result["targets"]:
        if name not in wanted:
            warnings.append(
                f"agent.yaml configures targets.{name} but the pipeline has no deploy job for "
                f"it: run `actk update --data deploy_targets={','.join(sorted({*wanted, name}))}`"
            )
        elif name in result["problems"]:
            warnings.append(f"targets.{name} is not deployed: {result['problems'][name]}")
    if result["targets"] and not result["push"]:
        warnings.append(f"nothing is pushed or deployed: {result['push_reason']}")
    result["warnings"] = warnings
    outputs = ci_module.plan_outputs(result)
    if ci_module.on_github() or ci_module.on_azure_pipelines():
        ci_module.set_outputs(outputs, json_on_stdout=as_json)
    for warning in warnings:
        if ci_module.on_github():
            click.echo(ci_module.annotation("warning", warning, title="actk ci plan"), err=True)
        elif ci_module.on_azure_pipelines():
            click.echo(ci_module.azure_issue("warning", warning), err=True)
        else:
            console.warn(warning)
    if as_json:
        click.echo(json.dumps(result))
        return
    push = (f"push to {result['registry']} ({result['registry_kind']})" if result["push"]
            else f"no push: {result['push_reason']}")
    click.echo(f"{result['name']}: {push}")
    click.echo(f"deploy: {', '.join(n for n in result['ready'] if result['push']) or 'nothing'}")
