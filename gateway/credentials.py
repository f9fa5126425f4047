"""Who is asking: JWTs for people, HMAC-SHA256 signatures for services (API.md, Authentication).

A request carries at most one credential:
- `Authorization: Bearer <jwt>` (or `?token=<jwt>` where a browser cannot set headers:
  WebSockets, EventSource). HS256 only, signed with the data dir's secret (gortms/secrets.py),
  claims sub, username, role, iat, exp and ver (the user's token version: a password change
  or disabling bumps it, so older tokens stop working). A verified token is cached until it
  expires: a data-plane request costs a dict lookup, never a signature check or a hash.
- `X-Service-ID`, `X-Timestamp` (RFC 3339), `X-Signature: sha256=<lowercase hex>` over
  METHOD \\n PATH \\n BODY \\n TIMESTAMP, keyed with the service's secret. The timestamp must be
  within security.hmac.timestampWindow, the client address in the service's allow-list (if
  it has one), and the signature new: it is checked against a replay cache in a shard
  (shard/records.py), shared by every gateway worker. With security.hmac.requireTLS, a signed
  request over plain HTTP is answered 404, as if the route did not exist.

Permissions (services): `publish:<domain>`, `consume:<domain>`, `manage:<domain>`, with `*`
for any action or domain (`publish:*`, `*:orders`, `*`). Users: `admin` may do everything,
`user` everything on domains but administration (users, services, account requests).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

import jwt

from gortms.config import Settings
from gortms.errors import Forbidden, InvalidParameter, NotFound, Unauthorized
from gortms.protocol import ReplayCheck
from gortms.secrets import Sealer
from gateway.accounts import Accounts, Service, User
from gateway.shards import PENDING_REPLAY, Shards

log = logging.getLogger("gortms.security")

ACTIONS = ("publish", "consume", "manage")
READ = "read"  # any of the actions on the domain
MAX_TOKEN_CACHE = 50_000
MAX_TOKEN_BYTES = 8192
_PERMISSION = re.compile(r"^(\*|publish|consume|manage)(?::(\*|[A-Za-z0-9._:-]{1,128}))?$")


def check_permissions(permissions: Any) -> list[str]:
    """Validated, deduplicated permission strings (400 naming the first bad one)."""
    if not isinstance(permissions, list) or not all(isinstance(p, str) for p in permissions):
        raise InvalidParameter("permissions must be a list of strings like \"publish:orders\"")
    out: list[str] = []
    for permission in permissions:
        if not _PERMISSION.match(permission):
            raise InvalidParameter(
                f"permission {permission!r} is not one of publish:<domain>, consume:<domain>, "
                "manage:<domain>, with * for any action or domain (\"publish:*\", \"*\")")
        if permission not in out:
            out.append(permission)
    return out


def check_allowlist(entries: Any) -> list[str]:
    """Exact addresses, `*` prefixes (\"10.0.*\"), CIDR blocks."""
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise InvalidParameter("ipAllowlist must be a list of addresses, \"10.0.*\" prefixes "
                               "or CIDR blocks")
    for entry in entries:
        if entry.endswith("*"):
            if not re.fullmatch(r"[0-9a-fA-F.:]*\*", entry):
                raise InvalidParameter(f"ipAllowlist entry {entry!r} is not a valid prefix")
            continue
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise InvalidParameter(f"ipAllowlist entry {entry!r} is not an address, a "
                                   "prefix ending in * or a CIDR block") from None
    return entries


def address_allowed(address: str, allowlist: list[str]) -> bool:
    if not allowlist:
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for entry in allowlist:
        if entry.endswith("*"):
            if address.startswith(entry[:-1]):
                return True
        elif ip in ipaddress.ip_network(entry, strict=False):
            return True
    return False


@dataclass(frozen=True, slots=True)
class Principal:
    kind: str  # "user", "service", or "anonymous" (authentication off)
    id: str
    name: str
    role: str | None = None
    permissions: tuple[str, ...] = ()
    token_exp: int = 0
    token_version: int = 0

    @property
    def is_admin(self) -> bool:
        return self.kind == "anonymous" or self.role == "admin"

    def may(self, action: str, domain: str) -> bool:
        """Whether this principal may `action` ("publish", "consume", "manage", or "read":
        any of them) on `domain` ("*": every domain)."""
        if self.kind != "service":
            return True  # users: every domain operation (administration is checked apart)
        for permission in self.permissions:
            verb, _, scope = permission.partition(":")
            if (verb == "*" or verb == action or action == READ) and \
                    (scope in ("", "*") or scope == domain):
                return True
        return False

    def require(self, action: str, domain: str) -> None:
        if not self.may(action, domain):
            what = "any permission" if action == READ else f"{action}:{domain}"
            raise Forbidden(f"service '{self.name}' needs {what} on domain '{domain}'"
                            if action == READ else f"service '{self.name}' needs {what}")


ANONYMOUS = Principal("anonymous", "", "anonymous", "admin")


@dataclass
class Credentials:
    settings: Settings
    accounts: Accounts
    shards: Shards
    jwt_secret: bytes
    sealer: Sealer | None
    _tokens: dict[str, tuple[Principal, int]] = field(default_factory=dict)
    # service id -> (the record it was made from, its secret, its principal)
    _service_secrets: dict[str, tuple[Service, bytes, Principal]] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return self.settings.security.enable_authentication

    # --- tokens -------------------------------------------------------------------------------

    def issue(self, user: User) -> tuple[str, int]:
        """A token for `user`, and when it expires (epoch seconds)."""
        now = int(time.time())
        exp = now + self.settings.http.jwt.expiration_minutes * 60
        token = jwt.encode({"sub": user.id, "username": user.username, "role": user.role,
                            "iat": now, "exp": exp, "ver": user.token_version},
                           self.jwt_secret, algorithm="HS256")
        return token, exp

    async def from_token(self, token: str) -> Principal:
        now = int(time.time())
        cached = self._tokens.get(token)
        if cached is not None and cached[1] > now:
            principal = cached[0]
        else:
            principal = self._verify(token)
            if len(self._tokens) >= MAX_TOKEN_CACHE:
                self._tokens.clear()
            self._tokens[token] = (principal, principal.token_exp)
        # The user as it is now (cached, dropped on every change): gone, disabled, or a
        # password changed since the token was issued.
        user = await self.accounts.user(principal.id)
        if user is None or user.disabled or user.token_version != principal.token_version:
            raise Unauthorized("the token is no longer valid (the user's password was "
                               "changed, or the user disabled or deleted); log in again")
        if user.role != principal.role:  # a role changed since: the stored one counts
            return Principal("user", user.id, user.username, user.role,
                             token_exp=principal.token_exp,
                             token_version=principal.token_version)
        return principal

    def _verify(self, token: str) -> Principal:
        if len(token) > MAX_TOKEN_BYTES:
            raise Unauthorized("the token is too long")
        try:
            claims = jwt.decode(token, self.jwt_secret, algorithms=["HS256"],
                                options={"require": ["sub", "exp", "iat"]})
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired; log in again") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"the token is not valid: {exc}") from None
        try:
            return Principal("user", str(claims["sub"]), str(claims.get("username", "")),
                             str(claims.get("role", "user")), token_exp=int(claims["exp"]),
                             token_version=int(claims.get("ver", 1)))
        except (TypeError, ValueError):
            raise Unauthorized("the token's claims are malformed") from None

    # --- signatures ---------------------------------------------------------------------------

    async def from_signature(self, method: str, path: str, headers: Mapping[str, str],
                             body: bytes, address: str, scheme: str,
                             replay_shard: int | None = None) -> Principal:
        hmac_settings = self.settings.security.hmac
        if not hmac_settings.enabled:
            raise Unauthorized("HMAC signatures are turned off (security.hmac.enabled)")
        if hmac_settings.require_tls and scheme not in ("https", "wss"):
            raise NotFound("not found")  # API.md: over plain HTTP, as if nothing were here
        service_id = headers.get("x-service-id", "")
        stamp = headers.get("x-timestamp", "")
        signature = headers.get("x-signature", "")
        if not service_id or not stamp or not signature:
            raise Unauthorized("a signed request needs X-Service-ID, X-Timestamp and "
                               "X-Signature")
        try:
            signed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            if signed.tzinfo is None:
                raise ValueError("no time zone")
        except ValueError:
            raise Unauthorized("X-Timestamp must be an RFC 3339 time with a time zone") from None
        given = signature[7:] if signature.startswith("sha256=") else signature
        if len(given) != 64:
            raise Unauthorized("X-Signature must be sha256=<64 lowercase hex digits>")
        signed_ms = int(signed.timestamp() * 1000)
        window_ms = int(hmac_settings.timestamp_window * 1000)
        now = int(time.time() * 1000)
        if abs(now - signed_ms) > window_ms:
            raise Unauthorized("X-Timestamp is outside the accepted window "
                               "(security.hmac.timestampWindow); check the client's clock")
        service = self.accounts.cached_service(service_id)
        if service is None:
            service = await self.accounts.service(service_id)
        if service is None or not service.enabled:
            self._failed("unknown or disabled service", service_id, address)
        assert service is not None
        if service.ip_allowlist and not address_allowed(address, service.ip_allowlist):
            self._failed("address not in the allow-list", service_id, address)
        secret, principal = self._service_keys(service)
        # hmac.digest: one call into OpenSSL, not an HMAC object per request
        expected = hmac.digest(secret, b"%s\n%s\n%s\n%s" % (
            method.encode(), path.encode(), body, stamp.encode()), "sha256").hex()
        if not hmac.compare_digest(expected.encode(), given.encode()):
            self._failed("bad signature", service_id, address)
        # A signature is 32 bytes of HMAC output under the service's own key: unique enough
        # to be its own replay key.
        check = ReplayCheck(digest=bytes.fromhex(given), signed_ms=signed_ms,
                            until_ms=signed_ms + window_ms + 1000)
        if replay_shard is not None:
            # The request will go to that shard anyway: the check rides in front of it, in
            # the same frame, and refuses it there if the signature is old (no round trip).
            PENDING_REPLAY.set([check, replay_shard])
        else:
            await self.shards.call(check.digest[0] % self.shards.count, check)
        return principal

    def _service_keys(self, service: Service) -> tuple[bytes, Principal]:
        """The service's secret (opened once per sealed value) and its principal."""
        cached = self._service_secrets.get(service.id)
        if cached is not None and cached[0] is service:
            return cached[1], cached[2]
        assert self.sealer is not None
        secret = self.sealer.open(service.secret, service.id).encode()
        principal = Principal("service", service.id, service.name, None,
                              tuple(service.permissions))
        self._service_secrets[service.id] = (service, secret, principal)
        return secret, principal

    def _failed(self, why: str, service_id: str, address: str) -> None:
        log.warning("signed request refused: %s (service %s, from %s)", why, service_id,
                    address)
        raise Unauthorized("the request's signature is not valid for this service")

    # --- either -------------------------------------------------------------------------------

    async def authenticate(self, method: str, path: str, headers: Mapping[str, str],
                           query_token: str | None, body: bytes, address: str, scheme: str,
                           replay_shard: int | None = None) -> Principal:
        """The principal behind the request; Unauthorized without a (valid) credential."""
        if not self.enabled:
            return ANONYMOUS
        authorization = headers.get("authorization")
        if authorization is not None:
            kind, _, token = authorization.partition(" ")
            if kind.lower() != "bearer" or not token:
                raise Unauthorized("Authorization must be \"Bearer <token>\"")
            return await self.from_token(token.strip())
        if "x-signature" in headers or "x-service-id" in headers:
            return await self.from_signature(method, path, headers, body, address, scheme,
                                             replay_shard)
        if query_token:
            return await self.from_token(query_token)
        raise Unauthorized("authentication required: send \"Authorization: Bearer <token>\" "
                           "(POST /api/auth/login) or sign the request (X-Service-ID, "
                           "X-Timestamp, X-Signature)")

