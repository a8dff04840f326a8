"""What every `actk` command module shares: the ``--json`` and ``--directory`` options, the
``--verbose`` option every command takes, and the error handler that turns a ToolkitError into
its message, hint and exit code.

``toolkit.cli`` and ``toolkit.cli_targets`` both import it (neither imports the other's
commands for these), and it imports nothing heavy, so `actk --help` stays fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click

from toolkit.errors import ToolkitError

JSON_OPTION = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object for machines."
)
DIRECTORY_OPTION = click.option(
    "--directory",
    "-C",
    type=click.Path(path_type=Path),
    default=".",
    show_default=True,
    help="The agent repository whose agent.yaml is read.",
)

VERBOSE_HELP = "Log each HTTP call (method, URL, status, latency; secrets redacted) on stderr."


def _turn_on_call_log(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    """``--verbose`` at any level (``actk --verbose deploy azure``, ``actk deploy azure
    --verbose``) turns the call log on until the whole command ends."""
    from toolkit import call_log

    if value and not call_log.enabled():
        call_log.enable()
        ctx.find_root().call_on_close(call_log.disable)
    return value


def verbose_option() -> click.Option:
    return click.Option(
        ["--verbose"],
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_turn_on_call_log,
        help=VERBOSE_HELP,
    )


def add_verbose_everywhere(command: click.Command) -> click.Command:
    """Give ``command`` and every command under it ``--verbose`` (users type it after the
    subcommand); run once all commands are registered. Idempotent."""
    if not any(param.name == "verbose" for param in command.params):
        command.params.append(verbose_option())
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            add_verbose_everywhere(sub)
    return command


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
            _annotate(exc.to_dict())
            sys.exit(exc.exit_code)

    return wrapper


def _annotate(error: dict[str, object]) -> None:
    """In CI, the failure as an annotation (GitHub, Azure Pipelines) on stderr, so ``--json``
    keeps stdout to one object, and in GitHub's job summary (nothing elsewhere)."""
    from toolkit.ci import failure_lines
    from toolkit.console import command_path

    for line in failure_lines(command_path(), error):
        click.echo(line, err=True)
