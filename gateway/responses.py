"""JSON responses and the exception handlers that turn every error into API.md's shape:
{"error": "<code>", "message": "<what happened and how to fix it>"}.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from gortms.checks import enc_hook
from gortms.errors import GortmsError

log = logging.getLogger(__name__)

JSON = "application/json"

_HTTP_CODES = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
               415: "unsupported_media_type", 422: "schema_violation",
               429: "too_many_requests", 503: "shard_unavailable"}


_json = msgspec.json.Encoder(enc_hook=enc_hook)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None
                  ) -> Response:
    """`body`: bytes as they are, or anything msgspec encodes (dicts, lists, reply Structs)."""
    data = body if isinstance(body, bytes) else _json.encode(body)
    return Response(data, status, headers=headers, media_type=JSON)


def error_response(code: str, message: str, status: int,
                   headers: dict[str, str] | None = None) -> Response:
    return json_response({"error": code, "message": message}, status, headers)


def gortms_error_response(exc: GortmsError) -> Response:
    headers = None
    if exc.retry_after_s is not None:
        headers = {"Retry-After": str(exc.retry_after_s)}
    return error_response(exc.code, exc.message, exc.http_status, headers)


async def on_gortms_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GortmsError)
    if exc.http_status >= 500 and not exc.retriable:
        log.error("%s %s failed: %s", request.method, request.url.path, exc)
    return gortms_error_response(exc)


async def on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    if exc.status_code == 404:
        message = f"no route for {request.method} {request.url.path} (see API.md)"
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        message = f"{request.method} is not allowed on {request.url.path}; use {allowed}"
    else:
        message = str(exc.detail)
    return error_response(code, message, exc.status_code, exc.headers)


def internal_error_response() -> Response:
    return error_response("internal", "internal error (a bug: please report it)", 500)


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
    return internal_error_response()
