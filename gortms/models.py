"""Value objects: timestamps, queue and consumer-group settings, what an ack or nack names.

They are msgspec Structs: the same type is decoded from a client's JSON (through
`gortms.checks.convert`, keys in any case), travels between gateway and shard, is stored in
the shard's records, and is encoded back to the API's camelCase JSON.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Annotated

import msgspec
from msgspec import Meta, Struct

from gortms.checks import (MAX_POSITION, Duration, MessageId, Name, Position, check_name,
                           format_duration, parse_duration)

__all__ = ["AckMode", "CircuitBreakerConfig", "GroupSpec", "QueueConfig", "Retention",
           "RetryConfig", "SettleTargets", "check_name", "format_duration", "format_ts",
           "now_ms", "parse_duration", "parse_start", "parse_ts"]

MAX_QUEUE_SIZE = 2**40
MAX_SETTLE_IDS = 10_000

# --- timestamps -----------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def format_ts(ms: int) -> str:
    """Epoch milliseconds -> RFC 3339 UTC with milliseconds ("2026-11-29T01:39:37.123Z")."""
    secs, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{millis:03d}Z"


def parse_ts(value: object, where: str) -> int:
    """RFC 3339 time -> epoch milliseconds."""
    from gortms.errors import InvalidParameter

    ms = _ts_ms(value)
    if ms is None:
        raise InvalidParameter(f"{where} must be an RFC 3339 time like "
                               f"\"2025-06-29T10:30:00Z\", got {value!r}")
    return ms


def _ts_ms(value: object) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    # Integer arithmetic: timestamp() * 1000 loses a millisecond now and then.
    return (parsed - _EPOCH) // timedelta(milliseconds=1)


# --- queue configuration ------------------------------------------------------------------------


class Retention(StrEnum):
    LIMITS = "limits"
    INTEREST = "interest"


def _positive(value: float, name: str) -> None:
    if value <= 0:
        raise ValueError(f"{name} must be longer than 0")


class _Config(Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """Settings objects: camelCase keys, unknown keys refused (a typo must not pass silently)."""


class RetryConfig(_Config):
    max_retries: Annotated[int, Meta(ge=0, le=1000)] = 3
    initial_delay: Duration = Duration(1.0)
    factor: Annotated[float, Meta(ge=1.0, le=100.0)] = 2.0
    max_delay: Duration = Duration(30.0)


class CircuitBreakerConfig(_Config):
    error_threshold: Annotated[float, Meta(ge=0.0, le=1.0)] = 0.5
    success_threshold: Annotated[int, Meta(ge=1, le=1_000_000)] = 5
    minimum_requests: Annotated[int, Meta(ge=1, le=1_000_000)] = 10
    open_timeout: Duration = Duration(30.0)

    def __post_init__(self) -> None:
        _positive(self.open_timeout, "openTimeout")


class QueueConfig(_Config):
    is_persistent: bool = True
    max_size: Annotated[int, Meta(ge=1, le=MAX_QUEUE_SIZE)] = 1000
    ttl: Duration = Duration(86400.0)
    worker_count: Annotated[int, Meta(ge=1, le=1024)] = 2
    retry_enabled: bool = False
    retry_config: RetryConfig = RetryConfig()
    circuit_breaker_enabled: bool = False
    circuit_breaker_config: CircuitBreakerConfig = CircuitBreakerConfig()
    ack_timeout: Duration = Duration(30.0)
    retention: Retention = Retention.LIMITS

    def __post_init__(self) -> None:
        _positive(self.ack_timeout, "ackTimeout")


# --- consumer groups ----------------------------------------------------------------------------


class AckMode(StrEnum):
    EXPLICIT = "explicit"
    AUTO = "auto"


def parse_start(value: object, where: str = "start") -> str | int:
    """A group start: "earliest", "latest", a position (>= 1) or an RFC 3339 time (kept as text)."""
    start = _start(value)
    if start is None:
        from gortms.errors import InvalidParameter

        raise InvalidParameter(f"{where} must be \"earliest\", \"latest\", a position >= 1 or "
                               f"an RFC 3339 time, got {value!r}")
    return start


def _start(value: object) -> str | int | None:
    if value is None:
        return "earliest"
    if isinstance(value, int) and not isinstance(value, bool):
        return value if 1 <= value <= MAX_POSITION else None
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("earliest", "latest"):
            return lowered
        if lowered.isdigit():
            return int(lowered) if 1 <= int(lowered) <= MAX_POSITION else None
        return value if _ts_ms(value) is not None else None
    return None


class GroupSpec(Struct, frozen=True, kw_only=True, rename="camel"):
    """What a client asks for when it creates a consumer group (unknown keys are ignored)."""

    group_id: Name
    ack_mode: AckMode = AckMode.EXPLICIT
    ttl: Duration = Duration(0.0)
    start: str | int = "earliest"

    def __post_init__(self) -> None:
        start = _start(self.start)
        if start is None:
            raise ValueError("start must be \"earliest\", \"latest\", a position >= 1 or an "
                             f"RFC 3339 time, got {self.start!r}")
        msgspec.structs.force_setattr(self, "start", start)


class SettleTargets(Struct, frozen=True, kw_only=True):
    """The messages an ack or nack names: by id (the usual way) and/or by position."""

    ids: Annotated[list[MessageId], Meta(max_length=MAX_SETTLE_IDS)] = []
    positions: Annotated[list[Position], Meta(max_length=MAX_SETTLE_IDS)] = []

    def __post_init__(self) -> None:
        if not self.ids and not self.positions:
            raise ValueError("ids is required: {\"ids\": [\"<message id>\", ...]}")
        if len(self.ids) + len(self.positions) > MAX_SETTLE_IDS:
            raise ValueError(f"at most {MAX_SETTLE_IDS} ids per request")
