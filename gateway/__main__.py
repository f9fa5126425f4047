"""`python -m gateway`: one gateway worker serving HTTP on a socket the supervisor opened.

It reports readiness, then liveness, by writing to a heartbeat pipe from its event loop, so
a worker whose loop is stuck stops beating and is replaced. It accepts connections itself
(see `Acceptor`) and hands them to uvicorn's protocol on uvloop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import socket
import sys
from typing import Any, Callable

import uvicorn

from gortms.datadir import Layout
from gortms.lifecycle import child_parser, start_child, tune_gc
from gateway.app import create_app
from gateway.shards import ZmqShards
from gateway.writes import coalescing

log = logging.getLogger("gateway")

HEARTBEAT_INTERVAL_S = 0.5
ACCEPTED_GRACE_S = 0.25
ACCEPT_BATCH = 1024  # accepted per wake-up at most: a turn is never accepts alone
ACCEPT_RETRY_S = 1.0  # out of descriptors: pause accepting, as asyncio does


class Acceptor:
    """Takes every connection waiting on a listening socket at each wake-up, for uvicorn.

    uvloop's own server accepts one connection per loop turn (libuv >= 1.45 dropped its
    accept loop), and a turn serving 1,000 busy connections lasts ~100 ms: a burst of new
    connections then waits seconds in the backlog, first requests unread. asyncio's selector
    loop, and Go, accept in a loop like this.
    """

    def __init__(self, sock: socket.socket, protocol_factory: Callable[[], asyncio.Protocol],
                 ssl: Any) -> None:
        self.sock, self.protocol_factory, self.ssl = sock, protocol_factory, ssl
        self.loop = asyncio.get_running_loop()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.retry: asyncio.TimerHandle | None = None
        sock.setblocking(False)
        self.loop.add_reader(sock.fileno(), self._accept)

    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:  # EMFILE, ENFILE, ENOBUFS: the rest waits in the backlog
                log.warning("gateway cannot accept connections for now: %s", exc)
                self.loop.remove_reader(self.sock.fileno())
                self.retry = self.loop.call_later(ACCEPT_RETRY_S, self.loop.add_reader,
                                                  self.sock.fileno(), self._accept)
                return
            # Responses go out at once (uvloop sets this too; plain asyncio would not).
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = self.loop.create_task(self.loop.connect_accepted_socket(
                self.protocol_factory, conn, ssl=self.ssl))
            self.tasks.add(task)
            task.add_done_callback(self._started)

    def _started(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("a connection failed to start: %s", task.exception())

    def close(self) -> None:
        if self.retry is not None:
            self.retry.cancel()
        self.loop.remove_reader(self.sock.fileno())


class GatewayServer(uvicorn.Server):
    """uvicorn's server, telling the app to end long polls as soon as shutdown begins."""

    def __init__(self, config: uvicorn.Config, draining: asyncio.Event) -> None:
        super().__init__(config)
        self.draining = draining
        self.acceptors: list[Acceptor] = []

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])  # the lifespan; no uvloop server (see Acceptor)
        config = self.config
        protocol_class = coalescing(config.http_protocol_class)

        def new_protocol() -> asyncio.Protocol:  # as uvicorn's own startup builds one
            return protocol_class(config=config, server_state=self.server_state,
                                              app_state=self.lifespan.state)

        self.acceptors = [Acceptor(sock, new_protocol, config.ssl) for sock in sockets or []]

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.draining.set()
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Stop accepting first, then give connections accepted a moment ago the time to send
        # their request: uvicorn closes connections with no request under way, and closing
        # one whose request is still unread resets it. The listening socket stays open in
        # the supervisor, so new connections wait in its backlog for the other workers.
        for acceptor in self.acceptors:
            acceptor.close()
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


def raise_open_files_limit() -> None:
    """Every WebSocket, SSE stream and keep-alive connection is a file descriptor: take what
    the hard limit allows (a soft limit of 1,024 stops a worker at about 900 connections)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open files limit from %d: %s", soft, exc)


def main(argv: list[str] | None = None) -> int:
    parser = child_parser("gateway")
    parser.add_argument("--worker", type=int, required=True)
    parser.add_argument("--shards", type=int, required=True)
    parser.add_argument("--listen-fd", type=int, required=True)
    parser.add_argument("--heartbeat-fd", type=int, required=True)
    args = parser.parse_args(argv)
    settings = start_child(args, f"gateway-{args.worker}")
    raise_open_files_limit()
    layout = Layout(settings.data_dir)
    shards = ZmqShards([layout.endpoints(i) for i in range(args.shards)],
                       settings.gateway.request_timeout, settings.gateway.max_in_flight)
    app = create_app(settings, shards, on_started=heartbeat(args.heartbeat_fd),
                     worker=args.worker)
    sock = socket.socket(fileno=args.listen_fd)
    tls = {}
    if settings.http.tls:
        tls = {"ssl_certfile": settings.http.cert_file or os.path.join(layout.tls_dir,
                                                                        "server.crt"),
               "ssl_keyfile": settings.http.key_file or os.path.join(layout.tls_dir,
                                                                      "server.key")}
    # proxy_headers off: nothing reads the client's address yet, and uvicorn's middleware
    # for X-Forwarded-* costs a call per request; trusted proxies will be a setting.
    ws = settings.http.websocket
    # websockets-sansio: the protocol gateway/outbox.py writes frames through. No
    # per-message deflate: it costs CPU per frame and tens of KiB per connection.
    config = uvicorn.Config(app, loop="uvloop", http="httptools", ws="websockets-sansio",
                            ws_max_size=ws.max_message_bytes * 4,
                            ws_ping_interval=ws.ping_interval or None,
                            ws_ping_timeout=ws.ping_timeout or None,
                            ws_per_message_deflate=False,
                            lifespan="on", access_log=False, log_config=None,
                            server_header=False, proxy_headers=False,
                            timeout_graceful_shutdown=max(1, int(
                                settings.supervisor.stop_timeout) - 2), **tls)
    server = GatewayServer(config, app.state.gateway.draining)
    tune_gc()
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
