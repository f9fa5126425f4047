"""How the client fails: with the broker's own error tree (gortms/errors.py), rebuilt from the
answer's wire code, plus the failures only a client sees, drawn here under the same root:

    GortmsError (the broker's tree: NotFound, QueueNotFound, ShardUnavailable, ...)
    └── BrokerUnreachable (broker_unreachable, 503, retriable; also a ConnectionError)
        │   no answer at all: refused, reset, timed out; `sent` says whether the request
        │   may have reached the broker
        └── SocketClosed (socket_closed): a WebSocket closed without an error status
            (the broker stopping, a ping timeout, a normal close)

Every error raised from an HTTP answer carries `status` (the HTTP status received) and
`retry_after_s` (its Retry-After, or None). A code this client does not know (a newer broker)
becomes the tree's class for the status, with the code kept in `code`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Mapping

import msgspec

from gortms.errors import (GortmsError, NotFound, PayloadTooLarge, ShardUnavailable,
                           error_classes, error_for)


class BrokerUnreachable(GortmsError, ConnectionError):
    """No answer from the broker. `sent` is False when the request surely never left
    (the connection could not be made), so repeating it cannot apply it twice."""

    code, http_status, retriable = "broker_unreachable", 503, True

    def __init__(self, message: str = "", sent: bool = True) -> None:
        super().__init__(message)
        self.sent = sent


class SocketClosed(BrokerUnreachable):
    code = "socket_closed"

    def __init__(self, message: str = "", close_code: int | None = None) -> None:
        super().__init__(message)
        self.close_code = close_code


class _WireError(msgspec.Struct):
    error: str
    message: str = ""


def _top_classes_by_status() -> dict[int, type[GortmsError]]:
    """The broadest class of the tree for each HTTP status (NotFound for 404, ...)."""
    table: dict[int, type[GortmsError]] = {}
    for cls in error_classes():
        parent = cls.__bases__[0]
        if cls.__module__ == "gortms.errors" and \
                getattr(parent, "http_status", None) != cls.http_status:
            table.setdefault(cls.http_status, cls)
    # Two classes answer 503 at the top; without a code (a proxy in front of the broker, a
    # newer broker), "unavailable, retry" is the reading that holds. 410 is how a WebSocket
    # says its queue went away (close code 4410).
    table[503] = ShardUnavailable
    table[410] = NotFound
    return table


_BY_STATUS = _top_classes_by_status()


def error_for_status(status: int, message: str) -> GortmsError:
    return _BY_STATUS.get(status, GortmsError)(message or f"HTTP {status}")


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: a number of seconds or an HTTP date (RFC 9110); None if absent
    or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def error_from_response(status: int, headers: Mapping[str, str], body: bytes) -> GortmsError:
    """The error an answer of `status` stands for: its `{"error", "message"}` rebuilt as the
    tree's class (error_for, the registry the gateway uses too), else the status's class."""
    try:
        wire = msgspec.json.decode(body, type=_WireError)
    except (msgspec.DecodeError, msgspec.ValidationError):
        text = body[:200].decode("utf-8", "replace").strip()
        error = error_for_status(status, f"HTTP {status}" + (f": {text}" if text else ""))
    else:
        error = error_for(wire.error, wire.message)
        if type(error) is GortmsError and wire.error != GortmsError.code:
            error = error_for_status(status, wire.message)
            error.code = wire.error  # type: ignore[misc]  # a code this client does not know
    error.status = status  # type: ignore[attr-defined]
    error.retry_after_s = parse_retry_after(headers.get("retry-after"))  # type: ignore[misc]
    return error


def error_from_close(code: int, reason: str) -> GortmsError:
    """A WebSocket close: 4000 + an HTTP status is that status's error, the rest SocketClosed."""
    if 4000 <= code < 5000:
        return error_for_status(code - 4000, reason)
    if code == 1009:
        return PayloadTooLarge(reason or "a frame was too large for the broker")
    return SocketClosed(f"the WebSocket closed ({code}{': ' + reason if reason else ''})", code)
