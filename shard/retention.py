"""Retention: which messages a queue keeps, and deleting the rest from the front.

    ttl        a message older than the queue's `ttl` is expired and deleted, delivered or
               not: it leaves every group's pending list and is never delivered again; each
               group counts what expired before it acknowledged it (`expired`), and so does
               the queue. Checked once a second (`sweep`), a bounded step at a time.
    maxSize    a publish that would take the queue past `maxSize` messages first evicts the
               oldest ones that every group has acknowledged (all of them, with no group);
               if that is not enough it is refused: 429 queue_full, and nothing is dropped
               that a group still has to consume (`make_room`).
    interest   (`retention: interest`) a message is also deleted once every group has
               acknowledged it; with no group, messages are kept for groups to come.

Messages go only from the front (positions are in publish order, timestamps never go back),
so a deletion is a cut: the chunks wholly before it are deleted, the one it falls in is
rewritten (QueueState.truncate). A cut that empties the queue, or frees `RECLAIM_BYTES`, then
has RocksDB flush and compact the range, so the disk space comes back at once rather than at
some later compaction.
"""

from __future__ import annotations

import logging

from gortms.errors import QueueFull
from gortms.models import Retention
from shard.queues import QueueState
from shard.state import ShardState
from shard.store import pos_bytes

log = logging.getLogger(__name__)

SWEEP_CHUNKS = 256  # chunks one sweep may delete per queue: bounds the time a sweep takes
RECLAIM_BYTES = 64 * 1024 * 1024


def sweep(state: ShardState, queue: QueueState) -> int:
    """Expire what the ttl says, and with `interest`, delete what every group acked; how
    many messages went."""
    gone = 0
    ttl_ms = int(queue.config.ttl * 1000)
    if ttl_ms and queue.count:
        cut = queue.position_at(state.store, state.now_ms - ttl_ms)
        gone += _cut(state, queue, cut, expired=True)
    if queue.config.retention is Retention.INTEREST and queue.groups and queue.count:
        gone += _cut(state, queue, _acked_by_all(queue), expired=False)
    return gone


def make_room(state: ShardState, queue: QueueState, incoming: int) -> None:
    """Before a publish of `incoming` messages: evict what maxSize asks, or raise QueueFull."""
    limit = queue.config.max_size
    over = queue.count + incoming - limit
    if over <= 0:
        return
    if incoming > limit:
        raise QueueFull(f"a batch of {incoming} messages does not fit in queue "
                        f"'{queue.name}' (maxSize {limit})")
    evictable = _acked_by_all(queue)
    if evictable - queue.first < over:  # positions bound messages: refused, nothing touched
        raise _full(queue, limit)
    while over > 0 and queue.first < evictable:
        deleted, _ = queue.truncate(state.store, state.turn, state.recent,
                                    min(evictable, queue.first + over))
        for group in queue.groups.values():
            group.forget_before(queue.first, state.turn, expired=False)
        over -= deleted
        if not deleted:
            break
    if over > 0:  # holes in the evictable run (rare): what it evicted was acked by all anyway
        raise _full(queue, limit)


def _full(queue: QueueState, limit: int) -> QueueFull:
    return QueueFull(f"queue '{queue.domain}/{queue.name}' holds {queue.count} messages "
                     f"(maxSize {limit}) and its oldest are not acknowledged by every "
                     f"consumer group; consume them, or raise maxSize")


def _acked_by_all(queue: QueueState) -> int:
    """The first position some group has not acknowledged (everything before it is acked
    by all); with no group, everything durable."""
    end = queue.durable + 1
    return min((g.acks.floor for g in queue.groups.values()), default=end)


def _cut(state: ShardState, queue: QueueState, cut: int, expired: bool) -> int:
    if cut <= queue.first:
        return 0
    before = queue.bytes
    deleted, first = queue.truncate(state.store, state.turn, state.recent, cut, SWEEP_CHUNKS)
    for group in queue.groups.values():
        group.forget_before(first, state.turn, expired)
    if expired:
        queue.expired += deleted
    if deleted:
        log.debug("%s/%s: %d messages %s", queue.domain, queue.name, deleted,
                  "expired" if expired else "acknowledged by every group deleted")
    if deleted and (queue.count == 0 or before - queue.bytes >= RECLAIM_BYTES):
        state.reclaim.append((queue.message_prefix, queue.message_prefix + pos_bytes(first)))
    return deleted
