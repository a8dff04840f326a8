"""Errors in the OpenAI shape: ``{"error": {"message", "type", "param", "code"}}``.

    APIError                  any failure that becomes an HTTP error response
    ├── InvalidRequest        400 invalid_request_error (names the field in ``param``)
    ├── NotFound              404 not_found_error
    ├── MethodNotAllowed      405
    ├── Conflict              409
    ├── PayloadTooLarge       413
    ├── UnsupportedMediaType  415
    ├── BadGateway            502 (the model's answer was unusable: ``invalid_model_output``)
    └── ServiceUnavailable    503 (draining on shutdown)

    AgentError                raised by agent code or a model provider: the response fails with
                              this ``code`` and ``message`` (both shown to the caller)
"""

from __future__ import annotations

import json


class APIError(Exception):
    status = 500
    type = "server_error"
    default_code: str | None = "server_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code

    def to_dict(self) -> dict[str, object]:
        return {"message": self.message, "type": self.type, "param": self.param, "code": self.code}

    def body(self) -> bytes:
        return json.dumps({"error": self.to_dict()}, ensure_ascii=False).encode()


class InvalidRequest(APIError):
    status = 400
    type = "invalid_request_error"
    default_code = "invalid_request"


class NotFound(APIError):
    status = 404
    type = "not_found_error"
    default_code = "not_found"


class MethodNotAllowed(APIError):
    status = 405
    type = "invalid_request_error"
    default_code = "method_not_allowed"


class Conflict(APIError):
    status = 409
    type = "invalid_request_error"
    default_code = "conflict"


class PayloadTooLarge(APIError):
    status = 413
    type = "invalid_request_error"
    default_code = "payload_too_large"


class UnsupportedMediaType(APIError):
    status = 415
    type = "invalid_request_error"
    default_code = "unsupported_media_type"


class BadGateway(APIError):
    status = 502
    type = "server_error"
    default_code = "bad_gateway"


class ServiceUnavailable(APIError):
    status = 503
    type = "server_error"
    default_code = "service_unavailable"


class AgentError(Exception):
    """Raise from agent code to fail a response with a message the caller may see."""

    def __init__(self, message: str, *, code: str = "server_error"):
        super().__init__(message)
        self.message = message
        self.code = code
