"""Consumer groups: create, list, get, replay, TTL, consumers, ack, nack, pending, delete."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gortms.errors import InvalidParameter
from gortms.models import (GroupSpec, check_name, check_settle_targets, parse_duration,
                           parse_start)
from gortms.partition import CATALOG_SHARD
from gortms.protocol import Op
from gateway.context import Gateway
from gateway.params import path_name, query_int, read_object
from gateway.responses import json_response

MAX_REASON = 1024  # characters of a nack reason kept with the pending message


class GroupsApi:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    def _where(self, request: Request) -> tuple[str, str]:
        return path_name(request, "domain", "domain"), path_name(request, "queue", "queue")

    async def _group_call(self, request: Request, op: Op, extra: dict[str, Any]
                          ) -> dict[str, Any]:
        domain, queue = self._where(request)
        group = path_name(request, "group", "group")
        body, _ = await self.gw.queue_call(domain, queue, op, {"group": group, **extra})
        return body

    async def create(self, request: Request) -> Response:
        domain, queue = self._where(request)
        body = await read_object(request, self.gw.max_body)
        spec = GroupSpec.from_wire(body)
        reply, _ = await self.gw.queue_call(domain, queue, Op.GROUP_CREATE,
                                                 {"spec": spec.to_wire()})
        status = 201 if reply["created"] else 200
        return json_response({"status": "success", **reply["group"]}, status)

    async def list_for_queue(self, request: Request) -> Response:
        domain, queue = self._where(request)
        reply, _ = await self.gw.queue_call(domain, queue, Op.GROUP_LIST, {})
        return json_response(reply)

    async def list_all(self, request: Request) -> Response:
        catalog, _ = await self.gw.shards.call(CATALOG_SHARD, Op.DOMAIN_LIST, {})
        epochs = {d["name"]: d["epoch"] for d in catalog["domains"]}
        replies = await self.gw.shards.call_all(Op.GROUP_LIST, {"epochs": epochs})
        groups = [g for body, _ in replies for g in body["groups"]]
        groups.sort(key=lambda g: (g["domain"], g["queue"], g["groupId"]))
        return json_response({"groups": groups})

    async def get(self, request: Request) -> Response:
        return json_response(await self._group_call(request, Op.GROUP_GET, {}))

    async def delete(self, request: Request) -> Response:
        await self._group_call(request, Op.GROUP_DELETE, {})
        return json_response({"status": "success", "deleted": request.path_params["group"]})

    async def seek(self, request: Request) -> Response:
        """Replay: {"position": N | "earliest" | "latest"} or {"timestamp": "<RFC 3339>"}."""
        body = await read_object(request, self.gw.max_body, ("position", "timestamp"))
        if body.get("timestamp") is not None:
            move = {"timestamp": body["timestamp"]}
        elif body.get("position") is not None:
            parse_start(body["position"], "position")
            move = {"position": body["position"]}
        else:
            raise InvalidParameter("give a position: {\"position\": 42}, {\"position\": "
                                   "\"earliest\"}, or {\"timestamp\": \"2025-06-29T10:30:00Z\"}")
        return json_response(await self._group_call(request, Op.GROUP_SEEK, move))

    async def set_ttl(self, request: Request) -> Response:
        body = await read_object(request, self.gw.max_body, ("ttl",))
        if "ttl" not in body:
            raise InvalidParameter("ttl is required: {\"ttl\": \"24h\"} (\"0\" never expires)")
        ttl = parse_duration(body["ttl"], "ttl")
        return json_response(await self._group_call(request, Op.GROUP_TTL, {"ttl": ttl}))

    async def add_consumer(self, request: Request) -> Response:
        body = await read_object(request, self.gw.max_body, ("consumerId",))
        consumer = check_name("consumer", body.get("consumerId"))
        reply = await self._group_call(request, Op.CONSUMER_ADD, {"consumer": consumer})
        return json_response({"status": "success", **reply["group"]},
                             201 if reply["created"] else 200)

    async def remove_consumer(self, request: Request) -> Response:
        consumer = request.path_params["consumer"]
        if consumer == "self":
            raise InvalidParameter("consumers/self names the calling service account, and "
                                   "authentication is off; name the consumer instead")
        consumer = check_name("consumer", consumer)
        reply = await self._group_call(request, Op.CONSUMER_REMOVE, {"consumer": consumer})
        return json_response({"status": "success", **reply})

    async def ack(self, request: Request) -> Response:
        body = await read_object(request, self.gw.max_body, ("ids", "positions"))
        ids, positions = check_settle_targets(body)
        reply = await self._group_call(request, Op.ACK, {"ids": ids, "positions": positions})
        return json_response(reply)

    async def nack(self, request: Request) -> Response:
        body = await read_object(request, self.gw.max_body, ("ids", "positions", "delay",
                                                              "reason"))
        ids, positions = check_settle_targets(body)
        extra: dict[str, Any] = {"ids": ids, "positions": positions}
        delay = parse_duration(body.get("delay", 0), "delay")
        reason = body.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise InvalidParameter("reason must be a string")
        extra["delayMs"] = int(delay * 1000)
        if reason is not None:
            extra["reason"] = reason[:MAX_REASON]
        return json_response(await self._group_call(request, Op.NACK, extra))

    async def pending(self, request: Request) -> Response:
        limit = query_int(request, ("limit",), 1000, 1, 10_000)
        return json_response(await self._group_call(request, Op.PENDING, {"limit": limit}))

