"""Service accounts: what signs requests with HMAC-SHA256 (gateway/credentials.py).

A service's secret is generated here (32 random bytes, URL-safe base64), shown once in the
answer to its creation or rotation, and stored only sealed under the data dir's key
(gortms/secrets.py). Rotating replaces it at once: the old secret fails from the next
request on, in every gateway worker (the record change drops their caches). Every change is
logged to `gortms.security` without the secret.
"""

from __future__ import annotations

import logging
import re
import secrets as random
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gortms.errors import InvalidParameter, NotFound
from gortms.secrets import Sealer
from gateway.accounts import Accounts, Service, new_id, now_ms
from gateway.credentials import check_allowlist, check_permissions
from gateway.params import read_object
from gateway.responses import json_response

log = logging.getLogger("gortms.security")

NAME = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class ServicesApi:
    def __init__(self, accounts: Accounts, sealer: Sealer | None, max_body: int) -> None:
        self.accounts = accounts
        self.sealer = sealer
        self.max_body = max_body

    def _seal(self, secret: str, service_id: str) -> bytes:
        if self.sealer is None:
            raise InvalidParameter("service accounts need security.enableAuthentication: true")
        return self.sealer.seal(secret, service_id)

    async def _body(self, request: Request) -> dict[str, Any]:
        return await read_object(request, self.max_body)

    async def _service(self, request: Request) -> Service:
        found = await self.accounts.service(request.path_params["id"])
        if found is None:
            raise NotFound(f"service account '{request.path_params['id']}' not found")
        return found

    async def create(self, request: Request) -> Response:
        body = await self._body(request)
        name = body.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            raise InvalidParameter("name must have 1 to 128 characters of A-Z a-z 0-9 . _ : -")
        description = body.get("description")
        if description is not None and (not isinstance(description, str) or
                                        len(description) > 1024):
            raise InvalidParameter("description must be a string of at most 1024 characters")
        permissions = check_permissions(body.get("permissions", []))
        allowlist = check_allowlist(body.get("ipAllowlist", body.get("ipWhitelist", [])))
        service_id = new_id()
        secret = random.token_urlsafe(32)
        now = now_ms()
        service = Service(id=service_id, name=name, description=description,
                          secret=self._seal(secret, service_id), permissions=permissions,
                          ip_allowlist=allowlist, created_at=now, rotated_at=now)
        await self.accounts.save_service(service, new=True)
        log.warning("service account '%s' (%s) created by '%s' with permissions %s", name,
                    service_id, request.state.principal.name, permissions)
        return json_response({**service.public(), "secret": secret}, 201)

    async def list(self, request: Request) -> Response:
        found = [s.public() for s in await self.accounts.services()]
        return json_response({"services": found, "count": len(found)})

    async def get(self, request: Request) -> Response:
        return json_response((await self._service(request)).public())

    async def delete(self, request: Request) -> Response:
        service = await self._service(request)
        await self.accounts.delete_service(service.id)
        log.warning("service account '%s' (%s) deleted by '%s'", service.name, service.id,
                    request.state.principal.name)
        return json_response({"status": "success", "deleted": service.id})

    async def rotate(self, request: Request) -> Response:
        service = await self._service(request)
        secret = random.token_urlsafe(32)
        service.secret = self._seal(secret, service.id)
        service.rotated_at = now_ms()
        await self.accounts.save_service(service)
        log.warning("secret of service account '%s' (%s) rotated by '%s'", service.name,
                    service.id, request.state.principal.name)
        return json_response({**service.public(), "secret": secret})

    async def set_permissions(self, request: Request) -> Response:
        service = await self._service(request)
        body = await self._body(request)
        if "permissions" not in body:
            raise InvalidParameter("send {\"permissions\": [\"publish:orders\", ...]}")
        service.permissions = check_permissions(body["permissions"])
        if "ipAllowlist" in body:
            service.ip_allowlist = check_allowlist(body["ipAllowlist"])
        await self.accounts.save_service(service)
        log.warning("permissions of service account '%s' (%s) set by '%s' to %s",
                    service.name, service.id, request.state.principal.name,
                    service.permissions)
        return json_response(service.public())
