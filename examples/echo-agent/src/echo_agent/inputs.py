"""Structured inputs: values a caller passes by name to fill the agent's Handlebars templates.

``agent.yaml`` declares them (as Azure AI Foundry does)::

    structured_inputs:
      userName:
        description: The user's display name
        required: true
        schema: {type: string}
      units:
        default_value: Celsius
        schema: {type: string}

and templates read them: the manifest's ``instructions`` and the templated fields of its
``tools`` (MCP ``server_label``, ``server_url`` and ``headers`` values, File Search
``vector_store_ids``, Code Interpreter ``container`` and ``container.file_ids``). A request's
``instructions`` and the text of its ``system`` and ``developer`` messages are templates too.

:func:`compile_inputs` checks the declarations and parses every manifest template once, at
start-up; a mistake is a :class:`SettingsError` naming the field, line and column.
:meth:`InputPlan.resolve` validates a request's values (400s whose ``param`` is
``structured_inputs.<name>``) and fills defaults. Values are never logged and never quoted in
error messages.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidRequest
from .formats import JSON_TYPES
from .handlebars import RenderError, Template, TemplateError, parse
from .settings import Settings, SettingsError

SCHEMA_TYPES = ("string", "number", "integer", "boolean", "array", "object")
DECLARATION_KEYS = ("description", "required", "default_value", "schema")
MAX_RENDERED = 1_000_000  # characters one rendered template may hold
TEMPLATED_ROLES = ("system", "developer")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class InputSpec:
    """One declared structured input."""

    name: str
    description: str = ""
    required: bool = False
    default: Any = _MISSING
    schema: Mapping[str, Any] | None = None

    @property
    def has_default(self) -> bool:
        return self.default is not _MISSING


# --- values against the schema subset -------------------------------------------------------


def type_error(value: Any, schema: Mapping[str, Any] | None) -> str | None:
    """Why ``value`` does not match ``schema`` (``None`` when it does). Never quotes the value."""
    if not schema or "type" not in schema:
        return None
    expected = schema["type"]
    if not JSON_TYPES[expected](value):
        return f"must be {_article(expected)}; got {_json_type(value)}"
    items = schema.get("items")
    if expected == "array" and items:
        for index, item in enumerate(value):
            reason = type_error(item, items)
            if reason is not None:
                return f"item {index} {reason}"
    return None


def _article(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


# What a decoded JSON value is called, by type (bool before int: a bool is an int).
_TYPE_NAMES = ((bool, "a boolean"), (int, "an integer"), (float, "a number"),
               (str, "a string"), (list, "an array"), (dict, "an object"))


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return next((name for kind, name in _TYPE_NAMES if isinstance(value, kind)),
                type(value).__name__)


def _check_schema(schema: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(schema, Mapping):
        raise SettingsError(f"{where} must be a mapping such as {{type: string}}.")
    kind = schema.get("type")
    if kind not in SCHEMA_TYPES:
        raise SettingsError(
            f"{where}.type is {kind!r}; use one of {', '.join(SCHEMA_TYPES)}."
        )
    if "items" in schema:
        if kind != "array":
            raise SettingsError(f"{where}.items is only allowed when type is array.")
        _check_schema(schema["items"], f"{where}.items")
    return schema


def parse_declarations(raw: Any, source: str = "agent.yaml") -> dict[str, InputSpec]:
    """Check the manifest's ``structured_inputs`` mapping; raise SettingsError naming the key."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise SettingsError(f"{source} structured_inputs must be a mapping of name to declaration.")
    specs: dict[str, InputSpec] = {}
    for name, declaration in raw.items():
        where = f"{source} structured_inputs.{name}"
        if not isinstance(name, str) or not _NAME.match(name):
            raise SettingsError(
                f"{source} structured_inputs: {str(name)!r} is not a valid input name; use "
                "letters, digits and '_', not starting with a digit."
            )
        declaration = {} if declaration is None else declaration
        if not isinstance(declaration, Mapping):
            raise SettingsError(f"{where} must be a mapping ({', '.join(DECLARATION_KEYS)}).")
        unknown = sorted(set(map(str, declaration)) - set(DECLARATION_KEYS))
        if unknown:
            raise SettingsError(
                f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(DECLARATION_KEYS)}."
            )
        description = declaration.get("description") or ""
        if not isinstance(description, str):
            raise SettingsError(f"{where}.description must be a string.")
        required = declaration.get("required", False)
        if not isinstance(required, bool):
            raise SettingsError(f"{where}.required must be true or false.")
        schema = None
        if declaration.get("schema") is not None:
            schema = _check_schema(declaration["schema"], f"{where}.schema")
        default = declaration.get("default_value", _MISSING)
        if default is None:
            default = _MISSING
        if default is not _MISSING:
            reason = type_error(default, schema)
            if reason is not None:
                raise SettingsError(f"{where}.default_value {reason}.")
        specs[name] = InputSpec(name, description, required, default, schema)
    return specs


