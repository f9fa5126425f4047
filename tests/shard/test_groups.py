"""shard/groups.py and shard/queues.py: delivery, acks, redelivery and replay over a MemoryStore.

Time is driven by passing `now_ms`; nothing here sleeps.
"""

from __future__ import annotations

import random
from collections import Counter

import orjson
import pytest

from gortms.checks import Duration, to_builtins
from gortms.models import AckMode, GroupSpec, QueueConfig
from gortms.protocol import encode_message, record_id, record_to_dict, ts_bytes
from shard import chunks, loader
from shard.groups import Delivery, GroupState
from shard.memory import MemoryStore
from shard.queues import QueueState
from shard.recent import Recent
from shard.store import (cursor_key, message_prefix, prefix_end, redelivery_prefix)
from shard.turn import Turn

QID = 1
T0 = 1_751_193_000_000  # epoch ms
ACK_TIMEOUT_MS = 30_000  # the queue default


RECENT_BUDGETS = {"from-memory": 1 << 20, "from-the-store": 0}
_budget = RECENT_BUDGETS["from-memory"]


@pytest.fixture(autouse=True, params=list(RECENT_BUDGETS))
def recent_budget(request: pytest.FixtureRequest) -> None:
    """Every test twice: reads served by the queue's in-memory tail, and by the store alone."""
    global _budget
    _budget = RECENT_BUDGETS[request.param]


class World:
    """One queue (qid 1) on a MemoryStore, with helpers that commit like the shard does."""

    def __init__(self, config: QueueConfig | None = None) -> None:
        self.store = MemoryStore()
        self.queue = QueueState(QID, "shop", "orders", 1, config or QueueConfig(), T0)
        self.recent = Recent(_budget)
        self.recent.tails[QID] = self.queue.tail
        self.published = 0

    def publish(self, count: int = 1, ids: list[str] | None = None, ts_ms: int = T0) -> int:
        ids = ids or [f"m{self.published + i + 1}" for i in range(count)]
        records = [encode_message(i, b"{}", orjson.dumps({"n": i})) for i in ids]
        turn = Turn(self.store)
        first = self.queue.append(turn, self.recent, ts_bytes(ts_ms), records)
        turn.commit()
        self.published += len(ids)
        return first

    def group(self, name: str = "g", mode: str = "explicit", position: int = 1) -> GroupState:
        group = GroupState(self.queue, GroupSpec(group_id=name, ack_mode=AckMode(mode)), T0,
                           position)
        self.queue.groups[name] = group
        return group

    def fetch(self, group: GroupState, consumer: str = "c1", count: int = 10, now_ms: int = T0,
              max_pending: int = 10_000) -> list[Delivery]:
        turn = Turn(self.store)
        out = group.deliver(self.store, turn, consumer, count, now_ms, max_pending)
        turn.commit()
        return out

    def ack(self, group: GroupState, ids: list[str] = (), positions: list[int] = (),
            now_ms: int = T0) -> tuple[int, list]:
        turn = Turn(self.store)
        out = group.ack(list(ids), list(positions), turn, now_ms)
        turn.commit()
        return out

    def release(self, group: GroupState, consumer: str, now_ms: int) -> None:
        turn = Turn(self.store)
        group.release_consumer(consumer, turn, now_ms)
        turn.commit()

    def expire(self, group: GroupState, now_ms: int) -> bool:
        turn = Turn(self.store)
        out = group.expire(now_ms, turn)
        turn.commit()
        return out

    def nack(self, group: GroupState, ids: list[str], positions: list[int], delay_ms: int,
             now_ms: int, reason: str | None = None) -> tuple[int, list]:
        turn = Turn(self.store)
        out = group.nack(list(ids), list(positions), delay_ms, now_ms, turn, reason)
        turn.commit()
        return out

    def seek(self, group: GroupState, position: int) -> None:
        turn = Turn(self.store)
        group.seek(position, turn)
        turn.commit()

    def delete_message(self, position: int) -> None:
        """Gone behind the groups' back (retention): the queue reads a hole there."""
        batch = self.store.batch()
        for key, value, _ in chunks.punch(self.store, message_prefix(QID), [position]):
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        self.store.write(batch, sync=False)
        self.recent.discard(QID, position)
        self.queue.chunk_cache.forget()

    def redelivery_counts(self, group: GroupState) -> dict[int, int]:
        prefix = redelivery_prefix(QID, group.name)
        return {int.from_bytes(k[-8:], "big"): int.from_bytes(v[:4], "big")
                for k, v in self.store.scan(prefix, prefix_end(prefix))}


