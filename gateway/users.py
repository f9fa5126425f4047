"""People: bootstrap, login, profile, passwords, user administration, account requests.

No user exists until `POST /api/auth/bootstrap` creates the first admin from its body: there
is no built-in account and no default password. Passwords are Argon2id hashes
(gortms/passwords.py), computed on a thread so the event loop keeps serving. Failed logins
are counted per username and per client address; from the fifth in a row for a username
(the twenty-first for an address) each further one locks that name or address for twice as
long as the last (1 s, 2 s, 4 s, ... up to 15 min),
answered 429 `login_throttled` with Retry-After, whether or not the password was right.
Security events (logins, failures, changes of users and roles) go to the `gortms.security`
logger, never with a password or a token.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gortms.errors import (Conflict, Forbidden, InvalidParameter, LoginThrottled, NotFound,
                           Unauthorized)
from gortms.passwords import MAX_PASSWORD, MIN_PASSWORD, hash_password, verify_password
from gateway.accounts import ROLES, AccountRequest, Accounts, User, new_id, now_ms
from gateway.credentials import Credentials, Principal
from gateway.guard import client_address
from gateway.params import read_object
from gateway.responses import json_response

log = logging.getLogger("gortms.security")

USERNAME = re.compile(r"^[A-Za-z0-9._@-]{3,64}$")
# Failed logins in a row before the lockouts start: per username, and (many people may share
# one address behind a NAT) more per client address.
FREE_USER_FAILURES = 4
FREE_ADDRESS_FAILURES = 20
MAX_LOCK_MS = 15 * 60 * 1000
STATUSES = ("pending", "approved", "rejected")
# Verified against when the username is unknown, so that timing does not tell names apart.
_DUMMY_HASH = hash_password("not a password of anyone")


def check_username(value: Any) -> str:
    if not isinstance(value, str) or not USERNAME.match(value):
        raise InvalidParameter("username must have 3 to 64 characters of A-Z a-z 0-9 . _ @ -")
    return value


def check_password(value: Any, field: str = "password") -> str:
    if not isinstance(value, str) or not MIN_PASSWORD <= len(value) or \
            len(value.encode()) > MAX_PASSWORD:
        raise InvalidParameter(f"{field} must have at least {MIN_PASSWORD} characters (and "
                               f"at most {MAX_PASSWORD} bytes)")
    return value


def check_email(value: Any) -> str | None:
    """Kept for people to read, never sent to: any printable text up to 254 characters
    (the seed README's own example is "[email protected]")."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 254 or \
            any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidParameter("email must be printable text of at most 254 characters")
    return value


def check_role(value: Any) -> str:
    if value not in ROLES:
        raise InvalidParameter(f"role must be one of {', '.join(ROLES)}")
    return value


async def _hash(password: str) -> str:
    return await asyncio.to_thread(hash_password, password)


async def _verify(password: str, stored: str) -> bool:
    return await asyncio.to_thread(verify_password, password, stored)


def _principal(request: Request) -> Principal:
    return request.state.principal


class UsersApi:
    def __init__(self, accounts: Accounts, credentials: Credentials, max_body: int) -> None:
        self.accounts = accounts
        self.credentials = credentials
        self.max_body = max_body

    async def _body(self, request: Request) -> dict[str, Any]:
        return await read_object(request, self.max_body)

    async def _new_user(self, body: dict[str, Any], role: str) -> User:
        now = now_ms()
        return User(id=new_id(), username=check_username(body.get("username")),
                    email=check_email(body.get("email")), role=role,
                    password_hash=await _hash(check_password(body.get("password"))),
                    created_at=now, updated_at=now)

    # --- authentication -----------------------------------------------------------------------

    async def bootstrap(self, request: Request) -> Response:
        body = await self._body(request)
        user = await self._new_user(body, "admin")
        await self.accounts.create_user(user, first=True)
        log.warning("bootstrap: created the first admin '%s' from %s", user.username,
                    client_address(request.scope))
        return json_response({"status": "success", "user": user.public()}, 201)

    async def login(self, request: Request) -> Response:
        body = await self._body(request)
        username, password = body.get("username"), body.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            raise InvalidParameter("send {\"username\": ..., \"password\": ...}")
        if len(password.encode()) > MAX_PASSWORD:
            raise InvalidParameter(f"password has more than {MAX_PASSWORD} bytes")
        address = client_address(request.scope)
        keys = [f"u:{username.lower()}", f"a:{address}"]
        now = now_ms()
        states = [await self.accounts.login_failures(key) for key in keys]
        locked = max(state.locked_until_ms for state in states)
        if locked > now:
            log.warning("login throttled for '%s' from %s", username, address)
            error = LoginThrottled(f"too many failed logins; try again in "
                                   f"{(locked - now + 999) // 1000} s")
            error.retry_after_s = max(1, (locked - now + 999) // 1000)  # type: ignore[misc]
            raise error
        user = await self.accounts.user_by_name(username)
        good = await _verify(password, user.password_hash if user else _DUMMY_HASH)
        if user is None or not good or user.disabled:
            for key, state, free in zip(keys, states,
                                        (FREE_USER_FAILURES, FREE_ADDRESS_FAILURES)):
                state.count += 1
                if state.count > free:
                    state.locked_until_ms = now + min(
                        MAX_LOCK_MS, 1000 * 2 ** min(20, state.count - free - 1))
                await self.accounts.save_login_failures(key, state)
            log.warning("login failed for '%s' from %s%s", username, address,
                        " (disabled)" if user is not None and good else "")
            raise Unauthorized("wrong username or password" if not (user and good) else
                               "this user is disabled")
        for key, state in zip(keys, states):
            if state.count:
                await self.accounts.save_login_failures(key, None)
        token, exp = self.credentials.issue(user)
        log.info("login: '%s' from %s", user.username, address)
        return json_response({"token": token, "expiresAt": exp, "user": user.public()})

    async def profile(self, request: Request) -> Response:
        return json_response((await self._current(request)).public())

    async def _current(self, request: Request) -> User:
        user = await self.accounts.user(_principal(request).id)
        if user is None:
            raise Unauthorized("the user no longer exists")
        return user

    async def change_password(self, request: Request) -> Response:
        body = await self._body(request)
        old = body.get("oldPassword", body.get("currentPassword"))
        new = check_password(body.get("newPassword"), "newPassword")
        user = await self._current(request)
        if not isinstance(old, str) or not await _verify(old, user.password_hash):
            log.warning("password change refused for '%s': wrong old password", user.username)
            raise Unauthorized("the old password is wrong")
        user.password_hash = await _hash(new)
        user.token_version += 1  # every token issued before stops working
        user.updated_at = now_ms()
        await self.accounts.save_user(user)
        token, exp = self.credentials.issue(user)
        log.warning("password changed for '%s'", user.username)
        return json_response({"status": "success", "token": token, "expiresAt": exp})

    # --- administration -----------------------------------------------------------------------

    async def list_users(self, request: Request) -> Response:
        return json_response({"users": [u.public() for u in await self.accounts.users()]})

    async def create_user(self, request: Request) -> Response:
        body = await self._body(request)
        user = await self._new_user(body, check_role(body.get("role", "user")))
        await self.accounts.create_user(user)
        log.warning("user '%s' (%s) created by '%s'", user.username, user.role,
                    _principal(request).name)
        return json_response(user.public(), 201)

    async def update_user(self, request: Request) -> Response:
        """PATCH /api/users/{id}: the user itself (email, password) or an admin (also role,
        disabled)."""
        principal = _principal(request)
        user_id = request.path_params["id"]
        is_admin = principal.is_admin
        if not is_admin and principal.id != user_id:
            raise Forbidden("only an admin may change another user")
        user = await self.accounts.user(user_id)
        if user is None:
            raise NotFound(f"user '{user_id}' not found")
        body = await self._body(request)
        unknown = set(body) - {"email", "password", "role", "disabled"}
        if unknown:
            raise InvalidParameter(f"unknown key {sorted(unknown)[0]}; a user has email, "
                                   "password, role and disabled")
        changes = []
        if "email" in body:
            user.email = check_email(body["email"])
            changes.append("email")
        if "password" in body:
            user.password_hash = await _hash(check_password(body["password"]))
            user.token_version += 1
            changes.append("password")
        for key in ("role", "disabled"):
            if key not in body:
                continue
            if not is_admin:
                raise Forbidden(f"only an admin may change {key}")
            if key == "role":
                user.role = check_role(body["role"])
            else:
                if not isinstance(body["disabled"], bool):
                    raise InvalidParameter("disabled must be true or false")
                user.disabled = body["disabled"]
                user.token_version += 1 if user.disabled else 0
            changes.append(key)
        user.updated_at = now_ms()
        await self.accounts.save_user(user)
        log.warning("user '%s' changed by '%s': %s", user.username, principal.name,
                    ", ".join(changes) or "nothing")
        return json_response(user.public())

    # --- account requests ---------------------------------------------------------------------

    async def request_account(self, request: Request) -> Response:
        body = await self._body(request)
        username = check_username(body.get("username"))
        if await self.accounts.user_by_name(username) is not None:
            raise Conflict(f"username '{username}' is taken")
        pending = [r for r in await self.accounts.requests()
                   if r.username.lower() == username.lower() and r.status == "pending"]
        if pending:
            raise Conflict(f"an account request for '{username}' is already pending")
        record = AccountRequest(id=new_id(), username=username,
                                email=check_email(body.get("email")),
                                password_hash=await _hash(check_password(body.get("password"))),
                                created_at=now_ms())
        await self.accounts.save_request(record, new=True)
        log.info("account requested for '%s' from %s", username, client_address(request.scope))
        return json_response(record.public(), 201)

    async def list_requests(self, request: Request) -> Response:
        status = request.query_params.get("status")
        if status is not None and status not in STATUSES:
            raise InvalidParameter(f"status must be one of {', '.join(STATUSES)}")
        found = [r.public() for r in await self.accounts.requests()
                 if status is None or r.status == status]
        return json_response({"requests": found, "count": len(found)})

    async def _request(self, request: Request) -> AccountRequest:
        found = await self.accounts.request(request.path_params["id"])
        if found is None:
            raise NotFound(f"account request '{request.path_params['id']}' not found")
        return found

    async def get_request(self, request: Request) -> Response:
        return json_response((await self._request(request)).public())

    async def delete_request(self, request: Request) -> Response:
        found = await self._request(request)
        await self.accounts.delete_request(found.id)
        return json_response({"status": "success", "deleted": found.id})

    async def review_request(self, request: Request) -> Response:
        found = await self._request(request)
        if found.status != "pending":
            raise Conflict(f"the request was {found.status} already")
        body = await self._body(request)
        approve = body.get("approve")
        if not isinstance(approve, bool):
            raise InvalidParameter("approve must be true or false")
        principal = _principal(request)
        found.reviewed_at = now_ms()
        found.reviewed_by = principal.name
        if approve:
            role = check_role(body.get("approvedRole", "user"))
            now = now_ms()
            user = User(id=new_id(), username=found.username, email=found.email, role=role,
                        password_hash=found.password_hash, created_at=now, updated_at=now)
            await self.accounts.create_user(user)
            found.status, found.approved_role = "approved", role
        else:
            reason = body.get("rejectReason")
            if reason is not None and (not isinstance(reason, str) or len(reason) > 1024):
                raise InvalidParameter("rejectReason must be a string of at most 1024 "
                                       "characters")
            found.status, found.reject_reason = "rejected", reason
        await self.accounts.save_request(found)
        log.warning("account request of '%s' %s by '%s'", found.username, found.status,
                    principal.name)
        return json_response(found.public())
