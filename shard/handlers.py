"""One function per operation. No sockets here: a handler takes a decoded, checked request,
changes the ShardState (handing its writes to the state's turn) and returns the reply, or
raises a GortmsError.

A handler checks everything before it changes anything, so a GortmsError leaves no trace.
Any other exception is a bug, after which memory may be ahead of the disk: the server exits
and the supervisor restarts the shard from what is committed (server.py `_crash`).

Fetches are not here: they may park, which takes the server's sockets and timers (server.py).
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable

import msgspec
import orjson

from gortms.checks import to_builtins
from gortms.errors import (BadRequest, ConsumerNotFound, DomainExists, DomainNotFound, GroupExists,
                           GroupNotFound, QueueExists)
from gortms.models import GroupSpec, format_ts, parse_start, parse_ts
from gortms.protocol import (Ack, Acked, CatalogEvent, ConsumerAdd, ConsumerRemove, Deleted,
                             DomainCounts, DomainCreate, DomainDelete, DomainDrop, DomainGet,
                             DomainList, DomainRecord, DomainStats, DomainStatsGet, Domains,
                             Dropped, Extend, Extended, GroupCreate, GroupCreated, GroupDelete,
                             GroupGet, GroupInfo, GroupList, GroupListAll, GroupRequest,
                             GroupSeek, GroupTtl, Groups, Nack, Nacked, PendingGet, PendingList,
                             Ping, Pong, Publish, Published, QueueCreate, QueueDelete, QueueGet,
                             QueueInfo, QueueList, QueueRequest, Queues, Redrive, Redriven, Reply,
                             Request, Settle, Settled, ShardInfo, ShardInfoGet, encode_body,
                             ts_bytes, unstamped_id, Browse, Browsed, LiveHello, LiveMessages,
                             Release, Released, Watch, Watching, Records, RecordsRead,
                             RecordsWrite, RecordsWritten, ReplayCheck, ReplayChecked)
from gortms.logs import set_level
from gortms.partition import CATALOG_SHARD
from gortms.protocol import LogLevel, LogLevelSet
from gortms.schema import check_schema
from shard.groups import GroupState
from shard.queues import QueueState
from shard.state import ShardState
from shard import deadletters, figures, retention
from shard.events import EVENTS, capacity
from shard.store import domain_key, drop_group

Handler = Callable[[ShardState, Any], Reply | bytes]

STARTED_AT = time.time()


def queue_of(state: ShardState, req: QueueRequest) -> QueueState:
    return state.queue(req.domain, req.queue, req.epoch)


def group_of(state: ShardState, req: GroupRequest) -> GroupState:
    queue = queue_of(state, req)
    group = queue.groups.get(req.group)
    if group is None:
        raise GroupNotFound(f"consumer group '{req.group}' not found on queue "
                            f"'{queue.domain}/{queue.name}'")
    return group


# --- liveness and inspection --------------------------------------------------------------------


def ping(state: ShardState, req: Ping) -> Pong:
    disk = state.disk
    return Pong(shard=state.index, pid=os.getpid(), storage=disk.state,
                free_bytes=disk.free_bytes)


def shard_info(state: ShardState, req: ShardInfoGet) -> ShardInfo:
    stats = state.store.stats()
    disk = state.disk
    return ShardInfo(
        shard=state.index, pid=os.getpid(),
        state="serving" if disk.failure is None else "read-only",
        started_at=format_ts(int(STARTED_AT * 1000)), queues=len(state.queues),
        groups=sum(len(q.groups) for q in state.queues.values()), domains=len(state.domains),
        messages=sum(q.count for q in state.queues.values()), parked_fetches=state.parked,
        keys=stats["keys"], disk_bytes=stats["diskBytes"], storage=disk.state,
        free_bytes=disk.free_bytes, min_free_bytes=disk.threshold,
        refused_writes=disk.refused)


def log_level_set(state: ShardState, req: LogLevelSet) -> LogLevel:
    """general.logLevel changed: this process takes it now; the catalog shard passes it on to
    every gateway worker (gateway/settings.py)."""
    set_level(req.level)
    if state.index == CATALOG_SHARD:
        state.catalog_events.append(CatalogEvent(kind="log_level", domain="", level=req.level))
    return LogLevel(shard=state.index, level=req.level)


# --- the catalog (domains) ----------------------------------------------------------------------


def domain_create(state: ShardState, req: DomainCreate) -> DomainRecord:
    if req.name in state.domains:
        raise DomainExists(f"domain '{req.name}' already exists")
    state.disk.check_adds()
    record = DomainRecord(name=req.name, schema=check_schema(req.schema),
                          epoch=state.allocate_epoch(), created_at=state.now_ms)
    state.domains[req.name] = record
    state.turn.put(domain_key(req.name), msgspec.json.encode(record))
    state.catalog_events.append(_domain_event(req.name))
    EVENTS.add("domain_created", f"domain {req.name} created", domain=req.name)
    return record


def _domain_event(name: str, deleted: bool = False) -> CatalogEvent:
    return CatalogEvent(kind="domain", domain=name, deleted=deleted)


def _domain(state: ShardState, name: str) -> DomainRecord:
    record = state.domains.get(name)
    if record is None:
        raise DomainNotFound(f"domain '{name}' not found")
    return record


def domain_get(state: ShardState, req: DomainGet) -> DomainRecord:
    return _domain(state, req.name)


def domain_list(state: ShardState, req: DomainList) -> Domains:
    return Domains(domains=[state.domains[name] for name in sorted(state.domains)])


def domain_delete(state: ShardState, req: DomainDelete) -> DomainRecord:
    record = _domain(state, req.name)
    del state.domains[req.name]
    state.turn.delete(domain_key(req.name))
    state.catalog_events.append(_domain_event(req.name, deleted=True))
    EVENTS.add("domain_deleted", f"domain {req.name} deleted", domain=req.name)
    return record


def domain_drop(state: ShardState, req: DomainDrop) -> Dropped:
    """Every shard: delete this shard's queues of a deleted domain (epoch and older)."""
    doomed = [q for (d, _), q in state.queues.items()
              if d == req.domain and q.epoch <= req.epoch]
    for queue in doomed:
        state.drop_queue(queue)
    return Dropped(dropped=len(doomed))


