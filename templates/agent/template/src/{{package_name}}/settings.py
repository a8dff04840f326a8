"""Run-time settings: environment variables over ``agent.yaml`` over built-in defaults.

| variable               | default                  | meaning                                     |
|------------------------|--------------------------|---------------------------------------------|
| PORT                   | runtime.port or 8088     | listen port                                 |
| HOST                   | 0.0.0.0                  | listen address                              |
| LOG_LEVEL              | info                     | debug, info, warning, error                 |
| DRAIN_TIMEOUT          | 30                       | seconds SIGTERM waits for in-flight work    |
| MAX_REQUEST_BYTES      | 16777216                 | larger bodies get 413                       |
| SSE_KEEPALIVE_INTERVAL | 15                       | seconds of silence before `: keep-alive`    |
| REQUEST_TIMEOUT        | 60                       | seconds a request (headers and body) may    |
|                        |                          | take to arrive, from its first byte (or     |
|                        |                          | from connecting); then the connection closes|
| WRITE_TIMEOUT          | 60                       | seconds a stream may wait on a client that  |
|                        |                          | reads nothing; then the stream is dropped   |
| RESPONSE_STORE_SIZE    | 1000                     | stored responses kept (least recently used  |
|                        |                          | are evicted first)                          |
| MODEL_PROVIDER         | model.provider or echo   | which provider module answers               |
| MODEL_NAME             | model.name or echo-1     | model name reported and sent upstream       |
| ECHO_DELAY             | 0                        | echo provider: seconds before each word     |
| MODEL_BASE_URL         | the provider's endpoint  | remote model API base URL (vLLM, Ollama...) |
| MODEL_API_KEY_ENV      | OPENAI_API_KEY, ...      | NAME of the variable holding the model key  |
| AZURE_OPENAI_*         | unset                    | ENDPOINT, API_VERSION, AD_TOKEN (Entra ID)  |
| MODEL_TIMEOUT          | 60                       | seconds to connect / between model reads    |
| MODEL_MAX_RETRIES      | 2                        | model retries, before the first token only  |
|                        |                          | (all of these: providers/config.py)         |
| AGENT_MANIFEST         | agent.yaml of the repo   | where the manifest is read from (the image: |
|                        |                          | agent.json, see load_manifest)              |
| FOUNDRY_*              | unset                    | identity Foundry injects (see FoundryEnv)   |

From agent.yaml only: ``temperature`` (0-2), ``top_p`` (0-1) and ``response_format`` are the
defaults a request's ``temperature``, ``top_p`` and ``text.format`` override; ``metadata`` is
the response metadata when a request sends none (see formats.py for the format shapes).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .telemetry import TelemetryConfig, telemetry_config

if TYPE_CHECKING:
    from .inputs import InputPlan

DEFAULT_MANIFEST = Path(__file__).resolve().parents[2] / "agent.yaml"


class SettingsError(Exception):
    """A setting that cannot work; the message names the variable and the fix."""


@dataclass(frozen=True, slots=True)
class FoundryEnv:
    """What Azure AI Foundry injects into a hosted agent's container."""

    project_endpoint: str | None = None
    agent_id: str | None = None
    agent_name: str | None = None
    agent_version: str | None = None
    session_id: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> FoundryEnv:
        return cls(
            project_endpoint=env.get("FOUNDRY_PROJECT_ENDPOINT") or None,
            agent_id=env.get("FOUNDRY_AGENT_ID") or None,
            agent_name=env.get("FOUNDRY_AGENT_NAME") or None,
            agent_version=env.get("FOUNDRY_AGENT_VERSION") or None,
            session_id=env.get("FOUNDRY_AGENT_SESSION_ID") or None,
        )


