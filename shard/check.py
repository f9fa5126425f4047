"""`gortms check [--json]`: verify a data dir's shard databases, read-only.

Every shard's RocksDB is opened read-only (no lock: a stopped broker's data dir, or beside a
running broker, as of the moment it is opened) and its keys (shard/store.py) are checked for
what the shard's code keeps true, and only that; what the loader (shard/loader.py) accepts
at start is not a problem:

  - the name index and the queue records agree: every N<domain>\\0<queue> names a Q record
    of that domain and queue, every Q record's name index entry names it;
  - a queue's record and settings read back as the loader reads them;
  - message chunks (M) decode, do not overlap, hold well-formed records; for a persistent
    queue (chunks and counters are written in one batch) the counters (L) count exactly the
    stored messages and bytes and no chunk goes past the last position. A non-persistent
    queue's messages are written without the WAL, so a crash (or a running broker's
    memtable, unseen by a read-only open) leaves fewer than counted: the loader counts
    those again, so they are not compared;
  - a group's cursor (K) is at most the queue's last position + 1 (below its first position
    is normal: ttl expiry deletes messages no group has read, and the loader skips them);
  - every key of a queue (L, M, G, I, T) belongs to an existing queue, and every cursor, ack
    delta, redelivery and lease record (K, A, R, E) to an existing group; the records that
    point into a queue name positions it has had: redeliveries, leases, idempotency keys (the
    positions of the publish they answer) and delayed-delivery runs.

Problems are aggregated per kind and queue (or group), with the first key found.
"""

from __future__ import annotations

import argparse
import struct
import sys
from dataclasses import dataclass, field
from typing import Any

import msgspec
import orjson

from gortms.config import Settings
from gortms.datadir import Layout
from gortms.errors import GortmsError
from gortms.protocol import Published, record_to_dict
from shard import chunks
from shard.groups import decode_lease
from shard.inspect import read_only, shard_count
from shard.loader import read_groups, read_queue
from shard.queues import QueueState
from shard.store import Store, counters_key, cursor_key, group_key, name_key, prefix_end

EXIT_FAILURE = 1
EXIT_USAGE = 2


@dataclass
class ShardReport:
    shard: int
    queues: int = 0
    groups: int = 0
    problems: list[dict[str, str]] = field(default_factory=list)

    def add(self, what: str, key: bytes | None) -> None:
        self.problems.append({"what": what, "key": show(key) if key is not None else ""})


def main(settings: Settings, args: argparse.Namespace) -> int:
    if args.target:
        print(f"gortms check: takes no argument, got {args.target!r}", file=sys.stderr)
        return EXIT_USAGE
    layout = Layout(settings.data_dir)
    try:
        shards = check_data_dir(layout)
    except GortmsError as exc:
        print(f"gortms check: {exc.message}", file=sys.stderr)
        return EXIT_FAILURE
    report = {"dataDir": layout.root, "shardCount": len(shards),
              "problemCount": sum(len(s.problems) for s in shards),
              "shards": [vars(s) for s in shards]}
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() if args.json
          else render(report))
    return EXIT_FAILURE if report["problemCount"] else 0


def show(key: bytes) -> str:
    """A key as text: printable ASCII as it is, other bytes as \\xNN."""
    return "".join(chr(b) if 0x20 <= b < 0x7F and b != 0x5C else f"\\x{b:02x}" for b in key)


def check_data_dir(layout: Layout) -> list[ShardReport]:
    reports = []
    for index in range(shard_count(layout)):
        report = ShardReport(index)
        try:
            with read_only(layout, index) as store:
                check_shard(store, report)
        except GortmsError as exc:
            report.add(f"cannot read the shard's database: {exc.message}", None)
        reports.append(report)
    return reports


def _qid(key: bytes) -> int:
    return int.from_bytes(key[1:5], "big")


def _group_part(key: bytes) -> str | None:
    """The group of an A/R/E key (<kind><qid:4><group>\\0<n:8>), None if malformed."""
    if len(key) < 15 or key[-9] != 0:
        return None
    return key[5:-9].decode(errors="replace")


class _Orphans:
    """Keys of a missing queue or group (or naming positions it never had), counted per
    (what, owner): one problem each."""

    def __init__(self) -> None:
        self.found: dict[tuple[str, str], list[Any]] = {}

    def add(self, what: str, owner: str, key: bytes) -> None:
        entry = self.found.setdefault((what, owner), [0, key])
        entry[0] += 1

    def report(self, report: ShardReport) -> None:
        for (what, owner), (count, key) in self.found.items():
            report.add(f"{count} {what} key{'s' if count > 1 else ''} of {owner}", key)


