"""gateway/writes.py: a response's writes in one loop tick go out as one transport write."""

from __future__ import annotations

import asyncio

import pytest

from gateway.writes import CoalescingTransport

pytestmark = pytest.mark.anyio


class FakeTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 7

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


async def test_writes_of_one_tick_become_one() -> None:
    inner = FakeTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 201 Created\r\n\r\n")
    transport.write(b'{"status":"success"}')
    assert inner.writes == []  # not yet: at the end of the tick
    assert transport.get_write_buffer_size() == 7 + 44
    await asyncio.sleep(0)
    assert inner.writes == [b'HTTP/1.1 201 Created\r\n\r\n{"status":"success"}']
    transport.write(b"next")
    await asyncio.sleep(0)
    assert inner.writes[-1] == b"next"


async def test_close_sends_what_is_pending_first_and_the_rest_is_passed_through() -> None:
    inner = FakeTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())
    transport.write(b"last words")
    transport.close()
    assert inner.writes == [b"last words"] and inner.closed
    assert transport.get_extra_info("peername") == "info:peername"
    await asyncio.sleep(0)  # the scheduled flush finds nothing more to send
    assert inner.writes == [b"last words"]
