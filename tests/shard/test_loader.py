"""shard/loader.py: state built through the handlers and committed, then loaded into a fresh
ShardState from the same store, as a restarted shard does. Mostly over a MemoryStore; one
RocksStore closed and reopened.

Time is each state's `now_ms`, set by the tests; nothing here sleeps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest

from gortms.checks import Duration
from gortms.models import AckMode, GroupSpec, QueueConfig, format_ts
from gortms.protocol import (Ack, ConsumerAdd, DomainCreate, DomainDelete, Extend, Fetch,
                             GroupCreate, GroupDelete, GroupSeek, Nack, Publish, Published,
                             QueueCreate, QueueDelete, Request, encode_message, record_id)
from shard import handlers
from shard.groups import DELAYED, INFLIGHT, Delivery, GroupState
from shard.handlers import HANDLERS
from shard import chunks
from shard.loader import load
from shard.memory import MemoryStore
from shard.queues import QueueState
from shard.rocks import RocksStore
from shard.state import Limits, ShardState
from shard.store import Store, counters_key, dedup_prefix, pos_bytes, prefix_end

T0 = 1_751_193_000_000  # epoch ms
HOUR_MS = 3_600_000
DOMAIN, QUEUE, GROUP = "shop", "orders", "g"
WINDOW_MS = Limits().dedup_window_ms
AFTER_LEASES = T0 + 60_000  # every lease (ackTimeout 30s) has run out; the dedup window not


class Shard:
    """A ShardState over `store`, driven as the server drives it: handlers, then a commit."""

    def __init__(self, store: Store, now_ms: int = T0) -> None:
        self.store = store
        self.state = ShardState(0, store, Limits())
        self.state.now_ms = now_ms

    def do(self, request: Request) -> Any:
        reply = HANDLERS[type(request)](self.state, request)
        self.commit()
        return reply

    def commit(self) -> None:
        turn, self.state.turn = self.state.turn, self.state.new_turn()
        turn.commit()

    def queue(self, name: str = QUEUE, **config: Any) -> QueueState:
        self.do(QueueCreate(**at(name), config=QueueConfig(**config)))
        return self.state.queues[(DOMAIN, name)]

    def publish(self, count: int = 1, queue: str = QUEUE, key: str | None = None) -> Any:
        first = self.state.queues[(DOMAIN, queue)].last + 1
        records = [encode_message(f"m{first + i}", b"{}", b'{"n":1}') for i in range(count)]
        return self.do(Publish(**at(queue), records=records, key=key))

    def group(self, name: str = GROUP, queue: str = QUEUE, **spec: Any) -> GroupState:
        self.do(GroupCreate(**at(queue), spec=GroupSpec(group_id=name, **spec)))
        return self.state.queues[(DOMAIN, queue)].groups[name]

    def fetch(self, consumer: str = "c1", count: int = 10, group: str = GROUP,
              queue: str = QUEUE) -> list[Delivery]:
        """What the server does for a Fetch, then its commit."""
        state = self.state
        found = handlers.queue_of(state, Fetch(**at(queue), group=group)).groups[group]
        out = found.deliver(state.store, state.turn, consumer, count, state.now_ms,
                            state.limits.max_pending_per_group)
        self.commit()
        return out

    def delete_messages(self, queue: str, *positions: int) -> None:
        """Messages gone behind the shard's back: retention, or WAL-less writes lost."""
        batch = self.store.batch()
        prefix = self.state.queues[(DOMAIN, queue)].message_prefix
        for key, value, _ in chunks.punch(self.store, prefix, list(positions)):
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        self.store.write(batch, sync=False)


def restart(store: Store, now_ms: int = T0 + 1_000) -> Shard:
    """A fresh shard loaded from `store`, as at a restart."""
    shard = Shard(store, now_ms)
    load(shard.state)
    return shard


def at(queue: str = QUEUE, epoch: int = 1) -> dict[str, Any]:
    return {"domain": DOMAIN, "queue": queue, "epoch": epoch}


def of_group(group: str = GROUP, queue: str = QUEUE) -> dict[str, Any]:
    return {**at(queue), "group": group}