def check_shard(store: Store, report: ShardReport) -> None:
    queues = _check_queues(store, report)
    _check_name_index(store, report, queues)
    orphans = _Orphans()
    _check_messages(store, report, queues, orphans)
    groups, unreadable = _check_groups(store, report, queues)
    _check_group_keys(store, report, queues, groups, unreadable, orphans)
    for kind, what in ((b"L", "counters"), (b"I", "idempotency"), (b"T", "delayed-delivery")):
        for key, value in store.scan(kind, prefix_end(kind)):
            queue = queues.get(_qid(key))
            if queue is None:
                orphans.add(what, f"qid {_qid(key)}, which has no queue record", key)
            elif kind != b"L" and _last_named(kind, key, value) > queue.last:
                orphans.add(what, f"queue {queue.domain}/{queue.name}, naming positions past "
                            f"its last position {queue.last}", key)
    orphans.report(report)


def _last_named(kind: bytes, key: bytes, value: bytes) -> int:
    """The last position an idempotency key's reply (expiry, then the Published reply) or a
    delayed-delivery run (T<qid><first>: count, due time) names; 0 for an older release's
    idempotency record, which the loader deletes."""
    if kind == b"T":
        return chunks.position_of(key) + int.from_bytes(value[:4], "big") - 1
    try:
        reply = msgspec.msgpack.decode(value[8:], type=Published)
    except msgspec.DecodeError:
        return 0
    return reply.first_position + reply.count - 1


def _check_queues(store: Store, report: ShardReport) -> dict[int, QueueState]:
    queues = {}
    for key, value in store.scan(b"Q", b"R"):
        try:
            record = orjson.loads(value)
            queue = read_queue(store, record)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, GortmsError) as exc:
            report.add(f"queue record cannot be read: {exc}", key)
            continue
        if len(key) != 5 or record["qid"] != _qid(key):
            report.add(f"queue record of {queue.domain}/{queue.name} holds qid {record['qid']}, "
                       f"its key another", key)
            continue
        queues[queue.qid] = queue
        qid = store.get(name_key(queue.domain, queue.name))
        if qid is None:
            report.add(f"queue {queue.domain}/{queue.name} (qid {queue.qid}) has no name index "
                       f"entry", name_key(queue.domain, queue.name))
        elif int.from_bytes(qid, "big") != queue.qid:
            report.add(f"name index entry of {queue.domain}/{queue.name} points to qid "
                       f"{int.from_bytes(qid, 'big')}, not to its queue record (qid "
                       f"{queue.qid})", name_key(queue.domain, queue.name))
    report.queues = len(queues)
    return queues


def _check_name_index(store: Store, report: ShardReport, queues: dict[int, QueueState]) -> None:
    for key, value in store.scan(b"N", b"O"):
        domain, _, name = key[1:].decode(errors="replace").partition("\0")
        qid = int.from_bytes(value, "big")
        queue = queues.get(qid)
        if queue is None:
            report.add(f"name index entry {domain}/{name} points to qid {qid}, which has no "
                       f"(readable) queue record", key)
        elif (queue.domain, queue.name) != (domain, name):
            report.add(f"name index entry {domain}/{name} points to qid {qid}, the queue "
                       f"record of {queue.domain}/{queue.name}", key)


@dataclass
class _Messages:
    end: int = 0  # the position after the previous chunk's last
    count: int = 0
    bytes: int = 0
    first_key: bytes = b""


def _check_messages(store: Store, report: ShardReport, queues: dict[int, QueueState],
                    orphans: _Orphans) -> None:
    found: dict[int, _Messages] = {}
    for key, value in store.scan(b"M", b"N"):
        qid = _qid(key)
        queue = queues.get(qid)
        if queue is None:
            orphans.add("message chunk", f"qid {qid}, which has no queue record", key)
            continue
        seen = found.setdefault(qid, _Messages(first_key=key))
        where = f"queue {queue.domain}/{queue.name}"
        first = chunks.position_of(key)
        try:
            chunk = chunks.Chunk(first, value)
            records = chunk.records()
            if chunk.base + chunk.ends[-1] != len(value) or list(chunk.ends) != sorted(chunk.ends):
                raise ValueError("offsets do not match its length")
        except (struct.error, ValueError) as exc:
            report.add(f"{where}: message chunk at position {first} cannot be decoded: {exc}",
                       key)
            continue
        if len(key) != 13 or first < 1:
            report.add(f"{where}: malformed message chunk key", key)
        elif first < seen.end:
            report.add(f"{where}: message chunk at position {first} overlaps the previous "
                       f"one (which ends at {seen.end - 1})", key)
        bad = []
        for pos, record in zip(range(first, chunk.end), records):
            if not record:
                continue
            seen.count += 1
            seen.bytes += len(record)
            try:
                record_to_dict(record)
            except (orjson.JSONDecodeError, ValueError):
                bad.append(pos)
        if bad:
            report.add(f"{where}: {len(bad)} malformed message record(s), the first at "
                       f"position {bad[0]}", key)
        seen.end = max(seen.end, chunk.end)
    for qid, queue in queues.items():
        if not queue.config.is_persistent:
            continue  # its messages have no WAL: the loader counts them again
        seen = found.get(qid, _Messages())
        value = store.get(counters_key(qid))
        if value is None:
            if seen.count:
                report.add(f"queue {queue.domain}/{queue.name}: no counters record, with "
                           f"{seen.count} messages stored", counters_key(qid))
            continue
        last, count, size = orjson.loads(value)[:3]
        if seen.end - 1 > last:
            report.add(f"queue {queue.domain}/{queue.name}: messages stored up to position "
                       f"{seen.end - 1}, past its last position {last}", counters_key(qid))
        if (count, size) != (seen.count, seen.bytes):
            report.add(f"queue {queue.domain}/{queue.name}: counters say {count} messages "
                       f"({size} bytes), {seen.count} ({seen.bytes} bytes) are stored",
                       counters_key(qid))


