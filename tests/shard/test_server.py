"""ShardServer in-process over a MemoryStore and real ZeroMQ sockets: group commit,
pipelining, deadlines, and fetches that see what their own turn published."""

from __future__ import annotations

import asyncio
import tempfile
import time
from typing import Any, AsyncIterator

import pytest
import zmq
import zmq.asyncio

import msgspec
import orjson

from gortms.config import SpaceLimit
from gortms.errors import GortmsError, InsufficientStorage
from gortms.models import GroupSpec
from gortms.protocol import (VERSION, Ack, Cancel, DomainCreate, Fetch, GroupCreate, LiveHello,
                             Nack, Publish, QueueCreate, QueueGet, Release, Replay, ReplayCheck,
                             Request, Watch, decode_live,
                             decode_replies, encode_message, encode_requests, live_topic,
                             reply_value)
from shard import loader
from shard.disk import DiskGuard
from shard.memory import MemoryStore
from shard.store import cursor_key
from shard.server import ShardServer
from shard.state import Limits, ShardState

pytestmark = pytest.mark.anyio

QUEUE = {"domain": "d", "queue": "q", "epoch": 1}


class Client:
    """A gateway-like DEALER: sends many requests without waiting, then reads the replies."""

    def __init__(self, endpoint: str) -> None:
        self.context = zmq.asyncio.Context.instance()
        self.sock = self.context.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.next = 0
        self.kinds: dict[int, type] = {}
        self.frames = 0

    async def send(self, *requests: Request, deadline_s: float = 5.0) -> list[int]:
        """The requests in one frame; their ids."""
        deadline_ms = int((time.time() + deadline_s) * 1000)
        items = []
        for request in requests:
            self.next += 1
            self.kinds[self.next] = request.reply
            items.append((self.next, deadline_ms, request))
        await self.sock.send(encode_requests(items))
        return [rid for rid, _, _ in items]

    async def replies(self, count: int, timeout_s: float = 5.0) -> dict[int, tuple[str, Any]]:
        got: dict[int, tuple[str, Any]] = {}
        self.frames = 0
        async with asyncio.timeout(timeout_s):
            while len(got) < count:
                self.frames += 1
                for rid, status, body in decode_replies(await self.sock.recv()):
                    got[rid] = (status, body)
        return got

    def value(self, rid: int, answer: tuple[str, Any]) -> Any:
        return reply_value(answer[0], answer[1], self.kinds[rid])

    async def call(self, request: Request) -> Any:
        [rid] = await self.send(request)
        return self.value(rid, (await self.replies(1))[rid])

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def limits() -> Limits:
    return Limits()


@pytest.fixture
async def shard(limits: Limits) -> AsyncIterator[tuple[ShardServer, MemoryStore, Client]]:
    store = MemoryStore()
    state = ShardState(0, store, limits)
    with tempfile.TemporaryDirectory(prefix="gs") as run_dir:
        server = ShardServer(state, f"ipc://{run_dir}/r", f"ipc://{run_dir}/p")
        task = asyncio.create_task(server.serve(handle_signals=False))
        client = Client(f"ipc://{run_dir}/r")
        await client.call(DomainCreate(name="d"))
        await client.call(QueueCreate(**QUEUE))
        yield server, store, client
        client.close()
        server.stopping.set()
        await task


def message(i: int) -> bytes:
    return encode_message(f"m{i}", b"{}", b'{"i":%d}' % i)


def publish(*messages: int) -> Publish:
    return Publish(**QUEUE, records=[message(i) for i in messages])


async def test_a_burst_of_publishes_shares_a_few_fsyncs_and_all_are_answered(shard):
    server, store, client = shard
    synced_before = store.synced_writes
    rids = [(await client.send(publish(i)))[0] for i in range(200)]
    replies = await client.replies(200)
    positions = sorted(client.value(rid, replies[rid]).first_position for rid in rids)
    assert positions == list(range(1, 201))
    # Requests that arrive while a turn runs share the next turn's WriteBatch and fsync;
    # one commit per request would be 200.
    assert store.synced_writes - synced_before <= 10


async def test_requests_in_one_frame_are_answered_in_one_frame(shard):
    server, store, client = shard
    rids = await client.send(*(publish(i) for i in range(50)), QueueGet(**QUEUE))
    replies = await client.replies(51)
    assert client.frames == 1
    assert [client.value(rid, replies[rid]).first_position for rid in rids[:50]] == list(
        range(1, 51))
    assert client.value(rids[50], replies[rids[50]]).last_position == 50


