"""Rebuild a shard's memory from its database at start: catalog, queues, groups, pending.

Whatever was delivered and not acknowledged before the restart is due again at once, with
the delivery count that was recorded for it.
"""

from __future__ import annotations

import logging

import orjson

from gortms.models import AckMode, GroupSpec, QueueConfig, parse_start
from shard.groups import GroupState
from shard.queues import QueueState
from shard.state import ShardState
from shard.store import (counter_key, counters_key, cursor_key, dedup_prefix, pos_bytes,
                         prefix_end, redelivery_prefix)

log = logging.getLogger(__name__)

_READ_CHUNK = 1000


def load(state: ShardState) -> None:
    store = state.store
    for name, attr in (("next_qid", "next_qid"), ("next_epoch", "next_epoch")):
        value = store.get(counter_key(name))
        if value is not None:
            setattr(state, attr, int.from_bytes(value, "big"))
    for _, value in store.scan(b"D", b"E"):
        record = orjson.loads(value)
        state.domains[record["name"]] = record
    for _, value in store.scan(b"Q", b"R"):
        queue = _load_queue(state, orjson.loads(value))
        state.queues[(queue.domain, queue.name)] = queue
    for (_, _), queue in state.queues.items():
        _load_groups(state, queue)
        _load_dedup(state, queue)
    if state.batch.len():
        state.commit()
    log.info("shard %d loaded %d queues, %d domains", state.index, len(state.queues),
             len(state.domains))


def _load_queue(state: ShardState, record: dict) -> QueueState:
    queue = QueueState(record["qid"], record["domain"], record["name"], record["epoch"],
                       QueueConfig.from_wire(record["config"]), record["createdAt"])
    counters = state.store.get(counters_key(queue.qid))
    if counters is not None:
        queue.restore_counters(counters)
    prefix = queue.message_prefix
    end = prefix_end(prefix)
    last_key = state.store.last_key(prefix, end)
    if last_key is not None:
        # Non-persistent messages may outlive the counters record (or the reverse): trust both.
        queue.last = max(queue.last, int.from_bytes(last_key[-8:], "big"))
    first = next(state.store.scan(prefix, end), None)
    queue.first = int.from_bytes(first[0][-8:], "big") if first else queue.last + 1
    if not queue.config.is_persistent:
        # Messages without a WAL may have been lost in a crash: count what is really there.
        queue.count = queue.bytes = 0
        for _, value in state.store.scan(prefix, end):
            queue.count += 1
            queue.bytes += len(value)
    return queue


def _load_groups(state: ShardState, queue: QueueState) -> None:
    store = state.store
    prefix = b"G" + queue.message_prefix[1:]
    for key, value in store.scan(prefix, prefix_end(prefix)):
        record = orjson.loads(value)
        spec = GroupSpec(record["groupId"], AckMode(record["ackMode"]),
                         float(record.get("ttlSeconds", 0)), parse_start(record.get("start")))
        group = GroupState(queue, spec, record["createdAt"], queue.first,
                           record.get("consumers", []))
        cursor = store.get(cursor_key(queue.qid, group.name))
        if cursor is not None:
            group.restore_cursor(cursor)
        queue.groups[group.name] = group
        if group.ack_mode is AckMode.EXPLICIT:
            _restore_pending(state, group)


def _restore_pending(state: ShardState, group: GroupState) -> None:
    """Positions delivered (below the position) but not acknowledged are pending again."""
    queue = group.queue
    rprefix = redelivery_prefix(queue.qid, group.name)
    counts = {int.from_bytes(k[-8:], "big"): int.from_bytes(v, "big")
              for k, v in state.store.scan(rprefix, prefix_end(rprefix))}
    if group.acks.floor < queue.first:  # deleted while unacknowledged: nothing to redeliver
        group.acks.add_range(group.acks.floor, queue.first)
    unacked = list(group.acks.gaps(group.position))
    for i in range(0, len(unacked), _READ_CHUNK):
        chunk = unacked[i:i + _READ_CHUNK]
        records = state.store.get_many([queue.message_prefix + pos_bytes(p) for p in chunk])
        group.restore_pending(chunk, records, counts, state.batch)
    if unacked:
        state.dirty_groups.add(group)
        log.info("group %s/%s/%s: %d unacknowledged deliveries are due again", queue.domain,
                 queue.name, group.name, len(group.pending))


def _load_dedup(state: ShardState, queue: QueueState) -> None:
    prefix = dedup_prefix(queue.qid)
    entries = []
    for key, value in state.store.scan(prefix, prefix_end(prefix)):
        expiry = int.from_bytes(value[:8], "big")
        if expiry <= state.now_ms:
            state.batch.delete(key)
        else:
            entries.append((expiry, key[len(prefix):].decode(), value[8:]))
    for expiry, key, reply in sorted(entries):
        queue.dedup[key] = (expiry, reply)
