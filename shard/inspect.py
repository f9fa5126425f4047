"""`gortms inspect DOMAIN/QUEUE`: one queue's positions, consumer groups (lag, pending
deliveries), dead letters and disk use, read from its owner shard's RocksDB opened read-only.

Read-only opens take no lock, so this works on a stopped broker's data dir and beside a
running broker, whose database it sees as of the moment it was opened. It reads the same
records the shard's loader reads at start, through QueueState and GroupState, so positions,
lag and acks mean here what they mean in the shard. `shard_count` and `read_only` are how
every read-only command (dump, check, `gortms shards` on a stopped broker) opens a data dir.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import sys
import textwrap
from typing import Any, Iterator

import orjson

from gortms.config import Settings
from gortms.datadir import Layout, read_cluster
from gortms.errors import BadRequest, GortmsError, NotFound, QueueNotFound
from gortms.checks import check_name, format_duration, to_builtins
from gortms.models import format_ts
from gortms.partition import CATALOG_SHARD, DLQ_SUFFIX, shard_for
from gortms.protocol import record_id
from shard.groups import GroupState
from shard.loader import read_groups, read_queue, redelivery_counts
from shard.queues import QueueState
from shard.rocks import RocksStore, StorageError
from shard.store import Store, domain_key, name_key, queue_key

# Positions listed per group; the rest are only counted.
MAX_SHOWN = 20
EXIT_FAILURE = 1
EXIT_USAGE = 2


def main(settings: Settings, args: argparse.Namespace) -> int:
    try:
        domain, queue = parse_target(args.target)
    except BadRequest as exc:
        print(f"gortms inspect: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    try:
        report = inspect_queue(Layout(settings.data_dir), domain, queue)
    except GortmsError as exc:
        print(f"gortms inspect: {exc.message}", file=sys.stderr)
        return EXIT_FAILURE
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() if args.json
          else render(report))
    return 0


def parse_target(target: str | None) -> tuple[str, str]:
    parts = (target or "").split("/")
    if len(parts) != 2:
        raise BadRequest(f"give the queue as DOMAIN/QUEUE, got {target!r}")
    return check_name("domain", parts[0]), check_name("queue", parts[1])


# --- reading ----------------------------------------------------------------------------------


def inspect_queue(layout: Layout, domain: str, name: str) -> dict[str, Any]:
    count = shard_count(layout)
    index = shard_for(domain, name, count)
    with read_only(layout, CATALOG_SHARD) as catalog:
        domain_record = _json(catalog.get(domain_key(domain)))
    with read_only(layout, index) as store:
        record, warnings = find_queue(store, domain, name, domain_record)
        queue = read_queue(store, record)
        groups = [group_view(store, group) for group in read_groups(store, queue)]
        # `{q}.dlq` is created on the shard of `{q}` (shard/deadletters.py).
        dead = dead_letter_view(store, queue)
        disk_bytes = store.stats()["diskBytes"]
    domain_view = None if domain_record is None else {
        "name": domain, "epoch": domain_record["epoch"],
        "createdAt": format_ts(domain_record["createdAt"])}
    return {"dataDir": layout.root, "shard": index, "shardCount": count,
            "shardDiskBytes": disk_bytes, "domain": domain_view, "warnings": warnings,
            "queue": queue_view(queue), "deadLetters": dead, "groups": groups}


def shard_count(layout: Layout) -> int:
    """The data dir's shard count (cluster.json), or why it is not a broker's data dir."""
    if not os.path.isdir(layout.root):
        what = "is not a directory" if os.path.exists(layout.root) else "does not exist"
        raise NotFound(f"data dir {layout.root} {what}")
    try:
        cluster = read_cluster(layout)
    except OSError as exc:  # a permission, say: the commands should run as the broker's user
        raise NotFound(f"cannot read {layout.cluster_file}: {exc.strerror}") from exc
    if cluster is None:
        raise NotFound(f"{layout.root} holds no GoRTMS data (no cluster.json)")
    count = cluster.get("shardCount") if isinstance(cluster, dict) else None
    if type(count) is not int or count < 1:
        raise NotFound(f"{layout.cluster_file} is not a GoRTMS cluster file (no shard count)")
    return count


@contextlib.contextmanager
def read_only(layout: Layout, index: int) -> Iterator[RocksStore]:
    path = layout.shard_dir(index)
    # Opening a database that is not there would create its directory: look first.
    if not os.path.isdir(path):
        raise NotFound(f"shard {index} has no database at {path}")
    store = RocksStore(path, read_only=True)
    try:
        yield store
    finally:
        try:
            store.close()
        except StorageError:
            pass  # close() flushes the WAL, which a read-only database refuses; nothing to lose


def find_queue(store: Store, domain: str, name: str, domain_record: dict | None
               ) -> tuple[dict[str, Any], list[str]]:
    """The queue's record, by its name index, if it belongs to the domain's current epoch."""
    record = _queue_record(store, domain, name)
    if record is None:
        missing = "" if domain_record else f" (and no domain '{domain}' in the catalog)"
        raise QueueNotFound(f"queue '{name}' not found in domain '{domain}'{missing}")
    if domain_record is None:
        return record, [f"domain '{domain}' has no catalog record (deleted?): this queue "
                        f"(domain epoch {record['epoch']}) is left until its shard drops it"]
    if record["epoch"] != domain_record["epoch"]:
        # A domain deleted and created again: the old incarnation's queue is not this one.
        raise QueueNotFound(
            f"queue '{name}' not found in domain '{domain}' (epoch {domain_record['epoch']}); "
            f"only a leftover of an earlier domain '{domain}' (epoch {record['epoch']}) remains")
    return record, []


def _json(value: bytes | None) -> dict[str, Any] | None:
    return None if value is None else orjson.loads(value)


def _queue_record(store: Store, domain: str, name: str) -> dict[str, Any] | None:
    qid = store.get(name_key(domain, name))
    return _json(store.get(queue_key(int.from_bytes(qid, "big")))) if qid else None


def stored_queue(store: Store, domain: str, name: str, epoch: int) -> QueueState | None:
    """A queue of this domain incarnation (`epoch`), as the loader reads it; None if none."""
    record = _queue_record(store, domain, name)
    if record is None or record["epoch"] != epoch:
        return None
    return read_queue(store, record)


# --- views ------------------------------------------------------------------------------------


def queue_view(queue: QueueState) -> dict[str, Any]:
    return {"domain": queue.domain, "name": queue.name, "qid": queue.qid, "epoch": queue.epoch,
            "createdAt": format_ts(queue.created_ms), "config": to_builtins(queue.config),
            "firstPosition": queue.first, "lastPosition": queue.last,
            "messageCount": queue.count, "bytes": queue.bytes}


def dead_letter_view(store: Store, queue: QueueState) -> dict[str, Any]:
    """The queue's `{q}.dlq` (shard/deadletters.py), created by the first dead letter."""
    dlq = stored_queue(store, queue.domain, queue.name + DLQ_SUFFIX, queue.epoch)
    if dlq is None:
        return {"queue": queue.name + DLQ_SUFFIX, "exists": False, "messageCount": 0,
                "bytes": 0, "firstPosition": None, "lastPosition": None}
    return {"queue": dlq.name, "exists": True, "messageCount": dlq.count, "bytes": dlq.bytes,
            "firstPosition": dlq.first, "lastPosition": dlq.last}


