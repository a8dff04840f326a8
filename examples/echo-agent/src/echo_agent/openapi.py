"""The server's HTTP surface as an OpenAPI 3.1 document, served at ``GET /openapi.json``.

It describes what this server does (the route table in app.py), in the words of the Responses
protocol: the request fields it reads and checks, the Response object with every field strict
clients require, and the OpenAI error shape of every error. Fields a request may add beyond
these are ignored (Foundry adds its own), so request objects allow other properties. The tests
fuzz the server against this document (tests/test_fuzz.py).
"""

from __future__ import annotations

from typing import Any

from .protocol import METADATA_MAX_KEY, METADATA_MAX_PAIRS, METADATA_MAX_VALUE

JSON = "application/json"
SSE = "text/event-stream"
# One server-sent event, as SSE tools read it: ``event:`` is the JSON ``type`` in ``data:``,
# and the last event's data is ``[DONE]``.
SSE_EVENT = {"type": "object", "required": ["data"],
             "properties": {"event": {"type": "string"}, "data": {"type": "string"}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


STRING = {"type": "string"}
RESPONSE_ID = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,128}$"}

_TEXT_PART = {  # input_text / output_text / refusal in a request
    "type": "object",
    "required": ["type"],
    "properties": {
        "type": {"enum": ["input_text", "input_image", "input_file", "output_text", "refusal"]},
        "text": STRING,
        "refusal": STRING,
    },
}
_MESSAGE = {
    "type": "object",
    "required": ["role", "content"],
    "properties": {
        "type": {"const": "message"},
        "role": {"enum": ["user", "system", "developer", "assistant"]},
        "content": {"anyOf": [STRING, {"type": "array", "items": _ref("InputContentPart")}]},
    },
}
_FUNCTION_CALL = {
    "type": "object",
    "required": ["type", "call_id", "name", "arguments"],
    "properties": {"type": {"const": "function_call"}, "call_id": STRING, "name": STRING,
                   "arguments": STRING},
}
_FUNCTION_CALL_OUTPUT = {
    "type": "object",
    "required": ["type", "call_id", "output"],
    "properties": {"type": {"const": "function_call_output"}, "call_id": STRING,
                   "output": STRING},
}
_CREATE = {
    "type": "object",
    "description": "CreateResponse. Neither 'model' nor 'input' is required (Foundry sends "
                   "neither at times); unknown fields are ignored.",
    "properties": {
        "model": STRING,
        "input": {"anyOf": [STRING, {"type": "array", "items": _ref("InputItem")}]},
        "instructions": STRING,
        "stream": {"type": "boolean"},
        "store": {"type": "boolean"},
        "background": {"type": "boolean"},
        "previous_response_id": STRING,
        "metadata": _ref("Metadata"),
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "top_p": {"type": "number", "minimum": 0, "maximum": 1},
        "max_output_tokens": {"type": "integer", "minimum": 1},
        "tools": {"type": "array"},
        "tool_choice": {},
        "parallel_tool_calls": {"type": "boolean"},
        "text": {"type": "object", "properties": {"format": _ref("TextFormat")}},
        "reasoning": {"type": "object"},
        "truncation": {"enum": ["auto", "disabled"]},
        "user": STRING,
        "conversation": {"anyOf": [STRING, {"type": "object", "required": ["id"],
                                            "properties": {"id": STRING}}]},
        "agent_reference": {
            "type": "object", "required": ["type", "name"],
            "properties": {"type": {"const": "agent_reference"},
                           "name": {"type": "string", "minLength": 1}, "version": STRING},
        },
        "agent_session_id": STRING,
        "response_id": RESPONSE_ID,
        "structured_inputs": {"type": "object"},
    },
}
_OUTPUT_TEXT = {
    "type": "object",
    "required": ["type", "text", "annotations", "logprobs"],
    "properties": {"type": {"const": "output_text"}, "text": STRING,
                   "annotations": {"type": "array"}, "logprobs": {"type": "array"}},
}
_OUTPUT_MESSAGE = {
    "type": "object",
    "required": ["id", "type", "status", "role", "content"],
    "properties": {
        "id": STRING, "type": {"const": "message"},
        "status": {"enum": ["in_progress", "completed", "incomplete"]},
        "role": {"const": "assistant"}, "content": {"type": "array", "items": _OUTPUT_TEXT},
    },
}
_USAGE = {
    "type": "object",
    "required": ["input_tokens", "input_tokens_details", "output_tokens",
                 "output_tokens_details", "total_tokens"],
    "properties": {
        "input_tokens": {"type": "integer"}, "output_tokens": {"type": "integer"},
        "total_tokens": {"type": "integer"},
        "input_tokens_details": {"type": "object", "required": ["cached_tokens"]},
        "output_tokens_details": {"type": "object", "required": ["reasoning_tokens"]},
    },
}
_NUMBER = {"type": "number"}
# Every field the Open Responses schema (ResponseResource) requires; non-nullable ones plain.
_RESPONSE = {
    "type": "object",
    "required": [
        "id", "object", "created_at", "completed_at", "status", "incomplete_details", "model",
        "previous_response_id", "instructions", "output", "error", "tools", "tool_choice",
        "truncation", "parallel_tool_calls", "text", "top_p", "presence_penalty",
        "frequency_penalty", "top_logprobs", "temperature", "reasoning", "user", "usage",
        "max_output_tokens", "max_tool_calls", "store", "background", "service_tier",
        "metadata", "safety_identifier", "prompt_cache_key",
    ],
    "properties": {
        "id": RESPONSE_ID,
        "object": {"const": "response"},
        "created_at": {"type": "integer"},
        "completed_at": _nullable({"type": "integer"}),
        "status": {"enum": ["queued", "in_progress", "completed", "incomplete", "failed",
                            "cancelled"]},
        "incomplete_details": _nullable({"type": "object", "required": ["reason"]}),
        "model": STRING,
        "previous_response_id": _nullable(STRING),
        "instructions": _nullable(STRING),
        "output": {"type": "array", "items": _OUTPUT_MESSAGE},
        "error": _nullable({"type": "object", "required": ["code", "message"],
                            "properties": {"code": STRING, "message": STRING}}),
        "tools": {"type": "array"},
        "tool_choice": {"not": {"type": "null"}},
        "truncation": {"enum": ["auto", "disabled"]},
        "parallel_tool_calls": {"type": "boolean"},
        "text": {"type": "object"},
        "top_p": _NUMBER, "temperature": _NUMBER,
        "presence_penalty": _NUMBER, "frequency_penalty": _NUMBER,
        "top_logprobs": {"type": "integer"},
        "reasoning": _nullable({"type": "object"}),
        "user": _nullable(STRING),
        "usage": _nullable(_USAGE),
        "max_output_tokens": _nullable({"type": "integer"}),
        "max_tool_calls": _nullable({"type": "integer"}),
        "store": {"type": "boolean"},
        "background": {"type": "boolean"},
        "service_tier": STRING,
        "metadata": _ref("Metadata"),
        "safety_identifier": _nullable(STRING),
        "prompt_cache_key": _nullable(STRING),
        "conversation": _nullable({"type": "object", "required": ["id"]}),
        "agent_reference": _nullable({"type": "object"}),
    },
}
_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["message", "type", "param", "code"],
        "properties": {"message": STRING, "type": STRING, "param": _nullable(STRING),
                       "code": _nullable(STRING)},
    }},
}
_INPUT_ITEM_LIST = {
    "type": "object",
    "required": ["object", "data", "first_id", "last_id", "has_more"],
    "properties": {
        "object": {"const": "list"},
        "data": {"type": "array", "items": {"type": "object", "required": ["id", "type"]}},
        "first_id": _nullable(STRING), "last_id": _nullable(STRING),
        "has_more": {"type": "boolean"},
    },
}
_DELETED = {
    "type": "object",
    "required": ["id", "object", "deleted"],
    "properties": {"id": STRING, "object": {"const": "response.deleted"},
                   "deleted": {"const": True}},
}
_INVOCATION = {
    "type": "object",
    "required": ["id", "status", "output_text", "usage"],
    "properties": {"id": RESPONSE_ID, "status": STRING, "output_text": STRING,
                   "usage": _nullable(_USAGE)},
}
_HEALTH = {"type": "object", "required": ["status"], "properties": {"status": STRING}}

