"""Anthropic managed agents: `actk deploy|status|delete anthropic`, `actk invoke --target
anthropic`.

What a deploy sends (see :mod:`toolkit.cloud.anthropic`; every path carries ``?beta=true``):

    GET  /v1/environments/{id}       the environment recorded in .actk/state.json, else
    GET  /v1/environments            every page, for the one of that name
    POST /v1/environments            when there is none: {name, config, description, metadata,
                                     scope}; config is {type: cloud, networking, packages} (the
                                     agent's run-time requirements as packages.pip) or
                                     {type: self_hosted}. A 409 means someone created it
                                     meanwhile: it is looked up again
    POST /v1/environments/{id}       when its config, description or metadata differ (a type
                                     change is refused: environments do not change type)
    GET  /v1/agents/{id}, /v1/agents the agent, the same way
    POST /v1/agents                  when there is none: {name, model, system, description,
                                     tools, mcp_servers, metadata}
    POST /v1/agents/{id}             only the fields that differ, with ``version`` (optimistic
                                     concurrency: a 409 means someone changed it meanwhile);
                                     metadata keys no longer wanted are sent as null
    GET  /v1/sessions/{id}           the recorded session, else
    GET  /v1/sessions?agent_id=&agent_version=   one actk made (metadata actk_image) on this
                                     environment and agent version, not terminated or archived
    POST /v1/sessions                when there is none (or the environment or agent changed):
                                     {agent: {type: agent, id, version}, environment_id, title,
                                     metadata: {..., actk_image}}
    POST /v1/sessions/{id}           {title, metadata} when a reused session's differ

Everything the API would refuse for its limits (names, system prompt, description, tools, MCP
servers, metadata 16 pairs / 64 / 512) is found before the first call. The API key is sent
as ``x-api-key`` and appears in no output: ``--dry-run`` prints [REDACTED] in its place.

A cloud environment runs Anthropic's own sandbox image, not the agent's: only the agent's
Python dependencies travel (requirements.txt lines, minus comments, pip options and lines
marked ``image: build only``, with environment markers evaluated for linux x86_64 and the
base image's Python). A self_hosted environment runs the tools in the agent's own image: its
session waits in the work queue until ``actk worker`` runs it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.cloud.anthropic import (
    ENVIRONMENT_KEY_VARIABLE,
    AnthropicAPIError,
    AnthropicClient,
    Call,
    create_agent_call,
    create_environment_call,
    create_session_call,
    get_agent_call,
    get_environment_call,
    list_agents_call,
    list_environments_call,
    list_sessions_call,
    open_client,
    update_agent_call,
    update_environment_call,
    update_session_call,
    user_message,
)
from toolkit.deploy.core import (
    SYSTEM_CLOCK,
    Clock,
    DeployOptions,
    DeployResult,
    Plan,
    PlannedRequest,
    Problem,
    resolve_image,
    run_and_close,
    target_section,
    utc_now,
)
from toolkit.errors import CloudError, InvokeError, ManifestError
from toolkit.invoke import InvokeResult
from toolkit.manifest import (
    ANTHROPIC_DESCRIPTION_MAX,
    ANTHROPIC_NAME_MAX,
    ANTHROPIC_SYSTEM_MAX,
    METADATA_MAX_VALUE,
    PACKAGE_MANAGERS,
    AnthropicModel,
    metadata_problem,
)

if TYPE_CHECKING:
    import httpx

    from toolkit.console import Console
    from toolkit.manifest import AnthropicTarget, Manifest

TARGET = "anthropic"
IMAGE_KEY = "actk_image"  # session metadata: the image this session was deployed with
BUILD_ONLY = "image: build only"
DEFAULT_PYTHON = "3.12"
ENDED = frozenset({"terminated"})
WORKER_NOTE = (
    "the session waits in the environment's work queue until a worker runs it: "
    f"{ENVIRONMENT_KEY_VARIABLE}=... actk worker (generate the environment key in the Claude "
    "Console: the environment > Generate environment key; there is no API for it)"
)
EXAMPLE = "targets: {anthropic: {environment: {type: cloud}, agent: {model: claude-sonnet-4-5}}}"


@dataclass
class AnthropicOptions(DeployOptions):
    pass


# --- requirements.txt -> packages.pip ---------------------------------------------------------

_COMMENT = re.compile(r"(?:^|\s)#")
_OPTIONS = re.compile(r"\s+--?[A-Za-z]")


def marker_environment(python_version: str) -> dict[str, str]:
    """PEP 508 marker values of the cloud sandbox: Ubuntu on x86_64, CPython."""
    full = python_version if python_version.count(".") >= 2 else f"{python_version}.0"
    return {
        "implementation_name": "cpython",
        "implementation_version": full,
        "os_name": "posix",
        "platform_machine": "x86_64",
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": "Linux",
        "platform_version": "",
        "python_full_version": full,
        "python_version": ".".join(python_version.split(".")[:2]),
        "sys_platform": "linux",
    }


def python_of(base_image: str) -> str:
    """The Python version of a ``python:3.12-slim``-style base image (else 3.12)."""
    match = re.search(r"(?:^|/)python:(\d+\.\d+)", base_image)
    return match.group(1) if match else DEFAULT_PYTHON


def runtime_requirements(text: str, *, python_version: str = DEFAULT_PYTHON
                         ) -> tuple[list[str], list[tuple[int, str]]]:
    """(pip requirements, [(line number, problem)]) of a requirements.txt: blank lines,
    comments, pip options (``-r``, ``--index-url``, ``-e`` ...) and lines marked
    ``image: build only`` are skipped; a line whose environment marker is false on linux
    x86_64 is dropped, and the marker of the others removed."""
    from packaging.requirements import InvalidRequirement, Requirement

    environment = marker_environment(python_version)
    requirements: list[str] = []
    problems: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        line, pending = pending + raw, ""
        code, *comment = _COMMENT.split(line, maxsplit=1)
        if comment and BUILD_ONLY in comment[0]:
            continue
        code = code.strip()
        if not code or code.startswith("-"):
            continue
        code = _OPTIONS.split(code, maxsplit=1)[0]  # per-line options such as --hash
        try:
            requirement = Requirement(code)
        except InvalidRequirement as exc:
            problems.append((start, f"{code!r} is not a requirement ({exc})"))
            continue
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue
        requirement.marker = None
        text_form = str(requirement)
        if text_form not in requirements:
            requirements.append(text_form)
    return requirements, problems


# --- what is sent -----------------------------------------------------------------------------


def model_value(model: str | AnthropicModel) -> str | dict[str, Any]:
    if isinstance(model, str):
        return model
    return {key: value for key, value in model.model_dump().items() if value is not None}


def environment_body(name: str, target: AnthropicTarget, pip: list[str]) -> dict[str, Any]:
    """EnvironmentCreateParams with an explicit config (the default is not documented)."""
    settings = target.environment
    body: dict[str, Any] = {"name": name}
    if settings.type == "self_hosted":
        body["config"] = {"type": "self_hosted"}
    else:
        extra = settings.packages
        packages: dict[str, Any] = {"type": "packages"}
        for manager in PACKAGE_MANAGERS:
            listed = list(getattr(extra, manager)) if extra is not None else []
            if manager == "pip":
                listed = pip + [item for item in listed if item not in pip]
            packages[manager] = listed
        networking = settings.networking
        if networking is None or networking.type == "unrestricted":
            network: dict[str, Any] = {"type": "unrestricted"}
        else:
            any_package = any(packages[manager] for manager in PACKAGE_MANAGERS)
            network = {
                "type": "limited",
                "allowed_hosts": list(networking.allowed_hosts),
                "allow_mcp_servers": networking.allow_mcp_servers,
                # the API answers 400 to packages under limited networking without it
                "allow_package_managers": any_package,
            }
        body["config"] = {"type": "cloud", "networking": network, "packages": packages}
    if settings.description is not None:
        body["description"] = settings.description
    body["metadata"] = dict(settings.metadata)
    if settings.scope is not None:
        body["scope"] = settings.scope
    return body


def agent_body(manifest: Manifest, target: AnthropicTarget, model: str | dict[str, Any]
               ) -> dict[str, Any]:
    """AgentCreateParams; ``system`` and ``description`` are None when there is none (left out
    of a create, sent as null to clear them on an update)."""
    settings = target.agent
    system = settings.system if settings.system is not None else manifest.instructions
    description = (settings.description if settings.description is not None
                   else manifest.description)
    metadata = settings.metadata if settings.metadata is not None else manifest.metadata
    return {
        "name": settings.name or manifest.name,
        "model": model,
        "system": system or None,
        "description": description or None,
        "tools": [dict(tool) for tool in settings.tools],
        "mcp_servers": [server.model_dump() for server in settings.mcp_servers],
        "metadata": dict(metadata),
    }


def creatable(body: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` without its None values (a create has nothing to clear)."""
    return {key: value for key, value in body.items() if value is not None}


