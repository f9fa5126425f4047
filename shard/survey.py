"""What each shard's database holds, read-only, for `gortms shards` on a stopped broker.

A running broker's shards answer for themselves (supervisor/status.py asks them); a stopped
one's are read here, from their RocksDB opened read-only (no lock, so a broker starting
meanwhile is not in the way), with the figures a running shard gives in ShardInfo: queues,
groups, domains, messages as its loader would count them (shard/loader.py), RocksDB's key
estimate, disk use, and the free space of its file system against storage.minFreeBytes.
"""

from __future__ import annotations

import os
from typing import Any

import orjson

from gortms.config import SpaceLimit
from gortms.datadir import Layout
from gortms.errors import GortmsError
from shard.inspect import read_only, shard_count
from shard.loader import read_queue
from shard.store import Store, group_key, prefix_end

STOPPED = "stopped"
UNREADABLE = "unreadable"


def stored_shards(layout: Layout, limit: SpaceLimit) -> list[dict[str, Any]]:
    """One row per shard of the data dir (raises GortmsError if it holds no broker's data)."""
    return [stored_shard(layout, index, limit) for index in range(shard_count(layout))]


def stored_shard(layout: Layout, index: int, limit: SpaceLimit) -> dict[str, Any]:
    try:
        with read_only(layout, index) as store:
            figures = _figures(store)
    except (GortmsError, ValueError, KeyError, TypeError) as exc:
        message = exc.message if isinstance(exc, GortmsError) else f"a record is malformed: {exc}"
        return {"shard": index, "pid": None, "state": UNREADABLE, "read": False,
                "problem": message}
    return {"shard": index, "pid": None, "state": STOPPED, "read": True, **figures,
            **_free_space(layout.shard_dir(index), limit)}


def _figures(store: Store) -> dict[str, Any]:
    queues = groups = messages = 0
    for _, value in store.scan(b"Q", b"R"):
        queue = read_queue(store, orjson.loads(value))
        queues += 1
        messages += queue.count
        prefix = group_key(queue.qid, "")
        groups += sum(1 for _ in store.scan(prefix, prefix_end(prefix)))
    stats = store.stats()
    return {"queues": queues, "groups": groups,
            "domains": sum(1 for _ in store.scan(b"D", b"E")), "messages": messages,
            "keys": stats["keys"], "diskBytes": stats["diskBytes"]}


def _free_space(path: str, limit: SpaceLimit) -> dict[str, Any]:
    """As shard/disk.py reads it: f_bavail, the watermark, ok or low (full is a running
    shard's failed store: a stopped one has none)."""
    try:
        info = os.statvfs(path)
    except OSError:
        return {"freeBytes": -1, "minFreeBytes": 0, "storage": None}
    free = info.f_bavail * info.f_frsize
    threshold = limit.of(info.f_blocks * info.f_frsize)
    return {"freeBytes": free, "minFreeBytes": threshold,
            "storage": "low" if free < threshold else "ok"}
