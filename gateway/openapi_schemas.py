"""The OpenAPI document's schemas: JSON Schema read off the msgspec types the code decodes
requests into and encodes replies from, plus the few bodies the endpoints build by hand.

`Schemas` walks a Struct with `msgspec.inspect` (types, constraints, camelCase names,
required fields, unknown keys refused or not) and registers it as a component, so a field
added to `QueueInfo` or a bound changed in `QueueConfig` shows in the document without
anyone editing it. msgspec's own `json.schema_components` cannot be used: it encodes every
field default without the `Duration` hook and fails on the queue config's defaults.

Two readings of one Struct: a reply lists every field as required (msgspec encodes them
all), a request only those without a default, and closes the object when the Struct refuses
unknown keys. Request components take the suffix `Input` (`QueueConfigInput`).
"""

from __future__ import annotations

from typing import Any

import msgspec
import msgspec.inspect as mi

from gortms.checks import MAX_DURATION_S, MAX_MESSAGE_ID_BYTES, MAX_POSITION, NAME_PATTERN, Duration
from gortms.errors import error_classes

Schema = dict[str, Any]

REF = "#/components/schemas/"
# NAME_PATTERN ends in Python's \Z; JSON Schema patterns are ECMA-262, where $ (no multiline
# flag) means the same.
NAME_REGEX = NAME_PATTERN.replace(r"\Z", "$")
DURATION_REGEX = r"^(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h))+)$"


def ref(name: str) -> Schema:
    return {"$ref": REF + name}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def obj(properties: dict[str, Schema], required: tuple[str, ...] | list[str] = (),
        **more: Any) -> Schema:
    out: Schema = {"type": "object", "properties": properties}
    if required:
        out["required"] = list(required)
    out.update(more)
    return out


def success(**properties: Schema) -> Schema:
    """{"status": "success", ...}: the shape of most write answers."""
    return obj({"status": {"const": "success"}, **properties}, ["status", *properties])


def with_status(component: str) -> Schema:
    """A reply Struct with "status": "success" in front (gateway/groups.py `_success`)."""
    return {"allOf": [ref(component), success()]}


class Schemas:
    """The components/schemas section, filled as Structs and hand-written schemas are added."""

    def __init__(self) -> None:
        self.components: dict[str, Schema] = {}

    def add(self, name: str, schema: Schema) -> Schema:
        if name in self.components and self.components[name] != schema:
            raise ValueError(f"two different schemas named {name}")
        self.components[name] = schema
        return ref(name)

    def struct(self, cls: type[msgspec.Struct], reply: bool = True, name: str | None = None,
               overrides: dict[str, Schema] | None = None, **more: Any) -> Schema:
        """`cls` as a component (its $ref): `overrides` replaces the schema of named fields
        (by their JSON name) where a check in code says more than the type."""
        name = name or cls.__name__ + ("" if reply else "Input")
        if name in self.components:
            return ref(name)
        self.components[name] = {}  # reserved: a Struct may refer to itself
        info = mi.type_info(cls)
        assert isinstance(info, mi.StructType)
        properties = {}
        for field in info.fields:
            properties[field.encode_name] = (overrides or {}).get(field.encode_name) or \
                self.type(field.type, reply)
        required = [f.encode_name for f in info.fields if reply or f.required]
        schema = obj(properties, required)
        if not reply and info.forbid_unknown_fields:
            schema["additionalProperties"] = False
        schema.update(more)
        self.components[name] = schema
        return ref(name)

    def type(self, t: mi.Type, reply: bool) -> Schema:
        if isinstance(t, mi.StrType) and t.pattern == NAME_PATTERN:
            return ref("Name")
        if isinstance(t, mi.StructType):
            return self.struct(t.cls, reply)
        if isinstance(t, mi.CustomType) and t.cls is Duration:
            return ref("Duration" if reply else "DurationInput")
        if isinstance(t, mi.UnionType):
            options = [self.type(option, reply) for option in t.types]
            return {"anyOf": options}
        if isinstance(t, mi.ListType):
            return _sized({"type": "array", "items": self.type(t.item_type, reply)},
                          minItems=t.min_length, maxItems=t.max_length)
        if isinstance(t, mi.DictType):
            return {"type": "object", "additionalProperties": self.type(t.value_type, reply)}
        if isinstance(t, mi.EnumType):
            return {"type": "string", "enum": [member.value for member in t.cls]}
        if isinstance(t, mi.LiteralType):
            return {"enum": list(t.values)}
        return _scalar(t)