def session_body(environment_id: str, agent_id: str, version: int | str, title: str,
                 metadata: Mapping[str, str]) -> dict[str, Any]:
    return {
        "agent": {"type": "agent", "id": agent_id, "version": version},
        "environment_id": environment_id,
        "title": title,
        "metadata": dict(metadata),
    }


def image_label(image: str) -> str:
    """``sha256:0123456789ab`` of a digest reference, else its tag (``latest`` when none)."""
    if "@" in image:
        digest = image.rsplit("@", 1)[1]
        algorithm, _, value = digest.partition(":")
        return f"{algorithm}:{value[:12]}"
    last = image.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else "latest"


# --- comparing with what is there -------------------------------------------------------------

# Lists whose order means nothing to the API.
UNORDERED = frozenset({"allowed_hosts", *PACKAGE_MANAGERS})
# Strings where None and "" are the same (nothing set).
BLANK_IS_NONE = frozenset({"system", "description"})


def same(want: Any, have: Any, key: str = "") -> bool:
    """Whether ``have`` (what the API answers) has everything of ``want`` (what actk sends):
    fields the API adds on its own (defaults it fills in) are no change."""
    if key in BLANK_IS_NONE:
        return (want or None) == (have or None)
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return False
        return all(same(value, have.get(name), name) for name, value in want.items())
    if isinstance(want, list):
        if not isinstance(have, list) or len(want) != len(have):
            return False
        if key in UNORDERED:
            return sorted(map(str, want)) == sorted(map(str, have))
        return all(same(a, b) for a, b in zip(want, have, strict=True))
    if key == "effort" and isinstance(have, dict):  # sent "high", answered {"type": "high"}
        have = have.get("type")
    return want == have


def model_same(want: str | dict[str, Any], have: Any) -> bool:
    have_id = have.get("id") if isinstance(have, dict) else have
    if isinstance(want, str):
        return want == have_id
    if not isinstance(have, dict):
        return want == {"id": have_id}
    return all(same(value, have.get(name), name) for name, value in want.items())


def metadata_patch(want: Mapping[str, str], have: Any) -> dict[str, str | None]:
    """The metadata to send so the remote ends up as ``want``: keys to drop are sent as null."""
    have = have if isinstance(have, dict) else {}
    patch: dict[str, str | None] = dict(want)
    patch.update({key: None for key in have if key not in want})
    return patch


def metadata_same(want: Mapping[str, str], have: Any) -> bool:
    return dict(want) == (dict(have) if isinstance(have, dict) else {})


def environment_changes(desired: Mapping[str, Any], remote: Mapping[str, Any]) -> list[str]:
    """The fields of ``desired`` (a create body) the remote environment does not have."""
    changes = []
    want, have = desired["config"], remote.get("config") or {}
    for name in ("networking", "packages"):
        if name in want and not same(want[name], have.get(name), name):
            changes.append(f"config.{name}")
    if "description" in desired and not same(desired["description"],
                                             remote.get("description"), "description"):
        changes.append("description")
    if not metadata_same(desired.get("metadata") or {}, remote.get("metadata")):
        changes.append("metadata")
    if "scope" in desired and desired["scope"] != remote.get("scope"):
        changes.append("scope")
    return changes


def environment_update_body(desired: Mapping[str, Any], remote: Mapping[str, Any],
                            changes: list[str]) -> dict[str, Any]:
    """EnvironmentUpdateParams: the whole config, and the other fields that differ."""
    body: dict[str, Any] = {"config": desired["config"]}
    if "description" in changes:
        body["description"] = desired["description"]
    if "metadata" in changes:
        body["metadata"] = metadata_patch(desired.get("metadata") or {}, remote.get("metadata"))
    if "scope" in changes:
        body["scope"] = desired["scope"]
    return body


def agent_changes(desired: Mapping[str, Any], remote: Mapping[str, Any]) -> list[str]:
    """The managed fields of ``desired`` the remote agent differs in."""
    changes = []
    for name, value in desired.items():
        have = remote.get(name)
        if name == "model":
            differs = not model_same(value, have)
        elif name == "metadata":
            differs = not metadata_same(value, have)
        else:
            differs = not same(value, have, name)
        if differs:
            changes.append(name)
    return changes


