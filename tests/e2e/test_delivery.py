"""Delivery guarantees against the real broker: leases that survive restarts and can be
extended, retries with exponential backoff, dead letters and their redrive (issue 7)."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import httpx2
import pytest

from gortms.partition import shard_for
from tests.conftest import Broker, unique
from tests.e2e.test_messages import consume, make_queue

RETRY = {"retryEnabled": True,
         "retryConfig": {"maxRetries": 2, "initialDelay": "1s", "factor": 2.0,
                         "maxDelay": "30s"}}


def publish(api: httpx2.Client, queue: str, count: int, **headers: str) -> list[str]:
    reply = api.post(f"{queue}/messages/batch",
                     json={"messages": [{"n": i} for i in range(count)]}, headers=headers)
    assert reply.status_code == 201, reply.text
    return reply.json()["messageIds"]


def pending(api: httpx2.Client, queue: str, group: str = "g") -> dict[str, dict]:
    reply = api.get(f"{queue}/consumer-groups/{group}/pending")
    assert reply.status_code == 200, reply.text
    return {m["id"]: m for m in reply.json()["messages"]}


def seconds_until(ts: str) -> float:
    return (datetime.fromisoformat(ts.replace("Z", "+00:00"))
            - datetime.now(timezone.utc)).total_seconds()


def wait_for_delivery(api: httpx2.Client, queue: str, group: str = "g",
                      timeout_s: float = 20.0) -> list[dict]:
    """Long-poll (bounded) until something is delivered."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = consume(api, queue, group, count=10, timeout=2)
        if got:
            return got
    raise AssertionError(f"nothing delivered within {timeout_s}s")


# --- leases ---------------------------------------------------------------------------------------


