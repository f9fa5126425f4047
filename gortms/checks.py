"""Untrusted values into typed ones, one way: msgspec types with constraints, errors that name
the field.

Whatever enters a process from outside (HTTP bodies and query strings, the config file and
GORTMS_* variables, a peer's protocol messages) is converted here against a declared type:
msgspec checks types and bounds in one C pass, `fold_keys` first maps keys onto the
canonical camelCase names case-insensitively (API.md: `groupID`, `groupId` and `groupid` are
one key), and `explain` turns msgspec's complaint into a message that names the field.

Custom types: `Duration` (Go-style text such as "500ms" or "1h30m"; a bare number is refused,
but for 0; encoded back as text) and the constrained aliases below.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Mapping, TypeVar

import msgspec

from gortms.errors import GortmsError, InvalidName, InvalidParameter

T = TypeVar("T")

NAME_RULE = "1-128 characters of A-Z a-z 0-9 . _ : -, other than . and .."
# \Z: "$" would let a final newline through. "." and ".." are refused: a URL path cannot hold
# them (clients and proxies remove dot segments), so such a queue could never be reached.
NAME_PATTERN = r"^(?!\.\.?\Z)[A-Za-z0-9._:-]{1,128}\Z"
# Positions are 8-byte keys in RocksDB; this bound keeps every one (and its +1) in range.
MAX_POSITION = 2**62
MAX_DURATION_S = 100 * 365 * 86400.0
MAX_MESSAGE_ID_BYTES = 256

Name = Annotated[str, msgspec.Meta(pattern=NAME_PATTERN)]
Position = Annotated[int, msgspec.Meta(ge=1, le=MAX_POSITION)]
MessageId = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_MESSAGE_ID_BYTES)]

_NAME_RE = re.compile(NAME_PATTERN)


# --- durations ------------------------------------------------------------------------------


class Duration(float):
    """Seconds, in whole milliseconds. On the wire and in JSON: Go-style text ("30s")."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Duration({format_duration(self)!r})"


_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h)")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_HINT = "a duration like \"500ms\", \"30s\", \"1h30m\" or \"0\""


def parse_duration(value: object, where: str) -> Duration:
    """Go-style duration ("500ms", "1h30m", "0") -> Duration. A number other than 0 is refused:
    Go reads a bare number as nanoseconds and people mean seconds.

    Durations count whole milliseconds: a non-zero one below 1ms is refused rather than
    silently becoming "0" (none).
    """
    try:
        return _duration(value)
    except ValueError as exc:
        raise InvalidParameter(f"{where} {exc}, got {value!r}") from None


def _duration(value: object) -> Duration:
    seconds = _duration_seconds(value)
    if 0 < seconds < 0.001:
        raise ValueError("must be 0 or at least 1ms")
    return Duration(round(seconds * 1000) / 1000)


def _duration_seconds(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError(f"must be {_DURATION_HINT}")
    if isinstance(value, (int, float)):
        # A bare number is ambiguous (Go reads it as nanoseconds, people mean seconds): only
        # 0, which is "none" in every unit, is taken.
        if value == 0:
            return 0.0
        raise ValueError(f"must be a duration string such as \"{_as_text(value)}\" (a bare "
                         f"number has no unit)")
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
    raise ValueError(f"must be {_DURATION_HINT}")


def _as_text(value: float) -> str:
    """What a number of seconds would have been as a duration string, for a hint."""
    if not 0.001 <= value <= MAX_DURATION_S:  # also false for NaN
        return "30s"
    return format_duration(value)


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


def dec_hook(type_: type, value: Any) -> Any:
    if type_ is Duration:
        return _duration(value)
    raise NotImplementedError(f"no decoder for {type_}")


def enc_hook(value: Any) -> Any:
    if isinstance(value, Duration):
        return format_duration(value)
    raise NotImplementedError(f"cannot encode {type(value).__name__}")


# --- names ----------------------------------------------------------------------------------


def check_name(kind: str, value: object) -> str:
    """`value` if it is a valid domain/queue/group/consumer name, else InvalidName (400)."""
    if isinstance(value, str) and _NAME_RE.match(value):
        return value
    if value is None:
        raise InvalidName(f"a {kind} name is required ({NAME_RULE})")
    shown = value if isinstance(value, str) else type(value).__name__
    raise InvalidName(f"invalid {kind} name {shown!r}: use {NAME_RULE}")


# --- conversion -----------------------------------------------------------------------------


def fold_keys(value: Any, type_: Any) -> Any:
    """Rename keys of `value` onto the field names of struct `type_` (and of nested structs),
    ignoring case; other keys are left for the type to ignore or refuse."""
    if not isinstance(value, dict) or not _is_struct(type_):
        return value
    fields = _fields_by_lower_name(type_)
    out = {}
    for key, item in value.items():
        field = fields.get(key.lower()) if isinstance(key, str) else None
        if field is None:
            out[key] = item
        else:
            out[field[0]] = fold_keys(item, field[1])
    return out


_FIELDS: dict[type, dict[str, tuple[str, Any]]] = {}


def _fields_by_lower_name(type_: type) -> dict[str, tuple[str, Any]]:
    # Cached: msgspec.structs.fields() evaluates the annotations again on every call.
    fields = _FIELDS.get(type_)
    if fields is None:
        fields = _FIELDS[type_] = {f.encode_name.lower(): (f.encode_name, f.type)
                                   for f in msgspec.structs.fields(type_)}
    return fields


def _is_struct(type_: Any) -> bool:
    return isinstance(type_, type) and issubclass(type_, msgspec.Struct)


def convert(value: Any, type_: type[T], where: str = "", error: type[GortmsError] =
            InvalidParameter, strict: bool = True) -> T:
    """`value` (JSON-like, keys in any case) as `type_`, or `error` naming the field.

    `strict=False` also accepts numbers and booleans written as text (query strings and
    environment variables)."""
    try:
        return msgspec.convert(fold_keys(value, type_), type_, strict=strict, dec_hook=dec_hook)
    except msgspec.ValidationError as exc:
        if _is_name_at(type_, str(exc)):  # a bad name is a bad name wherever it is
            error = InvalidName
        raise error(explain(exc, where)) from None


def _is_name_at(type_: Any, message: str) -> bool:
    """Whether the field a msgspec error points at (" - at `$.spec.groupId`") is a Name."""
    at = _AT.search(message)
    if at is None:
        return False
    node = type_
    for part in re.findall(r"\.([^.\[]+)|\[[^\]]*\]", at.group(1)):
        if part:  # a field of a struct
            field = _fields_by_lower_name(node).get(part.lower()) if _is_struct(node) else None
            node = field[1] if field is not None else None
        else:  # an item of a list or dict
            args = getattr(node, "__args__", ())
            node = args[-1] if args else None
        if node is None:
            return False
    return node == Name


def to_builtins(value: Any) -> Any:
    """A struct tree as JSON-ready dicts and lists (durations as text)."""
    return msgspec.to_builtins(value, enc_hook=enc_hook)


_AT = re.compile(r" - at `\$(.*)`$")
_KINDS = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false",
          "array": "a list", "object": "an object", "null": "null", "bytes": "bytes"}