def agent_update_body(desired: Mapping[str, Any], remote: Mapping[str, Any],
                      changes: list[str]) -> dict[str, Any]:
    """AgentUpdateParams: the fields that differ (metadata as a patch) and ``version``."""
    body: dict[str, Any] = {}
    for name in changes:
        if name == "metadata":
            body[name] = metadata_patch(desired[name], remote.get(name))
        else:
            body[name] = desired[name]
    if isinstance(remote.get("version"), int):
        body["version"] = remote["version"]
    return body


def session_agent(session: Mapping[str, Any]) -> tuple[str | None, Any]:
    agent = session.get("agent")
    if isinstance(agent, dict):
        return agent.get("id"), agent.get("version")
    return (agent if isinstance(agent, str) else None), None


def session_usable(session: Mapping[str, Any], environment_id: str, agent_id: str,
                   version: Any) -> bool:
    """On this environment and agent version, and neither terminated nor archived."""
    return (
        session.get("environment_id") == environment_id
        and session_agent(session) == (agent_id, version)
        and session.get("status") not in ENDED
        and not session.get("archived_at")
    )


def session_update_body(title: str, metadata: Mapping[str, str], remote: Mapping[str, Any]
                        ) -> dict[str, Any]:
    """SessionUpdateParams for what differs ({} when nothing does)."""
    body: dict[str, Any] = {}
    if remote.get("title") != title:
        body["title"] = title
    if not metadata_same(metadata, remote.get("metadata")):
        body["metadata"] = metadata_patch(metadata, remote.get("metadata"))
    return body


# --- loading and checking ---------------------------------------------------------------------


def load_target(directory: Path) -> tuple[Path, Manifest, AnthropicTarget]:
    """(repository, manifest, targets.anthropic); a missing section is a ManifestError."""
    return target_section(directory, "anthropic", f"add `{EXAMPLE}` to {{file}}")


def chosen_model(manifest: Manifest, target: AnthropicTarget
                 ) -> tuple[str | dict[str, Any] | None, list[Problem]]:
    """targets.anthropic.agent.model, else model.name when model.provider is anthropic."""
    if target.agent.model is not None:
        return model_value(target.agent.model), []
    if manifest.model.provider == "anthropic":
        return manifest.model.name, []
    return None, [Problem(
        "targets.anthropic.agent.model",
        f"is not set, and model.provider is {manifest.model.provider}, so there is no Claude "
        "model to take: the managed agent runs on Claude; set e.g. model: claude-sonnet-4-5",
    )]


def pip_requirements(repo: Path, manifest: Manifest, target: AnthropicTarget
                     ) -> tuple[list[str], list[Problem]]:
    """The run-time lines of ``environment.requirements`` (cloud only)."""
    settings = target.environment
    if settings.type != "cloud" or settings.requirements is None:
        return [], []
    field_name = "targets.anthropic.environment.requirements"
    path = repo / settings.requirements
    if not path.is_file():
        if "requirements" in settings.model_fields_set:
            return [], [Problem(field_name, f"{settings.requirements} does not exist next to "
                                "agent.yaml; fix the path, or set it to null to send no Python "
                                "packages")]
        return [], []
    pip, problems = runtime_requirements(path.read_text(encoding="utf-8"),
                                         python_version=python_of(manifest.build.base_image))
    return pip, [Problem(field_name, f"{settings.requirements} line {number}: {text}; fix the "
                         "line, or mark it `# image: build only`") for number, text in problems]


def check(problems: list[Problem]) -> None:
    if problems:
        raise ManifestError(
            "\n".join(problem.line() for problem in problems),
            hint=f"fix {problems[0].field} (each line says how); `actk deploy anthropic "
            "--dry-run` checks again without sending anything",
        )


@dataclass
class Desired:
    """Everything a deploy wants, checked before any call."""

    environment_name: str
    environment: dict[str, Any]
    agent: dict[str, Any]
    title: str
    session_metadata: dict[str, str]
    image: str
    image_source: str
    warnings: list[str]


def desired_state(repo: Path, manifest: Manifest, target: AnthropicTarget,
                  image_override: str | None) -> Desired:
    problems: list[Problem] = []
    model, found = chosen_model(manifest, target)
    problems += found
    pip, found = pip_requirements(repo, manifest, target)
    problems += found
    image, source, _, image_warnings = resolve_image(
        repo, manifest, image_override, puller="actk worker", runs="the worker"
    )
    self_hosted = target.environment.type == "self_hosted"
    warnings = image_warnings if self_hosted else []
    agent = agent_body(manifest, target, model or "")
    name_field = "targets.anthropic.agent.name" if target.agent.name else "name"
    if not 1 <= len(agent["name"]) <= ANTHROPIC_NAME_MAX:
        problems.append(Problem(name_field, f"must be 1-{ANTHROPIC_NAME_MAX} characters"))
    if agent["system"] and len(agent["system"]) > ANTHROPIC_SYSTEM_MAX:
        problems.append(Problem(
            "instructions" if target.agent.system is None else "targets.anthropic.agent.system",
            f"is {len(agent['system'])} characters; the API takes at most "
            f"{ANTHROPIC_SYSTEM_MAX}: shorten it",
        ))
    if agent["description"] and len(agent["description"]) > ANTHROPIC_DESCRIPTION_MAX:
        problems.append(Problem("targets.anthropic.agent.description",  # pragma: no cover
                                f"at most {ANTHROPIC_DESCRIPTION_MAX} characters"))
    metadata = {**target.session.metadata, IMAGE_KEY: image}
    if len(image) > METADATA_MAX_VALUE:
        problems.append(Problem("--image" if image_override else "image.repository",
                                f"the image reference is {len(image)} characters; session "
                                f"metadata values take at most {METADATA_MAX_VALUE}"))
    problem = metadata_problem(metadata)
    if problem and len(image) <= METADATA_MAX_VALUE:
        problems.append(Problem("targets.anthropic.session.metadata", problem))
    check(problems)
    environment_name = target.environment.name or manifest.name
    title = target.session.title or f"{agent['name']} {image_label(image)}"
    return Desired(environment_name, environment_body(environment_name, target, pip), agent,
                   title, metadata, image, source, warnings)


def _client(target: AnthropicTarget, env: Mapping[str, str], clock: Clock,
            on_call: Callable[[str], None] | None,
            transport: httpx.BaseTransport | None) -> AnthropicClient:
    return open_client(env, configured_base=target.api_base, transport=transport,
                       sleep=clock.sleep, on_call=on_call)


