"""Consumer groups over HTTP, against a real broker: the processing layer."""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx2

from tests.conftest import unique
from tests.e2e.test_messages import consume, make_queue


def publish(api: httpx2.Client, queue: str, count: int) -> list[str]:
    reply = api.post(f"{queue}/messages/batch",
                     json={"messages": [{"n": i} for i in range(count)]})
    assert reply.status_code == 201
    return reply.json()["messageIds"]


def group(api: httpx2.Client, queue: str, name: str) -> dict:
    reply = api.get(f"{queue}/consumer-groups/{name}")
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_creating_a_group_twice_with_the_same_settings_is_idempotent(api):
    queue = make_queue(api)
    first = api.post(f"{queue}/consumer-groups", json={"groupId": "g", "ttl": "24h"})
    again = api.post(f"{queue}/consumer-groups", json={"groupID": "g", "TTL": "24h"})
    other = api.post(f"{queue}/consumer-groups", json={"groupId": "g", "ackMode": "auto"})
    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 409)
    assert first.json()["ttl"] == "24h"
    assert other.json()["error"] == "group_exists"


def test_group_status_reports_position_lag_pending_and_consumers(api):
    queue = make_queue(api)
    publish(api, queue, 5)
    api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
    consume(api, queue, "g", count=2, consumer="c1")
    status = group(api, queue, "g")
    assert status["position"] == 3
    assert status["lag"] == 3
    assert status["pending"] == 2
    assert status["ackMode"] == "explicit"
    assert [c["id"] for c in status["consumers"]] == ["c1"]
    for key in ("groupId", "domain", "queue", "ttl", "createdAt", "lastActivity", "circuit"):
        assert key in status


