"""Consumer groups: create, list, get, replay, TTL, consumers, ack, nack, pending, delete."""

from __future__ import annotations

from typing import Annotated, Any, Awaitable, Callable

import orjson
from msgspec import Meta, Struct
from starlette.requests import Request
from starlette.responses import Response

from gortms.checks import Duration, Name, check_name, convert, to_builtins
from gortms.errors import InvalidParameter
from gortms.models import MAX_SETTLE_IDS, GroupSpec, MessageId, SettleTargets, parse_start
from gortms.partition import CATALOG_SHARD
from gortms.protocol import (MAX_REASON, Ack, ConsumerAdd, ConsumerRemove, DomainList,
                             Extend, GroupCreate, GroupDelete, GroupGet, GroupList,
                             GroupListAll, GroupRequest, GroupSeek, GroupTtl, Nack, PendingGet,
                             Redrive, Settle)
from gateway.context import Gateway
from gateway.params import json_object, path_name, query_as, read_as, read_body
from gateway.responses import JSON, json_response


class SeekBody(Struct, kw_only=True):
    position: str | int | None = None
    timestamp: str | None = None


class TtlBody(Struct, kw_only=True):
    ttl: Duration


class ConsumerBody(Struct, kw_only=True, rename="camel"):
    consumer_id: Name


class NackBody(SettleTargets, frozen=True, kw_only=True):
    delay: Duration | None = None  # None: the queue's retry backoff
    reason: str | None = None


class SettleBody(Struct, frozen=True, kw_only=True):
    """Acks and nacks of one consumer's batch in one request (applied in one shard turn)."""

    ack: Annotated[list[MessageId], Meta(max_length=MAX_SETTLE_IDS)] = []
    nack: Annotated[list[MessageId], Meta(max_length=MAX_SETTLE_IDS)] = []
    delay: Duration | None = None  # for the nacks; None: the queue's retry backoff
    reason: str | None = None

    def __post_init__(self) -> None:
        if not self.ack and not self.nack:
            raise ValueError("give ids to settle: {\"ack\": [\"<id>\", ...], \"nack\": [...]}")
        if len(self.ack) + len(self.nack) > MAX_SETTLE_IDS:
            raise ValueError(f"at most {MAX_SETTLE_IDS} ids per request")


class ExtendBody(SettleTargets, frozen=True, kw_only=True):
    by: Duration | None = None  # None: the queue's ackTimeout


class RedriveBody(Struct, kw_only=True):
    limit: Annotated[int, Meta(ge=1, le=10_000)] = 10_000


class PendingQuery(Struct, kw_only=True):
    limit: Annotated[int, Meta(ge=1, le=10_000)] = 1000


def _ms(duration: Duration | None) -> int | None:
    """A duration for the shard, in milliseconds (None: the queue's own setting)."""
    return None if duration is None else int(duration * 1000)


def _reason(reason: str | None) -> str | None:
    return None if reason is None else reason[:MAX_REASON]


def _success(reply: Any, status: int = 200) -> Response:
    return json_response({"status": "success", **to_builtins(reply)}, status)


