"""The gateway in-process (Starlette's TestClient) over FakeShards: what it sends to the shards,
and how it maps their answers and failures to HTTP."""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Sequence

import orjson
import pytest
from starlette.testclient import TestClient

from gortms.config import load_settings
from gortms.errors import GortmsError, QueueNotFound, ShardUnavailable
from gortms.protocol import (Op, encode_deliveries, encode_message, encode_reply, record_ts,
                             ts_bytes)
from gateway.app import create_app
from gateway.shards import Call, Reply

Answer = Callable[[int, Op, dict[str, Any], Sequence[bytes]], Reply]


class FakeShards:
    """Records every request and answers it through a plain function."""

    def __init__(self, answer: Answer, count: int = 2) -> None:
        self.count = count
        self.answer = answer
        self.requests: list[tuple[int, Op, dict[str, Any], list[bytes]]] = []
        self.cancelled: list[bytes] = []

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def on_catalog_event(self, listener: Callable[[dict[str, Any]], None]) -> None:
        return None

    def on_reconnect(self, listener: Callable[[int], None]) -> None:
        return None

    def start_call(self, shard: int, op: Op, body: dict[str, Any], blobs: Sequence[bytes] = (),
                   timeout_s: float | None = None) -> Call:
        self.requests.append((shard, op, body, list(blobs)))
        future: asyncio.Future[list[bytes]] = asyncio.get_running_loop().create_future()
        try:
            reply_body, reply_blobs = self.answer(shard, op, body, blobs)
        except GortmsError as exc:
            future.set_exception(exc)
        else:
            future.set_result(encode_reply(b"1", reply_body, reply_blobs))
        return Call(shard, b"1", future, timeout_s or 1.0)

    async def call(self, shard: int, op: Op, body: dict[str, Any], blobs: Sequence[bytes] = (),
                   timeout_s: float | None = None) -> Reply:
        return await self.start_call(shard, op, body, blobs, timeout_s).reply()

    async def call_all(self, op: Op, body: dict[str, Any], timeout_s: float | None = None
                       ) -> list[Reply]:
        return [await self.call(i, op, body) for i in range(self.count)]

    def cancel(self, call: Call) -> None:
        self.cancelled.append(call.rid)


DOMAIN = {"name": "shop", "epoch": 7, "createdAt": 0,
          "schema": {"fields": {"amount": "number"}}}


def answers(op_replies: dict[Op, Any]) -> Answer:
    def answer(shard: int, op: Op, body: dict[str, Any], blobs: Sequence[bytes]) -> Reply:
        if op is Op.DOMAIN_GET:
            return DOMAIN, []
        reply = op_replies[op]
        if isinstance(reply, Exception):
            raise reply
        return (reply(body, blobs) if callable(reply) else reply), []
    return answer


@pytest.fixture
def make_client():
    clients = []

    def make(op_replies: dict[Op, Any], **env: str) -> tuple[TestClient, FakeShards]:
        shards = FakeShards(answers(op_replies))
        app = create_app(load_settings(env), shards)
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client, shards

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def test_publish_sends_one_record_to_the_owner_shard_with_the_domain_epoch(make_client):
    client, shards = make_client({Op.PUBLISH: {"firstPosition": 41, "count": 1}})
    reply = client.post("/api/domains/shop/queues/orders/messages",
                        content=b'{"amount": 5, "id": "m-1"}',
                        headers={"X-Header-Trace": "t", "Idempotency-Key": "k"})
    assert reply.status_code == 201
    assert reply.json() == {"status": "success", "messageId": "m-1", "position": 41}
    [(shard, op, body, blobs)] = [r for r in shards.requests if r[1] is Op.PUBLISH]
    from gortms.partition import shard_for
    assert shard == shard_for("shop", "orders", 2)
    assert body == {"domain": "shop", "queue": "orders", "epoch": 7, "key": "k"}
    assert blobs == [encode_message("m-1", b'{"trace":"t"}', b'{"amount": 5, "id": "m-1"}')]


def test_schema_is_checked_in_the_gateway_before_any_shard_call(make_client):
    client, shards = make_client({})
    reply = client.post("/api/domains/shop/queues/orders/messages", json={"amount": "x"})
    assert reply.status_code == 422
    assert not [r for r in shards.requests if r[1] is Op.PUBLISH]


def test_shard_errors_keep_their_code_and_status(make_client):
    client, _ = make_client({Op.PUBLISH: QueueNotFound("queue 'orders' not found")})
    reply = client.post("/api/domains/shop/queues/orders/messages", json={"amount": 1})
    assert reply.status_code == 404
    assert reply.json() == {"error": "queue_not_found", "message": "queue 'orders' not found"}


def test_an_unavailable_shard_is_a_503_with_retry_after(make_client):
    client, _ = make_client({Op.PUBLISH: ShardUnavailable("shard 1 is down")})
    reply = client.post("/api/domains/shop/queues/orders/messages", json={"amount": 1})
    assert reply.status_code == 503
    assert reply.headers["Retry-After"] == "1"
    assert reply.json()["error"] == "shard_unavailable"


def test_deliveries_are_spliced_into_json_without_reencoding(make_client):
    records = [ts_bytes(1_700_000_000_123) + encode_message(f"m{i}", b"{}", b'{"i": %d}' % i)
               for i in range(2)]
    body, blobs = encode_deliveries([(5, 1, records[0]), (6, 3, records[1])])

    shards = FakeShards(lambda s, op, b, bl: (DOMAIN, []) if op is Op.DOMAIN_GET
                        else (orjson.loads(body), blobs))
    client = TestClient(create_app(load_settings({}), shards))
    with client:
        reply = client.get("/api/domains/shop/queues/q/consumer-groups/g/messages?count=2")
    assert reply.status_code == 200
    assert reply.json() == {"count": 2, "messages": [
        {"position": 5, "deliveryCount": 1, "timestamp": "2023-11-14T22:13:20.123Z",
         "id": "m0", "headers": {}, "payload": {"i": 0}},
        {"position": 6, "deliveryCount": 3, "timestamp": "2023-11-14T22:13:20.123Z",
         "id": "m1", "headers": {}, "payload": {"i": 1}}]}
    assert record_ts(records[0]) == 1_700_000_000_123


def test_consume_parameters_reach_the_shard_checked(make_client):
    client, shards = make_client({Op.FETCH: {"positions": [], "counts": []}})
    reply = client.get("/api/domains/shop/queues/q/messages",
                       params={"group": "workers", "max": 50, "consumer": "c1"})
    assert reply.status_code == 200
    [(_, _, body, _)] = [r for r in shards.requests if r[1] is Op.FETCH]
    assert body == {"domain": "shop", "queue": "q", "epoch": 7, "group": "workers",
                    "consumer": "c1", "max": 50, "timeoutMs": 0, "create": True}
    assert client.get("/api/domains/shop/queues/q/messages?group=w&max=0").status_code == 400


def test_cors_headers_only_when_enabled(make_client):
    plain, _ = make_client({Op.PING: {}})
    assert "access-control-allow-origin" not in plain.get(
        "/health", headers={"Origin": "http://ui.example"}).headers
    cors, _ = make_client({Op.PING: {}}, GORTMS_HTTP_CORS_ENABLED="true",
                          GORTMS_HTTP_CORS_ALLOWEDORIGINS="http://ui.example")
    reply = cors.get("/health", headers={"Origin": "http://ui.example"})
    assert reply.headers["access-control-allow-origin"] == "http://ui.example"
