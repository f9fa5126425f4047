"""gortms/models.py: names, durations, timestamps, queue configs and group specs."""

from __future__ import annotations

import random
from typing import Any

import pytest

from gortms.checks import check_name, convert, format_duration, parse_duration, to_builtins
from gortms.errors import InvalidConfig, InvalidName, InvalidParameter
from gortms.models import AckMode, GroupSpec, QueueConfig, Retention, format_ts, parse_ts


def queue_config(body: object) -> QueueConfig:
    """A queue config from a client's JSON, as the gateway reads one (None: every default)."""
    return QueueConfig() if body is None else convert(body, QueueConfig, "config.", InvalidConfig)


def group_spec(body: object) -> GroupSpec:
    return convert(body, GroupSpec)


# --- names --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "Z", "0", "orders", "order.events_v2:eu-west-1",
                                  "A-Za-z0-9._:-", "x" * 128, "...", ".a", "-"])
def test_a_valid_name_is_returned_unchanged(name: str) -> None:
    assert check_name("queue", name) == name


@pytest.mark.parametrize("name", ["", "x" * 129, "a/b", "a b", " a", "a\n", "a\t", "é", "a*",
                                  "a?b", "a#b", "a%2Fb", "\u0661", "a\0", ".", ".."])
def test_an_invalid_name_is_refused_with_the_rule(name: str) -> None:
    with pytest.raises(InvalidName) as info:
        check_name("queue", name)
    assert "1-128" in info.value.message and "queue" in info.value.message


@pytest.mark.parametrize("value", [None, 5, 1.5, b"orders", ["orders"], {"name": "x"}, True])
def test_a_name_that_is_not_a_string_is_refused(value: object) -> None:
    with pytest.raises(InvalidName):
        check_name("domain", value)


# --- durations ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds"), [
    ("500ms", 0.5), ("30s", 30.0), ("1h30m", 5400.0), ("24h", 86400.0), ("0", 0.0),
    ("1.5s", 1.5), ("2m", 120.0), ("1m30s", 90.0), ("1h0m1s", 3601.0), ("0s", 0.0),
    ("2000us", 0.002), ("1000000ns", 0.001), (".5s", 0.5), ("2h45m30.5s", 9930.5),
    (" 30s ", 30.0), (0, 0.0), (0.0, 0.0)])
def test_parse_duration_reads_go_durations_and_the_number_zero(text: object,
                                                              seconds: float) -> None:
    assert parse_duration(text, "ttl") == pytest.approx(seconds)


@pytest.mark.parametrize(("number", "hint"), [(86400, "24h"), (30, "30s"), (1.5, "1.5s"),
                                              (0.0004, "30s"), (-5, "30s"),
                                              (float("inf"), "30s"), (float("nan"), "30s")])
def test_a_bare_number_is_refused_with_the_form_it_should_take(number: float, hint: str) -> None:
    # Go reads a bare number as nanoseconds; people mean seconds. Neither is guessed.
    with pytest.raises(InvalidParameter) as info:
        parse_duration(number, "ttl")
    assert f'ttl must be a duration string such as "{hint}"' in info.value.message


@pytest.mark.parametrize("value", [
    "", " ", "abc", "30", "s", "-1s", "1x", "1h 30m", "30sec", "1.5.5s", "h1", "1d", "+",
    "-0.5s", True, False, None, [], {}, -1, -0.5, float("nan"), float("inf"), float("-inf")])
def test_parse_duration_refuses_what_is_not_a_duration(value: object) -> None:
    with pytest.raises(InvalidParameter) as info:
        parse_duration(value, "ttl")
    assert "ttl" in info.value.message


@pytest.mark.parametrize(("seconds", "text"), [
    (0.5, "500ms"), (30, "30s"), (5400, "1h30m"), (86400, "24h"), (0, "0"), (1.5, "1.5s"),
    (90, "1m30s"), (0.001, "1ms"), (60, "1m"), (3600, "1h"), (1.25, "1.25s"), (61.5, "1m1.5s")])
