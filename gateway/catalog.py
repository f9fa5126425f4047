"""The gateway's cache of domain records (schema, epoch), owned by the catalog shard.

Entries are dropped when the catalog shard announces a change, dropped wholesale when that
shard reconnects (events may have been missed while it was away), and expire after
`ENTRY_TTL_S` as a last resort. Only positive entries are kept: a domain created through
another gateway is never hidden by a stale "not found".

Queue configs are not cached here: they live with their queue on its owner shard, which
checks them in the same round trip as every queue operation.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from gortms.partition import CATALOG_SHARD
from gortms.protocol import CatalogEvent, DomainGet, DomainRecord
from gortms.schema import Validator, compile_schema
from gateway.shards import Shards

ENTRY_TTL_S = 30.0


@dataclass(frozen=True, slots=True)
class Domain:
    name: str
    epoch: int
    schema: dict[str, Any] | None
    validate: Validator
    created_ms: int


class Catalog:
    def __init__(self, shards: Shards) -> None:
        self._shards = shards
        self._domains: dict[str, tuple[Domain, float]] = {}
        # name -> (the load under way, the generation it began in)
        self._loading: dict[str, tuple[asyncio.Future[Domain], int]] = {}
        self._generation = 0  # bumped by every invalidation, so late loads are not cached

    def cached(self, name: str) -> Domain | None:
        """The domain if it is cached and fresh: no coroutine for the common case."""
        entry = self._domains.get(name)
        if entry is not None and entry[1] > time.monotonic():
            return entry[0]
        return None

    async def domain(self, name: str) -> Domain:
        entry = self._domains.get(name)
        if entry is not None and entry[1] > time.monotonic():
            return entry[0]
        # One load per name at a time, as its own task, so a caller that gives up (its
        # client left) cancels its wait, not the load the others wait for; a load that
        # began before an invalidation is not joined: it may bring the record invalidated.
        loading = self._loading.get(name)
        if loading is None or loading[1] != self._generation:
            task = asyncio.ensure_future(self._load(name, self._generation))
            task.add_done_callback(_retrieve)  # a failure nobody waits for any more is fine
            loading = self._loading[name] = (task, self._generation)
        return await asyncio.shield(loading[0])

    async def _load(self, name: str, generation: int) -> Domain:
        try:
            domain = from_record(await self._shards.call(CATALOG_SHARD, DomainGet(name=name)))
        finally:
            current = self._loading.get(name)
            if current is not None and current[1] == generation:
                del self._loading[name]
        if generation == self._generation:
            self._domains[name] = (domain, time.monotonic() + ENTRY_TTL_S)
        return domain

    def forget(self, name: str) -> None:
        self._generation += 1
        self._domains.pop(name, None)

    def clear(self) -> None:
        self._generation += 1
        self._domains.clear()

    def on_event(self, event: CatalogEvent) -> None:
        if event.kind == "domain":
            self.forget(event.domain)

    def on_reconnect(self, shard: int) -> None:
        if shard == CATALOG_SHARD:
            self.clear()


def _retrieve(task: asyncio.Future[Domain]) -> None:
    if not task.cancelled():
        task.exception()


def from_record(record: DomainRecord) -> Domain:
    return Domain(record.name, record.epoch, record.schema, compile_schema(record.schema),
                  record.created_at)