def positions(deliveries: list[Delivery]) -> list[int]:
    return [pos for pos, _, _ in deliveries]


def counts(deliveries: list[Delivery]) -> list[int]:
    return [count for _, count, _ in deliveries]


def ids(deliveries: list[Delivery]) -> list[str]:
    return [record_id(record) for _, _, record in deliveries]


# --- the queue ----------------------------------------------------------------------------------


def test_append_assigns_increasing_positions_from_one() -> None:
    world = World()
    assert world.publish(3) == 1
    assert world.publish(2) == 4
    queue = world.queue
    assert (queue.first, queue.last, queue.count) == (1, 5, 5)
    assert queue.bytes == sum(chunks.sizes(world.store, b"M", b"N"))


def test_appended_records_are_stamped_and_stored_under_their_position() -> None:
    world = World()
    world.publish(ids=["a", "b"], ts_ms=T0 + 5)
    stored = chunks.read_range(world.store, message_prefix(QID), 2, 3)[0]
    assert stored is not None
    assert record_to_dict(stored) == {"id": "b", "headers": {}, "payload": {"n": "b"},
                                      "timestamp": T0 + 5}


def test_queue_info_reports_positions_and_groups() -> None:
    world = World()
    world.publish(4)
    world.group()
    info = world.queue.info()
    assert (info.message_count, info.first_position, info.last_position, info.groups) \
        == (4, 1, 4, 1)
    assert info.config == QueueConfig()


# --- delivering new messages ----------------------------------------------------------------


def test_new_messages_are_delivered_in_position_order_with_delivery_count_one() -> None:
    world = World()
    world.publish(5)
    group = world.group()
    out = world.fetch(group, count=3)
    assert positions(out) == [1, 2, 3] and counts(out) == [1, 1, 1]
    assert ids(out) == ["m1", "m2", "m3"]
    assert positions(world.fetch(group, count=10)) == [4, 5]
    assert world.fetch(group) == []
    assert group.position == 6 and len(group.pending) == 5


def test_a_group_starting_later_skips_earlier_messages() -> None:
    world = World()
    world.publish(5)
    group = world.group(position=4)
    assert positions(world.fetch(group)) == [4, 5]


def test_competing_consumers_never_get_the_same_pending_message() -> None:
    world = World()
    world.publish(100)
    group = world.group()
    got: dict[str, list[int]] = {"c1": [], "c2": [], "c3": []}
    rng = random.Random(5)
    while True:
        consumer = rng.choice(list(got))
        out = world.fetch(group, consumer, count=rng.randint(1, 7))
        if not out and not group.can_deliver(10_000):
            break
        got[consumer] += positions(out)
    every = sorted(p for taken in got.values() for p in taken)
    assert every == list(range(1, 101))
    assert all(got.values())
    assert {e.consumer for e in group.pending_view(1000)} == set(got)
    for entry in group.pending_view(1000):
        assert entry.position in got[entry.consumer]


def test_separate_groups_each_see_every_message() -> None:
    world = World()
    world.publish(4)
    first, second = world.group("a"), world.group("b")
    assert positions(world.fetch(first)) == [1, 2, 3, 4]
    assert positions(world.fetch(second)) == [1, 2, 3, 4]


def test_a_deleted_message_is_skipped_and_counts_as_acked() -> None:
    world = World()
    world.publish(4)
    world.delete_message(2)
    group = world.group()
    assert positions(world.fetch(group)) == [1, 3, 4]
    world.ack(group, positions=[1])
    assert group.acks.floor == 3


def test_messages_gone_below_the_queue_start_are_skipped() -> None:
    world = World()
    world.publish(6)
    for pos in (1, 2, 3):
        world.delete_message(pos)
    world.queue.first = 4  # what retention does after deleting the oldest messages
    group = world.group(position=1)
    assert group.lag() == 3
    assert positions(world.fetch(group)) == [4, 5, 6]
    assert group.acks.floor == 4


# --- acks -------------------------------------------------------------------------------------