def test_an_extended_lease_is_not_redelivered_at_the_ack_timeout_and_can_be_acked(api):
    queue = make_queue(api, ackTimeout="1s")
    publish(api, queue, 2)
    api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
    long_job, short_job = consume(api, queue, "g", count=2, consumer="worker")
    reply = api.post(f"{queue}/consumer-groups/g/extend",
                     json={"ids": [long_job["id"], "ghost"], "by": "20s"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["extended"], body["unknown"]) == (1, ["ghost"])
    assert 15 < seconds_until(body["deadline"]) <= 20
    # The one not extended times out and goes again; the extended one stays with its worker.
    [again] = wait_for_delivery(api, queue)
    assert (again["id"], again["deliveryCount"]) == (short_job["id"], 2)
    entry = pending(api, queue)[long_job["id"]]
    assert (entry["state"], entry["consumer"]) == ("delivered", "worker")
    assert seconds_until(entry["deadline"]) > 10
    assert api.post(f"{queue}/consumer-groups/g/ack",
                    json={"ids": [long_job["id"]]}).json()["acked"] == 1


@pytest.mark.parametrize("body", [{"ids": ["x"], "by": "0"}, {"ids": ["x"], "by": 30},
                                  {"ids": ["x"], "by": "soon"}, {"ids": "x"}])
def test_a_bad_extend_is_a_400(api, body):
    queue = make_queue(api)
    api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
    reply = api.post(f"{queue}/consumer-groups/g/extend", json=body)
    assert reply.status_code == 400, reply.text


def queue_on_shard(api: httpx2.Client, index: int, **config) -> str:
    domain = unique("lease")
    assert api.post("/api/domains", json={"name": domain}).status_code == 201
    name = next(f"q{i}" for i in range(100) if shard_for(domain, f"q{i}", 2) == index)
    assert api.post(f"/api/domains/{domain}/queues",
                    json={"name": name, "config": config}).status_code == 201
    return f"/api/domains/{domain}/queues/{name}"


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_a_lease_survives_a_restart_its_consumer_acks_after_it(broker_factory, tmp_path, how):
    data = tmp_path / "data"
    broker: Broker = broker_factory(data)
    with broker.client() as api:
        queue = queue_on_shard(api, 1, ackTimeout="60s", **RETRY)
        publish(api, queue, 4)
        api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
        m1, m2 = consume(api, queue, "g", count=2, consumer="worker")
        # m3 nacked with a delay: waiting for its retry across the restart.
        [m3] = consume(api, queue, "g", count=1, consumer="worker")
        nack = api.post(f"{queue}/consumer-groups/g/nack", json={"ids": [m3["id"]],
                                                                  "delay": "4s"})
        assert nack.status_code == 200
        # An ack is fsynced, and takes the leases and the retry (lazy writes) with it.
        assert api.post(f"{queue}/consumer-groups/g/ack",
                        json={"ids": [m1["id"]]}).json()["acked"] == 1
        before = pending(api, queue)
    if how == "SIGTERM":
        assert broker.stop() == 0
    else:
        broker.kill_tree()
    broker = broker_factory(data)
    with broker.client() as api:
        after = pending(api, queue)
        assert after[m2["id"]]["state"] == "delivered"
        assert after[m2["id"]]["consumer"] == "worker"
        assert after[m2["id"]]["deadline"] == before[m2["id"]]["deadline"]
        assert after[m3["id"]]["state"] == "delayed"
        assert after[m3["id"]]["deadline"] == before[m3["id"]]["deadline"]
        # Nothing is redelivered early: only m4, never delivered, comes now.
        assert [m["id"] for m in consume(api, queue, "g", count=10)] == \
            publish_ids(api, queue)[3:]
        assert api.post(f"{queue}/consumer-groups/g/ack",
                        json={"ids": [m2["id"]]}).json()["acked"] == 1
        # The retry fell due (during or after the restart) and is delivered.
        [retried] = wait_for_delivery(api, queue)
        assert (retried["id"], retried["deliveryCount"]) == (m3["id"], 2)


def publish_ids(api: httpx2.Client, queue: str) -> list[str]:
    """Every id in the queue, in order, through a fresh group (reads only)."""
    name = unique("audit")
    api.post(f"{queue}/consumer-groups", json={"groupId": name, "ackMode": "auto"})
    return [m["id"] for m in consume(api, queue, name, count=1000)]


# --- retries with backoff, dead letters ---------------------------------------------------------


def test_nacks_are_retried_with_exponential_backoff_then_dead_lettered(api):
    queue = make_queue(api, **RETRY)
    [message_id] = publish(api, queue, 1, **{"X-Header-Tenant": "acme"})
    api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
    delays = []
    for attempt in (1, 2):
        [message] = wait_for_delivery(api, queue)
        assert (message["id"], message["deliveryCount"]) == (message_id, attempt)
        reply = api.post(f"{queue}/consumer-groups/g/nack",
                         json={"ids": [message_id], "reason": f"boom {attempt}"})
        assert reply.json() == {"nacked": 1, "unknown": [], "deadLettered": 0}
        entry = pending(api, queue)[message_id]
        assert entry["state"] == "delayed"
        delays.append(seconds_until(entry["deadline"]))
        assert consume(api, queue, "g", count=1) == []  # not before its time
    # Retry n waits initialDelay * factor^(n-1): 1 s, then 2 s.
    assert 0.5 < delays[0] <= 1.0 and 1.5 < delays[1] <= 2.0, delays
    # The third delivery (maxRetries: 2 retries) fails too: the message moves to q.dlq.
    [last] = wait_for_delivery(api, queue)
    assert last["deliveryCount"] == 3
    reply = api.post(f"{queue}/consumer-groups/g/nack",
                     json={"ids": [message_id], "reason": "still broken"})
    assert reply.json() == {"nacked": 1, "unknown": [], "deadLettered": 1}
    assert pending(api, queue) == {}
    assert api.get(f"{queue}/consumer-groups/g").json()["pending"] == 0

    dlq = queue + ".dlq"
    info = api.get(dlq)
    assert info.status_code == 200 and info.json()["messageCount"] == 1
    api.post(f"{dlq}/consumer-groups", json={"groupId": "ops"})
    [dead] = consume(api, dlq, "ops", count=10)
    assert dead["id"] == message_id and dead["payload"] == {"n": 0}
    domain, name = queue.split("/")[3], queue.split("/")[5]
    assert dead["headers"] == {
        "tenant": "acme", "x-origin-queue": name, "x-origin-group": "g", "x-attempts": "3",
        "x-reason": "still broken", "x-original-id": message_id, "x-original-position": "1"}
    assert domain in [d["name"] for d in api.get("/api/domains").json()["domains"]]


def test_a_nack_with_its_own_delay_waits_that_long_and_retry_off_redelivers_at_once(api):
    with_retry = make_queue(api, **RETRY)
    without = make_queue(api)
    for queue in (with_retry, without):
        publish(api, queue, 1)
        api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
        [message] = consume(api, queue, "g", count=1)
        api.post(f"{queue}/consumer-groups/g/nack", json={"ids": [message["id"]],
                                                           "delay": "3s"})
        assert 2.5 < seconds_until(pending(api, queue)[message["id"]]["deadline"]) <= 3
    # A nack without a delay of a message waiting for its retry makes it due at once ...
    assert api.post(f"{without}/consumer-groups/g/nack",
                    json={"positions": [1]}).json()["nacked"] == 1
    # ... and with retry off, every failure is redelivered at once, without limit.
    for attempt in range(2, 8):
        [again] = consume(api, without, "g", count=1)
        assert again["deliveryCount"] == attempt
        reply = api.post(f"{without}/consumer-groups/g/nack", json={"positions": [1]})
        assert reply.json()["deadLettered"] == 0
    assert api.get(without + ".dlq").status_code == 404


def test_a_lease_that_runs_out_counts_as_a_failure_and_goes_to_the_dead_letters(api):
    queue = make_queue(api, ackTimeout="300ms", **{
        "retryEnabled": True, "retryConfig": {"maxRetries": 1, "initialDelay": "100ms"}})
    [message_id] = publish(api, queue, 1)
    api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
    assert consume(api, queue, "g", count=1)[0]["deliveryCount"] == 1
    assert wait_for_delivery(api, queue)[0]["deliveryCount"] == 2  # timed out, retried
    dlq = queue + ".dlq"
    deadline = time.monotonic() + 20
    while api.get(dlq).status_code == 404 or api.get(dlq).json()["messageCount"] == 0:
        assert time.monotonic() < deadline, "the timed-out message never reached the DLQ"
        time.sleep(0.1)
    api.post(f"{dlq}/consumer-groups", json={"groupId": "ops"})
    [dead] = consume(api, dlq, "ops", count=10)
    assert (dead["id"], dead["headers"]["x-reason"], dead["headers"]["x-attempts"]) == (
        message_id, "ack timeout", "2")


def test_redrive_moves_dead_letters_back_in_order_without_their_origin_headers(api):
    queue = make_queue(api, **{"retryEnabled": True, "retryConfig": {"maxRetries": 0}})
    ids = publish(api, queue, 5)
    api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
    delivered = consume(api, queue, "g", count=5)
    reply = api.post(f"{queue}/consumer-groups/g/nack",
                     json={"ids": [m["id"] for m in delivered]})
    assert reply.json()["deadLettered"] == 5
    assert api.get(queue + ".dlq").json()["messageCount"] == 5

    first = api.post(f"{queue}/dlq/redrive", json={"limit": 2})
    assert first.status_code == 200 and first.json()["redriven"] == 2
    rest = api.post(f"{queue}/dlq/redrive")
    assert rest.json()["redriven"] == 3
    assert api.post(f"{queue}/dlq/redrive").json()["redriven"] == 0
    assert api.get(queue + ".dlq").json()["messageCount"] == 0
    back = consume(api, queue, "g", count=10)
    assert [m["id"] for m in back] == ids
    assert [m["position"] for m in back] == [6, 7, 8, 9, 10]
    assert all(not any(k.startswith("x-") for k in m["headers"]) for m in back)


def test_redrive_of_a_queue_without_dead_letters_moves_nothing(api):
    queue = make_queue(api)
    assert api.post(f"{queue}/dlq/redrive").json() == {"status": "success", "redriven": 0}
    assert api.post(f"{queue}/dlq/redrive", json={"limit": 0}).status_code == 400


# --- circuit breaker --------------------------------------------------------------------------


def test_a_groups_circuit_opens_holds_deliveries_goes_half_open_and_closes(api):
    queue = make_queue(api, circuitBreakerEnabled=True, circuitBreakerConfig={
        "errorThreshold": 0.5, "successThreshold": 2, "minimumRequests": 4,
        "openTimeout": "1s"})
    publish(api, queue, 20)
    api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
    api.post(f"{queue}/consumer-groups", json={"groupId": "other"})
    status = lambda name="g": api.get(f"{queue}/consumer-groups/{name}").json()["circuit"]  # noqa
    assert status() == "closed"
    batch = consume(api, queue, "g", count=4)
    api.post(f"{queue}/consumer-groups/g/ack", json={"ids": [batch[0]["id"]]})
    api.post(f"{queue}/consumer-groups/g/nack", json={"ids": [m["id"] for m in batch[1:]]})
    assert status() == "open"  # 3 of 4 outcomes failed

    # Open: a fetch delivers nothing, says so at once (no long poll), with Retry-After.
    started = time.monotonic()
    reply = api.get(f"{queue}/consumer-groups/g/messages", params={"count": 10, "timeout": 5})
    assert time.monotonic() - started < 2
    assert reply.json() == {"messages": [], "count": 0, "circuit": "open"}
    assert reply.headers["Retry-After"] == "1"
    assert len(consume(api, queue, "other", count=5)) == 5  # other groups are not affected

    # After openTimeout: half-open, successThreshold trial deliveries (the nacked first).
    deadline = time.monotonic() + 10
    while not (trials := consume(api, queue, "g", count=10)):
        assert time.monotonic() < deadline, "the circuit never went half-open"
        time.sleep(0.1)
    assert status() == "half-open"
    assert [m["deliveryCount"] for m in trials] == [2, 2]
    assert consume(api, queue, "g", count=10) == []  # no more until the trials settle
    api.post(f"{queue}/consumer-groups/g/ack", json={"ids": [m["id"] for m in trials]})
    assert status() == "closed"
    assert len(consume(api, queue, "g", count=10)) == 10


def test_a_failed_trial_opens_the_circuit_again(api):
    queue = make_queue(api, circuitBreakerEnabled=True, circuitBreakerConfig={
        "errorThreshold": 0.5, "successThreshold": 1, "minimumRequests": 2,
        "openTimeout": "500ms"})
    publish(api, queue, 5)
    api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
    batch = consume(api, queue, "g", count=2)
    api.post(f"{queue}/consumer-groups/g/nack", json={"ids": [m["id"] for m in batch]})
    deadline = time.monotonic() + 10
    while not (trial := consume(api, queue, "g", count=10)):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert len(trial) == 1
    api.post(f"{queue}/consumer-groups/g/nack", json={"ids": [trial[0]["id"]]})
    reply = api.get(f"{queue}/consumer-groups/g/messages", params={"count": 10})
    assert reply.json()["circuit"] == "open"
    assert api.get(f"{queue}/consumer-groups/g").json()["circuit"] == "open"


# --- settle: a batch's acks and nacks in one request -------------------------------------------


def test_settle_acks_and_nacks_a_batch_in_one_request(api):
    queue = make_queue(api, **RETRY)
    publish(api, queue, 4)
    api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
    batch = consume(api, queue, "g", count=4)
    ids = [m["id"] for m in batch]
    reply = api.post(f"{queue}/consumer-groups/g/settle",
                     json={"ack": ids[:3] + ["ghost"], "nack": [ids[3]], "reason": "bad row"})
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"acked": 3, "nacked": 1, "deadLettered": 0, "unknown": ["ghost"]}
    [entry] = pending(api, queue).values()
    assert (entry["id"], entry["state"], entry["lastNackReason"]) == (ids[3], "delayed",
                                                                      "bad row")
    [retried] = wait_for_delivery(api, queue)
    assert (retried["id"], retried["deliveryCount"]) == (ids[3], 2)


