"""The gateway's port to the shards: `Shards` (the Protocol) and `ZmqShards` (ZeroMQ).

ZmqShards keeps one DEALER socket per shard with many requests in flight, matched to their
replies by request id. Every request has a deadline. A shard that is down fails fast:
ZMQ_IMMEDIATE refuses to queue for a missing peer, and a socket monitor fails every request
in flight the moment the connection drops. Either way the caller gets ShardUnavailable (503).

Sockets are plain pyzmq sockets read through `loop.add_reader` on their edge-triggered
file descriptor, drained completely on every wake-up and after every send.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable, Protocol, Sequence

import orjson
import zmq
from zmq.utils.monitor import recv_monitor_message

from gortms.errors import ShardUnavailable
from gortms.protocol import TOPIC_CATALOG, Op, decode_reply, encode_request, reply_id

log = logging.getLogger(__name__)

Reply = tuple[dict[str, Any], list[bytes]]


class Shards(Protocol):
    count: int

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    def on_catalog_event(self, listener: Callable[[dict[str, Any]], None]) -> None: ...
    def on_reconnect(self, listener: Callable[[int], None]) -> None: ...

    def start_call(self, shard: int, op: Op, body: dict[str, Any], blobs: Sequence[bytes] = (),
                   timeout_s: float | None = None) -> Call: ...
    async def call(self, shard: int, op: Op, body: dict[str, Any], blobs: Sequence[bytes] = (),
                   timeout_s: float | None = None) -> Reply: ...
    async def call_all(self, op: Op, body: dict[str, Any], timeout_s: float | None = None
                       ) -> list[Reply]: ...
    def cancel(self, call: Call) -> None: ...


class Call:
    """One request in flight: its shard, id and the future its reply frames land in."""

    __slots__ = ("shard", "rid", "future", "timeout_s", "_in_flight")

    def __init__(self, shard: int, rid: bytes, future: asyncio.Future[list[bytes]],
                 timeout_s: float, in_flight: dict[bytes, Any] | None = None) -> None:
        self.shard = shard
        self.rid = rid
        self.future = future
        self.timeout_s = timeout_s
        self._in_flight = in_flight  # where the future waits for its reply, if anywhere

    async def reply(self) -> Reply:
        try:
            async with asyncio.timeout(self.timeout_s):
                frames = await self.future
        except ShardUnavailable:
            raise
        except TimeoutError:
            self.forget()
            raise ShardUnavailable(f"shard {self.shard} did not answer within "
                                   f"{self.timeout_s:g}s") from None
        except asyncio.CancelledError:
            self.forget()
            raise
        return decode_reply(frames)

    def forget(self) -> None:
        """No reply is awaited any more: free the slot (a late reply is then dropped)."""
        if self._in_flight is not None:
            self._in_flight.pop(self.rid, None)


class _Link:
    """One shard's DEALER socket, its monitor and the requests in flight on it."""

    def __init__(self, index: int, endpoint: str, context: zmq.Context) -> None:
        self.index = index
        self.endpoint = endpoint
        self.sock = context.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.IMMEDIATE, 1)
        self.sock.setsockopt(zmq.SNDHWM, 1_000_000)
        self.sock.setsockopt(zmq.RCVHWM, 1_000_000)
        self.sock.setsockopt(zmq.RECONNECT_IVL, 50)
        self.sock.setsockopt(zmq.RECONNECT_IVL_MAX, 500)
        # Up means handshake done, not merely connected: with ZMQ_IMMEDIATE a send fails
        # until the ZMTP handshake has attached the pipe.
        self.monitor = self.sock.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED)
        self.sock.connect(endpoint)
        self.pending: dict[bytes, asyncio.Future[list[bytes]]] = {}
        self.connected = asyncio.Event()

    def fail_all(self, reason: str) -> None:
        pending, self.pending = self.pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(ShardUnavailable(reason))

    def close(self) -> None:
        self.sock.disable_monitor()
        self.monitor.close(linger=0)
        self.sock.close(linger=0)


