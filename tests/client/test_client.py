"""The sync client against a real broker: every REST operation, typed answers, the error tree
mapped from the wire codes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Iterator

import pytest

from gortms.client import BatchPublished, Client, Message, Published
from gortms.errors import (BadRequest, DomainExists, DomainNotFound, GroupNotFound, InvalidName,
                           NotFound, QueueExists, QueueNotFound, SchemaViolation)
from tests.conftest import Broker, unique


@pytest.fixture
def client(shared_broker: Broker) -> Iterator[Client]:
    with Client(shared_broker.url) as client:
        yield client


@pytest.fixture
def queue(client: Client) -> tuple[str, str]:
    domain = unique("cli")
    client.create_domain(domain)
    client.create_queue(domain, "q", {"ackTimeout": "30s"})
    return domain, "q"


def test_health_is_typed_and_ok(client):
    health = client.health()
    assert health.ok and health.shards.up == health.shards.total == 2


def test_creating_a_queue_answers_its_config_with_the_defaults_filled_in(client):
    domain = unique("cli")
    client.create_domain(domain)
    config = client.create_queue(domain, "q", {"maxSize": 5, "retryEnabled": True})
    assert (config.max_size, config.retry_enabled, config.ack_timeout) == (5, True, 30.0)
    info = client.queue(domain, "q")
    assert (info.name, info.domain, info.last_position, info.message_count) == \
        (domain and "q", domain, 0, 0)
    client.delete_queue(domain, "q")
    with pytest.raises(QueueNotFound):
        client.queue(domain, "q")
    client.delete_domain(domain)
    with pytest.raises(DomainNotFound):
        client.create_queue(domain, "q")


def test_publish_stores_payload_headers_and_id_and_a_repeated_key_is_a_duplicate(client, queue):
    first = client.publish(*queue, {"n": 1}, headers={"Source": "web"}, message_id="m-1",
                           idempotency_key="k-1")
    assert isinstance(first, Published) and (first.message_id, first.position) == ("m-1", 1)
    again = client.publish(*queue, {"n": 1}, idempotency_key="k-1")
    assert again.duplicate and again.position == 1
    [message] = client.fetch(*queue, "g", create_group=True).messages
    assert isinstance(message, Message)
    assert (message.id, message.position, message.payload, message.delivery_count) == \
        ("m-1", 1, {"n": 1}, 1)
    assert message.headers == {"source": "web"}
    assert abs(message.timestamp - datetime.now(timezone.utc)) < timedelta(minutes=1)
    assert client.queue(*queue).last_position == 1


def test_encoded_bytes_are_published_as_they_are(client, queue):
    client.publish(*queue, b'{"raw": true}')
    client.publish_batch(*queue, [b'{"raw": 2}', {"raw": 3}])
    payloads = [m.payload for m in client.fetch(*queue, "g", create_group=True)]
    assert payloads == [{"raw": True}, {"raw": 2}, {"raw": 3}]


def test_a_batch_takes_consecutive_positions_all_or_nothing(client):
    domain = unique("cli")
    client.create_domain(domain, schema={"fields": {"n": "number"}})
    client.create_queue(domain, "q")
    batch = client.publish_batch(domain, "q", [{"n": 1}, {"id": "two", "n": 2}])
    assert isinstance(batch, BatchPublished)
    assert (list(batch.positions), batch.message_ids[1]) == ([1, 2], "two")
    with pytest.raises(SchemaViolation) as refused:
        client.publish_batch(domain, "q", [{"n": 3}, {"n": "four"}])
    assert refused.value.status == 422 and "messages[1]" in refused.value.message
    assert client.queue(domain, "q").last_position == 2


def test_a_delayed_publish_is_kept_from_the_group_until_its_time(client, queue):
    client.publish(*queue, {"later": True}, delay=timedelta(hours=1))
    client.publish(*queue, {"at": True}, deliver_at=datetime.now(timezone.utc) + timedelta(hours=1))
    client.publish(*queue, {"now": True}, delay="0")
    fetched = client.fetch(*queue, "g", count=10, create_group=True)
    assert [m.payload for m in fetched] == [{"now": True}]


def test_fetch_ack_nack_extend_and_settle_settle_what_they_name(client):
    domain = unique("cli")
    client.create_domain(domain)
    client.create_queue(domain, "q", {"retryEnabled": True,
                                      "retryConfig": {"maxRetries": 1, "initialDelay": "1ms"}})
    client.publish_batch(domain, "q", [{"n": n} for n in range(4)])
    client.create_group(domain, "q", "g")
    one, two, three, four = client.fetch(domain, "q", "g", count=10, consumer="c1").messages
    assert client.ack(domain, "q", "g", [one, 99]).acked == 1
    assert client.ack(domain, "q", "g", [one]).unknown == [1]
    nacked = client.nack(domain, "q", "g", [two.position], delay=0, reason="retry me")
    assert (nacked.nacked, nacked.dead_lettered) == (1, 0)
    extended = client.extend(domain, "q", "g", [three.id], by="10m")
    assert extended.extended == 1 and extended.deadline > datetime.now(timezone.utc) + \
        timedelta(minutes=9)
    again = client.fetch(domain, "q", "g", timeout_s=5)
    assert [(m.position, m.delivery_count) for m in again] == [(2, 2)]
    # the second failure is past maxRetries: a dead letter
    assert client.nack(domain, "q", "g", again.messages, reason="gave up").dead_lettered == 1
    settled = client.settle(domain, "q", "g", ack=[three, four.id])
    assert (settled.acked, settled.nacked) == (2, 0)
    status = client.group(domain, "q", "g")
    assert (status.pending, status.ack_floor, status.position) == (0, 5, 5)
    [dead] = client.fetch(domain, "q.dlq", "ops", create_group=True).messages
    assert dead.payload == {"n": 1} and dead.headers["x-reason"] == "gave up"


def test_creating_a_group_twice_with_the_same_settings_answers_its_status(client, queue):
    created = client.create_group(*queue, "g", ack_mode="auto", start="latest", ttl="1h")
    assert (created.group_id, created.ack_mode, created.ttl) == ("g", "auto", 3600.0)
    assert client.create_group(*queue, "g", ack_mode="auto", start="latest",
                               ttl=3600).group_id == "g"
    client.delete_group(*queue, "g")
    with pytest.raises(GroupNotFound) as missing:
        client.group(*queue, "g")
    assert missing.value.code == "group_not_found"


def test_consume_iterates_until_its_limit_or_until_a_long_poll_comes_back_empty(client, queue):
    client.publish_batch(*queue, [{"n": n} for n in range(7)])
    taken = [m.payload["n"] for m in client.consume(*queue, "g", count=3, limit=5,
                                                    create_group=True)]
    assert taken == [0, 1, 2, 3, 4]
    rest = list(client.consume(*queue, "g", timeout_s=0.2, stop_when_idle=True))
    assert [m.payload["n"] for m in rest] == [5, 6]


def test_errors_are_the_broker_tree_rebuilt_from_the_wire_code(client, queue):
    domain, name = queue
    with pytest.raises(QueueNotFound) as not_found:
        client.queue(domain, "missing")
    error = not_found.value
    assert isinstance(error, NotFound)
    assert (error.code, error.status) == ("queue_not_found", 404)
    assert "missing" in error.message
    with pytest.raises(InvalidName) as bad:
        client.create_domain("bad name")
    assert isinstance(bad.value, BadRequest) and bad.value.status == 400
    with pytest.raises(DomainExists) as exists:
        client.create_domain(domain)
    assert (exists.value.code, exists.value.status) == ("domain_exists", 409)
    with pytest.raises(QueueExists):
        client.create_queue(domain, name)
    with pytest.raises(GroupNotFound):
        client.fetch(domain, name, "never-made")


def test_a_name_in_a_path_that_breaks_the_rule_is_refused_before_it_is_sent(client, queue):
    # The gateway routes on the decoded path: "q/consumer-groups", even escaped, would be
    # another route (the queue's group list) rather than an error.
    with pytest.raises(InvalidName) as refused:
        client.queue(queue[0], "q/consumer-groups")
    assert not hasattr(refused.value, "status")  # never sent
