"""supervisor/levelwatch.py: general.logLevel followed in the config file (the whole path,
through the settings API and every process, is in tests/e2e/test_settings.py)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterator

import pytest

from gortms.config import load_settings
from supervisor.levelwatch import CHECK_EVERY_S, LevelWatch


@pytest.fixture(autouse=True)
def root_level() -> Iterator[None]:
    before = logging.getLogger().level
    yield
    logging.getLogger().setLevel(before)


def _file(tmp_path: Path, level: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"general:\n  dataDir: {tmp_path}\n  logLevel: {level}\n")
    return path


def _touch(path: Path, text: str) -> None:
    path.write_text(text)
    stamp = path.stat().st_mtime_ns + 1_000_000  # a coarse clock could hide the change
    os.utime(path, ns=(stamp, stamp))


def test_a_new_level_in_the_file_is_applied_and_given_back_once(tmp_path) -> None:
    path = _file(tmp_path, "info")
    watch = LevelWatch(load_settings({}, str(path)))
    assert watch.check(10.0) is None  # nothing changed
    _touch(path, path.read_text().replace("info", "debug"))
    assert watch.check(10.0 + CHECK_EVERY_S / 2) is None  # not looked at yet
    changed = watch.check(10.0 + CHECK_EVERY_S)
    assert changed is not None and changed.general.log_level == "debug"
    assert logging.getLogger().level == logging.DEBUG
    assert watch.check(20.0, at_once=True) is None  # seen already


def test_a_file_a_start_would_refuse_is_not_followed(tmp_path, caplog) -> None:
    path = _file(tmp_path, "info")
    watch = LevelWatch(load_settings({}, str(path)))
    _touch(path, path.read_text().replace("info", "debug") + "http:\n  port: high\n")
    with caplog.at_level(logging.WARNING):
        assert watch.check(0.0, at_once=True) is None
    assert "http.port: must be an integer" in caplog.text
    path.unlink()
    with caplog.at_level(logging.WARNING):
        assert watch.check(1.0, at_once=True) is None
    assert "not found" in caplog.text


def test_a_level_the_environment_sets_wins_over_the_file(tmp_path) -> None:
    path = _file(tmp_path, "info")
    watch = LevelWatch(load_settings({"GORTMS_GENERAL_LOGLEVEL": "error"}, str(path)))
    _touch(path, path.read_text().replace("info", "debug"))
    assert watch.check(0.0, at_once=True) is None


def test_without_a_config_file_there_is_nothing_to_watch() -> None:
    assert LevelWatch(load_settings({})).check(100.0, at_once=True) is None