def delivered(deliveries: list[Delivery]) -> list[tuple[int, int, str]]:
    return [(pos, count, record_id(record)) for pos, count, record in deliveries]


def queue_view(queue: QueueState) -> tuple[Any, ...]:
    return (queue.qid, queue.domain, queue.name, queue.epoch, queue.config, queue.created_ms,
            queue.first, queue.last, queue.count, queue.bytes, sorted(queue.groups))


def group_view(group: GroupState) -> tuple[Any, ...]:
    return (group.name, group.ack_mode, group.ttl, group.start, group.created_ms,
            group.position, group.acks.floor, group.acks.ranges(), group.registered)


@pytest.fixture
def shard() -> Shard:
    """Domain shop (epoch 1) and its persistent queue orders, on a MemoryStore."""
    shard = Shard(MemoryStore())
    shard.do(DomainCreate(name=DOMAIN, schema={"fields": {"n": "number"}}))
    shard.queue()
    return shard


# --- the catalog and the counters -------------------------------------------------------------


def test_domains_and_the_next_epoch_come_back(shard: Shard) -> None:
    shard.do(DomainCreate(name="gone"))
    shard.do(DomainDelete(name="gone"))
    fresh = restart(shard.store)
    assert fresh.state.domains == shard.state.domains
    assert fresh.state.next_epoch == shard.state.next_epoch == 3
    assert fresh.do(DomainCreate(name="gone")).epoch == 3  # never an epoch used before


def test_the_next_queue_id_comes_back_so_no_id_is_reused(shard: Shard) -> None:
    used = shard.state.queues[(DOMAIN, QUEUE)].qid
    shard.do(QueueDelete(**at()))
    fresh = restart(shard.store)
    assert fresh.queue().qid == used + 1


# --- queues -------------------------------------------------------------------------------------


def test_a_queue_comes_back_with_its_config_positions_and_counters(shard: Shard) -> None:
    queue = shard.queue("tuned", max_size=50, ack_timeout=Duration(5.0),
                        circuit_breaker_enabled=True)
    shard.publish(4, queue="tuned")
    shard.publish(2)
    fresh = restart(shard.store)
    for name in ("tuned", QUEUE):
        assert queue_view(fresh.state.queues[(DOMAIN, name)]) == queue_view(
            shard.state.queues[(DOMAIN, name)])
    assert fresh.state.queues[(DOMAIN, "tuned")].config.ack_timeout == 5.0
    assert queue.count == 4 and queue.bytes > 0
    assert fresh.publish(1, queue="tuned").first_position == 5


def test_a_queue_whose_oldest_messages_are_gone_starts_at_its_oldest_stored_one(
        shard: Shard) -> None:
    shard.publish(5)
    shard.delete_messages(QUEUE, 1, 2)
    queue = restart(shard.store).state.queues[(DOMAIN, QUEUE)]
    assert (queue.first, queue.last) == (3, 5)


def test_an_emptied_queue_keeps_its_last_position(shard: Shard) -> None:
    shard.publish(3)
    shard.delete_messages(QUEUE, 1, 2, 3)
    fresh = restart(shard.store)
    queue = fresh.state.queues[(DOMAIN, QUEUE)]
    assert (queue.first, queue.last) == (4, 3)
    assert fresh.publish(1).first_position == 4  # positions are never reused


def test_a_non_persistent_queue_is_recounted_from_what_is_stored(shard: Shard) -> None:
    shard.queue("loose", is_persistent=False)
    shard.publish(5, queue="loose")
    one_size = shard.state.queues[(DOMAIN, "loose")].bytes // 5
    shard.delete_messages("loose", 2, 5)  # lost with the WAL-less writes in a crash
    queue = restart(shard.store).state.queues[(DOMAIN, "loose")]
    assert (queue.count, queue.bytes) == (3, 3 * one_size)
    assert queue.last == 5  # positions 2 and 5 were answered once: never given out again


