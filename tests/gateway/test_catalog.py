"""gateway/catalog.py over FakeShards: one shard call per uncached domain however many ask at
once (single-flight), failures shared and never cached, invalidations that race a load
(the generation check), and expiry after ENTRY_TTL_S on a clock the tests drive.

FakeShards answers DomainGet with a Future the test holds, so the test decides when a load
completes; the clock is `time.monotonic` as gateway.catalog sees it, set by monkeypatch.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import pytest

from gateway import catalog as catalog_module
from gateway.catalog import ENTRY_TTL_S, Catalog, Domain
from gortms.errors import DomainNotFound, SchemaViolation, ShardUnavailable
from gortms.partition import CATALOG_SHARD
from gortms.protocol import CatalogEvent, DomainGet, DomainRecord, Request
from tests.gateway.fakes import FakeShards

pytestmark = pytest.mark.anyio

SHOP = DomainRecord(name="shop", epoch=7, created_at=5, schema={"fields": {"amount": "number"}})
OTHER = DomainRecord(name="other", epoch=8, created_at=0, schema=None)


class Clock:
    """Stands in for the `time` module inside gateway.catalog: only monotonic() is used."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class Loads:
    """FakeShards' answer function: every DomainGet gets a Future the test completes."""

    def __init__(self) -> None:
        self.pending: list[asyncio.Future[Any]] = []

    def __call__(self, shard: int, request: Request) -> asyncio.Future[Any]:
        assert type(request) is DomainGet and shard == CATALOG_SHARD
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending.append(future)
        return future

    def answer(self, reply: Any = SHOP) -> None:
        """Complete the oldest unanswered load with `reply` (an exception raises)."""
        future = next(f for f in self.pending if not f.done())
        if isinstance(reply, BaseException):
            future.set_exception(reply)
        else:
            future.set_result(reply)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(catalog_module, "time", clock)
    return clock


@pytest.fixture
def loads() -> Loads:
    return Loads()


@pytest.fixture
def shards(loads: Loads) -> FakeShards:
    return FakeShards(loads)


@pytest.fixture
def catalog(shards: FakeShards, clock: Clock) -> Catalog:
    return Catalog(shards)


def calls(shards: FakeShards) -> int:
    return len(shards.sent(DomainGet))


async def started(coro: Any) -> asyncio.Task[Any]:
    """A task already waiting inside `coro` (on a load's future): it ran up to there."""
    task = asyncio.ensure_future(coro)
    for _ in range(3):  # yields, not waits: every step up to that future is immediate
        await asyncio.sleep(0)
    return task


async def loaded(catalog: Catalog, loads: Loads, record: DomainRecord = SHOP) -> Domain:
    """Look `record.name` up and let its load answer `record`."""
    task = await started(catalog.domain(record.name))
    loads.answer(record)
    return await task


# --- single flight ------------------------------------------------------------------------------


async def test_concurrent_lookups_of_an_uncached_domain_make_one_shard_call(
        catalog: Catalog, shards: FakeShards, loads: Loads) -> None:
    tasks = [await started(catalog.domain("shop")) for _ in range(20)]
    assert calls(shards) == 1
    assert not any(task.done() for task in tasks)
    loads.answer()
    domains = await asyncio.gather(*tasks)
    assert all(domain is domains[0] for domain in domains)
    assert (domains[0].name, domains[0].epoch, domains[0].created_ms) == ("shop", 7, 5)
    assert shards.sent(DomainGet) == [(CATALOG_SHARD, DomainGet(name="shop"))]


async def test_a_loaded_domain_is_served_from_the_cache(catalog: Catalog, shards: FakeShards,
                                                       loads: Loads) -> None:
    first = await loaded(catalog, loads)
    assert await catalog.domain("shop") is first
    assert catalog.cached("shop") is first
    assert calls(shards) == 1


async def test_lookups_of_different_domains_load_separately(
        catalog: Catalog, shards: FakeShards, loads: Loads) -> None:
    shop = await started(catalog.domain("shop"))
    other = await started(catalog.domain("other"))
    assert [request.name for _, request in shards.sent(DomainGet)] == ["shop", "other"]
    loads.answer()
    loads.answer(OTHER)
    assert ((await shop).epoch, (await other).epoch) == (7, 8)


async def test_the_cached_domain_validates_with_its_compiled_schema(
        catalog: Catalog, loads: Loads) -> None:
    domain = await loaded(catalog, loads)
    domain.validate({"amount": 3})
    with pytest.raises(SchemaViolation):
        domain.validate({"amount": "three"})


# --- failures -----------------------------------------------------------------------------------


@pytest.mark.parametrize("error", [ShardUnavailable("shard 0 is down"),
                                   DomainNotFound("domain 'shop' not found")],
                         ids=["unavailable", "not found"])
async def test_a_failed_load_reaches_every_waiter_and_is_not_cached(
        catalog: Catalog, shards: FakeShards, loads: Loads, error: Exception) -> None:
    tasks = [await started(catalog.domain("shop")) for _ in range(5)]
    loads.answer(error)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(type(result) is type(error) for result in results)
    assert catalog.cached("shop") is None
    again = await started(catalog.domain("shop"))
    assert calls(shards) == 2  # asked again: a failure (or a "not found") is never kept
    loads.answer()
    assert (await again).epoch == 7


async def test_a_waiter_that_gives_up_does_not_cancel_the_load_for_the_others(
        catalog: Catalog, shards: FakeShards, loads: Loads) -> None:
    leader = await started(catalog.domain("shop"))
    impatient = await started(catalog.domain("shop"))
    impatient.cancel()
    loads.answer()
    assert (await leader).epoch == 7
    assert impatient.cancelled()
    assert catalog.cached("shop") is not None and calls(shards) == 1


