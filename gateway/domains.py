"""Domains and queues: /api/domains[/{domain}[/queues[/{queue}]]]."""

from __future__ import annotations

import asyncio
from typing import Any

from msgspec import Struct
from starlette.requests import Request
from starlette.responses import Response

from gortms.checks import Name, check_name, convert, fields_of
from gortms.errors import InvalidConfig, UnsupportedFeature
from gortms.models import QueueConfig
from gortms.partition import CATALOG_SHARD
from gortms.protocol import (DomainCounts, DomainCreate, DomainDelete, DomainDrop, DomainGet,
                             DomainList, DomainStatsGet, QueueCreate, QueueDelete, QueueGet,
                             QueueInfo, QueueList)
from gortms.schema import check_schema
from gateway.context import Gateway
from gateway.params import path_name, read_as, read_object
from gateway.responses import json_response

DOMAIN_KEYS = ("name", "schema", "queueConfigs", "routingRules")


class QueueBody(Struct, kw_only=True):
    name: Name
    config: dict[str, Any] | None = None


def queue_config(raw: object) -> QueueConfig:
    return QueueConfig() if raw is None else convert(raw, QueueConfig, "config.", InvalidConfig)


def parse_queue_configs(raw: object) -> dict[str, QueueConfig]:
    """`queueConfigs` as the Go server took it ({name: config}) or as [{name, config}]."""
    if raw is None:
        return {}
    if isinstance(raw, list):
        pairs = []
        for i, item in enumerate(raw):
            if isinstance(item, dict):
                item = fields_of(item, ("name", "config"))
            if not isinstance(item, dict) or "name" not in item:
                raise InvalidConfig(f"queueConfigs[{i}] must be an object with a name")
            pairs.append((item["name"], item.get("config")))
    elif isinstance(raw, dict):
        pairs = list(raw.items())
    else:
        raise InvalidConfig("queueConfigs must map queue names to queue configs")
    return {check_name("queue", name): queue_config(config) for name, config in pairs}


class DomainsApi:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    # --- domains ------------------------------------------------------------------------------

    async def create_domain(self, request: Request) -> Response:
        body = fields_of(await read_object(request, self.gw.max_body), DOMAIN_KEYS)
        name = check_name("domain", body.get("name"))
        request.state.principal.require("manage", name)
        schema = check_schema(body.get("schema"))
        queues = parse_queue_configs(body.get("queueConfigs"))
        if body.get("routingRules"):
            raise UnsupportedFeature("routingRules are not supported by this version yet; "
                                     "create the domain without them")
        await self.gw.shards.call(CATALOG_SHARD, DomainCreate(name=name, schema=schema))
        self.gw.catalog.forget(name)
        if queues:
            await asyncio.gather(*(self._create_queue(name, q, c) for q, c in queues.items()))
        return json_response({"status": "success", "domain": name}, 201)

    async def list_domains(self, request: Request) -> Response:
        catalog = await self.gw.shards.call(CATALOG_SHARD, DomainList())
        epochs = {d.name: d.epoch for d in catalog.domains}
        stats = await self._stats(epochs)
        domains = []
        for record in catalog.domains:
            counts = stats.get(record.name, DomainCounts())
            domains.append({"name": record.name, "queueCount": counts.queue_count,
                            "messageCount": counts.message_count})
        return json_response({"domains": domains})

    async def _stats(self, epochs: dict[str, int]) -> dict[str, DomainCounts]:
        replies = await self.gw.shards.call_all(DomainStatsGet(epochs=epochs))
        totals: dict[str, list[int]] = {}
        for reply in replies:
            for domain, counts in reply.domains.items():
                total = totals.setdefault(domain, [0, 0, 0])
                total[0] += counts.queue_count
                total[1] += counts.message_count
                total[2] += counts.bytes
        return {d: DomainCounts(queue_count=q, message_count=m, bytes=b)
                for d, (q, m, b) in totals.items()}

    async def get_domain(self, request: Request) -> Response:
        name = path_name(request, "domain", "domain")
        record = await self.gw.shards.call(CATALOG_SHARD, DomainGet(name=name))
        queues = await self._queues_of(name, record.epoch)
        return json_response({"name": name, "schema": record.schema, "queues": queues,
                              "routes": []})

    async def delete_domain(self, request: Request) -> Response:
        name = path_name(request, "domain", "domain")
        record = await self.gw.shards.call(CATALOG_SHARD, DomainGet(name=name))
        # Queues first: if a shard is down this fails (503) with the domain still listed, and
        # a retry finishes the job; deleting the record first could strand data on that shard.
        await self.gw.shards.call_all(DomainDrop(domain=name, epoch=record.epoch))
        await self.gw.shards.call(CATALOG_SHARD, DomainDelete(name=name))
        self.gw.catalog.forget(name)
        return json_response({"status": "success", "deleted": name})

    # --- queues -------------------------------------------------------------------------------

    async def _create_queue(self, domain: str, queue: str, config: QueueConfig) -> QueueInfo:
        return await self.gw.queue_call(domain, queue, QueueCreate, config=config)

    async def create_queue(self, request: Request) -> Response:
        domain = path_name(request, "domain", "domain")
        body = await read_as(request, self.gw.max_body, QueueBody)
        config = queue_config(body.config)
        info = await self._create_queue(domain, body.name, config)
        return json_response({"status": "success", "queue": body.name, "config": info.config},
                             201)

    async def _queues_of(self, domain: str, epoch: int) -> list[QueueInfo]:
        replies = await self.gw.shards.call_all(QueueList(domain=domain, epoch=epoch))
        return sorted((q for reply in replies for q in reply.queues), key=lambda q: q.name)

    async def list_queues(self, request: Request) -> Response:
        domain = path_name(request, "domain", "domain")
        record = await self.gw.catalog.domain(domain)
        return json_response({"queues": await self._queues_of(domain, record.epoch)})

    async def get_queue(self, request: Request) -> Response:
        domain = path_name(request, "domain", "domain")
        queue = path_name(request, "queue", "queue")
        return json_response(await self.gw.queue_call(domain, queue, QueueGet))

    async def delete_queue(self, request: Request) -> Response:
        domain = path_name(request, "domain", "domain")
        queue = path_name(request, "queue", "queue")
        await self.gw.queue_call(domain, queue, QueueDelete)
        return json_response({"status": "success", "deleted": queue})
