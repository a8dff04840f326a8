"""``python -m <package> worker``: an Anthropic self-hosted environment worker in this image.

A Claude Managed Agents session on a ``self_hosted`` environment runs its tool calls (``bash``,
``read``, ``write``, ``edit``, ``glob``, ``grep``) wherever a worker serves the environment's
work queue. This mode is that worker, built on the official SDK's ``EnvironmentWorker``
(``anthropic>=0.125,<1`` in requirements.txt), so the tools run in this image, in ``WORKDIR``,
as the image's non-root user. Two ways to run it:

- one work item, ``ANTHROPIC_WORK_ID`` set: `actk worker` polls the queue on the host and starts
  a container per claimed item, with ``ANTHROPIC_ENVIRONMENT_ID``, ``ANTHROPIC_WORK_ID``,
  ``ANTHROPIC_SESSION_ID`` (and ``ANTHROPIC_BASE_URL``, ``WORKER_MAX_IDLE``) in its environment.
  The item is served (``handle_item``), force-stopped by the SDK, and the process exits.
- a poll loop, ``ANTHROPIC_WORK_ID`` unset: one long-lived container claims and serves items
  itself (``run``); it needs ``ANTHROPIC_ENVIRONMENT_ID``.

The environment key comes from ``ANTHROPIC_ENVIRONMENT_KEY`` when that is set (someone running
the image by hand; the work item's secret then from ``ANTHROPIC_WORK_SECRET``). Otherwise it
comes from ONE JSON line on stdin, ``{"environment_key": "...", "work_secret": "..." or null}``,
which is how `actk worker` hands it over: the key is then in neither the image, the container's
configuration (``docker inspect``), nor argv. Either way both variables are removed from
``os.environ`` before anything runs, and neither value is ever printed or logged. (A key set
in the environment stays readable in ``docker inspect`` and the process's /proc/<pid>/environ,
which no removal changes: the stdin line is the way to keep it from the tools.)

| variable                   | default    | meaning                                              |
|----------------------------|------------|------------------------------------------------------|
| ANTHROPIC_ENVIRONMENT_ID   | (required) | the self-hosted environment                          |
| ANTHROPIC_WORK_ID          | unset      | the claimed work item to serve; unset: poll for work |
| ANTHROPIC_SESSION_ID       | (required) | the work item's session (with ANTHROPIC_WORK_ID)     |
| ANTHROPIC_ENVIRONMENT_KEY  | unset      | the key; unset: the JSON line on stdin               |
| ANTHROPIC_BASE_URL         | the API    | read by the SDK                                      |
| WORKDIR                    | /workspace | where the tools work (an existing directory)         |
| WORKER_MAX_IDLE            | 60         | seconds after the session's ``end_turn`` before the  |
|                            |            | item is released                                     |
| LOG_LEVEL                  | info       | JSON logs on stderr, one line per work item          |

Exit status: 0 when the item was served or SIGTERM/SIGINT stopped the worker (the SDK stops the
item on the way out), 1 when the item failed or polling stopped on an error, 2 when a setting,
the key or the anthropic package is missing or wrong (one line on stderr).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import signal
import sys
from collections.abc import Iterator, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from .logs import JsonFormatter

logger = logging.getLogger(__name__)

REQUIREMENT = "anthropic>=0.125,<1"
KEY_VARIABLE = "ANTHROPIC_ENVIRONMENT_KEY"
SECRET_VARIABLE = "ANTHROPIC_WORK_SECRET"
LINE_SHAPE = '{"environment_key": "...", "work_secret": "..." or null}'
LINE_LIMIT = 64 * 1024  # bytes of the stdin line; a key and a work secret are far smaller
DEFAULT_WORKDIR = "/workspace"
DEFAULT_MAX_IDLE = 60.0
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
SIGNALS = (signal.SIGTERM, signal.SIGINT)
REDACTED = "[redacted]"


class WorkerError(Exception):
    """What the worker cannot start without: one line on stderr, exit status 2. The message
    never holds the key, the work secret or the stdin line."""


class Sdk(NamedTuple):
    AsyncAnthropic: Any
    EnvironmentWorker: Any


def load_sdk() -> Sdk:
    """The official SDK's client and worker, or a WorkerError saying what to install."""
    try:
        from anthropic import AsyncAnthropic
        from anthropic.lib.environments import EnvironmentWorker
    except ModuleNotFoundError as exc:
        if exc.name != "anthropic":
            raise
        raise WorkerError(
            f"worker mode needs the anthropic package: add '{REQUIREMENT}' to requirements.txt "
            "and rebuild the image"
        ) from None
    except ImportError:
        raise WorkerError(
            f"the installed anthropic package has no EnvironmentWorker: require '{REQUIREMENT}' "
            "in requirements.txt and rebuild the image"
        ) from None
    return Sdk(AsyncAnthropic, EnvironmentWorker)