def test_ack_by_id_settles_the_delivery_and_advances_the_ack_floor() -> None:
    world = World()
    world.publish(3)
    group = world.group()
    world.fetch(group)
    assert world.ack(group, ids=["m1", "m2"]) == (2, [])
    assert sorted(group.pending) == [3]
    assert group.acks.floor == 3


def test_ack_by_position_settles_the_delivery() -> None:
    world = World()
    world.publish(3)
    group = world.group()
    world.fetch(group)
    assert world.ack(group, positions=[2]) == (1, [])
    assert sorted(group.pending) == [1, 3]
    assert group.acks.floor == 1 and 2 in group.acks


def test_unknown_and_already_acked_ids_are_reported_not_errors() -> None:
    world = World()
    world.publish(2)
    group = world.group()
    world.fetch(group)
    assert world.ack(group, ids=["m1"]) == (1, [])
    acked, unknown = world.ack(group, ids=["m1", "nope", "m2"], positions=[1, 99, 2])
    assert acked == 1
    assert unknown == ["m1", "nope", 1, 99, 2]  # m2 was acked by id, then by position
    assert group.pending == {}


def test_undelivered_messages_cannot_be_acked() -> None:
    world = World()
    world.publish(3)
    group = world.group()
    world.fetch(group, count=1)
    assert world.ack(group, ids=["m2"], positions=[3]) == (0, ["m2", 3])


def test_messages_sharing_an_id_are_acked_one_per_mention() -> None:
    world = World()
    world.publish(ids=["dup", "dup", "other"])
    group = world.group()
    world.fetch(group)
    assert world.ack(group, ids=["dup"]) == (1, [])
    assert world.ack(group, ids=["dup", "dup"]) == (1, ["dup"])
    assert sorted(group.pending) == [3]


def test_an_acked_message_is_not_redelivered_after_its_deadline() -> None:
    world = World()
    world.publish(2)
    group = world.group()
    world.fetch(group, now_ms=T0)
    world.ack(group, ids=["m1"])
    assert world.expire(group, T0 + ACK_TIMEOUT_MS) is True
    assert positions(world.fetch(group, "c2", now_ms=T0 + ACK_TIMEOUT_MS)) == [2]


# --- redelivery ---------------------------------------------------------------------------------


def test_a_nacked_message_is_redelivered_at_once_with_its_count_incremented() -> None:
    world = World()
    world.publish(2)
    group = world.group()
    world.fetch(group)
    assert world.nack(group, ["m1"], [], 0, T0) == (1, [])
    out = world.fetch(group, "c2")
    assert positions(out) == [1] and counts(out) == [2]
    assert group.pending[1].consumer == "c2"


def test_due_redeliveries_come_before_new_messages() -> None:
    world = World()
    world.publish(3)
    group = world.group()
    world.fetch(group, count=3)
    world.nack(group, ["m3"], [], 0, T0)
    world.nack(group, [], [2], 0, T0)
    world.publish(3)
    out = world.fetch(group, "c2", count=3)
    assert positions(out) == [2, 3, 4]
    assert counts(out) == [2, 2, 1]


def test_redeliveries_alone_can_fill_a_fetch() -> None:
    world = World()
    world.publish(4)
    group = world.group()
    world.fetch(group, count=3)
    world.nack(group, ["m1", "m2", "m3"], [], 0, T0)
    assert positions(world.fetch(group, count=2)) == [1, 2]
    assert positions(world.fetch(group, count=2)) == [3, 4]


def test_nack_of_unknown_ids_is_reported() -> None:
    world = World()
    world.publish(1)
    group = world.group()
    world.fetch(group)
    assert world.nack(group, ["m1", "ghost"], [42], 0, T0) == (1, ["ghost", 42])


def test_a_nack_with_delay_becomes_due_only_after_the_delay() -> None:
    world = World()
    world.publish(1)
    group = world.group()
    world.fetch(group)
    world.nack(group, ["m1"], [], 5_000, T0 + 100)
    assert world.fetch(group, now_ms=T0 + 100) == []
    assert world.expire(group, T0 + 5_099) is False
    assert world.fetch(group, now_ms=T0 + 5_099) == []
    assert world.expire(group, T0 + 5_100) is True
    out = world.fetch(group, "c2", now_ms=T0 + 5_100)
    assert positions(out) == [1] and counts(out) == [2]


