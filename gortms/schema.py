"""Domain schemas: the Go form `{"fields": {"name": "type"}}` and JSON Schema documents.

`compile_schema(raw)` checks a schema once (400 when it is malformed) and returns a validator
that raises `SchemaViolation` (422) naming the offending field.
"""

from __future__ import annotations

from typing import Any, Callable

import jsonschema
from jsonschema.exceptions import SchemaError

from gortms.errors import InvalidParameter, SchemaViolation

Validator = Callable[[dict[str, Any]], None]

GO_TYPES = ("string", "number", "boolean", "object", "array")


def _is_type(value: object, type_name: str) -> bool:
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if type_name == "boolean":
        return isinstance(value, bool)
    if type_name == "object":
        return isinstance(value, dict)
    return isinstance(value, list)


def _no_validation(payload: dict[str, Any]) -> None:
    return None


def _fields_validator(fields: dict[str, str]) -> Validator:
    items = tuple(fields.items())

    def validate(payload: dict[str, Any]) -> None:
        for name, type_name in items:
            if name not in payload:
                raise SchemaViolation(f"field '{name}' is required by the domain schema "
                                      f"({type_name})")
            if not _is_type(payload[name], type_name):
                raise SchemaViolation(f"field '{name}' must be of type {type_name}, got "
                                      f"{_json_type(payload[name])}")

    return validate


def _json_type(value: object) -> str:
    for type_name in ("boolean", "string", "number", "object", "array"):
        if _is_type(value, type_name):
            return type_name
    return "null"


def _json_schema_validator(document: dict[str, Any]) -> Validator:
    cls = jsonschema.validators.validator_for(document, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(document)
    except SchemaError as exc:
        raise InvalidParameter(f"schema is not a valid JSON Schema: {exc.message}") from exc
    checker = cls(document)

    def validate(payload: dict[str, Any]) -> None:
        error = jsonschema.exceptions.best_match(checker.iter_errors(payload))
        if error is not None:
            path = ".".join(str(part) for part in error.absolute_path)
            where = f"field '{path}'" if path else "message"
            raise SchemaViolation(f"{where}: {error.message}")

    return validate


def check_schema(raw: object) -> dict[str, Any] | None:
    """Validate a schema as given by a client; return it unchanged (None for no schema)."""
    if raw is None or raw == {}:
        return None
    if not isinstance(raw, dict):
        raise InvalidParameter("schema must be an object: {\"fields\": {...}} or a JSON Schema")
    compile_schema(raw)
    return raw


def compile_schema(raw: dict[str, Any] | None) -> Validator:
    if not raw:
        return _no_validation
    fields = raw.get("fields", raw.get("Fields"))
    if fields is not None and not isinstance(fields, dict) and "type" not in raw:
        raise InvalidParameter("schema.fields must map field names to types, e.g. "
                               "{\"fields\": {\"amount\": \"number\"}}")
    if isinstance(fields, dict) and "type" not in raw and "properties" not in raw:
        for name, type_name in fields.items():
            if type_name not in GO_TYPES:
                raise InvalidParameter(f"schema field '{name}' has type {type_name!r}; use one of "
                                       + ", ".join(GO_TYPES))
        return _fields_validator(fields)
    return _json_schema_validator(raw)