def test_a_non_persistent_queue_without_its_counters_record_takes_its_last_stored_position(
        shard: Shard) -> None:
    queue = shard.queue("loose", is_persistent=False)
    shard.publish(3, queue="loose")
    batch = shard.store.batch()
    batch.delete(counters_key(queue.qid))
    shard.store.write(batch, sync=False)
    fresh = restart(shard.store)
    assert fresh.state.queues[(DOMAIN, "loose")].last == 3
    assert fresh.publish(1, queue="loose").first_position == 4


def test_a_deleted_queue_stays_deleted(shard: Shard) -> None:
    shard.queue("doomed")
    shard.publish(2, queue="doomed")
    shard.do(QueueDelete(**at("doomed")))
    assert (DOMAIN, "doomed") not in restart(shard.store).state.queues


# --- consumer groups ----------------------------------------------------------------------------


def test_a_group_comes_back_with_its_settings_cursor_and_registered_consumers(
        shard: Shard) -> None:
    shard.publish(8)
    group = shard.group(ack_mode=AckMode.EXPLICIT, ttl=Duration(7200.0), start=2)
    shard.do(ConsumerAdd(**of_group(), consumer="c1"))
    shard.do(ConsumerAdd(**of_group(), consumer="c2"))
    shard.fetch(count=6)  # positions 2..7
    shard.do(Ack(**of_group(), ids=["m2", "m4", "m5", "m7"]))
    assert (group.acks.floor, group.acks.ranges()) == (3, [4, 6, 7, 8])
    fresh = restart(shard.store).state.queues[(DOMAIN, QUEUE)].groups[GROUP]
    assert group_view(fresh) == group_view(group)
    assert sorted(fresh.consumers) == ["c1", "c2"]


def test_an_auto_ack_group_comes_back_with_its_position_and_nothing_pending(
        shard: Shard) -> None:
    shard.publish(4)
    shard.group(ack_mode=AckMode.AUTO, start="latest")
    shard.publish(3)
    shard.fetch(count=2)
    fresh = restart(shard.store)
    group = fresh.state.queues[(DOMAIN, QUEUE)].groups[GROUP]
    assert (group.ack_mode, group.start, group.position, group.acks.floor) == (
        AckMode.AUTO, "latest", 7, 7)
    assert group.pending == {}
    assert [pos for pos, _, _ in fresh.fetch()] == [7]


def test_delivered_unacked_messages_are_due_again_with_their_delivery_counts(
        shard: Shard) -> None:
    shard.group()
    shard.publish(7)
    shard.fetch(count=5)
    shard.do(Ack(**of_group(), ids=["m1", "m3"]))
    shard.do(Nack(**of_group(), ids=["m4"]))
    shard.fetch(count=1)  # m4 again: its delivery count, 2, is stored
    fresh = restart(shard.store, AFTER_LEASES)
    group = fresh.state.queues[(DOMAIN, QUEUE)].groups[GROUP]
    assert (group.position, sorted(group.pending)) == (6, [2, 4, 5])
    assert {(e.position, e.state, e.delivery_count) for e in group.pending_view(10)} == {
        (2, "due", 1), (4, "due", 2), (5, "due", 1)}
    assert delivered(fresh.fetch("c9")) == [
        (2, 2, "m2"), (4, 3, "m4"), (5, 2, "m5"), (6, 1, "m6"), (7, 1, "m7")]


def test_messages_restored_as_pending_can_be_acked_by_id(shard: Shard) -> None:
    shard.group()
    shard.publish(3)
    shard.fetch()
    fresh = restart(shard.store)
    acked = fresh.do(Ack(**of_group(), ids=["m2"]))
    assert (acked.acked, acked.unknown) == (1, [])
    assert sorted(fresh.state.queues[(DOMAIN, QUEUE)].groups[GROUP].pending) == [1, 3]


