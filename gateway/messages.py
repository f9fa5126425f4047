"""Publishing and consuming: .../messages, .../messages/batch, and both consume forms.

The hot path touches each payload once: parsed for validation, then embedded as the bytes the
client sent (a single publish) inside the stored record. Deliveries go out the same way: the
shard's records are spliced behind position, delivery count and timestamp, never re-encoded.
"""

from __future__ import annotations

import asyncio
from typing import Any, Mapping

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gortms.errors import GortmsError, InvalidJson, InvalidParameter, SchemaViolation
from gortms.models import check_message_id, fold_keys, format_ts
from gortms.protocol import Op, decode_deliveries, encode_message, record_suffix, record_ts
from gateway.catalog import Domain
from gateway.context import Gateway, new_message_ids
from gateway.params import parse_json, path_name, query_int, query_name, query_seconds, read_body
from gateway.responses import json_response
from gateway.shards import Call, Reply

HEADER_PREFIX = "x-header-"
MAX_HEADERS = 64
MAX_IDEMPOTENCY_KEY = 256
MAX_FETCH = 1000
MAX_TIMEOUT_S = 60.0


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


def payload_id(payload: dict[str, Any]) -> str | None:
    value = payload.get("id")
    return value if isinstance(value, str) and value else None


class _Timestamps:
    """RFC 3339 text of record timestamps; a fetch's records mostly share one."""

    __slots__ = ("ms", "text")

    def __init__(self) -> None:
        self.ms = -1
        self.text = b""

    def __call__(self, ms: int) -> bytes:
        if ms != self.ms:
            self.ms, self.text = ms, format_ts(ms).encode()
        return self.text


def deliveries_json(body: dict[str, Any], blobs: list[bytes]) -> bytes:
    stamp = _Timestamps()
    parts = [b'{"position":%d,"deliveryCount":%d,"timestamp":"%s",%s' % (
        pos, count, stamp(record_ts(record)), record_suffix(record))
        for pos, count, record in decode_deliveries(body, blobs)]
    return b'{"messages":[' + b",".join(parts) + b'],"count":%d}' % len(parts)


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


