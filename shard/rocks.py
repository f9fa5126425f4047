"""RocksStore: the Store port over rocksdict. The only module that imports rocksdict.

Message chunks (keys `M…`, see shard/store.py) live in a column family of their own,
everything else in the default one. Chunk keys only grow within a queue, and kept apart from
the small, constantly rewritten records (cursors, counters) RocksDB can move a hot queue's
flushed files down the levels without rewriting them; together every flush overlaps every
file and compaction rewrites all data again and again, which slowed publishes while a
large queue was being compacted. A WriteBatch spans both families, so commits stay atomic.
Keys are routed by their first byte, so the Store port is unchanged; a data dir from before
the split has its message keys moved over once, at the first read-write open.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import os
import time
from typing import Iterator

from rocksdict import (AccessType, BlockBasedOptions, Cache, DBCompressionType, Options, Rdict,
                       WriteBatch, WriteOptions)

from gortms.errors import InsufficientStorage, StorageError

log = logging.getLogger(__name__)

MESSAGES_CF = "messages"
_M, _N = b"M", b"N"  # the key range routed to MESSAGES_CF
WRITE_BUFFER_BYTES = 32 * 1024 * 1024  # per memtable of the messages family; at most two
META_WRITE_BUFFER_BYTES = 4 * 1024 * 1024
BLOCK_CACHE_BYTES = 32 * 1024 * 1024
MAX_WAL_BYTES = 256 * 1024 * 1024  # past it the family holding the oldest WAL data flushes
SST_BYTES_PER_SYNC = 1024 * 1024
MIGRATE_BATCH = 1000
# Compaction runs at this nice value: on a busy shard it takes the CPU the loop leaves.
COMPACTION_NICE = 10


@contextlib.contextmanager
def storage_errors(action: str) -> Iterator[None]:
    try:
        yield
    except StorageError:
        raise
    except Exception as exc:  # rocksdict raises plain Exception subclasses for I/O errors
        raise storage_error(f"{action}: {exc}") from exc


def storage_error(message: str) -> StorageError:
    """A full disk (ENOSPC, or a quota) is InsufficientStorage (507), anything else 503."""
    lowered = message.lower()
    if "no space left" in lowered or "quota exceeded" in lowered:
        return InsufficientStorage(message)
    return StorageError(message)


def _family_options(write_buffer_bytes: int, cache: Cache) -> Options:
    """Memory bounded whatever the data: two memtables, and one block cache that also holds
    the index and filter blocks (by default those grow with every file). LZ4: cheaper to
    compress during compaction than RocksDB's default Snappy, for about the same ratio on
    JSON."""
    options = Options(raw_mode=True)
    options.set_write_buffer_size(write_buffer_bytes)
    options.set_max_write_buffer_number(2)
    options.set_compression_type(DBCompressionType.lz4())
    table = BlockBasedOptions()
    table.set_block_cache(cache)
    table.set_cache_index_and_filter_blocks(True)
    table.set_pin_l0_filter_and_index_blocks_in_cache(True)
    options.set_block_based_table_factory(table)
    return options


def _options(read_only: bool, cache: Cache) -> Options:
    options = _family_options(META_WRITE_BUFFER_BYTES, cache)
    options.create_if_missing(not read_only)
    options.create_missing_column_families(not read_only)
    options.set_max_background_jobs(2)
    options.set_max_total_wal_size(MAX_WAL_BYTES)
    # Flushes and compactions push their file to disk a MiB at a time as they write it,
    # instead of leaving tens of MiB of dirty pages for the kernel to write at once, which
    # made the next WAL fsync (an ack's, a publish's) wait behind them.
    options.set_bytes_per_sync(SST_BYTES_PER_SYNC)
    return options


def _lower_compaction_priority() -> None:
    """RocksDB's compaction threads (named rocksdb:low*) at COMPACTION_NICE, as its own
    LowerThreadPoolCPUPriority does (rocksdict does not expose it)."""
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return  # not Linux
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/comm", encoding="ascii") as comm:
                if comm.read().startswith("rocksdb:low"):
                    os.setpriority(os.PRIO_PROCESS, int(tid), COMPACTION_NICE)
        except (OSError, ValueError):
            continue  # the thread ended meanwhile


def _is_message(key: bytes) -> bool:
    return _M <= key < _N


class RoutedBatch:
    """A WriteBatch that puts message keys into the messages family. It asks its store for
    the family's handle each time: holding the handle would keep a closed database open."""

    __slots__ = ("inner", "_store")

    def __init__(self, store: RocksStore) -> None:
        self.inner = WriteBatch(raw_mode=True)
        self._store = store

    def put(self, key: bytes, value: bytes) -> None:
        family = self._store._family
        if family is not None and _M <= key < _N:
            self.inner.put(key, value, family)
        else:
            self.inner.put(key, value)

    def delete(self, key: bytes) -> None:
        family = self._store._family
        if family is not None and _M <= key < _N:
            self.inner.delete(key, family)
        else:
            self.inner.delete(key)

    def delete_range(self, begin: bytes, end: bytes) -> None:
        family = self._store._family
        if family is None:
            self.inner.delete_range(begin, end)
            return
        # Split at the family's bounds: each part goes where its keys are.
        for lo, hi, where in ((begin, min(end, _M), None), (max(begin, _M), min(end, _N), family),
                              (max(begin, _N), end, None)):
            if lo < hi:
                if where is None:
                    self.inner.delete_range(lo, hi)
                else:
                    self.inner.delete_range(lo, hi, where)

    def len(self) -> int:
        return self.inner.len()