def test_a_lease_that_has_not_run_out_is_still_in_flight_after_a_restart(shard: Shard) -> None:
    shard.group()
    shard.publish(3)
    shard.fetch(count=2, consumer="worker")  # m1, m2 leased until T0 + 30 s
    fresh = restart(shard.store, T0 + 10_000)
    group = fresh.state.queues[(DOMAIN, QUEUE)].groups[GROUP]
    assert {p: (e.state, e.consumer, e.deadline_ms) for p, e in group.pending.items()} == {
        1: (INFLIGHT, "worker", T0 + 30_000), 2: (INFLIGHT, "worker", T0 + 30_000)}
    assert delivered(fresh.fetch("other")) == [(3, 1, "m3")]  # not m1, m2 early
    assert fresh.do(Ack(**of_group(), ids=["m1"])).acked == 1
    # The lease runs out at its recorded deadline: m2 alone fails, and is due again.
    assert group.expire(T0 + 29_999, fresh.state.turn) is False
    assert group.expire(T0 + 30_000, fresh.state.turn) is True
    assert delivered(fresh.fetch("other")) == [(2, 2, "m2")]


def test_an_extended_lease_and_a_delayed_retry_come_back_with_their_times(shard: Shard) -> None:
    shard.group()
    shard.publish(2)
    shard.fetch(count=2, consumer="worker")
    shard.do(Extend(**of_group(), ids=["m1"], by_ms=HOUR_MS))
    shard.do(Nack(**of_group(), ids=["m2"], delay_ms=60_000))
    fresh = restart(shard.store, T0 + 40_000)  # the first lease has run out, the others not
    group = fresh.state.queues[(DOMAIN, QUEUE)].groups[GROUP]
    assert {p: (e.state, e.deadline_ms) for p, e in group.pending.items()} == {
        1: (INFLIGHT, T0 + HOUR_MS), 2: (DELAYED, T0 + 60_000)}
    assert fresh.fetch("other") == []
    assert group.expire(T0 + 60_000, fresh.state.turn) is True
    assert delivered(fresh.fetch("other")) == [(2, 2, "m2")]
    # Settled leases leave no record behind: only m1's extension and m2's new lease.
    assert len(list(shard.store.scan(b"E", b"F"))) == 2


def test_two_restarts_in_a_row_count_no_delivery_that_did_not_happen(shard: Shard) -> None:
    shard.group()
    shard.publish(2)
    shard.fetch()
    shard.do(Nack(**of_group(), ids=["m1"]))
    shard.fetch()
    once = restart(shard.store, AFTER_LEASES)
    twice = restart(once.store, AFTER_LEASES)
    assert delivered(twice.fetch()) == [(1, 3, "m1"), (2, 2, "m2")]


def test_unacked_messages_that_are_gone_are_not_redelivered_after_a_restart(
        shard: Shard) -> None:
    shard.group()
    shard.publish(4)
    shard.fetch()
    shard.delete_messages(QUEUE, 1, 3)
    fresh = restart(shard.store, AFTER_LEASES)
    group = fresh.state.queues[(DOMAIN, QUEUE)].groups[GROUP]
    assert sorted(group.pending) == [2, 4]
    assert delivered(fresh.fetch()) == [(2, 2, "m2"), (4, 2, "m4")]


def test_a_group_behind_the_queue_start_counts_the_gone_messages_acked(shard: Shard) -> None:
    shard.group()
    shard.publish(5)
    shard.delete_messages(QUEUE, 1, 2, 3)  # gone before the group got to them
    group = restart(shard.store).state.queues[(DOMAIN, QUEUE)].groups[GROUP]
    info = group.info()
    assert (info.ack_floor, info.lag, info.pending) == (4, 2, 0)


def test_a_replayed_position_comes_back(shard: Shard) -> None:
    shard.group()
    shard.publish(5)
    shard.fetch()
    shard.do(Ack(**of_group(), ids=["m1", "m2", "m3", "m4", "m5"]))
    shard.do(GroupSeek(**of_group(), position=2))
    group = restart(shard.store).state.queues[(DOMAIN, QUEUE)].groups[GROUP]
    assert (group.position, group.acks.floor, group.pending) == (2, 2, {})


def test_a_deleted_group_stays_deleted(shard: Shard) -> None:
    shard.group()
    shard.group("kept")
    shard.do(GroupDelete(**of_group()))
    assert sorted(restart(shard.store).state.queues[(DOMAIN, QUEUE)].groups) == ["kept"]