def domain_stats(state: ShardState, req: DomainStatsGet) -> DomainStats:
    stats: dict[str, list[int]] = {}
    for (domain, _), queue in state.queues.items():
        if req.epochs.get(domain) != queue.epoch:
            continue
        entry = stats.setdefault(domain, [0, 0, 0])
        entry[0] += 1
        entry[1] += queue.count
        entry[2] += queue.bytes
    return DomainStats(domains={d: DomainCounts(queue_count=q, message_count=m, bytes=b)
                                for d, (q, m, b) in stats.items()})


# --- queues -------------------------------------------------------------------------------------


def queue_create(state: ShardState, req: QueueCreate) -> QueueInfo:
    existing = state.queues.get((req.domain, req.queue))
    if existing is not None:
        if existing.epoch >= req.epoch:
            raise QueueExists(f"queue '{req.queue}' already exists in domain '{req.domain}'")
    state.disk.check_adds()
    if existing is not None:
        state.drop_queue(existing)
    queue = QueueState(state.allocate_qid(), req.domain, req.queue, req.epoch, req.config,
                       state.now_ms)
    state.add_queue(queue)
    return queue.info()


def queue_get(state: ShardState, req: QueueGet) -> QueueInfo:
    return queue_of(state, req).info()


def queue_list(state: ShardState, req: QueueList) -> Queues:
    queues = state.queues_of(req.domain, req.epoch)
    return Queues(queues=[q.info() for q in sorted(queues, key=lambda q: q.name)])


def queue_delete(state: ShardState, req: QueueDelete) -> Deleted:
    queue = queue_of(state, req)
    state.drop_queue(queue)
    return Deleted(deleted=queue.name)


