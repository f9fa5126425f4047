"""Credentials: the headers a request carries (docs/security.md).

A user's token goes as `Authorization: Bearer <jwt>`. A service signs each request as the
gateway verifies it (gateway/credentials.py): `X-Service-ID`, `X-Timestamp` (RFC 3339, UTC)
and `X-Signature: sha256=<hex>`, the HMAC-SHA256 under the secret of
METHOD \\n PATH \\n BODY \\n TIMESTAMP, PATH without the query string, BODY the bytes sent.
The broker accepts each signature once, so every attempt, retries included, is signed anew,
and the timestamps of one signer strictly increase (two identical requests in the same
microsecond would otherwise share a signature and the second be refused as a replay).
"""

from __future__ import annotations

import hmac
import threading
import time
from datetime import datetime, timezone
from typing import Callable, Mapping

# (method, path, body) -> the credential's headers for that request
Authorize = Callable[[str, str, bytes], Mapping[str, str]]


def bearer(token: str) -> Authorize:
    headers = {"Authorization": f"Bearer {token}"}
    return lambda method, path, body: headers


class ServiceSigner:
    """HMAC-SHA256 signatures for a service account (its id and its secret)."""

    def __init__(self, service_id: str, secret: str) -> None:
        self.service_id = service_id
        self._key = secret.encode()
        self._last_us = 0
        self._lock = threading.Lock()

    def _stamp(self) -> str:
        with self._lock:
            self._last_us = max(time.time_ns() // 1000, self._last_us + 1)
            micros = self._last_us
        seconds, micro = divmod(micros, 1_000_000)  # whole numbers: a float would round
        return datetime.fromtimestamp(seconds, timezone.utc).replace(
            microsecond=micro).isoformat(timespec="microseconds")

    def __call__(self, method: str, path: str, body: bytes) -> Mapping[str, str]:
        stamp = self._stamp()
        digest = hmac.digest(self._key, b"%s\n%s\n%s\n%s" % (
            method.encode(), path.encode(), body, stamp.encode()), "sha256").hex()
        return {"X-Service-ID": self.service_id, "X-Timestamp": stamp,
                "X-Signature": f"sha256={digest}"}


def authorizer(token: str | None, service_id: str | None,
               service_secret: str | None) -> Authorize | None:
    """The one credential given (none: no headers, for a broker with authentication off)."""
    if token is not None and (service_id is not None or service_secret is not None):
        raise ValueError("give a token or a service id and secret, not both")
    if token is not None:
        return bearer(token)
    if (service_id is None) != (service_secret is None):
        raise ValueError("a service needs both service_id and service_secret")
    if service_id is not None and service_secret is not None:
        return ServiceSigner(service_id, service_secret)
    return None
