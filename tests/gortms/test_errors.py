"""gortms/errors.py: one tree, stable codes, statuses as drawn in the module docstring."""

from __future__ import annotations

import re

import pytest

import gortms.errors as errors
from gortms.errors import (BadRequest, ConfigError, Conflict, GortmsError, NotFound,
                           ShardUnavailable, TooManyRequests, TooManyWaiters, error_classes,
                           error_for)


# The tree of gortms.errors (a test elsewhere may add subclasses of its own).
TREE = [cls for cls in error_classes() if cls.__module__ == "gortms.errors"]
DRAWN = re.compile(r"^(?P<indent>[\s│├└─]*?)(?P<name>[A-Z]\w+) "
                   r"\((?P<code>\w+)(?:, (?P<status>\d{3}))?")


def _drawn_tree() -> dict[str, tuple[str, int, str | None]]:
    """name -> (code, status, parent name) as drawn in the docstring; statuses inherit."""
    out: dict[str, tuple[str, int, str | None]] = {}
    stack: list[tuple[int, str]] = []
    for line in (errors.__doc__ or "").splitlines():
        match = DRAWN.match(line)
        if not match:
            continue
        depth = len(match["indent"])
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parent = stack[-1][1] if stack else None
        status = int(match["status"]) if match["status"] else out[parent][1] if parent else 500
        out[match["name"]] = (match["code"], status, parent)
        stack.append((depth, match["name"]))
    return out


DRAWN_TREE = _drawn_tree()


def test_the_docstring_draws_every_class_of_the_tree() -> None:
    assert set(DRAWN_TREE) == {cls.__name__ for cls in TREE}


@pytest.mark.parametrize("cls", TREE, ids=lambda c: c.__name__)
def test_each_class_has_the_code_status_and_parent_drawn_in_the_docstring(
        cls: type[GortmsError]) -> None:
    code, status, parent = DRAWN_TREE[cls.__name__]
    assert cls.code == code
    assert cls.http_status == status
    if parent is not None:
        assert cls.__bases__[0].__name__ == parent


def test_every_error_has_a_unique_code() -> None:
    codes = [cls.code for cls in TREE]
    assert len(codes) == len(set(codes))


@pytest.mark.parametrize("cls", TREE, ids=lambda c: c.__name__)
def test_error_for_gives_the_class_back_with_the_message(cls: type[GortmsError]) -> None:
    error = error_for(cls.code, "what happened")
    assert type(error) is cls
    assert error.message == "what happened"
    assert error.to_wire() == {"error": cls.code, "message": "what happened"}


def test_error_for_an_unknown_code_is_a_plain_internal_error() -> None:
    error = error_for("no_such_code", "odd")
    assert type(error) is GortmsError
    assert (error.http_status, error.message) == (500, "odd")


def test_error_for_config_error_keeps_the_message_as_its_problem() -> None:
    error = error_for("config_error", "http.port: bad")
    assert isinstance(error, ConfigError) and error.problems == ["http.port: bad"]


@pytest.mark.parametrize(("cls", "status"), [
    (errors.InvalidJson, 400), (errors.InvalidName, 400), (errors.InvalidParameter, 400),
    (errors.InvalidConfig, 400), (errors.UnsupportedFeature, 400), (errors.DomainNotFound, 404),
    (errors.QueueNotFound, 404), (errors.GroupNotFound, 404), (errors.ConsumerNotFound, 404),
    (errors.MethodNotAllowed, 405), (errors.DomainExists, 409), (errors.QueueExists, 409),
    (errors.GroupExists, 409), (errors.PayloadTooLarge, 413), (errors.SchemaViolation, 422),
    (TooManyRequests, 429), (TooManyWaiters, 429), (ShardUnavailable, 503), (GortmsError, 500),
])
def test_client_errors_are_4xx_and_server_errors_5xx(cls: type[GortmsError], status: int) -> None:
    assert cls.http_status == status


@pytest.mark.parametrize(("cls", "parent"), [
    (errors.InvalidName, BadRequest), (errors.QueueNotFound, NotFound),
    (errors.GroupExists, Conflict), (TooManyWaiters, TooManyRequests)])
def test_specific_errors_can_be_caught_as_their_family(cls: type[GortmsError],
                                                       parent: type[GortmsError]) -> None:
    with pytest.raises(parent):
        raise cls("x")


def test_shard_unavailable_is_a_retriable_timeout_with_retry_after() -> None:
    error = ShardUnavailable("shard 2 did not answer")
    assert isinstance(error, TimeoutError)
    with pytest.raises(TimeoutError):
        raise error
    assert ShardUnavailable.retriable is True
    assert isinstance(ShardUnavailable.retry_after_s, int) and ShardUnavailable.retry_after_s > 0


@pytest.mark.parametrize("cls", [TooManyRequests, TooManyWaiters])
def test_too_many_requests_is_retriable_with_retry_after(cls: type[GortmsError]) -> None:
    assert cls.retriable is True
    assert cls.retry_after_s is not None and cls.retry_after_s > 0


@pytest.mark.parametrize("cls", [c for c in TREE if c.http_status < 429
                                 or c.http_status == 500], ids=lambda c: c.__name__)
def test_other_errors_are_not_retriable(cls: type[GortmsError]) -> None:
    assert cls.retriable is False and cls.retry_after_s is None


def test_an_error_without_a_message_says_its_code() -> None:
    assert errors.QueueNotFound().message == "queue not found"


def test_config_error_joins_its_problems() -> None:
    error = ConfigError(["a: bad", "b: worse"])
    assert error.problems == ["a: bad", "b: worse"]
    assert error.message == "a: bad; b: worse"
