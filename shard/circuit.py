"""Circuit: a consumer group's circuit breaker (queue config circuitBreakerEnabled/-Config).

    closed     every fetch delivers; the last `minimumRequests` outcomes are kept (an ack is
               a success, a nack or a lease that ran out a failure), and once there are that
               many with an error rate >= `errorThreshold` the circuit opens
    open       fetches deliver nothing and say so (`"circuit": "open"`, Retry-After) until
               `openTimeout` has passed, then it is half-open
    half-open  up to `successThreshold` trial deliveries go out; `successThreshold` successes
               close it, one failure opens it again

It protects a failing downstream from a retry storm: while it is open, nothing is delivered to
the group (and nothing counts down its retries). State is memory only: a restarted shard
starts every circuit closed, with no outcomes.
"""

from __future__ import annotations

import logging
from collections import deque

from gortms.models import CircuitBreakerConfig
from shard.events import EVENTS

log = logging.getLogger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


class Circuit:
    __slots__ = ("config", "where", "state", "outcomes", "failures", "opened_ms", "trials",
                 "successes", "transitions")

    def __init__(self, config: CircuitBreakerConfig, where: tuple[str, str, str]) -> None:
        self.config = config
        self.where = where  # (domain, queue, group), for the log and the events
        self.state = CLOSED
        self.outcomes: deque[bool] = deque(maxlen=max(1, config.minimum_requests))
        self.failures = 0  # among `outcomes`
        self.opened_ms = 0
        self.trials = 0  # half-open: trial deliveries sent
        self.successes = 0  # half-open: trial successes
        self.transitions = 0  # for status and, later, metrics

    def allowance(self, now_ms: int) -> int | None:
        """How many messages a fetch may deliver now: None for no limit, 0 for none."""
        if self.state == OPEN:
            if now_ms < self.opened_ms + int(self.config.open_timeout * 1000):
                return 0
            self._move(HALF_OPEN, now_ms)
        if self.state == HALF_OPEN:
            return max(0, self.config.success_threshold - self.trials)
        return None

    def delivered(self, count: int) -> None:
        if self.state == HALF_OPEN:
            self.trials += count

    def retry_after_s(self, now_ms: int) -> int:
        """Seconds until an open circuit lets trials through (at least 1)."""
        left_ms = self.opened_ms + int(self.config.open_timeout * 1000) - now_ms
        return max(1, -(-left_ms // 1000))

    def record(self, success: bool, now_ms: int) -> None:
        """One outcome of a delivery."""
        if self.state == HALF_OPEN:
            if not success:
                self._move(OPEN, now_ms)
                return
            self.successes += 1
            if self.successes >= self.config.success_threshold:
                self._move(CLOSED, now_ms)
            return
        if self.state == OPEN:
            return  # a late outcome of a delivery made before it opened
        outcomes = self.outcomes
        if len(outcomes) == outcomes.maxlen:
            self.failures -= not outcomes[0]
        outcomes.append(success)
        self.failures += not success
        if len(outcomes) >= self.config.minimum_requests and \
                self.failures / len(outcomes) >= self.config.error_threshold:
            self._move(OPEN, now_ms)

    def _move(self, state: str, now_ms: int) -> None:
        name = "/".join(self.where)
        log.info("circuit of %s: %s -> %s", name, self.state, state)
        domain, queue, group = self.where
        EVENTS.add(f"circuit_{state.replace('-', '_')}",
                   f"circuit breaker of group {name}: {self.state} -> {state}",
                   "warning" if state == OPEN else "info", domain, queue, group)
        self.state = state
        self.transitions += 1
        if state == OPEN:
            self.opened_ms = now_ms
        self.trials = self.successes = 0
        if state == CLOSED:
            self.outcomes.clear()
            self.failures = 0