def test_a_busy_group_older_than_its_ttl_is_not_idle_after_a_restart(shard: Shard) -> None:
    shard.publish(3)
    shard.group(ttl=Duration(3600.0))
    shard.state.now_ms = T0 + 2 * HOUR_MS  # two hours later, still in use
    shard.fetch()
    fresh = restart(shard.store, now_ms=T0 + 2 * HOUR_MS + 1_000)
    group = fresh.state.queues[(DOMAIN, QUEUE)].groups[GROUP]
    idle_ms = fresh.state.now_ms - group.last_active_ms
    assert idle_ms <= group.ttl * 1000  # what the shard's sweep compares before deleting


# --- idempotency keys ---------------------------------------------------------------------------


def test_idempotency_keys_within_the_window_are_still_remembered(shard: Shard) -> None:
    first = shard.publish(2, key="k1")
    fresh = restart(shard.store, now_ms=T0 + WINDOW_MS - 1)
    repeat = fresh.publish(1, key="k1")
    assert type(repeat) is bytes  # the original reply, as stored
    assert msgspec.msgpack.decode(repeat, type=Published) == Published(
        first_position=first.first_position, count=2, message_ids=first.message_ids,
        duplicate=True)
    assert fresh.state.queues[(DOMAIN, QUEUE)].last == 2


def test_expired_idempotency_keys_are_dropped_at_load_and_deleted_from_the_store(
        shard: Shard) -> None:
    shard.publish(1, key="old")
    shard.state.now_ms = T0 + WINDOW_MS // 2
    shard.publish(1, key="young")
    fresh = restart(shard.store, now_ms=T0 + WINDOW_MS)
    queue = fresh.state.queues[(DOMAIN, QUEUE)]
    assert list(queue.dedup) == ["young"]
    prefix = dedup_prefix(queue.qid)
    assert [k[len(prefix):] for k, _ in shard.store.scan(prefix, prefix_end(prefix))] == [
        b"young"]
    assert not fresh.state.turn  # the load committed its clean-up
    assert fresh.publish(1, key="old").first_position == 3


def test_an_idempotency_record_that_is_not_a_reply_is_dropped_at_load(shard: Shard) -> None:
    shard.publish(1, key="k1")
    queue = shard.state.queues[(DOMAIN, QUEUE)]
    batch = shard.store.batch()
    batch.put(dedup_prefix(queue.qid) + b"legacy", pos_bytes(T0 + WINDOW_MS) + b'{"old":1}')
    shard.store.write(batch, sync=False)
    fresh = restart(shard.store)
    assert list(fresh.state.queues[(DOMAIN, QUEUE)].dedup) == ["k1"]
    assert shard.store.get(dedup_prefix(queue.qid) + b"legacy") is None


# --- a real RocksDB, closed and reopened --------------------------------------------------------


def test_everything_comes_back_from_a_rocks_store_closed_and_reopened(tmp_path: Path) -> None:
    path = str(tmp_path / "shard0")
    shard = Shard(RocksStore(path))
    shard.do(DomainCreate(name=DOMAIN))
    shard.queue()
    shard.queue("loose", is_persistent=False, ack_timeout=Duration(2.0))
    shard.publish(6, key="k1")
    shard.publish(3, queue="loose")
    group = shard.group(ttl=Duration(60.0))
    shard.do(ConsumerAdd(**of_group(), consumer="c1"))
    shard.fetch(count=4)
    shard.do(Ack(**of_group(), ids=["m1", "m3"]))
    shard.do(Nack(**of_group(), ids=["m2"]))
    shard.fetch(count=1)  # m2, delivery count 2
    before = {name: queue_view(q) for (_, name), q in shard.state.queues.items()}
    domains, view = dict(shard.state.domains), group_view(group)
    shard.store.close()

    store = RocksStore(path)
    try:
        fresh = restart(store, AFTER_LEASES)
        assert fresh.state.domains == domains
        assert (fresh.state.next_qid, fresh.state.next_epoch) == (3, 2)
        assert {name: queue_view(q) for (_, name), q in fresh.state.queues.items()} == before
        assert group_view(fresh.state.queues[(DOMAIN, QUEUE)].groups[GROUP]) == view
        assert type(fresh.publish(1, key="k1")) is bytes  # still remembered
        assert delivered(fresh.fetch("c2", count=3)) == [
            (2, 3, "m2"), (4, 2, "m4"), (5, 1, "m5")]
    finally:
        store.close()