@dataclass(frozen=True)
class WorkerConfig:
    environment_id: str
    work_id: str | None  # None: poll for work
    session_id: str | None
    workdir: str
    max_idle: float
    log_level: str

    @classmethod
    def from_env(cls, env: MutableMapping[str, str]) -> WorkerConfig:
        def get(name: str) -> str | None:
            return env.get(name, "").strip() or None

        environment_id, work_id, session_id = (
            get("ANTHROPIC_ENVIRONMENT_ID"), get("ANTHROPIC_WORK_ID"), get("ANTHROPIC_SESSION_ID")
        )
        if work_id:
            missing = [name for name, value in (("ANTHROPIC_ENVIRONMENT_ID", environment_id),
                                                ("ANTHROPIC_SESSION_ID", session_id)) if not value]
            if missing:
                raise WorkerError(
                    f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set: "
                    "serving a work item (ANTHROPIC_WORK_ID) needs ANTHROPIC_ENVIRONMENT_ID and "
                    "ANTHROPIC_SESSION_ID"
                )
        elif not environment_id:
            raise WorkerError(
                "ANTHROPIC_ENVIRONMENT_ID is not set: the poll loop (no ANTHROPIC_WORK_ID) needs "
                "the environment to poll"
            )
        assert environment_id is not None
        workdir = get("WORKDIR") or DEFAULT_WORKDIR
        if not os.path.isdir(workdir):
            raise WorkerError(
                f"WORKDIR={workdir!r} is not a directory: create it or set WORKDIR to one"
            )
        return cls(
            environment_id=environment_id,
            work_id=work_id,
            session_id=session_id if work_id else None,
            workdir=workdir,
            max_idle=_max_idle(get("WORKER_MAX_IDLE")),
            log_level=_log_level(get("LOG_LEVEL") or "info"),
        )


def _max_idle(raw: str | None) -> float:
    if raw is None:
        return DEFAULT_MAX_IDLE
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise WorkerError(f"WORKER_MAX_IDLE={raw!r}: use a number of seconds, 0 or more")
    return value


def _log_level(raw: str) -> str:
    level = raw.lower()
    if level not in LOG_LEVELS:
        raise WorkerError(f"LOG_LEVEL={raw!r}: use debug, info, warning, error or critical")
    return level


@dataclass(frozen=True, repr=False)
class Secrets:
    environment_key: str
    work_secret: str | None

    def __repr__(self) -> str:
        return "Secrets(<redacted>)"

    def values(self) -> list[str]:
        return [value for value in (self.environment_key, self.work_secret) if value]


def take_secrets(env: MutableMapping[str, str], stdin: Any) -> Secrets:
    """The key and work secret from ``env`` (removing both variables from it) or, when the key
    is not there, from the one JSON line on ``stdin``."""
    key = env.pop(KEY_VARIABLE, "").strip()
    secret = env.pop(SECRET_VARIABLE, "").strip() or None
    if key:
        return Secrets(key, secret)
    return read_secret_line(stdin)


def read_secret_line(stdin: Any) -> Secrets:
    """One bounded line of JSON from ``stdin``: ``{"environment_key", "work_secret"}``."""
    if stdin is None or stdin.closed or stdin.isatty():
        raise WorkerError(
            f"no environment key: set {KEY_VARIABLE}, or write one JSON line {LINE_SHAPE} on "
            "stdin (docker run -i)"
        )
    line = getattr(stdin, "buffer", stdin).readline(LINE_LIMIT + 1)
    if len(line) > LINE_LIMIT:
        raise WorkerError(f"the line on stdin is longer than {LINE_LIMIT} bytes; expected "
                          f"{LINE_SHAPE}")
    if not line.strip():
        raise WorkerError(
            f"no environment key: stdin ended without the JSON line {LINE_SHAPE} (or set "
            f"{KEY_VARIABLE})"
        )
    try:
        data = json.loads(line)
    except ValueError:  # from None: no traceback may carry the line
        raise WorkerError(f"the line on stdin is not JSON; expected {LINE_SHAPE}") from None
    if not isinstance(data, dict):
        raise WorkerError(f"the line on stdin is not a JSON object; expected {LINE_SHAPE}")
    key, secret = data.get("environment_key"), data.get("work_secret")
    if not isinstance(key, str) or not key.strip():
        raise WorkerError(
            f"the line on stdin has no environment_key string; expected {LINE_SHAPE}"
        )
    if secret is not None and not isinstance(secret, str):
        raise WorkerError(
            f"the line on stdin has a work_secret that is neither a string nor null; expected "
            f"{LINE_SHAPE}"
        )
    return Secrets(key.strip(), secret or None)


# --- logging ------------------------------------------------------------------------------------


