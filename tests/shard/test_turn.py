"""shard/turn.py: what a turn writes, whether it fsyncs, and lazy turns left open."""

from __future__ import annotations

from shard.memory import MemoryStore
from shard.turn import Turn


class Owner:
    """A record derived from memory, written once per commit however often it changed."""

    def __init__(self) -> None:
        self.value = 0
        self.persisted = 0

    def persist(self, turn: Turn) -> None:
        self.persisted += 1
        turn.put(b"owner", b"%d" % self.value, lazy=True)


def test_a_durable_put_makes_the_commit_fsync() -> None:
    store = MemoryStore()
    turn = Turn(store)
    turn.put(b"k", b"v")
    assert turn.commit() is True
    assert (store.writes, store.synced_writes, store.get(b"k")) == (1, 1, b"v")


def test_lazy_writes_go_to_the_wal_without_an_fsync() -> None:
    store = MemoryStore()
    turn = Turn(store)
    turn.put(b"k", b"v", lazy=True)
    assert turn.commit() is False
    assert (store.writes, store.synced_writes) == (1, 0)


def test_a_turn_of_lazy_writes_can_stay_open_and_writes_all_later() -> None:
    store = MemoryStore()
    owner = Owner()
    turn = Turn(store)
    turn.changed(owner, lazy=True)
    assert turn.commit(defer_lazy=True) is None  # nothing written
    assert store.writes == 0 and owner.persisted == 1
    owner.value = 7
    turn.changed(owner, lazy=True)  # a later turn adds to the same one
    turn.put(b"k", b"v")  # ... something durable
    assert turn.commit(defer_lazy=True) is True
    assert (store.writes, store.synced_writes) == (1, 1)
    assert store.get(b"owner") == b"7" and store.get(b"k") == b"v"


def test_an_owner_changed_many_times_is_written_once_per_commit() -> None:
    store = MemoryStore()
    owner = Owner()
    turn = Turn(store)
    for _ in range(5):
        turn.changed(owner)
    assert turn.commit() is True  # changed() without lazy is durable
    assert owner.persisted == 1


def test_storage_sync_off_never_fsyncs() -> None:
    store = MemoryStore()
    turn = Turn(store, sync_allowed=False)
    turn.put(b"k", b"v")
    assert turn.commit() is False
    assert store.synced_writes == 0 and store.get(b"k") == b"v"


def test_a_forgotten_owner_is_not_written() -> None:
    store = MemoryStore()
    owner = Owner()
    turn = Turn(store)
    turn.changed(owner)
    turn.forget(owner)
    turn.commit()
    assert owner.persisted == 0 and store.get(b"owner") is None
