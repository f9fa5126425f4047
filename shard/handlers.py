"""One function per operation. No sockets here: a handler reads a request body, changes the
ShardState (staging writes in its batch) and returns the reply body, or raises a GortmsError.

Fetches are not here: they may park, which takes the server's sockets and timers (server.py).
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable

import orjson

from gortms.errors import (ConsumerNotFound, DomainExists, DomainNotFound, GroupExists,
                           GroupNotFound, InvalidParameter, QueueExists)
from gortms.models import (GroupSpec, QueueConfig, check_name, check_settle_targets, format_ts,
                           parse_start, parse_ts)
from gortms.protocol import Op, record_ts, ts_bytes, unstamped_id
from gortms.schema import check_schema
from shard.groups import GroupState
from shard.queues import QueueState
from shard.state import ShardState
from shard.store import domain_key, drop_group, pos_bytes, prefix_end

Body = dict[str, Any]
Handler = Callable[[ShardState, Body, list[bytes]], Body | bytes]

STARTED_AT = time.time()


# --- helpers ------------------------------------------------------------------------------------


def _str(body: Body, key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise InvalidParameter(f"{key} must be a string")
    return value


def _int(body: Body, key: str, default: int | None = None) -> int:
    value = body.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidParameter(f"{key} must be an integer")
    return value


def queue_of(state: ShardState, body: Body) -> QueueState:
    return state.queue(_str(body, "domain"), _str(body, "queue"), _int(body, "epoch"))


def group_of(state: ShardState, body: Body) -> GroupState:
    queue = queue_of(state, body)
    name = _str(body, "group")
    group = queue.groups.get(name)
    if group is None:
        raise GroupNotFound(f"consumer group '{name}' not found on queue "
                            f"'{queue.domain}/{queue.name}'")
    return group


# --- liveness and inspection --------------------------------------------------------------------


def ping(state: ShardState, body: Body, blobs: list[bytes]) -> Body:
    return {"shard": state.index, "pid": os.getpid()}


def shard_info(state: ShardState, body: Body, blobs: list[bytes]) -> Body:
    groups = sum(len(q.groups) for q in state.queues.values())
    return {
        "shard": state.index, "pid": os.getpid(), "state": "serving",
        "startedAt": format_ts(int(STARTED_AT * 1000)),
        "queues": len(state.queues), "groups": groups, "domains": len(state.domains),
        "messages": sum(q.count for q in state.queues.values()),
        "parkedFetches": state.parked, **state.store.stats(),
    }


# --- the catalog (domains) ----------------------------------------------------------------------


def domain_create(state: ShardState, body: Body, blobs: list[bytes]) -> Body:
    name = check_name("domain", body.get("name"))
    if name in state.domains:
        raise DomainExists(f"domain '{name}' already exists")
    record = {"name": name, "schema": check_schema(body.get("schema")),
              "epoch": state.allocate_epoch(), "createdAt": state.now_ms}
    state.domains[name] = record
    state.batch.put(domain_key(name), orjson.dumps(record))
    state.sync_needed = True
    state.catalog_events.append({"kind": "domain", "domain": name})
    return record


def _domain(state: ShardState, body: Body) -> dict[str, Any]:
    name = _str(body, "name")
    record = state.domains.get(name)
    if record is None:
        raise DomainNotFound(f"domain '{name}' not found")
    return record


def domain_get(state: ShardState, body: Body, blobs: list[bytes]) -> Body:
    return _domain(state, body)


def domain_list(state: ShardState, body: Body, blobs: list[bytes]) -> Body:
    return {"domains": [state.domains[name] for name in sorted(state.domains)]}


def domain_delete(state: ShardState, body: Body, blobs: list[bytes]) -> Body:
    record = _domain(state, body)
    del state.domains[record["name"]]
    state.batch.delete(domain_key(record["name"]))
    state.sync_needed = True
    state.catalog_events.append({"kind": "domain", "domain": record["name"]})
    return record


def domain_drop(state: ShardState, body: Body, blobs: list[bytes]) -> Body:
    """Every shard: delete this shard's queues of a deleted domain (epoch and older)."""
    domain, epoch = _str(body, "domain"), _int(body, "epoch")
    doomed = [q for (d, _), q in state.queues.items() if d == domain and q.epoch <= epoch]
    for queue in doomed:
        state.drop_queue(queue)
    return {"dropped": len(doomed)}


def domain_stats(state: ShardState, body: Body, blobs: list[bytes]) -> Body:
    epochs = body.get("epochs") or {}
    stats: dict[str, dict[str, int]] = {}
    for (domain, _), queue in state.queues.items():
        if epochs.get(domain) != queue.epoch:
            continue
        entry = stats.setdefault(domain, {"queueCount": 0, "messageCount": 0, "bytes": 0})
        entry["queueCount"] += 1
        entry["messageCount"] += queue.count
        entry["bytes"] += queue.bytes
    return {"domains": stats}


