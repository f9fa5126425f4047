"""`gortms inspect DOMAIN/QUEUE`: one queue's positions, consumer groups and unacknowledged
deliveries, read from its owner shard's RocksDB opened read-only.

Read-only opens take no lock, so this works on a stopped broker's data dir and beside a
running broker, whose database it sees as of the moment it was opened. It reads the same
records the shard's loader reads at start, through QueueState and GroupState, so positions,
lag and acks mean here what they mean in the shard.
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
from gortms.partition import CATALOG_SHARD, shard_for
from gortms.protocol import record_id
from shard.groups import GroupState
from shard.loader import read_groups, read_queue, redelivery_counts
from shard.queues import QueueState
from shard.rocks import RocksStore, StorageError
from shard.store import (Store, domain_key, name_key,
                         queue_key)

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
    cluster = read_cluster(layout)
    if cluster is None:
        raise NotFound(f"{layout.root} holds no GoRTMS data (no cluster.json)")
    shard_count = int(cluster["shardCount"])
    index = shard_for(domain, name, shard_count)
    with read_only(layout, CATALOG_SHARD) as catalog:
        domain_record = _json(catalog.get(domain_key(domain)))
    with read_only(layout, index) as store:
        record, warnings = find_queue(store, domain, name, domain_record)
        queue = read_queue(store, record)
        groups = [group_view(store, group) for group in read_groups(store, queue)]
    domain_view = None if domain_record is None else {
        "name": domain, "epoch": domain_record["epoch"],
        "createdAt": format_ts(domain_record["createdAt"])}
    return {"dataDir": layout.root, "shard": index, "shardCount": shard_count,
            "domain": domain_view, "warnings": warnings, "queue": queue_view(queue),
            "groups": groups}


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
    qid = store.get(name_key(domain, name))
    record = _json(store.get(queue_key(int.from_bytes(qid, "big")))) if qid else None
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


# --- views ------------------------------------------------------------------------------------


def queue_view(queue: QueueState) -> dict[str, Any]:
    return {"domain": queue.domain, "name": queue.name, "qid": queue.qid, "epoch": queue.epoch,
            "createdAt": format_ts(queue.created_ms), "config": to_builtins(queue.config),
            "firstPosition": queue.first, "lastPosition": queue.last,
            "messageCount": queue.count, "bytes": queue.bytes}


def group_view(store: Store, group: GroupState) -> dict[str, Any]:
    counts = redelivery_counts(store, group)
    # Delivered (below the position) and not acknowledged; one delivery unless recorded.
    unacked = group.acks.gaps(group.position)
    shown = list(itertools.islice(unacked, MAX_SHOWN))
    rest = sum(1 for _ in unacked)  # the generator goes on after the shown positions
    records = group.queue.read_positions(store, shown)
    return {
        "groupId": group.name, "ackMode": str(group.ack_mode), "ttl": format_duration(group.ttl),
        "start": group.start, "createdAt": format_ts(group.created_ms),
        "position": group.position, "ackFloor": group.acks.floor, "lag": group.lag(),
        "unacked": {"count": len(shown) + rest, "shown": [
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


def _text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _render_group(group: dict[str, Any]) -> list[str]:
    unacked = [f"{u['position']} (id {u['id']}" + (
        f", {u['deliveryCount']} deliveries)" if u["deliveryCount"] > 1 else ")")
        for u in group["unacked"]["shown"]]
    redelivered = [f"{r['position']} ({r['deliveryCount']} deliveries)"
                   for r in group["redeliveries"]["shown"]]
    return [
        f"group {group['groupId']}  ({group['ackMode']} ack, start {group['start']}, "
        f"ttl {group['ttl']}, created {group['createdAt']})",
        f"  position     {group['position']}   ack floor {group['ackFloor']}   "
        f"lag {group['lag']}",
        f"  unacked      {_listing(group['unacked']['count'], unacked)}",
        f"  consumers    {', '.join(group['consumers']) or 'none registered'}",
        f"  redelivered  {_listing(group['redeliveries']['count'], redelivered)}",
    ]


def _listing(count: int, shown: list[str]) -> str:
    if not count:
        return "none"
    more = f", and {count - len(shown)} more" if count > len(shown) else ""
    return f"{count}: " + ", ".join(shown) + more
