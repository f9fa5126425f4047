"""QueueState.truncate (deleting from the front, a bounded step at a time) and the cuts of
shard/retention.py, over a MemoryStore."""

from __future__ import annotations

from gortms.models import QueueConfig
from gortms.protocol import encode_message, ts_bytes
from shard.memory import MemoryStore
from shard.queues import QueueState
from shard.state import Limits, ShardState
from shard.turn import Turn
from tests.shard.test_groups import T0, World


def published(turns: int, per_turn: int) -> World:
    """`turns` commits of `per_turn` messages: one chunk each."""
    world = World()
    for _ in range(turns):
        world.publish(per_turn)
    return world


def truncate(world: World, cut: int, max_chunks: int = 1 << 30) -> tuple[int, int]:
    turn = Turn(world.store)
    out = world.queue.truncate(world.store, turn, world.recent, cut, max_chunks)
    turn.commit()
    return out


def test_truncate_deletes_whole_chunks_and_rewrites_the_one_the_cut_falls_in() -> None:
    world = published(3, 4)  # chunks at 1, 5, 9
    queue = world.queue
    assert truncate(world, 7) == (6, 7)
    kept = queue.read(world.store, 7, 13)
    assert all(kept)
    assert (queue.first, queue.count, queue.bytes) == (7, 6, sum(map(len, kept)))
    assert queue.read(world.store, 1, 7) == [None] * 6
    assert len(list(world.store.scan(b"M", b"N"))) == 2  # chunk 1 gone, chunk 5 rewritten


def test_truncate_takes_a_bounded_step_and_goes_on_from_there() -> None:
    world = published(5, 2)  # chunks at 1, 3, 5, 7, 9
    assert truncate(world, 10, max_chunks=2) == (4, 5)
    assert truncate(world, 10, max_chunks=2) == (4, 9)
    assert truncate(world, 10, max_chunks=2) == (1, 10)
    assert world.queue.count == 1


def test_truncate_never_touches_what_is_not_durable_yet() -> None:
    world = published(1, 3)
    turn = Turn(world.store)
    world.queue.append(turn, world.recent, b"\0" * 8, [b"x"])  # staged, not committed
    assert world.queue.truncate(world.store, turn, world.recent, 10)[1] == 4
    assert world.queue.durable == 3


def test_a_group_loses_what_was_cut_from_its_pending_list_and_counts_it_expired() -> None:
    world = published(1, 5)
    group = world.group()
    world.fetch(group, count=2, now_ms=T0)
    truncate(world, 4)
    turn = Turn(world.store)
    group.forget_before(world.queue.first, turn, expired=True)
    turn.commit()
    assert (sorted(group.pending), group.position, group.expired) == ([], 4, 3)
    assert [pos for pos, _, _ in world.fetch(group, count=10)] == [4, 5]


# --- finding a position by time: a binary search over the stamps, not a scan ---------------------


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.seeks = 0

    def floor_scan(self, begin: bytes, key: bytes, end: bytes):  # type: ignore[no-untyped-def]
        self.seeks += 1
        return super().floor_scan(begin, key, end)


def test_finding_a_position_by_time_seeks_a_logarithmic_number_of_chunks() -> None:
    store = CountingStore()
    state = ShardState(0, store, Limits())
    queue = QueueState(1, "d", "q", 1, QueueConfig(), T0)
    state.add_queue(queue, loaded=True)
    for i in range(1024):  # a chunk a second
        turn = Turn(store)
        queue.append(turn, state.recent, ts_bytes(T0 + i * 1000),
                     [encode_message(f"m{i}", b"{}", b"{}")])
        turn.commit()
    store.seeks = 0
    assert queue.position_at(store, T0 + 500_000) == 501
    assert store.seeks <= 2 * 11  # log2(1024) steps, a seek or two each
    store.seeks = 0
    assert queue.position_at(store, T0) == 1  # nothing older: one seek
    assert store.seeks == 1
