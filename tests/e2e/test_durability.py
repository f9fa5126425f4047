"""Nothing acknowledged is lost: publishes (201), acks and group positions survive SIGKILL of
a shard and of the whole process tree, taken while clients are writing."""

from __future__ import annotations

import os
import signal
import threading
import uuid

import httpx2
import pytest

from gortms.partition import shard_for
from tests.conftest import Broker

pytestmark = pytest.mark.slow

QUEUES = [f"q{i}" for i in range(6)]  # spread over both shards


class Publishers:
    """Threads publishing with known ids until stopped; they record what was answered 201."""

    def __init__(self, broker: Broker, domain: str, threads: int = 4) -> None:
        self.broker = broker
        self.domain = domain
        self.acknowledged: set[str] = set()
        self.refused = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def _run(self, worker: int) -> None:
        with httpx2.Client(base_url=self.broker.url, timeout=15) as client:
            n = 0
            while not self.stop.is_set():
                n += 1
                queue = QUEUES[(worker + n) % len(QUEUES)]
                message_id = f"w{worker}-{n}-{uuid.uuid4().hex[:6]}"
                try:
                    reply = client.post(f"/api/domains/{self.domain}/queues/{queue}/messages",
                                        json={"n": n}, headers={"X-Message-Id": message_id})
                except httpx2.TransportError:
                    reply = None
                with self.lock:
                    if reply is not None and reply.status_code == 201:
                        self.acknowledged.add(message_id)
                    else:
                        self.refused += 1

    def __enter__(self) -> Publishers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)

    def wait_for(self, count: int) -> None:
        """Block (bounded) until `count` more publishes have been acknowledged."""
        target = len(self.acknowledged) + count
        for _ in range(3000):
            if len(self.acknowledged) >= target:
                return
            self.stop.wait(0.01)
        raise AssertionError(f"only {len(self.acknowledged)} publishes acknowledged")


def setup_domain(client: httpx2.Client, domain: str = "durable") -> None:
    assert client.post("/api/domains", json={"name": domain}).status_code == 201
    for queue in QUEUES:
        reply = client.post(f"/api/domains/{domain}/queues",
                            json={"name": queue, "config": {"maxSize": 10_000_000}})
        assert reply.status_code == 201


def read_everything(client: httpx2.Client, domain: str, group: str) -> list[str]:
    """Every message id of every queue, through a fresh group starting at earliest."""
    ids: list[str] = []
    for queue in QUEUES:
        base = f"/api/domains/{domain}/queues/{queue}"
        client.post(f"{base}/consumer-groups", json={"groupId": group})
        while True:
            reply = client.get(f"{base}/consumer-groups/{group}/messages",
                               params={"count": 1000})
            assert reply.status_code == 200, reply.text
            batch = reply.json()["messages"]
            if not batch:
                break
            ids.extend(m["id"] for m in batch)
            client.post(f"{base}/consumer-groups/{group}/ack",
                        json={"ids": [m["id"] for m in batch]})
    return ids


def wait_healthy(broker: Broker, after: int) -> None:
    """Wait for the supervisor to log both shards ready again (from log line `after` on)."""
    broker.wait_for_line(r"shard-\d ready", timeout_s=15, after=after)
    with broker.client() as client:
        for _ in range(500):
            if client.get("/health").status_code == 200:
                return
            threading.Event().wait(0.01)
    raise AssertionError("the broker never became healthy again")


