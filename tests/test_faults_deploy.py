"""`actk deploy {azure,alibaba,anthropic}` (in-process, click's CliRunner) against the contract
servers while they inject faults at every step of a deploy, one step after another.

For each target a clean deploy first counts the calls a deploy makes (N). Then, for every k < N:

- an outage from the k-th call on (every later call answers 500, retries included): the deploy
  fails with a one-line message and a hint, never a traceback, and a re-run once the service is
  back converges on exactly what a clean deploy leaves (one agent, one version or runtime, one
  endpoint or session: no duplicates), and a third run changes nothing;
- a burst at the k-th call (503 twice, then 429 with Retry-After: 3): the deploy succeeds, waits
  what the service asked (on a fake clock), and leaves the same state;
- a lost answer at the k-th call (the service applies it, then the connection is reset before
  the answer gets back): the deploy succeeds or fails clearly, and a re-run converges with no
  duplicate (a retried create must not make a second agent, version or runtime).

Latency: every call 50 ms slower, the deploy still succeeds, in bounded wall time.
"""

from __future__ import annotations

import io
import itertools
import json
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tests import test_deploy_alibaba as alibaba_tests
from tests import test_deploy_anthropic as anthropic_tests
from tests import test_deploy_azure as azure_tests
from tests.deploying import FakeClock
from toolkit.cli import cli
from toolkit.deploy import alibaba as alibaba_deploy
from toolkit.deploy import anthropic as anthropic_deploy
from toolkit.deploy import azure as azure_deploy

SECRET = "sk-live-faults-0123456789"  # what OPENAI_API_KEY holds here


@dataclass
class Target:
    """What the loop needs from one target: its contract, repo, environment, and end state."""

    name: str
    fixture: str
    start: Callable[[Any], Any]
    repo: Callable[[Path, Any], Path]
    env: Callable[[Any], dict[str, str | None]]
    calls: Callable[[Any], int]
    fail: Callable[..., None]
    clear: Callable[[Any], None]
    state: Callable[[Any], dict[str, Any]]  # what a converged deploy leaves, comparable


# --- azure ----------------------------------------------------------------------------------------


def _azure_state(contract: Any) -> dict[str, Any]:
    agents = {name: {"versions": {v: ver.status for v, ver in agent.versions.items()},
                     "endpoint": agent.settings.get("agent_endpoint")}
              for name, agent in contract.agents.items()}
    return {"agents": agents}


AZURE = Target(
    name="azure",
    fixture="foundry",
    start=lambda make: make(api="v1", activation_polls=1),
    repo=lambda root, c: azure_tests.write_repo(
        root, azure_tests.manifest_data(project_endpoint=c.endpoint, api="v1")),
    env=lambda c: {**c.env, "OPENAI_API_KEY": SECRET},
    calls=lambda c: len(c.requests),
    fail=lambda c, status, **kw: c.fail(status, **kw),
    clear=lambda c: c._faults.clear(),
    state=_azure_state,
)


# --- alibaba --------------------------------------------------------------------------------------


def _alibaba_state(contract: Any) -> dict[str, Any]:
    runtimes = {}
    for runtime in contract.runtimes.values():
        runtimes[runtime.name] = {
            "status": runtime.status,
            "endpoints": sorted(e.name for e in runtime.endpoints.values()),
        }
    return {"runtimes": runtimes}


ALIBABA = Target(
    name="alibaba",
    fixture="agentrun",
    start=lambda make: make(region=alibaba_tests.REGION, ready_polls=1),
    repo=lambda root, c: alibaba_tests.write_repo(root, alibaba_tests.manifest_data()),
    env=lambda c: {**c.env, "OPENAI_API_KEY": SECRET},
    calls=lambda c: len(c.actions),
    fail=lambda c, status, **kw: c.fail(status, **kw),
    clear=lambda c: c.clear_faults(),
    state=_alibaba_state,
)


# --- anthropic ------------------------------------------------------------------------------------


def _anthropic_state(contract: Any) -> dict[str, Any]:
    live = [s for s in contract.sessions.values() if not s.get("archived_at")]
    return {
        "environments": sorted(e["name"] for e in contract.environments.values()
                               if not e.get("archived_at")),
        "agents": sorted((versions[-1]["name"], len(versions))
                         for versions in contract.agents.values()),
        "sessions": len(live),
    }


def _anthropic_fail(contract: Any, status: int, *, times: int | None = 1, after: int = 0,
                    headers: dict[str, str] | None = None) -> None:
    # lower-case names: the contract's own default (retry-after: 0) must be replaced, not doubled
    lowered = {name.lower(): value for name, value in (headers or {}).items()}
    contract.fail(None, ".", status, times=times, after=after, headers=lowered)


ANTHROPIC = Target(
    name="anthropic",
    fixture="anthropic_contract",
    start=lambda make: make(),
    repo=lambda root, c: anthropic_tests.make_repo(root),
    env=lambda c: {"ANTHROPIC_API_KEY": c.api_key, "ANTHROPIC_BASE_URL": c.url,
                   "ANTHROPIC_ENVIRONMENT_KEY": None},
    calls=lambda c: len(c.requests),
    fail=_anthropic_fail,
    clear=lambda c: c.clear_faults(),
    state=_anthropic_state,
)

TARGETS = [AZURE, ALIBABA, ANTHROPIC]


# --- helpers --------------------------------------------------------------------------------------


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """Every deploy module's clock: retries, Retry-After and polling cost no time."""
    fake = FakeClock()
    for module in (azure_deploy, alibaba_deploy, anthropic_deploy):
        monkeypatch.setattr(module, "SYSTEM_CLOCK", fake.clock)
    return fake


