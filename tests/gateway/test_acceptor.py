"""gateway/__main__.py's Acceptor: every connection waiting is taken at one wake-up, each
handed to the protocol as a TCP transport with TCP_NODELAY."""

from __future__ import annotations

import asyncio
import socket

import pytest

from gateway.__main__ import Acceptor

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> tuple[str, dict]:
    return "asyncio", {"use_uvloop": True}  # as the gateway runs


class Counting(asyncio.Protocol):
    made: list[asyncio.Transport] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        Counting.made.append(transport)  # type: ignore[arg-type]


async def test_every_waiting_connection_is_accepted_at_one_wake_up() -> None:
    Counting.made = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    clients = [socket.create_connection(listener.getsockname()) for _ in range(50)]
    acceptor = Acceptor(listener, Counting, None)
    try:
        acceptor._accept()  # one wake-up
        assert len(acceptor.tasks) == 50  # all of them, not one
        for _ in range(200):  # the transports come up on the loop (bounded)
            if len(Counting.made) == 50:
                break
            await asyncio.sleep(0.005)
        assert len(Counting.made) == 50
        nodelay = Counting.made[0].get_extra_info("socket").getsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert nodelay
    finally:
        acceptor.close()
        for transport in Counting.made:
            transport.close()
        for client in clients:
            client.close()
        listener.close()
