"""shard/chunks.py: a queue's messages as chunks of consecutive positions, on both stores."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from shard import chunks
from shard.memory import MemoryStore
from shard.rocks import RocksStore
from shard.store import message_prefix, pos_bytes, prefix_end

PREFIX = message_prefix(7)
END = prefix_end(PREFIX)


@pytest.fixture(params=["memory", "rocks"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    store = MemoryStore() if request.param == "memory" else RocksStore(str(tmp_path / "db"))
    yield store
    store.close()


def record(pos: int) -> bytes:
    return b"r%05d" % pos


def write(store: Any, runs: dict[int, list[bytes]]) -> None:
    """{first position: records} as chunks; a legacy single record for a list of one str."""
    batch = store.batch()
    for first, records in runs.items():
        batch.put(PREFIX + pos_bytes(first), chunks.encode(records))
    store.write(batch, sync=False)


def test_a_chunk_round_trips_with_holes_and_empty_records() -> None:
    records = [b"a", b"", b"ccc" * 1000, b"\xc1\x00", b""]
    value = chunks.encode(records)
    assert chunks.decode(value) == records
    assert chunks.count_of(value) == 5


def test_a_value_from_before_chunks_is_one_record() -> None:
    legacy = (1_700_000_000_000).to_bytes(8, "big") + b"\x00\x01m..."
    assert chunks.decode(legacy) == [legacy]
    assert chunks.count_of(legacy) == 1
    assert chunks.Chunk(7, legacy).record(7) == legacy and chunks.Chunk(7, legacy).end == 8


def test_one_record_read_alone_equals_it_read_with_the_others() -> None:
    # A redelivery reads its record's two offsets only; a read of many unpacks them all.
    records = [b"a", b"", b"ccc" * 1000, b"\xc1\x00", b"", b"z"]
    value = chunks.encode(records)
    alone = [chunks.Chunk(10, value).record(pos) for pos in range(10, 16)]
    assert alone == records == chunks.Chunk(10, value).records_between(10, 16)
    chunk = chunks.Chunk(10, value)
    assert chunk.records_between(12, 14) == records[2:4]
    assert [chunk.record(pos) for pos in range(10, 16)] == records  # with the offsets read


def test_split_bounds_records_and_bytes_and_keeps_order() -> None:
    many = [b"x"] * (chunks.CHUNK_RECORDS * 2 + 5)
    runs = list(chunks.split(many))
    assert [len(r) for _, r in runs] == [chunks.CHUNK_RECORDS, chunks.CHUNK_RECORDS, 5]
    assert [o for o, _ in runs] == [0, chunks.CHUNK_RECORDS, 2 * chunks.CHUNK_RECORDS]
    big = [b"y" * (chunks.CHUNK_BYTES // 2 + 1)] * 3
    assert [len(r) for _, r in chunks.split(big)] == [1, 1, 1]
    huge = [b"z" * (chunks.CHUNK_BYTES * 2)]
    assert [len(r) for _, r in chunks.split(huge)] == [1]  # one record never splits


def test_read_range_spans_chunks_gaps_and_holes(store: Any) -> None:
    write(store, {1: [record(1), record(2), b""], 4: [record(4)], 8: [record(8), record(9)]})
    got = chunks.read_range(store, PREFIX, 2, 10)
    assert got == [record(2), None, record(4), None, None, None, record(8), record(9)]
    assert chunks.read_range(store, PREFIX, 9, 12) == [record(9), None, None]
    assert chunks.read_range(store, PREFIX, 20, 22) == [None, None]


def test_read_range_reads_legacy_single_records(store: Any) -> None:
    batch = store.batch()
    for pos in (1, 2):
        batch.put(PREFIX + pos_bytes(pos), b"\x00" * 8 + record(pos))
    store.write(batch, sync=False)
    write(store, {3: [record(3)]})
    assert chunks.read_range(store, PREFIX, 1, 4) == [
        b"\x00" * 8 + record(1), b"\x00" * 8 + record(2), record(3)]


def test_read_positions_in_any_order(store: Any) -> None:
    write(store, {1: [record(p) for p in range(1, 6)], 6: [record(6), b""]})
    assert chunks.read_positions(store, PREFIX, [5, 1, 6, 7, 9, 3]) == [
        record(5), record(1), record(6), None, None, record(3)]


def test_bounds_and_first_at_or_after_skip_holes(store: Any) -> None:
    assert chunks.bounds(store, PREFIX, END) is None
    write(store, {3: [b"", b"", record(5), record(6)], 7: [record(7), b""]})
    assert chunks.bounds(store, PREFIX, END) == (5, 8)
    assert chunks.first_at_or_after(store, PREFIX, 6, END) == (6, record(6))
    assert chunks.first_at_or_after(store, PREFIX, 8, END) is None
    assert sorted(chunks.sizes(store, PREFIX, END)) == [len(record(5))] * 3


def test_punch_makes_holes_and_drops_emptied_chunks(store: Any) -> None:
    write(store, {1: [record(1), record(2)], 3: [record(3)]})
    rewrites = list(chunks.punch(store, PREFIX, [3, 2, 9, 2]))
    assert rewrites == [(PREFIX + pos_bytes(1), chunks.encode([record(1), b""]),
                         [len(record(2))]),
                        (PREFIX + pos_bytes(3), None, [len(record(3))])]
    assert list(chunks.punch(store, PREFIX, [9])) == []


class CountingStore:
    """A MemoryStore that counts chunk lookups."""

    def __init__(self) -> None:
        self.inner = MemoryStore()
        self.lookups = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def floor_scan(self, begin: bytes, key: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
        self.lookups += 1
        return self.inner.floor_scan(begin, key, end)


def test_a_chunk_cache_serves_consecutive_ranges_from_one_read() -> None:
    store = CountingStore()
    write(store, {1: [record(p) for p in range(1, 1001)], 1001: [record(1001), b""]})
    cache = chunks.ChunkCache()
    got = [chunks.read_range(store, PREFIX, p, p + 100, cache) for p in range(1, 1000, 100)]
    assert store.lookups == 1
    assert got == [[record(p) for p in range(b, b + 100)] for b in range(1, 1000, 100)]
    across = chunks.read_range(store, PREFIX, 950, 1003, cache)  # leaves the cached chunk
    assert across == [record(p) for p in range(950, 1002)] + [None]
    assert chunks.read_range(store, PREFIX, 1001, 1003, cache) == [record(1001), None]
    assert store.lookups == 2


def test_redeliveries_and_head_reads_keep_their_chunks_apart_in_the_cache() -> None:
    # Retries come from a chunk some way behind the head: reading them must not evict the
    # head's chunk (nor the head read theirs), so alternating reads cost one lookup each.
    store = CountingStore()
    write(store, {1: [record(p) for p in range(1, 101)], 101: [record(p) for p in range(101, 201)],
                  201: [record(201)]})
    cache = chunks.ChunkCache()
    for head in range(101, 200, 10):
        assert chunks.read_range(store, PREFIX, head, head + 10, cache) == [
            record(p) for p in range(head, head + 10)]
        assert chunks.read_positions(store, PREFIX, [head - 95, 3], cache) == [
            record(head - 95), record(3)]
    assert store.lookups == 2
    assert chunks.read_positions(store, PREFIX, [201], cache) == [record(201)]
    assert store.lookups == 3  # a third chunk evicts the one used longest ago (the head's)
    assert chunks.read_range(store, PREFIX, 1, 3, cache) == [record(1), record(2)]
    assert chunks.read_range(store, PREFIX, 150, 152, cache) == [record(150), record(151)]
    assert store.lookups == 4
    assert chunks.read_range(store, PREFIX, 3, 5, cache) == [record(3), record(4)]
    assert store.lookups == 4  # the chunk used last is kept, whichever was read first
    cache.forget()
    assert chunks.read_positions(store, PREFIX, [5], cache) == [record(5)]
    assert store.lookups == 5


def test_a_head_read_crossing_into_the_next_chunk_keeps_the_other_reads_chunk() -> None:
    # The head moves on from chunk 101 into 201, while retries read from chunk 1: the
    # crossing reads only chunk 201, and evicts the chunk left behind, not the retries'.
    store = CountingStore()
    write(store, {1: [record(p) for p in range(1, 101)], 101: [record(p) for p in range(101, 201)],
                  201: [record(p) for p in range(201, 301)]})
    cache = chunks.ChunkCache()
    assert chunks.read_range(store, PREFIX, 150, 160, cache) == [record(p) for p in range(150, 160)]
    assert chunks.read_positions(store, PREFIX, [7], cache) == [record(7)]
    assert store.lookups == 2
    assert chunks.read_range(store, PREFIX, 195, 205, cache) == [record(p) for p in range(195, 205)]
    assert store.lookups == 3
    assert chunks.read_positions(store, PREFIX, [9], cache) == [record(9)]
    assert chunks.read_range(store, PREFIX, 205, 210, cache) == [record(p) for p in range(205, 210)]
    assert store.lookups == 3


@pytest.mark.parametrize("seed", range(40))
def test_reads_through_the_cache_equal_reads_without_it(seed: int) -> None:
    # Random chunk layouts (gaps, holes), random reads of both kinds, and deletes that
    # rewrite chunks (the cache forgotten then, as QueueState.delete does): what the cached
    # reads give is always what the store holds.
    import random

    rng = random.Random(seed)
    store = MemoryStore()
    held: dict[int, bytes] = {}
    first = 1
    runs = {}
    while first < 400:
        size = rng.randint(1, 40)
        run = [b"" if rng.random() < 0.1 else record(p) for p in range(first, first + size)]
        runs[first] = run
        held.update({p: r for p, r in zip(range(first, first + size), run) if r})
        first += size + (rng.randint(1, 5) if rng.random() < 0.2 else 0)
    write(store, runs)
    cache = chunks.ChunkCache()

    def expected(pos: int) -> bytes | None:
        return held.get(pos)

    for _ in range(300):
        roll = rng.random()
        if roll < 0.45:
            begin = rng.randint(0, 420)
            end = begin + rng.randint(1, 60)
            assert chunks.read_range(store, PREFIX, begin, end, cache) == [
                expected(p) for p in range(begin, end)]
        elif roll < 0.9:
            positions = [rng.randint(0, 420) for _ in range(rng.randint(1, 6))]
            assert chunks.read_positions(store, PREFIX, positions, cache) == [
                expected(p) for p in positions]
        else:
            gone = [rng.randint(0, 420) for _ in range(rng.randint(1, 4))]
            batch = store.batch()
            for key, value, _ in chunks.punch(store, PREFIX, gone):
                if value is None:
                    batch.delete(key)
                else:
                    batch.put(key, value)
            store.write(batch, sync=False)
            for pos in gone:
                held.pop(pos, None)
            cache.forget()
        assert len(cache.chunks) <= chunks.ChunkCache.SLOTS


def test_the_queues_caches_share_one_budget_and_the_chunk_used_longest_ago_goes() -> None:
    store = CountingStore()
    write(store, {first: [record(p) for p in range(first, first + 100)]
                  for first in range(1, 601, 100)})
    size = len(store.get(PREFIX + pos_bytes(1))) + 8 * 100  # a chunk's share of the budget
    budget = chunks.ChunkBudget(3 * size)
    a, b = chunks.ChunkCache(budget), chunks.ChunkCache(budget)
    chunks.read_positions(store, PREFIX, [1], a)
    chunks.read_positions(store, PREFIX, [101], b)
    chunks.read_positions(store, PREFIX, [201], a)
    assert budget.bytes == 3 * size and store.lookups == 3
    chunks.read_positions(store, PREFIX, [5], a)  # used again: now the newest
    chunks.read_positions(store, PREFIX, [301], b)  # over the budget: b's chunk 101 goes
    assert budget.bytes == 3 * size and [c.first for c in b.chunks] == [301]
    assert [c.first for c in a.chunks] == [1, 201]
    assert chunks.read_positions(store, PREFIX, [150], b) == [record(150)]
    assert store.lookups == 5  # read again
    a.forget()
    b.forget()
    assert budget.bytes == 0 and not budget.held