# --- queues -------------------------------------------------------------------------------------


def queue_create(state: ShardState, body: Body, blobs: list[bytes]) -> Body:
    domain = _str(body, "domain")
    name = check_name("queue", body.get("queue"))
    epoch = _int(body, "epoch")
    config = QueueConfig.from_wire(body.get("config"))
    existing = state.queues.get((domain, name))
    if existing is not None:
        if existing.epoch >= epoch:
            raise QueueExists(f"queue '{name}' already exists in domain '{domain}'")
        state.drop_queue(existing)
    queue = QueueState(state.allocate_qid(), domain, name, epoch, config, state.now_ms)
    state.add_queue(queue)
    return queue.info()


def queue_get(state: ShardState, body: Body, blobs: list[bytes]) -> Body:
    return queue_of(state, body).info()


def queue_list(state: ShardState, body: Body, blobs: list[bytes]) -> Body:
    queues = state.queues_of(_str(body, "domain"), _int(body, "epoch"))
    return {"queues": [q.info() for q in sorted(queues, key=lambda q: q.name)]}


def queue_delete(state: ShardState, body: Body, blobs: list[bytes]) -> Body:
    queue = queue_of(state, body)
    state.drop_queue(queue)
    return {"deleted": queue.name}


# --- publishing ---------------------------------------------------------------------------------


def publish(state: ShardState, body: Body, blobs: list[bytes]) -> Body | bytes:
    """Stage `blobs` (unstamped records); the reply goes out after the turn's commit."""
    queue = queue_of(state, body)
    if not blobs:
        raise InvalidParameter("a publish carries at least one message")
    key = body.get("key")
    if key is not None:
        original = queue.remembered(key, state.now_ms)
        if original is not None:
            return b'{"duplicate":true,"original":' + original + b"}"
    batch = state.batch if queue.config.is_persistent else state.batch_nowal
    first = queue.append(batch, ts_bytes(state.now_ms), blobs)
    reply = {"firstPosition": first, "count": len(blobs)}
    if key is not None:
        # A repeat must answer with the original ids, which the gateway generated.
        reply["messageIds"] = [unstamped_id(blob) for blob in blobs]
        expiry = state.now_ms + state.limits.dedup_window_ms
        queue.remember(key, orjson.dumps(reply), expiry, state.batch)
    state.dirty_queues.add(queue)
    state.published.add(queue)
    state.sync_needed |= queue.config.is_persistent
    return reply


# --- consumer groups ----------------------------------------------------------------------------


def position_at(state: ShardState, queue: QueueState, ts_ms: int) -> int:
    """The first position whose message was stored at or after `ts_ms` (last + 1 if none)."""
    lo, hi = queue.first, queue.last + 1
    end = prefix_end(queue.message_prefix)
    while lo < hi:
        mid = (lo + hi) // 2
        found = next(state.store.scan(queue.message_prefix + pos_bytes(mid), end), None)
        if found is None:
            hi = mid
            continue
        pos = int.from_bytes(found[0][-8:], "big")
        if record_ts(found[1]) < ts_ms:
            lo = pos + 1
        else:
            hi = mid
    return lo


def resolve_start(state: ShardState, queue: QueueState, start: str | int) -> int:
    if start == "earliest":
        return queue.first
    if start == "latest":
        return queue.last + 1
    if isinstance(start, int):
        return start
    return position_at(state, queue, parse_ts(start, "start"))


def group_create(state: ShardState, body: Body, blobs: list[bytes]) -> Body:
    queue = queue_of(state, body)
    spec = GroupSpec.from_wire(body.get("spec"))
    existing = queue.groups.get(spec.group_id)
    if existing is not None:
        if existing.spec == spec:
            return {"created": False, "group": existing.info()}
        raise GroupExists(f"consumer group '{spec.group_id}' already exists on "
                          f"'{queue.domain}/{queue.name}' with other settings "
                          f"({orjson.dumps(existing.spec.to_wire()).decode()})")
    group = create_group(state, queue, spec)
    return {"created": True, "group": group.info()}


def create_group(state: ShardState, queue: QueueState, spec: GroupSpec) -> GroupState:
    group = GroupState(queue, spec, state.now_ms, resolve_start(state, queue, spec.start))
    queue.groups[spec.group_id] = group
    group.write_records(state.batch)
    state.sync_needed = True
    return group


def group_get(state: ShardState, body: Body, blobs: list[bytes]) -> Body:
    return group_of(state, body).info()


def group_list(state: ShardState, body: Body, blobs: list[bytes]) -> Body:
    if "queue" in body:
        queues = [queue_of(state, body)]
    else:
        epochs = body.get("epochs") or {}
        queues = [q for (d, _), q in state.queues.items() if epochs.get(d) == q.epoch]
    groups = [g.info() for q in queues for g in q.groups.values()]
    groups.sort(key=lambda g: (g["domain"], g["queue"], g["groupId"]))
    return {"groups": groups}