_ERRORS = {  # status: when
    "400": "Invalid request: the body, a field ('param' names it) or a query parameter.",
    "404": "No such response (never stored, deleted, evicted or store: false).",
    "409": "A response with this id exists or is being created (x-should-retry: false).",
    "413": "The request body is larger than MAX_REQUEST_BYTES.",
    "415": "The body is not application/json.",
    "502": "The model's answer did not fit the requested text.format.",
    "503": "The server is shutting down (SIGTERM drain); retry on another instance.",
}


def _errors(*statuses: str) -> dict[str, Any]:
    return {status: {"description": _ERRORS[status],
                     "content": {JSON: {"schema": _ref("Error")}}} for status in statuses}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


_RESPONSE_ID_PARAM = {"name": "response_id", "in": "path", "required": True, "schema": STRING}
_HEADERS = [
    {"name": "x-agent-response-id", "in": "header", "required": False, "schema": STRING,
     "description": "The id the response gets (Foundry); wins over the body's response_id."},
    {"name": "x-agent-session-id", "in": "header", "required": False, "schema": STRING},
]

_CREATE_OPERATION = {
    "summary": "Create a response (JSON, or SSE when stream is true)",
    "parameters": _HEADERS,
    "requestBody": {"required": True, "content": {JSON: {"schema": _ref("CreateResponse")}}},
    "responses": {
        "200": {
            "description": "The Response, or with stream: true an SSE stream of events "
                           "ending in data: [DONE].",
            "content": {JSON: {"schema": _ref("Response")}, SSE: {"schema": SSE_EVENT}},
        },
        **_errors("400", "404", "409", "413", "415", "502", "503"),
    },
}
_GET_OPERATION = {
    "summary": "A stored response (or, for a background one, its events again)",
    "parameters": [
        _RESPONSE_ID_PARAM,
        {"name": "stream", "in": "query", "required": False, "schema": STRING},
        {"name": "starting_after", "in": "query", "required": False,
         "schema": {"type": "integer"}},
    ],
    "responses": {
        "200": {"description": "The Response, or its events as SSE with ?stream=true",
                "content": {JSON: {"schema": _ref("Response")}, SSE: {"schema": SSE_EVENT}}},
        **_errors("400", "404"),
    },
}
_DELETE_OPERATION = {
    "summary": "Delete a stored response",
    "parameters": [_RESPONSE_ID_PARAM],
    "responses": {"200": _json("Deleted", _ref("DeletedResponse")), **_errors("404")},
}
_CANCEL_OPERATION = {
    "summary": "Cancel a background response",
    "parameters": [_RESPONSE_ID_PARAM],
    "responses": {"200": _json("The cancelled Response", _ref("Response")),
                  **_errors("400", "404")},
}
_INPUT_ITEMS_OPERATION = {
    "summary": "The input items of a stored response, a page at a time",
    "parameters": [
        _RESPONSE_ID_PARAM,
        {"name": "limit", "in": "query", "required": False,
         "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
        {"name": "order", "in": "query", "required": False, "schema": {"enum": ["asc", "desc"]}},
        {"name": "after", "in": "query", "required": False, "schema": STRING},
        {"name": "before", "in": "query", "required": False, "schema": STRING},
    ],
    "responses": {"200": _json("A page of input items", _ref("InputItemList")),
                  **_errors("400", "404")},
}


def _health(summary: str) -> dict[str, Any]:
    return {"get": {"summary": summary, "responses": {
        "200": _json("Healthy", _ref("Health")),
        "503": _json("Draining on SIGTERM", _ref("Health")),
    }}}


def document() -> dict[str, Any]:
    """The OpenAPI document (a new dict each call)."""
    responses_paths = {
        "/responses": {"post": _CREATE_OPERATION},
        "/responses/{response_id}": {"get": _GET_OPERATION, "delete": _DELETE_OPERATION},
        "/responses/{response_id}/cancel": {"post": _CANCEL_OPERATION},
        "/responses/{response_id}/input_items": {"get": _INPUT_ITEMS_OPERATION},
    }
    paths: dict[str, Any] = {**responses_paths}
    for path, item in responses_paths.items():  # the /v1 aliases
        paths["/v1" + path] = {method: {**operation, "summary": operation["summary"] + " (alias)"}
                               for method, operation in item.items()}
    paths["/invocations"] = {"post": {
        "summary": "The same request fields as /responses; a compact JSON answer",
        "parameters": _HEADERS,
        "requestBody": {"required": True, "content": {JSON: {"schema": _ref("CreateResponse")}}},
        "responses": {"200": _json("The answer", _ref("Invocation")),
                      **_errors("400", "404", "409", "413", "415", "502", "503")},
    }}
    paths["/readiness"] = _health("Ready (Azure Foundry's probe); 503 while draining")
    paths["/ready"] = _health("Ready (AgentRun's probe)")
    paths["/health"] = _health("Ready")
    paths["/liveness"] = {"get": {"summary": "Alive",
                                  "responses": {"200": _json("Alive", _ref("Health"))}}}
    paths["/ping"] = {"get": {"summary": "Healthy, or HealthyBusy while requests are in flight",
                              "responses": {"200": _json("Healthy", _ref("Health"))}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Agent container (OpenAI Responses v1)", "version": "1.0.0"},
        "paths": paths,
        "components": {"schemas": {
            "CreateResponse": _CREATE,
            "InputItem": {"anyOf": [_MESSAGE, _FUNCTION_CALL, _FUNCTION_CALL_OUTPUT]},
            "InputContentPart": {"anyOf": [STRING, _TEXT_PART]},
            "Metadata": {
                "type": "object", "maxProperties": METADATA_MAX_PAIRS,
                "propertyNames": {"maxLength": METADATA_MAX_KEY},
                "additionalProperties": {"type": "string", "maxLength": METADATA_MAX_VALUE},
            },
            "TextFormat": {"type": "object", "required": ["type"], "properties": {
                "type": {"enum": ["text", "json_object", "json_schema"]}}},
            "Response": _RESPONSE,
            "InputItemList": _INPUT_ITEM_LIST,
            "DeletedResponse": _DELETED,
            "Invocation": _INVOCATION,
            "Health": _HEALTH,
            "Error": _ERROR,
        }},
    }
