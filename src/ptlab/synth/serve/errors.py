"""The one error shape `ptlab serve` answers with: OpenAI's ``{"error": {message, type, param, code}}``.

Why one exception: body framing, validation and the handler all fail a request the same
way — a status, a message that names the field, and whether the connection must close
because the request's body was not read (the next bytes on it would not be a request).
"""

from __future__ import annotations


class ApiError(Exception):
    """A request the server refuses; `payload()` is the JSON body, `close` ends the connection after it."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str = "invalid_value",
                 type_: str = "invalid_request_error", close: bool = False, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type_
        self.close = close
        self.headers = headers or {}

    def payload(self) -> dict:
        return error_payload(self.message, self.type, self.param, self.code)


def error_payload(message: str, type_: str = "invalid_request_error", param: str | None = None,
                  code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}
