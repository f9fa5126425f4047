"""Turn: the writes of one loop turn, which the server commits at once (group commit).

Handlers never write to the store and set no flags: they hand their writes to the turn, and
the server commits it before it sends their replies. Whether the commit needs an fsync
follows from what was written: a `put` or `delete` is durable (the reply waits for the disk),
`lazy=True` writes go through the WAL but do not need an fsync of their own (a consumer
group's position after a fetch: at worst the messages are delivered again), and writes to
`unlogged` skip the WAL (queues with isPersistent: false).

Records derived from in-memory state (a queue's counters, a group's cursor) are written once
per commit however often they changed: their owner registers with `changed(owner)` and is
asked for its records (`owner.persist(turn)`) when the turn commits.
"""

from __future__ import annotations

from typing import Protocol

from shard.store import Batch, Store


class Persistent(Protocol):
    def persist(self, turn: Turn) -> None: ...


class Turn:
    __slots__ = ("store", "sync_allowed", "logged", "unlogged", "needs_sync", "changed_owners",
                 "deleted_ranges")

    def __init__(self, store: Store, sync_allowed: bool = True) -> None:
        self.store = store
        self.sync_allowed = sync_allowed  # storage.sync
        self.logged: Batch = store.batch()
        self.unlogged: Batch = store.batch()
        self.needs_sync = False
        self.changed_owners: dict[Persistent, bool] = {}  # owner -> its change is durable
        # Key ranges deleted (a queue, a group): the server may compact them right after the
        # commit to give the space back at once, when the disk is low (shard/disk.py).
        self.deleted_ranges: list[tuple[bytes, bytes]] = []

    def __bool__(self) -> bool:
        return bool(self.logged.len() or self.unlogged.len() or self.changed_owners)

    # --- writes -------------------------------------------------------------------------------

    def put(self, key: bytes, value: bytes, lazy: bool = False) -> None:
        self.logged.put(key, value)
        self.needs_sync |= not lazy

    def delete(self, key: bytes, lazy: bool = False) -> None:
        self.logged.delete(key)
        self.needs_sync |= not lazy

    def delete_range(self, begin: bytes, end: bytes, lazy: bool = False,
                     reclaim: bool = True) -> None:
        """`reclaim`: data worth compacting away at once when the disk is low (a queue, a
        group); not small bookkeeping records (ack deltas)."""
        self.logged.delete_range(begin, end)
        self.needs_sync |= not lazy
        if reclaim:
            self.deleted_ranges.append((begin, end))

    def changed(self, owner: Persistent, lazy: bool = False) -> None:
        """`owner`'s derived records must be written with this turn."""
        if not lazy:
            self.changed_owners[owner] = True
        else:
            self.changed_owners.setdefault(owner, False)

    def forget(self, owner: Persistent) -> None:
        """`owner` is gone (its keys are being deleted): do not write its records."""
        self.changed_owners.pop(owner, None)

    # --- commit -------------------------------------------------------------------------------

    def commit(self, defer_lazy: bool = False) -> bool | None:
        """Write everything in one WriteBatch (plus one without WAL); True if it fsynced.

        With `defer_lazy`, a turn that holds only lazy writes writes nothing and answers
        None: the caller keeps it for the next turn to add to, and commits it within a
        bound (a fetch's position then costs no write syscall of its own)."""
        owners, self.changed_owners = self.changed_owners, {}
        for owner, durable in owners.items():
            owner.persist(self)
            self.needs_sync |= durable
        if defer_lazy and not self.needs_sync and not self.unlogged.len():
            return None
        if self.unlogged.len():
            self.store.write(self.unlogged, sync=False, wal=False)
        synced = self.needs_sync and self.sync_allowed
        if self.logged.len():
            self.store.write(self.logged, sync=synced)
        return synced
