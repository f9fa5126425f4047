"""AckSet: which positions of a queue a consumer group has acknowledged, in O(gaps) space.

Everything below `floor` is acknowledged; above it, acknowledged positions are kept as sorted,
disjoint, half-open ranges. Acks mostly arrive in order, so the ranges stay few and the floor
climbs; the whole set is persisted as one small record per group.
"""

from __future__ import annotations

import bisect
from typing import Iterator


class AckSet:
    __slots__ = ("floor", "_starts", "_ends")

    def __init__(self, floor: int = 1, ranges: list[int] | None = None) -> None:
        self.floor = floor
        flat = ranges or []  # as written by ranges(): sorted, disjoint, above the floor
        self._starts: list[int] = flat[0::2]
        self._ends: list[int] = flat[1::2]

    def __contains__(self, pos: int) -> bool:
        if pos < self.floor:
            return True
        i = bisect.bisect_right(self._starts, pos) - 1
        return i >= 0 and pos < self._ends[i]

    def add(self, pos: int) -> bool:
        """Mark `pos` acknowledged; False if it already was."""
        if pos in self:
            return False
        if pos == self.floor:
            self.floor += 1
            if self._starts and self._starts[0] == self.floor:
                self.floor = self._ends[0]
                del self._starts[0], self._ends[0]
            return True
        i = bisect.bisect_right(self._starts, pos)
        joins_left = i > 0 and self._ends[i - 1] == pos
        joins_right = i < len(self._starts) and self._starts[i] == pos + 1
        if joins_left and joins_right:
            self._ends[i - 1] = self._ends[i]
            del self._starts[i], self._ends[i]
        elif joins_left:
            self._ends[i - 1] = pos + 1
        elif joins_right:
            self._starts[i] = pos
        else:
            self._starts.insert(i, pos)
            self._ends.insert(i, pos + 1)
        return True

    def add_range(self, begin: int, end: int) -> None:
        """Mark every position in [begin, end) acknowledged (positions that no longer exist)."""
        if end <= self.floor or begin >= end:
            return
        if begin <= self.floor:
            self.advance(end)
            return
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

    def advance(self, floor: int) -> None:
        """Acknowledge everything below `floor` (auto-ack groups, skipped positions)."""
        if floor <= self.floor:
            return
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