@pytest.mark.parametrize("body", [{}, {"ack": []}, {"ack": "x"}, {"nack": ["x"], "delay": 5},
                                  {"ack": ["x"] * 10_001}])
def test_a_bad_settle_is_a_400_and_changes_nothing(api, body):
    queue = make_queue(api)
    publish(api, queue, 1)
    api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
    [message] = consume(api, queue, "g", count=1)
    reply = api.post(f"{queue}/consumer-groups/g/settle", json=body)
    assert reply.status_code == 400, reply.text
    assert pending(api, queue)[message["id"]]["state"] == "delivered"


# --- delayed delivery ---------------------------------------------------------------------------


def test_a_delayed_message_is_invisible_until_its_time_and_keeps_its_position(api):
    queue = make_queue(api)
    api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
    api.post(f"{queue}/consumer-groups", json={"groupId": "auto", "ackMode": "auto"})
    api.post(f"{queue}/messages", json={"n": 1})
    later = api.post(f"{queue}/messages", json={"n": 2}, headers={"Delay": "2s"})
    assert later.status_code == 201 and later.json()["position"] == 2
    api.post(f"{queue}/messages", json={"n": 3})
    for group in ("g", "auto"):
        assert [m["position"] for m in consume(api, queue, group, count=10)] == [1, 3]
    entry = pending(api, queue)[later.json()["messageId"]]
    assert entry["state"] == "delayed" and 1 < seconds_until(entry["deadline"]) <= 2
    for group in ("g", "auto"):
        [due] = wait_for_delivery(api, queue, group)
        assert (due["position"], due["deliveryCount"], due["payload"]) == (2, 1, {"n": 2})
    assert api.get(f"{queue}/consumer-groups/auto").json()["pending"] == 0


