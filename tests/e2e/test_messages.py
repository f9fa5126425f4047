"""Publishing and consuming over HTTP, against a real broker."""

from __future__ import annotations

import threading
import time

import httpx2

from tests.conftest import unique


def make_queue(api: httpx2.Client, schema: dict | None = None, **config) -> str:
    domain = unique("msg")
    body = {"name": domain}
    if schema is not None:
        body["schema"] = schema
    assert api.post("/api/domains", json=body).status_code == 201
    reply = api.post(f"/api/domains/{domain}/queues", json={"name": "q", "config": config})
    assert reply.status_code == 201
    return f"/api/domains/{domain}/queues/q"


def consume(api: httpx2.Client, queue: str, group: str, **params) -> list[dict]:
    reply = api.get(f"{queue}/consumer-groups/{group}/messages", params=params)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["count"] == len(body["messages"])
    return body["messages"]


def test_published_message_is_delivered_with_its_id_position_and_payload(api):
    queue = make_queue(api)
    payload = {"order_id": "ord_12345", "amount": 99.99, "nested": {"a": [1, "ü"]}}
    sent = api.post(f"{queue}/messages", json=payload)
    assert sent.status_code == 201
    assert sent.json()["status"] == "success"
    assert sent.json()["position"] == 1
    api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
    [message] = consume(api, queue, "g", count=5)
    assert message["id"] == sent.json()["messageId"]
    assert message["position"] == 1
    assert message["payload"] == payload
    assert message["deliveryCount"] == 1
    assert message["headers"] == {}
    assert message["timestamp"].endswith("Z")


def test_positions_start_at_one_and_increase(api):
    queue = make_queue(api)
    positions = [api.post(f"{queue}/messages", json={"i": i}).json()["position"]
                 for i in range(5)]
    assert positions == [1, 2, 3, 4, 5]


def test_message_id_comes_from_header_then_payload_then_is_generated(api):
    queue = make_queue(api)
    by_header = api.post(f"{queue}/messages", json={"id": "in-body"},
                         headers={"X-Message-Id": "from-header"})
    by_payload = api.post(f"{queue}/messages", json={"id": "in-body"})
    generated = api.post(f"{queue}/messages", json={"x": 1})
    assert by_header.json()["messageId"] == "from-header"
    assert by_payload.json()["messageId"] == "in-body"
    assert len(generated.json()["messageId"]) == 36


def test_x_header_headers_are_kept_on_the_message(api):
    queue = make_queue(api)
    api.post(f"{queue}/messages", json={"x": 1},
             headers={"X-Header-Trace": "abc", "X-Header-Tenant": "t1"})
    api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
    [message] = consume(api, queue, "g")
    assert message["headers"] == {"trace": "abc", "tenant": "t1"}


def test_repeated_idempotency_key_returns_the_original_and_stores_nothing(api):
    queue = make_queue(api)
    first = api.post(f"{queue}/messages", json={"x": 1}, headers={"Idempotency-Key": "k1"})
    again = api.post(f"{queue}/messages", json={"x": 2}, headers={"Idempotency-Key": "k1"})
    other = api.post(f"{queue}/messages", json={"x": 3}, headers={"Idempotency-Key": "k2"})
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["messageId"] == first.json()["messageId"]
    assert again.json()["position"] == first.json()["position"]
    assert other.json()["position"] == 2
    assert api.get(queue).json()["messageCount"] == 2


def test_batch_publish_assigns_consecutive_positions_and_ids(api):
    queue = make_queue(api)
    reply = api.post(f"{queue}/messages/batch",
                     json={"messages": [{"id": "a"}, {"n": 2}, {"n": 3}]})
    assert reply.status_code == 201
    body = reply.json()
    assert body["count"] == 3
    assert body["firstPosition"] == 1
    assert body["messageIds"][0] == "a"
    api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
    delivered = consume(api, queue, "g", count=10)
    assert [m["position"] for m in delivered] == [1, 2, 3]
    assert [m["id"] for m in delivered] == body["messageIds"]


def test_batch_body_keys_are_matched_case_insensitively(api):
    queue = make_queue(api)
    reply = api.post(f"{queue}/messages/batch", json={"Messages": [{"n": 1}]})
    assert reply.status_code == 201
    assert reply.json()["count"] == 1


def test_batch_with_one_invalid_message_stores_nothing_and_names_its_index(api):
    queue = make_queue(api, schema={"fields": {"amount": "number"}})
    reply = api.post(f"{queue}/messages/batch",
                     json={"messages": [{"amount": 1}, {"amount": "two"}, {"amount": 3}]})
    assert reply.status_code == 422
    assert "messages[1]" in reply.json()["message"]
    assert "amount" in reply.json()["message"]
    not_object = api.post(f"{queue}/messages/batch", json={"messages": [{"amount": 1}, 7]})
    assert not_object.status_code == 400
    assert "messages[1]" in not_object.json()["message"]
    assert api.get(queue).json()["messageCount"] == 0


def test_batch_repeat_with_idempotency_key_returns_the_original_ids(api):
    queue = make_queue(api)
    first = api.post(f"{queue}/messages/batch", json={"messages": [{}, {}]},
                     headers={"Idempotency-Key": "batch-1"})
    again = api.post(f"{queue}/messages/batch", json={"messages": [{}, {}]},
                     headers={"Idempotency-Key": "batch-1"})
    assert again.status_code == 200
    assert again.json()["messageIds"] == first.json()["messageIds"]
    assert api.get(queue).json()["messageCount"] == 2


