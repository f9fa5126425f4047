"""Consumer group state: position, acks, the pending list, leases, retries and parked fetches.

Durable: the group record (settings), the cursor (position, ack floor, acked ranges), one
lease record per fetch (its deadline, consumer and positions: not one record per message), and
for a message delivered more than once or waiting for a retry, its delivery count and retry
time. After a restart a message whose lease has not run out is pending with that lease still
(its consumer can ack it), one waiting for a retry waits on, and the rest of what was
delivered and not acknowledged is due at once. Lease and retry records are lazy writes (in
the WAL within a tick, no fsync of their own): a crash before one is written delivers its
messages again early, which at-least-once allows.

A failure (a nack, or a lease that ran out) is retried per the queue's retry config: retry n
waits initialDelay * factor^(n-1), capped at maxDelay, or the nack's own delay; after
maxRetries retries the message is handed to the caller as dead (`dead`) to move to {q}.dlq
(shard/deadletters.py). With retry off it is due again at once, without limit.
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import TYPE_CHECKING, Any

import orjson

from gortms.checks import Duration, format_duration
from gortms.models import AckMode, GroupSpec, format_ts
from gortms.protocol import Consumer, GroupInfo, PendingEntry, record_id
from shard.acks import AckSet
from shard.circuit import Circuit
from shard.store import (Store, ack_prefix, cursor_key, group_key, lease_key, lease_prefix,
                         pos_bytes, prefix_end, redelivery_prefix)
from shard.turn import Turn

if TYPE_CHECKING:
    from shard.queues import QueueState

INFLIGHT, DUE, DELAYED, DEAD = 0, 1, 2, 3
MAX_ACK_DELTAS = 256  # ack delta records kept before the cursor holds the whole set again
_STATE_NAMES = {INFLIGHT: "delivered", DUE: "due", DELAYED: "delayed", DEAD: "dead"}

# (position, delivery count, record)
Delivery = tuple[int, int, bytes]


class Pending:
    """A delivered, unacknowledged message. `deadline_ms`: when an in-flight delivery times
    out, or when a delayed one becomes due; `reason`: the last failure's (a nack's reason, or
    "ack timeout"); `lease`: the lease an in-flight delivery belongs to (0: none)."""

    __slots__ = ("id", "consumer", "delivery_count", "deadline_ms", "state", "reason", "lease")

    def __init__(self, message_id: str, consumer: str, delivery_count: int, deadline_ms: int,
                 state: int, lease: int = 0) -> None:
        self.id = message_id
        self.consumer = consumer
        self.delivery_count = delivery_count
        self.deadline_ms = deadline_ms
        self.state = state
        self.reason: str | None = None
        self.lease = lease


class Lease:
    """One fetch's deliveries: its record's key, and how many of them are still in flight
    under it (at 0 the record is deleted)."""

    __slots__ = ("key", "remaining")

    def __init__(self, key: bytes, remaining: int) -> None:
        self.key = key
        self.remaining = remaining


def encode_lease(deadline_ms: int, consumer: str, positions: list[int]) -> bytes:
    """[deadline, consumer, first, count, first, count, ...]: runs, as fetches deliver them."""
    runs: list[int] = []
    for pos in positions:
        if runs and runs[-2] + runs[-1] == pos:
            runs[-1] += 1
        else:
            runs += (pos, 1)
    return orjson.dumps([deadline_ms, consumer, *runs])


def decode_lease(data: bytes) -> tuple[int, str, list[int]]:
    deadline_ms, consumer, *runs = orjson.loads(data)
    positions = [p for i in range(0, len(runs), 2)
                 for p in range(runs[i], runs[i] + runs[i + 1])]
    return deadline_ms, consumer, positions


def retry_delay_ms(config: Any, attempt: int) -> int:
    """API.md: retry n (n = 1, 2, ...) waits initialDelay * factor^(n-1), capped at maxDelay."""
    delay = config.initial_delay * config.factor ** (attempt - 1)
    return int(min(delay, config.max_delay) * 1000)


def retry_value(count: int, due_ms: int = 0) -> bytes:
    """The R record: a delivery count, and for a message waiting for a retry, when it is due."""
    return count.to_bytes(4, "big") + (due_ms.to_bytes(8, "big") if due_ms else b"")


class Waiter:
    """A parked long-poll fetch, known by (gateway identity, request id)."""

    __slots__ = ("key", "consumer", "max_count", "timer", "done")

    def __init__(self, key: tuple[bytes, bytes], consumer: str, max_count: int) -> None:
        self.key = key
        self.consumer = consumer
        self.max_count = max_count
        self.timer: Any = None
        self.done = False


class GroupState:
    __slots__ = ("queue", "name", "ack_mode", "ttl", "start", "created_ms", "last_active_ms",
                 "position", "acks", "pending", "by_id", "due", "deadlines", "delayed",
                 "consumers", "registered", "waiters", "leases", "next_lease", "dead",
                 "circuit", "expired", "deltas", "next_delta", "base_json", "compact",
                 "delivered", "redelivered", "acked", "nacked", "timeouts")

    def __init__(self, queue: QueueState, spec: GroupSpec, created_ms: int, position: int,
                 registered: list[str] | None = None) -> None:
        self.queue = queue
        self.name = spec.group_id
        self.ack_mode = spec.ack_mode
        self.ttl = float(spec.ttl)
        self.start = spec.start
        self.created_ms = created_ms
        self.last_active_ms = created_ms
        self.position = position
        self.acks = AckSet(position)
        self.pending: dict[int, Pending] = {}
        # message id -> its pending position, or a list of them when several messages pending
        # share an id (rare: an int for the usual case saves a list per delivery)
        self.by_id: dict[str, int | list[int]] = {}
        self.due: list[int] = []  # heap of positions due for redelivery
        # heap of (deadline, lease, the positions delivered with it): one entry per lease
        self.deadlines: list[tuple[int, int, list[int]]] = []
        self.delayed: list[tuple[int, int, int]] = []  # heap of (due time, position, count)
        self.leases: dict[int, Lease] = {}
        self.next_lease = 1
        # Failed past maxRetries this turn: (position, reason), for the caller to dead-letter.
        self.dead: list[tuple[int, str | None]] = []
        self.expired = 0  # messages the queue's ttl deleted before this group acked them
        # Outcomes since the shard started, for /metrics (shard/figures.py).
        self.delivered = self.redelivered = self.acked = self.nacked = self.timeouts = 0
        # Ack deltas (see persist): the records written since the last compaction, as
        # (number, end of the last run), the next number, and the ranges the cursor holds.
        self.deltas: deque[tuple[int, int]] = deque()
        self.next_delta = 1
        self.base_json = b"[]"
        self.compact = False
        config = queue.config
        self.circuit = Circuit(config.circuit_breaker_config,
                               (queue.domain, queue.name, self.name)) \
            if config.circuit_breaker_enabled else None
        self.consumers: dict[str, int] = {}  # consumer -> last seen (ms)
        self.registered: list[str] = list(registered or [])
        self.waiters: deque[Waiter] = deque()
        for consumer in self.registered:
            self.consumers[consumer] = created_ms

    @property
    def spec(self) -> GroupSpec:
        return GroupSpec(group_id=self.name, ack_mode=self.ack_mode, ttl=Duration(self.ttl),
                         start=self.start)

    # --- records ------------------------------------------------------------------------------

    def record(self) -> bytes:
        return orjson.dumps({"groupId": self.name, "ackMode": str(self.ack_mode),
                             "ttl": format_duration(self.ttl), "start": self.start,
                             "ttlSeconds": self.ttl, "createdAt": self.created_ms,
                             "consumers": self.registered})

    def cursor(self) -> bytes:
        return b"[%d,%d,%s,%d,%d]" % (self.position, self.acks.floor, self.base_json,
                                       self.last_active_ms, self.expired)

    def restore_cursor(self, data: bytes) -> None:
        # [position, ack floor, acked ranges, last activity, expired]; earlier releases wrote
        # three or four.
        position, floor, ranges, *rest = orjson.loads(data)
        self.position = position
        self.acks = AckSet(floor, ranges)
        self.base_json = orjson.dumps(self.acks.ranges())
        # Ranges in the cursor (as releases before the compaction records wrote them): the
        # next commit moves them to a record of their own.
        self.compact = self.base_json != b"[]"
        if rest:
            self.last_active_ms = max(self.last_active_ms, rest[0])
        if len(rest) > 1:
            self.expired = rest[1]

    def write_record(self, turn: Turn) -> None:
        """The group's settings changed (or it is new): write them, and its cursor."""
        turn.put(group_key(self.queue.qid, self.name), self.record())
        turn.changed(self)

    def persist(self, turn: Turn) -> None:
        """The cursor, and the acknowledgements since the last commit as a delta record.

        The acked ranges above the floor grow with every message waiting for a retry (a
        hundred or more with 1% of retries waiting 100 ms), and writing them all in every
        commit cost a tenth of consume+ack (docs/PERFORMANCE.md). So each commit adds its own
        acks as one small record, records the floor has passed are deleted, and every
        MAX_ACK_DELTAS records the set is written whole again as one record that replaces
        them (a compaction). The cursor, written with every commit, holds no ranges: only the
        position and the floor (its ranges field stays, empty, for the earlier format)."""
        journal = self.acks.take_journal()
        prefix = ack_prefix(self.queue.qid, self.name)
        if self.compact or len(self.deltas) >= MAX_ACK_DELTAS:
            ranges = self.acks.ranges()
            seq = self.next_delta
            self.next_delta += 1
            key = prefix + seq.to_bytes(8, "big")
            if self.deltas or self.compact:  # every record before this one: it holds them
                turn.delete_range(prefix, key, lazy=True, reclaim=False)
            self.deltas.clear()
            if ranges:
                turn.put(key, orjson.dumps(ranges), lazy=True)
                self.deltas.append((seq, ranges[-1]))
            self.base_json = b"[]"
            self.compact = False
        elif journal and max(journal[1::2]) > self.acks.floor:  # (else the floor says it)
            seq = self.next_delta
            self.next_delta += 1
            turn.put(prefix + seq.to_bytes(8, "big"), orjson.dumps(journal), lazy=True)
            self.deltas.append((seq, max(journal[1::2])))
        floor = self.acks.floor
        while self.deltas and self.deltas[0][1] <= floor:  # the cursor's floor covers it
            seq, _ = self.deltas.popleft()
            turn.delete(prefix + seq.to_bytes(8, "big"), lazy=True)
        turn.put(cursor_key(self.queue.qid, self.name), self.cursor(), lazy=True)

    def restore_acks(self, deltas: list[tuple[int, list[int]]]) -> None:
        """After restore_cursor: the ack deltas written since the cursor's ranges, in order.
        The next commit writes the whole set again (and deletes them)."""
        for seq, runs in deltas:
            for i in range(0, len(runs), 2):
                self.acks.add_range(runs[i], runs[i + 1])
            self.next_delta = max(self.next_delta, seq + 1)
        self.acks.take_journal()
        self.compact = self.compact or bool(deltas)

    # --- delivering ---------------------------------------------------------------------------

    def deliver(self, store: Store, turn: Turn, consumer: str, max_count: int, now_ms: int,
                max_pending: int) -> list[Delivery]:
        """Take up to `max_count` messages for `consumer`: due redeliveries first, then new ones."""
        self.last_active_ms = now_ms
        self.consumers[consumer] = now_ms
        circuit = self.circuit
        if circuit is not None:
            allowed = circuit.allowance(now_ms)
            if allowed is not None:
                max_count = min(max_count, allowed)
                if max_count <= 0:
                    return []  # open (or its trials are out): see shard/circuit.py
        out: list[Delivery] = []
        if self.delayed and self.delayed[0][0] <= now_ms:
            # On time, not at the timer's next tick: a retry goes to the first fetch after
            # its backoff, and retries falling due between ticks do not come out in a burst.
            self.promote_delayed(now_ms)
        leased: list[int] = []  # what this fetch leaves in flight: one lease record for all
        if self.due:
            out = self._redeliver(store, turn, consumer, max_count, now_ms, leased)
        room = max_count - len(out)
        if self.ack_mode is AckMode.EXPLICIT:
            room = min(room, max_pending - len(self.pending))
        if room > 0 and self.position <= self.queue.durable:
            out += self._deliver_new(store, turn, consumer, room, now_ms, leased)
        if leased:
            self._lease(turn, consumer, now_ms + int(self.queue.config.ack_timeout * 1000),
                        leased)
        # The position moved: written with the turn, but no fsync of its own (after a crash
        # these messages are delivered again, which at-least-once allows).
        turn.changed(self, lazy=True)
        if circuit is not None:
            circuit.delivered(len(out))
        self.delivered += len(out)
        if out:
            self.queue.last_active_ms = now_ms
        return out

    def _redeliver(self, store: Store, turn: Turn, consumer: str, max_count: int,
                   now_ms: int, leased: list[int]) -> list[Delivery]:
        positions: list[int] = []
        while self.due and len(positions) < max_count:
            pos = heapq.heappop(self.due)
            entry = self.pending.get(pos)
            if entry is not None and entry.state == DUE and (not positions
                                                             or positions[-1] != pos):
                positions.append(pos)  # (a heap pops equal positions one after another)
        records = self.queue.read_positions(store, positions)
        deadline = now_ms + int(self.queue.config.ack_timeout * 1000)
        rprefix = redelivery_prefix(self.queue.qid, self.name)
        out: list[Delivery] = []
        for pos, record in zip(positions, records):
            entry = self.pending[pos]
            if record is None:  # gone (deleted) while waiting: nothing left to deliver
                self.settle(pos, turn)
                continue
            entry.delivery_count += 1
            self.redelivered += entry.delivery_count > 1
            entry.consumer = consumer
            entry.deadline_ms = deadline
            entry.state = INFLIGHT
            if entry.delivery_count > 1:
                turn.put(rprefix + pos_bytes(pos), retry_value(entry.delivery_count), lazy=True)
            else:  # the first delivery of a message held back for later: its record goes
                turn.delete(rprefix + pos_bytes(pos), lazy=True)
            out.append((pos, entry.delivery_count, record))
        if out and self.ack_mode is AckMode.AUTO:  # messages that were held back for later
            for pos, _, _ in out:
                self.settle(pos, turn)
        elif out:
            leased += [pos for pos, _, _ in out]
        return out

    def _lease(self, turn: Turn, consumer: str, deadline: int, positions: list[int]) -> None:
        """The in-flight entries at `positions` are leased to `consumer` until `deadline`:
        one record for all of them."""
        seq = self.next_lease
        self.next_lease += 1
        key = lease_key(self.queue.qid, self.name, seq)
        turn.put(key, encode_lease(deadline, consumer, positions), lazy=True)
        self.leases[seq] = Lease(key, len(positions))
        heapq.heappush(self.deadlines, (deadline, seq, positions))
        pending = self.pending
        for pos in positions:
            pending[pos].lease = seq

    def _unlease(self, entry: Pending, turn: Turn) -> None:
        """`entry` is no longer in flight under its lease; the last one out deletes it."""
        seq = entry.lease
        if not seq:
            return
        entry.lease = 0
        lease = self.leases.get(seq)
        if lease is not None:
            lease.remaining -= 1
            if lease.remaining <= 0:
                del self.leases[seq]
                turn.delete(lease.key, lazy=True)

    def _deliver_new(self, store: Store, turn: Turn, consumer: str, room: int, now_ms: int,
                     leased: list[int]) -> list[Delivery]:
        queue = self.queue
        if self.position < queue.first:  # those messages are gone: nothing to deliver or ack
            self.acks.add_range(self.position, queue.first)
            self.position = queue.first
        explicit = self.ack_mode is AckMode.EXPLICIT
        deadline = now_ms + int(queue.config.ack_timeout * 1000)
        pending, by_id = self.pending, self.by_id
        scheduled = queue.scheduled  # delayed delivery (Deliver-At, Delay): usually empty
        out: list[Delivery] = []
        delivered: list[int] = []
        while len(out) < room and self.position <= queue.durable:
            begin = self.position
            end = min(queue.durable + 1, begin + room - len(out))
            records = queue.read(store, begin, end)
            for pos, record in zip(range(begin, end), records):
                if record is None:  # a hole (deleted message): skip it for good
                    self.acks.add(pos)
                    continue
                if scheduled and scheduled.get(pos, 0) > now_ms:
                    self._hold(pos, record, scheduled[pos], turn)
                    continue
                out.append((pos, 1, record))
                if explicit:
                    # record_id(), inlined: this loop runs once per delivered message
                    message_id = record[10:10 + ((record[8] << 8) | record[9])].decode(
                        errors="replace")
                    pending[pos] = Pending(message_id, consumer, 1, deadline, INFLIGHT)
                    delivered.append(pos)
                    if by_id.setdefault(message_id, pos) != pos:
                        self._share_id(message_id, pos)
            self.position = end
        if explicit:
            leased += delivered
        elif pending:  # messages held back for later: acked one by one, not past them
            for pos, _, _ in out:
                self.acks.add(pos)
        else:
            self.acks.advance(self.position)
        return out

    def _hold(self, pos: int, record: bytes, due_ms: int, turn: Turn) -> None:
        """A message published for later: pending, delayed until `due_ms`, never delivered
        yet (its first delivery is the redelivery that the due time starts)."""
        message_id = record_id(record)
        self.pending[pos] = Pending(message_id, "", 0, due_ms, DELAYED)
        if self.by_id.setdefault(message_id, pos) != pos:
            self._share_id(message_id, pos)
        heapq.heappush(self.delayed, (due_ms, pos, 0))
        turn.put(redelivery_prefix(self.queue.qid, self.name) + pos_bytes(pos),
                 retry_value(0, due_ms), lazy=True)

    def _share_id(self, message_id: str, pos: int) -> None:
        """`pos` is pending under an id that another pending message has already."""
        held = self.by_id[message_id]
        if isinstance(held, list):
            held.append(pos)
        else:
            self.by_id[message_id] = [held, pos]

    # --- settling -----------------------------------------------------------------------------

    def settle(self, pos: int, turn: Turn) -> Pending | None:
        """Remove `pos` from the pending list and mark it acknowledged."""
        entry = self._take(pos, turn)
        if entry is not None:
            self.acks.add(pos)
        return entry

    def _take(self, pos: int, turn: Turn) -> Pending | None:
        """Remove `pos` from the pending list (the caller marks it acknowledged)."""
        entry = self.pending.pop(pos, None)
        if entry is None:
            return None
        self._unlease(entry, turn)
        held = self.by_id.get(entry.id)
        if held == pos:
            del self.by_id[entry.id]
        elif isinstance(held, list):
            held.remove(pos)
            if len(held) == 1:
                self.by_id[entry.id] = held[0]
        if entry.delivery_count > 1 or entry.state == DELAYED:
            turn.delete(redelivery_prefix(self.queue.qid, self.name) + pos_bytes(pos),
                        lazy=True)
        return entry

    def _resolve(self, ids: list[str], positions: list[int]) -> tuple[list[int], list[Any]]:
        """Pending positions named by message ids (an id used twice names its pending messages
        in turn) and by positions; what names nothing pending is returned as unknown."""
        found: dict[int, None] = {}  # ordered, with O(1) membership
        unknown: list[Any] = []
        by_id = self.by_id
        for message_id in ids:
            candidates = by_id.get(message_id)
            if type(candidates) is int and candidates not in found:
                found[candidates] = None  # the usual case: one pending message per id
                continue
            if type(candidates) is int:
                candidates = [candidates]
            taken = next((p for p in candidates or () if p not in found), None)
            if taken is None:
                unknown.append(message_id)
            else:
                found[taken] = None
        for pos in positions:
            if pos in self.pending and pos not in found:
                found[pos] = None
            else:
                unknown.append(pos)
        return list(found), unknown

    def ack(self, ids: list[str], positions: list[int], turn: Turn, now_ms: int
            ) -> tuple[int, list[Any]]:
        """Settle what the ids and positions name; durable before the reply (persistent
        queues), so an acknowledged ack survives a crash."""
        self.last_active_ms = now_ms
        found, unknown = self._resolve(ids, positions)
        self.acked += len(found)
        take = self._take
        taken = [pos for pos in found if take(pos, turn) is not None]
        # As runs, not one by one: four consumers ack their batches in any order, and with
        # a retry holding the floor back each ack out of order was a search of the ranges.
        self.acks.add_all(taken)
        if self.circuit is not None:
            for _ in found:
                self.circuit.record(True, now_ms)
        if found:
            turn.changed(self, lazy=not self.queue.config.is_persistent)
        return len(found), unknown

    def nack(self, ids: list[str], positions: list[int], delay_ms: int | None, now_ms: int,
             turn: Turn, reason: str | None = None) -> tuple[int, list[Any]]:
        """A failure of the in-flight messages named: retried per the queue's retry config,
        after `delay_ms` if given (see the module doc). A nack of a message already waiting
        for its redelivery only moves its time."""
        self.last_active_ms = now_ms
        found, unknown = self._resolve(ids, positions)
        self.nacked += len(found)
        for pos in found:
            entry = self.pending[pos]
            if entry.state == INFLIGHT:
                self._fail(pos, entry, now_ms, turn, delay_ms, reason)
                continue
            entry.reason = reason
            if entry.state == DUE and not delay_ms:
                continue  # already waiting for redelivery: once is enough
            if delay_ms:
                self._delay(pos, entry, now_ms + delay_ms, turn)
            elif entry.state == DELAYED:
                self.make_due(pos, entry)
        turn.changed(self, lazy=True)
        return len(found), unknown

    def _fail(self, pos: int, entry: Pending, now_ms: int, turn: Turn, delay_ms: int | None,
              reason: str | None) -> None:
        """An in-flight delivery failed: retry it (now, or after a delay), or, past its
        queue's maxRetries, hand it over as dead."""
        self._unlease(entry, turn)
        entry.reason = reason
        if self.circuit is not None:
            self.circuit.record(False, now_ms)
        config = self.queue.config
        if config.retry_enabled:
            retry = config.retry_config
            if entry.delivery_count > retry.max_retries:
                entry.state = DEAD
                self.dead.append((pos, reason))
                return
            if delay_ms is None:
                delay_ms = retry_delay_ms(retry, entry.delivery_count)
        if delay_ms:
            self._delay(pos, entry, now_ms + delay_ms, turn)
        else:
            self._due_now(pos, entry, now_ms, turn)

    def _due_now(self, pos: int, entry: Pending, now_ms: int, turn: Turn) -> None:
        """Due for the next fetch, and recorded as a retry due now, so that a restart does
        not take the lease it leaves for a live one."""
        self._delay(pos, entry, now_ms, turn)
        self.make_due(pos, entry)

    def _delay(self, pos: int, entry: Pending, due_ms: int, turn: Turn) -> None:
        self._unlease(entry, turn)
        entry.state = DELAYED
        entry.deadline_ms = due_ms
        heapq.heappush(self.delayed, (due_ms, pos, entry.delivery_count))
        turn.put(redelivery_prefix(self.queue.qid, self.name) + pos_bytes(pos),
                 retry_value(entry.delivery_count, due_ms), lazy=True)

    def extend(self, ids: list[str], positions: list[int], by_ms: int, now_ms: int,
               turn: Turn) -> tuple[int, list[Any], int]:
        """Lengthen the leases of in-flight messages to now + `by_ms`: (how many, what named
        nothing in flight, the new deadline)."""
        self.last_active_ms = now_ms
        found, unknown = self._resolve(ids, positions)
        deadline = now_ms + by_ms
        by_consumer: dict[str, list[int]] = {}
        for pos in found:
            entry = self.pending[pos]
            if entry.state != INFLIGHT:
                unknown.append(pos if pos in positions else entry.id)
                continue
            self._unlease(entry, turn)
            entry.deadline_ms = deadline
            by_consumer.setdefault(entry.consumer, []).append(pos)
        for consumer, leased in by_consumer.items():
            self._lease(turn, consumer, deadline, leased)
        return sum(map(len, by_consumer.values())), unknown, deadline

    def expire(self, now_ms: int, turn: Turn) -> bool:
        """Deliveries past their lease fail (retried, or dead past maxRetries); delays that
        ran out become due. Any due now?"""
        became_due = False
        deadlines = self.deadlines
        while deadlines and deadlines[0][0] <= now_ms:
            deadline, _, positions = heapq.heappop(deadlines)
            for pos in positions:
                entry = self.pending.get(pos)
                # A stale entry (acked, nacked, extended or delivered again since) moved on.
                if entry is not None and entry.state == INFLIGHT \
                        and entry.deadline_ms == deadline:
                    self.timeouts += 1
                    self._fail(pos, entry, now_ms, turn, None, "ack timeout")
                    became_due |= entry.state == DUE
        return self.promote_delayed(now_ms) or became_due

    def promote_delayed(self, now_ms: int) -> bool:
        """Retries and delayed messages whose time has come become due (no write: the
        record of their time stays until they are delivered or settled). Any?"""
        became_due = False
        delayed = self.delayed
        while delayed and delayed[0][0] <= now_ms:
            _, pos, count = heapq.heappop(delayed)
            entry = self.pending.get(pos)
            if entry is not None and entry.state == DELAYED and entry.delivery_count == count:
                self.make_due(pos, entry)
                became_due = True
        return became_due

    def has_timers(self) -> bool:
        return bool(self.deadlines or self.delayed)

    def release(self, positions: list[int], turn: Turn, now_ms: int) -> int:
        """Deliveries whose consumer went away without settling them: due for the others at
        once (not a failure: no retry is used, the circuit does not count it)."""
        released = 0
        for pos in positions:
            entry = self.pending.get(pos)
            if entry is not None and entry.state == INFLIGHT:
                self._due_now(pos, entry, now_ms, turn)
                released += 1
        if released:
            turn.changed(self, lazy=True)
        return released

    def release_consumer(self, consumer: str, turn: Turn, now_ms: int) -> None:
        """A consumer left: what it holds becomes due for the others (not a failure)."""
        for pos, entry in self.pending.items():
            if entry.consumer == consumer and entry.state == INFLIGHT:
                self._due_now(pos, entry, now_ms, turn)

    def make_due(self, pos: int, entry: Pending) -> None:
        """Due for the next fetch (also: a dead letter that has nowhere to go)."""
        entry.state = DUE
        entry.deadline_ms = 0
        heapq.heappush(self.due, pos)

    def forget_before(self, cut: int, turn: Turn, expired: bool) -> None:
        """The queue deleted every message before `cut`: they leave the pending list and the
        part not yet delivered is skipped, counted as expired if the ttl took them."""
        gone = [pos for pos in self.pending if pos < cut]
        for pos in gone:
            self.settle(pos, turn)
        if self.position < cut:
            lost = cut - self.position
            self.acks.add_range(self.position, cut)
            self.position = cut
        else:
            lost = 0
        if expired:
            self.expired += len(gone) + lost
        if gone or lost:
            turn.changed(self, lazy=True)

    def can_deliver(self, max_pending: int) -> bool:
        if self.due:
            return True
        if self.ack_mode is AckMode.EXPLICIT and len(self.pending) >= max_pending:
            return False
        return self.position <= self.queue.durable

    # --- moving -------------------------------------------------------------------------------

    def seek(self, position: int, turn: Turn) -> None:
        """Replay from `position`: forget pending deliveries and acks from there on."""
        self.position = position
        self.acks.reset(position)
        self.compact = True  # the acks recorded so far are void
        self.pending.clear()
        self.by_id.clear()
        self.due.clear()
        self.deadlines.clear()
        self.delayed.clear()
        self.leases.clear()
        self.dead.clear()
        for prefix in (redelivery_prefix(self.queue.qid, self.name),
                       lease_prefix(self.queue.qid, self.name)):
            turn.delete_range(prefix, prefix_end(prefix))
        turn.changed(self)

    def restore_pending(self, positions: list[int], records: list[bytes | None],
                        retries: dict[int, tuple[int, int]],
                        leased: dict[int, tuple[int, int, str]]) -> None:
        """After a restart, the unacknowledged deliveries: waiting for their retry if one was
        recorded (`retries`: position -> (delivery count, due time; a past one for a failure
        retried at once)), else in flight under their lease if one was (`leased`: position ->
        (lease, deadline, consumer)), else due."""
        for pos, record in zip(positions, records):
            if record is None:
                self.acks.add(pos)
                continue
            message_id = record_id(record)
            count, due_ms = retries.get(pos, (1, 0))
            lease = leased.get(pos)
            if due_ms:  # failed since its lease was written (a redelivery rewrites the record)
                entry = Pending(message_id, "", count, due_ms, DELAYED)
                self.delayed.append((due_ms, pos, count))
            elif lease is not None:
                seq, deadline, consumer = lease
                entry = Pending(message_id, consumer, count, deadline, INFLIGHT, seq)
            else:
                entry = Pending(message_id, "", count, 0, DUE)
                self.due.append(pos)
            self.pending[pos] = entry
            if self.by_id.setdefault(message_id, pos) != pos:
                self._share_id(message_id, pos)
        heapq.heapify(self.due)
        heapq.heapify(self.delayed)

    def restore_leases(self, leases: dict[int, tuple[bytes, int, list[int]]], turn: Turn
                       ) -> None:
        """After `restore_pending`: the leases that still hold an in-flight entry, each
        with its deadline; the records of the others are deleted."""
        for seq, (key, deadline, positions) in leases.items():
            held = [p for p in positions if (e := self.pending.get(p)) is not None
                    and e.lease == seq]
            if held:
                self.leases[seq] = Lease(key, len(held))
                self.deadlines.append((deadline, seq, held))
            else:
                turn.delete(key, lazy=True)
            self.next_lease = max(self.next_lease, seq + 1)
        heapq.heapify(self.deadlines)

    # --- views --------------------------------------------------------------------------------

    def lag(self) -> int:
        queue = self.queue
        return max(0, queue.last - max(self.position, queue.first) + 1)

    def info(self) -> GroupInfo:
        queue = self.queue
        return GroupInfo(
            group_id=self.name, domain=queue.domain, queue=queue.name, position=self.position,
            lag=self.lag(), pending=len(self.pending), ack_floor=self.acks.floor,
            consumers=[Consumer(id=c, last_seen=format_ts(seen))
                       for c, seen in sorted(self.consumers.items())],
            ttl=Duration(self.ttl), ack_mode=self.ack_mode, start=self.start,
            created_at=format_ts(self.created_ms), last_activity=format_ts(self.last_active_ms),
            waiting=sum(not w.done for w in self.waiters),
            circuit=self.circuit.state if self.circuit is not None else "disabled",
            expired=self.expired)

    def pending_view(self, limit: int) -> list[PendingEntry]:
        out = []
        for pos in sorted(self.pending)[:limit]:
            entry = self.pending[pos]
            out.append(PendingEntry(
                id=entry.id, position=pos, consumer=entry.consumer,
                delivery_count=entry.delivery_count,
                deadline=format_ts(entry.deadline_ms) if entry.deadline_ms else None,
                state=_STATE_NAMES[entry.state], last_nack_reason=entry.reason))
        return out
