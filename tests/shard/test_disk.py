"""DiskGuard: the free-space watermark, its alarm logged once per change, and the backoff of a
failed store's reopening."""

from __future__ import annotations

import logging
import os
from types import SimpleNamespace

import pytest

from gortms.config import SpaceLimit
from gortms.errors import InsufficientStorage, StorageError
from shard import disk as disk_module
from shard.disk import DiskGuard

MiB = 2**20


@pytest.fixture
def free(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """The free bytes statvfs reports for a 100 MiB file system (set the "bytes" entry)."""
    space = {"bytes": 80 * MiB}

    def statvfs(path: str) -> SimpleNamespace:
        if path == "/gone":
            raise FileNotFoundError(2, "No such file or directory", path)
        return SimpleNamespace(f_bavail=space["bytes"] // 4096, f_frsize=4096,
                               f_blocks=100 * MiB // 4096)

    monkeypatch.setattr(os, "statvfs", statvfs)
    return space


def test_under_the_watermark_adds_are_refused_and_the_alarm_logs_once_each_way(
        free: dict[str, int], caplog: pytest.LogCaptureFixture) -> None:
    guard = DiskGuard(3, "/data", SpaceLimit(bytes=16 * MiB))
    guard.check_adds()
    assert guard.state == "ok" and guard.free_bytes == 80 * MiB
    free["bytes"] = 10 * MiB
    with caplog.at_level(logging.WARNING, "shard.disk"):
        for _ in range(5):
            guard.refresh()
            with pytest.raises(InsufficientStorage) as info:
                guard.check_adds()
        assert guard.state == "low"
        assert "10.00 MiB, under storage.minFreeBytes (16MiB)" in info.value.message
        free["bytes"] = 20 * MiB
        for _ in range(5):
            guard.refresh()
    guard.check_adds()
    assert guard.state == "ok" and guard.refused == 5
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert "shard 3: free space on /data is 10.00 MiB, under" in messages[0]
    assert "is 20.00 MiB again, above" in messages[1]


def test_a_percentage_watermark_is_taken_of_the_file_system_size(free: dict[str, int]) -> None:
    guard = DiskGuard(0, "/data", SpaceLimit(percent=25))
    assert guard.threshold == 25 * MiB
    free["bytes"] = 24 * MiB
    guard.refresh()
    assert guard.state == "low"


def test_zero_turns_the_watermark_off(free: dict[str, int]) -> None:
    free["bytes"] = 0
    guard = DiskGuard(0, "/data", SpaceLimit())
    guard.check_adds()
    assert guard.state == "ok"


def test_statvfs_failing_keeps_the_last_reading_and_logs_once(
        free: dict[str, int], caplog: pytest.LogCaptureFixture) -> None:
    guard = DiskGuard(0, "/data", SpaceLimit(bytes=MiB))
    guard.path = "/gone"
    with caplog.at_level(logging.WARNING, "shard.disk"):
        guard.refresh()
        guard.refresh()
    assert guard.free_bytes == 80 * MiB and guard.state == "ok"
    assert len(caplog.records) == 1 and "/gone" in caplog.records[0].getMessage()


def test_a_failed_store_refuses_every_write_with_its_own_kind_of_error(
        free: dict[str, int]) -> None:
    guard = DiskGuard(1, "/data", SpaceLimit())
    guard.fail(StorageError("write: IO error: Permission denied: /data/shards/1/000008.log"))
    assert guard.state == "full"
    refusal = guard.refusal()
    assert type(refusal) is StorageError and refusal.http_status == 503
    assert "/data/shards/1/000008.log" in refusal.message
    with pytest.raises(StorageError):
        guard.check_adds()
    guard.fail(InsufficientStorage("write: IO error: No space left on device"))
    assert guard.refusal().http_status == 507


def test_a_full_store_is_retried_with_backoff_and_only_with_space_back(
        free: dict[str, int], monkeypatch: pytest.MonkeyPatch) -> None:
    clock = {"now": 1000.0}
    monkeypatch.setattr(disk_module.time, "monotonic", lambda: clock["now"])
    guard = DiskGuard(0, "/data", SpaceLimit(bytes=16 * MiB))
    free["bytes"] = 0
    guard.refresh()
    guard.fail(InsufficientStorage("No space left on device"))
    clock["now"] += 60
    assert not guard.may_retry()  # the disk is still under the watermark
    free["bytes"] = 50 * MiB
    guard.refresh()
    assert guard.may_retry()
    delays = []
    for _ in range(7):
        guard.retry_failed()
        delays.append(guard.retry_at - clock["now"])
    assert delays == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert not guard.may_retry()
    clock["now"] += 30
    assert guard.may_retry()
    guard.recovered()
    assert guard.state == "ok" and not guard.may_retry() and guard.retry_s == 1.0
