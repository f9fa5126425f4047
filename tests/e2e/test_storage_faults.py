"""A full or failing disk: the broker refuses writes cleanly, keeps serving reads, never loses
what it acknowledged, and recovers by itself once space is back.

Each test mounts a small tmpfs of its own (root only; CI runs as root) as the data dir, so
filling the disk fills nothing else, and unmounts it afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Iterator

import httpx2
import orjson
import pytest

from gortms.partition import shard_for
from tests.conftest import Broker, start_broker

pytestmark = pytest.mark.slow

PAYLOAD = "x" * 900  # about 1 KB per message
BATCH = 100


@pytest.fixture
def small_fs(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A tmpfs at tmp_path/fs (64 MiB, or the test's `fs_size` mark), removed at the end
    whatever happened."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root (CI runs as root)")
    mark = request.node.get_closest_marker("fs_size")
    size = mark.args[0] if mark else "64m"
    mount_point = tmp_path / "fs"
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                             str(mount_point)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)], check=False)


def free_bytes(path: Path) -> int:
    info = os.statvfs(path)
    return info.f_bavail * info.f_frsize


class Ledger:
    """What was answered 201, by message id, per queue: none of it may ever go missing."""

    def __init__(self, client: httpx2.Client, domain: str) -> None:
        self.client = client
        self.domain = domain
        self.acknowledged: dict[str, list[str]] = {}

    def create(self, queues: list[str], group: str = "workers") -> None:
        """The domain, its `queues`, and on each a consumer group from the start."""
        client, base = self.client, f"/api/domains/{self.domain}/queues"
        assert client.post("/api/domains", json={"name": self.domain}).status_code == 201
        for queue in queues:  # maxSize: these tests fill the disk, not the queue
            assert client.post(base, json={"name": queue, "config": {"maxSize": 10**9}}
                               ).status_code == 201
            reply = client.post(f"{base}/{queue}/consumer-groups",
                                json={"groupId": group, "start": "earliest"})
            assert reply.status_code == 201, reply.text

    def publish(self, queue: str) -> httpx2.Response:
        ids = [f"m-{uuid.uuid4().hex}" for _ in range(BATCH)]
        reply = self.client.post(f"/api/domains/{self.domain}/queues/{queue}/messages/batch",
                                 json={"messages": [{"id": i, "pad": PAYLOAD} for i in ids]})
        assert reply.status_code != 500, reply.text
        if reply.status_code == 201:
            assert reply.json()["messageIds"] == ids
            self.acknowledged.setdefault(queue, []).extend(ids)
        return reply

    def fill(self, queue: str, until: int = 1000) -> httpx2.Response:
        """Publish batches until one is refused; that refusal."""
        for _ in range(until):
            reply = self.publish(queue)
            if reply.status_code != 201:
                return reply
        raise AssertionError(f"{until} batches of {BATCH} fitted on a 64 MiB disk")

    def read_all(self, queue: str) -> list[str]:
        """Every id in `queue`, through a fresh group from the start (creating it writes)."""
        group = f"audit-{uuid.uuid4().hex[:8]}"
        base = f"/api/domains/{self.domain}/queues/{queue}/consumer-groups"
        reply = self.client.post(base, json={"groupId": group, "start": "earliest"})
        assert reply.status_code == 201, reply.text
        ids: list[str] = []
        for _ in range(10_000):
            reply = self.client.get(f"{base}/{group}/messages", params={"count": 1000})
            assert reply.status_code == 200, reply.text
            batch = reply.json()["messages"]
            if not batch:
                return ids
            ids.extend(m["id"] for m in batch)
            reply = self.client.post(f"{base}/{group}/ack", json={"ids": [m["id"] for m in batch]})
            assert reply.status_code == 200, reply.text
        raise AssertionError("the queue did not end")

    def check_nothing_lost(self) -> None:
        for queue, ids in self.acknowledged.items():
            found = self.read_all(queue)
            assert set(ids) <= set(found), f"{len(set(ids) - set(found))} acknowledged " \
                                           f"messages of {queue} are missing"


def shards_report(broker: Broker) -> list[dict]:
    """`gortms shards --json`: what each shard says about itself."""
    report = subprocess.run(
        [sys.executable, "-m", "gortms", "shards", "--json"], capture_output=True, text=True,
        env={**os.environ, "GORTMS_GENERAL_DATADIR": str(broker.data_dir)}, timeout=30)
    assert report.returncode == 0, report.stderr
    return orjson.loads(report.stdout)["shards"]


def spread(domain: str, count: int) -> list[str]:
    """`count` queue names of `domain`, owned by the two shards in turn."""
    names: list[str] = []
    for i in range(1000):
        if shard_for(domain, f"q{i}", 2) == len(names) % 2:
            names.append(f"q{i}")
            if len(names) == count:
                return names
    raise AssertionError("crc32 stopped spreading")


def shard_storage(client: httpx2.Client) -> list[str]:
    reply = client.get("/health")
    assert reply.status_code == 200, reply.text
    return [s["storage"] for s in reply.json()["shardStorage"]]


def storage_when_up(client: httpx2.Client) -> list[str] | None:
    """shard_storage once every shard answers again (a restarted shard is "ready" a moment
    before the gateway has reconnected to it: /health says 503 meanwhile)."""
    reply = client.get("/health")
    if reply.status_code == 503 and reply.json()["shards"]["up"] < reply.json()["shards"][
            "total"]:
        return None
    return shard_storage(client)


def wait_until(what: str, check, timeout_s: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s}s: {what}")
        time.sleep(0.1)


def consume_and_ack(client: httpx2.Client, base: str, group: str, count: int) -> list[str]:
    reply = client.get(f"{base}/consumer-groups/{group}/messages", params={"count": count})
    assert reply.status_code == 200, reply.text
    ids = [m["id"] for m in reply.json()["messages"]]
    assert ids
    reply = client.post(f"{base}/consumer-groups/{group}/ack", json={"ids": ids})
    assert reply.status_code == 200, reply.text
    assert reply.json()["acked"] == len(ids)
    return ids


# --- the watermark --------------------------------------------------------------------------------


def test_under_the_watermark_writes_get_507_reads_and_acks_go_on_and_deleting_resumes_writes(
        small_fs: Path, broker_factory) -> None:
    broker: Broker = broker_factory(small_fs / "data", GORTMS_STORAGE_MINFREEBYTES="36MiB")
    with broker.client() as client:
        ledger = Ledger(client, "full")
        ledger.create(["big", "small"])  # big on shard 1, small on shard 0
        assert ledger.publish("small").status_code == 201
        assert shard_storage(client) == ["ok", "ok"]

        refused = ledger.fill("big")
        assert refused.status_code == 507, refused.text
        assert refused.headers["Retry-After"] == "5"
        assert refused.json()["error"] == "insufficient_storage"
        assert "storage.minFreeBytes" in refused.json()["message"]
        assert free_bytes(small_fs) < 36 * 2**20
        # Both shards share the file system: both are low, and say so.
        wait_until("both shards report low storage", lambda: shard_storage(client) == ["low"] * 2)
        for shard in shards_report(broker):
            assert shard["storage"] == "low"
            assert shard["state"] == "serving"
            assert 0 <= shard["freeBytes"] < shard["minFreeBytes"] == 36 * 2**20
        assert sum(s["refusedWrites"] for s in shards_report(broker)) >= 1

        # Every write that adds data is refused, on either shard, and changes nothing ...
        assert ledger.publish("small").status_code == 507
        single = client.post("/api/domains/full/queues/small/messages", json={"a": 1})
        assert single.status_code == 507 and single.headers["Retry-After"] == "5"
        assert client.post("/api/domains/full/queues", json={"name": "new"}).status_code == 507
        assert client.post("/api/domains", json={"name": "other"}).status_code == 507
        reply = client.post("/api/domains/full/queues/big/consumer-groups",
                            json={"groupId": "late"})
        assert reply.status_code == 507
        assert client.get("/api/domains/full/queues/new").status_code == 404
        assert client.get("/api/domains/other").status_code == 404

        # ... while reads, fetches, acks, nacks and seeks go on.
        big = "/api/domains/full/queues/big"
        info = client.get(big)
        assert info.status_code == 200
        assert info.json()["messageCount"] == len(ledger.acknowledged["big"])
        delivered = consume_and_ack(client, big, "workers", 50)
        assert delivered == ledger.acknowledged["big"][:50]
        reply = client.get(f"{big}/consumer-groups/workers/messages", params={"count": 5})
        nacked = [m["id"] for m in reply.json()["messages"]]
        reply = client.post(f"{big}/consumer-groups/workers/nack", json={"ids": nacked})
        assert reply.status_code == 200, reply.text
        reply = client.put(f"{big}/consumer-groups/workers", json={"position": 1})
        assert reply.status_code == 200, reply.text
        assert client.get(f"{big}/consumer-groups/workers").status_code == 200
        assert client.get("/api/domains/full/queues").status_code == 200

        # Deleting the big queue gives its space back: writes resume, with no restart.
        pids = broker.pids()
        assert client.delete(big).status_code == 200
        wait_until("the shards accept writes again",
                   lambda: shard_storage(client) == ["ok", "ok"], timeout_s=30)
        assert ledger.publish("small").status_code == 201
        assert client.post("/api/domains/full/queues", json={"name": "new"}).status_code == 201
        assert broker.pids() == pids
        del ledger.acknowledged["big"]
        ledger.check_nothing_lost()

    # The alarm was logged once when it started and once when it cleared, per shard.
    output = broker.output(last=10_000)
    for shard in (0, 1):
        assert output.count(f"shard {shard}: free space on") == 2, output


# --- past the watermark: the disk filled from outside ---------------------------------------------


def fill_completely(path: Path) -> Path:
    """Another process takes every free byte of the file system."""
    filler = path / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (2**20, 4096, 1):
            chunk = b"\0" * size
            with contextlib.suppress(OSError):
                while os.write(fd, chunk):
                    pass
    finally:
        os.close(fd)
    assert free_bytes(path) < 2**16
    return filler


def test_a_disk_filled_from_outside_fails_writes_with_507_serves_reads_and_recovers(
        small_fs: Path, broker_factory) -> None:
    # The watermark off, so the first sign of the full disk is a failed write (ENOSPC).
    broker: Broker = broker_factory(small_fs / "data", GORTMS_STORAGE_MINFREEBYTES="0")
    with broker.client() as client:
        ledger = Ledger(client, "outside")
        queues = spread("outside", 4)
        ledger.create(queues)
        base = "/api/domains/outside/queues"
        for queue in queues:
            for _ in range(3):
                assert ledger.publish(queue).status_code == 201
        pids = broker.pids()

        filler = fill_completely(small_fs)
        codes = {ledger.publish(queue).status_code for queue in queues for _ in range(2)}
        assert codes == {507}, codes
        reply = ledger.publish(queues[0])
        assert reply.json()["error"] == "insufficient_storage"
        assert reply.headers["Retry-After"] == "5"
        assert shard_storage(client) == ["full", "full"]
        for shard in shards_report(broker):
            assert (shard["state"], shard["storage"]) == ("read-only", "full")
            assert 0 <= shard["freeBytes"] < 2**20

        # Reads are served from what is on disk; writes of any kind are refused, not a 500.
        for queue in queues:
            info = client.get(f"{base}/{queue}")
            assert info.status_code == 200
            assert info.json()["messageCount"] == len(ledger.acknowledged[queue])
            assert client.get(f"{base}/{queue}/consumer-groups/workers").status_code == 200
        fetch = client.get(f"{base}/{queues[0]}/consumer-groups/workers/messages",
                           params={"count": 10})
        assert fetch.status_code == 507
        assert fetch.headers["Retry-After"] == "5"
        assert client.delete(f"{base}/{queues[1]}").status_code == 507
        assert broker.pids() == pids  # nothing crashed, nothing restarted

        # A shard killed now restarts on the full disk: RocksDB cannot open read-write
        # there, so it comes up read-only and serves what it holds.
        after = len(broker.lines)
        os.kill(pids["shard-0"], signal.SIGKILL)
        broker.wait_for_line(r"shard-0 ready", timeout_s=30, after=after)
        wait_until("shard 0 answers again",
                   lambda: storage_when_up(client) == ["full"] * 2)
        for queue in queues:
            info = client.get(f"{base}/{queue}")
            assert info.status_code == 200
            assert info.json()["messageCount"] == len(ledger.acknowledged[queue])
        assert ledger.publish(queues[0]).status_code == 507

        filler.unlink()
        wait_until("the shards reopen their stores", lambda: shard_storage(client) == ["ok"] * 2)
        for queue in queues:
            assert ledger.publish(queue).status_code == 201
        # Only the killed shard was restarted (run/state.json may lag while the disk is full).
        others = {name: pid for name, pid in pids.items() if name != "shard-0"}
        assert {n: p for n, p in broker.pids().items() if n != "shard-0"} == others
        ledger.check_nothing_lost()

    output = broker.output(last=10_000)
    assert output.count("shard 0: its store failed a write") == 2, output  # before and after
    assert output.count("shard 1: its store failed a write") == 1, output
    for shard in (0, 1):
        assert output.count(f"shard {shard}: its store is writable again") == 1, output


# --- a data dir that stops being writable at run time -----------------------------------------


def unprivileged_python(tmp_path: Path) -> str:
    """A python that runs as root without the capabilities that let root ignore file
    permissions (CAP_DAC_OVERRIDE and friends), so permissions and owners count as they do
    for a broker run as its own user."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    wrapper = tmp_path / "python-without-dac-override"
    wrapper.write_text("#!/bin/sh\nexec setpriv --bounding-set -dac_override,-dac_read_search,"
                       f"-fowner -- {sys.executable} \"$@\"\n")
    wrapper.chmod(0o755)
    return str(wrapper)


