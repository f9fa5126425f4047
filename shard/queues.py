"""Queue state: settings, positions, counters, consumer groups and the Idempotency-Key window."""

from __future__ import annotations

import heapq
from collections import OrderedDict
import msgspec
import orjson

from gortms.checks import enc_hook
from gortms.models import QueueConfig, format_ts
from gortms.protocol import QueueInfo, record_ts
from shard import chunks
from shard.groups import GroupState
from shard.recent import Recent, Tail
from shard.store import (Store, counters_key, dedup_prefix, message_prefix, pos_bytes,
                         prefix_end, queue_key, schedule_prefix)
from shard.turn import Turn

# Idempotency keys remembered per queue; past this the oldest are forgotten early.
MAX_DEDUP_KEYS = 100_000


class QueueState:
    __slots__ = ("qid", "domain", "name", "epoch", "config", "created_ms", "first", "last",
                 "count", "bytes", "groups", "dedup", "message_prefix", "tail", "staged",
                 "chunk_cache", "durable", "expired", "scheduled", "schedules", "dead_lettered",
                 "last_active_ms")

    def __init__(self, qid: int, domain: str, name: str, epoch: int, config: QueueConfig,
                 created_ms: int) -> None:
        self.qid = qid
        self.domain = domain
        self.name = name
        self.epoch = epoch
        self.config = config
        self.created_ms = created_ms
        self.first = 1  # oldest retained position; last + 1 when the queue is empty
        self.last = 0  # newest position ever assigned; positions are never reused
        # Newest position a finished commit wrote: what fetches may deliver, so that a fetch
        # answered before its turn's fsync never hands out a message that may still be lost.
        self.durable = 0
        self.count = 0
        self.bytes = 0
        self.expired = 0  # messages deleted by `ttl` (shard/retention.py)
        self.dead_lettered = 0  # moved to {q}.dlq since the shard started (metrics)
        self.last_active_ms = 0  # last publish or delivery since the shard started (stats)
        # Delayed delivery: position -> when groups may have it (Deliver-At, Delay), and a
        # heap of the (due time, first position, count) runs, to forget them once due.
        self.scheduled: dict[int, int] = {}
        self.schedules: list[tuple[int, int, int]] = []
        self.groups: dict[str, GroupState] = {}
        # key -> (expiry ms, original reply); insertion order is expiry order
        self.dedup: OrderedDict[str, tuple[int, bytes]] = OrderedDict()
        self.message_prefix = message_prefix(qid)
        self.tail = Tail()  # the newest records, in memory (see shard/recent.py)
        self.staged: list[bytes] = []  # appended this turn, written as chunks at its commit
        self.chunk_cache = chunks.ChunkCache()  # the chunks read last (reads past the tail)

    # --- records ------------------------------------------------------------------------------

    def record(self) -> bytes:
        return orjson.dumps({"qid": self.qid, "domain": self.domain, "name": self.name,
                             "epoch": self.epoch,
                             "config": msgspec.to_builtins(self.config, enc_hook=enc_hook),
                             "createdAt": self.created_ms})

    def counters(self) -> bytes:
        return orjson.dumps([self.last, self.count, self.bytes, self.expired])

    def restore_counters(self, data: bytes) -> None:
        # [last, count, bytes, expired]; earlier releases wrote three.
        self.last, self.count, self.bytes, *rest = orjson.loads(data)
        self.expired = rest[0] if rest else 0

    def create(self, turn: Turn) -> None:
        turn.put(queue_key(self.qid), self.record())
        turn.changed(self)

    def persist(self, turn: Turn) -> None:
        """The turn commits: this turn's records as chunks (shard/chunks.py), and counters.
        (A commit either finishes or the shard exits, so what it writes is then durable.)"""
        self.durable = self.last
        if self.staged:
            put = turn.logged.put if self.config.is_persistent else turn.unlogged.put
            first = self.last - len(self.staged) + 1
            prefix = self.message_prefix
            for offset, run in chunks.split(self.staged):
                put(prefix + pos_bytes(first + offset), chunks.encode(run))
            self.staged = []
        turn.put(counters_key(self.qid), self.counters(), lazy=True)

    # --- publishing ---------------------------------------------------------------------------

    def append(self, turn: Turn, recent: Recent, ts: bytes, records: list[bytes]) -> int:
        """Assign positions to `records` (stamped with `ts`) and stage them; the first position.

        The stamped records join the queue's tail at once: nothing reads them before the
        turn is committed (fetches run after the commit)."""
        first = self.last + 1
        stamped = [ts + record for record in records]
        self.staged += stamped
        self.last += len(stamped)
        self.count += len(stamped)
        self.bytes += sum(map(len, stamped))
        recent.add(self.qid, first, stamped)
        persistent = self.config.is_persistent
        turn.changed(self, lazy=not persistent)  # a persistent queue's records need the fsync
        return first

    def schedule(self, first: int, count: int, due_ms: int, turn: Turn | None) -> None:
        """Positions [first, first + count) are kept from groups until `due_ms`; durable with
        the publish (`turn`), or read back at load (None)."""
        for pos in range(first, first + count):
            self.scheduled[pos] = due_ms
        heapq.heappush(self.schedules, (due_ms, first, count))
        if turn is not None:
            turn.put(schedule_prefix(self.qid) + pos_bytes(first),
                     count.to_bytes(4, "big") + due_ms.to_bytes(8, "big"))

    def forget_schedules(self, now_ms: int, turn: Turn) -> None:
        """Runs whose time has come: groups deliver those messages as any others now."""
        while self.schedules and self.schedules[0][0] <= now_ms:
            _, first, count = heapq.heappop(self.schedules)
            for pos in range(first, first + count):
                self.scheduled.pop(pos, None)
            turn.delete(schedule_prefix(self.qid) + pos_bytes(first), lazy=True)

    def delete(self, store: Store, turn: Turn, recent: Recent, positions: list[int]) -> int:
        """Delete stored messages (they read as holes from then on); how many were."""
        deleted = 0
        self.chunk_cache.forget()
        for key, value, sizes in chunks.punch(store, self.message_prefix, positions):
            if value is None:
                turn.delete(key)
            else:
                turn.put(key, value)
            deleted += len(sizes)
            self.count -= len(sizes)
            self.bytes -= sum(sizes)
        for pos in positions:
            recent.discard(self.qid, pos)
        if deleted:
            turn.changed(self)
        return deleted

    def truncate(self, store: Store, turn: Turn, recent: Recent, cut: int,
                 max_chunks: int = 1 << 30) -> tuple[int, int]:
        """Delete every stored message before position `cut` (at most what `max_chunks`
        chunks hold, for a bounded step): (messages deleted, the new first position). Only
        what is durable is touched; the writes are lazy (a crash before they are on disk
        leaves the messages to be deleted again)."""
        cut = min(cut, self.durable + 1)
        if cut <= self.first:
            return 0, self.first
        prefix = self.message_prefix
        removed: list[int] = []
        reached = cut
        for done, (key, value) in enumerate(store.floor_scan(
                prefix, prefix + pos_bytes(self.first), prefix + pos_bytes(cut))):
            if done >= max_chunks:
                reached = chunks.position_of(key)
                break
            start = chunks.position_of(key)
            records = chunks.decode(value)
            keep = [b"" if start + i < cut else r for i, r in enumerate(records)]
            removed += [len(r) for i, r in enumerate(records) if start + i < cut and r]
            if any(keep):
                turn.put(key, chunks.encode(keep), lazy=True)
            else:
                turn.delete(key, lazy=True)
        self.chunk_cache.forget()
        recent.drop_before(self.qid, reached)
        self.first = max(self.first, reached)
        self.count -= len(removed)
        self.bytes -= sum(removed)
        turn.changed(self, lazy=True)
        return len(removed), self.first

    def position_at(self, store: Store, ts_ms: int) -> int:
        """The first position stored at or after `ts_ms` (last + 1 if none): one read when
        the oldest message is that recent already (the usual case for ttl expiry), else a
        binary search over the stamps, which never go back (shard/server.py)."""
        prefix = self.message_prefix
        end = prefix_end(prefix)
        oldest = chunks.first_at_or_after(store, prefix, self.first, end)
        if oldest is None:
            return self.last + 1
        if record_ts(oldest[1]) >= ts_ms:
            return self.first
        lo, hi = oldest[0], self.last + 1
        while lo < hi:
            mid = (lo + hi) // 2
            found = chunks.first_at_or_after(store, prefix, mid, end)
            if found is None:
                hi = mid
            elif record_ts(found[1]) < ts_ms:
                lo = found[0] + 1
            else:
                hi = mid
        return lo

    def read(self, store: Store, begin: int, end: int) -> list[bytes | None]:
        """Records of positions [begin, end) (None for a hole): the tail, then RocksDB."""
        split = min(max(begin, self.tail.first), end)  # below it: only in RocksDB
        older = chunks.read_range(store, self.message_prefix, begin, split,
                                  self.chunk_cache) if begin < split else []
        if split == end:
            return older
        newer = self.tail.slice(split, end)
        if newer is None:
            newer = chunks.read_range(store, self.message_prefix, split, end, self.chunk_cache)
        return older + newer if older else newer

    def read_positions(self, store: Store, positions: list[int]) -> list[bytes | None]:
        """Records of some positions (redeliveries), the tail first."""
        tail = self.tail
        if all(tail.first <= p < tail.end for p in positions):
            return [tail.get(p) for p in positions]
        return chunks.read_positions(store, self.message_prefix, positions, self.chunk_cache)

    def remembered(self, key: str, now_ms: int) -> bytes | None:
        entry = self.dedup.get(key)
        if entry is not None and entry[0] > now_ms:
            return entry[1]
        return None

    def remember(self, key: str, reply: bytes, expiry_ms: int, turn: Turn) -> None:
        self.dedup[key] = (expiry_ms, reply)
        self.dedup.move_to_end(key)
        turn.put(dedup_prefix(self.qid) + key.encode(), pos_bytes(expiry_ms) + reply,
                 lazy=True)  # durable with its publish
        while len(self.dedup) > MAX_DEDUP_KEYS:
            old, _ = self.dedup.popitem(last=False)
            turn.delete(dedup_prefix(self.qid) + old.encode(), lazy=True)

    def forget_expired(self, now_ms: int, turn: Turn) -> None:
        while self.dedup:
            key, (expiry, _) = next(iter(self.dedup.items()))
            if expiry > now_ms:
                return
            del self.dedup[key]
            turn.delete(dedup_prefix(self.qid) + key.encode(), lazy=True)

    # --- views --------------------------------------------------------------------------------

    def info(self) -> QueueInfo:
        return QueueInfo(name=self.name, domain=self.domain, config=self.config,
                         message_count=self.count, bytes=self.bytes, first_position=self.first,
                         last_position=self.last, groups=len(self.groups),
                         created_at=format_ts(self.created_ms), expired=self.expired)