class ZmqShards:
    def __init__(self, endpoints: Sequence[tuple[str, str]], request_timeout_s: float,
                 max_in_flight: int) -> None:
        self.count = len(endpoints)
        self.request_timeout_s = request_timeout_s
        self.max_in_flight = max_in_flight
        self.context = zmq.Context.instance()
        self.links = [_Link(i, request, self.context) for i, (request, _) in enumerate(endpoints)]
        self.events = self.context.socket(zmq.SUB)
        self.events.setsockopt(zmq.LINGER, 0)
        self.events.setsockopt(zmq.SUBSCRIBE, TOPIC_CATALOG)
        for _, event_endpoint in endpoints:
            self.events.connect(event_endpoint)
        self._next_rid = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listeners: list[Callable[[dict[str, Any]], None]] = []
        self._reconnect_listeners: list[Callable[[int], None]] = []

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self, connect_timeout_s: float = 5.0) -> None:
        """Start reading; wait (bounded) until every shard is connected."""
        loop = self._loop = asyncio.get_running_loop()
        for link in self.links:
            loop.add_reader(link.sock.getsockopt(zmq.FD), self._drain, link)
            loop.add_reader(link.monitor.getsockopt(zmq.FD), self._drain_monitor, link)
            self._drain_monitor(link)
        loop.add_reader(self.events.getsockopt(zmq.FD), self._drain_events)
        try:
            async with asyncio.timeout(connect_timeout_s):
                for link in self.links:
                    await link.connected.wait()
        except TimeoutError:
            down = [link.index for link in self.links if not link.connected.is_set()]
            log.warning("shards %s not reachable yet; serving 503 for their queues", down)

    async def close(self) -> None:
        loop = self._loop
        for link in self.links:
            if loop is not None:
                loop.remove_reader(link.sock.getsockopt(zmq.FD))
                loop.remove_reader(link.monitor.getsockopt(zmq.FD))
            link.fail_all("the gateway is stopping")
            link.close()
        if loop is not None:
            loop.remove_reader(self.events.getsockopt(zmq.FD))
        self.events.close(linger=0)

    def on_catalog_event(self, listener: Callable[[dict[str, Any]], None]) -> None:
        self._listeners.append(listener)

    def on_reconnect(self, listener: Callable[[int], None]) -> None:
        self._reconnect_listeners.append(listener)

    def is_connected(self, shard: int) -> bool:
        return self.links[shard].connected.is_set()

    # --- calls ----------------------------------------------------------------------------

    def start_call(self, shard: int, op: Op, body: dict[str, Any], blobs: Sequence[bytes] = (),
                   timeout_s: float | None = None) -> Call:
        link = self.links[shard]
        if not link.connected.is_set():
            raise ShardUnavailable(f"shard {shard} is down or restarting")
        if len(link.pending) >= self.max_in_flight:
            raise ShardUnavailable(f"shard {shard} has {len(link.pending)} requests in flight "
                                   "from this gateway; retry shortly")
        timeout = self.request_timeout_s if timeout_s is None else timeout_s
        self._next_rid += 1
        rid = b"%x" % self._next_rid
        deadline_ms = int((time.time() + timeout) * 1000)
        try:
            link.sock.send_multipart(encode_request(rid, op, deadline_ms, body, blobs),
                                     zmq.NOBLOCK)
        except zmq.Again:
            raise ShardUnavailable(f"shard {shard} is down or restarting") from None
        assert self._loop is not None
        future: asyncio.Future[list[bytes]] = self._loop.create_future()
        link.pending[rid] = future
        self._drain(link)  # the send may have consumed the socket's readable edge
        return Call(shard, rid, future, timeout, link.pending)

    async def call(self, shard: int, op: Op, body: dict[str, Any], blobs: Sequence[bytes] = (),
                   timeout_s: float | None = None) -> Reply:
        return await self.start_call(shard, op, body, blobs, timeout_s).reply()

    async def call_all(self, op: Op, body: dict[str, Any], timeout_s: float | None = None
                       ) -> list[Reply]:
        calls = [self.start_call(i, op, body, (), timeout_s) for i in range(self.count)]
        return list(await asyncio.gather(*(c.reply() for c in calls)))

    def cancel(self, call: Call) -> None:
        """Forget a call; a parked fetch on the shard is dropped too."""
        link = self.links[call.shard]
        call.forget()
        if link.connected.is_set():
            try:
                link.sock.send_multipart(
                    encode_request(b"0", Op.CANCEL, int((time.time() + 5) * 1000),
                                   {"rid": call.rid.decode()}), zmq.NOBLOCK)
            except zmq.Again:
                pass
            self._drain(link)

    # --- reading --------------------------------------------------------------------------

    def _drain(self, link: _Link) -> None:
        recv = link.sock.recv_multipart
        pending = link.pending
        while True:
            try:
                frames = recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            future = pending.pop(reply_id(frames) or b"", None)
            if future is not None and not future.done():
                future.set_result(frames)

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
        while True:
            try:
                _, body = self.events.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            event = orjson.loads(body)
            for listener in self._listeners:
                listener(event)