@pytest.mark.fs_size("128m")
@pytest.mark.parametrize("change", ["read-only", "foreign-owned"])
def test_a_shard_dir_that_stops_being_writable_gives_503_naming_it_and_recovers(
        small_fs: Path, tmp_path: Path, change: str) -> None:
    data = small_fs / "data"
    broker = start_broker(data, python=unprivileged_python(tmp_path),
                          GORTMS_STORAGE_MINFREEBYTES="0")
    try:
        with broker.client() as client:
            ledger = Ledger(client, "perm")
            on_0, on_1 = spread("perm", 2)
            ledger.create([on_0, on_1])
            for queue in (on_0, on_1):
                assert ledger.publish(queue).status_code == 201
            pids = broker.pids()
            shard_dir = data / "shards" / "1"
            if change == "read-only":
                shard_dir.chmod(0o555)
            else:
                os.chown(shard_dir, 65534, 65534)  # nobody's now; the broker is not nobody
            # RocksDB writes into its open WAL until it needs a new file: a memtable's worth.
            refused = ledger.fill(on_1)
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"] == "storage_error"
            assert str(shard_dir) in refused.json()["message"]
            assert "Permission denied" in refused.json()["message"]
            assert refused.headers["Retry-After"] == "1"
            assert shard_storage(client) == ["ok", "full"]
            # The other shard writes on; this one serves reads.
            assert ledger.publish(on_0).status_code == 201
            info = client.get(f"/api/domains/perm/queues/{on_1}")
            assert info.status_code == 200
            assert info.json()["messageCount"] == len(ledger.acknowledged[on_1])
            assert broker.pids() == pids

            if change == "read-only":
                shard_dir.chmod(0o755)
            else:
                os.chown(shard_dir, 0, 0)
            wait_until("shard 1 reopens its store", lambda: shard_storage(client) == ["ok"] * 2)
            assert ledger.publish(on_1).status_code == 201
            assert broker.pids() == pids
            ledger.check_nothing_lost()
    finally:
        code = broker.stop()
    assert code == 0, broker.output()
