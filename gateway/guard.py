"""What each route needs, and the check that runs before every endpoint.

Every route in gateway/app.py names a `Need`; `Guard.check` authenticates the request
(gateway/credentials.py) and authorizes it against the need, before the endpoint runs. With
authentication off every request is the anonymous principal, which may do everything, and
the check costs one attribute test.

    PUBLIC          health, login, bootstrap, account-request creation, the OpenAPI
                    document and page (and /metrics with monitoring.publicMetrics)
    AUTHENTICATED   any valid credential (listings across domains, monitoring)
    USER            a user's token (profile, change-password): a service has no password
    ADMIN           a user with role admin (users, account requests, service accounts)
    on(action)      a permission on the domain named in the path: publish, consume,
                    manage, or read (any of the three)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from starlette.requests import Request

from gortms.errors import Forbidden, Unauthorized
from gateway.credentials import ANONYMOUS, READ, Credentials, Principal
from gateway.params import read_body


@dataclass(frozen=True, slots=True)
class Need:
    kind: str  # "public", "authenticated", "user", "admin", "domain"
    action: str = ""
    param: str = "domain"


PUBLIC = Need("public")
AUTHENTICATED = Need("authenticated")
USER = Need("user")
ADMIN = Need("admin")


def on(action: str, param: str = "domain") -> Need:
    return Need("domain", action, param)


READS = on(READ)


def client_address(scope: Mapping) -> str:
    client = scope.get("client")
    return client[0] if client else ""


class Guard:
    def __init__(self, credentials: Credentials, max_body: int) -> None:
        self.credentials = credentials
        self.max_body = max_body
        self.enabled = credentials.enabled

    async def check(self, request: Request, need: Need) -> Principal:
        """The request's principal, allowed what `need` says (else 401 or 403)."""
        if not self.enabled or need is PUBLIC:
            return ANONYMOUS
        headers = request.headers
        body = b""
        if "x-signature" in headers:  # the signature covers the body: read it first
            body = await read_body(request, self.max_body)
            request._body = body  # Starlette hands it to the endpoint from here
        scope = request.scope
        principal = await self.credentials.authenticate(
            request.method, scope["path"], headers, request.query_params.get("token"), body,
            client_address(scope), scope.get("scheme", "http"))
        authorize(principal, need, request.path_params.get(need.param, ""))
        return principal

    async def check_raw(self, method: str, scope: Mapping, headers: Mapping[str, str],
                        body: bytes, need: Need, domain: str, owner: int) -> Principal:
        """The same for the fast paths (gateway/fastpath.py), which read the body first and
        send one request, to the queue's `owner` shard: a signature's replay check rides
        with it."""
        if not self.enabled:
            return ANONYMOUS
        principal = await self.credentials.authenticate(
            method, scope["path"], headers, None, body, client_address(scope),
            scope.get("scheme", "http"), replay_shard=owner)
        authorize(principal, need, domain)
        return principal


def authorize(principal: Principal, need: Need, domain: str) -> None:
    kind = need.kind
    if kind == "authenticated" or principal.kind == "anonymous":
        return
    if kind == "user":
        if principal.kind != "user":
            raise Forbidden("this route is for users (a token from POST /api/auth/login), "
                            "not service accounts")
        return
    if kind == "admin":
        if principal.kind != "user" or principal.role != "admin":
            raise Forbidden("this route needs the admin role")
        return
    if kind == "domain":
        principal.require(need.action, domain)
        return
    raise Unauthorized("authentication required")
