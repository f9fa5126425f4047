"""Queue WebSockets, sync (`QueueSocket`, on websockets.sync) and async (`AsyncQueueSocket`,
on websockets.asyncio): observe a queue, publish on it, consume from a group with credits.

Everything but reading and writing frames is the shared SocketProtocol
(gortms/client/frames.py). A socket starts as an observer: iterating it, or `receive()`,
gives every message published to the queue from `position` on. `consume()` turns it into a
consumer of a group: then it gives deliveries, which `ack`, `nack` and `extend` settle.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Any, AsyncIterator, Callable, Iterable, Iterator, Mapping

from websockets.asyncio.client import ClientConnection as AsyncConnection
from websockets.asyncio.client import connect as async_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect

from gortms.client.calls import Duration, Targets
from gortms.client.errors import BrokerUnreachable
from gortms.client.frames import (DEFAULT_BUFFER, MAX_FRAME_BYTES, SocketProtocol, Target,
                                  timed_out)
from gortms.client.models import Acked, Extended, Message, Nacked, Published
from gortms.errors import GortmsError

PUBLISH_WINDOW = 256  # publishes of one publish_many in flight; the broker pipelines 1024


def _options(target: Target) -> dict[str, Any]:
    # Compression off: frames are small JSON, and deflate would cost both ends CPU per frame.
    return {"additional_headers": dict(target.headers), "ssl": target.ssl,
            "open_timeout": target.timeout_s, "max_size": MAX_FRAME_BYTES,
            "compression": None}


def _closed(exc: ConnectionClosed) -> GortmsError:
    close = exc.rcvd  # None: the connection dropped without a close frame
    return SocketProtocol.closed(close and close.code, close.reason if close else "")


def _unreachable(target: Target, exc: Exception) -> BrokerUnreachable:
    return BrokerUnreachable(f"cannot open {target.url}: {exc}", sent=False)


class _Socket:
    """What both sockets share: the protocol, and the requests it builds."""

    def __init__(self, ws: Any, protocol: SocketProtocol, timeout_s: float) -> None:
        self.ws = ws
        self.protocol = protocol
        self.timeout_s = timeout_s  # for an answer (a reply, the connected frame, a pong)

    @property
    def position(self) -> int:
        """Where this socket's live stream started: the position of the first message
        published after it connected."""
        assert self.protocol.position is not None
        return self.protocol.position

    @property
    def dropped(self) -> int:
        """Observed messages lost: reported `lagged` by the broker, or past the buffer."""
        return self.protocol.dropped

    def _publish_frame(self, payload: Any, headers: Mapping[str, str] | None = None,
                       message_id: str | None = None, idempotency_key: str | None = None,
                       delay: Duration | None = None, deliver_at: Any = None
                       ) -> dict[str, Any]:
        return self.protocol.publish(payload, headers, message_id, idempotency_key, delay,
                                     deliver_at)


class QueueSocket(_Socket):
    ws: ClientConnection

    @classmethod
    def open(cls, target: Target, buffer: int = DEFAULT_BUFFER) -> QueueSocket:
        try:
            ws = connect(target.url, **_options(target)).__enter__()
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise _unreachable(target, exc) from exc
        socket = cls(ws, SocketProtocol(buffer), target.timeout_s)
        try:
            socket._wait(lambda: socket.protocol.position is not None, "connected frame")
        except BaseException:
            socket.close()
            raise
        return socket

    def __enter__(self) -> QueueSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        # Frames not read yet hold the broker's close frame back (websockets stops reading
        # past its small queue): read them away meanwhile, or closing waits its timeout.
        reader = threading.Thread(target=self._discard_until_closed, daemon=True)
        reader.start()
        self.ws.close()
        reader.join(self.timeout_s)

    def _discard_until_closed(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        with contextlib.suppress(ConnectionClosed, TimeoutError, RuntimeError):
            while time.monotonic() < deadline:
                self.ws.recv(max(0.0, deadline - time.monotonic()), decode=False)

    # --- reading ------------------------------------------------------------------------------

    def _feed(self, timeout_s: float | None) -> None:
        try:
            self.protocol.feed(self.ws.recv(timeout_s, decode=False))
        except ConnectionClosed as exc:
            raise _closed(exc) from exc

    def _write(self, data: bytes) -> None:
        try:
            self.ws.send(data.decode())
        except ConnectionClosed as exc:
            raise _closed(exc) from exc

    def _wait(self, ready: Callable[[], bool], what: str) -> None:
        """Read frames until `ready()`; an answer that takes over `timeout_s` fails."""
        deadline = time.monotonic() + self.timeout_s
        while not ready():
            try:
                self._feed(max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise timed_out(what, self.timeout_s) from None

    def receive(self, timeout_s: float | None = None) -> Message:
        """The next message (observed, or delivered once consuming); TimeoutError if none
        comes within `timeout_s` (None: wait as long as it takes)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        protocol = self.protocol
        while not protocol.received:
            self._feed(None if deadline is None else max(0.0, deadline - time.monotonic()))
        message = protocol.take()
        self._refill()
        return message

    def receive_batch(self, timeout_s: float | None = None, most: int = 1000) -> list[Message]:
        """Every message that has arrived (at most `most`), waiting for the first as
        `receive` does."""
        batch = [self.receive(timeout_s), *self.protocol.take_all(most - 1)]
        self._refill()
        return batch

    def __iter__(self) -> Iterator[Message]:
        while True:
            yield self.receive()

    # --- requests -----------------------------------------------------------------------------

    def _request(self, frame: dict[str, Any], wait: bool = True) -> Any:
        request_id, data = self.protocol.request(frame, wait)
        self._write(data)
        if not wait:
            return None
        return self._collect(request_id, frame["type"])

    def _refill(self) -> None:
        due = self.protocol.credit_due()
        if due:
            self._write(self.protocol.credit(due))

    def ping(self) -> None:
        pongs = self.protocol.pongs
        self._write(b'{"type":"ping"}')
        self._wait(lambda: self.protocol.pongs > pongs, "pong")

    def publish(self, payload: Any, **options: Any) -> Published:
        """One message, answered once durable (options as Client.publish)."""
        return self._request(self._publish_frame(payload, **options))

    def publish_many(self, payloads: Iterable[Any], **options: Any) -> list[Published]:
        """Many publishes pipelined (a few hundred in flight), their answers in order."""
        protocol = self.protocol
        sent: list[int] = []
        answered: list[Published] = []
        for payload in payloads:
            if len(sent) - len(answered) >= PUBLISH_WINDOW:
                answered.append(self._collect(sent[len(answered)]))
            request_id, data = protocol.request(self._publish_frame(payload, **options))
            self._write(data)
            sent.append(request_id)
        answered.extend(self._collect(request_id) for request_id in sent[len(answered):])
        return answered

    def _collect(self, request_id: int, what: str = "publish") -> Any:
        self._wait(lambda: self.protocol.has_answer(request_id), f"answer to {what}")
        return self.protocol.answer(request_id)

    def consume(self, group: str, consumer: str | None = None, credits: int = 100,
                batch: bool = False, refill: bool = True) -> QueueSocket:
        """Become a consumer of `group` (created if need be), granted `credits` deliveries;
        `refill`: grant more as messages are taken, else only `credit()` does."""
        protocol = self.protocol
        request_id, data = protocol.request(protocol.consume(group, consumer, credits, batch,
                                                             refill))
        self._write(data)
        self._wait(lambda: protocol.consuming is not None or protocol.has_answer(request_id),
                   "consuming frame")
        if protocol.consuming is None:
            protocol.answer(request_id)  # the error the broker sent instead
        return self

    def credit(self, count: int) -> None:
        self._write(self.protocol.credit(count))

    def ack(self, targets: Targets, wait: bool = True) -> Acked | None:
        return self._request(self.protocol.settle("ack", targets), wait)

    def nack(self, targets: Targets, delay: Duration | None = None, reason: str | None = None,
             wait: bool = True) -> Nacked | None:
        return self._request(self.protocol.settle("nack", targets, delay=delay, reason=reason),
                             wait)

    def extend(self, targets: Targets, by: Duration | None = None,
               wait: bool = True) -> Extended | None:
        return self._request(self.protocol.settle("extend", targets, by=by), wait)