# --- publishing ---------------------------------------------------------------------------------


def publish(state: ShardState, req: Publish) -> Published | bytes:
    """Stage the (unstamped) records; the reply goes out after the turn's commit. A repeat of
    an Idempotency-Key answers with the original reply (as its encoded bytes)."""
    queue = queue_of(state, req)
    key = req.key
    if key is not None:
        original = queue.remembered(key, state.now_ms)
        if original is not None:
            return original
    state.disk.check_adds()
    records = req.records
    retention.make_room(state, queue, len(records))
    before = queue.count
    # A repeat must answer with the original ids, which the gateway generated: read them
    # before anything is staged, so a malformed record fails the publish, not the turn.
    message_ids = None if key is None else _ids_of(records)
    first = queue.append(state.turn, state.recent, ts_bytes(state.now_ms), records)
    due_ms = max(req.deliver_at_ms, state.now_ms + req.delay_ms if req.delay_ms else 0)
    if due_ms > state.now_ms:
        queue.schedule(first, len(records), due_ms, state.turn)
    state.published.add(queue)
    state.monitor.published += len(records)
    queue.last_active_ms = state.now_ms
    if queue.count * 4 >= queue.config.max_size * 3:  # 75 %: perhaps a level crossed
        capacity(queue.domain, queue.name, before, queue.count, queue.config.max_size)
    if state.watched and (queue.domain, queue.name) in state.watched:
        state.live_events.append(LiveMessages(domain=queue.domain, queue=queue.name,
                                              first=first, ts_ms=state.now_ms,
                                              records=records))
    if key is None:
        return Published(first_position=first, count=len(records))
    reply = Published(first_position=first, count=len(records), message_ids=message_ids)
    queue.remember(key, encode_body(Published(first_position=first, count=len(records),
                                          message_ids=reply.message_ids, duplicate=True)),
                   state.now_ms + state.limits.dedup_window_ms, state.turn)
    return reply


def _ids_of(records: list[bytes]) -> list[str]:
    try:
        return [unstamped_id(r) for r in records]
    except UnicodeDecodeError:
        raise BadRequest("a record's message id is not UTF-8 (a gateway bug)") from None


# --- consumer groups ----------------------------------------------------------------------------


def resolve_start(state: ShardState, queue: QueueState, start: str | int) -> int:
    if start == "earliest":
        return queue.first
    if start == "latest":
        return queue.last + 1
    if isinstance(start, int):
        return start
    return queue.position_at(state.store, parse_ts(start, "start"))


def group_create(state: ShardState, req: GroupCreate) -> GroupCreated:
    queue = queue_of(state, req)
    spec = req.spec
    existing = queue.groups.get(spec.group_id)
    if existing is not None:
        if existing.spec == spec:
            return GroupCreated(created=False, group=existing.info())
        settings = orjson.dumps(to_builtins(existing.spec)).decode()
        raise GroupExists(f"consumer group '{spec.group_id}' already exists on "
                          f"'{queue.domain}/{queue.name}' with other settings ({settings})")
    group = create_group(state, queue, spec)
    return GroupCreated(created=True, group=group.info())


def create_group(state: ShardState, queue: QueueState, spec: GroupSpec) -> GroupState:
    state.disk.check_adds()
    group = GroupState(queue, spec, state.now_ms, resolve_start(state, queue, spec.start))
    queue.groups[spec.group_id] = group
    group.write_record(state.turn)
    EVENTS.add("group_created", f"consumer group {spec.group_id} created on "
               f"{queue.domain}/{queue.name}", domain=queue.domain, queue=queue.name,
               group=spec.group_id)
    return group


def group_get(state: ShardState, req: GroupGet) -> GroupInfo:
    return group_of(state, req).info()


def _sorted(groups: list[GroupInfo]) -> Groups:
    groups.sort(key=lambda g: (g.domain, g.queue, g.group_id))
    return Groups(groups=groups)


