"""`actk worker`: argument parsing and rendering only; the loop is :mod:`toolkit.worker`."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from toolkit.cli_common import DIRECTORY_OPTION, JSON_OPTION, handle_errors


@contextmanager
def signals_set(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C and SIGTERM ask the loop to stop: running containers release their items first."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda signum, frame: stop.set()) for sig in held}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            if handler is not None:
                signal.signal(sig, handler)


@click.command()
@click.option("--image", metavar="REFERENCE",
              help="The image each work item runs in (default: the image `actk deploy "
              "anthropic` recorded, else the pushed digest, else image.repository:latest).")
@click.option("--environment-id", metavar="ENV_ID",
              help="The self-hosted environment to serve (default: ANTHROPIC_ENVIRONMENT_ID, "
              "else the one `actk deploy anthropic` recorded).")
@click.option("--concurrency", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Work items (containers) served at the same time.")
@click.option("--once", is_flag=True, help="Serve one work item, then exit.")
@click.option("--max-items", type=click.IntRange(1), metavar="N",
              help="Exit after serving N work items.")
@click.option("--idle-exit", type=click.FloatRange(0), metavar="SECONDS",
              help="Exit once the queue has been empty this long (CI, scale-to-zero).")
@click.option("--max-idle", type=click.FloatRange(0), default=60, show_default=True,
              help="Seconds a container keeps its session after the agent's turn ends.")
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Mount DIR/<session id> at /workspace, so the session's files stay on the "
              "host.")
@click.option("--key-stdin", is_flag=True,
              help="Read the environment key from stdin instead of ANTHROPIC_ENVIRONMENT_KEY.")
@DIRECTORY_OPTION
@JSON_OPTION
@handle_errors
def worker(
    image: str | None,
    environment_id: str | None,
    concurrency: int,
    once: bool,
    max_items: int | None,
    idle_exit: float | None,
    max_idle: float,
    output: Path | None,
    key_stdin: bool,
    directory: Path,
    as_json: bool,
) -> None:
    """Serve an Anthropic self-hosted environment: one container of the agent's image per work
    item, so the session's tool calls (bash, read, write ...) run inside that image.

    The environment key (generated in the Claude Console, on the environment's page) comes from
    ANTHROPIC_ENVIRONMENT_KEY or --key-stdin; each container gets it on its stdin, never in its
    configuration or on a command line. Runs until Ctrl-C (containers release their items
    first), --once, --max-items or --idle-exit.
    """
    import os

    from toolkit.console import Console
    from toolkit.errors import UsageError
    from toolkit.worker import WorkerOptions, run_worker

    console = Console(as_json=as_json)
    key = None
    if key_stdin:
        key = sys.stdin.readline().strip()
        if not key:
            raise UsageError("--key-stdin read nothing from stdin",
                             hint="printf '%s' \"$KEY\" | actk worker --key-stdin")
    options = WorkerOptions(
        image=image,
        environment_id=environment_id,
        concurrency=concurrency,
        max_items=1 if once else max_items,
        idle_exit=idle_exit,
        max_idle=max_idle,
        output=output,
    )
    stop = threading.Event()
    with signals_set(stop):
        report = run_worker(directory, options, console, os.environ, stop=stop, key=key)
    summary = report.to_dict()
    if as_json:
        console.emit(summary)
    elif summary["failed"]:
        console.warn(f"{summary['failed']} of {summary['served']} work item(s) failed in their "
                     "container (their lines above say why); they were released for another try")
    else:
        console.success(f"served {summary['served']} work item(s) "
                        f"(stopped: {report.stopped_by or 'done'})")
    if summary["failed"]:
        sys.exit(5)  # DockerError's code: a container failed
