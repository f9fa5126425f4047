"""Recent: the newest records of each queue, kept in memory so fetches near the end of a queue
(consumers keeping up with producers, the common case) read them without touching RocksDB.

Each queue has a `Tail`: the records of a run of consecutive positions ending at the queue's
last, as the stamped bytes that were written (no copy). The shard's tails share one budget
of bytes (`storage.recentCacheBytes`); past it, the oldest records of the queue that grows
are dropped first, then those of the other queues. A record deleted from the store must be
`discard`ed from its tail too. Fetches ask the tail first and RocksDB for what it lacks.
"""

from __future__ import annotations

# What a cached record costs beyond its bytes: the bytes object's header and a list slot.
RECORD_OVERHEAD = 41


class Tail:
    __slots__ = ("first", "records", "bytes")

    def __init__(self) -> None:
        self.first = 1  # position of records[0]
        self.records: list[bytes | None] = []
        self.bytes = 0

    @property
    def end(self) -> int:
        """The position after the last one held."""
        return self.first + len(self.records)

    def extend(self, first: int, records: list[bytes]) -> int:
        """Append records stored at `first`, `first + 1`, ...; the change in bytes held."""
        before = self.bytes
        if first != self.end:  # not contiguous with what is held: start again from here
            self.records = []
            self.bytes = 0
            self.first = first
        self.records.extend(records)
        self.bytes += sum(map(len, records)) + RECORD_OVERHEAD * len(records)
        return self.bytes - before

    def slice(self, begin: int, end: int) -> list[bytes | None] | None:
        """The records of positions [begin, end) if all are held (None: not all are)."""
        if begin < self.first or end > self.end:
            return None
        return self.records[begin - self.first:end - self.first]

    def get(self, pos: int) -> bytes | None:
        if self.first <= pos < self.end:
            return self.records[pos - self.first]
        return None

    def discard(self, pos: int) -> int:
        """Forget the record at `pos` (deleted); the bytes freed."""
        record = self.get(pos)
        if record is None:
            return 0
        self.records[pos - self.first] = None
        freed = len(record)
        self.bytes -= freed
        return freed

    def drop_before(self, pos: int) -> int:
        """Forget every record before `pos` (deleted from the front); the bytes freed."""
        count = min(max(0, pos - self.first), len(self.records))
        if not count:
            return 0
        freed = sum(map(len, filter(None, self.records[:count]))) + RECORD_OVERHEAD * count
        del self.records[:count]
        self.first += count
        self.bytes -= freed
        return freed

    def trim(self, keep_bytes: int) -> int:
        """Drop the oldest records until at most `keep_bytes` are held; the bytes freed.

        Sizes are summed a run at a time (in C): one Python step per record was a tenth of
        a shard's time under batch publishing."""
        records = self.records
        excess = self.bytes - keep_bytes
        dropped = freed = 0
        while excess > freed and dropped < len(records):
            average = max(1, self.bytes // len(records))
            step = max(1, min(len(records) - dropped, -(-(excess - freed) // average)))
            run = records[dropped:dropped + step]
            freed += sum(map(len, filter(None, run))) + RECORD_OVERHEAD * len(run)
            dropped += step
        if dropped:
            del records[:dropped]
            self.first += dropped
            self.bytes -= freed
        return freed


class Recent:
    """The shard's tails and their shared budget."""

    __slots__ = ("budget", "bytes", "tails")

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.bytes = 0
        self.tails: dict[int, Tail] = {}  # by queue id

    def tail(self, qid: int) -> Tail:
        tail = self.tails.get(qid)
        if tail is None:
            tail = self.tails[qid] = Tail()
        return tail

    def add(self, qid: int, first: int, records: list[bytes]) -> None:
        if self.budget <= 0:
            return
        tail = self.tail(qid)
        self.bytes += tail.extend(first, records)
        if self.bytes > self.budget:
            self._shrink(tail)

    def _shrink(self, growing: Tail) -> None:
        # The growing queue gives first, down to a fair share of the budget; then the others.
        # An eighth more than needed goes each time, so that trims are few and large.
        over = self.bytes - self.budget + self.budget // 8
        share = self.budget // len(self.tails)
        self.bytes -= growing.trim(max(share, growing.bytes - over))
        for tail in self.tails.values():
            if self.bytes <= self.budget:
                break
            if tail is not growing:
                self.bytes -= tail.trim(max(0, tail.bytes - (self.bytes - self.budget)))
        if self.bytes > self.budget:
            self.bytes -= growing.trim(max(0, growing.bytes - (self.bytes - self.budget)))

    def discard(self, qid: int, pos: int) -> None:
        tail = self.tails.get(qid)
        if tail is not None:
            self.bytes -= tail.discard(pos)

    def drop_before(self, qid: int, pos: int) -> None:
        tail = self.tails.get(qid)
        if tail is not None:
            self.bytes -= tail.drop_before(pos)

    def drop(self, qid: int) -> None:
        tail = self.tails.pop(qid, None)
        if tail is not None:
            self.bytes -= tail.bytes
