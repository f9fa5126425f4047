"""Domains and queues: /api/domains[/{domain}[/queues[/{queue}]]]."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gortms.errors import InvalidConfig, InvalidParameter, UnsupportedFeature
from gortms.models import QueueConfig, check_name, fold_keys
from gortms.partition import CATALOG_SHARD
from gortms.protocol import Op
from gortms.schema import check_schema
from gateway.context import Gateway
from gateway.params import path_name, read_object
from gateway.responses import json_response

DOMAIN_KEYS = ("name", "schema", "queueConfigs", "routingRules")


def parse_queue_configs(raw: object) -> dict[str, QueueConfig]:
    """`queueConfigs` as the Go server took it ({name: config}) or as [{name, config}]."""
    if raw is None:
        return {}
    if isinstance(raw, list):
        pairs = []
        for i, item in enumerate(raw):
            if isinstance(item, dict):
                item = fold_keys(item, ("name", "config"), "", strict=False)
            if not isinstance(item, dict) or "name" not in item:
                raise InvalidConfig(f"queueConfigs[{i}] must be an object with a name")
            pairs.append((item["name"], item.get("config")))
    elif isinstance(raw, dict):
        pairs = list(raw.items())
    else:
        raise InvalidConfig("queueConfigs must map queue names to queue configs")
    configs = {}
    for name, config in pairs:
        configs[check_name("queue", name)] = QueueConfig.from_wire(config)
    return configs


class DomainsApi:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    # --- domains ------------------------------------------------------------------------------

    async def create_domain(self, request: Request) -> Response:
        body = await read_object(request, self.gw.max_body, DOMAIN_KEYS)
        name = check_name("domain", body.get("name"))
        schema = check_schema(body.get("schema"))
        queues = parse_queue_configs(body.get("queueConfigs"))
        if body.get("routingRules"):
            raise UnsupportedFeature("routingRules are not supported by this version yet; "
                                     "create the domain without them")
        await self.gw.shards.call(CATALOG_SHARD, Op.DOMAIN_CREATE,
                                  {"name": name, "schema": schema})
        self.gw.catalog.forget(name)
        if queues:
            await asyncio.gather(*(self._create_queue(name, q, c) for q, c in queues.items()))
        return json_response({"status": "success", "domain": name}, 201)

    async def list_domains(self, request: Request) -> Response:
        (catalog, _), stats = await self._domains_and_stats()
        domains = []
        for record in catalog["domains"]:
            counts = stats.get(record["name"], {})
            domains.append({"name": record["name"],
                            "queueCount": counts.get("queueCount", 0),
                            "messageCount": counts.get("messageCount", 0)})
        return json_response({"domains": domains})

    async def _domains_and_stats(self) -> tuple[Any, dict[str, dict[str, int]]]:
        catalog = await self.gw.shards.call(CATALOG_SHARD, Op.DOMAIN_LIST, {})
        epochs = {d["name"]: d["epoch"] for d in catalog[0]["domains"]}
        replies = await self.gw.shards.call_all(Op.DOMAIN_STATS, {"epochs": epochs})
        stats: dict[str, dict[str, int]] = {}
        for body, _ in replies:
            for domain, counts in body["domains"].items():
                total = stats.setdefault(domain, {})
                for key, value in counts.items():
                    total[key] = total.get(key, 0) + value
        return catalog, stats

    async def get_domain(self, request: Request) -> Response:
        name = path_name(request, "domain", "domain")
        record, _ = await self.gw.shards.call(CATALOG_SHARD, Op.DOMAIN_GET, {"name": name})
        queues = await self._queues_of(name, record["epoch"])
        return json_response({"name": name, "schema": record.get("schema"), "queues": queues,
                              "routes": []})

    async def delete_domain(self, request: Request) -> Response:
        name = path_name(request, "domain", "domain")
        record, _ = await self.gw.shards.call(CATALOG_SHARD, Op.DOMAIN_GET, {"name": name})
        # Queues first: if a shard is down this fails (503) with the domain still listed, and
        # a retry finishes the job; deleting the record first could strand data on that shard.
        await self.gw.shards.call_all(Op.DOMAIN_DROP, {"domain": name, "epoch": record["epoch"]})
        await self.gw.shards.call(CATALOG_SHARD, Op.DOMAIN_DELETE, {"name": name})
        self.gw.catalog.forget(name)
        return json_response({"status": "success", "deleted": name})

    # --- queues -------------------------------------------------------------------------------

    async def _create_queue(self, domain: str, queue: str, config: QueueConfig
                            ) -> dict[str, Any]:
        info, _ = await self.gw.queue_call(domain, queue, Op.QUEUE_CREATE,
                                                {"config": config.to_wire()})
        return info

    async def create_queue(self, request: Request) -> Response:
        domain = path_name(request, "domain", "domain")
        body = await read_object(request, self.gw.max_body, ("name", "config"))
        if "name" not in body:
            raise InvalidParameter("name is required: {\"name\": \"orders\", \"config\": {...}}")
        queue = check_name("queue", body["name"])
        config = QueueConfig.from_wire(body.get("config"))
        info = await self._create_queue(domain, queue, config)
        return json_response({"status": "success", "queue": queue, "config": info["config"]},
                             201)

    async def _queues_of(self, domain: str, epoch: int) -> list[dict[str, Any]]:
        replies = await self.gw.shards.call_all(Op.QUEUE_LIST, {"domain": domain,
                                                                "epoch": epoch})
        queues = [q for body, _ in replies for q in body["queues"]]
        return sorted(queues, key=lambda q: q["name"])

    async def list_queues(self, request: Request) -> Response:
        domain = path_name(request, "domain", "domain")
        record = await self.gw.catalog.domain(domain)
        return json_response({"queues": await self._queues_of(domain, record.epoch)})

    async def get_queue(self, request: Request) -> Response:
        domain = path_name(request, "domain", "domain")
        queue = path_name(request, "queue", "queue")
        info, _ = await self.gw.queue_call(domain, queue, Op.QUEUE_GET, {})
        return json_response(info)

    async def delete_queue(self, request: Request) -> Response:
        domain = path_name(request, "domain", "domain")
        queue = path_name(request, "queue", "queue")
        await self.gw.queue_call(domain, queue, Op.QUEUE_DELETE, {})
        return json_response({"status": "success", "deleted": queue})