# --- templates ------------------------------------------------------------------------------


def _locate(source: str, name: str) -> tuple[int, int]:
    """Line and column (1-based) of the first tag that reads ``name``; 1, 1 if none is found."""
    pattern = re.compile(
        r"\{\{\{?~?[ \t]*(?:#(?:if|unless|each)[ \t]+)?" + re.escape(name) + r"(?=[\s.}~])"
    )
    match = pattern.search(source)
    if match is None:
        return 1, 1
    pos = match.start()
    return source.count("\n", 0, pos) + 1, pos - (source.rfind("\n", 0, pos) + 1) + 1


def _undeclared(template: Template, source: str, declared: Mapping[str, Any]) -> str | None:
    """A message for the first placeholder naming an undeclared input, or ``None``."""
    unknown = sorted(template.variables() - set(declared))
    if not unknown:
        return None
    first = min(unknown, key=lambda name: _locate(source, name))
    line, column = _locate(source, first)
    names = ", ".join(declared) or "none"
    return (
        f"unknown structured input '{first}' at line {line}, column {column}; declared: {names}"
    )


def _compile(source: str, where: str, declared: Mapping[str, InputSpec]) -> Template:
    try:
        template = parse(source)
    except TemplateError as exc:
        raise SettingsError(f"{where}: {exc}") from None
    problem = _undeclared(template, source, declared)
    if problem is not None:
        raise SettingsError(f"{where}: {problem}")
    return template


class _DropEmpty(list):
    """A templated array whose rendered empty strings are dropped (as Foundry does)."""


def _compile_string(value: Any, where: str, declared: Mapping[str, InputSpec]) -> Any:
    if isinstance(value, str) and "{{" in value:
        return _compile(value, where, declared)
    return value


def _compile_array(value: Any, where: str, declared: Mapping[str, InputSpec]) -> Any:
    if not isinstance(value, list):
        return value
    return _DropEmpty(
        _compile_string(item, f"{where}[{index}]", declared) for index, item in enumerate(value)
    )


def _compile_tool(tool: Any, where: str, declared: Mapping[str, InputSpec]) -> Any:
    """A copy of ``tool`` with its templated fields parsed (other fields kept as they are)."""
    if not isinstance(tool, Mapping):
        raise SettingsError(f"{where} must be a mapping with a 'type'.")
    compiled = dict(tool)
    kind = tool.get("type")
    if kind == "mcp":
        for key in ("server_label", "server_url"):
            if key in tool:
                compiled[key] = _compile_string(tool[key], f"{where}.{key}", declared)
        headers = tool.get("headers")
        if isinstance(headers, Mapping):
            compiled["headers"] = {
                key: _compile_string(value, f"{where}.headers.{key}", declared)
                for key, value in headers.items()
            }
    elif kind == "file_search":
        if "vector_store_ids" in tool:
            compiled["vector_store_ids"] = _compile_array(
                tool["vector_store_ids"], f"{where}.vector_store_ids", declared
            )
    elif kind == "code_interpreter":
        container = tool.get("container")
        if isinstance(container, str):
            compiled["container"] = _compile_string(container, f"{where}.container", declared)
        elif isinstance(container, Mapping):
            compiled["container"] = dict(container)
            if "file_ids" in container:
                compiled["container"]["file_ids"] = _compile_array(
                    container["file_ids"], f"{where}.container.file_ids", declared
                )
    return compiled


