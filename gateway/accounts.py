"""Users, service accounts, account requests and login failures: typed records kept in the
catalog shard's record store (shard/records.py), cached here.

    users        <user id>          User (password as an Argon2id hash)
    usernames    <username, lower>  the user id: a username is taken once, whatever the case
    services     <service id>       Service (its secret sealed under the data dir's key)
    requests     <request id>       AccountRequest
    logins       u:<name> | a:<ip>  LoginFailures

Uniqueness and "the first admin only while no user exists" are conditions of the shard's
all-or-nothing writes, so they hold across gateway workers. Users and services are read on
every authenticated request, so they are cached; a change announced by the catalog shard
drops the entry in every worker, a reconnect of that shard drops them all, and entries
expire after ENTRY_TTL_S as a last resort (a disabled user stops working at once).
"""

from __future__ import annotations

import time
import uuid
from typing import Any, TypeVar

import msgspec
from msgspec import Struct

from gortms.partition import CATALOG_SHARD
from gortms.protocol import (CatalogEvent, RecordCondition, Records, RecordsRead, RecordsWrite,
                             RecordWrite)
from gateway.shards import Shards

ENTRY_TTL_S = 30.0
ROLES = ("admin", "user")

T = TypeVar("T", bound=Struct)


class User(Struct, kw_only=True, rename="camel"):
    id: str
    username: str
    email: str | None = None
    role: str = "user"
    password_hash: str
    disabled: bool = False
    created_at: int
    updated_at: int
    # Bumped by a password change (and disabling): tokens carry it, older ones stop working.
    token_version: int = 1

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "username": self.username, "email": self.email,
                "role": self.role, "disabled": self.disabled,
                "createdAt": _iso(self.created_at), "updatedAt": _iso(self.updated_at)}


class Service(Struct, kw_only=True, rename="camel"):
    id: str
    name: str
    description: str | None = None
    secret: bytes  # sealed (gortms/secrets.py Sealer)
    permissions: list[str] = []
    ip_allowlist: list[str] = []
    enabled: bool = True
    created_at: int
    rotated_at: int

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "description": self.description,
                "permissions": self.permissions, "ipAllowlist": self.ip_allowlist,
                "enabled": self.enabled, "createdAt": _iso(self.created_at),
                "secretRotatedAt": _iso(self.rotated_at)}


class AccountRequest(Struct, kw_only=True, rename="camel"):
    id: str
    username: str
    email: str | None = None
    password_hash: str
    status: str = "pending"  # pending, approved, rejected
    created_at: int
    reviewed_at: int | None = None
    reviewed_by: str | None = None
    approved_role: str | None = None
    reject_reason: str | None = None

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "username": self.username, "email": self.email,
                "status": self.status, "createdAt": _iso(self.created_at),
                "reviewedAt": _iso(self.reviewed_at) if self.reviewed_at else None,
                "reviewedBy": self.reviewed_by, "approvedRole": self.approved_role,
                "rejectReason": self.reject_reason}


class LoginFailures(Struct, kw_only=True, rename="camel"):
    count: int = 0
    locked_until_ms: int = 0


def _iso(ms: int) -> str:
    from gortms.models import format_ts
    return format_ts(ms)


def now_ms() -> int:
    return int(time.time() * 1000)


def new_id() -> str:
    return str(uuid.uuid4())


_encoder = msgspec.json.Encoder()


def encode(record: Struct) -> bytes:
    return _encoder.encode(record)


