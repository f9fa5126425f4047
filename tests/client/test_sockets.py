"""The client's WebSockets against a real broker, sync and async: observing, publishing on the
socket, consuming with credits, settling, errors and closes mapped to the error tree."""

from __future__ import annotations

import asyncio
import time
from typing import Iterator

import pytest

from gortms.client import AsyncClient, Client, SocketClosed
from gortms.errors import NotFound, QueueNotFound, SchemaViolation
from tests.conftest import Broker, unique

QUIET_S = 0.5


@pytest.fixture
def client(shared_broker: Broker) -> Iterator[Client]:
    with Client(shared_broker.url) as client:
        yield client


def make_queue(client: Client, **config) -> tuple[str, str]:
    domain = unique("ws")
    client.create_domain(domain, schema={"fields": {"n": "number"}})
    client.create_queue(domain, "q", config)
    return domain, "q"


def test_an_observer_receives_every_message_from_its_position_on_in_order(client):
    queue = make_queue(client)
    client.publish(*queue, {"n": 0})  # before the socket: not observed
    with client.observe(*queue) as live:
        assert live.position == 2
        client.publish(*queue, {"n": 1})
        client.publish_batch(*queue, [{"n": 2}, {"n": 3}])
        live.publish({"n": 4})
        seen = [live.receive(timeout_s=10) for _ in range(4)]
        assert [(m.position, m.payload["n"], m.delivery_count) for m in seen] == \
            [(2, 1, 0), (3, 2, 0), (4, 3, 0), (5, 4, 0)]
        with pytest.raises(TimeoutError):
            live.receive(timeout_s=QUIET_S)
        assert live.dropped == 0


def test_publishing_on_a_socket_pipelines_and_answers_in_order(client):
    queue = make_queue(client)
    with client.socket(*queue, buffer=0) as socket:
        answers = socket.publish_many([{"n": n} for n in range(600)])
        assert [a.position for a in answers] == list(range(1, 601))
        first = socket.publish({"n": 1}, idempotency_key="once", headers={"k": "v"})
        again = socket.publish({"n": 1}, idempotency_key="once")
        assert again.duplicate and again.position == first.position == 601
        with pytest.raises(SchemaViolation):
            socket.publish({"n": "not a number"})
        assert socket.publish({"n": 2}).position == 602  # the socket is still usable
        socket.ping()
    assert client.queue(*queue).last_position == 602


def test_a_consumer_gets_no_more_than_its_credits_until_it_grants_more(client):
    queue = make_queue(client)
    with client.socket(*queue) as socket:
        socket.consume("g", credits=3, refill=False)
        client.publish_batch(*queue, [{"n": n} for n in range(5)])
        taken = [socket.receive(timeout_s=10) for _ in range(3)]
        with pytest.raises(TimeoutError):
            socket.receive(timeout_s=QUIET_S)
        socket.credit(2)
        taken += [socket.receive(timeout_s=10) for _ in range(2)]
        assert [(m.position, m.delivery_count) for m in taken] == \
            [(p, 1) for p in range(1, 6)]
        assert socket.ack(taken).acked == 5
    assert client.group(*queue, "g").pending == 0


def test_a_refilling_consumer_never_holds_more_than_its_credits_untaken(client):
    queue = make_queue(client)
    client.publish_batch(*queue, [{"n": n} for n in range(40)])
    with client.consumer(*queue, "g", credits=8, batch=True) as socket:
        taken = []
        while len(taken) < 40:
            taken += socket.receive_batch(timeout_s=10)
            protocol = socket.protocol
            assert protocol.unspent + len(protocol.received) <= 8
            socket.ack(taken[-1:], wait=False)
        assert sorted(m.position for m in taken) == list(range(1, 41))
        socket.ping()