def test_deliver_at_applies_to_a_whole_batch_and_a_past_time_delivers_at_once(api):
    queue = make_queue(api)
    api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
    at = datetime.fromtimestamp(time.time() + 1.5, timezone.utc).isoformat()
    reply = api.post(f"{queue}/messages/batch", json={"messages": [{"n": 1}, {"n": 2}]},
                     headers={"Deliver-At": at})
    assert reply.status_code == 201
    past = api.post(f"{queue}/messages", json={"n": 3},
                    headers={"Deliver-At": "2020-01-01T00:00:00Z"})
    assert [m["position"] for m in consume(api, queue, "g", count=10)] == [3]
    assert past.json()["position"] == 3
    got: list[int] = []
    while len(got) < 2:
        got += [m["position"] for m in wait_for_delivery(api, queue)]
    assert sorted(got) == [1, 2]


@pytest.mark.parametrize("headers", [{"Delay": "soon"}, {"Delay": "30"},
                                     {"Deliver-At": "tomorrow"},
                                     {"Delay": "1s", "Deliver-At": "2030-01-01T00:00:00Z"}])
def test_a_bad_delivery_time_is_a_400_and_stores_nothing(api, headers):
    queue = make_queue(api)
    reply = api.post(f"{queue}/messages", json={"n": 1}, headers=headers)
    assert reply.status_code == 400, reply.text
    assert api.get(queue).json()["messageCount"] == 0


