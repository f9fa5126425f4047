"""The asyncio client against a real broker: the same operations as the sync one, awaited,
and the async consume iterator."""

from __future__ import annotations

import pytest

from gortms.client import AsyncClient
from gortms.errors import DomainExists, GroupNotFound, QueueNotFound
from tests.conftest import Broker, unique

pytestmark = pytest.mark.anyio


async def test_publish_fetch_and_settle_awaited(shared_broker: Broker):
    domain = unique("async")
    async with AsyncClient(shared_broker.url) as client:
        assert (await client.health()).ok
        await client.create_domain(domain)
        await client.create_queue(domain, "q")
        published = await client.publish(domain, "q", {"n": 0}, idempotency_key="a")
        batch = await client.publish_batch(domain, "q", [{"n": 1}, {"n": 2}, {"n": 3}])
        assert (published.position, list(batch.positions)) == (1, [2, 3, 4])
        fetched = await client.fetch(domain, "q", "g", count=10, create_group=True)
        zero, one, two, three = fetched.messages
        assert (await client.ack(domain, "q", "g", [zero])).acked == 1
        assert (await client.nack(domain, "q", "g", [one], delay="0")).nacked == 1
        assert (await client.extend(domain, "q", "g", [two], by="1m")).extended == 1
        assert (await client.settle(domain, "q", "g", ack=[two, three])).acked == 2
        [again] = (await client.fetch(domain, "q", "g", timeout_s=5)).messages
        assert (again.position, again.delivery_count) == (2, 2)
        await client.ack(domain, "q", "g", [again])
        assert (await client.group(domain, "q", "g")).pending == 0
        assert (await client.queue(domain, "q")).last_position == 4
        await client.delete_domain(domain)


async def test_the_async_consume_iterator_ends_at_its_limit_or_when_idle(shared_broker: Broker):
    domain = unique("async")
    async with AsyncClient(shared_broker.url) as client:
        await client.create_domain(domain)
        await client.create_queue(domain, "q")
        await client.publish_batch(domain, "q", [{"n": n} for n in range(6)])
        first = [m.payload["n"] async for m in client.consume(
            domain, "q", "g", count=4, limit=5, create_group=True)]
        rest = [m.payload["n"] async for m in client.consume(
            domain, "q", "g", timeout_s=0.2, stop_when_idle=True)]
        assert (first, rest) == ([0, 1, 2, 3, 4], [5])


async def test_async_errors_are_the_same_tree(shared_broker: Broker):
    domain = unique("async")
    async with AsyncClient(shared_broker.url) as client:
        await client.create_domain(domain)
        with pytest.raises(DomainExists):
            await client.create_domain(domain)
        with pytest.raises(QueueNotFound) as missing:
            await client.queue(domain, "nope")
        assert missing.value.status == 404
        await client.create_queue(domain, "q")
        with pytest.raises(GroupNotFound):
            await client.fetch(domain, "q", "nope")
