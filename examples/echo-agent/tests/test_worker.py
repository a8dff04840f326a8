"""``python -m <package> worker``: settings, the key on stdin, and what reaches the SDK's worker.

Most tests replace the anthropic SDK by a stand-in (``load_sdk``) that records what the worker
is built and called with, so they run without the package. The tests marked by
``pytest.importorskip("anthropic")`` use the real SDK, with only its network-facing methods
replaced. A real work queue and a real tool call are the toolkit's end-to-end tests.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

KEY = "sk-ant-oat01-test-environment-key"
SECRET = "eyJzZXNzaW9uc190b2tlbiI6ICJ0ZXN0In0"
REPO_ROOT = Path(__file__).resolve().parents[1]
WORKER_VARIABLES = [
    "ANTHROPIC_ENVIRONMENT_ID", "ANTHROPIC_WORK_ID", "ANTHROPIC_SESSION_ID",
    "ANTHROPIC_ENVIRONMENT_KEY", "ANTHROPIC_WORK_SECRET", "WORKDIR", "WORKER_MAX_IDLE",
    "LOG_LEVEL",
]


@pytest.fixture
def worker(package):
    return importlib.import_module(f"{package.__name__}.worker")


@pytest.fixture
def env(monkeypatch, tmp_path) -> dict[str, str]:
    """A work item's environment, as `actk worker` sets it (the key not included)."""
    for name in WORKER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    values = {
        "ANTHROPIC_ENVIRONMENT_ID": "env_1",
        "ANTHROPIC_WORK_ID": "work_1",
        "ANTHROPIC_SESSION_ID": "sesn_1",
        "WORKDIR": str(tmp_path),
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


class UnreadStdin:
    """A stdin that fails the test when read."""

    closed = False

    def isatty(self) -> bool:
        return False

    def readline(self, *args: Any) -> bytes:
        raise AssertionError("stdin was read")


@pytest.fixture
def stdin(monkeypatch):
    """``stdin(data)``: what the worker finds on stdin; returns the underlying stream."""

    def feed(data: bytes) -> io.BytesIO:
        raw = io.BytesIO(data)
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(raw))
        return raw

    monkeypatch.setattr(sys, "stdin", UnreadStdin())
    return feed


def secret_line(environment_key: Any = KEY, work_secret: Any = SECRET) -> bytes:
    line = {"environment_key": environment_key, "work_secret": work_secret}
    return json.dumps(line).encode() + b"\n"


@dataclasses.dataclass
class FakeSdk:
    """Stands in for the anthropic SDK: records each EnvironmentWorker, its calls and the
    environment those calls saw. ``behaviour`` is awaited by handle_item and run."""

    built: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    items: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    runs: int = 0
    environ_seen: list[dict[str, str]] = dataclasses.field(default_factory=list)
    behaviour: Any = None


@pytest.fixture
def sdk(monkeypatch, worker) -> FakeSdk:
    fake = FakeSdk()

    class Client:
        def __init__(self, **kwargs: Any) -> None:
            assert kwargs == {}, "the client takes its settings from the environment"

        async def close(self) -> None:
            pass

    class EnvironmentWorker:
        def __init__(self, client: Any, **kwargs: Any) -> None:
            assert isinstance(client, Client)
            fake.built.append(kwargs)

        async def handle_item(self, **kwargs: Any) -> None:
            fake.items.append(kwargs)
            fake.environ_seen.append(dict(os.environ))
            if fake.behaviour:
                await fake.behaviour()

        async def run(self) -> None:
            fake.runs += 1
            fake.environ_seen.append(dict(os.environ))
            if fake.behaviour:
                await fake.behaviour()

    monkeypatch.setattr(worker, "load_sdk", lambda: worker.Sdk(Client, EnvironmentWorker))
    return fake


def log_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


# --- the mode ------------------------------------------------------------------------------------


def test_help_lists_the_worker_mode(package, capsys):
    entry = importlib.import_module(f"{package.__name__}.__main__")

    assert entry.main(["--help"]) == 0
    assert "worker" in capsys.readouterr().out


def test_the_worker_mode_takes_no_arguments(package, capsys):
    entry = importlib.import_module(f"{package.__name__}.__main__")

    assert entry.main(["worker", "now"]) == 2
    assert "usage:" in capsys.readouterr().err


