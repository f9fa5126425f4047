"""The monitoring part of the contract: what shards answer for /api/stats, /api/resources and
/metrics, and what gateway workers and the supervisor report to the catalog shard.

Per-queue and per-group figures are array-like Structs (msgpack arrays, no key names): a
shard with 1,000 queues answers a scrape in one small frame.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct

from gortms.protocol.ops import Reply, Request

__all__ = [
    "HistogramData", "ProcessSample", "Event", "QueueFigures", "GroupFigures", "HttpCount",
    "HttpLatency", "GatewayFigures", "Reporter", "ShardStats", "ShardResources",
    "ShardMetrics", "Reported", "StatsGet", "ResourcesGet", "MetricsGet", "Report",
    "MAX_REPORT_EVENTS",
]

MAX_REPORT_EVENTS = 100


class HistogramData(Struct, frozen=True, array_like=True):
    bounds: list[float]  # upper bounds, ascending
    counts: list[int]  # per bucket, not cumulative; one more than bounds (above them all)
    sum: float
    count: int


class ProcessSample(Struct, frozen=True, kw_only=True, rename="camel"):
    role: str  # supervisor | shard | gateway
    index: int  # the shard's index, the gateway worker's number; 0 for the supervisor
    pid: int
    timestamp: int  # ms since the epoch
    cpu_percent: float  # since the process's previous sample; 100 = one core
    rss_bytes: int
    vms_bytes: int
    threads: int
    open_files: int  # file descriptors; -1 unknown
    uptime_s: float
    disk_bytes: int = -1  # a shard's database on disk; -1 for other processes
    cpu_seconds: float = 0.0  # user + system since the process started
    node: str = ""  # general.nodeId of the host it runs on


class Event(Struct, frozen=True, kw_only=True, rename="camel"):
    timestamp: int  # ms since the epoch
    type: str  # domain_created, queue_deleted, capacity_warning, shard_restarted, ...
    severity: str  # info | warning | critical
    message: str
    domain: str = ""
    queue: str = ""
    group: str = ""


class QueueFigures(Struct, frozen=True, array_like=True):
    domain: str
    queue: str
    messages: int  # retained
    bytes: int
    max_size: int
    published: int  # positions ever assigned (durable: survives restarts)
    expired: int  # deleted by ttl, since the queue was created (durable)
    dead_lettered: int  # moved to {q}.dlq since the shard started
    last_active_ms: int  # last publish or delivery; 0 none since the shard started


class GroupFigures(Struct, frozen=True, array_like=True):
    domain: str
    queue: str
    group: str
    delivered: int  # since the shard started, redeliveries included
    redelivered: int
    acked: int
    nacked: int
    timeouts: int  # leases that ran out
    lag: int
    pending: int
    oldest_unacked_s: float  # age of the oldest delivered, unacknowledged message; 0 none
    oldest_undelivered_s: float  # age of the next message to deliver; 0 none
    circuit: str  # closed | open | half-open | disabled
    consumers: int


class HttpCount(Struct, frozen=True, array_like=True):
    route: str
    method: str
    status: int
    count: int


class HttpLatency(Struct, frozen=True, array_like=True):
    route: str
    method: str
    histogram: HistogramData


class GatewayFigures(Struct, frozen=True, kw_only=True, rename="camel"):
    requests: list[HttpCount] = []
    latency: list[HttpLatency] = []
    websockets: int = 0  # open WebSocket connections


class Reporter(Struct, frozen=True, kw_only=True, rename="camel"):
    """A gateway worker or the supervisor, as the catalog shard last heard from it."""

    sample: ProcessSample
    history: list[ProcessSample] = []
    http: GatewayFigures | None = None
    received_ms: int = 0


class ShardStats(Reply):
    shard: int
    domains: int  # the catalog shard's count; 0 on the others
    queues: int
    groups: int
    messages: int
    published_total: int  # since the shard started
    consumed_total: int
    # [bucket start (ms), published, consumed] per granularity bucket of the period, oldest
    # first, the last one the bucket now running
    rates: list[tuple[int, int, int]]
    queue_figures: list[QueueFigures]
    events: list[Event]


class ShardResources(Reply):
    shard: int
    sample: ProcessSample | None
    history: list[ProcessSample]
    queue_figures: list[QueueFigures]
    reporters: list[Reporter] = []  # the catalog shard's


class ShardMetrics(Reply):
    shard: int
    queue_figures: list[QueueFigures]
    group_figures: list[GroupFigures]
    latency: dict[str, HistogramData]  # by operation
    batch_writes: HistogramData
    commits: int
    fsyncs: int
    sample: ProcessSample | None
    reporters: list[Reporter] = []  # the catalog shard's


class Reported(Reply):
    pass


class StatsGet(Request, tag="stats"):
    reply = ShardStats
    period_s: Annotated[int, Meta(ge=10, le=86_400)]
    granularity_s: Annotated[int, Meta(ge=10, le=86_400)]


class ResourcesGet(Request, tag="resources"):
    reply = ShardResources
    limit: Annotated[int, Meta(ge=0, le=100_000)] = 0  # history samples; 0 none
    domain: str | None = None  # only this domain's queues; None all


class MetricsGet(Request, tag="metrics"):
    reply = ShardMetrics


class Report(Request, tag="report"):
    """A gateway worker or the supervisor to the catalog shard, every monitoring.interval."""

    reply = Reported
    sample: ProcessSample
    http: GatewayFigures | None = None
    events: Annotated[list[Event], Meta(max_length=MAX_REPORT_EVENTS)] = []