def _check_groups(store: Store, report: ShardReport, queues: dict[int, QueueState]
                  ) -> tuple[dict[tuple[int, str], Any], set[int]]:
    groups = {}
    unreadable: set[int] = set()  # queues whose groups could not be read
    for queue in queues.values():
        try:
            found = read_groups(store, queue)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, GortmsError) as exc:
            report.add(f"queue {queue.domain}/{queue.name}: a consumer group record or cursor "
                       f"cannot be read: {exc}", group_key(queue.qid, ""))
            unreadable.add(queue.qid)
            continue
        for group in found:
            groups[(queue.qid, group.name)] = group
            if group.position > queue.last + 1:
                report.add(f"group {queue.domain}/{queue.name}/{group.name}: cursor at position "
                           f"{group.position}, past the queue's last position {queue.last} + 1",
                           cursor_key(queue.qid, group.name))
    report.groups = len(groups)
    return groups, unreadable


def _check_group_keys(store: Store, report: ShardReport, queues: dict[int, QueueState],
                      groups: dict[tuple[int, str], Any], unreadable: set[int],
                      orphans: _Orphans) -> None:
    for key, value in store.scan(b"G", b"H"):
        if _qid(key) not in queues:
            orphans.add("consumer group", f"qid {_qid(key)}, which has no queue record", key)
    kinds = ((b"K", "cursor"), (b"A", "ack delta"), (b"R", "redelivery"), (b"E", "lease"))
    for kind, what in kinds:
        for key, value in store.scan(kind, prefix_end(kind)):
            qid = _qid(key)
            queue = queues.get(qid)
            name = key[5:].decode(errors="replace") if kind == b"K" else _group_part(key)
            if queue is None:
                orphans.add(what, f"qid {qid}, which has no queue record", key)
                continue
            if name is None:
                report.add(f"malformed {what} key", key)
                continue
            if qid in unreadable:
                continue  # reported once, as its queue's groups
            if (qid, name) not in groups:
                orphans.add(what, f"group {queue.domain}/{queue.name}/{name}, which has no "
                            f"group record", key)
                continue
            _check_positions(report, queue, name, kind, key, value)


def _check_positions(report: ShardReport, queue: QueueState, group: str, kind: bytes,
                     key: bytes, value: bytes) -> None:
    where = f"group {queue.domain}/{queue.name}/{group}"
    if kind == b"R":
        position = chunks.position_of(key)
        if len(value) < 4 or position > queue.last:
            report.add(f"{where}: redelivery record of position {position} (queue's last "
                       f"{queue.last}) or its value is not valid", key)
    elif kind == b"E":
        try:
            _, _, positions = decode_lease(value)
        except (orjson.JSONDecodeError, ValueError, TypeError, IndexError) as exc:
            report.add(f"{where}: lease record cannot be read: {exc}", key)
            return
        if positions and max(positions) > queue.last:
            report.add(f"{where}: lease of position {max(positions)}, past the queue's last "
                       f"position {queue.last}", key)


# --- the table ----------------------------------------------------------------------------------


def render(report: dict[str, Any]) -> str:
    lines = [f"data dir {report['dataDir']}  ({report['shardCount']} shards)", "",
             f"{'shard':7}{'queues':8}{'groups':8}problems"]
    for shard in report["shards"]:
        lines.append(f"{shard['shard']:<7}{shard['queues']:<8}{shard['groups']:<8}"
                     f"{len(shard['problems'])}")
    lines.append("")
    for shard in report["shards"]:
        for problem in shard["problems"]:
            key = f"  (key {problem['key']})" if problem["key"] else ""
            lines.append(f"shard {shard['shard']}: {problem['what']}{key}")
    if not report["problemCount"]:
        lines.append("no problems found")
    return "\n".join(lines)
