"""gortms/protocol: every operation as a type, frames that carry many requests, stored records,
deliveries as JSON."""

from __future__ import annotations

import typing

import msgspec
import orjson
import pytest

import gortms.errors as errors
import gortms.protocol as p
from gortms.checks import Duration
from gortms.errors import GortmsError
from gortms.models import GroupSpec, QueueConfig
from gortms.protocol import (VERSION, ProtocolError, decode_event, decode_replies, decode_request,
                             decode_requests, deliveries_json, encode_event, encode_message,
                             encode_replies, encode_requests, failed, ok, record_id,
                             record_suffix, record_to_dict, record_ts, reply_value, ts_bytes,
                             unstamped_id)

Q = {"domain": "shop", "queue": "orders", "epoch": 3}
G = {**Q, "group": "workers"}

# One of each operation, every field given a value that differs from its default.
SAMPLES: dict[type[p.Request], p.Request] = {s.__class__: s for s in [
    p.Ping(), p.ShardInfoGet(),
    p.DomainCreate(name="shop", schema={"fields": {"a": "number"}}),
    p.DomainGet(name="shop"), p.DomainList(), p.DomainDelete(name="shop"),
    p.DomainDrop(domain="shop", epoch=3), p.DomainStatsGet(epochs={"shop": 3}),
    p.GroupListAll(epochs={"shop": 3, "other": 1}), p.QueueList(domain="shop", epoch=3),
    p.QueueCreate(**Q, config=QueueConfig(max_size=7, ack_timeout=Duration(1.5))),
    p.QueueGet(**Q), p.QueueDelete(**Q),
    p.Publish(**Q, records=[b"\x00\x01raw", b"", bytes(range(256))], key="k-1"),
    p.GroupCreate(**Q, spec=GroupSpec(group_id="g", ttl=Duration(60), start=5)),
    p.GroupList(**Q), p.GroupGet(**G), p.GroupDelete(**G),
    p.GroupSeek(**G, position="latest"), p.GroupSeek(**G, timestamp="2025-06-29T10:30:00Z"),
    p.GroupTtl(**G, ttl=Duration(0.25)), p.ConsumerAdd(**G, consumer="c1"),
    p.ConsumerRemove(**G, consumer="c1"),
    p.Fetch(**G, consumer="c2", max=500, timeout_ms=30_000, create=True),
    p.Cancel(target=41), p.Ack(**G, ids=["a", "b"], positions=[9]),
    p.Nack(**G, ids=["a"], delay_ms=1500, reason="try later"), p.PendingGet(**G, limit=5),
    p.Extend(**G, ids=["a"], positions=[3], by_ms=60_000), p.Redrive(**Q, limit=10),
    p.Settle(**G, ack=["a"], nack=["b"], delay_ms=100, reason="x"),
    p.Watch(**Q, token=12), p.Browse(**Q, from_position=4, max=7),
    p.Release(**G, positions=[3, 5]),
    p.RecordsRead(collection="users", keys=["u1"]),
    p.RecordsWrite(writes=[p.RecordWrite("users", "u1", b"{}"), p.RecordWrite("x", "k", None)],
                   conditions=[p.RecordCondition("users", None, False)], conflict="taken"),
    p.ReplayCheck(digest=b"\x01" * 32, signed_ms=5, until_ms=9, guards=12),
    p.StatsGet(period_s=3600, granularity_s=60), p.ResourcesGet(limit=10, domain="d"),
    p.MetricsGet(), p.LogLevelSet(level="debug"),
    p.Report(sample=p.ProcessSample(role="gateway", index=1, pid=9, timestamp=5,
                                    cpu_percent=1.5, rss_bytes=10, vms_bytes=20, threads=3,
                                    open_files=7, uptime_s=1.0),
             events=[p.Event(timestamp=5, type="shard_restarted", severity="warning",
                             message="m")]),
]}


def _union_members() -> list[type]:
    return list(typing.get_args(p.AnyRequest))


def _frame(*requests: p.Request) -> bytes:
    return encode_requests([(i + 1, 1_700_000_000_000 + i, r) for i, r in enumerate(requests)])


def _error_classes() -> list[type[GortmsError]]:
    return [cls for cls in errors.error_classes() if cls.__module__ == "gortms.errors"]


# --- requests -------------------------------------------------------------------------------


def test_every_operation_has_a_sample_and_a_reply_type() -> None:
    assert set(_union_members()) == set(SAMPLES)
    for kind in SAMPLES:
        assert issubclass(kind.reply, p.Reply), kind


def test_operation_names_are_unique() -> None:
    tags = [msgspec.inspect.type_info(k).tag for k in _union_members()]
    assert len(tags) == len(set(tags))


@pytest.mark.parametrize("request_", SAMPLES.values(), ids=lambda r: type(r).__name__)
def test_a_request_round_trips_with_its_id_and_deadline(request_: p.Request) -> None:
    (rid, deadline, raw), = decode_requests(_frame(request_))
    assert (rid, deadline) == (1, 1_700_000_000_000)
    assert decode_request(raw) == request_


