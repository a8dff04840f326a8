"""`actk logs`: one command for the agent's logs, wherever it runs.

    local      the container `actk run` started (label ``dev.actk.managed``, name
               ``actk-run-...``), through the Engine API: --tail, --since, --follow
    azure      Foundry's log streams: on 2025-11-15-preview the version's container
               (``GET .../containers/default:logstream?kind&tail&follow``, chunked text); on v1
               a session's (``GET .../versions/{v}/sessions/{sid}:logstream``, SSE ``log``
               frames). v1 documents no per-version stream: without --session the message
               points at Application Insights
    alibaba    AgentRun documents only where logs go (``logConfiguration``: an SLS project and
               logstore), no query API: the message names the logstore, its console page and
               the CLI to use
    anthropic  a session's event list (``GET /v1/sessions/{id}/events``), one line per event;
               --follow then reads ``/events/stream``

Every source hands lines to a ``sink``; the CLI prints them. The work lives here, the
rendering in :mod:`toolkit.cli_logs`.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from toolkit.errors import CloudError, DockerError, UsageError

TARGETS = ("local", "azure", "alibaba", "anthropic")
Sink = Callable[[str], None]
# Foundry's container log stream takes tail=1..300 (reference §2.3).
FOUNDRY_MAX_TAIL = 300
FOUNDRY_DEFAULT_TAIL = 100
APP_INSIGHTS_HINT = (
    "Foundry sends the container's console output to the project's Application Insights "
    "resource: open it in the Azure portal (Monitor > Logs, or the Foundry portal's agent "
    "Traces/Monitoring page) and query the traces table"
)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


@dataclass(frozen=True)
class LogOptions:
    follow: bool = False
    tail: int | None = None  # the last N lines (None: the source's default)
    since: datetime | None = None  # aware; lines at or after it
    version: str | None = None  # azure: the agent version (default: the deployed one)
    session: str | None = None  # azure v1, anthropic: the session
    container: str | None = None  # local: a container name or id
    kind: str = "console"  # azure preview: console | system


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``--since``: a duration back from now (``90s``, ``10m``, ``2h``, ``1d``), an ISO-8601
    time (UTC unless it names a zone) or Unix seconds."""
    now = now or datetime.now(UTC)
    value = text.strip()
    match = _DURATION.match(value)
    if match:
        return now - timedelta(**{_UNITS[match[2]]: float(match[1])})
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"--since {text!r} is neither a duration nor a time",
            hint="use a duration (90s, 10m, 2h, 1d), an ISO-8601 time (2026-05-01T12:00:00Z) "
            "or Unix seconds",
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _last(lines: Iterable[str], tail: int | None) -> Iterable[str]:
    return lines if tail is None else deque(lines, maxlen=tail)


# --- local ------------------------------------------------------------------------------------


def run_containers(client: Any, image_repository: str | None = None) -> list[Any]:
    """Running containers `actk run` started, newest first; those of ``image_repository``
    (agent.yaml's image) first when it is known."""
    from toolkit.container import managed_containers

    found = [
        c for c in managed_containers(client, status="running")
        if c.name.startswith("actk-run-")
    ]
    found.sort(key=lambda c: c.attrs.get("Created", ""), reverse=True)
    if image_repository:
        mine = [c for c in found if _repository(c.labels.get("dev.actk.image", ""))
                == _repository(image_repository)]
        found = mine or found
    return found


def _repository(image: str) -> str:
    name = image.split("@", 1)[0]
    head, _, tail = name.rpartition(":")
    return head if head and "/" not in tail else name


def local_logs(directory: Path, options: LogOptions, sink: Sink) -> dict[str, Any]:
    """Print the `actk run` container's logs (stdout and stderr)."""
    import docker.errors

    from toolkit.engine import docker_client

    client = docker_client()
    if options.container:
        try:
            container = client.containers.get(options.container)
        except docker.errors.NotFound:
            raise DockerError(
                f"no container {options.container} in the local engine",
                hint="list the ones actk started: docker ps --filter label=dev.actk.managed",
            ) from None
    else:
        candidates = run_containers(client, _image_repository(directory))
        if not candidates:
            raise DockerError(
                "no running container started by `actk run`",
                hint="start one with `actk run --detach` (or pass --container NAME)",
            )
        container = candidates[0]
    kwargs: dict[str, Any] = {"stream": True, "follow": options.follow, "stdout": True,
                              "stderr": True, "tail": "all" if options.tail is None
                              else options.tail}
    if options.since is not None:
        kwargs["since"] = int(options.since.timestamp())
    count = 0
    pending = b""
    for chunk in container.logs(**kwargs):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            sink(line.decode("utf-8", "replace").rstrip("\r"))
            count += 1
    if pending:
        sink(pending.decode("utf-8", "replace"))
        count += 1
    return {"target": "local", "container": container.name, "count": count}


