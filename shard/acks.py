"""AckSet: which positions of a queue a consumer group has acknowledged, in O(gaps) space.

Everything below `floor` is acknowledged; above it, acknowledged positions are kept as sorted,
disjoint, half-open ranges. Acks mostly arrive in order, so the ranges stay few and the floor
climbs. What was added since the owner last asked is kept too (`take_journal`), so that the
owner can persist a commit's acknowledgements without writing the whole set again (the set
grows with every message waiting for a retry: see shard/groups.py, ack deltas).
"""

from __future__ import annotations

import bisect
from typing import Iterator


class AckSet:
    __slots__ = ("floor", "_starts", "_ends", "journal")

    def __init__(self, floor: int = 1, ranges: list[int] | None = None) -> None:
        self.floor = floor
        flat = ranges or []  # as written by ranges(): sorted, disjoint
        # Ranges wholly below the floor are dropped, one that straddles it moves the floor.
        starts, ends = flat[0::2], flat[1::2]
        while starts and starts[0] <= floor:
            self.floor = floor = max(floor, ends[0])
            del starts[0], ends[0]
        self._starts: list[int] = starts
        self._ends: list[int] = ends
        self.journal: list[int] = []  # [begin, end, ...] added since take_journal()

    def take_journal(self) -> list[int]:
        """What was acknowledged since the last call, as flat half-open runs."""
        journal, self.journal = self.journal, []
        return journal

    def __contains__(self, pos: int) -> bool:
        if pos < self.floor:
            return True
        i = bisect.bisect_right(self._starts, pos) - 1
        return i >= 0 and pos < self._ends[i]

    def add(self, pos: int) -> bool:
        """Mark `pos` acknowledged; False if it already was."""
        floor = self.floor
        if pos < floor:
            return False
        starts, ends = self._starts, self._ends
        if pos == floor:  # the floor itself is never acknowledged (it would have moved)
            self._journal(pos)
            self.floor = floor = pos + 1
            if starts and starts[0] == floor:
                self.floor = ends[0]
                del starts[0], ends[0]
            return True
        # Above the floor. While a retry holds the floor back, acks keep arriving in order
        # just past the last range: extend it without a search.
        if not starts or pos > ends[-1]:
            starts.append(pos)
            ends.append(pos + 1)
        elif pos == ends[-1]:
            ends[-1] = pos + 1
        else:
            i = bisect.bisect_right(starts, pos)
            if i > 0 and pos < ends[i - 1]:
                return False
            joins_left = i > 0 and ends[i - 1] == pos
            joins_right = i < len(starts) and starts[i] == pos + 1
            if joins_left and joins_right:
                ends[i - 1] = ends[i]
                del starts[i], ends[i]
            elif joins_left:
                ends[i - 1] = pos + 1
            elif joins_right:
                starts[i] = pos
            else:
                starts.insert(i, pos)
                ends.insert(i, pos + 1)
        self._journal(pos)
        return True

    def _journal(self, pos: int) -> None:
        journal = self.journal
        if journal and journal[-1] == pos:
            journal[-1] = pos + 1
        else:
            journal += (pos, pos + 1)

    def add_all(self, positions: list[int]) -> None:
        """Mark every position in `positions` acknowledged (any order, repeats allowed): one
        step per run of consecutive positions, not per position."""
        if not positions:
            return
        ordered = sorted(positions)
        begin = end = ordered[0]
        for pos in ordered:
            if pos > end + 1:
                self.add_range(begin, end + 1)
                begin = pos
            end = pos
        self.add_range(begin, end + 1)

    def add_range(self, begin: int, end: int) -> None:
        """Mark every position in [begin, end) acknowledged (positions that no longer exist)."""
        if end <= self.floor or begin >= end:
            return
        if begin <= self.floor:
            self.advance(end)  # (which journals what it acknowledges)
            return
        journal = self.journal
        if journal and journal[-1] == begin:
            journal[-1] = end
        else:
            journal += (begin, end)
        i = bisect.bisect_left(self._ends, begin)  # first range that ends at or after begin
        j = bisect.bisect_right(self._starts, end)  # ranges before j start at or before end
        if i < j:
            begin = min(begin, self._starts[i])
            end = max(end, self._ends[j - 1])
        self._starts[i:j] = [begin]
        self._ends[i:j] = [end]

    def reset(self, floor: int) -> None:
        """Forget every ack: positions from `floor` on count as unacknowledged."""
        self.floor = floor
        self._starts.clear()
        self._ends.clear()
        self.journal = []  # the owner writes the whole (empty) set after a reset

    def advance(self, floor: int) -> None:
        """Acknowledge everything below `floor` (auto-ack groups, skipped positions)."""
        if floor <= self.floor:
            return
        self.journal += (self.floor, floor)
        self.floor = floor
        while self._starts and self._starts[0] <= self.floor:
            self.floor = max(self.floor, self._ends[0])
            del self._starts[0], self._ends[0]

    def gaps(self, end: int) -> Iterator[int]:
        """Unacknowledged positions from the floor up to (not including) `end`."""
        pos = self.floor
        for start, stop in zip(self._starts, self._ends):
            if start >= end:
                break
            yield from range(pos, start)
            pos = stop
        yield from range(pos, end)

    def ranges(self) -> list[int]:
        """Acked ranges above the floor, flattened: [start0, end0, start1, end1, ...]."""
        flat: list[int] = []
        for start, end in zip(self._starts, self._ends):
            flat += (start, end)
        return flat
