"""What every `actk` command module shares: the ``--json`` and ``--directory`` options and the
error handler that turns a ToolkitError into its message, hint and exit code.

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
