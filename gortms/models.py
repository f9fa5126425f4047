"""Value objects and their wire forms: names, durations, timestamps, queue and group settings.

Wire dicts stay at the edge: `*.from_wire()` checks types, folds key case (API.md: `groupID`,
`groupId` and `groupid` are one key) and fills defaults; `to_wire()` gives canonical camelCase.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Any, Mapping

from gortms.errors import InvalidConfig, InvalidName, InvalidParameter

NAME_RULE = "1-128 characters of A-Z a-z 0-9 . _ : -"
# Positions are 8-byte keys in RocksDB; this bound keeps every one (and its +1) in range.
MAX_POSITION = 2**62
MAX_DURATION_S = 100 * 365 * 86400.0
_NAME_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
MAX_MESSAGE_ID_BYTES = 256


def check_name(kind: str, value: object) -> str:
    """Return `value` if it is a valid domain/queue/group/consumer name, else raise InvalidName."""
    if isinstance(value, str) and _NAME_RE.fullmatch(value):
        return value
    if value is None:
        raise InvalidName(f"a {kind} name is required ({NAME_RULE})")
    shown = value if isinstance(value, str) else type(value).__name__
    raise InvalidName(f"invalid {kind} name {shown!r}: use {NAME_RULE}")


def check_message_id(value: object, where: str = "id") -> str:
    if isinstance(value, str) and value and len(value.encode()) <= MAX_MESSAGE_ID_BYTES:
        return value
    raise InvalidParameter(f"{where} must be a non-empty string of at most "
                           f"{MAX_MESSAGE_ID_BYTES} bytes")


# --- durations ------------------------------------------------------------------------------

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h)")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: object, where: str) -> float:
    """Go-style duration ("500ms", "1h30m", "0") or a number of seconds -> seconds.

    Durations count whole milliseconds: a non-zero one below 1ms is refused rather than
    silently becoming "0" (none).
    """
    seconds = _parse_duration(value, where)
    if 0 < seconds < 0.001:
        raise InvalidParameter(f"{where} must be 0 or at least 1ms, got {value!r}")
    return round(seconds * 1000) / 1000


def _parse_duration(value: object, where: str) -> float:
    if isinstance(value, bool):
        raise InvalidParameter(f"{where} must be a duration like \"30s\", got {value!r}")
    if isinstance(value, (int, float)):
        if not 0 <= value <= MAX_DURATION_S:  # also false for NaN
            raise InvalidParameter(f"{where} must be from 0 to 100 years, got {value!r}")
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if text == "0":
            return 0.0
        pos, total = 0, 0.0
        for match in _DURATION_PART.finditer(text):
            if match.start() != pos:
                break
            total += float(match.group(1)) * _UNIT_S[match.group(2)]
            pos = match.end()
        if pos == len(text) and text and total <= MAX_DURATION_S:
            return total
    raise InvalidParameter(f"{where} must be a duration like \"500ms\", \"30s\", \"1h30m\" "
                           f"or \"0\", got {value!r}")


def format_duration(seconds: float) -> str:
    """Seconds -> the shortest Go-style string ("24h", "1h30m", "500ms", "0")."""
    ms = round(seconds * 1000)
    if ms == 0:
        return "0"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    if millis and not text and not secs:
        return text + f"{millis}ms"
    if millis:
        return text + f"{secs}.{millis:03d}".rstrip("0") + "s"
    return text + (f"{secs}s" if secs else "")


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
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            pass
        else:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=timezone.utc)
            # Integer arithmetic: timestamp() * 1000 loses a millisecond now and then.
            return (parsed - _EPOCH) // timedelta(milliseconds=1)
    raise InvalidParameter(f"{where} must be an RFC 3339 time like \"2025-06-29T10:30:00Z\", "
                           f"got {value!r}")


# --- typed field readers for wire dicts -------------------------------------------------------


def fold_keys(body: Mapping[str, Any], canonical: tuple[str, ...], where: str,
              strict: bool) -> dict[str, Any]:
    """Map keys case-insensitively onto `canonical` names; unknown keys raise when strict."""
    by_lower = {name.lower(): name for name in canonical}
    out: dict[str, Any] = {}
    for key, value in body.items():
        name = by_lower.get(key.lower())
        if name is None:
            if strict:
                raise InvalidConfig(f"unknown key {where}{key!r}; known keys: "
                                    + ", ".join(canonical))
            continue
        out[name] = value
    return out


def read_bool(body: Mapping[str, Any], key: str, default: bool, where: str) -> bool:
    value = body.get(key, default)
    if isinstance(value, bool):
        return value
    raise InvalidConfig(f"{where}{key} must be true or false, got {value!r}")


def read_int(body: Mapping[str, Any], key: str, default: int, where: str,
             low: int, high: int) -> int:
    value = body.get(key, default)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
        return value
    raise InvalidConfig(f"{where}{key} must be an integer from {low} to {high}, got {value!r}")


def read_float(body: Mapping[str, Any], key: str, default: float, where: str,
               low: float, high: float) -> float:
    value = body.get(key, default)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high:
        return float(value)
    raise InvalidConfig(f"{where}{key} must be a number from {low} to {high}, got {value!r}")


def read_duration(body: Mapping[str, Any], key: str, default: float, where: str,
                  positive: bool = False) -> float:
    try:
        seconds = parse_duration(body.get(key, default), f"{where}{key}")
    except InvalidParameter as exc:
        raise InvalidConfig(exc.message) from exc
    if positive and seconds <= 0:
        raise InvalidConfig(f"{where}{key} must be longer than 0")
    return seconds


def read_object(body: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = body.get(key)
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    raise InvalidConfig(f"{where}{key} must be an object, got {type(value).__name__}")


# --- queue configuration ------------------------------------------------------------------------


class Retention(StrEnum):
    LIMITS = "limits"
    INTEREST = "interest"


@dataclass(frozen=True, slots=True)
class RetryConfig:
    max_retries: int = 3
    initial_delay: float = 1.0
    factor: float = 2.0
    max_delay: float = 30.0

    KEYS = ("maxRetries", "initialDelay", "factor", "maxDelay")

    @classmethod
    def from_wire(cls, body: Mapping[str, Any], where: str) -> RetryConfig:
        raw = fold_keys(body, cls.KEYS, where, strict=True)
        return cls(
            max_retries=read_int(raw, "maxRetries", 3, where, 0, 1000),
            initial_delay=read_duration(raw, "initialDelay", 1.0, where),
            factor=read_float(raw, "factor", 2.0, where, 1.0, 100.0),
            max_delay=read_duration(raw, "maxDelay", 30.0, where),
        )

    def to_wire(self) -> dict[str, Any]:
        return {"maxRetries": self.max_retries, "initialDelay": format_duration(self.initial_delay),
                "factor": self.factor, "maxDelay": format_duration(self.max_delay)}


@dataclass(frozen=True, slots=True)
class CircuitBreakerConfig:
    error_threshold: float = 0.5
    success_threshold: int = 5
    minimum_requests: int = 10
    open_timeout: float = 30.0

    KEYS = ("errorThreshold", "successThreshold", "minimumRequests", "openTimeout")

    @classmethod
    def from_wire(cls, body: Mapping[str, Any], where: str) -> CircuitBreakerConfig:
        raw = fold_keys(body, cls.KEYS, where, strict=True)
        return cls(
            error_threshold=read_float(raw, "errorThreshold", 0.5, where, 0.0, 1.0),
            success_threshold=read_int(raw, "successThreshold", 5, where, 1, 1_000_000),
            minimum_requests=read_int(raw, "minimumRequests", 10, where, 1, 1_000_000),
            open_timeout=read_duration(raw, "openTimeout", 30.0, where, positive=True),
        )

    def to_wire(self) -> dict[str, Any]:
        return {"errorThreshold": self.error_threshold, "successThreshold": self.success_threshold,
                "minimumRequests": self.minimum_requests,
                "openTimeout": format_duration(self.open_timeout)}


MAX_QUEUE_SIZE = 2**40


@dataclass(frozen=True, slots=True)
class QueueConfig:
    is_persistent: bool = True
    max_size: int = 1000
    ttl: float = 86400.0
    worker_count: int = 2
    retry_enabled: bool = False
    retry: RetryConfig = field(default_factory=RetryConfig)
    circuit_breaker_enabled: bool = False
    circuit_breaker: CircuitBreakerConfig = field(default_factory=CircuitBreakerConfig)
    ack_timeout: float = 30.0
    retention: Retention = Retention.LIMITS

    KEYS = ("isPersistent", "maxSize", "ttl", "workerCount", "retryEnabled", "retryConfig",
            "circuitBreakerEnabled", "circuitBreakerConfig", "ackTimeout", "retention")

    @classmethod
    def from_wire(cls, body: object) -> QueueConfig:
        if body is None:
            return cls()
        if not isinstance(body, dict):
            raise InvalidConfig(f"config must be an object, got {type(body).__name__}")
        where = "config."
        raw = fold_keys(body, cls.KEYS, where, strict=True)
        retention = raw.get("retention", "limits")
        if retention not in ("limits", "interest"):
            raise InvalidConfig(f"config.retention must be \"limits\" or \"interest\", "
                                f"got {retention!r}")
        return cls(
            is_persistent=read_bool(raw, "isPersistent", True, where),
            max_size=read_int(raw, "maxSize", 1000, where, 1, MAX_QUEUE_SIZE),
            ttl=read_duration(raw, "ttl", 86400.0, where),
            worker_count=read_int(raw, "workerCount", 2, where, 1, 1024),
            retry_enabled=read_bool(raw, "retryEnabled", False, where),
            retry=RetryConfig.from_wire(read_object(raw, "retryConfig", where),
                                        "config.retryConfig."),
            circuit_breaker_enabled=read_bool(raw, "circuitBreakerEnabled", False, where),
            circuit_breaker=CircuitBreakerConfig.from_wire(
                read_object(raw, "circuitBreakerConfig", where), "config.circuitBreakerConfig."),
            ack_timeout=read_duration(raw, "ackTimeout", 30.0, where, positive=True),
            retention=Retention(retention),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "isPersistent": self.is_persistent,
            "maxSize": self.max_size,
            "ttl": format_duration(self.ttl),
            "workerCount": self.worker_count,
            "retryEnabled": self.retry_enabled,
            "retryConfig": self.retry.to_wire(),
            "circuitBreakerEnabled": self.circuit_breaker_enabled,
            "circuitBreakerConfig": self.circuit_breaker.to_wire(),
            "ackTimeout": format_duration(self.ack_timeout),
            "retention": str(self.retention),
        }


# --- consumer groups ----------------------------------------------------------------------------


class AckMode(StrEnum):
    EXPLICIT = "explicit"
    AUTO = "auto"


def parse_start(value: object, where: str = "start") -> str | int:
    """A group start: "earliest", "latest", a position (>= 1) or an RFC 3339 time (kept as text)."""
    if value is None:
        return "earliest"
    if isinstance(value, int) and not isinstance(value, bool):
        if 1 <= value <= MAX_POSITION:
            return value
    elif isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("earliest", "latest"):
            return lowered
        if lowered.isdigit() and 1 <= int(lowered) <= MAX_POSITION:
            return int(lowered)
        parse_ts(value, where)
        return value
    raise InvalidParameter(f"{where} must be \"earliest\", \"latest\", a position >= 1 or an "
                           f"RFC 3339 time, got {value!r}")


MAX_SETTLE_IDS = 10_000


def check_settle_targets(body: Mapping[str, Any]) -> tuple[list[str], list[int]]:
    """The messages an ack or nack names: {"ids": [...]} and/or {"positions": [...]}."""
    ids = body.get("ids", [])
    positions = body.get("positions", [])
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise InvalidParameter("ids must be a list of message id strings")
    if not isinstance(positions, list) or not all(
            isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= MAX_POSITION
            for p in positions):
        raise InvalidParameter("positions must be a list of positions (integers from 1)")
    if not ids and not positions:
        raise InvalidParameter("ids is required: {\"ids\": [\"<message id>\", ...]}")
    if len(ids) + len(positions) > MAX_SETTLE_IDS:
        raise InvalidParameter(f"at most {MAX_SETTLE_IDS} ids per request")
    return ids, positions


@dataclass(frozen=True, slots=True)
class GroupSpec:
    group_id: str
    ack_mode: AckMode = AckMode.EXPLICIT
    ttl: float = 0.0
    start: str | int = "earliest"

    @classmethod
    def from_wire(cls, body: object) -> GroupSpec:
        if not isinstance(body, dict):
            raise InvalidParameter("the body must be a JSON object like {\"groupId\": \"workers\"}")
        raw = fold_keys(body, ("groupId", "ackMode", "ttl", "start"), "", strict=False)
        if "groupId" not in raw:
            raise InvalidParameter("groupId is required")
        ack_mode = raw.get("ackMode", "explicit")
        if ack_mode not in ("explicit", "auto"):
            raise InvalidParameter(f"ackMode must be \"explicit\" or \"auto\", got {ack_mode!r}")
        return cls(
            group_id=check_name("group", raw["groupId"]),
            ack_mode=AckMode(ack_mode),
            ttl=parse_duration(raw.get("ttl", 0), "ttl"),
            start=parse_start(raw.get("start")),
        )

    def to_wire(self) -> dict[str, Any]:
        return {"groupId": self.group_id, "ackMode": str(self.ack_mode),
                "ttl": format_duration(self.ttl), "start": self.start}
