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

from gortms.errors import GortmsError
from gortms.protocol import (Op, decode_deliveries, decode_reply, encode_message, encode_request,
                             reply_id)
from shard.memory import MemoryStore
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

    async def send(self, op: Op, body: dict[str, Any], blobs: list[bytes] = (),
                   deadline_s: float = 5.0) -> bytes:
        self.next += 1
        rid = b"%d" % self.next
        deadline_ms = int((time.time() + deadline_s) * 1000)
        await self.sock.send_multipart(encode_request(rid, op, deadline_ms, body, blobs))
        return rid

    async def replies(self, count: int, timeout_s: float = 5.0) -> dict[bytes, list[bytes]]:
        got = {}
        async with asyncio.timeout(timeout_s):
            while len(got) < count:
                frames = await self.sock.recv_multipart()
                got[reply_id(frames)] = frames
        return got

    async def call(self, op: Op, body: dict[str, Any], blobs: list[bytes] = ()) -> Any:
        rid = await self.send(op, body, blobs)
        return decode_reply((await self.replies(1))[rid])

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def shard() -> AsyncIterator[tuple[ShardServer, MemoryStore, Client]]:
    store = MemoryStore()
    state = ShardState(0, store, Limits())
    with tempfile.TemporaryDirectory(prefix="gs") as run_dir:
        server = ShardServer(state, f"ipc://{run_dir}/r", f"ipc://{run_dir}/p")
        task = asyncio.create_task(server.serve(handle_signals=False))
        client = Client(f"ipc://{run_dir}/r")
        await client.call(Op.DOMAIN_CREATE, {"name": "d"})
        await client.call(Op.QUEUE_CREATE, QUEUE)
        yield server, store, client
        client.close()
        server.stopping.set()
        await task


def message(i: int) -> bytes:
    return encode_message(f"m{i}", b"{}", b'{"i":%d}' % i)


async def test_a_burst_of_publishes_shares_a_few_fsyncs_and_all_are_answered(shard):
    server, store, client = shard
    synced_before = store.synced_writes
    rids = [await client.send(Op.PUBLISH, QUEUE, [message(i)]) for i in range(200)]
    replies = await client.replies(200)
    positions = sorted(decode_reply(replies[rid])[0]["firstPosition"] for rid in rids)
    assert positions == list(range(1, 201))
    # Requests that arrive while a turn runs share the next turn's WriteBatch and fsync;
    # one commit per request would be 200.
    assert store.synced_writes - synced_before <= 10


async def test_a_fetch_in_the_same_turn_sees_what_that_turn_published(shard):
    server, store, client = shard
    await client.call(Op.GROUP_CREATE, {**QUEUE, "spec": {"groupId": "g"}})
    publish = await client.send(Op.PUBLISH, QUEUE, [message(1), message(2)])
    fetch = await client.send(Op.FETCH, {**QUEUE, "group": "g", "max": 10})
    replies = await client.replies(2)
    assert decode_reply(replies[publish])[0]["firstPosition"] == 1
    body, blobs = decode_reply(replies[fetch])
    assert [p for p, _, _ in decode_deliveries(body, blobs)] == [1, 2]


async def test_a_request_past_its_deadline_is_skipped_not_applied(shard):
    server, store, client = shard
    await client.send(Op.PUBLISH, QUEUE, [message(1)], deadline_s=-1)
    alive = await client.call(Op.QUEUE_GET, QUEUE)
    assert alive[0]["lastPosition"] == 0  # the stale publish did nothing, and got no answer


async def test_a_parked_fetch_is_woken_by_a_publish_from_another_client(shard):
    server, store, client = shard
    await client.call(Op.GROUP_CREATE, {**QUEUE, "spec": {"groupId": "g"}})
    fetch = await client.send(Op.FETCH, {**QUEUE, "group": "g", "max": 5, "timeoutMs": 5000})
    other = Client(server.request_endpoint)
    try:
        for _ in range(400):  # until the shard has parked the fetch
            if server.state.parked == 1:
                break
            await asyncio.sleep(0.005)
        assert server.state.parked == 1
        await other.call(Op.PUBLISH, QUEUE, [message(7)])
    finally:
        other.close()
    body, blobs = decode_reply((await client.replies(1, timeout_s=2))[fetch])
    assert [p for p, _, _ in decode_deliveries(body, blobs)] == [1]


async def test_errors_come_back_as_their_class(shard):
    server, store, client = shard
    with pytest.raises(GortmsError) as caught:
        await client.call(Op.QUEUE_GET, {**QUEUE, "queue": "missing"})
    assert caught.value.code == "queue_not_found"
