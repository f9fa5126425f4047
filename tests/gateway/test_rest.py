"""The gateway in-process (Starlette's TestClient) over FakeShards: what it sends to the shards,
and how it maps their answers and failures to HTTP."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from gortms.config import load_settings
from gortms.errors import QueueNotFound, ShardUnavailable
from gortms.partition import shard_for
from gortms.protocol import (Deliveries, DomainGet, DomainRecord, Fetch, Ping, Pong, Publish,
                             Published, Request, encode_message, ts_bytes)
from gateway.app import create_app
from tests.gateway.fakes import FakeShards

DOMAIN = DomainRecord(name="shop", epoch=7, created_at=0,
                      schema={"fields": {"amount": "number"}})


def answers(replies: dict[type[Request], Any]):
    def answer(shard: int, request: Request) -> Any:
        if type(request) is DomainGet:
            return DOMAIN
        reply = replies[type(request)]
        if isinstance(reply, Exception):
            raise reply
        return reply(request) if callable(reply) else reply
    return answer


@pytest.fixture
def make_client():
    clients = []

    def make(replies: dict[type[Request], Any], **env: str) -> tuple[TestClient, FakeShards]:
        shards = FakeShards(answers(replies))
        app = create_app(load_settings(env), shards)
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client, shards

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def test_publish_sends_one_record_to_the_owner_shard_with_the_domain_epoch(make_client):
    client, shards = make_client({Publish: Published(first_position=41, count=1)})
    reply = client.post("/api/domains/shop/queues/orders/messages",
                        content=b'{"amount": 5, "id": "m-1"}',
                        headers={"X-Header-Trace": "t", "Idempotency-Key": "k"})
    assert reply.status_code == 201
    assert reply.json() == {"status": "success", "messageId": "m-1", "position": 41}
    [(shard, request)] = shards.sent(Publish)
    assert shard == shard_for("shop", "orders", 2)
    assert request == Publish(domain="shop", queue="orders", epoch=7, key="k", records=[
        encode_message("m-1", b'{"trace":"t"}', b'{"amount": 5, "id": "m-1"}')])


def test_schema_is_checked_in_the_gateway_before_any_shard_call(make_client):
    client, shards = make_client({})
    reply = client.post("/api/domains/shop/queues/orders/messages", json={"amount": "x"})
    assert reply.status_code == 422
    assert not shards.sent(Publish)


def test_shard_errors_keep_their_code_and_status(make_client):
    client, _ = make_client({Publish: QueueNotFound("queue 'orders' not found")})
    reply = client.post("/api/domains/shop/queues/orders/messages", json={"amount": 1})
    assert reply.status_code == 404
    assert reply.json() == {"error": "queue_not_found", "message": "queue 'orders' not found"}


def test_an_unavailable_shard_is_a_503_with_retry_after(make_client):
    client, _ = make_client({Publish: ShardUnavailable("shard 1 is down")})
    reply = client.post("/api/domains/shop/queues/orders/messages", json={"amount": 1})
    assert reply.status_code == 503
    assert reply.headers["Retry-After"] == "1"
    assert reply.json()["error"] == "shard_unavailable"


def test_deliveries_are_spliced_into_json_without_reencoding(make_client):
    records = [ts_bytes(1_700_000_000_123) + encode_message(f"m{i}", b"{}", b'{"i": %d}' % i)
               for i in range(2)]
    deliveries = Deliveries(positions=[5, 6], counts=[1, 3], records=records)
    client, _ = make_client({Fetch: deliveries})
    reply = client.get("/api/domains/shop/queues/q/consumer-groups/g/messages?count=2")
    assert reply.status_code == 200
    assert reply.json() == {"count": 2, "messages": [
        {"position": 5, "deliveryCount": 1, "timestamp": "2023-11-14T22:13:20.123Z",
         "id": "m0", "headers": {}, "payload": {"i": 0}},
        {"position": 6, "deliveryCount": 3, "timestamp": "2023-11-14T22:13:20.123Z",
         "id": "m1", "headers": {}, "payload": {"i": 1}}]}


def test_consume_parameters_reach_the_shard_checked(make_client):
    client, shards = make_client({Fetch: Deliveries()})
    reply = client.get("/api/domains/shop/queues/q/messages",
                       params={"group": "workers", "max": 50, "consumer": "c1"})
    assert reply.status_code == 200
    [(_, request)] = shards.sent(Fetch)
    assert request == Fetch(domain="shop", queue="q", epoch=7, group="workers", consumer="c1",
                            max=50, timeout_ms=0, create=True)
    assert client.get("/api/domains/shop/queues/q/messages?group=w&max=0").status_code == 400


def test_cors_headers_only_when_enabled(make_client):
    plain, _ = make_client({Ping: Pong(shard=0, pid=1)})
    assert "access-control-allow-origin" not in plain.get(
        "/health", headers={"Origin": "http://ui.example"}).headers
    cors, _ = make_client({Ping: Pong(shard=0, pid=1)}, GORTMS_HTTP_CORS_ENABLED="true",
                          GORTMS_HTTP_CORS_ALLOWEDORIGINS="http://ui.example")
    reply = cors.get("/health", headers={"Origin": "http://ui.example"})
    assert reply.headers["access-control-allow-origin"] == "http://ui.example"


def test_batch_records_are_built_exactly_as_encode_message_builds_them(make_client):
    client, shards = make_client({Publish: lambda r: Published(first_position=1,
                                                               count=len(r.records))})
    messages = [{"amount": 1}, {"amount": 2, "id": "given-é\"1"}, {"amount": 3, "id": ""}]
    reply = client.post("/api/domains/shop/queues/orders/messages/batch",
                        json={"messages": messages}, headers={"X-Header-Trace": "t"})
    assert reply.status_code == 201
    ids = reply.json()["messageIds"]
    assert ids[1] == "given-é\"1" and len({ids[0], ids[2]}) == 2
    [(_, request)] = shards.sent(Publish)
    assert request.records == [encode_message(i, b'{"trace":"t"}', orjson.dumps(m))
                               for i, m in zip(ids, messages)]
