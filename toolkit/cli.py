"""The `actk` command line: argument parsing and rendering only.

Heavy modules (copier, docker, httpx, rich) are imported inside the commands that use them,
so `actk --help` stays fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click

from toolkit import __version__
from toolkit.console import non_interactive
from toolkit.errors import ToolkitError

JSON_OPTION = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object for machines."
)


def handle_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a ToolkitError into ``error:``/``hint:`` lines (or JSON) and its exit code."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ToolkitError as exc:
            if kwargs.get("as_json"):
                click.echo(json.dumps(exc.to_dict()))
            else:
                click.secho(f"error: {exc.message}", fg="red", err=True)
                if exc.hint:
                    click.echo(f"hint: {exc.hint}", err=True)
            sys.exit(exc.exit_code)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="actk")
def cli() -> None:
    """Agent Container Toolkit: scaffold agent containers that speak OpenAI Responses v1."""


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--defaults", is_flag=True, help="Take every default answer without prompting.")
@click.option(
    "--data",
    "-d",
    multiple=True,
    metavar="KEY=VALUE",
    help="Answer a template question (repeatable); a,b answers a multi-select.",
)
@click.option("--force", is_flag=True, help="Render into a non-empty directory.")
@JSON_OPTION
@handle_errors
def new(directory: Path, defaults: bool, data: tuple[str, ...], force: bool, as_json: bool) -> None:
    """Scaffold a new agent repository in DIRECTORY (default: the current one).

    Prompts for each answer on a terminal; in CI or without a terminal the defaults are taken.
    """
    from toolkit import scaffold

    questions = scaffold.template_questions(scaffold.template_dir())
    answers = scaffold.parse_data(list(data), questions)
    use_defaults = defaults or as_json or non_interactive()
    project = scaffold.new_project(directory, data=answers, use_defaults=use_defaults, force=force)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "path": str(project.path),
                    "answers": project.answers,
                    "next": project.next_steps(),
                }
            )
        )
        return
    click.secho(f"Created {project.answers.get('project_name')} in {project.path}", fg="green")
    click.echo("Next:")
    for step in project.next_steps():
        click.echo(f"  {step}")


@cli.command()
@click.argument("directory", type=click.Path(path_type=Path), default=".")
@JSON_OPTION
@handle_errors
def check(directory: Path, as_json: bool) -> None:
    """Validate DIRECTORY's agent.yaml (default: the current directory).

    Checks every field, then runs the repository's own start-up checks: structured-input
    declarations, each Handlebars template, and that every placeholder names a declared input.
    """
    from toolkit.agent_code import check_startup
    from toolkit.manifest import find_manifest, load_manifest

    manifest = load_manifest(directory)
    path = find_manifest(directory)
    templates_checked = check_startup(path.parent, path)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "path": str(path),
                    "valid": True,
                    "name": manifest.name,
                    "templates_checked": templates_checked,
                }
            )
        )
        return
    extra = "" if templates_checked else "; this repository has no template checks to run"
    click.secho(
        f"{path}: valid ({manifest.name}, model {manifest.model.provider}{extra})", fg="green"
    )


@cli.command()
def schema() -> None:
    """Print the JSON Schema of agent.yaml (for editors and CI linters)."""
    from toolkit.manifest import json_schema

    click.echo(json.dumps(json_schema(), indent=2))


def main() -> None:
    cli(prog_name="actk")