def test_a_delayed_message_does_not_hold_back_new_messages() -> None:
    world = World()
    world.publish(1)
    group = world.group()
    world.fetch(group)
    world.nack(group, ["m1"], [], 60_000, T0)
    world.publish(1)
    assert positions(world.fetch(group)) == [2]


def test_an_unacked_message_is_redelivered_after_its_ack_timeout() -> None:
    world = World()
    world.publish(1)
    group = world.group()
    world.fetch(group, "c1", now_ms=T0)
    assert world.expire(group, T0 + ACK_TIMEOUT_MS - 1) is False
    assert world.fetch(group, "c2", now_ms=T0 + ACK_TIMEOUT_MS - 1) == []
    assert world.expire(group, T0 + ACK_TIMEOUT_MS) is True
    out = world.fetch(group, "c2", now_ms=T0 + ACK_TIMEOUT_MS)
    assert positions(out) == [1] and counts(out) == [2]


def test_the_ack_timeout_comes_from_the_queue_config() -> None:
    world = World(QueueConfig(ack_timeout=1.5))
    world.publish(1)
    group = world.group()
    world.fetch(group, now_ms=T0)
    assert world.expire(group, T0 + 1_499) is False
    assert world.expire(group, T0 + 1_500) is True


def test_a_redelivered_message_gets_a_fresh_deadline() -> None:
    world = World()
    world.publish(1)
    group = world.group()
    world.fetch(group, now_ms=T0)
    world.expire(group, T0 + ACK_TIMEOUT_MS)
    later = T0 + ACK_TIMEOUT_MS + 500
    world.fetch(group, "c2", now_ms=later)
    assert world.expire(group, later + ACK_TIMEOUT_MS - 1) is False
    assert world.expire(group, later + ACK_TIMEOUT_MS) is True
    assert counts(world.fetch(group, "c3", now_ms=later + ACK_TIMEOUT_MS)) == [3]


def test_a_nacked_message_is_redelivered_once_even_after_its_old_deadline_passes() -> None:
    world = World()
    world.publish(1)
    group = world.group()
    world.fetch(group, now_ms=T0)
    world.nack(group, ["m1"], [], 0, T0)
    world.expire(group, T0 + ACK_TIMEOUT_MS)
    assert positions(world.fetch(group, now_ms=T0 + ACK_TIMEOUT_MS)) == [1]
    assert world.fetch(group, now_ms=T0 + ACK_TIMEOUT_MS) == []


def test_nacking_a_message_twice_before_its_redelivery_delivers_it_once() -> None:
    world = World()
    world.publish(1)
    group = world.group()
    world.fetch(group)
    world.nack(group, ["m1"], [], 0, T0)
    world.nack(group, ["m1"], [], 0, T0)
    out = world.fetch(group, "c2", count=10)
    assert positions(out) == [1]
    assert counts(out) == [2]


def test_a_late_nack_of_a_timed_out_message_does_not_deliver_it_twice() -> None:
    world = World()
    world.publish(1)
    group = world.group()
    world.fetch(group, "c1", now_ms=T0)
    world.expire(group, T0 + ACK_TIMEOUT_MS)  # c1 was too slow: the message is due again
    world.nack(group, [], [1], 0, T0 + ACK_TIMEOUT_MS + 1)  # then c1 gives it up
    out = world.fetch(group, "c2", count=10, now_ms=T0 + ACK_TIMEOUT_MS + 1)
    assert positions(out) == [1]


def test_a_timed_out_message_acked_before_redelivery_is_not_redelivered() -> None:
    world = World()
    world.publish(1)
    group = world.group()
    world.fetch(group, now_ms=T0)
    world.expire(group, T0 + ACK_TIMEOUT_MS)
    assert world.ack(group, ids=["m1"]) == (1, [])
    assert world.fetch(group, now_ms=T0 + ACK_TIMEOUT_MS) == []
    assert group.acks.floor == 2


def test_a_message_deleted_while_due_is_settled_not_delivered() -> None:
    world = World()
    world.publish(2)
    group = world.group()
    world.fetch(group)
    world.nack(group, ["m1"], [], 0, T0)
    world.delete_message(1)
    assert world.fetch(group, "c2") == []
    assert sorted(group.pending) == [2]
    assert 1 in group.acks


