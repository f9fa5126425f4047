"""Gateway: what every endpoint needs (settings, the shards, the catalog cache), wired once."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import Any, Sequence

from gortms.config import Settings
from gortms.partition import shard_for
from gortms.protocol import Op
from gateway.catalog import Catalog, Domain
from gateway.shards import Call, Reply, Shards


@dataclass(slots=True)
class Gateway:
    settings: Settings
    shards: Shards
    catalog: Catalog
    # Set when the worker is told to stop: long polls end early with what they have.
    draining: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def max_body(self) -> int:
        return self.settings.http.max_body_bytes

    def owner(self, domain: str, queue: str) -> int:
        return shard_for(domain, queue, self.shards.count)

    def start_queue_call(self, record: Domain, queue: str, op: Op, extra: dict[str, Any],
                         blobs: Sequence[bytes] = (), timeout_s: float | None = None) -> Call:
        """Send to the owner shard of `record.name/queue`, naming the domain's incarnation."""
        body = {"domain": record.name, "queue": queue, "epoch": record.epoch, **extra}
        return self.shards.start_call(self.owner(record.name, queue), op, body, blobs,
                                      timeout_s)

    async def queue_call(self, domain: str, queue: str, op: Op, extra: dict[str, Any],
                         timeout_s: float | None = None) -> Reply:
        record = await self.catalog.domain(domain)
        return await self.start_queue_call(record, queue, op, extra, (), timeout_s).reply()


def new_message_ids(count: int) -> list[str]:
    """Random (version 4) UUID strings, from one urandom call for the whole batch."""
    raw = os.urandom(16 * count).hex()
    ids = []
    for i in range(0, 32 * count, 32):
        h = raw[i:i + 32]
        variant = "89ab"[int(h[16], 16) & 3]
        ids.append(f"{h[0:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:32]}")
    return ids
