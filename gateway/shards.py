"""The gateway's port to the shards: `Shards` (the Protocol) and `ZmqShards` (ZeroMQ).

ZmqShards keeps one DEALER socket per shard with many requests in flight, matched to their
replies by request id. Requests made in one loop tick go to their shard as one frame (see
gortms/protocol/wire.py), sent when the tick's callbacks have run: a burst of publishes costs
one pyzmq send, not one each. Every request has a deadline, enforced by one sweep over what
is in flight instead of a timer per request. A shard that is down fails fast: ZMQ_IMMEDIATE
refuses to queue for a missing peer, and a socket monitor fails every request in flight the
moment the connection drops. Either way the caller gets ShardUnavailable (503).

Sockets are plain pyzmq sockets read through `loop.add_reader` on their edge-triggered
file descriptor, drained completely on every wake-up and after every send.

One SUB socket, connected to every shard's XPUB, carries the catalog events and the live
events of the queues this gateway watches (`subscribe_live`): ZeroMQ filters by topic at the
shard, so a queue nobody here watches sends nothing here.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from typing import Any, Callable, Generator, Protocol

import msgspec
import zmq
from zmq.utils.monitor import recv_monitor_message

from gortms.errors import GortmsError, ShardUnavailable
from gortms.protocol import (TOPIC_CATALOG, TOPIC_LIVE, Ack, Cancel, CatalogEvent, Fetch,
                             LiveHello, LiveMessages, ProtocolError, Publish, Replay, ReplayCheck,
                             Reply, Request, Settle, decode_event, decode_live, decode_replies,
                             encode_requests, reply_value)

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 0.25  # how late a deadline may be noticed

# A signed request's replay check, deferred to ride in the same frame as the request it
# guards (the next one this task sends to `shard`): [check, shard], emptied when used. A
# list, so that a task started meanwhile (it copies the context) shares it, not a copy.
SIGNABLE = frozenset({Publish, Fetch, Ack, Settle})  # carry a Replay themselves
PENDING_REPLAY: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar(
    "pending_replay", default=None)
CANCEL_TIMEOUT_S = 5.0


class Call:
    """One request in flight; awaiting it gives the reply (or raises its error)."""

    __slots__ = ("shard", "rid", "future")

    def __init__(self, shard: int, rid: int, future: asyncio.Future[Any]) -> None:
        self.shard = shard
        self.rid = rid
        self.future = future

    def __await__(self) -> Generator[Any, None, Any]:
        return self.future.__await__()


class Shards(Protocol):
    count: int

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    def on_catalog_event(self, listener: Callable[[CatalogEvent], None]) -> None: ...
    def on_reconnect(self, listener: Callable[[int], None]) -> None: ...
    def on_live_event(self, listener: Callable[[LiveMessages | LiveHello], None]) -> None: ...
    def subscribe_live(self, topic: bytes) -> None: ...
    def unsubscribe_live(self, topic: bytes) -> None: ...

    def send(self, shard: int, request: Request, timeout_s: float | None = None) -> Call: ...
    async def call(self, shard: int, request: Request, timeout_s: float | None = None
                   ) -> Any: ...
    async def call_all(self, request: Request, timeout_s: float | None = None) -> list[Any]: ...
    def cancel(self, call: Call) -> None: ...
    def abandon(self, call: Call) -> None: ...


class _Link:
    """One shard's DEALER socket, its monitor, and the requests on their way or in flight."""

    def __init__(self, index: int, endpoint: str, context: zmq.Context) -> None:
        self.index = index
        self.endpoint = endpoint
        self.sock = context.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.IMMEDIATE, 1)
        self.sock.setsockopt(zmq.SNDHWM, 100_000)
        self.sock.setsockopt(zmq.RCVHWM, 100_000)
        self.sock.setsockopt(zmq.RECONNECT_IVL, 50)
        self.sock.setsockopt(zmq.RECONNECT_IVL_MAX, 500)
        # Up means handshake done, not merely connected: with ZMQ_IMMEDIATE a send fails
        # until the ZMTP handshake has attached the pipe.
        self.monitor = self.sock.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED)
        self.sock.connect(endpoint)
        # request id -> (future, reply type, deadline (monotonic), timeout)
        self.pending: dict[int, tuple[asyncio.Future[Any], type[Reply], float, float]] = {}
        self.outbox: list[tuple[int, int, Request]] = []  # (rid, deadline epoch ms, request)
        self.connected = asyncio.Event()

    def fail_all(self, reason: str) -> None:
        pending, self.pending = self.pending, {}
        self.outbox = []
        for future, *_ in pending.values():
            if not future.done():
                future.set_exception(ShardUnavailable(reason))

    def close(self) -> None:
        self.sock.disable_monitor()
        self.monitor.close(linger=0)
        self.sock.close(linger=0)