def group_list(state: ShardState, req: GroupList) -> Groups:
    return _sorted([g.info() for g in queue_of(state, req).groups.values()])


def group_list_all(state: ShardState, req: GroupListAll) -> Groups:
    queues = [q for (d, _), q in state.queues.items() if req.epochs.get(d) == q.epoch]
    return _sorted([g.info() for q in queues for g in q.groups.values()])


def group_delete(state: ShardState, req: GroupDelete) -> Deleted:
    group = group_of(state, req)
    delete_group(state, group)
    queue = group.queue
    EVENTS.add("group_deleted", f"consumer group {group.name} deleted from "
               f"{queue.domain}/{queue.name}", domain=queue.domain, queue=queue.name,
               group=group.name)
    return Deleted(deleted=group.name)


def delete_group(state: ShardState, group: GroupState) -> None:
    queue = group.queue
    del queue.groups[group.name]
    state.forget_group(group)
    drop_group(state.turn, queue.qid, group.name)


def group_seek(state: ShardState, req: GroupSeek) -> GroupInfo:
    group = group_of(state, req)
    queue = group.queue
    if req.timestamp is not None:
        target = queue.position_at(state.store, parse_ts(req.timestamp, "timestamp"))
    else:
        target = resolve_start(state, queue, parse_start(req.position, "position"))
    group.seek(target, state.turn)
    group.last_active_ms = state.now_ms
    return group.info()


def group_ttl(state: ShardState, req: GroupTtl) -> GroupInfo:
    group = group_of(state, req)
    group.ttl = float(req.ttl)
    group.last_active_ms = state.now_ms
    group.write_record(state.turn)
    return group.info()


def consumer_add(state: ShardState, req: ConsumerAdd) -> GroupCreated:
    group = group_of(state, req)
    created = req.consumer not in group.registered
    if created:
        group.registered.append(req.consumer)
        group.write_record(state.turn)
    group.consumers.setdefault(req.consumer, state.now_ms)
    return GroupCreated(created=created, group=group.info())


def consumer_remove(state: ShardState, req: ConsumerRemove) -> GroupInfo:
    group = group_of(state, req)
    consumer = req.consumer
    if consumer not in group.consumers and consumer not in group.registered:
        raise ConsumerNotFound(f"consumer '{consumer}' not found in group '{group.name}'")
    group.consumers.pop(consumer, None)
    if consumer in group.registered:
        group.registered.remove(consumer)
        group.write_record(state.turn)
    group.release_consumer(consumer, state.turn, state.now_ms)
    state.settled.add(group)  # what it held is due again: a parked fetch can take it
    return group.info()


def ack(state: ShardState, req: Ack) -> Acked:
    group = group_of(state, req)
    acked, unknown = group.ack(req.ids, req.positions, state.turn, state.now_ms)
    if acked:
        state.settled.add(group)  # room for parked fetches, if the group was at its limit
    return Acked(acked=acked, unknown=unknown)


def nack(state: ShardState, req: Nack) -> Nacked:
    group = group_of(state, req)
    nacked, unknown = group.nack(req.ids, req.positions, req.delay_ms, state.now_ms,
                                 state.turn, req.reason)
    dead = deadletters.move(state, group)
    state.track_timers(group)
    if nacked:
        state.settled.add(group)  # due again at once: a parked fetch can take it
    return Nacked(nacked=nacked, unknown=unknown, dead_lettered=dead)


def settle(state: ShardState, req: Settle) -> Settled:
    group = group_of(state, req)
    nacked, unknown, dead = 0, [], 0
    if req.nack:
        nacked, unknown = group.nack(req.nack, [], req.delay_ms, state.now_ms, state.turn,
                                     req.reason)
        dead = deadletters.move(state, group)
        state.track_timers(group)
    acked = 0
    if req.ack:
        acked, unknown_acks = group.ack(req.ack, [], state.turn, state.now_ms)
        unknown += unknown_acks
    if acked or nacked:
        state.settled.add(group)
    return Settled(acked=acked, nacked=nacked, dead_lettered=dead, unknown=unknown)


