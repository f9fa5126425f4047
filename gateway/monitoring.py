"""GET /api/stats, /api/resources/{current,history,domains/{d}} and /metrics: every shard asked
in parallel, its answer merged with this worker's own live figures and with what the other
processes last reported to the catalog shard (gateway/reporter.py, supervisor/reporter.py).

A shard that does not answer leaves its part out and is named in `shards.down` (or gets
`gortms_shard_up 0`): monitoring is most wanted when something is down, so it never fails
as a whole for one shard.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from msgspec import Meta, Struct
from starlette.requests import Request
from starlette.responses import Response

from gortms.errors import GortmsError, InvalidParameter
from gortms.models import format_ts, now_ms
from gortms.monitoring import CRITICAL_FILL, GRANULARITIES, PERIODS, WARNING_FILL
from gortms.partition import CATALOG_SHARD
from gortms.protocol import Request as ShardRequest
from gortms.protocol.monitor import (MetricsGet, ProcessSample, QueueFigures, Reporter,
                                     ResourcesGet, ShardResources, ShardStats, StatsGet)
from gateway.context import Gateway
from gateway.metrics import render_metrics
from gateway.params import path_name, query_as
from gateway.prometheus import CONTENT_TYPE
from gateway.reporter import Reporter as OwnReporter
from gateway.responses import json_response

TOP_QUEUES = 10
MAX_EVENTS = 100
SHARD_TIMEOUT_S = 2.0


class StatsQuery(Struct, kw_only=True):
    period: str = "1h"
    granularity: str = "5m"


class HistoryQuery(Struct, kw_only=True):
    limit: Annotated[int, Meta(ge=1, le=1000)] = 100


class MonitoringApi:
    def __init__(self, gw: Gateway, own: OwnReporter) -> None:
        self.gw = gw
        self.own = own  # this worker's sample and HTTP figures, live

    async def _ask_all(self, request: ShardRequest) -> list[Any]:
        """Each shard's answer, or None for one that did not answer in time."""
        shards = self.gw.shards

        async def one(index: int) -> Any:
            try:
                return await shards.call(index, request, timeout_s=SHARD_TIMEOUT_S)
            except GortmsError:
                return None
        return list(await asyncio.gather(*(one(i) for i in range(shards.count))))

    @staticmethod
    def _shards(answers: list[Any]) -> dict[str, Any]:
        down = [i for i, answer in enumerate(answers) if answer is None]
        return {"up": len(answers) - len(down), "total": len(answers), "down": down}

    # --- /api/stats -------------------------------------------------------------------------

    async def stats(self, request: Request) -> Response:
        query = query_as(request, StatsQuery)
        period_s = _choice("period", query.period, PERIODS)
        granularity_s = _choice("granularity", query.granularity, GRANULARITIES)
        if granularity_s > period_s:
            raise InvalidParameter(f"granularity {query.granularity} is longer than the "
                                   f"period {query.period}")
        answers: list[ShardStats | None] = await self._ask_all(
            StatsGet(period_s=period_s, granularity_s=granularity_s))
        shown = [a for a in answers if a is not None]
        figures = [f for a in shown for f in a.queue_figures]
        catalog = answers[CATALOG_SHARD] if answers else None
        since = now_ms() - period_s * 1000
        body = {
            "domains": catalog.domains if catalog is not None else None,
            "queues": sum(a.queues for a in shown),
            "groups": sum(a.groups for a in shown),
            "messages": sum(a.messages for a in shown),
            "routes": 0,  # routing rules are not built yet
            "period": query.period, "granularity": query.granularity,
            "messageRates": _rates(shown),
            "activeDomains": _active_domains(figures, since),
            "topQueues": _top_queues(figures),
            "queueAlerts": _alerts(figures),
            "recentEvents": _events(shown),
            "shards": self._shards(answers),
        }
        return json_response(body)

    # --- /api/resources ---------------------------------------------------------------------

    async def _resources(self, limit: int, domain: str | None = None
                         ) -> tuple[list[ShardResources | None], list[Reporter]]:
        answers = await self._ask_all(ResourcesGet(limit=limit, domain=domain))
        catalog = answers[CATALOG_SHARD] if answers else None
        reporters = list(catalog.reporters) if catalog is not None else []
        return answers, reporters

    def _processes(self, answers: list[ShardResources | None], reporters: list[Reporter]
                   ) -> list[ProcessSample]:
        """Every process's latest sample: supervisor, shards, gateway workers (this one now)."""
        own = self.own.sample()
        others = [r.sample for r in reporters
                  if (r.sample.node, r.sample.role, r.sample.index)
                  != (own.node, own.role, own.index)]
        shards = [a.sample for a in answers if a is not None and a.sample is not None]
        return sorted([*others, *shards, own], key=_process_order)

    async def resources_current(self, request: Request) -> Response:
        answers, reporters = await self._resources(0)
        processes = self._processes(answers, reporters)
        figures = [f for a in answers if a is not None for f in a.queue_figures]
        body = {
            "timestamp": format_ts(now_ms()),
            "processes": [_process(p) for p in processes],
            "totals": _totals(processes),
            "domains": _domains(figures),
            "disk": _disk(answers),
            "shards": self._shards(answers),
        }
        return json_response(body)

    async def resources_history(self, request: Request) -> Response:
        limit = query_as(request, HistoryQuery).limit
        answers, _ = await self._resources(limit)
        catalog = answers[CATALOG_SHARD] if answers else None
        series: list[tuple[ProcessSample, list[ProcessSample]]] = [
            (answer.history[-1], answer.history) for answer in answers
            if answer is not None and answer.history]
        series += [(r.sample, r.history) for r in
                   (catalog.reporters if catalog is not None else [])]
        series.sort(key=lambda s: _process_order(s[0]))
        body = {
            "limit": limit,
            "interval": float(self.gw.settings.monitoring.interval),
            "processes": [{"node": last.node, "role": last.role, "index": last.index,
                           "pid": last.pid, "samples": [_process(s) for s in samples[-limit:]]}
                          for last, samples in series],
            "totals": _history_totals([samples for _, samples in series], limit,
                                      float(self.gw.settings.monitoring.interval)),
            "shards": self._shards(answers),
        }
        return json_response(body)

    async def resources_domain(self, request: Request) -> Response:
        name = path_name(request, "domain", "domain")
        await self.gw.catalog.domain(name)  # 404 for a domain that does not exist
        answers, _ = await self._resources(0, name)
        queues = sorted(((i, f) for i, a in enumerate(answers) if a is not None
                         for f in a.queue_figures), key=lambda item: item[1].queue)
        body = {
            "domain": name,
            "queues": [{**_queue(f), "shard": i} for i, f in queues],
            "totals": {"queues": len(queues), "messages": sum(f.messages for _, f in queues),
                       "bytes": sum(f.bytes for _, f in queues)},
            "disk": _disk(answers),
            "shards": self._shards(answers),
        }
        return json_response(body)

    # --- /metrics -----------------------------------------------------------------------------

    async def metrics(self, request: Request) -> Response:
        answers = await self._ask_all(MetricsGet())
        own = self.own
        body = render_metrics(answers, own.sample(), own.figures())
        return Response(body, media_type=CONTENT_TYPE)