class AsyncQueueSocket(_Socket):
    """As QueueSocket, awaited. Several tasks may share one: reading is serialised, and a
    frame one task reads for another's answer is kept for it."""

    ws: AsyncConnection

    def __init__(self, ws: AsyncConnection, protocol: SocketProtocol, timeout_s: float) -> None:
        super().__init__(ws, protocol, timeout_s)
        self._reading = asyncio.Lock()

    @classmethod
    async def open(cls, target: Target, buffer: int = DEFAULT_BUFFER) -> AsyncQueueSocket:
        try:
            ws = await async_connect(target.url, **_options(target))
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise _unreachable(target, exc) from exc
        socket = cls(ws, SocketProtocol(buffer), target.timeout_s)
        try:
            await socket._wait(lambda: socket.protocol.position is not None, "connected frame")
        except BaseException:
            await socket.close()
            raise
        return socket

    async def __aenter__(self) -> AsyncQueueSocket:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        closing = asyncio.ensure_future(self.ws.close())
        with contextlib.suppress(ConnectionClosed, TimeoutError, RuntimeError):
            async with asyncio.timeout(self.timeout_s):  # as QueueSocket.close: read away
                while not closing.done():
                    await self.ws.recv(decode=False)
        await closing

    # --- reading ------------------------------------------------------------------------------

    async def _feed(self, ready: Callable[[], bool], timeout_s: float | None) -> None:
        """One frame, unless another task's read made `ready()` true meanwhile."""
        async with self._reading:
            if ready():
                return
            try:
                async with asyncio.timeout(timeout_s):
                    data = await self.ws.recv(decode=False)
            except ConnectionClosed as exc:
                raise _closed(exc) from exc
            self.protocol.feed(data)

    async def _write(self, data: bytes) -> None:
        try:
            await self.ws.send(data.decode())
        except ConnectionClosed as exc:
            raise _closed(exc) from exc

    async def _wait(self, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self.timeout_s
        while not ready():
            try:
                await self._feed(ready, max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise timed_out(what, self.timeout_s) from None

    async def receive(self, timeout_s: float | None = None) -> Message:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        protocol = self.protocol
        while not protocol.received:
            await self._feed(lambda: bool(protocol.received),
                             None if deadline is None else max(0.0, deadline - time.monotonic()))
        message = protocol.take()
        await self._refill()
        return message

    async def receive_batch(self, timeout_s: float | None = None,
                            most: int = 1000) -> list[Message]:
        batch = [await self.receive(timeout_s), *self.protocol.take_all(most - 1)]
        await self._refill()
        return batch

    async def __aiter__(self) -> AsyncIterator[Message]:
        while True:
            yield await self.receive()

    # --- requests -----------------------------------------------------------------------------

    async def _request(self, frame: dict[str, Any], wait: bool = True) -> Any:
        request_id, data = self.protocol.request(frame, wait)
        await self._write(data)
        if not wait:
            return None
        return await self._collect(request_id, frame["type"])

    async def _collect(self, request_id: int, what: str = "publish") -> Any:
        await self._wait(lambda: self.protocol.has_answer(request_id), f"answer to {what}")
        return self.protocol.answer(request_id)

    async def _refill(self) -> None:
        due = self.protocol.credit_due()
        if due:
            await self._write(self.protocol.credit(due))

    async def ping(self) -> None:
        pongs = self.protocol.pongs
        await self._write(b'{"type":"ping"}')
        await self._wait(lambda: self.protocol.pongs > pongs, "pong")

    async def publish(self, payload: Any, **options: Any) -> Published:
        return await self._request(self._publish_frame(payload, **options))

    async def publish_many(self, payloads: Iterable[Any], **options: Any) -> list[Published]:
        protocol = self.protocol
        sent: list[int] = []
        answered: list[Published] = []
        for payload in payloads:
            if len(sent) - len(answered) >= PUBLISH_WINDOW:
                answered.append(await self._collect(sent[len(answered)]))
            request_id, data = protocol.request(self._publish_frame(payload, **options))
            await self._write(data)
            sent.append(request_id)
        for request_id in sent[len(answered):]:
            answered.append(await self._collect(request_id))
        return answered

    async def consume(self, group: str, consumer: str | None = None, credits: int = 100,
                      batch: bool = False, refill: bool = True) -> AsyncQueueSocket:
        protocol = self.protocol
        request_id, data = protocol.request(protocol.consume(group, consumer, credits, batch,
                                                             refill))
        await self._write(data)
        await self._wait(lambda: protocol.consuming is not None or
                         protocol.has_answer(request_id), "consuming frame")
        if protocol.consuming is None:
            protocol.answer(request_id)
        return self

    async def credit(self, count: int) -> None:
        await self._write(self.protocol.credit(count))

    async def ack(self, targets: Targets, wait: bool = True) -> Acked | None:
        return await self._request(self.protocol.settle("ack", targets), wait)

    async def nack(self, targets: Targets, delay: Duration | None = None,
                   reason: str | None = None, wait: bool = True) -> Nacked | None:
        return await self._request(
            self.protocol.settle("nack", targets, delay=delay, reason=reason), wait)

    async def extend(self, targets: Targets, by: Duration | None = None,
                     wait: bool = True) -> Extended | None:
        return await self._request(self.protocol.settle("extend", targets, by=by), wait)
