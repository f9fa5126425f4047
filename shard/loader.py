"""Rebuild a shard's memory from its database at start: catalog, queues, groups, pending.

`read_queue`, `read_groups` and `redelivery_counts` only read, so `gortms inspect` uses them
on a read-only store. Whatever was delivered and not acknowledged before the restart is
pending again with the delivery count recorded for it: in flight while its lease lasts,
waiting while its retry is not due, due at once otherwise (shard/groups.py).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import msgspec
import orjson

from gortms.checks import Duration, convert
from gortms.errors import StorageError
from gortms.models import AckMode, GroupSpec, QueueConfig, parse_start
from gortms.protocol import DomainRecord, Published
from shard import chunks, deadletters
from shard.groups import DELAYED, DUE, INFLIGHT, GroupState, decode_lease
from shard.queues import QueueState
from shard.state import ShardState
from shard.turn import Turn
from shard.store import (Store, ack_prefix, counter_key, counters_key, cursor_key, dedup_prefix,
                         group_key, lease_prefix, prefix_end, redelivery_prefix,
                         schedule_prefix)

log = logging.getLogger(__name__)

_READ_CHUNK = 1000


def load(state: ShardState) -> None:
    store = state.store
    for name, attr in (("next_qid", "next_qid"), ("next_epoch", "next_epoch")):
        value = store.get(counter_key(name))
        if value is not None:
            setattr(state, attr, int.from_bytes(value, "big"))
    for _, value in store.scan(b"D", b"E"):
        record = msgspec.json.decode(value, type=DomainRecord)
        state.domains[record.name] = record
    state.records.load(store)
    for _, value in store.scan(b"Q", b"R"):
        queue = read_queue(store, orjson.loads(value))
        state.add_queue(queue, loaded=True)
        for group in read_groups(store, queue):
            queue.groups[group.name] = group
            # (An auto-ack group has gaps only for messages published for later delivery.)
            _restore_pending(state, group)
        _load_dedup(state, queue)
        _load_schedules(state, queue)
    if state.turn:
        if not store.read_only:
            state.turn.commit()
        # Read-only (a failed store, see shard/disk.py): what loading would have rewritten
        # stays in memory; nothing is written until the store is reopened and loaded again.
        state.turn = state.new_turn()
    log.info("shard %d loaded %d queues, %d domains", state.index, len(state.queues),
             len(state.domains))


def position_of(key: bytes) -> int:
    return int.from_bytes(key[-8:], "big")


def read_queue(store: Store, record: dict[str, Any]) -> QueueState:
    """A queue from its record, with counters and first/last position as stored."""
    config = convert(record["config"], QueueConfig, "stored queue config.", StorageError)
    queue = QueueState(record["qid"], record["domain"], record["name"], record["epoch"],
                       config, record["createdAt"])
    counters = store.get(counters_key(queue.qid))
    if counters is not None:
        queue.restore_counters(counters)
    prefix = queue.message_prefix
    end = prefix_end(prefix)
    stored = chunks.bounds(store, prefix, end)
    if stored is not None:
        # Non-persistent messages may outlive the counters record (or the reverse): trust both.
        queue.last = max(queue.last, stored[1])
    queue.first = stored[0] if stored else queue.last + 1
    queue.tail.first = queue.last + 1  # nothing in memory yet
    queue.durable = queue.last
    if not queue.config.is_persistent:
        # Messages without a WAL may have been lost in a crash: count what is really there.
        sizes = list(chunks.sizes(store, prefix, end))
        queue.count, queue.bytes = len(sizes), sum(sizes)
    return queue


def read_groups(store: Store, queue: QueueState) -> list[GroupState]:
    """The queue's groups with their cursors (no pending list: see `_restore_pending`)."""
    prefix = group_key(queue.qid, "")
    groups = []
    for _, value in store.scan(prefix, prefix_end(prefix)):
        record = orjson.loads(value)
        spec = GroupSpec(group_id=record["groupId"], ack_mode=AckMode(record["ackMode"]),
                         ttl=Duration(record.get("ttlSeconds", 0)),
                         start=parse_start(record.get("start")))
        group = GroupState(queue, spec, record["createdAt"], queue.first,
                           record.get("consumers", []))
        cursor = store.get(cursor_key(queue.qid, group.name))
        if cursor is not None:
            group.restore_cursor(cursor)
        group.restore_acks(read_ack_deltas(store, group))
        if group.acks.floor < queue.first:  # gone while unacknowledged: nothing to redeliver
            group.acks.add_range(group.acks.floor, queue.first)
        groups.append(group)
    return groups


