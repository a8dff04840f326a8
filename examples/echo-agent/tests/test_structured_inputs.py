"""Structured inputs: agent.yaml declares them, requests pass values, templates are rendered.

The Foundry examples come from MicrosoftDocs/azure-ai-docs,
articles/foundry/agents/how-to/structured-inputs.md (templates and values verbatim). Callers
using the official client pass values with ``extra_body={"structured_inputs": {...}}``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import openai
import pytest

pytestmark = pytest.mark.anyio

REPO_ROOT = Path(__file__).resolve().parents[1]


def declare(**types: str | dict) -> dict:
    """``declare(userName="string")``: optional inputs of these schema types."""
    return {
        name: {"schema": kind if isinstance(kind, dict) else {"type": kind}}
        for name, kind in types.items()
    }


async def show_prompt(ctx):
    """A test agent: the rendered system and developer texts, one per line."""
    for item in ctx.conversation:
        if item.get("role") in ("system", "developer"):
            text = "".join(part.get("text", "") for part in item["content"])
            yield f"{item['role']}: {text}\n"


async def show_tools(ctx):
    """A test agent: the rendered tool configuration as JSON."""
    yield json.dumps(ctx.tools)


async def show_inputs(ctx):
    """A test agent: the resolved values as JSON, then it mutates them (defaults are copies)."""
    yield json.dumps(ctx.structured_inputs, sort_keys=True)
    for value in ctx.structured_inputs.values():
        if isinstance(value, list):
            value.append("mutated")


def bad_request(exc_info, param: str, code: str) -> str:
    error = exc_info.value
    assert error.status_code == 400
    assert error.param == param
    assert error.code == code
    return error.message


# --- the Foundry documentation's examples, end to end ----------------------------------------

FOUNDRY_INSTRUCTIONS = (
    "You are a helpful assistant. "
    "The user's name is {{userName}} and their role is {{userRole}}. "
    "Greet them and confirm their details."
)

FOUNDRY_WEATHER = """You are a weather assistant. Provide a helpful weather summary for the user.

The user asked about: {{location}}
Use the following units: {{units}}

