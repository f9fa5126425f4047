"""MemoryStore: the Store port over a sorted dict, for tests and as the contract's reference."""

from __future__ import annotations

import bisect
from typing import Iterator


class MemoryBatch:
    def __init__(self) -> None:
        self.ops: list[tuple[str, bytes, bytes]] = []

    def put(self, key: bytes, value: bytes) -> None:
        self.ops.append(("put", key, value))

    def delete(self, key: bytes) -> None:
        self.ops.append(("delete", key, b""))

    def delete_range(self, begin: bytes, end: bytes) -> None:
        self.ops.append(("range", begin, end))

    def len(self) -> int:
        return len(self.ops)


class MemoryStore:
    read_only = False

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}
        self._keys: list[bytes] = []  # sorted
        self.writes = 0
        self.synced_writes = 0

    def batch(self) -> MemoryBatch:
        return MemoryBatch()

    def write(self, batch: MemoryBatch, sync: bool, wal: bool = True) -> None:
        self.writes += 1
        self.synced_writes += sync
        for op, a, b in batch.ops:
            if op == "put":
                if a not in self._data:
                    bisect.insort(self._keys, a)
                self._data[a] = b
            elif op == "delete":
                if self._data.pop(a, None) is not None:
                    del self._keys[bisect.bisect_left(self._keys, a)]
            else:
                lo, hi = bisect.bisect_left(self._keys, a), bisect.bisect_left(self._keys, b)
                for key in self._keys[lo:hi]:
                    del self._data[key]
                del self._keys[lo:hi]

    def get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        return [self._data.get(key) for key in keys]

    def scan(self, begin: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
        lo, hi = bisect.bisect_left(self._keys, begin), bisect.bisect_left(self._keys, end)
        for key in self._keys[lo:hi]:
            yield key, self._data[key]

    def floor_scan(self, begin: bytes, key: bytes, end: bytes
                   ) -> Iterator[tuple[bytes, bytes]]:
        """From the greatest key in [begin, key] (or the first after `begin`) up to `end`."""
        lo = bisect.bisect_left(self._keys, begin)
        at = bisect.bisect_right(self._keys, key) - 1
        start = at if at >= lo else lo
        for k in self._keys[start:bisect.bisect_left(self._keys, end)]:
            yield k, self._data[k]

    def last_key(self, begin: bytes, end: bytes) -> bytes | None:
        lo, hi = bisect.bisect_left(self._keys, begin), bisect.bisect_left(self._keys, end)
        return self._keys[hi - 1] if hi > lo else None

    def reclaim(self, ranges: list[tuple[bytes, bytes]]) -> None:
        pass  # deleted keys are gone already

    def stats(self) -> dict[str, int]:
        return {"keys": len(self._keys), "diskBytes": 0}

    def close(self) -> None:
        return None
