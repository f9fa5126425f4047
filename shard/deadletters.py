"""Dead letters: a message that failed past its queue's maxRetries moves to `{q}.dlq`, and a
redrive moves dead letters back.

`{q}.dlq` is a queue like any other (consumed, browsed, replayed through groups), created on
demand in the same domain. It lives on the same shard as `{q}` (gortms/partition.py places a
`.dlq` queue by its origin's name), so a move is one WriteBatch: the message leaves the
group's pending list (acknowledged there) and is appended to the dead-letter queue in the same
commit, or neither happens. The origin's other groups still see the message in `{q}`.

A dead letter keeps its message id and payload; its headers gain the origin's:
x-origin-queue, x-origin-group, x-attempts (deliveries made), x-reason (the last nack's reason,
or "ack timeout"), x-original-id and x-original-position. A redrive strips them again.
"""

from __future__ import annotations

import logging

import orjson

from gortms.models import QueueConfig
from gortms.partition import DLQ_SUFFIX
from gortms.protocol import encode_message, record_to_dict, ts_bytes
from shard.events import EVENTS
from shard.groups import GroupState
from shard.queues import QueueState
from shard.state import ShardState

log = logging.getLogger(__name__)

ORIGIN_HEADERS = ("x-origin-queue", "x-origin-group", "x-attempts", "x-reason",
                  "x-original-id", "x-original-position")
MAX_REDRIVE = 10_000  # messages moved back by one request, at most
MAX_NAME = 128  # gortms.checks NAME_PATTERN


def dlq_name(queue: str) -> str:
    return queue + DLQ_SUFFIX


def move(state: ShardState, group: GroupState) -> int:
    """Move the group's dead messages (GroupState.dead) to its queue's dead-letter queue, in
    the current turn; how many moved."""
    dead, group.dead = group.dead, []
    if not dead:
        return 0
    queue = group.queue
    if len(dlq_name(queue.name)) > MAX_NAME:
        # `{q}.dlq` would break the naming rule (nobody could read it): keep retrying instead.
        log.error("%s/%s: no dead-letter queue for a name this long; %d messages of group %s "
                  "are due again instead", queue.domain, queue.name, len(dead), group.name)
        for pos, _ in dead:
            entry = group.pending.get(pos)
            if entry is not None:
                group.make_due(pos, entry)
        return 0
    dlq = _dlq_of(state, queue)
    positions = [pos for pos, _ in dead]
    records = queue.read_positions(state.store, positions)
    moved: list[bytes] = []
    for (pos, reason), record in zip(dead, records):
        entry = group.settle(pos, state.turn)
        if record is None or entry is None:
            continue  # deleted meanwhile: nothing left to move
        message = record_to_dict(record)
        headers = {**message.get("headers", {}),
                   "x-origin-queue": queue.name, "x-origin-group": group.name,
                   "x-attempts": str(entry.delivery_count), "x-reason": reason or "",
                   "x-original-id": message["id"], "x-original-position": str(pos)}
        moved.append(encode_message(message["id"], orjson.dumps(headers),
                                    orjson.dumps(message["payload"])))
    if moved:
        dlq.append(state.turn, state.recent, ts_bytes(state.now_ms), moved)
        state.published.add(dlq)
        queue.dead_lettered += len(moved)
        EVENTS.add("dead_lettered", f"{len(moved)} messages of {queue.domain}/{queue.name} "
                   f"(group {group.name}) moved to {dlq.name} after their retries", "warning",
                   queue.domain, queue.name, group.name)
        log.info("%d messages of %s/%s (group %s) moved to %s after their retries",
                 len(moved), queue.domain, queue.name, group.name, dlq.name)
    state.turn.changed(group)  # the moves are durable with the turn: the group's acks too
    return len(moved)


def _dlq_of(state: ShardState, queue: QueueState) -> QueueState:
    name = dlq_name(queue.name)
    dlq = state.queues.get((queue.domain, name))
    if dlq is not None and dlq.epoch == queue.epoch:
        return dlq
    if dlq is not None:  # left over from a deleted domain of the same name
        state.drop_queue(dlq)
    dlq = QueueState(state.allocate_qid(), queue.domain, name, queue.epoch, QueueConfig(),
                     state.now_ms)
    state.add_queue(dlq)
    log.info("created the dead-letter queue %s/%s", queue.domain, name)
    return dlq


def redrive(state: ShardState, queue: QueueState, limit: int) -> int:
    """Move up to `limit` dead letters, oldest first, back to `queue`, without their origin
    headers; how many moved."""
    dlq = state.queues.get((queue.domain, dlq_name(queue.name)))
    if dlq is None or dlq.epoch != queue.epoch:
        return 0  # nothing ever died here
    limit = min(limit, MAX_REDRIVE)
    positions: list[int] = []
    back: list[bytes] = []
    begin = dlq.first
    while len(back) < limit and begin <= dlq.durable:
        end = min(dlq.durable + 1, begin + limit - len(back))
        for pos, record in zip(range(begin, end), dlq.read(state.store, begin, end)):
            if record is None:
                continue
            message = record_to_dict(record)
            headers = {k: v for k, v in message.get("headers", {}).items()
                       if k not in ORIGIN_HEADERS}
            back.append(encode_message(message["id"], orjson.dumps(headers),
                                       orjson.dumps(message["payload"])))
            positions.append(pos)
        begin = end
    if not back:
        return 0
    queue.append(state.turn, state.recent, ts_bytes(state.now_ms), back)
    state.published.add(queue)
    dlq.delete(state.store, state.turn, state.recent, positions)
    # Read from the front: everything before the last one moved is gone now (moved or a hole).
    dlq.first = positions[-1] + 1
    log.info("%d dead letters of %s/%s redriven", len(back), queue.domain, queue.name)
    return len(back)

