"""Publishing and consuming: .../messages, .../messages/batch, and both consume forms.

The hot path touches each payload once: parsed for validation, then embedded as the bytes the
client sent (a single publish) inside the stored record. Deliveries go out the same way: the
shard's records are spliced behind position, delivery count and timestamp, never re-encoded.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Mapping

import orjson
from msgspec import Meta, Struct
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive

from gortms.checks import Name, check_message_id, fields_of
from gortms.errors import (Forbidden, GortmsError, GroupNotFound, InvalidJson, InvalidParameter,
                           SchemaViolation)
from gortms.models import parse_duration, parse_ts
from gortms.protocol import Deliveries, Fetch, Publish, Published, deliveries_json, encode_message
from gateway.catalog import Domain
from gateway.context import GENERATED_ID_LENGTH, Gateway
from gateway.params import json_object, parse_json, path_name, query_as, read_body
from gateway.responses import JSON
from gateway.shards import Call

HEADER_PREFIX = "x-header-"
MAX_HEADERS = 64
MAX_IDEMPOTENCY_KEY = 256
MAX_FETCH = 1000
MAX_TIMEOUT_S = 60.0


class ConsumeQuery(Struct, kw_only=True):
    """?count=&timeout=&consumer= (group form), or ?max=&timeout=&consumer=&group= (queue)."""

    count: Annotated[int, Meta(ge=1, le=MAX_FETCH)] | None = None
    max: Annotated[int, Meta(ge=1, le=MAX_FETCH)] | None = None
    timeout: Annotated[float, Meta(ge=0, le=MAX_TIMEOUT_S)] = 0.0
    consumer: Name = "default"
    group: Name | None = None


def message_headers(headers: Mapping[str, str]) -> bytes:
    """X-Header-<name>: value request headers -> the message's headers, as JSON."""
    found = {}
    for name, value in headers.items():
        if name.startswith(HEADER_PREFIX) and len(name) > len(HEADER_PREFIX):
            found[name[len(HEADER_PREFIX):]] = value
    if len(found) > MAX_HEADERS:
        raise InvalidParameter(f"at most {MAX_HEADERS} X-Header-* headers per message")
    return orjson.dumps(found) if found else b"{}"


def idempotency_key(headers: Mapping[str, str]) -> str | None:
    key = headers.get("idempotency-key")
    if key is None:
        return None
    if not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
        raise InvalidParameter(f"Idempotency-Key must have 1 to {MAX_IDEMPOTENCY_KEY} characters")
    return key


def delivery_time(headers: Mapping[str, str]) -> dict[str, int]:
    """`Deliver-At: <RFC 3339>` or `Delay: <duration>`: the Publish fields that keep the
    messages from groups until then (none: {})."""
    at, delay = headers.get("deliver-at"), headers.get("delay")
    if at is None and delay is None:
        return {}
    if at is not None and delay is not None:
        raise InvalidParameter("give Deliver-At or Delay, not both")
    if at is not None:
        return {"deliver_at_ms": max(0, parse_ts(at, "the Deliver-At header"))}
    return {"delay_ms": int(parse_duration(delay, "the Delay header") * 1000)}


