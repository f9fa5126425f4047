"""When the client tries a request again, and after how long (docs/CLIENT.md, Retries).

Retried, on any request: a 429 (the broker refused it unapplied: queue full, too many parked
fetches), a 503 `storage_error` (the shard's commit failed, nothing of it was kept), and a
connection that could not be made (the request never left). Retried only on a request that
is safe to repeat: a 503 of another kind (`shard_unavailable`: the shard may have applied it
before it went) and a connection lost after the request was sent. Safe to repeat are reads,
acks, nacks, extends, settles, group creation (the same settings answer 200) and deletes,
and a publish only with an Idempotency-Key: without one a repeat could store it twice.

The wait is the answer's Retry-After when it has one, else an exponential backoff with
jitter; never more attempts than `attempts`, and no retry that would start past `total_s`
after the first attempt began (a Retry-After beyond that gives up at once).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable

from gortms.client.errors import BrokerUnreachable, SocketClosed
from gortms.errors import GortmsError


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 5  # in all, the first included (1: never retry)
    total_s: float = 30.0
    backoff_s: float = 0.1  # the first wait without Retry-After, doubled each time
    max_backoff_s: float = 5.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.total_s < 0 or self.backoff_s < 0:
            raise ValueError("attempts must be >= 1, total_s and backoff_s >= 0")


NO_RETRY = RetryPolicy(attempts=1)


def unapplied(error: GortmsError) -> bool:
    """The broker surely did not apply the request: repeating it is safe whatever it was."""
    if isinstance(error, BrokerUnreachable):
        return not error.sent and not isinstance(error, SocketClosed)
    status = getattr(error, "status", None)
    return status == 429 or (status == 503 and error.code == "storage_error")


def retriable(error: GortmsError, idempotent: bool) -> bool:
    if unapplied(error):
        return True
    if isinstance(error, SocketClosed):
        return False
    return idempotent and (isinstance(error, BrokerUnreachable)
                           or getattr(error, "status", None) == 503)


class Retrying:
    """One request's attempts: after each failure, how long to wait before the next one, or
    the failure raised when there is to be none."""

    def __init__(self, policy: RetryPolicy, idempotent: bool,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self.idempotent = idempotent
        self.clock = clock
        self.started = clock()
        self.failures = 0

    def wait_after(self, error: GortmsError) -> float:
        """Seconds to wait before trying again; raises `error` if this was the last try."""
        self.failures += 1
        policy = self.policy
        if self.failures >= policy.attempts or not retriable(error, self.idempotent):
            raise error
        told = error.retry_after_s  # an answer's Retry-After (errors from answers set it)
        if told is None:
            base = min(policy.max_backoff_s, policy.backoff_s * 2 ** (self.failures - 1))
            wait = base * random.uniform(0.5, 1.0)
        else:
            wait = float(told)
        if self.clock() - self.started + wait > policy.total_s:
            raise error
        return wait
