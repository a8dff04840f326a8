"""Output for every command's three audiences: people (rich), CI logs (plain), machines (--json).

In ``--json`` mode stdout carries exactly one JSON object and progress is silent; otherwise
progress and tables go to stderr/stdout through rich on a terminal and as plain lines in CI.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click


def non_interactive() -> bool:
    """True in CI (``CI``, or Azure Pipelines' ``TF_BUILD``) or without a terminal: never
    prompt, never animate."""
    from toolkit.ci import in_ci

    return in_ci() or not sys.stdin.isatty()


class Console:
    """Progress lines, tables and the final JSON object of one command."""

    def __init__(self, *, as_json: bool = False) -> None:
        self.as_json = as_json
        self.plain = as_json or non_interactive() or not sys.stderr.isatty()

    def step(self, text: str) -> None:
        """A progress line (``==> text``); silent with ``--json``."""
        if self.as_json:
            return
        click.secho(f"==> {text}", err=True, bold=not self.plain)

    def detail(self, text: str) -> None:
        """An indented line under the current step (build output, logs)."""
        if not self.as_json:
            click.echo(f"    {text}", err=True)

    def warn(self, text: str) -> None:
        if not self.as_json:
            click.secho(f"warning: {text}", err=True, fg="yellow")

    def success(self, text: str) -> None:
        if not self.as_json:
            click.secho(text, fg="green")

    @contextmanager
    def status(self, text: str) -> Iterator[None]:
        """A spinner on a terminal; a plain step line elsewhere."""
        if self.plain:
            self.step(text)
            yield
            return
        from rich.console import Console as RichConsole

        with RichConsole(stderr=True).status(text):
            yield

    @contextmanager
    def live_log(self, title: str) -> Iterator[Callable[[str], None]]:
        """A sink for a long process's output lines.

        A spinner showing the latest line on a terminal; every line, indented, in CI; nothing
        with ``--json`` (failures carry their own tail of the log).
        """
        if self.as_json:
            yield lambda line: None
            return
        if self.plain:
            self.step(title)
            yield self.detail
            return
        from rich.console import Console as RichConsole
        from rich.markup import escape

        with RichConsole(stderr=True).status(escape(title)) as status:

            def show(line: str) -> None:
                if line.strip():
                    status.update(f"{escape(title)}  [dim]{escape(line.strip()[:100])}[/dim]")

            yield show

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """A table on stdout: rich on a terminal, aligned plain text in CI."""
        if self.as_json:
            return
        cells = [[str(value) for value in row] for row in rows]
        if self.plain:
            widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
            click.echo(title)
            click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
            for row in cells:
                click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
            return
        from rich.console import Console as RichConsole
        from rich.table import Table

        table = Table(title=title)
        for column in columns:
            table.add_column(column)
        for row in cells:
            table.add_row(*row)
        RichConsole().print(table)

    def emit(self, payload: dict[str, Any]) -> None:
        """A command's result: the one JSON object of ``--json`` mode (nothing on stdout
        otherwise), and on GitHub Actions a section of the job summary either way."""
        if self.as_json:
            click.echo(json.dumps(payload))
        record_result(payload, json_on_stdout=self.as_json)


def command_path() -> str:
    """The running command (``actk deploy azure``), or ``actk`` outside a click context."""
    context = click.get_current_context(silent=True)
    return context.command_path if context is not None else "actk"


def record_result(payload: dict[str, Any], *, json_on_stdout: bool = False) -> None:
    """In CI, a command's result in GitHub's job summary and as step outputs (no-op elsewhere)."""
    from toolkit.ci import record_result as record

    record(command_path(), payload, json_on_stdout=json_on_stdout)