def group_view(store: Store, group: GroupState) -> dict[str, Any]:
    counts = redelivery_counts(store, group)
    # Pending as the API counts it: delivered (below the position) and not acknowledged
    # (after a restart all of them are pending again); one delivery unless recorded.
    pending = group.acks.gaps(group.position)
    shown = list(itertools.islice(pending, MAX_SHOWN))
    rest = sum(1 for _ in pending)  # the generator goes on after the shown positions
    records = group.queue.read_positions(store, shown)
    return {
        "groupId": group.name, "ackMode": str(group.ack_mode), "ttl": format_duration(group.ttl),
        "start": group.start, "createdAt": format_ts(group.created_ms),
        "position": group.position, "ackFloor": group.acks.floor, "lag": group.lag(),
        "pending": {"count": len(shown) + rest, "shown": [
            {"position": p, "id": record_id(r) if r else None, "deliveryCount": counts.get(p, 1)}
            for p, r in zip(shown, records)]},
        "consumers": list(group.registered),
        "redeliveries": {"count": len(counts), "shown": [
            {"position": p, "deliveryCount": c} for p, c in sorted(counts.items())[:MAX_SHOWN]]},
    }


def render(report: dict[str, Any]) -> str:
    queue = report["queue"]
    lines = [f"warning: {w}" for w in report["warnings"]]
    lines += [
        f"queue {queue['domain']}/{queue['name']}  (shard {report['shard']} of "
        f"{report['shardCount']}, qid {queue['qid']}, domain epoch {queue['epoch']})",
        f"  data dir     {report['dataDir']}",
        f"  created      {queue['createdAt']}",
        *_render_config(queue["config"]),
        f"  positions    first {queue['firstPosition']}, last {queue['lastPosition']}",
        f"  messages     {queue['messageCount']} ({queue['bytes']} bytes)",
        f"  dead letters {_render_dead_letters(report['deadLetters'])}",
        f"  disk         {queue['bytes']:,} bytes of messages; shard {report['shard']}'s "
        f"database {report['shardDiskBytes']:,} bytes",
    ]
    if not report["groups"]:
        lines.append("  no consumer groups")
    for group in report["groups"]:
        lines += ["", *_render_group(group)]
    return "\n".join(lines)