def _scalar(t: mi.Type) -> Schema:
    if isinstance(t, mi.StrType):
        return _sized({"type": "string"}, minLength=t.min_length, maxLength=t.max_length,
                      pattern=t.pattern)
    if isinstance(t, (mi.IntType, mi.FloatType)):
        return _sized({"type": "integer" if isinstance(t, mi.IntType) else "number"},
                      minimum=t.ge, maximum=t.le, exclusiveMinimum=t.gt,
                      exclusiveMaximum=t.lt)
    simple = {mi.BoolType: "boolean", mi.NoneType: "null"}
    for kind, name in simple.items():
        if isinstance(t, kind):
            return {"type": name}
    if isinstance(t, mi.AnyType):
        return {}
    raise TypeError(f"no JSON Schema for {t!r}")


def _sized(schema: Schema, **bounds: Any) -> Schema:
    schema.update({key: value for key, value in bounds.items() if value is not None})
    return schema


# --- the shared pieces ------------------------------------------------------------------------


def shared_schemas(schemas: Schemas) -> None:
    """What every other schema refers to: names, durations, times, the error shape."""
    codes = sorted({cls.code for cls in error_classes()} | {"method_not_allowed", "not_found"})
    schemas.add("Error", {
        "type": "object", "required": ["error", "message"],
        "description": "Every 4xx and 5xx answer (but the degraded health): a stable code, "
                       "and what happened and how to fix it.",
        "properties": {"error": {"type": "string", "examples": codes,
                                 "description": "stable code: " + ", ".join(codes)},
                       "message": {"type": "string"}}})
    schemas.add("Name", {"type": "string", "pattern": NAME_REGEX,
                         "description": "a domain, queue, group or consumer name: 1-128 "
                                        "characters of A-Z a-z 0-9 . _ : -, other than . "
                                        "and .."})
    schemas.add("Duration", {"type": "string", "pattern": DURATION_REGEX,
                             "description": "Go-style duration (\"500ms\", \"30s\", \"1h30m\", "
                                            "\"24h\"); \"0\" means none", "examples": ["30s"]})
    schemas.add("DurationInput", {
        "description": "Go-style duration (units ns us µs ms s m h), at most 100 years; "
                       "0 or \"0\": none. A bare number other than 0 is refused: it has no "
                       f"unit. A non-zero duration under 1ms is refused. (Max {MAX_DURATION_S:.0f} "
                       "s.)",
        "anyOf": [{"type": "string", "pattern": DURATION_REGEX}, {"const": 0}],
        "examples": ["30s", "1h30m"]})
    schemas.add("Timestamp", {"type": "string", "format": "date-time",
                              "description": "RFC 3339, UTC with milliseconds",
                              "examples": ["2026-11-29T02:11:48.419Z"]})
    schemas.add("Position", {"type": "integer", "minimum": 1, "maximum": MAX_POSITION})
    schemas.add("MessageId", {"type": "string", "minLength": 1,
                              "maxLength": MAX_MESSAGE_ID_BYTES,
                              "description": f"at most {MAX_MESSAGE_ID_BYTES} bytes (UTF-8)"})
    schemas.add("Start", {
        "description": "\"earliest\", \"latest\", a position >= 1 (integer or digit string) "
                       "or an RFC 3339 time",
        "anyOf": [{"type": "string", "enum": ["earliest", "latest"]},
                  {"type": "integer", "minimum": 1, "maximum": MAX_POSITION},
                  {"type": "string", "pattern": "^0*[1-9][0-9]{0,17}$"},
                  {"type": "string", "format": "date-time"}]})
    schemas.add("Object", {"type": "object", "description": "any JSON object"})