def deploy(target: Target, contract: Any, root: Path) -> Result:
    result = CliRunner().invoke(cli, ["deploy", target.name, "--json", "-C", str(root)],
                                env=target.env(contract), catch_exceptions=True)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"deploy {target.name} raised {result.exception!r}:\n{result.output}"
    )
    assert "Traceback" not in result.output
    assert SECRET not in result.output
    return result


def violations(contract: Any) -> list[str]:
    """What the contract saw a correct client never do (a duplicate create among them)."""
    return list(contract.violations)


def clean(target: Target, request: pytest.FixtureRequest, root: Path) -> tuple[int, dict]:
    """A deploy with no fault: the calls it makes and the state it leaves."""
    contract = target.start(request.getfixturevalue(target.fixture))
    done = deploy(target, contract, target.repo(root, contract))
    assert done.exit_code == 0, done.output
    return target.calls(contract), target.state(contract)


def one_line_error(result: Result) -> dict[str, Any]:
    """The --json error of a failed command: a message and a hint, each one line."""
    error = json.loads(result.stdout)
    assert error["message"] and "\n" not in error["message"].strip(), error
    assert error.get("hint"), error
    return dict(error)


# --- the tests ------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_a_deploy_interrupted_after_each_call_converges_on_a_rerun(
    target: Target, request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> None:
    calls, expected = clean(target, request, tmp_path / "clean")
    assert calls >= 3
    for k in range(calls):
        contract = target.start(request.getfixturevalue(target.fixture))
        root = target.repo(tmp_path / f"cut-{k}", contract)
        target.fail(contract, 500, times=None, after=k)
        failed = deploy(target, contract, root)
        assert failed.exit_code != 0, f"an outage from call {k} went unnoticed: {failed.output}"
        one_line_error(failed)

        target.clear(contract)
        rerun = deploy(target, contract, root)
        assert rerun.exit_code == 0, f"re-run after an outage at call {k}: {rerun.output}"
        assert target.state(contract) == expected, f"outage at call {k}"
        before = target.calls(contract)
        again = deploy(target, contract, root)
        assert again.exit_code == 0, again.output
        assert target.state(contract) == expected, f"third run after an outage at call {k}"
        assert json.loads(again.stdout).get("changed") is not True, again.stdout
        assert target.calls(contract) > before
        assert violations(contract) == []


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_a_burst_of_5xx_and_a_429_at_each_call_is_ridden_out(
    target: Target, request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> None:
    calls, expected = clean(target, request, tmp_path / "clean")
    for k in range(calls):
        contract = target.start(request.getfixturevalue(target.fixture))
        root = target.repo(tmp_path / f"burst-{k}", contract)
        target.fail(contract, 503, times=2, after=k)
        target.fail(contract, 429, times=1, after=k, headers={"Retry-After": "3"})
        waited = len(clock.slept)
        done = deploy(target, contract, root)
        assert done.exit_code == 0, f"a burst at call {k}: {done.output}"
        assert target.state(contract) == expected, f"burst at call {k}"
        assert 3 in clock.slept[waited:], f"Retry-After was not honoured at call {k}"
        assert sum(clock.slept[waited:]) < 60, clock.slept[waited:]
        assert violations(contract) == []


def wrapped(target: Target, request: pytest.FixtureRequest,
            around: Callable[[Callable[..., Any], Any, tuple, dict], Any]) -> Any:
    """A running contract whose every request goes through ``around(handle, handler, ...)``."""
    contract = target.start(request.getfixturevalue(target.fixture))
    contract.stop()
    handle = contract._handle
    contract._handle = lambda handler, *a, **kw: around(handle, handler, a, kw)
    return contract.start() or contract


def reset(handler: Any) -> None:
    """Close the request's connection with a TCP RST instead of an answer."""
    sock = handler.connection
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    handler.close_connection = True
    sock.close()


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_an_answer_lost_after_each_call_leaves_no_duplicate(
    target: Target, request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> None:
    calls, expected = clean(target, request, tmp_path / "clean")
    for k in range(calls):
        count = itertools.count()

        def lose_kth(handle: Callable[..., Any], handler: Any, a: tuple, kw: dict,
                     k: int = k, count: Any = count) -> Any:
            if next(count) != k:
                return handle(handler, *a, **kw)
            handler.wfile = io.BytesIO()  # the service applies the call; its answer is lost
            try:
                return handle(handler, *a, **kw)
            finally:
                reset(handler)

        contract = wrapped(target, request, lose_kth)
        root = target.repo(tmp_path / f"lost-{k}", contract)
        first = deploy(target, contract, root)
        if first.exit_code != 0:
            one_line_error(first)
            rerun = deploy(target, contract, root)
            assert rerun.exit_code == 0, f"re-run after a lost answer at call {k}: {rerun.output}"
        assert target.state(contract) == expected, f"lost answer at call {k}"
        assert violations(contract) == []


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_a_deploy_through_added_latency_succeeds_in_bounded_time(
    target: Target, request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> None:
    def slow(handle: Callable[..., Any], handler: Any, a: tuple, kw: dict) -> Any:
        time.sleep(0.05)
        return handle(handler, *a, **kw)

    contract = wrapped(target, request, slow)
    root = target.repo(tmp_path / "slow", contract)
    started = time.monotonic()
    done = deploy(target, contract, root)
    elapsed = time.monotonic() - started
    assert done.exit_code == 0, done.output
    calls = target.calls(contract)
    assert elapsed >= 0.05 * calls
    assert elapsed < 0.05 * calls + 10, f"{calls} calls took {elapsed:.1f} s"
