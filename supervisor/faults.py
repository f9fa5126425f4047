"""How the supervisor lives with failures of its own: FailureStreak reports one that keeps
failing, and Failures keeps one part of a loop turn from stopping the others.

A failure that repeats on every loop turn (a full disk under run/state.json, a bug hit by
every turn) would otherwise write a line ten times a second. A streak is logged when it
starts, at most once every `repeat_s` while it lasts (with how many failures went unlogged),
and once when it ends.
"""

from __future__ import annotations

import logging


class FailureStreak:
    def __init__(self, log: logging.Logger, what: str, then: str,
                 repeat_s: float | None = None, traceback: bool = False,
                 level: int = logging.ERROR) -> None:
        self.log = log
        self.level = level
        self.what = what  # "writing the run state <path>"
        self.then = then  # what happens next: "retrying every 1s"
        self.repeat_s = repeat_s  # None: only the first failure of a streak is logged
        self.traceback = traceback
        self.failures = 0  # in the current streak
        self._logged_at = 0.0
        self._unlogged = 0

    @property
    def failing(self) -> bool:
        return self.failures > 0

    def failed(self, exc: BaseException, now: float) -> None:
        self.failures += 1
        due = self.failures == 1 or (self.repeat_s is not None
                                     and now - self._logged_at >= self.repeat_s)
        if not due:
            self._unlogged += 1
            return
        unlogged = (f" ({self._unlogged} more failures since the last report)"
                    if self._unlogged else "")
        self.log.log(self.level, "%s failed: %s: %s%s; %s", self.what, type(exc).__name__,
                     exc, unlogged, self.then, exc_info=exc if self.traceback else None)
        self._logged_at = now
        self._unlogged = 0

    def succeeded(self) -> None:
        if self.failures:
            self.log.info("%s succeeded again after %d failure%s", self.what, self.failures,
                          "" if self.failures == 1 else "s")
        self.failures = 0
        self._unlogged = 0



class Failures:
    """Used as `with failures: part()` for each independent part of a loop turn: an exception
    is kept rather than raised, so the parts after it still run (a rolling restart that
    fails every turn must not stop the pings, or each healthy shard would be killed as
    hung). `raise_first()` then gives the first one to the turn's guard to log."""

    def __init__(self) -> None:
        self.first: Exception | None = None

    def __enter__(self) -> Failures:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> bool:
        if not isinstance(exc, Exception):
            return False  # none, or KeyboardInterrupt/SystemExit: not ours to keep
        if self.first is None:
            self.first = exc
        return True

    def raise_first(self) -> None:
        if self.first is not None:
            raise self.first
