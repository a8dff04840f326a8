"""`--verbose` on every command: one redacted line per HTTP call, on stderr.

Real calls go through CloudHttp (every control-plane client) and plain httpx clients (registry,
invoke, smoke) against a local server; the CLI is driven in-process against the Foundry contract
server, so what a user sees on stderr (and never on stdout) is what is checked.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click
import httpx
import pytest
from click.testing import CliRunner

from tests.contract_server import serve, shut, url_of
from tests.deploying import write_repo
from tests.foundry_contract import Agent, Container, Version
from toolkit import call_log
from toolkit.cli import cli
from toolkit.cloud.http import CloudHttp, RetryPolicy
from toolkit.errors import CloudError

TOKEN = "tok-3b8f1c2e9d7a4b6f"
SAS = "sv=2024&sig=c2VjcmV0LXNpZ25hdHVyZQ%3D%3D&se=2026-12-31"


def _commands(command: click.Command, path: tuple[str, ...] = ("actk",)
              ) -> Iterator[tuple[str, click.Command]]:
    yield " ".join(path), command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from _commands(sub, (*path, name))


@pytest.fixture
def server() -> Iterator[str]:
    """Answers 200 {"ok": true}; ``/busy`` answers 503 (Retry-After: 0) once, then 200."""
    busy = {"left": 1}

    def handle(handler: BaseHTTPRequestHandler) -> None:
        status = 200
        if handler.path.startswith("/busy") and busy["left"]:
            busy["left"] -= 1
            status = 503
        body = b'{"ok": true}'
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        if status == 503:
            handler.send_header("Retry-After", "0")
        handler.end_headers()
        handler.wfile.write(body)

    running = serve(handle)
    yield url_of(running)
    shut(running)


@pytest.fixture(autouse=True)
def call_log_off() -> Iterator[None]:
    call_log.disable()
    yield
    call_log.disable()


# --- the option -----------------------------------------------------------------------------------


def test_every_command_takes_verbose():
    missing = [
        path for path, command in _commands(cli)
        if not any("--verbose" in getattr(param, "opts", ()) for param in command.params)
    ]
    assert missing == []


def test_every_command_takes_json_for_machines():
    # What CI scripts read: one JSON object on stdout (leaf commands; groups only dispatch).
    missing = [
        path for path, command in _commands(cli)
        if not isinstance(command, click.Group)
        and not any("--json" in getattr(param, "opts", ()) for param in command.params)
    ]
    assert missing == []


def test_verbose_is_listed_in_each_commands_help():
    for args in (["--help"], ["deploy", "azure", "--help"], ["logs", "--help"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        assert "--verbose" in result.stdout


# --- the lines ------------------------------------------------------------------------------------


def test_a_cloudhttp_call_logs_method_url_status_and_latency_without_secrets(server: str):
    with call_log.capture() as lines, CloudHttp("test service", base_url=server,
                                                secrets=[TOKEN]) as http:
        response = http.request("GET", f"/blobs/x?{SAS}&path={TOKEN}",
                                headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    (line,) = lines
    assert line.startswith(f"http: GET {server}/blobs/x?")
    assert " -> 200 (" in line and line.endswith(" ms)")
    assert "sig=***" in line and "c2VjcmV0" not in line
    assert TOKEN not in line and "[REDACTED]" in line


def test_retries_show_every_attempt_and_the_wait(server: str):
    policy = RetryPolicy(attempts=3, backoff=0)
    with call_log.capture() as lines, CloudHttp("test", base_url=server, policy=policy,
                                                sleep=lambda s: None) as http:
        http.request("GET", "/busy")
    assert [line.split(" -> ")[-1].split(" ")[0] for line in lines if " -> " in line] == [
        "503", "200"]
    assert any(line.startswith("retry: GET") and "HTTP 503; retrying in 0.0 s" in line
               for line in lines)


def test_a_connection_that_fails_is_logged_with_its_host():
    policy = RetryPolicy(attempts=1)
    http = CloudHttp("test", base_url="http://127.0.0.1:9", policy=policy)
    with call_log.capture() as lines, http, pytest.raises(CloudError, match="cannot reach test"):
        http.request("GET", "/x")
    assert lines and lines[0].startswith("http: GET http://127.0.0.1:9/x -> connection failed")


def test_nothing_is_logged_unless_verbose_is_on(server: str, capsys: pytest.CaptureFixture):
    with CloudHttp("test", base_url=server) as http:
        http.request("GET", "/quiet")
    assert capsys.readouterr().err == ""


def test_plain_httpx_clients_log_through_the_same_hooks(server: str):
    with call_log.capture() as lines, httpx.Client(
            event_hooks=call_log.httpx_hooks([TOKEN])) as client:
        client.get(f"{server}/v2/repo/manifests/latest?token={TOKEN}&n=1",
                   headers={"Authorization": f"Basic {TOKEN}"})
    (line,) = lines
    assert line.startswith(f"http: GET {server}/v2/repo/manifests/latest?token=***&n=1 -> 200")
    assert TOKEN not in line


def test_every_httpx_client_in_the_toolkit_reports_to_the_call_log():
    """CloudHttp logs its own calls; every other ``httpx.Client(...)`` takes the hooks."""
    package = Path(__file__).parents[1] / "toolkit"
    bare = []
    for source in sorted(package.rglob("*.py")):
        if source == package / "cloud" / "http.py":
            continue
        for node in ast.walk(ast.parse(source.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("Client", "AsyncClient")
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "httpx"
                    and not any(k.arg == "event_hooks" for k in node.keywords)):
                bare.append(f"{source.relative_to(package.parent)}:{node.lineno}")
    assert bare == []


def test_engine_calls_log_their_path():
    request = SimpleNamespace(method="GET", url="http+docker://localhost/v1.47/containers/json")
    response = SimpleNamespace(request=request, status_code=200,
                               elapsed=SimpleNamespace(total_seconds=lambda: 0.003))
    api = SimpleNamespace(hooks={"response": []})
    call_log.watch_engine(SimpleNamespace(api=api))
    call_log.watch_engine(SimpleNamespace(api=api))  # once, however often it is watched
    (hook,) = api.hooks["response"]
    with call_log.capture() as lines:
        hook(response)
    assert lines == ["engine: GET /v1.47/containers/json -> 200 (3 ms)"]


# --- through the CLI ------------------------------------------------------------------------------


def _foundry_repo(tmp_path: Path, contract: Any) -> Path:
    """An agent.yaml on the preview API whose version 1 has a running container with logs."""
    contract.agents["support-agent"] = agent = Agent("support-agent", next_version=2)
    agent.versions["1"] = Version("support-agent", "1", {}, None, {}, 0,
                                  container=Container(status="Running"))
    contract.add_logs("support-agent", "1", ["started", "listening on 8088"])
    data = {"name": "support-agent", "model": {"provider": "echo", "name": "echo-1"},
            "targets": {"azure": {"project_endpoint": contract.endpoint,
                                  "api": "2025-11-15-preview"}}}
    return write_repo(tmp_path / "repo", data, pushed=None)


@pytest.mark.parametrize("where", ["after", "before"])
def test_verbose_after_or_before_the_subcommand_prints_the_calls_on_stderr(
        tmp_path: Path, foundry: Any, where: str):
    contract = foundry(api="2025-11-15-preview")
    repo = _foundry_repo(tmp_path, contract)
    command = ["logs", "--target", "azure", "-C", str(repo)]
    args = [*command, "--verbose"] if where == "after" else ["--verbose", *command]
    result = CliRunner().invoke(cli, args, env=contract.env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["started", "listening on 8088"]
    calls = [line for line in result.stderr.splitlines() if line.startswith("http: ")]
    assert [line.split(" ")[1] for line in calls] == ["GET", "GET"]  # latest version, stream
    assert ":logstream?api-version=2025-11-15-preview" in calls[-1]
    assert " -> 200 (" in calls[-1]
    assert contract.token not in result.output
    assert not call_log.enabled()  # off again once the command ended


def test_with_json_the_calls_stay_on_stderr(tmp_path: Path, foundry: Any):
    contract = foundry(api="2025-11-15-preview")
    repo = _foundry_repo(tmp_path, contract)
    result = CliRunner().invoke(
        cli, ["logs", "--target", "azure", "-C", str(repo), "--json", "--verbose"],
        env=contract.env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["lines"] == ["started", "listening on 8088"]
    assert "http: GET" in result.stderr


def test_without_verbose_no_call_is_printed(tmp_path: Path, foundry: Any):
    contract = foundry(api="2025-11-15-preview")
    repo = _foundry_repo(tmp_path, contract)
    result = CliRunner().invoke(cli, ["logs", "--target", "azure", "-C", str(repo)],
                                env=contract.env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "http:" not in result.stderr
