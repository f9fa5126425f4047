"""How a queue's messages lie in RocksDB: runs of consecutive positions, one key per run.

A publish of a thousand messages is one key and one value, not a thousand: RocksDB's cost is
per key (a memtable insert, an index entry, compaction work), and a shard's is per Python
call. Every record a turn appends to a queue goes into one chunk (split past CHUNK_RECORDS or
CHUNK_BYTES), under the key `M<qid><first position>`:

    0xC1 | count (uint32) | end offset of each record (uint32 each) | the records end to end

A record of length 0 is a hole (a deleted message). A value that does not start with 0xC1 is
a single record, as releases before chunks stored them (a record starts with its timestamp,
whose first byte is 0 for the next few thousand years), so old data dirs read as they are.
Reads find the chunk that holds a position with a floor seek (the greatest key at or below).
"""

from __future__ import annotations

import bisect
import struct
from collections import OrderedDict
from itertools import accumulate
from typing import Iterator

from shard.store import Store, pos_bytes

MAGIC = 0xC1
CHUNK_RECORDS = 4096
CHUNK_BYTES = 256 * 1024
_HEAD = 5  # magic and count
_OFFSET = struct.Struct(">I")


def encode(records: list[bytes]) -> bytes:
    ends = list(accumulate(map(len, records)))  # in C: no Python step per record
    return b"%c%s%s%s" % (MAGIC, len(records).to_bytes(4, "big"),
                          struct.pack(">%dI" % len(ends), *ends), b"".join(records))


class Chunk:
    """One stored chunk; records sliced out as they are asked for. The offsets are read all
    at once only for a read of many records (`records_between`): a redelivery takes one or
    two records out of thousands, and reads just their two offsets."""

    __slots__ = ("first", "value", "count", "base", "_ends")

    def __init__(self, first: int, value: bytes) -> None:
        self.first = first
        self.value = value
        if value and value[0] == MAGIC:
            self.count = int.from_bytes(value[1:_HEAD], "big")
            self.base = _HEAD + 4 * self.count
        else:  # one record, from before chunks
            self.count = 1
            self.base = 0
        self._ends: tuple[int, ...] | None = None

    @property
    def ends(self) -> tuple[int, ...]:
        """0, then where each record ends (from `base`)."""
        if self._ends is None:
            self._ends = (0, *struct.unpack_from(">%dI" % self.count, self.value, _HEAD)) \
                if self.base else (0, len(self.value))
        return self._ends

    @property
    def end(self) -> int:
        """The position after its last."""
        return self.first + self.count

    def record(self, pos: int) -> bytes:
        """The record at `pos` (b"" for a hole); `pos` must be in the chunk."""
        i = pos - self.first
        ends = self._ends
        if ends is not None:
            return self.value[self.base + ends[i]:self.base + ends[i + 1]]
        if not self.base:
            return self.value
        value = self.value
        stop = _OFFSET.unpack_from(value, _HEAD + 4 * i)[0]
        start = _OFFSET.unpack_from(value, _HEAD + 4 * i - 4)[0] if i else 0
        return value[self.base + start:self.base + stop]

    def records_between(self, begin: int, end: int) -> list[bytes]:
        """The records of positions [begin, end), all in the chunk."""
        ends, base, value = self.ends, self.base, self.value
        first = self.first
        return [value[base + ends[i]:base + ends[i + 1]] for i in range(begin - first, end - first)]

    def records(self) -> list[bytes]:
        return self.records_between(self.first, self.end)


