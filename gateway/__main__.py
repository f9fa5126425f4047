"""`python -m gateway`: one gateway worker serving HTTP on a socket the supervisor opened.

It reports readiness, then liveness, by writing to a heartbeat pipe from its event loop, so
a worker whose loop is stuck stops beating and is replaced.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from typing import Any

import uvicorn

from gortms.datadir import Layout
from gortms.lifecycle import child_parser, start_child
from gateway.app import create_app
from gateway.shards import ZmqShards

log = logging.getLogger("gateway")

HEARTBEAT_INTERVAL_S = 0.5
ACCEPTED_GRACE_S = 0.25


class GatewayServer(uvicorn.Server):
    """uvicorn's server, telling the app to end long polls as soon as shutdown begins."""

    def __init__(self, config: uvicorn.Config, draining: asyncio.Event) -> None:
        super().__init__(config)
        self.draining = draining

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.draining.set()
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Stop accepting first, then give connections accepted a moment ago the time to send
        # their request: uvicorn closes connections with no request under way, and closing
        # one whose request is still unread resets it. The listening socket stays open in
        # the supervisor, so new connections wait in its backlog for the other workers.
        for server in self.servers:
            server.close()
        await asyncio.sleep(ACCEPTED_GRACE_S)
        await super().shutdown(sockets)


def heartbeat(fd: int) -> Any:
    async def beat_forever() -> None:
        os.set_blocking(fd, False)
        beat = b"R"  # the first beat says "ready"
        while True:
            try:
                os.write(fd, beat)
            except BlockingIOError:
                pass  # the supervisor is behind; it only needs the latest beat
            beat = b"."
            await asyncio.sleep(HEARTBEAT_INTERVAL_S)

    tasks: list[asyncio.Task[None]] = []

    async def start() -> None:
        tasks.append(asyncio.create_task(beat_forever()))

    return start


def main(argv: list[str] | None = None) -> int:
    parser = child_parser("gateway")
    parser.add_argument("--worker", type=int, required=True)
    parser.add_argument("--shards", type=int, required=True)
    parser.add_argument("--listen-fd", type=int, required=True)
    parser.add_argument("--heartbeat-fd", type=int, required=True)
    args = parser.parse_args(argv)
    settings = start_child(args, f"gateway-{args.worker}")
    layout = Layout(settings.data_dir)
    shards = ZmqShards([layout.endpoints(i) for i in range(args.shards)],
                       settings.gateway.request_timeout, settings.gateway.max_in_flight)
    app = create_app(settings, shards, on_started=heartbeat(args.heartbeat_fd))
    sock = socket.socket(fileno=args.listen_fd)
    tls = {}
    if settings.http.tls:
        tls = {"ssl_certfile": settings.http.cert_file or os.path.join(layout.tls_dir,
                                                                        "server.crt"),
               "ssl_keyfile": settings.http.key_file or os.path.join(layout.tls_dir,
                                                                      "server.key")}
    config = uvicorn.Config(app, loop="uvloop", http="httptools", ws="auto",
                            lifespan="on", access_log=False, log_config=None,
                            server_header=False,
                            timeout_graceful_shutdown=max(1, int(
                                settings.supervisor.stop_timeout) - 2), **tls)
    server = GatewayServer(config, app.state.gateway.draining)
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
