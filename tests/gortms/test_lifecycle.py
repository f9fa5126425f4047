"""gortms/lifecycle.py: what every child does at start (here: the collector's tuning)."""

from __future__ import annotations

import gc
from typing import Iterator

import pytest

from gortms.lifecycle import GC_THRESHOLDS, tune_gc


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_tune_gc_freezes_what_exists_and_makes_young_collections_rarer(restored_gc) -> None:
    kept = [object() for _ in range(10)]
    tune_gc()
    assert gc.get_freeze_count() > 0  # what the process built at start is no longer scanned
    assert gc.get_threshold() == GC_THRESHOLDS
    assert GC_THRESHOLDS[0] > 700  # CPython's default, which cost a gateway 15-20%
    assert kept