class ChunkBudget:
    """The memory every queue's ChunkCache of this process (a shard) may hold together: past
    `limit` bytes, the chunk used longest ago, whichever queue's, goes first. Without it the
    caches would hold 2 x CHUNK_BYTES for every queue read from far back at once."""

    __slots__ = ("limit", "bytes", "held")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.bytes = 0
        self.held: OrderedDict[int, tuple[ChunkCache, Chunk, int]] = OrderedDict()

    def admit(self, cache: ChunkCache, chunk: Chunk) -> None:
        size = len(chunk.value) + 8 * chunk.count  # the value, and its offsets once unpacked
        self.held[id(chunk)] = (cache, chunk, size)
        self.bytes += size
        while self.bytes > self.limit and len(self.held) > 1:
            _, (owner, old, old_size) = self.held.popitem(last=False)
            self.bytes -= old_size
            if old in owner.chunks:
                owner.chunks.remove(old)

    def touch(self, chunk: Chunk) -> None:
        if id(chunk) in self.held:
            self.held.move_to_end(id(chunk))

    def release(self, chunk: Chunk) -> None:
        entry = self.held.pop(id(chunk), None)
        if entry is not None:
            self.bytes -= entry[2]


CHUNK_CACHE_BYTES = 32 * 1024 * 1024
BUDGET = ChunkBudget(CHUNK_CACHE_BYTES)  # a shard is a process: this is the shard's


class ChunkCache:
    """The chunks a queue read last, outside its tail (shard/recent.py): consecutive fetches
    at the head of a queue (a group replaying, or far behind) slice one chunk instead of
    reading it again each time, and so do the redeliveries of retries, which come from a few
    chunks some way behind the head. Two slots, the one used last first, so the two kinds of
    read do not evict each other; all queues' caches share one ChunkBudget (32 MiB).
    A chunk's value never changes but by QueueState.delete and truncate, which `forget`."""

    SLOTS = 2
    __slots__ = ("chunks", "budget")

    def __init__(self, budget: ChunkBudget = BUDGET) -> None:
        self.chunks: list[Chunk] = []
        self.budget = budget

    def covering(self, begin: int, end: int) -> Chunk | None:
        held = self.chunks
        for i, chunk in enumerate(held):
            if chunk.first <= begin and end <= chunk.end:
                if i:  # the one used last goes first: the other is evicted next
                    held.insert(0, held.pop(i))
                self.budget.touch(chunk)
                return chunk
        return None

    def add(self, chunk: Chunk) -> None:
        held = self.chunks
        held.insert(0, chunk)
        if len(held) > self.SLOTS:
            self.budget.release(held.pop())
        self.budget.admit(self, chunk)

    def retire(self, chunk: Chunk) -> None:
        """`chunk` is read to its end: the first to go."""
        held = self.chunks
        held.remove(chunk)
        held.append(chunk)

    def forget(self) -> None:
        for chunk in self.chunks:
            self.budget.release(chunk)
        self.chunks = []


def decode(value: bytes) -> list[bytes]:
    """The records of a chunk (b"" for a hole), or the one record of a value before chunks."""
    return Chunk(0, value).records()


def count_of(value: bytes) -> int:
    return int.from_bytes(value[1:_HEAD], "big") if value and value[0] == MAGIC else 1



def split(records: list[bytes]) -> Iterator[tuple[int, list[bytes]]]:
    """(offset, records) runs of at most CHUNK_RECORDS records and CHUNK_BYTES (a single
    larger record alone), found with a bisect over running sizes, not a step per record."""
    ends = list(accumulate(map(len, records)))
    start = 0
    while start < len(records):
        base = ends[start - 1] if start else 0
        stop = bisect.bisect_right(ends, base + CHUNK_BYTES, start,
                                   min(len(ends), start + CHUNK_RECORDS))
        stop = max(stop, start + 1)
        yield start, records[start:stop]
        start = stop


def position_of(key: bytes) -> int:
    return int.from_bytes(key[-8:], "big")


# --- reading ------------------------------------------------------------------------------------


