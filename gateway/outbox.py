"""Outbox: what the gateway sends one WebSocket client, with the bound that keeps a slow
client from costing anyone else.

Replies (`connected`, `pong`, `published`, `error`, consumer deliveries) are always sent; live
`message` frames are sent only while the client has less than `limit` bytes waiting, else
dropped and counted, and the count goes out as `{"type":"lagged","dropped":n}` before the next
frame that fits. So what an observer received plus what `lagged` reported equals what was
published, and a client that stops reading never holds up the hub, the shard or the others.

Under uvicorn's websockets-sansio protocol (what the gateway runs), frames are written to the
connection's transport directly: a server text frame is a two-to-ten-byte header and the
payload, and the transport already joins one loop tick's writes into one send (gateway/
writes.py), so fanning a message out to a hundred observers costs a hundred appends, not a
hundred trips through the ASGI send and the protocol's frame encoder. Anything else (another
ASGI server) goes through ASGI `websocket.send` from a writer task, with the same bound.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

Send = Any  # the ASGI send callable

HARD_LIMIT_FACTOR = 4  # replies waiting past limit x this: the client is not reading; close
LIVE_FLUSH_S = 0.005  # live frames are written at most this often per connection


class LiveFlusher:
    """Writes every connection's buffered live frames, LIVE_FLUSH_S after the first one came.

    A send() per observer per message is what fan-out costs most (a hundred observers of a
    queue published to 2,000 times a second: 200,000 syscalls a second); one per observer per
    5 ms bounds that at 200 a second each, whatever the rate, for 5 ms of delay at most.
    Replies are not held back: they are written at once."""

    def __init__(self) -> None:
        self.dirty: set[Outbox] = set()
        self.handle: asyncio.TimerHandle | None = None

    def mark(self, outbox: Outbox) -> None:
        self.dirty.add(outbox)
        if self.handle is None:
            self.handle = asyncio.get_running_loop().call_later(LIVE_FLUSH_S, self.flush)

    def flush(self) -> None:
        """Write what every connection was given (also called right after the hub's
        delivery, gateway/live.py, so frames wait one interval, not two)."""
        if self.handle is not None:
            self.handle.cancel()
        self.handle = None
        dirty, self.dirty = self.dirty, set()
        for outbox in dirty:
            outbox.flush_live()


def text_frame(payload: bytes) -> bytes:
    """An unmasked, unfragmented server text frame (RFC 6455 section 5.2)."""
    size = len(payload)
    if size < 126:
        return b"\x81%c%s" % (size, payload)
    if size < 65536:
        return b"\x81\x7e%s%s" % (size.to_bytes(2, "big"), payload)
    return b"\x81\x7f%s%s" % (size.to_bytes(8, "big"), payload)


class Outbox:
    __slots__ = ("send", "limit", "proto", "dropped", "closed", "_queue",
                 "_queued_bytes", "_wake", "_writer", "_lag_timer", "flusher", "_live",
                 "_live_bytes")

    def __init__(self, send: Send, limit: int, flusher: LiveFlusher | None = None) -> None:
        self.send = send
        self.limit = limit
        self.flusher = flusher
        self._live: list[bytes] = []  # live frames (encoded) waiting for the flusher
        self._live_bytes = 0
        proto = getattr(send, "__self__", None)
        self.proto = proto if isinstance(proto, WebSocketsSansIOProtocol) else None
        self.dropped = 0  # live frames dropped and not reported yet
        self.closed = False
        self._queue: collections.deque[bytes] = collections.deque()  # ASGI path only
        self._queued_bytes = 0
        self._wake: asyncio.Event | None = None
        self._writer: asyncio.Task[None] | None = None
        self._lag_timer: asyncio.TimerHandle | None = None

    # --- sending ------------------------------------------------------------------------------

    def waiting(self) -> int:
        """Bytes given to this client and not yet sent."""
        if self.proto is not None:
            return self.proto.transport.get_write_buffer_size() + self._live_bytes
        return self._queued_bytes

    def reply(self, payload: bytes, bounded: bool = True) -> bool:
        """Send one JSON frame that must not be dropped; False once the connection is closing
        (or was closed because the client stopped reading). `bounded=False` for what the
        client asked for in advance and so bounds itself (deliveries within its credits)."""
        if self.closed:
            return False
        if bounded and self.waiting() > self.limit * HARD_LIMIT_FACTOR:
            self.abort()
            return False
        self._write(payload)
        return True

    def live(self, frames: list[bytes], encoded: bytes | None = None) -> None:
        """Live message frames: sent if they fit under the bound, else counted as dropped.
        `encoded`: the same frames as WebSocket frames, joined (built once for every
        observer of the queue)."""
        if self.closed:
            return
        if self.waiting() >= self.limit:
            self._drop(len(frames))
            return
        if self.dropped:
            self._report_lag()
        if self.flusher is not None and self.proto is not None:
            if encoded is None:
                encoded = b"".join(text_frame(frame) for frame in frames)
            self._live.append(encoded)
            self._live_bytes += len(encoded)
            self.flusher.mark(self)
        else:
            for frame in frames:
                self._write(frame)

    def flush_live(self) -> None:
        """Write the live frames buffered since the last flush, in one write."""
        if not self._live:
            return
        parts, self._live, self._live_bytes = self._live, [], 0
        proto = self.proto
        if self.closed or proto is None or proto.close_sent or proto.disconnected or \
                proto.transport.is_closing():
            return
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        write_now = getattr(proto.transport, "write_now", None)
        (write_now or proto.transport.write)(data)

    def lost(self, count: int) -> None:
        """Messages that never reached this gateway: reported like dropped ones."""
        self._drop(count)

    def _drop(self, count: int) -> None:
        self.dropped += count
        if self._lag_timer is None and not self.closed:
            self._lag_timer = asyncio.get_running_loop().call_later(0.1, self._retry_lag)

    def _retry_lag(self) -> None:
        """A quiet queue still gets its lagged notice once the client has caught up."""
        self._lag_timer = None
        if self.closed or not self.dropped:
            return
        if self.waiting() < self.limit:
            self._report_lag()
        else:
            self._lag_timer = asyncio.get_running_loop().call_later(0.1, self._retry_lag)

    def _report_lag(self) -> None:
        """In the live stream, in order: after the frames it had, before those to come."""
        notice = b'{"type":"lagged","dropped":%d}' % self.dropped
        self.dropped = 0
        if self._live and self.proto is not None:
            frame = text_frame(notice)
            self._live.append(frame)
            self._live_bytes += len(frame)
            return
        self._write(notice)

    def _write(self, payload: bytes) -> None:
        proto = self.proto
        if proto is not None:
            if proto.close_sent or proto.disconnected or proto.transport.is_closing():
                self.closed = True
                return
            proto.transport.write(text_frame(payload))
            return
        self._queue.append(payload)
        self._queued_bytes += len(payload)
        if self._writer is None:
            self._wake = asyncio.Event()
            self._writer = asyncio.ensure_future(self._write_forever())
        assert self._wake is not None
        self._wake.set()

    async def _write_forever(self) -> None:
        assert self._wake is not None
        while not self.closed:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                payload = self._queue.popleft()
                self._queued_bytes -= len(payload)
                try:
                    await self.send({"type": "websocket.send", "text": payload.decode()})
                except Exception:  # the client went away; the reader sees the disconnect
                    self.closed = True
                    return

    # --- closing ------------------------------------------------------------------------------

    async def close(self, code: int, reason: str) -> None:
        """A close frame after what is queued; idempotent."""
        if self.closed:
            return
        self.flush_live()  # what observers were given goes before the close frame
        self._stop()
        while self._queue:  # the ASGI path: what was queued goes first
            payload = self._queue.popleft()
            try:
                await self.send({"type": "websocket.send", "text": payload.decode()})
            except Exception:
                return
        try:
            # A close reason is at most 123 bytes (RFC 6455 5.5.1).
            await self.send({"type": "websocket.close", "code": code,
                             "reason": reason.encode()[:123].decode(errors="ignore")})
        except Exception:
            pass

    def abort(self) -> None:
        """A client that stopped reading while replies piled up: drop the connection."""
        self._stop()
        if self.proto is not None:
            self.proto.transport.close()

    def _stop(self) -> None:
        self.closed = True
        if self._lag_timer is not None:
            self._lag_timer.cancel()
            self._lag_timer = None
        if self._writer is not None:
            self._writer.cancel()
            self._writer = None
