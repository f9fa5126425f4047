"""The one error tree. Every error a client can cause is a `GortmsError` with a stable code.

    GortmsError (internal, 500)
    ├── BadRequest (bad_request, 400)
    │   ├── InvalidJson (invalid_json)
    │   ├── InvalidName (invalid_name)
    │   ├── InvalidParameter (invalid_parameter)
    │   ├── InvalidConfig (invalid_config)
    │   └── UnsupportedFeature (unsupported)
    ├── Unauthorized (unauthorized, 401: no credential, or one that does not hold)
    ├── Forbidden (forbidden, 403: the credential lacks the role or permission)
    ├── NotFound (not_found, 404)
    │   ├── DomainNotFound (domain_not_found)
    │   ├── QueueNotFound (queue_not_found)
    │   ├── GroupNotFound (group_not_found)
    │   └── ConsumerNotFound (consumer_not_found)
    ├── MethodNotAllowed (method_not_allowed, 405)
    ├── Conflict (conflict, 409)
    │   ├── DomainExists (domain_exists)
    │   ├── QueueExists (queue_exists)
    │   ├── GroupExists (group_exists)
    │   ├── NoConfigFile (no_config_file: started without --config; settings are read-only)
    │   └── ConfigFileUnavailable (config_file_unavailable: it cannot be read or written)
    ├── PayloadTooLarge (payload_too_large, 413)
    ├── HeadersTooLarge (headers_too_large, 431: over http.maxHeaderBytes)
    ├── SchemaViolation (schema_violation, 422)
    ├── TooManyRequests (too_many_requests, 429, retriable)
    │   ├── TooManyWaiters (too_many_waiters)
    │   ├── QueueFull (queue_full: maxSize reached, nothing acknowledged to evict)
    │   └── LoginThrottled (login_throttled: too many failed logins)
    ├── ShardUnavailable (shard_unavailable, 503, retriable; also a TimeoutError)
    ├── StorageError (storage_error, 503, retriable: a shard's store cannot write; it recovers)
    │   └── InsufficientStorage (insufficient_storage, 507: free space under storage.minFreeBytes)
    └── ConfigError (config_error; never sent to a client: the CLI exits with code 2)

An error crosses the gateway/shard hop as its code and message; `error_for(code, message)`
rebuilds the same class on the other side.
"""

from __future__ import annotations

from typing import ClassVar


class GortmsError(Exception):
    code: ClassVar[str] = "internal"
    http_status: ClassVar[int] = 500
    retriable: ClassVar[bool] = False
    # Seconds a client should wait before retrying, sent as Retry-After when set.
    retry_after_s: ClassVar[int | None] = None

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.code.replace("_", " "))
        self.message = str(self.args[0])

    def to_wire(self) -> dict[str, str]:
        return {"error": self.code, "message": self.message}


class BadRequest(GortmsError):
    code, http_status = "bad_request", 400


class InvalidJson(BadRequest):
    code = "invalid_json"


class InvalidName(BadRequest):
    code = "invalid_name"


class InvalidParameter(BadRequest):
    code = "invalid_parameter"


class InvalidConfig(BadRequest):
    code = "invalid_config"


class UnsupportedFeature(BadRequest):
    code = "unsupported"


class Unauthorized(GortmsError):
    """No credential, or one that does not hold (bad signature, expired, replayed)."""

    code, http_status = "unauthorized", 401


class Forbidden(GortmsError):
    """A valid credential without the role or permission the request needs."""

    code, http_status = "forbidden", 403


class NotFound(GortmsError):
    code, http_status = "not_found", 404


class DomainNotFound(NotFound):
    code = "domain_not_found"


class QueueNotFound(NotFound):
    code = "queue_not_found"


class GroupNotFound(NotFound):
    code = "group_not_found"


class ConsumerNotFound(NotFound):
    code = "consumer_not_found"


class MethodNotAllowed(GortmsError):
    code, http_status = "method_not_allowed", 405


class Conflict(GortmsError):
    code, http_status = "conflict", 409


class DomainExists(Conflict):
    code = "domain_exists"


class QueueExists(Conflict):
    code = "queue_exists"


class GroupExists(Conflict):
    code = "group_exists"


class NoConfigFile(Conflict):
    """The broker runs on its embedded defaults: there is no file to change."""

    code = "no_config_file"


class ConfigFileUnavailable(Conflict):
    """The config file went missing, cannot be read or written, or stays locked."""

    code = "config_file_unavailable"


class PayloadTooLarge(GortmsError):
    code, http_status = "payload_too_large", 413


class HeadersTooLarge(GortmsError):
    code, http_status = "headers_too_large", 431


class SchemaViolation(GortmsError):
    code, http_status = "schema_violation", 422


class TooManyRequests(GortmsError):
    code, http_status, retriable, retry_after_s = "too_many_requests", 429, True, 1


class TooManyWaiters(TooManyRequests):
    code = "too_many_waiters"


class QueueFull(TooManyRequests):
    """maxSize reached and the oldest messages are not acknowledged by every group."""

    code = "queue_full"


class LoginThrottled(TooManyRequests):
    """Too many failed logins for this user or from this address: wait, then try again."""

    code = "login_throttled"


class ShardUnavailable(GortmsError, TimeoutError):
    code, http_status, retriable, retry_after_s = "shard_unavailable", 503, True, 1


class StorageError(GortmsError):
    code, http_status, retriable, retry_after_s = "storage_error", 503, True, 1


class InsufficientStorage(StorageError):
    """The shard's disk is (nearly) full: writes that add data wait until space is freed."""

    code, http_status, retry_after_s = "insufficient_storage", 507, 5


class ConfigError(GortmsError):
    """A bad setting. `problems` holds one line per bad key; the CLI prints them and exits 2."""

    code = "config_error"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def error_classes() -> list[type[GortmsError]]:
    """GortmsError and every subclass, walked from the root."""
    found: list[type[GortmsError]] = []
    pending: list[type[GortmsError]] = [GortmsError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


_BY_CODE = {cls.code: cls for cls in error_classes()}


def error_for(code: str, message: str) -> GortmsError:
    """Rebuild an error received over the wire; an unknown code becomes a plain GortmsError."""
    cls = _BY_CODE.get(code, GortmsError)
    if cls is ConfigError:
        return ConfigError([message])
    return cls(message)