def _choice(name: str, value: str, choices: dict[str, int]) -> int:
    found = choices.get(value)
    if found is None:
        raise InvalidParameter(f"{name} must be one of {', '.join(choices)}, not '{value}'")
    return found


# --- merging ----------------------------------------------------------------------------------

_ROLE_ORDER = {"supervisor": 0, "shard": 1, "gateway": 2}


def _process_order(sample: ProcessSample) -> tuple[str, int, int]:
    return sample.node, _ROLE_ORDER.get(sample.role, 9), sample.index


def _process(sample: ProcessSample) -> dict[str, Any]:
    out = {"node": sample.node, "role": sample.role, "index": sample.index, "pid": sample.pid,
           "timestamp": format_ts(sample.timestamp), "cpuPercent": sample.cpu_percent,
           "cpuSeconds": sample.cpu_seconds, "rssBytes": sample.rss_bytes,
           "vmsBytes": sample.vms_bytes, "threads": sample.threads,
           "openFiles": sample.open_files, "uptimeSeconds": sample.uptime_s}
    if sample.role == "shard":
        out["diskBytes"] = sample.disk_bytes
    return out


def _totals(processes: list[ProcessSample]) -> dict[str, Any]:
    return {"processes": len(processes),
            "cpuPercent": round(sum(p.cpu_percent for p in processes), 2),
            "rssBytes": sum(p.rss_bytes for p in processes),
            "threads": sum(p.threads for p in processes),
            "openFiles": sum(max(0, p.open_files) for p in processes),
            "diskBytes": sum(max(0, p.disk_bytes) for p in processes)}


