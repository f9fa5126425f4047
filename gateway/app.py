"""create_app(): the gateway's ASGI application: the hot routes' fast paths in front of the
Starlette app (routes, error handlers, lifespan)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator, Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gortms.config import Settings
from gortms.errors import GortmsError
from gateway.catalog import Catalog
from gateway.context import Gateway
from gateway.domains import DomainsApi
from gateway.fastpath import FastPaths
from gateway.groups import GroupsApi
from gateway.health import HealthApi
from gateway.live import LiveHub
from gateway.messages import MessagesApi
from gateway.responses import on_gortms_error, on_http_exception, on_unexpected
from gateway.shards import Shards
from gateway.sockets import STOPPING, SocketsApi
from gateway.stream import StreamApi

Endpoint = Callable[[Request], Awaitable[Response]]

Q = "/api/domains/{domain}/queues/{queue}"
G = Q + "/consumer-groups/{group}"


def resource(path: str, **methods: Endpoint) -> Route:
    """One route per path, so a wrong method is a 405 naming every allowed one."""
    if len(methods) == 1:
        (method, endpoint), = methods.items()
        return Route(path, endpoint, methods=[method])

    async def dispatch(request: Request) -> Response:
        return await methods[request.method if request.method != "HEAD" else "GET"](request)

    return Route(path, dispatch, methods=list(methods))


def routes(gw: Gateway, messages: MessagesApi, groups: GroupsApi, stream: StreamApi
           ) -> list[Route]:
    health, domains = HealthApi(gw), DomainsApi(gw)
    return [
        resource("/health", GET=health.health),
        resource("/api/health", GET=health.health),
        resource("/api/domains", GET=domains.list_domains, POST=domains.create_domain),
        resource("/api/domains/{domain}", GET=domains.get_domain, DELETE=domains.delete_domain),
        resource("/api/domains/{domain}/queues", GET=domains.list_queues,
                 POST=domains.create_queue),
        resource(Q, GET=domains.get_queue, DELETE=domains.delete_queue),
        resource(Q + "/messages", POST=messages.publish, GET=messages.consume_queue),
        resource(Q + "/messages/batch", POST=messages.publish_batch),
        resource(Q + "/stream", GET=stream.stream),
        resource(Q + "/consumer-groups", GET=groups.list_for_queue, POST=groups.create),
        resource(Q + "/dlq/redrive", POST=groups.redrive),
        resource(G, GET=groups.get, PUT=groups.seek, DELETE=groups.delete),
        resource(G + "/messages", GET=messages.consume_group),
        resource(G + "/ack", POST=groups.ack),
        resource(G + "/nack", POST=groups.nack),
        resource(G + "/extend", POST=groups.extend),
        resource(G + "/settle", POST=groups.settle),
        resource(G + "/pending", GET=groups.pending),
        resource(G + "/ttl", PUT=groups.set_ttl),
        resource(G + "/consumers", POST=groups.add_consumer),
        resource(G + "/consumers/{consumer}", DELETE=groups.remove_consumer),
        resource("/api/consumer-groups", GET=groups.list_all),
    ]


class GatewayApp:
    """The ASGI entry point: `state.gateway` for the process that serves it, and the stack.
    WebSockets go straight to their own app (gateway/sockets.py)."""

    def __init__(self, entry: ASGIApp, router: Starlette, gateway: Gateway,
                 sockets: SocketsApi) -> None:
        self.entry = entry
        self.router = router
        self.sockets = sockets
        self.state = router.state
        self.state.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self.sockets(scope, receive, send)  # type: ignore[arg-type]
            return
        await self.entry(scope, receive, send)


def create_app(settings: Settings, shards: Shards,
               on_started: Callable[[], Awaitable[Any]] | None = None) -> GatewayApp:
    gw = Gateway(settings, shards, Catalog(shards))
    messages, groups = MessagesApi(gw), GroupsApi(gw)
    hub = LiveHub(gw)
    sockets = SocketsApi(gw, hub, messages)

    async def close_sockets_when_draining() -> None:
        await gw.draining.wait()
        await sockets.close_all(STOPPING, "the broker is shutting down")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        shards.on_catalog_event(gw.catalog.on_event)
        shards.on_reconnect(gw.catalog.on_reconnect)
        hub.attach()
        sockets.attach()
        await shards.start()
        closer = asyncio.ensure_future(close_sockets_when_draining())
        if on_started is not None:
            await on_started()
        yield
        closer.cancel()
        await shards.close()

    app = Starlette(
        routes=routes(gw, messages, groups, StreamApi(gw, hub)),
        exception_handlers={GortmsError: on_gortms_error, HTTPException: on_http_exception,
                            Exception: on_unexpected},
        lifespan=lifespan,
    )
    entry: ASGIApp = FastPaths(app, messages, groups, settings.http.max_body_bytes)
    if settings.http.cors.enabled:
        entry = CORSMiddleware(
            entry, allow_origins=list(settings.http.cors.allowed_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"], allow_headers=["*"],
            expose_headers=["Retry-After"])
    return GatewayApp(entry, app, gw, sockets)