async def test_a_malformed_request_fails_alone(shard):
    server, store, client = shard
    bad = VERSION + msgspec.msgpack.encode([
        [1, int((time.time() + 5) * 1000), {"op": "publish", **QUEUE, "records": []}],
        [2, int((time.time() + 5) * 1000), msgspec.Raw(msgspec.msgpack.encode(publish(1)))]])
    client.kinds.update({1: Publish.reply, 2: Publish.reply})
    await client.sock.send(bad)
    replies = await client.replies(2)
    assert replies[1][0] == "bad_request"
    assert client.value(2, replies[2]).first_position == 1


async def test_a_fetch_in_the_same_turn_gets_what_that_turn_published_once_committed(shard):
    server, store, client = shard
    await client.call(GroupCreate(**QUEUE, spec=GroupSpec(group_id="g")))
    publish_rid, fetch_rid = await client.send(
        publish(1, 2), Fetch(**QUEUE, group="g", max=10, timeout_ms=5000))
    replies = await client.replies(2)
    assert client.value(publish_rid, replies[publish_rid]).first_position == 1
    assert client.value(fetch_rid, replies[fetch_rid]).positions == [1, 2]


async def test_a_request_past_its_deadline_is_skipped_not_applied(shard):
    server, store, client = shard
    await client.send(publish(1), deadline_s=-1)
    alive = await client.call(QueueGet(**QUEUE))
    assert alive.last_position == 0  # the stale publish did nothing, and got no answer


async def test_a_parked_fetch_is_woken_by_a_publish_from_another_client(shard):
    server, store, client = shard
    await client.call(GroupCreate(**QUEUE, spec=GroupSpec(group_id="g")))
    [fetch] = await client.send(Fetch(**QUEUE, group="g", max=5, timeout_ms=5000))
    other = Client(server.request_endpoint)
    try:
        for _ in range(400):  # until the shard has parked the fetch
            if server.state.parked == 1:
                break
            await asyncio.sleep(0.005)
        assert server.state.parked == 1
        await other.call(publish(7))
    finally:
        other.close()
    reply = client.value(fetch, (await client.replies(1, timeout_s=2))[fetch])
    assert reply.positions == [1]


async def test_errors_come_back_as_their_class(shard):
    server, store, client = shard
    with pytest.raises(GortmsError) as caught:
        await client.call(QueueGet(**{**QUEUE, "queue": "missing"}))
    assert caught.value.code == "queue_not_found"


async def wait_parked(server: ShardServer, count: int) -> None:
    for _ in range(400):  # until the shard has parked the fetch (bounded)
        if server.state.parked == count:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"{server.state.parked} fetches parked, not {count}")


@pytest.mark.parametrize("limits", [Limits(max_pending_per_group=2)])
@pytest.mark.parametrize("settle", ["ack", "nack"])
async def test_a_fetch_parked_at_the_pending_limit_is_woken_by_a_settle(shard, settle):
    server, store, client = shard
    await client.call(GroupCreate(**QUEUE, spec=GroupSpec(group_id="g")))
    await client.call(publish(1, 2, 3, 4))
    first = await client.call(Fetch(**QUEUE, group="g", max=10))
    assert first.positions == [1, 2]  # the limit
    [parked] = await client.send(Fetch(**QUEUE, group="g", max=10, timeout_ms=5000))
    await wait_parked(server, 1)
    other = Client(server.request_endpoint)
    try:
        kind = Ack if settle == "ack" else Nack
        await other.call(kind(**QUEUE, group="g", positions=[1]))
    finally:
        other.close()
    woken = client.value(parked, (await client.replies(1, timeout_s=2))[parked])
    assert woken.positions == ([3] if settle == "ack" else [1])


async def test_the_timer_writes_a_fetchs_position_without_an_fsync(shard):
    server, store, client = shard
    await client.call(GroupCreate(**QUEUE, spec=GroupSpec(group_id="g")))
    await client.call(publish(1, 2))
    syncs = store.synced_writes
    fetched = await client.call(Fetch(**QUEUE, group="g", max=10))
    assert fetched.positions == [1, 2]
    qid = server.state.queues[("d", "q")].qid
    for _ in range(400):  # the timer (TICK_S) writes it (bounded wait)
        cursor = store.get(cursor_key(qid, "g"))
        if cursor is not None and orjson.loads(cursor)[0] == 3:
            break
        await asyncio.sleep(0.005)
    assert orjson.loads(store.get(cursor_key(qid, "g")))[0] == 3
    assert store.synced_writes == syncs  # and no fsync for it


