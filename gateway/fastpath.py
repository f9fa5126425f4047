"""FastPaths: the hottest routes served straight from ASGI, in front of the Starlette app.

Publishing (single and batch), consuming through a group and acking (or settling: acks and
nacks in one request) are most of the traffic, and for them Starlette's regex route table,
Request and Response objects and middleware layers cost about as much as the broker's own
work. FastPaths recognises these five paths
by splitting the path once, and runs the same endpoint code (MessagesApi, GroupsApi) on the
raw ASGI messages. Everything else, and anything unusual on these paths (a name that breaks
the naming rule, a wrong method), goes to the Starlette app, so errors read the same either
way.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gortms.checks import NAME_PATTERN, convert
from gortms.errors import GortmsError
from gateway.groups import GroupsApi
from gateway.guard import Guard, on
from gateway.messages import ConsumeQuery, MessagesApi
from gateway.httpmetrics import ROUTE_KEY
from gateway.params import check_declared_length, too_large
from gateway.responses import gortms_error_response, internal_error_response

log = logging.getLogger(__name__)

_NAME = re.compile(NAME_PATTERN)
_JSON_HEADERS = [(b"content-type", b"application/json")]

# (status, body) or (status, body, extra headers)
Handler = Callable[[list[str], Scope, Receive], Awaitable[tuple[Any, ...]]]


PUBLISH, CONSUME = on("publish"), on("consume")
_Q = "/api/domains/{domain}/queues/{queue}"
_G = _Q + "/consumer-groups/{group}"
_TEMPLATES = {"_publish": _Q + "/messages", "_publish_batch": _Q + "/messages/batch",
              "_consume": _G + "/messages", "_ack": _G + "/ack", "_settle": _G + "/settle"}


class FastPaths:
    def __init__(self, app: ASGIApp, messages: MessagesApi, groups: GroupsApi,
                 max_body: int, guard: Guard | None = None) -> None:
        self.app = app
        self.messages = messages
        self.groups = groups
        self.max_body = max_body
        self.guard = guard if guard is not None and guard.enabled else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            route = self._route(scope)
            if route is not None:
                scope[ROUTE_KEY] = _TEMPLATES[route[0].__name__]  # for gateway/httpmetrics.py
                await self._serve(route, scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _route(self, scope: Scope) -> tuple[Handler, list[str]] | None:
        """(handler, path parts) for the fast routes; None for anything else."""
        parts = scope["path"].split("/")
        # "", "api", "domains", d, "queues", q, ...
        if len(parts) < 7 or parts[1] != "api" or parts[2] != "domains" \
                or parts[4] != "queues":
            return None
        method = scope["method"]
        tail = parts[6:]
        if tail == ["messages"]:
            handler = self._publish if method == "POST" else None
        elif tail == ["messages", "batch"]:
            handler = self._publish_batch if method == "POST" else None
        elif len(tail) == 3 and tail[0] == "consumer-groups" and method in ("GET", "POST"):
            handler = {("GET", "messages"): self._consume,
                       ("POST", "ack"): self._ack,
                       ("POST", "settle"): self._settle}.get((method, tail[2]))
            if handler is not None and not _NAME.match(tail[1]):
                return None
        else:
            return None
        if handler is None or not (_NAME.match(parts[3]) and _NAME.match(parts[5])):
            return None
        return handler, parts

    async def _serve(self, route: tuple[Handler, list[str]], scope: Scope, receive: Receive,
                     send: Send) -> None:
        handler, parts = route
        try:
            if self.guard is not None:
                receive = await self._authorize(handler, parts, scope, receive)
            status, body, *extra = await handler(parts, scope, receive)
        except GortmsError as exc:
            if exc.http_status >= 500 and not exc.retriable:
                log.error("%s %s failed: %s", scope["method"], scope["path"], exc)
            response = gortms_error_response(exc)
            await response(scope, receive, send)
            return
        except Exception as exc:  # a bug: answer this request, keep serving the others
            log.exception("%s %s failed", scope["method"], scope["path"], exc_info=exc)
            await internal_error_response()(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": status,
                    "headers": [*_JSON_HEADERS, (b"content-length", b"%d" % len(body)),
                                *(extra[0] if extra else ())]})
        await send({"type": "http.response.body", "body": body})

    async def _authorize(self, handler: Handler, parts: list[str], scope: Scope,
                         receive: Receive) -> Receive:
        """Check the credential (the body first: a signature covers it); the handler then
        reads the body from the receive returned."""
        assert self.guard is not None
        headers = _headers(scope)
        body = await self._body(receive, headers)
        need = PUBLISH if handler in (self._publish, self._publish_batch) else CONSUME
        await self.guard.check_raw(scope["method"], scope, headers, body, need, parts[3],
                                   self.messages.gw.owner(parts[3], parts[5]))
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()
        return replay

    # --- the routes ---------------------------------------------------------------------------

    async def _publish(self, parts: list[str], scope: Scope, receive: Receive
                       ) -> tuple[int, bytes]:
        headers = _headers(scope)
        data = await self._body(receive, headers)
        return await self.messages.publish_one(parts[3], parts[5], headers, data)

    async def _publish_batch(self, parts: list[str], scope: Scope, receive: Receive
                             ) -> tuple[int, bytes]:
        headers = _headers(scope)
        data = await self._body(receive, headers)
        return await self.messages.publish_many(parts[3], parts[5], headers, data)

    async def _consume(self, parts: list[str], scope: Scope, receive: Receive
                       ) -> tuple[Any, ...]:
        query = convert(dict(parse_qsl(scope["query_string"].decode("latin-1"),
                                       keep_blank_values=True)), ConsumeQuery, strict=False)
        body, retry_after = await self.messages.consume(parts[3], parts[5], parts[7], query,
                                                        False, receive)
        if retry_after:  # the group's circuit is open
            return 200, body, [(b"retry-after", b"%d" % retry_after)]
        return 200, body

    async def _ack(self, parts: list[str], scope: Scope, receive: Receive
                   ) -> tuple[int, bytes]:
        data = await self._body(receive, _headers(scope))
        return 200, await self.groups.acknowledge(parts[3], parts[5], parts[7], data)

    async def _settle(self, parts: list[str], scope: Scope, receive: Receive
                      ) -> tuple[int, bytes]:
        data = await self._body(receive, _headers(scope))
        return 200, await self.groups.settle_json(parts[3], parts[5], parts[7], data)

    async def _body(self, receive: Receive, headers: dict[str, str]) -> bytes:
        """The request body, refused (413) past the limit, whether declared or sent."""
        limit = self.max_body
        check_declared_length(headers.get("content-length"), limit)
        message = await receive()
        body = message.get("body", b"")
        if not message.get("more_body"):
            return body
        chunks = [body]
        size = len(body)
        while message.get("more_body"):
            message = await receive()
            if message["type"] != "http.request":
                break  # the client left
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            chunks.append(chunk)
        return b"".join(chunks)


def _headers(scope: Scope) -> dict[str, str]:
    # uvicorn gives lower-case names; latin-1 is how Starlette decodes them too. Reversed, so
    # that a repeated header reads as its first value, as Starlette's Headers.get gives it.
    # Kept in the scope: the credential check and the handler both read them.
    headers = scope.get("gortms.headers")
    if headers is None:
        headers = scope["gortms.headers"] = {
            k.decode("latin-1"): v.decode("latin-1") for k, v in reversed(scope["headers"])}
    return headers
