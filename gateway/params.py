"""Reading requests: bounded bodies, JSON, path names and query parameters, each checked.

Bodies and query strings are converted with `gortms.checks` into declared types, like
everything else that enters a process; only the path's names are checked one by one.
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from starlette.requests import Request

from gortms.checks import check_name, convert
from gortms.errors import InvalidJson, InvalidParameter, PayloadTooLarge

T = TypeVar("T")


def check_declared_length(declared: str | None, limit: int) -> None:
    """A body whose Content-Length is over `limit` is refused (413) before it is read."""
    if declared is None:
        return
    if not declared.isdigit():
        raise InvalidParameter("Content-Length must be a number")
    if int(declared) > limit:
        raise PayloadTooLarge(f"the body has {declared} bytes; the limit is {limit} "
                              "(http.maxBodyBytes)")


def too_large(limit: int) -> PayloadTooLarge:
    """For a body that grows past `limit` as it is read (no Content-Length, or a false one)."""
    return PayloadTooLarge(f"the body is over the limit of {limit} bytes (http.maxBodyBytes)")


async def read_body(request: Request, limit: int) -> bytes:
    check_declared_length(request.headers.get("content-length"), limit)
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(data: bytes) -> Any:
    if not data.strip():
        raise InvalidJson("the request body is empty; send a JSON object")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidJson(f"the request body is not valid JSON: {exc}") from None


def json_object(data: bytes) -> dict[str, Any]:
    body = parse_json(data)
    if not isinstance(body, dict):
        raise InvalidJson(f"the request body must be a JSON object, got {_kind(body)}")
    return body


async def read_object(request: Request, limit: int) -> dict[str, Any]:
    """A JSON object body, as it came."""
    return json_object(await read_body(request, limit))


async def read_as(request: Request, limit: int, type_: type[T]) -> T:
    """A JSON object body as `type_` (keys in any case)."""
    return convert(await read_object(request, limit), type_)


def query_as(request: Request, type_: type[T]) -> T:
    """The query string as `type_`: text converted to numbers where the type says so."""
    return convert(dict(request.query_params), type_, strict=False)


def _kind(value: object) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def path_name(request: Request, param: str, kind: str) -> str:
    return check_name(kind, request.path_params[param])
