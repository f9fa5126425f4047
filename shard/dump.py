"""`gortms dump DOMAIN/QUEUE [--from N] [--limit M]`: a queue's stored messages as JSON lines.

One line per message, in position order: `{"position":..,"timestamp":"..","id":..,
"headers":{..},"payload":..}`, the message as the API delivers it without a delivery count
(the id, headers and payload are the stored bytes, spliced as deliveries are:
gortms/protocol/records.py). The owner shard's RocksDB is opened read-only, as `gortms
inspect` does (shard/inspect.py), so this works on a stopped broker's data dir and beside a
running broker, seeing the database as of the moment it opens it. Positions are read PAGE at
a time, so memory stays bounded whatever the queue's size; deleted messages (holes) are
skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import Iterator

import orjson

from gortms.config import Settings
from gortms.datadir import Layout
from gortms.errors import BadRequest, GortmsError
from gortms.models import format_ts
from gortms.partition import CATALOG_SHARD, shard_for
from gortms.protocol import record_suffix, record_ts
from shard.inspect import find_queue, parse_target, read_only, shard_count
from shard.loader import read_queue
from shard.queues import QueueState
from shard.rocks import RocksStore
from shard.store import domain_key

PAGE = 1000  # positions read at a time
EXIT_FAILURE = 1
EXIT_USAGE = 2


def main(settings: Settings, args: argparse.Namespace) -> int:
    try:
        domain, name = parse_target(args.target)
        start = positive("--from", getattr(args, "from_", None))
        limit = positive("--limit", getattr(args, "limit", None))
    except BadRequest as exc:
        print(f"gortms dump: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    out = sys.stdout.buffer
    try:
        with open_queue(Layout(settings.data_dir), domain, name) as (store, queue, warnings):
            for warning in warnings:
                print(f"gortms dump: warning: {warning}", file=sys.stderr)
            for page in pages(store, queue, start, limit):
                out.write(page)
            out.flush()
    except GortmsError as exc:
        print(f"gortms dump: {exc.message}", file=sys.stderr)
        return EXIT_FAILURE
    except BrokenPipeError:
        # The reader went away (`gortms dump ... | head`): stop quietly, as other tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def positive(option: str, value: str | int | None) -> int | None:
    """An option that must be an integer >= 1 (None when not given)."""
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise BadRequest(f"{option} must be an integer >= 1, got {value!r}")
    return number


@contextlib.contextmanager
def open_queue(layout: Layout, domain: str, name: str
               ) -> Iterator[tuple[RocksStore, QueueState, list[str]]]:
    """The queue's owner shard opened read-only, the queue as the loader reads it, warnings."""
    index = shard_for(domain, name, shard_count(layout))
    with read_only(layout, CATALOG_SHARD) as catalog:
        value = catalog.get(domain_key(domain))
    domain_record = None if value is None else orjson.loads(value)
    with read_only(layout, index) as store:
        record, warnings = find_queue(store, domain, name, domain_record)
        yield store, read_queue(store, record), warnings


def pages(store: RocksStore, queue: QueueState, start: int | None, limit: int | None
          ) -> Iterator[bytes]:
    """The JSON lines of the stored messages from `start` on (at most `limit`), a page of
    positions at a time."""
    position = max(start or queue.first, queue.first)
    left = limit if limit is not None else -1
    heads: dict[bytes, bytes] = {}  # one line head per timestamp, as deliveries_json does
    while position <= queue.last and left != 0:
        end = min(position + PAGE, queue.last + 1)
        lines = []
        for pos, record in zip(range(position, end), queue.read(store, position, end)):
            if record is None:
                continue  # a hole: deleted
            stamp = record[:8]
            head = heads.get(stamp)
            if head is None:
                if len(heads) > PAGE:
                    heads.clear()
                head = heads[stamp] = b'{"position":%%d,"timestamp":"%s",' % (
                    format_ts(record_ts(record)).encode())
            lines.append(head % pos + record_suffix(record) + b"\n")
            left -= 1
            if left == 0:
                break
        if lines:
            yield b"".join(lines)
        position = end