def test_the_worker_mode_runs_the_worker(package, worker, monkeypatch):
    entry = importlib.import_module(f"{package.__name__}.__main__")
    monkeypatch.setattr(worker, "main", lambda: 7)

    assert entry.main(["worker"]) == 7


def test_serving_does_not_import_the_worker_or_the_sdk(package):
    name = package.__name__
    code = (
        f"import sys, {name}.__main__; "
        f"print(sorted(m for m in sys.modules if m == '{name}.worker' or m == 'anthropic'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")},
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# --- one work item --------------------------------------------------------------------------------


def test_the_key_and_work_secret_come_from_the_stdin_line(worker, env, stdin, sdk, capsys):
    stdin(secret_line())

    assert worker.main() == 0

    assert sdk.built == [{"workdir": env["WORKDIR"], "max_idle": 60.0}]
    assert sdk.items == [{
        "work_id": "work_1", "environment_id": "env_1", "session_id": "sesn_1",
        "environment_key": KEY, "work_secret": SECRET,
    }]
    output = capsys.readouterr()
    assert KEY not in output.out + output.err and SECRET not in output.out + output.err
    assert "ANTHROPIC_ENVIRONMENT_KEY" not in os.environ


def test_a_null_work_secret_is_none(worker, env, stdin, sdk):
    stdin(secret_line(work_secret=None))

    assert worker.main() == 0
    assert sdk.items[0]["environment_key"] == KEY and sdk.items[0]["work_secret"] is None


def test_the_key_in_the_environment_is_used_and_removed_before_the_item_runs(
    worker, env, stdin, sdk, monkeypatch, capsys
):
    monkeypatch.setenv("ANTHROPIC_ENVIRONMENT_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_WORK_SECRET", SECRET)
    # stdin is not read (UnreadStdin fails the test when it is)

    assert worker.main() == 0

    assert sdk.items[0]["environment_key"] == KEY and sdk.items[0]["work_secret"] == SECRET
    seen = sdk.environ_seen[0]
    assert "ANTHROPIC_ENVIRONMENT_KEY" not in seen and "ANTHROPIC_WORK_SECRET" not in seen
    assert KEY not in seen.values() and SECRET not in seen.values()
    assert "ANTHROPIC_ENVIRONMENT_KEY" not in os.environ
    output = capsys.readouterr()
    assert KEY not in output.out + output.err


def test_the_item_is_logged_with_its_outcome(worker, env, stdin, sdk, capsys):
    stdin(secret_line())

    assert worker.main() == 0

    lines = log_lines(capsys.readouterr().err)
    assert [(line["work_id"], line["session_id"], line["outcome"]) for line in lines] == [
        ("work_1", "sesn_1", "completed")
    ]


def test_a_failed_item_exits_1_and_its_log_line_hides_the_key(worker, env, stdin, sdk, capsys):
    async def fail() -> None:
        raise RuntimeError(f"the server refused {KEY} and {SECRET}")

    sdk.behaviour = fail
    stdin(secret_line())

    assert worker.main() == 1

    output = capsys.readouterr()
    assert KEY not in output.out + output.err and SECRET not in output.out + output.err
    [line] = log_lines(output.err)
    assert line["outcome"] == "failed" and line["level"] == "error"
    assert line["error"].startswith("RuntimeError: the server refused [redacted]")


@pytest.mark.parametrize(
    ("max_idle", "expected"), [("0", 0.0), ("2.5", 2.5), (" 90 ", 90.0), ("", 60.0)]
)
def test_worker_max_idle_is_passed_on(worker, env, stdin, sdk, monkeypatch, max_idle, expected):
    monkeypatch.setenv("WORKER_MAX_IDLE", max_idle)
    stdin(secret_line())

    assert worker.main() == 0
    assert sdk.built[0]["max_idle"] == expected


# --- without a work item: the poll loop ------------------------------------------------------


