"""ZmqShards against a scripted ROUTER peer: many requests in flight matched by id, one frame
per loop tick, deadlines, cancelling, and failing fast when a shard is down or goes away."""

from __future__ import annotations

import asyncio
import tempfile
import time
from typing import AsyncIterator

import pytest
import zmq
import zmq.asyncio

from gortms.errors import QueueNotFound, ShardUnavailable
from gortms.protocol import (Cancel, Ping, Pong, QueueGet, Request, decode_request,
                             decode_requests, encode_replies, failed, ok)
from gateway.shards import ZmqShards

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def run_dir() -> AsyncIterator[str]:
    with tempfile.TemporaryDirectory(prefix="gw") as path:
        yield path


class FakeShard:
    """A ROUTER that collects requests; the test decides when and how to answer."""

    def __init__(self, endpoint: str) -> None:
        self.sock = zmq.asyncio.Context.instance().socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(endpoint)

        self.frames = 0

    async def take(self, count: int) -> list[tuple[bytes, int, Request]]:
        taken = []
        async with asyncio.timeout(5):
            while len(taken) < count:
                identity, frame = await self.sock.recv_multipart()
                self.frames += 1
                for rid, _, raw in decode_requests(frame):
                    taken.append((identity, rid, decode_request(raw)))
        return taken

    async def answer(self, identity: bytes, items: list) -> None:
        await self.sock.send_multipart([identity, encode_replies(items)])

    def close(self) -> None:
        self.sock.close(linger=0)


async def connected_shards(endpoint: str, timeout_s: float = 5.0) -> ZmqShards:
    shards = ZmqShards([(endpoint, endpoint + "-events")], timeout_s, max_in_flight=10_000)
    await shards.start(connect_timeout_s=5)
    assert shards.is_connected(0)
    return shards


async def test_many_requests_in_flight_are_matched_to_their_replies(run_dir):
    fake = FakeShard(f"ipc://{run_dir}/s0")
    shards = await connected_shards(f"ipc://{run_dir}/s0")
    try:
        calls = [shards.send(0, Ping()) for _ in range(500)]
        requests = await fake.take(500)
        for identity, rid, _ in reversed(requests):  # answered out of order, one by one
            await fake.answer(identity, [ok(rid, Pong(shard=0, pid=rid))])
        replies = await asyncio.gather(*(c.future for c in calls))
        assert [reply.pid for reply in replies] == [c.rid for c in calls]
    finally:
        await shards.close()
        fake.close()


async def test_shard_errors_are_raised_as_their_class(run_dir):
    fake = FakeShard(f"ipc://{run_dir}/s0")
    shards = await connected_shards(f"ipc://{run_dir}/s0")
    try:
        call = shards.send(0, QueueGet(domain="d", queue="q", epoch=1))
        [(identity, rid, _)] = await fake.take(1)
        await fake.answer(identity, [failed(rid, QueueNotFound("no q"))])
        with pytest.raises(QueueNotFound, match="no q"):
            await call
    finally:
        await shards.close()
        fake.close()


async def test_a_silent_shard_gives_shard_unavailable_at_the_deadline(run_dir):
    fake = FakeShard(f"ipc://{run_dir}/s0")
    shards = await connected_shards(f"ipc://{run_dir}/s0", timeout_s=0.3)
    try:
        started = time.monotonic()
        with pytest.raises(ShardUnavailable, match="did not answer"):
            await shards.call(0, Ping())
        assert 0.25 < time.monotonic() - started < 3
        assert shards.links[0].pending == {}  # a timed-out call does not hold its slot
    finally:
        await shards.close()
        fake.close()


async def test_requests_in_flight_fail_at_once_when_the_shard_goes_away(run_dir):
    fake = FakeShard(f"ipc://{run_dir}/s0")
    shards = await connected_shards(f"ipc://{run_dir}/s0", timeout_s=30)
    try:
        calls = [asyncio.ensure_future(shards.call(0, Ping())) for _ in range(20)]
        await fake.take(20)
        started = time.monotonic()
        fake.close()
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(r, ShardUnavailable) for r in results)
        assert time.monotonic() - started < 5  # the disconnect, not the 30 s deadline
        with pytest.raises(ShardUnavailable, match="down or restarting"):
            await shards.call(0, Ping())
    finally:
        await shards.close()


async def test_a_shard_that_never_came_up_fails_fast(run_dir):
    shards = ZmqShards([(f"ipc://{run_dir}/none", f"ipc://{run_dir}/none-e")], 30, 100)
    await shards.start(connect_timeout_s=0.2)
    try:
        started = time.monotonic()
        with pytest.raises(ShardUnavailable):
            await shards.call(0, Ping())
        assert time.monotonic() - started < 1
    finally:
        await shards.close()


async def test_requests_made_in_one_tick_travel_in_one_frame_and_are_answered_in_one(run_dir):
    fake = FakeShard(f"ipc://{run_dir}/s0")
    shards = await connected_shards(f"ipc://{run_dir}/s0")
    try:
        calls = [shards.send(0, Ping()) for _ in range(50)]  # no await in between
        requests = await fake.take(50)
        assert fake.frames == 1
        identity = requests[0][0]
        await fake.answer(identity, [ok(rid, Pong(shard=0, pid=rid)) for _, rid, _ in requests])
        replies = await asyncio.gather(*(c.future for c in calls))
        assert [r.pid for r in replies] == [c.rid for c in calls]
    finally:
        await shards.close()
        fake.close()


async def test_a_cancelled_call_tells_the_shard_and_ignores_a_late_reply(run_dir):
    fake = FakeShard(f"ipc://{run_dir}/s0")
    shards = await connected_shards(f"ipc://{run_dir}/s0")
    try:
        call = shards.send(0, Ping())
        [(identity, rid, _)] = await fake.take(1)
        shards.cancel(call)
        [(_, _, cancel)] = await fake.take(1)
        assert cancel == Cancel(target=rid)
        assert shards.links[0].pending == {}
        await fake.answer(identity, [ok(rid, Pong(shard=0, pid=1))])  # late: dropped
        other = shards.send(0, Ping())
        [(_, other_rid, _)] = await fake.take(1)
        await fake.answer(identity, [ok(other_rid, Pong(shard=0, pid=2))])
        assert (await other).pid == 2
        assert not call.future.done()
    finally:
        await shards.close()
        fake.close()


async def test_a_reply_of_the_wrong_type_fails_its_call_not_the_connection(run_dir):
    fake = FakeShard(f"ipc://{run_dir}/s0")
    shards = await connected_shards(f"ipc://{run_dir}/s0")
    try:
        wrong = shards.send(0, QueueGet(domain="d", queue="q", epoch=1))
        right = shards.send(0, Ping())
        requests = await fake.take(2)
        identity = requests[0][0]
        await fake.answer(identity, [ok(rid, Pong(shard=0, pid=5)) for _, rid, _ in requests])
        with pytest.raises(ValueError):
            await wrong
        assert (await right).pid == 5
    finally:
        await shards.close()
        fake.close()