@pytest.mark.slow
def test_a_delayed_message_survives_a_restart(broker_factory, tmp_path):
    data = tmp_path / "data"
    broker: Broker = broker_factory(data)
    with broker.client() as api:
        queue = queue_on_shard(api, 0)
        api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
        reply = api.post(f"{queue}/messages", json={"n": 1}, headers={"Delay": "3s"})
        assert reply.status_code == 201
        assert consume(api, queue, "g", count=10) == []  # held back: pending, delayed
    broker.kill_tree()
    broker = broker_factory(data)
    with broker.client() as api:
        [due] = wait_for_delivery(api, queue)
        assert (due["id"], due["deliveryCount"]) == (reply.json()["messageId"], 1)
        api.post(f"{queue}/consumer-groups", json={"groupId": "late"})
        assert len(consume(api, queue, "late", count=10)) == 1  # its time has come for all


# --- idempotent publish across restarts -----------------------------------------------------


@pytest.mark.slow
def test_an_idempotency_key_is_remembered_across_a_sigkill(broker_factory, tmp_path):
    data = tmp_path / "data"
    broker: Broker = broker_factory(data)
    with broker.client() as api:
        queue = queue_on_shard(api, 1)
        first = api.post(f"{queue}/messages", json={"n": 1},
                         headers={"Idempotency-Key": "order-77"})
        assert first.status_code == 201
        batch = api.post(f"{queue}/messages/batch", json={"messages": [{"n": 2}, {"n": 3}]},
                         headers={"Idempotency-Key": "batch-9"})
        assert batch.status_code == 201
    broker.kill_tree()
    broker = broker_factory(data)
    with broker.client() as api:
        again = api.post(f"{queue}/messages", json={"n": 1},
                         headers={"Idempotency-Key": "order-77"})
        assert again.status_code == 200
        assert (again.json()["messageId"], again.json()["position"], again.json()["duplicate"]) \
            == (first.json()["messageId"], 1, True)
        repeat = api.post(f"{queue}/messages/batch", json={"messages": [{"n": 2}, {"n": 3}]},
                          headers={"Idempotency-Key": "batch-9"})
        assert repeat.status_code == 200
        assert repeat.json()["messageIds"] == batch.json()["messageIds"]
        assert api.get(queue).json()["messageCount"] == 3


def test_a_queue_whose_dlq_name_would_be_too_long_keeps_retrying_instead(api):
    domain = unique("long")
    api.post("/api/domains", json={"name": domain})
    name = "q" * 126  # "{name}.dlq" would be 130 characters
    queue = f"/api/domains/{domain}/queues/{name}"
    assert api.post(f"/api/domains/{domain}/queues", json={"name": name, "config": {
        "retryEnabled": True, "retryConfig": {"maxRetries": 0}}}).status_code == 201
    publish(api, queue, 1)
    api.post(f"{queue}/consumer-groups", json={"groupId": "g"})
    [message] = consume(api, queue, "g", count=1)
    reply = api.post(f"{queue}/consumer-groups/g/nack", json={"ids": [message["id"]]})
    assert reply.json()["deadLettered"] == 0
    [again] = consume(api, queue, "g", count=1)
    assert (again["id"], again["deliveryCount"]) == (message["id"], 2)
