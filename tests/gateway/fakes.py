"""FakeShards: the gateway's Shards port, answering through a plain function (no sockets)."""

from __future__ import annotations

import asyncio
from typing import Any, Callable

from gortms.errors import GortmsError
from gortms.protocol import CatalogEvent, Request
from gateway.shards import Call

Answer = Callable[[int, Request], Any]


class FakeShards:
    """Records every request and answers it through `answer(shard, request)`, which returns
    the reply or raises a GortmsError; an answer may also be an awaitable future."""

    def __init__(self, answer: Answer, count: int = 2) -> None:
        self.count = count
        self.answer = answer
        self.requests: list[tuple[int, Request]] = []
        self.cancelled: list[int] = []
        self.catalog_listeners: list[Callable[[CatalogEvent], None]] = []
        self.reconnect_listeners: list[Callable[[int], None]] = []
        self._rid = 0

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def on_catalog_event(self, listener: Callable[[CatalogEvent], None]) -> None:
        self.catalog_listeners.append(listener)

    def on_reconnect(self, listener: Callable[[int], None]) -> None:
        self.reconnect_listeners.append(listener)

    def on_live_event(self, listener: Callable[[Any], None]) -> None:
        self.live_listener = listener

    def subscribe_live(self, topic: bytes) -> None:
        self.subscribed = getattr(self, "subscribed", set()) | {topic}

    def unsubscribe_live(self, topic: bytes) -> None:
        self.subscribed = getattr(self, "subscribed", set()) - {topic}

    def abandon(self, call: Call) -> None:
        self.cancelled.append(call.rid)

    def send(self, shard: int, request: Request, timeout_s: float | None = None) -> Call:
        self.requests.append((shard, request))
        self._rid += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        try:
            reply = self.answer(shard, request)
        except GortmsError as exc:
            future.set_exception(exc)
        else:
            if isinstance(reply, asyncio.Future):
                future = reply
            else:
                future.set_result(reply)
        return Call(shard, self._rid, future)

    async def call(self, shard: int, request: Request, timeout_s: float | None = None) -> Any:
        return await self.send(shard, request, timeout_s)

    async def call_all(self, request: Request, timeout_s: float | None = None) -> list[Any]:
        return [await self.call(i, request) for i in range(self.count)]

    def cancel(self, call: Call) -> None:
        self.cancelled.append(call.rid)

    def sent(self, kind: type[Request]) -> list[tuple[int, Request]]:
        return [(shard, r) for shard, r in self.requests if type(r) is kind]
