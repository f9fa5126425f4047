"""What every process measures the same way: fixed-bucket histograms, a psutil sample of the
process itself, and the periods and granularities /api/stats accepts.

Every process measures itself (a shard its requests and commits, a gateway worker its HTTP
requests, each its own CPU and memory) and hands figures over the ZeroMQ contract, never by
reading another process's files or pids: the same works when the roles run on other hosts.
"""

from __future__ import annotations

import os
import time
from bisect import bisect_left
from typing import Sequence

import psutil

from gortms.protocol.monitor import HistogramData, ProcessSample

# Request latencies, in seconds: a shard answers most requests within its turn (~0.1-5 ms);
# an HTTP request adds the gateway's share and a fetch's long poll.
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0, 30.0)
# Writes in one WriteBatch (a turn's commit).
BATCH_BUCKETS: tuple[float, ...] = tuple(float(2 ** i) for i in range(15))

# /api/stats: period and granularity names, in seconds (API.md).
PERIODS = {"1h": 3600, "6h": 6 * 3600, "12h": 12 * 3600, "24h": 24 * 3600}
GRANULARITIES = {"10s": 10, "1m": 60, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600}
SERIES_STEP_S = 10  # the shards' time series keeps one bucket per 10 s, for 24 h
SERIES_BUCKETS = PERIODS["24h"] // SERIES_STEP_S
WARNING_FILL, CRITICAL_FILL = 0.75, 0.90  # of a queue's maxSize: queueAlerts, capacity events


class Histogram:
    """Counts per bucket (the last one for values above every bound), their sum and count.
    `observe(value, n)` counts n values at once: a shard observes a turn's requests of one
    kind together, since they share their latency."""

    __slots__ = ("bounds", "counts", "sum", "count")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float, n: int = 1) -> None:
        self.counts[bisect_left(self.bounds, value)] += n
        self.sum += value * n
        self.count += n

    def data(self) -> HistogramData:
        return HistogramData(bounds=list(self.bounds), counts=list(self.counts),
                             sum=self.sum, count=self.count)


def merge_histograms(parts: Sequence[HistogramData]) -> HistogramData | None:
    """One histogram from several with the same bounds (several processes' views)."""
    if not parts:
        return None
    first = parts[0]
    counts = [0] * len(first.counts)
    total, count = 0.0, 0
    for part in parts:
        if part.bounds != first.bounds:
            continue  # another release's buckets: cannot be added up
        for i, n in enumerate(part.counts):
            counts[i] += n
        total += part.sum
        count += part.count
    return HistogramData(bounds=first.bounds, counts=counts, sum=total, count=count)


class Sampler:
    """Samples this process: CPU since the previous sample, memory, threads, open files."""

    def __init__(self, role: str, index: int, node: str = "") -> None:
        self.role = role
        self.index = index
        self.node = node
        self.process = psutil.Process(os.getpid())
        self.process.cpu_percent(None)  # the first call starts the measurement
        self.started = self.process.create_time()

    def sample(self, disk_bytes: int = -1) -> ProcessSample:
        process = self.process
        with process.oneshot():
            memory = process.memory_info()
            times = process.cpu_times()
            try:
                open_files = process.num_fds()
            except (psutil.Error, AttributeError):  # not on Linux
                open_files = -1
            return ProcessSample(
                role=self.role, index=self.index, pid=process.pid,
                timestamp=int(time.time() * 1000), cpu_percent=process.cpu_percent(None),
                rss_bytes=memory.rss, vms_bytes=memory.vms, threads=process.num_threads(),
                open_files=open_files, uptime_s=round(time.time() - self.started, 3),
                disk_bytes=disk_bytes, cpu_seconds=round(times.user + times.system, 3),
                node=self.node)