async def test_a_fetch_never_delivers_what_its_own_turn_has_not_committed(shard):
    server, store, client = shard
    await client.call(GroupCreate(**QUEUE, spec=GroupSpec(group_id="g")))
    publish_rid, fetch_rid = await client.send(publish(1), Fetch(**QUEUE, group="g", max=10))
    replies = await client.replies(2)
    assert client.value(fetch_rid, replies[fetch_rid]).positions == []
    assert client.value(publish_rid, replies[publish_rid]).first_position == 1
    assert (await client.call(Fetch(**QUEUE, group="g", max=10))).positions == [1]


async def test_a_fetch_is_answered_before_its_turns_fsync(shard):
    server, store, client = shard
    await client.call(GroupCreate(**QUEUE, spec=GroupSpec(group_id="g")))
    await client.call(publish(1, 2))
    first = await client.call(Fetch(**QUEUE, group="g", max=1))
    ack_rid, fetch_rid = await client.send(Ack(**QUEUE, group="g", positions=first.positions),
                                           Fetch(**QUEUE, group="g", max=10))
    frames = []
    async with asyncio.timeout(5):
        while len(frames) < 2:
            frames.append([rid for rid, _, _ in decode_replies(await client.sock.recv())])
    assert frames == [[fetch_rid], [ack_rid]]  # the fetch did not wait for the ack's fsync


# --- a store that fails its writes (a full disk) -------------------------------------------------