def test_without_a_work_id_the_worker_polls_with_the_key(worker, env, stdin, sdk, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_WORK_ID")
    monkeypatch.delenv("ANTHROPIC_SESSION_ID")
    stdin(secret_line(work_secret=None))

    assert worker.main() == 0

    assert sdk.built == [{"environment_id": "env_1", "environment_key": KEY,
                          "workdir": env["WORKDIR"], "max_idle": 60.0}]
    assert sdk.runs == 1 and sdk.items == []
    assert "ANTHROPIC_ENVIRONMENT_KEY" not in sdk.environ_seen[0]


def test_polling_that_stops_on_an_error_exits_1(worker, env, stdin, sdk, monkeypatch, capsys):
    async def refuse() -> None:
        raise PermissionError(f"401 for {KEY}")

    sdk.behaviour = refuse
    monkeypatch.delenv("ANTHROPIC_WORK_ID")
    stdin(secret_line())

    assert worker.main() == 1

    output = capsys.readouterr()
    assert KEY not in output.err
    assert log_lines(output.err)[-1]["message"] == "polling stopped"


# --- what the worker refuses to start with ------------------------------------------------------


@pytest.mark.parametrize(
    ("unset", "named"),
    [
        (["ANTHROPIC_ENVIRONMENT_ID"], "ANTHROPIC_ENVIRONMENT_ID is not set"),
        (["ANTHROPIC_SESSION_ID"], "ANTHROPIC_SESSION_ID is not set"),
        (["ANTHROPIC_ENVIRONMENT_ID", "ANTHROPIC_SESSION_ID"],
         "ANTHROPIC_ENVIRONMENT_ID and ANTHROPIC_SESSION_ID are not set"),
        (["ANTHROPIC_WORK_ID", "ANTHROPIC_ENVIRONMENT_ID"], "ANTHROPIC_ENVIRONMENT_ID is not set"),
    ],
)
def test_a_missing_variable_exits_2_naming_it(
    worker, env, stdin, sdk, monkeypatch, capsys, unset, named
):
    for name in unset:
        monkeypatch.delenv(name)
    raw = stdin(secret_line())

    assert worker.main() == 2

    error = capsys.readouterr().err
    assert error.startswith(f"error: {named}: ") and error.count("\n") == 1
    assert sdk.built == []
    assert raw.tell() == 0, "the key was read although the worker could not start"


@pytest.mark.parametrize(
    ("variable", "value"),
    [("WORKER_MAX_IDLE", "-1"), ("WORKER_MAX_IDLE", "soon"), ("WORKER_MAX_IDLE", "nan"),
     ("WORKER_MAX_IDLE", "inf"), ("LOG_LEVEL", "loud"), ("WORKDIR", "/no/such/directory")],
)
def test_a_bad_setting_exits_2_naming_it(
    worker, env, stdin, sdk, monkeypatch, capsys, variable, value
):
    monkeypatch.setenv(variable, value)
    stdin(secret_line())

    assert worker.main() == 2

    error = capsys.readouterr().err
    assert error.startswith(f"error: {variable}={value!r}") and error.count("\n") == 1
    assert sdk.built == []


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b"", "stdin ended without the JSON line"),
        (b"\n", "stdin ended without the JSON line"),
        (b'{"environment_key": "sk-ant-oat01-in-a-broken-line"\n', "is not JSON"),
        (b'["sk-ant-oat01-in-a-list"]\n', "is not a JSON object"),
        (b'{"work_secret": "sk-ant-oat01-without-key"}\n', "has no environment_key string"),
        (b'{"environment_key": 12345678901}\n', "has no environment_key string"),
        (b'{"environment_key": "  "}\n', "has no environment_key string"),
        (b'{"environment_key": "k", "work_secret": {"sk-ant-oat01-object": 1}}\n',
         "work_secret that is neither a string nor null"),
        (b'{"environment_key": "sk-ant-oat01-' + b"x" * 70_000 + b'"}\n', "is longer than"),
        (b"\xff\xfe sk-ant-oat01-not-utf8\n", "is not JSON"),
    ],
)
def test_a_malformed_stdin_line_exits_2_without_echoing_it(
    worker, env, stdin, sdk, capsys, line, problem
):
    stdin(line)

    assert worker.main() == 2

    output = capsys.readouterr()
    assert problem in output.err and output.err.count("\n") == 1
    assert "sk-ant-oat01" not in output.out + output.err
    assert sdk.built == []


def test_a_terminal_stdin_is_not_read(worker, env, sdk, monkeypatch, capsys):
    class Terminal(UnreadStdin):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Terminal())

    assert worker.main() == 2
    assert "no environment key: set ANTHROPIC_ENVIRONMENT_KEY" in capsys.readouterr().err


