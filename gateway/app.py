"""create_app(): the gateway's ASGI application: the hot routes' fast paths in front of the
Starlette app (routes, error handlers, lifespan)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any, AsyncIterator, Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gortms.config import Settings
from gortms.datadir import Layout
from gortms.logs import ACCESS
from gortms.secrets import Sealer, jwt_secret
from gortms.errors import ConfigError, GortmsError, HeadersTooLarge
from gateway.catalog import Catalog
from gateway.context import Gateway
from gateway.domains import DomainsApi
from gateway.fastpath import FastPaths
from gateway.groups import GroupsApi
from gateway.accounts import Accounts
from gateway.credentials import ANONYMOUS, Credentials
from gateway.guard import ADMIN, AUTHENTICATED, PUBLIC, READS, USER, Guard, Need, on
from gateway.health import HealthApi
from gateway.live import LiveHub
from gateway.httpmetrics import STATUS_KEY, HttpMetrics, measured
from gateway.messages import MessagesApi
from gateway.monitoring import MonitoringApi
from gateway.reporter import Reporter
from gateway.openapi import OpenApiDocs
from gateway.responses import (gortms_error_response, on_gortms_error, on_http_exception,
                               on_unexpected)
from gateway.shards import Shards
from gateway.sockets import STOPPING, SocketsApi
from gateway.services import ServicesApi
from gateway.settings import SettingsApi
from gateway.stream import StreamApi
from gateway.ui import UiApp
from gateway.users import UsersApi

Endpoint = Callable[[Request], Awaitable[Response]]

Q = "/api/domains/{domain}/queues/{queue}"
G = Q + "/consumer-groups/{group}"


def resource(guard: Guard, path: str, **methods: tuple[Endpoint, Need]) -> Route:
    """One route per path, so a wrong method is a 405 naming every allowed one; each method
    runs behind the guard with its need (gateway/guard.py)."""
    guarded = {method: _guarded(guard, endpoint, need)
               for method, (endpoint, need) in methods.items()}
    if len(guarded) == 1:
        (method, endpoint), = guarded.items()
        return Route(path, endpoint, methods=[method])

    async def dispatch(request: Request) -> Response:
        return await guarded[request.method if request.method != "HEAD" else "GET"](request)

    return Route(path, dispatch, methods=list(guarded))


def _guarded(guard: Guard, endpoint: Endpoint, need: Need) -> Endpoint:
    if not guard.enabled:
        async def open_endpoint(request: Request) -> Response:
            request.state.principal = ANONYMOUS
            return await endpoint(request)
        return open_endpoint

    async def checked(request: Request) -> Response:
        request.state.principal = await guard.check(request, need)
        return await endpoint(request)
    return checked


def routes(gw: Gateway, guard: Guard, messages: MessagesApi, groups: GroupsApi,
           stream: StreamApi, users: UsersApi, services: ServicesApi,
           monitoring: MonitoringApi) -> list[Route]:
    health, domains = HealthApi(gw), DomainsApi(gw)
    config = SettingsApi(gw)
    gw.shards.on_catalog_event(config.on_event)  # a new log level, from the catalog shard
    gw.shards.on_reconnect(config.on_reconnect)  # ... or from the file, if events were missed
    openapi = OpenApiDocs(gw.settings)
    ui = UiApp()  # the web UI's files, read once (gateway/ui.py)
    manage, consume, publish = on("manage"), on("consume"), on("publish")

    def r(path: str, **methods: tuple[Endpoint, Need]) -> Route:
        return resource(guard, path, **methods)

    return [
        r("/health", GET=(health.health, PUBLIC)),
        r("/api/health", GET=(health.health, PUBLIC)),
        # the OpenAPI document and its page (gateway/openapi.py), built once per process
        r("/api/openapi.json", GET=(openapi.openapi, PUBLIC)),
        r("/api/docs", GET=(openapi.docs, PUBLIC)),
        # creating a domain needs manage on the name in the body: checked by the endpoint
        r("/api/domains", GET=(domains.list_domains, AUTHENTICATED),
          POST=(domains.create_domain, AUTHENTICATED)),
        r("/api/domains/{domain}", GET=(domains.get_domain, READS),
          DELETE=(domains.delete_domain, manage)),
        r("/api/domains/{domain}/queues", GET=(domains.list_queues, READS),
          POST=(domains.create_queue, manage)),
        r(Q, GET=(domains.get_queue, READS), DELETE=(domains.delete_queue, manage)),
        r(Q + "/messages", POST=(messages.publish, publish),
          GET=(messages.consume_queue, consume)),
        r(Q + "/messages/batch", POST=(messages.publish_batch, publish)),
        r(Q + "/stream", GET=(stream.stream, consume)),
        r(Q + "/consumer-groups", GET=(groups.list_for_queue, READS),
          POST=(groups.create, manage)),
        r(Q + "/dlq/redrive", POST=(groups.redrive, manage)),
        r(G, GET=(groups.get, READS), PUT=(groups.seek, consume),
          DELETE=(groups.delete, manage)),
        r(G + "/messages", GET=(messages.consume_group, consume)),
        r(G + "/ack", POST=(groups.ack, consume)),
        r(G + "/nack", POST=(groups.nack, consume)),
        r(G + "/extend", POST=(groups.extend, consume)),
        r(G + "/settle", POST=(groups.settle, consume)),
        r(G + "/pending", GET=(groups.pending, READS)),
        r(G + "/ttl", PUT=(groups.set_ttl, manage)),
        r(G + "/consumers", POST=(groups.add_consumer, consume)),
        r(G + "/consumers/{consumer}", DELETE=(groups.remove_consumer, consume)),
        r("/api/consumer-groups", GET=(groups.list_all, AUTHENTICATED)),
        # monitoring (gateway/monitoring.py)
        r("/api/stats", GET=(monitoring.stats, AUTHENTICATED)),
        r("/api/resources/current", GET=(monitoring.resources_current, AUTHENTICATED)),
        r("/api/resources/history", GET=(monitoring.resources_history, AUTHENTICATED)),
        r("/api/resources/domains/{domain}", GET=(monitoring.resources_domain, READS)),
        r("/metrics", GET=(monitoring.metrics, PUBLIC if gw.settings.monitoring.public_metrics
                           else AUTHENTICATED)),
        # people
        r("/api/auth/bootstrap", POST=(users.bootstrap, PUBLIC)),
        r("/api/auth/login", POST=(users.login, PUBLIC)),
        r("/api/auth/profile", GET=(users.profile, USER)),
        r("/api/auth/change-password", PUT=(users.change_password, USER)),
        r("/api/admin/users", GET=(users.list_users, ADMIN), POST=(users.create_user, ADMIN)),
        r("/api/users/{id}", PATCH=(users.update_user, USER)),
        r("/api/account-requests", POST=(users.request_account, PUBLIC)),
        r("/api/admin/account-requests", GET=(users.list_requests, ADMIN)),
        r("/api/admin/account-requests/{id}", GET=(users.get_request, ADMIN),
          DELETE=(users.delete_request, ADMIN)),
        r("/api/admin/account-requests/{id}/review", POST=(users.review_request, ADMIN)),
        # services
        r("/api/services", GET=(services.list, ADMIN), POST=(services.create, ADMIN)),
        r("/api/services/{id}", GET=(services.get, ADMIN), DELETE=(services.delete, ADMIN)),
        r("/api/services/{id}/rotate-secret", POST=(services.rotate, ADMIN)),
        r("/api/services/{id}/permissions", PUT=(services.set_permissions, ADMIN)),
        # the running config file (gateway/settings.py)
        r("/api/admin/settings", GET=(config.get, ADMIN), PUT=(config.put, ADMIN)),
        r("/api/admin/settings/reset", POST=(config.reset, ADMIN)),
        # the web UI (gateway/ui.py): public files; the API calls it makes are guarded
        r("/ui", GET=(ui.redirect, PUBLIC)),
        r("/ui/{path:path}", GET=(ui.serve, PUBLIC)),
    ]


class GatewayApp:
    """The ASGI entry point: `state.gateway` for the process that serves it, and the stack.
    WebSockets go straight to their own app (gateway/sockets.py)."""

    def __init__(self, entry: ASGIApp, router: Starlette, gateway: Gateway,
                 sockets: SocketsApi, metrics: HttpMetrics) -> None:
        self.entry = entry
        self.metrics = metrics
        self.router = router
        self.sockets = sockets
        self.max_header_bytes = gateway.settings.http.max_header_bytes
        self.access_log = gateway.settings.logging.access_log
        self.access = logging.getLogger(ACCESS)
        self.state = router.state
        self.state.gateway = gateway

    def _too_large(self, headers: list[tuple[bytes, bytes]]) -> bool:
        size = 0
        for name, value in headers:
            size += len(name) + len(value) + 4
        return size > self.max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.access_log and scope["type"] != "lifespan":
            await self._logged(scope, receive, send)
            return
        await self._serve(scope, receive, send)

    async def _logged(self, scope: Scope, receive: Receive, send: Send) -> None:
        """logging.accessLog: one line per request (per WebSocket session, when it ends),
        on the gortms.access logger. A WebSocket's send is left as it is, so its frames
        still go straight to the transport (gateway/outbox.py)."""
        start = time.perf_counter()
        try:
            await self._serve(scope, receive, send)
        finally:
            status = scope.get(STATUS_KEY, 0)  # an HTTP request's, as HttpMetrics saw it
            client = scope.get("client")
            address = client[0] if client else "-"
            method = scope.get("method", "WS") if scope["type"] == "http" else "WS"
            ms = (time.perf_counter() - start) * 1000
            self.access.info("%s %s %s %s %.1fms", address, method, scope["path"],
                             status or "-", ms, extra={
                                 "client": address, "method": method, "path": scope["path"],
                                 "status": status or None, "durationMs": round(ms, 2)})

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan" and self._too_large(scope["headers"]):
            error = HeadersTooLarge(f"the request's headers are over {self.max_header_bytes} "
                                    "bytes (http.maxHeaderBytes)")
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 4431, "reason": error.message})
            else:
                scope[STATUS_KEY] = error.http_status
                await gortms_error_response(error)(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await self.sockets(scope, receive, send)  # type: ignore[arg-type]
            return
        if scope["type"] == "http":
            await measured(self.entry, self.metrics, scope, receive, send)
            return
        await self.entry(scope, receive, send)


def create_app(settings: Settings, shards: Shards,
               on_started: Callable[[], Awaitable[Any]] | None = None,
               worker: int = 0) -> GatewayApp:
    gw = Gateway(settings, shards, Catalog(shards))
    messages, groups = MessagesApi(gw), GroupsApi(gw)
    accounts = Accounts(shards)
    layout = Layout(settings.data_dir)
    try:
        signing_key: bytes = jwt_secret(layout, settings.http.jwt.secret)
        sealer: Sealer | None = Sealer.of(layout)
    except ConfigError:
        if settings.security.enable_authentication:
            raise
        # No supervisor made the secrets (an app built by a test): tokens signed with a key
        # of this process's own, and no service accounts; nothing checks them anyway.
        signing_key, sealer = os.urandom(32), None
    credentials = Credentials(settings, accounts, shards, signing_key, sealer)
    guard = Guard(credentials, settings.http.max_body_bytes)
    hub = LiveHub(gw)
    sockets = SocketsApi(gw, hub, messages, guard)
    users = UsersApi(accounts, credentials, settings.http.max_body_bytes)
    services = ServicesApi(accounts, credentials.sealer, settings.http.max_body_bytes)
    metrics = HttpMetrics()
    reporter = Reporter(shards, metrics, worker, float(settings.monitoring.interval),
                        lambda: len(sockets.connections), settings.general.node_id)

    async def close_sockets_when_draining() -> None:
        await gw.draining.wait()
        await sockets.close_all(STOPPING, "the broker is shutting down")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        shards.on_catalog_event(gw.catalog.on_event)
        shards.on_reconnect(gw.catalog.on_reconnect)
        shards.on_catalog_event(accounts.on_event)
        shards.on_reconnect(accounts.on_reconnect)
        hub.attach()
        sockets.attach()
        await shards.start()
        reporter.start()
        closer = asyncio.ensure_future(close_sockets_when_draining())
        if on_started is not None:
            await on_started()
        yield
        closer.cancel()
        reporter.stop()
        await shards.close()

    app = Starlette(
        routes=routes(gw, guard, messages, groups, StreamApi(gw, hub), users, services,
                      MonitoringApi(gw, reporter)),
        exception_handlers={GortmsError: on_gortms_error, HTTPException: on_http_exception,
                            Exception: on_unexpected},
        lifespan=lifespan,
    )
    entry: ASGIApp = FastPaths(app, messages, groups, settings.http.max_body_bytes, guard)
    if settings.http.cors.enabled:
        entry = CORSMiddleware(
            entry, allow_origins=list(settings.http.cors.allowed_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"], allow_headers=["*"],
            expose_headers=["Retry-After"])
    return GatewayApp(entry, app, gw, sockets, metrics)
