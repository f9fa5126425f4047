"""RocksStore: the Store port over rocksdict. The only module that imports rocksdict."""

from __future__ import annotations

import contextlib
import os
import time
from typing import Iterator

from rocksdict import (AccessType, BlockBasedOptions, Cache, DBCompressionType, Options, Rdict,
                       WriteBatch, WriteOptions)

from gortms.errors import StorageError

@contextlib.contextmanager
def storage_errors(action: str) -> Iterator[None]:
    try:
        yield
    except Exception as exc:  # rocksdict raises plain Exception subclasses for I/O errors
        raise StorageError(f"{action}: {exc}") from exc


WRITE_BUFFER_BYTES = 32 * 1024 * 1024  # per memtable; at most two
BLOCK_CACHE_BYTES = 32 * 1024 * 1024
# Compaction runs at this nice value: on a busy shard it takes the CPU the loop leaves.
COMPACTION_NICE = 10


def _options(read_only: bool) -> Options:
    """Memory bounded whatever the data: two memtables, one block cache that also holds the
    index and filter blocks (by default those grow with every file). LZ4: cheaper to
    compress during compaction than RocksDB's default Snappy, for about the same ratio on
    JSON."""
    options = Options(raw_mode=True)
    options.create_if_missing(not read_only)
    options.set_max_background_jobs(2)
    options.set_write_buffer_size(WRITE_BUFFER_BYTES)
    options.set_max_write_buffer_number(2)
    options.set_compression_type(DBCompressionType.lz4())
    table = BlockBasedOptions()
    table.set_block_cache(Cache(BLOCK_CACHE_BYTES))
    table.set_cache_index_and_filter_blocks(True)
    table.set_pin_l0_filter_and_index_blocks_in_cache(True)
    options.set_block_based_table_factory(table)
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
        self._db = self._open(path, access, read_only, open_timeout_s)
        if not read_only:
            _lower_compaction_priority()
        self._sync = WriteOptions()
        self._sync.sync = True
        self._nosync = WriteOptions()
        self._nowal = WriteOptions()
        self._nowal.disable_wal = True

    @staticmethod
    def _open(path: str, access: AccessType, read_only: bool, timeout_s: float) -> Rdict:
        # A shard restarted right after a crash may find the previous process still releasing
        # the LOCK file; retry briefly instead of failing the restart.
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return Rdict(path, _options(read_only), access_type=access)
            except Exception as exc:
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise StorageError(f"cannot open {path}: {exc}") from exc
                time.sleep(0.05)

    def batch(self) -> WriteBatch:
        return WriteBatch(raw_mode=True)

    def write(self, batch: WriteBatch, sync: bool, wal: bool = True) -> None:
        if batch.len() == 0:
            return
        options = self._sync if sync else (self._nosync if wal else self._nowal)
        with storage_errors("write"):
            self._db.write(batch, options)

    def get(self, key: bytes) -> bytes | None:
        return self._db.get(key)

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        return self._db.get(keys) if keys else []

    def scan(self, begin: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
        it = self._db.iter()
        it.seek(begin)
        while it.valid():
            key = it.key()
            if key >= end:
                return
            yield key, it.value()
            it.next()

    def floor_scan(self, begin: bytes, key: bytes, end: bytes
                   ) -> Iterator[tuple[bytes, bytes]]:
        """From the greatest key in [begin, key] (or the first after `begin`) up to `end`."""
        it = self._db.iter()
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
        it = self._db.iter()
        it.seek_for_prev(end)
        if it.valid() and it.key() == end:
            it.prev()
        if it.valid() and begin <= it.key() < end:
            return it.key()
        return None

    def stats(self) -> dict[str, int]:
        keys = self._db.property_int_value("rocksdb.estimate-num-keys") or 0
        disk = 0
        for entry in os.scandir(self.path):
            if entry.is_file():
                disk += entry.stat().st_size
        return {"keys": keys, "diskBytes": disk}

    def close(self) -> None:
        with storage_errors("close"):
            if not self.read_only:
                self._db.flush_wal(True)
            self._db.close()