def _render_config(config: dict[str, Any]) -> list[str]:
    """Settings as name=value, wrapped; each nested section (retryConfig, ...) on its own line."""
    scalars = " ".join(f"{k}={_text(v)}" for k, v in config.items() if not isinstance(v, dict))
    sections = [f"{k}: " + " ".join(f"{n}={_text(v)}" for n, v in section.items())
                for k, section in config.items() if isinstance(section, dict)]
    texts = [*textwrap.wrap(scalars, 80), *sections]
    return [f"  {'config' if i == 0 else '':12} {text}" for i, text in enumerate(texts)]


def _render_dead_letters(dead: dict[str, Any]) -> str:
    if not dead["exists"]:
        return f"none ({dead['queue']} does not exist)"
    return (f"{dead['messageCount']} in {dead['queue']} (positions first "
            f"{dead['firstPosition']}, last {dead['lastPosition']}; {dead['bytes']} bytes)")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _render_group(group: dict[str, Any]) -> list[str]:
    pending = [f"{p['position']} (id {p['id']}" + (
        f", {p['deliveryCount']} deliveries)" if p["deliveryCount"] > 1 else ")")
        for p in group["pending"]["shown"]]
    redelivered = [f"{r['position']} ({r['deliveryCount']} deliveries)"
                   for r in group["redeliveries"]["shown"]]
    return [
        f"group {group['groupId']}  ({group['ackMode']} ack, start {group['start']}, "
        f"ttl {group['ttl']}, created {group['createdAt']})",
        f"  position     {group['position']}   ack floor {group['ackFloor']}   "
        f"lag {group['lag']}",
        f"  pending      {_listing(group['pending']['count'], pending)}",
        f"  consumers    {', '.join(group['consumers']) or 'none registered'}",
        f"  redelivered  {_listing(group['redeliveries']['count'], redelivered)}",
    ]


def _listing(count: int, shown: list[str]) -> str:
    if not count:
        return "none"
    more = f", and {count - len(shown)} more" if count > len(shown) else ""
    return f"{count}: " + ", ".join(shown) + more
