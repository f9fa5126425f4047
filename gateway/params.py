"""Reading requests: bounded bodies, JSON, path names and query parameters, each checked."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from gortms.errors import InvalidJson, InvalidParameter, PayloadTooLarge
from gortms.models import check_name, fold_keys


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise InvalidParameter("Content-Length must be a number")
        if int(declared) > limit:
            raise PayloadTooLarge(f"the body has {declared} bytes; the limit is {limit} "
                                  "(http.maxBodyBytes)")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is over the limit of {limit} bytes "
                                  "(http.maxBodyBytes)")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(data: bytes) -> Any:
    if not data.strip():
        raise InvalidJson("the request body is empty; send a JSON object")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidJson(f"the request body is not valid JSON: {exc}") from None


async def read_object(request: Request, limit: int, keys: tuple[str, ...] = ()
                      ) -> dict[str, Any]:
    """A JSON object body; with `keys`, its keys folded case-insensitively onto them."""
    body = parse_json(await read_body(request, limit))
    if not isinstance(body, dict):
        raise InvalidJson(f"the request body must be a JSON object, got {_kind(body)}")
    return fold_keys(body, keys, "", strict=False) if keys else body


def _kind(value: object) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def path_name(request: Request, param: str, kind: str) -> str:
    return check_name(kind, request.path_params[param])


def query_int(request: Request, names: tuple[str, ...], default: int, low: int, high: int
              ) -> int:
    for name in names:
        raw = request.query_params.get(name)
        if raw is None:
            continue
        if not raw.strip().isdigit() or not low <= int(raw) <= high:
            raise InvalidParameter(f"{name} must be an integer from {low} to {high}, "
                                   f"got {raw!r}")
        return int(raw)
    return default


def query_seconds(request: Request, name: str, default: float, high: float) -> float:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= high:
        raise InvalidParameter(f"{name} must be a number of seconds from 0 to {high:g}, "
                               f"got {raw!r}")
    return value


def query_name(request: Request, name: str, kind: str, default: str | None) -> str | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    return check_name(kind, raw)