def recorded(repo: Path) -> dict[str, Any]:
    from toolkit.state import read_state

    section = read_state(repo).get(TARGET)
    return section if isinstance(section, dict) else {}


# --- the deploy -------------------------------------------------------------------------------


@dataclass
class Step:
    """What happens to one resource: ``action`` create | update | unchanged | reuse."""

    action: str
    remote: dict[str, Any] | None = None
    changes: list[str] = field(default_factory=list)


@dataclass
class AnthropicDeploy:
    """The managed-agents deploy as :mod:`toolkit.deploy.core` phases: plan reads (never
    writes), apply writes what differs, wait and route have nothing to do (nothing starts:
    the session runs when a message arrives), record writes the state section."""

    repo: Path
    manifest: Manifest
    target: AnthropicTarget
    options: AnthropicOptions
    env: Mapping[str, str]
    console: Console
    clock: Clock = SYSTEM_CLOCK
    on_call: Callable[[str], None] | None = None
    transport: httpx.BaseTransport | None = None
    name: str = TARGET
    desired: Desired = field(init=False)
    ids: dict[str, Any] = field(init=False, default_factory=dict)
    _client: AnthropicClient | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.desired = desired_state(self.repo, self.manifest, self.target, self.options.image)

    @property
    def client(self) -> AnthropicClient:
        if self._client is None:
            self._client = _client(self.target, self.env, self.clock, self.on_call,
                                   self.transport)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    @property
    def self_hosted(self) -> bool:
        return self.target.environment.type == "self_hosted"

    # --- plan ---

    def plan(self, *, dry_run: bool) -> Plan:
        desired = self.desired
        summary = self._summary()
        warnings = list(desired.warnings)
        if dry_run:
            return Plan(TARGET, "create", f"Dry run: the requests for environment "
                        f"{desired.environment_name} and agent {desired.agent['name']} (nothing "
                        "is sent; a write goes out only when something is missing or differs)",
                        summary, self._planned_requests(), warnings)
        state = recorded(self.repo)
        environment = self._environment_step(state)
        agent = self._agent_step(state)
        session = Step("create")
        if environment.action == "unchanged" and agent.action == "unchanged":
            assert environment.remote is not None and agent.remote is not None
            session = self._session_step(state, environment.remote["id"], agent.remote["id"],
                                         agent.remote.get("version"))
        steps = {"environment": environment, "agent": agent, "session": session}
        actions = {step.action for step in steps.values()}
        action = ("create" if "create" in actions else
                  "update" if "update" in actions else "unchanged")
        reason = "; ".join(self._describe(kind, step) for kind, step in steps.items())
        return Plan(TARGET, action, reason[0].upper() + reason[1:], summary, [], warnings,
                    {"steps": steps})

    def _describe(self, kind: str, step: Step) -> str:
        desired = self.desired
        what = {"environment": f"environment {desired.environment_name}",
                "agent": f"agent {desired.agent['name']}", "session": "session"}[kind]
        if step.action == "create":
            return f"creating {what}"
        if step.action == "update":
            return f"updating {what} ({', '.join(step.changes)})"
        if step.action == "reuse":
            return f"reusing {what} {step.remote['id'] if step.remote else ''}".rstrip()
        return f"{what} unchanged"

    def _environment_step(self, state: Mapping[str, Any]) -> Step:
        remote = _find(self.client, state, "environment", self.desired.environment_name)
        if remote is None:
            return Step("create")
        self._refuse_type_change(remote)
        changes = environment_changes(self.desired.environment, remote)
        return Step("update" if changes else "unchanged", remote, changes)

    def _refuse_type_change(self, remote: Mapping[str, Any]) -> None:
        have = (remote.get("config") or {}).get("type")
        want = self.desired.environment["config"]["type"]
        if have and have != want:
            raise CloudError(
                f"environment {self.desired.environment_name} ({remote.get('id')}) is {have}, "
                f"but agent.yaml asks for {want}: an environment does not change type",
                hint=f"give targets.anthropic.environment.name another name (a new {want} "
                "environment is created), or delete this one first (`actk delete anthropic "
                "--delete-sessions`)",
            )

    def _agent_step(self, state: Mapping[str, Any]) -> Step:
        remote = _find(self.client, state, "agent", self.desired.agent["name"])
        if remote is None:
            return Step("create")
        changes = agent_changes(self.desired.agent, remote)
        return Step("update" if changes else "unchanged", remote, changes)

    def _session_step(self, state: Mapping[str, Any], environment_id: str, agent_id: str,
                      version: Any) -> Step:
        session = self._find_session(state, environment_id, agent_id, version)
        if session is None:
            return Step("create")
        body = session_update_body(self.desired.title, self.desired.session_metadata, session)
        if body:
            return Step("update", session, sorted(body))
        return Step("reuse", session)

    def _find_session(self, state: Mapping[str, Any], environment_id: str, agent_id: str,
                      version: Any) -> dict[str, Any] | None:
        if state.get("session_id"):
            session = self.client.get_session(str(state["session_id"]))
            if session is not None and session_usable(session, environment_id, agent_id,
                                                      version):
                return session
        for session in self.client.list_sessions(agent_id=agent_id, agent_version=version):
            if session_usable(session, environment_id, agent_id, version) and IMAGE_KEY in (
                    session.get("metadata") or {}):
                return session
        return None

    # --- apply ---

    def apply(self, plan: Plan) -> DeployResult:
        steps: dict[str, Step] = plan.context["steps"]
        environment, env_action = self._apply_environment(steps["environment"])
        agent, agent_action = self._apply_agent(steps["agent"])
        session_step = steps["session"]
        if env_action != "unchanged" or agent_action != "unchanged":
            # a new or changed environment applies to new sessions only; a new agent version
            # needs a session pinned to it
            session_step = Step("create")
            if env_action == "unchanged" and agent_action == "update" and agent.get(
                    "version") == (steps["agent"].remote or {}).get("version"):
                # the API found nothing to change (no new version): the session may stay
                session_step = self._session_step(recorded(self.repo), environment["id"],
                                                  agent["id"], agent.get("version"))
        session, session_action = self._apply_session(session_step, environment, agent)
        changed = "create" in (env_action, agent_action, session_action) or "update" in (
            env_action, agent_action, session_action)
        self.ids = {"environment": environment, "agent": agent, "session": session}
        details = {
            "api_base": self.client.base_url,
            "image": self.desired.image,
            "image_source": self.desired.image_source,
            "environment": {"id": environment.get("id"), "name": self.desired.environment_name,
                            "type": self.target.environment.type, "action": env_action,
                            "changes": steps["environment"].changes},
            "agent": {"id": agent.get("id"), "name": self.desired.agent["name"],
                      "version": agent.get("version"), "action": agent_action,
                      "changes": steps["agent"].changes},
            "session": {"id": session.get("id"), "title": session.get("title"),
                        "status": session.get("status"), "action": session_action},
        }
        if self.self_hosted:
            details["next"] = WORKER_NOTE
        version = agent.get("version")
        return DeployResult(TARGET, plan.action, changed=changed, reason=plan.reason,
                            version=str(version) if version is not None else None,
                            status=session.get("status"), details=details)

    def _apply_environment(self, step: Step) -> tuple[dict[str, Any], str]:
        desired, client = self.desired, self.client
        name = desired.environment_name
        if step.action == "create":
            try:
                created = client.create_environment(desired.environment)
                self.console.success(f"created environment {name} ({created.get('id')})")
                return created, "create"
            except AnthropicAPIError as error:
                if error.status != 409 and error.status < 500:
                    raise
                found = client.find_environment(name)
                if found is None:
                    if error.status == 409:
                        error.hint = (f"the name {name} is taken but no active environment "
                                      "has it (an archived one may): set "
                                      "targets.anthropic.environment.name to another name")
                    raise
                self.console.warn(f"the create answered HTTP {error.status}: environment {name} "
                                  f"exists now ({found.get('id')}); using it")
                self._refuse_type_change(found)
                step = Step("unchanged", found,
                            environment_changes(desired.environment, found))
                if step.changes:
                    step.action = "update"
        assert step.remote is not None
        if step.action == "update":
            body = environment_update_body(desired.environment, step.remote, step.changes)
            updated = client.update_environment(step.remote["id"], body)
            self.console.success(f"updated environment {name} ({', '.join(step.changes)})")
            return {**step.remote, **updated}, "update"
        self.console.detail(f"environment {name} ({step.remote.get('id')}) is unchanged")
        return step.remote, "unchanged"

    def _apply_agent(self, step: Step) -> tuple[dict[str, Any], str]:
        desired, client = self.desired, self.client
        name = desired.agent["name"]
        if step.action == "create":
            try:
                created = client.create_agent(creatable(desired.agent))
            except AnthropicAPIError as error:
                if error.status < 500:
                    raise
                found = client.find_agent(name)
                if found is None:
                    raise
                self.console.warn(f"the create answered HTTP {error.status}: agent {name} "
                                  f"exists now ({found.get('id')}); using it")
                created = found
            self.console.success(f"created agent {name} ({created.get('id')}, version "
                                 f"{created.get('version')})")
            return created, "create"
        assert step.remote is not None
        if step.action == "update":
            body = agent_update_body(desired.agent, step.remote, step.changes)
            try:
                updated = client.update_agent(step.remote["id"], body)
            except AnthropicAPIError as error:
                if error.status == 409:
                    error.hint = (
                        f"agent {name} changed since actk read it (version "
                        f"{step.remote.get('version')}): someone else updated it meanwhile; run "
                        "`actk deploy anthropic` again to compare with its new version"
                    )
                raise
            self.console.success(f"updated agent {name} ({', '.join(step.changes)}): version "
                                 f"{step.remote.get('version')} -> {updated.get('version')}")
            return updated, "update"
        self.console.detail(f"agent {name} ({step.remote.get('id')}) is unchanged at version "
                            f"{step.remote.get('version')}")
        return step.remote, "unchanged"

    def _apply_session(self, step: Step, environment: Mapping[str, Any],
                       agent: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
        desired, client = self.desired, self.client
        if step.action == "create":
            body = session_body(environment["id"], agent["id"], agent["version"], desired.title,
                                desired.session_metadata)
            session = client.create_session(body)
            self.console.success(f"created session {session.get('id')} ({desired.title}), "
                                 f"pinned to agent version {agent['version']}")
            return session, "create"
        assert step.remote is not None
        if step.action == "update":
            body = session_update_body(desired.title, desired.session_metadata, step.remote)
            updated = client.update_session(step.remote["id"], body)
            self.console.success(f"updated session {step.remote['id']} "
                                 f"({', '.join(step.changes)})")
            return {**step.remote, **updated}, "update"
        self.console.detail(f"session {step.remote['id']} is reused")
        return step.remote, "reuse"

    # --- the rest of the phases ---

    def wait(self, result: DeployResult, timeout: float) -> DeployResult:
        return result  # nothing starts: the session runs when a message arrives

    def route(self, result: DeployResult) -> DeployResult:
        if self.self_hosted:
            self.console.warn(WORKER_NOTE)
        return result

    def record(self, result: DeployResult) -> Path | None:
        from toolkit.state import write_section

        environment = self.ids["environment"]
        agent = self.ids["agent"]
        session = self.ids["session"]
        return write_section(self.repo, TARGET, {
            "environment_id": environment.get("id"),
            "environment_name": self.desired.environment_name,
            "environment_type": self.target.environment.type,
            "agent_id": agent.get("id"),
            "agent_name": self.desired.agent["name"],
            "agent_version": agent.get("version"),
            "session_id": session.get("id"),
            "session_title": session.get("title") or self.desired.title,
            "image": self.desired.image,
            "api_base": self.client.base_url,
            "deployed_at": utc_now(),
        })

    # --- what is shown ---

    def _summary(self) -> list[tuple[str, str]]:
        desired = self.desired
        config = desired.environment["config"]
        rows = [("API", self.client.base_url),
                ("environment", f"{desired.environment_name} ({config['type']})")]
        if config["type"] == "cloud":
            network = config["networking"]
            text = network["type"]
            if network["type"] == "limited":
                text += f" (hosts: {', '.join(network['allowed_hosts']) or 'none'}"
                text += ", package managers allowed)" if network[
                    "allow_package_managers"] else ")"
            rows.append(("networking", text))
            packages = config["packages"]
            listed = [f"{m}: {', '.join(packages[m])}" for m in PACKAGE_MANAGERS if packages[m]]
            rows.append(("packages", "; ".join(listed) or "none"))
        model = desired.agent["model"]
        rows += [
            ("agent", f"{desired.agent['name']} (model "
                      f"{model if isinstance(model, str) else model.get('id')})"),
            ("tools", ", ".join(str(tool.get("type")) for tool in desired.agent["tools"])
             or "none"),
            ("session", f"{desired.title!r}, metadata {IMAGE_KEY}={desired.image}"),
        ]
        return rows

    def planned(self, call: Call, note: str) -> PlannedRequest:
        method, url, headers, body = self.client.describe(call)
        return PlannedRequest(method, url, headers, body, note)

    def _planned_requests(self) -> list[PlannedRequest]:
        desired = self.desired
        env_name, agent_name = desired.environment_name, desired.agent["name"]
        env_id, agent_id, session_id = "{environment_id}", "{agent_id}", "{session_id}"
        agent_update = {**creatable(desired.agent), "version": "{current version}"}
        return [
            self.planned(get_environment_call(env_id), "the environment .actk/state.json "
                         "records, when it does"),
            self.planned(list_environments_call(), f"else every page, for the one called "
                         f"{env_name}"),
            self.planned(create_environment_call(desired.environment),
                         f"only when no environment is called {env_name}"),
            self.planned(update_environment_call(env_id, {
                key: value for key, value in desired.environment.items() if key != "name"}),
                         "only when its config, description or metadata differ (only those "
                         "are sent; name is not)"),
            self.planned(get_agent_call(agent_id), "the agent .actk/state.json records, when "
                         "it does"),
            self.planned(list_agents_call(), f"else every page, for the one called "
                         f"{agent_name}"),
            self.planned(create_agent_call(creatable(desired.agent)),
                         f"only when no agent is called {agent_name}"),
            self.planned(update_agent_call(agent_id, agent_update),
                         "only the fields that differ, with the version read (a new agent "
                         "version)"),
            self.planned(list_sessions_call(agent_id=agent_id, agent_version="{version}"),
                         "a session actk made on this environment and agent version, still "
                         "usable (after the recorded one)"),
            self.planned(create_session_call(session_body(env_id, agent_id, "{version}",
                                                          desired.title,
                                                          desired.session_metadata)),
                         "only when there is none, or the environment or agent changed"),
            self.planned(update_session_call(session_id, {
                "title": desired.title, "metadata": desired.session_metadata}),
                "only when a reused session's title or metadata differ"),
        ]


def deploy_anthropic(
    directory: Path,
    options: AnthropicOptions,
    console: Console,
    env: Mapping[str, str],
    *,
    clock: Clock | None = None,
    on_call: Callable[[str], None] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> DeployResult:
    """`actk deploy anthropic`: plan (reads), show, apply (writes what differs), record."""
    clock = clock or SYSTEM_CLOCK
    repo, manifest, target = load_target(directory)
    deployment = AnthropicDeploy(repo, manifest, target, options, env, console, clock, on_call,
                                 transport)
    return run_and_close(deployment, console, options, clock)


# --- status -----------------------------------------------------------------------------------


def _names(repo: Path, manifest: Manifest, target: AnthropicTarget) -> tuple[str, str]:
    return (target.environment.name or manifest.name, target.agent.name or manifest.name)


def _find(client: AnthropicClient, state: Mapping[str, Any], kind: str, name: str,
          *, include_archived: bool = False) -> dict[str, Any] | None:
    """The environment or agent recorded under ``name`` (still called that), else the one
    called ``name``: the state file first, so a deploy on the same machine lists nothing."""
    get = client.get_environment if kind == "environment" else client.get_agent
    find = client.find_environment if kind == "environment" else client.find_agent
    if state.get(f"{kind}_id") and state.get(f"{kind}_name") == name:
        found = get(str(state[f"{kind}_id"]))
        if found is not None and found.get("name") == name and (
                include_archived or not found.get("archived_at")):
            return found
    return find(name, include_archived=include_archived)


def anthropic_status(
    directory: Path,
    env: Mapping[str, str],
    *,
    clock: Clock | None = None,
    on_call: Callable[[str], None] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> dict[str, Any]:
    """The environment, the agent (version, model, archived) and the session (status, title);
    for self_hosted, the work queue when ANTHROPIC_ENVIRONMENT_KEY is set."""
    clock = clock or SYSTEM_CLOCK
    repo, manifest, target = load_target(directory)
    env_name, agent_name = _names(repo, manifest, target)
    state = recorded(repo)
    report: dict[str, Any] = {
        "target": TARGET,
        "environment": {"name": env_name, "exists": False},
        "agent": {"name": agent_name, "exists": False},
        "session": {"id": state.get("session_id"), "exists": False},
        "work_queue": None,
        "deployed_image": state.get("image"),
    }
    with _client(target, env, clock, on_call, transport) as client:
        report["api_base"] = client.base_url
        environment = _find(client, state, "environment", env_name, include_archived=True)
        if environment is not None:
            config = environment.get("config") or {}
            report["environment"].update(
                exists=True, id=environment.get("id"), type=config.get("type"),
                archived=bool(environment.get("archived_at")),
                archived_at=environment.get("archived_at"),
                networking=(config.get("networking") or {}).get("type"),
            )
        agent = _find(client, state, "agent", agent_name, include_archived=True)
        if agent is not None:
            model = agent.get("model")
            report["agent"].update(
                exists=True, id=agent.get("id"), version=agent.get("version"),
                model=model.get("id") if isinstance(model, dict) else model,
                archived=bool(agent.get("archived_at")), archived_at=agent.get("archived_at"),
            )
        session = client.get_session(str(state["session_id"])) if state.get(
            "session_id") else None
        if session is not None:
            agent_id, version = session_agent(session)
            report["session"].update(
                exists=True, status=session.get("status"), title=session.get("title"),
                environment_id=session.get("environment_id"), agent_id=agent_id,
                agent_version=version, archived=bool(session.get("archived_at")),
            )
        key = (env.get(ENVIRONMENT_KEY_VARIABLE) or "").strip()
        if environment is not None and report["environment"]["type"] == "self_hosted":
            if key:
                try:
                    report["work_queue"] = client.work_stats(environment["id"], key)
                except CloudError as error:
                    report["work_queue"] = {"error": error.message, "hint": error.hint}
            else:
                report["work_queue"] = {"error": f"{ENVIRONMENT_KEY_VARIABLE} is not set",
                                        "hint": "export it to see the work queue"}
    return report


# --- delete -----------------------------------------------------------------------------------


def delete_anthropic(
    directory: Path,
    env: Mapping[str, str],
    console: Console,
    *,
    delete_sessions: bool = False,
    clock: Clock | None = None,
    on_call: Callable[[str], None] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> dict[str, Any]:
    """Archive the agent (there is no delete endpoint); with ``delete_sessions`` delete the
    sessions actk made; then delete the environment when no session references it, else
    archive it. Already archived or deleted things are reported, not errors."""
    from toolkit.state import write_section

    clock = clock or SYSTEM_CLOCK
    repo, manifest, target = load_target(directory)
    env_name, agent_name = _names(repo, manifest, target)
    state = recorded(repo)
    report: dict[str, Any] = {
        "target": TARGET,
        "agent": {"name": agent_name, "id": None, "outcome": "not found"},
        "sessions": [],
        "environment": {"name": env_name, "id": None, "outcome": "not found", "why": ""},
    }
    with _client(target, env, clock, on_call, transport) as client:
        agent = _find(client, state, "agent", agent_name, include_archived=True)
        if agent is None:
            console.warn(f"there is no agent called {agent_name}: nothing to archive")
        else:
            report["agent"]["id"] = agent["id"]
            if agent.get("archived_at"):
                report["agent"]["outcome"] = "already archived"
                console.detail(f"agent {agent_name} ({agent['id']}) was already archived")
            else:
                client.archive_agent(agent["id"])
                report["agent"]["outcome"] = "archived"
                console.success(f"archived agent {agent_name} ({agent['id']}); the API keeps "
                                "archived agents (there is no delete)")
        if delete_sessions:
            ours = _our_sessions(client, state, agent)
            for session_id in ours:
                try:
                    client.delete_session(session_id)
                    outcome = "deleted"
                    console.success(f"deleted session {session_id}")
                except AnthropicAPIError as error:
                    if error.status != 404:
                        raise
                    outcome = "already deleted"
                    console.detail(f"session {session_id} was already deleted")
                report["sessions"].append({"id": session_id, "outcome": outcome})
        environment = _find(client, state, "environment", env_name, include_archived=True)
        if environment is None:
            console.warn(f"there is no environment called {env_name}: nothing to delete")
        else:
            report["environment"].update(_retire_environment(client, environment, env_name,
                                                             console, delete_sessions))
    if state:
        write_section(repo, TARGET, {**state, "status": "deleted", "deleted_at": utc_now()})
    return report


def _our_sessions(client: AnthropicClient, state: Mapping[str, Any],
                  agent: Mapping[str, Any] | None) -> list[str]:
    """The recorded session and every session of the agent that actk made (actk_image)."""
    ours: list[str] = []
    if state.get("session_id"):
        ours.append(str(state["session_id"]))
    if agent is not None:
        for session in client.list_sessions(agent_id=agent["id"], include_archived=True):
            if IMAGE_KEY in (session.get("metadata") or {}) and session.get("id") not in ours:
                ours.append(str(session["id"]))
    return ours


def _retire_environment(client: AnthropicClient, environment: Mapping[str, Any], name: str,
                        console: Console, delete_sessions: bool) -> dict[str, Any]:
    environment_id = str(environment["id"])
    # GET /v1/sessions has no environment filter: every session (archived ones too, which
    # still reference it) is read and matched here
    users = [str(s.get("id")) for s in client.list_sessions(include_archived=True)
             if s.get("environment_id") == environment_id]
    outcome: dict[str, Any] = {"id": environment_id, "sessions_using_it": users}
    if not users:
        try:
            client.delete_environment(environment_id)
        except AnthropicAPIError as error:
            if error.status == 404:
                outcome.update(outcome="already deleted", why="it was gone")
                return outcome
            if error.status != 409:
                raise
            users = ["(the API says sessions still reference it)"]
        else:
            why = "no session references it"
            console.success(f"deleted environment {name} ({environment_id}): {why}")
            outcome.update(outcome="deleted", why=why)
            return outcome
    why = (f"{len(users)} session(s) still reference it ({', '.join(users[:5])}"
           f"{', ...' if len(users) > 5 else ''}); an environment can be deleted only when none "
           "does" + ("" if delete_sessions else ": delete actk's sessions with "
                     "--delete-sessions, then run this again"))
    if environment.get("archived_at"):
        console.detail(f"environment {name} ({environment_id}) was already archived: {why}")
        outcome.update(outcome="already archived", why=why)
        return outcome
    client.archive_environment(environment_id)
    console.success(f"archived environment {name} ({environment_id}) instead of deleting it: "
                    f"{why}. Existing sessions keep working; new ones cannot use it")
    outcome.update(outcome="archived", why=why)
    return outcome


# --- invoke -----------------------------------------------------------------------------------


@dataclass
class AnthropicInvokeResult(InvokeResult):
    """An :class:`InvokeResult` with the session's stop reason and what waits for action."""

    session_id: str | None = None
    stop_reason: str | None = None
    waiting: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "session_id": self.session_id,
                "stop_reason": self.stop_reason, "waiting": self.waiting, "errors": self.errors}


def _session_for(client: AnthropicClient, state: Mapping[str, Any], manifest: Manifest,
                 target: AnthropicTarget) -> dict[str, Any]:
    """The recorded session, else the newest one actk made for the agent's current version."""
    env_name, agent_name = _names(Path(), manifest, target)
    deploy_hint = "run `actk deploy anthropic` (it creates the session)"
    if state.get("session_id") and state.get("status") != "deleted":
        session = client.get_session(str(state["session_id"]))
        if session is not None:
            return session
    agent = _find(client, state, "agent", agent_name)
    environment = _find(client, state, "environment", env_name)
    if agent is None or environment is None:
        raise InvokeError(f"there is no {'agent' if agent is None else 'environment'} called "
                          f"{agent_name if agent is None else env_name}", hint=deploy_hint)
    for session in client.list_sessions(agent_id=agent["id"], agent_version=agent.get("version")):
        if session_usable(session, environment["id"], agent["id"], agent.get("version")) and (
                IMAGE_KEY in (session.get("metadata") or {})):
            return session
    raise InvokeError(f"agent {agent_name} has no session on environment {env_name} for its "
                      f"version {agent.get('version')}", hint=deploy_hint)


def _text_of(event: Mapping[str, Any]) -> str:
    return "".join(block.get("text", "") for block in event.get("content") or []
                   if isinstance(block, dict) and block.get("type") == "text")


def _retry_status(error: Mapping[str, Any]) -> str:
    status = error.get("retry_status")
    return str(status.get("type") if isinstance(status, dict) else status or "")


def invoke_anthropic(
    directory: Path,
    text: str,
    *,
    env: Mapping[str, str],
    timeout: float = 120.0,
    on_delta: Callable[[str], None] | None = None,
    on_notice: Callable[[str], None] | None = None,
    clock: Clock | None = None,
    transport: httpx.BaseTransport | None = None,
) -> AnthropicInvokeResult:
    """Send ``text`` to the deployed session: open its event stream first, then post the
    ``user.message``; ``agent.message`` text goes to ``on_delta`` as it arrives, until
    ``session.status_idle``. ``on_notice`` gets errors the session is still retrying."""
    import httpx

    clock = clock or SYSTEM_CLOCK
    repo, manifest, target = load_target(directory)
    state = recorded(repo)
    self_hosted = (state.get("environment_type") or target.environment.type) == "self_hosted"
    with _client(target, env, clock, None, transport) as client:
        session = _session_for(client, state, manifest, target)
        session_id = str(session["id"])
        if session.get("status") in ENDED or session.get("archived_at"):
            ended = "archived" if session.get("archived_at") else "terminated"
            raise InvokeError(f"session {session_id} is {ended}",
                              hint="run `actk deploy anthropic` to create a new session")
        model = (session.get("agent") or {}).get("model") if isinstance(
            session.get("agent"), dict) else None
        result = AnthropicInvokeResult(
            url=f"{client.base_url}/v1/sessions/{session_id}", id=session_id,
            model=model.get("id") if isinstance(model, dict) else model, session_id=session_id,
        )
        waiting_hint = (f"a self_hosted session runs only while a worker serves it: "
                        f"{ENVIRONMENT_KEY_VARIABLE}=... actk worker" if self_hosted else
                        "raise --timeout, or look at the session in the Claude Console")
        deadline = clock.now() + timeout
        try:
            with client.stream_events(session_id, read_timeout=timeout) as events:
                sent = client.send_events(session_id, [user_message(text)])
                sent_ids = {str(e.get("id")) for e in sent.get("data") or []
                            if isinstance(e, dict)}
                return _follow(events, result, sent_ids, deadline=deadline, clock=clock,
                               on_delta=on_delta, on_notice=on_notice, hint=waiting_hint,
                               hide=client.http.redact)
        except httpx.TimeoutException:
            raise InvokeError(f"session {session_id} sent nothing for {timeout:g} s",
                              hint=waiting_hint) from None
        except httpx.HTTPError as exc:
            raise InvokeError(client.http.redact(f"the event stream of session {session_id} "
                                                 f"failed: {exc}"),
                              hint="check your network and run it again") from None


def _follow(events: Iterator[Any], result: AnthropicInvokeResult, sent_ids: set[str], *,
            deadline: float, clock: Clock, on_delta: Callable[[str], None] | None,
            on_notice: Callable[[str], None] | None, hint: str,
            hide: Callable[[str], str]) -> AnthropicInvokeResult:
    """Read the stream until the turn our message started is idle."""
    started = False
    tool_uses: dict[str, dict[str, Any]] = {}
    session_id = result.session_id
    for sse in events:
        if clock.now() > deadline:
            raise InvokeError(f"session {session_id} did not finish its turn in time "
                              f"(still {'running' if started else 'waiting'})", hint=hint)
        if sse.event == "ping":
            continue
        try:
            event = sse.json()
        except ValueError:
            raise InvokeError(f"the event stream sent something that is not JSON: "
                              f"{hide(sse.data[:200])!r}", hint="run it again") from None
        if not isinstance(event, dict):
            continue
        kind = str(event.get("type") or sse.event or "")
        result.events += 1
        if kind == "error" or sse.event == "error":
            error = event.get("error") if isinstance(event.get("error"), dict) else event
            raise InvokeError(hide(f"the event stream reported an error: "
                                   f"{error.get('type') or 'error'}: "
                                   f"{error.get('message') or 'no message'}"), hint=hint)
        ours = kind == "user.message" and str(event.get("id")) in sent_ids
        if ours or kind == "session.status_running":
            started = True
        elif kind == "agent.message":
            started = True
            piece = _text_of(event)
            result.output_text += piece
            if on_delta is not None and piece:
                on_delta(piece)
        elif kind in ("agent.tool_use", "agent.custom_tool_use", "agent.mcp_tool_use"):
            started = True
            tool_uses[str(event.get("id"))] = event
        elif kind == "session.error":
            error = event.get("error") if isinstance(event.get("error"), dict) else {}
            retry = _retry_status(error)
            entry = {"type": error.get("type"), "message": error.get("message"),
                     "retry_status": retry}
            result.errors.append(entry)
            line = hide(f"session error {error.get('type') or 'unknown_error'}: "
                        f"{error.get('message') or 'no message'} (retry_status {retry or '-'})")
            if retry in ("terminal", "exhausted"):
                raise InvokeError(line, hint=_error_hint(str(error.get("type") or "")))
            if on_notice is not None:
                on_notice(line)
        elif kind == "session.status_terminated":
            raise InvokeError(f"session {session_id} was terminated", hint="run `actk deploy "
                              "anthropic` to create a new session, then invoke again")
        elif kind == "session.deleted":
            raise InvokeError(f"session {session_id} was deleted", hint="run `actk deploy "
                              "anthropic` to create a new session, then invoke again")
        elif kind == "session.status_idle" and started:
            reason = event.get("stop_reason") if isinstance(event.get("stop_reason"),
                                                            dict) else {}
            stop = str(reason.get("type") or "end_turn")
            result.stop_reason = stop
            if stop == "end_turn":
                result.status = "completed"
                return result
            if stop == "requires_action":
                result.status = "requires_action"
                for event_id in reason.get("event_ids") or []:
                    use = tool_uses.get(str(event_id), {})
                    result.waiting.append({"event_id": event_id, "type": use.get("type"),
                                           "name": use.get("name"), "input": use.get("input"),
                                           "evaluated_permission":
                                               use.get("evaluated_permission")})
                return result
            last = result.errors[-1] if result.errors else None
            because = (f": the last error was {last['type']}: {last['message']}" if last else "")
            raise InvokeError(
                hide(f"session {session_id} stopped with {stop}{because}"),
                hint="the session's budget is spent: raise it, or start a new session "
                "(`actk deploy anthropic`)" if stop == "budget_reached" else
                _error_hint(str((last or {}).get("type") or "")),
            )
    raise InvokeError(f"the event stream of session {session_id} ended before the turn did",
                      hint="run it again; the session's events are kept (Claude Console)")


def _error_hint(kind: str) -> str:
    return {
        "model_overloaded_error": "the model is overloaded: try again in a few minutes",
        "model_rate_limited_error": "the organization's rate limit was reached: wait a minute "
        "and try again",
        "billing_error": "the organization's credit or billing needs attention (Claude Console "
        "> Billing)",
        "mcp_connection_failed_error": "an MCP server of the agent cannot be reached: check its "
        "URL in targets.anthropic.agent.mcp_servers (and allow_mcp_servers under limited "
        "networking)",
        "mcp_authentication_failed_error": "an MCP server refused the credentials: check the "
        "vault the session uses",
    }.get(kind, "try again; if it persists, look at the session in the Claude Console")
