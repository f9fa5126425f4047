"""One write per response: uvicorn writes a response's head and its body separately, and on
uvloop every transport write is a send() at once; joining the writes of one loop tick makes
a response one syscall and one TCP segment, not two (and the client wakes once).

`coalescing(protocol_class)` wraps the transport each connection gets."""

from __future__ import annotations

import asyncio
from typing import Any


class CoalescingTransport:
    """A transport whose writes during one loop tick go out as one, at the end of the tick."""

    __slots__ = ("_transport", "_loop", "_parts")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._parts:
            self._loop.call_soon(self._flush)
        self._parts.append(data)

    def _flush(self) -> None:
        parts, self._parts = self._parts, []
        if parts and not self._transport.is_closing():
            self._transport.write(parts[0] if len(parts) == 1 else b"".join(parts))

    def write_now(self, data: bytes) -> None:
        """Write at once, after what this tick wrote: for callers that batch themselves
        (gateway/outbox.py's live frames), one send, no callback of its own."""
        if self._parts:
            self._parts.append(data)
            return
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._parts))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def coalescing(protocol_class: type) -> type:
    class Coalescing(protocol_class):  # type: ignore[misc, valid-type]
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            loop = asyncio.get_running_loop()
            super().connection_made(CoalescingTransport(transport, loop))  # type: ignore

    Coalescing.__name__ = f"Coalescing{protocol_class.__name__}"
    return Coalescing