def test_group_start_times_survive_a_restart_as_given(shard: Shard) -> None:
    shard.publish(2)
    start = format_ts(T0 + 500)
    shard.group(start=start)
    assert restart(shard.store).state.queues[(DOMAIN, QUEUE)].groups[GROUP].start == start


def test_a_fresh_store_loads_an_empty_shard() -> None:
    fresh = restart(MemoryStore())
    state: ShardState = fresh.state
    assert (state.domains, state.queues, state.next_qid, state.next_epoch) == ({}, {}, 1, 1)
    assert not state.turn
    assert list(fresh.store.scan(b"\x00", b"\xff")) == []


def test_a_message_published_for_later_is_still_held_back_after_a_restart(
        shard: Shard) -> None:
    shard.group()
    records = [encode_message("later", b"{}", b'{"n":1}')]
    shard.do(Publish(**at(), records=records, delay_ms=60_000))
    shard.publish(1)
    fresh = restart(shard.store, T0 + 10_000)
    assert delivered(fresh.fetch()) == [(2, 1, "m2")]
    fresh.do(Ack(**of_group(), ids=["m2"]))
    group = fresh.state.queues[(DOMAIN, QUEUE)].groups[GROUP]
    assert group.expire(T0 + 60_000, fresh.state.turn) is True
    assert delivered(fresh.fetch()) == [(1, 1, "later")]
    # Once due, the schedule is forgotten at load: a later group gets it at once.
    again = restart(shard.store, T0 + 120_000)
    assert again.state.queues[(DOMAIN, QUEUE)].scheduled == {}


# --- ack deltas: a commit's acks as a small record, not the whole set again -------------------


def ack_records(shard: Shard) -> int:
    return len(list(shard.store.scan(b"A", b"B")))


def test_acks_above_a_gap_are_delta_records_and_come_back_exactly(shard: Shard) -> None:
    shard.group()
    shard.publish(10)
    shard.fetch()
    for message_id in ("m2", "m4", "m6"):  # three commits, each above the gap at 1
        shard.do(Ack(**of_group(), ids=[message_id]))
    assert ack_records(shard) == 3
    group = shard.state.queues[(DOMAIN, QUEUE)].groups[GROUP]
    fresh = restart(shard.store, AFTER_LEASES)
    again = fresh.state.queues[(DOMAIN, QUEUE)].groups[GROUP]
    assert (again.acks.floor, again.acks.ranges()) == (group.acks.floor, group.acks.ranges())
    assert [pos for pos, _, _ in fresh.fetch(count=20)] == [1, 3, 5, 7, 8, 9, 10]
    # The first commit after the start (the fetch's) wrote the whole set again, as one
    # record in place of the three; the acks below still count through it.
    assert [orjson.loads(v) for _, v in fresh.store.scan(b"A", b"B")] == [[2, 3, 4, 5, 6, 7]]
    fresh.do(Ack(**of_group(), ids=["m1", "m3"]))
    assert again.acks.floor == 5 and again.acks.ranges() == [6, 7]
    last = restart(fresh.store, AFTER_LEASES).state.queues[(DOMAIN, QUEUE)].groups[GROUP]
    assert (last.acks.floor, last.acks.ranges()) == (5, [6, 7])


