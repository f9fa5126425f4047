"""Server-Sent Events: GET /api/domains/{d}/queues/{q}/stream, for clients without WebSockets.

The same live messages as a WebSocket observer gets (gateway/live.py), as `text/event-stream`:

    id: <position>
    event: message
    data: {"type":"message","position":..,"timestamp":..,"id":..,"headers":..,"payload":..}

The event id is the message's position, so a client that reconnects with `Last-Event-ID`
(browsers' EventSource does it by itself), or asks `?from=<position>`, first gets what was
published after that position (read from the queue), then the live stream, without a gap or
a repeat. A client too slow for the stream gets `event: lagged` with `{"dropped": n}`, as on a
WebSocket. A comment line every 15 s keeps proxies from closing an idle stream; deleting the
queue ends it with `event: end`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from gortms.errors import InvalidParameter
from gortms.protocol import Browse, Browsed, spliced
from gateway.context import Gateway
from gateway.live import LiveHub
from gateway.params import path_name

HEARTBEAT_S = 15.0
REPLAY_PAGE = 1000
MAX_POSITION = 2**53


def _event(frame: bytes, position: int) -> bytes:
    # A JSON text holds no raw line break but as whitespace: a space does as well, and an
    # SSE data line must be one line.
    if b"\n" in frame or b"\r" in frame:
        frame = frame.replace(b"\r", b" ").replace(b"\n", b" ")
    return b"id: %d\nevent: message\ndata: %s\n\n" % (position, frame)


def stored_frames(reply: Browsed) -> list[tuple[int, bytes]]:
    """(position, message frame) of stored records, as the live stream shows them."""
    frames = spliced(STORED_MESSAGE, reply.records, ((pos,) for pos in reply.positions))
    return list(zip(reply.positions, frames))


STORED_MESSAGE = b'{"type":"message","position":%%d,"timestamp":"%s",'


def resume_position(request: Request) -> int | None:
    """The last position the client has: ?from= or Last-Event-ID (None: live only)."""
    given = request.query_params.get("from")
    where = "from"
    if given is None:
        given = request.headers.get("last-event-id")
        where = "Last-Event-ID"
    if given is None or given == "":
        return None
    if not given.isdigit() or int(given) > MAX_POSITION:
        raise InvalidParameter(f"{where} must be a position (an integer >= 0), got {given!r}")
    return int(given)


class Stream:
    """One SSE client: an observer of the hub with a bounded buffer."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.chunks: list[bytes] = []
        self.size = 0
        self.dropped = 0
        self.ended: str | None = None
        self.wake = asyncio.Event()

    def live(self, frames: list[bytes], first: int) -> None:
        if self.size >= self.limit:
            self.dropped += len(frames)
            return
        for offset, frame in enumerate(frames):
            event = _event(frame, first + offset)
            self.chunks.append(event)
            self.size += len(event)
        self.wake.set()

    def lost(self, count: int) -> None:
        self.dropped += count
        self.wake.set()

    def end(self, code: int, reason: str) -> None:
        self.ended = reason
        self.wake.set()

    def take(self) -> bytes:
        chunks, self.chunks, self.size = self.chunks, [], 0
        if self.dropped:
            chunks.insert(0, b'event: lagged\ndata: {"dropped":%d}\n\n' % self.dropped)
            self.dropped = 0
        return b"".join(chunks)


class StreamApi:
    def __init__(self, gw: Gateway, hub: LiveHub) -> None:
        self.gw = gw
        self.hub = hub

    async def stream(self, request: Request) -> Any:
        domain = path_name(request, "domain", "domain")
        queue = path_name(request, "queue", "queue")
        after = resume_position(request)
        stream = Stream(self.gw.settings.http.websocket.send_buffer_bytes)
        start = await self.hub.join(domain, queue, stream)  # 404s before the stream starts
        return _StreamResponse(self, domain, queue, stream, start, after)

    async def replay(self, domain: str, queue: str, begin: int, end: int, send: Send) -> None:
        """What was published in [begin, end), read from the queue in pages."""
        record = await self.gw.catalog.domain(domain)
        while begin < end:
            reply: Browsed = await self.gw.send_to_queue(
                record, queue, Browse, from_position=begin, max=min(REPLAY_PAGE, end - begin))
            frames = [_event(f, p) for p, f in stored_frames(reply) if p < end]
            if frames:
                await send({"type": "http.response.body", "body": b"".join(frames),
                            "more_body": True})
            if reply.next_position <= begin:
                return
            begin = reply.next_position


class _StreamResponse:
    def __init__(self, api: StreamApi, domain: str, queue: str, stream: Stream, start: int,
                 after: int | None) -> None:
        self.api = api
        self.domain = domain
        self.queue = queue
        self.stream = stream
        self.start = start
        self.after = after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gone = asyncio.ensure_future(_disconnected(receive))
        draining = asyncio.ensure_future(self.api.gw.draining.wait())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]})
            await send({"type": "http.response.body", "body": b"retry: 2000\n: connected\n\n",
                        "more_body": True})
            if self.after is not None and self.after + 1 < self.start:
                await self.api.replay(self.domain, self.queue, self.after + 1, self.start,
                                      send)
            await self._live(send, gone, draining)
        finally:
            gone.cancel()
            draining.cancel()
            self.api.hub.leave(self.domain, self.queue, self.stream)

    async def _live(self, send: Send, gone: asyncio.Future[Any],
                    draining: asyncio.Future[Any]) -> None:
        stream = self.stream
        while not gone.done() and not draining.done():
            waiter = asyncio.ensure_future(stream.wake.wait())
            await asyncio.wait((waiter, gone, draining), timeout=HEARTBEAT_S,
                               return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            stream.wake.clear()
            body = stream.take() or b": ping\n\n"
            if stream.ended is not None:
                body += b"event: end\ndata: %s\n\n" % orjson.dumps({"reason": stream.ended})
                await send({"type": "http.response.body", "body": body, "more_body": False})
                return
            if gone.done():
                return
            await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
