"""shard/acks.py: AckSet checked against a plain Python set, with random operations."""

from __future__ import annotations

import random

import pytest

from shard.acks import AckSet

WINDOW = 80  # positions 1..WINDOW, small enough that ranges touch and merge often


class Model:
    """Acknowledged positions as a set: everything below `base` plus `acked`."""

    def __init__(self, base: int = 1) -> None:
        self.base = base
        self.acked: set[int] = set()

    def __contains__(self, pos: int) -> bool:
        return pos < self.base or pos in self.acked

    def add(self, pos: int) -> bool:
        fresh = pos not in self
        self.acked.add(pos)
        return fresh

    def add_range(self, begin: int, end: int) -> None:
        self.acked.update(range(begin, end))

    def advance(self, floor: int) -> None:
        self.acked.update(range(self.base, floor))

    def reset(self, floor: int) -> None:
        self.base, self.acked = floor, set()

    def floor(self) -> int:
        pos = self.base
        while pos in self.acked:
            pos += 1
        return pos


def _check(acks: AckSet, model: Model) -> None:
    floor = model.floor()
    assert acks.floor == floor
    for pos in range(-1, WINDOW + 3):
        assert (pos in acks) == (pos in model), pos
    flat = acks.ranges()
    assert len(flat) % 2 == 0
    pairs = list(zip(flat[0::2], flat[1::2]))
    for start, end in pairs:
        assert floor < start < end  # above the floor, never touching it, non-empty
    for (_, end), (start, _) in zip(pairs, pairs[1:]):
        assert end < start  # sorted, disjoint and not adjacent (adjacent ranges merge)
    expected = {p for start, end in pairs for p in range(start, end)}
    assert expected == {p for p in model.acked if p > floor}
    for end in (floor, floor + 1, WINDOW // 2, WINDOW + 2):
        assert list(acks.gaps(end)) == [p for p in range(floor, end) if p not in model]
    copy = AckSet(acks.floor, acks.ranges())
    assert copy.ranges() == flat and copy.floor == floor
    assert all((p in copy) == (p in model) for p in range(0, WINDOW + 3))


def _random_walk(seed: int, steps: int = 250) -> None:
    rng = random.Random(seed)
    base = rng.choice([1, 1, 5, 20])
    acks, model = AckSet(base), Model(base)
    replica = AckSet(base)  # built from the journal alone, as a restart reads the deltas
    for _ in range(steps):
        roll = rng.random()
        if roll < 0.15:
            # A batch acked at once: runs with gaps, in any order, near the floor or not.
            start = rng.choice([acks.floor, rng.randint(1, WINDOW)])
            batch = [p for p in range(start, start + rng.randint(1, 15)) if rng.random() < 0.8]
            rng.shuffle(batch)
            acks.add_all(batch)
            for pos in batch:
                model.add(pos)
        elif roll < 0.55:
            # Mostly near the floor, as acks arrive mostly in order.
            pos = rng.choice([acks.floor, acks.floor + rng.randint(0, 6), rng.randint(1, WINDOW)])
            assert acks.add(pos) == model.add(pos)
        elif roll < 0.8:
            begin = rng.randint(0, WINDOW)
            end = begin + rng.randint(-2, 12)
            acks.add_range(begin, end)
            model.add_range(begin, end)
        elif roll < 0.95:
            floor = rng.randint(0, WINDOW)
            acks.advance(floor)
            model.advance(floor)
        else:
            floor = rng.randint(1, WINDOW)
            acks.reset(floor)
            model.reset(floor)
            replica = AckSet(floor)
        journal = acks.take_journal()
        for i in range(0, len(journal), 2):
            replica.add_range(journal[i], journal[i + 1])
        replica.take_journal()
        assert (replica.floor, replica.ranges()) == (acks.floor, acks.ranges())
        _check(acks, model)


@pytest.mark.parametrize("seed", range(200))
def test_ack_set_behaves_like_a_set_of_positions(seed: int) -> None:
    _random_walk(seed)


@pytest.mark.parametrize("seed", range(50))
def test_ack_set_survives_a_round_trip_through_its_record_at_any_point(seed: int) -> None:
    rng = random.Random(1000 + seed)
    acks, model = AckSet(), Model()
    for _ in range(120):
        pos = rng.randint(1, WINDOW)
        acks.add(pos)
        model.add(pos)
        if rng.random() < 0.2:
            acks = AckSet(acks.floor, acks.ranges())
        _check(acks, model)


def test_in_order_acks_only_move_the_floor() -> None:
    acks = AckSet()
    for pos in range(1, 101):
        assert acks.add(pos) is True
    assert (acks.floor, acks.ranges()) == (101, [])


def test_acking_the_gap_below_a_range_swallows_the_range() -> None:
    acks = AckSet()
    for pos in (2, 3, 5):
        acks.add(pos)
    assert (acks.floor, acks.ranges()) == (1, [2, 4, 5, 6])
    acks.add(1)
    assert (acks.floor, acks.ranges()) == (4, [5, 6])
    acks.add(4)
    assert (acks.floor, acks.ranges()) == (6, [])


def test_acking_twice_reports_the_repeat() -> None:
    acks = AckSet()
    assert acks.add(3) is True
    assert acks.add(3) is False
    assert acks.add(1) is True
    assert acks.add(1) is False


def test_add_range_bridges_ranges_and_the_floor() -> None:
    acks = AckSet()
    acks.add(3)
    acks.add(9)
    acks.add_range(4, 9)
    assert (acks.floor, acks.ranges()) == (1, [3, 10])
    acks.add_range(1, 3)
    assert (acks.floor, acks.ranges()) == (10, [])


def test_gaps_lists_unacked_positions_below_the_end() -> None:
    acks = AckSet(3, [5, 7, 9, 10])
    assert list(acks.gaps(12)) == [3, 4, 7, 8, 10, 11]
    assert list(acks.gaps(8)) == [3, 4, 7]
    assert list(acks.gaps(3)) == []


def test_reset_forgets_every_ack_from_the_new_floor() -> None:
    acks = AckSet(10, [12, 14])
    acks.reset(4)
    assert (acks.floor, acks.ranges()) == (4, [])
    assert 3 in acks and 4 not in acks and 12 not in acks
