"""What /metrics says: every shard's figures, every gateway worker's HTTP figures and every
process's resources, as Prometheus metric families (gateway/prometheus.py writes the text).

Names follow Prometheus conventions: a `gortms_` prefix, base units (`_seconds`, `_bytes`),
`_total` on counters only. Counters are per process lifetime unless noted: a restarted
shard starts its delivery counters again (Prometheus' rate() expects that), while
`gortms_messages_published_total` and `gortms_messages_expired_total` come from durable
counters and carry on across restarts.
"""

from __future__ import annotations

from gortms.protocol.monitor import GatewayFigures, ProcessSample, Reporter, ShardMetrics
from gateway.prometheus import Exposition, labels

CIRCUIT_STATES = ("closed", "open", "half-open")

_QUEUE_COUNTERS = (
    ("gortms_messages_published_total", "published",
     "Messages published to the queue (positions assigned; durable across restarts)."),
    ("gortms_messages_expired_total", "expired",
     "Messages deleted by the queue's ttl before every group acknowledged them (durable)."),
    ("gortms_messages_dead_lettered_total", "dead_lettered",
     "Messages moved to the queue's dead-letter queue after their retries."),
)
_QUEUE_GAUGES = (
    ("gortms_queue_messages", "messages", "Messages retained in the queue."),
    ("gortms_queue_bytes", "bytes", "Bytes of the messages retained in the queue."),
    ("gortms_queue_max_messages", "max_size", "The queue's maxSize."),
)
_GROUP_COUNTERS = (
    ("gortms_messages_delivered_total", "delivered",
     "Deliveries to the consumer group, redeliveries included."),
    ("gortms_messages_redelivered_total", "redelivered",
     "Deliveries of a message the group had been delivered before."),
    ("gortms_messages_acked_total", "acked", "Messages the group acknowledged."),
    ("gortms_messages_nacked_total", "nacked", "Messages the group negatively acknowledged."),
    ("gortms_ack_timeouts_total", "timeouts",
     "Deliveries whose lease ran out before an ack or nack."),
)
_GROUP_GAUGES = (
    ("gortms_group_lag_messages", "lag", "Messages not yet delivered to the group."),
    ("gortms_group_pending_messages", "pending",
     "Messages delivered to the group and not yet acknowledged."),
    ("gortms_group_oldest_unacked_age_seconds", "oldest_unacked_s",
     "Age of the oldest delivered, unacknowledged message of the group (0: none)."),
    ("gortms_group_oldest_undelivered_age_seconds", "oldest_undelivered_s",
     "Age of the next message to deliver to the group, its lag in seconds (0: none)."),
    ("gortms_group_consumers", "consumers", "Consumers the group knows of."),
)


def render_metrics(answers: list[ShardMetrics | None], own: ProcessSample,
                   own_http: GatewayFigures) -> bytes:
    out = Exposition()
    catalog = answers[0] if answers else None
    reporters: list[Reporter] = list(catalog.reporters) if catalog is not None else []
    for index, answer in enumerate(answers):
        out.add("gortms_shard_up", "gauge", "1 if the shard answered this scrape, else 0.",
                labels(shard=index), 0 if answer is None else 1)
    for answer in answers:
        if answer is not None:
            _shard(out, answer)
    processes = [r.sample for r in reporters if not _same(r.sample, own)]
    processes += [a.sample for a in answers if a is not None and a.sample is not None]
    processes.append(own)
    for sample in processes:
        _process(out, sample)
    workers = [(r.sample.node, r.sample.index, r.http) for r in reporters
               if r.sample.role == "gateway" and r.http is not None
               and (r.sample.node, r.sample.index) != (own.node, own.index)]
    for node, worker, figures in sorted([*workers, (own.node, own.index, own_http)],
                                        key=lambda w: (w[0], w[1])):
        _gateway(out, node, worker, figures)
    return out.render()


def _shard(out: Exposition, answer: ShardMetrics) -> None:
    for f in answer.queue_figures:
        label_set = labels(domain=f.domain, queue=f.queue)
        for name, field, help_ in _QUEUE_COUNTERS:
            out.add(name, "counter", help_, label_set, getattr(f, field))
        for name, field, help_ in _QUEUE_GAUGES:
            out.add(name, "gauge", help_, label_set, getattr(f, field))
    for g in answer.group_figures:
        label_set = labels(domain=g.domain, queue=g.queue, group=g.group)
        for name, field, help_ in _GROUP_COUNTERS:
            out.add(name, "counter", help_, label_set, getattr(g, field))
        for name, field, help_ in _GROUP_GAUGES:
            out.add(name, "gauge", help_, label_set, getattr(g, field))
        if g.circuit != "disabled":
            for state in CIRCUIT_STATES:
                out.add("gortms_group_circuit_state", "gauge",
                        "1 for the state the group's circuit breaker is in, else 0.",
                        f'{label_set},{labels(state=state)}', int(g.circuit == state))
    shard = labels(shard=answer.shard)
    for op, histogram in sorted(answer.latency.items()):
        out.histogram("gortms_shard_request_duration_seconds",
                      "Time requests spend in the shard's turn, by operation.",
                      f"{shard},{labels(op=op)}", histogram)
    out.histogram("gortms_shard_write_batch_writes",
                  "Writes per committed RocksDB WriteBatch (one per turn).", shard,
                  answer.batch_writes)
    out.add("gortms_shard_commits_total", "counter", "WriteBatches committed.", shard,
            answer.commits)
    out.add("gortms_shard_fsyncs_total", "counter", "Commits that fsynced the WAL.", shard,
            answer.fsyncs)


def _process(out: Exposition, sample: ProcessSample) -> None:
    label_set = labels(node=sample.node, role=sample.role, index=sample.index)
    out.add("gortms_process_cpu_seconds_total", "counter",
            "User and system CPU time of the process.", label_set, sample.cpu_seconds)
    out.add("gortms_process_resident_memory_bytes", "gauge", "Resident memory of the process.",
            label_set, sample.rss_bytes)
    out.add("gortms_process_virtual_memory_bytes", "gauge", "Virtual memory of the process.",
            label_set, sample.vms_bytes)
    out.add("gortms_process_threads", "gauge", "Threads of the process.", label_set,
            sample.threads)
    if sample.open_files >= 0:
        out.add("gortms_process_open_fds", "gauge", "Open file descriptors of the process.",
                label_set, sample.open_files)
    out.add("gortms_process_start_time_seconds", "gauge",
            "Start time of the process since the epoch.", label_set,
            round(sample.timestamp / 1000 - sample.uptime_s, 3))
    if sample.role == "shard" and sample.disk_bytes >= 0:
        out.add("gortms_shard_disk_bytes", "gauge", "Size of the shard's database on disk.",
                labels(shard=sample.index), sample.disk_bytes)


def _same(a: ProcessSample, b: ProcessSample) -> bool:
    return (a.node, a.role, a.index) == (b.node, b.role, b.index)


def _gateway(out: Exposition, node: str, worker: int, figures: GatewayFigures) -> None:
    for c in figures.requests:
        out.add("gortms_http_requests_total", "counter",
                "HTTP requests answered, by route template, method and status.",
                labels(node=node, worker=worker, route=c.route, method=c.method,
                       status=c.status),
                c.count)
    for latency in figures.latency:
        out.histogram("gortms_http_request_duration_seconds",
                      "HTTP request durations, by route template and method.",
                      labels(node=node, worker=worker, route=latency.route,
                             method=latency.method),
                      latency.histogram)
    out.add("gortms_websocket_connections", "gauge", "Open WebSocket connections.",
            labels(node=node, worker=worker), figures.websockets)