async def test_the_loading_callers_cancellation_does_not_fail_the_other_waiters(
        catalog: Catalog, loads: Loads) -> None:
    leader = await started(catalog.domain("shop"))
    waiter = await started(catalog.domain("shop"))
    leader.cancel()
    for _ in range(10):  # a fixed catalog may keep the load going or ask again: answer all
        await asyncio.sleep(0)
        for future in loads.pending:
            if not future.done():
                future.set_result(SHOP)
        if waiter.done():
            break
    [result] = await asyncio.gather(waiter, return_exceptions=True)
    assert isinstance(result, Domain) and result.epoch == 7


# --- invalidation racing a load (the generation check) ------------------------------------------


def _invalidations() -> dict[str, Callable[[Catalog], None]]:
    return {
        "forget": lambda c: c.forget("shop"),
        "clear": lambda c: c.clear(),
        "domain event": lambda c: c.on_event(CatalogEvent(kind="domain", domain="shop")),
        "catalog shard reconnect": lambda c: c.on_reconnect(CATALOG_SHARD),
    }


@pytest.mark.parametrize("invalidate", list(_invalidations().values()),
                         ids=list(_invalidations()))
async def test_a_load_that_raced_an_invalidation_answers_its_callers_but_is_not_cached(
        catalog: Catalog, shards: FakeShards, loads: Loads,
        invalidate: Callable[[Catalog], None]) -> None:
    tasks = [await started(catalog.domain("shop")) for _ in range(3)]
    invalidate(catalog)
    loads.answer()
    assert [d.epoch for d in await asyncio.gather(*tasks)] == [7, 7, 7]
    assert catalog.cached("shop") is None
    again = await started(catalog.domain("shop"))
    assert calls(shards) == 2
    loads.answer(DomainRecord(name="shop", epoch=9, created_at=6, schema=None))
    assert (await again).epoch == 9
    assert catalog.cached("shop").epoch == 9  # no invalidation raced this one: kept


@pytest.mark.parametrize("invalidate", list(_invalidations().values()),
                         ids=list(_invalidations()))
async def test_an_invalidation_drops_a_cached_domain(
        catalog: Catalog, shards: FakeShards, loads: Loads,
        invalidate: Callable[[Catalog], None]) -> None:
    await loaded(catalog, loads)
    invalidate(catalog)
    assert catalog.cached("shop") is None
    await loaded(catalog, loads)
    assert calls(shards) == 2


async def test_a_catalog_reconnect_drops_every_domain(catalog: Catalog, loads: Loads) -> None:
    await loaded(catalog, loads)
    await loaded(catalog, loads, OTHER)
    assert catalog.cached("other") is not None
    catalog.on_reconnect(CATALOG_SHARD)
    assert (catalog.cached("shop"), catalog.cached("other")) == (None, None)


async def test_a_domain_event_drops_only_that_domain(catalog: Catalog, loads: Loads) -> None:
    await loaded(catalog, loads)
    catalog.on_event(CatalogEvent(kind="domain", domain="other"))
    assert catalog.cached("shop") is not None


async def test_a_reconnect_of_another_shard_keeps_the_cache(catalog: Catalog,
                                                            loads: Loads) -> None:
    await loaded(catalog, loads)
    catalog.on_reconnect(CATALOG_SHARD + 1)
    assert catalog.cached("shop") is not None


async def test_queue_events_drop_no_domain_entry_nor_spoil_a_load(
        catalog: Catalog, shards: FakeShards, loads: Loads) -> None:
    await loaded(catalog, loads)
    catalog.on_event(CatalogEvent(kind="queue", domain="shop", queue="orders"))
    assert catalog.cached("shop") is not None
    racing = await started(catalog.domain("other"))
    catalog.on_event(CatalogEvent(kind="queue", domain="other", queue="orders"))
    loads.answer(OTHER)
    await racing
    assert catalog.cached("other") is not None
    assert calls(shards) == 2


async def test_a_lookup_after_an_invalidation_does_not_join_a_load_started_before_it(
        catalog: Catalog, shards: FakeShards, loads: Loads) -> None:
    early = await started(catalog.domain("shop"))
    catalog.forget("shop")  # e.g. this gateway just deleted and recreated the domain
    late = await started(catalog.domain("shop"))
    loads.answer()  # the early load: the old incarnation
    if calls(shards) == 2:
        loads.answer(DomainRecord(name="shop", epoch=9, created_at=6, schema=None))
    assert (await early).epoch == 7
    assert (await late).epoch == 9


# --- expiry -------------------------------------------------------------------------------------


async def test_an_entry_expires_after_its_ttl_and_is_loaded_again(
        catalog: Catalog, shards: FakeShards, loads: Loads, clock: Clock) -> None:
    loaded_at = clock.now
    first = await loaded(catalog, loads)
    clock.now = loaded_at + ENTRY_TTL_S - 0.001
    assert catalog.cached("shop") is first
    assert await catalog.domain("shop") is first
    clock.now = loaded_at + ENTRY_TTL_S
    assert catalog.cached("shop") is None
    second = await loaded(catalog, loads)
    assert second is not first and calls(shards) == 2
    assert catalog.cached("shop") is second


async def test_cached_never_starts_a_load(catalog: Catalog, shards: FakeShards) -> None:
    assert catalog.cached("shop") is None
    assert calls(shards) == 0
