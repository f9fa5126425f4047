"""gortms/protocol.py: request and reply frames, stored-message records, fetch replies."""

from __future__ import annotations

import orjson
import pytest

import gortms.errors as errors
from gortms.errors import GortmsError
from gortms.protocol import (PROTOCOL_VERSION, STATUS_OK, Op, ProtocolError, decode_deliveries,
                             decode_reply, decode_request, encode_deliveries, encode_error,
                             encode_message, encode_reply, encode_request, record_id,
                             record_json, record_suffix, record_to_dict, record_ts, reply_id,
                             ts_bytes, unstamped_id)


def _error_classes() -> list[type[GortmsError]]:
    return [cls for cls in errors.error_classes() if cls.__module__ == "gortms.errors"]


def _good_request() -> list[bytes]:
    return encode_request(b"r1", Op.PUBLISH, 1_700_000_000_000, {"domain": "d"})


# --- requests -------------------------------------------------------------------------------


@pytest.mark.parametrize("op", list(Op))
def test_a_request_round_trips_for_every_op(op: Op) -> None:
    body = {"domain": "orders", "queue": "incoming", "n": [1, 2.5, None, True], "s": "é\"\\"}
    frames = encode_request(b"rid-1", op, 1_700_000_000_123, body)
    assert decode_request(frames) == (b"rid-1", op, 1_700_000_000_123, body, [])


def test_a_request_carries_its_blobs_untouched() -> None:
    blobs = [b"\x00\x01raw", b"", b"{not json", bytes(range(256))]
    frames = encode_request(b"r", Op.PUBLISH, 5, {}, blobs)
    assert decode_request(frames)[4] == blobs


def test_request_frames_start_with_a_header_naming_the_version_id_op_and_deadline() -> None:
    frames = _good_request()
    assert frames[0].split(b" ")[0] == PROTOCOL_VERSION
    assert frames[0].split(b" ")[2] == b"publish"
    assert len(frames) == 2


def test_decode_request_accepts_memoryviews() -> None:
    frames = [memoryview(f) for f in _good_request()]
    assert decode_request(frames)[:2] == (b"r1", Op.PUBLISH)


def test_an_unknown_op_is_a_protocol_error() -> None:
    frames = _good_request()
    frames[0] = frames[0].replace(b"publish", b"explode")
    with pytest.raises(ProtocolError, match="explode"):
        decode_request(frames)


@pytest.mark.parametrize("version", [b"G0", b"G2", b"", b"HTTP/1.1"])
def test_a_wrong_version_is_a_protocol_error(version: bytes) -> None:
    frames = _good_request()
    frames[0] = frames[0].replace(PROTOCOL_VERSION, version, 1)
    with pytest.raises(ProtocolError):
        decode_request(frames)


def test_missing_frames_are_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        decode_request(_good_request()[:1])


@pytest.mark.parametrize("body", [b"[1, 2]", b"\"text\"", b"5", b"null", b"{bad json", b""])
def test_a_body_that_is_not_an_object_is_a_protocol_error(body: bytes) -> None:
    frames = _good_request()
    frames[1] = body
    with pytest.raises(ProtocolError):
        decode_request(frames)


@pytest.mark.parametrize("deadline", [b"soon", b"", b"1.5"])
def test_a_malformed_deadline_is_a_protocol_error(deadline: bytes) -> None:
    frames = _good_request()
    head = frames[0].split(b" ")
    frames[0] = b" ".join(head[:3] + [deadline])
    with pytest.raises(ProtocolError):
        decode_request(frames)


def test_protocol_error_is_a_value_error() -> None:
    assert issubclass(ProtocolError, ValueError)


# --- replies --------------------------------------------------------------------------------


def test_a_reply_round_trips_with_blobs() -> None:
    frames = encode_reply(b"r9", {"acked": 3, "unknown": ["x"]}, [b"b1", b"b2"])
    assert frames[0].split(b" ")[2] == STATUS_OK
    assert reply_id(frames) == b"r9"
    assert decode_reply(frames) == ({"acked": 3, "unknown": ["x"]}, [b"b1", b"b2"])


def test_a_reply_body_given_as_bytes_is_sent_as_is() -> None:
    frames = encode_reply(b"r", b'{"pre":"encoded"}')
    assert frames[1] == b'{"pre":"encoded"}'
    assert decode_reply(frames) == ({"pre": "encoded"}, [])


@pytest.mark.parametrize("frames", [[], [PROTOCOL_VERSION + b" r"], [b"G0 r ok", b"{}"],
                                    [b"G1 r", b"{}"]])
def test_reply_id_of_a_foreign_message_is_none(frames: list[bytes]) -> None:
    assert reply_id(frames) is None


@pytest.mark.parametrize("cls", [c for c in _error_classes() if c is not errors.ConfigError],
                         ids=lambda c: c.__name__)
def test_an_error_reply_raises_the_same_error_class_with_its_message(
        cls: type[GortmsError]) -> None:
    frames = encode_error(b"r7", cls("queue 'q' is gone, create it first"))
    assert reply_id(frames) == b"r7"
    with pytest.raises(cls) as info:
        decode_reply(frames)
    assert type(info.value) is cls
    assert info.value.message == "queue 'q' is gone, create it first"


