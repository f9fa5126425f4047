"""The storage port and the key layout of a shard's database.

Every key starts with a one-byte kind. Numbers are big-endian and fixed-width so RocksDB's
byte order equals numeric order, and a queue's keys share a prefix so a range covers them.

    S<name>                 shard counters (next queue id, next domain epoch)
    D<domain>               domain record (catalog shard only), JSON
    Q<qid:4>                queue record: domain, name, epoch, config, JSON
    N<domain>\\0<queue>      queue name -> qid
    L<qid:4>                queue counters: last position, count, bytes
    M<qid:4><position:8>    a chunk: the records of consecutive positions from this one on
                            (shard/chunks.py; gortms.protocol's stored-record layout)
    G<qid:4><group>         consumer group record, JSON
    K<qid:4><group>         consumer group cursor: position, ack floor, acked ranges (empty
                            since the ranges moved to A; read from older data dirs)
    A<qid:4><group>\\0<n:8>  acked runs above the floor: one commit's, or the whole set as of
                            a compaction (which deletes the records before it); deleted once
                            the floor passes them
    R<qid:4><group>\\0<pos:8> delivery count of a redelivered message, and its retry time
                            while it waits for one
    E<qid:4><group>\\0<lease:8> a lease: one fetch's deadline, consumer and positions (runs)
    I<qid:4><key>           Idempotency-Key -> expiry and original reply
    T<qid:4><position:8>    delayed delivery: from this position, count (4) messages are kept
                            from groups until a time (8, epoch ms)

Queue ids are never reused, so dropping a queue is a few range deletes and a queue created
again under the same name can never see old keys.
"""

from __future__ import annotations

from typing import Iterator, Protocol

QUEUE_KINDS = (b"M", b"G", b"K", b"A", b"R", b"E", b"I", b"T")


class Batch(Protocol):
    """Writes applied atomically by `Store.write`, in the order they were added."""

    def put(self, key: bytes, value: bytes) -> None: ...
    def delete(self, key: bytes) -> None: ...
    def delete_range(self, begin: bytes, end: bytes) -> None: ...
    def len(self) -> int: ...


class Store(Protocol):
    read_only: bool

    def batch(self) -> Batch: ...
    def write(self, batch: Batch, sync: bool, wal: bool = True) -> None: ...
    def get(self, key: bytes) -> bytes | None: ...
    def get_many(self, keys: list[bytes]) -> list[bytes | None]: ...
    def scan(self, begin: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]: ...
    def floor_scan(self, begin: bytes, key: bytes, end: bytes
                   ) -> Iterator[tuple[bytes, bytes]]: ...
    def last_key(self, begin: bytes, end: bytes) -> bytes | None: ...
    def stats(self) -> dict[str, int]: ...
    def reclaim(self, ranges: list[tuple[bytes, bytes]]) -> None: ...
    def close(self) -> None: ...


def qid_bytes(qid: int) -> bytes:
    return qid.to_bytes(4, "big")


def pos_bytes(position: int) -> bytes:
    return position.to_bytes(8, "big")


def counter_key(name: str) -> bytes:
    return b"S" + name.encode()


def domain_key(domain: str) -> bytes:
    return b"D" + domain.encode()


def queue_key(qid: int) -> bytes:
    return b"Q" + qid_bytes(qid)


def name_key(domain: str, queue: str) -> bytes:
    return b"N" + f"{domain}\0{queue}".encode()


def counters_key(qid: int) -> bytes:
    return b"L" + qid_bytes(qid)


def message_prefix(qid: int) -> bytes:
    return b"M" + qid_bytes(qid)


def group_key(qid: int, group: str) -> bytes:
    return b"G" + qid_bytes(qid) + group.encode()


def cursor_key(qid: int, group: str) -> bytes:
    return b"K" + qid_bytes(qid) + group.encode()


def redelivery_prefix(qid: int, group: str) -> bytes:
    return b"R" + qid_bytes(qid) + group.encode() + b"\0"


def ack_prefix(qid: int, group: str) -> bytes:
    return b"A" + qid_bytes(qid) + group.encode() + b"\0"


def lease_prefix(qid: int, group: str) -> bytes:
    return b"E" + qid_bytes(qid) + group.encode() + b"\0"


def lease_key(qid: int, group: str, lease: int) -> bytes:
    return lease_prefix(qid, group) + lease.to_bytes(8, "big")


def schedule_prefix(qid: int) -> bytes:
    return b"T" + qid_bytes(qid)


def dedup_prefix(qid: int) -> bytes:
    return b"I" + qid_bytes(qid)


def prefix_end(prefix: bytes) -> bytes:
    """The first key after every key that starts with `prefix`."""
    stripped = prefix.rstrip(b"\xff")
    return stripped[:-1] + bytes([stripped[-1] + 1])


def drop_queue(batch: Batch, qid: int, domain: str, queue: str) -> None:
    """Delete every key of one queue."""
    batch.delete(queue_key(qid))
    batch.delete(counters_key(qid))
    batch.delete(name_key(domain, queue))
    for kind in QUEUE_KINDS:
        prefix = kind + qid_bytes(qid)
        batch.delete_range(prefix, prefix_end(prefix))


def drop_group(batch: Batch, qid: int, group: str) -> None:
    batch.delete(group_key(qid, group))
    batch.delete(cursor_key(qid, group))
    for prefix in (redelivery_prefix(qid, group), lease_prefix(qid, group),
                   ack_prefix(qid, group)):
        batch.delete_range(prefix, prefix_end(prefix))