def test_competing_consumers_never_share_a_pending_message(api, shared_broker):
    queue = make_queue(api)
    ids = publish(api, queue, 400)
    api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
    seen: list[str] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        with shared_broker.client() as client:
            while True:
                batch = consume(client, queue, "g", count=7, consumer=name)
                if not batch:
                    return
                with lock:
                    seen.extend(m["id"] for m in batch)

    threads = [threading.Thread(target=worker, args=(f"c{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert Counter(seen) == Counter(ids)  # every message once: nothing shared, nothing lost


def test_separate_groups_each_see_every_message(api):
    queue = make_queue(api)
    ids = publish(api, queue, 10)
    for name in ("a", "b"):
        api.post(f"{queue}/consumer-groups", json={"groupId": name})
        assert [m["id"] for m in consume(api, queue, name, count=100)] == ids


def test_acked_messages_are_not_delivered_again_and_unknown_ids_are_reported(api):
    queue = make_queue(api, ackTimeout="300ms")
    publish(api, queue, 3)
    api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
    delivered = consume(api, queue, "g", count=3)
    acked = api.post(f"{queue}/consumer-groups/g/ack",
                     json={"ids": [delivered[0]["id"], delivered[1]["id"], "not-a-message"]})
    assert acked.status_code == 200
    assert acked.json() == {"acked": 2, "unknown": ["not-a-message"]}
    again = consume(api, queue, "g", count=3, timeout=3)
    assert [m["id"] for m in again] == [delivered[2]["id"]]
    assert again[0]["deliveryCount"] == 2
    twice = api.post(f"{queue}/consumer-groups/g/ack", json={"ids": [delivered[0]["id"]]})
    assert twice.json() == {"acked": 0, "unknown": [delivered[0]["id"]]}


def test_nacked_message_is_redelivered_before_new_ones(api):
    queue = make_queue(api)
    publish(api, queue, 3)
    api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
    first = consume(api, queue, "g", count=1)
    nacked = api.post(f"{queue}/consumer-groups/g/nack",
                      json={"ids": [first[0]["id"]], "reason": "try again"})
    assert nacked.json() == {"nacked": 1, "unknown": [], "deadLettered": 0}
    second = consume(api, queue, "g", count=2)
    assert [m["position"] for m in second] == [1, 2]
    assert second[0]["deliveryCount"] == 2


def test_nack_with_a_delay_holds_the_message_back(api):
    queue = make_queue(api)
    publish(api, queue, 1)
    api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
    [message] = consume(api, queue, "g")
    api.post(f"{queue}/consumer-groups/g/nack", json={"ids": [message["id"]], "delay": "700ms"})
    assert consume(api, queue, "g") == []
    started = time.monotonic()
    [again] = consume(api, queue, "g", timeout=5)
    assert again["id"] == message["id"]
    assert time.monotonic() - started < 4


def test_unacked_message_is_redelivered_after_the_ack_timeout(api):
    queue = make_queue(api, ackTimeout="400ms")
    publish(api, queue, 1)
    api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
    [message] = consume(api, queue, "g", consumer="slow")
    assert consume(api, queue, "g", consumer="other") == []
    [again] = consume(api, queue, "g", consumer="other", timeout=5)
    assert (again["id"], again["deliveryCount"]) == (message["id"], 2)


def test_pending_lists_delivered_unacked_messages_with_consumer_and_deadline(api):
    queue = make_queue(api)
    publish(api, queue, 3)
    api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
    delivered = consume(api, queue, "g", count=2, consumer="worker-1")
    api.post(f"{queue}/consumer-groups/g/ack", json={"ids": [delivered[0]["id"]]})
    pending = api.get(f"{queue}/consumer-groups/g/pending").json()
    assert pending["count"] == 1
    [entry] = pending["messages"]
    assert entry["id"] == delivered[1]["id"]
    assert entry["consumer"] == "worker-1"
    assert entry["deliveryCount"] == 1
    assert entry["deadline"].endswith("Z")


def test_replay_moves_the_group_to_a_position_earliest_or_latest(api):
    queue = make_queue(api)
    publish(api, queue, 5)
    api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
    consume(api, queue, "g", count=5)
    moved = api.put(f"{queue}/consumer-groups/g", json={"position": 3})
    assert moved.status_code == 200
    assert moved.json()["position"] == 3
    assert [m["position"] for m in consume(api, queue, "g", count=10)] == [3, 4, 5]
    api.put(f"{queue}/consumer-groups/g", json={"position": "earliest"})
    assert [m["position"] for m in consume(api, queue, "g", count=10)] == [1, 2, 3, 4, 5]
    api.put(f"{queue}/consumer-groups/g", json={"position": "latest"})
    assert consume(api, queue, "g") == []
    assert group(api, queue, "g")["position"] == 6


def test_replay_past_the_end_waits_for_that_position(api):
    queue = make_queue(api)
    publish(api, queue, 2)
    api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
    assert api.put(f"{queue}/consumer-groups/g", json={"position": 12345}).status_code == 200
    assert group(api, queue, "g")["position"] == 12345
    publish(api, queue, 3)
    assert consume(api, queue, "g") == []


def test_replay_by_timestamp_starts_at_the_first_message_stored_then(api):
    queue = make_queue(api)
    publish(api, queue, 3)
    api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
    stamps = [m["timestamp"] for m in consume(api, queue, "g", count=3)]
    time.sleep(0.01)  # the next batch must get a later millisecond timestamp
    publish(api, queue, 2)
    later = consume(api, queue, "g", count=2)
    api.put(f"{queue}/consumer-groups/g", json={"timestamp": later[0]["timestamp"]})
    assert [m["position"] for m in consume(api, queue, "g", count=10)] == [4, 5]
    api.put(f"{queue}/consumer-groups/g", json={"timestamp": stamps[0]})
    assert len(consume(api, queue, "g", count=10)) == 5


def test_a_group_started_at_a_time_begins_at_the_first_message_stored_then(api):
    queue = make_queue(api)
    publish(api, queue, 2)
    api.post(f"{queue}/consumer-groups", json={"groupId": "probe"})
    first = consume(api, queue, "probe", count=2)
    time.sleep(0.01)  # the next batch must get a later millisecond timestamp
    publish(api, queue, 3)
    later = consume(api, queue, "probe", count=3)
    api.post(f"{queue}/consumer-groups", json={"groupId": "then", "start": later[0]["timestamp"]})
    assert group(api, queue, "then")["position"] == later[0]["position"] == 3
    assert [m["position"] for m in consume(api, queue, "then", count=10)] == [3, 4, 5]
    api.post(f"{queue}/consumer-groups", json={"groupId": "all", "start": first[0]["timestamp"]})
    assert len(consume(api, queue, "all", count=10)) == 5
    api.post(f"{queue}/consumer-groups", json={"groupId": "none",
                                               "start": "2999-01-01T00:00:00Z"})
    assert consume(api, queue, "none") == []


def test_group_start_latest_and_position_and_auto_ack(api):
    queue = make_queue(api)
    publish(api, queue, 4)
    api.post(f"{queue}/consumer-groups", json={"groupId": "late", "start": "latest"})
    api.post(f"{queue}/consumer-groups", json={"groupId": "mid", "start": 3})
    api.post(f"{queue}/consumer-groups", json={"groupId": "auto", "ackMode": "auto"})
    assert consume(api, queue, "late") == []
    assert [m["position"] for m in consume(api, queue, "mid")] == [3, 4]
    assert len(consume(api, queue, "auto", count=10)) == 4
    assert group(api, queue, "auto")["pending"] == 0


def test_group_ttl_can_be_changed(api):
    queue = make_queue(api)
    api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
    reply = api.put(f"{queue}/consumer-groups/g/ttl", json={"ttl": "1h30m"})
    assert reply.status_code == 200
    assert group(api, queue, "g")["ttl"] == "1h30m"
    assert api.put(f"{queue}/consumer-groups/g/ttl", json={"ttl": "soon"}).status_code == 400


def test_unused_group_expires_after_its_ttl(api):
    queue = make_queue(api)
    api.post(f"{queue}/consumer-groups", json={"groupId": "brief", "ttl": "500ms"})
    deadline = time.monotonic() + 10
    while api.get(f"{queue}/consumer-groups/brief").status_code == 200:
        assert time.monotonic() < deadline, "the group never expired"
        time.sleep(0.1)


def test_consumers_can_be_registered_and_removed(api):
    queue = make_queue(api)
    api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
    added = api.post(f"{queue}/consumer-groups/g/consumers", json={"consumerId": "c9"})
    assert added.status_code == 201
    again = api.post(f"{queue}/consumer-groups/g/consumers", json={"consumerid": "c9"})
    assert again.status_code == 200
    missing = api.post(f"{queue}/consumer-groups/g/consumers", json={})
    assert missing.status_code == 400
    assert "required" in missing.json()["message"]
    assert "c9" in [c["id"] for c in group(api, queue, "g")["consumers"]]
    assert api.delete(f"{queue}/consumer-groups/g/consumers/c9").status_code == 200
    assert "c9" not in [c["id"] for c in group(api, queue, "g")["consumers"]]
    assert api.delete(f"{queue}/consumer-groups/g/consumers/c9").status_code == 404
    assert api.delete(f"{queue}/consumer-groups/g/consumers/self").status_code == 400


def test_removed_consumer_releases_its_messages_to_the_others(api):
    queue = make_queue(api)
    publish(api, queue, 2)
    api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
    held = consume(api, queue, "g", count=2, consumer="leaver")
    api.delete(f"{queue}/consumer-groups/g/consumers/leaver")
    assert [m["id"] for m in consume(api, queue, "g", count=5, consumer="stayer")] == [
        m["id"] for m in held]


def test_deleted_group_is_gone_and_its_parked_fetch_is_answered(api, shared_broker):
    queue = make_queue(api)
    api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
    answers: list[int] = []

    def poll() -> None:
        with shared_broker.client() as client:
            answers.append(client.get(f"{queue}/consumer-groups/g/messages",
                                      params={"timeout": 30}).status_code)

    poller = threading.Thread(target=poll)
    poller.start()
    for _ in range(500):
        if group(api, queue, "g")["waiting"] == 1:
            break
        time.sleep(0.01)
    assert api.delete(f"{queue}/consumer-groups/g").status_code == 200
    poller.join(10)
    assert answers == [404]
    assert api.get(f"{queue}/consumer-groups/g").status_code == 404
    assert api.delete(f"{queue}/consumer-groups/g").status_code == 404


def test_groups_are_listed_per_queue_and_across_the_broker(api):
    queue = make_queue(api)
    other = make_queue(api)
    api.post(f"{queue}/consumer-groups", json={"groupId": "a"})
    api.post(f"{queue}/consumer-groups", json={"groupId": "b"})
    api.post(f"{other}/consumer-groups", json={"groupId": "c"})
    listed = api.get(f"{queue}/consumer-groups").json()["groups"]
    assert [g["groupId"] for g in listed] == ["a", "b"]
    everything = api.get("/api/consumer-groups").json()["groups"]
    domains = {queue.split("/")[3], other.split("/")[3]}
    mine = sorted(g["groupId"] for g in everything if g["domain"] in domains)
    assert mine == ["a", "b", "c"]


def test_domain_of_another_incarnation_never_shows_old_groups(api):
    domain = unique("epoch")
    api.post("/api/domains", json={"name": domain})
    api.post(f"/api/domains/{domain}/queues", json={"name": "q"})
    api.post(f"/api/domains/{domain}/queues/q/consumer-groups", json={"groupId": "old"})
    api.delete(f"/api/domains/{domain}")
    api.post("/api/domains", json={"name": domain})
    api.post(f"/api/domains/{domain}/queues", json={"name": "q"})
    assert api.get(f"/api/domains/{domain}/queues/q/consumer-groups").json() == {"groups": []}


def test_an_expired_group_goes_with_its_pending_state_and_ttl_0_never_expires(api):
    queue = make_queue(api, ackTimeout="1h")
    publish(api, queue, 3)
    api.post(f"{queue}/consumer-groups", json={"groupId": "brief", "ttl": "1s"})
    api.post(f"{queue}/consumer-groups", json={"groupId": "forever", "ttl": "0"})
    held = consume(api, queue, "brief", count=2)
    consume(api, queue, "forever", count=2)
    assert group(api, queue, "brief")["pending"] == 2
    deadline = time.monotonic() + 15
    while api.get(f"{queue}/consumer-groups/brief").status_code == 200:
        assert time.monotonic() < deadline, "the group never expired"
        time.sleep(0.1)
    assert group(api, queue, "forever")["pending"] == 2  # ttl "0": kept, with its pending
    # A group of the same name starts afresh: nothing pending, nothing acked, from earliest.
    api.post(f"{queue}/consumer-groups", json={"groupId": "brief"})
    fresh = group(api, queue, "brief")
    assert (fresh["pending"], fresh["position"]) == (0, 1)
    assert [m["id"] for m in consume(api, queue, "brief", count=10)][:2] == [
        m["id"] for m in held]
    assert all(m["deliveryCount"] == 1 for m in consume(api, queue, "forever", count=10))