def read_ack_deltas(store: Store, group: GroupState) -> list[tuple[int, list[int]]]:
    """The group's ack delta records, in the order they were written (see GroupState.persist)."""
    prefix = ack_prefix(group.queue.qid, group.name)
    return [(int.from_bytes(key[-8:], "big"), orjson.loads(value))
            for key, value in store.scan(prefix, prefix_end(prefix))]


def retry_records(store: Store, group: GroupState) -> dict[int, tuple[int, int]]:
    """Position -> (delivery count, retry time or 0), for the group's messages delivered more
    than once or waiting for a retry."""
    prefix = redelivery_prefix(group.queue.qid, group.name)
    return {position_of(k): (int.from_bytes(v[:4], "big"), int.from_bytes(v[4:12], "big"))
            for k, v in store.scan(prefix, prefix_end(prefix))}


def redelivery_counts(store: Store, group: GroupState) -> dict[int, int]:
    """Position -> delivery count, for the group's messages delivered more than once."""
    return {pos: count for pos, (count, _) in retry_records(store, group).items()}


def read_leases(store: Store, group: GroupState) -> dict[int, tuple[bytes, int, str, list[int]]]:
    """Lease -> (its key, deadline, consumer, positions), as recorded."""
    prefix = lease_prefix(group.queue.qid, group.name)
    return {int.from_bytes(key[-8:], "big"): (key, *decode_lease(value))
            for key, value in store.scan(prefix, prefix_end(prefix))}


def restore_pending(store: Store, group: GroupState, turn: Turn) -> list[int]:
    """The group's pending list from the store, with its leases and retries (nothing timed
    out yet); the unacknowledged positions it covers."""
    retries = retry_records(store, group)
    leases = read_leases(store, group)
    leased: dict[int, tuple[int, int, str]] = {}
    for seq in sorted(leases):  # a later lease (an extension, a redelivery) wins
        _, deadline, consumer, positions = leases[seq]
        for pos in positions:
            leased[pos] = (seq, deadline, consumer)
    unacked = list(group.acks.gaps(group.position))
    for i in range(0, len(unacked), _READ_CHUNK):
        chunk = unacked[i:i + _READ_CHUNK]
        group.restore_pending(chunk, group.queue.read_positions(store, chunk), retries, leased)
    group.restore_leases({seq: (key, deadline, positions)
                          for seq, (key, deadline, _, positions) in leases.items()}, turn)
    return unacked


def _restore_pending(state: ShardState, group: GroupState) -> None:
    """Positions delivered (below the position) but not acknowledged are pending again:
    under their lease while it lasts, waiting for their retry, or due at once."""
    queue = group.queue
    unacked = restore_pending(state.store, group, state.turn)
    # Leases that ran out while the shard was down fail now, as the timer would have failed
    # them (retried, or dead-lettered past maxRetries).
    group.expire(state.now_ms, state.turn)
    deadletters.move(state, group)
    state.track_timers(group)
    if unacked:
        state.turn.changed(group, lazy=True)
        states = Counter(entry.state for entry in group.pending.values())
        log.info("group %s/%s/%s: %d unacknowledged deliveries: %d still leased, %d waiting "
                 "for a retry, %d due again", queue.domain, queue.name, group.name,
                 len(group.pending), states[INFLIGHT], states[DELAYED], states[DUE])


def _load_schedules(state: ShardState, queue: QueueState) -> None:
    """Messages published for later delivery whose time has not come (the rest: deleted)."""
    prefix = schedule_prefix(queue.qid)
    for key, value in state.store.scan(prefix, prefix_end(prefix)):
        count, due_ms = int.from_bytes(value[:4], "big"), int.from_bytes(value[4:12], "big")
        if due_ms > state.now_ms:
            queue.schedule(position_of(key), count, due_ms, None)
        else:
            state.turn.delete(key, lazy=True)


def _load_dedup(state: ShardState, queue: QueueState) -> None:
    prefix = dedup_prefix(queue.qid)
    entries = []
    for key, value in state.store.scan(prefix, prefix_end(prefix)):
        expiry = int.from_bytes(value[:8], "big")
        if expiry <= state.now_ms or not _is_reply(value[8:]):
            state.turn.delete(key, lazy=True)  # expired, or from an older release
        else:
            entries.append((expiry, key[len(prefix):].decode(), value[8:]))
    for expiry, key, reply in sorted(entries):
        queue.dedup[key] = (expiry, reply)


def _is_reply(data: bytes) -> bool:
    try:
        msgspec.msgpack.decode(data, type=Published)
    except msgspec.DecodeError:
        return False
    return True