def test_nack_over_the_socket_redelivers_with_a_higher_count_and_extend_moves_the_lease(client):
    queue = make_queue(client)
    client.publish_batch(*queue, [{"n": 1}, {"n": 2}])
    with client.consumer(*queue, "g", credits=10) as socket:
        first, second = socket.receive(timeout_s=10), socket.receive(timeout_s=10)
        nacked = socket.nack([first], delay="0", reason="again")
        assert (nacked.nacked, nacked.dead_lettered) == (1, 0)
        extended = socket.extend([second.id], by="10m")
        assert extended.extended == 1
        again = socket.receive(timeout_s=10)
        assert (again.position, again.delivery_count) == (1, 2)
        assert socket.ack([again, second]).acked == 2


def test_closing_a_consumer_gives_what_it_held_back_to_the_group_at_once(client):
    queue = make_queue(client)
    client.publish(*queue, {"n": 1})
    with client.socket(*queue) as socket:
        # no refill: with a fetch parked for more at the close, the broker may deliver the
        # released message to it before that fetch is cancelled (and release it again)
        socket.consume("g", credits=1, refill=False)
        socket.receive(timeout_s=10)
    [back] = client.fetch(*queue, "g", timeout_s=10).messages
    assert (back.position, back.delivery_count) == (1, 2)


def test_a_queue_deleted_under_a_consumer_ends_its_socket_with_not_found(client):
    queue = make_queue(client)
    with client.consumer(*queue, "g") as socket:
        client.delete_queue(*queue)
        with pytest.raises(NotFound) as gone:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                socket.receive(timeout_s=1)
        assert "deleted" in gone.value.message


def test_a_socket_on_a_missing_queue_is_refused_as_not_found(client):
    queue = make_queue(client)
    with pytest.raises(NotFound) as refused:  # close code 4404: not found, not which one
        client.observe(queue[0], "missing")
    assert not isinstance(refused.value, QueueNotFound) and "missing" in refused.value.message


def test_a_socket_closed_by_the_client_raises_socket_closed_when_used(client):
    queue = make_queue(client)
    socket = client.observe(*queue)
    socket.close()
    with pytest.raises(SocketClosed):
        socket.publish({"n": 1})


# --- asyncio ------------------------------------------------------------------------------------

@pytest.mark.anyio
async def test_an_async_observer_and_an_async_consumer_work_as_the_sync_ones(shared_broker):
    with Client(shared_broker.url) as sync:
        queue = make_queue(sync)
    async with AsyncClient(shared_broker.url) as client:
        live = await client.observe(*queue)
        async with live:
            await live.publish({"n": 1})
            answers = await live.publish_many([{"n": 2}, {"n": 3}])
            assert [a.position for a in answers] == [2, 3]
            seen = [await live.receive(timeout_s=10) for _ in range(3)]
            assert [m.payload["n"] for m in seen] == [1, 2, 3]
        socket = await client.consumer(*queue, "g", credits=2, batch=True)
        async with socket:
            batch = await socket.receive_batch(timeout_s=10)
            while len(batch) < 3:
                batch += await socket.receive_batch(timeout_s=10)
            assert [m.position for m in batch] == [1, 2, 3]
            assert (await socket.ack(batch)).acked == 3
        assert (await client.group(*queue, "g")).pending == 0


@pytest.mark.anyio
async def test_tasks_sharing_an_async_socket_each_get_their_answers(shared_broker):
    with Client(shared_broker.url) as sync:
        queue = make_queue(sync)
        sync.publish_batch(*queue, [{"n": n} for n in range(20)])
    async with AsyncClient(shared_broker.url) as client:
        socket = await client.consumer(*queue, "g", credits=5)
        async with socket:
            acks: list[asyncio.Task] = []
            async for message in socket:
                acks.append(asyncio.ensure_future(socket.ack([message])))
                if len(acks) == 20:
                    break
            answers = await asyncio.gather(*acks)
            assert sum(a.acked for a in answers) == 20
        assert (await client.group(*queue, "g")).pending == 0