@dataclass(frozen=True, slots=True)
class Settings:
    agent_name: str = "agent"
    instructions: str | None = None
    model_provider: str = "echo"
    model_name: str = "echo-1"
    host: str = "0.0.0.0"
    port: int = 8088
    log_level: str = "info"
    drain_timeout: float = 30.0
    max_request_bytes: int = 16 * 1024 * 1024
    sse_keepalive_interval: float = 15.0
    request_timeout: float = 60.0
    write_timeout: float = 60.0
    response_store_size: int = 1000
    echo_delay: float = 0.0
    foundry: FoundryEnv = field(default_factory=FoundryEnv)
    # agent.yaml's ``structured_inputs`` declarations and ``tools``, as written (inputs.py
    # checks them and parses their templates).
    structured_inputs: Mapping[str, Any] = field(default_factory=dict)
    tools: list[Any] = field(default_factory=list)
    # agent.yaml's defaults for requests that leave them out. ``response_format`` is kept in
    # the Responses ``text.format`` shape (formats.py converts the manifest's).
    temperature: float | None = None
    top_p: float | None = None
    response_format: Mapping[str, Any] | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    # The exporters the OTEL_* and APPLICATIONINSIGHTS_* variables configure; None: no
    # telemetry at all (telemetry/__init__.py).
    telemetry: TelemetryConfig | None = None
    # inputs.compile_inputs() of these settings, as from_env() checked them. Not an argument,
    # so dataclasses.replace() leaves it out, and the server compiles the changed settings.
    input_plan: InputPlan | None = field(default=None, init=False, compare=False, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        path = Path(env.get("AGENT_MANIFEST") or DEFAULT_MANIFEST)
        manifest = load_manifest(path)
        model = manifest.get("model") or {}
        runtime = manifest.get("runtime") or {}
        settings = cls(
            agent_name=env.get("FOUNDRY_AGENT_NAME") or manifest.get("name") or "agent",
            instructions=manifest.get("instructions"),
            model_provider=env.get("MODEL_PROVIDER") or model.get("provider") or "echo",
            model_name=env.get("MODEL_NAME") or model.get("name") or "echo-1",
            host=env.get("HOST") or "0.0.0.0",
            port=env_number(env, "PORT", int, runtime.get("port", 8088), 1, 65535),
            log_level=_log_level(env.get("LOG_LEVEL") or "info"),
            drain_timeout=env_number(env, "DRAIN_TIMEOUT", float, 30.0, 0, 3600),
            max_request_bytes=env_number(env, "MAX_REQUEST_BYTES", int, 16 * 1024 * 1024, 1, 2**31),
            sse_keepalive_interval=env_number(env, "SSE_KEEPALIVE_INTERVAL", float, 15.0, 0, 3600),
            request_timeout=env_number(env, "REQUEST_TIMEOUT", float, 60.0, 0.1, 3600),
            write_timeout=env_number(env, "WRITE_TIMEOUT", float, 60.0, 0.1, 3600),
            response_store_size=env_number(env, "RESPONSE_STORE_SIZE", int, 1000, 0, 10_000_000),
            echo_delay=env_number(env, "ECHO_DELAY", float, 0.0, 0, 60),
            foundry=FoundryEnv.from_env(env),
            structured_inputs=manifest.get("structured_inputs") or {},
            tools=manifest.get("tools") or [],
            temperature=_manifest_number(manifest, "temperature", 2, path.name),
            top_p=_manifest_number(manifest, "top_p", 1, path.name),
            response_format=_manifest_format(manifest.get("response_format"), path.name),
            metadata=_manifest_metadata(manifest.get("metadata"), path.name),
            telemetry=telemetry_config(env),
        )
        from .inputs import compile_inputs  # imports this module

        # A bad declaration or template stops start-up; the server uses the plan as it is.
        object.__setattr__(settings, "input_plan", compile_inputs(settings, path.name))
        return settings


def load_manifest(path: Path) -> dict[str, Any]:
    """The manifest as data; an absent file means defaults.

    A ``.json`` path is read with the standard library: the image carries ``agent.json``,
    written from ``agent.yaml`` at build time by :func:`compile_manifest`, so the container
    never imports PyYAML. When that JSON file is absent, ``agent.yaml`` beside it is read
    instead. Any other path is YAML (``agent.yaml`` of the repository, for local runs).
    """
    if path.suffix == ".json" and not path.is_file():
        path = path.with_suffix(".yaml")
    if not path.is_file():
        return {}
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        import json

        try:
            data = json.loads(text)
        except ValueError as exc:
            raise SettingsError(f"{path} is not valid JSON: {exc}") from None
    else:
        data = _load_yaml(path, text)
    if not isinstance(data, dict):
        raise SettingsError(f"{path} must hold a mapping at the top level.")
    return data


def _load_yaml(path: Path, text: str) -> Any:
    try:
        import yaml  # only for a YAML manifest: local runs and the image's build stage
    except ImportError:
        raise SettingsError(
            f"{path} is YAML, and PyYAML is not installed (the image leaves it out: it reads "
            "agent.json, made from agent.yaml at build time). Rebuild the image, or point "
            "AGENT_MANIFEST at a JSON manifest."
        ) from None
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path} is not valid YAML: {exc}") from None


def compile_manifest(source: str | Path, target: str | Path) -> None:
    """Check ``source`` (agent.yaml) as the server does at start-up, then write it to
    ``target`` as JSON. The Dockerfile runs this in its build stage: a bad manifest fails the
    build, and the image's server reads the JSON without PyYAML. Values JSON cannot carry
    (YAML dates, say) are written as strings."""
    import json

    source, target = Path(source), Path(target)
    Settings.from_env({"AGENT_MANIFEST": str(source)})
    data = load_manifest(source)
    target.write_text(json.dumps(data, ensure_ascii=False, default=str) + "\n", encoding="utf-8")


def _manifest_number(manifest: Mapping[str, Any], name: str, high: float, source: str):
    value = manifest.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise SettingsError(f"{source} {name}: must be a number between 0 and {high:g}.")
    if not 0 <= value <= high:
        raise SettingsError(f"{source} {name}: must be between 0 and {high:g}; got {value!r}.")
    return float(value)


def _manifest_format(value: Any, source: str) -> dict[str, Any] | None:
    from .formats import FormatProblem, from_manifest

    try:
        return from_manifest(value)
    except FormatProblem as problem:
        raise SettingsError(
            f"{source} response_format{problem.where}: {problem.message}"
        ) from None


def _manifest_metadata(value: Any, source: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or len(value) > 16:
        raise SettingsError(
            f"{source} metadata: must be a mapping of at most 16 string keys and values."
        )
    for key, item in value.items():
        if not isinstance(key, str) or len(key) > 64:
            raise SettingsError(f"{source} metadata: key {key!r} must be a string of at most "
                                "64 characters.")
        if not isinstance(item, str) or len(item) > 512:
            raise SettingsError(f"{source} metadata.{key}: must be a string of at most 512 "
                                "characters (quote numbers and booleans).")
    return dict(value)


def env_number(env: Mapping[str, str], name: str, kind: type, default: Any, low: float,
               high: float):
    """``env[name]`` as ``kind`` within ``[low, high]``, or ``default`` when unset or blank."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return kind(default)
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a {kind.__name__}.") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}={raw!r} is out of range: use {low:g} to {high:g}.")
    return value


def _log_level(raw: str) -> str:
    level = raw.lower()
    if level not in ("debug", "info", "warning", "error", "critical"):
        raise SettingsError(f"LOG_LEVEL={raw!r}: use debug, info, warning, error or critical.")
    return level
