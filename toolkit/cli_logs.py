"""`actk logs`: argument parsing and rendering only; the work is in :mod:`toolkit.logs`.

:func:`install` registers the command and gives every command ``--verbose``; ``toolkit.cli``
calls it after its other ``add_command`` lines.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from toolkit.cli_common import (
    DIRECTORY_OPTION,
    JSON_OPTION,
    add_verbose_everywhere,
    handle_errors,
)
from toolkit.errors import UsageError


@click.command()
@click.option("--target", "-t", type=click.Choice(["local", "azure", "alibaba", "anthropic"]),
              default="local", show_default=True,
              help="Where the agent runs: the container `actk run` started, or a cloud target.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until Ctrl-C.")
@click.option("--tail", type=click.IntRange(min=1), metavar="N",
              help="Only the last N lines (azure: 1-300, default 100; elsewhere: all).")
@click.option("--since", metavar="WHEN",
              help="Lines from this time on: 10m, 2h, 1d, an ISO-8601 time or Unix seconds "
              "(local and anthropic).")
@click.option("--version", "version", metavar="N",
              help="azure: the agent version (default: the one `actk deploy azure` recorded, "
              "else the latest).")
@click.option("--session", metavar="ID",
              help="azure (v1): the session whose log to stream; anthropic: the session whose "
              "events to list (default: the recorded one).")
@click.option("--container", metavar="NAME",
              help="local: this container instead of the newest `actk run` one.")
@click.option("--kind", type=click.Choice(["console", "system"]), default="console",
              show_default=True,
              help="azure (2025-11-15-preview): the container's own output, or the platform's.")
@DIRECTORY_OPTION
@JSON_OPTION
@handle_errors
def logs(
    target: str,
    follow: bool,
    tail: int | None,
    since: str | None,
    version: str | None,
    session: str | None,
    container: str | None,
    kind: str,
    directory: Path,
    as_json: bool,
) -> None:
    """Show the agent's logs: local container, Foundry log stream, AgentRun's log store, or an
    Anthropic session's events.

    \b
      actk logs -f                              the `actk run --detach` container
      actk logs --target azure --tail 50        a preview version's container log
      actk logs --target azure --session ID     a v1 session's log stream
      actk logs --target anthropic --since 1h   the recorded session's events
    """
    from toolkit.logs import (
        LogOptions,
        alibaba_logs,
        anthropic_logs,
        azure_logs,
        local_logs,
        parse_since,
    )

    if as_json and follow:
        raise UsageError("--follow streams lines until Ctrl-C; --json prints one object at "
                         "the end", hint="drop one of --json and --follow")
    if since and target == "azure":
        raise UsageError("Foundry's log streams take no start time",
                         hint="use --tail N (1-300) instead of --since")
    options = LogOptions(
        follow=follow,
        tail=tail,
        since=parse_since(since) if since else None,
        version=version,
        session=session,
        container=container,
        kind=kind,
    )
    lines: list[str] = []
    sink = lines.append if as_json else click.echo
    try:
        if target == "local":
            result = local_logs(directory, options, sink)
        elif target == "azure":
            result = azure_logs(directory, os.environ, options, sink)
        elif target == "alibaba":
            result = alibaba_logs(directory)
        else:
            result = anthropic_logs(directory, os.environ, options, sink)
    except KeyboardInterrupt:
        return
    if as_json:
        click.echo(json.dumps({**result, "lines": lines}))


def install(cli: click.Group) -> None:
    """Register `actk logs` and give every command ``--verbose``."""
    cli.add_command(logs)
    add_verbose_everywhere(cli)