class FillableStore(MemoryStore):
    """A MemoryStore whose writes fail like RocksDB's on a full disk while `full` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.full = False
        self.opens = {"read-only": 0, "read-write": 0}

    def write(self, batch: Any, sync: bool, wal: bool = True) -> None:
        if self.full or self.read_only:
            raise InsufficientStorage("write: IO error: No space left on device")
        super().write(batch, sync, wal)


def record(message_id: str) -> bytes:
    return encode_message(message_id, b"{}", b"{}")


async def test_a_failed_commit_fails_its_turn_serves_reads_read_only_and_recovers():
    store = FillableStore()
    disk = DiskGuard(0, None, SpaceLimit())

    def reopen(read_only: bool) -> ShardState:
        store.read_only = read_only
        store.opens["read-only" if read_only else "read-write"] += 1
        state = ShardState(0, store, Limits(), disk)
        loader.load(state)
        return state

    with tempfile.TemporaryDirectory(prefix="gs") as run_dir:
        server = ShardServer(reopen(False), f"ipc://{run_dir}/r", f"ipc://{run_dir}/p",
                             reopen=reopen)
        task = asyncio.create_task(server.serve(handle_signals=False))
        client = Client(f"ipc://{run_dir}/r")
        try:
            await client.call(DomainCreate(name="d"))
            await client.call(QueueCreate(**QUEUE))
            await client.call(Publish(**QUEUE, records=[record("a")]))

            store.full = True
            # The publish and the read of the same turn: neither was answered before the
            # commit, so both get the failure, and the publish left no trace.
            rids = await client.send(Publish(**QUEUE, records=[record("b")]), QueueGet(**QUEUE))
            answers = await client.replies(2)
            for rid in rids:
                with pytest.raises(InsufficientStorage):
                    client.value(rid, answers[rid])
            assert disk.state == "full" and store.opens["read-only"] == 1

            # Read-only now: reads are served from what was committed, writes refused.
            assert (await client.call(QueueGet(**QUEUE))).message_count == 1
            for write in (Publish(**QUEUE, records=[record("c")]),
                          Fetch(**QUEUE, group="g", consumer="c", max=1, timeout_ms=0,
                                create=True),
                          Ack(**QUEUE, group="g", ids=["a"])):
                with pytest.raises(InsufficientStorage, match="cannot write to its store"):
                    await client.call(write)

            store.full = False
            disk.retry_at = 0  # the backoff's first second, skipped
            async with asyncio.timeout(5):
                while disk.state != "ok":
                    await asyncio.sleep(0.01)
            assert store.opens == {"read-only": 1, "read-write": 2}
            published = await client.call(Publish(**QUEUE, records=[record("d")]))
            assert published.first_position == 2
            assert (await client.call(QueueGet(**QUEUE))).message_count == 2
        finally:
            client.close()
            server.stopping.set()
            await task


# --- live events ------------------------------------------------------------------------------


async def test_only_watched_queues_publish_live_events_and_a_watch_is_answered_on_the_topic(
        shard):
    server, _, client = shard
    await client.call(QueueCreate(domain="d", queue="other", epoch=1))
    sub = zmq.asyncio.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(server.event_endpoint)
    topic = live_topic("d", "q")
    sub.setsockopt(zmq.SUBSCRIBE, topic)
    try:
        hello = None
        for token in range(1, 50):  # until the subscription has reached the shard
            watching = await client.call(Watch(**QUEUE, token=token))
            try:
                async with asyncio.timeout(0.05 * token):
                    got_topic, body = await sub.recv_multipart()
                hello = decode_live(body)
                break
            except TimeoutError:
                continue
        assert got_topic == topic and hello == LiveHello(
            domain="d", queue="q", token=token, next_position=watching.next_position)
        assert server.watched == {("d", "q")}
        await client.call(Publish(domain="d", queue="other", epoch=1, records=[message(0)]))
        await client.call(publish(1, 2))
        got_topic, body = await asyncio.wait_for(sub.recv_multipart(), 5)
        event = decode_live(body)
        assert got_topic == topic and (event.first, event.records) == (1, [message(1),
                                                                        message(2)])
        sub.setsockopt(zmq.UNSUBSCRIBE, topic)
        async with asyncio.timeout(5):
            while server.watched:  # XPUB hands over the last unsubscription
                await client.call(QueueGet(**QUEUE))
    finally:
        sub.close()


async def test_a_replayed_signature_refuses_the_request_it_guards_unapplied(shard):
    server, _, client = shard
    check = ReplayCheck(digest=b"s" * 32, signed_ms=int(time.time() * 1000),
                        until_ms=int(time.time() * 1000) + 60_000)
    rids = []
    for n in (1, 2):  # the same signature twice: the second publish must not happen
        guarded = client.next + 2  # send numbers them next + 1, next + 2
        ids = await client.send(ReplayCheck(**{**msgspec.structs.asdict(check),
                                               "guards": guarded}), publish(n))
        assert ids[1] == guarded
        rids.append(ids)
    got = await client.replies(4)
    assert got[rids[0][0]][0] == "ok" and got[rids[0][1]][0] == "ok"
    assert got[rids[1][0]][0] == got[rids[1][1]][0] == "unauthorized"
    info = await client.call(QueueGet(**QUEUE))
    assert info.last_position == 1


async def test_a_request_carrying_a_replayed_signature_is_refused_unapplied(shard):
    _, _, client = shard
    now = int(time.time() * 1000)
    replay = Replay(b"r" * 32, now, now + 60_000)
    signed = Publish(**QUEUE, records=[message(1)], replay=replay)
    assert (await client.call(signed)).first_position == 1
    with pytest.raises(GortmsError) as info:
        await client.call(signed)
    assert info.value.http_status == 401 and "used already" in info.value.message
    assert (await client.call(QueueGet(**QUEUE))).last_position == 1


async def test_a_fetch_cancelled_in_its_own_frame_takes_nothing_released_behind_it(shard):
    # A WebSocket consumer closing: its refill fetch, the Cancel of it and the Release of what
    # it held can reach the shard in one frame. Fetches run last in a turn, so without the
    # cancel applying to them the fetch would take the released messages (a delivery more).
    server, store, client = shard
    await client.call(GroupCreate(**QUEUE, spec=GroupSpec(group_id="g")))
    await client.call(publish(1, 2))
    group = {**QUEUE, "group": "g"}
    held = await client.call(Fetch(**group, consumer="a", max=2, timeout_ms=0))
    assert held.positions == [1, 2]
    next_rid = client.next + 1
    fetch, cancel, release = await client.send(
        Fetch(**group, consumer="a", max=2, timeout_ms=5000), Cancel(target=next_rid),
        Release(**group, positions=[1, 2]))
    assert fetch == next_rid
    replies = await client.replies(1)  # the Release alone is answered
    assert client.value(release, replies[release]).released == 2
    assert fetch not in replies
    again = await client.call(Fetch(**group, consumer="b", max=5, timeout_ms=0))
    assert again.positions == [1, 2] and again.counts == [2, 2]  # released once, not twice


async def test_a_parked_fetch_is_woken_when_a_retry_falls_due_not_at_the_next_tick(shard):
    server, store, client = shard
    await client.call(GroupCreate(**QUEUE, spec=GroupSpec(group_id="g")))
    await client.call(publish(1))
    group = {**QUEUE, "group": "g"}
    [first] = (await client.call(Fetch(**group, max=1, timeout_ms=0))).positions
    await client.call(Nack(**group, positions=[first], delay_ms=300))
    due_ms = server.state.queues[("d", "q")].groups["g"].delayed[0][0]
    [fetch] = await client.send(Fetch(**group, max=1, timeout_ms=5000))
    for _ in range(400):  # until the shard has parked the fetch
        if server.state.parked == 1:
            break
        await asyncio.sleep(0.005)
    assert server.state.parked == 1
    assert server._alarm is not None and server._alarm_ms == due_ms  # rings at the retry
    reply = client.value(fetch, (await client.replies(1, timeout_s=3))[fetch])
    assert reply.positions == [first] and reply.counts == [2]
    assert server._alarm is None and not server._alarmed