def test_a_config_error_reply_keeps_its_problems_as_text() -> None:
    frames = encode_error(b"r", errors.ConfigError(["a: bad", "b: worse"]))
    with pytest.raises(errors.ConfigError) as info:
        decode_reply(frames)
    assert info.value.message == "a: bad; b: worse"


def test_an_error_reply_with_an_unknown_code_is_an_internal_error() -> None:
    frames = [PROTOCOL_VERSION + b" r from_the_future", b'{"message":"new"}']
    with pytest.raises(GortmsError) as info:
        decode_reply(frames)
    assert type(info.value) is GortmsError and info.value.message == "new"


# --- stored records -------------------------------------------------------------------------

TS_MS = 1_751_193_000_123
HEADERS = b'{"x-trace":"abc"}'
# Spacing, float spelling and escapes that a re-encoding would change: they must survive.
PAYLOAD = b'{"amount": 12.50, "note":"caf\\u00e9", "big": 12345678901234567890}'


def _record(message_id: str = "m-1", headers: bytes = HEADERS, payload: bytes = PAYLOAD) -> bytes:
    return ts_bytes(TS_MS) + encode_message(message_id, headers, payload)


@pytest.mark.parametrize("message_id", ["m-1", "é-ü-✓", 'quote"and\\slash', "x" * 256, "0"])
def test_a_record_gives_back_its_id_and_timestamp(message_id: str) -> None:
    record = _record(message_id)
    assert record_id(record) == message_id
    assert record_ts(record) == TS_MS
    assert unstamped_id(encode_message(message_id, b"{}", b"{}")) == message_id


def test_record_json_splices_leading_members_and_keeps_the_payload_bytes() -> None:
    record = _record()
    data = record_json(record, b'"position":3,')
    assert data.startswith(b'{"position":3,')
    assert PAYLOAD in data
    parsed = orjson.loads(data.replace(b"12345678901234567890", b"1"))
    assert parsed == {"position": 3, "id": "m-1", "headers": {"x-trace": "abc"},
                      "payload": {"amount": 12.5, "note": "café", "big": 1}}


def test_record_json_with_several_leading_members_is_valid_json() -> None:
    record = _record("é\"id", b"{}", b'{"a":[1,{"b":null}]}')
    data = record_json(record, b'"position":3,"deliveryCount":2,"timestamp":"t",')
    assert orjson.loads(data) == {"position": 3, "deliveryCount": 2, "timestamp": "t",
                                  "id": "é\"id", "headers": {}, "payload": {"a": [1, {"b": None}]}}


def test_record_to_dict_decodes_everything() -> None:
    record = _record("m-2", b'{"h":"v"}', b'{"k":[1,2]}')
    assert record_to_dict(record) == {"id": "m-2", "headers": {"h": "v"}, "payload": {"k": [1, 2]},
                                      "timestamp": TS_MS}


def test_the_record_suffix_is_the_tail_of_the_delivered_object() -> None:
    assert record_suffix(_record("m", b"{}", b"{}")) == b'"id":"m","headers":{},"payload":{}}'


def test_timestamps_are_big_endian_so_records_sort_by_time() -> None:
    assert ts_bytes(1) < ts_bytes(256) < ts_bytes(TS_MS)
    assert len(ts_bytes(TS_MS)) == 8


# --- deliveries -----------------------------------------------------------------------------


def test_deliveries_round_trip() -> None:
    deliveries = [(1, 1, _record("a")), (7, 3, _record("b")), (8, 1, b"")]
    body, blobs = encode_deliveries(deliveries)
    assert decode_deliveries(orjson.loads(body), blobs) == deliveries


def test_no_deliveries_round_trip() -> None:
    body, blobs = encode_deliveries([])
    assert decode_deliveries(orjson.loads(body), blobs) == []


def test_deliveries_travel_as_a_reply() -> None:
    deliveries = [(4, 2, _record("a"))]
    frames = encode_reply(b"r", *encode_deliveries(deliveries))
    assert decode_deliveries(*decode_reply(frames)) == deliveries


@pytest.mark.parametrize(("body", "blobs"), [
    ({"positions": [1, 2], "counts": [1, 1]}, [b"x"]),
    ({"positions": [1], "counts": []}, [b"x"]),
    ({}, [b"x"]),
])
def test_disagreeing_deliveries_are_a_protocol_error(body: dict, blobs: list[bytes]) -> None:
    with pytest.raises(ProtocolError):
        decode_deliveries(body, blobs)


def test_blobs_travel_packed_in_two_frames_whatever_their_number() -> None:
    from gortms.protocol import pack_blobs, unpack_blobs
    blobs = [b"", b"a", b"xyz" * 1000, bytes(range(256))]
    frames = pack_blobs(blobs)
    assert len(frames) == 2
    assert unpack_blobs(frames) == blobs
    assert pack_blobs([]) == [] and unpack_blobs([]) == []
    request = encode_request(b"7", Op.PUBLISH, 1, {}, blobs)
    assert len(request) == 4
    assert decode_request(request)[4] == blobs


@pytest.mark.parametrize("frames", [[b"\x00\x00\x00\x05", b"abc"], [b"\x00\x00", b""],
                                    [b"\x00\x00\x00\x01"], [b"", b"", b""]])
def test_blob_frames_that_do_not_add_up_are_a_protocol_error(frames) -> None:
    from gortms.protocol import unpack_blobs
    with pytest.raises(ProtocolError):
        unpack_blobs(frames)
