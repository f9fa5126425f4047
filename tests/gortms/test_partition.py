"""gortms/partition.py: placement must be stable forever, spread evenly and stay in range."""

from __future__ import annotations

from collections import Counter

import pytest

from gortms.partition import CATALOG_SHARD, shard_for

# Computed once (in another process, so no hash seed is involved) and pinned: a changed value
# would move existing queues to another shard.
PINNED = [
    ("orders", "incoming", 8, 3),
    ("orders", "incoming", 2, 1),
    ("orders", "incoming", 3, 0),
    ("payments", "q1", 16, 13),
    ("d", "q", 4, 0),
    ("shop", "emails", 256, 142),
    ("shop", "emails.dlq", 7, 2),  # with its origin "emails" (dead letters move in one batch)
    ("analytics", "clicks:eu-west-1", 5, 4),
    ("a", "b", 1, 0),
]


@pytest.mark.parametrize(("domain", "queue", "count", "shard"), PINNED)
def test_placement_never_changes_across_releases(domain: str, queue: str, count: int,
                                                 shard: int) -> None:
    assert shard_for(domain, queue, count) == shard


def test_a_dead_letter_queues_own_dead_letters_live_with_their_origin_too() -> None:
    for i in range(50):
        domain = f"d{i}"
        assert shard_for(domain, "orders.dlq.dlq", 8) == shard_for(domain, "orders", 8)
    assert shard_for("d", ".dlq", 8) == shard_for("d", ".dlq.dlq", 8)  # never to ""


@pytest.mark.parametrize("count", [1, 2, 3, 7, 8, 64, 256])
def test_placement_is_always_a_valid_shard_index(count: int) -> None:
    for i in range(500):
        assert 0 <= shard_for(f"domain{i % 13}", f"queue-{i}", count) < count


@pytest.mark.parametrize("count", [2, 4, 8])
def test_placement_spreads_queues_over_every_shard(count: int) -> None:
    names = [(f"d{i % 10}", f"q{i}") for i in range(4000)]
    per_shard = Counter(shard_for(d, q, count) for d, q in names)
    expected = len(names) / count
    assert set(per_shard) == set(range(count))
    assert all(0.8 * expected < n < 1.2 * expected for n in per_shard.values()), per_shard


def test_the_same_queue_name_in_other_domains_lands_on_different_shards() -> None:
    shards = {shard_for(f"tenant{i}", "orders", 8) for i in range(100)}
    assert len(shards) == 8


def test_the_catalog_lives_on_shard_zero() -> None:
    assert CATALOG_SHARD == 0
