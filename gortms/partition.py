"""Placement: which shard owns a queue. A stable hash, the same in every process and release."""

from __future__ import annotations

import zlib

# Domain records (the catalog) live on this shard; queues are spread over all shards.
CATALOG_SHARD = 0


# A dead-letter queue `{q}.dlq` lives with `{q}`, so moving a message there is one WriteBatch
# (shard/deadletters.py); so does `{q}.dlq.dlq`, the dead letters of a dead-letter queue
# consumed with retries on, which its shard creates beside it.
DLQ_SUFFIX = ".dlq"


def shard_for(domain: str, queue: str, shard_count: int) -> int:
    # crc32, not hash(): Python salts str hashes per process, and every gateway and shard
    # must agree on placement forever.
    while queue.endswith(DLQ_SUFFIX) and len(queue) > len(DLQ_SUFFIX):
        queue = queue[:-len(DLQ_SUFFIX)]
    return zlib.crc32(f"{domain}\0{queue}".encode()) % shard_count
