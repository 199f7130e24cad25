"""The API's one error shape: `{"error": {"code", "message", "field"}}`.

Handlers raise `ApiError`; the middleware turns it (and aiohttp's own HTTP errors, and
anything unexpected) into that body, so a client never has to parse two shapes.
"""

from __future__ import annotations

import re

import msgspec
from aiohttp import web

_encoder = msgspec.json.Encoder()
# msgspec: "Expected `int`, got `str` - at `$.limit`" / "Object contains unknown field
# `x` - at `$.y`".
_AT = re.compile(r" - at `\$\.?([^`]*)`$")
_UNKNOWN = re.compile(r"unknown field `([^`]+)`")
_MISSING = re.compile(r"missing required field `([^`]+)`")


class ErrorDetail(msgspec.Struct, frozen=True):
    code: str
    message: str
    field: str | None = None


class ErrorBody(msgspec.Struct, frozen=True):
    error: ErrorDetail


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers = headers or {}

    def response(self) -> web.Response:
        body = ErrorBody(ErrorDetail(self.code, self.message, self.field))
        return web.Response(status=self.status, body=_encoder.encode(body),
                            content_type="application/json", headers=self.headers)


def bad_request(message: str, field: str | None = None, code: str = "invalid") -> ApiError:
    return ApiError(400, code, message, field)


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def from_validation(exc: msgspec.ValidationError | msgspec.DecodeError,
                    prefix: str = "") -> ApiError:
    """A 400 naming the offending field, from msgspec's message."""
    text = str(exc)
    field: str | None = None
    if m := _UNKNOWN.search(text):
        field = m.group(1)
    elif m := _MISSING.search(text):
        field = m.group(1)
    if m := _AT.search(text):
        path = m.group(1)
        if path:
            field = f"{path}.{field}" if field else path
        text = text[: m.start()]
    if isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError):
        return ApiError(400, "malformed_json", f"{prefix}body is not valid JSON: {text}")
    return ApiError(400, "invalid", f"{prefix}{text}", field)
