"""Shared fixtures: a real broker (supervisor, shards, gateway) in a temp dir on a free port.

The broker itself is `tests.broker` (bench/ uses the same one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import httpx2
import pytest

from tests.broker import Broker, start_broker, unique

__all__ = ["Broker", "start_broker", "unique"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def broker_factory(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator:
    """Start brokers on demand; every one still running is stopped (and must exit 0)."""
    started: list[Broker] = []

    def factory(data_dir: Path | None = None, **env: str) -> Broker:
        broker = start_broker(data_dir or tmp_path / "data", **env)
        started.append(broker)
        return broker

    yield factory
    for broker in started:
        if broker.process.poll() is None:
            code = broker.stop()
            assert code == 0, f"broker exited with {code}:\n{broker.output()}"


@pytest.fixture(scope="session")
def shared_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """One broker for the API tests; each test uses its own domain names."""
    broker = start_broker(tmp_path_factory.mktemp("shared") / "data")
    yield broker
    code = broker.stop()
    assert code == 0, f"shared broker exited with {code}:\n{broker.output()}"


@pytest.fixture
def api(shared_broker: Broker) -> Iterator[httpx2.Client]:
    with shared_broker.client() as client:
        yield client
