"""Every REST operation of the client, written once and free of I/O.

An operation builds a `Call` (method, path, query, body, how to decode the answer, whether it
is safe to repeat) and hands it to `_send`. `Client._send` performs it and returns the
result; `AsyncClient._send` returns the coroutine that does (gortms/client/http.py). So both
clients expose the same methods from this one class, and the I/O is all either adds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cache
from typing import Any, Awaitable, Callable, Iterable, Mapping, TypeVar

import msgspec
import orjson

from gortms.checks import check_name, dec_hook, format_duration
from gortms.client.auth import Authorize
from gortms.client.errors import error_from_response, parse_retry_after
from gortms.errors import GortmsError
from gortms.client.models import (Acked, BatchPublished, Extended, Fetched, GroupInfo, Health,
                                  Message, Nacked, Published, QueueInfo, Settled)
from gortms.client.retry import RetryPolicy
from gortms.models import QueueConfig

T = TypeVar("T")
# What a method gives: the value itself (Client), or an awaitable of it (AsyncClient).
Result = T | Awaitable[T]
# Which messages an ack, nack or extend names: delivered Messages and positions name exactly
# one delivery, strings are message ids.
Targets = Iterable[Message | int | str]
# A delay or a lease: Go-style text ("30s"), seconds, or a timedelta.
Duration = str | float | timedelta

JSON = "application/json"
MAX_FETCH = 1000  # the broker's limit of messages per fetch


@dataclass(frozen=True, slots=True)
class Settings:
    """What every call of one client shares."""

    url: str
    authorize: Authorize | None
    retry: RetryPolicy
    timeout_s: float


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    path: str  # names checked (gortms.checks.check_name): nothing in them needs escaping
    # a success answer's body and headers -> the result (None: the result is None)
    decode: Callable[[bytes, Mapping[str, str]], Any] | None = None
    params: Mapping[str, str] | None = None
    body: bytes = b""
    headers: Mapping[str, str] | None = None
    idempotent: bool = True  # safe to repeat after an unclear failure (gortms/client/retry.py)
    wait_s: float = 0.0  # a long poll: how long the broker may hold it before answering
    accept: tuple[int, ...] = ()  # other statuses whose body is a result (health's 503)

    def request(self, settings: Settings) -> dict[str, Any]:
        """The keyword arguments of httpx2's `request` for one attempt (signed anew)."""
        headers = {"Content-Type": JSON} if self.body else {}
        if self.headers:
            headers.update(self.headers)
        if settings.authorize is not None:
            headers.update(settings.authorize(self.method, self.path, self.body))
        return {"method": self.method, "url": self.path, "params": self.params,
                "content": self.body or None, "headers": headers,
                "timeout": settings.timeout_s + self.wait_s}

    def outcome(self, status: int, headers: Mapping[str, str], content: bytes) -> Any:
        """The answer's result, or the error it stands for, raised."""
        if not (200 <= status < 300 or status in self.accept):
            raise error_from_response(status, headers, content)
        if self.decode is None:
            return None
        try:
            return self.decode(content, headers)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise GortmsError(f"the broker's answer to {self.method} {self.path} is not what "
                              f"this client expects ({exc}): is --url a GoRTMS broker?") from exc


@cache
def _decoder(kind: type[T]) -> Callable[[bytes, Mapping[str, str]], T]:
    decode = msgspec.json.Decoder(kind, dec_hook=dec_hook).decode  # dec_hook: durations
    return lambda content, headers: decode(content)


class _QueueCreated(msgspec.Struct, frozen=True):
    config: QueueConfig


def _queue_config(content: bytes, headers: Mapping[str, str]) -> QueueConfig:
    return _decoder(_QueueCreated)(content, headers).config


def _fetched(content: bytes, headers: Mapping[str, str]) -> Fetched:
    """A fetch's answer; an open circuit says in Retry-After when to ask again."""
    fetched = _decoder(Fetched)(content, headers)
    if fetched.circuit is not None:
        return msgspec.structs.replace(
            fetched, retry_after_s=parse_retry_after(headers.get("retry-after")))
    return fetched


def domain_path(domain: str) -> str:
    # Checked here, not only by the broker: the gateway routes on the decoded path, so a
    # name holding a "/" (even escaped) would reach another route.
    return f"/api/domains/{check_name('domain', domain)}"


def queue_path(domain: str, queue: str) -> str:
    return f"{domain_path(domain)}/queues/{check_name('queue', queue)}"


def group_path(domain: str, queue: str, group: str) -> str:
    return f"{queue_path(domain, queue)}/consumer-groups/{check_name('group', group)}"