def _render_tree(node: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(node, Template):
        return node.render(values, max_output=MAX_RENDERED)
    if isinstance(node, _DropEmpty):
        rendered = (_render_tree(item, values) for item in node)
        return [item for item in rendered if item != ""]
    if isinstance(node, dict):
        return {key: _render_tree(value, values) for key, value in node.items()}
    if isinstance(node, list):
        return [_render_tree(item, values) for item in node]
    return copy.deepcopy(node)


# --- the plan -------------------------------------------------------------------------------


@dataclass(slots=True)
class InputPlan:
    """The declarations and the manifest's parsed templates; built once at start-up."""

    specs: dict[str, InputSpec]
    instructions: str | Template | None = None
    tools: list[Any] = field(default_factory=list)
    defaults: dict[str, Any] = field(default_factory=dict)
    # Rendered with the defaults alone (when no input is required): what a request without
    # ``structured_inputs`` gets, without rendering anything.
    _default_instructions: str | None = None
    _default_tools: list[Any] | None = None

    def resolve(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Validate the request's values and fill in defaults (deep-copied)."""
        for name in given:
            if name not in self.specs:
                declared = ", ".join(self.specs) or "none"
                raise InvalidRequest(
                    f"Unknown structured input '{name}'; this agent declares: {declared}.",
                    param=f"structured_inputs.{name}",
                    code="unknown_structured_input",
                )
        values: dict[str, Any] = {}
        for name, spec in self.specs.items():
            value = given.get(name)
            if value is None:  # absent or null: the default, if any
                if spec.required:
                    raise InvalidRequest(
                        f"Structured input '{name}' is required.",
                        param=f"structured_inputs.{name}",
                        code="missing_required_structured_input",
                    )
                if spec.has_default:
                    values[name] = copy.deepcopy(spec.default)
                continue
            reason = type_error(value, spec.schema)
            if reason is not None:
                raise InvalidRequest(
                    f"Structured input '{name}' {reason}.",
                    param=f"structured_inputs.{name}",
                    code="invalid_structured_input",
                )
            values[name] = value
        return values

    def manifest_instructions(self, values: Mapping[str, Any], defaults_only: bool) -> str | None:
        if defaults_only and self._default_instructions is not None:
            return self._default_instructions
        if isinstance(self.instructions, Template):
            return _render_manifest(self.instructions, values, "instructions")
        return self.instructions

    def manifest_tools(self, values: Mapping[str, Any], defaults_only: bool) -> list[Any]:
        if not self.tools:
            return []
        if defaults_only and self._default_tools is not None:
            return copy.deepcopy(self._default_tools)
        try:
            return _render_tree(self.tools, values)
        except RenderError as exc:
            raise InvalidRequest(
                f"The agent's tools could not be rendered with these structured inputs: {exc}.",
                param="structured_inputs",
                code="template_output_too_large",
            ) from None

    def render_request_text(self, text: str, values: Mapping[str, Any], param: str) -> str:
        """Render a template from the request (its ``instructions`` or a message's text)."""
        if "{{" not in text:
            return text
        try:
            template = parse(text)
        except TemplateError as exc:
            raise InvalidRequest(
                f"'{param}' is not a valid template: {exc}.", param=param, code="invalid_template"
            ) from None
        problem = _undeclared(template, text, self.specs)
        if problem is not None:
            raise InvalidRequest(
                f"'{param}': {problem}.", param=param, code="unknown_structured_input"
            )
        try:
            return template.render(values, max_output=MAX_RENDERED)
        except RenderError as exc:
            raise InvalidRequest(
                f"'{param}' could not be rendered: {exc}.",
                param=param,
                code="template_output_too_large",
            ) from None

    def render_messages(
        self, items: list[dict[str, Any]], values: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """``items`` with the text of system and developer messages rendered (copies where
        something changed; the others are the same objects)."""
        rendered = items
        for i, item in enumerate(items):
            if item.get("type") != "message" or item.get("role") not in TEMPLATED_ROLES:
                continue
            parts = item["content"]
            if not any(
                part.get("type") == "input_text" and "{{" in part.get("text", "") for part in parts
            ):
                continue
            new_parts = [
                {**part, "text": self.render_request_text(
                    part["text"], values, f"input[{i}].content[{j}].text"
                )}
                if part.get("type") == "input_text"
                else part
                for j, part in enumerate(parts)
            ]
            if rendered is items:
                rendered = list(items)
            rendered[i] = {**item, "content": new_parts}
        return rendered


def _render_manifest(template: Template, values: Mapping[str, Any], name: str) -> str:
    try:
        return template.render(values, max_output=MAX_RENDERED)
    except RenderError as exc:
        raise InvalidRequest(
            f"The agent's {name} could not be rendered with these structured inputs: {exc}.",
            param="structured_inputs",
            code="template_output_too_large",
        ) from None


def compile_inputs(settings: Settings, source: str = "agent.yaml") -> InputPlan:
    """Check the declarations and parse the manifest's templates; raise SettingsError."""
    specs = parse_declarations(settings.structured_inputs, source)
    instructions: str | Template | None = settings.instructions
    if instructions is not None and not isinstance(instructions, str):
        raise SettingsError(f"{source} instructions must be a string.")
    instructions = _compile_string(instructions, f"{source} instructions", specs)
    raw_tools = settings.tools or []
    if not isinstance(raw_tools, list):
        raise SettingsError(f"{source} tools must be a list.")
    tools = [
        _compile_tool(tool, f"{source} tools[{index}]", specs)
        for index, tool in enumerate(raw_tools)
    ]
    defaults = {name: spec.default for name, spec in specs.items() if spec.has_default}
    plan = InputPlan(specs, instructions, tools, defaults)
    if not any(spec.required for spec in specs.values()):
        try:
            plan._default_instructions = (
                instructions.render(defaults, max_output=MAX_RENDERED)
                if isinstance(instructions, Template)
                else instructions
            )
            plan._default_tools = _render_tree(tools, defaults)
        except RenderError as exc:
            raise SettingsError(f"{source}: rendering with the default values: {exc}.") from None
    return plan