def payload_id(payload: dict[str, Any]) -> str | None:
    value = payload.get("id")
    return value if isinstance(value, str) and value else None


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class MessagesApi:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    # --- publishing ---------------------------------------------------------------------------

    async def publish(self, request: Request) -> Response:
        domain = path_name(request, "domain", "domain")
        queue = path_name(request, "queue", "queue")
        data = await read_body(request, self.gw.max_body)
        status, body = await self.publish_one(domain, queue, request.headers, data)
        return Response(body, status, media_type=JSON)

    async def publish_one(self, domain: str, queue: str, headers: Mapping[str, str],
                          data: bytes) -> tuple[int, bytes]:
        """One message (the body); (status, JSON reply)."""
        data = data.strip()
        payload = parse_json(data)
        if not isinstance(payload, dict):
            raise InvalidJson("a message must be a JSON object")
        record = self.gw.catalog.cached(domain) or await self.gw.catalog.domain(domain)
        call, message_id = self.send_one(record, queue, payload, data, message_headers(headers),
                                         headers.get("x-message-id"), idempotency_key(headers),
                                         delivery_time(headers))
        reply: Published = await call
        if reply.duplicate:
            assert reply.message_ids is not None
            return 200, orjson.dumps({"status": "success", "messageId": reply.message_ids[0],
                                      "position": reply.first_position, "duplicate": True})
        return 201, b'{"status":"success","messageId":%s,"position":%d}' % (
            orjson.dumps(message_id), reply.first_position)

    def send_one(self, record: Domain, queue: str, payload: dict[str, Any], data: bytes,
                 headers_json: bytes, message_id: str | None, key: str | None,
                 delivery: dict[str, int]) -> tuple[Call, str]:
        """Check one message (`payload`, and `data`, its JSON) and send it to its shard: the
        call and the message id. Shared by REST and WebSocket publishing."""
        record.validate(payload)
        message_id = message_id or payload_id(payload) or self.gw.ids.one()
        check_message_id(message_id, "the message id")
        blob = encode_message(message_id, headers_json, data)
        return self.gw.send_to_queue(record, queue, Publish, records=[blob], key=key,
                                     **delivery), message_id

    async def publish_batch(self, request: Request) -> Response:
        domain = path_name(request, "domain", "domain")
        queue = path_name(request, "queue", "queue")
        data = await read_body(request, self.gw.max_body)
        status, body = await self.publish_many(domain, queue, request.headers, data)
        return Response(body, status, media_type=JSON)

    async def publish_many(self, domain: str, queue: str, headers: Mapping[str, str],
                           data: bytes) -> tuple[int, bytes]:
        """{"messages": [...]}, all or nothing; (status, JSON reply)."""
        body = json_object(data)
        messages = fields_of(body, ("messages",)).get("messages")
        if not isinstance(messages, list) or not messages:
            raise InvalidJson("the body must be {\"messages\": [message, ...]} with at least "
                              "one message")
        limit = self.gw.settings.gateway.max_batch_messages
        if len(messages) > limit:
            raise InvalidParameter(f"a batch holds at most {limit} messages, got "
                                   f"{len(messages)} (gateway.maxBatchMessages)")
        if "x-message-id" in headers:
            raise InvalidParameter("X-Message-Id names one message; give each message of a "
                                   "batch an \"id\" field instead")
        record = self.gw.catalog.cached(domain) or await self.gw.catalog.domain(domain)
        blobs, ids = self._batch_records(messages, record, headers)
        reply: Published = await self.gw.send_to_queue(
            record, queue, Publish, records=blobs, key=idempotency_key(headers),
            **delivery_time(headers))
        if reply.duplicate:
            assert reply.message_ids is not None
            return 200, orjson.dumps({"status": "success", "count": reply.count,
                                      "messageIds": reply.message_ids,
                                      "firstPosition": reply.first_position, "duplicate": True})
        return 201, b'{"status":"success","count":%d,"messageIds":%s,"firstPosition":%d}' % (
            len(ids), orjson.dumps(ids), reply.first_position)

    def _batch_records(self, messages: list[Any], record: Domain, headers: Mapping[str, str]
                       ) -> tuple[list[bytes], list[str]]:
        """All or nothing: the first bad message rejects the batch, naming its index.

        One tight loop: this is the gateway's work per message in a batch publish."""
        header_json = message_headers(headers)
        validate = record.validate if record.schema is not None else None
        ids = self.gw.ids.take(len(messages))  # replaced where a message names its own
        # A generated id needs no JSON escaping: the record is spliced around it directly.
        between = b'","headers":' + header_json + b',"payload":'
        size = GENERATED_ID_LENGTH.to_bytes(2, "big")
        dumps = orjson.dumps
        blobs = []
        for index, payload in enumerate(messages):
            if type(payload) is not dict:
                raise InvalidJson(f"messages[{index}] must be a JSON object")
            given = payload.get("id")
            try:
                if validate is not None:
                    validate(payload)
                if type(given) is str and given:
                    ids[index] = check_message_id(given, f"messages[{index}].id")
                    blobs.append(encode_message(given, header_json, dumps(payload)))
                    continue
            except (SchemaViolation, InvalidParameter) as exc:
                raise type(exc)(f"messages[{index}]: {exc.message}") from None
            generated = ids[index].encode()
            blobs.append(b'%s%s"id":"%s%s%s}' % (size, generated, generated, between,
                                                 dumps(payload)))
        return blobs, ids

    # --- consuming ----------------------------------------------------------------------------

    async def consume_group(self, request: Request) -> Response:
        """GET .../consumer-groups/{group}/messages?count=&timeout=&consumer= (404 if no group)."""
        domain = path_name(request, "domain", "domain")
        queue = path_name(request, "queue", "queue")
        group = path_name(request, "group", "group")
        body, retry_after = await self.consume(domain, queue, group,
                                               query_as(request, ConsumeQuery), False,
                                               request.receive)
        return Response(body, 200, _retry_after(retry_after), media_type=JSON)

    async def consume_queue(self, request: Request) -> Response:
        """GET .../queues/{queue}/messages?group=&max=&timeout=&consumer= (creates the group)."""
        domain = path_name(request, "domain", "domain")
        queue = path_name(request, "queue", "queue")
        query = query_as(request, ConsumeQuery)
        if query.group is None:
            raise InvalidParameter("group is required, e.g. ?group=processors&max=10&timeout=30")
        # The group is created if need be, which needs manage on the domain.
        may_create = request.state.principal.may("manage", domain)
        try:
            body, retry_after = await self.consume(domain, queue, query.group, query,
                                                   may_create, request.receive)
        except GroupNotFound:
            raise Forbidden(f"consumer group '{query.group}' does not exist, and creating it "
                            f"needs manage:{domain}") from None
        return Response(body, 200, _retry_after(retry_after), media_type=JSON)

    async def consume(self, domain: str, queue: str, group: str, query: ConsumeQuery,
                      create: bool, receive: Receive) -> tuple[bytes, int]:
        """Deliveries as the API's JSON, and for a group whose circuit is open the seconds to
        wait (else 0); a long poll ends early if the client leaves."""
        max_count = query.count or query.max or 10
        deadline = query.timeout + self.gw.settings.gateway.request_timeout
        record = self.gw.catalog.cached(domain) or await self.gw.catalog.domain(domain)
        call = self.gw.send_to_queue(record, queue, Fetch, deadline, group=group,
                                     consumer=query.consumer, max=max_count,
                                     timeout_ms=int(query.timeout * 1000), create=create)
        if query.timeout > 0:
            reply = await self._long_poll(receive, call)
        else:
            reply = await call
        return deliveries_json(reply), reply.retry_after_s

    async def _long_poll(self, receive: Receive, call: Call) -> Deliveries:
        """Wait for the shard, but give up early if the client leaves or the worker stops."""
        gone = asyncio.ensure_future(_disconnected(receive))
        draining = asyncio.ensure_future(self.gw.draining.wait())
        try:
            await asyncio.wait((call.future, gone, draining),
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            draining.cancel()
        if call.future.done():
            return call.future.result()
        self.gw.shards.cancel(call)
        call.future.cancel()
        try:
            await call.future
        except (asyncio.CancelledError, GortmsError):
            pass
        return Deliveries()


def _retry_after(seconds: int) -> dict[str, str] | None:
    return {"Retry-After": str(seconds)} if seconds else None