def duration_text(value: Duration) -> str:
    if isinstance(value, str):
        return value
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    return format_duration(seconds)


def _json(value: Any) -> bytes:
    """A payload as JSON: bytes are taken as JSON already encoded (no second encoding)."""
    return value if isinstance(value, (bytes, bytearray, memoryview)) else orjson.dumps(value)


def publish_headers(headers: Mapping[str, str] | None, idempotency_key: str | None,
                    delay: Duration | None, deliver_at: datetime | str | None) -> dict[str, str]:
    out = {f"X-Header-{name}": value for name, value in (headers or {}).items()}
    if idempotency_key is not None:
        out["Idempotency-Key"] = idempotency_key
    if delay is not None:
        out["Delay"] = duration_text(delay)
    if deliver_at is not None:
        out["Deliver-At"] = deliver_at if isinstance(deliver_at, str) else \
            deliver_at.astimezone(timezone.utc).isoformat()
    return out


def targets_body(targets: Targets) -> dict[str, list[Any]]:
    """{"ids": [...], "positions": [...]} for an ack, nack or extend."""
    ids: list[str] = []
    positions: list[int] = []
    for target in targets:
        if isinstance(target, Message):
            positions.append(target.position)
        elif isinstance(target, str):
            ids.append(target)
        elif isinstance(target, int) and not isinstance(target, bool):
            positions.append(target)
        else:
            raise TypeError(f"a target is a Message, a position or a message id, "
                            f"not {type(target).__name__}")
    body: dict[str, list[Any]] = {}
    if ids:
        body["ids"] = ids
    if positions:
        body["positions"] = positions
    return body


def _with_retry(body: dict[str, Any], delay: Duration | None,
                reason: str | None) -> dict[str, Any]:
    """A nack's `delay` (none: the queue's backoff) and `reason`, when given."""
    if delay is not None:
        body["delay"] = duration_text(delay)
    if reason is not None:
        body["reason"] = reason
    return body


def _ids(targets: Iterable[Message | str]) -> list[str]:
    return [t.id if isinstance(t, Message) else t for t in targets]


def fetch_call(domain: str, queue: str, group: str, count: int, timeout_s: float,
               consumer: str | None, create_group: bool) -> Call:
    """A fetch: the group form, or the queue form that creates the group if need be."""
    if not 1 <= count <= MAX_FETCH:
        raise ValueError(f"count must be from 1 to {MAX_FETCH}")
    params = {"count": str(count), "timeout": f"{timeout_s:g}"}
    if consumer is not None:
        params["consumer"] = consumer
    if create_group:
        path = f"{queue_path(domain, queue)}/messages"
        params["group"] = group
    else:
        path = f"{group_path(domain, queue, group)}/messages"
    return Call("GET", path, _fetched, params=params, wait_s=timeout_s)