def test_format_duration_gives_the_shortest_go_string(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("text", ["500ms", "30s", "1h30m", "24h", "0", "1.5s", "1m30s", "1ms",
                                  "2m", "1h", "10s", "5m", "1m0.5s", "999ms", "1.001s"])
def test_canonical_durations_round_trip(text: str) -> None:
    assert format_duration(parse_duration(text, "x")) == text


@pytest.mark.parametrize(("text", "canonical"), [("90s", "1m30s"), ("1500ms", "1.5s"),
                                                  ("60m", "1h"), ("0s", "0"), ("0.5s", "500ms")])
def test_non_canonical_durations_format_canonically(text: str, canonical: str) -> None:
    assert format_duration(parse_duration(text, "x")) == canonical


def test_formatted_durations_parse_back_to_the_same_millisecond() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        ms = rng.randrange(0, 10 * 86_400_000)
        assert round(parse_duration(format_duration(ms / 1000), "x") * 1000) == ms


@pytest.mark.parametrize("text", ["100us", "999us", "250000ns"])
def test_a_positive_duration_under_a_millisecond_is_refused_not_made_zero(text: object) -> None:
    # "0" means "none" (API.md): a positive duration must never silently become "0".
    with pytest.raises(InvalidParameter, match="at least 1ms"):
        parse_duration(text, "x")


# --- timestamps ---------------------------------------------------------------------------------


def test_format_ts_is_rfc3339_utc_with_milliseconds() -> None:
    assert format_ts(0) == "1970-01-01T00:00:00.000Z"
    assert format_ts(1751193000123) == "2025-06-29T10:30:00.123Z"
    assert format_ts(1751193000005) == "2025-06-29T10:30:00.005Z"


@pytest.mark.parametrize(("text", "ms"), [
    ("2025-06-29T10:30:00Z", 1751193000000), ("2025-06-29T10:30:00.123Z", 1751193000123),
    ("2025-06-29T12:30:00+02:00", 1751193000000), ("2025-06-29T10:30:00", 1751193000000),
    ("1970-01-01T00:00:00.000Z", 0)])
def test_parse_ts_reads_rfc3339(text: str, ms: int) -> None:
    assert parse_ts(text, "start") == ms


@pytest.mark.parametrize("value", ["yesterday", "", "2025-13-01T00:00:00Z", 1751193000, None])
def test_parse_ts_refuses_what_is_not_a_time(value: object) -> None:
    with pytest.raises(InvalidParameter) as info:
        parse_ts(value, "start")
    assert "start" in info.value.message


def test_formatted_timestamps_parse_back_to_the_same_millisecond() -> None:
    rng = random.Random(3)
    samples = [rng.randrange(0, 4_102_444_800_000) for _ in range(20_000)]
    wrong = [ms for ms in samples if parse_ts(format_ts(ms), "t") != ms]
    assert wrong == [], f"{len(wrong)} of {len(samples)} are off, e.g. {wrong[:3]}"


def test_a_known_timestamp_parses_back_exactly() -> None:
    assert parse_ts(format_ts(2183226373411), "t") == 2183226373411


# --- queue configuration ------------------------------------------------------------------------

SEED_DEFAULTS = {
    "isPersistent": True,
    "maxSize": 1000,
    "ttl": "24h",
    "workerCount": 2,
    "retryEnabled": False,
    "retryConfig": {"maxRetries": 3, "initialDelay": "1s", "factor": 2.0, "maxDelay": "30s"},
    "circuitBreakerEnabled": False,
    "circuitBreakerConfig": {"errorThreshold": 0.5, "successThreshold": 5,
                             "minimumRequests": 10, "openTimeout": "30s"},
    "ackTimeout": "30s",
    "retention": "limits",
}


@pytest.mark.parametrize("body", [None, {}])
def test_queue_config_fills_every_seed_default(body: object) -> None:
    config = queue_config(body)
    assert to_builtins(config) == SEED_DEFAULTS
    assert config == QueueConfig()
    assert config.retention is Retention.LIMITS
    assert (config.ttl, config.ack_timeout) == (86400.0, 30.0)


def test_queue_config_fills_nested_defaults_for_partial_objects() -> None:
    config = queue_config({"retryConfig": {"maxRetries": 7},
                                    "circuitBreakerConfig": {"openTimeout": "1m"}})
    assert config.retry_config.max_retries == 7
    assert to_builtins(config)["retryConfig"] == {**SEED_DEFAULTS["retryConfig"], "maxRetries": 7}
    assert to_builtins(config)["circuitBreakerConfig"] == {
        **SEED_DEFAULTS["circuitBreakerConfig"], "openTimeout": "1m"}


@pytest.mark.parametrize("key", ["maxSize", "maxsize", "MAXSIZE", "MaxSize"])
def test_queue_config_keys_match_case_insensitively(key: str) -> None:
    assert queue_config({key: 5}).max_size == 5


def test_nested_queue_config_keys_match_case_insensitively() -> None:
    config = queue_config({"RETRYCONFIG": {"maxretries": 9, "INITIALDELAY": "2s"},
                                    "ackTIMEOUT": "5s", "retryenabled": True})
    assert (config.retry_config.max_retries, config.retry_config.initial_delay) == (9, 2.0)
    assert (config.ack_timeout, config.retry_enabled) == (5.0, True)


@pytest.mark.parametrize(("body", "named"), [
    ({"maxSizes": 5}, "maxSizes"),
    ({"retryConfig": {"retries": 5}}, "retries"),
    ({"circuitBreakerConfig": {"threshold": 0.1}}, "threshold"),
])
def test_queue_config_refuses_unknown_keys_naming_them(body: dict, named: str) -> None:
    with pytest.raises(InvalidConfig) as info:
        queue_config(body)
    assert named in info.value.message


@pytest.mark.parametrize(("key", "value"), [
    ("isPersistent", "yes"), ("isPersistent", 1), ("maxSize", "1000"), ("maxSize", True),
    ("maxSize", 0), ("maxSize", -5), ("maxSize", 1.5), ("ttl", "forever"), ("ttl", -1),
    ("ttl", True), ("workerCount", 0), ("workerCount", "2"), ("retryEnabled", "true"),
    ("circuitBreakerEnabled", 0), ("ackTimeout", "0"), ("ackTimeout", "soon"),
    ("retention", "all"), ("retention", 1), ("retryConfig", "fast"), ("retryConfig", [1]),
    ("circuitBreakerConfig", 5),
])
def test_queue_config_refuses_wrong_values_naming_the_key(key: str, value: Any) -> None:
    with pytest.raises(InvalidConfig) as info:
        queue_config({key: value})
    assert key in info.value.message


@pytest.mark.parametrize(("key", "value"), [("retryConfig", False), ("retryConfig", []),
                                            ("retryConfig", ""), ("circuitBreakerConfig", 0)])
def test_queue_config_refuses_falsy_non_objects_for_nested_configs(key: str, value: Any) -> None:
    with pytest.raises(InvalidConfig) as info:
        queue_config({key: value})
    assert key in info.value.message


@pytest.mark.parametrize(("nested", "body"), [
    ("maxRetries", {"retryConfig": {"maxRetries": "3"}}),
    ("factor", {"retryConfig": {"factor": 0.5}}),
    ("initialDelay", {"retryConfig": {"initialDelay": "later"}}),
    ("errorThreshold", {"circuitBreakerConfig": {"errorThreshold": 2}}),
    ("openTimeout", {"circuitBreakerConfig": {"openTimeout": "0"}}),
    ("successThreshold", {"circuitBreakerConfig": {"successThreshold": 0}}),
])
def test_queue_config_refuses_wrong_nested_values_naming_the_path(nested: str,
                                                                  body: dict) -> None:
    with pytest.raises(InvalidConfig) as info:
        queue_config(body)
    parent = next(iter(body))
    assert f"{parent}.{nested}" in info.value.message


@pytest.mark.parametrize("body", ["config", 5, ["maxSize"]])
def test_queue_config_that_is_not_an_object_is_refused(body: object) -> None:
    with pytest.raises(InvalidConfig):
        queue_config(body)


@pytest.mark.parametrize("body", [
    {},
    {"isPersistent": False, "maxSize": 5, "ttl": "1h30m", "workerCount": 8,
     "retryEnabled": True, "retryConfig": {"maxRetries": 0, "initialDelay": "500ms",
                                           "factor": 1.5, "maxDelay": "1m"},
     "circuitBreakerEnabled": True,
     "circuitBreakerConfig": {"errorThreshold": 0.25, "successThreshold": 2,
                              "minimumRequests": 4, "openTimeout": "10s"},
     "ackTimeout": "1.5s", "retention": "interest"},
    {"ttl": "0", "maxSize": 2**40},
    {"ackTimeout": "1ms"},
    {"circuitBreakerConfig": {"openTimeout": "1.001s"}},
])
def test_queue_config_round_trips_through_the_wire_form(body: dict) -> None:
    config = queue_config(body)
    wire = to_builtins(config)
    assert queue_config(wire) == config
    assert to_builtins(queue_config(wire)) == wire


def test_queue_config_wire_form_uses_the_given_values() -> None:
    wire = to_builtins(queue_config({"ttl": "90m", "retention": "interest", "maxSize": 10}))
    assert (wire["ttl"], wire["retention"], wire["maxSize"]) == ("1h30m", "interest", 10)


# --- consumer group specs -----------------------------------------------------------------------


def test_group_spec_defaults_to_explicit_acks_from_the_earliest_message() -> None:
    spec = group_spec({"groupId": "workers"})
    assert spec == GroupSpec(group_id="workers", ack_mode=AckMode.EXPLICIT, ttl=0.0,
                             start="earliest")


@pytest.mark.parametrize("key", ["groupId", "groupID", "groupid", "GROUPID", "GroupId"])
def test_group_id_key_matches_case_insensitively(key: str) -> None:
    assert group_spec({key: "workers"}).group_id == "workers"


@pytest.mark.parametrize("body", [{}, {"group": "workers"}, {"ackMode": "auto"}])
def test_group_id_is_required(body: dict) -> None:
    with pytest.raises(InvalidParameter) as info:
        group_spec(body)
    assert "groupId" in info.value.message


@pytest.mark.parametrize("body", [None, "workers", ["workers"]])
def test_group_spec_body_must_be_an_object(body: object) -> None:
    with pytest.raises(InvalidParameter):
        group_spec(body)


@pytest.mark.parametrize("group_id", ["a/b", "", "x" * 129, 5])
def test_group_id_follows_the_name_rule(group_id: object) -> None:
    with pytest.raises(InvalidName):
        group_spec({"groupId": group_id})


@pytest.mark.parametrize(("mode", "expected"), [("explicit", AckMode.EXPLICIT),
                                                ("auto", AckMode.AUTO)])
def test_ack_mode_is_explicit_or_auto(mode: str, expected: AckMode) -> None:
    assert group_spec({"groupId": "g", "ackmode": mode}).ack_mode is expected


@pytest.mark.parametrize("mode", ["manual", "", None, 1])
def test_other_ack_modes_are_refused_naming_ack_mode(mode: object) -> None:
    with pytest.raises(InvalidParameter) as info:
        group_spec({"groupId": "g", "ackMode": mode})
    assert "ackMode" in info.value.message


@pytest.mark.parametrize(("start", "expected"), [
    ("earliest", "earliest"), ("latest", "latest"), ("LATEST", "latest"), (5, 5), ("5", 5),
    (1, 1), ("2025-06-29T10:30:00Z", "2025-06-29T10:30:00Z"),
    ("2025-06-29T10:30:00.5+02:00", "2025-06-29T10:30:00.5+02:00")])
def test_group_start_is_earliest_latest_a_position_or_a_time(start: object,
                                                             expected: object) -> None:
    assert group_spec({"groupId": "g", "start": start}).start == expected


@pytest.mark.parametrize("start", [0, -1, "0", "-3", True, 1.5, "soon", "", [], {}])
def test_other_group_starts_are_refused_naming_start(start: object) -> None:
    with pytest.raises(InvalidParameter) as info:
        group_spec({"groupId": "g", "start": start})
    assert "start" in info.value.message


def test_group_ttl_is_a_duration() -> None:
    assert group_spec({"groupId": "g", "ttl": "1h30m"}).ttl == 5400.0
    with pytest.raises(InvalidParameter):
        group_spec({"groupId": "g", "ttl": "-1s"})


@pytest.mark.parametrize("body", [
    {"groupId": "g"},
    {"groupId": "g.1", "ackMode": "auto", "ttl": "90s", "start": 42},
    {"groupId": "g", "start": "latest", "ttl": "24h"},
    {"groupId": "g", "start": "2025-06-29T10:30:00Z"},
])
def test_group_spec_round_trips_through_the_wire_form(body: dict) -> None:
    spec = group_spec(body)
    assert group_spec(to_builtins(spec)) == spec