class Accounts:
    def __init__(self, shards: Shards) -> None:
        self._shards = shards
        self._users: dict[str, tuple[User | None, float]] = {}
        self._services: dict[str, tuple[Service | None, float]] = {}
        self._decoders: dict[type, msgspec.json.Decoder[Any]] = {}

    # --- cache events -------------------------------------------------------------------------

    def on_event(self, event: CatalogEvent) -> None:
        if event.kind != "records":
            return
        if event.domain == "users":
            self._users.pop(event.queue or "", None)
        elif event.domain == "services":
            self._services.pop(event.queue or "", None)

    def on_reconnect(self, shard: int) -> None:
        if shard == CATALOG_SHARD:
            self._users.clear()
            self._services.clear()

    # --- reading ------------------------------------------------------------------------------

    def _decode(self, kind: type[T], data: bytes) -> T:
        decoder = self._decoders.get(kind)
        if decoder is None:
            decoder = self._decoders[kind] = msgspec.json.Decoder(kind)
        return decoder.decode(data)

    async def _read(self, collection: str, keys: list[str]) -> dict[str, bytes]:
        reply: Records = await self._shards.call(
            CATALOG_SHARD, RecordsRead(collection=collection, keys=keys))
        return reply.items

    async def _all(self, collection: str, kind: type[T]) -> list[T]:
        items = await self._read(collection, [])
        return [self._decode(kind, value) for value in items.values()]

    async def user(self, user_id: str) -> User | None:
        return await self._cached(self._users, "users", User, user_id)

    @staticmethod
    def _fresh(cache: dict[str, tuple[Any, float]], key: str) -> tuple[Any, float] | None:
        entry = cache.get(key)
        return entry if entry is not None and entry[1] > time.monotonic() else None

    async def _cached(self, cache: dict[str, tuple[Any, float]], collection: str,
                      kind: type[T], key: str) -> T | None:
        """A record through its cache (a missing one is cached too: the change that makes
        it exist drops the entry)."""
        entry = self._fresh(cache, key)
        if entry is not None:
            return entry[0]
        items = await self._read(collection, [key])
        found = self._decode(kind, items[key]) if key in items else None
        cache[key] = (found, time.monotonic() + ENTRY_TTL_S)
        return found

    async def user_by_name(self, username: str) -> User | None:
        items = await self._read("usernames", [username.lower()])
        if not items:
            return None
        return await self.user(items[username.lower()].decode())

    async def users(self) -> list[User]:
        return sorted(await self._all("users", User), key=lambda u: u.created_at)

    def cached_service(self, service_id: str) -> Service | None:
        """The service if cached and fresh, without a coroutine (the signed hot path)."""
        entry = self._fresh(self._services, service_id)
        return entry[0] if entry is not None else None

    async def service(self, service_id: str) -> Service | None:
        return await self._cached(self._services, "services", Service, service_id)

    async def services(self) -> list[Service]:
        return sorted(await self._all("services", Service), key=lambda s: s.created_at)

    async def request(self, request_id: str) -> AccountRequest | None:
        items = await self._read("requests", [request_id])
        return self._decode(AccountRequest, items[request_id]) if items else None

    async def requests(self) -> list[AccountRequest]:
        return sorted(await self._all("requests", AccountRequest), key=lambda r: r.created_at)

    async def login_failures(self, key: str) -> LoginFailures:
        items = await self._read("logins", [key])
        return self._decode(LoginFailures, items[key]) if items else LoginFailures()

    # --- writing ------------------------------------------------------------------------------

    async def _write(self, writes: list[RecordWrite], conditions: list[RecordCondition] = (),
                     conflict: str = "the records changed meanwhile") -> None:
        await self._shards.call(CATALOG_SHARD, RecordsWrite(
            writes=writes, conditions=list(conditions), conflict=conflict))

    async def create_user(self, user: User, first: bool = False) -> None:
        """Raises Conflict if the username is taken (or, `first`, if any user exists)."""
        conditions = [RecordCondition("usernames", user.username.lower(), False)]
        if first:
            conditions.append(RecordCondition("users", None, False))
        await self._write([RecordWrite("users", user.id, encode(user)),
                           RecordWrite("usernames", user.username.lower(), user.id.encode())],
                          conditions,
                          "a user exists already: bootstrap only creates the first admin"
                          if first else f"username '{user.username}' is taken")
        self._users.pop(user.id, None)

    async def save_user(self, user: User) -> None:
        await self._write([RecordWrite("users", user.id, encode(user))],
                          [RecordCondition("users", user.id, True)], "the user was deleted")
        self._users.pop(user.id, None)

    async def save_service(self, service: Service, new: bool = False) -> None:
        await self._write([RecordWrite("services", service.id, encode(service))],
                          [RecordCondition("services", service.id, not new)],
                          "the service account was deleted" if not new else
                          "a service account with that id exists")
        self._services.pop(service.id, None)

    async def delete_service(self, service_id: str) -> None:
        await self._write([RecordWrite("services", service_id, None)],
                          [RecordCondition("services", service_id, True)],
                          "the service account was deleted meanwhile")
        self._services.pop(service_id, None)

    async def save_request(self, request: AccountRequest, new: bool = False) -> None:
        await self._write([RecordWrite("requests", request.id, encode(request))],
                          [RecordCondition("requests", request.id, not new)],
                          "the account request was deleted meanwhile")

    async def delete_request(self, request_id: str) -> None:
        await self._write([RecordWrite("requests", request_id, None)],
                          [RecordCondition("requests", request_id, True)],
                          "the account request was deleted meanwhile")

    async def save_login_failures(self, key: str, failures: LoginFailures | None) -> None:
        await self._write([RecordWrite("logins", key,
                                       None if failures is None else encode(failures))])
