"""gateway/settings.py in-process: a worker follows the config file's log level when the
catalog shard reconnects (its announcement of a change may have been missed meanwhile)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Iterator

import pytest

from gortms.config import load_settings
from gateway.catalog import Catalog
from gateway.context import Gateway
from gateway.settings import SettingsApi
from tests.gateway.fakes import FakeShards

pytestmark = pytest.mark.anyio


@pytest.fixture
def root_level() -> Iterator[None]:
    root = logging.getLogger()
    before = root.level
    yield
    root.setLevel(before)


def api_for(path: Path) -> SettingsApi:
    shards = FakeShards(lambda shard, request: None)
    return SettingsApi(Gateway(load_settings({}, str(path)), shards, Catalog(shards)))


async def test_a_catalog_reconnect_makes_the_worker_take_the_files_level(tmp_path, root_level):
    path = tmp_path / "config.yaml"
    path.write_text("general:\n  logLevel: info\n")
    api = api_for(path)
    logging.getLogger().setLevel(logging.INFO)
    path.write_text("general:\n  logLevel: debug\n")  # changed while the event was missed
    api.on_reconnect(1)  # not the catalog shard: nothing to follow
    assert api.level == "info"
    api.on_reconnect(0)  # the catalog shard: the file is read off the loop
    for _ in range(200):
        if api.level == "debug":
            break
        await asyncio.sleep(0.01)
    assert api.level == "debug" and logging.getLogger().level == logging.DEBUG


async def test_an_unreadable_file_keeps_the_level_it_runs_with(tmp_path, root_level):
    path = tmp_path / "config.yaml"
    path.write_text("general:\n  logLevel: warn\n")
    api = api_for(path)
    path.unlink()
    await api.follow_file()
    assert api.level == "warn"
