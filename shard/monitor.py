"""Monitor: what one shard measures about itself (shard/figures.py hands it out).

- request latency per operation (the time a request spends in the shard's turn, from the
  turn reading it to its reply going out; a parked long poll counts until it parked) and
  WriteBatch sizes, as histograms; commits and fsyncs;
- published and consumed totals, rolled every tick into a 24-hour series of 10-second
  buckets (fixed arrays: bounded memory whatever the traffic), for /api/stats' rates;
- a psutil sample of the process every `monitoring.interval`, and a bounded history;
- on the catalog shard, what gateway workers and the supervisor report (`Report`): their
  samples and histories, the workers' HTTP figures, the supervisor's events. That is how
  /metrics and /api/resources answered by any worker cover every process: each process
  measures itself and sends its figures over the contract, which works across hosts too.

Per-queue and per-group counters live on QueueState and GroupState (incremented where the
thing happens); this module reads them when asked. Like the event ring, the monitor
outlives a ShardState reopened after a storage failure.
"""

from __future__ import annotations

import time
from array import array
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from gortms.monitoring import (BATCH_BUCKETS, LATENCY_BUCKETS_S, SERIES_BUCKETS,
                               SERIES_STEP_S, Histogram, Sampler)
from gortms.protocol.monitor import ProcessSample, Report, Reporter
from shard.events import EVENTS

REPORTER_GONE_S = 60.0  # a reporter silent this long is dropped (a worker that went away)


class Series:
    """Published and consumed messages per 10-second bucket over the last 24 hours."""

    def __init__(self) -> None:
        self.slot = array("q", [-1] * SERIES_BUCKETS)  # the bucket number each slot holds
        self.published = array("q", [0] * SERIES_BUCKETS)
        self.consumed = array("q", [0] * SERIES_BUCKETS)

    def add(self, now_ms: int, published: int, consumed: int) -> None:
        bucket = now_ms // (SERIES_STEP_S * 1000)
        i = bucket % SERIES_BUCKETS
        if self.slot[i] != bucket:
            self.slot[i] = bucket
            self.published[i] = self.consumed[i] = 0
        self.published[i] += published
        self.consumed[i] += consumed

    def buckets(self, now_ms: int, period_s: int, granularity_s: int
                ) -> list[tuple[int, int, int]]:
        """[start ms, published, consumed] per `granularity_s` bucket (aligned to the clock)
        of the last `period_s`, oldest first; the last is the bucket now running."""
        step_ms = granularity_s * 1000
        n = max(1, period_s // granularity_s)
        first = (now_ms // step_ms - n + 1) * step_ms
        published, consumed = [0] * n, [0] * n
        small = SERIES_STEP_S * 1000
        for bucket in range(max(first // small, now_ms // small - SERIES_BUCKETS + 1),
                            now_ms // small + 1):
            i = bucket % SERIES_BUCKETS
            if self.slot[i] == bucket:
                k = (bucket * small - first) // step_ms
                published[k] += self.published[i]
                consumed[k] += self.consumed[i]
        return [(first + k * step_ms, published[k], consumed[k]) for k in range(n)]


@dataclass
class _Heard:
    sample: ProcessSample
    history: deque[ProcessSample]
    http: Any
    received_s: float


@dataclass
class Monitor:
    index: int
    interval_s: float = 5.0
    node: str = ""
    history_size: int = 720
    latency: dict[type, Histogram] = field(default_factory=dict)
    batch_writes: Histogram = field(default_factory=lambda: Histogram(BATCH_BUCKETS))
    commits: int = 0
    fsyncs: int = 0
    published: int = 0  # messages, since the shard started
    consumed: int = 0  # deliveries, redeliveries included
    series: Series = field(default_factory=Series)
    sampler: Sampler | None = None
    last: ProcessSample | None = None
    history: deque[ProcessSample] = field(default_factory=deque)
    heard: dict[tuple[str, str, int], _Heard] = field(default_factory=dict)
    _rolled: tuple[int, int] = (0, 0)
    _next_sample_s: float = 0.0

    def __post_init__(self) -> None:
        self.history = deque(maxlen=self.history_size)

    # --- measuring (the server calls these) ---------------------------------------------------

    def turn_done(self, kinds: dict[type, int], seconds: float) -> None:
        latency = self.latency
        for kind, n in kinds.items():
            histogram = latency.get(kind)
            if histogram is None:
                histogram = latency[kind] = Histogram(LATENCY_BUCKETS_S)
            histogram.observe(seconds, n)

    def committed(self, writes: int, synced: bool) -> None:
        self.commits += 1
        self.fsyncs += synced
        self.batch_writes.observe(writes)

    def tick(self, now_ms: int, disk_bytes: Callable[[], int]) -> None:
        """Every timer tick: roll the totals into the series; sample the process when due."""
        self.roll(now_ms)
        now = time.monotonic()
        if now >= self._next_sample_s:
            self._next_sample_s = now + self.interval_s
            self.sample(disk_bytes())

    def roll(self, now_ms: int) -> None:
        """What was published and consumed since the last roll goes to the running bucket."""
        published, consumed = self.published, self.consumed
        before = self._rolled
        if published != before[0] or consumed != before[1]:
            self.series.add(now_ms, published - before[0], consumed - before[1])
            self._rolled = (published, consumed)

    def sample(self, disk_bytes: int = -1) -> ProcessSample:
        if self.sampler is None:
            self.sampler = Sampler("shard", self.index, self.node)
        self.last = self.sampler.sample(disk_bytes)
        self.history.append(self.last)
        return self.last

    def heard_from(self, report: Report) -> None:
        sample = report.sample
        key = (sample.node, sample.role, sample.index)
        heard = self.heard.get(key)
        if heard is None or heard.sample.pid != sample.pid:  # new, or a restarted process
            heard = self.heard[key] = _Heard(sample, deque(maxlen=self.history_size), None, 0)
        heard.sample, heard.http, heard.received_s = sample, report.http, time.monotonic()
        heard.history.append(sample)
        if report.events:
            EVENTS.extend(report.events)

    def reporters(self, history: int) -> list[Reporter]:
        now = time.monotonic()
        for key in [k for k, h in self.heard.items() if now - h.received_s > REPORTER_GONE_S]:
            del self.heard[key]
        return [Reporter(sample=h.sample, history=list(h.history)[-history:] if history else [],
                         http=h.http, received_ms=int(h.sample.timestamp))
                for _, h in sorted(self.heard.items())]
