"""`actk update`: take template improvements into a generated repository (copier update)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from toolkit.cli_common import JSON_OPTION, handle_errors


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--to", "to_version", metavar="VERSION",
              help="The template version to update to (default: the one this toolkit ships).")
@click.option(
    "--data",
    "-d",
    multiple=True,
    metavar="KEY=VALUE",
    help="Change an answer while updating (repeatable), e.g. --data deploy_targets=azure,alibaba "
    "or --data ci=azure-devops.",
)
@click.option("--defaults", is_flag=True,
              help="Keep every recorded answer and take defaults for new questions, without "
              "prompting (the behaviour in CI and without a terminal).")
@click.option("--conflict", type=click.Choice(["inline", "rej"]), default="inline",
              show_default=True,
              help="How conflicts are left: inline markers in the file, or .rej files beside it.")
@click.option("--pretend", is_flag=True, help="Show what would happen and change nothing.")
@click.option("--list", "list_versions", is_flag=True,
              help="List the template versions this toolkit knows and exit.")
@JSON_OPTION
@handle_errors
def update(
    directory: Path,
    to_version: str | None,
    data: tuple[str, ...],
    defaults: bool,
    conflict: str,
    pretend: bool,
    list_versions: bool,
    as_json: bool,
) -> None:
    """Update DIRECTORY (default: the current one) to the current agent template.

    Runs `copier update`: your edits are kept, the template's changes since the version
    recorded in .copier-answers.yml are merged in, and where both changed the same lines the
    conflict is left in the file (<<<<<<< before updating / >>>>>>> after updating) for you to
    resolve. The repository must be a git repository with everything committed. Exits 10 when
    conflicts are left.
    """
    from toolkit import scaffold
    from toolkit import update as updating
    from toolkit.console import non_interactive

    if list_versions:
        versions = updating.known_versions()
        if as_json:
            click.echo(json.dumps({"versions": versions}))
        else:
            for version in versions:
                click.echo(version)
        return
    questions = scaffold.template_questions(scaffold.template_dir())
    answers = scaffold.parse_data(list(data), questions)
    result = updating.update_project(
        directory,
        data=answers,
        to_version=to_version,
        use_defaults=defaults or as_json or non_interactive(),
        conflict=conflict,
        pretend=pretend,
        quiet=as_json,
    )
    from toolkit.console import record_result

    record_result(result.to_dict())
    if as_json:
        if not result.conflicts:  # else the error's JSON carries the result
            click.echo(json.dumps(result.to_dict()))
    else:
        if result.from_version == result.to_version and not answers:
            click.secho(f"already at template {result.to_version}", fg="green")
        else:
            click.secho(
                f"{'would update' if pretend else 'updated'} {result.path} from template "
                f"{result.from_version} to {result.to_version}",
                fg="green",
            )
        for path in result.changed:
            click.echo(f"  {path}")
    result.raise_for_conflicts()