class Operations:
    """The broker's REST API as methods; see docs/CLIENT.md for each one."""

    settings: Settings

    def _send(self, call: Call) -> Any:
        raise NotImplementedError

    # --- health, domains, queues ------------------------------------------------------------

    def health(self) -> Result[Health]:
        """Whether every shard answers; `Health.status` is "degraded" (not an error) while
        one does not."""
        return self._send(Call("GET", "/api/health", _decoder(Health), accept=(503,)))

    def create_domain(self, name: str, schema: Mapping[str, Any] | None = None,
                      queues: Mapping[str, Mapping[str, Any]] | None = None) -> Result[None]:
        body: dict[str, Any] = {"name": name}
        if schema is not None:
            body["schema"] = schema
        if queues is not None:
            body["queueConfigs"] = queues
        return self._send(Call("POST", "/api/domains", body=orjson.dumps(body),
                               idempotent=False))

    def delete_domain(self, name: str) -> Result[None]:
        return self._send(Call("DELETE", domain_path(name)))

    def create_queue(self, domain: str, name: str,
                     config: Mapping[str, Any] | None = None) -> Result[QueueConfig]:
        """Creates the queue (`config` as in docs/API.md, camelCase keys); the result is its
        config with every default filled in."""
        body = orjson.dumps({"name": name, "config": config or {}})
        return self._send(Call("POST", f"{domain_path(domain)}/queues",
                               _queue_config, body=body, idempotent=False))

    def queue(self, domain: str, queue: str) -> Result[QueueInfo]:
        return self._send(Call("GET", queue_path(domain, queue), _decoder(QueueInfo)))

    def delete_queue(self, domain: str, queue: str) -> Result[None]:
        return self._send(Call("DELETE", queue_path(domain, queue)))

    # --- publishing ---------------------------------------------------------------------------

    def publish(self, domain: str, queue: str, payload: Any, *,
                headers: Mapping[str, str] | None = None, message_id: str | None = None,
                idempotency_key: str | None = None, delay: Duration | None = None,
                deliver_at: datetime | str | None = None) -> Result[Published]:
        """One message; `payload` is a JSON object (or its encoded bytes). Retried after an
        unclear failure only with an `idempotency_key`."""
        extra = publish_headers(headers, idempotency_key, delay, deliver_at)
        if message_id is not None:
            extra["X-Message-Id"] = message_id
        return self._send(Call("POST", f"{queue_path(domain, queue)}/messages",
                               _decoder(Published), body=_json(payload), headers=extra,
                               idempotent=idempotency_key is not None))

    def publish_batch(self, domain: str, queue: str, payloads: Iterable[Any], *,
                      headers: Mapping[str, str] | None = None,
                      idempotency_key: str | None = None, delay: Duration | None = None,
                      deliver_at: datetime | str | None = None) -> Result[BatchPublished]:
        """Many messages, all or nothing, at consecutive positions (a message's id is its
        payload's `id` field, else generated)."""
        body = b'{"messages":[%s]}' % b",".join(_json(p) for p in payloads)
        return self._send(Call("POST", f"{queue_path(domain, queue)}/messages/batch",
                               _decoder(BatchPublished), body=body,
                               headers=publish_headers(headers, idempotency_key, delay,
                                                       deliver_at),
                               idempotent=idempotency_key is not None))

    # --- consumer groups ----------------------------------------------------------------------

    def create_group(self, domain: str, queue: str, group: str, *, ack_mode: str = "explicit",
                     start: str | int = "earliest",
                     ttl: Duration | None = None) -> Result[GroupInfo]:
        """Creates the group (the same settings again: its status, no error)."""
        body: dict[str, Any] = {"groupId": group, "ackMode": ack_mode, "start": start}
        if ttl is not None:
            body["ttl"] = duration_text(ttl)
        return self._send(Call("POST", f"{queue_path(domain, queue)}/consumer-groups",
                               _decoder(GroupInfo), body=orjson.dumps(body)))

    def group(self, domain: str, queue: str, group: str) -> Result[GroupInfo]:
        return self._send(Call("GET", group_path(domain, queue, group), _decoder(GroupInfo)))

    def delete_group(self, domain: str, queue: str, group: str) -> Result[None]:
        return self._send(Call("DELETE", group_path(domain, queue, group)))

    def fetch(self, domain: str, queue: str, group: str, *, count: int = 10,
              timeout_s: float = 0.0, consumer: str | None = None,
              create_group: bool = False) -> Result[Fetched]:
        """Up to `count` deliveries, waiting up to `timeout_s` (at most 60) while there are
        none. `create_group`: create the group with the defaults if it does not exist."""
        return self._send(fetch_call(domain, queue, group, count, timeout_s, consumer,
                                     create_group))

    def ack(self, domain: str, queue: str, group: str, targets: Targets) -> Result[Acked]:
        return self._settle_call(domain, queue, group, "ack", targets_body(targets), Acked)

    def nack(self, domain: str, queue: str, group: str, targets: Targets, *,
             delay: Duration | None = None, reason: str | None = None) -> Result[Nacked]:
        """A failure: retried per the queue's retry config (after `delay` if given), or
        dead-lettered once its retries are used up."""
        body = _with_retry(targets_body(targets), delay, reason)
        return self._settle_call(domain, queue, group, "nack", body, Nacked)

    def extend(self, domain: str, queue: str, group: str, targets: Targets, *,
               by: Duration | None = None) -> Result[Extended]:
        """Leases of in-flight deliveries run until now + `by` (default: the ackTimeout)."""
        body: dict[str, Any] = targets_body(targets)
        if by is not None:
            body["by"] = duration_text(by)
        return self._settle_call(domain, queue, group, "extend", body, Extended)

    def settle(self, domain: str, queue: str, group: str, *,
               ack: Iterable[Message | str] = (), nack: Iterable[Message | str] = (),
               delay: Duration | None = None, reason: str | None = None) -> Result[Settled]:
        """A batch's acks and nacks in one request (by message id)."""
        body = _with_retry({"ack": _ids(ack), "nack": _ids(nack)}, delay, reason)
        return self._settle_call(domain, queue, group, "settle", body, Settled)

    def _settle_call(self, domain: str, queue: str, group: str, action: str,
                     body: Mapping[str, Any], kind: type[T]) -> Any:
        return self._send(Call("POST", f"{group_path(domain, queue, group)}/{action}",
                               _decoder(kind), body=orjson.dumps(body)))