def test_delivery_counts_of_redeliveries_are_stored_until_acked() -> None:
    world = World()
    world.publish(2)
    group = world.group()
    world.fetch(group)
    world.nack(group, ["m1", "m2"], [], 0, T0)
    world.fetch(group)
    world.nack(group, ["m1"], [], 0, T0)
    world.fetch(group)
    assert world.redelivery_counts(group) == {1: 3, 2: 2}
    world.ack(group, ids=["m1"])
    assert world.redelivery_counts(group) == {2: 2}


def test_a_released_consumers_messages_go_to_the_others() -> None:
    world = World()
    world.publish(5)
    group = world.group()
    world.fetch(group, "c1", count=3)
    world.fetch(group, "c2", count=2)
    world.release(group, "c1", T0)
    out = world.fetch(group, "c2", count=10)
    assert positions(out) == [1, 2, 3] and counts(out) == [2, 2, 2]
    assert Counter(e.consumer for e in group.pending.values()) == {"c2": 5}


def test_releasing_a_consumer_leaves_its_delayed_messages_delayed() -> None:
    world = World()
    world.publish(1)
    group = world.group()
    world.fetch(group, "c1")
    world.nack(group, ["m1"], [], 10_000, T0)
    world.release(group, "c1", T0)
    assert world.fetch(group, "c2", now_ms=T0 + 1) == []


# --- max pending --------------------------------------------------------------------------------


def test_max_pending_caps_new_deliveries() -> None:
    world = World()
    world.publish(10)
    group = world.group()
    assert positions(world.fetch(group, count=10, max_pending=3)) == [1, 2, 3]
    assert world.fetch(group, count=10, max_pending=3) == []
    assert group.can_deliver(3) is False
    world.ack(group, ids=["m2"])
    assert group.can_deliver(3) is True
    assert positions(world.fetch(group, count=10, max_pending=3)) == [4]


def test_max_pending_still_allows_redeliveries() -> None:
    world = World()
    world.publish(10)
    group = world.group()
    world.fetch(group, count=10, max_pending=3)
    world.nack(group, ["m1"], [], 0, T0)
    assert group.can_deliver(3) is True
    out = world.fetch(group, count=10, max_pending=3)
    assert positions(out) == [1] and counts(out) == [2]


# --- auto ack ---------------------------------------------------------------------------------


def test_auto_ack_mode_leaves_nothing_pending_and_advances_the_ack_floor() -> None:
    world = World()
    world.publish(5)
    group = world.group(mode="auto")
    assert positions(world.fetch(group, count=3)) == [1, 2, 3]
    assert group.pending == {}
    assert group.acks.floor == 4
    assert world.ack(group, ids=["m1"]) == (0, ["m1"])
    assert world.expire(group, T0 + 10 * ACK_TIMEOUT_MS) is False
    assert positions(world.fetch(group, "c2", count=10)) == [4, 5]
    assert group.acks.floor == 6


def test_auto_ack_mode_ignores_max_pending() -> None:
    world = World()
    world.publish(5)
    group = world.group(mode="auto")
    assert positions(world.fetch(group, count=5, max_pending=1)) == [1, 2, 3, 4, 5]


# --- seek and lag -----------------------------------------------------------------------------


def test_seek_resets_position_and_pending() -> None:
    world = World()
    world.publish(6)
    group = world.group()
    world.fetch(group, count=6)
    world.ack(group, ids=["m1", "m2", "m5"])
    world.nack(group, ["m3"], [], 0, T0)
    world.fetch(group)
    world.nack(group, ["m4"], [], 60_000, T0)
    world.seek(group, 2)
    assert group.position == 2
    assert group.pending == {} and group.acks.floor == 2 and group.acks.ranges() == []
    assert world.redelivery_counts(group) == {}
    assert world.expire(group, T0 + 10 * ACK_TIMEOUT_MS) is False
    out = world.fetch(group, count=10)
    assert positions(out) == [2, 3, 4, 5, 6] and set(counts(out)) == {1}


def test_seek_forward_skips_messages_and_counts_them_acked() -> None:
    world = World()
    world.publish(6)
    group = world.group()
    world.seek(group, 5)
    assert group.lag() == 2
    assert positions(world.fetch(group)) == [5, 6]
    assert group.acks.floor == 5