def _history_totals(series: list[list[ProcessSample]], limit: int, interval_s: float
                    ) -> list[dict[str, Any]]:
    """Every process's samples added up per sampling interval (processes sample on their own
    clocks: one interval's bucket holds at most one sample of each), the newest `limit`."""
    step = max(1, int(interval_s * 1000))
    buckets: dict[int, list[ProcessSample]] = {}
    for samples in series:
        for sample in samples:
            buckets.setdefault(sample.timestamp // step, []).append(sample)
    out = []
    for bucket in sorted(buckets)[-limit:]:
        out.append({"timestamp": format_ts(bucket * step), **_totals(buckets[bucket])})
    return out


def _disk(answers: list[ShardResources | None]) -> dict[str, Any]:
    shards = [{"shard": i, "diskBytes": a.sample.disk_bytes}
              for i, a in enumerate(answers) if a is not None and a.sample is not None]
    return {"shards": shards, "totalBytes": sum(max(0, s["diskBytes"]) for s in shards)}


def _usage(figure: QueueFigures) -> float:
    return round(figure.messages * 100 / figure.max_size, 2) if figure.max_size else 0.0


def _queue(f: QueueFigures) -> dict[str, Any]:
    return {"domain": f.domain, "queue": f.queue, "messages": f.messages, "bytes": f.bytes,
            "maxSize": f.max_size, "usage": _usage(f), "published": f.published,
            "expired": f.expired, "deadLettered": f.dead_lettered,
            "lastActivity": format_ts(f.last_active_ms) if f.last_active_ms else None}


def _domains(figures: list[QueueFigures]) -> list[dict[str, Any]]:
    domains: dict[str, list[int]] = {}
    for f in figures:
        entry = domains.setdefault(f.domain, [0, 0, 0])
        entry[0] += 1
        entry[1] += f.messages
        entry[2] += f.bytes
    return [{"name": d, "queues": q, "messages": m, "bytes": b}
            for d, (q, m, b) in sorted(domains.items())]


def _rates(answers: list[ShardStats]) -> list[dict[str, Any]]:
    """Every shard's buckets added up (all shards align buckets to the clock), with running
    totals over the period."""
    if not answers:
        return []
    merged: dict[int, list[int]] = {}
    for answer in answers:
        for start, published, consumed in answer.rates:
            entry = merged.setdefault(start, [0, 0])
            entry[0] += published
            entry[1] += consumed
    out, published_total, consumed_total = [], 0, 0
    for start in sorted(merged):
        published, consumed = merged[start]
        published_total += published
        consumed_total += consumed
        out.append({"timestamp": format_ts(start), "published": published,
                    "consumed": consumed, "publishedTotal": published_total,
                    "consumedTotal": consumed_total})
    return out


def _active_domains(figures: list[QueueFigures], since_ms: int) -> list[dict[str, Any]]:
    """Domains with a queue published to or consumed from within the period."""
    active: dict[str, list[int]] = {}
    for f in figures:
        if f.last_active_ms >= since_ms:
            entry = active.setdefault(f.domain, [0, 0, 0])
            entry[0] += 1
            entry[1] += f.messages
            entry[2] = max(entry[2], f.last_active_ms)
    return [{"name": d, "activeQueues": q, "messages": m, "lastActivity": format_ts(last)}
            for d, (q, m, last) in sorted(active.items(), key=lambda kv: -kv[1][2])]


def _top_queues(figures: list[QueueFigures]) -> list[dict[str, Any]]:
    ranked = sorted((f for f in figures if f.messages),
                    key=lambda f: (-f.messages / max(1, f.max_size), -f.messages))
    return [_queue(f) for f in ranked[:TOP_QUEUES]]


def _alerts(figures: list[QueueFigures]) -> list[dict[str, Any]]:
    out = []
    for f in figures:
        if not f.max_size:
            continue
        fill = f.messages / f.max_size
        if fill >= WARNING_FILL:
            level = "critical" if fill >= CRITICAL_FILL else "warning"
            out.append({**_queue(f), "level": level,
                        "message": f"queue {f.domain}/{f.queue} is {_usage(f):g}% full "
                                   f"({f.messages} of {f.max_size} messages)"})
    out.sort(key=lambda a: -a["usage"])
    return out


def _events(answers: list[ShardStats]) -> list[dict[str, Any]]:
    events = sorted((e for a in answers for e in a.events), key=lambda e: -e.timestamp)
    return [{"timestamp": format_ts(e.timestamp), "type": e.type, "severity": e.severity,
             "message": e.message, "domain": e.domain or None, "queue": e.queue or None,
             "group": e.group or None} for e in events[:MAX_EVENTS]]