def read_range(store: Store, prefix: bytes, begin: int, end: int,
               cache: ChunkCache | None = None) -> list[bytes | None]:
    """Records of positions [begin, end): None where there is none (a hole, or nothing)."""
    if cache is not None:
        held = cache.covering(begin, begin + 1)
        if held is not None:
            if end <= held.end:
                return [record or None for record in held.records_between(begin, end)]
            # A read crossing from a cached chunk into the next: only the rest is read, and
            # the chunk left behind is the one to evict (not the other kind of read's).
            cache.retire(held)
            return [record or None for record in held.records_between(begin, held.end)] + \
                read_range(store, prefix, held.end, end, cache)
    out: list[bytes | None] = [None] * (end - begin)
    chunk = None
    for key, value in store.floor_scan(prefix, prefix + pos_bytes(begin),
                                       prefix + pos_bytes(end)):
        chunk = Chunk(position_of(key), value)
        lo, hi = max(begin, chunk.first), min(end, chunk.end)
        if lo < hi:
            out[lo - begin:hi - begin] = [r or None for r in chunk.records_between(lo, hi)]
    if cache is not None and chunk is not None:
        cache.add(chunk)  # the last one: where the next read at the head goes on
    return out


def read_positions(store: Store, prefix: bytes, positions: list[int],
                   cache: ChunkCache | None = None) -> list[bytes | None]:
    """Records of scattered positions (ascending or not), each chunk read once and only the
    records asked for sliced out of it (redeliveries pick one or two from chunks of
    thousands)."""
    out: list[bytes | None] = []
    held: Chunk | None = None  # the chunk read last
    for pos in positions:
        if held is None or not held.first <= pos < held.end:
            held = cache.covering(pos, pos + 1) if cache is not None else None
        if held is None:
            found = next(store.floor_scan(prefix, prefix + pos_bytes(pos),
                                          prefix + pos_bytes(pos + 1)), None)
            if found is None:
                out.append(None)
                continue
            held = Chunk(position_of(found[0]), found[1])
            if cache is not None and held.first <= pos < held.end:
                cache.add(held)
        out.append(held.record(pos) or None if held.first <= pos < held.end else None)
    return out


def first_at_or_after(store: Store, prefix: bytes, pos: int, end: bytes
                      ) -> tuple[int, bytes] | None:
    """The first stored record at or after `pos` (with its position), or None."""
    for key, value in store.floor_scan(prefix, prefix + pos_bytes(pos), end):
        first = position_of(key)
        for i, record in enumerate(decode(value)):
            if first + i >= pos and record:
                return first + i, record
    return None


def bounds(store: Store, prefix: bytes, end: bytes) -> tuple[int, int] | None:
    """(first stored record's position, last position of the last chunk), or None."""
    first = first_at_or_after(store, prefix, 0, end)
    last_key = store.last_key(prefix, end)
    if first is None or last_key is None:
        return None
    return first[0], position_of(last_key) + count_of(store.get(last_key) or b"") - 1


def sizes(store: Store, prefix: bytes, end: bytes) -> Iterator[int]:
    """The size of every stored record (holes left out)."""
    for _, value in store.scan(prefix, end):
        for record in decode(value):
            if record:
                yield len(record)


def punch(store: Store, prefix: bytes, positions: list[int]
          ) -> Iterator[tuple[bytes, bytes | None, list[int]]]:
    """Rewrites that make `positions` holes: (chunk key, its new value or None when nothing
    is left in it, the sizes of the records removed)."""
    wanted = sorted(set(positions))
    i = 0
    while i < len(wanted):
        found = next(store.floor_scan(prefix, prefix + pos_bytes(wanted[i]),
                                      prefix + pos_bytes(wanted[i] + 1)), None)
        if found is None:
            i += 1
            continue
        key, value = found
        first = position_of(key)
        records = decode(value)
        if not first <= wanted[i] < first + len(records):
            i += 1  # in no chunk
            continue
        removed = []
        while i < len(wanted) and wanted[i] < first + len(records):
            index = wanted[i] - first
            if index >= 0 and records[index]:
                removed.append(len(records[index]))
                records[index] = b""
            i += 1
        if removed:
            yield key, encode(records) if any(records) else None, removed