{{#if includeForecast}}
Include a brief multi-day forecast in your response.
{{else}}
Focus only on the current conditions.
{{/if}}

{{#if preferences}}
The user has these additional preferences:
{{#each preferences}}
- {{this}}
{{/each}}
{{/if}}

Keep the final answer clear and easy to read."""

WEATHER_INPUTS = {
    "location": {"description": "City and region", "required": True, "schema": {"type": "string"}},
    "units": {"default_value": "Celsius", "schema": {"type": "string"}},
    "includeForecast": {"default_value": False, "schema": {"type": "boolean"}},
    "preferences": {"default_value": [], "schema": {"type": "array", "items": {"type": "string"}}},
}


async def test_foundry_agent_instructions_example(make_app, openai_for):
    app = make_app(
        instructions=FOUNDRY_INSTRUCTIONS,
        structured_inputs={
            "userName": {"description": "The user's name", "required": True,
                         "schema": {"type": "string"}},
            "userRole": {"description": "The user's role", "schema": {"type": "string"}},
        },
    )
    values = {"userName": "Alice Smith", "userRole": "Senior Developer"}

    response = await openai_for(app).responses.create(
        input="Hello", extra_body={"structured_inputs": values}
    )

    assert response.instructions == (
        "You are a helpful assistant. The user's name is Alice Smith and their role is "
        "Senior Developer. Greet them and confirm their details."
    )
    assert response.output_text == "Hello"


async def test_foundry_response_level_instructions_example(make_app, openai_for):
    app = make_app(structured_inputs=declare(
        customerName="string", companyName="string", location="string"
    ))
    values = {"customerName": "Bob Johnson", "companyName": "Tech Corp",
              "location": "San Francisco"}

    response = await openai_for(app).responses.create(
        input="Hi",
        instructions="You are assisting {{customerName}} from {{companyName}} located in "
        "{{location}}.",
        extra_body={"structured_inputs": values},
    )

    assert response.instructions == (
        "You are assisting Bob Johnson from Tech Corp located in San Francisco."
    )


async def test_foundry_system_and_developer_message_example(make_app, openai_for):
    app = make_app(agent=show_prompt, structured_inputs=declare(
        userName="string", department="string", userRole="string"
    ))
    values = {"userName": "Sarah Connor", "department": "Engineering", "userRole": "Tech Lead"}

    response = await openai_for(app).responses.create(
        input=[
            {"role": "system",
             "content": "The user's name is {{userName}} and they work in {{department}}."},
            {"role": "developer", "content": [
                {"type": "input_text", "text": "User role: {{userRole}}. Always be professional."}
            ]},
            {"role": "user", "content": "Hello {{userName}}"},
        ],
        extra_body={"structured_inputs": values},
    )

    assert response.output_text == (
        "system: The user's name is Sarah Connor and they work in Engineering.\n"
        "developer: User role: Tech Lead. Always be professional.\n"
    )


async def test_user_messages_are_not_templates(make_app, openai_for):
    app = make_app(structured_inputs=declare(userName="string"))

    response = await openai_for(app).responses.create(
        input="Hello {{userName}}", extra_body={"structured_inputs": {"userName": "Ada"}}
    )

    assert response.output_text == "Hello {{userName}}"


async def test_foundry_mcp_tool_example(make_app, openai_for):
    app = make_app(
        agent=show_tools,
        instructions="You are a development assistant for {{project_name}}.",
        structured_inputs={
            name: {"required": True, "schema": {"type": "string"}}
            for name in ("project_name", "server_label", "server_url", "auth_token", "project_id")
        },
        tools=[{
            "type": "mcp",
            "server_label": "{{server_label}}",
            "server_url": "{{server_url}}",
            "headers": {"Authorization": "{{auth_token}}", "X-Project-Id": "{{project_id}}"},
            "require_approval": "never",
        }],
    )
    values = {
        "project_name": "CloudSync API",
        "server_label": "cloudsync-repo",
        "server_url": "https://gitmcp.io/myorg/cloudsync-api",
        "auth_token": "Bearer ghp_xxxxxxxxxxxx",
        "project_id": "proj_12345",
    }

    response = await openai_for(app).responses.create(
        input="hi", extra_body={"structured_inputs": values}
    )

    assert response.instructions == "You are a development assistant for CloudSync API."
    assert json.loads(response.output_text) == [{
        "type": "mcp",
        "server_label": "cloudsync-repo",
        "server_url": "https://gitmcp.io/myorg/cloudsync-api",
        "headers": {"Authorization": "Bearer ghp_xxxxxxxxxxxx", "X-Project-Id": "proj_12345"},
        "require_approval": "never",
    }]


async def test_foundry_tool_resource_example_drops_empty_strings(make_app, openai_for):
    app = make_app(
        agent=show_tools,
        structured_inputs={
            "vector_store_id": {"required": True, "schema": {"type": "string"}},
            "tier_specific_kb": {"default_value": "", "schema": {"type": "string"}},
            "analysis_file_id": {"schema": {"type": "string"}},
            "container_id": {"default_value": "cntr_default", "schema": {"type": "string"}},
        },
        tools=[
            {"type": "file_search",
             "vector_store_ids": ["vs_base_kb", "{{vector_store_id}}", "{{tier_specific_kb}}"]},
            {"type": "code_interpreter",
             "container": {"type": "auto", "file_ids": ["{{analysis_file_id}}", "file_static"]}},
            {"type": "code_interpreter", "container": "{{container_id}}"},
        ],
    )
    client = openai_for(app)

    basic = await client.responses.create(
        input="hi",
        tools=[{"type": "web_search_preview"}],
        extra_body={"structured_inputs": {"vector_store_id": "vs_1"}},
    )
    premium = await client.responses.create(
        input="hi",
        extra_body={"structured_inputs": {
            "vector_store_id": "vs_1", "tier_specific_kb": "vs_premium_kb_2024",
            "analysis_file_id": "assistant-abc", "container_id": "cntr_1",
        }},
    )

    assert json.loads(basic.output_text) == [
        {"type": "file_search", "vector_store_ids": ["vs_base_kb", "vs_1"]},
        {"type": "code_interpreter", "container": {"type": "auto", "file_ids": ["file_static"]}},
        {"type": "code_interpreter", "container": "cntr_default"},
        {"type": "web_search_preview"},  # the request's tools follow, as given
    ]
    assert json.loads(premium.output_text) == [
        {"type": "file_search", "vector_store_ids": ["vs_base_kb", "vs_1", "vs_premium_kb_2024"]},
        {"type": "code_interpreter",
         "container": {"type": "auto", "file_ids": ["assistant-abc", "file_static"]}},
        {"type": "code_interpreter", "container": "cntr_1"},
    ]


async def test_foundry_weather_example_with_booleans_and_arrays(make_app, openai_for):
    app = make_app(instructions=FOUNDRY_WEATHER, structured_inputs=WEATHER_INPUTS)
    values = {
        "location": "Seattle, WA",
        "units": "Fahrenheit",
        "includeForecast": True,
        "preferences": ["Highlight UV index", "Include wind speed"],
    }

    response = await openai_for(app).responses.create(
        input="What's the weather?", extra_body={"structured_inputs": values}
    )

    assert response.instructions == """\
You are a weather assistant. Provide a helpful weather summary for the user.

The user asked about: Seattle, WA
Use the following units: Fahrenheit

Include a brief multi-day forecast in your response.

The user has these additional preferences:
- Highlight UV index
- Include wind speed

Keep the final answer clear and easy to read."""


async def test_foundry_weather_example_with_defaults(make_app, openai_for):
    app = make_app(instructions=FOUNDRY_WEATHER, structured_inputs=WEATHER_INPUTS)

    response = await openai_for(app).responses.create(
        input="What's the weather?", extra_body={"structured_inputs": {"location": "Oslo"}}
    )

    assert response.instructions == (
        "You are a weather assistant. Provide a helpful weather summary for the user.\n\n"
        "The user asked about: Oslo\nUse the following units: Celsius\n\n"
        "Focus only on the current conditions.\n\n\n"
        "Keep the final answer clear and easy to read."
    )


async def test_each_and_unless_with_last_in_request_instructions(make_app, openai_for):
    app = make_app(structured_inputs=declare(
        tags={"type": "array", "items": {"type": "string"}}, formal="boolean"
    ))

    response = await openai_for(app).responses.create(
        input="hi",
        instructions="{{#unless formal}}Hey! {{/unless}}Tags: "
        "{{#each tags}}{{this}}{{#unless @last}}, {{/unless}}{{/each}}.",
        extra_body={"structured_inputs": {"tags": ["a", "b", "c"], "formal": False}},
    )

    assert response.instructions == "Hey! Tags: a, b, c."


# --- values: defaults, required, types, unknown names ------------------------------------------


async def test_defaults_fill_missing_values_as_copies(make_app, openai_for):
    app = make_app(agent=show_inputs, structured_inputs={
        "units": {"default_value": "Celsius", "schema": {"type": "string"}},
        "tags": {"default_value": ["x"], "schema": {"type": "array"}},
        "note": {"schema": {"type": "string"}},  # no default: left out
    })
    client = openai_for(app)

    first = await client.responses.create(input="hi")
    second = await client.responses.create(input="hi")
    given = await client.responses.create(
        input="hi", extra_body={"structured_inputs": {"units": "Kelvin", "note": None}}
    )

    assert json.loads(first.output_text) == {"tags": ["x"], "units": "Celsius"}
    assert json.loads(second.output_text) == {"tags": ["x"], "units": "Celsius"}  # not mutated
    assert json.loads(given.output_text) == {"tags": ["x"], "units": "Kelvin"}


async def test_a_missing_required_input_is_400(make_app, openai_for):
    app = make_app(instructions=FOUNDRY_WEATHER, structured_inputs=WEATHER_INPUTS)

    with pytest.raises(openai.BadRequestError) as exc_info:
        await openai_for(app).responses.create(input="hi")

    message = bad_request(
        exc_info, "structured_inputs.location", "missing_required_structured_input"
    )
    assert "location" in message


@pytest.mark.parametrize(
    ("schema", "value"),
    [
        ({"type": "string"}, 1),
        ({"type": "string"}, ["a"]),
        ({"type": "number"}, "1"),
        ({"type": "number"}, True),
        ({"type": "integer"}, 1.5),
        ({"type": "integer"}, False),
        ({"type": "integer"}, "2"),
        ({"type": "boolean"}, "true"),
        ({"type": "boolean"}, 0),
        ({"type": "array"}, "a,b"),
        ({"type": "array"}, {"a": 1}),
        ({"type": "array", "items": {"type": "string"}}, ["a", 2]),
        ({"type": "object"}, ["a"]),
        ({"type": "object"}, "{}"),
    ],
)
async def test_a_value_of_the_wrong_type_is_400(make_app, openai_for, schema, value):
    app = make_app(structured_inputs={"x": {"schema": schema}})

    with pytest.raises(openai.BadRequestError) as exc_info:
        await openai_for(app).responses.create(
            input="hi", extra_body={"structured_inputs": {"x": value}}
        )

    message = bad_request(exc_info, "structured_inputs.x", "invalid_structured_input")
    assert "must be a" in message
    assert (schema.get("items") or schema)["type"] in message


@pytest.mark.parametrize(
    ("kind", "value"),
    [("number", 3), ("number", 2.5), ("integer", 7), ("integer", 2.0), ("boolean", False),
     ("array", []), ("object", {"a": [1]}), ("string", "")],
)
async def test_a_value_of_the_right_type_is_accepted(make_app, openai_for, kind, value):
    app = make_app(agent=show_inputs, structured_inputs=declare(x=kind))

    response = await openai_for(app).responses.create(
        input="hi", extra_body={"structured_inputs": {"x": value}}
    )

    assert json.loads(response.output_text) == {"x": value}


async def test_an_unknown_name_is_400(make_app, openai_for):
    app = make_app(structured_inputs=declare(userName="string"))

    with pytest.raises(openai.BadRequestError) as exc_info:
        await openai_for(app).responses.create(
            input="hi", extra_body={"structured_inputs": {"usrName": "Ada"}}
        )

    message = bad_request(exc_info, "structured_inputs.usrName", "unknown_structured_input")
    assert "userName" in message


async def test_the_default_agent_declares_no_inputs(client, http):
    with pytest.raises(openai.BadRequestError) as exc_info:
        await client.responses.create(input="hi", extra_body={"structured_inputs": {"a": 1}})
    bad_request(exc_info, "structured_inputs.a", "unknown_structured_input")

    reply = await http.post("/invocations", json={"input": "hi", "structured_inputs": {"a": 1}})
    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == "structured_inputs.a"


# --- request templates -------------------------------------------------------------------------


async def test_a_malformed_request_instructions_template_is_400(make_app, openai_for):
    app = make_app(structured_inputs=declare(x="boolean"))

    with pytest.raises(openai.BadRequestError) as exc_info:
        await openai_for(app).responses.create(
            input="hi", instructions="Line one\n  {{#if x}}open", extra_body={}
        )

    message = bad_request(exc_info, "instructions", "invalid_template")
    assert "line 2, column 3" in message


async def test_a_malformed_system_message_template_is_400(make_app, openai_for):
    app = make_app(structured_inputs=declare(x="string"))

    with pytest.raises(openai.BadRequestError) as exc_info:
        await openai_for(app).responses.create(input=[
            {"role": "user", "content": "hi"},
            {"role": "developer", "content": [
                {"type": "input_text", "text": "fine"},
                {"type": "input_text", "text": "bad {{> partial}}"},
            ]},
        ])

    message = bad_request(exc_info, "input[1].content[1].text", "invalid_template")
    assert "line 1, column 5" in message


async def test_an_undeclared_placeholder_in_a_request_is_400(make_app, openai_for):
    app = make_app(structured_inputs=declare(userName="string"))

    with pytest.raises(openai.BadRequestError) as exc_info:
        await openai_for(app).responses.create(
            input="hi", instructions="Hi\n{{usrName}}",
            extra_body={"structured_inputs": {"userName": "Ada"}},
        )

    message = bad_request(exc_info, "instructions", "unknown_structured_input")
    assert "'usrName' at line 2, column 1" in message
    assert "userName" in message


async def test_a_template_rendering_too_much_is_400(make_app, openai_for):
    app = make_app(structured_inputs=declare(s="string"))

    with pytest.raises(openai.BadRequestError) as exc_info:
        await openai_for(app).responses.create(
            input="hi", instructions="{{s}}{{s}}{{s}}",
            extra_body={"structured_inputs": {"s": "x" * 400_000}},
        )

    bad_request(exc_info, "instructions", "template_output_too_large")


async def test_requests_without_inputs_or_placeholders_render_nothing(
    make_app, openai_for, package, monkeypatch
):
    app = make_app(instructions="Units: {{units}}.", structured_inputs={
        "units": {"default_value": "Celsius", "schema": {"type": "string"}},
    })

    def fail(*args, **kwargs):
        raise AssertionError("rendered on the fast path")

    monkeypatch.setattr(package.handlebars.Template, "render", fail)
    monkeypatch.setattr(package.inputs, "parse", fail)
    response = await openai_for(app).responses.create(
        input=[{"role": "system", "content": "plain"}, {"role": "user", "content": "hi"}]
    )

    assert response.instructions == "Units: Celsius."  # rendered once, at start-up


async def test_streamed_response_shows_rendered_instructions(make_app, http_for, post_stream):
    app = make_app(instructions="Hello {{name}}", structured_inputs=declare(name="string"))

    reply = await post_stream(
        {"input": "hi", "structured_inputs": {"name": "Ada"}}, via=http_for(app)
    )

    created = reply.events[0]
    assert created["type"] == "response.created"
    assert created["response"]["instructions"] == "Hello Ada"


async def test_values_never_appear_in_logs(make_app, openai_for, caplog):
    secret = "zq-distinctive-structured-value-8841"
    app = make_app(instructions="Token {{token}}", structured_inputs={
        "token": {"required": True, "schema": {"type": "string"}},
        "count": {"schema": {"type": "integer"}},
    })
    client = openai_for(app)
    caplog.set_level(logging.DEBUG)

    await client.responses.create(input="hi", extra_body={"structured_inputs": {"token": secret}})
    with pytest.raises(openai.BadRequestError) as exc_info:  # the value is not quoted back
        await client.responses.create(
            input="hi", extra_body={"structured_inputs": {"token": secret, "count": secret}}
        )
    assert secret not in exc_info.value.message

    assert caplog.records  # the access log ran
    assert secret not in caplog.text


# --- agent.yaml: declarations and templates are checked at start-up ---------------------------


def test_a_manifest_with_inputs_and_tools_loads(load_settings):
    settings = load_settings(
        "instructions: Hello {{userName}}\n"
        "structured_inputs:\n"
        "  userName: {required: true, schema: {type: string}}\n"
        "tools:\n"
        "  - {type: file_search, vector_store_ids: ['{{userName}}']}\n"
    )

    assert settings.structured_inputs["userName"]["required"] is True
    assert settings.tools[0]["type"] == "file_search"


def test_the_generated_manifest_declares_no_required_inputs(package):
    settings = package.settings.Settings.from_env({})
    plan = package.inputs.compile_inputs(settings)

    assert not any(spec.required for spec in plan.specs.values())


def test_an_unknown_placeholder_in_the_manifest_stops_start_up(load_settings, package):
    with pytest.raises(package.settings.SettingsError) as exc_info:
        load_settings(
            "instructions: |\n"
            "  Be brief.\n"
            "  The user is {{usrName}}.\n"
            "structured_inputs:\n"
            "  userName: {schema: {type: string}}\n"
        )

    assert str(exc_info.value) == (
        "agent.yaml instructions: unknown structured input 'usrName' at line 2, column 13; "
        "declared: userName"
    )


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        ("instructions: '{{#if x}}never closed'\nstructured_inputs: {x: {}}\n",
         "agent.yaml instructions: unclosed {{#if}} block at line 1, column 1"),
        ("instructions: 'a {{> partial}}'\n",
         "agent.yaml instructions: partials ({{> ...}}) are not supported at line 1, column 3"),
        ("tools:\n  - {type: mcp, server_url: 'https://{{host}}/mcp'}\n",
         "agent.yaml tools[0].server_url: unknown structured input 'host' at line 1, column 9"),
        ("tools:\n  - {type: mcp, headers: {Authorization: '{{token'}}\n",
         "agent.yaml tools[0].headers.Authorization: unterminated '{{' (missing '}}')"),
        ("tools:\n  - {type: file_search, vector_store_ids: [vs_1, '{{kb}}']}\n",
         "agent.yaml tools[0].vector_store_ids[1]: unknown structured input 'kb'"),
        ("tools:\n  - {type: code_interpreter, container: {file_ids: ['{{#each}}']}}\n",
         "agent.yaml tools[0].container.file_ids[0]:"),
        ("tools:\n  - {type: code_interpreter, container: '{{cid}}'}\n",
         "agent.yaml tools[0].container: unknown structured input 'cid'"),
    ],
)
def test_a_bad_manifest_template_stops_start_up(load_settings, package, manifest, expected):
    with pytest.raises(package.settings.SettingsError) as exc_info:
        load_settings(manifest)

    assert str(exc_info.value).startswith(expected)


@pytest.mark.parametrize(
    ("declarations", "expected"),
    [
        ("{x: {schema: {type: str}}}", "structured_inputs.x.schema.type is 'str'"),
        ("{x: {schema: {type: array, items: {type: text}}}}", "x.schema.items.type is 'text'"),
        ("{x: {default_value: 3, schema: {type: string}}}",
         "structured_inputs.x.default_value must be a string; got an integer"),
        ("{x: {default_value: true, schema: {type: integer}}}", "must be an integer"),
        ("{x: {default_value: [1], schema: {type: array, items: {type: string}}}}",
         "item 0 must be a string"),
        ("{x: {required: 'yes'}}", "structured_inputs.x.required must be true or false"),
        ("{x: {default: 1}}", "unknown key 'default'"),
        ("{'user-name': {}}", "'user-name' is not a valid input name"),
        ("{'2fa': {}}", "'2fa' is not a valid input name"),
        ("[x]", "structured_inputs must be a mapping"),
    ],
)
def test_a_bad_declaration_stops_start_up(load_settings, package, declarations, expected):
    with pytest.raises(package.settings.SettingsError) as exc_info:
        load_settings(f"structured_inputs: {declarations}\n")

    assert expected in str(exc_info.value)


def test_settings_built_in_code_are_checked_when_the_app_starts(make_app, package):
    with pytest.raises(package.settings.SettingsError, match="unknown structured input 'x'"):
        make_app(instructions="{{x}}")


def test_the_process_exits_with_the_message(agent_process, package, tmp_path):
    manifest = tmp_path / "agent.yaml"
    manifest.write_text("instructions: |\n  Hi\n  {{usrName}}\n", encoding="utf-8")

    with pytest.raises(RuntimeError, match="exited with 2"):
        agent_process(AGENT_MANIFEST=str(manifest))
    result = subprocess.run(
        [sys.executable, "-m", package.__name__],
        cwd=REPO_ROOT,
        env={
            **os.environ,
            "AGENT_MANIFEST": str(manifest),
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(REPO_ROOT / "src"), os.environ.get("PYTHONPATH")])
            ),
        },
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 2
    assert (
        "agent.yaml instructions: unknown structured input 'usrName' at line 2, column 1; "
        "declared: none"
    ) in result.stderr
