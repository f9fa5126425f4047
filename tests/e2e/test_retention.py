"""Retention against the real broker: message ttl, maxSize with eviction or 429 queue_full,
retention: interest, and the disk space of deleted messages given back (issue 7, point 5)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx2
import orjson
import pytest

from gortms.partition import shard_for
from tests.conftest import Broker
from tests.e2e.test_messages import consume, make_queue


def publish(api: httpx2.Client, queue: str, count: int, size: int = 10) -> httpx2.Response:
    return api.post(f"{queue}/messages/batch",
                    json={"messages": [{"n": i, "pad": "x" * size} for i in range(count)]})


def info(api: httpx2.Client, path: str) -> dict:
    reply = api.get(path)
    assert reply.status_code == 200, reply.text
    return reply.json()


def eventually(what: str, check, timeout_s: float = 15.0):  # type: ignore[no-untyped-def]
    """The sweep runs about once a second: poll (bounded) until `check()` holds."""
    deadline = time.monotonic() + timeout_s
    while not (result := check()):
        assert time.monotonic() < deadline, f"not within {timeout_s}s: {what}"
        time.sleep(0.1)
    return result


# --- ttl ---------------------------------------------------------------------------------------


def test_an_expired_message_is_never_delivered_leaves_pending_and_is_counted(api):
    queue = make_queue(api, ttl="1s")
    assert publish(api, queue, 3).status_code == 201
    api.post(f"{queue}/consumer-groups", json={"groupId": "slow"})
    api.post(f"{queue}/consumer-groups", json={"groupId": "idle"})
    [held] = consume(api, queue, "slow", count=1)  # pending when it expires
    eventually("the messages expire", lambda: info(api, queue)["messageCount"] == 0)
    assert info(api, queue)["expired"] == 3
    slow = info(api, f"{queue}/consumer-groups/slow")
    idle = info(api, f"{queue}/consumer-groups/idle")
    assert (slow["pending"], slow["expired"], slow["lag"]) == (0, 3, 0)
    assert (idle["pending"], idle["expired"], idle["lag"]) == (0, 3, 0)
    assert consume(api, queue, "slow", count=10) == []
    assert consume(api, queue, "idle", count=10) == []
    acked = api.post(f"{queue}/consumer-groups/slow/ack", json={"ids": [held["id"]]})
    assert acked.json() == {"acked": 0, "unknown": [held["id"]]}
    # What comes after is delivered as usual, at its own positions.
    assert publish(api, queue, 1).json()["firstPosition"] == 4
    assert [m["position"] for m in consume(api, queue, "idle", count=10)] == [4]


def test_a_ttl_of_0_keeps_messages(api):
    queue = make_queue(api, ttl="0")
    publish(api, queue, 2)
    api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
    time.sleep(1.5)  # two sweeps: nothing may go (there is no signal for "did nothing")
    assert info(api, queue)["messageCount"] == 2
    assert len(consume(api, queue, "g", count=10)) == 2


# --- maxSize ------------------------------------------------------------------------------------


def test_a_full_queue_evicts_only_what_every_group_acked_and_else_answers_429(api):
    queue = make_queue(api, maxSize=5)
    api.post(f"{queue}/consumer-groups", json={"groupId": "a"})
    api.post(f"{queue}/consumer-groups", json={"groupId": "b"})
    assert publish(api, queue, 5).status_code == 201
    full = api.post(f"{queue}/messages", json={"n": 6})
    assert full.status_code == 429, full.text
    assert full.json()["error"] == "queue_full" and "maxSize 5" in full.json()["message"]
    assert full.headers["Retry-After"] == "1"
    assert info(api, queue)["messageCount"] == 5 and info(api, queue)["lastPosition"] == 5
    # Group a acks two; b has not: still nothing to evict.
    two = consume(api, queue, "a", count=2)
    api.post(f"{queue}/consumer-groups/a/ack", json={"ids": [m["id"] for m in two]})
    assert api.post(f"{queue}/messages", json={"n": 6}).status_code == 429
    # b acks three: two are acknowledged by both, and two publishes fit, evicting them.
    three = consume(api, queue, "b", count=3)
    api.post(f"{queue}/consumer-groups/b/ack", json={"ids": [m["id"] for m in three]})
    assert publish(api, queue, 2).status_code == 201
    assert (info(api, queue)["messageCount"], info(api, queue)["firstPosition"]) == (5, 3)
    assert api.post(f"{queue}/messages", json={"n": 8}).status_code == 429
    # Nothing unconsumed was dropped: a delivers all that it had not seen.
    assert [m["position"] for m in consume(api, queue, "a", count=10)] == [3, 4, 5, 6, 7]


def test_without_groups_a_full_queue_evicts_the_oldest(api):
    queue = make_queue(api, maxSize=3)
    for n in range(5):
        assert api.post(f"{queue}/messages", json={"n": n}).status_code == 201
    assert (info(api, queue)["messageCount"], info(api, queue)["firstPosition"]) == (3, 3)
    api.post(f"{queue}/consumer-groups", json={"groupId": "late", "start": "earliest"})
    assert [m["payload"]["n"] for m in consume(api, queue, "late", count=10)] == [2, 3, 4]


def test_a_batch_larger_than_max_size_is_refused_whole(api):
    queue = make_queue(api, maxSize=3)
    reply = publish(api, queue, 4)
    assert reply.status_code == 429 and "does not fit" in reply.json()["message"]
    assert info(api, queue)["messageCount"] == 0


# --- retention: interest -------------------------------------------------------------------------


def test_interest_retention_deletes_what_every_group_acknowledged(api):
    queue = make_queue(api, retention="interest")
    publish(api, queue, 4)
    time.sleep(1.5)  # no groups yet: kept for groups to come (two sweeps; no signal for none)
    assert info(api, queue)["messageCount"] == 4
    api.post(f"{queue}/consumer-groups", json={"groupId": "a"})
    api.post(f"{queue}/consumer-groups", json={"groupId": "b"})
    a = consume(api, queue, "a", count=4)
    api.post(f"{queue}/consumer-groups/a/ack", json={"ids": [m["id"] for m in a]})
    b = consume(api, queue, "b", count=2)
    api.post(f"{queue}/consumer-groups/b/ack", json={"ids": [m["id"] for m in b]})
    eventually("the messages both groups acked go",
               lambda: info(api, queue)["messageCount"] == 2)
    assert info(api, queue)["firstPosition"] == 3
    assert info(api, queue)["expired"] == 0
    assert [m["position"] for m in consume(api, queue, "b", count=10)] == [3, 4]


# --- the disk space comes back ----------------------------------------------------------------


def shard_disk(broker: Broker, index: int) -> int:
    report = subprocess.run(
        [sys.executable, "-m", "gortms", "shards", "--json"], capture_output=True, text=True,
        env={**os.environ, "GORTMS_GENERAL_DATADIR": str(broker.data_dir)}, timeout=30)
    assert report.returncode == 0, report.stderr
    return orjson.loads(report.stdout)["shards"][index]["diskBytes"]


@pytest.mark.slow
def test_a_drained_queue_gives_its_disk_space_back(broker_factory):
    broker: Broker = broker_factory()
    with broker.client() as api:
        assert api.post("/api/domains", json={"name": "big"}).status_code == 201
        name = next(f"q{i}" for i in range(50) if shard_for("big", f"q{i}", 2) == 1)
        queue = f"/api/domains/big/queues/{name}"
        assert api.post("/api/domains/big/queues", json={"name": name, "config": {
            "retention": "interest", "maxSize": 10**6}}).status_code == 201
        api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
        empty = shard_disk(broker, 1)
        for _ in range(40):  # 40 MB of incompressible-enough payloads
            batch = [{"n": i, "pad": os.urandom(500).hex()} for i in range(1000)]
            assert api.post(f"{queue}/messages/batch", json={"messages": batch}
                            ).status_code == 201
        full = shard_disk(broker, 1)
        assert full > empty + 30 * 2**20, (empty, full)
        while batch := consume(api, queue, "g", count=1000):
            api.post(f"{queue}/consumer-groups/g/ack", json={"ids": [m["id"] for m in batch]})
        eventually("the queue is emptied", lambda: info(api, queue)["messageCount"] == 0)
        eventually("its disk space comes back",
                   lambda: shard_disk(broker, 1) < empty + 4 * 2**20, timeout_s=30)


def test_a_refused_publish_evicts_nothing(api):
    queue = make_queue(api, maxSize=5)
    api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
    publish(api, queue, 5)
    two = consume(api, queue, "g", count=2)
    api.post(f"{queue}/consumer-groups/g/ack", json={"ids": [m["id"] for m in two]})
    reply = publish(api, queue, 3)  # two are evictable, three are needed
    assert reply.status_code == 429, reply.text
    assert (info(api, queue)["messageCount"], info(api, queue)["firstPosition"]) == (5, 1)
    assert publish(api, queue, 2).status_code == 201
    assert (info(api, queue)["messageCount"], info(api, queue)["firstPosition"]) == (5, 3)
