"""The phases every deploy target shares: plan, show (or --dry-run), apply, wait, route, record.

A target fills in what its cloud needs and nothing else:

    plan(dry_run)  the validated manifest and pushed image -> what would be sent. Without
                   --dry-run it may read the cloud to decide (the idempotency rule: an
                   unchanged definition creates nothing); with it, it sends nothing at all.
    apply(plan)    send the plan's changes; returns a result whose status may not be final
    wait(result)   follow the cloud until the result is final (bounded, with progress)
    route(result)  point the target's endpoint at the result's version, where the cloud keeps
                   that apart from creating it (idempotent: nothing is sent when it already
                   does); a target whose endpoint follows on its own returns the result as is
    record(result) write the target's section of .actk/state.json (never a secret)

:func:`run` drives them in that order; :func:`poll` is the one bounded wait loop every target
uses (with "two consecutive terminal readings" when a cloud's status can flap).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from toolkit.errors import CloudError
from toolkit.redact import REDACTED, redact

if TYPE_CHECKING:
    from toolkit.console import Console

Reading = TypeVar("Reading")


@dataclass(frozen=True)
class Clock:
    """Time as the waits see it; tests pass one whose ``sleep`` only advances ``now``."""

    sleep: Callable[[float], None] = time.sleep
    now: Callable[[], float] = time.monotonic


SYSTEM_CLOCK = Clock()


@dataclass(frozen=True)
class PlannedRequest:
    """One request exactly as it is (or would be) sent, secrets already replaced."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: Any = None
    note: str = ""  # when it is sent: "only when the definition changed", "until active"

    def to_dict(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "method": self.method,
            "url": self.url,
            "headers": dict(self.headers),
            "body": self.body,
        }
        if self.note:
            payload["note"] = self.note
        return payload

    def render(self) -> str:
        """HTTP-like text: request line, headers, blank line, indented JSON body."""
        lines = [f"{self.method} {self.url}"]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        if self.body is not None:
            lines += ["", json.dumps(self.body, indent=2, sort_keys=False)]
        if self.note:
            lines.insert(0, f"# {self.note}")
        return "\n".join(lines)

    def redacted(self, secrets: Sequence[str]) -> PlannedRequest:
        """A copy with every secret value removed from the URL, headers and body text."""
        body = self.body
        if body is not None and secrets:
            body = json.loads(redact(json.dumps(body), secrets))
        return PlannedRequest(
            self.method,
            redact(self.url, secrets),
            {name: redact(value, secrets) for name, value in self.headers.items()},
            body,
            self.note,
        )


@dataclass
class Plan:
    """What a deploy will do, and why, before it does it."""

    target: str
    action: str  # create | start | wait | unchanged (each target documents its own)
    reason: str  # one sentence for people
    summary: list[tuple[str, str]] = field(default_factory=list)  # (field, value) rows
    requests: list[PlannedRequest] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)  # what apply needs from planning

    @property
    def changes_anything(self) -> bool:
        return self.action != "unchanged"


@dataclass
class DeployResult:
    """What a deploy did: the machine-readable answer of ``--json``."""

    target: str
    action: str
    changed: bool
    dry_run: bool = False
    version: str | None = None
    status: str | None = None
    endpoint: str | None = None
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    requests: list[PlannedRequest] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    state_file: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "target": self.target,
            "action": self.action,
            "changed": self.changed,
            "dry_run": self.dry_run,
            "version": self.version,
            "status": self.status,
            "endpoint": self.endpoint,
            "reason": self.reason,
            **self.details,
            "warnings": self.warnings,
            "state_file": self.state_file,
            "seconds": round(self.seconds, 2),
        }
        if self.dry_run:
            payload["requests"] = [request.to_dict() for request in self.requests]
        return payload


class Target(Protocol):
    """What a cloud module implements for :func:`run`."""

    name: str

    def plan(self, *, dry_run: bool) -> Plan: ...

    def apply(self, plan: Plan) -> DeployResult: ...

    def wait(self, result: DeployResult, timeout: float) -> DeployResult: ...

    def route(self, result: DeployResult) -> DeployResult: ...

    def record(self, result: DeployResult) -> Path | None: ...


def run(
    target: Target,
    console: Console,
    *,
    dry_run: bool = False,
    wait: bool = True,
    timeout: float = 600.0,
    clock: Clock = SYSTEM_CLOCK,
) -> DeployResult:
    """plan -> show -> (dry run: stop) -> apply -> wait -> route -> record."""
    started = clock.now()
    plan = target.plan(dry_run=dry_run)
    show(console, plan)
    if dry_run:
        return DeployResult(
            target=plan.target,
            action=plan.action,
            changed=False,
            dry_run=True,
            reason=plan.reason,
            details={"plan": dict(plan.summary)},
            requests=plan.requests,
            warnings=plan.warnings,
        )
    result = target.apply(plan)
    result.warnings = plan.warnings + result.warnings
    if wait:
        result = target.wait(result, timeout)
    result = target.route(result)
    path = target.record(result)
    result.state_file = str(path) if path else None
    result.seconds = clock.now() - started
    return result


def show(console: Console, plan: Plan) -> None:
    for warning in plan.warnings:
        console.warn(warning)
    console.step(plan.reason)
    for name, value in plan.summary:
        console.detail(f"{name}: {value}")


class WaitTimeout(CloudError):
    """A bounded wait ran out; ``last`` is the last status read."""

    def __init__(self, message: str, *, hint: str, last: str | None) -> None:
        super().__init__(message, hint=hint)
        self.last = last


def poll(
    read: Callable[[], tuple[str, Reading]],
    *,
    terminal: Callable[[str], bool],
    interval: float,
    timeout: float,
    clock: Clock = SYSTEM_CLOCK,
    confirmations: int = 1,
    on_reading: Callable[[str, float], None] | None = None,
    what: str = "the deployment",
    hint: str = "it may still finish: check its status later, or raise --timeout",
) -> tuple[str, Reading]:
    """Read until ``terminal(status)`` holds for ``confirmations`` readings in a row.

    ``read`` returns (status, payload); ``on_reading`` gets each status and the seconds waited.
    Raises :class:`WaitTimeout` when ``timeout`` seconds pass first.
    """
    started = clock.now()
    streak, previous = 0, None
    while True:
        status, payload = read()
        waited = clock.now() - started
        if on_reading is not None:
            on_reading(status, waited)
        # A terminal status counts once per reading in a row; any change starts again.
        streak = (streak + 1 if status == previous else 1) if terminal(status) else 0
        previous = status
        if streak >= confirmations:
            return status, payload
        if waited + interval > timeout:
            raise WaitTimeout(
                f"{what} is still {status} after {waited:.0f} s (limit {timeout:g} s)",
                hint=hint,
                last=status,
            )
        clock.sleep(interval)


def redact_values(mapping: Mapping[str, str], secret_names: Sequence[str]) -> dict[str, str]:
    """``mapping`` with the values of ``secret_names`` replaced by ``[REDACTED]``."""
    hidden = set(secret_names)
    return {key: REDACTED if key in hidden else value for key, value in mapping.items()}
