"""Latency series with bounded memory, and their percentiles.

A series keeps a uniform random sample (a reservoir, Vitter's algorithm R) of at most
`cap` values, plus the exact count, sum and maximum: memory stays the cap's whatever the run's
length, and the percentiles are exact while the run has fewer values than the cap, and
estimates from a uniform sample past it (at 100,000 samples, p99.9 rests on ~100 values).
"""

from __future__ import annotations

import math
import random
from typing import Any

SAMPLE_CAP = 100_000
PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9))


def percentile(sorted_values: list[float], q: float) -> float:
    """The nearest-rank percentile: the smallest value with q% of the values at or below."""
    if not sorted_values:
        return 0.0
    # rounded first: 99.9 / 100 * 1000 is 999.0000000000001 in floating point
    rank = max(1, math.ceil(round(q / 100 * len(sorted_values), 9)))
    return sorted_values[rank - 1]


class Series:
    """Values in milliseconds."""

    def __init__(self, cap: int = SAMPLE_CAP, seed: int | None = None) -> None:
        self.cap = cap
        self.sample: list[float] = []
        self.count = 0
        self.total = 0.0
        self.max = 0.0
        self._random = random.Random(seed)

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        if value > self.max:
            self.max = value
        if len(self.sample) < self.cap:
            self.sample.append(value)
        else:
            slot = self._random.randrange(self.count)
            if slot < self.cap:
                self.sample[slot] = value

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.sample)
        out: dict[str, Any] = {"count": self.count,
                               "mean": self.total / self.count if self.count else 0.0}
        for name, q in PERCENTILES:
            out[name] = percentile(ordered, q)
        out["max"] = self.max
        out["sampled"] = len(ordered)
        return out
