"""Gateway: what every endpoint needs (settings, the shards, the catalog cache), wired once."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import Any

from gortms.config import Settings
from gortms.partition import shard_for
from gortms.protocol import QueueRequest
from gateway.catalog import Catalog, Domain
from gateway.shards import Call, Shards

ID_COUNTER_LIMIT = 2**48  # the last 12 hex digits
GENERATED_ID_LENGTH = 36  # 8-4-4-4-12 hex digits


class MessageIds:
    """Generated message ids: UUID-shaped (version 4 layout) and unique, but not random per id.

    A random 74-bit prefix is drawn per process and the last 12 hex digits count up from a
    random start: one string concatenation per id instead of a urandom call and five slices,
    and two processes (or one before and after a restart) never meet.
    """

    def __init__(self) -> None:
        self._reseed()

    def _reseed(self) -> None:
        h = os.urandom(10).hex()
        variant = "89ab"[int(h[15], 16) & 3]
        self.prefix = f"{h[0:8]}-{h[8:12]}-4{h[12:15]}-{variant}{h[16:19]}-"
        self.counter = int.from_bytes(os.urandom(4), "big")

    def take(self, count: int) -> list[str]:
        if self.counter + count >= ID_COUNTER_LIMIT:
            self._reseed()
        start = self.counter
        self.counter += count
        prefix = self.prefix
        return [prefix + "%012x" % n for n in range(start, start + count)]

    def one(self) -> str:
        if self.counter + 1 >= ID_COUNTER_LIMIT:
            self._reseed()
        self.counter += 1
        return self.prefix + "%012x" % self.counter


@dataclass(slots=True)
class Gateway:
    settings: Settings
    shards: Shards
    catalog: Catalog
    # Set when the worker is told to stop: long polls end early with what they have.
    draining: asyncio.Event = field(default_factory=asyncio.Event)
    ids: MessageIds = field(default_factory=MessageIds)

    @property
    def max_body(self) -> int:
        return self.settings.http.max_body_bytes

    def owner(self, domain: str, queue: str) -> int:
        return shard_for(domain, queue, self.shards.count)

    def send_to_queue(self, record: Domain, queue: str, kind: type[QueueRequest],
                      timeout_s: float | None = None, **fields: Any) -> Call:
        """Send `kind` to the owner shard of `record.name/queue`, naming the domain's
        incarnation (epoch), so a queue left over from a deleted namesake is never used."""
        request = kind(domain=record.name, queue=queue, epoch=record.epoch, **fields)
        return self.shards.send(self.owner(record.name, queue), request, timeout_s)

    async def queue_call(self, domain: str, queue: str, kind: type[QueueRequest],
                         timeout_s: float | None = None, **fields: Any) -> Any:
        record = await self.catalog.domain(domain)
        return await self.send_to_queue(record, queue, kind, timeout_s, **fields)
