"""The catalog shard's small record store, and every shard's replay cache of signatures.

Records: collections of (key, value) pairs the gateway's security layer keeps (users, their
username index, service accounts, account requests, login failures; gateway/accounts.py
says what the values hold). They are few, so every collection is kept in memory and written
through to RocksDB under `Y<collection>\\0<key>`. A `RecordsWrite` applies all its writes or
none, after checking its conditions, which is what makes "create the first admin only while
no user exists" and "a username is taken once" hold across gateway workers. Every change is
announced (a catalog event of kind "records") so the gateways drop what they cached.

Replays: a signed (HMAC) request's signature may be used once while its timestamp is in the
window. The cache lives in the shard the request goes to, so every gateway worker shares it;
it is memory only, and a shard refuses every signature made before it started (it cannot
know what it saw before), so a restart opens no window for a replay.
"""

from __future__ import annotations

import heapq

from gortms.errors import Conflict, Unauthorized
from gortms.protocol import CatalogEvent, RecordsWrite
from shard.store import Store, prefix_end
from shard.turn import Turn

PREFIX = b"Y"
MAX_REPLAYS = 1_000_000  # signatures remembered at once; past it, new ones are refused


def record_key(collection: str, key: str) -> bytes:
    return PREFIX + collection.encode() + b"\0" + key.encode()


class RecordStore:
    def __init__(self) -> None:
        self.collections: dict[str, dict[str, bytes]] = {}

    def load(self, store: Store) -> None:
        for key, value in store.scan(PREFIX, prefix_end(PREFIX)):
            collection, _, name = key[1:].decode().partition("\0")
            self.collections.setdefault(collection, {})[name] = value

    def read(self, collection: str, keys: list[str]) -> dict[str, bytes]:
        records = self.collections.get(collection, {})
        if not keys:
            return dict(records)
        return {k: records[k] for k in keys if k in records}

    def write(self, req: RecordsWrite, turn: Turn, events: list[CatalogEvent]) -> int:
        for condition in req.conditions:
            records = self.collections.get(condition.collection, {})
            holds = bool(records) if condition.key is None else condition.key in records
            if holds != condition.exists:
                raise Conflict(req.conflict)
        for write in req.writes:
            records = self.collections.setdefault(write.collection, {})
            key = record_key(write.collection, write.key)
            if write.value is None:
                records.pop(write.key, None)
                turn.delete(key)
            else:
                records[write.key] = write.value
                turn.put(key, write.value)
            events.append(CatalogEvent(kind="records", domain=write.collection,
                                       queue=write.key, deleted=write.value is None))
        return len(req.writes)


class ReplayCache:
    def __init__(self, started_ms: int) -> None:
        self.started_ms = started_ms
        self.seen: dict[bytes, int] = {}  # digest -> until (ms)
        self.expiries: list[tuple[int, bytes]] = []

    def check(self, digest: bytes, signed_ms: int, until_ms: int, now_ms: int) -> None:
        """Remember the signature, or raise Unauthorized if it was used already."""
        self.forget(now_ms)
        if signed_ms < self.started_ms:
            raise Unauthorized("the request was signed before this shard started; sign it "
                               "again with a fresh X-Timestamp")
        if digest in self.seen:
            raise Unauthorized("this signature was used already (a replayed request); sign "
                               "every request with a fresh X-Timestamp")
        if len(self.seen) >= MAX_REPLAYS:
            raise Unauthorized("too many signed requests in the timestamp window; retry")
        self.seen[digest] = until_ms
        heapq.heappush(self.expiries, (until_ms, digest))

    def forget(self, now_ms: int) -> None:
        expiries = self.expiries
        while expiries and expiries[0][0] < now_ms:
            _, digest = heapq.heappop(expiries)
            self.seen.pop(digest, None)
