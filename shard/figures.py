"""The monitoring handlers: a shard's figures for /api/stats, /api/resources and /metrics,
read from its queues, groups and Monitor (shard/monitor.py) when asked, and the catalog
shard's side of `Report`.

Reading is the whole cost: nothing here runs per message. A scrape reads every queue's
counters and, per group, at most two records (for the ages of the oldest unacknowledged and
oldest undelivered messages), usually from the in-memory tail.
"""

from __future__ import annotations

from typing import Any, Callable

from gortms.protocol import record_ts
from gortms.protocol.monitor import (GroupFigures, MetricsGet, QueueFigures, Report, Reported,
                                     ResourcesGet, ShardMetrics, ShardResources, ShardStats,
                                     StatsGet)
from shard.events import EVENTS
from shard.groups import GroupState
from shard.monitor import Monitor
from shard.queues import QueueState
from shard.state import ShardState

# --- figures ----------------------------------------------------------------------------------


def queue_figures(queue: QueueState) -> QueueFigures:
    return QueueFigures(queue.domain, queue.name, queue.count, queue.bytes,
                        queue.config.max_size, queue.last, queue.expired, queue.dead_lettered,
                        queue.last_active_ms)


def _age_s(state: ShardState, queue: QueueState, position: int) -> float:
    record = queue.read_positions(state.store, [position])[0]
    if record is None:
        return 0.0
    return max(0.0, (state.now_ms - record_ts(record)) / 1000)


def group_figures(state: ShardState, group: GroupState) -> GroupFigures:
    queue = group.queue
    lag = group.lag()
    unacked = _age_s(state, queue, min(group.pending)) if group.pending else 0.0
    undelivered = _age_s(state, queue, max(group.position, queue.first)) if lag else 0.0
    circuit = group.circuit.state if group.circuit is not None else "disabled"
    return GroupFigures(queue.domain, queue.name, group.name, group.delivered,
                        group.redelivered, group.acked, group.nacked, group.timeouts, lag,
                        len(group.pending), round(unacked, 3), round(undelivered, 3), circuit,
                        len(group.consumers))


# --- handlers ---------------------------------------------------------------------------------


def _monitor(state: ShardState) -> Monitor:
    return state.monitor


def stats(state: ShardState, req: StatsGet) -> ShardStats:
    monitor = _monitor(state)
    monitor.roll(state.now_ms)
    queues = list(state.queues.values())
    since_ms = state.now_ms - req.period_s * 1000
    return ShardStats(
        shard=state.index, domains=len(state.domains), queues=len(queues),
        groups=sum(len(q.groups) for q in queues), messages=sum(q.count for q in queues),
        published_total=monitor.published, consumed_total=monitor.consumed,
        rates=monitor.series.buckets(state.now_ms, req.period_s, req.granularity_s),
        queue_figures=[queue_figures(q) for q in queues], events=EVENTS.since(since_ms))


def resources(state: ShardState, req: ResourcesGet) -> ShardResources:
    monitor = _monitor(state)
    queues = [q for q in state.queues.values() if req.domain is None or q.domain == req.domain]
    history = list(monitor.history)[-req.limit:] if req.limit else []
    return ShardResources(shard=state.index, sample=monitor.last, history=history,
                          queue_figures=[queue_figures(q) for q in queues],
                          reporters=monitor.reporters(req.limit))


def metrics(state: ShardState, req: MetricsGet) -> ShardMetrics:
    monitor = _monitor(state)
    queues = list(state.queues.values())
    return ShardMetrics(
        shard=state.index, queue_figures=[queue_figures(q) for q in queues],
        group_figures=[group_figures(state, g) for q in queues for g in q.groups.values()],
        latency={kind.__struct_config__.tag: h.data()  # type: ignore[attr-defined]
                 for kind, h in monitor.latency.items()},
        batch_writes=monitor.batch_writes.data(), commits=monitor.commits,
        fsyncs=monitor.fsyncs, sample=monitor.last, reporters=monitor.reporters(0))


def report(state: ShardState, req: Report) -> Reported:
    _monitor(state).heard_from(req)
    return Reported()


HANDLERS: dict[type, Callable[[ShardState, Any], Any]] = {
    StatsGet: stats, ResourcesGet: resources, MetricsGet: metrics, Report: report,
}