def test_seek_past_the_end_waits_for_that_position() -> None:
    world = World()
    world.publish(3)
    group = world.group()
    world.seek(group, 10)
    assert group.lag() == 0
    assert world.fetch(group) == []
    world.publish(6)  # positions 4..9
    assert world.fetch(group) == []
    world.publish(2)  # positions 10, 11
    assert positions(world.fetch(group)) == [10, 11]


def test_lag_counts_messages_not_yet_delivered_to_the_group() -> None:
    world = World()
    group = world.group()
    assert group.lag() == 0
    world.publish(10)
    assert group.lag() == 10
    world.fetch(group, count=4)
    assert group.lag() == 6
    world.ack(group, ids=["m1"])
    assert group.lag() == 6  # acking changes pending, not lag
    world.queue.first = 8  # retention removed what was never delivered
    assert group.lag() == 3


def test_group_info_reports_position_lag_and_pending() -> None:
    world = World()
    world.publish(5)
    group = world.group()
    world.fetch(group, "c1", count=2, now_ms=T0 + 7)
    info = group.info()
    assert (info.position, info.lag, info.pending) == (3, 3, 2)
    assert to_builtins(info.consumers) == [{"id": "c1", "lastSeen": "2025-06-29T10:30:00.007Z"}]
    assert (info.ack_mode, info.group_id, info.queue) == ("explicit", "g", "orders")


def test_pending_view_lists_consumer_count_deadline_and_state() -> None:
    world = World()
    world.publish(2)
    group = world.group()
    world.fetch(group, "c1", now_ms=T0)
    world.nack(group, ["m2"], [], 0, T0, "bad input")
    assert to_builtins(group.pending_view(10)) == [
        {"id": "m1", "position": 1, "consumer": "c1", "deliveryCount": 1,
         "deadline": "2025-06-29T10:30:30.000Z", "state": "delivered", "lastNackReason": None},
        {"id": "m2", "position": 2, "consumer": "c1", "deliveryCount": 1,
         "deadline": None, "state": "due", "lastNackReason": "bad input"},
    ]
    assert len(group.pending_view(1)) == 1


def test_a_message_nacked_with_a_delay_shows_when_it_becomes_due() -> None:
    world = World()
    world.publish(1)
    group = world.group()
    world.fetch(group, "c1", now_ms=T0)
    world.nack(group, ["m1"], [], 5000, T0)
    [entry] = group.pending_view(10)
    assert (entry.state, entry.deadline) == ("delayed", "2025-06-29T10:30:05.000Z")


# --- restart ----------------------------------------------------------------------------------


def _restart(world: World, group: GroupState) -> GroupState:
    """What shard/loader.py does: a fresh group from its stored cursor, pending restored."""
    turn = Turn(world.store)
    group.write_record(turn)
    turn.commit()
    fresh = GroupState(world.queue, group.spec, T0, world.queue.first)
    cursor = world.store.get(cursor_key(QID, group.name))
    assert cursor is not None
    fresh.restore_cursor(cursor)
    fresh.restore_acks(loader.read_ack_deltas(world.store, fresh))
    unacked = list(fresh.acks.gaps(fresh.position))
    records = chunks.read_positions(world.store, message_prefix(QID), unacked)
    fresh.restore_pending(unacked, records, loader.retry_records(world.store, group),
                          {})  # leases: see test_leases.py
    world.queue.groups[group.name] = fresh
    return fresh


def test_after_a_restart_unacked_deliveries_are_due_again_with_their_counts() -> None:
    world = World()
    world.publish(7)
    group = world.group()
    world.fetch(group, count=5)
    world.ack(group, ids=["m1", "m3"])
    world.nack(group, ["m4"], [], 0, T0)
    world.fetch(group, count=1)  # m4 again: delivery count 2, stored
    fresh = _restart(world, group)
    assert fresh.position == 6
    assert sorted(fresh.pending) == [2, 4, 5]
    assert {e.state for e in fresh.pending_view(10)} == {"due"}
    out = world.fetch(fresh, "c9", count=10)
    assert positions(out) == [2, 4, 5, 6, 7]
    assert counts(out) == [2, 3, 2, 1, 1]


def test_after_a_restart_unacked_messages_can_be_acked_by_id() -> None:
    world = World()
    world.publish(3)
    group = world.group()
    world.fetch(group)
    fresh = _restart(world, group)
    assert world.ack(fresh, ids=["m2"]) == (1, [])
    assert sorted(fresh.pending) == [1, 3]


