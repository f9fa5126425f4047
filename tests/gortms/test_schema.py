"""gortms/schema.py: the Go `{"fields": ...}` form and JSON Schema documents."""

from __future__ import annotations

from typing import Any

import pytest

from gortms.errors import InvalidParameter, SchemaViolation
from gortms.schema import GO_TYPES, check_schema, compile_schema

GO_SCHEMA = {"fields": {"order_id": "string", "amount": "number", "paid": "boolean",
                        "customer": "object", "items": "array"}}
GOOD_ORDER = {"order_id": "o-1", "amount": 12.5, "paid": False, "customer": {"id": 7},
              "items": [1, 2], "extra": "kept"}

# A value of each type.
SAMPLES: dict[str, Any] = {"string": "x", "number": 3, "boolean": True, "object": {"a": 1},
                           "array": [1]}


def _violation(schema: dict, payload: dict) -> str:
    validate = compile_schema(schema)
    with pytest.raises(SchemaViolation) as info:
        validate(payload)
    return info.value.message


# --- the Go form ------------------------------------------------------------------------------


def test_the_go_form_has_the_five_types() -> None:
    assert set(GO_TYPES) == {"string", "number", "boolean", "object", "array"}


def test_a_payload_with_every_field_of_the_right_type_passes() -> None:
    compile_schema(GO_SCHEMA)(GOOD_ORDER)
    compile_schema(GO_SCHEMA)({**GOOD_ORDER, "amount": 12})


@pytest.mark.parametrize("field", sorted(GO_SCHEMA["fields"]))
def test_a_missing_field_is_a_violation_naming_it(field: str) -> None:
    payload = {k: v for k, v in GOOD_ORDER.items() if k != field}
    assert field in _violation(GO_SCHEMA, payload)


WRONG_TYPES = [(t, s) for t in GO_TYPES for s in [*SAMPLES, "null"] if s != t]


@pytest.mark.parametrize(("type_name", "sample"), WRONG_TYPES)
def test_a_field_of_the_wrong_type_is_a_violation_naming_it(type_name: str, sample: str) -> None:
    value = None if sample == "null" else SAMPLES[sample]
    message = _violation({"fields": {"f": type_name}}, {"f": value})
    assert "'f'" in message and type_name in message


@pytest.mark.parametrize(("type_name", "value"), [("number", True), ("number", False),
                                                  ("string", 5), ("boolean", 0),
                                                  ("object", [1]), ("array", {"a": 1})])
def test_lookalike_values_are_not_of_the_type(type_name: str, value: Any) -> None:
    assert "'f'" in _violation({"fields": {"f": type_name}}, {"f": value})


@pytest.mark.parametrize("type_name", ["integer", "String", "float", "", None, 5, ["string"]])
def test_an_unknown_type_name_is_an_invalid_parameter(type_name: object) -> None:
    with pytest.raises(InvalidParameter) as info:
        check_schema({"fields": {"order_id": type_name}})
    assert "order_id" in info.value.message


def test_check_schema_returns_a_valid_schema_unchanged() -> None:
    assert check_schema(GO_SCHEMA) is GO_SCHEMA


@pytest.mark.parametrize("raw", [None, {}])
def test_no_schema_accepts_everything(raw: Any) -> None:
    assert check_schema(raw) is None
    compile_schema(raw)({"anything": [1, {"b": None}]})


@pytest.mark.parametrize("raw", ["string", 5, ["fields"], True])
def test_a_schema_that_is_not_an_object_is_refused(raw: object) -> None:
    with pytest.raises(InvalidParameter):
        check_schema(raw)


# --- JSON Schema ------------------------------------------------------------------------------

JSON_SCHEMA = {
    "type": "object",
    "required": ["order_id", "customer"],
    "properties": {
        "order_id": {"type": "string", "minLength": 1},
        "amount": {"type": "number", "minimum": 0},
        "customer": {"type": "object", "required": ["id"],
                     "properties": {"id": {"type": "integer"},
                                    "tags": {"type": "array", "items": {"type": "string"}}}},
    },
}


def test_a_json_schema_document_is_accepted() -> None:
    assert check_schema(JSON_SCHEMA) is JSON_SCHEMA


def test_a_payload_matching_the_json_schema_passes() -> None:
    compile_schema(JSON_SCHEMA)({"order_id": "o-1", "amount": 3, "customer": {"id": 1}})


@pytest.mark.parametrize(("payload", "path"), [
    ({"order_id": 5, "customer": {"id": 1}}, "order_id"),
    ({"order_id": "o", "amount": -1, "customer": {"id": 1}}, "amount"),
    ({"order_id": "o", "customer": {"id": "one"}}, "customer.id"),
    ({"order_id": "o", "customer": {"id": 1, "tags": ["a", 2]}}, "customer.tags.1"),
])
def test_a_json_schema_violation_names_the_field_path(payload: dict, path: str) -> None:
    assert f"field '{path}'" in _violation(JSON_SCHEMA, payload)


def test_a_missing_required_property_is_named() -> None:
    assert "customer" in _violation(JSON_SCHEMA, {"order_id": "o"})


def test_a_nested_missing_required_property_is_named() -> None:
    message = _violation(JSON_SCHEMA, {"order_id": "o", "customer": {}})
    assert "customer" in message and "'id'" in message


@pytest.mark.parametrize("raw", [{"type": "nonsense"}, {"type": 5},
                                 {"type": "object", "properties": {"a": {"type": "strin"}}},
                                 {"type": "object", "required": "order_id"},
                                 {"type": "object", "minProperties": -1}])
def test_an_invalid_json_schema_is_refused_at_check_schema(raw: dict) -> None:
    with pytest.raises(InvalidParameter) as info:
        check_schema(raw)
    assert "JSON Schema" in info.value.message


def test_a_draft_7_schema_is_honoured() -> None:
    schema = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
              "properties": {"n": {"type": "integer", "exclusiveMinimum": 0}}}
    check_schema(schema)
    assert "field 'n'" in _violation(schema, {"n": 0})