def test_schema_violation_is_a_422_naming_the_field(api):
    queue = make_queue(api, schema={"fields": {"order_id": "string", "amount": "number"}})
    missing = api.post(f"{queue}/messages", json={"order_id": "o"})
    wrong = api.post(f"{queue}/messages", json={"order_id": "o", "amount": "1"})
    assert missing.status_code == wrong.status_code == 422
    assert "amount" in missing.json()["message"]
    assert "amount" in wrong.json()["message"]
    assert api.post(f"{queue}/messages", json={"order_id": "o", "amount": 1}).status_code == 201


def test_json_schema_documents_are_enforced(api):
    schema = {"type": "object", "required": ["sku"],
              "properties": {"sku": {"type": "string"}, "qty": {"type": "integer",
                                                              "minimum": 1}}}
    queue = make_queue(api, schema=schema)
    bad = api.post(f"{queue}/messages", json={"sku": "a", "qty": 0})
    assert bad.status_code == 422
    assert "qty" in bad.json()["message"]
    assert api.post(f"{queue}/messages", json={"sku": "a", "qty": 2}).status_code == 201


def test_publish_to_an_unknown_queue_is_a_404(api):
    queue = make_queue(api)
    reply = api.post(queue.replace("/queues/q", "/queues/missing") + "/messages", json={})
    assert reply.status_code == 404
    assert reply.json()["error"] == "queue_not_found"


def test_body_over_the_limit_is_a_413(api):
    queue = make_queue(api)
    reply = api.post(f"{queue}/messages", content=b'{"x":"' + b"a" * 1_100_000 + b'"}')
    assert reply.status_code == 413
    assert reply.json()["error"] == "payload_too_large"


def test_long_poll_returns_as_soon_as_a_message_is_published(api, shared_broker):
    queue = make_queue(api)
    api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
    result: dict = {}

    def poll() -> None:
        with shared_broker.client() as client:
            started = time.monotonic()
            result["messages"] = consume(client, queue, "g", count=5, timeout=20)
            result["waited"] = time.monotonic() - started

    poller = threading.Thread(target=poll)
    poller.start()
    # The poll must be parked on the shard before we publish: wait for the group to say so.
    for _ in range(500):
        if api.get(f"{queue}/consumer-groups/g").json()["waiting"] == 1:
            break
        time.sleep(0.01)
    else:
        raise AssertionError("the long poll never parked")
    api.post(f"{queue}/messages", json={"wake": True})
    poller.join(20)
    assert [m["payload"] for m in result["messages"]] == [{"wake": True}]
    assert result["waited"] < 10  # woken by the publish, well before the 20 s timeout


def test_long_poll_with_nothing_to_deliver_returns_empty_after_its_timeout(api):
    queue = make_queue(api)
    api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
    started = time.monotonic()
    assert consume(api, queue, "g", timeout=0.5) == []
    assert 0.4 < time.monotonic() - started < 5


def test_queue_form_consume_creates_the_group_and_reads_from_earliest(api):
    queue = make_queue(api)
    api.post(f"{queue}/messages", json={"before": "any group"})
    reply = api.get(f"{queue}/messages", params={"group": "late", "max": 10, "timeout": 1})
    assert reply.status_code == 200
    assert [m["payload"] for m in reply.json()["messages"]] == [{"before": "any group"}]
    assert api.get(f"{queue}/consumer-groups/late").status_code == 200
    assert api.get(f"{queue}/messages", params={"max": 1}).status_code == 400


def test_group_form_consume_of_an_unknown_group_is_a_404(api):
    queue = make_queue(api)
    reply = api.get(f"{queue}/consumer-groups/nobody/messages")
    assert reply.status_code == 404
    assert reply.json()["error"] == "group_not_found"


def test_non_persistent_queue_accepts_and_delivers(api):
    queue = make_queue(api, isPersistent=False)
    api.post(f"{queue}/messages", json={"fast": True})
    api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
    assert [m["payload"] for m in consume(api, queue, "g")] == [{"fast": True}]


def test_a_long_poll_whose_client_leaves_is_cancelled_on_the_shard(api, shared_broker):
    import socket
    from urllib.parse import urlsplit
    queue = make_queue(api)
    api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
    url = urlsplit(shared_broker.url)
    client = socket.create_connection((url.hostname, url.port), timeout=10)
    client.sendall(f"GET {queue}/consumer-groups/g/messages?timeout=60 HTTP/1.1\r\n"
                   f"Host: {url.netloc}\r\n\r\n".encode())

    def waiting() -> int:
        return api.get(f"{queue}/consumer-groups/g").json()["waiting"]

    for _ in range(500):
        if waiting() == 1:
            break
        time.sleep(0.01)
    assert waiting() == 1
    client.close()  # the client goes away long before its 60 s
    for _ in range(500):
        if waiting() == 0:
            break
        time.sleep(0.01)
    assert waiting() == 0  # the gateway told the shard: nothing is parked for nobody
    api.post(f"{queue}/messages", json={"after": "leaving"})
    assert group_pending(api, queue) == 0  # and the message was not handed to the dead poll


def group_pending(api: httpx2.Client, queue: str) -> int:
    return api.get(f"{queue}/consumer-groups/g").json()["pending"]
