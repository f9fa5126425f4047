"""shard/circuit.py: a consumer group's circuit breaker, each transition."""

from __future__ import annotations

import logging

import pytest

from gortms.checks import Duration
from gortms.models import CircuitBreakerConfig
from shard.circuit import CLOSED, HALF_OPEN, OPEN, Circuit

T0 = 1_751_193_000_000
CONFIG = CircuitBreakerConfig(error_threshold=0.5, success_threshold=2, minimum_requests=4,
                              open_timeout=Duration(10.0))


def opened() -> Circuit:
    circuit = Circuit(CONFIG, ("d", "q", "g"))
    for success in (True, False, True, False):
        circuit.record(success, T0)
    assert circuit.state == OPEN
    return circuit


def test_closed_lets_everything_through_until_minimum_requests_show_the_error_rate() -> None:
    circuit = Circuit(CONFIG, ("d", "q", "g"))
    assert circuit.allowance(T0) is None
    for _ in range(3):
        circuit.record(False, T0)  # three failures: under minimumRequests, still closed
    assert circuit.state == CLOSED
    circuit.record(True, T0)  # 3 of 4 failed: >= 0.5
    assert circuit.state == OPEN


def test_the_error_rate_is_over_the_last_minimum_requests_outcomes() -> None:
    circuit = Circuit(CONFIG, ("d", "q", "g"))
    for success in [False] * 1 + [True] * 20 + [False]:
        circuit.record(success, T0)
    assert circuit.state == CLOSED  # 1 of the last 4 failed
    circuit.record(False, T0)
    assert circuit.state == OPEN  # 2 of the last 4


def test_open_delivers_nothing_until_the_open_timeout_then_half_open_allows_trials() -> None:
    circuit = opened()
    assert circuit.allowance(T0 + 9_999) == 0
    assert circuit.retry_after_s(T0 + 9_000) == 1
    assert circuit.retry_after_s(T0) == 10
    assert circuit.allowance(T0 + 10_000) == 2  # successThreshold trials
    assert circuit.state == HALF_OPEN
    circuit.delivered(2)
    assert circuit.allowance(T0 + 10_001) == 0  # the trials are out


def test_half_open_closes_after_success_threshold_successes() -> None:
    circuit = opened()
    circuit.allowance(T0 + 10_000)
    circuit.delivered(2)
    circuit.record(True, T0 + 10_100)
    assert circuit.state == HALF_OPEN
    circuit.record(True, T0 + 10_200)
    assert circuit.state == CLOSED
    assert circuit.allowance(T0 + 10_300) is None
    circuit.record(False, T0 + 10_400)  # outcomes start again from none
    assert circuit.state == CLOSED


def test_a_failure_while_half_open_opens_it_again_for_a_full_timeout() -> None:
    circuit = opened()
    circuit.allowance(T0 + 10_000)
    circuit.record(False, T0 + 10_500)
    assert circuit.state == OPEN
    assert circuit.allowance(T0 + 20_499) == 0
    assert circuit.allowance(T0 + 20_500) == 2


def test_outcomes_while_open_are_late_ones_and_change_nothing() -> None:
    circuit = opened()
    circuit.record(True, T0 + 1)
    circuit.record(False, T0 + 2)
    assert circuit.state == OPEN and circuit.opened_ms == T0


@pytest.mark.parametrize("threshold", [0.0, 1.0])
def test_thresholds_at_the_ends_of_their_range(threshold: float) -> None:
    config = CircuitBreakerConfig(error_threshold=threshold, success_threshold=1,
                                  minimum_requests=2, open_timeout=Duration(1.0))
    circuit = Circuit(config, ("d", "q", "g"))
    circuit.record(True, T0)
    circuit.record(True, T0)
    assert circuit.state == (OPEN if threshold == 0.0 else CLOSED)


def test_each_transition_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, "shard.circuit"):
        circuit = opened()
        circuit.allowance(T0 + 10_000)
        circuit.record(True, T0 + 10_001)
        circuit.record(True, T0 + 10_002)
    assert [r.getMessage() for r in caplog.records] == [
        "circuit of d/q/g: closed -> open", "circuit of d/q/g: open -> half-open",
        "circuit of d/q/g: half-open -> closed"]
    assert circuit.transitions == 3
