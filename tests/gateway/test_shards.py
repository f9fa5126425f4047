"""ZmqShards against a scripted ROUTER peer: many requests in flight matched by id,
deadlines, and failing fast when a shard is down or goes away."""

from __future__ import annotations

import asyncio
import tempfile
import time
from typing import AsyncIterator

import pytest
import zmq
import zmq.asyncio

from gortms.errors import QueueNotFound, ShardUnavailable
from gortms.protocol import Op, decode_request, encode_error, encode_reply
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

    async def take(self, count: int) -> list[tuple[bytes, bytes, Op, dict]]:
        taken = []
        async with asyncio.timeout(5):
            while len(taken) < count:
                identity, *frames = await self.sock.recv_multipart()
                rid, op, _, body, _ = decode_request(frames)
                taken.append((identity, rid, op, body))
        return taken

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
        calls = [asyncio.ensure_future(shards.call(0, Op.PING, {"n": n})) for n in range(500)]
        requests = await fake.take(500)
        for identity, rid, _, body in reversed(requests):  # answered out of order
            await fake.sock.send_multipart([identity, *encode_reply(rid, {"echo": body["n"]})])
        replies = await asyncio.gather(*calls)
        assert [body["echo"] for body, _ in replies] == list(range(500))
    finally:
        await shards.close()
        fake.close()


async def test_shard_errors_are_raised_as_their_class(run_dir):
    fake = FakeShard(f"ipc://{run_dir}/s0")
    shards = await connected_shards(f"ipc://{run_dir}/s0")
    try:
        call = asyncio.ensure_future(shards.call(0, Op.QUEUE_GET, {}))
        [(identity, rid, _, _)] = await fake.take(1)
        await fake.sock.send_multipart([identity, *encode_error(rid, QueueNotFound("no q"))])
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
            await shards.call(0, Op.PING, {})
        assert 0.25 < time.monotonic() - started < 3
        assert shards.links[0].pending == {}  # a timed-out call does not hold its slot
    finally:
        await shards.close()
        fake.close()


async def test_requests_in_flight_fail_at_once_when_the_shard_goes_away(run_dir):
    fake = FakeShard(f"ipc://{run_dir}/s0")
    shards = await connected_shards(f"ipc://{run_dir}/s0", timeout_s=30)
    try:
        calls = [asyncio.ensure_future(shards.call(0, Op.PING, {})) for _ in range(20)]
        await fake.take(20)
        started = time.monotonic()
        fake.close()
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(r, ShardUnavailable) for r in results)
        assert time.monotonic() - started < 5  # the disconnect, not the 30 s deadline
        with pytest.raises(ShardUnavailable, match="down or restarting"):
            await shards.call(0, Op.PING, {})
    finally:
        await shards.close()


async def test_a_shard_that_never_came_up_fails_fast(run_dir):
    shards = ZmqShards([(f"ipc://{run_dir}/none", f"ipc://{run_dir}/none-e")], 30, 100)
    await shards.start(connect_timeout_s=0.2)
    try:
        started = time.monotonic()
        with pytest.raises(ShardUnavailable):
            await shards.call(0, Op.PING, {})
        assert time.monotonic() - started < 1
    finally:
        await shards.close()
