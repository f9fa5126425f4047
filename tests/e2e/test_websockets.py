"""WebSockets against the real broker (issue 8): live observation from every publish route
and every gateway worker, publishing over the socket, consumer mode with credits, slow
observers, and the socket's lifecycle."""

from __future__ import annotations

import os
import signal
import time

import httpx2
import orjson
import psutil
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from gortms.partition import shard_for
from tests.conftest import Broker, unique
from tests.e2e.test_durability import wait_healthy
from tests.e2e.test_messages import consume, make_queue
from tests.wsraw import RawSocket

QUIET_S = 0.5  # how long "nothing more arrives" is watched for


def ws_url(broker: Broker, queue: str) -> str:
    return broker.url.replace("http://", "ws://") + queue.replace("/api/domains/",
                                                                  "/api/ws/domains/")


def recv(ws: ClientConnection, timeout_s: float = 10.0) -> dict:
    return orjson.loads(ws.recv(timeout=timeout_s))


def open_socket(url: str) -> ClientConnection:
    # What `with connect(...)` does on entry: websockets 17.1+ warns about a bare connect().
    return connect(url, open_timeout=10).__enter__()


def observe(broker: Broker, queue: str) -> ClientConnection:
    ws = open_socket(ws_url(broker, queue))
    hello = recv(ws)
    assert hello["type"] == "connected", hello
    return ws


def frames_until(ws: ClientConnection, count: int, kind: str = "message",
                 timeout_s: float = 20.0) -> list[dict]:
    """The next `count` frames of `kind` (others are collected too and returned after)."""
    out: list[dict] = []
    deadline = time.monotonic() + timeout_s
    while sum(f["type"] == kind for f in out) < count:
        out.append(recv(ws, max(0.1, deadline - time.monotonic())))
    return out


def read(api: httpx2.Client, queue: str, group: str, count: int = 1000) -> list[dict]:
    """Messages through a group created on the way (the queue form of consume)."""
    reply = api.get(f"{queue}/messages", params={"group": group, "max": count})
    assert reply.status_code == 200, reply.text
    return reply.json()["messages"]


def nothing_more(ws: ClientConnection) -> None:
    with pytest.raises(TimeoutError):
        ws.recv(timeout=QUIET_S)


def worker_of(broker: Broker, ws: ClientConnection | httpx2.Client, workers: int) -> int:
    """Which gateway worker serves the client's connection (by its local port)."""
    if isinstance(ws, ClientConnection):
        port = ws.socket.getsockname()[1]
    else:
        port = ws._transport._pool.connections[0]._connection._network_stream.get_extra_info(
            "socket").getsockname()[1]
    for worker in range(workers):
        for conn in psutil.Process(broker.gateway_pid(worker)).net_connections("tcp"):
            if conn.raddr and conn.raddr.port == port:
                return worker
    raise AssertionError(f"no gateway worker holds the connection from port {port}")


# --- observe ------------------------------------------------------------------------------------