def _image_repository(directory: Path) -> str | None:
    try:
        from toolkit.manifest import find_manifest, load_manifest

        return load_manifest(find_manifest(directory)).image.repository or None
    except Exception:  # no agent.yaml is fine here: any `actk run` container will do
        return None


# --- azure ------------------------------------------------------------------------------------


def azure_logs(
    directory: Path,
    env: Mapping[str, str],
    options: LogOptions,
    sink: Sink,
    *,
    features: str | None = None,
) -> dict[str, Any]:
    """Print a Foundry log stream: the preview's container log, or a v1 session's log."""
    import httpx

    from toolkit.cloud.foundry import PREVIEW_API, _segment
    from toolkit.deploy.azure import _client, _require_endpoint, load_target
    from toolkit.deploy.core import SYSTEM_CLOCK
    from toolkit.state import read_state

    repo, manifest, target = load_target(directory)
    _require_endpoint(target)
    agent = target.agent_name or manifest.name
    preview = target.api == PREVIEW_API
    if not preview and not options.session:
        raise UsageError(
            f"Foundry's {target.api} API streams logs per session only, and no session was given",
            hint=f"pass --session <id> (the x-agent-session-id header of an answer), or: "
            f"{APP_INSIGHTS_HINT}",
        )
    if options.tail is not None and not 1 <= options.tail <= FOUNDRY_MAX_TAIL and preview:
        raise UsageError(f"--tail {options.tail}: Foundry's log stream returns 1 to "
                         f"{FOUNDRY_MAX_TAIL} lines", hint=f"use --tail {FOUNDRY_MAX_TAIL} or "
                         f"fewer; older lines are in Application Insights")
    with _client(target, env, features=features, secrets=[], clock=SYSTEM_CLOCK) as client:
        version = options.version or _azure_version(client, repo, agent, read_state)
        base = f"agents/{_segment(agent)}/versions/{_segment(version)}"
        if preview:
            query = {"kind": options.kind, "follow": "true" if options.follow else "false",
                     "tail": str(options.tail or FOUNDRY_DEFAULT_TAIL)}
            url = client.url(f"{base}/containers/default:logstream", query)
            source = f"container of {agent} version {version} ({options.kind})"
        else:
            url = client.url(f"{base}/sessions/{_segment(str(options.session))}:logstream")
            source = f"session {options.session} of {agent} version {version}"
        headers = {**client.headers(token=client.token(), body=False),
                   "Accept": "text/plain" if preview else "text/event-stream"}
        # Foundry closes an idle stream after a minute: wait longer than that for a line.
        response = client.http.request("GET", url, headers=headers, stream=True,
                                       label=f"read the log stream of the {source}",
                                       timeout=httpx.Timeout(90, connect=10))
        try:
            if response.status_code >= 400:
                response.read()
                error = client.error(response, f"read the log stream of the {source}")
                if response.status_code == 404:
                    error.hint = (
                        "the session or container is not there (a preview version's container "
                        "runs after `actk deploy azure`; a session ends when idle); "
                        + APP_INSIGHTS_HINT
                    )
                raise error
            lines = response.iter_lines()
            entries = lines if preview else _sse_log_lines(lines)
            count = 0
            try:
                for line in entries if options.follow else _last(entries, options.tail):
                    sink(client.http.redact(line))
                    count += 1
            except httpx.TransportError as exc:
                raise CloudError(
                    f"the log stream of the {source} broke off: {type(exc).__name__}",
                    hint="run the command again (Foundry ends a log stream after about 10 "
                    "minutes, or 1 minute without output)",
                ) from None
        finally:
            response.close()
    return {"target": "azure", "agent": agent, "version": version, "api": target.api,
            "session": options.session, "count": count}


def _azure_version(client: Any, repo: Path, agent: str, read_state: Callable[..., Any]) -> str:
    recorded = read_state(repo).get("azure") or {}
    if recorded.get("agent_name") == agent and recorded.get("version"):
        return str(recorded["version"])
    latest = client.latest_version(agent)
    if latest is None:
        raise CloudError(f"agent {agent} has no versions in this Foundry project",
                         hint="deploy it first: actk deploy azure")
    return latest.version


def _sse_log_lines(lines: Iterable[str]) -> Iterator[str]:
    """The text of each ``event: log`` frame (a JSON object's message/line field if it is one)."""
    from toolkit.invoke import parse_sse

    for event in parse_sse(lines):
        if event.event not in (None, "log"):
            continue
        yield from _log_text(event.data).splitlines() or [""]