def group_delete(state: ShardState, body: Body, blobs: list[bytes]) -> Body:
    group = group_of(state, body)
    delete_group(state, group)
    return {"deleted": group.name}


def delete_group(state: ShardState, group: GroupState) -> None:
    queue = group.queue
    del queue.groups[group.name]
    drop_group(state.batch, queue.qid, group.name)
    state.forget_group(group)
    state.sync_needed = True


def group_seek(state: ShardState, body: Body, blobs: list[bytes]) -> Body:
    group = group_of(state, body)
    queue = group.queue
    if body.get("timestamp") is not None:
        target = position_at(state, queue, parse_ts(body["timestamp"], "timestamp"))
    else:
        start = parse_start(body.get("position"), "position")
        target = resolve_start(state, queue, start)
    group.seek(target, state.batch)
    group.last_active_ms = state.now_ms
    state.dirty_groups.add(group)
    state.sync_needed = True
    return group.info()


def group_ttl(state: ShardState, body: Body, blobs: list[bytes]) -> Body:
    group = group_of(state, body)
    ttl = body.get("ttl")
    if not isinstance(ttl, (int, float)) or isinstance(ttl, bool) or ttl < 0:
        raise InvalidParameter("ttl must be a duration")
    group.ttl = float(ttl)
    group.last_active_ms = state.now_ms
    group.write_records(state.batch)
    state.sync_needed = True
    return group.info()


def consumer_add(state: ShardState, body: Body, blobs: list[bytes]) -> Body:
    group = group_of(state, body)
    consumer = check_name("consumer", body.get("consumer"))
    created = consumer not in group.registered
    if created:
        group.registered.append(consumer)
        group.write_records(state.batch)
        state.sync_needed = True
    group.consumers.setdefault(consumer, state.now_ms)
    return {"created": created, "group": group.info()}


def consumer_remove(state: ShardState, body: Body, blobs: list[bytes]) -> Body:
    group = group_of(state, body)
    consumer = _str(body, "consumer")
    if consumer not in group.consumers and consumer not in group.registered:
        raise ConsumerNotFound(f"consumer '{consumer}' not found in group '{group.name}'")
    group.consumers.pop(consumer, None)
    if consumer in group.registered:
        group.registered.remove(consumer)
        group.write_records(state.batch)
        state.sync_needed = True
    group.release_consumer(consumer)
    return group.info()


def ack(state: ShardState, body: Body, blobs: list[bytes]) -> Body:
    group = group_of(state, body)
    ids, positions = check_settle_targets(body)
    acked, unknown = group.ack(ids, positions, state.batch, state.now_ms)
    if acked:
        state.dirty_groups.add(group)
        state.sync_needed |= group.queue.config.is_persistent
    return {"acked": acked, "unknown": unknown}


def nack(state: ShardState, body: Body, blobs: list[bytes]) -> Body:
    group = group_of(state, body)
    ids, positions = check_settle_targets(body)
    delay_ms = _int(body, "delayMs", 0)
    reason = body.get("reason")
    nacked, unknown = group.nack(ids, positions, max(0, delay_ms), state.now_ms,
                                 reason if isinstance(reason, str) else None)
    state.touch_group(group)
    return {"nacked": nacked, "unknown": unknown}


def pending(state: ShardState, body: Body, blobs: list[bytes]) -> Body:
    group = group_of(state, body)
    limit = _int(body, "limit", 1000)
    return {"groupId": group.name, "count": len(group.pending),
            "messages": group.pending_view(limit)}


HANDLERS: dict[Op, Handler] = {
    Op.PING: ping,
    Op.SHARD_INFO: shard_info,
    Op.DOMAIN_CREATE: domain_create,
    Op.DOMAIN_GET: domain_get,
    Op.DOMAIN_LIST: domain_list,
    Op.DOMAIN_DELETE: domain_delete,
    Op.DOMAIN_DROP: domain_drop,
    Op.DOMAIN_STATS: domain_stats,
    Op.QUEUE_CREATE: queue_create,
    Op.QUEUE_GET: queue_get,
    Op.QUEUE_LIST: queue_list,
    Op.QUEUE_DELETE: queue_delete,
    Op.PUBLISH: publish,
    Op.GROUP_CREATE: group_create,
    Op.GROUP_GET: group_get,
    Op.GROUP_LIST: group_list,
    Op.GROUP_DELETE: group_delete,
    Op.GROUP_SEEK: group_seek,
    Op.GROUP_TTL: group_ttl,
    Op.CONSUMER_ADD: consumer_add,
    Op.CONSUMER_REMOVE: consumer_remove,
    Op.ACK: ack,
    Op.NACK: nack,
    Op.PENDING: pending,
}