def extend(state: ShardState, req: Extend) -> Extended:
    group = group_of(state, req)
    by_ms = req.by_ms or int(group.queue.config.ack_timeout * 1000)
    extended, unknown, deadline = group.extend(req.ids, req.positions, by_ms, state.now_ms,
                                               state.turn)
    state.track_timers(group)
    return Extended(extended=extended, unknown=unknown, deadline=format_ts(deadline))


def redrive(state: ShardState, req: Redrive) -> Redriven:
    return Redriven(redriven=deadletters.redrive(state, queue_of(state, req), req.limit))


def release(state: ShardState, req: Release) -> Released:
    group = group_of(state, req)
    released = group.release(req.positions, state.turn, state.now_ms)
    if released:
        state.settled.add(group)  # due again at once: a parked fetch can take them
    return Released(released=released)


# --- live observation ---------------------------------------------------------------------------


def watch(state: ShardState, req: Watch) -> Watching:
    """The hello goes out on the queue's topic after this turn's events (server.py)."""
    queue = queue_of(state, req)
    next_position = queue.last + 1
    state.live_events.append(LiveHello(domain=queue.domain, queue=queue.name, token=req.token,
                                       next_position=next_position))
    return Watching(next_position=next_position)


def browse(state: ShardState, req: Browse) -> Browsed:
    """Records from `from_position` up to what is committed (never one that may still be
    lost), holes skipped."""
    queue = queue_of(state, req)
    begin = max(req.from_position, queue.first)
    end = min(begin + req.max, queue.durable + 1)
    if begin >= end:
        return Browsed(next_position=max(begin, req.from_position))
    positions, records = [], []
    for pos, record in zip(range(begin, end), queue.read(state.store, begin, end)):
        if record is not None:
            positions.append(pos)
            records.append(record)
    return Browsed(next_position=end, positions=positions, records=records)


# --- records and replays (shard/records.py) ------------------------------------------------------


def records_read(state: ShardState, req: RecordsRead) -> Records:
    return Records(items=state.records.read(req.collection, req.keys))


def records_write(state: ShardState, req: RecordsWrite) -> RecordsWritten:
    return RecordsWritten(written=state.records.write(req, state.turn, state.catalog_events))


def replay_check(state: ShardState, req: ReplayCheck) -> ReplayChecked:
    state.replays.check(req.digest, req.signed_ms, req.until_ms, state.now_ms)
    return ReplayChecked()


def pending(state: ShardState, req: PendingGet) -> PendingList:
    group = group_of(state, req)
    return PendingList(group_id=group.name, count=len(group.pending),
                       messages=group.pending_view(req.limit))


HANDLERS: dict[type[Request], Handler] = {
    Ping: ping,
    ShardInfoGet: shard_info,
    DomainCreate: domain_create,
    DomainGet: domain_get,
    DomainList: domain_list,
    DomainDelete: domain_delete,
    DomainDrop: domain_drop,
    DomainStatsGet: domain_stats,
    QueueCreate: queue_create,
    QueueGet: queue_get,
    QueueList: queue_list,
    QueueDelete: queue_delete,
    Publish: publish,
    GroupCreate: group_create,
    GroupGet: group_get,
    GroupList: group_list,
    GroupListAll: group_list_all,
    GroupDelete: group_delete,
    GroupSeek: group_seek,
    GroupTtl: group_ttl,
    ConsumerAdd: consumer_add,
    ConsumerRemove: consumer_remove,
    Ack: ack,
    Nack: nack,
    PendingGet: pending,
    Extend: extend,
    Redrive: redrive,
    Settle: settle,
    Release: release,
    Watch: watch,
    Browse: browse,
    RecordsRead: records_read,
    RecordsWrite: records_write,
    ReplayCheck: replay_check,
    LogLevelSet: log_level_set,
}
HANDLERS.update(figures.HANDLERS)  # the monitoring operations (shard/figures.py)