def test_the_cursor_written_with_every_commit_holds_no_acked_ranges(shard: Shard) -> None:
    # With retries waiting, the ranges above the floor number in the hundreds; written in
    # every commit's cursor they cost a tenth of consume+ack (docs/PERFORMANCE.md).
    shard.group()
    shard.publish(40)
    shard.fetch(count=40)
    for i in range(2, 41, 2):  # 20 ranges above the floor, a commit each
        shard.do(Ack(**of_group(), ids=[f"m{i}"]))
    group = shard.state.queues[(DOMAIN, QUEUE)].groups[GROUP]
    assert len(group.acks.ranges()) == 40
    [(_, cursor)] = list(shard.store.scan(b"K", b"L"))
    assert orjson.loads(cursor)[:3] == [41, 1, []]
    fresh = restart(shard.store, AFTER_LEASES).state.queues[(DOMAIN, QUEUE)].groups[GROUP]
    assert fresh.acks.ranges() == group.acks.ranges()


def test_in_order_acks_write_no_delta_and_the_floor_passing_a_delta_deletes_it(
        shard: Shard) -> None:
    shard.group()
    shard.publish(4)
    shard.fetch()
    shard.do(Ack(**of_group(), ids=["m1", "m2"]))
    assert ack_records(shard) == 0  # in order: the cursor's floor says it all
    shard.do(Ack(**of_group(), ids=["m4"]))
    assert ack_records(shard) == 1
    shard.do(Ack(**of_group(), ids=["m3"]))  # the floor passes it: gone with this commit
    assert ack_records(shard) == 0
    fresh = restart(shard.store, AFTER_LEASES)
    assert fresh.state.queues[(DOMAIN, QUEUE)].groups[GROUP].acks.floor == 5


def test_many_deltas_are_compacted_into_the_cursor(shard: Shard) -> None:
    from shard.groups import MAX_ACK_DELTAS
    shard.group()
    count = MAX_ACK_DELTAS + 20
    shard.publish(count + 1)
    shard.fetch(count=count + 1)
    for n in range(2, count + 2):  # every ack above the gap at 1, one commit each
        shard.do(Ack(**of_group(), ids=[f"m{n}"]))
    assert 0 < ack_records(shard) <= 20
    fresh = restart(shard.store, AFTER_LEASES)
    group = fresh.state.queues[(DOMAIN, QUEUE)].groups[GROUP]
    assert (group.acks.floor, group.acks.ranges()) == (1, [2, count + 2])
    assert [pos for pos, _, _ in fresh.fetch(count=10)] == [1]


def test_a_replay_voids_the_ack_deltas(shard: Shard) -> None:
    shard.group()
    shard.publish(4)
    shard.fetch()
    shard.do(Ack(**of_group(), ids=["m3"]))
    assert ack_records(shard) == 1
    shard.do(GroupSeek(**of_group(), position=1))
    assert ack_records(shard) == 0
    fresh = restart(shard.store, AFTER_LEASES)
    assert [pos for pos, _, _ in fresh.fetch()] == [1, 2, 3, 4]


def test_a_cursor_of_the_earlier_format_with_ranges_is_read_and_moved_to_a_record(
        shard: Shard) -> None:
    shard.group()
    shard.publish(6)
    shard.fetch(count=6)
    shard.do(Ack(**of_group(), ids=["m1", "m3", "m5"]))  # floor 2, ranges [3, 4, 5, 6]
    [(key, cursor)] = list(shard.store.scan(b"K", b"L"))
    old = orjson.loads(cursor)
    old[2] = [3, 4, 5, 6]  # as releases before ack records wrote it: ranges in the cursor
    batch = shard.store.batch()
    batch.put(key, orjson.dumps(old))
    for ack_key, _ in list(shard.store.scan(b"A", b"B")):
        batch.delete(ack_key)
    shard.store.write(batch, sync=True)
    fresh = restart(shard.store, AFTER_LEASES)
    group = fresh.state.queues[(DOMAIN, QUEUE)].groups[GROUP]
    assert (group.acks.floor, group.acks.ranges()) == (2, [3, 4, 5, 6])
    fresh.do(Ack(**of_group(), ids=["m2"]))  # the first commit moves the ranges
    [(_, cursor)] = list(fresh.store.scan(b"K", b"L"))
    assert orjson.loads(cursor)[2] == []
    again = restart(fresh.store, AFTER_LEASES).state.queues[(DOMAIN, QUEUE)].groups[GROUP]
    assert (again.acks.floor, again.acks.ranges()) == (4, [5, 6])