def test_without_the_anthropic_package_one_line_says_what_to_add(
    worker, env, stdin, monkeypatch, capsys
):
    for name in [m for m in sys.modules if m == "anthropic" or m.startswith("anthropic.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "anthropic", None)  # `import anthropic` now fails
    stdin(secret_line())

    assert worker.main() == 2

    assert capsys.readouterr().err == (
        "error: worker mode needs the anthropic package: add 'anthropic>=0.125,<1' to "
        "requirements.txt and rebuild the image\n"
    )


# --- signals --------------------------------------------------------------------------------


STAND_IN = """
import asyncio, sys
import {package}.worker as worker

class Client:
    async def close(self):
        pass

class EnvironmentWorker:
    def __init__(self, client, **kwargs):
        pass

    async def handle_item(self, **kwargs):
        print("serving", flush=True)
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            print("released", flush=True)  # where the SDK force-stops the item
            raise

worker.load_sdk = lambda: worker.Sdk(Client, EnvironmentWorker)
sys.exit(worker.main())
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM handling is POSIX-only")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_releases_the_item_and_exits_0(package, env, sig):
    process = subprocess.Popen(
        [sys.executable, "-c", STAND_IN.format(package=package.__name__)],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")},
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        process.stdin.write(secret_line())
        process.stdin.close()
        assert process.stdout.readline() == b"serving\n"
        process.send_signal(sig)
        process.wait(timeout=30)
        out, err = process.stdout.read(), process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == 0, err.decode()
    assert out == b"released\n"
    lines = log_lines(err.decode())
    assert [(line["work_id"], line["outcome"]) for line in lines if "outcome" in line] == [
        ("work_1", "cancelled")
    ]
    assert KEY.encode() not in out + err


# --- with the real SDK --------------------------------------------------------------------------


def test_the_real_sdk_worker_accepts_what_the_worker_gives_it(worker, env, stdin, monkeypatch):
    pytest.importorskip("anthropic", reason="the anthropic package is not installed")
    from anthropic.lib.environments import EnvironmentWorker

    real_init, real_handle_item = EnvironmentWorker.__init__, EnvironmentWorker.handle_item
    built: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []

    def init(self, client, **kwargs):
        built.append(kwargs)
        real_init(self, client, **kwargs)

    async def handle_item(self, **kwargs):
        inspect.signature(real_handle_item).bind(self, **kwargs)  # the SDK's own parameters
        items.append(kwargs)

    monkeypatch.setattr(EnvironmentWorker, "__init__", init)
    monkeypatch.setattr(EnvironmentWorker, "handle_item", handle_item)
    stdin(secret_line())

    assert worker.main() == 0

    assert built == [{"workdir": env["WORKDIR"], "max_idle": 60.0}]
    assert items[0]["environment_key"] == KEY and items[0]["work_secret"] == SECRET


def test_the_real_sdk_poll_loop_logs_one_line_per_item(worker, env, stdin, monkeypatch, capsys):
    pytest.importorskip("anthropic", reason="the anthropic package is not installed")
    from anthropic.lib.environments import _worker
    from anthropic.types.beta.environments import BetaSelfHostedWork, BetaSessionWorkData

    def work(number: int) -> BetaSelfHostedWork:
        return BetaSelfHostedWork.model_construct(
            id=f"work_{number}", environment_id="env_1", secret=None,
            data=BetaSessionWorkData.model_construct(type="session", id=f"sesn_{number}"),
        )

    async def queue(*args: Any, **kwargs: Any):  # what the poller would claim
        for number in (1, 2):
            yield work(number)

    async def serve(self, work_item, environment_key):  # the per-item body of run()
        assert environment_key == KEY
        if work_item.id == "work_2":
            raise RuntimeError("the session vanished")

    monkeypatch.setattr(_worker, "aiter_work", queue)
    monkeypatch.setattr(_worker.EnvironmentWorker, "_handle_item", serve)
    monkeypatch.delenv("ANTHROPIC_WORK_ID")
    stdin(secret_line(work_secret=None))

    assert worker.main() == 0  # the queue ran dry (the real one never does)

    lines = [line for line in log_lines(capsys.readouterr().err) if "outcome" in line]
    assert [(line["work_id"], line["session_id"], line["outcome"]) for line in lines] == [
        ("work_1", "sesn_1", "completed"), ("work_2", "sesn_2", "failed")
    ]
    assert lines[1]["error"] == "RuntimeError: the session vanished"