class RedactingFormatter(JsonFormatter):
    """The server's JSON log lines, with the key and the work secret replaced wherever they
    would appear (an SDK error message, a traceback)."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self._secrets = [secret for secret in secrets if secret]

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        for secret in self._secrets:
            line = line.replace(secret, REDACTED)
        return line


@contextlib.contextmanager
def _logging(level: str, secrets: Secrets) -> Iterator[None]:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(secrets.values()))
    root = logging.getLogger()
    httpx_logger = logging.getLogger("httpx")  # a line per poll at info
    saved = root.handlers[:], root.level, httpx_logger.level
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    if level != "debug":
        httpx_logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        handler.flush()
        root.handlers[:], level_before, httpx_level_before = saved
        root.setLevel(level_before)
        httpx_logger.setLevel(httpx_level_before)


def _log_item(work_id: object, session_id: object, outcome: str, **fields: object) -> None:
    level = {"completed": logging.INFO, "cancelled": logging.WARNING}.get(outcome, logging.ERROR)
    logger.log(level, "work item", extra={"work_id": work_id, "session_id": session_id,
                                          "outcome": outcome, **fields})


def _describe(exc: BaseException) -> str:
    """An exception as text; the causes inside an exception group rather than its summary."""
    inner = getattr(exc, "exceptions", None)
    if inner:
        return "; ".join(_describe(each) for each in inner)
    return f"{type(exc).__name__}: {exc}"


# --- running ------------------------------------------------------------------------------------


class _Stopped(Exception):
    """SIGTERM or SIGINT before the event loop runs: nothing to release yet."""


def _raise_stopped(signum: int, frame: object) -> None:
    raise _Stopped


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    previous = {}
    try:
        for sig in SIGNALS:
            previous[sig] = signal.signal(sig, _raise_stopped)
    except ValueError:  # not the main thread: leave the handlers alone
        pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main() -> int:
    with _stop_on_signals():
        try:
            return _main()
        except _Stopped:
            return 0


def _main() -> int:
    try:
        sdk = load_sdk()
        config = WorkerConfig.from_env(os.environ)
        secrets = take_secrets(os.environ, sys.stdin)
    except WorkerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with _logging(config.log_level, secrets):
        return asyncio.run(_work(sdk, config, secrets))


async def _work(sdk: Sdk, config: WorkerConfig, secrets: Secrets) -> int:
    """Serve the item (or poll) until done; SIGTERM/SIGINT cancel it and the result is 0."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    received: list[str] = []

    def stop(sig: signal.Signals) -> None:
        if not received:  # the first signal cancels; the SDK then stops the item (shielded)
            task.cancel()
        received.append(sig.name)

    # No API key: every call the worker makes carries the environment key (or the item's
    # sessions token) as a Bearer. ANTHROPIC_BASE_URL is read by the client.
    client = sdk.AsyncAnthropic()
    installed = []
    for sig in SIGNALS:
        try:
            loop.add_signal_handler(sig, stop, sig)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # Windows, or not the main thread
            pass
    try:
        if config.work_id:
            worker = sdk.EnvironmentWorker(client, workdir=config.workdir,
                                           max_idle=config.max_idle)
            return await _one_item(worker, config, secrets)
        worker = sdk.EnvironmentWorker(
            client,
            environment_id=config.environment_id,
            environment_key=secrets.environment_key,
            workdir=config.workdir,
            max_idle=config.max_idle,
        )
        _log_each_item(worker)
        try:
            await worker.run()
        except Exception as exc:
            logger.error("polling stopped", extra={"environment_id": config.environment_id,
                                                   "error": _describe(exc)})
            return 1
        return 0
    except asyncio.CancelledError:
        if not received:
            raise
        if hasattr(task, "uncancel"):
            task.uncancel()
        logger.info("stopped", extra={"signal": received[0]})
        return 0
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        await client.close()


async def _one_item(worker: Any, config: WorkerConfig, secrets: Secrets) -> int:
    try:
        await worker.handle_item(
            work_id=config.work_id,
            environment_id=config.environment_id,
            session_id=config.session_id,
            environment_key=secrets.environment_key,
            work_secret=secrets.work_secret,
        )
    except asyncio.CancelledError:
        _log_item(config.work_id, config.session_id, "cancelled")
        raise
    except Exception as exc:
        _log_item(config.work_id, config.session_id, "failed", error=_describe(exc))
        return 1
    _log_item(config.work_id, config.session_id, "completed")
    return 0


def _log_each_item(worker: Any) -> None:
    """One log line per polled item. ``run()`` serves each item with ``_handle_item`` (the
    per-item body it shares with ``handle_item``), wrapped here; an SDK without it keeps only
    its own lines. A failure is logged and swallowed, as ``run()`` itself would, so polling
    goes on."""
    handle = getattr(worker, "_handle_item", None)
    if handle is None:
        return

    async def logged(work_item: Any, environment_key: str) -> None:
        data = getattr(work_item, "data", None)
        work_id, session_id = getattr(work_item, "id", None), getattr(data, "id", None)
        kind = getattr(data, "type", "session")
        fields = {} if kind == "session" else {"item_type": kind}
        try:
            await handle(work_item, environment_key)
        except asyncio.CancelledError:
            _log_item(work_id, session_id, "cancelled", **fields)
            raise
        except Exception as exc:
            _log_item(work_id, session_id, "failed", error=_describe(exc), **fields)
        else:
            _log_item(work_id, session_id, "completed", **fields)

    worker._handle_item = logged