def test_an_observer_sees_every_publish_route_with_id_position_timestamp_headers_payload(
        shared_broker, api):
    queue = make_queue(api)
    domain = queue.split("/")[3]
    with observe(shared_broker, queue) as ws, observe(shared_broker, queue) as other:
        one = api.post(f"{queue}/messages", json={"n": 1}, headers={"X-Header-Source": "rest"})
        batch = api.post(f"{queue}/messages/batch", json={"messages": [{"n": 2}, {"n": 3}]})
        assert one.status_code == batch.status_code == 201
        other.send(orjson.dumps({"type": "publish", "payload": {"n": 4},
                                 "headers": {"source": "ws"}}).decode())
        seen = [f for f in frames_until(ws, 4) if f["type"] == "message"]
        ws.send('{"type":"ping"}')
        assert recv(ws) == {"type": "pong"}
        assert [m["payload"] for m in seen] == [{"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}]
        assert [m["position"] for m in seen] == [1, 2, 3, 4]
        assert seen[0]["id"] == one.json()["messageId"]
        assert [m["id"] for m in seen[1:3]] == batch.json()["messageIds"]
        assert seen[0]["headers"] == {"source": "rest"} and seen[3]["headers"] == {
            "source": "ws"}
        assert all(m["timestamp"].endswith("Z") for m in seen)
        stored = read(api, queue, "check")
        assert [(m["id"], m["timestamp"]) for m in stored] == [
            (m["id"], m["timestamp"]) for m in seen]
    assert domain


def test_connected_names_the_queue_and_the_position_the_stream_starts_at(shared_broker, api):
    queue = make_queue(api)
    assert api.post(f"{queue}/messages/batch",
                    json={"messages": [{"n": i} for i in range(5)]}).status_code == 201
    with open_socket(ws_url(shared_broker, queue)) as ws:
        hello = recv(ws)
        assert hello["type"] == "connected" and hello["queue"] == "q"
        assert hello["domain"] == queue.split("/")[3] and hello["position"] == 6
        assert len(hello["subscriptionId"]) == 36
        nothing_more(ws)  # what was published before is not replayed to an observer


def test_observers_on_every_worker_see_publishes_made_through_every_worker(broker_factory):
    broker = broker_factory(GORTMS_GATEWAY_WORKERS="2")
    with broker.client() as api:
        queue = make_queue(api)
    observers: dict[int, ClientConnection] = {}
    publishers: dict[int, httpx2.Client] = {}
    spare = []
    for _ in range(40):  # connections land on either worker: keep one of each
        if len(observers) == 2 and len(publishers) == 2:
            break
        ws = observe(broker, queue)
        observers.setdefault(worker_of(broker, ws, 2), ws) is ws or spare.append(ws)
        client = broker.client()
        client.get("/health")
        publishers.setdefault(worker_of(broker, client, 2), client) is client or \
            spare.append(client)
    assert len(observers) == 2 and len(publishers) == 2, "every connection took one worker"
    try:
        ids = []
        for worker in (0, 1):
            reply = publishers[worker].post(f"{queue}/messages", json={"from": worker})
            assert reply.status_code == 201
            ids.append(reply.json()["messageId"])
        for ws in observers.values():
            assert [f["id"] for f in frames_until(ws, 2)] == ids
    finally:
        for item in [*observers.values(), *publishers.values(), *spare]:
            item.close()


# --- publish ------------------------------------------------------------------------------------


def test_publishing_over_the_socket_answers_in_order_once_durable(shared_broker, api):
    queue = make_queue(api)
    with observe(shared_broker, queue) as ws:
        for i in range(200):  # pipelined: nothing awaited in between
            ws.send(orjson.dumps({"type": "publish", "payload": {"i": i},
                                  "requestId": i}).decode())
        frames = frames_until(ws, 200, "published")
    published = [f for f in frames if f["type"] == "published"]
    assert [f["requestId"] for f in published] == list(range(200))
    assert [f["position"] for f in published] == list(range(1, 201))
    stored = read(api, queue, "g")
    assert [m["id"] for m in stored] == [f["messageId"] for f in published]
    assert [m["payload"]["i"] for m in stored] == list(range(200))


def test_publish_errors_are_error_frames_and_the_socket_stays_usable(broker_factory):
    broker = broker_factory(GORTMS_HTTP_WEBSOCKET_MAXMESSAGEBYTES="2048")
    with broker.client() as api:
        queue = make_queue(api, schema={"fields": {"amount": "number"}})
        with observe(broker, queue) as ws:
            bad = [
                ({"type": "publish", "payload": {"amount": "lots"}, "requestId": "a"},
                 "schema_violation"),
                ({"type": "publish", "payload": [1]}, "invalid_json"),
                ({"type": "publish", "payload": {"amount": 1, "pad": "x" * 3000}},
                 "payload_too_large"),
                ({"type": "publish", "payload": {"amount": 1}, "headers": {"h": 5}},
                 "invalid_parameter"),
                ({"type": "dance"}, "invalid_parameter"),
                ({"type": "ack", "ids": [1]}, "invalid_parameter"),  # not consuming
            ]
            for frame, _ in bad:
                ws.send(orjson.dumps(frame).decode())
            ws.send("not json")
            errors = [recv(ws) for _ in range(len(bad) + 1)]
            assert [e["error"] for e in errors] == [code for _, code in bad] + ["invalid_json"]
            assert all(e["type"] == "error" and e["message"] for e in errors)
            assert errors[0]["requestId"] == "a" and "amount" in errors[0]["message"]
            ws.send('{"type":"publish","payload":{"amount":2}}')
            frames = [recv(ws), recv(ws)]  # the answer, and the observer's frame (any order)
            assert sorted(f["type"] for f in frames) == ["message", "published"]
            assert {f["position"] for f in frames} == {1}
            assert [f["payload"] for f in frames if f["type"] == "message"] == [{"amount": 2}]
        assert api.get(queue).json()["messageCount"] == 1


# --- consumer mode ------------------------------------------------------------------------------


def consumer(broker: Broker, queue: str, credits: int, group: str = "g", **more
             ) -> ClientConnection:
    ws = observe(broker, queue)
    ws.send(orjson.dumps({"type": "consume", "group": group, "credits": credits,
                          **more}).decode())
    reply = recv(ws)
    assert reply["type"] == "consuming" and reply["credits"] == credits, reply
    return ws


def test_a_consumer_never_gets_more_deliveries_than_credits_granted(shared_broker, api):
    queue = make_queue(api)
    assert api.post(f"{queue}/messages/batch",
                    json={"messages": [{"n": i} for i in range(10)]}).status_code == 201
    with consumer(shared_broker, queue, 3) as ws:
        first = [recv(ws) for _ in range(3)]
        nothing_more(ws)
        assert [m["payload"]["n"] for m in first] == [0, 1, 2]
        assert all(m["ackId"] == m["position"] and m["deliveryCount"] == 1 for m in first)
        ws.send('{"type":"ack","ids":[1,2,3]}')  # acks give no credit back
        assert recv(ws) == {"type": "acked", "acked": 3, "unknown": []}
        nothing_more(ws)
        ws.send('{"type":"credit","count":4}')
        more = [recv(ws) for _ in range(4)]
        nothing_more(ws)
        assert [m["position"] for m in more] == [4, 5, 6, 7]
        group = api.get(f"{queue}/consumer-groups/g").json()
        assert group["pending"] == 4 and group["lag"] == 3


def test_websocket_acks_and_nacks_settle_like_rest_with_retries_and_dead_letters(
        shared_broker, api):
    queue = make_queue(api, retryEnabled=True, retryConfig={
        "maxRetries": 1, "initialDelay": "100ms", "factor": 1.0, "maxDelay": "1s"})
    assert api.post(f"{queue}/messages/batch",
                    json={"messages": [{"n": 1}, {"n": 2}]}).status_code == 201
    with consumer(shared_broker, queue, 10) as ws:
        a, b = recv(ws), recv(ws)
        ws.send(orjson.dumps({"type": "nack", "ids": [a["ackId"]], "reason": "boom",
                              "requestId": 9}).decode())
        assert recv(ws) == {"type": "nacked", "nacked": 1, "deadLettered": 0, "unknown": [],
                            "requestId": 9}
        ws.send(orjson.dumps({"type": "ack", "ids": [b["id"]]}).decode())  # by message id
        assert recv(ws)["acked"] == 1
        again = recv(ws)  # the retry, after its backoff
        assert (again["id"], again["deliveryCount"]) == (a["id"], 2)
        ws.send(orjson.dumps({"type": "nack", "ids": [again["ackId"]]}).decode())
        assert recv(ws)["deadLettered"] == 1  # its one retry is used up
    dead = read(api, queue + ".dlq", "d")
    assert [m["headers"]["x-original-id"] for m in dead] == [a["id"]]
    assert dead[0]["headers"]["x-attempts"] == "2"
    group = api.get(f"{queue}/consumer-groups/g").json()
    assert group["pending"] == 0 and group["lag"] == 0


def test_closing_a_consumer_socket_gives_its_unsettled_messages_back_at_once(shared_broker,
                                                                              api):
    queue = make_queue(api, ackTimeout="5m")
    assert api.post(f"{queue}/messages/batch",
                    json={"messages": [{"n": i} for i in range(5)]}).status_code == 201
    with consumer(shared_broker, queue, 5) as ws:
        got = [recv(ws) for _ in range(5)]
        ws.send(orjson.dumps({"type": "ack", "ids": [got[0]["ackId"]]}).decode())
        assert recv(ws)["acked"] == 1
        ws.send(orjson.dumps({"type": "extend", "ids": [got[1]["ackId"]], "by": "10m"}
                             ).decode())
        extended = recv(ws)
        assert extended["type"] == "extended" and extended["extended"] == 1
    # Not after the 5 minute lease: now (the long poll waits only for the release).
    again = consume(api, queue, "g", count=10, timeout=10, consumer="rest")
    assert sorted(m["position"] for m in again) == [2, 3, 4, 5]
    assert all(m["deliveryCount"] == 2 for m in again)


def test_a_consumer_waiting_for_messages_gets_them_as_they_are_published(shared_broker, api):
    queue = make_queue(api)
    with consumer(shared_broker, queue, 2, consumer="w1") as ws:
        nothing_more(ws)
        assert api.post(f"{queue}/messages", json={"late": True}).status_code == 201
        got = recv(ws)
        assert got["payload"] == {"late": True} and got["ackId"] == 1
        consumers = api.get(f"{queue}/consumer-groups/g").json()["consumers"]
        assert [c["id"] for c in consumers] == ["w1"]


# --- slow observers -----------------------------------------------------------------------------


def test_a_stalled_observer_gets_lagged_and_slows_nobody(broker_factory):
    broker = broker_factory(GORTMS_HTTP_WEBSOCKET_SENDBUFFERBYTES="65536",
                            GORTMS_HTTP_WEBSOCKET_PINGINTERVAL="0")
    with broker.client() as api:
        queue = make_queue(api)
        path = queue.replace("/api/domains/", "/api/ws/domains/")
        stalled = RawSocket(broker.url, path, rcvbuf=4096)  # reads nothing until the end
        assert stalled.frame()[1].startswith(b'{"type":"connected"')
        with observe(broker, queue) as reader:
            # 12 MB: more than the kernel's socket buffers (4 MiB each way at most) hold.
            total, batches = 0, 40
            for b in range(batches):  # publishers at full speed: nothing waits on observers
                reply = api.post(f"{queue}/messages/batch", json={
                    "messages": [{"b": b, "i": i, "pad": "x" * 250} for i in range(1000)]})
                assert reply.status_code == 201
                total += 1000
            received, lagged = 0, 0
            deadline = time.monotonic() + 60
            while received + lagged < total and time.monotonic() < deadline:
                frame = recv(reader)
                received += frame["type"] == "message"
                lagged += frame.get("dropped", 0)
            assert received + lagged == total and received > 0
        frames = []  # now read what the stalled one got
        while True:
            got = stalled.frame(timeout_s=3)
            if got is None:
                break
            frames.append(orjson.loads(got[1]))
            if sum(f["type"] == "message" for f in frames) + sum(
                    f.get("dropped", 0) for f in frames) >= total:
                break
        stalled.close()
        messages = [f for f in frames if f["type"] == "message"]
        dropped = sum(f["dropped"] for f in frames if f["type"] == "lagged")
        assert dropped > 0 and len(messages) + dropped == total
        positions = [m["position"] for m in messages]
        assert positions == sorted(positions)  # in order, with holes where it lagged
        assert api.get(queue).json()["lastPosition"] == total


# --- lifecycle ----------------------------------------------------------------------------------


def closed_with(broker: Broker, path: str) -> tuple[int, str]:
    with open_socket(broker.url.replace("http://", "ws://") + path) as ws:
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None
    return info.value.rcvd.code, info.value.rcvd.reason


def test_unknown_or_malformed_targets_are_refused_with_a_4000_range_code(shared_broker, api):
    queue = make_queue(api)
    domain = queue.split("/")[3]
    code, reason = closed_with(shared_broker, f"/api/ws/domains/{unique('none')}/queues/q")
    assert code == 4404 and "domain" in reason
    code, reason = closed_with(shared_broker, f"/api/ws/domains/{domain}/queues/nope")
    assert code == 4404 and "nope" in reason
    code, reason = closed_with(shared_broker, f"/api/ws/domains/{domain}/queues/a%20b")
    assert code == 4400 and "name" in reason
    code, _ = closed_with(shared_broker, "/api/ws/elsewhere")
    assert code == 4404


def test_deleting_a_queue_closes_its_observers_and_consumers_with_a_reason(shared_broker,
                                                                            api):
    queue = make_queue(api)
    with observe(shared_broker, queue) as watcher, consumer(shared_broker, queue, 5) as member:
        assert api.delete(queue).status_code == 200
        for ws in (watcher, member):
            with pytest.raises(ConnectionClosed) as info:
                while True:
                    ws.recv(timeout=10)
            assert info.value.rcvd is not None
            assert info.value.rcvd.code in (4410, 4404) and "q" in info.value.rcvd.reason
        assert watcher.close_code == 4410


def test_a_peer_that_never_answers_pings_is_dropped_and_live_ones_stay(broker_factory):
    broker = broker_factory(GORTMS_HTTP_WEBSOCKET_PINGINTERVAL="500ms",
                            GORTMS_HTTP_WEBSOCKET_PINGTIMEOUT="500ms")
    with broker.client() as api:
        queue = make_queue(api)
    path = queue.replace("/api/domains/", "/api/ws/domains/")
    dead = RawSocket(broker.url, path)  # never answers a ping
    with observe(broker, queue) as alive:  # the library answers pings by itself
        frames = dead.json_frames(timeout_s=15)  # until the server drops the connection
        assert frames[0]["type"] == "connected"
        assert frames[-1].get("close") == 1011
        alive.send('{"type":"ping"}')
        assert recv(alive) == {"type": "pong"}
    dead.close()


def test_stopping_the_broker_closes_sockets_cleanly(broker_factory):
    broker = broker_factory()
    with broker.client() as api:
        queue = make_queue(api)
    ws = observe(broker, queue)
    assert broker.stop() == 0
    with pytest.raises(ConnectionClosed) as info:
        ws.recv(timeout=30)
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 1001 and "shutting down" in info.value.rcvd.reason


def test_an_observer_outlives_a_restart_of_its_queues_shard_and_misses_nothing_unreported(
        broker_factory):
    broker = broker_factory()
    with broker.client() as api:
        queue = make_queue(api)
        domain = queue.split("/")[3]
        with observe(broker, queue) as ws:
            assert api.post(f"{queue}/messages", json={"n": 0}).status_code == 201
            assert frames_until(ws, 1)[-1]["payload"] == {"n": 0}
            after = len(broker.lines)
            os.kill(broker.shard_pid(shard_for(domain, "q", 2)), signal.SIGKILL)
            wait_healthy(broker, after)
            published = 1
            # One publish right after the restart may beat the gateway's resubscription and
            # be followed by no other: the handshake on reconnect reports it all the same.
            for n in range(1, 2):
                for _ in range(100):
                    reply = api.post(f"{queue}/messages", json={"n": n})
                    if reply.status_code == 201:
                        break
                    assert reply.status_code == 503, reply.text
                    time.sleep(0.05)
                published += 1
            received, lagged, last = 1, 0, None
            while received + lagged < published:
                frame = recv(ws)
                if frame["type"] == "message":
                    received += 1
                    last = frame["payload"]["n"]
                lagged += frame.get("dropped", 0)
            assert received + lagged == published and last in (0, 1)


def test_a_websocket_delivery_has_the_queues_lease_and_is_redelivered_when_it_runs_out(
        shared_broker, api):
    queue = make_queue(api, ackTimeout="1s")
    assert api.post(f"{queue}/messages", json={"slow": True}).status_code == 201
    with consumer(shared_broker, queue, 1) as ws:
        held = recv(ws)
        [entry] = api.get(f"{queue}/consumer-groups/g/pending").json()["messages"]
        assert entry["position"] == held["position"] and entry["consumer"].startswith("ws-")
        again = consume(api, queue, "g", count=1, timeout=10, consumer="rest")  # after 1 s
        assert [(m["id"], m["deliveryCount"]) for m in again] == [(held["id"], 2)]


def test_a_batch_consumer_gets_one_messages_frame_per_fetch_within_its_credits(shared_broker,
                                                                               api):
    queue = make_queue(api)
    assert api.post(f"{queue}/messages/batch",
                    json={"messages": [{"n": i} for i in range(7)]}).status_code == 201
    with consumer(shared_broker, queue, 5, batch=True) as ws:
        frame = recv(ws)
        assert frame["type"] == "messages" and frame["count"] == 5
        assert [m["ackId"] for m in frame["messages"]] == [1, 2, 3, 4, 5]
        assert all(m["type"] == "message" and m["deliveryCount"] == 1
                   for m in frame["messages"])
        nothing_more(ws)
        ws.send(orjson.dumps({"type": "ack", "ids": [1, 2, 3, 4, 5]}).decode())
        assert recv(ws)["acked"] == 5
        ws.send('{"type":"credit","count":10}')
        rest = recv(ws)
        assert rest["type"] == "messages" and [m["payload"]["n"] for m in rest["messages"]] == [
            5, 6]


def test_a_batch_observer_gets_messages_frames_with_every_message_in_order(shared_broker, api):
    queue = make_queue(api)
    with open_socket(ws_url(shared_broker, queue) + "?batch=true") as ws:
        assert recv(ws)["type"] == "connected"
        for start in (0, 3):
            assert api.post(f"{queue}/messages/batch", json={
                "messages": [{"n": start + i} for i in range(3)]}).status_code == 201
        seen: list[dict] = []
        while len(seen) < 6:
            frame = recv(ws)
            assert frame["type"] == "messages" and frame["count"] == len(frame["messages"])
            seen += frame["messages"]
        assert [m["payload"]["n"] for m in seen] == list(range(6))
        assert [m["position"] for m in seen] == list(range(1, 7))
    code, reason = closed_with(shared_broker, queue.replace(
        "/api/domains/", "/api/ws/domains/") + "?batch=maybe")
    assert code == 4400 and "batch" in reason


def test_account_record_events_do_not_close_the_sockets_of_a_domain_named_alike(
        broker_factory):
    # A successful login deletes the user's failure record, announced on the catalog topic
    # as a record of the collection "logins": not the deletion of a domain "logins".
    broker = broker_factory()
    with broker.client() as api:
        assert api.post("/api/domains", json={"name": "logins"}).status_code == 201
        assert api.post("/api/domains/logins/queues", json={"name": "q"}).status_code == 201
        queue = "/api/domains/logins/queues/q"
        assert api.post("/api/auth/bootstrap", json={
            "username": "admin", "password": "correct horse battery"}).status_code == 201
        with observe(broker, queue) as watcher, consumer(broker, queue, 5) as member:
            bad = api.post("/api/auth/login", json={"username": "admin", "password": "nope"})
            assert bad.status_code == 401
            good = api.post("/api/auth/login", json={"username": "admin",
                                                     "password": "correct horse battery"})
            assert good.status_code == 200
            assert api.post(f"{queue}/messages", json={"after": "login"}).status_code == 201
            [seen] = [f for f in frames_until(watcher, 1) if f["type"] == "message"]
            assert seen["payload"] == {"after": "login"}
            delivered = frames_until(member, 1)
            assert [f["payload"] for f in delivered if f["type"] == "message"] == [
                {"after": "login"}]


def test_a_socket_opened_with_observe_false_publishes_and_consumes_without_the_stream(
        shared_broker, api):
    queue = make_queue(api)
    assert api.post(f"{queue}/messages", json={"before": True}).status_code == 201
    with open_socket(ws_url(shared_broker, queue) + "?observe=false") as ws, \
            observe(shared_broker, queue) as watcher:
        hello = recv(ws)
        assert hello["type"] == "connected" and hello["position"] == 2
        ws.send(orjson.dumps({"type": "publish", "payload": {"n": 1}}).decode())
        assert recv(ws)["type"] == "published"
        assert api.post(f"{queue}/messages", json={"n": 2}).status_code == 201
        seen = [f for f in frames_until(watcher, 2) if f["type"] == "message"]
        assert [f["payload"] for f in seen] == [{"n": 1}, {"n": 2}]
        ws.send(orjson.dumps({"type": "ping"}).decode())
        assert recv(ws)["type"] == "pong"  # and no message frame came before it
        ws.send(orjson.dumps({"type": "consume", "group": "g", "credits": 5}).decode())
        frames = [recv(ws) for _ in range(4)]
        assert frames[0]["type"] == "consuming"
        assert [f["payload"] for f in frames[1:]] == [{"before": True}, {"n": 1}, {"n": 2}]


def test_observe_must_be_a_boolean_and_the_queue_must_exist(shared_broker, api):
    queue = make_queue(api)
    for url, code in ((ws_url(shared_broker, queue) + "?observe=maybe", 4400),
                      (ws_url(shared_broker, queue + "-none") + "?observe=false", 4404)):
        with open_socket(url) as ws:
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=10)
            assert info.value.rcvd is not None and info.value.rcvd.code == code