def _log_text(data: str) -> str:
    try:
        value = json.loads(data)
    except ValueError:
        return data
    if isinstance(value, dict):
        for key in ("message", "line", "log", "text", "content"):
            if isinstance(value.get(key), str):
                return value[key]
    return data


# --- alibaba ----------------------------------------------------------------------------------


def alibaba_logs(directory: Path) -> dict[str, Any]:
    """AgentRun documents no log query API: say where the runtime's logs are."""
    from toolkit.deploy.alibaba import load_target

    _, manifest, target = load_target(directory)
    log = target.log
    if log is None:
        raise UsageError(
            "AgentRun keeps this runtime's logs nowhere actk can read: targets.alibaba.log is "
            "not set, so no SLS logstore receives them",
            hint="add `log: {project: <sls-project>, logstore: <logstore>}` under "
            "targets.alibaba in agent.yaml and run `actk deploy alibaba`; until then the "
            "AgentRun console shows the runtime's recent output",
        )
    region = target.region
    console = (f"https://sls.console.aliyun.com/lognext/project/{log.project}/logsearch/"
               f"{log.logstore}?slsRegion={region}")
    raise UsageError(
        f"AgentRun offers no log API: runtime {target.runtime_name or manifest.name} writes to "
        f"SLS project {log.project}, logstore {log.logstore} ({region})",
        hint=f"query it in the console, {console}, or with the aliyun CLI: aliyun sls GetLogs "
        f"--project {log.project} --logstore {log.logstore} --from <unix-time> --to <unix-time>",
    )


# --- anthropic --------------------------------------------------------------------------------


def anthropic_logs(
    directory: Path,
    env: Mapping[str, str],
    options: LogOptions,
    sink: Sink,
    *,
    transport: Any = None,
) -> dict[str, Any]:
    """A session's events as log lines; with --follow, then its live event stream."""
    from toolkit.cloud.anthropic import SESSIONS, Call, open_client, path
    from toolkit.deploy.anthropic import load_target, recorded

    repo, _, target = load_target(directory)
    session = options.session or recorded(repo).get("session_id")
    if not session:
        raise UsageError(
            "no Anthropic session to read: none was given and `actk deploy anthropic` has "
            "recorded none",
            hint="pass --session <id>, or deploy first: actk deploy anthropic",
        )
    session = str(session)
    count = 0
    seen: set[str] = set()
    with open_client(env, configured_base=target.api_base, transport=transport) as client:
        def listing(page: str | None) -> Call:
            return Call("GET", path(SESSIONS + "/{id}/events", id=session),
                        {"order": "asc", "limit": 1000, "page": page})

        events = (e for e in client.pages(listing, f"list events of session {session}")
                  if _after(e, options.since))
        for event in _last(events, options.tail):
            seen.add(str(event.get("id")))
            sink(event_line(event))
            count += 1
        if options.follow:
            count += _follow_events(client, session, seen, sink)
    return {"target": "anthropic", "session": session, "count": count}


def _follow_events(client: Any, session: str, seen: set[str], sink: Sink) -> int:
    """Events from the live stream (those already listed are skipped), until Ctrl-C."""
    import httpx

    count = 0
    try:
        with client.stream_events(session, read_timeout=600) as stream:
            for sse in stream:
                try:
                    event = json.loads(sse.data)
                except ValueError:
                    continue
                if isinstance(event, dict) and str(event.get("id")) not in seen:
                    seen.add(str(event.get("id")))
                    sink(event_line(event))
                    count += 1
    except httpx.TransportError as exc:
        raise CloudError(
            f"the event stream of session {session} broke off: {type(exc).__name__}",
            hint="run the command again; events already printed are listed again first",
        ) from None
    return count


def _after(event: Mapping[str, Any], since: datetime | None) -> bool:
    if since is None:
        return True
    stamp = event.get("created_at") or event.get("processed_at")
    if not isinstance(stamp, str):
        return True
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return True
    return (when if when.tzinfo else when.replace(tzinfo=UTC)) >= since


def event_line(event: Mapping[str, Any]) -> str:
    """``<time> <type> <text>``: a message's text, a tool's name, an error's message."""
    stamp = event.get("created_at") or event.get("processed_at") or ""
    kind = str(event.get("type") or "event")
    parts = [str(stamp), kind] if stamp else [kind]
    text = "".join(
        str(block.get("text", "")) for block in event.get("content") or []
        if isinstance(block, dict) and block.get("type") == "text"
    )
    if not text:
        for key in ("name", "stop_reason", "error"):
            value = event.get(key)
            if isinstance(value, dict):
                value = value.get("message") or value.get("type")
            if value:
                text = str(value)
                break
    if text:
        parts.append(text.replace("\n", "\\n"))
    return " ".join(parts)