class RocksStore:
    def __init__(self, path: str, read_only: bool = False, open_timeout_s: float = 10.0) -> None:
        self.path = path
        self.read_only = read_only
        access = AccessType.read_only() if read_only else AccessType.read_write()
        if read_only and not os.path.exists(os.path.join(path, "CURRENT")):
            raise StorageError(f"no database at {path}")
        if not read_only:
            with storage_errors(f"cannot create {path}"):
                os.makedirs(path, exist_ok=True)
        cache = Cache(BLOCK_CACHE_BYTES)
        options = _options(read_only, cache)
        families = {MESSAGES_CF: _family_options(WRITE_BUFFER_BYTES, cache)}
        if read_only and MESSAGES_CF not in self._families(path, options):
            families = {}  # a data dir from before the split, opened only to look at it
        self._db = self._open(path, options, families, access, open_timeout_s)
        self._messages = self._db.get_column_family(MESSAGES_CF) if families else self._db
        self._family = self._db.get_column_family_handle(MESSAGES_CF) if families else None
        self._sync = WriteOptions()
        self._sync.sync = True
        self._nosync = WriteOptions()
        self._nowal = WriteOptions()
        self._nowal.disable_wal = True
        if not read_only:
            _lower_compaction_priority()
            self._move_messages_out_of_default()

    @staticmethod
    def _families(path: str, options: Options) -> list[str]:
        with storage_errors(f"cannot read {path}"):
            return Rdict.list_cf(path, options)

    @staticmethod
    def _open(path: str, options: Options, families: dict[str, Options], access: AccessType,
              timeout_s: float) -> Rdict:
        # A shard restarted right after a crash may find the previous process still releasing
        # the LOCK file; retry briefly instead of failing the restart.
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return Rdict(path, options, column_families=families or None,
                             access_type=access)
            except Exception as exc:
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise storage_error(f"cannot open {path}: {exc}") from exc
                time.sleep(0.05)

    def _move_messages_out_of_default(self) -> None:
        """Message keys left in the default family by a release before the split: into
        theirs, a batch at a time, each batch atomic (put there, delete here)."""
        moved = 0
        while True:
            found = list(_limited(self._iterate(self._db, _M, _N), MIGRATE_BATCH))
            if not found:
                break
            batch = WriteBatch(raw_mode=True)
            for key, value in found:
                batch.put(key, value, self._family)
                batch.delete(key)
            with storage_errors("moving message keys"):
                self._db.write(batch, self._sync)
            moved += len(found)
        if moved:
            log.info("moved %d message keys into the %s column family", moved, MESSAGES_CF)

    # --- the Store port -----------------------------------------------------------------------

    def batch(self) -> RoutedBatch:
        return RoutedBatch(self)

    def write(self, batch: RoutedBatch, sync: bool, wal: bool = True) -> None:
        if batch.len() == 0:
            return
        options = self._sync if sync else (self._nosync if wal else self._nowal)
        with storage_errors("write"):
            self._db.write(batch.inner, options)

    def sync_wal(self) -> None:
        with storage_errors("sync"):
            self._db.flush_wal(True)

    def _family_of(self, key: bytes) -> Rdict:
        return self._messages if _M <= key < _N else self._db

    def get(self, key: bytes) -> bytes | None:
        return self._family_of(key).get(key)

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        if not keys:
            return []
        if all(_is_message(k) for k in keys) or not any(_is_message(k) for k in keys):
            return self._family_of(keys[0]).get(keys)
        return [self.get(key) for key in keys]

    @staticmethod
    def _iterate(family: Rdict, begin: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
        it = family.iter()
        it.seek(begin)
        while it.valid():
            key = it.key()
            if key >= end:
                return
            yield key, it.value()
            it.next()

    def scan(self, begin: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
        if self._family is None or end <= _M or begin >= _N:
            return self._iterate(self._db, begin, end)
        if _M <= begin and end <= _N:
            return self._iterate(self._messages, begin, end)
        return heapq.merge(self._iterate(self._db, begin, end),
                           self._iterate(self._messages, max(begin, _M), min(end, _N)))

    def floor_scan(self, begin: bytes, key: bytes, end: bytes
                   ) -> Iterator[tuple[bytes, bytes]]:
        """From the greatest key in [begin, key] (or the first after `begin`) up to `end`
        (within one family: callers ask within a key kind)."""
        it = self._family_of(begin).iter()
        it.seek_for_prev(key)
        if not it.valid() or it.key() < begin:
            it.seek(begin)
        while it.valid():
            found = it.key()
            if found >= end:
                return
            yield found, it.value()
            it.next()

    def last_key(self, begin: bytes, end: bytes) -> bytes | None:
        it = self._family_of(begin).iter()
        it.seek_for_prev(end)
        if it.valid() and it.key() == end:
            it.prev()
        if it.valid() and begin <= it.key() < end:
            return it.key()
        return None

    def reclaim(self, ranges: list[tuple[bytes, bytes]]) -> None:
        """Give the disk space of deleted key ranges back now, not at the next compaction:
        flush the memtables (so the WAL files holding the deleted data can go) and compact
        the ranges (so the files holding them are rewritten without them, or dropped)."""
        with storage_errors("reclaiming deleted data"):
            self._db.flush(True)
            if self._family is not None:
                self._messages.flush(True)
            for begin, end in ranges:
                self._family_of(begin).compact_range(begin, end)

    def stats(self) -> dict[str, int]:
        keys = sum(family.property_int_value("rocksdb.estimate-num-keys") or 0
                   for family in {id(self._db): self._db,
                                  id(self._messages): self._messages}.values())
        disk = 0
        for entry in os.scandir(self.path):
            if entry.is_file():
                disk += entry.stat().st_size
        return {"keys": keys, "diskBytes": disk}

    def close(self) -> None:
        """Sync the WAL and close. The database is closed (and its lock let go) even when
        the sync fails, as it does once a write failed: the caller may want to reopen it."""
        try:
            with storage_errors("close"):
                if not self.read_only:
                    self._db.flush_wal(True)
        finally:
            # The family's view and handle share the database: let go of them first, or
            # it stays open (and locked) until they are collected.
            self._messages = self._family = None  # type: ignore[assignment]
            with storage_errors("close"):
                self._db.close()


def _limited(items: Iterator[tuple[bytes, bytes]], count: int
             ) -> Iterator[tuple[bytes, bytes]]:
    for i, item in enumerate(items):
        if i >= count:
            return
        yield item
