"""The WebSocket API: /api/ws/domains/{d}/queues/{q}, to observe, publish and consume.

A connection starts observing: `connected`, then a `message` frame for every message
published to the queue from then on, by any route and any gateway worker (gateway/live.py);
with `?batch=true`, a `messages` frame holding what each hand-over brought; with
`?observe=false`, none (a socket to publish or consume on: the broker does no fan-out work
for it, and it needs no consume permission to open).
On the same socket a client may `publish` (answered `published` once durable, or `error`;
the socket stays usable), `ping` (`pong`), and switch to consumer mode with `consume`: it
stops observing, and receives the group's deliveries, at most as many as the credits it
granted (`consume` gives the first, `credit` adds more, acks do not). `ack`, `nack` and
`extend` settle them exactly as the REST routes do (same leases, retries, dead letters); when
the socket closes, what it still holds is released to the group at once. Replies to one
socket's requests go out in the order the requests came.

Handshake and credentials: `admit` sees the upgrade request (headers, `?token=`) before the
socket is accepted, and decides with the REST routes' credentials (gateway/credentials.py):
observing needs consume on the domain, a `publish` frame publish (else an error frame), a
consumer that would create its group manage. A refusal is never a silent socket: the server
accepts, then closes with a code in the 4000 range, 4000 + the HTTP status a REST client
would get (4400 a bad path, 4401 no valid credential, 4403 no permission, 4404 an unknown
domain or queue, 4410 the queue was deleted, 4503 its shard is unavailable), and a reason.
1001 says the broker is stopping; 1009 a message over four times
http.websocket.maxMessageBytes; 1011 a client that did not answer the server's pings.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
import uuid
from typing import Annotated, Any, Awaitable, Callable
from urllib.parse import parse_qs, unquote

import orjson
from msgspec import Meta, Struct

from gortms.checks import NAME_PATTERN, Name, convert
from gortms.errors import (DomainNotFound, GortmsError, GroupNotFound, InvalidJson,
                           InvalidParameter, PayloadTooLarge, QueueNotFound, ShardUnavailable)
from gortms.models import parse_duration
from gortms.protocol import (MAX_REASON, Ack, Acked, CatalogEvent, Deliveries, Extend, Extended,
                             Fetch, Nack, Nacked, Published, QueueGet, Release, spliced)
from gateway.catalog import Domain
from gateway.context import Gateway
from gateway.credentials import ANONYMOUS, Principal
from gateway.guard import Guard, authorize, client_address, on
from gateway.live import GONE, LiveHub
from gateway.messages import MAX_HEADERS, MessagesApi, delivery_time, idempotency_key
from gateway.outbox import LiveFlusher, Outbox, text_frame
from gateway.shards import Call

log = logging.getLogger(__name__)

PATH = re.compile(r"/api/ws/domains/([^/]+)/queues/([^/]+)/?")
_NAME = re.compile(NAME_PATTERN)

MAX_PIPELINED = 1024  # requests of one socket awaiting their replies; past it, reading waits
MAX_IDS = 10_000  # ids in one ack, nack or extend frame
MAX_DELIVERY = 1000  # messages asked for in one fetch
LONG_POLL_MS = 20_000  # a consumer's parked fetch is renewed this often
RETRY_S = 1.0  # after a failed fetch (shard unavailable), before the next
STOPPING = 1001

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


# --- client frames ------------------------------------------------------------------------------


class PublishFrame(Struct, kw_only=True, rename="camel"):
    type: str
    payload: Any
    headers: Annotated[dict[str, str], Meta(max_length=MAX_HEADERS)] = {}
    id: str | None = None
    idempotency_key: str | None = None
    deliver_at: str | None = None
    delay: str | None = None
    request_id: Any = None


class ConsumeFrame(Struct, kw_only=True, rename="camel"):
    type: str
    group: Name
    consumer: Name | None = None
    credits: Annotated[int, Meta(ge=0)] = 0
    batch: bool = False  # one `messages` frame per fetch instead of a `message` frame each


class CreditFrame(Struct, kw_only=True, rename="camel"):
    type: str
    count: Annotated[int, Meta(ge=1)]


class SettleFrame(Struct, kw_only=True, rename="camel"):
    """ack, nack and extend: ackIds (positions) or message ids."""

    type: str
    ids: Annotated[list[int | str], Meta(min_length=1, max_length=MAX_IDS)]
    delay: str | None = None  # nack
    reason: Annotated[str, Meta(max_length=MAX_REASON)] | None = None  # nack
    by: str | None = None  # extend
    request_id: Any = None


FRAME_TYPES = ("ping", "publish", "consume", "credit", "ack", "nack", "extend")


def error_frame(exc: GortmsError, request_id: Any = None) -> bytes:
    body: dict[str, Any] = {"type": "error", "error": exc.code, "message": exc.message}
    if request_id is not None:
        body["requestId"] = request_id
    return orjson.dumps(body)


def _with_request_id(body: dict[str, Any], request_id: Any) -> bytes:
    if request_id is not None:
        body["requestId"] = request_id
    return orjson.dumps(body)


def delivery_frames(reply: Deliveries) -> list[bytes]:
    """Consumer-mode `message` frames, each with its ackId (the position), spliced from the
    stored records like REST deliveries (gortms/protocol/records.py)."""
    return spliced(CONSUMER_MESSAGE, reply.records,
                   ((pos, pos, count) for pos, count in zip(reply.positions, reply.counts)))


CONSUMER_MESSAGE = (b'{"type":"message","ackId":%%d,"position":%%d,"deliveryCount":%%d,'
                    b'"timestamp":"%s",')


# --- the endpoint -------------------------------------------------------------------------------


class SocketsApi:
    """Every WebSocket of this worker: the ASGI app for the `websocket` scope."""

    def __init__(self, gw: Gateway, hub: LiveHub, messages: MessagesApi, guard: Guard) -> None:
        self.gw = gw
        self.hub = hub
        self.messages = messages
        self.guard = guard
        self.connections: set[Connection] = set()
        self.flusher = LiveFlusher()
        hub.flushers.append(self.flusher.flush)
        # (frames, their WebSocket encoding): the last live event's, shared by its observers
        self.encoded: list[Any] = [None, None, None]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        outbox = Outbox(send, self.gw.settings.http.websocket.send_buffer_bytes, self.flusher)
        match = PATH.fullmatch(scope["path"])
        if match is None:
            await outbox.close(4404, f"no WebSocket at {scope['path']}; use "
                                     "/api/ws/domains/{domain}/queues/{queue}")
            return
        domain, queue = unquote(match.group(1)), unquote(match.group(2))
        if not (_NAME.fullmatch(domain) and _NAME.fullmatch(queue)):
            await outbox.close(4400, "domain and queue must be names of 1-128 characters "
                                     "of A-Z a-z 0-9 . _ : -")
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        flags = {}
        for flag, default in (("batch", "false"), ("observe", "true")):
            value = query.get(flag, [default])[-1].lower()
            if value not in ("true", "false", "1", "0"):
                await outbox.close(4400, f"{flag} must be true or false")
                return
            flags[flag] = value in ("true", "1")
        try:
            principal = await self.admit(scope, domain, flags["observe"])
        except GortmsError as exc:
            await outbox.close(4000 + exc.http_status, exc.message)
            return
        if self.gw.draining.is_set():
            await outbox.close(STOPPING, "the broker is shutting down")
            return
        connection = Connection(self, domain, queue, receive, outbox, principal,
                                flags["batch"], flags["observe"])
        self.connections.add(connection)
        try:
            await connection.run()
        finally:
            self.connections.discard(connection)

    def attach(self) -> None:
        """Consumers are no observers: the hub does not close them when their queue goes."""
        self.gw.shards.on_catalog_event(self.on_catalog)

    def on_catalog(self, event: CatalogEvent) -> None:
        if not event.deleted or event.kind not in ("queue", "domain"):  # see LiveHub.on_catalog
            return
        what = "queue" if event.kind == "queue" else "domain"
        for connection in list(self.connections):
            if connection.consumer is not None and connection.domain == event.domain and (
                    what == "domain" or connection.queue == event.queue):
                name = f"{event.domain}/{event.queue}" if what == "queue" else event.domain
                connection.end(GONE, f"{what} '{name}' was deleted")

    async def admit(self, scope: Scope, domain: str, observe: bool = True) -> Principal:
        """Who opens the socket: a token (`Authorization: Bearer`, or `?token=` from a
        browser) or HMAC headers over GET, the path and an empty body. Observing needs
        consume on the domain (a socket opened with ?observe=false needs nothing more than
        a credential); publishing and consuming are checked per frame."""
        if not self.guard.enabled:
            return ANONYMOUS
        headers = {k.decode("latin-1"): v.decode("latin-1")
                   for k, v in reversed(scope["headers"])}
        token = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
        principal = await self.guard.credentials.authenticate(
            "GET", scope["path"], headers, token[0] if token else None, b"",
            client_address(scope), scope.get("scheme", "ws"))
        if observe:
            authorize(principal, on("consume"), domain)
        return principal

    async def close_all(self, code: int, reason: str) -> None:
        await asyncio.gather(*(c.outbox.close(code, reason) for c in list(self.connections)),
                             return_exceptions=True)


class Connection:
    """One WebSocket: an observer of its queue (until `consume`), a publisher, a consumer."""

    def __init__(self, api: SocketsApi, domain: str, queue: str, receive: Receive,
                 outbox: Outbox, principal: Principal, batch: bool = False,
                 observe: bool = True) -> None:
        self.api = api
        self.principal = principal
        # ?batch=true: the live messages of one hand-over come as one `messages` frame
        self.batch = batch
        # ?observe=false: a socket to publish (or consume) on, without the live stream
        self.observe = observe
        self.gw = api.gw
        self.domain = domain
        self.queue = queue
        self.receive = receive
        self.outbox = outbox
        self.settings = api.gw.settings.http.websocket
        self.observing = False
        self.consumer: Consumer | None = None
        # Replies in request order: (a call in flight or None, its frame maker or the frame).
        self.replies: collections.deque[tuple[Call | None, Any]] = collections.deque()
        self.responder: asyncio.Task[None] | None = None
        self.room = asyncio.Event()

    # --- the hub's observer -------------------------------------------------------------------

    def live(self, frames: list[bytes], first: int) -> None:
        # The frames as WebSocket frames, built once for every socket of this hand-over
        # (one encoding per frame, one for the batch form).
        cache = self.api.encoded
        if cache[0] is not frames:
            cache[0], cache[1], cache[2] = frames, None, None
        slot = 2 if self.batch else 1
        encoded = cache[slot]
        if encoded is None:
            encoded = cache[slot] = text_frame(
                b'{"type":"messages","count":%d,"messages":[%s]}' % (
                    len(frames), b",".join(frames))) if self.batch else \
                b"".join(text_frame(f) for f in frames)
        self.outbox.live(frames, encoded)

    def lost(self, count: int) -> None:
        self.outbox.lost(count)

    def end(self, code: int, reason: str) -> None:
        self.observing = False
        asyncio.ensure_future(self.outbox.close(code, reason))

    # --- the connection -----------------------------------------------------------------------

    async def run(self) -> None:
        try:
            if self.observe:
                position = await self.api.hub.join(self.domain, self.queue, self)
            else:  # the queue must exist all the same; the stream would start here
                info = await self.gw.queue_call(self.domain, self.queue, QueueGet)
                position = info.last_position + 1
        except GortmsError as exc:
            await self.outbox.close(4000 + exc.http_status, exc.message)
            return
        self.observing = self.observe
        try:
            self.outbox.reply(orjson.dumps({
                "type": "connected", "subscriptionId": str(uuid.uuid4()),
                "domain": self.domain, "queue": self.queue, "position": position}))
            while True:
                message = await self.receive()
                if message["type"] == "websocket.disconnect":
                    break
                text = message.get("text")
                data = text.encode() if text is not None else message.get("bytes") or b""
                await self.on_frame(data)
        finally:
            await self.finish()

    async def finish(self) -> None:
        if self.observing:
            self.observing = False
            self.api.hub.leave(self.domain, self.queue, self)
        if self.consumer is not None:
            self.consumer.stop()
        if self.responder is not None:
            self.responder.cancel()
        self.outbox.closed = True

    async def on_frame(self, data: bytes) -> None:
        request_id = None
        try:
            if len(data) > self.settings.max_message_bytes:
                raise PayloadTooLarge(f"a WebSocket message holds at most "
                                      f"{self.settings.max_message_bytes} bytes "
                                      "(http.websocket.maxMessageBytes)")
            try:
                frame = orjson.loads(data)
            except orjson.JSONDecodeError:
                raise InvalidJson("a frame must be a JSON object") from None
            if not isinstance(frame, dict):
                raise InvalidJson("a frame must be a JSON object")
            request_id = frame.get("requestId")
            kind = frame.get("type")
            if kind == "publish":
                await self.publish(convert(frame, PublishFrame, "frame."))
            elif kind == "ping":
                self.outbox.reply(b'{"type":"pong"}')
            elif kind in ("ack", "nack", "extend"):
                await self.settle(convert(frame, SettleFrame, "frame."))
            elif kind == "credit":
                self.credit(convert(frame, CreditFrame, "frame."))
            elif kind == "consume":
                self.consume(convert(frame, ConsumeFrame, "frame."))
            else:
                raise InvalidParameter(f"unknown frame type {kind!r}; expected one of "
                                       f"{', '.join(FRAME_TYPES)}")
        except GortmsError as exc:
            await self._answer(None, error_frame(exc, request_id))

    # --- replies, in order --------------------------------------------------------------------

    async def _answer(self, call: Call | None, reply: Any) -> None:
        """Queue a reply (a frame, or a call and how to turn its result into one)."""
        while len(self.replies) >= MAX_PIPELINED:
            self.room.clear()
            await self.room.wait()
        if call is None and not self.replies:
            self.outbox.reply(reply)
            return
        self.replies.append((call, reply))
        if self.responder is None:
            self.responder = asyncio.ensure_future(self._respond())

    async def _respond(self) -> None:
        replies = self.replies
        try:
            while replies:
                call, reply = replies[0]
                if call is not None:
                    try:
                        frame = reply(await asyncio.shield(call.future))
                    except GortmsError as exc:
                        frame = error_frame(exc, getattr(reply, "request_id", None))
                    except Exception:  # a bug (a malformed reply): answer, keep serving
                        log.exception("answering a WebSocket request failed")
                        frame = error_frame(GortmsError("internal error"),
                                            getattr(reply, "request_id", None))
                else:
                    frame = reply
                replies.popleft()
                self.room.set()
                self.outbox.reply(frame)
        finally:
            self.responder = None

    # --- publishing ---------------------------------------------------------------------------

    async def publish(self, frame: PublishFrame) -> None:
        self.principal.require("publish", self.domain)
        payload = frame.payload
        if not isinstance(payload, dict):
            raise InvalidJson("payload must be a JSON object")
        delivery: dict[str, str] = {}
        if frame.deliver_at is not None:
            delivery["deliver-at"] = frame.deliver_at
        if frame.delay is not None:
            delivery["delay"] = frame.delay
        key = idempotency_key({"idempotency-key": frame.idempotency_key}
                              if frame.idempotency_key is not None else {})
        catalog = self.gw.catalog
        record = catalog.cached(self.domain) or await catalog.domain(self.domain)
        call, message_id = self.api.messages.send_one(
            record, self.queue, payload, orjson.dumps(payload),
            orjson.dumps(frame.headers) if frame.headers else b"{}", frame.id, key,
            delivery_time(delivery))
        await self._answer(call, _Published(message_id, frame.request_id))

    # --- consuming ----------------------------------------------------------------------------

    def consume(self, frame: ConsumeFrame) -> None:
        if self.consumer is not None:
            raise InvalidParameter(f"this socket already consumes for group "
                                   f"'{self.consumer.group}'")
        if frame.credits > self.settings.max_credits:
            raise InvalidParameter(f"credits must be at most {self.settings.max_credits} "
                                   "(http.websocket.maxCredits)")
        if self.observing:  # a consumer gets deliveries, not the observers' stream
            self.observing = False
            self.api.hub.leave(self.domain, self.queue, self)
        consumer = frame.consumer or f"ws-{uuid.uuid4().hex[:12]}"
        self.consumer = Consumer(self, frame.group, consumer, frame.credits,
                                 self.principal.may("manage", self.domain), frame.batch)
        self.outbox.reply(orjson.dumps({"type": "consuming", "group": frame.group,
                                        "consumer": consumer, "credits": frame.credits,
                                        "batch": frame.batch}))

    def credit(self, frame: CreditFrame) -> None:
        consumer = self._consumer()
        if consumer.credits + frame.count > self.settings.max_credits:
            raise InvalidParameter(f"credits would be {consumer.credits + frame.count}; at "
                                   f"most {self.settings.max_credits} may be unspent "
                                   "(http.websocket.maxCredits)")
        consumer.add_credits(frame.count)

    async def settle(self, frame: SettleFrame) -> None:
        consumer = self._consumer()
        positions = [i for i in frame.ids if type(i) is int]
        ids = [i for i in frame.ids if type(i) is str]
        if frame.type == "ack":
            kind, fields, reply = Ack, {}, _Acked
        elif frame.type == "nack":
            delay_ms = None
            if frame.delay is not None:
                delay_ms = int(parse_duration(frame.delay, "delay") * 1000)
            kind, fields, reply = Nack, {"delay_ms": delay_ms, "reason": frame.reason}, _Nacked
        else:
            fields = {}
            if frame.by is not None:
                fields["by_ms"] = max(1, int(parse_duration(frame.by, "by") * 1000))
            kind, reply = Extend, _Extended
        if kind is not Extend:
            consumer.settled(positions, ids)
        record = self.gw.catalog.cached(self.domain) or await self.gw.catalog.domain(self.domain)
        call = consumer.send(record, kind, ids=ids, positions=positions, **fields)
        await self._answer(call, reply(frame.request_id))

    def _consumer(self) -> Consumer:
        if self.consumer is None:
            raise InvalidParameter("send {\"type\":\"consume\",\"group\":...} first")
        return self.consumer


class _Published:
    __slots__ = ("message_id", "request_id")

    def __init__(self, message_id: str, request_id: Any) -> None:
        self.message_id = message_id
        self.request_id = request_id

    def __call__(self, reply: Published) -> bytes:
        body: dict[str, Any] = {"type": "published", "messageId": self.message_id,
                                "position": reply.first_position}
        if reply.duplicate:
            assert reply.message_ids is not None
            body["messageId"] = reply.message_ids[0]
            body["duplicate"] = True
        return _with_request_id(body, self.request_id)


class _Acked:
    __slots__ = ("request_id",)

    def __init__(self, request_id: Any) -> None:
        self.request_id = request_id

    def __call__(self, reply: Acked) -> bytes:
        return _with_request_id({"type": "acked", "acked": reply.acked,
                                 "unknown": reply.unknown}, self.request_id)


class _Nacked(_Acked):
    def __call__(self, reply: Nacked) -> bytes:  # type: ignore[override]
        return _with_request_id({"type": "nacked", "nacked": reply.nacked,
                                 "deadLettered": reply.dead_lettered,
                                 "unknown": reply.unknown}, self.request_id)


class _Extended(_Acked):
    def __call__(self, reply: Extended) -> bytes:  # type: ignore[override]
        return _with_request_id({"type": "extended", "extended": reply.extended,
                                 "deadline": reply.deadline, "unknown": reply.unknown},
                                self.request_id)


class Consumer:
    """A socket's consumer-group membership: its credits, what it holds, its fetch loop."""

    def __init__(self, connection: Connection, group: str, name: str, credits: int,
                 may_create: bool, batch: bool = False) -> None:
        self.connection = connection
        self.batch = batch
        self.may_create = may_create  # the group, if it does not exist (needs manage)
        self.gw = connection.gw
        self.group = group
        self.name = name
        self.credits = credits
        self.held: dict[int, str] = {}  # position -> message id, delivered and not settled
        self.fetch: Call | None = None
        self.wake = asyncio.Event()
        if credits:
            self.wake.set()
        self.task = asyncio.ensure_future(self._fetch_guarded())

    def add_credits(self, count: int) -> None:
        self.credits += count
        self.wake.set()

    def settled(self, positions: list[int], ids: list[str]) -> None:
        """No longer held by this socket, whatever the shard says of them."""
        held = self.held
        for pos in positions:
            held.pop(pos, None)
        if ids:
            gone = set(ids)
            for pos in [p for p, i in held.items() if i in gone]:
                del held[pos]

    def send(self, record: Domain, kind: type, **fields: Any) -> Call:
        return self.gw.send_to_queue(record, self.connection.queue, kind, group=self.group,
                                     **fields)

    async def _fetch_guarded(self) -> None:
        try:
            await self._fetch_forever()
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug: say so and close, rather than a consumer that stalls
            log.exception("a WebSocket consumer of %s/%s failed", self.connection.domain,
                          self.connection.queue)
            await self.connection.outbox.close(1011, "internal error")

    async def _fetch_forever(self) -> None:
        connection = self.connection
        outbox = connection.outbox
        while not outbox.closed:
            if self.credits <= 0:
                self.wake.clear()
                await self.wake.wait()
                continue
            try:
                record = self.gw.catalog.cached(connection.domain) or \
                    await self.gw.catalog.domain(connection.domain)
                self.fetch = self.gw.send_to_queue(
                    record, connection.queue, Fetch,
                    LONG_POLL_MS / 1000 + self.gw.settings.gateway.request_timeout,
                    group=self.group, consumer=self.name,
                    max=min(self.credits, MAX_DELIVERY), timeout_ms=LONG_POLL_MS,
                    create=self.may_create)
                reply: Deliveries = await asyncio.shield(self.fetch.future)
            except (DomainNotFound, QueueNotFound, GroupNotFound) as exc:
                await outbox.close(GONE if isinstance(exc, GroupNotFound) else 4404,
                                   exc.message)
                return
            except GortmsError as exc:
                outbox.reply(error_frame(exc))
                await asyncio.sleep(RETRY_S if isinstance(exc, ShardUnavailable) else
                                    exc.retry_after_s or RETRY_S)
                continue
            finally:
                self.fetch = None
            if reply.circuit is not None:
                outbox.reply(b'{"type":"circuit","state":"%s","retryAfter":%d}' % (
                    reply.circuit.encode(), reply.retry_after_s))
                await asyncio.sleep(max(0.1, min(reply.retry_after_s, 5)))
                continue
            if not reply.positions:
                continue
            for pos, record_bytes in zip(reply.positions, reply.records):
                size = (record_bytes[8] << 8) | record_bytes[9]
                self.held[pos] = record_bytes[10:10 + size].decode(errors="replace")
            self.credits -= len(reply.positions)
            if outbox.closed:
                continue
            frames = delivery_frames(reply)
            if self.batch:  # what one fetch delivered, in one frame: one parse for the client
                outbox.reply(b'{"type":"messages","count":%d,"messages":[%s]}' % (
                    len(frames), b",".join(frames)), bounded=False)
            else:
                for frame in frames:
                    outbox.reply(frame, bounded=False)

    def stop(self) -> None:
        """The socket closed: give back what it holds, and what a fetch in flight may yet
        deliver, at once (Release: not a failure)."""
        self.task.cancel()
        fetch = self.fetch
        if fetch is not None and not fetch.future.done():
            self.gw.shards.abandon(fetch)
            fetch.future.add_done_callback(self._release_late)
        self._release(list(self.held))
        self.held.clear()

    def _release_late(self, future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is None:
            self._release(future.result().positions)

    def _release(self, positions: list[int]) -> None:
        if positions:
            asyncio.ensure_future(self._release_now(positions))

    async def _release_now(self, positions: list[int]) -> None:
        connection = self.connection
        try:
            record = self.gw.catalog.cached(connection.domain) or \
                await self.gw.catalog.domain(connection.domain)
            await self.send(record, Release, positions=positions)
        except GortmsError as exc:  # they come back when their leases run out
            log.warning("releasing %d deliveries of %s/%s group %s: %s", len(positions),
                        connection.domain, connection.queue, self.group, exc)