def test_after_a_restart_a_deleted_unacked_message_counts_as_acked() -> None:
    world = World()
    world.publish(3)
    group = world.group()
    world.fetch(group)
    world.ack(group, ids=["m1"])
    world.delete_message(2)
    fresh = _restart(world, group)
    assert sorted(fresh.pending) == [3]
    assert fresh.acks.floor == 3


# --- many consumers, random -------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(30))
def test_a_message_is_never_held_by_two_consumers_at_once(seed: int) -> None:
    """Random fetch/ack/nack/timeout/leave: every delivery goes to a message nobody holds."""
    rng = random.Random(seed)
    world = World(QueueConfig(ack_timeout=1.0))
    group = world.group()
    consumers = ["c1", "c2", "c3"]
    held: dict[int, tuple[str, int]] = {}  # position -> (consumer, deadline)
    acked: set[int] = set()
    now = T0
    for _ in range(300):
        now += rng.randint(0, 400)
        for pos, (_, deadline) in list(held.items()):
            if deadline <= now:
                del held[pos]
        world.expire(group, now)
        roll = rng.random()
        consumer = rng.choice(consumers)
        if roll < 0.15:
            world.publish(rng.randint(1, 4))
        elif roll < 0.55:
            out = world.fetch(group, consumer, count=rng.randint(1, 5), now_ms=now,
                              max_pending=8)
            assert len(set(positions(out))) == len(out)
            for pos, _, _ in out:
                assert pos not in held and pos not in acked
                held[pos] = (consumer, now + 1_000)
        elif roll < 0.8:
            mine = [p for p, (c, _) in held.items() if c == consumer]
            chosen = rng.sample(mine, k=min(len(mine), rng.randint(1, 3)))
            assert world.ack(group, positions=chosen, now_ms=now) == (len(chosen), [])
            for pos in chosen:
                del held[pos]
                acked.add(pos)
        elif roll < 0.95:
            mine = [p for p, (c, _) in held.items() if c == consumer]
            chosen = rng.sample(mine, k=min(len(mine), 2))
            assert world.nack(group, [], chosen, rng.choice([0, 0, 300]), now) == (len(chosen), [])
            for pos in chosen:
                del held[pos]
        else:
            world.release(group, consumer, now)
            for pos in [p for p, (c, _) in held.items() if c == consumer]:
                del held[pos]
        assert set(group.pending) | acked >= set(held)
        assert len(group.pending) <= 8 + 5  # max_pending bounds new deliveries
    # Drain: everything published is eventually delivered and can be acked.
    for _ in range(200):
        now += 2_000
        world.expire(group, now)
        out = world.fetch(group, "drain", count=50, now_ms=now, max_pending=10_000)
        world.ack(group, positions=positions(out), now_ms=now)
        if not group.pending and group.position > world.queue.last:
            break
    assert group.pending == {}
    assert group.acks.floor == world.queue.last + 1


# --- leases and retries -------------------------------------------------------------------------


@pytest.mark.parametrize("positions", [[1, 2, 3, 4], [7], [1, 3, 4, 9, 10, 11], []])
def test_a_lease_record_holds_its_positions_as_runs(positions: list[int]) -> None:
    from shard.groups import decode_lease, encode_lease
    data = encode_lease(T0, "c1", positions)
    assert decode_lease(data) == (T0, "c1", positions)
    assert len(orjson.loads(data)) == 2 + 2 * len(
        [p for i, p in enumerate(positions) if i == 0 or positions[i - 1] != p - 1])


def test_retry_n_waits_initial_delay_times_factor_to_the_n_minus_1_capped() -> None:
    from gortms.models import RetryConfig
    from shard.groups import retry_delay_ms
    config = RetryConfig(max_retries=10, initial_delay=Duration(0.5), factor=3.0,
                         max_delay=Duration(10.0))
    assert [retry_delay_ms(config, n) for n in range(1, 6)] == [500, 1500, 4500, 10_000,
                                                                  10_000]


