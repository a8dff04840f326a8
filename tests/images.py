"""Agent images for the engine tests, built once per test session.

The good image is the default `actk new` repository built with the toolkit's own builders;
the broken ones (tests/broken_images/) are built FROM it. Every tag carries a per-session
suffix, so concurrent test runs never see each other's images or containers, and the tags are
removed when the session ends (BuildKit's cache keeps rebuilds fast).

Tests that need them are marked ``docker``; without an engine they are skipped with the reason
(and fail in CI, where an engine must be present).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from queue import Empty, Queue

import pytest

from tests.conftest import BASE_IMAGE, HOST_CA_BUNDLE, engine, render

BROKEN = Path(__file__).parent / "broken_images"
SESSION = secrets.token_hex(3)
# The console script, for tests that interrupt actk: under `python -m`, CPython 3.11 may turn a
# handled KeyboardInterrupt that passed through exec() (dataclass creation in an import) into
# death by SIGINT after a clean sys.exit(130).
ACTK = str(Path(sys.executable).with_name("actk"))
PACKAGE = "echo_agent"  # the default render's package

_built: dict[str, str] = {}  # what this session built: name -> tag (or path)


def build(tag: str, context: Path, *build_args: str) -> str:
    """Build ``context`` (a directory with a Dockerfile) with the toolkit's own builders."""
    from toolkit.build_context import collect
    from toolkit.builders import BuildRequest, build_with_api, build_with_cli, choose_builder
    from toolkit.ca_bundle import find_ca_bundle

    request = BuildRequest(
        context=collect(context, "Dockerfile"),
        tags=[tag],
        platform="linux/amd64",
        build_args=dict(arg.split("=", 1) for arg in build_args),
        ca=find_ca_bundle(HOST_CA_BUNDLE if HOST_CA_BUNDLE.is_file() else None, {}),
    )
    mode, cli = choose_builder("auto")
    if cli is not None:
        build_with_cli(cli, mode, request, lambda line: None)
    else:
        build_with_api(request, lambda line: None, engine())
    return tag


def session_image(
    config: pytest.Config, name: str, make: Callable[[str], None]
) -> str:
    """``actk-test-<name>-<session>:latest``, built by ``make(tag)`` the first time asked."""
    if name not in _built:
        engine()
        tag = f"actk-test-{name}-{SESSION}:latest"
        make(tag)
        _built[name] = tag
        config.add_cleanup(lambda: _remove_image(tag))
    return _built[name]


def _remove_image(tag: str) -> None:
    with contextlib.suppress(Exception):  # already gone, or the engine went away
        engine().images.remove(tag, force=True)


def agent_repo(config: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default `actk new` repository, rendered once per session."""
    if "repo" not in _built:
        _built["repo"] = str(
            render(tmp_path_factory.mktemp("agent") / "echo-agent", base_image=BASE_IMAGE)
        )
    return Path(_built["repo"])


def good_image(config: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> str:
    repo = agent_repo(config, tmp_path_factory)

    return session_image(config, "echo", lambda tag: build(tag, repo))


def broken_image(
    config: pytest.Config, tmp_path_factory: pytest.TempPathFactory, kind: str
) -> str:
    agent = good_image(config, tmp_path_factory)
    return session_image(
        config,
        kind.replace("_", "-"),
        lambda tag: build(
            tag, BROKEN / kind, f"AGENT_IMAGE={agent}", f"AGENT_PACKAGE={PACKAGE}"
        ),
    )


def inputs_agent(
    config: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path]:
    """The default repository with a required input (userName) and one with a default (units)
    declared in agent.yaml, built as users build it: the image and the repository."""
    import yaml

    good_image(config, tmp_path_factory)  # the same base layers, and a skip without engine
    if "inputs-dir" not in _built:
        directory = tmp_path_factory.mktemp("inputs-agent") / "echo-agent"
        shutil.copytree(agent_repo(config, tmp_path_factory), directory)
        manifest = yaml.safe_load((directory / "agent.yaml").read_text())
        manifest["instructions"] = "Help {{userName}}; temperatures in {{units}}."
        manifest["structured_inputs"] = {
            "userName": {"description": "Who asks", "required": True,
                         "schema": {"type": "string"}},
            "units": {"default_value": "Celsius", "schema": {"type": "string"}},
        }
        (directory / "agent.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
        _built["inputs-dir"] = str(directory)
    directory = Path(_built["inputs-dir"])
    image = session_image(config, "inputs", lambda tag: build(tag, directory))
    return image, directory


def repository(image: str) -> str:
    return image.rsplit(":", 1)[0]


def containers_named(name: str) -> list:
    """Toolkit-managed containers called exactly ``name`` (running or not)."""
    found = engine().containers.list(
        all=True, filters={"label": "dev.actk.managed=true", "name": f"^/?{re.escape(name)}$"}
    )
    return found


def start_actk(*args: str, cwd: Path, env: dict[str, str] | None = None):
    """`actk ARGS` in the background (the console script), its stderr read by a LineReader.
    Python's fault handler is on, so a hang can be shown (see interrupt())."""
    process = subprocess.Popen(
        [ACTK, *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONFAULTHANDLER": "1", **(env or {})},
    )
    return process, LineReader(process.stderr)


def interrupt(process: subprocess.Popen, stderr: LineReader, sig: int, timeout: float = 30) -> int:
    """Send ``sig`` and wait for the exit code; on a hang, fail with every thread's stack."""
    process.send_signal(sig)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)  # the fault handler prints the stacks
        process.wait(timeout=10)
        stacks = stderr.drain()
        raise AssertionError(f"still running {timeout} s after {sig!r}:\n{stacks}") from None
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


class LineReader:
    """Reads a process stream on a thread so a test can wait for a line with a timeout."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._queue: Queue[str | None] = Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines:
                found = re.search(pattern, line)
                if found:
                    return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no line matching {pattern!r} in:\n{self.text()}")
            try:
                line = self._queue.get(timeout=remaining)
            except Empty:
                continue
            if line is None:
                raise AssertionError(f"stream ended without {pattern!r}:\n{self.text()}")
            self.lines.append(line)

    def drain(self, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.01, deadline - time.monotonic()))
            except Empty:
                break
            if line is None:
                break
            self.lines.append(line)
        return self.text()

    def text(self) -> str:
        return "".join(self.lines)