class MessagesApi:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    # --- publishing ---------------------------------------------------------------------------

    async def publish(self, request: Request) -> Response:
        domain = path_name(request, "domain", "domain")
        queue = path_name(request, "queue", "queue")
        data = (await read_body(request, self.gw.max_body)).strip()
        payload = parse_json(data)
        if not isinstance(payload, dict):
            raise InvalidJson("a message must be a JSON object")
        record = await self.gw.catalog.domain(domain)
        record.validate(payload)
        headers = request.headers
        message_id = headers.get("x-message-id") or payload_id(payload) or new_message_ids(1)[0]
        check_message_id(message_id, "the message id")
        blob = encode_message(message_id, message_headers(headers), data)
        reply = await self._publish(record, queue, [blob], headers)
        if reply.get("duplicate"):
            original = reply["original"]
            return json_response({"status": "success", "messageId": original["messageIds"][0],
                                  "position": original["firstPosition"], "duplicate": True})
        return json_response({"status": "success", "messageId": message_id,
                              "position": reply["firstPosition"]}, 201)

    async def publish_batch(self, request: Request) -> Response:
        domain = path_name(request, "domain", "domain")
        queue = path_name(request, "queue", "queue")
        body_in = parse_json(await read_body(request, self.gw.max_body))
        if isinstance(body_in, dict):
            body_in = fold_keys(body_in, ("messages",), "", strict=False)
        messages = body_in.get("messages") if isinstance(body_in, dict) else None
        if not isinstance(messages, list) or not messages:
            raise InvalidJson("the body must be {\"messages\": [message, ...]} with at least "
                              "one message")
        limit = self.gw.settings.gateway.max_batch_messages
        if len(messages) > limit:
            raise InvalidParameter(f"a batch holds at most {limit} messages, got "
                                   f"{len(messages)} (gateway.maxBatchMessages)")
        if "x-message-id" in request.headers:
            raise InvalidParameter("X-Message-Id names one message; give each message of a "
                                   "batch an \"id\" field instead")
        record = await self.gw.catalog.domain(domain)
        blobs, ids = self._batch_records(messages, record.validate, request.headers)
        reply = await self._publish(record, queue, blobs, request.headers)
        if reply.get("duplicate"):
            original = reply["original"]
            return json_response({"status": "success", "count": original["count"],
                                  "messageIds": original["messageIds"],
                                  "firstPosition": original["firstPosition"],
                                  "duplicate": True})
        return json_response({"status": "success", "count": len(ids), "messageIds": ids,
                              "firstPosition": reply["firstPosition"]}, 201)

    async def _publish(self, record: Domain, queue: str, blobs: list[bytes],
                       headers: Mapping[str, str]) -> dict[str, Any]:
        """Send records to the owner shard; {"duplicate": true, "original"} on a repeat."""
        key = idempotency_key(headers)
        extra = {} if key is None else {"key": key}
        reply, _ = await self.gw.start_queue_call(record, queue, Op.PUBLISH, extra,
                                                  blobs).reply()
        return reply

    @staticmethod
    def _batch_records(messages: list[Any], validate: Any, headers: Mapping[str, str]
                       ) -> tuple[list[bytes], list[str]]:
        """All or nothing: the first bad message rejects the batch, naming its index."""
        header_json = message_headers(headers)
        generated = iter(new_message_ids(len(messages)))
        blobs, ids = [], []
        dumps = orjson.dumps
        for index, payload in enumerate(messages):
            if not isinstance(payload, dict):
                raise InvalidJson(f"messages[{index}] must be a JSON object")
            try:
                validate(payload)
                message_id = payload_id(payload) or next(generated)
                check_message_id(message_id, f"messages[{index}].id")
            except (SchemaViolation, InvalidParameter) as exc:
                raise type(exc)(f"messages[{index}]: {exc.message}") from None
            ids.append(message_id)
            blobs.append(encode_message(message_id, header_json, dumps(payload)))
        return blobs, ids

    # --- consuming ----------------------------------------------------------------------------

    async def consume_group(self, request: Request) -> Response:
        """GET .../consumer-groups/{group}/messages?count=&timeout=&consumer= (404 if no group)."""
        group = path_name(request, "group", "group")
        return await self._consume(request, group, create=False)

    async def consume_queue(self, request: Request) -> Response:
        """GET .../queues/{queue}/messages?group=&max=&timeout=&consumer= (creates the group)."""
        group = query_name(request, "group", "group", None)
        if group is None:
            raise InvalidParameter("group is required, e.g. ?group=processors&max=10&timeout=30")
        return await self._consume(request, group, create=True)

    async def _consume(self, request: Request, group: str, create: bool) -> Response:
        domain = path_name(request, "domain", "domain")
        queue = path_name(request, "queue", "queue")
        max_count = query_int(request, ("count", "max"), 10, 1, MAX_FETCH)
        timeout = query_seconds(request, "timeout", 0.0, MAX_TIMEOUT_S)
        consumer = query_name(request, "consumer", "consumer", "default")
        fetch = {"group": group, "consumer": consumer, "max": max_count,
                 "timeoutMs": int(timeout * 1000), "create": create}
        deadline = timeout + self.gw.settings.gateway.request_timeout
        record = await self.gw.catalog.domain(domain)
        call = self.gw.start_queue_call(record, queue, Op.FETCH, fetch, (), deadline)
        if timeout > 0:
            body, blobs = await self._long_poll(request, call)
        else:
            body, blobs = await call.reply()
        return Response(deliveries_json(body, blobs), 200, media_type="application/json")

    async def _long_poll(self, request: Request, call: Call) -> Reply:
        """Wait for the shard, but give up early if the client leaves or the worker stops."""
        reply = asyncio.ensure_future(call.reply())
        gone = asyncio.ensure_future(_disconnected(request))
        draining = asyncio.ensure_future(self.gw.draining.wait())
        try:
            await asyncio.wait((reply, gone, draining), return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            draining.cancel()
        if reply.done():
            return reply.result()
        self.gw.shards.cancel(call)
        reply.cancel()
        try:
            await reply
        except (asyncio.CancelledError, GortmsError):
            pass
        return {"positions": [], "counts": []}, []
