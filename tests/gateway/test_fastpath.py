"""FastPaths answers its routes exactly as the Starlette routes behind it do, and leaves every
other request to them."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from gortms.config import load_settings
from gortms.errors import GroupNotFound
from gortms.protocol import (Ack, Acked, Deliveries, DomainGet, DomainRecord, Fetch, Publish,
                             Published, Request, encode_message, ts_bytes)
from gateway.app import create_app
from tests.gateway.fakes import FakeShards

DOMAIN = DomainRecord(name="shop", epoch=7, created_at=0,
                      schema={"fields": {"amount": "number"}})
RECORD = ts_bytes(1_700_000_000_123) + encode_message("m1", b"{}", b'{"amount":1}')


def answer(shard: int, request: Request) -> Any:
    kind = type(request)
    if kind is DomainGet:
        return DOMAIN
    if kind is Publish:
        return Published(first_position=5, count=len(request.records))
    if kind is Fetch:
        if request.group == "missing":
            raise GroupNotFound("consumer group 'missing' not found")
        return Deliveries(positions=[5], counts=[1], records=[RECORD])
    if kind is Ack:
        return Acked(acked=len(request.ids), unknown=[])
    raise AssertionError(f"unexpected {request}")


@pytest.fixture
def clients():
    """The full app (fast paths first) and the Starlette app alone, over the same fakes."""
    shards = FakeShards(answer)
    app = create_app(load_settings({}), shards)
    with TestClient(app) as fast, TestClient(app.router) as plain:
        yield fast, plain, shards


Q = "/api/domains/shop/queues/orders"
CASES = [
    ("POST", f"{Q}/messages", {"content": b'{"amount": 1, "id": "given"}'}),
    ("POST", f"{Q}/messages", {"content": b'{"amount": 1}', "headers": {"X-Message-Id": "x"}}),
    ("POST", f"{Q}/messages", {"content": b'{"amount": "one"}'}),  # schema: 422
    ("POST", f"{Q}/messages", {"content": b"[1]"}),
    ("POST", f"{Q}/messages", {"content": b"{bad"}),
    ("POST", f"{Q}/messages", {"content": b""}),
    ("POST", f"{Q}/messages", {"content": b"x" * 2_000_000}),  # 413
    ("POST", f"{Q}/messages", {"content": b'{"amount": 1}',
                               "headers": {"Idempotency-Key": "k" * 300}}),
    ("POST", f"{Q}/messages/batch", {"content": b'{"messages":[{"amount":1,"id":"a"}]}'}),
    ("POST", f"{Q}/messages/batch", {"content": b'{"MESSAGES":[{"amount":1,"id":"a"}]}'}),
    ("POST", f"{Q}/messages/batch", {"content": b'{"messages":[{"amount":1},{"amount":"x"}]}'}),
    ("POST", f"{Q}/messages/batch", {"content": b'{"messages":[]}'}),
    ("GET", f"{Q}/consumer-groups/g/messages?count=5&consumer=c1", {}),
    ("GET", f"{Q}/consumer-groups/g/messages?count=0", {}),
    ("GET", f"{Q}/consumer-groups/g/messages?timeout=nan", {}),
    ("GET", f"{Q}/consumer-groups/g/messages?consumer=", {}),
    ("GET", f"{Q}/consumer-groups/missing/messages", {}),
    ("POST", f"{Q}/consumer-groups/g/ack", {"content": b'{"ids":["m1"]}'}),
    ("POST", f"{Q}/consumer-groups/g/ack", {"content": b'{"IDS":["m1"]}'}),
    ("POST", f"{Q}/consumer-groups/g/ack", {"content": b'{"ids":[]}'}),
    ("POST", f"{Q}/consumer-groups/g/ack", {"content": b'{"ids":[5]}'}),
]


@pytest.mark.parametrize(("method", "path", "options"), CASES,
                         ids=[f"{m} {p[len(Q):]} {str(o)[:40]}" for m, p, o in CASES])
def test_a_fast_route_answers_as_the_starlette_route_does(clients, method, path, options):
    fast, plain, _ = clients
    expected = plain.request(method, path, **options)
    got = fast.request(method, path, **options)
    assert (got.status_code, got.headers["content-type"]) == (
        expected.status_code, expected.headers["content-type"])
    if method == "POST" and path.endswith("/messages") and expected.status_code == 201:
        assert set(got.json()) == set(expected.json())  # generated ids differ
    else:
        assert got.json() == expected.json()


def test_generated_ids_differ_per_message(clients):
    fast, _, _ = clients
    ids = {fast.post(f"{Q}/messages", content=b'{"amount": 1}').json()["messageId"]
           for _ in range(50)}
    assert len(ids) == 50


@pytest.mark.parametrize(("method", "path"), [
    ("DELETE", f"{Q}/messages"), ("PUT", f"{Q}/messages/batch"),
    ("POST", "/api/domains/sh%20op/queues/orders/messages"),
    ("POST", "/api/domains/shop/queues/or ders/messages"),
    ("GET", f"{Q}/consumer-groups/a b/messages"), ("GET", f"{Q}/consumer-groups/g/ack"),
    ("POST", f"{Q}/messages/batch/more"), ("GET", "/api/nowhere"),
])
def test_other_requests_reach_the_starlette_routes(clients, method, path):
    fast, plain, shards = clients
    expected = plain.request(method, path, content=b"{}")
    got = fast.request(method, path, content=b"{}")
    assert got.status_code == expected.status_code
    assert got.json() == expected.json()
    assert got.status_code in (400, 404, 405)
    assert not shards.sent(Publish)


class Recorder:
    """Stands in front of the Starlette app behind FastPaths: which requests reach it."""

    def __init__(self, app) -> None:
        self.app = app
        self.paths: list[str] = []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            self.paths.append(scope["path"])
        await self.app(scope, receive, send)


def test_the_hot_routes_never_reach_starlette_and_the_rest_do():
    shards = FakeShards(answer)
    app = create_app(load_settings({}), shards)
    recorder = Recorder(app.entry.app)
    app.entry.app = recorder
    with TestClient(app) as client:
        assert client.post(f"{Q}/messages", content=b'{"amount": 1}').status_code == 201
        assert client.post(f"{Q}/messages/batch",
                           content=b'{"messages":[{"amount":1}]}').status_code == 201
        assert client.get(f"{Q}/consumer-groups/g/messages").status_code == 200
        assert client.post(f"{Q}/consumer-groups/g/ack",
                           content=b'{"ids":["m1"]}').status_code == 200
        assert recorder.paths == []
        assert client.post(f"{Q}/consumer-groups/g/messages").status_code == 405
        assert client.post("/api/domains/sh op/queues/q/messages",
                           content=b"{}").status_code == 400
        assert recorder.paths == [f"{Q}/consumer-groups/g/messages",
                                  "/api/domains/sh op/queues/q/messages"]
