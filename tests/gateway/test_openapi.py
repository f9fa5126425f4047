"""The OpenAPI document in-process: its reply schemas hold for what the code really encodes,
its request schemas say what the endpoints' Structs accept, and it follows the settings."""

from __future__ import annotations

import re
from typing import Any

import msgspec
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from gortms.checks import Duration, check_name, parse_duration, to_builtins
from gortms.config import load_settings
from gortms.errors import InvalidName, InvalidParameter
from gortms.models import AckMode, QueueConfig
from gortms.protocol import (Acked, Consumer, GroupInfo, Nacked, PendingEntry, PendingList,
                             QueueInfo, Queues, Settled)
from gateway.openapi import build_document
from gateway.openapi_schemas import DURATION_REGEX, NAME_REGEX

DOCUMENT = build_document(load_settings({}))
SCHEMAS = DOCUMENT["components"]["schemas"]

QUEUE = QueueInfo(name="q", domain="d", config=QueueConfig(), message_count=3, bytes=99,
                  first_position=1, last_position=3, groups=1,
                  created_at="2026-11-29T02:11:48.391Z")
GROUP = GroupInfo(group_id="g", domain="d", queue="q", position=4, lag=0, pending=1,
                  ack_floor=3, consumers=[Consumer(id="c", last_seen="2026-11-29T02:11:48.391Z")],
                  ttl=Duration(86400.0), ack_mode=AckMode.EXPLICIT, start="earliest",
                  created_at="2026-11-29T02:11:48.391Z",
                  last_activity="2026-11-29T02:11:48.391Z", waiting=0, circuit="closed")


def validator(component: str) -> Draft202012Validator:
    """A validator for one component, its $refs resolved within the document."""
    registry = Registry().with_resource("urn:doc", DRAFT202012.create_resource(DOCUMENT))
    return Draft202012Validator({"$ref": f"urn:doc#/components/schemas/{component}"},
                                registry=registry)


@pytest.mark.parametrize("component, reply", [
    ("QueueInfo", QUEUE), ("Queues", Queues(queues=[QUEUE])), ("GroupInfo", GROUP),
    ("Acked", Acked(acked=1, unknown=["x", 7])),
    ("Nacked", Nacked(nacked=1, unknown=[], dead_lettered=1)),
    ("Settled", Settled(acked=1, nacked=0, dead_lettered=0, unknown=[])),
    ("PendingList", PendingList(group_id="g", count=1, messages=[PendingEntry(
        id="m", position=4, consumer="c", delivery_count=2, deadline=None, state="due",
        last_nack_reason=None)])),
])
def test_reply_schemas_hold_for_what_the_gateway_encodes(component: str, reply: Any):
    encoded = msgspec.json.decode(msgspec.json.encode(to_builtins(reply)))
    errors = [e.message for e in validator(component).iter_errors(encoded)]
    assert errors == []


def test_a_reply_missing_a_field_the_struct_always_sends_breaks_the_schema():
    encoded = to_builtins(QUEUE)
    del encoded["lastPosition"]
    assert not validator("QueueInfo").is_valid(encoded)


def test_request_schemas_name_every_field_of_the_struct_by_its_json_name():
    config = SCHEMAS["QueueConfigInput"]
    fields = [f.encode_name for f in msgspec.structs.fields(QueueConfig)]
    assert list(config["properties"]) == fields
    assert "required" not in config  # every key has a default
    assert config["properties"]["ackTimeout"] == {"$ref": "#/components/schemas/DurationInput"}
    assert SCHEMAS["GroupCreate"]["required"] == ["groupId"]


@pytest.mark.parametrize("text, ok", [("30s", True), ("1h30m", True), ("500ms", True),
                                      ("1.5s", True), ("0", True), ("30", False),
                                      ("s", False), ("1d", False), ("", False)])
def test_the_duration_pattern_is_the_parser_s(text: str, ok: bool):
    matches = re.fullmatch(DURATION_REGEX.strip("^$"), text) is not None
    try:
        parse_duration(text, "x")
        parsed = True
    except InvalidParameter:
        parsed = False
    assert matches is ok and parsed is ok


def test_the_name_pattern_is_the_naming_rule():
    assert NAME_REGEX == r"^(?!\.\.?$)[A-Za-z0-9._:-]{1,128}$"
    assert SCHEMAS["Name"]["pattern"] == NAME_REGEX
    for name in ["a", "...", ".a", "x" * 128, ".", "..", "a b", "x" * 129, ""]:
        try:
            accepted = check_name("queue", name) == name
        except InvalidName:
            accepted = False
        assert bool(re.search(NAME_REGEX, name)) == accepted, name


def test_the_document_follows_the_settings():
    document = build_document(load_settings({"GORTMS_GATEWAY_MAXBATCHMESSAGES": "50",
                                             "GORTMS_MONITORING_PUBLICMETRICS": "true"}))
    batch = document["components"]["schemas"]["BatchPublish"]["properties"]["messages"]
    assert batch["maxItems"] == 50
    assert document["paths"]["/metrics"]["get"]["security"] == []
    assert "security" not in DOCUMENT["paths"]["/metrics"]["get"]  # the default: guarded


def test_public_routes_say_so_and_the_others_take_either_credential():
    public = {(m.upper(), p) for p, item in DOCUMENT["paths"].items()
              for m, op in item.items() if op.get("security") == []}
    assert public == {("GET", "/health"), ("GET", "/api/health"), ("GET", "/api/openapi.json"),
                      ("GET", "/api/docs"), ("POST", "/api/auth/login"),
                      ("POST", "/api/auth/bootstrap"), ("POST", "/api/account-requests")}
    assert DOCUMENT["security"] == [{"bearer": []},
                                    {"serviceId": [], "timestamp": [], "signature": []}]
    schemes = DOCUMENT["components"]["securitySchemes"]
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                                 "description": schemes["bearer"]["description"]}
    assert {schemes[k]["name"] for k in ("serviceId", "timestamp", "signature")} == {
        "X-Service-ID", "X-Timestamp", "X-Signature"}