@pytest.mark.parametrize("seed", range(30))
def test_with_retries_extends_dead_letters_and_restarts_nothing_is_lost_or_held_twice(
        seed: int) -> None:
    """Random fetch/ack/nack/extend/timeout/restart with retries on (and a circuit): every
    delivery goes to a message nobody holds, and every message ends acked or dead-lettered."""
    from gortms.models import CircuitBreakerConfig, RetryConfig
    rng = random.Random(seed)
    world = World(QueueConfig(
        ack_timeout=1.0, retry_enabled=True,
        retry_config=RetryConfig(max_retries=2, initial_delay=Duration(0.2), factor=2.0,
                                 max_delay=Duration(1.0)),
        circuit_breaker_enabled=rng.random() < 0.5,
        circuit_breaker_config=CircuitBreakerConfig(minimum_requests=4, error_threshold=0.6,
                                                    success_threshold=1,
                                                    open_timeout=Duration(0.5))))
    group = world.group()
    held: dict[int, tuple[str, int]] = {}  # position -> (consumer, lease deadline)
    acked: set[int] = set()
    dead: set[int] = set()
    now = T0

    def take_dead() -> None:  # what shard/deadletters.py does, minus the copy
        turn = Turn(world.store)
        for pos, _ in group.dead:
            group.settle(pos, turn)
            dead.add(pos)
        group.dead.clear()
        turn.commit()

    for _ in range(300):
        now += rng.randint(0, 400)
        for pos, (_, deadline) in list(held.items()):
            if deadline <= now:
                del held[pos]
        world.expire(group, now)
        take_dead()
        roll = rng.random()
        consumer = rng.choice(["c1", "c2", "c3"])
        mine = [p for p, (c, _) in held.items() if c == consumer]
        if roll < 0.15:
            world.publish(rng.randint(1, 4))
        elif roll < 0.5:
            out = world.fetch(group, consumer, count=rng.randint(1, 5), now_ms=now,
                              max_pending=8)
            for pos, _, _ in out:
                assert pos not in held and pos not in acked and pos not in dead
                held[pos] = (consumer, now + 1_000)
        elif roll < 0.7 and mine:
            chosen = rng.sample(mine, k=min(len(mine), rng.randint(1, 3)))
            assert world.ack(group, positions=chosen, now_ms=now) == (len(chosen), [])
            for pos in chosen:
                del held[pos]
                acked.add(pos)
        elif roll < 0.85 and mine:
            chosen = rng.sample(mine, k=min(len(mine), 2))
            world.nack(group, [], chosen, rng.choice([None, None, 0, 300]), now)
            take_dead()
            for pos in chosen:
                del held[pos]
        elif roll < 0.93 and mine:
            turn = Turn(world.store)
            extended, unknown, deadline = group.extend([], mine, 2_000, now, turn)
            turn.commit()
            assert (extended, unknown) == (len(mine), [])
            for pos in mine:
                held[pos] = (consumer, deadline)
        elif roll < 0.97:
            fresh = _restart_with_leases(world, group, now)
            assert {p: e.consumer for p, e in fresh.pending.items() if p in held} == {
                p: c for p, (c, _) in held.items()}  # leases survive, with their consumer
            group = fresh
        assert set(group.pending) | acked | dead >= set(held)
    # Drain: everything published ends acked or dead, and nothing twice.
    for _ in range(400):
        now += 2_000
        world.expire(group, now)
        take_dead()
        out = world.fetch(group, "drain", count=50, now_ms=now, max_pending=10_000)
        assert not set(positions(out)) & (acked | dead)
        world.ack(group, positions=positions(out), now_ms=now)
        acked |= set(positions(out))
        if not group.pending and group.position > world.queue.last:
            break
    assert group.pending == {}
    assert acked | dead == set(range(1, world.queue.last + 1))
    assert not acked & dead


def _restart_with_leases(world: World, group: GroupState, now_ms: int) -> GroupState:
    """A restart, as shard/loader.py does it: cursor, ack deltas, retries and leases."""
    turn = Turn(world.store)
    group.write_record(turn)
    turn.commit()
    fresh = GroupState(world.queue, group.spec, T0, world.queue.first)
    fresh.restore_cursor(world.store.get(cursor_key(QID, group.name)) or b"")
    fresh.restore_acks(loader.read_ack_deltas(world.store, fresh))
    turn = Turn(world.store)
    loader.restore_pending(world.store, fresh, turn)
    turn.commit()
    world.queue.groups[group.name] = fresh
    return fresh
