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

What every target reads and answers the same way is here too: the image to deploy
(:func:`resolve_image`), runtime.env and the secrets' values (:func:`read_environment`,
:func:`missing_secrets`), and `actk invoke` through an endpoint (:func:`responses_body`,
:func:`read_answer`, :func:`invoke_failures`).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from toolkit.errors import CloudError
from toolkit.redact import REDACTED, redact

if TYPE_CHECKING:
    from toolkit.console import Console
    from toolkit.invoke import InvokeResult
    from toolkit.manifest import Manifest

Reading = TypeVar("Reading")

DIGEST_REFERENCE = re.compile(r"@sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Clock:
    """Time as the waits see it; tests pass one whose ``sleep`` only advances ``now``."""

    sleep: Callable[[float], None] = time.sleep
    now: Callable[[], float] = time.monotonic


SYSTEM_CLOCK = Clock()


@dataclass
class DeployOptions:
    """What `actk deploy <target>` takes for every target; a target's options add its own."""

    image: str | None = None  # --image: deploy this reference instead of the pushed digest
    dry_run: bool = False
    wait: bool = True
    timeout: float = 600.0


@dataclass(frozen=True)
class Problem:
    """One reason the cloud would refuse the request: the field, what is wrong, the fix."""

    field: str
    message: str

    def line(self) -> str:
        return f"agent.yaml: {self.field}: {self.message}"


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


# --- what every target reads before it plans --------------------------------------------------


def utc_now() -> str:
    """The time a state section records (``deployed_at``, ``deleted_at``)."""
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_environment(
    manifest: Manifest, env: Mapping[str, str]
) -> tuple[dict[str, str], list[str]]:
    """(runtime.env plus each runtime.secrets value from ``env``, the secrets that are unset)."""
    values = dict(manifest.runtime.env)
    missing = []
    for name in manifest.runtime.secrets:
        value = env.get(name)
        if value:
            values[name] = value
        else:
            missing.append(name)
    return values, missing


def missing_secrets(missing: Sequence[str], *, dry_run: bool, prefix: str = "",
                    suffix: str = "", remove: str) -> list[str]:
    """The warnings a --dry-run gives for unset secrets; a real deploy raises UsageError.
    ``prefix`` and ``suffix`` place the names, ``remove`` says where else they can go from."""
    from toolkit.errors import UsageError

    if missing and not dry_run:
        names = ", ".join(missing)
        raise UsageError(
            f"{prefix}{names} {'is' if len(missing) == 1 else 'are'} not set in your "
            f"environment{suffix}",
            hint=f"export {missing[0]}=... (in CI, from the secret store), or remove it from "
            f"{remove}",
        )
    return [f"secret {name} is not set in your environment; a real deploy would stop here"
            for name in missing]


def secret_values(environment: Mapping[str, str], names: Sequence[str]) -> list[str]:
    """The values of the secrets ``names`` that are set (not the dry run's placeholder)."""
    return [
        environment[name] for name in names if environment.get(name) not in (None, REDACTED)
    ]


def resolve_image(
    repo: Path, manifest: Manifest, override: str | None, *, puller: str, runs: str
) -> tuple[str, str, str | None, list[str]]:
    """(image reference, where it came from, its recorded platform, warnings): --image, else
    the digest `actk push` recorded, else image.repository:tag (a tag can move, so that
    warns). ``puller`` is the cloud that pulls it, ``runs`` what runs it ("the version")."""
    from toolkit.state import read_state
    from toolkit.tags import split_reference

    if override:
        pinned = DIGEST_REFERENCE.search(override) is not None
        warnings = [] if pinned else [
            f"--image {override} is not pinned by digest: {runs} runs whatever the tag "
            f"points to when {puller} pulls it"
        ]
        return override, "--image", None, warnings
    recorded = read_state(repo).get("image") or {}
    recorded = recorded if isinstance(recorded, dict) else {}
    reference = recorded.get("reference")
    wanted = manifest.image.repository
    if isinstance(reference, str) and "@sha256:" in reference:
        pushed = reference.split("@", 1)[0]
        if wanted is None or split_reference(wanted)[0] == pushed:
            platform = recorded.get("platform")
            return (reference, ".actk/state.json (actk push)",
                    platform if isinstance(platform, str) else None, [])
        stale = [
            f"the last push was {pushed}, but image.repository is {wanted}: deploying the tag "
            "instead; run `actk push` to pin a digest"
        ]
    else:
        stale = [
            "no pushed digest is recorded in .actk/state.json: deploying a tag, which can move; "
            "run `actk push` first to pin the digest"
        ]
    return _tagged(repo, manifest), "image.repository:tag", None, stale


def target_section(directory: Path, name: str, hint: str) -> tuple[Path, Manifest, Any]:
    """(repository, manifest, ``targets.<name>``); a missing section is a ManifestError whose
    hint is ``hint`` with ``{file}`` replaced by the manifest's file name."""
    from toolkit.errors import ManifestError
    from toolkit.manifest import find_manifest, load_manifest

    path = find_manifest(directory)
    manifest = load_manifest(path)
    target = getattr(manifest.targets, name)
    if target is None:
        raise ManifestError(f"{path.name} has no targets.{name} section",
                            hint=hint.replace("{file}", path.name))
    return path.parent, manifest, target


def _tagged(repo: Path, manifest: Manifest) -> str:
    from toolkit.build import planned_tags
    from toolkit.console import Console

    return planned_tags(repo, manifest, [], Console(as_json=True), latest=False)[0]


# --- the glue every target's command shares ---------------------------------------------------


class Deployment(Target, Protocol):
    def close(self) -> None: ...


def run_and_close(deployment: Deployment, console: Console, options: DeployOptions, clock: Clock
                  ) -> DeployResult:
    """:func:`run` with the options of `actk deploy <target>`; the target's client is closed
    whatever happens."""
    try:
        return run(
            deployment,
            console,
            dry_run=options.dry_run,
            wait=options.wait,
            timeout=options.timeout,
            clock=clock,
        )
    finally:
        deployment.close()


def responses_body(text: str, *, stream: bool, model: str | None,
                   structured_inputs: Mapping[str, Any] | None) -> dict[str, Any]:
    """The Responses request `actk invoke` sends to a deployed agent."""
    body: dict[str, Any] = {"input": text, "stream": stream}
    if model:
        body["model"] = model
    if structured_inputs:
        body["structured_inputs"] = dict(structured_inputs)
    return body


def read_answer(
    answer: Any,
    result: InvokeResult,
    *,
    stream: bool,
    on_delta: Callable[[str], None] | None,
    error: Callable[[Any], Exception],
    not_json_hint: str,
    hide: Callable[[str], str] = str,
) -> InvokeResult:
    """An agent's (streamed) httpx answer read into ``result``: an error status raises
    ``error(answer)``; SSE is read event by event, anything else as one JSON response.
    ``hide`` removes secrets from the text an error quotes."""
    from toolkit.errors import InvokeError
    from toolkit.invoke import from_response, parse_sse, read_stream

    if answer.status_code >= 400:
        answer.read()
        raise error(answer)
    kind = answer.headers.get("content-type", "")
    if not stream or not kind.startswith("text/event-stream"):
        answer.read()
        try:
            payload = answer.json()
        except ValueError:
            raise InvokeError(
                f"{result.url} answered with a body that is not JSON: "
                f"{hide(answer.text[:200])!r}",
                hint=not_json_hint,
            ) from None
        return from_response(result, payload)
    return read_stream(result, parse_sse(answer.iter_lines()), on_delta)


@contextmanager
def invoke_failures(url: str, timeout: float, *, who: str, network_hint: str,
                    hide: Callable[[str], str] = str) -> Iterator[None]:
    """httpx's timeouts and transport errors as InvokeErrors with a hint."""
    import httpx

    from toolkit.errors import InvokeError

    try:
        yield
    except httpx.TimeoutException:
        raise InvokeError(
            f"no answer from {who} within {timeout:g} s",
            hint="a cold start can take a minute: retry, or raise --timeout",
        ) from None
    except httpx.HTTPError as exc:
        raise InvokeError(f"request to {url} failed: {hide(str(exc))}",
                          hint=network_hint) from None
