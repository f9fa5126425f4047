"""The monitoring replies (gateway/monitoring.py) as OpenAPI components: /api/stats and
/api/resources/*. Written from the code that builds them; /metrics is Prometheus text."""

from __future__ import annotations

from gateway.openapi_schemas import Schema, Schemas, nullable, obj, ref

INT = {"type": "integer"}
NUMBER = {"type": "number"}
TEXT = {"type": "string"}
TIME = {"type": "string", "format": "date-time"}


def _all(properties: dict[str, Schema], **more: object) -> Schema:
    """An object whose every property is always there."""
    return obj(properties, list(properties), additionalProperties=False, **more)


def monitoring_schemas(s: Schemas) -> None:
    s.add("ShardsUp", _all({"up": INT, "total": INT,
                            "down": {"type": "array", "items": INT,
                                     "description": "shards that did not answer in time"}}))
    queue = {"domain": ref("Name"), "queue": ref("Name"), "messages": INT, "bytes": INT,
             "maxSize": INT, "usage": {**NUMBER, "description": "messages as % of maxSize"},
             "published": INT, "expired": INT, "deadLettered": INT,
             "lastActivity": nullable(TIME)}
    s.add("QueueFill", _all(queue))
    s.add("QueueAlert", _all({**queue, "level": {"enum": ["warning", "critical"]},
                              "message": TEXT}))
    s.add("Stats", _all({
        "domains": nullable(INT), "queues": INT, "groups": INT, "messages": INT,
        "routes": {**INT, "description": "routing rules: none exist yet"},
        "period": {"enum": ["1h", "6h", "12h", "24h"]},
        "granularity": {"enum": ["10s", "1m", "5m", "15m", "30m", "1h"]},
        "messageRates": {"type": "array", "items": _all({
            "timestamp": TIME, "published": INT, "consumed": INT, "publishedTotal": INT,
            "consumedTotal": INT})},
        "activeDomains": {"type": "array", "items": _all({
            "name": ref("Name"), "activeQueues": INT, "messages": INT, "lastActivity": TIME})},
        "topQueues": {"type": "array", "items": ref("QueueFill"), "maxItems": 10},
        "queueAlerts": {"type": "array", "items": ref("QueueAlert")},
        "recentEvents": {"type": "array", "maxItems": 100, "items": _all({
            "timestamp": TIME, "type": TEXT, "severity": {"enum": ["info", "warning",
                                                                   "critical"]},
            "message": TEXT, "domain": nullable(TEXT), "queue": nullable(TEXT),
            "group": nullable(TEXT)})},
        "shards": ref("ShardsUp")}))
    process = {"node": TEXT, "role": {"enum": ["supervisor", "shard", "gateway"]},
               "index": INT, "pid": INT, "timestamp": TIME, "cpuPercent": NUMBER,
               "cpuSeconds": NUMBER, "rssBytes": INT, "vmsBytes": INT, "threads": INT,
               "openFiles": INT, "uptimeSeconds": NUMBER}
    s.add("ProcessSample", obj({**process, "diskBytes": {**INT, "description": "shards"}},
                               list(process), additionalProperties=False))
    totals = {"processes": INT, "cpuPercent": NUMBER, "rssBytes": INT, "threads": INT,
              "openFiles": INT, "diskBytes": INT}
    s.add("ResourceTotals", _all(totals))
    disk = _all({"shards": {"type": "array", "items": _all({"shard": INT, "diskBytes": INT})},
                 "totalBytes": INT})
    s.add("Resources", _all({
        "timestamp": TIME,
        "processes": {"type": "array", "items": ref("ProcessSample")},
        "totals": ref("ResourceTotals"),
        "domains": {"type": "array", "items": _all({"name": ref("Name"), "queues": INT,
                                                    "messages": INT, "bytes": INT})},
        "disk": disk, "shards": ref("ShardsUp")},
        description="every process (supervisor, shards, gateway workers) and totals"))
    s.add("ResourceHistory", _all({
        "limit": INT, "interval": {**NUMBER, "description": "monitoring.interval, seconds"},
        "processes": {"type": "array", "items": _all({
            "node": TEXT, "role": TEXT, "index": INT, "pid": INT,
            "samples": {"type": "array", "items": ref("ProcessSample")}})},
        "totals": {"type": "array", "items": _all({"timestamp": TIME, **totals})},
        "shards": ref("ShardsUp")}))
    s.add("DomainResources", _all({
        "domain": ref("Name"),
        "queues": {"type": "array", "items": _all({**queue, "shard": INT})},
        "totals": _all({"queues": INT, "messages": INT, "bytes": INT}),
        "disk": disk, "shards": ref("ShardsUp")}))
