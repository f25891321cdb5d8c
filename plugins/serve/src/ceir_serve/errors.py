"""Errors a request can end in: an HTTP status, a code and a message naming the problem and the way out."""

from __future__ import annotations


class ApiError(Exception):
    """Raised anywhere while serving a request; answered as JSON ``{"error": {...}}`` (OpenAI's shape,
    which its SDK turns into a readable exception)."""

    def __init__(self, status: int, message: str, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def error_body(message: str, code: str, status: int) -> dict[str, object]:
    kind = "invalid_request_error" if 400 <= status < 500 else "server_error"
    return {"error": {"message": message, "type": kind, "code": code}}