class GroupsApi:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    def _where(self, request: Request) -> tuple[str, str]:
        return path_name(request, "domain", "domain"), path_name(request, "queue", "queue")

    async def _group_call(self, request: Request, kind: type[GroupRequest], **fields: Any
                          ) -> Any:
        domain, queue = self._where(request)
        group = path_name(request, "group", "group")
        return await self.gw.queue_call(domain, queue, kind, group=group, **fields)

    async def create(self, request: Request) -> Response:
        domain, queue = self._where(request)
        spec = await read_as(request, self.gw.max_body, GroupSpec)
        reply = await self.gw.queue_call(domain, queue, GroupCreate, spec=spec)
        return _success(reply.group, 201 if reply.created else 200)

    async def list_for_queue(self, request: Request) -> Response:
        domain, queue = self._where(request)
        return json_response(await self.gw.queue_call(domain, queue, GroupList))

    async def list_all(self, request: Request) -> Response:
        catalog = await self.gw.shards.call(CATALOG_SHARD, DomainList())
        epochs = {d.name: d.epoch for d in catalog.domains}
        replies = await self.gw.shards.call_all(GroupListAll(epochs=epochs))
        groups = [g for reply in replies for g in reply.groups]
        groups.sort(key=lambda g: (g.domain, g.queue, g.group_id))
        return json_response({"groups": groups})

    async def get(self, request: Request) -> Response:
        return json_response(await self._group_call(request, GroupGet))

    async def delete(self, request: Request) -> Response:
        await self._group_call(request, GroupDelete)
        return json_response({"status": "success", "deleted": request.path_params["group"]})

    async def seek(self, request: Request) -> Response:
        """Replay: {"position": N | "earliest" | "latest"} or {"timestamp": "<RFC 3339>"}."""
        body = await read_as(request, self.gw.max_body, SeekBody)
        if body.timestamp is not None:
            return json_response(await self._group_call(request, GroupSeek,
                                                        timestamp=body.timestamp))
        if body.position is None:
            raise InvalidParameter("give a position: {\"position\": 42}, {\"position\": "
                                   "\"earliest\"}, or {\"timestamp\": \"2025-06-29T10:30:00Z\"}")
        position = parse_start(body.position, "position")
        return json_response(await self._group_call(request, GroupSeek, position=position))

    async def set_ttl(self, request: Request) -> Response:
        """{"ttl": "24h"} ("0": never expires)."""
        ttl = (await read_as(request, self.gw.max_body, TtlBody)).ttl
        return json_response(await self._group_call(request, GroupTtl, ttl=ttl))

    async def add_consumer(self, request: Request) -> Response:
        body = await read_as(request, self.gw.max_body, ConsumerBody)
        reply = await self._group_call(request, ConsumerAdd, consumer=body.consumer_id)
        return _success(reply.group, 201 if reply.created else 200)

    async def remove_consumer(self, request: Request) -> Response:
        consumer = request.path_params["consumer"]
        if consumer == "self":
            raise InvalidParameter("consumers/self names the calling service account, and "
                                   "authentication is off; name the consumer instead")
        consumer = check_name("consumer", consumer)
        return _success(await self._group_call(request, ConsumerRemove, consumer=consumer))

    async def ack(self, request: Request) -> Response:
        return await self._settling(request, self.acknowledge)

    async def _settling(self, request: Request,
                        handle: Callable[[str, str, str, bytes], Awaitable[bytes]]) -> Response:
        """Ack and settle: the same code serves them on the fast path (gateway/fastpath.py)."""
        domain, queue = self._where(request)
        group = path_name(request, "group", "group")
        body = await handle(domain, queue, group, await read_body(request, self.gw.max_body))
        return Response(body, media_type=JSON)

    async def acknowledge(self, domain: str, queue: str, group: str, data: bytes) -> bytes:
        """{"ids": [...]} and/or {"positions": [...]}: {"acked": n, "unknown": [...]}."""
        targets = convert(json_object(data), SettleTargets)
        record = self.gw.catalog.cached(domain) or await self.gw.catalog.domain(domain)
        reply = await self.gw.send_to_queue(record, queue, Ack, group=group, ids=targets.ids,
                                            positions=targets.positions)
        return b'{"acked":%d,"unknown":%s}' % (reply.acked, orjson.dumps(reply.unknown))

    async def settle(self, request: Request) -> Response:
        return await self._settling(request, self.settle_json)

    async def settle_json(self, domain: str, queue: str, group: str, data: bytes) -> bytes:
        """{"ack": [...], "nack": [...], "delay"?, "reason"?}: one request to the owner shard,
        one turn and one commit: one round trip for a batch with failures in it, not two."""
        body = convert(json_object(data), SettleBody)
        record = self.gw.catalog.cached(domain) or await self.gw.catalog.domain(domain)
        reply = await self.gw.send_to_queue(record, queue, Settle, group=group, ack=body.ack,
                                            nack=body.nack, delay_ms=_ms(body.delay),
                                            reason=_reason(body.reason))
        return orjson.dumps(to_builtins(reply))

    async def nack(self, request: Request) -> Response:
        body = await read_as(request, self.gw.max_body, NackBody)
        return json_response(await self._group_call(
            request, Nack, ids=body.ids, positions=body.positions, delay_ms=_ms(body.delay),
            reason=_reason(body.reason)))

    async def extend(self, request: Request) -> Response:
        """{"ids": [...], "by"?: "5m"}: the leases of those in-flight messages run until
        now + by (default: the queue's ackTimeout)."""
        body = await read_as(request, self.gw.max_body, ExtendBody)
        if body.by is not None and body.by <= 0:
            raise InvalidParameter("by must be a positive duration, such as \"5m\"")
        return json_response(await self._group_call(
            request, Extend, ids=body.ids, positions=body.positions, by_ms=_ms(body.by)))

    async def redrive(self, request: Request) -> Response:
        """POST .../queues/{q}/dlq/redrive {"limit"?}: dead letters back to {q}, in order."""
        domain, queue = self._where(request)
        data = await read_body(request, self.gw.max_body)
        body = convert(json_object(data), RedriveBody) if data.strip() else RedriveBody()
        reply = await self.gw.queue_call(domain, queue, Redrive, limit=body.limit)
        return _success(reply)

    async def pending(self, request: Request) -> Response:
        limit = query_as(request, PendingQuery).limit
        return json_response(await self._group_call(request, PendingGet, limit=limit))
