"""`actk run` and `actk invoke`: request building and error reporting against a stub server,
then the real image on the engine (started, invoked, interrupted, removed)."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import images
from tests.conftest import actk, free_port, run
from toolkit.container import RunSpec, container_environment
from toolkit.invoke import parse_inputs, parse_sse, responses_url
from toolkit.run_command import parse_env

# --- pieces --------------------------------------------------------------------------------------


def test_sse_parser_joins_data_lines_and_skips_comments():
    lines = [": keep-alive", "", "event: a", "data: {\"x\":", "data: 1}", "", "data: [DONE]", ""]
    events = list(parse_sse(lines))
    assert [(e.event, e.data) for e in events] == [("a", '{"x":\n1}'), (None, "[DONE]")]


def test_input_values_are_json_when_they_parse_and_strings_otherwise():
    assert parse_inputs(["n=3", "name=Ada", "tags=[\"a\"]", "flag=true", "quoted=\"3\"", "e="]) == {
        "n": 3,
        "name": "Ada",
        "tags": ["a"],
        "flag": True,
        "quoted": "3",
        "e": "",
    }


def test_responses_path_is_added_once():
    assert responses_url("http://h:1") == "http://h:1/responses"
    assert responses_url("http://h:1/v1/") == "http://h:1/v1/responses"
    assert responses_url("http://h:1/responses") == "http://h:1/responses"


def test_secrets_are_copied_by_name_and_missing_ones_listed():
    spec = RunSpec(image="x", port=9000, env={"LOG_LEVEL": "info", "PORT": "1"},
                   secrets=("TOKEN", "ABSENT"))
    env, missing = container_environment(
        spec, 9000, overrides={"LOG_LEVEL": "debug"}, source={"TOKEN": "t0k", "OTHER": "no"}
    )
    assert env == {"LOG_LEVEL": "debug", "PORT": "9000", "TOKEN": "t0k"}
    assert missing == ["ABSENT"]


def test_a_bare_env_name_copies_the_callers_value():
    assert parse_env(("A=1", "B"), {"B": "from-caller"}) == {"A": "1", "B": "from-caller"}


def test_invoke_needs_local_or_url():
    result = actk("invoke", "hi")
    assert result.returncode == 2
    assert "--local or --url" in result.stderr


def test_invoke_input_without_equals_is_a_usage_error():
    result = actk("invoke", "hi", "--url", "http://127.0.0.1:9", "--input", "userName")
    assert result.returncode == 2
    assert "--input 'userName' is not name=value" in result.stderr


def test_invoke_against_a_refused_port_says_to_start_the_agent(tmp_path: Path):
    port = free_port()
    result = actk("invoke", "hi", "--url", f"http://127.0.0.1:{port}")
    assert result.returncode == 7
    assert f"nothing answers at http://127.0.0.1:{port}/responses (connection refused)" in (
        result.stderr
    )
    assert "actk run" in result.stderr
    assert "Traceback" not in result.stderr


@dataclass
class Stub:
    """A one-answer HTTP server; it records each request body."""

    url: str
    status: int = 200
    content_type: str = "application/json"
    body: bytes = b""
    requests: list[dict[str, Any]] | None = None


@pytest.fixture
def stub() -> Iterator[Stub]:
    stub = Stub(url="", requests=[])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            stub.requests.append({"path": self.path, "body": json.loads(self.rfile.read(length))})
            self.send_response(stub.status)
            self.send_header("content-type", stub.content_type)
            self.send_header("content-length", str(len(stub.body)))
            self.end_headers()
            self.wfile.write(stub.body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield stub
    server.shutdown()
    server.server_close()


def test_invoke_sends_text_inputs_and_model_in_the_body(stub: Stub):
    stub.body = json.dumps({"id": "resp_1", "object": "response", "status": "completed",
                            "output": [{"type": "message", "content": [
                                {"type": "output_text", "text": "done"}]}]}).encode()
    result = actk("invoke", "hello", "--url", stub.url + "/v1", "--no-stream", "--model", "m1",
                  "-i", "userName=Ada", "-i", "count=2")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "done\n"
    assert stub.requests == [{"path": "/v1/responses", "body": {
        "input": "hello", "stream": False, "model": "m1",
        "structured_inputs": {"userName": "Ada", "count": 2}}}]


def test_an_openai_error_answer_becomes_one_clear_error(stub: Stub):
    stub.status = 400
    stub.body = json.dumps({"error": {"message": "Structured input 'userName' is required.",
                                      "type": "invalid_request_error",
                                      "param": "structured_inputs.userName",
                                      "code": "missing_required_structured_input"}}).encode()
    result = actk("invoke", "hello", "--url", stub.url)
    assert result.returncode == 7
    assert result.stderr.splitlines()[0] == (
        "error: the agent answered HTTP 400: Structured input 'userName' is required. "
        "(type invalid_request_error, code missing_required_structured_input, "
        "param structured_inputs.userName)"
    )


def test_a_failed_stream_becomes_an_error_naming_the_code(stub: Stub):
    stub.content_type = "text/event-stream"
    events = [
        {"type": "response.created", "sequence_number": 0, "response": {"id": "resp_1"}},
        {"type": "response.output_text.delta", "sequence_number": 1, "delta": "par"},
        {"type": "response.failed", "sequence_number": 2, "response": {
            "id": "resp_1", "status": "failed",
            "error": {"code": "server_error", "message": "the model went away"}}},
    ]
    stub.body = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()
    result = actk("invoke", "hello", "--url", stub.url, "--json")
    assert result.returncode == 7
    assert json.loads(result.stdout)["message"] == (
        "the response failed: server_error: the model went away"
    )


# --- against the engine ------------------------------------------------------------------------

docker = pytest.mark.docker
SECRET_VALUE = "s3cr3t-" + images.SESSION


@pytest.fixture(scope="session")
def agent_image(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    return images.good_image(request.config, tmp_path_factory)


@dataclass
class Running:
    process: subprocess.Popen[str]
    stderr: images.LineReader
    name: str
    url: str


def start_run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Running:
    process, stderr = images.start_actk("run", *args, cwd=cwd, env=env)
    try:
        found = stderr.wait_for(r"(actk-run-\S+) ready at (http://127\.0\.0\.1:\d+)")
    except BaseException:
        process.kill()
        raise
    return Running(process, stderr, found[1], found[2])


def stop_run(running: Running, sig: signal.Signals = signal.SIGINT) -> int:
    try:
        return images.interrupt(running.process, running.stderr, sig, timeout=60)
    finally:
        for container in images.containers_named(running.name):
            container.remove(force=True)


@pytest.fixture(scope="module")
def agent_dir(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, agent_image: str
) -> Path:
    """The rendered repo, its agent.yaml pointing at the session's image, on a free port, with
    one secret set in the caller's environment and one missing."""
    repo = images.agent_repo(request.config, tmp_path_factory)
    directory = tmp_path_factory.mktemp("run") / "agent"
    shutil.copytree(repo, directory)
    manifest = yaml.safe_load((directory / "agent.yaml").read_text())
    manifest["image"]["repository"] = images.repository(agent_image)
    manifest["runtime"]["port"] = free_port()
    manifest["runtime"]["secrets"] = ["ACTK_TEST_SECRET", "ACTK_TEST_ABSENT"]
    (directory / "agent.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return directory


@pytest.fixture(scope="module")
def running_agent(agent_dir: Path) -> Iterator[Running]:
    """`actk run` with no IMAGE in agent_dir, left running for the module's tests."""
    running = start_run(cwd=agent_dir, env={"ACTK_TEST_SECRET": SECRET_VALUE})
    yield running
    stop_run(running)


@docker
def test_run_defaults_to_the_manifest_image_and_port(running_agent: Running, agent_dir: Path):
    port = yaml.safe_load((agent_dir / "agent.yaml").read_text())["runtime"]["port"]
    assert running_agent.url == f"http://127.0.0.1:{port}"
    (container,) = images.containers_named(running_agent.name)
    assert container.labels["dev.actk.image"].endswith(":latest")
    assert container.attrs["HostConfig"]["PortBindings"] == {
        f"{port}/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
    }


@docker
def test_run_passes_secrets_by_name_and_never_prints_them(running_agent: Running):
    (container,) = images.containers_named(running_agent.name)
    assert f"ACTK_TEST_SECRET={SECRET_VALUE}" in container.attrs["Config"]["Env"]
    assert SECRET_VALUE not in " ".join(container.attrs["Args"] + container.attrs["Config"]["Cmd"])
    text = running_agent.stderr.text()
    assert "secret ACTK_TEST_ABSENT is not set in your environment" in text
    assert SECRET_VALUE not in text


@docker
def test_invoke_local_streams_the_answer(running_agent: Running, agent_dir: Path):
    result = actk("invoke", "--local", "-C", str(agent_dir), "hello from the test")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello from the test\n"


@docker
def test_invoke_json_reports_the_response(running_agent: Running, agent_dir: Path):
    result = run(
        [images.ACTK, "invoke", "--local", "--no-stream", "--json", "count to three"],
        cwd=agent_dir,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["status"] == "completed"
    assert answer["output_text"] == "count to three"
    assert answer["id"].startswith("resp_")


@docker
def test_invoke_input_the_agent_does_not_declare_is_a_clear_error(
    running_agent: Running, agent_dir: Path
):
    result = actk("invoke", "--local", "-C", str(agent_dir), "hi", "--input", "userName=Ada")
    assert result.returncode == 7
    assert "HTTP 400: Unknown structured input 'userName'" in result.stderr


@docker
def test_detached_run_serves_structured_inputs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
):
    image, directory = images.inputs_agent(request.config, tmp_path_factory)
    result = actk("run", image, "--detach", "--port", "0", "--json", "-C", str(directory))
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    try:
        assert [c.status for c in images.containers_named(info["name"])] == ["running"]
        given = actk("invoke", "--url", info["url"], "hi", "--input", "userName=Ada")
        assert given.returncode == 0, given.stderr
        assert given.stdout == "hi\n"
        missing = actk("invoke", "--url", info["url"], "hi")
        assert missing.returncode == 7
        assert "Structured input 'userName' is required." in missing.stderr
    finally:
        for container in images.containers_named(info["name"]):
            container.remove(force=True)


@docker
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupting_run_stops_and_removes_the_container(
    agent_image: str, tmp_path: Path, sig: signal.Signals
):
    running = start_run(agent_image, "--port", "0", cwd=tmp_path)
    assert [c.status for c in images.containers_named(running.name)] == ["running"]
    assert stop_run(running, sig) == 0
    text = running.stderr.drain()
    assert "stopped (exit 0)" in text
    assert f"removed {running.name}" in text
    assert images.containers_named(running.name) == []


@docker
def test_run_on_a_port_in_use_says_so(agent_image: str, tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = actk("run", agent_image, "--port", str(port), cwd=tmp_path)
    assert result.returncode == 5
    assert f"cannot publish the agent on 127.0.0.1:{port}: the port is in use" in result.stderr
    assert images.engine().containers.list(
        all=True, filters={"label": f"dev.actk.image={agent_image}", "status": "created"}
    ) == []
