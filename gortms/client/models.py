"""What the broker answers, as typed values: frozen msgspec Structs decoded from its JSON in
one pass (unknown fields are ignored, so a newer broker's additions do no harm).

A group's and a queue's status are the gateway<->shard contract's own replies, which the
gateway sends as they are: the client decodes them into those same types (GroupInfo,
QueueInfo of gortms/protocol/ops.py), re-exported here.

Each reply that also travels on a WebSocket is tagged with its frame type (`message`,
`published`, `acked`, ...): the REST answer decodes without the tag, the frame with it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterator

import msgspec

from gortms.protocol.ops import GroupInfo, QueueInfo

__all__ = ["Acked", "BatchPublished", "Extended", "Fetched", "GroupInfo", "Health", "Message",
           "Nacked", "Published", "QueueInfo", "Settled"]


class _Reply(msgspec.Struct, frozen=True, rename="camel", tag_field="type"):
    pass


class Message(_Reply, tag="message"):
    """A message as delivered (`fetch`, a consuming socket) or observed (an observing socket:
    `delivery_count` is 0 there). Ack it by `position`, which names exactly one message; ids
    are labels and may repeat."""

    position: int
    id: str
    timestamp: datetime
    headers: dict[str, str] = {}
    payload: Any = None
    delivery_count: int = 0


class Published(_Reply, tag="published"):
    message_id: str
    position: int
    duplicate: bool = False  # an Idempotency-Key seen before: the original answer


class BatchPublished(msgspec.Struct, frozen=True, rename="camel"):
    count: int
    message_ids: list[str]
    first_position: int
    duplicate: bool = False

    @property
    def positions(self) -> range:
        return range(self.first_position, self.first_position + self.count)


class Fetched(msgspec.Struct, frozen=True, rename="camel"):
    """One fetch's deliveries; `circuit` is "open" when the group's circuit breaker holds them
    back (then `messages` is empty)."""

    messages: list[Message]
    count: int = 0
    circuit: str | None = None
    retry_after_s: float | None = None  # with an open circuit: when to ask again

    def __iter__(self) -> Iterator[Message]:
        return iter(self.messages)

    def __len__(self) -> int:
        return len(self.messages)


class Acked(_Reply, tag="acked"):
    acked: int
    unknown: list[str | int] = []  # not pending: never delivered, acked already, expired


class Nacked(_Reply, tag="nacked"):
    nacked: int
    dead_lettered: int = 0
    unknown: list[str | int] = []


class Extended(_Reply, tag="extended"):
    extended: int
    deadline: datetime | None = None
    unknown: list[str | int] = []


class Settled(msgspec.Struct, frozen=True, rename="camel"):
    acked: int
    nacked: int
    dead_lettered: int = 0
    unknown: list[str] = []


class ShardCount(msgspec.Struct, frozen=True):
    up: int
    total: int


class Health(msgspec.Struct, frozen=True, rename="camel"):
    status: str  # "ok", or "degraded" while a shard is down
    shards: ShardCount
    storage: str = "ok"
    node_id: str = ""
    version: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"
