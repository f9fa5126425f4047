"""The client's I/O-free parts: signatures, the retry rule, error mapping, the socket
protocol's buffer and credits, request building."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from gortms.client import BrokerUnreachable, Message, RetryPolicy, SocketClosed
from gortms.client.auth import ServiceSigner, authorizer
from gortms.client.calls import duration_text, targets_body
from gortms.client.errors import error_from_close, error_from_response, parse_retry_after
from gortms.client.frames import SocketProtocol
from gortms.client.retry import Retrying, retriable
from gortms.errors import (GortmsError, InvalidJson, NotFound, PayloadTooLarge, QueueFull,
                           QueueNotFound, SchemaViolation, ShardUnavailable, StorageError)

STAMP = "2026-12-01T10:00:00.000Z"


def message_frame(position: int, **more) -> bytes:
    return orjson.dumps({"type": "message", "position": position, "timestamp": STAMP,
                         "id": f"m{position}", "headers": {}, "payload": {"n": position},
                         **more})


# --- signatures ---------------------------------------------------------------------------------


def test_a_signature_is_the_hmac_the_gateway_computes_over_method_path_body_and_time():
    signer = ServiceSigner("svc-1", "s3cret")
    headers = signer("POST", "/api/domains/d/queues/q/messages", b'{"n":1}')
    stamp = headers["X-Timestamp"]
    expected = hmac.new(b"s3cret", b"POST\n/api/domains/d/queues/q/messages\n" + b'{"n":1}' +
                        b"\n" + stamp.encode(), hashlib.sha256).hexdigest()
    assert headers == {"X-Service-ID": "svc-1", "X-Timestamp": stamp,
                       "X-Signature": f"sha256={expected}"}
    assert datetime.fromisoformat(stamp).tzinfo is not None


def test_a_signers_timestamps_strictly_increase_so_identical_requests_differ():
    signer = ServiceSigner("svc-1", "s3cret")
    signed = [signer("GET", "/api/health", b"") for _ in range(1000)]
    stamps = [datetime.fromisoformat(h["X-Timestamp"]) for h in signed]
    assert all(a < b for a, b in zip(stamps, stamps[1:]))
    assert len({h["X-Signature"] for h in signed}) == 1000


def test_one_credential_at_most():
    assert authorizer(None, None, None) is None
    assert authorizer("t", None, None)("GET", "/", b"") == {"Authorization": "Bearer t"}
    with pytest.raises(ValueError):
        authorizer("t", "svc", "secret")
    with pytest.raises(ValueError):
        authorizer(None, "svc", None)


# --- the retry rule -----------------------------------------------------------------------------


def answered(status: int, code: str, retry_after: str | None = None) -> GortmsError:
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    return error_from_response(status, headers, orjson.dumps({"error": code, "message": "m"}))


@pytest.mark.parametrize("error, for_any, for_idempotent", [
    (answered(429, "queue_full"), True, True),
    (answered(503, "storage_error"), True, True),
    (answered(503, "shard_unavailable"), False, True),
    (BrokerUnreachable("refused", sent=False), True, True),
    (BrokerUnreachable("reset", sent=True), False, True),
    (SocketClosed("bye", 1001), False, False),
    (answered(507, "insufficient_storage"), False, False),
    (answered(404, "queue_not_found"), False, False),
    (answered(500, "internal"), False, False),
], ids=["429", "503 storage", "503 shard", "refused", "reset", "socket closed", "507", "404",
        "500"])
def test_what_is_retried_for_any_request_and_for_one_safe_to_repeat(error, for_any,
                                                                    for_idempotent):
    assert retriable(error, idempotent=False) is for_any
    assert retriable(error, idempotent=True) is for_idempotent


def test_waits_follow_retry_after_else_a_capped_doubling_backoff_within_the_total_time():
    now = [0.0]
    retrying = Retrying(RetryPolicy(attempts=10, total_s=10, backoff_s=0.1, max_backoff_s=0.4),
                        idempotent=True, clock=lambda: now[0])
    assert retrying.wait_after(answered(503, "shard_unavailable", "2")) == 2.0
    waits = [retrying.wait_after(BrokerUnreachable("reset")) for _ in range(4)]
    assert 0.1 <= waits[0] <= 0.2 and all(0.2 <= w <= 0.4 for w in waits[2:])
    now[0] = 9.5
    with pytest.raises(ShardUnavailable):  # 9.5 s gone, told to wait 1 s more: past 10 s
        retrying.wait_after(answered(503, "shard_unavailable", "1"))


def test_the_last_attempt_raises_the_failure_itself():
    retrying = Retrying(RetryPolicy(attempts=2), idempotent=True)
    first = answered(429, "queue_full", "0")
    assert retrying.wait_after(first) == 0.0
    second = answered(429, "queue_full", "0")
    with pytest.raises(QueueFull) as raised:
        retrying.wait_after(second)
    assert raised.value is second


def test_retry_after_reads_seconds_and_http_dates():
    assert parse_retry_after("3") == 3.0 and parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: now


# --- error mapping ------------------------------------------------------------------------------


def test_an_answer_is_its_codes_class_with_status_and_retry_after():
    error = answered(404, "queue_not_found", "7")
    assert type(error) is QueueNotFound
    assert (error.code, error.message, error.status, error.retry_after_s) == \
        ("queue_not_found", "m", 404, 7.0)
    assert type(answered(422, "schema_violation")) is SchemaViolation
    assert type(answered(503, "storage_error")) is StorageError
    unknown = answered(503, "brand_new")
    assert type(unknown) is ShardUnavailable and unknown.code == "brand_new"


def test_close_codes_map_to_the_status_they_carry():
    assert type(error_from_close(4404, "no such queue")) is NotFound
    assert type(error_from_close(4410, "queue deleted")) is NotFound
    assert type(error_from_close(4503, "down")) is ShardUnavailable
    assert type(error_from_close(1009, "")) is PayloadTooLarge
    closed = error_from_close(1001, "the broker is shutting down")
    assert isinstance(closed, SocketClosed) and closed.close_code == 1001
    assert "shutting down" in closed.message


# --- the socket protocol ------------------------------------------------------------------------


def test_an_observer_past_its_buffer_drops_the_newest_and_counts_them_with_lagged():
    protocol = SocketProtocol(buffer=2)
    for position in (1, 2, 3):
        protocol.feed(message_frame(position))
    protocol.feed(b'{"type":"lagged","dropped":5}')
    assert [m.position for m in protocol.received] == [1, 2]
    assert protocol.dropped == 6


def test_a_socket_without_a_buffer_skips_observed_messages_unread():
    protocol = SocketProtocol(buffer=0)
    protocol.feed(b'{"type":"message", not even json')
    protocol.feed(b'{"type":"messages","count":1,"messages":[]}')
    assert not protocol.received and protocol.dropped == 0


def test_a_consumer_is_granted_its_window_again_once_half_of_it_is_taken():
    protocol = SocketProtocol()
    protocol.consume("g", None, credits=4, batch=False, refill=True)
    protocol.feed(b'{"type":"consuming","group":"g","consumer":"c","credits":4}')
    for position in range(1, 5):
        protocol.feed(message_frame(position, ackId=position, deliveryCount=1))
    assert (protocol.unspent, len(protocol.received)) == (0, 4)
    protocol.take()
    assert protocol.credit_due() == 0  # one of four taken: not yet half
    protocol.take()
    assert protocol.credit_due() == 2
    assert protocol.credit(2) == b'{"type":"credit","count":2}'
    assert protocol.credit_due() == 0 and not protocol.unawaited
    with pytest.raises(ValueError):
        SocketProtocol(buffer=10).consume("g", None, credits=11, batch=False, refill=True)


def test_observed_messages_before_consuming_are_not_deliveries():
    protocol = SocketProtocol()
    protocol.feed(message_frame(1))
    protocol.feed(b'{"type":"consuming","group":"g","consumer":"c","credits":1}')
    assert not protocol.received


def test_answers_are_matched_by_request_id_and_errors_raise_for_their_request():
    protocol = SocketProtocol()
    waited, _ = protocol.request({"type": "publish", "payload": {}})
    unwaited, _ = protocol.request({"type": "ack", "ids": [1]}, wait=False)
    protocol.feed(orjson.dumps({"type": "error", "error": "invalid_json", "message": "no",
                                "requestId": waited}))
    protocol.feed(orjson.dumps({"type": "error", "error": "group_not_found", "message": "x",
                                "requestId": unwaited}))
    protocol.feed(b'{"type":"something_new","requestId":99}')
    with pytest.raises(InvalidJson):
        protocol.answer(waited)
    assert (protocol.failures, protocol.last_error.code) == (1, "group_not_found")
    assert not protocol.answers


def test_a_publish_frame_says_what_the_rest_headers_say():
    frame = SocketProtocol().publish({"n": 1}, {"k": "v"}, "id-1", "key-1", 90.0, None)
    assert frame == {"type": "publish", "payload": {"n": 1}, "headers": {"k": "v"},
                     "id": "id-1", "idempotencyKey": "key-1", "delay": "1m30s"}
    raw = SocketProtocol().publish(b'{"n":2}', None, None, None, None, None)
    assert orjson.dumps(raw) == b'{"type":"publish","payload":{"n":2}}'


# --- request building ---------------------------------------------------------------------------


def test_targets_are_positions_for_messages_and_numbers_ids_for_strings():
    message = Message(position=7, id="m7", timestamp=datetime.now(timezone.utc))
    assert targets_body([message, 3, "x"]) == {"ids": ["x"], "positions": [7, 3]}
    with pytest.raises(TypeError):
        targets_body([True])


def test_durations_are_sent_go_style():
    assert (duration_text("5s"), duration_text(1.5), duration_text(timedelta(hours=2))) == \
        ("5s", "1.5s", "2h")