def test_many_requests_travel_in_one_frame_in_order() -> None:
    requests = list(SAMPLES.values())
    items = decode_requests(_frame(*requests))
    assert [rid for rid, _, _ in items] == list(range(1, len(requests) + 1))
    assert [decode_request(raw) for _, _, raw in items] == requests


def test_a_frame_starts_with_the_version() -> None:
    assert _frame(p.Ping()).startswith(VERSION)


def test_decode_requests_accepts_a_memoryview() -> None:
    assert len(decode_requests(memoryview(_frame(p.Ping(), p.Ping())))) == 2


@pytest.mark.parametrize("frame", [b"", b"G1", b"G1\x90", b"HTTP/1.1 200", VERSION + b"\xc1",
                                   VERSION + msgspec.msgpack.encode({"a": 1}),
                                   VERSION + msgspec.msgpack.encode([[1, "soon", {}]])])
def test_a_malformed_frame_is_a_protocol_error(frame: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_requests(frame)


@pytest.mark.parametrize("body", [
    {"op": "explode"},
    {"domain": "shop"},  # no op
    {"op": "publish", **Q, "records": []},  # at least one record
    {"op": "publish", **Q},  # records missing
    {"op": "queue_get", **Q, "epoch": "3"},
    {"op": "queue_get", **Q, "queue": "not a name"},
    {"op": "fetch", **G, "max": 0},
    {"op": "fetch", **G, "timeout_ms": -1},
    {"op": "cancel", "target": "x"},
    {"op": "group_ttl", **G, "ttl": "soon"},
    "text", 5, None,
], ids=repr)
def test_a_body_that_does_not_fit_its_type_is_a_protocol_error(body: object) -> None:
    raw = msgspec.msgpack.encode(body)
    with pytest.raises(ProtocolError):
        decode_request(raw)


def test_one_bad_body_fails_alone_in_its_frame() -> None:
    frame = VERSION + msgspec.msgpack.encode([
        [1, 5, msgspec.Raw(msgspec.msgpack.encode(p.Ping()))],
        [2, 5, {"op": "explode"}],
        [3, 5, msgspec.Raw(msgspec.msgpack.encode(p.QueueGet(**Q)))]])
    items = decode_requests(frame)
    assert decode_request(items[0][2]) == p.Ping()
    with pytest.raises(ProtocolError):
        decode_request(items[1][2])
    assert decode_request(items[2][2]) == p.QueueGet(**Q)


def test_protocol_error_is_a_value_error() -> None:
    assert issubclass(ProtocolError, ValueError)


# --- replies --------------------------------------------------------------------------------

GROUP = p.GroupInfo(group_id="g", domain="shop", queue="orders", position=4, lag=1, pending=2,
                    ack_floor=3, consumers=[p.Consumer(id="c", last_seen="t")],
                    ttl=Duration(90), ack_mode="auto", start="latest", created_at="t",
                    last_activity="t", waiting=0, circuit="disabled")
REPLIES = [
    p.Pong(shard=1, pid=2),
    p.Published(first_position=5, count=2, message_ids=["a", "b"], duplicate=True),
    p.QueueInfo(name="q", domain="d", config=QueueConfig(ttl=Duration(0)), message_count=1,
                bytes=10, first_position=1, last_position=1, groups=0, created_at="t"),
    p.GroupCreated(created=True, group=GROUP),
    p.Deliveries(positions=[1, 9], counts=[1, 3], records=[b"r1", b""]),
    p.Acked(acked=2, unknown=["x", 7]),
    p.DomainStats(domains={"d": p.DomainCounts(queue_count=1, message_count=2, bytes=3)}),
]


@pytest.mark.parametrize("reply", REPLIES, ids=lambda r: type(r).__name__)
def test_a_reply_round_trips_as_its_type(reply: p.Reply) -> None:
    (rid, status, body), = decode_replies(encode_replies([ok(9, reply)]))
    assert rid == 9 and status == "ok"
    assert reply_value(status, body, type(reply)) == reply


def test_replies_to_many_requests_travel_in_one_frame() -> None:
    frame = encode_replies([ok(1, p.Pong(shard=0, pid=1)), failed(2, errors.QueueNotFound("x")),
                            ok(3, p.Deleted(deleted="q"))])
    assert [rid for rid, _, _ in decode_replies(frame)] == [1, 2, 3]


def test_a_pre_encoded_reply_body_is_sent_as_it_is() -> None:
    raw = msgspec.Raw(p.encode_body(p.Pong(shard=3, pid=4)))
    (_, status, body), = decode_replies(encode_replies([ok(1, raw)]))
    assert reply_value(status, body, p.Pong) == p.Pong(shard=3, pid=4)


def test_a_reply_of_the_wrong_shape_is_a_protocol_error() -> None:
    (_, status, body), = decode_replies(encode_replies([ok(1, p.Pong(shard=1, pid=2))]))
    with pytest.raises(ProtocolError):
        reply_value(status, body, p.QueueInfo)


@pytest.mark.parametrize("cls", [c for c in _error_classes() if c is not errors.ConfigError],
                         ids=lambda c: c.__name__)
def test_an_error_reply_raises_the_same_error_class_with_its_message(
        cls: type[GortmsError]) -> None:
    (rid, status, body), = decode_replies(encode_replies([failed(7, cls("queue 'q' is gone"))]))
    assert rid == 7 and status == cls.code
    with pytest.raises(cls) as info:
        reply_value(status, body, p.Pong)
    assert type(info.value) is cls
    assert info.value.message == "queue 'q' is gone"


def test_an_error_reply_with_an_unknown_code_is_an_internal_error() -> None:
    frame = VERSION + msgspec.msgpack.encode(
        [[1, "from_the_future", {"error": "from_the_future", "message": "new"}]])
    (_, status, body), = decode_replies(frame)
    with pytest.raises(GortmsError) as info:
        reply_value(status, body, p.Pong)
    assert type(info.value) is GortmsError and info.value.message == "new"


def test_reply_bodies_use_the_apis_camel_case_names() -> None:
    data = orjson.loads(msgspec.json.encode(GROUP, enc_hook=p.wire.enc_hook))
    assert data["groupId"] == "g" and data["ackFloor"] == 3 and data["ttl"] == "1m30s"
    assert data["consumers"] == [{"id": "c", "lastSeen": "t"}]


# --- events ---------------------------------------------------------------------------------


def test_a_catalog_event_round_trips() -> None:
    event = p.CatalogEvent(kind="queue", domain="d", queue="q")
    topic, body = encode_event(event)
    assert topic == p.TOPIC_CATALOG
    assert decode_event(body) == event


def test_a_malformed_event_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        decode_event(VERSION + b"\x01")


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


def test_record_to_dict_decodes_everything() -> None:
    record = _record("m-2", b'{"h":"v"}', b'{"k":[1,2]}')
    assert record_to_dict(record) == {"id": "m-2", "headers": {"h": "v"}, "payload": {"k": [1, 2]},
                                      "timestamp": TS_MS}


def test_the_record_suffix_is_the_tail_of_the_delivered_object() -> None:
    assert record_suffix(_record("m", b"{}", b"{}")) == b'"id":"m","headers":{},"payload":{}}'


def test_timestamps_are_big_endian_so_records_sort_by_time() -> None:
    assert ts_bytes(1) < ts_bytes(256) < ts_bytes(TS_MS)
    assert len(ts_bytes(TS_MS)) == 8


# --- deliveries as JSON ---------------------------------------------------------------------


def test_deliveries_json_splices_each_record_and_keeps_the_payload_bytes() -> None:
    deliveries = p.Deliveries(positions=[3, 9], counts=[1, 2],
                              records=[_record(), ts_bytes(TS_MS + 1) + encode_message(
                                  'é"id', b"{}", b'{"a":[1,{"b":null}]}')])
    data = deliveries_json(deliveries)
    assert PAYLOAD in data
    parsed = orjson.loads(data.replace(b"12345678901234567890", b"1"))
    assert parsed == {"count": 2, "messages": [
        {"position": 3, "deliveryCount": 1, "timestamp": "2025-06-29T10:30:00.123Z",
         "id": "m-1", "headers": {"x-trace": "abc"},
         "payload": {"amount": 12.5, "note": "café", "big": 1}},
        {"position": 9, "deliveryCount": 2, "timestamp": "2025-06-29T10:30:00.124Z",
         "id": 'é"id', "headers": {}, "payload": {"a": [1, {"b": None}]}}]}


def test_no_deliveries_is_an_empty_list() -> None:
    assert orjson.loads(deliveries_json(p.Deliveries())) == {"messages": [], "count": 0}


# --- live events -------------------------------------------------------------------------------


def test_live_topics_are_exact_per_queue_and_round_trip() -> None:
    topic = p.live_topic("shop", "orders")
    assert p.parse_live_topic(topic) == ("shop", "orders")
    # ZeroMQ matches by prefix: the NUL keeps one queue's topic from matching another's.
    assert not p.live_topic("shop", "orders2").startswith(topic)
    assert p.parse_live_topic(p.TOPIC_CATALOG) is None
    messages = p.LiveMessages(domain="shop", queue="orders", first=9, ts_ms=5,
                              records=[b"\x00\x01a"])
    hello = p.LiveHello(domain="shop", queue="orders", token=3, next_position=10)
    for event in (messages, hello):
        frame_topic, body = p.encode_live(event)
        assert frame_topic == topic and p.decode_live(body) == event
    with pytest.raises(p.ProtocolError):
        p.decode_live(b"G2\x00")