class ZmqShards:
    def __init__(self, endpoints: list[tuple[str, str]], request_timeout_s: float,
                 max_in_flight: int) -> None:
        self.count = len(endpoints)
        self.request_timeout_s = request_timeout_s
        self.max_in_flight = max_in_flight
        self.context = zmq.Context.instance()
        self.links = [_Link(i, request, self.context) for i, (request, _) in enumerate(endpoints)]
        self.events = self.context.socket(zmq.SUB)
        self.events.setsockopt(zmq.LINGER, 0)
        # Back soon after a shard restarts (as the DEALERs): live feeds resync through it.
        self.events.setsockopt(zmq.RECONNECT_IVL, 50)
        self.events.setsockopt(zmq.RECONNECT_IVL_MAX, 500)
        self.events.setsockopt(zmq.SUBSCRIBE, TOPIC_CATALOG)
        for _, event_endpoint in endpoints:
            self.events.connect(event_endpoint)
        self._next_rid = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flush_scheduled = False
        self._sweeper: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[CatalogEvent], None]] = []
        self._reconnect_listeners: list[Callable[[int], None]] = []
        self._live_listener: Callable[[LiveMessages | LiveHello], None] | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self, connect_timeout_s: float = 5.0) -> None:
        """Start reading; wait (bounded) until every shard is connected."""
        loop = self._loop = asyncio.get_running_loop()
        for link in self.links:
            loop.add_reader(link.sock.getsockopt(zmq.FD), self._drain, link)
            loop.add_reader(link.monitor.getsockopt(zmq.FD), self._drain_monitor, link)
            self._drain_monitor(link)
        loop.add_reader(self.events.getsockopt(zmq.FD), self._drain_events)
        self._sweeper = asyncio.create_task(self._sweep_forever())
        try:
            async with asyncio.timeout(connect_timeout_s):
                for link in self.links:
                    await link.connected.wait()
        except TimeoutError:
            down = [link.index for link in self.links if not link.connected.is_set()]
            log.warning("shards %s not reachable yet; serving 503 for their queues", down)

    async def close(self) -> None:
        loop = self._loop
        if self._sweeper is not None:
            self._sweeper.cancel()
        for link in self.links:
            if loop is not None:
                loop.remove_reader(link.sock.getsockopt(zmq.FD))
                loop.remove_reader(link.monitor.getsockopt(zmq.FD))
            link.fail_all("the gateway is stopping")
            link.close()
        if loop is not None:
            loop.remove_reader(self.events.getsockopt(zmq.FD))
        self.events.close(linger=0)

    def on_catalog_event(self, listener: Callable[[CatalogEvent], None]) -> None:
        self._listeners.append(listener)

    def on_reconnect(self, listener: Callable[[int], None]) -> None:
        self._reconnect_listeners.append(listener)

    def on_live_event(self, listener: Callable[[LiveMessages | LiveHello], None]) -> None:
        self._live_listener = listener

    def subscribe_live(self, topic: bytes) -> None:
        self.events.setsockopt(zmq.SUBSCRIBE, topic)

    def unsubscribe_live(self, topic: bytes) -> None:
        self.events.setsockopt(zmq.UNSUBSCRIBE, topic)

    def is_connected(self, shard: int) -> bool:
        return self.links[shard].connected.is_set()

    # --- calls ----------------------------------------------------------------------------

    def send(self, shard: int, request: Request, timeout_s: float | None = None) -> Call:
        link = self.links[shard]
        if not link.connected.is_set():
            raise ShardUnavailable(f"shard {shard} is down or restarting")
        if len(link.pending) >= self.max_in_flight:
            raise ShardUnavailable(f"shard {shard} has {len(link.pending)} requests in flight "
                                   "from this gateway; retry shortly")
        timeout = self.request_timeout_s if timeout_s is None else timeout_s
        self._next_rid += 1
        rid = self._next_rid
        assert self._loop is not None
        future: asyncio.Future[Any] = self._loop.create_future()
        link.pending[rid] = (future, request.reply, time.monotonic() + timeout, timeout)
        replay = PENDING_REPLAY.get()
        if replay and replay[1] == shard:
            check: ReplayCheck = replay.pop(0)
            replay.clear()
            if type(request) in SIGNABLE:  # the request carries its check itself
                request = msgspec.structs.replace(request, replay=Replay(
                    check.digest, check.signed_ms, check.until_ms))
            else:  # right before the request it guards: refused with it if seen
                self._next_rid += 1
                link.outbox.append((self._next_rid, int((time.time() + timeout) * 1000),
                                    msgspec.structs.replace(check, guards=rid)))
        self._enqueue(link, rid, timeout, request)
        return Call(shard, rid, future)

    def _enqueue(self, link: _Link, rid: int, timeout_s: float, request: Request) -> None:
        link.outbox.append((rid, int((time.time() + timeout_s) * 1000), request))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._flush)

    async def call(self, shard: int, request: Request, timeout_s: float | None = None) -> Any:
        return await self.send(shard, request, timeout_s)

    async def call_all(self, request: Request, timeout_s: float | None = None) -> list[Any]:
        calls = [self.send(i, request, timeout_s) for i in range(self.count)]
        return list(await asyncio.gather(*(c.future for c in calls)))

    def cancel(self, call: Call) -> None:
        """Forget a call (a late reply is dropped); a parked fetch on the shard is dropped too."""
        link = self.links[call.shard]
        if link.pending.pop(call.rid, None) is not None and link.connected.is_set():
            self._next_rid += 1
            self._enqueue(link, self._next_rid, CANCEL_TIMEOUT_S, Cancel(target=call.rid))

    def abandon(self, call: Call) -> None:
        """Drop a parked fetch whose client left, but still take its reply if the shard
        answered before it saw the cancel (the caller then gives those deliveries back);
        otherwise the call fails within CANCEL_TIMEOUT_S."""
        link = self.links[call.shard]
        entry = link.pending.get(call.rid)
        if entry is None:
            return
        future, reply, _, _ = entry
        link.pending[call.rid] = (future, reply, time.monotonic() + CANCEL_TIMEOUT_S,
                                  CANCEL_TIMEOUT_S)
        if link.connected.is_set():
            self._next_rid += 1
            self._enqueue(link, self._next_rid, CANCEL_TIMEOUT_S, Cancel(target=call.rid))

    # --- sending and reading ------------------------------------------------------------------

    def _flush(self) -> None:
        """Send every link's outbox, as one frame each."""
        self._flush_scheduled = False
        for link in self.links:
            if not link.outbox:
                continue
            outbox, link.outbox = link.outbox, []
            try:
                link.sock.send(encode_requests(outbox), zmq.NOBLOCK)
            except zmq.Again:
                self._fail(link, [rid for rid, _, _ in outbox],
                           f"shard {link.index} is down or restarting")
            self._drain(link)  # the send may have consumed the socket's readable edge

    def _fail(self, link: _Link, rids: list[int], reason: str) -> None:
        for rid in rids:
            entry = link.pending.pop(rid, None)
            if entry is not None and not entry[0].done():
                entry[0].set_exception(ShardUnavailable(reason))

    def _drain(self, link: _Link) -> None:
        recv = link.sock.recv
        pending = link.pending
        while True:
            try:
                frame = recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                replies = decode_replies(frame)
            except ProtocolError as exc:
                log.error("shard %d sent a malformed reply frame: %s", link.index, exc)
                continue
            for rid, status, body in replies:
                entry = pending.pop(rid, None)
                if entry is None or entry[0].done():
                    continue  # given up on, or cancelled
                future = entry[0]
                try:
                    future.set_result(reply_value(status, body, entry[1]))
                except (GortmsError, ProtocolError) as exc:
                    future.set_exception(exc)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            self._sweep(time.monotonic())

    def _sweep(self, now: float) -> None:
        """Fail what is past its deadline: the shard is hung, or far behind."""
        for link in self.links:
            late = [rid for rid, (_, _, deadline, _) in link.pending.items() if deadline <= now]
            for rid in late:
                future, _, _, timeout = link.pending.pop(rid)
                if not future.done():
                    future.set_exception(ShardUnavailable(
                        f"shard {link.index} did not answer within {timeout:g}s"))

    def _drain_monitor(self, link: _Link) -> None:
        while link.monitor.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            event = recv_monitor_message(link.monitor, zmq.NOBLOCK)["event"]
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                was_down = not link.connected.is_set()
                link.connected.set()
                if was_down:
                    log.info("shard %d connected", link.index)
                    for listener in self._reconnect_listeners:
                        listener(link.index)
            elif event == zmq.EVENT_DISCONNECTED:
                link.connected.clear()
                log.warning("shard %d disconnected; %d requests in flight fail", link.index,
                            len(link.pending))
                link.fail_all(f"shard {link.index} went down before answering; the request "
                              "may or may not have been applied (use Idempotency-Key to retry "
                              "publishes safely)")
        self._drain(link)

    def _drain_events(self) -> None:
        recv = self.events.recv_multipart
        while True:
            try:
                frames = recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) < 2:
                log.error("a shard sent an event without a body")
                continue
            topic = frames[0]
            try:
                if topic[:1] == TOPIC_LIVE:  # a queue's events of one interval, in order
                    for body in frames[1:]:
                        live = decode_live(body)
                        if self._live_listener is not None:
                            self._live_listener(live)
                    continue
                event = decode_event(frames[1])
            except ProtocolError as exc:
                log.error("a shard sent a malformed event: %s", exc)
                continue
            if log.isEnabledFor(logging.DEBUG):
                log.debug("catalog event: %s", event)
            for listener in self._listeners:
                listener(event)
