"""DiskGuard: whether this shard may write, from its file system's free space and its store.

A shard is in one of three storage states:

    ok     free space at or above storage.minFreeBytes; everything goes
    low    free space under the watermark: writes that add data (publish, creating a domain,
           queue or consumer group) are refused with 507 insufficient_storage; reads, fetches,
           acks, nacks, seeks and deletes go on, so consumers can drain and deleting frees
           space. Checked every loop turn and every timer tick: it clears by itself.
    full   a write failed (ENOSPC past the watermark, an I/O error, a read-only file system):
           the server reopened the store read-only and serves reads from what is on disk;
           every write is refused (507 for a full disk, 503 otherwise) until the store can be
           reopened read-write (server.py `_recover`, with backoff)

Each transition is logged once, when it happens, never per request.
"""

from __future__ import annotations

import logging
import os
import time

from gortms.config import SpaceLimit
from gortms.errors import InsufficientStorage, StorageError

log = logging.getLogger(__name__)

OK, LOW, FULL = "ok", "low", "full"
RECOVER_FIRST_S = 1.0  # the first attempt to reopen a failed store, then doubling ...
RECOVER_MAX_S = 30.0  # ... up to this
# Reopening a store needs a little room (a MANIFEST, a WAL) even with the watermark off.
RECOVER_MIN_FREE_BYTES = 4 * 2**20


def mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB"


class DiskGuard:
    """The watermark check and the failed-store state of one shard (see the module doc)."""

    def __init__(self, index: int, path: str | None, limit: SpaceLimit) -> None:
        self.index = index
        self.path = path  # statvfs'd: the shard's own directory (None: not checked)
        self.limit = limit
        self.free_bytes = -1  # -1: unknown (statvfs failed)
        self.total_bytes = -1
        self.threshold = 0
        self.low = False
        self.failure: StorageError | None = None  # why the store is read-only, if it is
        self.retry_at = 0.0  # monotonic: when to try reopening a failed store
        self.retry_s = RECOVER_FIRST_S
        self.refused = 0  # writes refused since start, for ShardInfo (and metrics, later)
        self._statvfs_failed = False
        self.refresh()

    @property
    def state(self) -> str:
        return FULL if self.failure is not None else LOW if self.low else OK

    # --- free space ---------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read the file system's free space (a statvfs: well under a microsecond)."""
        if self.path is None:
            return
        try:
            info = os.statvfs(self.path)
        except OSError as exc:
            if not self._statvfs_failed:
                log.warning("shard %d cannot read the free space of %s: %s", self.index,
                            self.path, exc)
                self._statvfs_failed = True
            return
        self._statvfs_failed = False
        # f_bavail, not f_bfree: the blocks reserved for root are not ours to count on.
        self.free_bytes = info.f_bavail * info.f_frsize
        self.total_bytes = info.f_blocks * info.f_frsize
        self.threshold = self.limit.of(self.total_bytes)
        low = self.free_bytes < self.threshold
        if low != self.low:
            self.low = low
            if low:
                log.warning("shard %d: free space on %s is %s, under storage.minFreeBytes "
                            "(%s = %s): refusing writes that add data until space is freed",
                            self.index, self.path, mib(self.free_bytes), self.limit,
                            mib(self.threshold))
            else:
                log.warning("shard %d: free space on %s is %s again, above storage.minFreeBytes "
                            "(%s): accepting writes", self.index, self.path,
                            mib(self.free_bytes), mib(self.threshold))

    def check_adds(self) -> None:
        """Raise unless data may be added now (handlers call this before staging any)."""
        if self.failure is not None:
            raise self.refusal()
        if self.low:
            self.refused += 1
            raise InsufficientStorage(
                f"shard {self.index}: free space on its disk is {mib(self.free_bytes)}, under "
                f"storage.minFreeBytes ({self.limit}); consume and delete data, or add disk "
                f"space, and retry")

    # --- a failed store -----------------------------------------------------------------------

    def fail(self, error: StorageError) -> None:
        first = self.failure is None
        self.failure = error
        self.retry_at = time.monotonic() + self.retry_s
        if first:
            log.error("shard %d: its store failed a write (%s); serving reads from what is on "
                      "disk and refusing writes until it can be reopened", self.index, error)

    def refusal(self) -> StorageError:
        """The error for a write refused while the store is read-only."""
        error = self.failure
        assert error is not None
        self.refused += 1
        return type(error)(f"shard {self.index} cannot write to its store ({error}); it "
                           f"serves reads and retries the store every few seconds")

    def may_retry(self) -> bool:
        """A failed store is due for a reopen: its backoff ran out and, if the disk was full,
        the watermark is met again (reopening on a full disk would only fail again)."""
        if self.failure is None or time.monotonic() < self.retry_at:
            return False
        if isinstance(self.failure, InsufficientStorage) and (
                self.low or 0 <= self.free_bytes < RECOVER_MIN_FREE_BYTES):
            return False
        return True

    def retry_failed(self) -> None:
        self.retry_s = min(self.retry_s * 2, RECOVER_MAX_S)
        self.retry_at = time.monotonic() + self.retry_s

    def recovered(self) -> None:
        log.warning("shard %d: its store is writable again; accepting writes", self.index)
        self.failure = None
        self.retry_s = RECOVER_FIRST_S
