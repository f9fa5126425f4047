"""The two clients: `Client` (sync) and `AsyncClient` (asyncio), on httpx2.

Their REST methods are the shared `Operations` (gortms/client/calls.py); each client adds
only how a call is performed: the attempts (gortms/client/retry.py), httpx2's failures mapped
to BrokerUnreachable at this edge, and the WebSockets it opens (gortms/client/sockets.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from typing import Any, AsyncIterator, Iterator

import httpx2

from gortms.client.auth import authorizer
from gortms.client.calls import Call, Operations, Settings, fetch_call
from gortms.client.errors import BrokerUnreachable
from gortms.client.frames import DEFAULT_BUFFER, Target, socket_target
from gortms.client.models import Fetched, Message
from gortms.client.retry import RetryPolicy, Retrying
from gortms.client.sockets import AsyncQueueSocket, QueueSocket
from gortms.errors import GortmsError

DEFAULT_TIMEOUT_S = 30.0
LONG_POLL_S = 20.0  # what the consume iterators ask the broker to wait, at most 60


@contextlib.contextmanager
def transport_errors() -> Iterator[None]:
    """httpx2's failures as BrokerUnreachable: `sent` False when no connection was made."""
    try:
        yield
    except (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout) as exc:
        raise BrokerUnreachable(f"cannot reach the broker: {exc}", sent=False) from exc
    except httpx2.TransportError as exc:
        raise BrokerUnreachable(f"no answer from the broker: {exc!r}") from exc


def tls_context(verify: bool | str) -> ssl.SSLContext:
    """`verify`: True (the system's CAs), False (no check), or a CA file (the broker's own
    self-signed certificate, <dataDir>/tls/server.crt)."""
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=None if verify is True else verify)


class Consumption:
    """A consume iterator's course: which fetch comes next, and when it ends (after `limit`
    messages, or with `stop_when_idle` at the first fetch that waited and got nothing)."""

    def __init__(self, domain: str, queue: str, group: str, count: int, timeout_s: float,
                 consumer: str | None, create_group: bool, limit: int | None,
                 stop_when_idle: bool) -> None:
        self.where = (domain, queue, group)
        self.count, self.timeout_s, self.consumer = count, timeout_s, consumer
        self.create_group = create_group
        self.left = limit
        self.stop_when_idle = stop_when_idle
        self.idle = False

    def next_call(self) -> Call | None:
        if self.idle or self.left == 0:
            return None
        count = self.count if self.left is None else min(self.count, self.left)
        return fetch_call(*self.where, count, self.timeout_s, self.consumer, self.create_group)

    def took(self, fetched: Fetched) -> float:
        """After a fetch: how long to pause before the next (an open circuit's wait)."""
        if self.left is not None:
            self.left -= len(fetched.messages)
        self.idle = self.stop_when_idle and not fetched.messages and fetched.circuit is None
        if fetched.circuit is None:
            return 0.0
        return min(self.timeout_s, fetched.retry_after_s or 1.0)


class _Base(Operations):
    """A client of one broker. Credentials: a user's `token`, or a service's `service_id`
    and `service_secret` (each request signed); none with authentication off."""

    _HTTP: Any  # httpx2.Client or httpx2.AsyncClient

    def __init__(self, url: str, *, token: str | None = None, service_id: str | None = None,
                 service_secret: str | None = None, retry: RetryPolicy | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S, verify: bool | str = True) -> None:
        self.settings = Settings(url.rstrip("/"), authorizer(token, service_id, service_secret),
                                 retry or RetryPolicy(), timeout_s)
        self._tls = tls_context(verify)
        self._http = self._HTTP(base_url=self.settings.url, verify=self._tls)

    def _target(self, domain: str, queue: str, batch: bool, observe: bool = True) -> Target:
        return socket_target(self.settings, self._tls, domain, queue, batch, observe)


class Client(_Base):
    """The sync client: its methods answer, its iterators are plain generators."""

    _HTTP = httpx2.Client

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: Call) -> Any:
        retrying = Retrying(self.settings.retry, call.idempotent)
        while True:
            try:
                with transport_errors():
                    response = self._http.request(**call.request(self.settings))
                return call.outcome(response.status_code, response.headers, response.content)
            except GortmsError as exc:
                time.sleep(retrying.wait_after(exc))

    def consume(self, domain: str, queue: str, group: str, *, count: int = 100,
                timeout_s: float = LONG_POLL_S, consumer: str | None = None,
                create_group: bool = False, limit: int | None = None,
                stop_when_idle: bool = False) -> Iterator[Message]:
        """Deliveries one at a time, fetched `count` at a time with long polls of
        `timeout_s`; ends after `limit` messages, or with `stop_when_idle` at the first long
        poll that comes back empty (else it goes on until the caller stops)."""
        course = Consumption(domain, queue, group, count, timeout_s, consumer, create_group,
                             limit, stop_when_idle)
        while (call := course.next_call()) is not None:
            fetched = self._send(call)
            yield from fetched
            time.sleep(course.took(fetched))

    def socket(self, domain: str, queue: str, *, batch: bool = False,
               buffer: int = DEFAULT_BUFFER, observe: bool = True) -> QueueSocket:
        """A WebSocket on the queue, connected (observing unless `observe=False`, a socket
        to publish or consume on; `consume()` to switch)."""
        return QueueSocket.open(self._target(domain, queue, batch, observe), buffer)

    observe = socket

    def consumer(self, domain: str, queue: str, group: str, *, consumer: str | None = None,
                 credits: int = 100, batch: bool = False) -> QueueSocket:
        """A WebSocket consuming from `group` (created if need be), with `credits`."""
        socket = self.socket(domain, queue, buffer=max(DEFAULT_BUFFER, credits),
                             observe=False)
        try:
            return socket.consume(group, consumer, credits, batch)
        except BaseException:
            socket.close()
            raise


class AsyncClient(_Base):
    """As Client, for asyncio: every method is awaited, the iterators are async."""

    _HTTP = httpx2.AsyncClient

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, call: Call) -> Any:
        retrying = Retrying(self.settings.retry, call.idempotent)
        while True:
            try:
                with transport_errors():
                    response = await self._http.request(**call.request(self.settings))
                return call.outcome(response.status_code, response.headers, response.content)
            except GortmsError as exc:
                await asyncio.sleep(retrying.wait_after(exc))

    async def consume(self, domain: str, queue: str, group: str, *, count: int = 100,
                      timeout_s: float = LONG_POLL_S, consumer: str | None = None,
                      create_group: bool = False, limit: int | None = None,
                      stop_when_idle: bool = False) -> AsyncIterator[Message]:
        course = Consumption(domain, queue, group, count, timeout_s, consumer, create_group,
                             limit, stop_when_idle)
        while (call := course.next_call()) is not None:
            fetched = await self._send(call)
            for message in fetched:
                yield message
            await asyncio.sleep(course.took(fetched))

    async def socket(self, domain: str, queue: str, *, batch: bool = False,
                     buffer: int = DEFAULT_BUFFER, observe: bool = True) -> AsyncQueueSocket:
        return await AsyncQueueSocket.open(self._target(domain, queue, batch, observe),
                                           buffer)

    observe = socket

    async def consumer(self, domain: str, queue: str, group: str, *,
                       consumer: str | None = None, credits: int = 100,
                       batch: bool = False) -> AsyncQueueSocket:
        socket = await self.socket(domain, queue, buffer=max(DEFAULT_BUFFER, credits),
                                   observe=False)
        try:
            return await socket.consume(group, consumer, credits, batch)
        except BaseException:
            await socket.close()
            raise
