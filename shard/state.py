"""ShardState: everything one shard holds in memory, and the writes of the current loop turn.

Handlers change state and stage writes in `batch` (WAL) or `batch_nowal` (queues with
isPersistent: false); the server commits both once per loop turn (group commit) and only
then sends the replies. Counters and cursors that changed are written once per commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gortms.errors import QueueNotFound
from gortms.models import now_ms
from shard.groups import GroupState
from shard.queues import QueueState
from shard.store import Store, counter_key, counters_key, cursor_key, drop_queue, name_key


@dataclass(frozen=True, slots=True)
class Limits:
    sync: bool = True
    dedup_window_ms: int = 120_000
    max_waiters: int = 10_000
    max_pending_per_group: int = 10_000


class ShardState:
    def __init__(self, index: int, store: Store, limits: Limits) -> None:
        self.index = index
        self.store = store
        self.limits = limits
        self.queues: dict[tuple[str, str], QueueState] = {}
        self.domains: dict[str, dict[str, Any]] = {}  # the catalog (on the catalog shard)
        self.next_qid = 1
        self.next_epoch = 1
        self.now_ms = now_ms()
        self.batch = store.batch()
        self.batch_nowal = store.batch()
        self.sync_needed = False
        self.dirty_queues: set[QueueState] = set()
        self.dirty_groups: set[GroupState] = set()
        self.timed_groups: set[GroupState] = set()  # groups with ack deadlines or delays
        self.published: set[QueueState] = set()  # this turn, for wake-ups and events
        self.catalog_events: list[dict[str, Any]] = []
        self.parked = 0  # long polls waiting, over all groups

    # --- lookups ------------------------------------------------------------------------------

    def queue(self, domain: str, name: str, epoch: int) -> QueueState:
        """The queue `domain/name` of domain incarnation `epoch`; a stale one is dropped."""
        queue = self.queues.get((domain, name))
        if queue is not None and queue.epoch != epoch:
            if queue.epoch < epoch:  # left over from a deleted domain of the same name
                self.drop_queue(queue)
            queue = None
        if queue is None:
            raise QueueNotFound(f"queue '{name}' not found in domain '{domain}'")
        return queue

    def queues_of(self, domain: str, epoch: int) -> list[QueueState]:
        return [q for (d, _), q in self.queues.items() if d == domain and q.epoch == epoch]

    # --- changes --------------------------------------------------------------------------

    def allocate_qid(self) -> int:
        qid = self.next_qid
        self.next_qid += 1
        self.batch.put(counter_key("next_qid"), self.next_qid.to_bytes(8, "big"))
        return qid

    def allocate_epoch(self) -> int:
        epoch = self.next_epoch
        self.next_epoch += 1
        self.batch.put(counter_key("next_epoch"), self.next_epoch.to_bytes(8, "big"))
        return epoch

    def add_queue(self, queue: QueueState) -> None:
        self.queues[(queue.domain, queue.name)] = queue
        queue.write_record(self.batch)
        self.batch.put(name_key(queue.domain, queue.name), queue.qid.to_bytes(4, "big"))
        self.sync_needed = True
        self.catalog_events.append({"kind": "queue", "domain": queue.domain, "queue": queue.name})

    def drop_queue(self, queue: QueueState) -> None:
        del self.queues[(queue.domain, queue.name)]
        for group in queue.groups.values():
            self.forget_group(group)
        drop_queue(self.batch, queue.qid, queue.domain, queue.name)
        self.dirty_queues.discard(queue)
        self.published.discard(queue)
        self.sync_needed = True
        self.catalog_events.append({"kind": "queue", "domain": queue.domain, "queue": queue.name})

    def forget_group(self, group: GroupState) -> None:
        """Drop a group's in-memory traces; parked fetches are answered by the server."""
        self.dirty_groups.discard(group)
        self.timed_groups.discard(group)

    def touch_group(self, group: GroupState) -> None:
        self.dirty_groups.add(group)
        if group.has_timers():
            self.timed_groups.add(group)

    # --- commit -------------------------------------------------------------------------------

    def has_writes(self) -> bool:
        return bool(self.batch.len() or self.batch_nowal.len() or self.dirty_queues
                    or self.dirty_groups)

    def commit(self) -> None:
        """Write the turn's batches: one WriteBatch, one fsync when anything needs it."""
        batch = self.batch
        for queue in self.dirty_queues:
            batch.put(counters_key(queue.qid), queue.counters())
        for group in self.dirty_groups:
            batch.put(cursor_key(group.queue.qid, group.name), group.cursor())
        self.dirty_queues.clear()
        self.dirty_groups.clear()
        if self.batch_nowal.len():
            self.store.write(self.batch_nowal, sync=False, wal=False)
            self.batch_nowal = self.store.batch()
        if batch.len():
            self.store.write(batch, sync=self.sync_needed and self.limits.sync)
            self.batch = self.store.batch()
        self.sync_needed = False