_REASONS = (
    # msgspec shows the pattern as Python's repr does (backslashes doubled)
    (re.compile("Expected `str` matching regex " + re.escape(repr(NAME_PATTERN)[:-4])),
     lambda m: f"must be a name of {NAME_RULE}"),
    (re.compile(r"Expected `array` of length <= (\d+)"), lambda m: f"holds at most {m[1]} items"),
    (re.compile(r"Expected `str` of length <= (\d+)"),
     lambda m: f"must have at most {m[1]} characters"),
    (re.compile(r"Expected `str` of length >= (\d+)"),
     lambda m: f"must have at least {m[1]} characters"),
    (re.compile(r"Expected `(\w+)` >= (\S+)"), lambda m: f"must be {_kind(m[1])} >= {m[2]}"),
    (re.compile(r"Expected `(\w+)` <= (\S+)"), lambda m: f"must be {_kind(m[1])} <= {m[2]}"),
    (re.compile(r"Expected `(\w+)` > (\S+)"), lambda m: f"must be {_kind(m[1])} > {m[2]}"),
    (re.compile(r"Expected `(.+?)`, got `(\w+)`"),
     lambda m: f"must be {' or '.join(_kind(k) for k in m[1].split(' | '))}, got "
               f"{_kind(m[2])}"),
    (re.compile(r"Invalid enum value (.+)"), lambda m: f"cannot be {m[1]}"),
)


def _kind(name: str) -> str:
    return _KINDS.get(name, f"`{name}`")


def explain(exc: msgspec.ValidationError, where: str = "") -> str:
    """msgspec's "Expected `int` >= 1 - at `$.config.maxSize`" as "config.maxSize must be an
    integer >= 1" (with `where`, a prefix such as "config.", in front of the path)."""
    text = str(exc)
    path = ""
    at = _AT.search(text)
    if at:
        path, text = at.group(1), text[:at.start()]
    field = (where + path.lstrip(".")).replace(".[", "[").rstrip(".")
    prefix = field + "." if field else ""
    if match := re.match(r"Object missing required field `(\w+)`", text):
        return f"{prefix}{match[1]} is required"
    if match := re.match(r"Object contains unknown field `(.+)`", text):
        return f"unknown key {prefix}{match[1]}"
    if re.match(r"\w+ (must|is) ", text):  # from a __post_init__: names its own field
        return prefix + text
    for pattern, reason in _REASONS:
        if match := pattern.match(text):
            return f"{field or 'the value'} {reason(match)}"
    if text.startswith("must "):  # from dec_hook
        return f"{field or 'the value'} {text}"
    return f"{field}: {text}" if field else text


def fields_of(mapping: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """The entries of `mapping` named by `names`, matched case-insensitively."""
    wanted = {name.lower(): name for name in names}
    return {wanted[k.lower()]: v for k, v in mapping.items() if k.lower() in wanted}


def check_message_id(value: object, where: str = "id") -> str:
    if isinstance(value, str) and value and len(value.encode()) <= MAX_MESSAGE_ID_BYTES:
        return value
    raise InvalidParameter(f"{where} must be a non-empty string of at most "
                           f"{MAX_MESSAGE_ID_BYTES} bytes")