class GroupWork:
    """Before the kill: a group with some deliveries acked and some not, and a replayed group.
    After it: what was acknowledged must have survived, and nothing else."""

    REPLAY_TO = 5

    def __init__(self, client: httpx2.Client, base: str) -> None:
        self.base = base
        client.post(f"{base}/consumer-groups", json={"groupId": "worker"})
        client.post(f"{base}/consumer-groups", json={"groupId": "replayed"})

    def settle_some(self, client: httpx2.Client) -> None:
        delivered = client.get(f"{self.base}/consumer-groups/worker/messages",
                               params={"count": 20}).json()["messages"]
        assert len(delivered) == 20
        self.acked_ids = [m["id"] for m in delivered[:15]]
        self.unacked_ids = [m["id"] for m in delivered[15:]]
        assert client.post(f"{self.base}/consumer-groups/worker/ack",
                           json={"ids": self.acked_ids}).json()["acked"] == 15
        assert client.put(f"{self.base}/consumer-groups/replayed",
                          json={"position": self.REPLAY_TO}).status_code == 200

    def check_survived(self, client: httpx2.Client) -> None:
        replayed = client.get(f"{self.base}/consumer-groups/replayed").json()
        assert replayed["position"] == self.REPLAY_TO
        redelivered = client.get(f"{self.base}/consumer-groups/worker/messages",
                                 params={"count": 1000}).json()["messages"]
        ids = [m["id"] for m in redelivered]
        assert not set(self.acked_ids) & set(ids)  # acks survived
        # The unacked ones are still leased (ackTimeout 30s): not redelivered early, and
        # their consumer can still ack them.
        assert not set(self.unacked_ids) & set(ids)
        pending = client.get(f"{self.base}/consumer-groups/worker/pending").json()["messages"]
        leased = {m["id"]: m["state"] for m in pending}
        assert {i: leased.get(i) for i in self.unacked_ids} == {
            i: "delivered" for i in self.unacked_ids}
        assert client.post(f"{self.base}/consumer-groups/worker/ack",
                           json={"ids": self.unacked_ids}).json()["acked"] == 5


def test_publishes_acks_and_positions_survive_sigkill_of_a_shard_under_load(broker_factory):
    broker = broker_factory()
    with broker.client() as client:
        setup_domain(client)
        queue = next(q for q in QUEUES if shard_for("durable", q, 2) == 0)
        work = GroupWork(client, f"/api/domains/durable/queues/{queue}")
    with Publishers(broker, "durable") as publishers, broker.client() as client:
        publishers.wait_for(300)
        work.settle_some(client)
        mark = len(broker.lines)
        os.kill(broker.shard_pid(0), signal.SIGKILL)
        wait_healthy(broker, mark)
        publishers.wait_for(300)
    with broker.client() as client:
        work.check_survived(client)
        stored = read_everything(client, "durable", "audit")
    assert publishers.acknowledged <= set(stored)
    assert len(stored) == len(set(stored))  # no position was reused or duplicated
    assert "exited with signal SIGKILL" in broker.output()


def test_publishes_acks_and_positions_survive_sigkill_of_the_whole_tree(broker_factory,
                                                                        tmp_path):
    data_dir = tmp_path / "data"
    broker = broker_factory(data_dir)
    with broker.client() as client:
        setup_domain(client)
        work = GroupWork(client, "/api/domains/durable/queues/q0")
    with Publishers(broker, "durable") as publishers, broker.client() as client:
        publishers.wait_for(200)
        work.settle_some(client)
        publishers.wait_for(100)
        broker.kill_tree()
    assert broker.process.returncode == -signal.SIGKILL, broker.output()

    again = broker_factory(data_dir)
    with again.client() as client:
        work.check_survived(client)
        stored = read_everything(client, "durable", "audit")
    assert publishers.acknowledged <= set(stored)
    assert len(stored) == len(set(stored))


def test_non_persistent_queue_skips_the_wal_but_never_reuses_positions(broker_factory,
                                                                      tmp_path):
    data_dir = tmp_path / "data"
    broker = broker_factory(data_dir)
    with broker.client() as client:
        client.post("/api/domains", json={"name": "d"})
        client.post("/api/domains/d/queues", json={"name": "fast",
                                                  "config": {"isPersistent": False}})
        client.post("/api/domains/d/queues", json={"name": "safe"})
        for queue in ("fast", "safe"):
            for i in range(3):
                reply = client.post(f"/api/domains/d/queues/{queue}/messages", json={"i": i})
                assert reply.status_code == 201
    broker.kill_tree()
    again = broker_factory(data_dir)
    with again.client() as client:
        fast = client.get("/api/domains/d/queues/fast").json()
        safe = client.get("/api/domains/d/queues/safe").json()
        assert safe["messageCount"] == 3
        assert fast["messageCount"] == 0  # in the memtable only: lost with the process
        reply = client.post("/api/domains/d/queues/fast/messages", json={"after": "crash"})
        assert reply.json()["position"] == 4
