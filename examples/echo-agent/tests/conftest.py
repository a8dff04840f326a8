"""Fixtures for the agent's test suite: the app in-process, the official ``openai`` client and
raw ``httpx`` bound to it, SSE parsing, a live uvicorn server and the real process.

Protocol tests run :func:`model_agent`, which streams what the configured model answers (the
offline echo provider here), so they keep passing when you change ``agent.py``;
``test_agent.py`` covers ``agent.py`` itself.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import uvicorn

import echo_agent.errors
import echo_agent.logs
from echo_agent.app import create_app
from echo_agent.settings import Settings

PACKAGE = "echo_agent"
REPO_ROOT = Path(__file__).resolve().parents[1]
BASE_URL = "http://agent"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def package():
    """The package under test (``package.errors.AgentError`` and friends)."""
    return echo_agent


async def model_agent(ctx) -> AsyncIterator[str]:
    """The agent as generated: stream the configured model's answer."""
    async for text in ctx.stream_model():
        yield text


@pytest.fixture
def settings() -> Settings:
    """Built-in defaults with the echo model; no agent.yaml, no environment."""
    return Settings(model_provider="echo", model_name="echo-1")


@pytest.fixture
def make_app(settings: Settings) -> Callable[..., Any]:
    """``make_app(agent=..., **setting_overrides)``: an app with its own store and settings."""

    def make(agent=model_agent, **overrides: Any):
        return create_app(dataclasses.replace(settings, **overrides), agent=agent)

    return make


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
async def http_for() -> AsyncIterator[Callable[[Any], httpx.AsyncClient]]:
    """``http_for(app)``: a raw httpx client that calls ``app`` in-process."""
    clients: list[httpx.AsyncClient] = []

    def connect(app) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app)
        clients.append(httpx.AsyncClient(transport=transport, base_url=BASE_URL))
        return clients[-1]

    yield connect
    for client in clients:
        await client.aclose()


@pytest.fixture
def openai_for(http_for) -> Callable[[Any], openai.AsyncOpenAI]:
    """``openai_for(app)``: the official client, without retries, calling ``app`` in-process."""

    def connect(app) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=f"{BASE_URL}/v1", api_key="test", http_client=http_for(app), max_retries=0
        )

    return connect


@pytest.fixture
def http(http_for, app) -> httpx.AsyncClient:
    return http_for(app)


@pytest.fixture
def client(openai_for, app) -> openai.AsyncOpenAI:
    return openai_for(app)


# --- server-sent events -------------------------------------------------------------------------


@dataclasses.dataclass
class Frame:
    event: str | None
    data: str

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.data)


@dataclasses.dataclass
class SSEReply:
    """A streamed reply read to the end: status, headers, raw text and its frames."""

    response: httpx.Response

    @property
    def text(self) -> str:
        return self.response.text

    @property
    def frames(self) -> list[Frame]:
        frames = []
        for block in self.text.split("\n\n"):
            fields: dict[str, str] = {}
            for line in block.splitlines():
                if line.startswith(":"):
                    continue  # a comment, such as ": keep-alive"
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
            if "data" in fields:
                frames.append(Frame(fields.get("event"), fields["data"]))
        return frames

    @property
    def events(self) -> list[dict[str, Any]]:
        return [frame.json for frame in self.frames if frame.data != "[DONE]"]

    @property
    def types(self) -> list[str]:
        return [event["type"] for event in self.events]


@pytest.fixture
def sse() -> type[SSEReply]:
    """``sse(response)``: read a streamed httpx response as SSE frames and events."""
    return SSEReply


@pytest.fixture
def post_stream(http) -> Callable[..., Any]:
    """``await post_stream(body, via=http, headers=...)``: POST /responses with stream: true."""

    async def post(body: dict[str, Any], *, via: httpx.AsyncClient | None = None, **kwargs):
        response = await (via or http).post("/responses", json={**body, "stream": True}, **kwargs)
        return SSEReply(response)

    return post


# --- real servers -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def live_server() -> Iterator[Callable[[Any], str]]:
    """``live_server(app)``: serve ``app`` with uvicorn on 127.0.0.1 in a thread; returns its
    base URL. Unlike ASGITransport it streams for real, so clients can disconnect mid-stream."""
    running: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app) -> str:
        port = free_port()
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            lifespan="off",
            log_config=None,
            loop="asyncio",
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        running.append((server, thread))
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in running:
        server.should_exit = True
        thread.join(timeout=10)


@dataclasses.dataclass
class AgentProcess:
    process: subprocess.Popen
    base_url: str

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)


@pytest.fixture
def agent_process() -> Iterator[Callable[..., AgentProcess]]:
    """``agent_process(**env)``: ``python -m <package>`` on a free port, ready to serve (with
    the echo model unless ``env`` says otherwise)."""
    if sys.platform == "win32":
        pytest.skip("SIGTERM handling is POSIX-only")
    started: list[subprocess.Popen] = []

    def start(**env: str) -> AgentProcess:
        port = free_port()
        environment = {
            **os.environ,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "LOG_LEVEL": "warning",
            "MODEL_PROVIDER": "echo",  # offline, whatever agent.yaml names
            "MODEL_NAME": "echo-1",
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(REPO_ROOT / "src"), os.environ.get("PYTHONPATH")])
            ),
            **env,
        }
        process = subprocess.Popen(
            [sys.executable, "-m", PACKAGE],
            cwd=REPO_ROOT,
            env=environment,
            stdout=subprocess.DEVNULL,
        )
        started.append(process)
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"python -m {PACKAGE} exited with {process.returncode}")
            try:
                if httpx.get(f"{base_url}/readiness", timeout=1).status_code == 200:
                    return AgentProcess(process, base_url)
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"python -m {PACKAGE} did not become ready")
            time.sleep(0.05)

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


# --- shared by the model-provider, agent-settings and structured-input tests -------------------


@pytest.fixture(scope="module")
def stub_server():
    """Local model servers speaking the OpenAI and Anthropic wire formats (model_stubs.py)."""
    from model_stubs import ModelStub

    server = ModelStub().start()
    yield server
    server.stop()


@pytest.fixture
def stub(stub_server):
    """The stub, with an empty script and nothing received yet."""
    stub_server.replies.clear()
    stub_server.received.clear()
    return stub_server


@pytest.fixture
def load_settings(package, tmp_path):
    """``load_settings(text)``: Settings from an agent.yaml holding ``text``."""

    def load(text: str):
        path = tmp_path / "agent.yaml"
        path.write_text(text, encoding="utf-8")
        return package.settings.Settings.from_env({"AGENT_MANIFEST": str(path)})

    return load
